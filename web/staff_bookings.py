"""One booking as staff see it: its details, its history, and cancelling or moving it on the
family's behalf (a phone call, a family at the gate).

Staff changes go through the same domain functions as the family's (every rule, the seats,
the SMS the family gets in its language), with the staff member as the actor, the reason they
give and where they were, all in the booking's audit timeline on this page. Where each step
came from (a family's address among them) is shown to administrators only: they look into
abuse, and a guard has no use for a family's address.

Each rendering of the page gives its forms a new one-off key: the same cancel or move sent
twice (a double click, a reload) is done once, and the second answer is the first's ("Moved",
"Cancelled"), not that the booking is already in that time or already cancelled. A booking
cancelled or moved by anyone else meanwhile is still refused as before: that was not this
action.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from visits import audit
from visits.booking import (
    Booking,
    BookingStatus,
    booking_by_reference,
    cancel_booking,
    gate_recorded,
    move_booking,
    move_targets,
)
from visits.problems import Audience, Code, Problem, Rejected
from visits.schedule import Slot
from visits.staff import StaffRole
from web.availability import commit_seat_change
from web.deps import ClientKey, Now, ReadSession, Sms, WriteSession
from web.family import render, status_for
from web.forms import FormValues
from web.staff import Staff, access

router = APIRouter(prefix="/staff/p/{prison}/bookings", include_in_schema=False)
BookingStaff = access(StaffRole.GUARD, StaffRole.ADMIN)
MAX_REASON = 300
# How many visit times the move form offers.
MOVE_CHOICES = 60


def _booking(session: Session, who: Staff, reference: str) -> Booking:
    """The booking, if it is one of this prison's (any other reference is unknown here)."""
    booking = booking_by_reference(session, reference)
    if booking is None or booking.prison_id != who.prison.id:  # type: ignore[union-attr]
        raise HTTPException(404)
    return booking


def _move_choices(session: Session, booking: Booking, now: datetime) -> list[Slot]:
    """The visit times the move form offers: only those the move would take now."""
    return move_targets(session, booking, now, limit=MOVE_CHOICES)


def _page(
    request: Request,
    session: Session,
    who: Staff,
    booking: Booking,
    now: datetime,
    status: int = 200,
    problems: list[Problem] | None = None,
    values: dict[str, str] | None = None,
    sent: str = "",
) -> Response:
    # A visit the gate recorded anyone of belongs to its day: cancelled, never moved.
    can_move = (
        booking.can_change(now)
        and booking.status is BookingStatus.CONFIRMED
        and not gate_recorded(session, booking)
    )
    return render(
        request,
        "staff_booking.html",
        status,
        audience=Audience.STAFF,  # refusals in words for staff, not the family's
        who=who,
        prison=who.prison,
        booking=booking,
        timeline=audit.timeline(session, "booking", booking.reference),
        show_origins=who.user.role is StaffRole.ADMIN,
        choices=_move_choices(session, booking, now) if can_move else [],
        can_change=booking.can_change(now),
        can_move=can_move,
        problems=problems or [],
        values=values or {},
        sent=sent,  # which form came back refused: "move" or "cancel"
        done=request.query_params.get("done", ""),
        key=audit.new_key(),
    )


@router.get("/{reference}", response_class=HTMLResponse)
def booking_page(
    request: Request, reference: str, who: BookingStaff, session: ReadSession, now: Now
) -> Response:
    return _page(request, session, who, _booking(session, who, reference), now)


def _reason(values: dict[str, str], form: str) -> tuple[str, list[Problem]]:
    """The family's reason; a problem names the field of the form that sent it."""
    reason, field = values.get("reason", "").strip(), f"{form}-reason"
    problems = []
    if not reason:
        problems.append(Problem(Code.REQUIRED, field))
    elif len(reason) > MAX_REASON:
        problems.append(Problem(Code.TOO_LONG, field, {"max": MAX_REASON}))
    if form == "move" and not values.get("slot_id"):
        problems.append(Problem(Code.REQUIRED, "slot_id"))
    return reason, problems


def _changed(request: Request, session: Session, who: Staff, booking: Booking, done: str):
    commit_seat_change(request, session, booking.prison_id)
    path = f"/staff/p/{who.prison.code}/bookings/{booking.reference}?done={done}"  # type: ignore[union-attr]
    return RedirectResponse(path, status_code=303)


def _refused(request, session, who, reference, now, problems, values, sent) -> Response:
    """The page again with why nothing changed, read outside the write lock."""
    session.close()
    with request.app.state.db.read_session() as reading:
        booking = _booking(reading, who, reference)
        status = status_for(problems)
        return _page(request, reading, who, booking, now, status, problems, values, sent)


def _change(
    request: Request,
    reference: str,
    who: Staff,
    session: Session,
    now: datetime,
    values: dict[str, str],
    done: str,
    act: Callable[[Booking, str], object],
) -> Response:
    """Check the reason (before any lock), then ``act(booking, reason)``: committed, or the
    page again with every reason why not and nothing changed."""
    form = "cancel" if done == "cancelled" else "move"
    reason, problems = _reason(values, form)
    if problems:
        return _refused(request, session, who, reference, now, problems, values, form)
    booking = _booking(session, who, reference)
    try:
        act(booking, reason)
    except Rejected as rejected:
        problems = list(rejected.problems)
        return _refused(request, session, who, reference, now, problems, values, form)
    return _changed(request, session, who, booking, done)


@router.post("/{reference}/cancel")
def cancel(
    request: Request,
    reference: str,
    who: BookingStaff,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    sms: Sms,
    values: FormValues,
) -> Response:
    """Cancel for the family, with the reason they gave: the seats come back at once and the
    family gets the cancellation SMS in its language."""
    return _change(
        request, reference, who, session, now, values, "cancelled",
        lambda booking, reason: cancel_booking(
            session, booking, now=now, actor=who.user.actor, sms_policy=sms, reason=reason,
            origin=client, key=values.get("key", ""),
        ),
    )  # fmt: skip


@router.post("/{reference}/move")
def move(
    request: Request,
    reference: str,
    who: BookingStaff,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    sms: Sms,
    values: FormValues,
) -> Response:
    """Move for the family to another visit time, under every rule a family's move meets."""
    return _change(
        request, reference, who, session, now, values, "moved",
        lambda booking, reason: move_booking(
            session, booking, slot_id=values.get("slot_id", ""), now=now, actor=who.user.actor,
            sms_policy=sms, reason=reason, origin=client, key=values.get("key", ""),
        ),
    )  # fmt: skip
