"""Bookings: taking seats, cancelling, moving, and every rule that guards them.

Invariant 1 of the design lives here. Seats move only through one conditional statement
(``seats_taken + n <= capacity``), so capacity holds under any concurrency; the rules that span
rows (visits per inmate per week, one visit per visitor per day, closures, suspensions) are
checked after locking what they depend on, so two changes that could break a rule together take
turns; and a CHECK constraint on the slot plus a partial unique index on the visitor's day are
the database's own backstops.

Every writer takes its locks in one order, so none waits on another in a
circle: the inmate, the visitors by id, the visit day (:func:`visits.schedule.lock_day`), the
bookings by id, the slots by id. Closing a day, suspending an inmate or a visitor and issuing
a health advisory (after locking the advisory itself) take the first of these they need, then
the bookings they cancel or re-evaluate.

A booking starts ``held`` until the family types the code sent to its phone
(:mod:`visits.verification`), or ``confirmed`` when the phone is already verified. Held bookings
already take seats and count toward every limit; an expired hold gives them back. Every change
queues what the family is told in the same transaction (:mod:`visits.sms`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    bindparam,
    column,
    exists,
    false,
    func,
    or_,
    orm,
    select,
    table,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from visits import audit, reference, screening, sms, throttle, verification
from visits.advisories import for_booking, in_force, measures_on
from visits.base import Base, UTCDateTime, str_enum, utcnow
from visits.booking_request import (
    PHONE_COUNTRIES,
    BookingRequest,
    Relationship,
    ValidBooking,
    VisitorDraft,
    parse_phone,
    parse_slot_id,
    read_booking,
)
from visits.db import lock_rows, require_write_lock
from visits.health import (
    UNDER_FIVE,
    Advisory,
    HighRisk,
    Measures,
    high_risk,
    kept_away,
    measures_for,
    timeline,
)
from visits.inmate import (
    Inmate,
    InmateStatus,
    inmate_problems,
    suspended_until,
    suspension_ends,
)
from visits.prison import Prison
from visits.problems import Code, Problem, Rejected, reject_if
from visits.rules import (
    PartyMember,
    Sex,
    VisitorGroup,
    age_on,
    iso_week_bounds,
    last_bookable_day,
    party_problems,
)
from visits.schedule import (
    Closure,
    Slot,
    closure_for,
    closures_between,
    lock_day,
    window_refusal,
)
from visits.screening import QUESTIONS, Answers
from visits.sms import SmsPolicy
from visits.throttle import ThrottlePolicy
from visits.visitor import (
    DocumentType,
    Visitor,
    claim_visitors,
    find_visitors,
    remember_details,
    suspended_on,
    suspensions_from,
)

MAX_SUBMISSION_KEY_LENGTH = 64


class BookingStatus(StrEnum):
    HELD = "held"
    CONFIRMED = "confirmed"
    ATTENDED = "attended"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


class CancelCause(StrEnum):
    """Why the prison, not the family, cancelled a booking (each has its own SMS text)."""

    CLOSED = "closed"  # the day or visit time was closed
    INMATE_SUSPENDED = "inmate_suspended"  # visits to the person visited were suspended
    # The roster no longer has the person visited as active here (released, transferred,
    # inactive or left out of it): the family is told only that they cannot be visited here.
    INMATE_NOT_ACTIVE = "inmate_not_active"
    VISITOR_BARRED = "visitor_barred"  # someone in the booking may not visit for now
    HEALTH_SUSPENDED = "health_suspended"  # a health measure pauses visits


HOLDS_SEATS = (BookingStatus.HELD, BookingStatus.CONFIRMED)
# What stopping visits (a closure, a suspension, a health pause) looks for: the bookings holding
# seats, and those someone of which came in at the gate already (:mod:`visits.stopping`).
STOPPABLE = (*HOLDS_SEATS, BookingStatus.ATTENDED)
COUNTS_TOWARD_LIMITS = (BookingStatus.HELD, BookingStatus.CONFIRMED, BookingStatus.ATTENDED)


class Booking(Base):
    __tablename__ = "booking"
    __table_args__ = (
        CheckConstraint("party_size >= 1", name="party_not_empty"),
        Index("ix_booking_inmate_status", "inmate_id", "status"),
        # The hold-expiry job's question every 30 s, asked with the write lock held.
        Index("ix_booking_status_hold_expires_at", "status", "hold_expires_at"),
        # The daily purge asks which phones bookings still hold (visits.retention).
        Index("ix_booking_contact_phone", "contact_phone"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(8), unique=True)
    prison_id: Mapped[int] = mapped_column(ForeignKey("prison.id"))
    slot_id: Mapped[int] = mapped_column(ForeignKey("slot.id"), index=True)
    inmate_id: Mapped[int] = mapped_column(ForeignKey("inmate.id"))
    status: Mapped[BookingStatus] = mapped_column(str_enum(BookingStatus))
    party_size: Mapped[int]
    contact_phone: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    # Sent again by a double click or a retrying client: the same key books once.
    submission_key: Mapped[str | None] = mapped_column(
        String(MAX_SUBMISSION_KEY_LENGTH), unique=True
    )
    # What was submitted with that key: the same key with other details is refused, never
    # answered with this booking.
    submission_hash: Mapped[str | None] = mapped_column(String(64))
    hold_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the family answered a reminder "1" (coming).
    family_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    prison: Mapped[Prison] = orm.relationship(lazy="joined")
    slot: Mapped[Slot] = orm.relationship(lazy="joined")
    inmate: Mapped[Inmate] = orm.relationship(lazy="joined")
    visitors: Mapped[list[BookingVisitor]] = orm.relationship(
        back_populates="booking",
        order_by="BookingVisitor.position",
        cascade="all, delete-orphan",
        lazy="selectin",
    )

    @property
    def display_reference(self) -> str:
        return reference.display(self.reference)

    @property
    def is_active(self) -> bool:
        return self.status in HOLDS_SEATS

    def can_change(self, now: datetime) -> bool:
        return self.is_active and self.slot.starts_at > now


class BookingVisitor(Base):
    """A visitor on a booking, with the details as given for that booking."""

    __tablename__ = "booking_visitor"
    __table_args__ = (
        UniqueConstraint("booking_id", "visitor_id"),
        # The retention purge walks visits from the oldest day (visits.retention).
        Index("ix_booking_visitor_visit_date", "visit_date"),
        # Whether a visitor has any visit left, and the check of every visitor deleted.
        Index("ix_booking_visitor_visitor_id", "visitor_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("booking.id", ondelete="CASCADE"))
    visitor_id: Mapped[int] = mapped_column(ForeignKey("visitor.id"))
    position: Mapped[int]
    first_names: Mapped[str] = mapped_column(String(100))
    last_names: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[date] = mapped_column(Date)
    relationship: Mapped[Relationship] = mapped_column(str_enum(Relationship))
    sex: Mapped[Sex | None] = mapped_column(str_enum(Sex))
    # The slot's day: the one-visit-a-day index below uses it.
    visit_date: Mapped[date] = mapped_column(Date)
    # Whether this visit takes the visitor's day (one visit a day): while the booking is not
    # cancelled, and after, when the gate saw the visitor (see :func:`cancel_booking`).
    active: Mapped[bool] = mapped_column(default=True)
    # The family answered pregnant or low defences (visits.screening): kept away by a health
    # measure against high-risk visitors, and a close contact in exposure tracing.
    high_risk: Mapped[bool] = mapped_column(default=False, server_default=false())

    booking: Mapped[Booking] = orm.relationship(back_populates="visitors")
    visitor: Mapped[Visitor] = orm.relationship(lazy="joined")

    @property
    def full_name(self) -> str:
        return f"{self.first_names} {self.last_names}"


# The database's own guard for "one booking per visitor per day", and the index that the
# per-day check reads. SQLite uses a partial index only for a query that repeats its condition
# word for word, and SQLAlchemy writes ``active = 1`` there (PostgreSQL reads ``active``).
Index(
    "uq_booking_visitor_one_visit_a_day",
    BookingVisitor.visitor_id,
    BookingVisitor.visit_date,
    unique=True,
    sqlite_where=text("active = 1"),
    postgresql_where=text("active"),
)


@dataclass(frozen=True)
class Attendee:
    """One person of a party, as the cross-row rules need them."""

    member: PartyMember
    name: str | None  # None: the names typed are not valid yet
    visitor_id: int | None  # None: a person never seen before (or no valid document yet)
    # Pregnant or low defences, as the family answered (None: an answer is not valid yet).
    high_risk: bool | None = False


@dataclass(frozen=True)
class Booked:
    booking: Booking
    manage_token: str
    replayed: bool = False
    # The health measures read while booking (None for a replay: read them again).
    measures: Measures | None = None


@dataclass(frozen=True)
class Checked:
    """A request that passed every rule just now, for the family to review before confirming."""

    slot: Slot
    booking: ValidBooking


# --- Seats -----------------------------------------------------------------------------------


# Built once, not on every call, as are the booking's other statements below: building one
# costs more than running it. (A bind parameter may not be named after a column it sets.)
_TAKE_SEATS = (
    update(Slot)
    .where(Slot.id == bindparam("slot_id"), Slot.seats_taken + bindparam("seats") <= Slot.capacity)
    .values(seats_taken=Slot.seats_taken + bindparam("seats"))
    .execution_options(synchronize_session=False)
)


def take_seats(session: Session, slot_id: int, seats: int) -> bool:
    """Take ``seats`` if they are free, atomically. True iff they were taken."""
    taken = session.execute(_TAKE_SEATS, {"slot_id": slot_id, "seats": seats}).rowcount
    return taken == 1


def release_seats(session: Session, slot_id: int, seats: int) -> None:
    released = session.execute(
        update(Slot)
        .where(Slot.id == slot_id, Slot.seats_taken >= seats)
        .values(seats_taken=Slot.seats_taken - seats)
        .execution_options(synchronize_session=False)
    ).rowcount
    if released != 1:
        raise RuntimeError(f"slot {slot_id} holds fewer than the {seats} seats being returned")


# --- Rules -----------------------------------------------------------------------------------


def slot_in_prison(session: Session, prison: Prison, raw_slot_id: str | int) -> Slot | None:
    """The slot a family named, if it exists, belongs to this prison and is still offered
    (else nothing: a slot of another prison, or one withdrawn, is simply unknown here)."""
    slot_id = parse_slot_id(raw_slot_id)
    if slot_id is None:
        return None
    slot = session.get(Slot, slot_id, populate_existing=True)
    if slot is None or slot.prison_id != prison.id or slot.withdrawn_at is not None:
        return None
    return slot


def slot_in_use() -> ColumnElement[bool]:
    """Whether a :class:`Slot` is still a visit time that happens: offered, or withdrawn from
    the schedule but still holding a booking that is not cancelled (held, confirmed, attended
    or no-show), which stays for it. The gate lists such a time like any other, and a closure
    can close it on its own; one whose bookings were all cancelled is gone from both."""
    kept = exists().where(Booking.slot_id == Slot.id, Booking.status != BookingStatus.CANCELLED)
    return or_(Slot.withdrawn_at.is_(None), kept)


# The rules that span rows read what they need first (the "facts" below, for one day or for
# several), then decide each visit time from those alone: booking, checking and moving read
# them for the day of the one time asked for, and the move's offers (:func:`move_targets`)
# read them once for every day they could go to, so that one definition of each rule decides
# both and the offers cost the same few queries however many times there are.


@dataclass(frozen=True)
class InmateFacts:
    """What the rules of a visit time read of the database about visits to one inmate from a
    first day to a last (:func:`read_inmate_facts`)."""

    suspensions: list[date]  # the last days of their suspensions not over by the first day
    closures: list[Closure]  # the prison's closures of those days
    weekly: dict[date, int]  # Monday of each ISO week over those days → their visits that week


def read_inmate_facts(
    session: Session,
    prison: Prison,
    inmate: Inmate,
    first: date,
    last: date,
    exclude_booking: int | None = None,
) -> InmateFacts:
    """Read once what :func:`slot_problems` needs for any visit time from ``first`` to
    ``last``, the booking ``exclude_booking`` left out of the inmate's visits (three
    queries)."""
    return InmateFacts(
        suspensions=suspension_ends(session, inmate, first),
        closures=closures_between(session, prison.id, first, last),
        weekly=visits_by_week(session, inmate.id, first, last, exclude_booking),
    )


@dataclass(frozen=True)
class PartyFacts:
    """What the rules about who comes read of the database about some visitors from a first
    day to a last (:func:`read_party_facts`)."""

    # (visitor id, day) → whether the gate saw them that day, for each day already theirs.
    booked: dict[tuple[int, date], bool]
    # (visitor id, last day) of their suspensions here not over by the first day.
    suspensions: list[tuple[int, date]]


def read_party_facts(
    session: Session,
    prison_id: int,
    visitor_ids: Sequence[int],
    first: date,
    last: date,
    exclude_booking: int | None = None,
) -> PartyFacts:
    """Read once what :func:`party_rule_problems` needs of these visitors for any visit time
    from ``first`` to ``last``, the booking ``exclude_booking`` left out (two queries, none
    for a party of people never seen before)."""
    return PartyFacts(
        booked=_visitors_booked_between(session, visitor_ids, first, last, exclude_booking),
        suspensions=suspensions_from(session, prison_id, visitor_ids, first),
    )


def slot_problems(
    session: Session,
    prison: Prison,
    inmate: Inmate,
    slot: Slot,
    party_size: int,
    now: datetime,
    *,
    exclude_booking: int | None = None,
    measures: Measures | None = None,
) -> list[Problem]:
    """Whether this slot can take a party of this size for this inmate now: the inmate's
    status, closures, the booking window, seats, and the inmate's visits that week. None of it
    depends on who the visitors are, so it is reported even while their details are wrong.
    ``measures``: the health measures for this visit, when the caller already read them."""
    day = slot.local_date
    facts = read_inmate_facts(session, prison, inmate, day, day, exclude_booking)
    if measures is None:
        measures = measures_on(session, prison.id, inmate.wing_id, inmate.id, day)
    return _slot_refusals(prison, inmate, slot, party_size, now, facts, measures)


def _slot_refusals(
    prison: Prison,
    inmate: Inmate,
    slot: Slot,
    party_size: int,
    now: datetime,
    facts: InmateFacts,
    measures: Measures,
) -> list[Problem]:
    """:func:`slot_problems` decided from facts read beforehand (for that day or more)."""
    problems = inmate_problems(inmate, slot.local_date, facts.suspensions)
    closure = closure_for(facts.closures, slot, prison.tz)
    if closure is not None:
        problems.append(Problem(Code.SLOT_CLOSED, "slot_id", {"reason": closure.reason}))
    if measures.suspended:
        problems.append(Problem(Code.HEALTH_SUSPENDED, "slot_id"))
    window = window_refusal(prison, slot, now)
    if window is not None:
        problems.append(window)
    if slot.seats_left < party_size:
        problems.append(Problem(Code.SLOT_FULL, "slot_id", {"seats_left": slot.seats_left}))
    weekly = facts.weekly.get(iso_week_bounds(slot.local_date)[0], 0)
    if weekly >= prison.visits_per_inmate_per_week:
        limit = prison.visits_per_inmate_per_week
        problems.append(Problem(Code.WEEKLY_LIMIT_REACHED, "slot_id", {"limit": limit}))
    return problems


_VISITS_BY_DAY = (
    select(Slot.local_date, func.count(Booking.id))
    .select_from(Booking)
    .join(Slot, Booking.slot_id == Slot.id)
    .where(
        Booking.inmate_id == bindparam("inmate_id"),
        Booking.status.in_(COUNTS_TOWARD_LIMITS),
        Slot.local_date >= bindparam("monday"),
        Slot.local_date <= bindparam("sunday"),
    )
    .group_by(Slot.local_date)
)
_VISITS_BY_DAY_BUT_ONE = _VISITS_BY_DAY.where(Booking.id != bindparam("excluded"))


def visits_by_week(
    session: Session, inmate_id: int, first: date, last: date, exclude: int | None = None
) -> dict[date, int]:
    """The person's visits the weekly limit counts (held, confirmed or attended:
    :data:`COUNTS_TOWARD_LIMITS`; a hold counts until it is released, as it holds its places)
    in each ISO week from the one holding ``first`` to the one holding ``last`` (whole weeks:
    a visit earlier in this week counts too), by the week's Monday, the booking ``exclude``
    left out; weeks without any are left out. The one definition of the rule, which the
    booking's check (:func:`read_inmate_facts`) and the slots page's pauses (:func:`outlook`)
    share, so the page never offers a week the booking would refuse, nor hides one it would
    take. One query for all the weeks, grouped by day (the two databases share no ISO-week
    function), the days then added up per week here."""
    monday, sunday = iso_week_bounds(first)[0], iso_week_bounds(last)[1]
    query = _VISITS_BY_DAY if exclude is None else _VISITS_BY_DAY_BUT_ONE
    wanted = {"inmate_id": inmate_id, "monday": monday, "sunday": sunday, "excluded": exclude}
    weeks: dict[date, int] = {}
    for day, count in session.execute(query, wanted):
        week = iso_week_bounds(day)[0]
        weeks[week] = weeks.get(week, 0) + count
    return weeks


@dataclass(frozen=True)
class Pause:
    """Why no visit to an inmate can be booked on a day, at any of its times: the refusals of
    :func:`slot_problems` that depend on the person and the day (or its week) alone. Hashable:
    the slots page caches its days per set of pauses, which name no one."""

    until: date | None = None  # visits to the person are suspended until this day (included)
    health: bool = False  # a health measure suspends visits to the person
    inactive: bool = False  # no longer active here (released, transferred, off the roster)
    # The person already has the prison's weekly limit of visits (this many) booked in the
    # day's ISO week: the booking would refuse it (``weekly_limit_reached``), and says this.
    week_full: int | None = None


@dataclass(frozen=True)
class Outlook:
    """What applies to visits to an inmate over some days, as the slots page tells it."""

    suspended_until: date | None  # the suspension covering the first day: its last day
    measures: list[tuple[date, Measures]]  # the health measures, as they change
    paused: dict[date, Pause]  # the days every visit is refused, and why (for most: none)


def outlook(session: Session, prison: Prison, inmate: Inmate, first: date, last: date) -> Outlook:
    """The suspension, the health measures (:func:`visits.health.timeline`) and the days
    visits are paused from ``first`` to ``last``, in three queries. A suspension has no start:
    it covers every day up to its last, so the one covering ``first`` is the only one to read.

    A week in which the person already has the prison's weekly limit of visits booked is
    paused too: the booking would refuse every time in it, and a family that chose one would
    learn it only after filling in the form. Its visits are counted in one grouped query for
    the whole window (:func:`visits_by_week`), by the definition the booking's check uses.
    Here rather than in :mod:`visits.inmate` (where it was before it read bookings): this
    module imports that one, and keeps :class:`Pause` beside :func:`slot_problems`, whose
    refusals it mirrors."""
    until = suspended_until(session, inmate, first)
    advisories = in_force(session, inmate.prison_id, last)
    booked = visits_by_week(session, inmate.id, first, last)
    limit = prison.visits_per_inmate_per_week
    person = (inmate.prison_id, inmate.wing_id, inmate.id)
    paused: dict[date, Pause] = {}
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        pause = Pause(
            until=until if until is not None and day <= until else None,
            health=measures_for(advisories, *person, day).suspended,
            inactive=inmate.status is not InmateStatus.ACTIVE,
            week_full=limit if booked.get(iso_week_bounds(day)[0], 0) >= limit else None,
        )
        if pause != Pause():
            paused[day] = pause
    return Outlook(until, timeline(advisories, *person, first, last), paused)


# What the gate recorded of each visitor of a booking (visits.gate, which sits above this
# module: it is named by its table here, as visits.schedule names the booking's).
_GATE_CHECKS = table("gate_check", column("booking_visitor_id"))

_VISITORS_BOOKED_BETWEEN = select(
    BookingVisitor.visitor_id,
    BookingVisitor.visit_date,
    exists().where(_GATE_CHECKS.c.booking_visitor_id == BookingVisitor.id),
).where(
    BookingVisitor.visitor_id.in_(bindparam("visitor_ids", expanding=True)),
    BookingVisitor.visit_date >= bindparam("first"),
    BookingVisitor.visit_date <= bindparam("last"),
    BookingVisitor.active,
)
_VISITORS_BOOKED_BETWEEN_BUT_ONE = _VISITORS_BOOKED_BETWEEN.where(
    BookingVisitor.booking_id != bindparam("excluded")
)


def _visitors_booked_between(
    session: Session, visitor_ids: Sequence[int], first: date, last: date, exclude: int | None
) -> dict[tuple[int, date], bool]:
    """The days from ``first`` to ``last`` these visitors already have taken (an active
    visit, see :attr:`BookingVisitor.active`; one a day at most, by the unique index), each
    with whether the gate saw them that day (let in or turned away: then they came, whether
    or not their booking was cancelled since)."""
    if not visitor_ids:
        return {}
    query = _VISITORS_BOOKED_BETWEEN if exclude is None else _VISITORS_BOOKED_BETWEEN_BUT_ONE
    wanted = {"visitor_ids": list(visitor_ids), "first": first, "last": last, "excluded": exclude}
    booked: dict[tuple[int, date], bool] = {}
    for visitor_id, day, came in session.execute(query, wanted):
        booked[visitor_id, day] = booked.get((visitor_id, day), False) or bool(came)
    return booked


def party_rule_problems(
    session: Session,
    prison: Prison,
    inmate: Inmate,
    slot: Slot,
    attendees: Sequence[Attendee],
    *,
    exclude_booking: int | None = None,
    measures: Measures | None = None,
) -> list[Problem]:
    """The rules about who comes: composition, group, one visit a day, suspensions, and the
    health measures that keep young children away (``measures``: as for
    :func:`slot_problems`).

    Attendees may be known only in part while the family corrects the form (see
    :func:`_draft_rule_problems`); a rule is then reported only when no correction of the
    fields still wrong could satisfy it (:func:`visits.rules.party_problems`). A refusal that
    names a visitor (a visit that day, a bar, a health measure) needs their names valid; one
    day or bar needs the document that makes them a known person; a health measure counts a
    birth date not valid yet as not under 5 and an answer not valid yet as no, so it refuses
    only whom it would refuse whatever they turn out to be."""
    day = slot.local_date
    known = [a.visitor_id for a in attendees if a.visitor_id is not None]
    facts = read_party_facts(session, prison.id, known, day, day, exclude_booking)
    if measures is None:
        if any(high_risk(age, declared) for _, age, declared in _risks(attendees, day)):
            measures = measures_on(session, prison.id, inmate.wing_id, inmate.id, day)
        else:  # nobody a measure could keep away: no need to read the measures
            measures = Measures()
    return _party_refusals(prison, slot, attendees, facts, measures)


def _risks(attendees: Sequence[Attendee], day: date) -> list[tuple[Attendee, int, bool]]:
    """Whom a health measure could keep away, with their age that day and whether they said
    they are at high risk: those whose names are valid (its refusal names them). A birth date
    not valid yet counts as not under 5, an answer not valid yet (None) as no."""
    return [
        (a, _measured_age(a.member, day), bool(a.high_risk))
        for a in attendees
        if a.name is not None
    ]


def _party_refusals(
    prison: Prison,
    slot: Slot,
    attendees: Sequence[Attendee],
    facts: PartyFacts,
    measures: Measures,
) -> list[Problem]:
    """:func:`party_rule_problems` decided from facts read beforehand (for that day or
    more)."""
    day = slot.local_date
    problems = party_problems(
        [a.member for a in attendees],
        visit_day=day,
        max_visitors=prison.max_visitors,
        min_adults=prison.min_adults,
        adult_age=prison.adult_age,
        group=slot.visitor_group,
    )
    banned = suspended_on(facts.suspensions, day)
    for attendee in attendees:
        if attendee.name is None:
            continue  # said with their name: once the names are right
        where = f"visitors.{attendee.member.index}.doc_number"
        if attendee.visitor_id is not None and (attendee.visitor_id, day) in facts.booked:
            came = facts.booked[attendee.visitor_id, day]
            code = Code.VISITOR_CAME_THAT_DAY if came else Code.VISITOR_ALREADY_BOOKED
            problems.append(Problem(code, where, {"name": attendee.name}))
        if attendee.visitor_id in banned:
            # No date: whoever typed this document number may not be that person.
            problems.append(Problem(Code.VISITOR_SUSPENDED, where, {"name": attendee.name}))
    for attendee, age, declared in _risks(attendees, day):
        if why := kept_away(measures, age, declared):
            where = f"visitors.{attendee.member.index}.{KEPT_AWAY_FIELDS[why]}"
            problems.append(kept_away_problem(why, attendee.name, where))
    return problems


def _measured_age(member: PartyMember, day: date) -> int:
    """A visitor's age on the visit day as the health measures read it: a birth date not
    valid yet reads as 5, so that nobody is kept away as a young child before it is right."""
    return UNDER_FIVE if member.birth_date is None else age_on(member.birth_date, day)


# Which answer of the booking form makes a visitor high-risk.
KEPT_AWAY_FIELDS = {HighRisk.YOUNG_CHILD: "birth_date", HighRisk.DECLARED: "high_risk"}


def kept_away_problem(why: HighRisk, name: str, where: str | None = None) -> Problem:
    """The refusal of a visitor a health measure keeps away (see
    :func:`visits.health.kept_away`), at booking and at the gate alike."""
    code = Code.HEALTH_NO_YOUNG_CHILDREN if why is HighRisk.YOUNG_CHILD else Code.HEALTH_HIGH_RISK
    return Problem(code, where, {"name": name})


def _attendees(valid: ValidBooking, visitor_ids: Sequence[int | None]) -> list[Attendee]:
    return [
        Attendee(v.member(), v.identity.full_name, vid, v.answers.high_risk)
        for v, vid in zip(valid.visitors, visitor_ids, strict=True)
    ]


def _draft_rule_problems(
    session: Session, prison: Prison, inmate: Inmate, slot: Slot, drafts: Sequence[VisitorDraft]
) -> list[Problem]:
    """The party rules over a form with field problems, reported with them (what a family
    sees at once): each rule over the visitors whose fields it needs are valid, as
    :func:`party_rule_problems` says. Reads, locks nothing and remembers no one: the
    booking is refused anyway, and is checked again under the locks once it is right."""
    if not drafts:
        return []  # "add a visitor" is a field problem already
    keys = [d.key for d in drafts if d.key is not None]
    known = find_visitors(session, keys)
    seen: set[tuple[DocumentType, str]] = set()
    attendees = []
    for draft in drafts:
        visitor_id = None
        if draft.key is not None and draft.key not in seen:  # a duplicate is said so already
            seen.add(draft.key)
            visitor_id = known[draft.key].id if draft.key in known else None
        declared = None if draft.answers is None else draft.answers.high_risk
        attendees.append(Attendee(draft.member(), draft.full_name, visitor_id, declared))
    return party_rule_problems(session, prison, inmate, slot, attendees)


def _parse_for(
    session: Session,
    prison: Prison,
    inmate: Inmate,
    request: BookingRequest,
    now: datetime,
    phone_countries: Collection[str],
) -> tuple[Slot, ValidBooking]:
    """Field checks plus the slot's own checks, reported together; while fields are wrong,
    the party rules too, over what could be read (:func:`_draft_rule_problems`)."""
    slot = slot_in_prison(session, prison, request.slot_id)
    read = read_booking(
        request,
        today=prison.local_date(now),
        sex_required=slot is not None and slot.visitor_group is not VisitorGroup.ANYONE,
        phone_countries=phone_countries,
    )
    if read.problems:
        problems = list(read.problems)
        if slot is None:
            if not any(p.code is Code.SLOT_NOT_FOUND for p in problems):
                problems.append(Problem(Code.SLOT_NOT_FOUND, "slot_id"))
        else:
            party = max(len(read.visitors), 1)
            problems += slot_problems(session, prison, inmate, slot, party, now)
            problems += _draft_rule_problems(session, prison, inmate, slot, read.visitors)
        raise Rejected(problems)
    if slot is None:
        raise Rejected([Problem(Code.SLOT_NOT_FOUND, "slot_id")])
    return slot, read.valid()


def check_booking(
    session: Session,
    *,
    prison: Prison,
    inmate: Inmate,
    request: BookingRequest,
    now: datetime,
    phone_countries: Collection[str] = PHONE_COUNTRIES,
) -> Checked:
    """Every rule, without taking anything: for the review page before the family confirms.
    ``phone_countries``: as :attr:`visits.sms.SmsPolicy.phone_countries`."""
    slot, valid = _parse_for(session, prison, inmate, request, now, phone_countries)
    known = find_visitors(session, (v.identity.key for v in valid.visitors))
    ids = [known[v.identity.key].id if v.identity.key in known else None for v in valid.visitors]
    problems = slot_problems(session, prison, inmate, slot, len(valid.visitors), now)
    problems += party_rule_problems(session, prison, inmate, slot, _attendees(valid, ids))
    reject_if(problems)
    return Checked(slot, valid)


# --- Refusals that tell something about a person -------------------------------------------

# Whoever types a document number learns whether that person has a visit that day (anywhere)
# or is barred here: such refusals are counted per client, like failed identifications.
REVEALING = frozenset(
    {Code.VISITOR_ALREADY_BOOKED, Code.VISITOR_CAME_THAT_DAY, Code.VISITOR_SUSPENDED}
)


def _probe_key(client: str) -> str:
    return f"probe:client:{client}"


def probe_wait(
    session: Session, client: str, policy: ThrottlePolicy, now: datetime
) -> Problem | None:
    """Too many refusals about other people from this client lately: wait, or ``None``."""
    key = _probe_key(client)
    # Unlocked: a few extra probes slipping through a race reveal little; a lock would cost
    # every booking a round trip.
    hits = throttle.recent(session, [key], policy.window, now, lock=False)[key]
    if wait := throttle.minutes(throttle.wait(hits, policy.per_client, policy.window, now)):
        return Problem(Code.TOO_MANY_ATTEMPTS, None, {"minutes": wait})
    return None


def note_refusal(session: Session, rejected: Rejected, client: str, now: datetime) -> bool:
    """Count a refusal that revealed something about a person; True if there was one (the
    caller then commits)."""
    if not rejected.codes & REVEALING:
        return False
    throttle.record_failure(session, [_probe_key(client)], now)
    return True


# --- Bookings waiting for their code ---------------------------------------------------------


def _holds_key(client: str) -> str:
    return f"holds:client:{client}"


def unconfirmed_problem(
    session: Session,
    prison: Prison,
    inmate: Inmate,
    slot: Slot,
    client: str | None,
    policy: SmsPolicy,
    now: datetime,
) -> Problem | None:
    """Whether a booking that would wait for its code (held) must wait instead: ``None``, or
    ``too_many_unconfirmed`` with the minutes until a place among the holds frees up.

    Decision: a held booking counts toward every limit (so that nobody takes its places
    while the SMS travels), and anyone who knows an inmate's code and surname can make one
    with any phone. Without a cap, one client could hold every visit of a person's weeks and
    have the service text any number, again every 10 minutes. So bookings waiting for their
    code (held, hold not over; a confirmed, cancelled or expired one frees its place at once)
    are capped, counted under the locks the other cross-row rules take:

    - per client address (:attr:`SmsPolicy.unconfirmed_per_client`, 3): what a family needs
      (this week's and next week's visit booked before typing either code) and one more for
      a neighbour behind the same mobile-network address (many share one). The address is
      the one recorded in the history of the booking's creation (``audit_event.origin``: no
      column of its own), locked by key on PostgreSQL (two requests of one client for two
      people take turns; taken after the visit day's lock, before the phone's and the
      slot's); ``client=None`` (no web request) is not capped here;
    - per person visited (:attr:`SmsPolicy.unconfirmed_per_inmate`, 2), whoever booked,
      under the inmate's lock: many addresses cannot hold every week either;
    - and never a whole week: held bookings alone may take at most the prison's visits per
      week less one (at least one). A family whose phone is already verified in its browser
      (its bookings are confirmed at once, see ``web.verified_phones``) can then always book
      a visit a week, whatever strangers hold; where a prison allows one visit a week a hold
      takes it, as before, for at most the hold's 10 minutes.

    The refusal tells the family to type the code of its own booking first, or to wait the
    minutes until a place frees up: a family that types each code as it comes never has two
    bookings waiting, and a phone verified in this browser is never held. The code SMS
    themselves go only to the countries served (:func:`visits.booking_request.parse_phone`)."""
    waiting = (Booking.status == BookingStatus.HELD, Booking.hold_expires_at > now)
    rows = session.execute(
        select(Booking.hold_expires_at, Slot.local_date)
        .join(Slot, Booking.slot_id == Slot.id)
        .where(Booking.inmate_id == inmate.id, *waiting)
    ).all()
    monday, sunday = iso_week_bounds(slot.local_date)
    week = [ends for ends, day in rows if monday <= day <= sunday]
    groups = [
        ([ends for ends, _ in rows], policy.unconfirmed_per_inmate),
        (week, max(1, prison.visits_per_inmate_per_week - 1)),
    ]
    if client is not None:
        throttle.lock_keys(session, [_holds_key(client)])
        created_here = (
            (audit.AuditEvent.entity == "booking")
            & (audit.AuditEvent.entity_id == Booking.reference)
            & (audit.AuditEvent.action == "booking.held")
        )
        mine = session.scalars(
            select(Booking.hold_expires_at)
            .join(audit.AuditEvent, created_here)
            .where(audit.AuditEvent.origin == client[: audit.ORIGIN_LENGTH], *waiting)
        ).all()
        groups.append((list(mine), policy.unconfirmed_per_client))
    # Over a cap, the holds that must end first for one place to free up.
    frees_at = [sorted(ends)[len(ends) - cap] for ends, cap in groups if len(ends) >= cap]
    if not frees_at:
        return None
    minutes = max(1, throttle.minutes(max(frees_at) - now))
    return Problem(Code.TOO_MANY_UNCONFIRMED, None, {"minutes": minutes})


# --- Changes ---------------------------------------------------------------------------------


def submission_hash(inmate: Inmate, request: BookingRequest) -> str:
    """A fingerprint of what was submitted, for whom. The health answers go in only as their
    outcome: the stored hash of a few ticked boxes would give the symptoms back to anyone who
    tried every combination (only the outcome may be kept, see :mod:`visits.screening`)."""
    submitted = dataclasses.asdict(request)
    for raw, given in zip(request.visitors, submitted["visitors"], strict=True):
        answers = screening.parse_answers({q: getattr(raw, q) for q in QUESTIONS}, "")
        for question in QUESTIONS:
            del given[question]
        given["screening"] = (
            [answers.outcome.value, answers.high_risk] if isinstance(answers, Answers) else "?"
        )
    payload = json.dumps([inmate.id, submitted], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _replay(
    session: Session, submission_key: str | None, fingerprint: str, secret_key: str
) -> Booked | None:
    """The booking an identical earlier submission made, if any (a double click, a retry)."""
    if submission_key is None:
        return None
    if len(submission_key) > MAX_SUBMISSION_KEY_LENGTH:
        raise Rejected([Problem(Code.TOO_LONG, "submission_key", {"max": 64})])
    previous = session.scalar(select(Booking).where(Booking.submission_key == submission_key))
    if previous is None:
        return None
    if previous.submission_hash != fingerprint:
        raise Rejected([Problem(Code.SUBMISSION_KEY_REUSED, "submission_key")])
    return Booked(previous, reference.manage_token(secret_key, previous.reference), True)


_BOOKING_WITH_REFERENCE = select(Booking.id).where(Booking.reference == bindparam("reference"))


def _unused_reference(session: Session) -> str:
    while True:
        candidate = reference.new_reference()
        if session.scalar(_BOOKING_WITH_REFERENCE, {"reference": candidate}) is None:
            return candidate


def create_booking(
    session: Session,
    *,
    prison: Prison,
    inmate: Inmate,
    request: BookingRequest,
    now: datetime,
    secret_key: str,
    sms_policy: SmsPolicy,
    phone_verified: bool = False,
    submission_key: str | None = None,
    actor: str = "family",
    client: str | None = None,
) -> Booked:
    """Book, or raise :class:`Rejected` with every reason why not. Changes nothing on failure.

    The booking is held and a code is sent unless verification is off or ``phone_verified``
    (the family proved this phone recently); else it is confirmed and the confirmation and
    reminders are queued. A booking that would be held must keep within the caps on bookings
    waiting for their code (:func:`unconfirmed_problem`) and on codes sent
    (:func:`verification.send_wait`); ``client`` is the address the request came from (a web
    request's; ``None`` for none), recorded in the booking's history.
    The same ``submission_key`` sent again returns the first booking (``replayed``) instead of
    booking twice.
    """
    require_write_lock(session)
    fingerprint = submission_hash(inmate, request)
    if (replayed := _replay(session, submission_key, fingerprint, secret_key)) is not None:
        return replayed
    slot, valid = _parse_for(session, prison, inmate, request, now, sms_policy.phone_countries)

    lock_inmate(session, inmate)
    # A second click that raced the first one past the check above sees it now.
    if (replayed := _replay(session, submission_key, fingerprint, secret_key)) is not None:
        return replayed
    visitors = claim_visitors(session, [v.identity for v in valid.visitors], now)
    party = len(valid.visitors)
    lock_day(session, prison.id, slot.local_date, exclusive=False)
    # Read once, under the inmate's lock, which issuing an advisory over them waits for.
    measures = measures_on(session, prison.id, inmate.wing_id, inmate.id, slot.local_date)
    problems = slot_problems(session, prison, inmate, slot, party, now, measures=measures)
    attendees = _attendees(valid, [v.id for v in visitors])
    problems += party_rule_problems(session, prison, inmate, slot, attendees, measures=measures)
    held = sms_policy.verification and not phone_verified
    # Both under locks taken here (PostgreSQL): the client's holds, then the codes sent to the
    # phone and at the client's asking, counted and sent under the same locks.
    capped = held and unconfirmed_problem(session, prison, inmate, slot, client, sms_policy, now)
    if capped:
        problems.append(capped)
    if held and (
        wait := verification.send_wait(session, valid.contact_phone, sms_policy, now, client)
    ):
        problems.append(wait)
    reject_if(problems)
    if not take_seats(session, slot.id, party):
        session.refresh(slot)
        raise Rejected([Problem(Code.SLOT_FULL, "slot_id", {"seats_left": slot.seats_left})])

    booking = Booking(
        reference=_unused_reference(session),
        prison=prison,
        slot=slot,
        inmate=inmate,
        status=BookingStatus.HELD if held else BookingStatus.CONFIRMED,
        hold_expires_at=now + sms_policy.verification_time if held else None,
        party_size=party,
        contact_phone=valid.contact_phone,
        language=valid.language,
        submission_key=submission_key,
        submission_hash=fingerprint if submission_key else None,
        created_at=now,
        updated_at=now,
    )
    for position, (details, visitor) in enumerate(zip(valid.visitors, visitors, strict=True)):
        remember_details(visitor, details.identity)
        booking.visitors.append(
            BookingVisitor(
                visitor_id=visitor.id,
                position=position,
                first_names=details.identity.first_names,
                last_names=details.identity.last_names,
                birth_date=details.identity.birth_date,
                relationship=details.relationship,
                sex=details.identity.sex,
                visit_date=slot.local_date,
                active=True,
                high_risk=details.answers.high_risk,
            )
        )
    session.add(booking)
    try:
        session.flush()
    except IntegrityError as error:
        # The same key sent at the same moment for another inmate (whose lock is another).
        if "submission_key" not in str(error.orig):
            raise
        raise Rejected([Problem(Code.SUBMISSION_KEY_REUSED, "submission_key")]) from None
    session.expire(slot, ["seats_taken"])  # moved by the conditional update, not the ORM
    audit.record(
        session,
        at=now,
        actor=actor,
        action="booking.held" if held else "booking.created",
        entity="booking",
        entity_id=booking.reference,
        details={"slot_id": slot.id, "party_size": party, "inmate_id": inmate.id},
        origin=client or "",  # who is holding places: unconfirmed_problem reads it
    )
    given = [details.answers for details in valid.visitors]
    screening.record_at_booking(session, booking, given, now, actor)
    outcomes = [answers.outcome for answers in given]
    if held:
        verification.send_code(session, booking, sms_policy, now, client)
    else:
        sms.queue_confirmed(session, booking, sms_policy, now)
        tell_measures(session, booking, sms_policy, now, measures)
        tell_screening_advice(session, booking, sms_policy, now, outcomes)
    token = reference.manage_token(secret_key, booking.reference)
    return Booked(booking, token, measures=measures)


def _seen_at_gate(session: Session, booking: Booking) -> set[int]:
    """The booking's visitors (``booking_visitor`` ids) the gate recorded, let in or not."""
    ids = [v.id for v in booking.visitors]
    query = select(_GATE_CHECKS.c.booking_visitor_id).where(
        _GATE_CHECKS.c.booking_visitor_id.in_(ids)
    )
    return set(session.scalars(query)) if ids else set()


def gate_recorded(session: Session, booking: Booking) -> bool:
    """Whether the gate has recorded any visitor of the booking (let in or turned away)."""
    return bool(_seen_at_gate(session, booking))


def _locked(session: Session, booking: Booking) -> Booking:
    """The booking as it is now, locked until commit: a cancel and a move of the same booking
    take turns, and each sees the slot the other left it in."""
    require_write_lock(session)
    lock_rows(session, Booking.id, [booking.id])
    session.refresh(booking)
    return booking


def lock_inmate(session: Session, inmate: Inmate) -> None:
    """Lock the inmate visited (the first lock of every writer) and read them again as they
    are now: a roster import may have changed their status, suspension or wing after this
    request read them, and committed while this waited for the lock (on PostgreSQL; on
    SQLite the write session already excludes it)."""
    require_write_lock(session)
    session.refresh(inmate, with_for_update=True)


def lock_for_cancelling(session: Session, bookings: Sequence[Booking]) -> None:
    """Lock these bookings by id, then the slots they hold by id (the order every writer takes
    its locks in), each reloaded as it is now: cancelling them one by one then waits on
    nobody who could be waiting on it."""
    lock_rows(session, Booking.id, [b.id for b in bookings])
    for booking in bookings:
        session.refresh(booking)
    lock_rows(session, Slot.id, {b.slot_id for b in bookings})


def cancel_booking(
    session: Session,
    booking: Booking,
    *,
    now: datetime,
    actor: str,
    sms_policy: SmsPolicy,
    answering: bool = False,
    reason: str = "",
    origin: str = "",
    cause: CancelCause | None = None,
    key: str = "",
) -> Booking:
    """Cancel, give the seats back and cancel the messages still to come, exactly once even
    if two cancels (or a cancel and a move) race; the family is told by SMS (``answering``:
    the SMS answers the family's own text, so it goes even to a number that opted out).
    Staff acting for a family give the ``reason`` and where they are (``origin``); when the
    prison cancels (``cause``), the history and the family's SMS say why in general words.
    Staff's form gives a one-off ``key`` (:func:`visits.audit.done_with`): that cancel sent
    again (a double click, a reload) finds itself in the booking's history and returns the
    booking as it left it, with nothing done twice; any other cancel of a booking already
    cancelled or over is refused as before.

    A booking whose visitors were all turned away at the gate stays confirmed until its time
    starts, and can still be cancelled, by the family or by staff, unlike moved (see
    :func:`move_booking`): cancelling leaves the booking, and what the gate recorded of it,
    on its own day (the audit trail keeps both), and gives back places nobody will use.
    Closures, suspensions and health measures cancel it the same way. Once anyone of it was
    let in, it is attended and no longer changes at all.

    Decision: a visitor the gate saw (turned away, or let in) keeps that day taken after the
    booking is cancelled: their :class:`BookingVisitor` stays ``active``, the row the rule of
    one visit a day reads, while the seats come back. Otherwise someone turned away at 9:00
    (with symptoms, without a document, under a health measure) could cancel and book a later
    time of the same day, and come back to a guard who already said no; the rule exists so
    that each person comes to a prison once a day. They may book another day
    (``visitor_came_that_day`` tells the family so); the visitors of the booking the gate
    never saw get their day back, as after any cancellation. A mistake at the gate is undone
    before cancelling (:func:`visits.gate.undo_gate`, only on a booking still confirmed)."""
    booking = _locked(session, booking)
    action = f"booking.cancelled_{cause.value}" if cause else "booking.cancelled"
    key = audit.submission_key(key)
    if audit.done_with(session, "booking", booking.reference, (action,), key) is not None:
        return booking  # this very cancel, sent again: it was done
    if not booking.can_change(now):
        raise Rejected([Problem(Code.BOOKING_NOT_ACTIVE)])
    was_confirmed = booking.status is BookingStatus.CONFIRMED
    _cancel(session, booking, now, actor, action, reason=reason, origin=origin, key=key)
    if was_confirmed:
        kind = cause.value if cause else "cancelled"
        sms.queue_cancelled(session, booking, sms_policy, now, essential=answering, kind=kind)
    else:  # never confirmed to the family: nothing to take back, only the code to withdraw
        sms.withdraw(session, booking, now, "booking cancelled")
    session.flush()
    return booking


# Who or what cancelled a booking, besides the prison's causes (:class:`CancelCause`).
BY_FAMILY = "family"  # the family, on its page, by SMS, or staff at its request
HOLD_EXPIRED = "hold_expired"  # the code sent to the phone was never typed


# The history events that cancel a booking: by whom or what, and a hold's code not typed.
CANCELLED_ACTIONS = (
    "booking.cancelled",
    *(f"booking.cancelled_{cause.value}" for cause in CancelCause),
    "booking.hold_expired",
)


def cancellation_event(session: Session, booking: Booking) -> audit.AuditEvent | None:
    """The history event that cancelled this booking (the latest, if it was ever cancelled
    and reopened), or ``None``."""
    return latest_event(session, booking.reference, CANCELLED_ACTIONS)


def latest_event(
    session: Session, reference: str, actions: Sequence[str]
) -> audit.AuditEvent | None:
    """The latest of these ``actions`` in the history of the booking ``reference`` names."""
    return session.scalar(
        select(audit.AuditEvent)
        .where(
            audit.AuditEvent.entity == "booking",
            audit.AuditEvent.entity_id == reference,
            audit.AuditEvent.action.in_(actions),
        )
        .order_by(audit.AuditEvent.at.desc(), audit.AuditEvent.id.desc())
        .limit(1)
    )


def cancelled_why(session: Session, booking: Booking) -> str | None:
    """Why this cancelled booking was cancelled, as its history recorded it: a
    :class:`CancelCause` value when the prison cancelled it, :data:`BY_FAMILY` or
    :data:`HOLD_EXPIRED` (``None``: not cancelled, or no such record). Never the reason staff
    typed: a suspension's is for staff only, and the family page says the cause in its own
    words."""
    if booking.status is not BookingStatus.CANCELLED:
        return None
    event = cancellation_event(session, booking)
    return None if event is None else cancelled_by(event.action)


def cancelled_by(action: str) -> str:
    """What one of :data:`CANCELLED_ACTIONS` says cancelled the booking: a
    :class:`CancelCause` value, :data:`BY_FAMILY` or :data:`HOLD_EXPIRED`."""
    if action == "booking.hold_expired":
        return HOLD_EXPIRED
    cause = action.removeprefix("booking.cancelled").removeprefix("_")
    return cause if cause in set(CancelCause) else BY_FAMILY


def _cancel(
    session: Session,
    booking: Booking,
    now: datetime,
    actor: str,
    action: str,
    *,
    reason: str = "",
    origin: str = "",
    key: str = "",
) -> None:
    # The gate records only confirmed bookings (and an attended one is never cancelled).
    seen = _seen_at_gate(session, booking) if booking.status is BookingStatus.CONFIRMED else set()
    booking.status = BookingStatus.CANCELLED
    booking.cancelled_at = booking.updated_at = now
    booking.hold_expires_at = None
    release_seats(session, booking.slot_id, booking.party_size)
    for visitor in booking.visitors:
        visitor.active = visitor.id in seen  # the gate saw them: the day stays theirs
    audit.record(
        session,
        at=now,
        actor=actor,
        action=action,
        entity="booking",
        entity_id=booking.reference,
        details={"slot_id": booking.slot_id, "party_size": booking.party_size}
        | ({"reason": reason} if reason else {})
        | ({"key": key} if key else {}),
        origin=origin,
    )


# --- Holds -----------------------------------------------------------------------------------


# The refusals of a code because the booking no longer waits for one: the answer is the
# booking as it now is (409), not the code form again.
NO_LONGER_WAITING = frozenset({Code.HOLD_EXPIRED, Code.NOT_HELD, Code.HOLD_CANCELLED})


def not_waiting_for_code(booking: Booking) -> Problem | None:
    """Why no code can be entered for this booking, or ``None`` while it waits for one. A
    booking cancelled while it waited (its hold ran out, a suspension, a closure) says so,
    and that it can be booked again, but not why: "does not need a code" would read as
    confirmed."""
    if booking.status is BookingStatus.HELD:
        return None
    if booking.status is BookingStatus.CANCELLED:
        return Problem(Code.HOLD_CANCELLED, "code")
    return Problem(Code.NOT_HELD, "code")


def verify_booking(
    session: Session,
    booking: Booking,
    code: str,
    *,
    now: datetime,
    sms_policy: SmsPolicy,
    actor: str = "family",
) -> Booking:
    """Confirm a held booking with the code sent to its phone, or raise :class:`Rejected`.

    The caller commits even when this raises: a wrong try is counted, and a hold found
    expired is released then and there."""
    booking = _locked(session, booking)
    if (refusal := not_waiting_for_code(booking)) is not None:
        raise Rejected([refusal])
    if booking.hold_expires_at is not None and booking.hold_expires_at <= now:
        _expire(session, booking, now)
        raise Rejected([Problem(Code.HOLD_EXPIRED, "code")])
    verification.check_code(session, booking, code, sms_policy, now)
    booking.status = BookingStatus.CONFIRMED
    booking.hold_expires_at = None
    booking.updated_at = now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="booking.confirmed",
        entity="booking",
        entity_id=booking.reference,
    )
    # The prison file may have closed its time while the code was on its way: no reminder
    # then (see visits.sms.withdraw_reminders).
    slot = booking.slot
    closed = closure_for(
        closures_between(session, slot.prison_id, slot.local_date, slot.local_date),
        slot,
        booking.prison.tz,
    )
    sms.queue_confirmed(session, booking, sms_policy, now, remind=closed is None)
    tell_measures(session, booking, sms_policy, now)
    tell_screening_advice(session, booking, sms_policy, now)
    session.flush()
    return booking


def resend_code(
    session: Session,
    booking: Booking,
    *,
    now: datetime,
    sms_policy: SmsPolicy,
    client: str | None = None,
) -> Booking:
    """A new code for a held booking, within the hourly limits per phone and per ``client``
    asking (:func:`verification.send_wait`; the hold's end stays where it was: seats are not
    held indefinitely)."""
    booking = _locked(session, booking)
    if (refusal := not_waiting_for_code(booking)) is not None:
        raise Rejected([refusal])
    if booking.hold_expires_at is not None and booking.hold_expires_at <= now:
        raise Rejected([Problem(Code.HOLD_EXPIRED, "code")])
    if wait := verification.send_wait(session, booking.contact_phone, sms_policy, now, client):
        raise Rejected([wait])
    verification.send_code(session, booking, sms_policy, now, client)
    return booking


def _expire(session: Session, booking: Booking, now: datetime) -> None:
    _cancel(session, booking, now, "system", "booking.hold_expired")
    sms.withdraw(session, booking, now, "hold expired")


def expire_holds(session: Session, now: datetime) -> list[str]:
    """Release every hold whose time is up; the references released."""
    require_write_lock(session)
    due = session.scalars(
        select(Booking)
        .where(Booking.status == BookingStatus.HELD, Booking.hold_expires_at <= now)
        .order_by(Booking.id)
    ).all()
    released = []
    lock_for_cancelling(session, due)
    for booking in due:
        if booking.status is BookingStatus.HELD:
            _expire(session, booking, now)
            released.append(booking.reference)
    session.flush()
    return released


def record_attending(session: Session, booking: Booking, now: datetime) -> None:
    """The family answered a reminder: they are coming."""
    booking.family_confirmed_at = booking.updated_at = now
    audit.record(
        session,
        at=now,
        actor="sms",
        action="booking.family_confirmed",
        entity="booking",
        entity_id=booking.reference,
    )


def _booked_attendees(booking: Booking) -> list[Attendee]:
    return [
        Attendee(
            PartyMember(v.position, v.birth_date, v.sex), v.full_name, v.visitor_id, v.high_risk
        )
        for v in booking.visitors
    ]


@dataclass(frozen=True)
class _MoveFacts:
    """Everything the rules of a move of one booking read, for the days from a first to a
    last (:func:`_read_move_facts`)."""

    inmate: InmateFacts
    party: PartyFacts
    advisories: list[Advisory]  # in force by the last day: each day's measures come from them


def _read_move_facts(session: Session, booking: Booking, first: date, last: date) -> _MoveFacts:
    """What a move of this booking to any time from ``first`` to ``last`` is checked against,
    the booking itself left out of the counts (its own visit that week, its visitors' visit
    that day): six queries, however many days."""
    prison, inmate = booking.prison, booking.inmate
    visitor_ids = [v.visitor_id for v in booking.visitors]
    return _MoveFacts(
        inmate=read_inmate_facts(session, prison, inmate, first, last, booking.id),
        party=read_party_facts(session, prison.id, visitor_ids, first, last, booking.id),
        advisories=in_force(session, prison.id, last),
    )


def _move_refusals(booking: Booking, slot: Slot, now: datetime, facts: _MoveFacts) -> list[Problem]:
    """Every rule a move of this booking to ``slot`` meets, decided from ``facts`` (read for
    that slot's day, or for more): the same rules as a new booking's."""
    prison, inmate, day = booking.prison, booking.inmate, slot.local_date
    measures = measures_for(facts.advisories, prison.id, inmate.wing_id, inmate.id, day)
    problems = _slot_refusals(prison, inmate, slot, booking.party_size, now, facts.inmate, measures)
    attendees = _booked_attendees(booking)
    problems += _party_refusals(prison, slot, attendees, facts.party, measures)
    return problems


def _move_problems(session: Session, booking: Booking, slot: Slot, now: datetime) -> list[Problem]:
    """Every rule a move of this booking to ``slot`` meets, read now for that day alone."""
    day = slot.local_date
    return _move_refusals(booking, slot, now, _read_move_facts(session, booking, day, day))


def move_targets(session: Session, booking: Booking, now: datetime, *, limit: int) -> list[Slot]:
    """The visit times this booking could be moved to now, soonest first, at most ``limit``:
    those :func:`move_booking` would accept at this moment (places may still go meanwhile;
    the move checks everything again under its locks). For staff moving a visit for a family,
    so that a time that would be refused (closed, kept for visitors of the other sex, outside
    the booking window, the person's week full) is not offered.

    What the move's rules read is read once for the whole window (:func:`_read_move_facts`),
    and each time is decided from it by the very rules the move applies
    (:func:`_move_refusals`): seven queries in all, however many times the window holds."""
    prison = booking.prison
    last_day = last_bookable_day(prison.local_date(now), prison.booking_opens_days)
    candidates = session.scalars(
        select(Slot)
        .where(
            Slot.prison_id == booking.prison_id,
            Slot.starts_at > now,
            Slot.local_date <= last_day,
            Slot.withdrawn_at.is_(None),
            Slot.id != booking.slot_id,
            Slot.seats_taken + booking.party_size <= Slot.capacity,
        )
        .order_by(Slot.starts_at)
    ).all()
    if not candidates:
        return []
    facts = _read_move_facts(session, booking, candidates[0].local_date, candidates[-1].local_date)
    targets: list[Slot] = []
    for slot in candidates:
        if not _move_refusals(booking, slot, now, facts):
            targets.append(slot)
            if len(targets) == limit:
                break
    return targets


def move_booking(
    session: Session,
    booking: Booking,
    *,
    slot_id: str | int,
    now: datetime,
    actor: str,
    sms_policy: SmsPolicy,
    reason: str = "",
    origin: str = "",
    key: str = "",
) -> Booking:
    """Move to another slot: the new seats are taken and the old ones given back in one
    transaction, so the family never ends up with both or with neither; the old time's
    reminders give way to the new time's. Staff acting for a family give the ``reason``
    and where they are (``origin``), and their form's one-off ``key``: that move sent again
    (a double click, a reload) finds itself in the booking's history, to the same time, and
    returns the booking as it is, with nothing done twice (a move of a booking already in
    the time asked for is otherwise refused, :attr:`Code.SAME_SLOT`).

    A booking the gate has recorded anyone of (turned away before their time began: the
    booking is still confirmed) is not moved: the record belongs to the visit on that day,
    and would otherwise follow the booking to the new one (the guard there would find the
    visitor already turned away). It can still be cancelled (see :func:`cancel_booking`)."""
    new_slot = slot_in_prison(session, booking.prison, slot_id)
    # The order every writer locks in (see the module's docstring); who visits whom never
    # changes, so these can be locked before the booking itself.
    lock_inmate(session, booking.inmate)
    lock_rows(session, Visitor.id, [v.visitor_id for v in booking.visitors])
    if new_slot is not None:
        lock_day(session, new_slot.prison_id, new_slot.local_date, exclusive=False)
    booking = _locked(session, booking)
    key = audit.submission_key(key)
    if new_slot is not None and audit.done_with(
        session, "booking", booking.reference, ("booking.moved",), key, to_slot_id=new_slot.id
    ):
        return booking  # this very move, sent again: it was done
    if not booking.can_change(now):
        raise Rejected([Problem(Code.BOOKING_NOT_ACTIVE)])
    if booking.status is BookingStatus.HELD:
        raise Rejected([Problem(Code.BOOKING_HELD)])
    # Read under the booking's lock, which the gate takes before recording (visits.gate).
    if gate_recorded(session, booking):
        raise Rejected([Problem(Code.GATE_RECORDED)])
    if new_slot is None:
        raise Rejected([Problem(Code.SLOT_NOT_FOUND, "slot_id")])
    if new_slot.id == booking.slot_id:
        raise Rejected([Problem(Code.SAME_SLOT, "slot_id")])

    reject_if(_move_problems(session, booking, new_slot, now))
    old_slot_id = booking.slot_id
    lock_rows(session, Slot.id, [old_slot_id, new_slot.id])
    if not take_seats(session, new_slot.id, booking.party_size):
        session.refresh(new_slot)
        raise Rejected([Problem(Code.SLOT_FULL, "slot_id", {"seats_left": new_slot.seats_left})])
    release_seats(session, old_slot_id, booking.party_size)
    booking.slot = new_slot
    booking.updated_at = now
    # "1" answered a reminder of the old time: the gate's list says it only of that time (the
    # new time's reminders ask again).
    booking.family_confirmed_at = None
    for visitor in booking.visitors:
        visitor.visit_date = new_slot.local_date
    event = audit.record(
        session,
        at=now,
        actor=actor,
        action="booking.moved",
        entity="booking",
        entity_id=booking.reference,
        details={"from_slot_id": old_slot_id, "to_slot_id": new_slot.id}
        | ({"reason": reason} if reason else {})
        | ({"key": key} if key else {}),
        origin=origin,
    )
    session.flush()
    session.refresh(new_slot)
    sms.queue_moved(session, booking, sms_policy, now, change_id=event.id)
    tell_measures(session, booking, sms_policy, now, moved=True)
    # Moving cancels what had not left yet: the advice is queued again (once, whatever).
    tell_screening_advice(session, booking, sms_policy, now)
    return booking


def tell_screening_advice(
    session: Session,
    booking: Booking,
    sms_policy: SmsPolicy,
    now: datetime,
    outcomes: Sequence[screening.Outcome] | None = None,
) -> None:
    """A visitor's answers at booking call for a free TB check: the family is told where,
    once the booking is confirmed (the booking page says it at once). ``outcomes``: the
    booking's, when known (else read)."""
    if outcomes is None:
        advised = bool(screening.advised(session, list(booking.visitors)))
    else:
        advised = any(o is not screening.Outcome.CLEAR for o in outcomes)
    if advised:
        key = f"{sms.subject(booking)}:advice:booking"
        sms.queue_screening_advice(session, booking, sms_policy, now, key)


def tell_measures(
    session: Session,
    booking: Booking,
    sms_policy: SmsPolicy,
    now: datetime,
    measures: Measures | None = None,
    *,
    moved: bool = False,
) -> None:
    """A confirmed visit under health measures: the family is told what they ask (once for
    the same measures, see :func:`visits.sms.queue_health_measure`). ``measures``: the
    booking's, when the caller already read them. A visit ``moved`` to a day without
    measures is told they no longer apply, if its family was told some: its last text must
    not ask for a mask the new day does not need."""
    if measures is None:
        measures = for_booking(session, booking)
    if (measures.any or moved) and not measures.suspended:
        sms.queue_health_measure(session, booking, sms_policy, now, measures)


# --- Finding ---------------------------------------------------------------------------------


def booking_by_reference(session: Session, text: str) -> Booking | None:
    ref = reference.parse(text)
    if ref is None:
        return None
    return session.scalar(select(Booking).where(Booking.reference == ref))


def authorised_booking(
    session: Session, text: str, token: str | None, secret_key: str
) -> Booking | None:
    """The booking only for a caller holding its manage token."""
    booking = booking_by_reference(session, text)
    if booking is None or not reference.token_matches(secret_key, booking.reference, token):
        return None
    return booking


@dataclass
class Lookup:
    booking: Booking | None = None
    problems: list[Problem] = field(default_factory=list)


def find_booking(
    session: Session,
    *,
    reference_text: str,
    phone_text: str,
    client: str,
    now: datetime,
    policy: ThrottlePolicy,
) -> Lookup:
    """A family finding its booking again by reference and phone. Failures are throttled and
    recorded in ``session``: the caller commits in both cases."""
    problems: list[Problem] = []
    if reference.parse(reference_text) is None:
        problems.append(Problem(Code.INVALID_REFERENCE, "reference"))
    phone = parse_phone(phone_text)
    if isinstance(phone, Problem):
        problems.append(Problem(phone.code, "phone", phone.params))
    if problems:
        return Lookup(problems=problems)
    key = f"find:client:{client}"
    hits = throttle.recent(session, [key], policy.window, now)[key]
    if wait := throttle.minutes(throttle.wait(hits, policy.per_client, policy.window, now)):
        return Lookup(problems=[Problem(Code.TOO_MANY_ATTEMPTS, None, {"minutes": wait})])
    booking = booking_by_reference(session, reference_text)
    if booking is None or booking.contact_phone != phone:
        throttle.record_failure(session, [key], now)
        return Lookup(problems=[Problem(Code.BOOKING_NOT_FOUND, "reference")])
    return Lookup(booking=booking)


def waiting_for_code(
    session: Session, references: Iterable[str], inmate_id: int, now: datetime
) -> list[Booking]:
    """Of the bookings named (those a browser held, :mod:`web.family`), the ones to this
    person still waiting for their SMS code, soonest visit first: what the family is led back
    to when the code page is gone. Only a reference the caller already proved it owns may be
    given: this says nothing of anyone else's bookings."""
    named = [ref for ref in references if isinstance(ref, str)]
    if not named:
        return []
    return list(
        session.scalars(
            select(Booking)
            .join(Slot, Slot.id == Booking.slot_id)
            .where(
                Booking.reference.in_(named),
                Booking.inmate_id == inmate_id,
                Booking.status == BookingStatus.HELD,
                Booking.hold_expires_at > now,
            )
            .order_by(Slot.starts_at, Booking.id)
        )
    )
