"""Administrators upload their prison's roster in the browser: the import command's checks,
all or nothing, every problem listed in their language; on each database."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tests.staffing import make_staff, sign_in, staff_token
from tests.test_pages import text
from visits.audit import AuditEvent
from visits.inmate import Inmate, InmateStatus
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


def _upload(client, content: bytes, name="padron.csv", token=None):
    return client.post(
        PAGE,
        data={"csrf_token": staff_token(client) if token is None else token},
        files={"file": (name, content, "text/csv")},
    )


def _inmates(db) -> dict[str, Inmate]:
    with db.read_session() as s:
        return {i.code: i for i in s.scalars(select(Inmate).where(Inmate.code.like("Q%")))}


def test_an_uploaded_roster_is_imported_and_summarised(admin, db):
    before = _inmates(db)
    roster = HEADER + "Q10001;Carlos Alberto;Yupanqui;Huarcaya;2003-12-02;A;active;\n"
    roster += "Q90001;Rosa;Ccori;;1990-05-17;B;;\n"
    answer = _upload(admin, roster.encode())
    assert answer.status_code == 200
    shown = text(answer)
    assert "padron.csv importado: 1 nuevos, 1 cambiados, 0 sin cambios" in shown
    dropped = [c for c, i in before.items() if i.status is InmateStatus.ACTIVE and c != "Q10001"]
    assert f"{len(dropped)} ya no están en el padrón" in shown
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
    assert "4 birth_date no es una fecha: 'ayer'" in shown
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
