"""Importing the inmate roster a prison exports (CSV), all or nothing.

The file is the whole roster of one prison: rows are matched by inmate code and created or
updated; active inmates missing from the file are deactivated (they can no longer be booked),
so a file that lists no inmate is refused. If any row is wrong, nothing is imported and every
bad row is listed with its line, column and reason. Both comma and semicolon separators are
accepted (spreadsheets in Spanish locales save with semicolons); the file must be UTF-8. A cell
holding a NUL character is refused like any other bad cell: Python's csv module reads it, but
no database should get it (PostgreSQL refuses NUL in text, SQLite would keep it unseen). The
format is documented in the README.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from visits import audit, issuing
from visits.booking_request import parse_date
from visits.i18n import N_, gettext
from visits.inmate import Inmate, InmateStatus, normalise_code
from visits.prison import Prison, Wing
from visits.sms import SmsPolicy

COLUMNS = (
    "code",
    "first_names",
    "last_name_1",
    "last_name_2",
    "birth_date",
    "wing",
    "status",
    "visits_suspended_until",
)
REQUIRED_COLUMNS = ("code", "first_names", "last_name_1", "birth_date")
MAX_NAME = 100
_CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,31}")
NUL = "\x00"
_NOT_UTF8 = N_("the file is not UTF-8: save it as 'CSV UTF-8' and try again")
_HAS_NUL = N_("holds a NUL character (an invisible zero byte): delete it and save the file again")


@dataclass(frozen=True)
class RowError:
    """One problem of the file: ``reason`` is a message id (English) filled with ``params``,
    so the command line prints it as is and staff pages in their language."""

    line: int
    column: str
    reason: str
    params: Mapping[str, object] = field(default_factory=dict)

    @property
    def message(self) -> str:
        """The reason in English, filled in."""
        return self.reason % dict(self.params)

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"

    def localized(self) -> str:
        return gettext(self.reason, dict(self.params))


class RosterInvalid(Exception):
    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        super().__init__("\n".join(map(str, errors)))


@dataclass(frozen=True)
class RosterRow:
    line: int
    code: str
    first_names: str
    last_name_1: str
    last_name_2: str
    birth_date: date
    wing: str
    status: InmateStatus
    visits_suspended_until: date | None


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    changes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.deactivated} deactivated"
        )


def _decode(data: bytes) -> str:
    # UTF-16 without a byte order mark decodes as UTF-8 with a NUL after every letter.
    if NUL.encode() in data.split(b"\n", 1)[0]:
        raise RosterInvalid([RowError(1, "-", _NOT_UTF8)])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise RosterInvalid([RowError(line, "-", _NOT_UTF8)]) from None


def read_roster(data: bytes, wings: set[str], today: date) -> list[RosterRow]:
    """Parse and check the whole file; raise :class:`RosterInvalid` listing every bad row."""
    text = _decode(data)
    try:
        return _read_rows(text, wings, today)
    except csv.Error:
        # A field over the csv module's size limit: nothing sensible is left.
        reason = N_("the file cannot be read as CSV here (a field far too long, or a stray quote)")
        line = text.count("\n") + 1
        raise RosterInvalid([RowError(line, "-", reason)]) from None


def _read_rows(text: str, wings: set[str], today: date) -> list[RosterRow]:
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [(name or "").strip().lower() for name in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    header_errors = [RowError(1, c, N_("required column is missing")) for c in missing]
    header_errors += [RowError(1, c or "-", N_("unknown column")) for c in unknown]
    if header_errors:
        raise RosterInvalid(header_errors)
    reader.fieldnames = header

    errors: list[RowError] = []
    rows: list[RosterRow] = []
    first_seen: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        if None in raw:
            errors.append(RowError(line, "-", N_("more fields than columns in the header")))
            continue
        values = {k: (raw.get(k) or "").strip() for k in COLUMNS}
        if not any(values.values()):
            continue
        row_errors: list[RowError] = []
        # A cell with a NUL says only that; the checks of its other cells still run.
        nul = {k for k in COLUMNS if NUL in values[k]}

        def fail(
            column: str, reason: str, line: int = line, errs: list = row_errors, **params: object
        ) -> None:
            errs.append(RowError(line, column, reason, params))

        code = normalise_code(values["code"])
        if not code:
            fail("code", N_("required"))
        elif not _CODE.fullmatch(code):
            fail("code", N_("use letters, digits and dashes only, at most 32"))
        elif code in first_seen:
            fail("code", N_("already given on line %(first)s"), first=first_seen[code])
        else:
            first_seen[code] = line
        for column in ("first_names", "last_name_1", "last_name_2"):
            if column != "last_name_2" and not values[column]:
                fail(column, N_("required"))
            elif len(values[column]) > MAX_NAME:
                fail(column, N_("longer than %(max)s characters"), max=MAX_NAME)
        born = parse_date(values["birth_date"]) if values["birth_date"] else None
        if not values["birth_date"]:
            fail("birth_date", N_("required"))
        elif born is None:
            fail(
                "birth_date",
                N_("not a date: %(value)s (use YYYY-MM-DD)"),
                value=repr(values["birth_date"]),
            )
        elif born >= today:
            fail("birth_date", N_("must be in the past"))
        wing = values["wing"].upper()
        if wing and wing not in wings:
            fail(
                "wing",
                N_("unknown wing %(value)s: known are %(known)s"),
                value=repr(values["wing"]),
                known=", ".join(sorted(wings)),
            )
        status_text = values["status"].lower() or InmateStatus.ACTIVE.value
        try:
            status = InmateStatus(status_text)
        except ValueError:
            allowed = ", ".join(s.value for s in InmateStatus)
            fail(
                "status",
                N_("unknown status %(value)s: use one of %(allowed)s"),
                value=repr(values["status"]),
                allowed=allowed,
            )
            status = InmateStatus.ACTIVE
        until = None
        if values["visits_suspended_until"]:
            until = parse_date(values["visits_suspended_until"])
            if until is None:
                fail("visits_suspended_until", N_("not a date (use YYYY-MM-DD)"))
        if nul or row_errors:
            errors += [RowError(line, k, _HAS_NUL) for k in COLUMNS if k in nul]
            errors += [e for e in row_errors if e.column not in nul]
            continue
        assert born is not None
        rows.append(
            RosterRow(
                line=line,
                code=code,
                first_names=values["first_names"],
                last_name_1=values["last_name_1"],
                last_name_2=values["last_name_2"],
                birth_date=born,
                wing=wing,
                status=status,
                visits_suspended_until=until,
            )
        )
    if not rows and not errors:
        # The whole roster: a header alone would deactivate every inmate of the prison.
        reason = N_("no inmate is listed: the file must list every inmate of the prison")
        raise RosterInvalid([RowError(2, "-", reason)])
    if errors:
        raise RosterInvalid(errors)
    return rows


def import_roster(
    session: Session,
    prison: Prison,
    data: bytes,
    now: datetime,
    actor: str = "cli",
    origin: str = "",
    sms_policy: SmsPolicy | None = None,
) -> ImportReport:
    """Apply a roster file to one prison. Raises :class:`RosterInvalid` and changes nothing if
    any row is bad. With ``sms_policy``, inmates moved into a wing under a health advisory
    have it applied to their visits to come (see :func:`visits.issuing.apply_to_moved`)."""
    wings = {w.code: w.id for w in session.scalars(select(Wing).where(Wing.prison_id == prison.id))}
    rows = read_roster(data, set(wings), prison.local_date(now))
    existing = {
        i.code: i for i in session.scalars(select(Inmate).where(Inmate.prison_id == prison.id))
    }
    report = ImportReport()
    moved: list[int] = []  # inmates now living in another wing
    for row in rows:
        wanted = {
            "first_names": row.first_names,
            "last_name_1": row.last_name_1,
            "last_name_2": row.last_name_2,
            "birth_date": row.birth_date,
            "wing_id": wings.get(row.wing),
            "status": row.status,
            "visits_suspended_until": row.visits_suspended_until,
        }
        inmate = existing.pop(row.code, None)
        if inmate is None:
            session.add(Inmate(prison_id=prison.id, code=row.code, **wanted))
            report.created += 1
            continue
        changed = [k for k, v in wanted.items() if getattr(inmate, k) != v]
        if "wing_id" in changed:
            moved.append(inmate.id)
        if changed:
            for k in changed:
                setattr(inmate, k, wanted[k])
            report.updated += 1
            report.changes.append(f"{row.code}: {', '.join(changed)}")
        else:
            report.unchanged += 1
    for inmate in existing.values():
        if inmate.status is InmateStatus.ACTIVE:
            inmate.status = InmateStatus.INACTIVE
            report.deactivated += 1
    audit.record(
        session,
        at=now,
        actor=actor,
        action="roster.imported",
        entity="prison",
        entity_id=prison.code,
        details={"summary": report.summary()},
        origin=origin,
    )
    session.flush()
    if sms_policy is not None:
        # An inmate moved into a wing under a health advisory: it applies to their visits.
        issuing.apply_to_moved(
            session, prison, moved, now=now, actor=actor, origin=origin, sms_policy=sms_policy
        )
    return report
