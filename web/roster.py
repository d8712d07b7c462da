"""Administrators upload their prison's roster: the CSV of ``visits import-inmates``, with
the same checks and the same all-or-nothing rule (see :mod:`visits.roster`). Every problem of
a refused file is listed with its line and column, in the administrator's language. A file
that is accepted applies at once, with no preview (why: :mod:`visits.roster`): the page then
lists what changed for whom (the columns named in the administrator's language, not as the
file spells them), and says how many bookings the roster ruled out were cancelled, and lists
each with why, then those it left because someone of them is inside already (tell the gate).
A file that would take most of the prison out of visits is applied only once the
administrator ticks the box the refusal shows, with the file chosen again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from visits.problems import Code, Problem
from visits.roster import RosterInvalid, RosterTakesManyOut, import_roster
from visits.staff import StaffRole
from web.availability import commit_seat_change
from web.deps import ClientKey, Now, Sms, WriteSession
from web.family import render
from web.staff import Staff, access

router = APIRouter(prefix="/staff/p/{prison}/roster", include_in_schema=False)
Admin = access(StaffRole.ADMIN)
# The problems a refused file shows; the page says how many there are in all.
MAX_SHOWN = 200


def _page(request: Request, who: Staff, status: int = 200, **values: object) -> Response:
    return render(request, "staff_roster.html", status, who=who, prison=who.prison, **values)


@router.get("", response_class=HTMLResponse)
def roster_page(request: Request, who: Admin) -> Response:
    """The upload form and the file's format."""
    return _page(request, who)


@router.post("", response_class=HTMLResponse)
def upload(
    request: Request,
    who: Admin,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    sms: Sms,
    file: Annotated[UploadFile | None, File()] = None,
    many_out: Annotated[str, Form()] = "",
) -> Response:
    """Import the whole roster, or nothing and every problem found."""
    if file is None or not file.filename:
        return _page(request, who, 422, problems=[Problem(Code.REQUIRED, "file")])
    prison = session.merge(who.prison, load=False)
    try:
        report = import_roster(
            session, prison, file.file.read(), now, actor=who.user.actor, origin=client,
            sms_policy=sms, many_out_confirmed=many_out == "yes",
        )  # fmt: skip
    except RosterInvalid as invalid:
        session.rollback()
        shown = {"filename": file.filename, "row_errors": invalid.errors[:MAX_SHOWN]}
        return _page(request, who, 422, error_count=len(invalid.errors), **shown)
    except RosterTakesManyOut as many:
        session.rollback()
        params = {"count": many.count, "active": many.active}
        problem = Problem(Code.ROSTER_TAKES_MANY_OUT, "many_out", params)
        return _page(request, who, 422, problems=[problem], ask_many_out=True)
    commit_seat_change(request, session, prison.id)
    return _page(request, who, filename=file.filename, report=report)
