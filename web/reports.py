"""Administrators' reports page for one prison (see :mod:`visits.reports`), and its bookings
per visit day as a CSV for a spreadsheet: every day of the range, a row each (days without
bookings too, so a month's file has its 30 rows), the same columns as the page's table."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from visits.gate import GateStatus
from visits.i18n import N_, gettext
from visits.problems import Code, Problem
from visits.reports import report
from visits.staff import StaffRole
from web.deps import ClientKey, Now, ReadSession
from web.downloads import csv_download
from web.family import render
from web.forms import iso_day
from web.staff import Staff, access

router = APIRouter(prefix="/staff/p/{prison}", include_in_schema=False)
Admin = access(StaffRole.ADMIN)
DEFAULT_DAYS = 30
MAX_DAYS = 366
# The page's table of bookings per visit day, column for column.
CSV_COLUMNS = (
    N_("Day"),
    N_("Booked"),
    N_("Someone came in"),
    N_("Nobody came"),
    N_("Everyone turned away"),
    N_("Not marked at the gate"),
    N_("Still to come"),
    N_("Waiting for the SMS code"),
    N_("Cancelled"),
    N_("Code not entered in time"),
)


def _range(first: str, last: str, today: date) -> tuple[date, date, list[Problem]]:
    """The days asked for (see :func:`reports_page`), and every problem with them."""
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
    return start, end, problems


def _page(
    request: Request, who: Staff, session: Session, today: date, first: str, last: str
) -> Response:
    start, end, problems = _range(first, last, today)
    return render(
        request,
        "staff_reports.html",
        422 if problems else 200,
        who=who,
        prison=who.prison,
        report=None if problems else report(session, who.prison, start, end, today=today),  # type: ignore[arg-type]
        problems=problems,
        values={"first": first or start.isoformat(), "last": last or end.isoformat()},
        gate=GateStatus,
    )


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
    return _page(request, who, session, prison.local_date(now), first, last)


@router.get("/reports.csv")
def reports_csv(
    request: Request,
    who: Admin,
    session: ReadSession,
    now: Now,
    client: ClientKey,
    first: str = "",
    last: str = "",
) -> Response:
    """The bookings per visit day of the range, as the page counts them, every day a row."""
    prison = who.prison
    assert prison is not None
    today = prison.local_date(now)
    start, end, problems = _range(first, last, today)
    if problems:  # the page, with why: a bare error would be an empty download
        return _page(request, who, session, today, first, last)
    figures = report(session, prison, start, end, today=today)
    rows = [[gettext(column) for column in CSV_COLUMNS]]
    rows += [
        [
            d.day.isoformat(),
            *map(str, (d.booked, d.attended, d.no_show, d.turned_away, d.not_marked)),
            *map(str, (d.to_come, d.held, d.cancelled.total(), d.expired)),
        ]
        for d in figures.days
    ]
    return csv_download(
        request, session, who, now, client, rows,
        f"reporte-{prison.code}-{start.isoformat()}-{end.isoformat()}.csv",
        action="prison.report_downloaded", entity="prison", entity_id=prison.code,
        first=start.isoformat(), last=end.isoformat(),
    )  # fmt: skip
