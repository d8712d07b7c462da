"""Administrators' reports page for one prison (see :mod:`visits.reports`)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from visits.gate import GateStatus
from visits.problems import Code, Problem
from visits.reports import report
from visits.staff import StaffRole
from web.deps import Now, ReadSession
from web.family import render
from web.forms import iso_day
from web.staff import access

router = APIRouter(prefix="/staff/p/{prison}", include_in_schema=False)
Admin = access(StaffRole.ADMIN)
DEFAULT_DAYS = 30
MAX_DAYS = 366


@router.get("/reports", response_class=HTMLResponse)
def reports_page(
    request: Request,
    who: Admin,
    session: ReadSession,
    now: Now,
    first: str = "",
    last: str = "",
) -> Response:
    """Visits per day, attendance, SMS delivery, and the overbooking check, for a range of
    days (by default the last 30). A day left out is set from the other one typed, so the
    range asked for is the one measured: only the last typed, the 30 days ending then; only
    the first, the 30 days from it, ending today at the latest (or 30 days on, for a first
    day after today)."""
    prison = who.prison
    assert prison is not None
    today = prison.local_date(now)
    problems: list[Problem] = []
    span = timedelta(days=DEFAULT_DAYS - 1)
    start = iso_day(first, "first", today - span, problems, near=today)
    end = iso_day(last, "last", today, problems, near=today)
    if not problems and first and not last:
        end = start + span if start > today else min(start + span, today)
    elif not problems and last and not first:
        start = end - span
    if not problems and not (start <= end <= start + timedelta(days=MAX_DAYS - 1)):
        problems.append(Problem(Code.INVALID_DATE_RANGE, "last", {"days": MAX_DAYS}))
    return render(
        request,
        "staff_reports.html",
        422 if problems else 200,
        who=who,
        prison=prison,
        report=None if problems else report(session, prison, start, end, today=today),
        problems=problems,
        values={"first": first or start.isoformat(), "last": last or end.isoformat()},
        gate=GateStatus,
    )
