"""Weekly schedule templates, closures, and the dated slots families book.

Slots are materialised from the templates for the booking window (and the day after it, ready
for its midnight: :func:`sync_slots`) so that each one is a row
with its own ``capacity`` and ``seats_taken``: the row a booking's conditional update targets.
Re-materialising never duplicates a slot (unique on prison and start) and never touches the
seats already taken.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    Time,
    UniqueConstraint,
    bindparam,
    case,
    column,
    delete,
    exists,
    or_,
    select,
    table,
    text,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from visits.base import Base, UTCDateTime, str_enum
from visits.db import insert_ignoring_conflicts
from visits.prison import Prison
from visits.problems import Problem
from visits.rules import VisitorGroup, last_bookable_day, window_problem

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class ScheduleTemplate(Base):
    """A weekly session: every ``weekday`` from ``start`` to ``end`` for ``capacity`` visitors."""

    __tablename__ = "schedule_template"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint("end_time > start_time", name="ends_after_start"),
        CheckConstraint("capacity >= 0", name="capacity_not_negative"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prison_id: Mapped[int] = mapped_column(ForeignKey("prison.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int]  # 0 = Monday, as date.weekday()
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    capacity: Mapped[int]
    visitor_group: Mapped[VisitorGroup] = mapped_column(
        str_enum(VisitorGroup), default=VisitorGroup.ANYONE
    )
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)


class Closure(Base):
    """A day (``start_time`` empty) or one session of a day on which nobody can visit.

    Closures come from the prison file (``created_by`` empty) or from an administrator in the
    browser; reloading the file changes only its own, never what staff closed."""

    __tablename__ = "closure"
    __table_args__ = (UniqueConstraint("prison_id", "day", "start_time"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prison_id: Mapped[int] = mapped_column(ForeignKey("prison.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    start_time: Mapped[time | None] = mapped_column(Time)
    reason: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Slot(Base):
    """One dated session. ``seats_taken`` only ever moves through conditional updates."""

    __tablename__ = "slot"
    __table_args__ = (
        UniqueConstraint("prison_id", "starts_at"),
        CheckConstraint("capacity >= 0", name="capacity_not_negative"),
        CheckConstraint("seats_taken >= 0", name="seats_not_negative"),
        # The backstop for invariant 1: even a buggy writer cannot overbook.
        CheckConstraint("seats_taken <= capacity", name="seats_within_capacity"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        Index("ix_slot_prison_day", "prison_id", "local_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prison_id: Mapped[int] = mapped_column(ForeignKey("prison.id", ondelete="CASCADE"))
    # Empty for a slot no template makes any more (kept because it holds bookings).
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("schedule_template.id", ondelete="SET NULL")
    )
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    local_date: Mapped[date] = mapped_column(Date)
    capacity: Mapped[int]
    seats_taken: Mapped[int] = mapped_column(default=0)
    visitor_group: Mapped[VisitorGroup] = mapped_column(
        str_enum(VisitorGroup), default=VisitorGroup.ANYONE
    )
    # Set when the schedule no longer has this slot but bookings (even cancelled ones) refer to
    # it: it stays for them, and takes no new booking.
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def seats_left(self) -> int:
        return max(self.capacity - self.seats_taken, 0)


# --- Pure generation -------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateRule:
    """What slot generation needs of a template (a row or a parsed configuration entry)."""

    weekday: int
    start_time: time
    end_time: time
    capacity: int
    visitor_group: VisitorGroup
    valid_from: date
    valid_to: date | None
    template_id: int | None = None

    def applies_on(self, day: date) -> bool:
        return (
            day.weekday() == self.weekday
            and self.valid_from <= day
            and (self.valid_to is None or day <= self.valid_to)
        )


@dataclass(frozen=True)
class SlotSpec:
    starts_at: datetime
    ends_at: datetime
    local_date: date
    capacity: int
    visitor_group: VisitorGroup
    template_id: int | None


def local_moment(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time at the prison."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def generate_slots(
    rules: Iterable[TemplateRule], first_day: date, last_day: date, tz: ZoneInfo
) -> list[SlotSpec]:
    """Every session the rules give from ``first_day`` to ``last_day`` inclusive, in order."""
    rules = list(rules)
    specs: list[SlotSpec] = []
    day = first_day
    while day <= last_day:
        for rule in rules:
            if rule.applies_on(day):
                specs.append(
                    SlotSpec(
                        starts_at=local_moment(day, rule.start_time, tz),
                        ends_at=local_moment(day, rule.end_time, tz),
                        local_date=day,
                        capacity=rule.capacity,
                        visitor_group=rule.visitor_group,
                        template_id=rule.template_id,
                    )
                )
        day += timedelta(days=1)
    specs.sort(key=lambda s: s.starts_at)
    return specs


def rule_of(template: ScheduleTemplate) -> TemplateRule:
    return TemplateRule(
        weekday=template.weekday,
        start_time=template.start_time,
        end_time=template.end_time,
        capacity=template.capacity,
        visitor_group=template.visitor_group,
        valid_from=template.valid_from,
        valid_to=template.valid_to,
        template_id=template.id,
    )


# --- Materialisation -------------------------------------------------------------------------


class ConflictKind(StrEnum):
    CAPACITY = "capacity"  # lowered only as far as the seats already booked
    WITHDRAWN = "withdrawn"  # no longer in the schedule, kept for its bookings
    REGROUPED = "regrouped"  # now for another visitor group, with bookings made before
    RETIMED = "retimed"  # now ends at another time, with bookings made before


@dataclass
class SlotConflict:
    """A schedule change that could not be applied in full, or needs staff to look at the
    bookings it affects."""

    kind: ConflictKind
    starts_at: datetime
    seats_taken: int
    wanted_capacity: int | None = None

    def describe(self, tz: ZoneInfo) -> str:
        when = self.starts_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        if self.kind is ConflictKind.WITHDRAWN:
            return (
                f"slot {when} is no longer in the schedule but holds {self.seats_taken} "
                "booked seats: kept for them, closed to new bookings"
            )
        if self.kind is ConflictKind.REGROUPED:
            return (
                f"slot {when} changed its visitor group with {self.seats_taken} seats booked: "
                "check those bookings"
            )
        if self.kind is ConflictKind.RETIMED:
            return (
                f"slot {when} now ends at another time with {self.seats_taken} seats booked: "
                "calendar files already downloaded give the old end"
            )
        return (
            f"slot {when}: capacity {self.wanted_capacity} is below the {self.seats_taken} "
            f"seats already booked: lowered to {self.seats_taken} instead"
        )


@dataclass
class SyncReport:
    created: int = 0
    resized: int = 0
    regrouped: int = 0
    retimed: int = 0  # the same start, another end
    removed: int = 0  # deleted: nobody ever booked them
    withdrawn: int = 0  # no longer offered, kept for the bookings that refer to them
    conflicts: list[SlotConflict] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.created
            or self.resized
            or self.regrouped
            or self.retimed
            or self.removed
            or self.withdrawn
        )


# Days materialised past the booking window's last day. See :func:`sync_slots`.
MATERIALISED_AHEAD = timedelta(days=1)


def last_materialised_day(local_today: date, opens_days: int) -> date:
    """The furthest day :func:`sync_slots` makes slots for: one past the booking window."""
    return last_bookable_day(local_today, opens_days) + MATERIALISED_AHEAD


def sync_slots(
    session: Session, prison: Prison, now: datetime, retiring: frozenset[int] = frozenset()
) -> SyncReport:
    """Make the future slots match the templates over the booking window and one day beyond.

    The day beyond: at local midnight a new day enters the window, and families waiting for it
    to open must find its slots there at 00:00, not at the next hourly sync (timed from the
    worker's start, not from midnight; an hour later still if that sync fails). So its slots
    exist a day early, and stay unbookable and unlisted to families until the window opens:
    what families see and book is decided by the window rule
    (:func:`visits.rules.window_problem`, :func:`availability`), never by a slot existing.
    Staff see them like any other day's (the gate's day list, closing one session, the
    schedule editor's preview and its conflicts).

    Creates missing slots, applies template end, capacity and group changes to future slots, and
    removes future slots that no template makes any more (including those of the ``retiring``
    templates, about to be deleted). Seats already taken are never touched: a capacity is never
    lowered below them (a conflict is reported), and a slot that any booking refers to is
    withdrawn instead of removed (reported when it still holds seats).

    Safe to run in several processes at once (two workers, the hourly job and a staff edit),
    with the result of one run after the other: syncs of one prison take turns
    (:func:`_lock_sync`), and the second reads the slots the first left. Without it, on
    PostgreSQL both would read a slot to remove, and the second's withdrawal would update the
    row the first had deleted and fail, losing a staff edit; or the second would skip a slot
    the first had just inserted and leave it without the second's template change.
    """
    report = SyncReport()
    _lock_sync(session, prison.id)
    today = prison.local_date(now)
    last_day = last_materialised_day(today, prison.booking_opens_days)
    templates = session.scalars(
        select(ScheduleTemplate).where(
            ScheduleTemplate.prison_id == prison.id, ScheduleTemplate.id.not_in(retiring)
        )
    ).all()
    wanted = {
        spec.starts_at: spec
        for spec in generate_slots(map(rule_of, templates), today, last_day, prison.tz)
        if spec.starts_at > now
    }
    existing = {
        slot.starts_at: slot
        for slot in session.scalars(
            select(Slot)
            .where(
                Slot.prison_id == prison.id,
                Slot.starts_at > now,
                or_(Slot.local_date <= last_day, Slot.template_id.in_(retiring)),
            )
            .order_by(Slot.id)  # the order bookings lock slots in
        )
    }

    new_rows = [
        {
            "prison_id": prison.id,
            "template_id": spec.template_id,
            "starts_at": spec.starts_at,
            "ends_at": spec.ends_at,
            "local_date": spec.local_date,
            "capacity": spec.capacity,
            "seats_taken": 0,
            "visitor_group": spec.visitor_group,
        }
        for starts_at, spec in wanted.items()
        if starts_at not in existing
    ]
    report.created = insert_ignoring_conflicts(
        session, Slot.__table__, new_rows, ["prison_id", "starts_at"]
    )

    for starts_at, slot in existing.items():
        spec = wanted.get(starts_at)
        if spec is None:
            _remove_or_withdraw(session, slot, now, report)
            continue
        if slot.withdrawn_at is not None:  # back in the schedule
            slot.withdrawn_at = None
            report.created += 1
        if slot.template_id != spec.template_id:
            slot.template_id = spec.template_id
        if slot.visitor_group != spec.visitor_group:
            slot.visitor_group = spec.visitor_group
            report.regrouped += 1
            if slot.seats_taken:
                report.conflicts.append(
                    SlotConflict(ConflictKind.REGROUPED, slot.starts_at, slot.seats_taken)
                )
        if slot.ends_at != spec.ends_at:
            # A slot is found by its start; its end follows the template like the rest (a
            # visit time brought back, too), so pages, reminders, the gate and .ics agree.
            slot.ends_at = spec.ends_at
            report.retimed += 1
            if slot.seats_taken:
                report.conflicts.append(
                    SlotConflict(ConflictKind.RETIMED, slot.starts_at, slot.seats_taken)
                )
        if slot.capacity != spec.capacity:
            _resize(session, slot, spec.capacity, report)
    session.flush()
    return report


def _resize(session: Session, slot: Slot, capacity: int, report: SyncReport) -> None:
    if slot.seats_taken > capacity and slot.capacity == slot.seats_taken:
        # Already lowered as far as the bookings allow: nothing to change, still a conflict.
        report.conflicts.append(
            SlotConflict(ConflictKind.CAPACITY, slot.starts_at, slot.seats_taken, capacity)
        )
        return
    # One statement, so a booking racing this change can neither be lost nor overbook.
    session.execute(
        update(Slot)
        .where(Slot.id == slot.id)
        .values(capacity=case((Slot.seats_taken > capacity, Slot.seats_taken), else_=capacity))
        .execution_options(synchronize_session=False)
    )
    session.refresh(slot)
    if slot.capacity != capacity:
        report.conflicts.append(
            SlotConflict(ConflictKind.CAPACITY, slot.starts_at, slot.seats_taken, capacity)
        )
    report.resized += 1


# Bookings refer to slots; schedule.py sits below booking.py, so it names the column only.
_BOOKED_SLOTS = table("booking", column("slot_id"))


def _remove_or_withdraw(session: Session, slot: Slot, now: datetime, report: SyncReport) -> None:
    if slot.template_id is None:
        return  # not made by a template, or already withdrawn: not ours to remove
    never_booked = ~exists().where(_BOOKED_SLOTS.c.slot_id == Slot.id)
    removed = session.execute(
        delete(Slot)
        .where(Slot.id == slot.id, Slot.seats_taken == 0, never_booked)
        .execution_options(synchronize_session=False)
    ).rowcount
    if removed:
        session.expunge(slot)
        report.removed += 1
        return
    slot.template_id = None
    slot.withdrawn_at = now
    report.withdrawn += 1
    if slot.seats_taken:
        report.conflicts.append(
            SlotConflict(ConflictKind.WITHDRAWN, slot.starts_at, slot.seats_taken)
        )


# --- What families see -----------------------------------------------------------------------


class SlotState(StrEnum):
    OPEN = "open"
    FULL = "full"
    CLOSED = "closed"
    NOT_BOOKABLE = "not_bookable"  # too late, or not open yet


@dataclass(frozen=True)
class SlotView:
    """A slot as a family sees it now. ``slot`` is a plain row (id, times, day, capacity,
    seats taken, group): listing 14 days needs no ORM objects."""

    slot: Any
    state: SlotState
    closed_reason: str | None
    window_problem: Problem | None

    @property
    def seats_left(self) -> int:
        return max(self.slot.capacity - self.slot.seats_taken, 0)


@dataclass
class DayView:
    day: date
    closed_reason: str | None = None
    slots: list[SlotView] = field(default_factory=list)


def window_refusal(prison: Prison, slot: Any, now: datetime) -> Problem | None:
    """Why the prison's booking window refuses this visit time now (too soon, too far, past),
    or ``None``: :func:`visits.rules.window_problem` with the prison's own rules."""
    return window_problem(
        starts_at=slot.starts_at,
        local_day=slot.local_date,
        now=now,
        local_today=prison.local_date(now),
        opens_days=prison.booking_opens_days,
        closes_hours=prison.booking_closes_hours,
    )


def closure_for(closures: Sequence[Closure], slot: Any, tz: ZoneInfo) -> Closure | None:
    """The closure that applies to ``slot`` (a Slot or a row with ``starts_at`` and
    ``local_date``), if any."""
    for closure in closures:
        if closure.day == slot.local_date and (
            closure.start_time is None or closure.start_time == slot.starts_at.astimezone(tz).time()
        ):
            return closure
    return None


def longest_session(session: Session, prison_id: int, from_day: date) -> int | None:
    """The longest a visit here lasts from this day on, in minutes: the longest of the weekly
    templates still valid then and of the slots still offered from then (staff may add one
    without a template); ``None`` where the prison has no visit times at all."""
    templates = session.execute(
        select(ScheduleTemplate.start_time, ScheduleTemplate.end_time).where(
            ScheduleTemplate.prison_id == prison_id,
            or_(ScheduleTemplate.valid_to.is_(None), ScheduleTemplate.valid_to >= from_day),
        )
    )
    slots = session.execute(
        select(Slot.starts_at, Slot.ends_at).where(
            Slot.prison_id == prison_id, Slot.local_date >= from_day, Slot.withdrawn_at.is_(None)
        )
    )
    lengths = [
        datetime.combine(from_day, end) - datetime.combine(from_day, start)
        for start, end in templates
    ] + [end - start for start, end in slots]
    return max((int(length.total_seconds()) // 60 for length in lengths), default=None)


# Built once, not on every call: every booking asks it.
_CLOSURES_BETWEEN = (
    select(Closure)
    .where(
        Closure.prison_id == bindparam("prison_id"),
        Closure.day >= bindparam("first"),
        Closure.day <= bindparam("last"),
    )
    .order_by(Closure.day, Closure.start_time.nulls_first(), Closure.id)
)


def closures_between(session: Session, prison_id: int, first: date, last: date) -> list[Closure]:
    """By day, a whole day's closure first: where it and one visit time's both cover a time,
    the reason given is the day's, the same on every database (they sort nulls apart)."""
    wanted = {"prison_id": prison_id, "first": first, "last": last}
    return list(session.scalars(_CLOSURES_BETWEEN, wanted))


_DAY_LOCK = {
    True: text("SELECT pg_advisory_xact_lock(:prison, :day)"),
    False: text("SELECT pg_advisory_xact_lock_shared(:prison, :day)"),
}


def lock_day(session: Session, prison_id: int, day: date, *, exclusive: bool) -> None:
    """Bookings into a day and the closing of that day take turns, until commit.

    A booking (or a move into the day) takes it shared before it reads the closures, so
    bookings never wait for each other; closing takes it exclusive before it reads the
    bookings to cancel, so no booking slips in between. PostgreSQL: a transaction-scoped
    advisory lock on the (prison, day) key pair (the two-key space, apart from the one-key
    locks of :mod:`visits.throttle`). SQLite: the write session already holds the database's
    only write lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_DAY_LOCK[exclusive], {"prison": prison_id, "day": day.toordinal()})


_SYNC_LOCK = text("SELECT pg_advisory_xact_lock(:prison, 0)")


def _lock_sync(session: Session, prison_id: int) -> None:
    """Slot syncs of one prison take turns, until commit; bookings go on meanwhile.

    PostgreSQL: a transaction-scoped advisory lock on (prison, 0), a key no day's lock
    (:func:`lock_day`, keyed by the day's ordinal, 1 and up) uses. SQLite: the write session
    already holds the database's only write lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_SYNC_LOCK, {"prison": prison_id})


_SLOT_COLUMNS = (
    Slot.id,
    Slot.starts_at,
    Slot.ends_at,
    Slot.local_date,
    Slot.capacity,
    Slot.seats_taken,
    Slot.visitor_group,
)


def availability(
    session: Session, prison: Prison, now: datetime, first: date, last: date
) -> list[DayView]:
    """Days from ``first`` to ``last`` that have sessions or closures, with each slot's state.

    Slots are listed up to the booking window's last day, however far ``last`` goes: those of
    the day beyond it exist before it opens (:func:`sync_slots`), and appear at its midnight.

    Two queries whatever the range, so the page cost does not grow with the number of slots.
    """
    opens_up_to = last_bookable_day(prison.local_date(now), prison.booking_opens_days)
    rows = session.execute(
        select(*_SLOT_COLUMNS)
        .where(Slot.prison_id == prison.id, Slot.local_date >= first)
        .where(Slot.local_date <= min(last, opens_up_to))
        .where(Slot.starts_at > now, Slot.withdrawn_at.is_(None))
        .order_by(Slot.starts_at)
    ).all()
    closures = closures_between(session, prison.id, first, last)
    days: dict[date, DayView] = {}
    for closure in closures:
        if closure.start_time is None:
            days.setdefault(closure.day, DayView(closure.day)).closed_reason = closure.reason
    for row in rows:
        closure = closure_for(closures, row, prison.tz)
        problem = window_refusal(prison, row, now)
        if closure is not None:
            state = SlotState.CLOSED
        elif problem is not None:
            state = SlotState.NOT_BOOKABLE
        elif row.seats_taken >= row.capacity:
            state = SlotState.FULL
        else:
            state = SlotState.OPEN
        view = SlotView(row, state, closure.reason if closure else None, problem)
        days.setdefault(row.local_date, DayView(row.local_date)).slots.append(view)
    return [days[d] for d in sorted(days)]
