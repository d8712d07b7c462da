"""Administrators' message to every family booked at their prison on a day or a few days:
write it, see the count and the text as it goes, send (see :mod:`visits.broadcasts`). Going
back from the preview brings the days and the texts back into the form, as typed (a form
posting them to /edit, as every staff preview does: a link would lose them)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from visits import broadcasts
from visits.broadcasts import BroadcastRequest
from visits.problems import Code, Problem, Rejected
from visits.staff import StaffRole
from web.deps import ClientKey, Now, ReadSession, WriteSession
from web.family import render
from web.forms import FormValues, iso_day, shown_count, typed
from web.staff import Staff, access, form_pages_on_get

router = APIRouter(prefix="/staff/p/{prison}/broadcast", include_in_schema=False)
Admin = access(StaffRole.ADMIN)
form_pages_on_get(router, (StaffRole.ADMIN,), {"/preview": "", "/edit": ""})
LANGUAGES = ("es", "en")
FIELDS = ("first", "last", *(f"text_{language}" for language in LANGUAGES))


def _request(values: dict[str, str], who: Staff, now: datetime, problems: list[Problem]):
    today = who.prison.local_date(now)  # type: ignore[union-attr]
    for name in ("first", "last"):
        if not values.get(name, "").strip():
            problems.append(Problem(Code.REQUIRED, name))
    first = iso_day(values.get("first", "").strip(), "first", today, problems)
    last = iso_day(values.get("last", "").strip(), "last", first, problems)
    texts = {language: values.get(f"text_{language}", "") for language in LANGUAGES}
    again = values.get("again") == "1"
    return BroadcastRequest(first, last, texts, values.get("key", ""), again)


def _form(request: Request, who: Staff, values, problems=None, status=200) -> Response:
    return render(
        request,
        "staff_broadcast.html",
        status,
        who=who,
        prison=who.prison,
        values=values,
        problems=problems or [],
        done=request.query_params.get("done", ""),
        count=shown_count(request.query_params.get("count", "")),
    )


@router.get("", response_class=HTMLResponse)
def broadcast_page(request: Request, who: Admin) -> Response:
    return _form(request, who, {})


@router.post("/preview", response_class=HTMLResponse)
def preview(
    request: Request, who: Admin, session: ReadSession, now: Now, values: FormValues
) -> Response:
    """How many families, and the text each will read."""
    problems: list[Problem] = []
    wanted = _request(values, who, now, problems)
    try:
        if problems:
            raise Rejected(problems)
        return _preview_page(request, who, session, wanted, values, now)
    except Rejected as rejected:
        return _form(request, who, values, list(rejected.problems), 422)


def _preview_page(
    request: Request,
    who: Staff,
    session: Session,
    wanted: BroadcastRequest,
    values: dict[str, str],
    now: datetime,
    status: int = 200,
) -> Response:
    """The preview, saying so when the same message went out just now (it then needs the
    "send it again" box ticked)."""
    shown = broadcasts.preview(session, who.prison, wanted, now)  # type: ignore[arg-type]
    return render(
        request,
        "staff_broadcast_preview.html",
        status,
        who=who,
        prison=who.prison,
        wanted=wanted,
        preview=shown,
        problems=[shown.repeated] if shown.repeated else [],
        languages=LANGUAGES,
        typed=typed(values, FIELDS),
    )


@router.post("/edit", response_class=HTMLResponse)
def edit(request: Request, who: Admin, values: FormValues) -> Response:
    """The form again from a preview, as it was filled in (the days, the texts): going back
    sends nothing and loses nothing typed."""
    return _form(request, who, typed(values, FIELDS))


@router.post("")
def send(
    request: Request,
    who: Admin,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    values: FormValues,
) -> Response:
    """Queue the message to every family booked in the range, once however often sent."""
    problems: list[Problem] = []
    wanted = _request(values, who, now, problems)
    try:
        if problems:
            raise Rejected(problems)
        queued = broadcasts.send(
            session,
            who.prison,
            wanted,
            now=now,
            actor=who.user.actor,
            origin=client,  # type: ignore[arg-type]
        )
    except Rejected as rejected:
        session.close()
        if Code.BROADCAST_REPEATED in rejected.codes:  # sent by someone else meanwhile
            with request.app.state.db.read_session() as read:
                return _preview_page(request, who, read, wanted, values, now, 409)
        return _form(request, who, values, list(rejected.problems), 422)
    session.commit()
    path = f"/staff/p/{who.prison.code}/broadcast"  # type: ignore[union-attr]
    query = urlencode({"done": "again"} if queued is None else {"done": "sent", "count": queued})
    return RedirectResponse(f"{path}?{query}", status_code=303)
