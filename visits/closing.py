"""Administrators close a day or one visit time of their prison, with a reason families see.

The bookings a closure cancels are shown first (:func:`affected`); on confirmation
:func:`close` records the closure, cancels every booking then in the closed time and queues
each family's SMS in its language, in one transaction. Bookings made between the preview and
the confirmation are cancelled too (a family must not come to a closed prison) and the result
says how many there were beyond those shown: refusing instead would make a day that families
are booking in a steady stream impossible to close. While it runs, bookings into that day wait
(:func:`visits.schedule.lock_day`), and a booking the closure cancels is locked first, so a
family cancelling or moving it at the same moment is never lost or cancelled twice.

A booking in the closed time someone of which the gate let in already (before its visit time)
is not cancelled: they are inside (:mod:`visits.stopping`). Nor is one whose visit time is under
way when a whole day is closed (its family may be at the gate). The preview and the result list
both apart for the administrator to tell the gate, the gate's list flags them, and undoing such
a check-in before the visit time cancels the booking as the closure would have.

Closures made here can be reopened; cancelled bookings stay cancelled (the families were
told). The prison file's own closures (see :mod:`visits.prison_config`) change only with it.
A time the file closed while families had bookings in it keeps them (loading the file only
warns): closing that time again here cancels them and tells the families, under the closure
that is already there. Until then they are told of on every load of the file and on
administrators' home page (:func:`left_on`), and get no reminder (:func:`follow_reminders`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from visits import audit, sms, stopping
from visits.booking import (
    HOLDS_SEATS,
    STOPPABLE,
    Booking,
    BookingStatus,
    CancelCause,
    cancel_booking,
    lock_for_cancelling,
    slot_in_use,
)
from visits.db import require_write_lock
from visits.prison import Prison
from visits.problems import Code, Problem, Rejected, reject_if
from visits.schedule import Closure, Slot, closure_for, closures_between, lock_day
from visits.sms import SmsPolicy

MAX_REASON = 200  # the column's size; families read it on the slots page
# Far enough for next year's holidays; further off is a typing slip.
MAX_AHEAD = timedelta(days=2 * 365)


@dataclass(frozen=True)
class ClosureRequest:
    """What an administrator asks to close: a whole ``day`` or its session at ``start``.
    ``key``: the preview's, the same for every post of its confirmation."""

    day: date
    start: time | None
    reason: str
    key: str = ""


@dataclass(frozen=True)
class Closed:
    """What closing did: the closure, the references of the bookings it cancelled and of
    those it left for the gate to stop (someone of them came in already, or their visit time is
    under way); ``replayed``: this
    confirmation was done already (a double click, a reload), and these are what it did then."""

    closure: Closure
    cancelled: list[str]
    replayed: bool = False
    at_gate: list[str] = field(default_factory=list)


def day_slots(
    session: Session, prison: Prison, day: date, *, withdrawn: bool = False
) -> list[Slot]:
    """The sessions of one day in use, in order: still offered, or dropped by the schedule but
    kept for bookings not cancelled (:func:`visits.booking.slot_in_use`; each can be closed
    on its own, which cancels those bookings). With ``withdrawn``, every session the schedule
    dropped, even one whose bookings were all cancelled (a closure reaches them all)."""
    query = select(Slot).where(Slot.prison_id == prison.id, Slot.local_date == day)
    if not withdrawn:
        query = query.where(slot_in_use())
    return list(session.scalars(query.order_by(Slot.starts_at)))


def _covered(slot: Slot, request: ClosureRequest, prison: Prison) -> bool:
    return _covered_at(slot.local_date, slot.starts_at, request, prison)


def _covered_at(day: date, starts_at: datetime, request: ClosureRequest, prison: Prison) -> bool:
    return day == request.day and (
        request.start is None or starts_at.astimezone(prison.tz).time() == request.start
    )


def affected(
    session: Session, prison: Prison, request: ClosureRequest, now: datetime
) -> list[Booking]:
    """The bookings closing would cancel: those holding seats in a covered session that has
    not started yet, by time and reference."""
    return [b for b in _found(session, prison, request, now) if b.can_change(now)]


def at_gate(
    session: Session, prison: Prison, request: ClosureRequest, now: datetime
) -> list[Booking]:
    """The bookings in a covered session not over that closing leaves for the gate to stop:
    someone of them came in already, or their visit time is under way
    (:func:`visits.stopping.left`)."""
    return stopping.left(_found(session, prison, request, now), now)


def _found(
    session: Session, prison: Prison, request: ClosureRequest, now: datetime
) -> list[Booking]:
    slots = day_slots(session, prison, request.day, withdrawn=True)
    slot_ids = [s.id for s in slots if _covered(s, request, prison)]
    if not slot_ids:
        return []
    return list(
        session.scalars(
            select(Booking)
            .join(Slot, Booking.slot_id == Slot.id)
            .where(
                Booking.slot_id.in_(slot_ids),
                Booking.status.in_(STOPPABLE),
                Slot.ends_at > now,  # a visit under way is left for the gate
            )
            .options(selectinload(Booking.visitors), selectinload(Booking.inmate))
            .order_by(Slot.starts_at, Booking.reference)
        )
    )


def covering(session: Session, prison: Prison, request: ClosureRequest) -> Closure | None:
    """The closure already over the time asked for, if any."""
    closures = closures_between(session, prison.id, request.day, request.day)
    return next((c for c in closures if c.start_time in (None, request.start)), None)


def still_booked(session: Session, prison: Prison, now: datetime) -> dict[int, int]:
    """For each closure to come whose time still holds bookings, how many (see the module's
    docstring for how a closed time can), in one query."""
    closures = upcoming(session, prison, now)
    if not closures:
        return {}
    booked = session.execute(
        select(Slot.local_date, Slot.starts_at, func.count(Booking.id))
        .join(Booking, Booking.slot_id == Slot.id)
        .where(
            Slot.prison_id == prison.id,
            Slot.local_date.in_({c.day for c in closures}),
            Slot.starts_at > now,
            Booking.status.in_(HOLDS_SEATS),
        )
        .group_by(Slot.id, Slot.local_date, Slot.starts_at)
    ).all()
    counts: dict[int, int] = {}
    for closure in closures:
        request = ClosureRequest(closure.day, closure.start_time, closure.reason)
        count = sum(
            n for day, starts_at, n in booked if _covered_at(day, starts_at, request, prison)
        )
        if count:
            counts[closure.id] = count
    return counts


def problems(
    session: Session, prison: Prison, request: ClosureRequest, now: datetime
) -> list[Problem]:
    """Every reason this closure cannot be made (the reason's own checks included)."""
    found: list[Problem] = []
    reason = request.reason.strip()
    if not reason:
        found.append(Problem(Code.REQUIRED, "reason"))
    elif len(reason) > MAX_REASON:
        found.append(Problem(Code.TOO_LONG, "reason", {"max": MAX_REASON}))
    if request.day < prison.local_date(now):
        found.append(Problem(Code.DAY_IN_PAST, "day"))
        return found
    if request.day > prison.local_date(now) + MAX_AHEAD:
        found.append(Problem(Code.DATE_TOO_FAR, "day", {"years": MAX_AHEAD.days // 365}))
        return found
    if covering(session, prison, request) is not None and not affected(
        session, prison, request, now
    ):
        found.append(Problem(Code.ALREADY_CLOSED, "start"))
    if request.start is not None:
        slots = day_slots(session, prison, request.day, withdrawn=True)
        slot = next((s for s in slots if _covered(s, request, prison)), None)
        if slot is None:
            found.append(Problem(Code.NO_VISITS_AT_TIME, "start"))
        elif slot.ends_at <= now:
            found.append(Problem(Code.SLOT_IN_PAST, "start"))
        elif slot.starts_at <= now:  # under way: its visitors are inside
            found.append(Problem(Code.SLOT_STARTED, "start"))
    return found


def close(
    session: Session,
    prison: Prison,
    request: ClosureRequest,
    *,
    now: datetime,
    actor: str,
    origin: str,
    sms_policy: SmsPolicy,
) -> Closed:
    """Close and cancel the bookings in the closed time; the closure (the one already there,
    if the time was closed with bookings left in it) and the bookings cancelled. Raises
    :class:`Rejected` (nothing changed) with every problem found.

    The same confirmation sent again (its ``key``: a double click, a reload) changes nothing
    and answers what the first did (:func:`visits.audit.done_with`), as broadcasts and
    advisories do; without a key, a time already closed is refused."""
    require_write_lock(session)
    # Two posts of one confirmation take turns here, so the second sees the first.
    lock_day(session, prison.id, request.day, exclusive=True)
    key = audit.submission_key(request.key)
    if key and (earlier := _closed_with(session, prison, request, key)) is not None:
        return earlier
    reject_if(problems(session, prison, request, now))
    bookings = _found(session, prison, request, now)
    # Locked before any seat moves: a family's cancel of one of them waits, or finished first
    # (then it is left as the family left it).
    lock_for_cancelling(session, bookings)
    closure = existing = covering(session, prison, request)
    # Under a closure already there, its reason stands (families see it on the slots page).
    reason = existing.reason if existing is not None else request.reason.strip()
    if closure is None:
        closure = Closure(
            prison_id=prison.id,
            day=request.day,
            start_time=request.start,
            reason=reason,
            created_by=actor,
            created_at=now,
        )
        session.add(closure)
        session.flush()
    cancelled = []
    for booking in bookings:
        if booking.can_change(now) and _covered(booking.slot, request, prison):
            cancel_booking(
                session,
                booking,
                now=now,
                actor=actor,
                sms_policy=sms_policy,
                reason=reason,
                origin=origin,
                cause=CancelCause.CLOSED,
            )
            cancelled.append(booking)
    cancelled_refs = [b.reference for b in cancelled]
    # Read again under their locks: a check-in undone meanwhile made one confirmed again.
    inside = [b.reference for b in stopping.left(bookings, now)]
    action = "closure.created" if existing is None else "closure.bookings_cancelled"
    more = ({"key": key} if key else {}) | ({"at_gate": inside} if inside else {})
    _audit(session, prison, closure, action, now, actor, origin, cancelled=cancelled_refs, **more)
    session.flush()
    return Closed(closure, cancelled_refs, at_gate=inside)


# The events of a confirmation that was done.
DONE = ("closure.created", "closure.bookings_cancelled")


def _closed_with(
    session: Session, prison: Prison, request: ClosureRequest, key: str
) -> Closed | None:
    """What the confirmation with this key did, if it was done already (and still stands: a
    closure reopened since is closed again)."""
    closure = covering(session, prison, request)
    if closure is None:
        return None
    event = audit.done_with(session, "closure", closure.id, DONE, key, day=str(request.day))
    if event is None:
        return None
    details = event.details
    return Closed(
        closure, list(details.get("cancelled", [])), True, list(details.get("at_gate", []))
    )


def _audit(
    session: Session,
    prison: Prison,
    closure: Closure,
    action: str,
    now: datetime,
    actor: str,
    origin: str,
    **details: object,
) -> None:
    audit.record(
        session,
        at=now,
        actor=actor,
        action=action,
        entity="closure",
        entity_id=closure.id,
        details={
            "prison": prison.code,
            "day": closure.day.isoformat(),
            "start": closure.start_time.strftime("%H:%M") if closure.start_time else None,
            "reason": closure.reason,
            **details,
        },
        origin=origin,
    )


def upcoming(session: Session, prison: Prison, now: datetime) -> list[Closure]:
    """Closures from today on, by day and time (the whole day first)."""
    return list(
        session.scalars(
            select(Closure)
            .where(Closure.prison_id == prison.id, Closure.day >= prison.local_date(now))
            .order_by(Closure.day, Closure.start_time.is_not(None), Closure.start_time)
        )
    )


def reopen(
    session: Session, prison: Prison, closure_id: int, *, now: datetime, actor: str, origin: str
) -> bool:
    """Open again a day or time staff closed (from today on); bookings it cancelled stay
    cancelled. A closure of the prison file, or of another prison, is not found here.

    True when it opened now. False when this prison had reopened it already: the same
    "Abrir de nuevo" sent again (a double click, a reload) finds the closure gone and its
    reopening in this prison's record of it, and is answered as done (nothing more is
    recorded), not as a closure that does not exist. The closure's id is that action's
    one-off key: a closure is reopened once."""
    require_write_lock(session)
    closure = _staff_closure(session, prison, session.get(Closure, closure_id))
    if closure is not None:
        lock_day(session, prison.id, closure.day, exclusive=True)
        # Two reopens of one closure take turns here: the second reads whether it is still
        # there (on PostgreSQL, what the first committed while this one waited).
        again = select(Closure).where(Closure.id == closure_id)
        closure = _staff_closure(
            session, prison, session.scalar(again.execution_options(populate_existing=True))
        )
    if closure is None:
        if _reopened(session, prison, closure_id):
            return False
        raise Rejected([Problem(Code.NOT_FOUND)])
    if closure.day < prison.local_date(now):
        raise Rejected([Problem(Code.DAY_IN_PAST)])
    session.delete(closure)
    _audit(session, prison, closure, "closure.reopened", now, actor, origin)
    session.flush()
    return True


def _staff_closure(session: Session, prison: Prison, closure: Closure | None) -> Closure | None:
    """The closure, if staff of this prison made it (the only ones reopened here)."""
    if closure is None or closure.prison_id != prison.id or closure.created_by is None:
        return None
    return closure


def _reopened(session: Session, prison: Prison, closure_id: int) -> bool:
    """Whether this prison's staff reopened the closure with this id."""
    return any(
        event.action == "closure.reopened" and event.details.get("prison") == prison.code
        for event in audit.timeline(session, "closure", closure_id)
    )


@dataclass(frozen=True)
class LeftOn:
    """Bookings still on (held or confirmed, their visit not begun) in visit times nobody
    can book any more: ``closed``, in a time closed to visits (the prison file can close a
    booked time without cancelling its bookings: the families are not told until an
    administrator cancels them on the closures page); ``withdrawn``, in a time the schedule no
    longer has and not closed (kept for them: the visit happens unless that time is closed)."""

    closed: int = 0
    withdrawn: int = 0

    def __bool__(self) -> bool:
        return bool(self.closed or self.withdrawn)


def left_on(session: Session, prisons: Sequence[Prison], now: datetime) -> dict[int, LeftOn]:
    """:class:`LeftOn` for each of these prisons that has any, by prison id, in one query
    through the slots of the days to come (their index): told on every load of the prison file
    and on administrators' home page until they are cancelled, so that missing it once does
    not leave families travelling to a closed prison."""
    if not prisons:
        return {}
    by_id = {p.id: p for p in prisons}
    # One row per slot and closure of its day (a slot under none is there if withdrawn).
    per = (
        Slot.prison_id,
        Slot.id,
        Slot.starts_at,
        Slot.withdrawn_at,
        Closure.id,
        Closure.start_time,
    )
    rows = session.execute(
        select(*per, func.count(Booking.id))
        .join(Booking, Booking.slot_id == Slot.id)
        .outerjoin(
            Closure, (Closure.prison_id == Slot.prison_id) & (Closure.day == Slot.local_date)
        )
        .where(
            Slot.prison_id.in_(by_id),
            Slot.local_date >= min(p.local_date(now) for p in prisons),
            Slot.starts_at > now,
            Booking.status.in_(HOLDS_SEATS),
            or_(Slot.withdrawn_at.is_not(None), Closure.id.is_not(None)),
        )
        .group_by(*per)
    ).all()
    slots: dict[int, tuple[int, int, bool]] = {}  # slot id → prison id, bookings, closed
    for prison_id, slot_id, starts_at, withdrawn_at, closure_id, start, n in rows:
        tz = by_id[prison_id].tz
        closed = closure_id is not None and start in (None, starts_at.astimezone(tz).time())
        _, _, before = slots.get(slot_id, (prison_id, n, False))
        if closed or before or withdrawn_at is not None:
            slots[slot_id] = (prison_id, n, closed or before)
    found: dict[int, LeftOn] = {}
    for prison_id, n, closed in slots.values():
        was = found.get(prison_id, LeftOn())
        found[prison_id] = LeftOn(was.closed + n * closed, was.withdrawn + n * (not closed))
    return found


def follow_reminders(
    session: Session,
    prison: Prison,
    now: datetime,
    sms_policy: SmsPolicy,
    opened: Iterable[tuple[date, time | None]] = (),
) -> None:
    """Reminders follow whether a booked time is closed (the prison file closes and opens
    times without cancelling their bookings): those of every booking still on in a closed time
    are withdrawn (:func:`visits.sms.withdraw_reminders`), and those of a booking confirmed in
    a time ``opened`` (closures the file just dropped) and closed no more are queued again.
    Done on every load: nothing changes for what was done already."""
    for closure_id in still_booked(session, prison, now):
        closure = session.get(Closure, closure_id)
        assert closure is not None
        request = ClosureRequest(closure.day, closure.start_time, closure.reason)
        for booking in affected(session, prison, request, now):
            sms.withdraw_reminders(session, booking, now)
    for day, start in opened:
        closures = closures_between(session, prison.id, day, day)
        for booking in affected(session, prison, ClosureRequest(day, start, ""), now):
            if booking.status is BookingStatus.CONFIRMED and not closure_for(
                closures, booking.slot, prison.tz
            ):
                sms.queue_reminders(session, booking, sms_policy, now)
