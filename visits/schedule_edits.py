"""Administrators change their prison's weekly schedule and booking rules in the browser.

One change at a time: the booking rules, or one weekly session added, changed (end, places,
visitor group, last day) or removed. :func:`apply` makes the change and brings the dated visit
times in line exactly as ``visits load-prisons`` does (:func:`visits.schedule.sync_slots`): a
capacity never drops below the places already booked, a session that holds bookings is kept for
them, closed to new ones. The preview is the same call rolled back, so what the administrator
sees is what confirming does (if nothing else changes in between). The checks are the prison
file's own (:mod:`visits.prison_config`), so both ways of editing accept the same schedules.
A refusal lists every problem at once: what the form could not be read as (given by the
caller) and every check of what it could, so one round of corrections is enough.

A prison edited here is marked: reloading the prison file then leaves its rules and schedule
alone unless told to overwrite them (see :func:`visits.prison_config.apply_config`).

The preview's confirmation carries a one-off key (:func:`visits.audit.done_with`): sent twice
(a double click, a reload) it makes the change once, and the second is answered as done. It
was refused as overlapping the session the first had just added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time

from annotated_types import Ge, Le
from sqlalchemy import select
from sqlalchemy.orm import Session

from visits import audit
from visits.db import lock_rows, require_write_lock
from visits.prison import Prison
from visits.prison_config import RulesConfig, TemplateConfig
from visits.problems import Code, Problem, Rejected, reject_if
from visits.rules import VisitorGroup
from visits.schedule import WEEKDAYS, ScheduleTemplate, SyncReport, sync_slots

RULES = tuple(RulesConfig.model_fields)


def rule_range(name: str) -> tuple[int, int]:
    """The smallest and largest value the prison file accepts for a booking rule."""
    metadata = RulesConfig.model_fields[name].metadata
    low = next(m.ge for m in metadata if isinstance(m, Ge))
    high = next(m.le for m in metadata if isinstance(m, Le))
    return int(low), int(high)


@dataclass(frozen=True)
class WeeklySession:
    """A weekly session as the form gives it (the edited row's identity comes from the row)."""

    weekday: int
    start: time
    end: time
    capacity: int
    visitor_group: VisitorGroup
    valid_from: date
    valid_to: date | None


@dataclass(frozen=True)
class ScheduleChange:
    """``rules``; or ``template_id`` with ``remove``; or ``template_id`` with ``session`` (a
    change of that row); or ``session`` alone (a new one)."""

    rules: dict[str, int] | None = None
    template_id: int | None = None
    remove: bool = False
    session: WeeklySession | None = None
    key: str = ""  # the preview's, the same for every post of its confirmation


# The event of a change made.
CHANGED = "schedule.changed"


@dataclass
class Applied:
    """What the change did; ``replayed``: this confirmation was made already, and nothing
    more was done (``details`` are the first one's, ``report`` is empty)."""

    report: SyncReport
    details: dict[str, object] = field(default_factory=dict)
    replayed: bool = False


def _config(s: WeeklySession) -> TemplateConfig:
    return TemplateConfig(
        weekday=WEEKDAYS[s.weekday],
        start=s.start,
        end=s.end,
        capacity=s.capacity,
        visitor_group=s.visitor_group,
        valid_from=s.valid_from,
        valid_to=s.valid_to,
    )


def _of_row(row: ScheduleTemplate) -> WeeklySession:
    return WeeklySession(
        row.weekday, row.start_time, row.end_time, row.capacity, row.visitor_group,
        row.valid_from, row.valid_to,
    )  # fmt: skip


def _rule_problems(rules: dict[str, int], unread: frozenset[str]) -> list[Problem]:
    """Every problem of the rules, leaving out those the form could not read (``unread``:
    their own problem is told already)."""
    problems = []
    for name in RULES:
        low, high = rule_range(name)
        if name not in unread and not low <= rules[name] <= high:
            problems.append(Problem(Code.OUT_OF_RANGE, name, {"min": low, "max": high}))
    wrong = unread | {p.field for p in problems}
    if not wrong & {"min_adults", "max_visitors"} and rules["min_adults"] > rules["max_visitors"]:
        problems.append(Problem(Code.MORE_ADULTS_THAN_VISITORS, "min_adults"))
    return problems


def _session_problems(
    templates: list[ScheduleTemplate],
    row: ScheduleTemplate | None,
    change: ScheduleChange,
    today: date,
    unread: frozenset[str],
) -> list[Problem]:
    """Every problem of the session: each check runs unless a field it reads could not be
    read from the form (``unread``: its own problem is told already), so one round of
    corrections is enough."""
    s = change.session
    assert s is not None
    problems = []
    times_read = not unread & {"start", "end"}
    if times_read and s.end <= s.start:
        problems.append(Problem(Code.ENDS_BEFORE_START, "end"))
    if "capacity" not in unread and not 0 <= s.capacity <= 10_000:
        problems.append(Problem(Code.OUT_OF_RANGE, "capacity", {"min": 0, "max": 10_000}))
    unchanged_end = row is not None and s.valid_to == row.valid_to
    span_read = not unread & {"valid_from", "valid_to"}
    if s.valid_to is not None and span_read and not unchanged_end:
        if s.valid_to < s.valid_from:
            first = {"first": s.valid_from}
            problems.append(Problem(Code.LAST_DAY_BEFORE_FIRST, "valid_to", first))
        if s.valid_to < today:
            problems.append(Problem(Code.DAY_IN_PAST, "valid_to"))
    if change.template_id is None and "valid_from" not in unread and s.valid_from < today:
        problems.append(Problem(Code.DAY_IN_PAST, "valid_from"))
    # Whether it overlaps another session: only once it names a span of hours and of days.
    hours = times_read and s.start < s.end and "weekday" not in unread
    days = span_read and (s.valid_to is None or s.valid_from <= s.valid_to)
    if not (hours and days):
        return problems
    wanted = _span(s)
    for other in templates:
        if other.id != change.template_id and wanted.overlaps(_config(_of_row(other))):
            when = f"{other.start_time:%H:%M}–{other.end_time:%H:%M}"
            problems.append(Problem(Code.SESSIONS_OVERLAP, "start", {"when": when}))
    return problems


def _span(s: WeeklySession) -> TemplateConfig:
    """The session's days and hours, for :meth:`TemplateConfig.overlaps`, whatever its other
    values (a capacity out of range is told apart and does not hide an overlap)."""
    return TemplateConfig.model_construct(
        weekday=WEEKDAYS[s.weekday], start=s.start, end=s.end, valid_from=s.valid_from,
        valid_to=s.valid_to,
    )  # fmt: skip


def apply(
    session: Session,
    prison: Prison,
    change: ScheduleChange,
    *,
    now: datetime,
    actor: str,
    origin: str,
    form_problems: Sequence[Problem] = (),
) -> Applied:
    """Make the change and bring the visit times in line; what happened to them. The caller
    commits (confirm) or rolls back (preview). Raises :class:`Rejected` with every problem.

    ``form_problems``: what the caller could not read of the form (a choice not offered, a
    time not written as one), its fields holding stand-ins. They are refused with every
    problem the change's checks find in the fields that could be read, so that one answer
    tells all there is to correct.

    A confirmation whose ``key`` was made already changes nothing (``replayed``)."""
    require_write_lock(session)
    # Two administrators' changes (and a reload of the prison file) take turns: the checks of
    # one see what the other did, even when it added a row nobody could lock yet. So do two
    # posts of one confirmation: the second finds the first's record.
    lock_rows(session, Prison.id, [prison.id], key_share=True)  # bookings go on meanwhile
    key = audit.submission_key(change.key)
    if (earlier := audit.done_with(session, "prison", prison.code, (CHANGED,), key)) is not None:
        return Applied(SyncReport(), dict(earlier.details), replayed=True)
    templates = list(
        session.scalars(
            select(ScheduleTemplate)
            .where(ScheduleTemplate.prison_id == prison.id)
            .with_for_update()
        )
    )
    row = None
    if change.template_id is not None or change.remove:
        row = next((t for t in templates if t.id == change.template_id), None)
        if row is None:
            raise Rejected([Problem(Code.NOT_FOUND)])
    if change.rules is None and change.session is None and not change.remove:
        raise Rejected([Problem(Code.INVALID_REQUEST)])
    if row is not None and change.session is not None:
        # A change of a row keeps its identity: weekday, start and first day.
        kept = {"weekday": row.weekday, "start": row.start_time, "valid_from": row.valid_from}
        change = replace(change, session=replace(change.session, **kept))
    unread = frozenset(p.field for p in form_problems if p.field)
    found: list[Problem] = []
    if change.rules is not None:
        found = _rule_problems(change.rules, unread)
    elif not change.remove:
        found = _session_problems(templates, row, change, prison.local_date(now), unread)
    reject_if([*form_problems, *found])
    details: dict[str, object] = {}
    retiring: frozenset[int] = frozenset()
    if change.rules is not None:
        details = {
            "rules": {
                name: [getattr(prison, name), value]
                for name, value in change.rules.items()
                if getattr(prison, name) != value
            }
        }
        for name, value in change.rules.items():
            setattr(prison, name, value)
    elif change.remove and row is not None:
        retiring = frozenset({row.id})
        details = {"removed": _describe(_of_row(row))}
    elif change.session is not None:
        s = change.session
        if row is None:
            row = ScheduleTemplate(
                prison_id=prison.id, weekday=s.weekday, start_time=s.start,
                valid_from=s.valid_from, end_time=s.end, capacity=s.capacity,
                visitor_group=s.visitor_group, valid_to=s.valid_to,
            )  # fmt: skip
            session.add(row)
            details = {"added": _describe(s)}
        else:
            details = {"from": _describe(_of_row(row)), "to": _describe(s)}
            row.end_time, row.capacity = s.end, s.capacity
            row.visitor_group, row.valid_to = s.visitor_group, s.valid_to
    session.flush()
    report = sync_slots(session, prison, now, retiring)
    if retiring:
        session.delete(row)
    prison.schedule_edited_at = now
    audit.record(
        session,
        at=now,
        actor=actor,
        action=CHANGED,
        entity="prison",
        entity_id=prison.code,
        details=details
        | {"conflicts": [c.describe(prison.tz) for c in report.conflicts]}
        | ({"key": key} if key else {}),
        origin=origin,
    )
    session.flush()
    return Applied(report, details)


def _describe(s: WeeklySession) -> dict[str, object]:
    return {
        "weekday": WEEKDAYS[s.weekday],
        "start": s.start.strftime("%H:%M"),
        "end": s.end.strftime("%H:%M"),
        "capacity": s.capacity,
        "visitor_group": s.visitor_group.value,
        "valid_from": s.valid_from.isoformat(),
        "valid_to": s.valid_to.isoformat() if s.valid_to else None,
    }
