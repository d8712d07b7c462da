"""Administrators' suspensions page: visits to an inmate suspended, visitors barred from the
prison, until a date and with a reason for staff; both lifted early from the same page (see
:mod:`visits.suspensions`: bookings in the period are cancelled and the families told).

Each preview (and each rendering of the page, for its lifting forms) gives its confirmation a
new one-off key: the same form sent twice (a double click, a reload) suspends (or lifts) once,
and the second answer is the first's success page. Another suspension of someone whose
suspension runs still, from any form, is refused beside the person's field, saying until when
theirs runs.

Each form goes to a preview first, as a closure's does: it names the person the code or the
document found and lists every booking the suspension would cancel. Suspending cannot be
undone for the families (lifting leaves the bookings cancelled, and each SMS has gone), so a
mistyped code or document number must be seen before it cancels a stranger's visits. The
preview is the same call rolled back (as the schedule editor's), so it shows what confirming
does; going back is a form that brings what was typed back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from visits import audit, suspensions
from visits.booking_request import date_problem, parse_date
from visits.inmate import Inmate
from visits.problems import Code, Problem, Rejected
from visits.sms import SmsPolicy
from visits.staff import StaffRole
from visits.suspensions import Actor
from visits.visitor import DocumentType, Visitor
from web.availability import commit_seat_change
from web.deps import ClientKey, Now, ReadSession, Sms, WriteSession
from web.family import render
from web.forms import FormValues, RowId, shown_count, shown_references, typed
from web.staff import Staff, access, form_pages_on_get

router = APIRouter(prefix="/staff/p/{prison}/suspensions", include_in_schema=False)
Admin = access(StaffRole.ADMIN)
form_pages_on_get(
    router, (StaffRole.ADMIN,), {"/inmates/preview": "", "/visitors/preview": "", "/edit": ""}
)
# Each form's fields, as typed: what its preview carries, and going back brings back.
FIELDS = {
    "inmate": ("code", "inmate-until", "inmate-reason"),
    "visitor": ("doc_type", "doc_number", "visitor-until", "visitor-reason"),
}


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
    *,
    confirm: bool = True,
) -> Response:
    """Parse the date, then ``act(until)``: committed, or the page again with every problem
    beside the form that was sent, and nothing changed. The page then says how many bookings
    were cancelled, and lists those left for the gate to stop (:mod:`visits.stopping`).
    Without ``confirm``, the preview of what it did, then rolled back."""
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
    if not confirm:
        return _preview(request, session, who, values, form, done)
    commit_seat_change(request, session, who.prison.id)  # type: ignore[union-attr]
    at_gate = ",".join(b.reference for b in done.at_gate)
    target = _path(
        who, done=form, count=len(done.cancelled), **({"at_gate": at_gate} if at_gate else {})
    )
    return RedirectResponse(target, status_code=303)


def _preview(
    request: Request,
    session: Session,
    who: Staff,
    values: dict[str, str],
    form: str,
    done: suspensions.Suspended,
) -> Response:
    """Who the form found and the bookings suspending would cancel, rendered before the
    session rolls all of it back (nothing is kept, no SMS queued)."""
    suspension = done.suspension
    person = (
        session.get(Inmate, suspension.inmate_id)
        if form == "inmate"
        else session.get(Visitor, suspension.visitor_id)  # type: ignore[union-attr]
    )
    response = render(
        request,
        "staff_suspension_preview.html",
        who=who,
        prison=who.prison,
        form=form,
        person=person,
        suspension=suspension,
        bookings=done.cancelled,
        held=done.held,
        at_gate=done.at_gate,
        typed=typed(values, FIELDS[form]),
        # Confirming twice (a double click, a reload) suspends once, and answers the same.
        key=audit.new_key(),
    )
    session.rollback()
    return response


@router.post("/edit", response_class=HTMLResponse)
def edit(
    request: Request, who: Admin, session: ReadSession, now: Now, values: FormValues
) -> Response:
    """The page again from a preview, its form filled in as it was: going back changes
    nothing and loses nothing typed."""
    kept = typed(values, FIELDS["inmate"] + FIELDS["visitor"])
    return _page(request, session, who, now, values={k: v for k, v in kept.items() if v})


def _suspend(
    request: Request, who: Staff, session: Session, now: datetime, client: str, sms: SmsPolicy,
    values: dict[str, str], form: str, *, confirm: bool,
) -> Response:  # fmt: skip
    """The inmate's or the visitor's form, previewed or (from the preview) done."""
    by = Actor(who.user.actor, client, now)
    key = values.get("key", "") if confirm else ""  # a preview is no submission

    def act(until: date | None) -> suspensions.Suspended:
        period = {"until": until, "reason": values.get(f"{form}-reason", "")}
        common = {**period, "by": by, "sms_policy": sms, "key": key}
        if form == "inmate":
            return suspensions.suspend_inmate(
                session,
                who.prison,
                code=values.get("code", ""),
                **common,  # type: ignore[arg-type]
            )
        return suspensions.suspend_visitor(
            session, who.prison, doc_type=values.get("doc_type", ""),  # type: ignore[arg-type]
            doc_number=values.get("doc_number", ""), **common,
        )  # fmt: skip

    return _apply(request, session, who, now, values, form, act, confirm=confirm)


@router.post("/inmates/preview", response_class=HTMLResponse)
def preview_inmate(
    request: Request,
    who: Admin,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    sms: Sms,
    values: FormValues,
) -> Response:
    """Whose visits would be suspended, and every booking that cancels; nothing is kept."""
    return _suspend(request, who, session, now, client, sms, values, "inmate", confirm=False)


@router.post("/visitors/preview", response_class=HTMLResponse)
def preview_visitor(
    request: Request,
    who: Admin,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    sms: Sms,
    values: FormValues,
) -> Response:
    """Who would be barred, and every booking that cancels; nothing is kept."""
    return _suspend(request, who, session, now, client, sms, values, "visitor", confirm=False)


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
    """Suspend visits to an inmate of this prison until a date (sent from the preview)."""
    return _suspend(request, who, session, now, client, sms, values, "inmate", confirm=True)


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
    """Bar a visitor, known by their document, from this prison until a date (sent from the
    preview)."""
    return _suspend(request, who, session, now, client, sms, values, "visitor", confirm=True)


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
