"""Importing the inmate roster: all or nothing, with every bad row named."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from notifications.outbox import MessageStatus, OutboxMessage
from tests.factories import NOW, SMS, make_prison, make_slot, request_for, visitor
from tests.test_races import LATE, attempt, booking_count, interrupted_stream
from visits.audit import AuditEvent
from visits.booking import Booking, BookingStatus, CancelCause, create_booking
from visits.db import Database, make_engine
from visits.i18n import use_locale
from visits.inmate import Inmate, InmateStatus
from visits.prison import Prison, Wing
from visits.roster import RosterInvalid, RosterTakesManyOut, import_roster
from visits.schedule import Slot

HEADER = "code,first_names,last_name_1,last_name_2,birth_date,wing,status,visits_suspended_until\n"
GOOD = HEADER + (
    "Q1,Juan,Quispe,Mamani,1990-05-17,A,active,\n"
    "q2 ,Luis,Ñahui,,17/05/1985,,,2027-01-31\n"
    "Q3,Pedro,Huamán,Cusi,1970-01-01,A,released,\n"
)


@pytest.fixture
def prison_db(db):
    with db.writing() as s:
        make_prison(s)
    return db


def run(db, data: bytes):
    with db.writing() as s:
        return import_roster(s, s.scalar(select(Prison)), data, NOW, sms_policy=SMS)


def roster_of(s, prison: Prison, statuses: dict[str, str]) -> bytes:
    """The prison's roster file as the database has it, with some people's status changed
    (``{"Q1": "transferred"}``)."""
    wings = {w.id: w.code for w in s.scalars(select(Wing).where(Wing.prison_id == prison.id))}
    lines = [HEADER.strip()]
    for i in s.scalars(select(Inmate).where(Inmate.prison_id == prison.id)):
        until = i.visits_suspended_until.isoformat() if i.visits_suspended_until else ""
        status = statuses.get(i.code, i.status.value)
        names = [i.first_names, i.last_name_1, i.last_name_2, i.birth_date.isoformat()]
        lines.append(",".join([i.code, *names, wings.get(i.wing_id, ""), status, until]))
    return ("\n".join(lines) + "\n").encode()


def inmates(db) -> dict[str, Inmate]:
    with db.read_session() as s:
        return {i.code: i for i in s.scalars(select(Inmate))}


def test_a_roster_creates_then_updates_then_deactivates(prison_db):
    report = run(prison_db, GOOD.encode())
    assert (report.created, report.updated, report.unchanged, report.deactivated) == (3, 0, 0, 0)
    rows = inmates(prison_db)
    assert rows["Q2"].last_name_1 == "Ñahui"
    assert rows["Q2"].birth_date == date(1985, 5, 17)
    assert rows["Q2"].status is InmateStatus.ACTIVE
    assert rows["Q2"].visits_suspended_until == date(2027, 1, 31)
    assert rows["Q2"].wing_id is None
    assert rows["Q3"].status is InmateStatus.RELEASED

    again = run(prison_db, GOOD.encode())
    assert (again.created, again.updated, again.unchanged, again.deactivated) == (0, 0, 3, 0)

    changed = HEADER + "Q1,Juan Carlos,Quispe,Mamani,1990-05-17,A,active,\n"
    report = run(prison_db, changed.encode())
    assert (report.created, report.updated, report.unchanged, report.deactivated) == (0, 1, 0, 1)
    assert [str(c) for c in report.changes] == ["Q1: first_names"]
    rows = inmates(prison_db)
    assert rows["Q2"].status is InmateStatus.INACTIVE  # missing from the roster
    assert rows["Q3"].status is InmateStatus.RELEASED  # already inactive: left as it was
    with prison_db.read_session() as s:
        assert s.scalars(select(AuditEvent.action)).all() == ["roster.imported"] * 3


def test_semicolons_and_a_byte_order_mark_are_fine(prison_db):
    text = "\ufeff" + GOOD.replace(",", ";")
    assert run(prison_db, text.encode()).created == 3


def test_bad_rows_are_all_listed_and_nothing_is_imported(prison_db):
    bad = HEADER + (
        "Q1,Juan,Quispe,Mamani,1990-05-17,A,active,\n"
        ",Luis,Ñahui,,1985-05-17,A,active,\n"
        "Q3,,Huamán,,1970-13-01,Z,jailed,someday\n"
        "Q1,Otro,Rojas,,1999-01-01,A,active,\n"
        "Q5,Ana,Rojas,,2030-01-01,A,active,\n"
        "Q6,Ana,Rojas,,2000-01-01,A,active,,extra\n"
    )
    with pytest.raises(RosterInvalid) as caught:
        run(prison_db, bad.encode())
    found = {(e.line, e.column) for e in caught.value.errors}
    assert found == {
        (3, "code"),
        (4, "first_names"),
        (4, "birth_date"),
        (4, "wing"),
        (4, "status"),
        (4, "visits_suspended_until"),
        (5, "code"),
        (6, "birth_date"),
        (7, "-"),
    }
    duplicate = next(e for e in caught.value.errors if (e.line, e.column) == (5, "code"))
    assert duplicate.message == "already given on line 2"
    assert str(duplicate) == "line 5, column code: already given on line 2"
    assert inmates(prison_db) == {}


def test_header_problems(prison_db):
    with pytest.raises(RosterInvalid) as caught:
        run(prison_db, b"codigo,first_names,last_name_1\nQ1,Juan,Quispe\n")
    assert {(e.line, e.column, e.message) for e in caught.value.errors} == {
        (1, "code", "required column is missing"),
        (1, "birth_date", "required column is missing"),
        (1, "codigo", "unknown column"),
    }


@pytest.mark.parametrize("rows", ["", "\n\n", ",,,,,,,\n, ,\n", "\r\n"])
def test_a_roster_without_inmates_is_refused_and_deactivates_nobody(prison_db, rows):
    """A header alone would say the prison has no inmates: every one would be deactivated."""
    run(prison_db, GOOD.encode())
    with pytest.raises(RosterInvalid) as caught:
        run(prison_db, (HEADER + rows).encode())
    assert [str(e) for e in caught.value.errors] == [
        "line 2, column -: no inmate is listed: the file must list every inmate of the prison"
    ]
    assert inmates(prison_db)["Q1"].status is InmateStatus.ACTIVE
    with prison_db.read_session() as s:
        assert s.scalars(select(AuditEvent.action)).all() == ["roster.imported"]


def test_a_file_that_is_not_utf8_is_refused_with_advice(prison_db):
    latin1 = (HEADER + "Q1,Juan,Ñahui,,1990-05-17,A,active,\n").encode("latin-1")
    with pytest.raises(RosterInvalid) as caught:
        run(prison_db, latin1)
    assert caught.value.errors[0].line == 2
    assert "UTF-8" in caught.value.errors[0].message


@pytest.mark.parametrize("empty", [b"", b"\xef\xbb\xbf", b" \r\n\n"])
def test_an_empty_file_is_said_to_be_empty_and_changes_nothing(prison_db, empty):
    run(prison_db, GOOD.encode())
    before = {code: i.status for code, i in inmates(prison_db).items()}
    with pytest.raises(RosterInvalid) as caught:
        run(prison_db, empty)
    assert [str(e) for e in caught.value.errors] == [
        "line 1, column -: the file is empty: export the roster again, with its header line"
    ]
    assert {code: i.status for code, i in inmates(prison_db).items()} == before


def test_rosters_of_two_prisons_do_not_touch_each_other(prison_db):
    run(prison_db, GOOD.encode())
    with prison_db.writing() as s:
        other = make_prison(s, "OTHER")
        roster = (HEADER + "Q1,Ana,Rojas,,1980-01-01,A,,\n").encode()
        report = import_roster(s, other, roster, NOW, sms_policy=SMS)
    assert (report.created, report.deactivated) == (1, 0)
    assert inmates(prison_db)["Q2"].status is InmateStatus.ACTIVE


def test_a_nul_character_in_a_cell_is_a_row_error_and_nothing_is_imported(prison_db):
    """Python's csv reads a NUL; PostgreSQL refuses it in text and SQLite would keep it."""
    bad = HEADER + (
        "Q1,Juan,Quispe,Mamani,1990-05-17,A,active,\n"
        "Q2,Lu\x00is,Ñahui,\x00,1985-05-17,Z,,\n"
        "Q3\x00,Pedro,Huamán,Cusi,1970-01-01,A,,\n"
    )
    with pytest.raises(RosterInvalid) as caught:
        run(prison_db, bad.encode())
    assert [str(e) for e in caught.value.errors] == [
        "line 3, column first_names: holds a NUL character (an invisible zero byte): "
        "delete it and save the file again",
        "line 3, column last_name_2: holds a NUL character (an invisible zero byte): "
        "delete it and save the file again",
        "line 3, column wing: unknown wing 'Z': known are A",  # the row's other cells too
        "line 4, column code: holds a NUL character (an invisible zero byte): "
        "delete it and save the file again",
    ]
    assert inmates(prison_db) == {}


def test_a_file_saved_as_utf16_is_refused_as_not_utf8(prison_db):
    with pytest.raises(RosterInvalid) as caught:
        run(prison_db, GOOD.encode("utf-16-le"))
    assert [(e.line, e.column) for e in caught.value.errors] == [(1, "-")]
    assert "UTF-8" in caught.value.errors[0].message


@pytest.mark.parametrize("separator", [",", ";"])
def test_a_spreadsheets_trailing_separators_name_no_column_and_are_ignored(prison_db, separator):
    """``...,status,``: a spreadsheet saving an empty last column (or several)."""
    rows = GOOD.splitlines()
    text = "\n".join(
        [rows[0] + ",,", rows[1] + ",", rows[2], rows[3] + ",,  ,"]  # data cells empty or cut
    ).replace(",", separator)
    report = run(prison_db, (text + "\n").encode())
    assert report.created == 3
    assert inmates(prison_db)["Q2"].visits_suspended_until == date(2027, 1, 31)


def test_a_value_under_no_column_name_and_a_column_without_name_are_named(prison_db):
    under_none = HEADER.rstrip("\n") + ",\n" + "Q1,Juan,Quispe,Mamani,1990-05-17,A,active,,x\n"
    with pytest.raises(RosterInvalid) as caught:
        run(prison_db, under_none.encode())
    assert [str(e) for e in caught.value.errors] == [
        "line 2, column -: a value in column 9, which the header does not name: delete it, "
        "or check the separators on this line"
    ]
    gap = "code,first_names,,last_name_1,birth_date\nQ1,Juan,,Quispe,1990-05-17\n"
    with pytest.raises(RosterInvalid) as caught:
        run(prison_db, gap.encode())
    assert [str(e) for e in caught.value.errors] == [
        "line 1, column -: column 3 has no name: write it, or delete the column"
    ]
    assert inmates(prison_db) == {}


def test_every_control_character_in_a_cell_is_a_row_error_like_a_nul(prison_db):
    """A line break inside a quoted cell (Alt+Enter in a spreadsheet), a tab, an escape: each
    is named with its line and column, nothing is imported, and the rows after a cell of two
    lines keep their own line numbers."""
    bad = HEADER + (
        '"Q1","Nuevo\nInterno",Quispe,Mamani,1990-05-17,A,active,\n'  # lines 2-3
        "Q2,Luis,Ña\thui,,1985-05-17,Z,,\n"  # line 4
        "Q3,Pedro,Huamán,Cu\x1bsi,1970-01-01,A,,\n"
        'Q4,"Ana\u2028María",Rojas,,1970-01-01,A,,\n'
        'Q5,"Rosa\r\n",Ccori,,1970-01-01,A,,\n'  # around the value: trimmed, as spaces are
    )
    with pytest.raises(RosterInvalid) as caught:
        run(prison_db, bad.encode())
    assert [str(e) for e in caught.value.errors] == [
        "line 2, column first_names: holds a line break: write the cell on one line and save "
        "the file again",
        "line 4, column last_name_1: holds an invisible control character (U+0009): delete it "
        "and save the file again",
        "line 4, column wing: unknown wing 'Z': known are A",
        "line 5, column last_name_2: holds an invisible control character (U+001B): delete it "
        "and save the file again",
        "line 6, column first_names: holds a line break: write the cell on one line and save "
        "the file again",
    ]
    assert inmates(prison_db) == {}


@pytest.mark.parametrize("char", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"])
def test_a_zero_width_character_in_a_cell_is_a_row_error_but_a_leading_bom_is_fine(prison_db, char):
    """Pasted from a web page or a chat, a zero-width character makes a name or code that looks
    right and matches no search: refused like a control character, with its line, column and
    code point; the file's own byte-order mark, before the header, still reads as one."""
    bad = (
        "\ufeff"
        + HEADER
        + (
            "Q1,Juan,Quispe,Mamani,1990-05-17,A,active,\n"
            f"Q2{char},Luis,Ñahui,,1985-05-17,A,,\n"
            f"Q3,Pedro,Hua{char}mán,Cusi,1970-01-01,A,,\n"
            f"Q4,{char}Ana,Rojas,,1970-01-01,A,,\n"  # at the start, where trimming leaves it
        )
    )
    with pytest.raises(RosterInvalid) as caught:
        run(prison_db, bad.encode())
    point = f"U+{ord(char):04X}"
    reason = (
        f"holds an invisible zero-width character ({point}), often pasted from a web page or "
        "a chat: delete it and save the file again"
    )
    assert [str(e) for e in caught.value.errors] == [
        f"line 3, column code: {reason}",
        f"line 4, column last_name_1: {reason}",
        f"line 5, column first_names: {reason}",
    ]
    assert inmates(prison_db) == {}
    assert run(prison_db, bad.replace(char, "").encode()).created == 4


def test_a_column_named_twice_is_a_header_error_and_nothing_is_imported(prison_db):
    """Which of the two columns holds the values would be a guess (two exports pasted side by
    side, a column copied to be edited): the header names each column once."""
    twice = HEADER.rstrip("\n") + ",First_Names,code\n"
    with pytest.raises(RosterInvalid) as caught:
        run(prison_db, (twice + "Q1,Juan,Quispe,Mamani,1990-05-17,A,active,,Juana,Q9\n").encode())
    assert [str(e) for e in caught.value.errors] == [
        "line 1, column first_names: named twice, in columns 2 and 9: keep one of them, delete "
        "the other",
        "line 1, column code: named twice, in columns 1 and 10: keep one of them, delete the other",
    ]
    assert inmates(prison_db) == {}


def test_a_date_that_cannot_be_read_is_shown_with_both_formats_accepted(prison_db):
    bad = HEADER + "Q1,Juan,Quispe,,1990-13-01,A,active,mañana\n"
    with pytest.raises(RosterInvalid) as caught:
        run(prison_db, bad.encode())
    assert [str(e) for e in caught.value.errors] == [
        "line 2, column birth_date: not a date: '1990-13-01' (use YYYY-MM-DD or DD/MM/YYYY)",
        "line 2, column visits_suspended_until: not a date: 'mañana' (use YYYY-MM-DD or "
        "DD/MM/YYYY)",
    ]


def test_what_changed_names_the_files_columns_or_their_labels_in_the_readers_language(prison_db):
    run(prison_db, GOOD.encode())
    changed = GOOD.replace(",1990-05-17,A,active,\n", ",1990-05-17,,released,2027-02-01\n")
    (change,) = run(prison_db, changed.encode()).changes
    assert str(change) == "Q1: wing, status, visits_suspended_until"  # as in the file
    with use_locale("en"):
        assert change.localized() == "Q1: Wing, Status, Visits suspended until"
    with use_locale("es"):
        assert change.localized().startswith("Q1: Pabellón, Estado, ")


# --- What the roster does to the visits booked ----------------------------------------------

THURSDAY, SATURDAY, NEXT_SATURDAY = date(2026, 12, 3), date(2026, 12, 5), date(2026, 12, 12)
ACTIVE3 = HEADER + (
    "Q1,Juan,Quispe,Mamani,1990-05-17,A,active,\n"
    "Q2,Luis,Ñahui,,1985-05-17,A,active,\n"
    "Q3,Pedro,Huamán,Cusi,1970-01-01,A,active,\n"
)


def book(db, slot_id: int, code: str, dni: str, policy=SMS) -> str:
    with db.writing() as s:
        booked = create_booking(
            s, prison=s.scalar(select(Prison)),
            inmate=s.scalar(select(Inmate).where(Inmate.code == code)),
            request=request_for(slot_id, visitor(dni)), now=NOW, secret_key="k",
            sms_policy=policy,
        )  # fmt: skip
        return booked.booking.reference


def statuses(db) -> dict[str, BookingStatus]:
    with db.read_session() as s:
        return dict(s.execute(select(Booking.reference, Booking.status)).all())


def told(db) -> dict[str, set[tuple[str, MessageStatus]]]:
    with db.read_session() as s:
        found = s.execute(select(OutboxMessage.subject, OutboxMessage.kind, OutboxMessage.status))
        messages: dict[str, set[tuple[str, MessageStatus]]] = {}
        for subject, kind, status in found:
            messages.setdefault(subject.removeprefix("booking:"), set()).add((kind, status))
        return messages


@pytest.fixture
def slots(prison_db):
    run(prison_db, ACTIVE3.encode())
    with prison_db.writing() as s:
        prison = s.scalar(select(Prison))
        return {day: make_slot(s, prison, day).id for day in (THURSDAY, SATURDAY, NEXT_SATURDAY)}


def test_visits_begun_attended_or_missed_are_left_as_they_are(prison_db, slots):
    from visits.reference import display

    db = prison_db
    held = book(db, slots[SATURDAY], "Q1", "41111111", replace(SMS, verification=True))
    attended = book(db, slots[THURSDAY], "Q1", "42222222")
    begun = book(db, slots[THURSDAY], "Q2", "43333333")
    to_come = book(db, slots[SATURDAY], "Q2", "44444444")
    with db.writing() as s:
        s.scalar(
            select(Booking).where(Booking.reference == attended)
        ).status = BookingStatus.ATTENDED
    during_the_visit = datetime(2026, 12, 3, 9, 30, tzinfo=ZoneInfo("America/Lima"))
    released = ACTIVE3.replace("A,active,", "A,released,", 2)
    with db.writing() as s:
        report = import_roster(
            s, s.scalar(select(Prison)), released.encode(), during_the_visit, sms_policy=SMS
        )
    assert [c.reference for c in report.cancelled] == [held, to_come]
    assert statuses(db) == {
        held: BookingStatus.CANCELLED,  # the seats it held come back
        attended: BookingStatus.ATTENDED,
        begun: BookingStatus.CONFIRMED,  # the gate decides about a visit under way
        to_come: BookingStatus.CANCELLED,
    }
    # Both visits under way are told of for the gate to stop (visits.stopping.left): one
    # with someone inside, one nobody of which came yet.
    assert [(c.reference, c.under_way) for c in report.at_gate] == [
        (attended, False),
        (begun, True),
    ]
    assert report.summary().endswith(
        "; already inside, tell the gate: 1; visit time under way, tell the gate: 1"
    )
    assert report.cancellation_lines()[-2:] == [
        f"inside {display(attended)} 2026-12-03 09:00 (Q1): released",
        f"under way {display(begun)} 2026-12-03 09:00 (Q2): released",
    ]
    messages = told(db)
    # A hold was never confirmed to the family: its code is withdrawn, nothing is said.
    assert messages[held] == {("code", MessageStatus.CANCELLED)}
    assert ("inmate_not_active", MessageStatus.PENDING) in messages[to_come]
    assert ("reminder", MessageStatus.CANCELLED) in messages[to_come]
    with db.read_session() as s:
        seats = dict(s.execute(select(Slot.local_date, Slot.seats_taken)).all())
    assert seats == {THURSDAY: 2, SATURDAY: 0, NEXT_SATURDAY: 0}


def test_a_roster_suspension_cancels_up_to_its_last_day_like_a_staff_one(prison_db, slots):
    db = prison_db
    inside = book(db, slots[SATURDAY], "Q1", "41111111")
    after = book(db, slots[NEXT_SATURDAY], "Q1", "42222222")
    suspended = ACTIVE3.replace("A,active,\n", "A,active,2026-12-05\n", 1)
    report = run(db, suspended.encode())
    assert [(c.reference, c.cause, c.suspended_until) for c in report.cancelled] == [
        (inside, CancelCause.INMATE_SUSPENDED, SATURDAY)
    ]
    assert report.cancelled[0].why == "visits suspended until 2026-12-05"
    assert "1 booking cancelled (visits suspended: 1)" in report.summary()
    assert statuses(db) == {inside: BookingStatus.CANCELLED, after: BookingStatus.CONFIRMED}
    assert ("inmate_suspended", MessageStatus.PENDING) in told(db)[inside]
    assert run(db, suspended.encode()).cancelled == []  # applied once


def test_a_booking_an_earlier_import_left_behind_is_cancelled_by_the_next(prison_db, slots):
    """Every booking the roster rules out is cancelled, not only those of rows that changed:
    one left confirmed before this was fixed is caught by the next import."""
    db = prison_db
    left = book(db, slots[SATURDAY], "Q3", "41111111")
    with db.writing() as s:  # as an import before the fix left it
        s.scalar(select(Inmate).where(Inmate.code == "Q3")).status = InmateStatus.TRANSFERRED
    report = run(
        db, ACTIVE3.replace("Cusi,1970-01-01,A,active,", "Cusi,1970-01-01,A,transferred,").encode()
    )
    assert report.updated == 0
    assert [(c.reference, c.why) for c in report.cancelled] == [(left, "transferred")]
    assert statuses(db) == {left: BookingStatus.CANCELLED}
    with db.read_session() as s:
        event = s.scalar(
            select(AuditEvent)
            .where(AuditEvent.action == "roster.imported")
            .order_by(AuditEvent.id.desc())
        )
    assert event.details["cancelled"] == [left]


def test_another_prisons_roster_cancels_nothing_here(prison_db, slots):
    db = prison_db
    mine = book(db, slots[SATURDAY], "Q1", "41111111")
    with db.writing() as s:
        other = make_prison(s, "OTHER")
        roster = (HEADER + "Q1,Ana,Rojas,,1980-01-01,A,released,\n").encode()
        assert import_roster(s, other, roster, NOW, sms_policy=SMS).cancelled == []
    assert statuses(db) == {mine: BookingStatus.CONFIRMED}


def test_two_imports_of_one_prison_at_once_take_turns(prison_db):
    """Two administrators upload the same new person at once: the second import waits for the
    first, then finds the person there (on PostgreSQL it failed on the duplicate code)."""
    new = (HEADER + "Q9,Rosa,Zúñiga,,1988-03-03,A,active,\n").encode()
    second: dict[str, object] = {}

    def other_administrator() -> None:
        try:
            second["report"] = run(prison_db, new)
        except Exception as error:  # the test reports whatever it was
            second["error"] = error

    first = prison_db.write_session()
    try:
        made = import_roster(first, first.scalar(select(Prison)), new, NOW, sms_policy=SMS)
        assert made.created == 1
        thread = threading.Thread(target=other_administrator)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # waiting for the first import
        first.commit()
    finally:
        first.close()
    thread.join(30)
    assert "error" not in second, second
    report = second["report"]
    assert (report.created, report.unchanged) == (0, 1)
    assert list(inmates(prison_db)) == ["Q9"]


def _people(count: int, status: str = "active", first: int = 0) -> str:
    return "".join(
        f"P{n:03d},Ana,Rojas,,1980-01-01,A,{status},\n" for n in range(first, first + count)
    )


def test_a_file_that_takes_most_people_out_of_visits_needs_confirming(prison_db):
    """An old export or one wing's file: nothing is imported until the caller says it means
    it. Half of the people, or fewer than 20, go through as any file does."""
    run(prison_db, (HEADER + _people(40)).encode())
    before = {code: i.status for code, i in inmates(prison_db).items()}
    # 15 listed and one new: 25 of the 40 left out; 1 more released makes 26.
    partial = HEADER + _people(14) + _people(1, "released", 14) + "Q9,Rosa,Ccori,,1990-01-01,A,,\n"
    with pytest.raises(RosterTakesManyOut) as refused:
        run(prison_db, partial.encode())
    assert (refused.value.count, refused.value.active) == (26, 40)
    assert {code: i.status for code, i in inmates(prison_db).items()} == before
    with prison_db.writing() as s:
        report = import_roster(
            s, s.scalar(select(Prison)), partial.encode(), NOW, sms_policy=SMS,
            many_out_confirmed=True,
        )  # fmt: skip
    assert (report.created, report.deactivated) == (1, 25)
    # Back to 40 active; a file that leaves out exactly half needs nothing more.
    run(prison_db, (HEADER + _people(40) + "Q9,Rosa,Ccori,,1990-01-01,A,,\n").encode())
    assert run(prison_db, (HEADER + _people(21)).encode()).deactivated == 20
    few = (HEADER + _people(2)).encode()  # 19 of 21 out: most, but fewer than 20 people
    assert run(prison_db, few).deactivated == 19


# --- A roster imported while families book ---------------------------------------------------

FAMILIES = 30


def test_a_person_released_while_families_book_keeps_no_booking(db_url):
    """Families book visits to one inmate while the roster releases them: each booking lands
    before the import (and is cancelled by it) or is refused after it, never confirmed and
    left behind by a booking that read the inmate before the import committed."""
    db = Database(make_engine(db_url, busy_timeout_ms=60_000, pool_size=FAMILIES + 2))
    one = HEADER + "Q1,Juan,Quispe,Mamani,1990-05-17,A,active,\n"
    with db.writing() as s:
        prison = make_prison(s, visits_per_inmate_per_week=FAMILIES)
        import_roster(s, prison, one.encode(), NOW, sms_policy=SMS)
        slot_id = make_slot(s, prison, SATURDAY, capacity=200).id

    def administrator() -> str:
        released = one.replace(",active,", ",released,").encode()
        with db.writing() as s:
            report = import_roster(s, s.scalar(select(Prison)), released, NOW, sms_policy=SMS)
        return f"cancelled:{len(report.cancelled)}"

    try:
        outcomes = interrupted_stream(
            FAMILIES,
            lambda: booking_count(db),
            administrator,
            lambda i: attempt(db, slot_id, "Q1", f"4{i:07d}"),
        )
        booked = outcomes["ok"]
        assert booked >= 1  # before the import
        assert outcomes[f"cancelled:{booked}"] == 1, outcomes  # every booking that landed
        assert outcomes["inmate_not_active"] == FAMILIES - booked >= LATE  # after it
        with db.read_session() as s:
            assert s.scalar(select(Slot.seats_taken).where(Slot.id == slot_id)) == 0
            assert set(s.scalars(select(Booking.status))) <= {BookingStatus.CANCELLED}
    finally:
        db.dispose()


def test_a_roster_that_moves_and_releases_people_waits_for_no_family_that_waits_for_it(
    db, monkeypatch
):
    """The import cancels a released person's visit (its slot locked) and applies a wing's
    advisory to a person moved in: a family cancelling a visit in the same slot meanwhile
    waits for the import and then cancels, where taking the second booking after the slot
    was a deadlock on PostgreSQL (one side aborted)."""
    from tests.test_issuing import _issue, _setup
    from visits import issuing, roster
    from visits.booking import cancel_booking
    from visits.health import Measures

    refs = _setup(db)  # Q1 (wing A) and Q3 (wing B) on Saturday; Q2 (wing A) on Sunday
    _issue(db, measures=Measures(masks=True))  # wing A: masks
    about_to_apply, go_on = threading.Event(), threading.Event()
    apply_to_moved = issuing.apply_to_moved

    def paused(*args, **kwargs):
        about_to_apply.set()
        go_on.wait(10)
        return apply_to_moved(*args, **kwargs)

    monkeypatch.setattr(roster.issuing, "apply_to_moved", paused)
    rows = "".join(
        f"{code},Juan Carlos,Quispe,Mamani,1990-05-17,A,{status},\n"
        for code, status in (("Q1", "released"), ("Q2", "active"), ("Q3", "active"))
    )
    outcome: dict[str, object] = {}

    def administrator() -> None:
        try:
            report = run(db, (HEADER + rows).encode())
            outcome["roster"] = [c.reference for c in report.cancelled]
        except Exception as error:  # the test reports whatever it was
            outcome["roster"] = error

    def family() -> None:
        try:
            with db.writing() as s:
                booking = s.scalar(select(Booking).where(Booking.reference == refs["Q3"]))
                cancel_booking(s, booking, now=NOW, actor="family", sms_policy=SMS)
            outcome["family"] = "cancelled"
        except Exception as error:  # the test reports whatever it was
            outcome["family"] = error

    importing = threading.Thread(target=administrator)
    importing.start()
    assert about_to_apply.wait(20)
    cancelling = threading.Thread(target=family)
    cancelling.start()
    cancelling.join(1.0)
    assert cancelling.is_alive()  # waiting for the import, which holds Q3's booking
    go_on.set()
    importing.join(30)
    cancelling.join(30)
    assert outcome == {"roster": [refs["Q1"]], "family": "cancelled"}
    assert statuses(db)[refs["Q3"]] is BookingStatus.CANCELLED


@pytest.mark.parametrize(
    ("change", "cause", "why"),
    [
        ("A,transferred,", CancelCause.INMATE_NOT_ACTIVE, "transferred"),
        ("A,inactive,", CancelCause.INMATE_NOT_ACTIVE, "inactive or left out of the file"),
        ("A,active,2026-12-03", CancelCause.INMATE_SUSPENDED, "visits suspended until 2026-12-03"),
    ],
)
def test_a_visit_let_in_already_is_listed_for_the_gate_and_its_undo_cancels_it(
    prison_db, slots, change, cause, why
):
    """On Thursday at 08:00 a visitor came in for Q1's 09:00 visit; at 08:30 the roster gives
    Q1 as transferred or inactive, or suspends visits to them that day. As a closure or a staff
    suspension would, the import leaves the booking (she is inside; no SMS), lists it apart
    for the gate, and the gate's list says why to stop it; undoing her check-in cancels it with
    the roster's cause: seats back, the family told."""
    from tests.test_gate import GUARD
    from visits.gate import day_list, record_arrival, undo_gate
    from visits.reference import display

    db, lima = prison_db, ZoneInfo("America/Lima")
    inside = book(db, slots[THURSDAY], "Q1", "41111111")
    arrived = datetime(2026, 12, 3, 8, 0, tzinfo=lima)
    with db.writing() as s:
        [visitor_id] = [v.id for v in s.scalar(select(Booking)).visitors]
        record_arrival(s, prison=s.scalar(select(Prison)), visitor_id=visitor_id, actor=GUARD,
                       now=arrived)  # fmt: skip
    roster = ACTIVE3.replace("A,active,\n", f"{change}\n", 1)  # Q1's line
    with db.writing() as s:
        report = import_roster(
            s, s.scalar(select(Prison)), roster.encode(), arrived.replace(minute=30),
            sms_policy=SMS,
        )  # fmt: skip
    assert report.cancelled == []
    assert [(c.reference, c.cause, c.why) for c in report.at_gate] == [(inside, cause, why)]
    assert report.summary().endswith("0 bookings cancelled; already inside, tell the gate: 1")
    assert report.cancellation_lines() == [f"inside {display(inside)} 2026-12-03 09:00 (Q1): {why}"]
    assert statuses(db) == {inside: BookingStatus.ATTENDED}
    assert cause.value not in {kind for kind, _ in told(db)[inside]}
    with db.read_session() as s:
        imported = s.scalar(select(AuditEvent).where(AuditEvent.action == "roster.imported")
                            .order_by(AuditEvent.id.desc()))  # fmt: skip
        assert imported.details["at_gate"] == [inside]
        [slot] = day_list(s, s.scalar(select(Prison)), THURSDAY, NOW)
        assert [b.stop_visit for b in slot.bookings] == [cause]

    with db.writing() as s:
        undo_gate(
            s, prison=s.scalar(select(Prison)), visitor_id=visitor_id, was="arrived",
            actor=GUARD, now=arrived.replace(minute=45), sms_policy=SMS,
        )  # fmt: skip
    assert statuses(db) == {inside: BookingStatus.CANCELLED}
    assert (cause.value, MessageStatus.PENDING) in told(db)[inside]
    with db.read_session() as s:
        assert s.get(Slot, slots[THURSDAY]).seats_taken == 0
        cancelled = s.scalar(select(AuditEvent.action).where(AuditEvent.entity_id == inside)
                             .where(AuditEvent.action.like("booking.cancelled%")))  # fmt: skip
    assert cancelled == f"booking.cancelled_{cause.value}"
