"""A visit someone of which the gate let in before its time, when visits are stopped for it
after: its day or time closed (:mod:`visits.closing`), the person no longer visitable here or
their visits suspended (by staff, :mod:`visits.suspensions`, or by the roster,
:mod:`visits.roster`), one of its visitors barred, or a health pause (:mod:`visits.issuing`).

Decision: each of these leaves such a booking (``attended``) as it is. The person is inside,
so cancelling it (and an SMS telling the family the visit is off) would be wrong, and seats
already used are not given back. Instead staff see it listed apart ("tell the gate"), the
gate's list flags it with the cause (:func:`stop_cause`, read by :func:`visits.gate.day_list`),
and if the gate then undoes the check-in (a mistake: nobody came in), :func:`apply_to_undone`
cancels it as the cause would have (seats back, the family's SMS in the cause's words) when
its visit is still to come. One order of causes serves both, so the flag names the cause the
undo would cancel with.

Decision: a booking still ``confirmed`` whose visit time had begun when the stop came is left
as it is too (:func:`left_for_gate`), not cancelled: its family may be at the gate already,
and the guard tells them, rather than an SMS that may come too late. The gate's list flags
its visitors with the cause and lets none of them in, as below.

Decision: those inside are left to the gate to bring out, but nobody more of such a booking
is let in: those still outside get no "came in" on the list, and an arrival recorded for them
anyway (a list loaded before) is refused in the cause's words (:func:`stopped`, read by
:func:`visits.gate.stopped_problem`): the visit may not go ahead, only end.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from visits import issuing
from visits.advisories import HealthAdvisory
from visits.booking import Booking, BookingStatus, CancelCause, cancel_booking
from visits.inmate import Inmate, InmateSuspension, inmate_problems
from visits.problems import Code
from visits.schedule import Closure, closure_for, closures_between
from visits.sms import SmsPolicy
from visits.visitor import suspended_on, suspensions_from


def stop_cause(
    *, closed: bool, inmate: CancelCause | None, barred: bool, health_paused: bool
) -> CancelCause | None:
    """Why a visit may not go ahead, the first that holds: a closure (the whole time is off
    for everyone), the person visited (no longer visitable here, or visits to them suspended:
    :func:`inmate_causes`), one of its visitors barred, a health pause."""
    causes = (
        (closed, CancelCause.CLOSED),
        (inmate is not None, inmate),
        (barred, CancelCause.VISITOR_BARRED),
        (health_paused, CancelCause.HEALTH_SUSPENDED),
    )
    return next((cause for holds, cause in causes if holds), None)


def left_for_gate(status: BookingStatus, starts_at: datetime, now: datetime) -> bool:
    """Whether a stop leaves a booking as it is, for the gate to stop (see the decisions
    above): someone of it came in, or it is confirmed and its visit time has begun."""
    return status is BookingStatus.ATTENDED or (
        status is BookingStatus.CONFIRMED and starts_at <= now
    )


def left(bookings: Iterable[Booking], now: datetime) -> list[Booking]:
    """Those of ``bookings`` a stop leaves for the gate (:func:`left_for_gate`) whose visit
    is not over: what staff who stop visits are told to tell the gate, someone of them inside
    already or their visit time under way (the gate's list flags both)."""
    return [
        b
        for b in bookings
        if left_for_gate(b.status, b.slot.starts_at, now) and b.slot.ends_at > now
    ]


def under_way(booking: Booking, now: datetime) -> bool:
    """Whether nobody of a booking left for the gate came in yet: its visit time is under
    way (staff's lists say so, rather than that someone is inside)."""
    return booking.status is BookingStatus.CONFIRMED and booking.slot.starts_at <= now


def gate_summary(under_way: Sequence[bool]) -> str:
    """What the command line adds to what a stop did, in English, of the bookings it left for
    the gate (each: whether its visit time is under way with nobody of it in), if any."""
    inside, begun = under_way.count(False), under_way.count(True)
    return (f"; already inside, tell the gate: {inside}" if inside else "") + (
        f"; visit time under way, tell the gate: {begun}" if begun else ""
    )


# What the booking rules refuse a visit to the person for, as the cause that stops one.
_INMATE_CAUSES = {
    Code.INMATE_NOT_ACTIVE: CancelCause.INMATE_NOT_ACTIVE,
    Code.INMATE_SUSPENDED: CancelCause.INMATE_SUSPENDED,
}


def inmate_causes(session: Session, inmate_ids: Sequence[int], day: date) -> dict[int, CancelCause]:
    """Those of these inmates who may not be visited on ``day``, and why, as the booking rules
    decide (:func:`visits.inmate.inmate_problems`): no longer active on the roster (released,
    transferred, inactive or left out of it), or visits to them suspended by staff or by the
    roster. Two queries."""
    if not inmate_ids:
        return {}
    ends: dict[int, list[date]] = defaultdict(list)
    by_staff = select(InmateSuspension.inmate_id, InmateSuspension.until).where(
        InmateSuspension.inmate_id.in_(inmate_ids),
        InmateSuspension.lifted_at.is_(None),
        InmateSuspension.until >= day,
    )
    for inmate_id, until in session.execute(by_staff):
        ends[inmate_id].append(until)
    causes = {}
    for inmate in session.scalars(select(Inmate).where(Inmate.id.in_(inmate_ids))):
        by_roster = [inmate.visits_suspended_until] if inmate.visits_suspended_until else []
        problems = inmate_problems(inmate, day, ends[inmate.id] + by_roster)
        if problems:
            causes[inmate.id] = _INMATE_CAUSES[problems[0].code]
    return causes


def barred(session: Session, prison_id: int, people: Iterable[int], day: date) -> set[int]:
    """Those of these people (:class:`visits.visitor.Visitor` ids) barred from the prison on
    ``day``."""
    return set(suspended_on(suspensions_from(session, prison_id, people, day), day))


@dataclass(frozen=True)
class Stop:
    """Why visits are stopped for a booking (:func:`stop_cause`), with what cancelling it for
    that says: the closure (its reason), and the health pause, if one pauses it."""

    cause: CancelCause
    closure: Closure | None = None
    advisory: HealthAdvisory | None = None


def stopped(session: Session, booking: Booking) -> Stop | None:
    """Why visits are stopped for the booking, if they are: an undone check-in cancels it for
    that (:func:`apply_to_undone`), and the gate lets nobody more of it in
    (:func:`visits.gate.stopped_problem`)."""
    day, prison = booking.slot.local_date, booking.prison
    closure = closure_for(closures_between(session, prison.id, day, day), booking.slot, prison.tz)
    people = [v.visitor_id for v in booking.visitors]
    advisory = issuing.pausing(session, booking)
    cause = stop_cause(
        closed=closure is not None,
        inmate=inmate_causes(session, [booking.inmate_id], day).get(booking.inmate_id),
        barred=bool(barred(session, prison.id, people, day)),
        health_paused=advisory is not None,
    )
    return Stop(cause, closure, advisory) if cause is not None else None


def apply_to_undone(
    session: Session,
    booking: Booking,
    *,
    now: datetime,
    actor: str,
    origin: str,
    sms_policy: SmsPolicy,
) -> CancelCause | None:
    """The gate undid the check-in of a booking (locked by the caller), confirmed again: if
    its visit is still to come and is stopped (:func:`stop_cause`), it is cancelled with that
    cause, as closing, suspending, the roster or the health measure would have; the cause, if
    it was. A visit already begun stays, as they leave it."""
    if not booking.can_change(now):
        return None
    stop = stopped(session, booking)
    if stop is None:
        return None
    cancel_booking(
        session, booking, now=now, actor=actor, sms_policy=sms_policy, origin=origin,
        reason=stop.closure.reason if stop.closure is not None else "", cause=stop.cause,
    )  # fmt: skip
    if stop.cause is CancelCause.HEALTH_SUSPENDED and stop.advisory is not None:
        issuing.applied_to_undone(session, stop.advisory, booking, now, (actor, origin))
    return stop.cause
