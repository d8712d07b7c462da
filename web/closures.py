"""Administrators' closures page: close a day or one visit time, seeing first which bookings
that cancels; reopen what staff closed (see :mod:`visits.closing`).

Three steps without scripts: choose the day (its visit times and seats show), say what to
close and why (the preview lists every booking it cancels), confirm. A visit time that has
begun is shown but not offered (its visitors are inside, and it can no longer be closed); a
page loaded before it began is refused with that it started, not that it passed. Going
back from the preview is a form as well (no script needed), which brings the day, the time
chosen and the reason back into the form: a link would lose what was typed. The
confirmation carries the references the preview showed, so the result can say how many of
those cancelled were booked in between (they are cancelled too, see :mod:`visits.closing`),
and a key of its own, so that sending it twice (a double click, a reload) closes once and
answers the same. A closed time that still holds bookings (the prison file closed it) is
listed with them, to cancel them the same way. A booking someone of which came in at the gate
already is not cancelled: the preview and the result list it apart, to tell the gate
(:mod:`visits.stopping`).
"""

from __future__ import annotations

from datetime import date, datetime, time
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from visits import audit, closing
from visits.closing import ClosureRequest
from visits.problems import Code, Problem, Rejected
from visits.staff import StaffRole
from web.availability import commit_seat_change
from web.deps import ClientKey, Now, ReadSession, Sms, WriteSession
from web.family import render
from web.forms import FormValues, RowId, clock_time, iso_day, shown_count, shown_references, typed
from web.staff import Staff, access, form_pages_on_get

router = APIRouter(prefix="/staff/p/{prison}/closures", include_in_schema=False)
Admin = access(StaffRole.ADMIN)
form_pages_on_get(router, (StaffRole.ADMIN,), {"/preview": "", "/edit": ""})
FIELDS = ("day", "start", "reason")  # the form's, as typed: what going back brings back


def _path(who: Staff) -> str:
    return f"/staff/p/{who.prison.code}/closures"  # type: ignore[union-attr]


def _request(values: dict[str, str], problems: list[Problem], today: date) -> ClosureRequest:
    """The form's closure; a malformed day or time adds its problem."""
    raw_day = values.get("day", "").strip()
    if not raw_day:
        problems.append(Problem(Code.REQUIRED, "day"))
    day = iso_day(raw_day, "day", today, problems)
    start: time | None = None
    if raw_start := values.get("start", "").strip():
        start = clock_time(raw_start)
        if start is None:
            problems.append(Problem(Code.INVALID_CHOICE, "start"))
    return ClosureRequest(day, start, values.get("reason", ""), values.get("key", "").strip())


def _count(request: Request, name: str) -> int:
    return shown_count(request.query_params.get(name, ""))


def _day(raw: str, who: Staff, now: datetime, problems: list[Problem]) -> date | None:
    """The day the form names, if it is one to close (today or later)."""
    today = who.prison.local_date(now)  # type: ignore[union-attr]
    if not raw:
        return None
    found: list[Problem] = []
    day = iso_day(raw, "day", today, found)
    if not found and day < today:
        found.append(Problem(Code.DAY_IN_PAST, "day"))
    problems.extend(found)
    return None if found else day


def _page(
    request: Request,
    session: Session,
    who: Staff,
    now: datetime,
    values: dict[str, str],
    problems: list[Problem] | None = None,
    status: int = 200,
) -> Response:
    prison = who.prison
    assert prison is not None
    day = _day(values.get("day", ""), who, now, [])
    closures = closing.upcoming(session, prison, now)
    slots = closing.day_slots(session, prison, day) if day else []
    return render(
        request,
        "staff_closures.html",
        status,
        who=who,
        prison=prison,
        closures=closures,
        still_booked=closing.still_booked(session, prison, now),
        day=day,
        day_closures=[c for c in closures if c.day == day],
        slots=slots,
        # A visit time under way (or over) is no longer offered: its visitors are inside.
        started={s.id for s in slots if s.starts_at <= now},
        problems=problems or [],
        values=values,
        done=request.query_params.get("done", ""),
        count=_count(request, "count"),
        unseen=_count(request, "unseen"),
        at_gate=shown_references(request.query_params.get("at_gate", "")),
    )


@router.get("", response_class=HTMLResponse)
def closures_page(
    request: Request, who: Admin, session: ReadSession, now: Now, day: str = ""
) -> Response:
    """The closures to come, and a day's visit times to close."""
    problems: list[Problem] = []
    _day(day, who, now, problems)
    return _page(request, session, who, now, {"day": day}, problems, 422 if problems else 200)


@router.post("/preview", response_class=HTMLResponse)
def preview(
    request: Request, who: Admin, session: ReadSession, now: Now, values: FormValues
) -> Response:
    """Every booking the closure would cancel, and the button that does it."""
    problems: list[Problem] = []
    closure = _request(values, problems, who.prison.local_date(now))  # type: ignore[union-attr]
    if not problems:
        problems = closing.problems(session, who.prison, closure, now)  # type: ignore[arg-type]
    if problems:
        return _page(request, session, who, now, values, problems, 422)
    return render(
        request,
        "staff_closure_preview.html",
        who=who,
        prison=who.prison,
        closure=closure,
        bookings=closing.affected(session, who.prison, closure, now),  # type: ignore[arg-type]
        at_gate=closing.at_gate(session, who.prison, closure, now),  # type: ignore[arg-type]
        already=closing.covering(session, who.prison, closure),  # type: ignore[arg-type]
        # Confirming twice (a double click, a reload) closes once, and answers the same.
        key=audit.new_key(),
        typed=typed(values, FIELDS),
    )


@router.post("/edit", response_class=HTMLResponse)
def edit(
    request: Request, who: Admin, session: ReadSession, now: Now, values: FormValues
) -> Response:
    """The form again from a preview, as it was filled in (the day, the time chosen, the
    reason): going back changes nothing and loses nothing typed."""
    return _page(request, session, who, now, typed(values, FIELDS))


@router.post("", response_class=HTMLResponse)
def close(
    request: Request,
    who: Admin,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    sms: Sms,
    values: FormValues,
) -> Response:
    """Close, cancel the bookings in the closed time and queue each family's SMS, in one
    transaction."""
    problems: list[Problem] = []
    closure = _request(values, problems, who.prison.local_date(now))  # type: ignore[union-attr]
    try:
        if problems:
            raise Rejected(problems)
        closed = closing.close(
            session,
            who.prison,  # type: ignore[arg-type]
            closure,
            now=now,
            actor=who.user.actor,
            origin=client,
            sms_policy=sms,
        )
    except Rejected as rejected:
        session.close()
        with request.app.state.db.read_session() as reading:
            return _page(request, reading, who, now, values, list(rejected.problems), 422)
    shown = set(values.get("shown", "").split(","))
    unseen = sum(1 for reference in closed.cancelled if reference not in shown)
    if closed.replayed:  # done by the first click: nothing more to commit
        session.rollback()
    else:
        commit_seat_change(request, session, closed.closure.prison_id)
    query = urlencode(
        {"done": "closed", "count": len(closed.cancelled), "unseen": unseen}
        | ({"at_gate": ",".join(closed.at_gate)} if closed.at_gate else {})
    )
    return RedirectResponse(f"{_path(who)}?{query}", status_code=303)


@router.post("/{closure_id}/reopen")
def reopen(
    request: Request,
    closure_id: RowId,
    who: Admin,
    session: WriteSession,
    now: Now,
    client: ClientKey,
) -> Response:
    """Open a closed day or time again for new bookings; sent again (a double click), the
    page says it is open again, as the first answer did."""
    try:
        reopened = closing.reopen(
            session,
            who.prison,  # type: ignore[arg-type]
            closure_id,
            now=now,
            actor=who.user.actor,
            origin=client,
        )
    except Rejected as rejected:
        session.close()
        status = 404 if Code.NOT_FOUND in rejected.codes else 422
        with request.app.state.db.read_session() as reading:
            return _page(request, reading, who, now, {}, list(rejected.problems), status)
    if reopened:
        commit_seat_change(request, session, who.prison.id)  # type: ignore[union-attr]
    else:  # reopened by the first click: nothing to commit
        session.rollback()
    return RedirectResponse(f"{_path(who)}?done=reopened", status_code=303)
