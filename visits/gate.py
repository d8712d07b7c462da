"""The gate: a prison's visitor list for one day, and what the guards record there.

The list is read in one query of plain rows (no ORM objects): a busy prison's day holds a
couple of thousand visitors, and the list is opened again and again at the gate. Cancelled
bookings are left out; held ones (waiting for the family's code) are listed, marked as such.
A visitor this gate turned away for symptoms in the last two weeks is marked on their later
visits' lists (:func:`refused_for_symptoms`), as symptoms declared when booking are.

At the gate, each visitor comes in or is turned away (a reason from a list, and a note);
a booking with someone in is ``attended``, and one nobody came to is marked ``no_show`` once
its visit time is over (that day or later). Only on the visit's day, only for confirmed
bookings of the guard's prison; what one guard recorded another cannot overwrite, and a
mistake is undone explicitly (an undo says what it undoes: never another guard's newer
record). A step said twice is done once. A booking whose visitors were all turned away stays
``confirmed``, its visitors marked. Every step is an audit event with who and from where.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from visits import audit, health, screening, sms, stopping
from visits.advisories import for_booking, in_force
from visits.base import Base, UTCDateTime, str_enum
from visits.booking import (
    CANCELLED_ACTIONS,
    Booking,
    BookingStatus,
    BookingVisitor,
    CancelCause,
    cancellation_event,
    kept_away_problem,
    latest_event,
    slot_in_use,
)
from visits.booking_request import Relationship
from visits.db import lock_rows, require_write_lock
from visits.health import UNDER_FIVE, HighRisk, Measures, measures_for
from visits.inmate import Inmate
from visits.prison import Prison, Wing
from visits.problems import Code, Problem, Rejected, reject_if
from visits.rules import age_on
from visits.schedule import Slot, closure_for, closures_between, local_moment
from visits.screening import Answers, Outcome, Screening, Stage
from visits.sms import SmsPolicy
from visits.staff import StaffUser
from visits.visitor import DocumentType, Visitor, suspended_on, suspensions_from

LISTED = (
    BookingStatus.HELD,
    BookingStatus.CONFIRMED,
    BookingStatus.ATTENDED,
    BookingStatus.NO_SHOW,
)


class AgeGroup(StrEnum):
    ADULT = "adult"
    MINOR = "minor"
    UNDER_FIVE = "under_five"  # the group TB advisories may keep away


def age_group(birth_date: date, day: date, adult_age: int) -> AgeGroup:
    return _group(age_on(birth_date, day), adult_age)


def _group(age: int, adult_age: int) -> AgeGroup:
    if age >= adult_age:
        return AgeGroup.ADULT
    return AgeGroup.UNDER_FIVE if age < UNDER_FIVE else AgeGroup.MINOR


class GateStatus(StrEnum):
    ARRIVED = "arrived"
    TURNED_AWAY = "turned_away"


class TurnAwayReason(StrEnum):
    NO_DOCUMENT = "no_document"
    WRONG_DOCUMENT = "wrong_document"
    LATE = "late"
    PROHIBITED_ITEM = "prohibited_item"
    HEALTH = "health"
    BEHAVIOUR = "behaviour"
    OTHER = "other"


MAX_NOTE = 300


class GateCheck(Base):
    """What the gate recorded for one visitor of a booking (no row: still expected)."""

    __tablename__ = "gate_check"

    booking_visitor_id: Mapped[int] = mapped_column(
        ForeignKey("booking_visitor.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[GateStatus] = mapped_column(str_enum(GateStatus))
    reason: Mapped[TurnAwayReason | None] = mapped_column(str_enum(TurnAwayReason))
    note: Mapped[str] = mapped_column(String(MAX_NOTE), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    by: Mapped[str] = mapped_column(String(64))


@dataclass(frozen=True)
class GateVisitor:
    id: int
    name: str
    doc_type: DocumentType
    doc_number: str
    age_group: AgeGroup
    relationship: Relationship
    gate_status: GateStatus | None = None
    gate_reason: TurnAwayReason | None = None
    gate_note: str = ""
    # When the gate's record was made: an undo names the record by it (see undo_gate).
    gate_at: datetime | None = None
    high_risk: bool = False  # pregnant or low defences, as the family or the gate said
    # Why the visit's health measures keep this visitor away (None: they do not): the gate
    # may turn them away, never let them in.
    kept_away: HighRisk | None = None
    # The screening outcomes recorded for this visit, by stage (see visits.screening).
    screened: dict[Stage, Outcome] = field(default_factory=dict)
    # The last day this prison's gate turned the person away for symptoms, within
    # SYMPTOMS_REMEMBERED_DAYS before this visit (see :func:`refused_for_symptoms`).
    refused_for_symptoms: date | None = None
    # Barred from this prison on the visit's day (a bar made once someone of the booking was
    # inside, which left the booking for the gate: :mod:`visits.stopping`): never let in.
    barred: bool = False

    @property
    def gate_record_time(self) -> str:
        return record_time(self.gate_at) if self.gate_at is not None else ""

    @property
    def screening_tag(self) -> str | None:
        """What the list says of the health questions (a key of its words): the gate's
        outcome if asked there, else symptoms or a check advised at booking."""
        if at_gate := self.screened.get(Stage.GATE):
            return f"screened_{at_gate.value}"
        return _AT_BOOKING.get(self.screened.get(Stage.BOOKING))  # type: ignore[arg-type]


# What the list says of the answers given when booking (no symptom, nothing).
_AT_BOOKING = {Outcome.REFER: "symptoms_at_booking", Outcome.ADVISED: "advised_at_booking"}
# The flags of a visit's health measures that ask something of it, in the list's order.
MEASURE_FLAGS = ("suspended", "masks", "non_contact", "no_high_risk", "visit_minutes")


@dataclass
class GateBooking:
    id: int
    reference: str
    status: BookingStatus
    inmate_code: str
    inmate_name: str
    wing: str
    visitors: list[GateVisitor] = field(default_factory=list)
    # The health measures for this visit: the guard sees what they ask, never why.
    measures: Measures = field(default_factory=Measures)
    # Why visits are stopped for it, left for the gate since someone of it came in or its
    # visit time had begun (:func:`visits.stopping.left_for_gate`).
    stopped: CancelCause | None = None
    # When the family answered a reminder "1", they are coming (visits.booking.record_attending).
    family_confirmed_at: datetime | None = None

    @property
    def booking_tags(self) -> list[str]:
        """What the list says of the booking beside its status (keys of its words): that the
        family said by SMS they are coming, while that is still news to the guard (confirmed,
        and nobody of it at the gate yet: once they came, the gate's own record says more)."""
        coming = (
            self.family_confirmed_at is not None
            and self.status is BookingStatus.CONFIRMED
            and not self.at_the_gate
        )
        return ["confirmed_by_sms"] if coming else []

    @property
    def at_the_gate(self) -> bool:
        """Whether anyone of it came to the gate: let in, turned away, or asked the health
        questions there (see :func:`record_no_show`)."""
        return any(v.gate_status is not None or Stage.GATE in v.screened for v in self.visitors)

    @property
    def health_tags(self) -> list[str]:
        """The measures the list tags the booking with (keys of its words): each flag that
        asks something of the visit, or only "health measure" when none does."""
        tags = [flag for flag in MEASURE_FLAGS if getattr(self.measures, flag)]
        return tags or (["inform"] if self.measures.inform else [])

    def kept_out(self, visitor: GateVisitor) -> bool:
        """Whether the health measures keep the visitor out (high risk where they keep it
        away, or visits paused): the gate may turn them away, never let them in."""
        return visitor.kept_away is not None or self.measures.suspended

    def visitor_tags(self, visitor: GateVisitor) -> list[str]:
        """What the list says of the visitor's health (keys of its words), and of a bar:
        kept out by a measure, barred, or the visit stopped since someone of it came in or
        its time began (unless let in already), the health questions, symptoms found lately."""
        tags = []
        if visitor.gate_status is not GateStatus.ARRIVED:
            if visitor.barred:
                tags.append("barred")
            elif self.kept_out(visitor):
                tags.append("may_not_come_in")
            elif self.stopped is not None:
                tags.append("visit_stopped")
        if screened := visitor.screening_tag:
            tags.append(screened)
        if visitor.refused_for_symptoms is not None:
            tags.append("refused_for_symptoms")
        return tags

    def shut_out(self, visitor: GateVisitor) -> bool:
        """Whether the gate may not let the visitor in (no "came in" on the list, as
        :func:`record_arrival` refuses): kept out by the health measures, barred, or the visit
        stopped since someone of it came in or its time began (:attr:`stopped`)."""
        return self.kept_out(visitor) or visitor.barred or self.stopped is not None

    @property
    def nobody_may_come_in(self) -> bool:
        """Every visitor of it is kept out by the health measures: nobody could have come,
        so it is never a no-show (see :func:`record_no_show`)."""
        return all(self.kept_out(v) for v in self.visitors)

    @property
    def stop_visit(self) -> CancelCause | None:
        """Someone of it came in, and visits are stopped for it (a closure, a suspension, the
        roster or a health pause made since leaves such a booking for the gate to stop:
        :mod:`visits.stopping`): why, for the list to say "already inside". A confirmed one
        left for the gate says why on each visitor (:meth:`visitor_tags`)."""
        return self.stopped if self.status is BookingStatus.ATTENDED else None


@dataclass
class GateSlot:
    slot_id: int
    starts_at: datetime
    ends_at: datetime
    capacity: int
    seats_taken: int
    bookings: list[GateBooking] = field(default_factory=list)
    # Why nobody visits at this time (a closure of the day or of this time), if it is closed.
    closed: str | None = None

    @property
    def visitors(self) -> int:
        return sum(len(b.visitors) for b in self.bookings)


_SLOT_COLUMNS = (
    Slot.id,
    Slot.starts_at,
    Slot.ends_at,
    Slot.local_date,  # for the closures (visits.schedule.closure_for)
    Slot.capacity,
    Slot.seats_taken,
)


def day_list(session: Session, prison: Prison, day: date, now: datetime) -> list[GateSlot]:
    """Every slot of the prison's ``day`` (in its own time), with its bookings and visitors
    in the order they were booked: those still offered, and those the schedule withdrew that
    still hold bookings (see :func:`visits.booking.slot_in_use`). A time closed (the whole
    day or that time, :mod:`visits.closing` or the prison file) says why; the day's closures
    are read once. A visit stopped and left for the gate (by ``now``) says why."""
    start = local_moment(day, time(), prison.tz)
    end = local_moment(day + timedelta(days=1), time(), prison.tz)
    closures = closures_between(session, prison.id, day, day)
    slots = {}
    for row in session.execute(
        select(*_SLOT_COLUMNS)
        .where(Slot.prison_id == prison.id, Slot.starts_at >= start, Slot.starts_at < end)
        .where(slot_in_use())  # a time removed from the schedule, kept for its bookings
        .order_by(Slot.starts_at)
    ):
        closure = closure_for(closures, row, prison.tz)
        slots[row.id] = GateSlot(
            row.id, row.starts_at, row.ends_at, row.capacity, row.seats_taken,
            closed=closure.reason if closure is not None else None,
        )  # fmt: skip
    rows = session.execute(
        select(
            Booking.slot_id,
            Booking.id,
            Booking.reference,
            Booking.status,
            Booking.family_confirmed_at,
            Inmate.id,
            Inmate.wing_id,
            Inmate.code,
            Inmate.first_names,
            Inmate.last_name_1,
            Inmate.last_name_2,
            Wing.name,
            BookingVisitor.first_names,
            BookingVisitor.last_names,
            BookingVisitor.birth_date,
            BookingVisitor.high_risk,
            BookingVisitor.relationship,
            Visitor.doc_type,
            Visitor.doc_number,
            BookingVisitor.id,
            GateCheck.status,
            GateCheck.reason,
            GateCheck.note,
            GateCheck.at,
            Visitor.id,
        )
        .join(Inmate, Booking.inmate_id == Inmate.id)
        .outerjoin(Wing, Inmate.wing_id == Wing.id)
        .join(BookingVisitor, BookingVisitor.booking_id == Booking.id)
        .join(Visitor, BookingVisitor.visitor_id == Visitor.id)
        .outerjoin(GateCheck, GateCheck.booking_visitor_id == BookingVisitor.id)
        .where(Booking.slot_id.in_(list(slots)), Booking.status.in_(LISTED))
        .order_by(Booking.slot_id, Booking.id, BookingVisitor.position)
    ).all()
    refused = refused_for_symptoms(session, prison, {row[-1] for row in rows}, day)
    advisories = in_force(session, prison.id, day)
    current: GateBooking | None = None
    # booking id: the inmate, and the person (Visitor id) of each of its visitors
    whom: dict[int, tuple[int, dict[int, int]]] = {}
    for (
        slot_id, booking_id, reference, status, confirmed_at, inmate_id, wing_id, inmate_code,
        inmate_first, surname_1, surname_2, wing, first_names, last_names, birth_date, high_risk,
        relationship, doc_type, doc_number, visitor_id, gate_status, gate_reason, gate_note,
        gate_at, person_id,
    ) in rows:  # fmt: skip
        if current is None or current.id != booking_id:
            inmate = f"{inmate_first} {surname_1} {surname_2}".strip()
            measures = measures_for(advisories, prison.id, wing_id, inmate_id, day)
            current = GateBooking(
                booking_id, reference, status, inmate_code, inmate, wing or "", measures=measures,
                family_confirmed_at=confirmed_at,
            )  # fmt: skip
            slots[slot_id].bookings.append(current)
            whom[booking_id] = (inmate_id, {})
        whom[booking_id][1][visitor_id] = person_id
        age = age_on(birth_date, day)
        current.visitors.append(
            GateVisitor(
                id=visitor_id,
                name=f"{first_names} {last_names}",
                doc_type=doc_type,
                doc_number=doc_number,
                age_group=_group(age, prison.adult_age),
                relationship=relationship,
                high_risk=high_risk,
                kept_away=health.kept_away(current.measures, age, high_risk),
                gate_status=gate_status,
                gate_reason=gate_reason,
                gate_note=gate_note or "",
                gate_at=gate_at,
                refused_for_symptoms=refused.get(person_id),
            )
        )
    _flag_stopped(session, prison, day, now, list(slots.values()), whom)
    everyone = [v for slot in slots.values() for b in slot.bookings for v in b.visitors]
    found = screening.outcomes(session, [v.id for v in everyone], visit_day=day)
    for visitor in everyone:
        visitor.screened.update(found.get(visitor.id, {}))
    return list(slots.values())


def _flag_stopped(
    session: Session,
    prison: Prison,
    day: date,
    now: datetime,
    slots: list[GateSlot],
    whom: dict[int, tuple[int, dict[int, int]]],
) -> None:
    """Say on each booking a stop leaves for the gate (someone of it came in, or its visit
    time has begun: :func:`visits.stopping.left_for_gate`) why visits are stopped for it, if
    they are (:func:`visits.stopping.stop_cause`), and which of its visitors are barred (the
    gate may not let them in): three reads, and none when no such booking is listed (nobody
    came in, and no confirmed visit's time has begun)."""
    left = [
        (s, b)
        for s in slots
        for b in s.bookings
        if stopping.left_for_gate(b.status, s.starts_at, now)
    ]
    if not left:
        return
    inmates = stopping.inmate_causes(session, [whom[b.id][0] for _, b in left], day)
    people = {person for _, b in left for person in whom[b.id][1].values()}
    barred = stopping.barred(session, prison.id, people, day)
    for slot, booking in left:
        inmate_id, in_it = whom[booking.id]
        booking.stopped = stopping.stop_cause(
            closed=slot.closed is not None,
            inmate=inmates.get(inmate_id),
            barred=bool(set(in_it.values()) & barred),
            health_paused=booking.measures.suspended,
        )
        booking.visitors = [
            replace(v, barred=True) if in_it[v.id] in barred else v for v in booking.visitors
        ]


# How long a turn-away for symptoms at the gate is shown on the person's later visits: the
# screening's own window (fever "in the last two weeks").
SYMPTOMS_REMEMBERED_DAYS = 14


def refused_for_symptoms(
    session: Session, prison: Prison, people: set[int], day: date
) -> dict[int, date]:
    """The people (:class:`Visitor` ids) among ``people`` this prison's gate turned away for
    symptoms (a screening there that found one, :data:`Outcome.REFER`, not undone) in the
    :data:`SYMPTOMS_REMEMBERED_DAYS` before ``day``, with the last such day: one read for a
    whole day's list. A new booking with no symptoms declared is not refused (that is a
    health policy's call), but the guard asks the questions with care.

    Decision: this prison's gate only. A visitor is one person across prisons, so reading
    every prison's would be one condition less; but a guard sees only their prison's
    visits (DESIGN, invariant 5), and a screening outcome is health data kept to the visit
    it was asked for (invariant 6): whether to share it between prisons is a health
    policy's decision, as refusing the booking would be."""
    if not people:
        return {}
    rows = session.execute(
        select(BookingVisitor.visitor_id, func.max(Screening.day))
        .join(Screening, Screening.booking_visitor_id == BookingVisitor.id)
        .join(Booking, BookingVisitor.booking_id == Booking.id)
        .where(
            BookingVisitor.visitor_id.in_(people),
            Booking.prison_id == prison.id,
            Screening.stage == Stage.GATE,
            Screening.outcome == Outcome.REFER,
            Screening.day >= day - timedelta(days=SYMPTOMS_REMEMBERED_DAYS),
            Screening.day < day,
        )
        .group_by(BookingVisitor.visitor_id)
    )
    return {person: last for person, last in rows}


@dataclass(frozen=True)
class VisitorAtGate:
    """One visitor of a booking of this prison, for the gate's forms (not let in, health
    questions), with what stands now: a form opened from a list loaded before another guard
    acted says so, and offers no step the gate would refuse (:func:`booking_at_gate`)."""

    id: int
    name: str
    doc_type: DocumentType
    doc_number: str
    reference: str
    day: date
    status: BookingStatus
    on_the_day: bool  # the visit is today: the only day the gate records it
    recorded: GateRecord | None = None  # what the gate recorded for this visitor
    # Who put the booking in its status, and when (the history's), once nothing more can be
    # recorded on it (nobody came, or cancelled); none found: blank.
    changed_by: str = ""
    changed_at: datetime | None = None

    @property
    def open(self) -> bool:
        """Whether the gate may record on this visitor now."""
        return self.on_the_day and self.status in _AT_GATE


# The bookings the gate records on (:func:`booking_at_gate`).
_AT_GATE = (BookingStatus.CONFIRMED, BookingStatus.ATTENDED)
# The history's actions that leave a booking in a status the gate no longer records on.
_CLOSED_BY = {
    BookingStatus.NO_SHOW: ("booking.no_show",),
    BookingStatus.CANCELLED: CANCELLED_ACTIONS,
}


def visitor_at_gate(
    session: Session, prison: Prison, visitor_id: int, now: datetime
) -> VisitorAtGate | None:
    row = session.execute(
        select(
            BookingVisitor.id,
            BookingVisitor.first_names,
            BookingVisitor.last_names,
            Visitor.doc_type,
            Visitor.doc_number,
            Booking.reference,
            BookingVisitor.visit_date,
            Booking.status,
        )
        .join(Booking, BookingVisitor.booking_id == Booking.id)
        .join(Visitor, BookingVisitor.visitor_id == Visitor.id)
        .where(BookingVisitor.id == visitor_id, Booking.prison_id == prison.id)
    ).first()
    if row is None:
        return None
    check = session.get(GateCheck, visitor_id)
    found = VisitorAtGate(
        row[0], f"{row[1]} {row[2]}", row[3], row[4], row[5], row[6], row[7],
        on_the_day=row[6] == prison.local_date(now),
        recorded=GateRecord.of(check) if check is not None else None,
    )  # fmt: skip
    if found.status not in _CLOSED_BY:
        return found
    event = latest_event(session, found.reference, _CLOSED_BY[found.status])
    if event is None:
        return found
    return replace(found, changed_by=event.actor, changed_at=event.at.astimezone(prison.tz))


# --- Check-in ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who acts at the gate, and from where, for the audit trail."""

    name: str  # "staff:<username>"
    origin: str


def _gate_booking(
    session: Session,
    prison: Prison,
    booking_id: int | None,
    now: datetime,
    statuses: tuple[BookingStatus, ...] = (BookingStatus.CONFIRMED, BookingStatus.ATTENDED),
    *,
    later_days: bool = False,
) -> Booking:
    """The booking, locked, if the gate may record on it now (else Rejected): one of this
    prison, in one of ``statuses``, whose visit is today (or, with ``later_days``, was)."""
    require_write_lock(session)
    if booking_id is None:
        raise Rejected([Problem(Code.BOOKING_NOT_FOUND)])
    lock_rows(session, Booking.id, [booking_id])
    booking = session.get(Booking, booking_id, populate_existing=True)
    if booking is None or booking.prison_id != prison.id:
        raise Rejected([Problem(Code.BOOKING_NOT_FOUND)])
    if booking.status not in statuses:
        raise Rejected([Problem(Code.BOOKING_NOT_ACTIVE)])
    today, day = prison.local_date(now), booking.slot.local_date
    if day != today and not (later_days and day < today):
        raise Rejected([Problem(Code.NOT_THE_VISIT_DAY, None, {"day": day})])
    return booking


def booking_at_gate(
    session: Session,
    prison: Prison,
    visitor_id: int,
    now: datetime,
    statuses: tuple[BookingStatus, ...] = (BookingStatus.CONFIRMED, BookingStatus.ATTENDED),
) -> tuple[Booking, BookingVisitor]:
    booking_id = session.scalar(
        select(BookingVisitor.booking_id).where(BookingVisitor.id == visitor_id)
    )
    booking = _gate_booking(session, prison, booking_id, now, statuses)
    visitor = next(v for v in booking.visitors if v.id == visitor_id)
    return booking, visitor


def _checks(session: Session, booking: Booking) -> dict[int, GateCheck]:
    ids = [v.id for v in booking.visitors]
    found = session.scalars(select(GateCheck).where(GateCheck.booking_visitor_id.in_(ids)))
    return {check.booking_visitor_id: check for check in found}


@dataclass(frozen=True)
class SeenAtGate:
    """What the gate recorded for one visitor, as the family's page says it: never the guard's
    reason or note, only whether the gate's health questions called for a free TB check (the
    advice the family's SMS and page already give that visitor)."""

    let_in: bool
    day: date
    tb_check: bool = False


@dataclass(frozen=True)
class VisitDay:
    """What the family's booking page says of the visit's day: the gate's record of each
    visitor (by booking visitor id), and whether the visit is still to come, the one thing
    that decides whether the advice for before it (documents, arriving early, the health
    advice and measures) is given: not once the gate saw someone or the visit time is over
    (while it lasts, a late family may still be on its way)."""

    at_gate: dict[int, SeenAtGate]
    before_visit: bool


def visit_day(session: Session, booking: Booking, now: datetime) -> VisitDay:
    checks = _checks(session, booking)
    day = booking.slot.local_date
    found = screening.outcomes(session, list(checks), visit_day=day)
    at_gate = {
        id_: SeenAtGate(
            let_in=check.status is GateStatus.ARRIVED,
            day=booking.prison.local_date(check.at),
            tb_check=check.reason is TurnAwayReason.HEALTH
            and found.get(id_, {}).get(Stage.GATE) is Outcome.REFER,
        )
        for id_, check in checks.items()
    }
    before = booking.is_active and not at_gate and now < booking.slot.ends_at
    return VisitDay(at_gate, before)


def record_arrival(
    session: Session, *, prison: Prison, visitor_id: int, actor: Actor, now: datetime
) -> Booking:
    """A visitor came in: the booking is attended. Said twice (a double click, two guards),
    it is recorded once. Refused for a visitor the visit's health measures keep away (the
    rules that mark them on the list: visits to the person paused, :func:`paused_problem`, or a
    high-risk visitor kept away, :func:`kept_away`), for one barred from the prison that
    day, and for anyone of a booking visits are stopped for once someone of it came in (a bar
    or any other cause made since leaves it for the gate: :func:`stopped_problem`): they can
    only be turned away."""
    booking, visitor = booking_at_gate(session, prison, visitor_id, now)
    if _unchanged(session, visitor, GateStatus.ARRIVED, None, ""):
        return booking
    measures = for_booking(session, booking)
    if measures.suspended:
        raise Rejected([paused_problem(booking, visitor)])
    if why := kept_away(session, booking, visitor, measures=measures):
        raise Rejected([kept_away_problem(why, visitor.full_name)])
    if refused := stopped_problem(session, prison, booking, visitor, now):
        raise Rejected([refused])
    _record(session, visitor, GateStatus.ARRIVED, None, "", actor, now)
    booking.status, booking.updated_at = BookingStatus.ATTENDED, now
    _audit(session, booking, visitor, "visitor.arrived", actor, now)
    return booking


# Why the gate lets nobody more of a booking in, once someone of it came in, by what stopped
# its visit since (:func:`visits.stopping.stop_cause`; a health pause: :func:`paused_problem`).
_STOPPED = {
    CancelCause.CLOSED: Code.VISIT_STOPPED_CLOSED,
    CancelCause.INMATE_SUSPENDED: Code.VISIT_STOPPED_INMATE_SUSPENDED,
    CancelCause.INMATE_NOT_ACTIVE: Code.VISIT_STOPPED_INMATE_NOT_ACTIVE,
    CancelCause.VISITOR_BARRED: Code.VISIT_STOPPED_BARRED,
}


def stopped_problem(
    session: Session, prison: Prison, booking: Booking, visitor: BookingVisitor, now: datetime
) -> Problem | None:
    """Why the gate may not let the visitor in beside the health measures, if it may not: she
    is barred from the prison that day, or its visit is stopped and the booking was left for
    the gate (someone of it came in, or its time had begun: :func:`visits.stopping.left_for_gate`),
    which lets nobody more of it in, as the list says (:meth:`GateBooking.shut_out`)."""
    name = visitor.full_name
    if stopping.barred(session, prison.id, [visitor.visitor_id], booking.slot.local_date):
        return Problem(Code.VISITOR_SUSPENDED, None, {"name": name})
    if not stopping.left_for_gate(booking.status, booking.slot.starts_at, now):
        return None
    stop = stopping.stopped(session, booking)
    if stop is None:
        return None
    if stop.cause is CancelCause.HEALTH_SUSPENDED:
        return paused_problem(booking, visitor)
    reason = stop.closure.reason if stop.closure is not None else ""
    params = {"name": name, "inmate": _inmate_name(booking), "reason": reason}
    return Problem(_STOPPED[stop.cause], None, params)


def _inmate_name(booking: Booking) -> str:
    inmate = booking.inmate
    return f"{inmate.first_names} {inmate.last_name_1} {inmate.last_name_2}".strip()


def paused_problem(booking: Booking, visitor: BookingVisitor) -> Problem:
    """The refusal at the gate of a visitor whose visit a health measure pauses.

    Issuing a suspension cancels the bookings still to come (:mod:`visits.issuing`); one whose
    visit time had already begun stays on the day's list, tagged "visits paused", and whoever
    of it has not come in yet is kept out like a child under 5 under a no-high-risk measure.
    """
    name = _inmate_name(booking)
    return Problem(Code.HEALTH_SUSPENDED, None, {"name": visitor.full_name, "inmate": name})


def kept_away(
    session: Session,
    booking: Booking,
    visitor: BookingVisitor,
    *,
    declared: bool = False,
    measures: Measures | None = None,
) -> HighRisk | None:
    """Why the health measures in force for the booking's visit keep this visitor away, if
    they do (:func:`visits.health.kept_away`, as on the day's list); ``declared``: the gate
    was just told the visitor is pregnant or has low defences. ``measures``: the visit's,
    when the caller already read them."""
    age = age_on(visitor.birth_date, booking.slot.local_date)
    declared = declared or visitor.high_risk
    if measures is None:
        measures = for_booking(session, booking)
    return health.kept_away(measures, age, declared)


def _unchanged(
    session: Session,
    visitor: BookingVisitor,
    status: GateStatus,
    reason: TurnAwayReason | None,
    note: str,
) -> bool:
    """Whether the gate already recorded exactly this. Anything else recorded first must be
    undone first: a guard on a page loaded before another guard acted never overwrites."""
    check = session.get(GateCheck, visitor.id, populate_existing=True)
    if check is None:
        return False
    if _says(check, status, reason, note):
        return True
    raise Rejected([Problem(Code.ALREADY_RECORDED, None, {"name": visitor.full_name})])


def record_time(at: datetime) -> str:
    """A gate record's time as the list's undo form carries it, to the microsecond: what
    tells a record from one made again since with the same words."""
    return at.astimezone(UTC).isoformat()


def _says(check: GateCheck, status: GateStatus, reason: TurnAwayReason | None, note: str) -> bool:
    """Whether the gate's record is exactly this (a note's line breaks as a browser sends
    them or not): how a step tells a repeat of itself from a page that is out of date."""
    return (
        check.status is status
        and check.reason is reason
        and check.note.strip().splitlines() == note.strip().splitlines()
    )


def record_turned_away(
    session: Session,
    *,
    prison: Prison,
    visitor_id: int,
    reason: str,
    note: str,
    actor: Actor,
    now: datetime,
) -> Booking:
    """A visitor was not let in: a reason from the list (none chosen is refused like one not
    on it: the form opens with none), and what the guard adds (required for "other")."""
    problems = []
    if reason not in set(TurnAwayReason):
        problems.append(Problem(Code.INVALID_CHOICE, "reason"))
    if len(note) > MAX_NOTE:
        problems.append(Problem(Code.TOO_LONG, "note", {"max": MAX_NOTE}))
    elif reason == TurnAwayReason.OTHER and not note.strip():
        problems.append(Problem(Code.REQUIRED, "note"))
    reject_if(problems)
    booking, visitor = booking_at_gate(session, prison, visitor_id, now)
    why = TurnAwayReason(reason)
    if _unchanged(session, visitor, GateStatus.TURNED_AWAY, why, note.strip()):
        return booking
    _record(session, visitor, GateStatus.TURNED_AWAY, why, note.strip(), actor, now)
    if not any(c.status is GateStatus.ARRIVED for c in _checks(session, booking).values()):
        booking.status = BookingStatus.CONFIRMED
    booking.updated_at = now
    _audit(session, booking, visitor, "visitor.turned_away", actor, now, turn_away_reason=why.value)
    return booking


@dataclass(frozen=True)
class GateRecord:
    """What the gate recorded for one visitor, who recorded it and when (``by``: the history's
    actor): what a guard whose page was loaded before is told stands."""

    status: GateStatus
    reason: TurnAwayReason | None
    by: str
    at: datetime

    @classmethod
    def of(cls, check: GateCheck) -> GateRecord:
        return cls(check.status, check.reason, check.by, check.at)

    @property
    def inside(self) -> bool:
        return self.status is GateStatus.ARRIVED


@dataclass(frozen=True)
class Screened:
    """What the gate's screening decided for a visitor."""

    booking: Booking
    outcome: Outcome
    # Why a health measure keeps the visitor away, if one does: high risk (under 5, or
    # pregnant or with low defences) where high-risk visitors are kept away.
    kept_away: HighRisk | None = None
    paused: bool = False  # a health measure pauses visits to the person visited
    # Why the gate may not let the visitor in otherwise (barred, or the visit stopped since
    # someone of it came in: :func:`stopped_problem`), whatever the answers.
    refused: Problem | None = None
    # What another guard recorded for the visitor while the questions were open (let in, or
    # turned away for another reason), left as it stands: :func:`screen_at_gate`.
    standing: GateRecord | None = None

    @property
    def let_in(self) -> bool:
        return (
            self.outcome is not Outcome.REFER
            and not self.kept_away
            and not self.paused
            and self.refused is None
        )


def screen_at_gate(
    session: Session,
    *,
    prison: Prison,
    visitor_id: int,
    answers: Answers,
    actor: Actor,
    now: datetime,
    sms_policy: SmsPolicy,
) -> Screened:
    """The guard's screening of a visitor on the visit day (see :mod:`visits.screening`). Any
    symptom, a high-risk visitor (or one under 5) where a measure keeps them away, or visits
    to the person paused: the visitor is not let in (a health turn-away). Any symptom, or
    living with someone with TB: the family is told where to get a free check (once a day).
    A visitor the gate may not let in for another reason (barred, or the visit stopped:
    :func:`stopped_problem`) is told so, whatever the answers; what the answers found is still
    recorded as for anyone (a health turn-away, the advice SMS): it matters on later visits.
    A visitor found with symptoms stays so until a guard undoes the turn-away: a page loaded
    earlier never clears it.

    Decision: answers given while another guard recorded the visitor (let in, or turned away
    for another reason, after the questions were opened) are recorded all the same, and the
    advice SMS goes: symptoms of TB found at the gate are never lost to a race between two
    guards. The other guard's record stands (it is not overwritten, as no stale page
    overwrites: :func:`_unchanged`), and the guard who asked is told what it is, who made it
    and when (:attr:`Screened.standing`): a visitor with symptoms who is already inside is
    the gate's to fetch out, as the screening page then says; the list marks her answers."""
    booking, visitor = booking_at_gate(session, prison, visitor_id, now)
    earlier = screening.outcomes(session, [visitor.id]).get(visitor.id, {}).get(Stage.GATE)
    if earlier is Outcome.REFER and answers.outcome is not Outcome.REFER:
        raise Rejected([Problem(Code.ALREADY_RECORDED, None, {"name": visitor.full_name})])
    high_risk = visitor.high_risk or answers.high_risk
    measures = for_booking(session, booking)
    why = kept_away(session, booking, visitor, declared=answers.high_risk, measures=measures)
    refused = stopped_problem(session, prison, booking, visitor, now)
    check = session.get(GateCheck, visitor.id, populate_existing=True)
    standing = None
    if check is not None and not _says(check, GateStatus.TURNED_AWAY, TurnAwayReason.HEALTH, ""):
        standing = GateRecord.of(check)
    elif answers.outcome is Outcome.REFER or why or measures.suspended:
        record_turned_away(
            session, prison=prison, visitor_id=visitor_id, reason=TurnAwayReason.HEALTH,
            note="", actor=actor, now=now,
        )  # fmt: skip
    visitor.high_risk = high_risk
    screening.record(session, visitor.id, Stage.GATE, answers, now, actor.name, prison)
    if answers.outcome is not Outcome.CLEAR:
        key = f"{sms.subject(booking)}:advice:gate:{prison.local_date(now).isoformat()}"
        sms.queue_screening_advice(session, booking, sms_policy, now, key)
    # The outcome is health data: the audit says a screening happened, not what it found.
    _audit(session, booking, visitor, "visitor.screened", actor, now)
    return Screened(booking, answers.outcome, why, measures.suspended, refused, standing)


# The bookings an undo applies to, or says why it does not (a cancelled one: see below).
_UNDO_STEPS = (BookingStatus.CONFIRMED, BookingStatus.ATTENDED, BookingStatus.CANCELLED)


def undo_gate(
    session: Session,
    *,
    prison: Prison,
    visitor_id: int,
    was: str,
    reason: str = "",
    note: str = "",
    recorded_at: str | None = None,
    actor: Actor,
    now: datetime,
    sms_policy: SmsPolicy,
) -> Booking:
    """A mistake at the gate: the visitor is expected again (and the booking confirmed again
    when nobody else of it came in). The audit trail keeps what was undone.

    ``was``, ``reason``, ``note`` and ``recorded_at`` (:func:`record_time` of the record): the
    record the guard saw and undoes, as the list showed it. A record that is no longer that
    one (another guard undid it and recorded something else after the page was loaded, even
    the same thing again: a turn-away for symptoms undone and made again must not be cleared
    by a stale page) is refused, never erased, as an arrival or a turn-away from such a page
    is (:func:`_unchanged`); none left to undo (a double click, or undone already) is what
    was asked, and nothing is recorded. The pages always name the time (none sent is
    refused); ``None`` is for callers without a list (scripts, tests).

    Decision: a turn-away under a booking cancelled since (by the family, staff, a closure, a
    health measure) is not undone: it is refused in words that say so
    (``gate_booking_cancelled``), not as "not confirmed, look at the list again", which a
    list without cancelled bookings cannot answer. The gate records only confirmed bookings
    (see the README's gate section); the cancellation gave the seats back and kept the day
    for the visitor the gate saw (:func:`visits.booking.cancel_booking`) with that record in
    place, and undoing it now would change what the cancellation decided, on a booking no
    list shows any more. A mistake is undone while the booking stands.

    Decision: a check-in undone on a booking a closure, a suspension (of visits to the
    person, or a bar of one of its visitors), a roster import (the person no longer visitable
    here, or their visits suspended) or a health pause made since left alone (it was
    attended: :mod:`visits.stopping`) is cancelled by the undo with that cause, as it would
    have cancelled it, when its visit is still to come: seats back, the family told by SMS
    (and, for a health pause, told when it is lifted). Refusing the undo instead would keep a
    mistaken "came in" on the list, and a family who never came would not learn their visit
    is off; leaving it confirmed would offer them a visit that may not take place. The undo
    is the guard's, and the booking leaves the list (cancelled bookings are not listed).

    Decision: an arrival (or a turn-away for another reason) undone for a visitor whose
    health questions found symptoms while it stood (:func:`screen_at_gate`) leaves her turned
    away for health, not expected again: the symptoms stay recorded, and she is not let in
    that day, as if the answers had come first. Undoing that turn-away, in turn, clears them
    (a mistake); undoing any other record never clears her answers."""
    booking, visitor = booking_at_gate(session, prison, visitor_id, now, _UNDO_STEPS)
    check = session.get(GateCheck, visitor.id, populate_existing=True)
    if check is None:
        return booking
    if booking.status is BookingStatus.CANCELLED:
        name = visitor.full_name
        raise Rejected([Problem(Code.GATE_BOOKING_CANCELLED, None, {"name": name})])
    shown = GateStatus(was) if was in set(GateStatus) else None
    why = TurnAwayReason(reason) if reason in set(TurnAwayReason) else None
    changed = recorded_at is not None and recorded_at != record_time(check.at)
    if shown is None or (reason and why is None) or changed or not _says(check, shown, why, note):
        raise Rejected([Problem(Code.GATE_RECORD_CHANGED, None, {"name": visitor.full_name})])
    at_gate = screening.outcomes(session, [visitor.id]).get(visitor.id, {}).get(Stage.GATE)
    health = shown is GateStatus.TURNED_AWAY and why is TurnAwayReason.HEALTH
    if at_gate is Outcome.REFER and not health:
        # Symptoms found while another record stood (screen_at_gate): she is turned away
        # for them, as the answers would have done, and they stay recorded.
        _record(session, visitor, GateStatus.TURNED_AWAY, TurnAwayReason.HEALTH, "", actor, now)
        _audit(session, booking, visitor, "visitor.turned_away", actor, now,
               turn_away_reason=TurnAwayReason.HEALTH.value)  # fmt: skip
    else:
        session.delete(check)
    if health:
        # A health turn-away undone takes its screening with it (and a high-risk tick the
        # gate added): the guard asks again. Any other record undone leaves what her answers
        # said (a guard asking again records the new answers over them).
        screening.forget(session, visitor.id, Stage.GATE)
        visitor.high_risk = screening.high_risk_at_booking(session, visitor.id)
    session.flush()
    if not any(c.status is GateStatus.ARRIVED for c in _checks(session, booking).values()):
        booking.status = BookingStatus.CONFIRMED
    booking.updated_at = now
    _audit(session, booking, visitor, "visitor.gate_undone", actor, now, was=shown.value)
    if booking.status is BookingStatus.CONFIRMED:
        stopping.apply_to_undone(
            session, booking, now=now, actor=actor.name, origin=actor.origin,
            sms_policy=sms_policy,
        )  # fmt: skip
    return booking


# The bookings "nobody came" and its undo apply to, or find already done.
_NO_SHOW_STEPS = (BookingStatus.CONFIRMED, BookingStatus.ATTENDED, BookingStatus.NO_SHOW)


def booking_day(
    session: Session,
    prison: Prison,
    *,
    visitor_id: int | None = None,
    booking_id: int | None = None,
) -> date | None:
    """The visit day of a booking of this prison, named by its id or one of its visitors'
    (``None``: no such booking here): the list a refusal at the gate is shown on."""
    query = select(Slot.local_date).join(Booking, Booking.slot_id == Slot.id)
    if visitor_id is not None:
        query = query.join(BookingVisitor, BookingVisitor.booking_id == Booking.id)
        query = query.where(BookingVisitor.id == visitor_id)
    else:
        query = query.where(Booking.id == booking_id)
    return session.scalar(query.where(Booking.prison_id == prison.id))


# The history's actions that cancel a booking (:func:`visits.booking.cancel_booking`, and a
# hold that ran out): the latest says why it was cancelled.
@dataclass(frozen=True)
class NamedBooking:
    """A booking a guard's search names (by its reference, or a visitor's document number)
    that the day's list searched does not show: another day's (or another prison's the guard
    also serves), or cancelled. The gate can then tell a family that came on the wrong day,
    or did not see the SMS, why.
    Times are in the booking's prison's own."""

    reference: str
    prison_code: str
    prison_name: str
    starts_at: datetime
    status: BookingStatus
    cancelled_at: datetime | None = None
    why: str = ""  # the history's action that cancelled it (its label says why), if known
    by: str = ""  # who cancelled it (the history's actor)
    reason: str = ""  # the words staff gave, if any
    # The next booking of a visitor searched by document number (:func:`search_document`).
    following: bool = False

    @property
    def day(self) -> date:
        return self.starts_at.date()


def named_booking(
    session: Session, reference: str, user: StaffUser, prison: Prison, day: date
) -> NamedBooking | None:
    """The booking ``reference`` names, if ``user`` serves its prison and the list of
    ``prison``'s ``day`` does not show it (:data:`LISTED`); ``None`` otherwise, so a
    reference of a prison the guard does not serve reads like one that does not exist."""
    booking = session.scalar(select(Booking).where(Booking.reference == reference))
    if booking is None or not user.covers(booking.prison_id):
        return None
    listed = booking.status in LISTED
    if listed and booking.prison_id == prison.id and booking.slot.local_date == day:
        return None
    return _named(session, booking)


def cancelled_of(
    session: Session, prison: Prison, people: Sequence[int], day: date
) -> list[NamedBooking]:
    """The bookings of ``prison``'s ``day`` the list does not show (cancelled, or a hold that
    ran out) with one of these visitors (those of a document number: :func:`holders`), by
    time: a guard searching a visitor's number is told why she is not on the list, as a
    search by reference tells (:func:`named_booking`). This prison only: the list searched is
    one the guard serves."""
    found = session.scalars(
        select(Booking)
        .join(Slot, Booking.slot_id == Slot.id)
        .join(BookingVisitor, BookingVisitor.booking_id == Booking.id)
        .where(
            Booking.prison_id == prison.id,
            Slot.local_date == day,
            Booking.status.not_in(LISTED),
            BookingVisitor.visitor_id.in_(people),
        )
        .order_by(Slot.starts_at, Booking.id)
    ).unique()
    return [_named(session, booking) for booking in found]


def holders(session: Session, doc_number: str) -> list[int]:
    """The visitors (ids) with this document number (as stored: :func:`document_key`), of any
    document type: read through the (type, number) index, as a bare number would read every
    visitor."""
    kinds = list(DocumentType)
    query = select(Visitor.id).where(Visitor.doc_type.in_(kinds), Visitor.doc_number == doc_number)
    return list(session.scalars(query))


def _named(session: Session, booking: Booking) -> NamedBooking:
    """What the gate is told of a booking its list does not show."""
    tz = booking.prison.tz
    listed = booking.status in LISTED
    named = NamedBooking(
        booking.reference,
        booking.prison.code,
        booking.prison.name,
        booking.slot.starts_at.astimezone(tz),
        booking.status,
    )
    if listed:
        return named
    event = cancellation_event(session, booking)
    when = booking.cancelled_at or booking.updated_at
    if event is None:
        return replace(named, cancelled_at=when.astimezone(tz))
    reason = str((event.details or {}).get("reason", ""))
    return replace(
        named, cancelled_at=when.astimezone(tz), why=event.action, by=event.actor, reason=reason
    )


def record_no_show(
    session: Session, *, prison: Prison, booking_id: int, actor: Actor, now: datetime
) -> Booking:
    """Nobody of the booking came to the gate: said once its visit time is over, that day or
    later (a list left unmarked at closing can be completed the next day). Said again (a
    double click, two guards), it is recorded once.

    Decision: refused (``nobody_may_come_in``, and not offered on the list:
    :attr:`GateBooking.nobody_may_come_in`) when the visit's health measures keep every
    visitor of it out (visits paused, or each one high risk where they are kept away), as
    the gate would have (:func:`record_arrival`). Nobody could have come in, so nobody
    failed to come: counted as a no-show it would swell the no-show figures of the reports
    with visits a health measure called off. Such a booking stays confirmed."""
    booking = _gate_booking(session, prison, booking_id, now, _NO_SHOW_STEPS, later_days=True)
    if booking.status is BookingStatus.NO_SHOW:
        return booking
    if booking.status is not BookingStatus.CONFIRMED or _checks(session, booking):
        raise Rejected([Problem(Code.CAME_TO_THE_GATE)])
    # Asked the health questions at the gate that day (no symptoms, so no turn-away, and not
    # marked as let in yet): they came.
    found = screening.outcomes(
        session, [v.id for v in booking.visitors], visit_day=booking.slot.local_date
    )
    if screened := [v for v in booking.visitors if Stage.GATE in found.get(v.id, {})]:
        name = screened[0].full_name
        raise Rejected([Problem(Code.SCREENED_AT_THE_GATE, None, {"name": name})])
    measures = for_booking(session, booking)
    if measures.suspended or all(
        kept_away(session, booking, v, measures=measures) for v in booking.visitors
    ):
        raise Rejected([Problem(Code.NOBODY_MAY_COME_IN)])
    if now < booking.slot.ends_at:
        raise Rejected([Problem(Code.VISIT_NOT_OVER)])
    booking.status, booking.updated_at = BookingStatus.NO_SHOW, now
    _audit(session, booking, None, "booking.no_show", actor, now)
    return booking


def undo_no_show(
    session: Session, *, prison: Prison, booking_id: int, actor: Actor, now: datetime
) -> Booking:
    """A no-show said by mistake: the booking is confirmed again. Said again (a double click,
    two guards), it is done once: a booking that is no longer a no-show is left as it is."""
    booking = _gate_booking(session, prison, booking_id, now, _NO_SHOW_STEPS, later_days=True)
    if booking.status is not BookingStatus.NO_SHOW:
        return booking
    booking.status, booking.updated_at = BookingStatus.CONFIRMED, now
    _audit(session, booking, None, "booking.no_show_undone", actor, now)
    return booking


def _record(
    session: Session,
    visitor: BookingVisitor,
    status: GateStatus,
    reason: TurnAwayReason | None,
    note: str,
    actor: Actor,
    now: datetime,
) -> None:
    check = session.get(GateCheck, visitor.id)
    if check is None:
        check = GateCheck(booking_visitor_id=visitor.id)
        session.add(check)
    check.status, check.reason, check.note = status, reason, note
    check.at, check.by = now, actor.name


# The keys of a gate step's details that tell what the gate found of a visitor: why they were
# not let in ("health": symptoms, or a measure that keeps them out). Gate records go when the
# visit's data is purged, and these go with them from its history (visits.retention).
FINDINGS = ("turn_away_reason",)


def _audit(
    session: Session,
    booking: Booking,
    visitor: BookingVisitor | None,
    action: str,
    actor: Actor,
    now: datetime,
    **details: object,
) -> None:
    """The step in the booking's history (``visitor``: whose step, counted from 1)."""
    if visitor is not None:
        details = {"visitor": visitor.position + 1, **details}
    audit.record(
        session,
        at=now,
        actor=actor.name,
        action=action,
        entity="booking",
        entity_id=booking.reference,
        details=details,
        origin=actor.origin,
    )


@dataclass(frozen=True)
class DocumentSearch:
    """What a guard's search by document number is told beyond the day's list: the bookings
    it does not show (:func:`cancelled_of`), the visitor's next confirmed booking on or after
    that day, not over yet, at a prison the guard serves (a family that came on the wrong day,
    or to the wrong prison), and the last day of a bar from this prison that covers that day
    (the gate may not let them in, with or without a booking)."""

    named: list[NamedBooking]
    barred_until: date | None = None

    def __bool__(self) -> bool:
        return bool(self.named or self.barred_until)


def search_document(
    session: Session, user: StaffUser, prison: Prison, doc_number: str, day: date, now: datetime
) -> DocumentSearch:
    """:class:`DocumentSearch` for a document number (as stored: :func:`document_key`) the
    list of ``prison``'s ``day`` does not show. Decision: nothing of a prison the guard does
    not serve is read, and only this prison's bars (never their reason, which is for
    administrators): a number of someone who booked only elsewhere reads like one nobody
    booked with."""
    people = holders(session, doc_number)
    if not people:
        return DocumentSearch([])
    bars = suspended_on(suspensions_from(session, prison.id, people, day), day)
    upcoming = (
        select(Booking)
        .join(Slot, Booking.slot_id == Slot.id)
        .join(BookingVisitor, BookingVisitor.booking_id == Booking.id)
        .where(
            BookingVisitor.visitor_id.in_(people),
            Booking.status == BookingStatus.CONFIRMED,  # a hold may yet run out
            Slot.local_date >= day,
            Slot.ends_at > now,  # a visit already over is nobody's next
            ~((Booking.prison_id == prison.id) & (Slot.local_date == day)),
        )
        .order_by(Slot.starts_at, Booking.id)
        .limit(1)
    )
    if not user.national:
        upcoming = upcoming.where(Booking.prison_id.in_([p.id for p in user.prisons]))
    following = session.scalar(upcoming)
    named = cancelled_of(session, prison, people, day)
    if following is not None:
        named.append(replace(_named(session, following), following=True))
    return DocumentSearch(named, max(bars.values(), default=None))
