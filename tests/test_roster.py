"""Importing the inmate roster: all or nothing, with every bad row named."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from tests.factories import NOW, make_prison
from visits.audit import AuditEvent
from visits.inmate import Inmate, InmateStatus
from visits.prison import Prison
from visits.roster import RosterInvalid, import_roster

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
        return import_roster(s, s.scalar(select(Prison)), data, NOW)


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
    assert report.changes == ["Q1: first_names"]
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


def test_rosters_of_two_prisons_do_not_touch_each_other(prison_db):
    run(prison_db, GOOD.encode())
    with prison_db.writing() as s:
        other = make_prison(s, "OTHER")
        report = import_roster(s, other, (HEADER + "Q1,Ana,Rojas,,1980-01-01,A,,\n").encode(), NOW)
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
