"""Staff pages: sign-in, sessions, and the access check of every staff route, on each database.

The route walk below finds every route under /staff in the app: a new staff route without
``staff_access`` fails it, and each route is tried anonymously and by every role it does not
admit.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import time, timedelta
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import func, select

from tests.factories import LIMA_TODAY, NOW, SMS, fill_day, make_slot, request_for, visitor
from tests.staffing import STAFF_PASSWORD, idle_out, make_staff, sign_in, staff_token
from tests.test_api import book, open_slot
from tests.test_health_web import WING_A_MASKS
from tests.test_pages import text
from visits import staff
from visits.audit import AuditEvent
from visits.booking import BookingVisitor, create_booking
from visits.gate import GateCheck
from visits.i18n import use_locale
from visits.inmate import Inmate, InmateSuspension
from visits.prison import Prison
from visits.problems import Audience, Code, Problem, Rejected, message
from visits.staff import StaffRole, StaffSession
from web.downloads import csv_cell
from web.forms import KEPT_PREFIX, MAX_KEPT_LENGTH, MAX_KEPT_SIZE, kept_staff_values

# Routes anyone may open: the sign-in form and its answer.
PUBLIC = {("/staff/login", "GET"), ("/staff/login", "POST")}
PATH_VALUES = {
    "prison": "QUENCORO",
    "visitor_id": "1",
    "booking_id": "1",
    "reference": "ABCD2345",
    "closure_id": "1",
    "suspension_id": "1",
    "user_id": "1",
    "advisory_id": "1",
}


@pytest.fixture
def staffed(make_client, db):
    """The demo app with a guard, a health user and an admin of Quencoro, an admin of the
    women's prison only, and a national admin."""
    make_staff(db, "guardia", StaffRole.GUARD)
    make_staff(db, "salud", StaffRole.HEALTH)
    make_staff(db, "admin", StaffRole.ADMIN)
    make_staff(db, "admin.mujeres", StaffRole.ADMIN, ("MUJERES-CUSCO",))
    make_staff(db, "nacional", StaffRole.ADMIN, (), national=True)
    return make_client


def _access_roles(route) -> tuple[StaffRole, ...] | None:
    """The roles the route's access check admits; ``None`` if it has no access check."""
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        roles = getattr(dependant.call, "roles", None)
        if roles is not None:
            return roles
        pending.extend(dependant.dependencies)
    return None


def _staff_routes(app) -> list[tuple[Any, str, str]]:
    """(route, method, a path to request) for every route under /staff, however nested."""
    found = []
    for route in iter_route_contexts(app.routes):
        if route.path is not None and route.path.startswith("/staff"):
            path = route.path.format(**PATH_VALUES)
            found += [(route, method, path) for method in sorted(route.methods - {"HEAD"})]
    return found


def test_every_staff_route_refuses_anonymous_users_and_roles_it_does_not_admit(staffed):
    client = staffed()
    routes = _staff_routes(client.app)
    assert len(routes) >= 6  # the walk sees the staff routes, not nothing
    guarded = [(r, m, p) for r, m, p in routes if (r.path, m) not in PUBLIC]
    missing = [f"{m} {r.path}" for r, m, _ in guarded if _access_roles(r) is None]
    assert missing == []  # every staff route goes through staff_access
    for _, method, path in guarded:
        answer = client.request(method, path, follow_redirects=False)
        if method == "GET":
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/staff/login?next="), path
        else:
            assert answer.status_code == 401, path
    for role, username in ((StaffRole.GUARD, "guardia"), (StaffRole.HEALTH, "salud")):
        signed = staffed()
        assert sign_in(signed, username).status_code == 303
        token = staff_token(signed)
        for route, method, path in guarded:
            if role in _access_roles(route):
                continue
            answer = signed.request(
                method, path, data={"csrf_token": token}, follow_redirects=False
            )
            assert answer.status_code == 403, (username, method, path)


def test_staff_of_one_prison_get_403_on_another_prison_by_url(staffed):
    client = staffed()
    sign_in(client, "admin.mujeres")
    assert client.get("/staff/p/MUJERES-CUSCO/day").status_code == 200
    assert client.get("/staff/p/QUENCORO/day").status_code == 403
    assert client.get("/staff/p/QUENCORO/day.csv").status_code == 403
    assert client.get("/staff/p/NOWHERE/day").status_code == 404
    assert client.get("/staff/p/QUEN%00CORO/day").status_code == 404
    national = staffed()
    sign_in(national, "nacional")
    assert national.get("/staff/p/QUENCORO/day").status_code == 200
    assert national.get("/staff/p/MUJERES-CUSCO/day").status_code == 200


def test_sign_in_sets_a_strict_http_only_cookie_and_audits_who_and_where(staffed, db):
    client = staffed()
    answer = sign_in(client, "guardia", next_path="/staff/p/QUENCORO/day")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/staff/p/QUENCORO/day"
    cookie = answer.headers["set-cookie"].lower()
    for attribute in ("httponly", "samesite=strict", "path=/staff", "secure"):
        assert attribute in cookie
    assert "Rosa" not in cookie
    assert "guardia" not in cookie
    with db.read_session() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "staff.signed_in"))
        assert event.actor == "staff:guardia"
        assert event.origin == "testclient"


def test_sign_in_never_redirects_to_another_site(staffed):
    answer = sign_in(staffed(), "guardia", next_path="https://evil.example/staff")
    assert answer.headers["location"] == "/staff"
    answer = sign_in(staffed(), "guardia", next_path="//evil.example/staff")
    assert answer.headers["location"] == "/staff"


def test_a_wrong_password_is_told_neutrally_and_repeated_failures_lock(staffed):
    client = staffed()
    wrong = sign_in(client, "guardia", password="no es la clave")
    assert wrong.status_code == 401
    assert "El nombre de usuario o la contraseña no son correctos." in text(wrong)
    for _ in range(4):
        sign_in(client, "guardia", password="no es la clave")
    locked = sign_in(client, "guardia", password=STAFF_PASSWORD)
    assert locked.status_code == 429
    assert "Espera 15 minutos" in text(locked)
    assert STAFF_PASSWORD not in locked.text


def test_strangers_locking_a_name_do_not_lock_out_a_browser_that_signed_in_with_it(staffed, db):
    """Guessing from many addresses locks the name for every other browser, but the gate's
    tablet, which has signed in as the guard before, still signs in (visits.staff's
    remember_device)."""
    tablet = staffed(staff_sign_in_failures_per_user=3)
    assert sign_in(tablet, "guardia").status_code == 303
    assert tablet.cookies.get("staff_device")
    for n in range(3):
        with pytest.raises(Rejected):
            staff.sign_in(
                db,
                username="guardia",
                password="no es la clave",
                client=f"203.0.113.{n}",
                now=NOW,
                policy=tablet.app.state.sign_in_policy,
            )
    stranger = staffed(staff_sign_in_failures_per_user=3)
    assert sign_in(stranger, "guardia").status_code == 429
    assert sign_in(tablet, "guardia").status_code == 303
    assert sign_in(stranger, "admin").status_code == 303  # remembered for that account only
    assert sign_in(stranger, "guardia").status_code == 429


def test_the_sign_in_form_needs_its_csrf_token_and_a_same_site_origin(staffed, db):
    client = staffed()
    forged = client.post(
        "/staff/login",
        data={"username": "guardia", "password": STAFF_PASSWORD},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/staff/login").text)[1]
    cross = client.post(
        "/staff/login",
        data={"csrf_token": token, "username": "guardia", "password": STAFF_PASSWORD},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert cross.status_code == 403
    with db.read_session() as s:
        assert s.scalar(select(func.count(StaffSession.id))) == 0


def test_a_form_sent_after_the_session_went_idle_says_it_was_not_saved_and_leads_back(staffed, db):
    """A guard's tablet idle at the gate: the form did nothing, the sign-in page says so in
    staff words (not the family's "identify the person again") and returns to the page."""
    client = staffed()
    sign_in(client, "admin")
    token = staff_token(client)
    page = "/staff/p/QUENCORO/suspensions"
    idle_out(db)
    sent = client.post(
        f"{page}/inmates",
        data={"csrf_token": token, "code": "Q10001", "inmate-until": "2030-01-01"},
        headers={"Referer": f"http://testserver{page}"},
        follow_redirects=False,
    )
    assert sent.status_code == 401
    assert "Tu sesión terminó. Vuelve a iniciar sesión." in text(sent)
    assert "Lo que enviaste no se guardó" in text(sent)
    assert "identifica" not in text(sent).lower()
    assert f'name="next" value="{page}"' in sent.text
    with db.read_session() as s:
        assert s.scalar(select(func.count(InmateSuspension.id))) == 0
    elsewhere = client.post(
        f"{page}/inmates",
        data={"csrf_token": token},
        headers={"Referer": "https://evil.example/staff/x"},
        follow_redirects=False,
    )
    assert 'name="next" value="/staff"' in elsewhere.text  # never back to another site
    again = sign_in(client, "admin", next_path=page)
    assert again.headers["location"] == page


@pytest.mark.parametrize(
    ("user", "preview", "form_page"),
    [
        ("salud", "health/preview", "health"),
        ("salud", "health/edit", "health"),
        ("salud", "health/1/preview", "health/1"),
        ("salud", "health/1/lift/preview", "health/1"),
        ("admin", "schedule/preview", "schedule"),
        ("admin", "closures/preview", "closures"),
        ("admin", "broadcast/preview", "broadcast"),
    ],
)
def test_a_form_sent_from_a_preview_after_the_session_went_idle_leads_back_to_its_form(
    staffed, db, user, preview, form_page
):
    """A preview answers only the form posted to it: after signing in again, the browser
    goes to the preview's form page, which it can open, never to the preview (a 404)."""
    client = staffed()
    sign_in(client, user)
    token = staff_token(client)
    idle_out(db)
    base = "/staff/p/QUENCORO/"
    sent = client.post(
        f"{base}{preview}",
        data={"csrf_token": token},
        headers={"Referer": f"http://testserver{base}{preview}"},
        follow_redirects=False,
    )
    assert sent.status_code == 401
    assert f'name="next" value="{base}{preview}"' in sent.text  # the page it was on
    again = sign_in(client, user, next_path=f"{base}{preview}")
    assert again.headers["location"] == f"{base}{preview}"
    back = client.get(again.headers["location"], follow_redirects=False)
    assert back.status_code == 303
    assert back.headers["location"] == f"{base}{form_page}"
    if "/1" not in form_page:  # no advisory 1 here: its page is opened in the health tests
        assert client.get(back.headers["location"]).status_code == 200


def test_staff_error_pages_are_in_the_staff_layout_and_lead_back(staffed):
    """An expired form, a page out of the role, an address that names no row: a staff page
    with the staff menu, a way back to the page it came from and to the staff home, never
    the family's links nor the API's JSON."""
    client = staffed()
    sign_in(client, "guardia")
    day = "/staff/p/QUENCORO/day"
    expired = client.post(
        "/staff/p/QUENCORO/visitors/1/arrived",
        data={"csrf_token": "not-this-one"},
        headers={"Referer": f"http://testserver{day}"},
        follow_redirects=False,
    )
    assert expired.status_code == 403
    assert "Este formulario venció" in text(expired)
    assert f'href="{day}"' in expired.text  # back to the list, to send it again
    assert 'href="/staff"' in expired.text
    assert "English" in text(expired)  # the language switch, as on every page
    assert "Buscar mi reserva" not in text(expired)
    for path in ("/staff/p/QUENCORO/visitors/abc/arrived", "/staff/p/QUENCORO/visitors/0/undo"):
        odd = client.post(path, data={"csrf_token": staff_token(client)}, follow_redirects=False)
        assert odd.status_code == 404, path
        assert odd.headers["content-type"].startswith("text/html")
        assert "Esta página no existe" in text(odd)
    not_theirs = client.get("/staff/p/QUENCORO/schedule")
    assert not_theirs.status_code == 403
    assert "Tu cuenta no puede hacer esto aquí" in text(not_theirs)
    assert 'href="/staff"' in not_theirs.text
    assert "Buscar mi reserva" not in text(not_theirs)


def test_a_staff_error_summary_names_each_field_as_its_form_labels_it(staffed):
    """Not "Completa este dato. Completa este dato.", nor the family's "Código de la persona
    que visitas" on a health form: each problem after the label of its field on that page."""
    admin = staffed()
    sign_in(admin, "admin")
    broadcast = admin.post(
        "/staff/p/QUENCORO/broadcast/preview",
        data={"csrf_token": staff_token(admin), "first": "", "last": "", "text_es": "Hola"},
    )
    assert broadcast.status_code == 422
    summary = text(broadcast).split("Revisa lo siguiente:")[1]
    assert summary.strip().startswith("Desde: Completa este dato. Hasta: Completa este dato.")
    health = staffed()
    sign_in(health, "salud")
    unknown = health.post(
        "/staff/p/QUENCORO/health/preview",
        data={"csrf_token": staff_token(health), **WING_A_MASKS, "scope": "inmate",
              "inmate_code": "Q99999"},
    )  # fmt: skip
    assert unknown.status_code == 422
    shown = text(unknown)
    assert "Revisa lo siguiente: Código del interno (para una alerta sobre un interno):" in shown
    assert "persona que visitas" not in shown


def test_sign_out_needs_the_sessions_token_and_then_ends_it(staffed, db):
    client = staffed()
    sign_in(client, "guardia")
    token = staff_token(client)
    assert client.post("/staff/logout", follow_redirects=False).status_code == 403
    wrong = client.post("/staff/logout", data={"csrf_token": "x" + token}, follow_redirects=False)
    assert wrong.status_code == 403
    cross = client.post(
        "/staff/logout",
        data={"csrf_token": token},
        headers={"Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )
    assert cross.status_code == 403
    assert client.get("/staff", follow_redirects=False).status_code == 200  # still signed in
    done = client.post("/staff/logout", data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303
    with db.read_session() as s:
        assert s.scalar(select(StaffSession.ended_at)) is not None
    assert client.get("/staff", follow_redirects=False).status_code == 303


def _booked_with_hostile_names(client, db) -> tuple[str, str]:
    """A booking of an adult and a child under 5 whose names, as stored, hold markup and a
    spreadsheet formula (the booking form refuses both; a list must survive them anyway,
    whatever wrote them). Its reference and day."""
    slot = open_slot(client)
    visitors = [
        {"first_names": "Ana", "last_names": "Quispe", "doc_type": "dni",
         "doc_number": "41111111", "birth_date": "1980-01-01", "relationship": "sibling",
         "sex": "F"},
        {"first_names": "Luz", "last_names": "Quispe", "doc_type": "dni",
         "doc_number": "72222222", "birth_date": "2023-01-01", "relationship": "child",
         "sex": "F"},
    ]  # fmt: skip
    answer = book(client, slot["id"], visitors=visitors)
    assert answer.status_code == 201, answer.text
    with db.writing() as s:
        child = s.scalar(select(BookingVisitor).where(BookingVisitor.first_names == "Luz"))
        child.first_names, child.last_names = '=HYPERLINK("x")', "<script>alert(1)</script>"
    return answer.json()["reference"], slot["starts_at"][:10]


def test_the_day_list_groups_visitors_by_slot_with_counts_and_age_groups(staffed, db):
    client = staffed()
    reference, day = _booked_with_hostile_names(client, db)
    sign_in(client, "guardia")
    page = client.get("/staff/p/QUENCORO/day", params={"date": day})
    assert page.status_code == 200
    shown = text(page)
    assert reference in shown
    assert "Ana Quispe" in shown
    assert "Menor de 5" in shown
    assert "Adulto" in shown
    assert "Yupanqui" in shown  # the inmate visited
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    found = client.get(
        "/staff/p/QUENCORO/day", params={"date": day, "q": "72222222"}, follow_redirects=False
    )
    assert found.status_code == 303
    luz = re.search(r'<li id="(v-\d+)">=HYPERLINK', page.text).group(1)  # the child's line
    assert found.headers["location"] == f"?date={day}#{luz}"
    by_reference = client.get(
        "/staff/p/QUENCORO/day", params={"date": day, "q": reference}, follow_redirects=False
    )
    assert by_reference.headers["location"] == f"?date={day}#b-{reference.replace('-', '')}"
    missing = client.get("/staff/p/QUENCORO/day", params={"date": day, "q": "99999999"})
    assert missing.status_code == 422
    assert "99999999" in text(missing)
    assert client.get("/staff/p/QUENCORO/day", params={"date": "mañana"}).status_code == 422


def test_the_csv_neutralises_formulas_and_keeps_names_as_given(staffed, db):
    client = staffed()
    reference, day = _booked_with_hostile_names(client, db)
    sign_in(client, "guardia")
    answer = client.get("/staff/p/QUENCORO/day.csv", params={"date": day})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert f'filename="visitas-QUENCORO-{day}.csv"' in answer.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(answer.text.removeprefix("\ufeff"))))
    child = next(row for row in rows if row[9] == "72222222")
    assert child[2] == reference  # XXXX-XXXX, as on the pages and in the family's SMS
    assert child[7] == '\'=HYPERLINK("x") <script>alert(1)</script>'  # quoted: text, not a formula
    assert child[10] == "Menor de 5 años"
    assert rows[0][:3] == ["Inicio", "Fin", "Reserva"]  # in the staff's language
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


@pytest.mark.parametrize(
    ("typed", "told"),
    [
        ("9999-12-31", "Elige una fecha de aquí a 10 años como máximo."),
        ("2040-01-01", "Elige una fecha de aquí a 10 años como máximo."),
        ("0001-01-01", "Elige una fecha de hace 10 años como máximo."),
    ],
    ids=["last-day-python-knows", "a-decade-ahead", "year-one"],
)
def test_a_day_far_off_is_refused_on_the_list_and_in_the_csv(staffed, typed, told):
    """The day after 9999-12-31 is no date: such a day is refused before any arithmetic."""
    client = staffed()
    sign_in(client, "guardia")
    for path in ("/staff/p/QUENCORO/day", "/staff/p/QUENCORO/day.csv"):
        answer = client.get(path, params={"date": typed})
        assert answer.status_code == 422
        assert answer.headers["content-type"].startswith("text/html")
        assert told in text(answer)
        assert f'value="{typed}"' in answer.text  # what was typed stays in the field


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "＝1+1"])
def test_a_csv_cell_that_a_spreadsheet_would_run_is_quoted(cell):
    assert csv_cell(cell) == "'" + cell
    assert csv_cell("Ana " + cell) == "Ana " + cell


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("+51966666666", "+51966666666"),  # a phone number as stored: ready to dial
        ("+519666666661234567", "'+519666666661234567"),  # longer than any number
        ("+51 966", "'+51 966"),
        ("+51966666666+1", "'+51966666666+1"),
    ],
)
def test_a_phone_number_is_written_as_it_is(cell, written):
    assert csv_cell(cell) == written


# --- Check-in at the gate -------------------------------------------------------------------


def _visit_today(db) -> tuple[str, int]:
    """A Quencoro booking this afternoon (made days ago): its reference and visitor's id."""
    with db.writing() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        inmate = s.scalar(select(Inmate).where(Inmate.code == "Q10001"))
        slot = make_slot(s, prison, LIMA_TODAY, start=time(14))
        booked = create_booking(
            s,
            prison=prison,
            inmate=inmate,
            request=request_for(slot, visitor("46000001")),
            now=NOW - timedelta(days=3),
            secret_key="test-secret",
            sms_policy=SMS,
        )
        return booked.booking.reference, booked.booking.visitors[0].id


def _checks(db) -> int:
    with db.read_session() as s:
        return s.scalar(select(func.count()).select_from(GateCheck))


def test_a_guard_checks_a_visitor_in_from_the_list(staffed, db):
    reference, visitor_id = _visit_today(db)
    client = staffed()
    sign_in(client, "guardia")
    page = client.get("/staff/p/QUENCORO/day")
    assert f"/staff/p/QUENCORO/visitors/{visitor_id}/arrived" in page.text
    arrived = client.post(
        f"/staff/p/QUENCORO/visitors/{visitor_id}/arrived",
        data={"csrf_token": staff_token(client)},
        follow_redirects=False,
    )
    assert arrived.status_code == 303
    assert arrived.headers["location"] == f"/staff/p/QUENCORO/day?date={LIMA_TODAY}#b-{reference}"
    shown = text(client.get("/staff/p/QUENCORO/day"))
    assert "Ingresó" in shown
    assert "Deshacer" in shown
    assert _checks(db) == 1


def test_check_in_needs_the_csrf_token(staffed, db):
    _, visitor_id = _visit_today(db)
    client = staffed()
    sign_in(client, "guardia")
    forged = client.post(f"/staff/p/QUENCORO/visitors/{visitor_id}/arrived")
    assert forged.status_code == 403
    assert _checks(db) == 0


def test_staff_of_another_prison_cannot_check_in_by_url_or_by_form(staffed, db):
    _, visitor_id = _visit_today(db)
    client = staffed()
    sign_in(client, "admin.mujeres")
    token = staff_token(client)
    by_url = client.post(
        f"/staff/p/QUENCORO/visitors/{visitor_id}/arrived", data={"csrf_token": token}
    )
    assert by_url.status_code == 403
    # Their own prison in the address, a Quencoro visitor in the form's target.
    by_form = client.post(
        f"/staff/p/MUJERES-CUSCO/visitors/{visitor_id}/arrived", data={"csrf_token": token}
    )
    assert by_form.status_code == 409
    # In the guard's words: not the family's "no booking with that reference and phone".
    with use_locale("es"):
        assert message(Problem(Code.BOOKING_NOT_FOUND), Audience.GATE) in text(by_form)
    assert "No encontramos" not in text(by_form)
    assert client.get(f"/staff/p/MUJERES-CUSCO/visitors/{visitor_id}/turn-away").status_code == 404
    assert _checks(db) == 0


def test_turning_a_visitor_away_asks_the_reason_and_shows_it(staffed, db):
    _, visitor_id = _visit_today(db)
    client = staffed()
    sign_in(client, "guardia")
    form = client.get(f"/staff/p/QUENCORO/visitors/{visitor_id}/turn-away")
    assert form.status_code == 200
    assert "Sin documento de identidad" in text(form)
    token = staff_token(client)
    path = f"/staff/p/QUENCORO/visitors/{visitor_id}/turn-away"
    missing = client.post(path, data={"csrf_token": token, "reason": "other", "note": ""})
    assert missing.status_code == 422
    assert "Completa este dato." in text(missing)
    assert _checks(db) == 0
    done = client.post(
        path,
        data={"csrf_token": token, "reason": "no_document", "note": "<b>sin DNI</b>"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    page = client.get("/staff/p/QUENCORO/day")
    assert "Ingreso denegado" in text(page)
    assert "&lt;b&gt;sin DNI&lt;/b&gt;" in page.text


def test_a_day_of_2000_visitors_lists_every_one_on_screen_and_in_the_csv(staffed, db):
    with db.writing() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        inmates = s.scalars(select(Inmate).where(Inmate.prison_id == prison.id)).all()
        fill_day(s, prison, list(inmates), LIMA_TODAY, visitors=2000, slots=4)
    client = staffed()
    sign_in(client, "guardia")
    page = client.get("/staff/p/QUENCORO/day")
    assert page.status_code == 200
    listed = re.findall(r'<li id="v-\d+">Rosa Quispe (\d{8}) ', page.text)
    assert len(listed) == len(set(listed)) == 2000
    assert page.text.count('class="gate-slot"') == 4
    assert text(page).count("500 de 500 lugares reservados") == 4
    assert page.text.count("Menor de 5") > 0
    csv_rows = client.get("/staff/p/QUENCORO/day.csv").text.strip().splitlines()
    assert len(csv_rows) == 1 + 2000


def test_signing_in_on_a_shared_tablet_signs_the_previous_person_out(staffed, db):
    client = staffed()
    sign_in(client, "guardia")
    assert sign_in(client, "admin").status_code == 303
    with db.read_session() as s:
        first, second = s.scalars(select(StaffSession).order_by(StaffSession.id)).all()
        assert first.ended_at is not None
        assert second.ended_at is None


def test_what_sign_in_carries_of_a_form_leaves_out_tokens_and_passwords_and_stays_small():
    """The sign-in page's hidden fields, and then the session cookie, hold what was typed:
    never the old token nor a password, and never more than a cookie can hold."""
    sent = {
        "csrf_token": "old",
        "password": "x",
        "new_password": "y",
        "next": "/elsewhere",
        "reason": "other",
        "blank": "  ",
        "note": "ñ" * 1000,
        **{f"f{i}": "ü" * 300 for i in range(10)},
    }
    kept = kept_staff_values(sent)
    assert set(kept) >= {"reason", "note"}
    assert not set(kept) & {"csrf_token", "password", "new_password", "next", "blank"}
    assert kept["note"] == "ñ" * MAX_KEPT_LENGTH
    assert len(json.dumps(kept)) <= MAX_KEPT_SIZE
    assert kept_staff_values({"kept.note": "hola", "note": "no"}, KEPT_PREFIX) == {"note": "hola"}
