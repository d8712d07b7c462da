"""Health staff's advisories pages: issue one (seeing first every booking it touches), change
its measures, lift it; advisories and their history are visible to health staff and
administrators, who cannot change them (see :mod:`visits.issuing`). Guards see only the
measures, on their day list.

Issuing and changing take two steps without scripts: the form, then a preview that counts the
bookings it cancels or the families it tells, with the button that does it. The preview
carries the form's values, so confirming issues exactly what was previewed (bookings made in
between are re-evaluated too, as issuing always does), and going back from it brings them back
into the form as typed (a form posting them to /edit, as every staff preview does: a link
would lose them).
"""

from __future__ import annotations

import re
import secrets
from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from visits import audit, issuing
from visits.advisories import HealthAdvisory
from visits.health import AdvisoryKind, Measures, Scope
from visits.inmate import Inmate
from visits.issuing import AdvisoryDraft
from visits.prison import Wing
from visits.problems import Code, Problem, Rejected
from visits.staff import StaffRole
from web.availability import commit_seat_change
from web.deps import ClientKey, Now, ReadSession, Sms, WriteSession
from web.family import render
from web.forms import FormValues, RowId, iso_day, shown_count, typed
from web.staff import Staff, access, form_pages_on_get

E = TypeVar("E", bound=StrEnum)
router = APIRouter(prefix="/staff/p/{prison}/health", include_in_schema=False)
Health = access(StaffRole.HEALTH)
HealthOrAdmin = access(StaffRole.HEALTH, StaffRole.ADMIN)
# Before "/{advisory_id}", which would take "preview" for an advisory's id.
form_pages_on_get(
    router,
    (StaffRole.HEALTH,),
    {
        "/preview": "", "/edit": "", "/{advisory_id}/preview": "/{advisory_id}",
        "/{advisory_id}/edit": "/{advisory_id}", "/{advisory_id}/lift/preview": "/{advisory_id}",
        "/{advisory_id}/infectious-since": "/{advisory_id}",
    },
)  # fmt: skip

SUBMISSION_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
MEASURE_FLAGS = ("inform", "masks", "no_high_risk", "non_contact", "suspended")
# The form's fields a preview carries to the confirmation.
DRAFT_FIELDS = (
    "scope", "wing", "inmate_code", "kind", "infectious_since", "smear_negative_no_cavity",
    "visit_minutes", "notes", "starts_on", *MEASURE_FLAGS,
)  # fmt: skip
# The fields of the form that changes an advisory's measures.
CHANGE_FIELDS = (*MEASURE_FLAGS, "visit_minutes")


def _path(who: Staff, advisory_id: int | None = None, **query: object) -> str:
    path = f"/staff/p/{who.prison.code}/health"  # type: ignore[union-attr]
    if advisory_id is not None:
        path += f"/{advisory_id}"
    return f"{path}?{urlencode(query)}" if query else path


def _choice(enum: type[E], raw: str, field: str, problems: list[Problem]) -> E | None:
    found = next((member for member in enum if member.value == raw), None)
    if found is None:
        problems.append(Problem(Code.INVALID_CHOICE if raw else Code.REQUIRED, field))
    return found


def _measures(values: dict[str, str], problems: list[Problem]) -> Measures:
    raw = values.get("visit_minutes", "").strip()
    minutes = None
    if raw:
        if raw.isascii() and raw.isdigit() and len(raw) <= 4:
            minutes = int(raw)
        else:
            limits = {"min": issuing.MIN_VISIT_MINUTES, "max": issuing.MAX_VISIT_MINUTES}
            problems.append(Problem(Code.OUT_OF_RANGE, "visit_minutes", limits))
    flags = {name: values.get(name) == "1" for name in MEASURE_FLAGS}
    return Measures(**flags, visit_minutes=minutes)


def _draft(values: dict[str, str], today: date, problems: list[Problem]) -> AdvisoryDraft | None:
    """The form's advisory; every problem of the form is added (the domain adds its own)."""
    scope = _choice(Scope, values.get("scope", ""), "scope", problems)
    kind = _choice(AdvisoryKind, values.get("kind", ""), "kind", problems)
    measures = _measures(values, problems)
    raw_start = values.get("starts_on", "").strip()
    if not raw_start:
        problems.append(Problem(Code.REQUIRED, "starts_on"))
    starts_on = iso_day(raw_start, "starts_on", today, problems)
    raw_since = values.get("infectious_since", "").strip()
    since = iso_day(raw_since, "infectious_since", today, problems) if raw_since else None
    if scope is None or kind is None:
        return None
    key = values.get("submission_key", "")
    return AdvisoryDraft(
        scope=scope,
        kind=kind,
        measures=measures,
        starts_on=starts_on,
        wing_code=values.get("wing", "").strip() if scope is Scope.WING else None,
        inmate_code=values.get("inmate_code", "") if scope is Scope.INMATE else None,
        infectious_since=since,
        smear_negative_no_cavity=values.get("smear_negative_no_cavity") == "1",
        notes=values.get("notes", ""),
        submission_key=key if SUBMISSION_KEY.fullmatch(key) else None,
    )


def _together(problems: list[Problem], rejected: Rejected) -> list[Problem]:
    """The form's own problems and the domain's, each once."""
    return problems + [p for p in rejected.problems if p not in problems]


def _names(session: Session, advisories: list[HealthAdvisory]) -> dict[str, dict[int, str]]:
    """Wing names and inmates (code and name) the advisories concern, for staff only."""
    wing_ids = {a.wing_id for a in advisories if a.wing_id}
    inmate_ids = {a.inmate_id for a in advisories if a.inmate_id}
    wings = session.execute(select(Wing.id, Wing.name).where(Wing.id.in_(wing_ids)))
    inmates = session.scalars(select(Inmate).where(Inmate.id.in_(inmate_ids)))
    return {
        "wings": {wing_id: name for wing_id, name in wings},
        "inmates": {i.id: f"{i.first_names} {i.last_name_1} ({i.code})" for i in inmates},
    }


def _list_page(
    request: Request,
    session: Session,
    who: Staff,
    now: datetime,
    values: dict[str, str] | None = None,
    problems: list[Problem] | None = None,
    status: int = 200,
) -> Response:
    prison = who.prison
    assert prison is not None
    advisories = list(
        session.scalars(
            select(HealthAdvisory)
            .where(HealthAdvisory.prison_id == prison.id)
            .order_by(HealthAdvisory.lifted_at.is_not(None), HealthAdvisory.id.desc())
        )
    )
    today = prison.local_date(now)
    return render(
        request,
        "staff_health.html",
        status,
        who=who,
        prison=prison,
        # In force: started and not lifted; those starting later are listed apart.
        in_force=[a for a in advisories if a.lifted_at is None and a.starts_on <= today],
        upcoming=[a for a in advisories if a.lifted_at is None and a.starts_on > today],
        lifted=[a for a in advisories if a.lifted_at is not None],
        names=_names(session, advisories),
        wings=list(session.scalars(select(Wing).where(Wing.prison_id == prison.id))),
        scopes=list(Scope),
        kinds=list(AdvisoryKind),
        can_issue=who.user.role is StaffRole.HEALTH,
        values=values or {"starts_on": today.isoformat(), "scope": "wing", "inform": "1"},
        problems=problems or [],
        done=request.query_params.get("done", ""),
    )


@router.get("", response_class=HTMLResponse)
def advisories_page(
    request: Request, who: HealthOrAdmin, session: ReadSession, now: Now
) -> Response:
    """The advisories in force, upcoming and lifted, and (for health staff) the form that
    issues one."""
    return _list_page(request, session, who, now)


def _preview_page(
    request: Request, who: Staff, preview: issuing.Preview, values: dict[str, str], names: dict
) -> Response:
    return render(
        request,
        "staff_health_preview.html",
        who=who,
        prison=who.prison,
        advisory=preview.advisory,
        bookings=preview.bookings,
        cancelled=preview.cancelled,
        told=preview.told,
        at_gate=preview.at_gate,
        reopened=preview.reopened,
        names=names,
        carried={k: values.get(k, "") for k in DRAFT_FIELDS if values.get(k)},
        # Confirming twice (a double click, a reload) issues one advisory.
        submission_key=secrets.token_urlsafe(24),
    )


@router.post("/preview", response_class=HTMLResponse)
def preview(
    request: Request, who: Health, session: ReadSession, now: Now, values: FormValues
) -> Response:
    """What the advisory would do: every booking it cancels or every family it tells."""
    problems: list[Problem] = []
    draft = _draft(values, who.prison.local_date(now), problems)  # type: ignore[union-attr]
    try:
        if problems or draft is None:
            raise Rejected(problems)
        found = issuing.preview(session, who.prison, draft, now=now, actor=who.user.actor)  # type: ignore[arg-type]
    except Rejected as rejected:
        found_problems = _together(problems, rejected)
        return _list_page(request, session, who, now, values, found_problems, 422)
    return _preview_page(request, who, found, values, _names(session, [found.advisory]))


@router.post("/edit", response_class=HTMLResponse)
def edit(
    request: Request, who: Health, session: ReadSession, now: Now, values: FormValues
) -> Response:
    """The form again from a preview, as it was filled in: going back issues nothing and
    loses nothing typed."""
    return _list_page(request, session, who, now, typed(values, DRAFT_FIELDS))


@router.post("", response_class=HTMLResponse)
def issue(
    request: Request,
    who: Health,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    sms: Sms,
    values: FormValues,
) -> Response:
    """Issue the advisory: its bookings are re-evaluated and the families told, at once."""
    problems: list[Problem] = []
    draft = _draft(values, who.prison.local_date(now), problems)  # type: ignore[union-attr]
    try:
        if problems or draft is None:
            raise Rejected(problems)
        effect = issuing.issue(
            session, who.prison, draft, now=now, actor=who.user.actor, origin=client,  # type: ignore[arg-type]
            sms_policy=sms,
        )  # fmt: skip
    except Rejected as rejected:
        session.close()
        found = _together(problems, rejected)
        with request.app.state.db.read_session() as reading:
            return _list_page(request, reading, who, now, values, found, 422)
    if effect.replayed:  # already issued by the first click: its page, nothing counted twice
        session.rollback()
        return RedirectResponse(_path(who, effect.advisory.id), status_code=303)
    return _applied(request, session, who, effect, "issued")


def _applied(
    request: Request, session: Session, who: Staff, effect: issuing.Effect, done: str
) -> Response:
    """Commit what issuing or changing did, and show the advisory with its counts."""
    advisory_id = effect.advisory.id
    commit_seat_change(request, session, who.prison.id)  # type: ignore[union-attr]
    counts = {"cancelled": len(effect.cancelled), "told": len(effect.told)}
    counts |= {"at_gate": len(effect.at_gate), "reopened": len(effect.reopened)}
    target = _path(who, advisory_id, done=done, **counts)
    return RedirectResponse(target, status_code=303)


def _detail_page(
    request: Request,
    session: Session,
    who: Staff,
    advisory_id: int,
    now: datetime,
    values: dict[str, str] | None = None,
    problems: list[Problem] | None = None,
    status: int = 200,
    typed_date: dict[str, str] | None = None,
) -> Response:
    advisory = session.get(HealthAdvisory, advisory_id)
    if advisory is None or advisory.prison_id != who.prison.id:  # type: ignore[union-attr]
        raise HTTPException(404)
    current = {name: "1" for name in MEASURE_FLAGS if getattr(advisory, name)}
    if advisory.visit_minutes:
        current["visit_minutes"] = str(advisory.visit_minutes)
    # The case's date form shows the advisory's, unless what was typed there came back.
    dated = {
        "infectious_since": advisory.infectious_since.isoformat()
        if advisory.infectious_since
        else "",
        "smear_negative_no_cavity": "1" if advisory.smear_negative_no_cavity else "",
    }
    return render(
        request,
        "staff_advisory.html",
        status,
        who=who,
        prison=who.prison,
        advisory=advisory,
        names=_names(session, [advisory]),
        history=audit.timeline(session, "advisory", advisory.id),
        upcoming=advisory.starts_on > who.prison.local_date(now),  # type: ignore[union-attr]
        can_change=who.user.role is StaffRole.HEALTH and advisory.lifted_at is None,
        values=dated | (values if values is not None else current) | (typed_date or {}),
        can_date=who.user.role is StaffRole.HEALTH,
        problems=problems or [],
        done=request.query_params.get("done", ""),
        cancelled=shown_count(request.query_params.get("cancelled", "")),
        told=shown_count(request.query_params.get("told", "")),
        at_gate=shown_count(request.query_params.get("at_gate", "")),
        reopened=shown_count(request.query_params.get("reopened", "")),
        no_longer=shown_count(request.query_params.get("no_longer", "")),
    )


@router.get("/{advisory_id}", response_class=HTMLResponse)
def advisory_page(
    request: Request, advisory_id: RowId, who: HealthOrAdmin, session: ReadSession, now: Now
) -> Response:
    """One advisory: what it asks, its notes, its history; the forms that change or lift it."""
    return _detail_page(request, session, who, advisory_id, now)


def _status(rejected: Rejected) -> int:
    if Code.NOT_FOUND in rejected.codes:
        return 404
    return 409 if Code.ALREADY_LIFTED in rejected.codes else 422


@router.post("/{advisory_id}/preview", response_class=HTMLResponse)
def preview_change(
    request: Request,
    advisory_id: RowId,
    who: Health,
    session: ReadSession,
    now: Now,
    values: FormValues,
) -> Response:
    """What the advisory with these measures would do now."""
    problems: list[Problem] = []
    measures = _measures(values, problems)
    try:
        if problems:
            raise Rejected(problems)
        found = issuing.preview_change(session, advisory_id, who.prison, measures, now=now)  # type: ignore[arg-type]
    except Rejected as rejected:
        found_problems = _together(problems, rejected)
        return _detail_page(
            request, session, who, advisory_id, now, values, found_problems, _status(rejected)
        )
    return _preview_page(request, who, found, values, _names(session, [found.advisory]))


@router.post("/{advisory_id}/edit", response_class=HTMLResponse)
def edit_change(
    request: Request,
    advisory_id: RowId,
    who: Health,
    session: ReadSession,
    now: Now,
    values: FormValues,
) -> Response:
    """The measures form again from a preview, as it was filled in: going back changes
    nothing and loses nothing typed."""
    return _detail_page(request, session, who, advisory_id, now, typed(values, CHANGE_FIELDS))


@router.post("/{advisory_id}", response_class=HTMLResponse)
def change(
    request: Request,
    advisory_id: RowId,
    who: Health,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    sms: Sms,
    values: FormValues,
) -> Response:
    """Apply these measures: the bookings are re-evaluated; nobody is told the same twice."""
    problems: list[Problem] = []
    measures = _measures(values, problems)
    try:
        if problems:
            raise Rejected(problems)
        effect = issuing.reissue(
            session, advisory_id, who.prison, measures, now=now, actor=who.user.actor,  # type: ignore[arg-type]
            origin=client, sms_policy=sms,
        )  # fmt: skip
    except Rejected as rejected:
        session.close()
        found = _together(problems, rejected)
        with request.app.state.db.read_session() as reading:
            return _detail_page(
                request, reading, who, advisory_id, now, values, found, _status(rejected)
            )
    return _applied(request, session, who, effect, "changed")


@router.post("/{advisory_id}/infectious-since", response_class=HTMLResponse)
def date_case(
    request: Request,
    advisory_id: RowId,
    who: Health,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    values: FormValues,
) -> Response:
    """Give or correct the date the case is infectious from: its contact list follows."""
    problems: list[Problem] = []
    today = who.prison.local_date(now)  # type: ignore[union-attr]
    raw = values.get("infectious_since", "").strip()
    since = iso_day(raw, "infectious_since", today, problems) if raw else None
    smear_negative = values.get("smear_negative_no_cavity") == "1"
    try:
        if problems:
            raise Rejected(problems)
        issuing.date_case(
            session, advisory_id, who.prison, since, smear_negative, now=now,  # type: ignore[arg-type]
            actor=who.user.actor, origin=client,
        )  # fmt: skip
    except Rejected as rejected:
        session.close()
        typed_date = {
            "infectious_since": raw,
            "smear_negative_no_cavity": "1" if smear_negative else "",
        }
        with request.app.state.db.read_session() as reading:
            return _detail_page(
                request, reading, who, advisory_id, now, None, _together(problems, rejected),
                _status(rejected), typed_date,
            )  # fmt: skip
    session.commit()
    return RedirectResponse(_path(who, advisory_id, done="dated"), status_code=303)


@router.post("/{advisory_id}/lift/preview", response_class=HTMLResponse)
def preview_lift(
    request: Request, advisory_id: RowId, who: Health, session: ReadSession, now: Now
) -> Response:
    """What lifting would do now: how many families are told they can book again."""
    try:
        found = issuing.preview_lift(session, advisory_id, who.prison, now=now)  # type: ignore[arg-type]
    except Rejected as rejected:
        return _detail_page(
            request, session, who, advisory_id, now, None, list(rejected.problems),
            _status(rejected),
        )  # fmt: skip
    return render(
        request,
        "staff_lift_preview.html",
        who=who,
        prison=who.prison,
        advisory=found.advisory,
        names=_names(session, [found.advisory]),
        reopened=found.reopened,
        still=found.still,
        no_longer=found.no_longer,
        # Confirming twice (a double click, a reload) lifts once and answers as the first.
        key=audit.new_key(),
    )


@router.post("/{advisory_id}/lift", response_class=HTMLResponse)
def lift(
    request: Request,
    advisory_id: RowId,
    who: Health,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    sms: Sms,
    values: FormValues,
) -> Response:
    """Lift the advisory: visits it paused can be booked again (never done by a timer)."""
    try:
        effect = issuing.lift(
            session, advisory_id, who.prison, now=now, actor=who.user.actor, origin=client,  # type: ignore[arg-type]
            sms_policy=sms, key=values.get("key", ""),
        )  # fmt: skip
    except Rejected as rejected:
        session.close()
        with request.app.state.db.read_session() as reading:
            return _detail_page(
                request, reading, who, advisory_id, now, {}, list(rejected.problems),
                _status(rejected),
            )  # fmt: skip
    if effect.replayed:  # lifted by the first click: nothing to commit
        session.rollback()
    else:
        commit_seat_change(request, session, who.prison.id)  # type: ignore[union-attr]
    counts = {name: effect.count(name) for name in ("reopened", "told", "no_longer")}
    # "told": the families texted the measures that still apply; "no_longer": that none do.
    counts["told"] -= counts["no_longer"]
    target = _path(who, advisory_id, done="lifted", **counts)
    return RedirectResponse(target, status_code=303)
