"""Administrators' suspensions page: visits to an inmate suspended, visitors barred from the
prison, until a date and with a reason for staff; both lifted early from the same page (see
:mod:`visits.suspensions`: bookings in the period are cancelled and the families told).

Each rendering of the page gives its forms a new one-off key: the same form sent twice (a
double click, a reload) suspends (or lifts) once, and the second answer is the first's success
page. Another suspension of someone whose suspension runs still, from any form, is refused
beside the person's field, saying until when theirs runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from visits import audit, suspensions
from visits.booking_request import date_problem, parse_date
from visits.problems import Code, Problem, Rejected
from visits.staff import StaffRole
from visits.suspensions import Actor
from visits.visitor import DocumentType
from web.availability import commit_seat_change
from web.deps import ClientKey, Now, ReadSession, Sms, WriteSession
from web.family import render
from web.forms import FormValues, RowId, shown_count, shown_references
from web.staff import Staff, access

router = APIRouter(prefix="/staff/p/{prison}/suspensions", include_in_schema=False)
Admin = access(StaffRole.ADMIN)


def _path(who: Staff, **query: object) -> str:
    path = f"/staff/p/{who.prison.code}/suspensions"  # type: ignore[union-attr]
    return f"{path}?{urlencode(query)}" if query else path


def _page(
    request: Request,
    session: Session,
    who: Staff,
    now: datetime,
    problems: list[Problem] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "staff_suspensions.html",
        status,
        who=who,
        prison=who.prison,
        current=suspensions.current(session, who.prison, now),  # type: ignore[arg-type]
        doc_types=DocumentType,
        problems=problems or [],
        values=values or {},
        done=request.query_params.get("done", ""),
        count=shown_count(request.query_params.get("count", "")),
        at_gate=shown_references(request.query_params.get("at_gate", "")),
        key=audit.new_key(),
    )


@router.get("", response_class=HTMLResponse)
def suspensions_page(request: Request, who: Admin, session: ReadSession, now: Now) -> Response:
    """The suspensions running now, and the forms that add one."""
    return _page(request, session, who, now)


def _until(values: dict[str, str], form: str, problems: list[Problem]) -> date | None:
    """The last day typed (as a date input sends it, or day/month/year), if it can be read."""
    raw = values.get(f"{form}-until", "").strip()
    if not raw:
        return None  # the domain says it is required
    until = parse_date(raw)
    if until is None:
        problems.append(date_problem(raw, f"{form}-until"))
    return until


def _in_form(problem: Problem, form: str) -> Problem:
    """A domain problem named after the form's own field (both forms have a date and a reason)."""
    if problem.field in ("until", "reason"):
        return Problem(problem.code, f"{form}-{problem.field}", problem.params)
    return problem


def _apply(
    request: Request,
    session: Session,
    who: Staff,
    now: datetime,
    values: dict[str, str],
    form: str,
    act: Callable[[date | None], suspensions.Suspended],
) -> Response:
    """Parse the date, then ``act(until)``: committed, or the page again with every problem
    beside the form that was sent, and nothing changed. The page then says how many bookings
    were cancelled, and lists those left for the gate to stop (:mod:`visits.stopping`)."""
    problems: list[Problem] = []
    until = _until(values, form, problems)
    try:
        if problems:
            raise Rejected(problems)
        done = act(until)
    except Rejected as rejected:
        # A date that could not be read is reported once, not again as missing.
        found = [_in_form(p, form) for p in rejected.problems]
        if problems:  # only the date's
            found = problems + [p for p in found if p.field != f"{form}-until"]
        session.close()
        with request.app.state.db.read_session() as reading:
            return _page(request, reading, who, now, found, values, 422)
    commit_seat_change(request, session, who.prison.id)  # type: ignore[union-attr]
    at_gate = ",".join(b.reference for b in done.at_gate)
    target = _path(
        who, done=form, count=len(done.cancelled), **({"at_gate": at_gate} if at_gate else {})
    )
    return RedirectResponse(target, status_code=303)


@router.post("/inmates")
def suspend_inmate(
    request: Request,
    who: Admin,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    sms: Sms,
    values: FormValues,
) -> Response:
    """Suspend visits to an inmate of this prison until a date."""
    by = Actor(who.user.actor, client, now)
    return _apply(
        request, session, who, now, values, "inmate",
        lambda until: suspensions.suspend_inmate(
            session, who.prison, code=values.get("code", ""), until=until,  # type: ignore[arg-type]
            reason=values.get("inmate-reason", ""), by=by, sms_policy=sms,
            key=values.get("key", ""),
        ),
    )  # fmt: skip


@router.post("/visitors")
def suspend_visitor(
    request: Request,
    who: Admin,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    sms: Sms,
    values: FormValues,
) -> Response:
    """Bar a visitor, known by their document, from this prison until a date."""
    by = Actor(who.user.actor, client, now)
    return _apply(
        request, session, who, now, values, "visitor",
        lambda until: suspensions.suspend_visitor(
            session, who.prison, doc_type=values.get("doc_type", ""),  # type: ignore[arg-type]
            doc_number=values.get("doc_number", ""), until=until,
            reason=values.get("visitor-reason", ""), by=by, sms_policy=sms,
            key=values.get("key", ""),
        ),
    )  # fmt: skip


def _lift(
    request: Request,
    session: Session,
    who: Staff,
    now: datetime,
    lift: Callable[[], object],
) -> Response:
    try:
        lift()
    except Rejected as rejected:
        session.close()
        status = 404 if Code.NOT_FOUND in rejected.codes else 409
        with request.app.state.db.read_session() as reading:
            return _page(request, reading, who, now, list(rejected.problems), status=status)
    commit_seat_change(request, session, who.prison.id)  # type: ignore[union-attr]
    return RedirectResponse(_path(who, done="lifted"), status_code=303)


@router.post("/inmates/{suspension_id}/lift")
def lift_inmate(
    request: Request,
    suspension_id: RowId,
    who: Admin,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    values: FormValues,
) -> Response:
    """Let families book visits to the inmate again."""
    by = Actor(who.user.actor, client, now)
    return _lift(
        request, session, who, now,
        lambda: suspensions.lift_inmate_suspension(
            session, who.prison, suspension_id, by, key=values.get("key", "")  # type: ignore[arg-type]
        ),
    )  # fmt: skip


@router.post("/visitors/{suspension_id}/lift")
def lift_visitor(
    request: Request,
    suspension_id: RowId,
    who: Admin,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    values: FormValues,
) -> Response:
    """Let the visitor visit this prison again."""
    by = Actor(who.user.actor, client, now)
    return _lift(
        request, session, who, now,
        lambda: suspensions.lift_visitor_suspension(
            session, who.prison, suspension_id, by, key=values.get("key", "")  # type: ignore[arg-type]
        ),
    )  # fmt: skip
