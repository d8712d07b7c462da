"""Typed problems: why the domain said no, as codes the pages and the API share.

A rule that fails yields a :class:`Problem` (a stable ``code``, the ``field`` it concerns, and
the values its message needs). Checks collect every problem they find so a family can fix all
of them at once; the web layer turns them into localized messages with :func:`message`.

The same refusal may be read by a family booking its visit, by a guard at the gate (a child
under 5 kept away by a health measure is refused at booking and at the gate alike) or by staff
moving a booking for a family: one code, in words for whoever reads it (:class:`Audience`,
:data:`GATE_MESSAGES`, :data:`STAFF_MESSAGES`). The family's words are the default, and the
API's.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from datetime import date
from enum import StrEnum
from typing import Any

from visits.i18n import N_, Np_, format_countries, format_day_with_year, gettext, ngettext


class Code(StrEnum):
    # Field validation
    REQUIRED = "required"
    TOO_LONG = "too_long"
    INVALID_NAME = "invalid_name"
    INVALID_CHOICE = "invalid_choice"
    INVALID_DATE = "invalid_date"
    BIRTH_DATE_IN_FUTURE = "birth_date_in_future"
    BIRTH_DATE_IMPLAUSIBLE = "birth_date_implausible"
    INVALID_DNI = "invalid_dni"
    INVALID_DOCUMENT_NUMBER = "invalid_document_number"
    DUPLICATE_VISITOR = "duplicate_visitor"
    INVALID_PHONE = "invalid_phone"
    PHONE_NOT_MOBILE = "phone_not_mobile"
    PHONE_COUNTRY_NOT_ALLOWED = "phone_country_not_allowed"
    INVALID_REFERENCE = "invalid_reference"
    INVALID_REQUEST = "invalid_request"
    # The party
    NO_VISITORS = "no_visitors"
    TOO_MANY_VISITORS = "too_many_visitors"
    ADULT_REQUIRED = "adult_required"
    SLOT_WOMEN_ONLY = "slot_women_only"
    SLOT_MEN_ONLY = "slot_men_only"
    VISITOR_SEX_UNKNOWN = "visitor_sex_unknown"
    VISITOR_ALREADY_BOOKED = "visitor_already_booked"
    VISITOR_CAME_THAT_DAY = "visitor_came_that_day"
    # A visit that day that is this browser's own booking waiting for its code (family pages
    # only: web.family._waiting_notice).
    VISITOR_WAITING_FOR_CODE = "visitor_waiting_for_code"
    VISITOR_SUSPENDED = "visitor_suspended"
    # The slot
    SLOT_NOT_FOUND = "slot_not_found"
    SLOT_FULL = "slot_full"
    SLOT_CLOSED = "slot_closed"
    SLOT_IN_PAST = "slot_in_past"
    SLOT_STARTED = "slot_started"
    BOOKING_NOT_OPEN_YET = "booking_not_open_yet"
    BOOKING_CLOSED = "booking_closed"
    SAME_SLOT = "same_slot"
    # The inmate and the prison
    PRISON_NOT_FOUND = "prison_not_found"
    INMATE_NOT_IDENTIFIED = "inmate_not_identified"
    IDENTITY_CHECK_REQUIRED = "identity_check_required"
    INMATE_NOT_ACTIVE = "inmate_not_active"
    INMATE_SUSPENDED = "inmate_suspended"
    WEEKLY_LIMIT_REACHED = "weekly_limit_reached"
    # Finding and changing a booking
    BOOKING_NOT_FOUND = "booking_not_found"
    BOOKING_NOT_ACTIVE = "booking_not_active"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    # Identification of one person paused for everyone (visits.throttle.ThrottlePolicy):
    # both details, right, still pass.
    IDENTIFY_PAUSED = "identify_paused"
    SESSION_EXPIRED = "session_expired"
    FORM_EXPIRED = "form_expired"
    PERSON_CHANGED = "person_changed"
    SUBMISSION_KEY_REUSED = "submission_key_reused"
    # Phone verification
    INVALID_CODE = "invalid_code"
    WRONG_CODE = "wrong_code"
    CODE_ATTEMPTS_EXHAUSTED = "code_attempts_exhausted"
    TOO_MANY_CODES = "too_many_codes"
    TOO_MANY_UNCONFIRMED = "too_many_unconfirmed"
    TOO_MANY_CODES_FROM_CLIENT = "too_many_codes_from_client"
    HOLD_EXPIRED = "hold_expired"
    NOT_HELD = "not_held"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HOLD_CANCELLED = "hold_cancelled"
    BOOKING_HELD = "booking_held"
    # Staff accounts
    INVALID_USERNAME = "invalid_username"
    USERNAME_TAKEN = "username_taken"
    PASSWORD_TOO_SHORT = "password_too_short"  # noqa: S105 (a code, not a password)
    PASSWORD_BLANK = "password_blank"  # noqa: S105 (a code, not a password)
    PASSWORD_UNCHANGED = "password_unchanged"  # noqa: S105 (a code, not a password)
    NATIONAL_ADMINS_ONLY = "national_admins_only"
    PRISON_REQUIRED = "prison_required"
    SIGN_IN_FAILED = "sign_in_failed"
    SIGN_IN_LOCKED = "sign_in_locked"
    SESSION_ENDED = "session_ended"
    FORBIDDEN = "forbidden"
    NOTHING_MATCHES = "nothing_matches"
    # The gate
    NOT_THE_VISIT_DAY = "not_the_visit_day"
    VISIT_NOT_OVER = "visit_not_over"
    CAME_TO_THE_GATE = "came_to_the_gate"
    SCREENED_AT_THE_GATE = "screened_at_the_gate"
    NOBODY_MAY_COME_IN = "nobody_may_come_in"
    # Visits stopped for a booking someone of which was inside already (visits.stopping):
    # nobody more of it comes in, and why.
    VISIT_STOPPED_CLOSED = "visit_stopped_closed"
    VISIT_STOPPED_INMATE_SUSPENDED = "visit_stopped_inmate_suspended"
    VISIT_STOPPED_INMATE_NOT_ACTIVE = "visit_stopped_inmate_not_active"
    VISIT_STOPPED_BARRED = "visit_stopped_barred"
    ALREADY_RECORDED = "already_recorded"
    GATE_RECORD_CHANGED = "gate_record_changed"
    GATE_RECORDED = "gate_recorded"
    GATE_BOOKING_CANCELLED = "gate_booking_cancelled"
    INVALID_DATE_RANGE = "invalid_date_range"
    DAY_IN_PAST = "day_in_past"
    ALREADY_CLOSED = "already_closed"
    NO_VISITS_AT_TIME = "no_visits_at_time"
    INMATE_NOT_FOUND = "inmate_not_found"
    VISITOR_NOT_FOUND = "visitor_not_found"
    ALREADY_LIFTED = "already_lifted"
    INMATE_ALREADY_SUSPENDED = "inmate_already_suspended"
    ALREADY_BARRED = "already_barred"
    DATE_TOO_FAR = "date_too_far"
    TOO_MANY_SEGMENTS = "too_many_segments"
    BROADCAST_REPEATED = "broadcast_repeated"
    OUT_OF_RANGE = "out_of_range"
    VISIT_NOT_SHORTER = "visit_not_shorter"
    INVALID_TIME = "invalid_time"
    HEALTH_SUSPENDED = "health_suspended"
    HEALTH_NO_YOUNG_CHILDREN = "health_no_young_children"
    HEALTH_HIGH_RISK = "health_high_risk"
    MEASURE_REQUIRED = "measure_required"
    DATE_IN_FUTURE = "date_in_future"
    DATE_TOO_OLD = "date_too_old"
    MORE_ADULTS_THAN_VISITORS = "more_adults_than_visitors"
    ENDS_BEFORE_START = "ends_before_start"
    LAST_DAY_BEFORE_FIRST = "last_day_before_first"
    SESSIONS_OVERLAP = "sessions_overlap"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 (a code, not a password)
    PASSWORDS_DIFFER = "passwords_differ"
    NO_INFECTIOUS_SINCE = "no_infectious_since"
    ROSTER_TAKES_MANY_OUT = "roster_takes_many_out"
    # Anything else the API can answer
    NOT_FOUND = "not_found"
    BODY_TOO_LARGE = "body_too_large"
    SERVER_ERROR = "server_error"


# Refusals that ask to wait and try again (429 on the pages and in the API).
WAIT_AND_RETRY = frozenset(
    {
        Code.TOO_MANY_ATTEMPTS,
        Code.IDENTIFY_PAUSED,
        Code.TOO_MANY_CODES,
        Code.TOO_MANY_UNCONFIRMED,
        Code.TOO_MANY_CODES_FROM_CLIENT,
    }
)


MESSAGES: dict[Code, str] = {
    Code.REQUIRED: N_("Please fill this in."),
    Code.TOO_LONG: N_("Please use at most %(max)s characters."),
    Code.INVALID_NAME: N_("Use letters only. Spaces, hyphens and apostrophes are fine."),
    Code.INVALID_CHOICE: N_("Please choose one of the options."),
    Code.INVALID_DATE: N_("Write the date as day/month/year, for example 25/07/1985."),
    Code.BIRTH_DATE_IN_FUTURE: N_("The birth date cannot be in the future."),
    Code.BIRTH_DATE_IMPLAUSIBLE: N_("Please check the year of birth."),
    Code.INVALID_DNI: N_("A DNI has exactly 8 digits, for example 45678912."),
    Code.INVALID_DOCUMENT_NUMBER: N_(
        "Check the document number: %(min)s to %(max)s letters or digits, no spaces."
    ),
    Code.DUPLICATE_VISITOR: N_("This person is already in the booking."),
    Code.INVALID_PHONE: N_("Write a mobile number, for example 987 654 321."),
    Code.PHONE_NOT_MOBILE: N_("This number cannot receive SMS. Please give a mobile number."),
    Code.PHONE_COUNTRY_NOT_ALLOWED: N_(
        "Use a mobile number from %(countries)s: we send SMS only there. If you have none, "
        "give a relative's number."
    ),
    Code.INVALID_REFERENCE: N_("A booking reference looks like ABCD-2345."),
    Code.INVALID_REQUEST: N_("This request is not valid."),
    Code.NO_VISITORS: N_("Add at least one visitor."),
    Code.TOO_MANY_VISITORS: N_("At most %(max)s people can visit together."),
    Code.ADULT_REQUIRED: N_(
        "At least one visitor must be %(age)s or older. Children can visit only with an adult."
    ),
    Code.SLOT_WOMEN_ONLY: N_(
        "This visit time is for women. Choose a day for men, or another visitor."
    ),
    Code.SLOT_MEN_ONLY: N_(
        "This visit time is for men. Choose a day for women, or another visitor."
    ),
    Code.VISITOR_SEX_UNKNOWN: N_(
        "This day is only for women or only for men, and the booking does not say who is "
        "coming. Please make a new booking for this day."
    ),
    Code.VISITOR_ALREADY_BOOKED: N_("%(name)s already has a visit booked that day."),
    Code.VISITOR_WAITING_FOR_CODE: N_(
        "%(name)s is in your booking %(reference)s that day, which is waiting for the code we "
        "sent by SMS. Enter that code: you do not need to book again."
    ),
    Code.VISITOR_CAME_THAT_DAY: N_(
        "%(name)s already came to a visit that day, and each person can visit once a day. "
        "Please choose another day."
    ),
    Code.VISITOR_SUSPENDED: N_("%(name)s cannot visit this prison for now. Please ask the prison."),
    Code.SLOT_NOT_FOUND: N_("That visit time does not exist. Please choose one from the list."),
    Code.SLOT_FULL: N_("This visit time is full. Please choose another one."),
    Code.SLOT_CLOSED: N_("There are no visits at this time: %(reason)s. Please choose another."),
    Code.SLOT_IN_PAST: N_("This visit time has already passed. Please choose another one."),
    Code.SLOT_STARTED: N_("This visit time has already started. Please choose a later one."),
    Code.BOOKING_NOT_OPEN_YET: N_("Bookings for this day open on %(opens_on)s."),
    Code.BOOKING_CLOSED: N_(
        "Bookings for this time closed %(hours)s hours before the visit. Choose a later time."
    ),
    Code.SAME_SLOT: N_("The booking is already at this time."),
    Code.PRISON_NOT_FOUND: N_("This prison does not take online bookings."),
    Code.INMATE_NOT_IDENTIFIED: N_(
        "We could not find the person with those details. Check the code and the surname "
        "or birth date."
    ),
    Code.IDENTITY_CHECK_REQUIRED: N_(
        "Write the first surname or the birth date of the person you visit."
    ),
    Code.INMATE_NOT_ACTIVE: N_(
        "This person cannot receive visits at this prison. Please ask the prison."
    ),
    Code.INMATE_SUSPENDED: N_("Visits to this person are suspended until %(until)s."),
    Code.WEEKLY_LIMIT_REACHED: N_(
        "The person you visit already has %(limit)s visits booked that week. "
        "Please choose another week."
    ),
    Code.BOOKING_NOT_FOUND: N_("We could not find a booking with that reference and phone number."),
    Code.BOOKING_NOT_ACTIVE: N_("This booking is cancelled or already over."),
    Code.TOO_MANY_ATTEMPTS: N_("Too many attempts. Wait %(minutes)s minutes and try again."),
    Code.IDENTIFY_PAUSED: N_(
        "Too many wrong tries were made with this code. Wait %(minutes)s minutes, or write "
        "both the first surname and the birth date."
    ),
    Code.SESSION_EXPIRED: N_("Too much time has passed. Please identify the person again."),
    Code.FORM_EXPIRED: N_("This form expired. Please send it again."),
    Code.PERSON_CHANGED: N_(
        "You identified another person in another window. Check whom this visit is for and "
        "send the form again."
    ),
    Code.SUBMISSION_KEY_REUSED: N_(
        "This request was already used for other details. Please review them and confirm again."
    ),
    Code.INVALID_CODE: N_("The code has 6 digits. Write the digits from the SMS."),
    Code.WRONG_CODE: N_(
        "That code is not right. Check the SMS and try again (%(left)s tries left)."
    ),
    Code.CODE_ATTEMPTS_EXHAUSTED: N_("Too many wrong codes. Ask for a new code."),
    Code.TOO_MANY_CODES: N_(
        "We already sent several codes to this phone. Wait %(minutes)s minutes and try again."
    ),
    Code.TOO_MANY_UNCONFIRMED: N_(
        "Other bookings are still waiting for the code we sent by SMS. If one is yours, type "
        "that code first; if not, wait %(minutes)s minutes and try again."
    ),
    Code.TOO_MANY_CODES_FROM_CLIENT: N_(
        "Many codes were already asked for from this internet connection. Wait %(minutes)s "
        "minutes and try again."
    ),
    Code.HOLD_EXPIRED: N_(
        "The time to enter the code is over and the places were released. Please book again."
    ),
    Code.NOT_HELD: N_("This booking does not need a code."),
    Code.HOLD_CANCELLED: N_(
        "This booking was cancelled before it was confirmed, and its places were released. "
        "You can book again."
    ),
    Code.BOOKING_HELD: N_("First enter the code we sent by SMS to confirm this booking."),
    Code.INVALID_USERNAME: N_(
        "A user name has 3 to 64 lowercase letters, digits, dots, hyphens or underscores."
    ),
    Code.USERNAME_TAKEN: N_("This user name is already in use."),
    Code.PASSWORD_TOO_SHORT: N_("The password needs at least %(min)s characters."),
    Code.PASSWORD_BLANK: N_(
        "A password of only spaces is not allowed: use letters, digits or other signs too."
    ),
    Code.PASSWORD_UNCHANGED: N_(
        "The new password is the one you have now: choose another, so that one given to you "
        "stops working."
    ),
    Code.NATIONAL_ADMINS_ONLY: N_("Only administrators can cover every prison."),
    Code.PRISON_REQUIRED: N_("Choose at least one prison."),
    Code.SIGN_IN_FAILED: N_("The user name or the password is not right."),
    Code.SIGN_IN_LOCKED: N_("Too many failed attempts. Wait %(minutes)s minutes and try again."),
    Code.SESSION_ENDED: N_("Your session has ended. Sign in again."),
    Code.FORBIDDEN: N_("Your account cannot do this here."),
    Code.NOTHING_MATCHES: N_("No booking or visitor of this day matches %(query)s."),
    Code.NOT_THE_VISIT_DAY: N_("This visit is on %(day)s: the gate records it only that day."),
    Code.VISIT_NOT_OVER: N_("The visit time is not over yet: wait until it ends."),
    Code.CAME_TO_THE_GATE: N_("Someone of this booking came to the gate: it is not a no-show."),
    Code.SCREENED_AT_THE_GATE: N_(
        "%(name)s answered the health questions at the gate: someone of this booking came, "
        "so it is not a no-show."
    ),
    Code.VISIT_STOPPED_CLOSED: N_(
        "%(name)s may not come in: this visit time is closed (%(reason)s)."
    ),
    Code.VISIT_STOPPED_INMATE_SUSPENDED: N_(
        "%(name)s may not come in: visits to %(inmate)s are suspended."
    ),
    Code.VISIT_STOPPED_INMATE_NOT_ACTIVE: N_(
        "%(name)s may not come in: %(inmate)s can no longer be visited at this prison."
    ),
    Code.VISIT_STOPPED_BARRED: N_(
        "%(name)s may not come in: a visitor of this booking is barred from this prison, so "
        "this visit is stopped."
    ),
    Code.NOBODY_MAY_COME_IN: N_(
        "A health measure kept everyone of this booking from coming in: it is not a no-show."
    ),
    Code.INVALID_DATE_RANGE: N_(
        "The last day cannot be before the first, and a range is at most %(days)s days long."
    ),
    Code.ALREADY_RECORDED: N_(
        "%(name)s was already recorded at the gate. To change it, undo it first."
    ),
    Code.GATE_RECORD_CHANGED: N_(
        "What the gate recorded for %(name)s changed after this list was loaded, perhaps by "
        "another guard: nothing was undone. Look at the list again."
    ),
    Code.GATE_RECORDED: N_("The gate has already recorded this visit: it can no longer be moved."),
    Code.GATE_BOOKING_CANCELLED: N_(
        "The booking of %(name)s was cancelled after the gate recorded them: the gate's record "
        "stays with the cancelled booking (that day still counts as their visit), and nothing "
        "was undone."
    ),
    Code.DAY_IN_PAST: N_("This day has already passed."),
    Code.ALREADY_CLOSED: N_("This day or visit time is already closed."),
    Code.NO_VISITS_AT_TIME: N_("There is no visit time then on this day."),
    Code.INMATE_NOT_FOUND: N_("No inmate of this prison has this code."),
    Code.VISITOR_NOT_FOUND: N_(
        "Nobody with this document has booked a visit here: only a visitor known to this prison "
        "can be barred."
    ),
    Code.ALREADY_LIFTED: N_("This was already lifted."),
    Code.INMATE_ALREADY_SUSPENDED: N_(
        "Visits to this inmate are already suspended until %(until)s. To change its last day or "
        "reason, lift it on the Suspensions page and suspend visits again."
    ),
    Code.ALREADY_BARRED: N_(
        "This visitor is already barred from this prison until %(until)s. To change its last "
        "day or reason, lift it on the Suspensions page and bar them again."
    ),
    Code.DATE_TOO_FAR: N_("Choose a date at most %(years)s years ahead."),
    Code.OUT_OF_RANGE: N_("Write a whole number from %(min)s to %(max)s."),
    Code.VISIT_NOT_SHORTER: N_(
        "Visits here last at most %(longest)s minutes: a shorter visit must be fewer minutes "
        "than that."
    ),
    Code.INVALID_TIME: N_("Write the time as hours:minutes, for example 09:30."),
    Code.MEASURE_REQUIRED: N_("Choose at least one measure."),
    Code.ROSTER_TAKES_MANY_OUT: N_(
        "This file takes %(count)s of the %(active)s people who can be visited now out of "
        "visits, and cancels their visits to come. Nothing was imported. If that is right, "
        "tick the box below and upload the file again."
    ),
    Code.DATE_IN_FUTURE: N_("This date cannot be in the future."),
    Code.DATE_TOO_OLD: N_("Choose a date at most %(years)s years back."),
    Code.HEALTH_SUSPENDED: N_(
        "Visits to this person are paused for a health measure. They reopen when the health "
        "team lifts it: please look again in a few days."
    ),
    Code.HEALTH_NO_YOUNG_CHILDREN: N_(
        "%(name)s cannot come for now: a health measure keeps children under 5 away from this "
        "visit."
    ),
    Code.HEALTH_HIGH_RISK: N_(
        "%(name)s cannot come for now: a health measure keeps pregnant women and people with "
        "low defences away from this visit, to protect them."
    ),
    Code.MORE_ADULTS_THAN_VISITORS: N_(
        "The adults required cannot be more than the visitors allowed per booking."
    ),
    Code.ENDS_BEFORE_START: N_("The visit must end after it starts."),
    Code.LAST_DAY_BEFORE_FIRST: N_("The last day must be on or after the first day, %(first)s."),
    Code.SESSIONS_OVERLAP: N_(
        "This overlaps the visit time %(when)s on that weekday. Change one of them."
    ),
    Code.TOO_MANY_SEGMENTS: N_("This text takes more than %(max)s SMS. Please make it shorter."),
    Code.BROADCAST_REPEATED: N_(
        "This same message to the families of these days was already sent at %(at)s by "
        "%(by)s. To send it once more, tick the box below."
    ),
    Code.WRONG_PASSWORD: N_("This is not your current password."),
    Code.PASSWORDS_DIFFER: N_("The two new passwords are not the same."),
    Code.NO_INFECTIOUS_SINCE: N_(
        "This advisory has no date from which the case was infectious, so it has no contact "
        "list. To trace contacts, issue an advisory with that date."
    ),
    Code.NOT_FOUND: N_("This page does not exist."),
    Code.METHOD_NOT_ALLOWED: N_("This address does not take this kind of request."),
    Code.BODY_TOO_LARGE: N_("What was sent is too large."),
    Code.SERVER_ERROR: N_(
        "Something went wrong on our side. Please try again in a moment. If you were booking, "
        "look for your booking before booking again."
    ),
}


class Audience(StrEnum):
    """Who reads a refusal."""

    FAMILY = "family"  # booking or changing its own visit (the pages and the API)
    GATE = "gate"  # a guard checking visitors in at the gate
    STAFF = "staff"  # staff cancelling or moving a booking for a family (its staff page)
    API = "api"  # a program calling the JSON API (web.api), for whoever uses it


# The refusals a guard meets at the gate whose family wording does not fit a guard: the gate
# needs who may not come in now and why, to act on it and say it there (the family's words
# tell those booking who "cannot come for now", or answer a search by reference and phone
# that a guard never made).
GATE_MESSAGES: dict[Code, str] = {
    Code.HEALTH_NO_YOUNG_CHILDREN: N_(
        "%(name)s may not come in: a health measure keeps children under 5 away from this visit."
    ),
    Code.HEALTH_HIGH_RISK: N_(
        "%(name)s may not come in: a health measure keeps pregnant women and people with low "
        "defences away from this visit."
    ),
    Code.HEALTH_SUSPENDED: N_(
        "%(name)s may not come in: a health measure has paused visits to %(inmate)s."
    ),
    Code.VISITOR_SUSPENDED: N_("%(name)s may not come in: barred from visiting this prison."),
    Code.BOOKING_NOT_FOUND: N_("This booking is not on this prison's list."),
    # The family's "cancelled or already over" misleads on a past day's list the gate is
    # completing: the gate records only confirmed bookings (attended ones too).
    Code.BOOKING_NOT_ACTIVE: N_(
        "This booking is not confirmed (cancelled, nobody came, or waiting for the family's "
        "code): nothing was recorded. Look at the list again."
    ),
}

# The refusals of a move staff make for a family whose family wording speaks to the family
# ("the person you visit", "please ask the prison", "look again in a few days"): staff are
# the prison, and tell the family what is possible instead.
STAFF_MESSAGES: dict[Code, str] = {
    Code.VISITOR_SUSPENDED: N_("%(name)s is barred from visiting this prison on that day."),
    Code.INMATE_NOT_ACTIVE: N_(
        "The roster does not list this person as active at this prison: they cannot receive "
        "visits here."
    ),
    Code.HEALTH_SUSPENDED: N_(
        "A health measure pauses visits to this person on that day: no visit can be booked "
        "until health staff lift it."
    ),
}

# The staff's own words with a number in them, as :data:`COUNTED`.
STAFF_COUNTED: dict[Code, tuple[str, tuple[str, str]]] = {
    Code.WEEKLY_LIMIT_REACHED: (
        "limit",
        Np_(
            "The person visited already has %(num)s visit booked that week. Choose a day of "
            "another week.",
            "The person visited already has %(num)s visits booked that week. Choose a day of "
            "another week.",
        ),
    ),
}

# The API's own words where the family's name a page or a form the API has none of: a program
# asked for an address, or a booking by its reference and manage token (not by phone number).
API_MESSAGES: dict[Code, str] = {
    Code.NOT_FOUND: N_("This address of the API does not exist."),
    Code.BOOKING_NOT_FOUND: N_(
        "We could not find this booking: check its reference and its manage token."
    ),
}

_AUDIENCE_MESSAGES: dict[Audience, dict[Code, str]] = {
    Audience.GATE: GATE_MESSAGES,
    Audience.STAFF: STAFF_MESSAGES,
    Audience.API: API_MESSAGES,
}
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")

# Messages with a number in them, in the singular or plural as the number asks ("1 minuto",
# "5 minutos"): the code, the parameter that counts, and the two forms.
COUNTED: dict[Code, tuple[str, tuple[str, str]]] = {
    Code.WRONG_CODE: (
        "left",
        Np_(
            "That code is not right. Check the SMS and try again (%(num)s try left).",
            "That code is not right. Check the SMS and try again (%(num)s tries left).",
        ),
    ),
    Code.TOO_MANY_CODES: (
        "minutes",
        Np_(
            "We already sent several codes to this phone. Wait %(num)s minute and try again.",
            "We already sent several codes to this phone. Wait %(num)s minutes and try again.",
        ),
    ),
    Code.TOO_MANY_UNCONFIRMED: (
        "minutes",
        Np_(
            "Other bookings are still waiting for the code we sent by SMS. If one is yours, "
            "type that code first; if not, wait %(num)s minute and try again.",
            "Other bookings are still waiting for the code we sent by SMS. If one is yours, "
            "type that code first; if not, wait %(num)s minutes and try again.",
        ),
    ),
    Code.TOO_MANY_CODES_FROM_CLIENT: (
        "minutes",
        Np_(
            "Many codes were already asked for from this internet connection. Wait %(num)s "
            "minute and try again.",
            "Many codes were already asked for from this internet connection. Wait %(num)s "
            "minutes and try again.",
        ),
    ),
    Code.SIGN_IN_LOCKED: (
        "minutes",
        Np_(
            "Too many failed attempts. Wait %(num)s minute and try again.",
            "Too many failed attempts. Wait %(num)s minutes and try again.",
        ),
    ),
    Code.DATE_TOO_FAR: (
        "years",
        Np_(
            "Choose a date at most %(num)s year ahead.",
            "Choose a date at most %(num)s years ahead.",
        ),
    ),
    Code.TOO_MANY_ATTEMPTS: (
        "minutes",
        Np_(
            "Too many attempts. Wait %(num)s minute and try again.",
            "Too many attempts. Wait %(num)s minutes and try again.",
        ),
    ),
    Code.IDENTIFY_PAUSED: (
        "minutes",
        Np_(
            "Too many wrong tries were made with this code. Wait %(num)s minute, or write both "
            "the first surname and the birth date.",
            "Too many wrong tries were made with this code. Wait %(num)s minutes, or write both "
            "the first surname and the birth date.",
        ),
    ),
    Code.WEEKLY_LIMIT_REACHED: (
        "limit",
        Np_(
            "The person you visit already has %(num)s visit booked that week. "
            "Please choose another week.",
            "The person you visit already has %(num)s visits booked that week. "
            "Please choose another week.",
        ),
    ),
}
_AUDIENCE_COUNTED: dict[Audience, dict[Code, tuple[str, tuple[str, str]]]] = {
    Audience.STAFF: STAFF_COUNTED,
}

# A fuller message when a slot still has seats, just not enough for the whole party.
# An invalid date typed the way dates are written (31/02/2026): the day does not exist.
_NO_SUCH_DAY = N_("There is no such day in the calendar: check the day and the month.")
_NOT_ENOUGH_SEATS = Np_(
    "Only %(num)s place is left at this time. Remove visitors or choose another time.",
    "Only %(num)s places are left at this time. Remove visitors or choose another time.",
)


@dataclasses.dataclass(frozen=True)
class Problem:
    code: Code
    field: str | None = None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class Rejected(Exception):
    """The domain refused a request; ``problems`` lists every reason found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(", ".join(p.code for p in self.problems))

    @property
    def codes(self) -> set[Code]:
        return {p.code for p in self.problems}


def reject_if(problems: list[Problem]) -> None:
    if problems:
        raise Rejected(problems)


def message(problem: Problem, audience: Audience | str = Audience.FAMILY) -> str:
    """The problem in the current locale's words (dates in the locale's form too), for the
    ``audience`` reading it: its own words where it has them (and the problem carries what
    they name), else the family's."""
    params = {
        key: format_day_with_year(value) if isinstance(value, date) else value
        for key, value in problem.params.items()
    }
    countries = params.get("countries")
    if problem.code is Code.PHONE_COUNTRY_NOT_ALLOWED and isinstance(countries, tuple | list):
        params["countries"] = format_countries(countries)  # in the reader's language
    if problem.code is Code.INVALID_DATE and params.get("no_such_day"):
        return gettext(_NO_SUCH_DAY)
    audience = Audience(audience)
    own = _AUDIENCE_MESSAGES.get(audience, {}).get(problem.code)
    if own is not None and set(_PLACEHOLDER.findall(own)) <= params.keys():
        return gettext(own, params or None)
    if problem.code is Code.SLOT_FULL and params.get("seats_left", 0) > 0:
        return ngettext(*_NOT_ENOUGH_SEATS, params["seats_left"])
    for counted in (_AUDIENCE_COUNTED.get(audience, {}), COUNTED):
        if problem.code in counted and isinstance(params.get(counted[problem.code][0]), int):
            count, forms = counted[problem.code]
            return ngettext(*forms, params[count])
    return gettext(MESSAGES[problem.code], params or None)


def as_dicts(problems: Iterable[Problem]) -> list[dict[str, Any]]:
    """The wire shape: ``{code, field, message}``, plus ``detail`` where a program's mistake
    has a technical explanation (in English: it is for the program's developers). Only the
    API answers in it: its messages are the API's (:data:`API_MESSAGES`), else the family's."""
    dicts = []
    for p in problems:
        entry = {"code": p.code.value, "field": p.field, "message": message(p, Audience.API)}
        if "detail" in p.params:
            entry["detail"] = str(p.params["detail"])
        dicts.append(entry)
    return dicts
