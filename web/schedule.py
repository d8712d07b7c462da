"""Administrators' schedule page: the booking rules and the weekly visit times of their prison,
each change previewed against the visit times already booked, then confirmed (see
:mod:`visits.schedule_edits`). The preview is the change itself, rolled back; its
confirmation carries a key of its own, so that sending it twice (a double click, a reload)
changes the schedule once and answers the same. Going back from the preview brings the form
that was sent back as typed (a form posting it to /edit, as every staff preview does: a link
would lose it)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, time

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from visits import audit, schedule_edits
from visits.problems import Code, Problem, Rejected
from visits.rules import VisitorGroup
from visits.schedule import WEEKDAYS, ScheduleTemplate
from visits.schedule_edits import RULES, ScheduleChange, WeeklySession, rule_range
from visits.staff import StaffRole
from web.availability import commit_seat_change
from web.deps import ClientKey, Now, ReadSession, WriteSession
from web.family import render
from web.forms import FormValues, clock_time, iso_day, typed
from web.staff import Staff, access, form_pages_on_get

router = APIRouter(prefix="/staff/p/{prison}/schedule", include_in_schema=False)
Admin = access(StaffRole.ADMIN)
form_pages_on_get(router, (StaffRole.ADMIN,), {"/preview": "", "/edit": ""})
ACTIONS = ("rules", "add", "edit", "remove")
# A weekly visit time's fields, named with the form's prefix ("add-", or "t<id>-" for a row).
SESSION_FIELDS = ("weekday", "start", "end", "capacity", "group", "valid_from", "valid_to")
_NUMBER = re.compile(r"[0-9]{1,6}")


def _templates(session: Session, who: Staff) -> list[ScheduleTemplate]:
    return list(
        session.scalars(
            select(ScheduleTemplate)
            .where(ScheduleTemplate.prison_id == who.prison.id)  # type: ignore[union-attr]
            .order_by(
                ScheduleTemplate.weekday, ScheduleTemplate.start_time, ScheduleTemplate.valid_from
            )
        )
    )


def _page(
    request: Request,
    session: Session,
    who: Staff,
    problems: list[Problem] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    prison = who.prison
    return render(
        request,
        "staff_schedule.html",
        status,
        who=who,
        prison=prison,
        rules=[(name, getattr(prison, name), rule_range(name)) for name in RULES],
        templates=_templates(session, who),
        weekdays=list(enumerate(WEEKDAYS)),
        groups=VisitorGroup,
        problems=problems or [],
        values=values or {},
        done=request.query_params.get("done", ""),
    )


@router.get("", response_class=HTMLResponse)
def schedule_page(request: Request, who: Admin, session: ReadSession) -> Response:
    return _page(request, session, who)


def _number(
    values: dict[str, str],
    name: str,
    field: str,
    problems: list[Problem],
    limits: tuple[int, int] = (0, 10_000),
) -> int:
    raw = values.get(name, "").strip()
    if not _NUMBER.fullmatch(raw):
        problems.append(Problem(Code.OUT_OF_RANGE, field, {"min": limits[0], "max": limits[1]}))
        return 0
    return int(raw)


def _clock(values: dict[str, str], name: str, field: str, problems: list[Problem]) -> time:
    found = clock_time(values.get(name, ""))
    if found is None:
        problems.append(Problem(Code.INVALID_TIME, field))
        return time()
    return found


def _change(values: dict[str, str], who: Staff, now: datetime, problems: list[Problem]):
    """The change the form asks for; its problems name the fields without the form's prefix
    (see :func:`_prefixed`)."""
    action = values.get("action", "")
    today = who.prison.local_date(now)  # type: ignore[union-attr]
    if action == "rules":
        numbers = {name: _number(values, name, name, problems, rule_range(name)) for name in RULES}
        return ScheduleChange(rules=numbers)
    raw_id = values.get("template_id", "")
    template_id = int(raw_id) if _NUMBER.fullmatch(raw_id) else None
    if template_id is None and action in ("edit", "remove"):
        problems.append(Problem(Code.NOT_FOUND))
        return None
    if action == "remove":
        return ScheduleChange(template_id=template_id, remove=True)
    prefix = "add-" if action == "add" else f"t{template_id}-"
    group = next((g for g in VisitorGroup if g.value == values.get(f"{prefix}group")), None)
    if group is None:
        problems.append(Problem(Code.INVALID_CHOICE, "group"))
    raw_weekday = values.get(f"{prefix}weekday", "")
    weekdays = {str(i): i for i in range(7)}
    if action == "add" and raw_weekday not in weekdays:
        problems.append(Problem(Code.INVALID_CHOICE, "weekday"))
    raw_to = values.get(f"{prefix}valid_to", "").strip()
    session = WeeklySession(
        weekday=weekdays.get(raw_weekday, 0),
        start=_clock(values, f"{prefix}start", "start", problems)
        if action == "add"
        else time(),
        end=_clock(values, f"{prefix}end", "end", problems),
        capacity=_number(values, f"{prefix}capacity", "capacity", problems),
        visitor_group=group or VisitorGroup.ANYONE,
        valid_from=iso_day(values.get(f"{prefix}valid_from", ""), "valid_from", today,
                           problems) if action == "add" else today,
        valid_to=iso_day(raw_to, "valid_to", today, problems) if raw_to else None,
    )  # fmt: skip
    return ScheduleChange(template_id=template_id if action == "edit" else None, session=session)


def _fields(values: dict[str, str]) -> tuple[str, ...]:
    """The names of the form that was sent: the rules, the new visit time or one row's."""
    action = values.get("action", "")
    if action == "rules":
        return ("action", *RULES)
    prefix = "add-" if action == "add" else f"t{values.get('template_id', '')}-"
    return ("action", "template_id", *(prefix + name for name in SESSION_FIELDS))


def _prefixed(problems, values: dict[str, str]) -> list[Problem]:
    """Domain problems named after the fields of the form that was sent (a change of a row has
    no start: what concerns it is told beside its end)."""
    action = values.get("action", "")
    prefix = {"add": "add-", "edit": f"t{values.get('template_id', '')}-"}.get(action, "")
    found = []
    for p in problems:
        field = p.field
        if action == "edit" and field in ("start", "weekday", "valid_from"):
            field = "end"
        found.append(Problem(p.code, f"{prefix}{field}" if field and prefix else field, p.params))
    return found


def _apply(request, session, who, now, client, values, confirm: bool) -> Response:
    """The change, made: committed on confirmation, else rolled back and shown as a preview."""
    problems: list[Problem] = []
    if values.get("action") not in ACTIONS:
        problems.append(Problem(Code.INVALID_REQUEST))
    change = _change(values, who, now, problems) if not problems else None
    try:
        if change is None:
            raise Rejected(problems)
        if confirm:
            change = replace(change, key=values.get("key", ""))
        prison = session.merge(who.prison, load=False)
        # The form's own problems are told with the change's: all of them, at once.
        applied = schedule_edits.apply(
            session, prison, change, now=now, actor=who.user.actor, origin=client,
            form_problems=problems,
        )  # fmt: skip
    except Rejected as rejected:
        session.close()
        found = _prefixed(rejected.problems, values)
        status = 404 if Code.NOT_FOUND in rejected.codes else 422
        with request.app.state.db.read_session() as reading:
            return _page(request, reading, who, found, values, status)
    if confirm:
        if applied.replayed:  # made by the first click: nothing more to commit
            session.rollback()
        else:
            commit_seat_change(request, session, prison.id)
        path = f"/staff/p/{prison.code}/schedule?done=1"
        return RedirectResponse(path, status_code=303)
    session.close()  # a preview keeps nothing
    return render(
        request,
        "staff_schedule_preview.html",
        who=who,
        prison=who.prison,
        report=applied.report,
        details=applied.details,
        weekday_numbers={name: number for number, name in enumerate(WEEKDAYS)},
        group_of={g.value: g for g in VisitorGroup},
        typed=typed(values, _fields(values)),
        # Confirming twice (a double click, a reload) changes the schedule once.
        key=audit.new_key(),
    )


@router.post("/preview", response_class=HTMLResponse)
def preview(
    request: Request,
    who: Admin,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    values: FormValues,
) -> Response:
    """What the change would do to the visit times already booked; nothing is kept."""
    return _apply(request, session, who, now, client, values, confirm=False)


@router.post("/edit", response_class=HTMLResponse)
def edit(request: Request, who: Admin, session: ReadSession, values: FormValues) -> Response:
    """The form again from a preview, as it was filled in: going back changes nothing and
    loses nothing typed."""
    return _page(request, session, who, values=typed(values, _fields(values)))


@router.post("")
def confirm(
    request: Request,
    who: Admin,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    values: FormValues,
) -> Response:
    """Make the change."""
    return _apply(request, session, who, now, client, values, confirm=True)
