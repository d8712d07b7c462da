"""Administrators suspend visits to an inmate, or bar a visitor from their prison, until a
date and with a reason (for staff: families are never told it).

Either takes effect at once: new bookings in the period are refused by the booking rules, and
the bookings already made in it are cancelled in the same transaction, each family told by SMS
in general words (:class:`visits.booking.CancelCause`). A booking with a barred visitor is
cancelled whole (the domain has no removing one person from a booking): the SMS invites the
family to book again without them. A booking someone of which the gate let in already,
before its visit time, is not cancelled (they are inside; :mod:`visits.stopping`), nor is one
whose visit time is under way (its family may be at the gate): the result lists them apart for
the administrator to tell the gate, the gate's list flags them, and undoing such a check-in
before the visit time cancels the booking as the suspension would have. Lifting ends a
suspension early and keeps its record; bookings it cancelled stay cancelled. A visitor can be
barred once they have booked at this prison (before that the service knows no such person, and
an administrator may not learn of another prison's visitors). A suspension lasts at most five
years: it is reviewed by then.

A person has at most one suspension running at a prison (not lifted, last day not passed):
two would list them twice, and lifting one would leave the other barring them while the page
seemed to say they were free. While one runs, another is refused (nothing changes) with when
it ends: to change its last day or reason, the administrator lifts it and suspends again, so
the history keeps both. The check runs under the person's lock, so two suspensions sent at
once (two tabs, two administrators) take turns and the second is refused.

The page's form carries a one-off key (:func:`visits.audit.done_with`): the same form sent
twice (a double click, a reload) records one suspension, and the second is answered as the
first was, with the bookings the first cancelled, not refused. Only the same key for the same
person, last day and reason is the same submission; any other is refused while the first
runs, whatever key it carries or lacks. Lifting works so too: the same "Lift" sent again
answers as the first did, while a lift from another form (another administrator, a page
loaded before) of one lifted already is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NamedTuple, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from visits import audit, stopping
from visits.booking import (
    STOPPABLE,
    Booking,
    BookingStatus,
    BookingVisitor,
    CancelCause,
    cancel_booking,
    lock_for_cancelling,
)
from visits.db import lock_rows, require_write_lock
from visits.inmate import Inmate, InmateSuspension, normalise_code
from visits.prison import Prison
from visits.problems import Code, Problem, Rejected
from visits.schedule import Slot
from visits.sms import SmsPolicy
from visits.visitor import DocumentType, Visitor, VisitorSuspension, normalise_document

MAX_REASON = 300
# However long a bar is meant to last, it is reviewed at least this often.
MAX_AHEAD = timedelta(days=5 * 365)


class Suspended(NamedTuple):
    """What suspending did: the suspension, the bookings it cancelled, and those it left
    because someone of them came in at the gate already or their visit time is under way (to
    tell the gate: :func:`visits.stopping.left`)."""

    suspension: InmateSuspension | VisitorSuspension
    cancelled: list[Booking]
    at_gate: list[Booking]
    # The references of those cancelled that were still waiting for their SMS code: their
    # families get no SMS (for the preview, which shows them after they are cancelled).
    held: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Actor:
    """Who acts, from where, and now."""

    name: str
    origin: str
    now: datetime


def _period_problems(prison: Prison, until: date | None, reason: str, now: datetime):
    problems = []
    if until is None:
        problems.append(Problem(Code.REQUIRED, "until"))
    elif until < prison.local_date(now):
        problems.append(Problem(Code.DAY_IN_PAST, "until"))
    elif until > prison.local_date(now) + MAX_AHEAD:
        problems.append(Problem(Code.DATE_TOO_FAR, "until", {"years": MAX_AHEAD.days // 365}))
    if not reason.strip():
        problems.append(Problem(Code.REQUIRED, "reason"))
    elif len(reason.strip()) > MAX_REASON:
        problems.append(Problem(Code.TOO_LONG, "reason", {"max": MAX_REASON}))
    return problems


def _cancel_all(
    session: Session,
    bookings: list[Booking],
    cause: CancelCause,
    suspension: InmateSuspension | VisitorSuspension,
    by: Actor,
    sms_policy: SmsPolicy,
) -> list[Booking]:
    """Cancel those still active and still in the period once locked (a family's own cancel,
    or a move out of the period, may have come first)."""
    lock_for_cancelling(session, bookings)
    cancelled = []
    for booking in bookings:
        if booking.can_change(by.now) and booking.slot.local_date <= suspension.until:
            cancel_booking(
                session,
                booking,
                now=by.now,
                actor=by.name,
                sms_policy=sms_policy,
                reason=suspension.reason,
                origin=by.origin,
                cause=cause,
            )
            cancelled.append(booking)
    return cancelled


def _take_effect(
    session: Session,
    prison: Prison,
    suspension: InmateSuspension | VisitorSuspension,
    bookings: Select,
    cause: CancelCause,
    by: Actor,
    sms_policy: SmsPolicy,
    subject: tuple[str, int],
    key: str,
) -> Suspended:
    """Record the suspension, cancel the ``bookings`` it covers, audit both; what it did."""
    session.add(suspension)
    session.flush()
    found = list(session.scalars(bookings))
    held = frozenset(b.reference for b in found if b.status is BookingStatus.HELD)
    cancelled = _cancel_all(session, found, cause, suspension, by, sms_policy)
    at_gate = stopping.left(found, by.now)  # as read again under their locks by _cancel_all
    entity, entity_id = subject
    _audit(
        session, by, f"{entity}.suspended", entity, entity_id, prison, suspension, cancelled,
        key=key, at_gate=at_gate,
    )  # fmt: skip
    return Suspended(suspension, cancelled, at_gate, held & {b.reference for b in cancelled})


Suspension = TypeVar("Suspension", InmateSuspension, VisitorSuspension)


def _submitted(
    session: Session,
    kind: type[Suspension],
    subject: tuple[str, int],
    key: str,
    until: date,
    reason: str,
) -> Suspended | None:
    """What the submission with this key recorded for this person, if it was recorded already
    (with the same last day and reason): the suspension, the bookings it cancelled and those
    it left at the gate. Read
    under the person's lock, which the first submission held until it committed."""
    entity, entity_id = subject
    event = audit.done_with(
        session, entity, entity_id, (f"{entity}.suspended",), audit.submission_key(key),
        until=until.isoformat(), reason=reason.strip(),
    )  # fmt: skip
    suspension = session.get(kind, event.details["suspension_id"]) if event else None
    if event is None or suspension is None:
        return None
    named = (_named(session, event, name) for name in ("cancelled", "at_gate"))
    return Suspended(suspension, *named)


def _named(session: Session, event: audit.AuditEvent, name: str) -> list[Booking]:
    """The bookings the event's ``name`` detail lists by reference, in booking order."""
    references = event.details.get(name, [])
    found = session.scalars(select(Booking).where(Booking.reference.in_(references)))
    return sorted(found, key=lambda b: b.id)


def _refuse_if_running(
    session: Session, prison: Prison, kind: type[Suspension], field: str, now: datetime, *where
) -> None:
    """Refuse another suspension of a person while one of theirs here still runs (see the
    module's docstring), saying until when it runs. Call it under the person's lock."""
    until = session.scalar(
        select(func.max(kind.until)).where(
            *where, kind.lifted_at.is_(None), kind.until >= prison.local_date(now)
        )
    )
    if until is not None:
        code = Code.INMATE_ALREADY_SUSPENDED if kind is InmateSuspension else Code.ALREADY_BARRED
        raise Rejected([Problem(code, field, {"until": until})])


def _in_period(prison: Prison, until: date, now: datetime) -> Select:
    """This prison's bookings not over from now until the end of ``until``: those holding
    seats, and those let in at the gate already (those let in or under way are left for the
    gate: :func:`visits.stopping.left`)."""
    return (
        select(Booking)
        .join(Slot, Booking.slot_id == Slot.id)
        .where(
            Booking.prison_id == prison.id,
            Booking.status.in_(STOPPABLE),
            Slot.ends_at > now,
            Slot.local_date <= until,
        )
        .order_by(Booking.id)
    )


def suspend_inmate(
    session: Session,
    prison: Prison,
    *,
    code: str,
    until: date | None,
    reason: str,
    by: Actor,
    sms_policy: SmsPolicy,
    key: str = "",
) -> Suspended:
    """Suspend visits to the inmate of this prison with ``code``; what it did (the suspension,
    the bookings it cancelled, those it left at the gate). Raises :class:`Rejected` with
    every problem (nothing changes), or while a suspension of the inmate runs already. The
    form's ``key`` sent again answers what the first did (see the module's docstring)."""
    require_write_lock(session)
    problems = _period_problems(prison, until, reason, by.now)
    inmate = None
    if not code.strip():
        problems.insert(0, Problem(Code.REQUIRED, "code"))
    else:
        inmate = session.scalar(
            select(Inmate).where(Inmate.prison_id == prison.id, Inmate.code == normalise_code(code))
        )
        if inmate is None:
            problems.insert(0, Problem(Code.INMATE_NOT_FOUND, "code"))
    if problems or inmate is None or until is None:
        raise Rejected(problems)
    # Bookings for this inmate take this lock first: none slips in while this runs (and the
    # same form sent twice at once takes turns here, the second finding the first's record).
    lock_rows(session, Inmate.id, [inmate.id])
    subject = ("inmate", inmate.id)
    if earlier := _submitted(session, InmateSuspension, subject, key, until, reason):
        return earlier
    _refuse_if_running(
        session, prison, InmateSuspension, "code", by.now, InmateSuspension.inmate_id == inmate.id
    )
    suspension = InmateSuspension(
        inmate_id=inmate.id, until=until, reason=reason.strip(), created_by=by.name,
        created_at=by.now,
    )  # fmt: skip
    bookings = _in_period(prison, until, by.now).where(Booking.inmate_id == inmate.id)
    return _take_effect(
        session, prison, suspension, bookings, CancelCause.INMATE_SUSPENDED, by, sms_policy,
        subject, audit.submission_key(key),
    )  # fmt: skip


def _booked_here(session: Session, prison: Prison, visitor: Visitor) -> bool:
    """Whether this person ever booked at this prison: an administrator learns nothing of
    visitors of other prisons, not even that they exist."""
    return bool(
        session.scalar(
            select(BookingVisitor.id)
            .join(Booking, BookingVisitor.booking_id == Booking.id)
            .where(BookingVisitor.visitor_id == visitor.id, Booking.prison_id == prison.id)
            .limit(1)
        )
    )


def suspend_visitor(
    session: Session,
    prison: Prison,
    *,
    doc_type: str,
    doc_number: str,
    until: date | None,
    reason: str,
    by: Actor,
    sms_policy: SmsPolicy,
    key: str = "",
) -> Suspended:
    """Bar the visitor with this document from this prison; what it did (as for an inmate).
    Raises :class:`Rejected` with every problem (nothing changes), or while a bar of the
    visitor from this prison runs already. The form's ``key`` sent again answers what the
    first did (see the module's docstring)."""
    require_write_lock(session)
    problems = _period_problems(prison, until, reason, by.now)
    visitor = None
    kind = next((t for t in DocumentType if t.value == doc_type), None)
    if kind is None:
        problems.insert(0, Problem(Code.INVALID_CHOICE, "doc_type"))
    elif not doc_number.strip():
        problems.insert(0, Problem(Code.REQUIRED, "doc_number"))
    else:
        number = normalise_document(kind, doc_number)
        if isinstance(number, Problem):
            problems.insert(0, Problem(number.code, "doc_number", number.params))
        else:
            visitor = session.scalar(
                select(Visitor).where(Visitor.doc_type == kind, Visitor.doc_number == number)
            )
            if visitor is None or not _booked_here(session, prison, visitor):
                visitor = None
                problems.insert(0, Problem(Code.VISITOR_NOT_FOUND, "doc_number"))
    if problems or visitor is None or until is None:
        raise Rejected(problems)
    # Bookings naming this person take this lock first: none slips in while this runs (and
    # the same form sent twice at once takes turns here, the second finding the first's record).
    lock_rows(session, Visitor.id, [visitor.id])
    subject = ("visitor", visitor.id)
    if earlier := _submitted(session, VisitorSuspension, subject, key, until, reason):
        return earlier
    _refuse_if_running(
        session, prison, VisitorSuspension, "doc_number", by.now,
        VisitorSuspension.visitor_id == visitor.id, VisitorSuspension.prison_id == prison.id,
    )  # fmt: skip
    suspension = VisitorSuspension(
        visitor_id=visitor.id, prison_id=prison.id, until=until, reason=reason.strip(),
        created_by=by.name, created_at=by.now,
    )  # fmt: skip
    bookings = (
        _in_period(prison, until, by.now)
        .join(BookingVisitor, BookingVisitor.booking_id == Booking.id)
        .where(BookingVisitor.visitor_id == visitor.id)
    )
    return _take_effect(
        session, prison, suspension, bookings, CancelCause.VISITOR_BARRED, by, sms_policy,
        subject, audit.submission_key(key),
    )  # fmt: skip


def _audit(
    session, by, action, entity, entity_id, prison, suspension, cancelled=(), key="", at_gate=()
) -> None:
    audit.record(
        session,
        at=by.now,
        actor=by.name,
        action=action,
        entity=entity,
        entity_id=entity_id,
        details={
            "prison": prison.code,
            "suspension_id": suspension.id,
            "until": suspension.until.isoformat(),
            "reason": suspension.reason,
        }
        | ({"cancelled": [b.reference for b in cancelled]} if cancelled else {})
        | ({"at_gate": [b.reference for b in at_gate]} if at_gate else {})
        | ({"key": key} if key else {}),
        origin=by.origin,
    )


def lift_inmate_suspension(
    session: Session, prison: Prison, suspension_id: int, by: Actor, key: str = ""
) -> InmateSuspension:
    """End a staff suspension of visits now (bookings it cancelled stay cancelled). The
    form's ``key`` sent again answers what the first did (see the module's docstring)."""
    suspension = _locked(session, InmateSuspension, suspension_id)
    inmate = session.get(Inmate, suspension.inmate_id) if suspension else None
    if suspension is None or inmate is None or inmate.prison_id != prison.id:
        raise Rejected([Problem(Code.NOT_FOUND)])
    _lift(session, by, "inmate", inmate.id, prison, suspension, key)
    return suspension


def lift_visitor_suspension(
    session: Session, prison: Prison, suspension_id: int, by: Actor, key: str = ""
) -> VisitorSuspension:
    """End a visitor's bar from this prison now. The form's ``key`` sent again answers what
    the first did (see the module's docstring)."""
    suspension = _locked(session, VisitorSuspension, suspension_id)
    if suspension is None or suspension.prison_id != prison.id:
        raise Rejected([Problem(Code.NOT_FOUND)])
    _lift(session, by, "visitor", suspension.visitor_id, prison, suspension, key)
    return suspension


def _locked(session: Session, kind: type[Suspension], suspension_id: int) -> Suspension | None:
    """The suspension, locked and read again: two lifts of it take turns, and the second reads
    what the first left (and finds its event)."""
    lock_rows(session, kind.id, [suspension_id])
    return session.get(kind, suspension_id, populate_existing=True)


def _lift(
    session: Session,
    by: Actor,
    entity: str,
    entity_id: int,
    prison: Prison,
    suspension: InmateSuspension | VisitorSuspension,
    key: str,
) -> None:
    """Lift now, audited; nothing more for the lift with this ``key`` done already."""
    action, key = f"{entity}.suspension_lifted", audit.submission_key(key)
    if audit.done_with(session, entity, entity_id, (action,), key, suspension_id=suspension.id):
        return  # this very lift, sent again: it was done
    if suspension.lifted_at is not None:
        raise Rejected([Problem(Code.ALREADY_LIFTED)])
    suspension.lifted_at = by.now
    suspension.lifted_by = by.name
    _audit(session, by, action, entity, entity_id, prison, suspension, key=key)


@dataclass(frozen=True)
class Current:
    """The suspensions of a prison still running, with whom they concern."""

    inmates: list[tuple[InmateSuspension, Inmate]]
    visitors: list[tuple[VisitorSuspension, Visitor]]


def current(session: Session, prison: Prison, now: datetime) -> Current:
    today = prison.local_date(now)
    inmates = session.execute(
        select(InmateSuspension, Inmate)
        .join(Inmate, InmateSuspension.inmate_id == Inmate.id)
        .where(
            Inmate.prison_id == prison.id,
            InmateSuspension.lifted_at.is_(None),
            InmateSuspension.until >= today,
        )
        .order_by(InmateSuspension.until, Inmate.code)
    ).all()
    visitors = session.execute(
        select(VisitorSuspension, Visitor)
        .join(Visitor, VisitorSuspension.visitor_id == Visitor.id)
        .where(
            VisitorSuspension.prison_id == prison.id,
            VisitorSuspension.lifted_at.is_(None),
            VisitorSuspension.until >= today,
        )
        .order_by(VisitorSuspension.until, Visitor.doc_number)
    ).all()
    return Current([tuple(r) for r in inmates], [tuple(r) for r in visitors])  # type: ignore[misc]
