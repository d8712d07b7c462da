"""Importing the inmate roster a prison exports (CSV), all or nothing.

The file is the whole roster of one prison: rows are matched by inmate code and created or
updated; active inmates missing from the file are deactivated (they can no longer be booked),
so a file that lists no inmate is refused. If any row is wrong, nothing is imported and every
bad row is listed with its line, column and reason. Both comma and semicolon separators are
accepted (spreadsheets in Spanish locales save with semicolons); the file must be UTF-8.

What spreadsheets add by themselves is not an error: a separator after the last column
(``...,visits_suspended_until,``) names no column, so columns without a name at the end of the
header are ignored, and so are empty cells past the last named column; a value in one of them
is an error, since it belongs to no column. A column without a name before the last named one
is an error too (the header and the rows would not line up), and so is a column named twice
(which of the two to read would be a guess).

A cell holding a control character is refused like any other bad cell, whatever the character:
a NUL (Python's csv module reads it, but no database should get it: PostgreSQL refuses NUL in
text, SQLite would keep it unseen), a line break inside a quoted cell (``"Nuevo⏎Interno"``,
from Alt+Enter in a spreadsheet: a name is one line, on the gate's list, in the CSV exports,
in searches) or any other (a tab, an escape), and so is a zero-width character (U+200B,
U+200C, U+200D, U+2060, or U+FEFF inside the file: a name that looks right would match no
search; the byte-order mark a spreadsheet puts at the very start of the file is read as such).
Spaces, tabs and line breaks around a cell's value are trimmed first: they change nothing. A
row's line is the one it starts on. The format is documented in the README.

What the roster says about visits takes effect in the same transaction, as a staff suspension
(:mod:`visits.suspensions`) or a closure does. A person the file gives as ``released``,
``transferred`` or ``inactive``, or leaves out (deactivated), can no longer be visited at all;
one with a ``visits_suspended_until`` date cannot be visited until that day, inclusive, as if
staff had suspended them until then (the booking rules already refuse new bookings either
way). Every booking of the prison still to come that the roster as imported rules out (held or
confirmed, its time not started) is cancelled: its seats come back, its reminders and any
unused code are withdrawn, the cancellation is audited, and the family of a confirmed booking
is told by SMS in general words: the person "can no longer receive visits at" the prison
(:attr:`visits.booking.CancelCause.INMATE_NOT_ACTIVE`, never whether they were released,
transferred or left out) or visits to them "are suspended for now" (``INMATE_SUSPENDED``, the
staff suspension's text, never the date). This covers every such booking, not only those of the
rows this file changed, so one that slipped past an earlier import is caught by the next. Visits
attended, missed or already begun are never touched. The report, the upload page and the
command line say how many bookings were cancelled and why, and list each of them.

A booking still to come that the roster rules out and that someone of came in at the gate
already, before its visit time, is not cancelled either: as for a closure or a staff
suspension (:mod:`visits.stopping`), the person is inside; nor is one whose visit time is under
way (its family may be at the gate). The report lists them apart (tell the gate), each import
while they stand; the gate's list flags it with the roster's cause, and
undoing that check-in cancels it with that cause (seats back, the family's SMS).

There is no preview: the file is applied at once, from the browser as from the command line
(which a prison may run unattended). The roster states facts (a released person is gone
whether or not anyone confirms it), a family is best told at once, and the result lists every
booking cancelled with a link to it. Two guards stand against a wrong file (an old export, one
wing's file): a file that lists no inmate is refused, and so is one that would take most of
the people who can be visited now out of visits (:data:`MANY_OUT_SHARE`, at least
:data:`MANY_OUT_MIN` people), unless the caller says it means it (``many_out_confirmed``: a
box to tick on the page, ``--confirm-many-out`` on the command line). Nothing is imported and
nobody is told until then.

Locks follow the order of :mod:`visits.booking`: the inmates whose rows change, by id, then the
bookings cancelled, then their slots. A booking for one of those inmates either committed
first (and is found and cancelled here) or waits for this import, then reads the inmate as it
left them (:func:`visits.booking.lock_inmate`) and is refused.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import attrgetter

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from visits import audit, issuing, reference, stopping
from visits.booking import (
    STOPPABLE,
    Booking,
    CancelCause,
    cancel_booking,
    lock_for_cancelling,
)
from visits.booking_request import parse_date
from visits.db import lock_rows, require_write_lock
from visits.i18n import N_, gettext
from visits.inmate import Inmate, InmateStatus, normalise_code
from visits.prison import Prison, Wing
from visits.schedule import Slot
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
# How staff pages name the columns (the file's own names are English words with underscores).
COLUMN_LABELS = {
    "code": N_("Inmate code"),
    "first_names": N_("First names"),
    "last_name_1": N_("First surname"),
    "last_name_2": N_("Second surname"),
    "birth_date": N_("Birth date"),
    "wing": N_("Wing"),
    "status": N_("Status"),
    "visits_suspended_until": N_("Visits suspended until"),
}
# The inmate's attribute each column sets, where its name differs.
_ATTRIBUTE_COLUMNS = {"wing_id": "wing"}
MAX_NAME = 100
_CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,31}")
NUL = "\x00"
# Every control character (Unicode's Cc: C0, DEL and C1), the line and paragraph separators,
# which also break a line, and the zero-width characters, which show nothing: a name or code
# holding one looks right and matches no search.
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{''.join(sorted(_ZERO_WIDTH))}]")
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x85\u2028\u2029")
_NOT_UTF8 = N_("the file is not UTF-8: save it as 'CSV UTF-8' and try again")
_HAS_NUL = N_("holds a NUL character (an invisible zero byte): delete it and save the file again")
_HAS_LINE_BREAK = N_("holds a line break: write the cell on one line and save the file again")
_HAS_CONTROL = N_(
    "holds an invisible control character (%(char)s): delete it and save the file again"
)
_HAS_ZERO_WIDTH = N_(
    "holds an invisible zero-width character (%(char)s), often pasted from a web page or a "
    "chat: delete it and save the file again"
)
_NOT_A_DATE = N_("not a date: %(value)s (use YYYY-MM-DD or DD/MM/YYYY)")


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


# A file that would take more than this share of the people who can be visited now out of
# visits, and at least this many, is applied only when the caller confirms it (see above).
MANY_OUT_SHARE = 0.5
MANY_OUT_MIN = 20


class RosterTakesManyOut(Exception):
    """Nothing imported: the file would take ``count`` of the ``active`` people who can be
    visited now out of visits, and cancel their visits, and the caller has not confirmed it."""

    def __init__(self, count: int, active: int) -> None:
        self.count = count
        self.active = active
        super().__init__(f"the file takes {count} of the {active} people visited out of visits")


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


@dataclass(frozen=True)
class RuledOutVisit:
    """A booking the roster rules out, as staff are told of it: cancelled by the import, or
    left for the gate (someone of it came in already)."""

    reference: str
    starts_at: datetime  # in the prison's time
    inmate_code: str
    inmate_name: str
    cause: CancelCause  # INMATE_NOT_ACTIVE or INMATE_SUSPENDED
    status: InmateStatus  # the person's status now
    suspended_until: date | None  # the roster's suspension that covers the visit, if any
    under_way: bool = False  # left for the gate with nobody of it in: its visit time began

    @property
    def display_reference(self) -> str:
        return reference.display(self.reference)

    @property
    def why(self) -> str:
        """Why, in English, for the command line."""
        if self.cause is CancelCause.INMATE_SUSPENDED and self.suspended_until is not None:
            return f"visits suspended until {self.suspended_until.isoformat()}"
        return _WHY[self.status]


_WHY = {
    InmateStatus.RELEASED: "released",
    InmateStatus.TRANSFERRED: "transferred",
    InmateStatus.INACTIVE: "inactive or left out of the file",
    InmateStatus.ACTIVE: "active",  # never a reason: for completeness
}


@dataclass(frozen=True)
class RosterChange:
    """A person the file changed: their code and the columns whose values changed."""

    code: str
    columns: tuple[str, ...]

    def __str__(self) -> str:
        """With the file's column names, for the command line."""
        return f"{self.code}: {', '.join(self.columns)}"

    def localized(self) -> str:
        """With the columns' names in the current language, for staff pages."""
        labels = ", ".join(gettext(COLUMN_LABELS[column]) for column in self.columns)
        return f"{self.code}: {labels}"


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    changes: list[RosterChange] = field(default_factory=list)
    # Bookings still to come that the roster now rules out, cancelled by the import.
    cancelled: list[RuledOutVisit] = field(default_factory=list)
    # Those it left because someone of them came in at the gate already, or their visit time
    # is under way: tell the gate.
    at_gate: list[RuledOutVisit] = field(default_factory=list)

    def summary(self) -> str:
        count = len(self.cancelled)
        text = (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.deactivated} deactivated, {count} booking{'' if count == 1 else 's'} "
            "cancelled"
        )
        if count:
            whys = Counter(
                "visits suspended" if c.cause is CancelCause.INMATE_SUSPENDED else _WHY[c.status]
                for c in self.cancelled
            )
            text += f" ({', '.join(f'{why}: {n}' for why, n in sorted(whys.items()))})"
        return text + stopping.gate_summary([c.under_way for c in self.at_gate])

    def cancellation_lines(self) -> list[str]:
        """One line per booking cancelled, then per booking left for the gate, for the
        command line."""
        return [
            f"{done} {c.display_reference} {c.starts_at:%Y-%m-%d %H:%M} ({c.inmate_code}): {c.why}"
            for done, c in [("cancelled", c) for c in self.cancelled]
            + [("under way" if c.under_way else "inside", c) for c in self.at_gate]
        ]


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
    if not text.strip():  # else "every required column is missing", which misleads
        reason = N_("the file is empty: export the roster again, with its header line")
        raise RosterInvalid([RowError(1, "-", reason)])
    try:
        return _read_rows(text, wings, today)
    except csv.Error:
        # A field over the csv module's size limit: nothing sensible is left.
        reason = N_("the file cannot be read as CSV here (a field far too long, or a stray quote)")
        line = text.count("\n") + 1
        raise RosterInvalid([RowError(line, "-", reason)]) from None


def _control_error(line: int, column: str, value: str) -> RowError | None:
    """The cell's control or zero-width character, if it holds one: the same refusal for
    every such character, in words for the ones people meet (a NUL, a line break, a
    zero-width character pasted with a name)."""
    found = _CONTROL.search(value)
    if found is None:
        return None
    if NUL in value:
        return RowError(line, column, _HAS_NUL)
    if found.group() in _LINE_BREAKS:
        return RowError(line, column, _HAS_LINE_BREAK)
    reason = _HAS_ZERO_WIDTH if found.group() in _ZERO_WIDTH else _HAS_CONTROL
    return RowError(line, column, reason, {"char": f"U+{ord(found.group()):04X}"})


def _read_header(cells: list[str]) -> tuple[dict[str, int], int]:
    """Where each column is, and how many cells of a row may hold values: up to the last
    named column (a spreadsheet's trailing separators name none). Raises
    :class:`RosterInvalid` with every problem of the header."""
    header = [cell.strip().lower() for cell in cells]
    while header and not header[-1]:
        header.pop()
    errors = [
        RowError(1, c, N_("required column is missing"))
        for c in REQUIRED_COLUMNS
        if c not in header
    ]
    first: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if not name:
            reason = N_("column %(position)s has no name: write it, or delete the column")
            errors.append(RowError(1, "-", reason, {"position": position}))
        elif name not in COLUMNS:
            errors.append(RowError(1, name, N_("unknown column")))
        elif name in first:  # which of the two holds the values is anyone's guess
            reason = N_(
                "named twice, in columns %(first)s and %(position)s: keep one of them, "
                "delete the other"
            )
            errors.append(RowError(1, name, reason, {"first": first[name], "position": position}))
        else:
            first[name] = position
    if errors:
        raise RosterInvalid(errors)
    return {name: position for position, name in enumerate(header)}, len(header)


def _read_rows(text: str, wings: set[str], today: date) -> list[RosterRow]:
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    where, named = _read_header(next(reader, []))

    errors: list[RowError] = []
    rows: list[RosterRow] = []
    first_seen: dict[str, int] = {}
    ended = reader.line_num
    for cells in reader:
        # The line the row starts on: a quoted cell may hold line breaks (refused below).
        line, ended = ended + 1, reader.line_num
        # Empty cells past the last named column are a spreadsheet's; a value there belongs
        # to no column.
        stray = next((i for i in range(named, len(cells)) if cells[i].strip()), None)
        if stray is not None:
            reason = N_(
                "a value in column %(position)s, which the header does not name: delete it, "
                "or check the separators on this line"
            )
            errors.append(RowError(line, "-", reason, {"position": stray + 1}))
            continue
        # A column the header leaves out, or a row cut short, reads as empty cells.
        at = {k: where.get(k, len(cells)) for k in COLUMNS}
        values = {k: cells[i].strip() if i < len(cells) else "" for k, i in at.items()}
        if not any(values.values()):
            continue
        row_errors: list[RowError] = []
        # A cell holding a control character says only that; the checks of the row's other
        # cells still run.
        controls = {
            k: found for k in COLUMNS if (found := _control_error(line, k, values[k])) is not None
        }

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
            fail("birth_date", _NOT_A_DATE, value=repr(values["birth_date"]))
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
                fail(
                    "visits_suspended_until",
                    _NOT_A_DATE,
                    value=repr(values["visits_suspended_until"]),
                )
        if controls or row_errors:
            errors += controls.values()
            errors += [e for e in row_errors if e.column not in controls]
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
    *,
    sms_policy: SmsPolicy,
    actor: str = "cli",
    origin: str = "",
    many_out_confirmed: bool = False,
) -> ImportReport:
    """Apply a roster file to one prison. Raises :class:`RosterInvalid` and changes nothing if
    any row is bad. Bookings the roster now rules out are cancelled and the families told
    (see the module's docstring); inmates moved into a wing under a health advisory have it
    applied to their visits to come (see :func:`visits.issuing.apply_to_moved`)."""
    require_write_lock(session)
    # Two imports of one prison take turns, the second reading what the first left: else on
    # PostgreSQL both would add the same new person, and the second fail on it. Bookings,
    # which never lock the prison, go on meanwhile.
    lock_rows(session, Prison.id, [prison.id], key_share=True)
    wings = {w.code: w.id for w in session.scalars(select(Wing).where(Wing.prison_id == prison.id))}
    rows = read_roster(data, set(wings), prison.local_date(now))
    existing = {
        i.code: i
        for i in session.scalars(
            select(Inmate)
            .where(Inmate.prison_id == prison.id)
            .execution_options(populate_existing=True)
        )
    }
    active = sum(1 for inmate in existing.values() if inmate.status is InmateStatus.ACTIVE)
    report = ImportReport()
    updates: list[tuple[Inmate, dict[str, object]]] = []
    arrivals: list[Inmate] = []
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
            arrivals.append(Inmate(prison_id=prison.id, code=row.code, **wanted))
            report.created += 1
            continue
        changed = {k: v for k, v in wanted.items() if getattr(inmate, k) != v}
        if changed:
            updates.append((inmate, changed))
            report.updated += 1
            columns = tuple(_ATTRIBUTE_COLUMNS.get(k, k) for k in changed)
            report.changes.append(RosterChange(row.code, columns))
        else:
            report.unchanged += 1
    gone = [i for i in existing.values() if i.status is InmateStatus.ACTIVE]
    updates += [(inmate, {"status": InmateStatus.INACTIVE}) for inmate in gone]
    report.deactivated = len(gone)
    taken_out = sum(
        1
        for inmate, changed in updates
        if inmate.status is InmateStatus.ACTIVE
        and changed.get("status", InmateStatus.ACTIVE) is not InmateStatus.ACTIVE
    )
    if taken_out >= MANY_OUT_MIN and taken_out > MANY_OUT_SHARE * active and not many_out_confirmed:
        raise RosterTakesManyOut(taken_out, active)  # nothing added or changed yet
    session.add_all(arrivals)
    # Bookings lock their inmate first: one for these made before this is found below, one
    # made after waits for this import to end, then reads what it left.
    lock_rows(session, Inmate.id, [inmate.id for inmate, _ in updates])
    moved = [inmate.id for inmate, changed in updates if "wing_id" in changed]
    for inmate, changed in updates:
        for k, v in changed.items():
            setattr(inmate, k, v)
    session.flush()
    ruled = _ruled_out_bookings(session, prison, now)
    # Every booking this import may cancel or tell, locked and reloaded at once, bookings
    # then their slots: the two passes below then wait on nobody (a family cancelling one of
    # them waits for this import; one that finished first is seen cancelled).
    lock_for_cancelling(
        session,
        sorted(
            set(ruled) | issuing.touched_by_moves(session, prison, moved, now),
            key=attrgetter("id"),
        ),
    )
    report.cancelled, report.at_gate = _cancel_ruled_out(
        session, prison, ruled, now, actor, origin, sms_policy
    )
    audit.record(
        session,
        at=now,
        actor=actor,
        action="roster.imported",
        entity="prison",
        entity_id=prison.code,
        details={"summary": report.summary()}
        | ({"cancelled": [c.reference for c in report.cancelled]} if report.cancelled else {})
        | ({"at_gate": [c.reference for c in report.at_gate]} if report.at_gate else {}),
        origin=origin,
    )
    session.flush()
    # An inmate moved into a wing under a health advisory: it applies to their visits.
    issuing.apply_to_moved(
        session, prison, moved, now=now, actor=actor, origin=origin, sms_policy=sms_policy
    )
    return report


def ruled_out(inmate: Inmate, day: date) -> CancelCause | None:
    """Why the roster rules out a visit to ``inmate`` on ``day``, or ``None``: the person is
    no longer active (released, transferred, inactive or left out of the file), or the
    roster suspends their visits until that day or later."""
    if inmate.status is not InmateStatus.ACTIVE:
        return CancelCause.INMATE_NOT_ACTIVE
    if inmate.visits_suspended_until is not None and day <= inmate.visits_suspended_until:
        return CancelCause.INMATE_SUSPENDED
    return None


def _ruled_out_bookings(session: Session, prison: Prison, now: datetime) -> list[Booking]:
    """The bookings of the prison still to come that the roster, as it now stands, may rule
    out (:func:`ruled_out` decides, once they are locked): those holding seats, and those let
    in at the gate already (those let in or under way are left for the gate:
    :func:`visits.stopping.left`)."""
    return list(
        session.scalars(
            select(Booking)
            .join(Slot, Booking.slot_id == Slot.id)
            .join(Inmate, Booking.inmate_id == Inmate.id)
            .where(
                Booking.prison_id == prison.id,
                Booking.status.in_(STOPPABLE),
                Slot.ends_at > now,
                or_(
                    Inmate.status != InmateStatus.ACTIVE,
                    Slot.local_date <= Inmate.visits_suspended_until,
                ),
            )
            .order_by(Booking.id)
        )
    )


def _cancel_ruled_out(
    session: Session,
    prison: Prison,
    found: list[Booking],
    now: datetime,
    actor: str,
    origin: str,
    sms_policy: SmsPolicy,
) -> tuple[list[RuledOutVisit], list[RuledOutVisit]]:
    """Cancel those of ``found`` (locked by the caller) the roster rules out; what was
    cancelled, and what was left because someone of it came in at the gate already or its
    visit time is under way (:func:`visits.stopping.left`), and why."""
    left = set(stopping.left(found, now))  # as read again under their locks
    cancelled, at_gate = [], []
    for booking in found:
        cause = ruled_out(booking.inmate, booking.slot.local_date)
        if cause is None:
            continue
        if booking in left:
            at_gate.append(_visit(prison, booking, cause, stopping.under_way(booking, now)))
        elif booking.can_change(now):
            cancel_booking(
                session, booking, now=now, actor=actor, sms_policy=sms_policy, origin=origin,
                cause=cause,
            )  # fmt: skip
            cancelled.append(_visit(prison, booking, cause))
    return cancelled, at_gate


def _visit(
    prison: Prison, booking: Booking, cause: CancelCause, under_way: bool = False
) -> RuledOutVisit:
    inmate = booking.inmate
    return RuledOutVisit(
        reference=booking.reference,
        starts_at=booking.slot.starts_at.astimezone(prison.tz),
        inmate_code=inmate.code,
        inmate_name=inmate.display_name,
        cause=cause,
        status=inmate.status,
        suspended_until=inmate.visits_suspended_until,
        under_way=under_way,
    )
