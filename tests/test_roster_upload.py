"""Administrators upload their prison's roster in the browser: the import command's checks,
all or nothing, every problem listed in their language; on each database."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from notifications.outbox import MessageStatus, OutboxMessage
from tests.staffing import make_staff, sign_in, staff_token
from tests.test_closures import book_one, quencoro_days, status_of
from tests.test_pages import text
from visits.audit import AuditEvent
from visits.booking import Booking, BookingStatus
from visits.demo import ROSTERS
from visits.inmate import Inmate, InmateStatus
from visits.schedule import Slot
from visits.staff import StaffRole
from web.middleware import MAX_UPLOAD_BYTES

PAGE = "/staff/p/QUENCORO/roster"
HEADER = "code;first_names;last_name_1;last_name_2;birth_date;wing;status;visits_suspended_until\n"


@pytest.fixture
def admin(make_client, db):
    make_staff(db, "admin", StaffRole.ADMIN)
    client = make_client()
    assert sign_in(client, "admin").status_code == 303
    return client


def _upload(client, content: bytes, name="padron.csv", token=None, page=PAGE, **fields: str):
    return client.post(
        page,
        data={"csrf_token": staff_token(client) if token is None else token, **fields},
        files={"file": (name, content, "text/csv")},
    )


def _inmates(db) -> dict[str, Inmate]:
    with db.read_session() as s:
        return {i.code: i for i in s.scalars(select(Inmate).where(Inmate.code.like("Q%")))}


def test_an_uploaded_roster_is_imported_and_summarised(admin, db):
    before = _inmates(db)
    roster = HEADER + "Q10001;Carlos Alberto;Yupanqui;Huarcaya;2003-12-02;A;active;\n"
    roster += "Q90001;Rosa;Ccori;;1990-05-17;B;;\n"
    # Two rows leave most of the prison out: applied only once the administrator says so.
    asked = _upload(admin, roster.encode())
    assert asked.status_code == 422
    dropped = [c for c, i in before.items() if i.status is InmateStatus.ACTIVE and c != "Q10001"]
    assert (
        f"Este archivo deja sin visitas a {len(dropped)} de las {len(dropped) + 1} personas"
        in text(asked)
    )
    assert 'name="many_out"' in asked.text
    assert {c: i.status for c, i in _inmates(db).items()} == {
        c: i.status for c, i in before.items()
    }  # nothing imported
    answer = _upload(admin, roster.encode(), many_out="yes")
    assert answer.status_code == 200
    shown = text(answer)
    assert "padron.csv importado." in shown
    assert "Nuevos: 1 Cambiados: 1 Sin cambios: 0" in shown
    assert (
        f"Ya no están en el padrón (ya no se pueden reservar visitas para ellos): {len(dropped)}"
        in shown
    )
    after = _inmates(db)
    assert after["Q10001"].first_names == "Carlos Alberto"
    assert after["Q90001"].status is InmateStatus.ACTIVE
    assert after["Q10002"].status is InmateStatus.INACTIVE
    with db.read_session() as s:
        imported = select(AuditEvent).where(AuditEvent.action == "roster.imported")
        event = s.scalar(imported.order_by(AuditEvent.id.desc()))  # after the demo's own
    assert (event.actor, event.origin) == ("staff:admin", "testclient")


def test_a_roster_with_bad_rows_imports_nothing_and_lists_every_problem(admin, db):
    before = {code: i.first_names for code, i in _inmates(db).items()}
    roster = HEADER + "Q10001;Carlos Alberto;Yupanqui;;2003-12-02;A;;\n"
    roster += "Q10001;Otro;Nombre;;02/12/2003;Z;preso;\n"
    roster += "<script>x</script>;;Quispe;;ayer;;;\n"
    answer = _upload(admin, roster.encode())
    assert answer.status_code == 422
    shown = text(answer)
    assert "padron.csv no se importó: 6 problemas. No cambió nada." in shown
    assert "3 code ya aparece en la línea 2" in shown
    assert "3 wing pabellón desconocido 'Z': los que existen son A, B, C, D" in shown
    assert "3 status status desconocido 'preso'" in shown
    assert "4 first_names obligatorio" in shown
    assert re.search(r"\b4 birth_date [^:]+: 'ayer' \(", shown)  # the value, then the formats
    assert "<script>x</script>" not in answer.text  # escaped wherever it is shown
    assert {c: i.first_names for c, i in _inmates(db).items()} == before


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        (b"codigo,nombre\nQ1,Ana\n", "x.csv", "falta esta columna obligatoria"),
        ((HEADER + "Q1;Ñahui;Quispe;;1990-01-01;A;;\n").encode("latin-1"), "x.csv", "UTF-8"),
        (b"", "", "Completa este dato"),
    ],
)
def test_a_file_that_cannot_be_read_changes_nothing(admin, db, content, name, expected):
    before = len(_inmates(db))
    answer = _upload(admin, content, name)
    assert answer.status_code == 422
    assert expected in text(answer)
    assert len(_inmates(db)) == before


def test_a_roster_without_inmates_is_refused_and_deactivates_nobody(admin, db):
    before = {code: i.status for code, i in _inmates(db).items()}
    answer = _upload(admin, HEADER.encode())
    assert answer.status_code == 422
    shown = text(answer)
    assert "padron.csv no se importó: 1 problema. No cambió nada." in shown
    assert re.search(r"\b2 - \w", shown)  # the line and column of an inmate, and why
    assert {code: i.status for code, i in _inmates(db).items()} == before


def test_a_roster_too_large_is_refused_before_it_is_read(admin, db):
    before = len(_inmates(db))
    answer = _upload(admin, b"x" * (MAX_UPLOAD_BYTES + 1))
    assert answer.status_code == 413
    assert len(_inmates(db)) == before


def test_an_upload_without_the_form_token_changes_nothing(admin, db):
    answer = _upload(admin, (HEADER + "Q90001;Rosa;Ccori;;1990-05-17;B;;\n").encode(), token="")
    assert answer.status_code == 403
    with db.read_session() as s:
        assert (
            s.scalar(select(func.count()).select_from(Inmate).where(Inmate.code == "Q90001")) == 0
        )


def test_a_field_too_long_for_any_csv_reader_is_refused_plainly(admin, db):
    before = len(_inmates(db))
    huge = (HEADER + "Q1;" + "x" * 200_000 + ";Quispe;;1990-01-01;A;;\n").encode()
    answer = _upload(admin, huge)
    assert answer.status_code == 422
    assert "no se puede leer como CSV" in text(answer)
    assert len(_inmates(db)) == before


def test_a_nul_character_in_the_file_is_a_row_problem_not_a_server_error(admin, db):
    """PostgreSQL refuses NUL in text: the file is refused before anything is written."""
    before = {code: (i.first_names, i.status) for code, i in _inmates(db).items()}
    roster = HEADER + "Q10001;Carlos;Yupanqui;;2003-12-02;A;active;\n"
    roster += "Q90001;Ro\x00sa;Ccori;;1990-05-17;B;;\n"
    answer = _upload(admin, roster.encode())
    assert answer.status_code == 422
    shown = text(answer)
    assert "padron.csv no se importó: 1 problema. No cambió nada." in shown
    assert "3 first_names" in shown
    assert "\x00" not in answer.text
    assert {code: (i.first_names, i.status) for code, i in _inmates(db).items()} == before


# --- What the roster does to the visits booked ----------------------------------------------


def roster_with(**changes: str | None) -> bytes:
    """The demo's Quencoro roster with some rows' status and suspension date changed
    (``"released"``, ``"active,2026-12-05"``, …), or left out (``None``)."""
    lines = []
    for line in ROSTERS["QUENCORO"].read_text().splitlines():
        code = line.split(",", 1)[0]
        if code not in changes:
            lines.append(line)
        elif (change := changes[code]) is not None:
            status, _, until = change.partition(",")
            lines.append(",".join([*line.split(",")[:6], status, until]))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def booked(admin, db):
    """Bookings on the first two women's Wednesdays, the administrator signed in."""
    nine = {
        d["date"]: s["id"]
        for d in quencoro_days(admin)
        for s in d["slots"]
        if s["local_start"] == "09:00" and s["visitor_group"] == "women"
    }
    soon, later = nine["2026-12-02"], nine["2026-12-09"]
    refs = {
        "released_soon": book_one(admin, soon, "Q10005", "Quispe", "41111111", "987654321"),
        "released_later": book_one(admin, later, "Q10005", "Quispe", "42222222", "987654322"),
        "transferred": book_one(admin, soon, "Q10006", "Huillca", "43333333", "987654323"),
        "left_out": book_one(admin, soon, "Q10007", "Huarcaya", "44444444", "987654324"),
        "suspended": book_one(admin, soon, "Q10008", "Ccallo", "45555555", "987654325"),
        "after_suspension": book_one(admin, later, "Q10008", "Ccallo", "46666666", "987654326"),
        "untouched": book_one(admin, soon, "Q10009", "Quispe-Tito", "47777777", "987654327"),
    }
    return refs, soon


def _messages(db, reference: str) -> dict[str, MessageStatus]:
    with db.read_session() as s:
        found = s.execute(
            select(OutboxMessage.kind, OutboxMessage.status).where(
                OutboxMessage.subject == f"booking:{reference}"
            )
        ).all()
    return {kind: status for kind, status in found}


def test_a_roster_that_takes_people_out_of_visits_cancels_their_bookings(admin, db, booked):
    refs, soon = booked
    with db.read_session() as s:
        seats_before = s.get(Slot, soon).seats_taken
    roster = roster_with(
        Q10005="released", Q10006="transferred", Q10007=None, Q10008="active,2026-12-05"
    )
    # In English: what it says stays put while the translations catch up.
    answer = _upload(admin, roster, page=f"{PAGE}?lang=en")
    assert answer.status_code == 200, text(answer)
    shown = text(answer)
    assert "Changed: 3" in shown
    assert "No longer on the roster (visits to them can no longer be booked): 1" in shown
    assert "5 bookings were cancelled: by this roster" in shown
    for key in ("released_soon", "released_later", "transferred", "left_out", "suspended"):
        assert status_of(db, refs[key]) is BookingStatus.CANCELLED, key
        assert f"/staff/p/QUENCORO/bookings/{refs[key]}" in answer.text  # listed, linked
    for key in ("after_suspension", "untouched"):
        assert status_of(db, refs[key]) is BookingStatus.CONFIRMED, key
    assert "Alberto Quispe (Q10005)" in shown
    assert "Visits suspended until" in shown

    # Each family is told in general words, its reminders are withdrawn, its seats are free.
    kinds = {
        "released_soon": "inmate_not_active", "released_later": "inmate_not_active",
        "transferred": "inmate_not_active", "left_out": "inmate_not_active",
        "suspended": "inmate_suspended",
    }  # fmt: skip
    with db.read_session() as s:
        for key, kind in kinds.items():
            messages = _messages(db, refs[key])
            assert messages[kind] is MessageStatus.PENDING, key
            assert messages["reminder"] is MessageStatus.CANCELLED, key
            body = s.scalar(
                select(OutboxMessage.body).where(
                    OutboxMessage.subject == f"booking:{refs[key]}", OutboxMessage.kind == kind
                )
            )
            for word in ("releas", "transfer", "roster", "liber", "traslad", "padr", "2026-12-05"):
                assert word not in body.lower(), (key, body)
        assert "reminder" in _messages(db, refs["untouched"])
        assert s.get(Slot, soon).seats_taken == seats_before - 4
        events = dict(
            s.execute(
                select(AuditEvent.entity_id, AuditEvent.action).where(
                    AuditEvent.action.like("booking.cancelled%")
                )
            ).all()
        )
        imported = s.scalar(
            select(AuditEvent)
            .where(AuditEvent.action == "roster.imported")
            .order_by(AuditEvent.id.desc())
        )
    assert events == {refs[key]: f"booking.cancelled_{kind}" for key, kind in kinds.items()}
    assert sorted(imported.details["cancelled"]) == sorted(refs[key] for key in kinds)
    assert "5 bookings cancelled" in imported.details["summary"]

    # The booking's own page says why, for staff.
    history = text(admin.get(f"/staff/p/QUENCORO/bookings/{refs['transferred']}"))
    assert "Cancelled: the roster no longer has this person as active here" in history

    # The same file again cancels nothing more.
    again = text(_upload(admin, roster))
    assert "Changed: 0" in again
    assert "No booking is affected." in again


@pytest.mark.usefixtures("booked")
def test_a_roster_that_changes_no_visit_cancels_nothing(admin, db):
    shown = text(_upload(admin, ROSTERS["QUENCORO"].read_bytes(), page=f"{PAGE}?lang=en"))
    assert "No booking is affected." in shown
    with db.read_session() as s:
        statuses = set(s.scalars(select(Booking.status)))
    assert statuses == {BookingStatus.CONFIRMED}


def test_what_changed_is_listed_with_the_columns_names_in_the_page_language(admin, db):
    """A spreadsheet's file (a separator after the last column) is taken as it is, and the
    list of what changed names the columns in Spanish, not as the file spells them."""
    roster = roster_with(Q10010="released,2030-01-01").decode()
    roster = "".join(f"{line},\n" for line in roster.splitlines())
    answer = _upload(admin, roster.encode())
    assert answer.status_code == 200, text(answer)
    shown = text(answer)
    assert "Qué cambió Q10010: Estado, " in shown
    assert "visits_suspended_until" not in shown.split("Qué cambió", 1)[1].split("Subir", 1)[0]
    assert _inmates(db)["Q10010"].status is InmateStatus.RELEASED


def test_a_line_break_inside_a_name_is_a_row_problem_and_nothing_is_imported(admin, db):
    before = {code: (i.first_names, i.status) for code, i in _inmates(db).items()}
    roster = ROSTERS["QUENCORO"].read_text() + '"Q90001","Nuevo\nInterno",Ccori,,1990-05-17,B,,\n'
    answer = _upload(admin, roster.encode())
    assert answer.status_code == 422
    shown = text(answer)
    assert "padron.csv no se importó: 1 problema. No cambió nada." in shown
    assert "202 first_names" in shown  # the line the row starts on
    assert {code: (i.first_names, i.status) for code, i in _inmates(db).items()} == before


def test_a_zero_width_character_or_a_column_named_twice_imports_nothing(admin, db):
    """A name pasted with a zero-width space, and a header naming a column twice: each is
    listed with its line and column, and nothing changes."""
    before = {code: (i.first_names, i.status) for code, i in _inmates(db).items()}
    pasted = ROSTERS["QUENCORO"].read_text() + "Q90001,Ro\u200bsa,Ccori,,1990-05-17,B,,\n"
    answer = _upload(admin, pasted.encode(), page=f"{PAGE}?lang=en")
    assert answer.status_code == 422
    shown = text(answer)
    assert "1 problem. Nothing changed." in shown
    assert "202 first_names holds an invisible zero-width character (U+200B)" in shown
    header, rest = ROSTERS["QUENCORO"].read_text().split("\n", 1)
    twice = f"{header},code\n" + rest
    answer = _upload(admin, twice.encode(), page=f"{PAGE}?lang=en")
    assert answer.status_code == 422
    assert "1 code named twice, in columns 1 and 9" in text(answer)
    assert {code: (i.first_names, i.status) for code, i in _inmates(db).items()} == before


def test_a_visit_let_in_already_is_not_cancelled_and_the_page_names_it_for_the_gate(admin, db):
    """Today at 10:00 a visitor came in for Q10001's 14:00 visit; then the uploaded roster
    gives Q10001 as transferred. The booking stays attended (no SMS) and the page names it
    for the gate, linked, as a closure's or a suspension's result does."""
    from datetime import date, time

    from tests.factories import NOW
    from tests.test_gate import GUARD, _quencoro_visit
    from visits.gate import record_arrival
    from visits.prison import prison_by_code
    from visits.reference import display

    reference, _, visitor_id = _quencoro_visit(db, date(2026, 12, 1), time(14))
    with db.writing() as s:
        quencoro = prison_by_code(s, "QUENCORO")
        record_arrival(s, prison=quencoro, visitor_id=visitor_id, actor=GUARD, now=NOW)
    answer = _upload(admin, roster_with(Q10001="transferred"), page=f"{PAGE}?lang=en")
    assert answer.status_code == 200, text(answer)
    shown = text(answer)
    assert (
        "1 booking was not cancelled, as someone of it is inside already or its visit time is "
        f"under way: tell the gate to stop the visit. {display(reference)}"
    ) in shown
    assert "No booking is affected." not in shown
    assert f"/staff/p/QUENCORO/bookings/{reference}" in answer.text
    assert status_of(db, reference) is BookingStatus.ATTENDED
    assert "inmate_not_active" not in _messages(db, reference)
