"""The prison configuration file (TOML) and applying it to the database.

The file declares prisons with their booking rules, wings, weekly schedule and closures; it is
the source of truth for the prisons it names (prisons it does not name are left alone).
Applying it is idempotent: a second run with the same file changes nothing and says so. A
schedule change never takes seats away from families who booked: see
:func:`visits.schedule.sync_slots`. The format is documented, with an example, in the README.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from visits import audit, closing
from visits.advisories import HealthAdvisory
from visits.booking import HOLDS_SEATS, Booking
from visits.i18n import SUPPORTED_LOCALES
from visits.inmate import Inmate
from visits.prison import Prison, Wing
from visits.rules import VisitorGroup
from visits.schedule import (
    WEEKDAYS,
    Closure,
    ScheduleTemplate,
    Slot,
    SyncReport,
    local_moment,
    rule_of,
    sync_slots,
)
from visits.sms import SmsPolicy

Code = Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9_-]{0,31}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Where in the entry being checked a mistake is: ("schedule", 2, "end").
Place = tuple[str | int, ...]


class Mistakes(ValueError):
    """Every mistake a check across fields or entries found, each at its place in the entry:
    :func:`parse_config` lists each on a line of its own, not only the first."""

    def __init__(self, found: list[tuple[Place, str]]) -> None:
        self.found = found
        super().__init__("; ".join(message for _, message in found))


class RulesConfig(_Strict):
    booking_opens_days: int = Field(default=14, ge=1, le=90)
    booking_closes_hours: int = Field(default=24, ge=0, le=336)
    max_visitors: int = Field(default=3, ge=1, le=10)
    min_adults: int = Field(default=1, ge=0, le=10)
    adult_age: int = Field(default=18, ge=1, le=21)
    visits_per_inmate_per_week: int = Field(default=2, ge=1, le=21)

    @model_validator(mode="after")
    def _adults_fit(self) -> RulesConfig:
        # No booking could meet such rules; the browser refuses them too (schedule_edits).
        if self.min_adults > self.max_visitors:
            raise Mistakes(
                [
                    (
                        ("min_adults",),
                        f"min_adults ({self.min_adults}) is more than max_visitors "
                        f"({self.max_visitors}): no booking could meet them",
                    )
                ]
            )
        return self


class WingConfig(_Strict):
    code: Code
    name: str = Field(min_length=1, max_length=200)


class TemplateConfig(_Strict):
    weekday: Literal[WEEKDAYS]  # type: ignore[valid-type]
    start: time
    end: time
    capacity: int = Field(ge=0, le=10_000)
    visitor_group: VisitorGroup = VisitorGroup.ANYONE
    valid_from: date
    valid_to: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TemplateConfig:
        found: list[tuple[Place, str]] = []
        if self.end <= self.start:
            found.append((("end",), "end must be after start"))
        if self.valid_to is not None and self.valid_to < self.valid_from:
            found.append((("valid_to",), "valid_to must not be before valid_from"))
        if found:
            raise Mistakes(found)
        return self

    @property
    def weekday_number(self) -> int:
        return WEEKDAYS.index(self.weekday)

    @property
    def key(self) -> tuple[int, time, date]:
        return (self.weekday_number, self.start, self.valid_from)

    def overlaps(self, other: TemplateConfig) -> bool:
        if self.weekday != other.weekday or not (self.start < other.end and other.start < self.end):
            return False
        self_end = self.valid_to or date.max
        other_end = other.valid_to or date.max
        return self.valid_from <= other_end and other.valid_from <= self_end


class ClosureConfig(_Strict):
    date: date
    start: time | None = None
    reason: str = Field(min_length=1, max_length=200)

    @property
    def when(self) -> str:
        return f"{self.date}" + (f" {self.start:%H:%M}" if self.start else "")


class PrisonConfig(_Strict):
    code: Code
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(default="", max_length=300)
    timezone: str = "America/Lima"
    online_booking: bool = True
    languages: list[str] = Field(default_factory=lambda: list(SUPPORTED_LOCALES))
    rules: RulesConfig = Field(default_factory=RulesConfig)
    wings: list[WingConfig] = Field(default_factory=list)
    schedule: list[TemplateConfig] = Field(default_factory=list)
    closures: list[ClosureConfig] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("languages")
    @classmethod
    def _supported(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(SUPPORTED_LOCALES))
        if unknown or not value:
            raise ValueError(f"languages must be among {list(SUPPORTED_LOCALES)}, got {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PrisonConfig:
        found: list[tuple[Place, str]] = []
        for i, j in _repeats([w.code for w in self.wings]):
            found.append((("wings", j, "code"), f"wing {self.wings[j].code} repeats wings[{i}]"))
        for j, b in enumerate(self.schedule):
            for i, a in enumerate(self.schedule[:j]):
                if a.overlaps(b):
                    found.append(
                        (
                            ("schedule", j),
                            f"{b.weekday} {b.start:%H:%M}-{b.end:%H:%M} overlaps schedule[{i}] "
                            f"({a.weekday} {a.start:%H:%M}-{a.end:%H:%M}) in time and validity",
                        )
                    )
        for i, j in _repeats([(c.date, c.start) for c in self.closures]):
            found.append(
                (("closures", j), f"closure {self.closures[j].when} repeats closures[{i}]")
            )
        if found:
            raise Mistakes(found)
        return self


class ConfigFile(_Strict):
    prisons: list[PrisonConfig] = Field(alias="prison", min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ConfigFile:
        repeated = _repeats([p.code for p in self.prisons])
        if repeated:
            raise Mistakes(
                [
                    (("prison", j, "code"), f"prison {self.prisons[j].code} repeats prison[{i}]")
                    for i, j in repeated
                ]
            )
        return self


def _repeats(values: list[Any]) -> list[tuple[int, int]]:
    """(first, later) positions of each value listed again."""
    first: dict[Any, int] = {}
    found = []
    for j, value in enumerate(values):
        if value in first:
            found.append((first[value], j))
        else:
            first[value] = j
    return found


class ConfigInvalid(Exception):
    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


def _location(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "file"


def parse_config(text: str) -> ConfigFile:
    """Read a configuration file, or raise :class:`ConfigInvalid` listing every mistake."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigInvalid([f"not valid TOML: {error}"]) from None
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as error:
        raise ConfigInvalid(
            [line for e in error.errors(include_url=False) for line in _lines(e)]
        ) from None


def _lines(error: Any) -> list[str]:
    """One line per mistake, at its place (``Mistakes`` found by a check of a whole entry are
    placed within it)."""
    found = error.get("ctx", {}).get("error")
    if isinstance(found, Mistakes):
        return [f"{_location((*error['loc'], *at))}: {message}" for at, message in found.found]
    return [f"{_location(error['loc'])}: {error['msg'].removeprefix('Value error, ')}"]


@dataclass
class PrisonReport:
    code: str
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    created: bool = False
    updated: list[str] = field(default_factory=list)
    wings: dict[str, int] = field(default_factory=dict)
    templates: dict[str, int] = field(default_factory=dict)
    closures: dict[str, int] = field(default_factory=dict)
    slots: SyncReport = field(default_factory=SyncReport)
    warnings: list[str] = field(default_factory=list)
    # Bookings still on in times closed or withdrawn: told on every load until cancelled.
    left_on: closing.LeftOn = field(default_factory=closing.LeftOn)

    @property
    def changed(self) -> bool:
        return (
            self.created
            or bool(self.updated)
            or any(self.wings.values())
            or any(self.templates.values())
            or any(self.closures.values())
            or self.slots.changed
        )

    def lines(self, base_url: str = "") -> list[str]:
        """What the load did; what is still to look at (conflicts, warnings, bookings left
        in times nobody can book) follows, changed or not. ``base_url``: the service's public
        address, for the closures page's."""
        said = "created" if self.created else "updated" if self.changed else "no changes"
        lines = [f"{self.code}: {said}"]
        if self.updated:
            lines.append(f"  settings changed: {', '.join(self.updated)}")
        for label, counts in (
            ("wings", self.wings),
            ("schedule sessions", self.templates),
            ("closures", self.closures),
        ):
            if any(counts.values()):
                lines.append(f"  {label}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
        s = self.slots
        if s.changed:
            lines.append(
                f"  slots: {s.created} created, {s.resized} resized, {s.regrouped} regrouped, "
                f"{s.retimed} retimed, {s.removed} removed, "
                f"{s.withdrawn} withdrawn (kept for their bookings)"
            )
        lines += [f"  CONFLICT {c.describe(self.tz)}" for c in s.conflicts]
        lines += [f"  WARNING {w}" for w in self.warnings]
        if self.left_on:
            page = f"{base_url.rstrip('/')}/staff/p/{self.code}/closures"
            lines.append(
                f"  STILL BOOKED {self.left_on.closed} bookings in times closed to visits "
                "(their families were not told and may come), "
                f"{self.left_on.withdrawn} in visit times no longer in the schedule "
                f"(they happen unless those times are closed): cancel them at {page}, "
                "which texts each family"
            )
        return lines


def _apply_settings(
    prison: Prison, config: PrisonConfig, report: PrisonReport, rules: bool
) -> None:
    wanted = {
        "name": config.name,
        "address": config.address,
        "timezone": config.timezone,
        "online_booking": config.online_booking,
        "languages": ",".join(config.languages),
        **(config.rules.model_dump() if rules else {}),
    }
    for name, value in wanted.items():
        if getattr(prison, name) != value:
            setattr(prison, name, value)
            if not report.created:
                report.updated.append(name)


def _apply_wings(session: Session, prison: Prison, config: PrisonConfig, report: PrisonReport):
    counts = {"created": 0, "renamed": 0, "removed": 0}
    existing = {w.code: w for w in session.scalars(select(Wing).where(Wing.prison_id == prison.id))}
    for wing in config.wings:
        row = existing.pop(wing.code, None)
        if row is None:
            session.add(Wing(prison_id=prison.id, code=wing.code, name=wing.name))
            counts["created"] += 1
        elif row.name != wing.name:
            row.name = wing.name
            counts["renamed"] += 1
    for code, row in existing.items():
        residents = session.scalar(select(func.count()).where(Inmate.wing_id == row.id)) or 0
        advised = session.scalar(select(func.count()).where(HealthAdvisory.wing_id == row.id)) or 0
        if residents or advised:
            report.warnings.append(
                f"wing {code} is not in the file but has {residents} inmates and "
                f"{advised} health advisories: kept"
            )
        else:
            session.delete(row)
            counts["removed"] += 1
    report.wings = counts


def _apply_templates(
    session: Session, prison: Prison, config: PrisonConfig, report: PrisonReport
) -> frozenset[int]:
    """Create and update templates; return the ids of those the file no longer has."""
    counts = {"created": 0, "changed": 0, "removed": 0}
    existing = {
        (t.weekday, t.start_time, t.valid_from): t
        for t in session.scalars(
            select(ScheduleTemplate).where(ScheduleTemplate.prison_id == prison.id)
        )
    }
    for entry in config.schedule:
        wanted = {
            "end_time": entry.end,
            "capacity": entry.capacity,
            "visitor_group": entry.visitor_group,
            "valid_to": entry.valid_to,
        }
        row = existing.pop(entry.key, None)
        if row is None:
            session.add(
                ScheduleTemplate(
                    prison_id=prison.id,
                    weekday=entry.weekday_number,
                    start_time=entry.start,
                    valid_from=entry.valid_from,
                    **wanted,
                )
            )
            counts["created"] += 1
        elif any(getattr(row, k) != v for k, v in wanted.items()):
            for k, v in wanted.items():
                setattr(row, k, v)
            counts["changed"] += 1
    counts["removed"] = len(existing)
    report.templates = counts
    return frozenset(t.id for t in existing.values())


def _apply_closures(
    session: Session, prison: Prison, config: PrisonConfig, today: date, report: PrisonReport
) -> list[tuple[date, time | None]]:
    """The file's closures from today on are exactly those in the file; past ones are history,
    and closures staff made in the browser are theirs (one the file also lists stays as is).
    The times of those it removed (open again, unless another closure covers them)."""
    counts = {"created": 0, "changed": 0, "removed": 0}
    existing: dict[tuple[date, time | None], Closure] = {}
    by_staff: set[tuple[date, time | None]] = set()
    for c in session.scalars(
        select(Closure).where(Closure.prison_id == prison.id, Closure.day >= today)
    ):
        if c.created_by is None:
            existing[(c.day, c.start_time)] = c
        else:
            by_staff.add((c.day, c.start_time))
    for entry in config.closures:
        row = existing.pop((entry.date, entry.start), None)
        if row is None:
            if entry.date < today or (entry.date, entry.start) in by_staff:
                continue
            session.add(
                Closure(
                    prison_id=prison.id, day=entry.date, start_time=entry.start, reason=entry.reason
                )
            )
            counts["created"] += 1
            _warn_booked(session, prison, entry, report)
        elif row.reason != entry.reason:
            row.reason = entry.reason
            counts["changed"] += 1
    for row in existing.values():
        session.delete(row)
        counts["removed"] += 1
    report.closures = counts
    return list(existing)


def _warn_booked(
    session: Session, prison: Prison, entry: ClosureConfig, report: PrisonReport
) -> None:
    slots = select(Slot.id).where(Slot.prison_id == prison.id, Slot.local_date == entry.date)
    if entry.start is not None:  # only that visit time's: the day's others stay open
        slots = slots.where(Slot.starts_at == local_moment(entry.date, entry.start, prison.tz))
    booked = session.scalar(
        select(func.count())
        .select_from(Booking)
        .where(Booking.slot_id.in_(slots), Booking.status.in_(HOLDS_SEATS))
    )
    if booked:
        where = "in that visit time" if entry.start else "on that day"
        report.warnings.append(
            f"closure {entry.when}: {booked} bookings fall {where} and were not cancelled; "
            "cancel them from the closures page, which tells each family"
        )


def _warn_closing_nothing(
    session: Session, prison: Prison, config: PrisonConfig, today: date, report: PrisonReport
) -> None:
    """A closure of one visit time closes the session starting then: at a time none starts
    (a slip, 14:30 for 14:00) it closes nothing, and the session stays open to families. Told
    on every load, as long as the file says so; checked against the weekly schedule in force
    (the file's, or the browser's it left alone) and the dated visit times kept for their
    bookings."""
    templates = [
        rule_of(t)
        for t in session.scalars(
            select(ScheduleTemplate).where(ScheduleTemplate.prison_id == prison.id)
        )
    ]
    for entry in config.closures:
        if entry.start is None or entry.date < today:
            continue
        if any(t.applies_on(entry.date) and t.start_time == entry.start for t in templates):
            continue
        at = local_moment(entry.date, entry.start, prison.tz)
        if session.scalar(select(Slot.id).where(Slot.prison_id == prison.id, Slot.starts_at == at)):
            continue
        report.warnings.append(
            f"closure {entry.when}: no visit time starts then, so it closes nothing"
        )


def apply_config(
    session: Session,
    config: ConfigFile,
    now: datetime,
    *,
    sms_policy: SmsPolicy,
    overwrite_browser_edits: bool = False,
) -> list[PrisonReport]:
    """Bring the database in line with the file; one report per prison. Bookings in times it
    closes are not cancelled (an administrator does that, which texts the families); their
    reminders are withdrawn, and come back if it opens the time again
    (:func:`visits.closing.follow_reminders`).

    A prison whose rules or schedule an administrator edited in the browser keeps them (the
    report says so) unless ``overwrite_browser_edits``: the file is likely older."""
    reports = []
    for entry in config.prisons:
        report = PrisonReport(entry.code)
        prison = session.scalar(select(Prison).where(Prison.code == entry.code))
        if prison is None:
            prison = Prison(code=entry.code)
            session.add(prison)
            report.created = True
        edited = prison.schedule_edited_at
        keep = edited is not None and not overwrite_browser_edits
        if keep:
            report.warnings.append(
                f"rules and schedule were edited in the browser on {edited:%Y-%m-%d %H:%M} UTC: "
                "the file's were not applied (--overwrite-browser-edits applies them)"
            )
        _apply_settings(prison, entry, report, rules=not keep)
        report.tz = prison.tz
        session.flush()
        _apply_wings(session, prison, entry, report)
        retiring = frozenset() if keep else _apply_templates(session, prison, entry, report)
        if not keep:
            prison.schedule_edited_at = None
        opened = _apply_closures(session, prison, entry, prison.local_date(now), report)
        session.flush()
        report.slots = sync_slots(session, prison, now, retiring)
        if retiring:
            session.execute(delete(ScheduleTemplate).where(ScheduleTemplate.id.in_(retiring)))
        _warn_closing_nothing(session, prison, entry, prison.local_date(now), report)
        session.flush()
        report.left_on = closing.left_on(session, [prison], now).get(prison.id, closing.LeftOn())
        closing.follow_reminders(session, prison, now, sms_policy, opened)
        if report.changed:
            audit.record(
                session,
                at=now,
                actor="cli",
                action="prison.configured",
                entity="prison",
                entity_id=prison.code,
                details={"created": report.created, "settings": report.updated},
            )
        reports.append(report)
    session.flush()
    return reports
