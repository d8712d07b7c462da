"""How the domain's enumerations read on a page, in the family's language."""

from __future__ import annotations

from enum import StrEnum

from notifications.outbox import MessageStatus
from visits.booking import BookingStatus
from visits.booking_request import Relationship
from visits.gate import AgeGroup, GateStatus, TurnAwayReason
from visits.health import AdvisoryKind, Scope
from visits.i18n import N_, gettext
from visits.inmate import InmateStatus
from visits.rules import Sex, VisitorGroup
from visits.staff import StaffRole
from visits.visitor import DocumentType

# Keyed by enumeration and member: members of two enumerations may share a value (the staff
# role "health" and the turn-away reason "health"), and would otherwise share one label.
_LABELLED: tuple[tuple[StrEnum, str], ...] = (
    (DocumentType.DNI, N_("DNI")),
    (DocumentType.CE, N_("Foreigner's card (carné de extranjería)")),
    (DocumentType.PASSPORT, N_("Passport")),
    (Relationship.PARTNER, N_("Spouse or partner")),
    (Relationship.PARENT, N_("Mother or father")),
    (Relationship.CHILD, N_("Daughter or son")),
    (Relationship.SIBLING, N_("Sister or brother")),
    (Relationship.GRANDPARENT, N_("Grandmother or grandfather")),
    (Relationship.GRANDCHILD, N_("Granddaughter or grandson")),
    (Relationship.OTHER_RELATIVE, N_("Other relative")),
    (Relationship.FRIEND, N_("Friend")),
    (Sex.FEMALE, N_("Woman")),
    (Sex.MALE, N_("Man")),
    (VisitorGroup.ANYONE, N_("Open to all visitors")),
    (VisitorGroup.WOMEN, N_("Day for women visitors")),
    (VisitorGroup.MEN, N_("Day for men visitors")),
    (InmateStatus.ACTIVE, N_("On the roster")),
    (InmateStatus.TRANSFERRED, N_("Transferred to another prison")),
    (InmateStatus.RELEASED, N_("Released")),
    (InmateStatus.INACTIVE, N_("Inactive or left out of the roster")),
    (BookingStatus.HELD, N_("Waiting for confirmation")),
    (BookingStatus.CONFIRMED, N_("Confirmed")),
    (BookingStatus.ATTENDED, N_("Attended")),
    (BookingStatus.NO_SHOW, N_("Did not come")),
    (BookingStatus.CANCELLED, N_("Cancelled")),
    (StaffRole.GUARD, N_("Guard")),
    (StaffRole.HEALTH, N_("Health staff")),
    (StaffRole.ADMIN, N_("Administrator")),
    (AgeGroup.ADULT, N_("Adult")),
    (AgeGroup.MINOR, N_("Minor")),
    (AgeGroup.UNDER_FIVE, N_("Under 5")),
    (GateStatus.ARRIVED, N_("Came in")),
    (GateStatus.TURNED_AWAY, N_("Not let in")),
    (TurnAwayReason.NO_DOCUMENT, N_("No identity document")),
    (TurnAwayReason.WRONG_DOCUMENT, N_("Document does not match the booking")),
    (TurnAwayReason.LATE, N_("Came too late")),
    (TurnAwayReason.PROHIBITED_ITEM, N_("Carried a prohibited item")),
    (TurnAwayReason.HEALTH, N_("Health measure")),
    (TurnAwayReason.BEHAVIOUR, N_("Behaviour")),
    (TurnAwayReason.OTHER, N_("Other")),
    (Scope.PRISON, N_("The whole prison")),
    (Scope.WING, N_("One wing")),
    (Scope.INMATE, N_("One inmate")),
    (AdvisoryKind.TB_SUSCEPTIBLE, N_("Pulmonary TB, drug-susceptible")),
    (AdvisoryKind.TB_RESISTANT, N_("Pulmonary TB, drug-resistant")),
    (AdvisoryKind.TB_UNKNOWN, N_("Pulmonary TB, resistance not known yet")),
    (AdvisoryKind.RESPIRATORY_OUTBREAK, N_("Respiratory outbreak")),
)
LABELS: dict[tuple[type[StrEnum], StrEnum], str] = {(type(m), m): text for m, text in _LABELLED}

# An SMS's status, for staff (apart: "cancelled" is also a booking's status, said otherwise).
MESSAGE_STATUSES = {
    MessageStatus.PENDING: N_("Waiting to be sent"),
    MessageStatus.SENDING: N_("Being sent"),
    MessageStatus.SENT: N_("Sent"),
    MessageStatus.DELIVERED: N_("Delivered"),
    MessageStatus.UNDELIVERED: N_("Not delivered"),
    MessageStatus.FAILED: N_("Failed"),
    MessageStatus.CANCELLED: N_("Not sent (cancelled)"),
}

# What each SMS was (the outbox's ``kind``), for staff.
MESSAGE_KINDS = {
    "code": N_("Verification code"),
    "confirmed": N_("Confirmation"),
    "reminder": N_("Reminder"),
    "cancelled": N_("Cancellation"),
    "closed": N_("Cancellation: visits closed"),
    "inmate_suspended": N_("Cancellation: visits to the person suspended"),
    "inmate_not_active": N_("Cancellation: the person can no longer be visited here"),
    "visitor_barred": N_("Cancellation: a visitor barred"),
    "broadcast": N_("Message to the families of a day"),
    "health_suspended": N_("Cancellation: a health measure"),
    "health_measure": N_("A health measure applies"),
    "health_lifted": N_("A health measure no longer applies"),
    "health_reopened": N_("Visits can be booked again after a health measure"),
    "screening_advice": N_("Advice: a free TB check"),
    "contact_tier1": N_("Health notice to a contact: get evaluated"),
    "contact_tier2": N_("Health notice to a contact: watch for symptoms"),
    "moved": N_("Change of day or time"),
    "attending": N_("Answer: coming"),
    "help": N_("Answer: help"),
    "no_visit": N_("Answer: no visit found"),
    "several_visits": N_("Answer: several visits"),
    "opted_out": N_("Answer: messages stopped"),
    "opted_in": N_("Answer: messages resumed"),
}


# What each audited change was, for the booking's history on staff pages.
AUDIT_ACTIONS = {
    "booking.created": N_("Booked"),
    "booking.held": N_("Booked, waiting for the SMS code"),
    "booking.confirmed": N_("Confirmed with the SMS code"),
    "booking.code_rejected": N_("A wrong SMS code was typed"),
    "booking.hold_expired": N_("Released: the code was not typed in time"),
    "booking.cancelled": N_("Cancelled"),
    "booking.cancelled_closed": N_("Cancelled: the prison closed this visit time"),
    "booking.cancelled_inmate_suspended": N_("Cancelled: visits to this person are suspended"),
    "booking.cancelled_inmate_not_active": N_(
        "Cancelled: the roster no longer has this person as active here"
    ),
    "booking.cancelled_visitor_barred": N_("Cancelled: a visitor may not visit for now"),
    "booking.cancelled_health_suspended": N_("Cancelled: a health measure pauses visits"),
    "booking.moved": N_("Moved to another time"),
    "booking.family_confirmed": N_("The family answered that it is coming"),
    "booking.no_show": N_("Nobody came"),
    "booking.no_show_undone": N_("No-show undone"),
    "visitor.arrived": N_("A visitor came in"),
    "visitor.turned_away": N_("A visitor was not let in"),
    "visitor.gate_undone": N_("A gate record was undone"),
    "visitor.screened": N_("A visitor answered the health questions at the gate"),
    "advisory.issued": N_("Issued"),
    "advisory.reissued": N_("Measures changed or applied again"),
    "advisory.lifted": N_("Lifted"),
    "advisory.dated": N_("Infectious-since date given or corrected"),
    "advisory.applied_to_moved": N_("Applied to inmates the roster moved into its wing"),
    "advisory.applied_to_undone": N_("Applied to a check-in undone at the gate"),
    "advisory.contacts_downloaded": N_("Contact list downloaded (CSV)"),
    "advisory.contacts_viewed": N_("Contact list viewed"),
    "advisory.contacts_notified": N_("Contacts notified"),
}


# Who made a change, when it was not a staff member (they are shown by their user name).
ACTORS = {
    "family": N_("the family, on the web"),
    "api": N_("the family, through an app"),
    "sms": N_("the family, by SMS"),
    "cli": N_("the command line"),
    "demo": N_("the demo"),
    "system": N_("the system"),
}


# The weekdays of visits.schedule.WEEKDAYS (0 = Monday), for staff pages.
WEEKDAY_NAMES = (
    N_("Monday"),
    N_("Tuesday"),
    N_("Wednesday"),
    N_("Thursday"),
    N_("Friday"),
    N_("Saturday"),
    N_("Sunday"),
)

# The booking rules of visits.prison_config.RulesConfig, as the schedule page names them.
RULE_NAMES = {
    "booking_opens_days": N_("Days ahead that booking opens"),
    "booking_closes_hours": N_("Hours before the visit that booking closes"),
    "max_visitors": N_("Visitors per booking, at most"),
    "min_adults": N_("Adults per booking, at least"),
    "adult_age": N_("Age from which a visitor is an adult"),
    "visits_per_inmate_per_week": N_("Visits per inmate per week, at most"),
}


def weekday_name(number: int) -> str:
    return gettext(WEEKDAY_NAMES[number])


def rule_name(name: str) -> str:
    return gettext(RULE_NAMES[name])


def actor_name(actor: str) -> str:
    if actor.startswith("staff:"):
        return actor.removeprefix("staff:")
    return gettext(ACTORS[actor]) if actor in ACTORS else actor


def turn_away_reason(value: str) -> str:
    known = {r.value: r for r in TurnAwayReason}
    return label(known[value]) if value in known else value


def audit_action(action: str) -> str:
    return gettext(AUDIT_ACTIONS[action]) if action in AUDIT_ACTIONS else action


# Why a family's booking was cancelled (:func:`visits.booking.cancelled_why`), said to the
# family on its booking page: the cause in general words, never staff's reason.
CANCELLED_WHY = {
    "closed": N_("The prison has no visits at that time. We are sorry."),
    "inmate_suspended": N_(
        "Visits to the person you visit are suspended for now. Please ask the prison."
    ),
    "inmate_not_active": N_(
        "The person you visit can no longer receive visits at this prison. Please ask the prison."
    ),
    "visitor_barred": N_(
        "Someone in this booking may not visit this prison for now. You can book without them."
    ),
    # Said of the person visited: a measure may cover one wing or one person only, and the
    # prison's other visits go on (one for the whole prison pauses theirs too).
    "health_suspended": N_(
        "A health measure pauses visits to the person you visit for now. We are sorry. You can "
        "book again when visits reopen."
    ),
    "family": N_("Cancelled at your request."),
    "hold_expired": N_("The code we sent by SMS was not entered in time."),
}


def cancelled_why(why: str) -> str:
    return gettext(CANCELLED_WHY[why]) if why in CANCELLED_WHY else ""


# Why bookings were cancelled, as the staff reports count them (see
# :data:`visits.reports.CANCEL_CAUSES`; None: their history has no record of why).
CANCEL_CAUSES = {
    "family": N_("By the family"),
    "closed": N_("Day or visit time closed"),
    "inmate_suspended": N_("Visits to the inmate suspended"),
    "inmate_not_active": N_("Inmate no longer active here"),
    "visitor_barred": N_("A visitor may not visit"),
    "health_suspended": N_("Health measure"),
    None: N_("No record of why"),
}


def cancel_cause(why: str | None) -> str:
    return gettext(CANCEL_CAUSES[why])


# The family forms' fields, as their labels read: the error summary names the field each
# problem is about ("Visitor 2 · Birth date: ..."), since "Fill this in" five times says little.
FIELD_LABELS = {
    "inmate_code": N_("Code of the person you visit"),
    "surname": N_("Their first surname"),
    "birth_date": N_("Their birth date"),
    "contact_phone": N_("Mobile phone"),
    "reference": N_("Booking reference"),
    "phone": N_("Mobile phone given in the booking"),
}
VISITOR_FIELD_LABELS = {
    "first_names": N_("First names"),
    "last_names": N_("Surnames"),
    "doc_type": N_("Identity document"),
    "doc_number": N_("Document number"),
    "birth_date": N_("Birth date"),
    "relationship": N_("Relationship to the person visited"),
    "sex": N_("Sex"),
}


def field_label(field: str | None) -> str | None:
    """How a form field of the family pages reads, or ``None`` for any other."""
    if field in FIELD_LABELS:
        return gettext(FIELD_LABELS[field])
    parts = (field or "").split(".")
    if (
        len(parts) == 3
        and parts[0] == "visitors"
        and parts[1].isdigit()
        and parts[2] in VISITOR_FIELD_LABELS
    ):
        visitor = gettext("Visitor %(n)s", {"n": int(parts[1]) + 1})
        return f"{visitor} · {gettext(VISITOR_FIELD_LABELS[parts[2]])}"
    return None


def label(value: StrEnum) -> str:
    return gettext(LABELS[type(value), value])


def message_status(status: MessageStatus) -> str:
    return gettext(MESSAGE_STATUSES[status])


def message_kind(kind: str) -> str:
    return gettext(MESSAGE_KINDS[kind]) if kind in MESSAGE_KINDS else kind


# Why a message was held back or what became of it, as the outbox and the dispatcher record
# it (machine words, kept as they are in the database); staff read them in their language.
MESSAGE_REASONS = {
    "booking cancelled": N_("the booking was cancelled"),
    "booking moved": N_("the booking was moved"),
    "hold expired": N_("the booking was not confirmed in time"),
    "replaced by a new code": N_("replaced by a new code"),
    "no longer wanted": N_("no longer needed"),
    "too late to be useful": N_("too late to be useful"),
    "opted_out": N_("the number asked for no more messages"),
    "unreachable": N_("the number cannot receive messages"),
    "gave up: no answer from the provider": N_("given up: the provider did not answer"),
}
# A reason with the provider's code after it ("retry: 20429").
MESSAGE_REASON_PREFIXES = {
    "retry": N_("will try again"),
    "refused": N_("refused by the provider"),
    "gave up": N_("given up"),
    "unknown": N_("outcome unknown, to be checked with the provider"),
}


def message_reason(reason: str | None) -> str:
    """A recorded reason in the reader's language; the provider's own codes and words stay."""
    if not reason:
        return ""
    if reason in MESSAGE_REASONS:
        return gettext(MESSAGE_REASONS[reason])
    prefix, sep, rest = reason.partition(": ")
    if sep and prefix in MESSAGE_REASON_PREFIXES:
        return f"{gettext(MESSAGE_REASON_PREFIXES[prefix])}: {rest}"
    return reason


def message_detail(status: MessageStatus, code: str | None, why: str | None) -> str:
    """Why a message stands where it is, as staff read it: for one never sent, the reason;
    for one the provider refused or could not deliver, its code and words; else nothing."""
    if status is MessageStatus.CANCELLED and code:
        reason = gettext("Reason")
        return f"{reason}: {message_reason(why or code)}"
    if code:
        error = gettext("Error")
        return f"{error}: {code}" + (f" {message_reason(why)}" if why else "")
    return ""
