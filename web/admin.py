"""Administrators' SMS delivery page: what was sent to a family, and what became of it. An
administrator of some prisons sees the messages of their bookings and their broadcasts, and
the answers to texts from phones that booked there; a national one sees every message.

No administrator, national or not, sees the SMS that are health information
(:data:`visits.sms.HEALTH_PRIVATE`: exposure notices, screening advice), not even as a
generic "health message" line: which phone or booking got one is itself what must not be
read (a symptom reported, an exposure). They are left out of the query, so the list, its
count, every filter and "there are more" agree; the page says, the same for every search,
that health messages are not listed. Whether a phone gets SMS at all shows in its other
messages.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import selectinload

from notifications.outbox import MessageStatus, OutboxMessage
from visits.booking import Booking
from visits.booking_request import parse_phone
from visits.broadcasts import subject as broadcast_subject
from visits.problems import Code, Problem
from visits.reference import parse as parse_reference
from visits.sms import HEALTH_PRIVATE
from visits.staff import StaffRole
from web.deps import Now, ReadSession
from web.family import render
from web.forms import iso_day
from web.staff import access

router = APIRouter(prefix="/staff", include_in_schema=False)
PAGE_SIZE = 200
# Messages belong to no prison here: days and times are Peru's (every prison's, for now).
SERVICE_TZ = ZoneInfo("America/Lima")
Admin = access(StaffRole.ADMIN)


@router.get("/messages", response_class=HTMLResponse)
def messages(
    request: Request,
    session: ReadSession,
    who: Admin,
    now: Now,
    phone: str = "",
    reference: str = "",
    status: str = "",
    day: str = "",
) -> HTMLResponse:
    """Messages, newest first, filtered by phone, booking reference, status and day (a day
    in Peru's time, like the times shown)."""
    query = (
        select(OutboxMessage)
        .options(selectinload(OutboxMessage.events))
        .order_by(OutboxMessage.id.desc())
        .where(OutboxMessage.kind.not_in(HEALTH_PRIVATE))
        .limit(PAGE_SIZE + 1)  # one more than shown: whether the page says there are more
    )
    if not who.user.national:
        theirs = [p.id for p in who.user.prisons]
        subjects = select("booking:" + Booking.reference).where(Booking.prison_id.in_(theirs))
        broadcasts = [broadcast_subject(p) for p in who.user.prisons]
        # An answer to a family's own text (help, opt-out) belongs to no booking: it is
        # theirs when the phone booked at one of their prisons, as that family may ask them.
        families = select(Booking.contact_phone).where(Booking.prison_id.in_(theirs))
        query = query.where(
            or_(
                OutboxMessage.subject.in_(subjects),
                OutboxMessage.subject.in_(broadcasts),
                and_(OutboxMessage.subject.is_(None), OutboxMessage.recipient.in_(families)),
            )
        )
    problems = []
    if phone.strip():
        parsed = parse_phone(phone)
        if isinstance(parsed, str):
            query = query.where(OutboxMessage.recipient == parsed)
        else:
            problems.append(Problem(Code.INVALID_PHONE, "phone"))
    if reference.strip():
        ref = parse_reference(reference)
        if ref is not None:
            query = query.where(OutboxMessage.subject == f"booking:{ref}")
        else:
            problems.append(Problem(Code.INVALID_REFERENCE, "reference"))
    if status:
        if status in {s.value for s in MessageStatus}:
            query = query.where(OutboxMessage.status == MessageStatus(status))
        else:
            problems.append(Problem(Code.INVALID_CHOICE, "status"))
    if day:
        today = now.astimezone(SERVICE_TZ).date()
        found: list[Problem] = []
        chosen = iso_day(day, "day", today, found, near=today)  # 9999-12-31 has no next day
        if found:
            problems.extend(found)
        else:
            start = datetime.combine(chosen, time(), tzinfo=SERVICE_TZ)
            query = query.where(
                OutboxMessage.created_at >= start,
                OutboxMessage.created_at < start + timedelta(days=1),
            )
    found = [] if problems else session.scalars(query).all()
    return render(
        request,
        "admin_messages.html",
        422 if problems else 200,
        messages=found[:PAGE_SIZE],
        more=len(found) > PAGE_SIZE,
        statuses=list(MessageStatus),
        values={"phone": phone, "reference": reference, "status": status, "day": day},
        tz=SERVICE_TZ,
        problems=problems,
        who=who,
    )
