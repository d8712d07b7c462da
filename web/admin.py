"""Staff pages, for now only SMS delivery: what was sent to a family, and what became of it.

Until staff accounts exist (the staff issue adds roles and prison scopes), the page is behind
HTTP Basic with user ``admin`` and ``VISITS_ADMIN_PASSWORD``; without that setting it does not
exist (404). Compared in constant time; over HTTPS only in production.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from notifications.outbox import MessageStatus, OutboxMessage
from visits.booking_request import parse_phone
from visits.problems import Code, Problem
from visits.reference import parse as parse_reference
from web.deps import ReadSession
from web.family import render

router = APIRouter(prefix="/admin", include_in_schema=False)
basic = HTTPBasic(auto_error=False, realm="visits-admin")
PAGE_SIZE = 200
# Messages belong to no prison here: days and times are Peru's (every prison's, for now).
SERVICE_TZ = ZoneInfo("America/Lima")


def admin(
    request: Request, credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)]
) -> str:
    password = request.app.state.settings.admin_password
    if password is None:
        raise HTTPException(404)
    given = credentials.password.encode() if credentials else b""
    user_ok = credentials is not None and secrets.compare_digest(
        credentials.username.encode(), b"admin"
    )
    if not (user_ok and secrets.compare_digest(given, password.get_secret_value().encode())):
        raise HTTPException(401, headers={"WWW-Authenticate": 'Basic realm="visits-admin"'})
    return "admin"


Admin = Annotated[str, Depends(admin)]


@router.get("/messages", response_class=HTMLResponse)
def messages(
    request: Request,
    session: ReadSession,
    _admin: Admin,
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
        .limit(PAGE_SIZE)
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
        try:
            start = datetime.combine(date.fromisoformat(day), time(), tzinfo=SERVICE_TZ)
        except ValueError:
            problems.append(Problem(Code.INVALID_DATE, "day"))
        else:
            query = query.where(
                OutboxMessage.created_at >= start,
                OutboxMessage.created_at < start + timedelta(days=1),
            )
    return render(
        request,
        "admin_messages.html",
        422 if problems else 200,
        messages=[] if problems else session.scalars(query).all(),
        statuses=list(MessageStatus),
        values={"phone": phone, "reference": reference, "status": status, "day": day},
        tz=SERVICE_TZ,
        problems=problems,
    )
