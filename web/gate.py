"""Guards' pages: the day's visitor list of one prison, on screen, printed and as CSV.

Server-rendered and without scripts, like the family pages: a tablet on the gate's slow
connection gets one light page; the print stylesheet starts each visit time on its own page
under its own heading. A search by document number or booking reference answers with the
list scrolled to that booking (a ``#fragment`` on the redirect).
"""

from __future__ import annotations

import csv
import io
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from visits import gate
from visits.gate import GateSlot
from visits.problems import Code, Problem
from visits.reference import parse as parse_reference
from visits.staff import StaffRole
from web.deps import Now, ReadSession
from web.family import render
from web.labels import label
from web.staff import Staff, access

router = APIRouter(prefix="/staff/p/{prison}", include_in_schema=False)
GateStaff = access(StaffRole.GUARD, StaffRole.ADMIN)
# A spreadsheet runs a cell that starts like a formula: such cells are given a leading quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _day(raw: str | None, who: Staff, now) -> tuple[date, list[Problem]]:
    today = who.prison.local_date(now)  # type: ignore[union-attr]
    if not raw:
        return today, []
    try:
        return date.fromisoformat(raw), []
    except ValueError:
        return today, [Problem(Code.INVALID_DATE, "date")]


@router.get("/day", response_class=HTMLResponse)
def day_page(
    request: Request,
    who: GateStaff,
    session: ReadSession,
    now: Now,
    date: str | None = None,
    q: str = "",
) -> Response:
    day, problems = _day(date, who, now)
    slots = [] if problems else gate.day_list(session, who.prison, day)  # type: ignore[arg-type]
    if q.strip() and not problems:
        if (anchor := _find(slots, q)) is not None:
            return RedirectResponse(f"?date={day.isoformat()}#{anchor}", status_code=303)
        problems = [Problem(Code.NOTHING_MATCHES, "q", {"query": q.strip()[:40]})]
    return render(
        request,
        "staff_day.html",
        422 if problems else 200,
        who=who,
        prison=who.prison,
        day=day,
        slots=slots,
        problems=problems,
        values={"date": day.isoformat(), "q": q},
    )


def _find(slots: list[GateSlot], query: str) -> str | None:
    """The anchor of the booking a document number or a reference names."""
    wanted = query.strip().upper().replace(" ", "")
    reference = parse_reference(query)
    for slot in slots:
        for booking in slot.bookings:
            if booking.reference == reference or any(
                v.doc_number.upper() == wanted for v in booking.visitors
            ):
                return f"b-{booking.reference}"
    return None


def csv_cell(value: object) -> str:
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


@router.get("/day.csv")
def day_csv(who: GateStaff, session: ReadSession, now: Now, date: str | None = None) -> Response:
    day, problems = _day(date, who, now)
    if problems:
        return Response(status_code=422)
    prison = who.prison
    assert prison is not None
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "start",
            "end",
            "reference",
            "status",
            "inmate_code",
            "inmate",
            "wing",
            "visitor",
            "document_type",
            "document_number",
            "age_group",
            "relationship",
        ]
    )
    for slot in gate.day_list(session, prison, day):
        starts = slot.starts_at.astimezone(prison.tz).strftime("%H:%M")
        ends = slot.ends_at.astimezone(prison.tz).strftime("%H:%M")
        for booking in slot.bookings:
            for visitor in booking.visitors:
                writer.writerow(
                    csv_cell(value)
                    for value in (
                        starts,
                        ends,
                        booking.reference,
                        booking.status.value,
                        booking.inmate_code,
                        booking.inmate_name,
                        booking.wing,
                        visitor.name,
                        visitor.doc_type.value,
                        visitor.doc_number,
                        visitor.age_group.value,
                        label(visitor.relationship),
                    )
                )
    filename = f"visitas-{prison.code}-{day.isoformat()}.csv"
    return Response(
        # A byte-order mark: Excel, which most prison offices use, then reads UTF-8 accents.
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
