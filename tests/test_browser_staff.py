"""The guard's day in a real browser: Debian's Chromium, driven by Playwright, at a tablet's
size, against the real server on a demo database of this module's own (the demo's staff
accounts sign in), with two visit times today, whatever the weekday, and a booking in one.
The server's clock reads 10:00 at the prison whenever the module runs: the later visit time,
at 16:30, is still ahead all along (the advisory's preview counts the visits to come)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.browsing import PHONE_LOCALE, PHONE_SCREEN, staff_sign_in
from tests.clocked_server import demo_morning
from tests.factories import SMS, make_inmate, make_slot, request_for, visitor
from tests.server import free_port, run_cli, running_server, server_env
from tests.test_browser import describe_violations, serious_violations
from visits.booking import create_booking
from visits.db import Database, make_engine
from visits.inmate import Inmate
from visits.prison import prison_by_code

DNI = "46123456"
SECOND_DNI = "46123457"  # Ana, the second visitor of Rosa's booking
LATER_START = time(16, 30)  # today, still ahead all along (none of the demo's starts)


@dataclass(frozen=True)
class GateDay:
    base: str
    reference: str
    later_day: date  # a day to close, with one booking in English
    later_reference: str
    url: str  # the demo database's, for a test to add to its day


def _visit_today(db: Database, now: datetime) -> tuple[str, date, str]:
    """Two extra visit times today at Quencoro, one over and one ahead (at ``now``, the
    morning), and a booking (made days ago) in the later; a visit time four days on, with a
    booking in English."""
    with db.writing() as s:
        prison = prison_by_code(s, "QUENCORO")
        assert prison is not None
        today = prison.local_date(now)
        make_slot(s, prison, today, start=time(0, 30), hours=1)
        slot = make_slot(s, prison, today, start=LATER_START, hours=1)
        inmate = s.scalar(select(Inmate).where(Inmate.code == "Q10001"))
        booked = create_booking(
            s,
            prison=prison,
            inmate=inmate,
            request=request_for(
                slot,
                visitor(DNI, first_names="Rosa", last_names="Ccori"),
                visitor(SECOND_DNI, first_names="Ana", last_names="Ccori"),
            ),
            now=now - timedelta(days=3),
            secret_key="k",
            sms_policy=SMS,
        )
        elena = visitor("46987654", first_names="Elena", last_names="Ccahua")
        create_booking(  # a second family today, for the health questions at the gate
            s, prison=prison, inmate=s.scalar(select(Inmate).where(Inmate.code == "Q10003")),
            request=request_for(slot, elena), now=now - timedelta(days=3), secret_key="k",
            sms_policy=SMS,
        )  # fmt: skip
        later_day = today + timedelta(days=4)
        later = create_booking(
            s,
            prison=prison,
            inmate=s.scalar(select(Inmate).where(Inmate.code == "Q10002")),
            request=replace(
                request_for(
                    make_slot(s, prison, later_day, start=time(10, 15)),
                    visitor("47123456", first_names="Lucía", last_names="Mamani"),
                    phone="987000111",
                ),
                language="en",
            ),
            now=now,
            secret_key="k",
            sms_policy=SMS,
        )
        return booked.booking.reference, later_day, later.booking.reference


@pytest.fixture(scope="module")
def gate_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateDay]:
    url = f"sqlite:///{tmp_path_factory.mktemp('gate-demo') / 'demo.db'}"
    port = free_port()
    loaded = run_cli("demo", env=server_env(url, port))
    assert loaded.returncode == 0, loaded.stderr
    db = Database(make_engine(url))
    clock = demo_morning()
    try:
        reference, later_day, later_reference = _visit_today(db, clock())
        with running_server(url, port=port, clock=clock) as server:
            yield GateDay(server.base, reference, later_day, later_reference, url)
    finally:
        db.dispose()


@pytest.mark.browser
def test_a_guard_finds_a_visitor_by_dni_checks_them_in_and_prints_the_day(staff, gate_day):
    base, reference = gate_day.base, gate_day.reference
    row_id = f"b-{reference}"
    found: dict[str, list[dict]] = {}

    staff_sign_in(staff, base, "guardia", "/staff/p/QUENCORO/day")
    expect(staff.get_by_role("heading", level=1)).to_contain_text("Visitantes del")
    found["day list"] = serious_violations(staff)

    staff.get_by_label("Número de documento o código de reserva").fill(DNI)
    staff.get_by_role("button", name="Buscar").click()
    expect(staff).to_have_url(re.compile(r"#v-\d+$"))
    line = staff.locator("li:target")  # the visitor's line the search jumped to
    expect(line).to_contain_text("Rosa Ccori")
    expect(line).to_contain_text(DNI)
    row = staff.locator(f"#{row_id}")
    expect(row.locator("li:target")).to_have_count(1)

    row.get_by_role("button", name="Ingresó Rosa Ccori").click()
    expect(staff).to_have_url(re.compile(rf"#{row_id}$"))
    row = staff.locator(f"#{row_id}")
    expect(row.locator(".tag-arrived")).to_have_text("Ingresó")
    expect(row.get_by_role("button", name="Deshacer Rosa Ccori")).to_be_visible()
    found["day list after a check-in"] = serious_violations(staff)

    staff.emulate_media(media="print")
    expect(staff.locator(".gate-tools")).to_be_hidden()
    expect(staff.locator("header.top")).to_be_hidden()
    expect(row.locator(".gate-action").first).to_be_hidden()
    heading = staff.locator(".gate-slot h2").first
    expect(heading.locator(".print-only")).to_be_visible()  # prison and day on every page
    breaks = staff.locator(".gate-slot").evaluate_all(
        "ss => ss.map(s => getComputedStyle(s).breakBefore)"
    )
    assert len(breaks) >= 2
    assert breaks[0] == "auto"
    assert all(b == "page" for b in breaks[1:])  # one page (and heading) per visit time
    assert staff.pdf()[:4] == b"%PDF"  # the print view renders

    staff.emulate_media(media="screen")
    row.get_by_role("button", name="Deshacer Rosa Ccori").click()  # a mistake: not her
    row = staff.locator(f"#{row_id}")
    expect(row.locator(".tag-arrived")).to_have_count(0)
    row.get_by_role("link", name="Negar ingreso… Rosa Ccori").click()
    expect(staff.get_by_role("heading", level=1)).to_have_text("Ingreso denegado")
    found["turn-away form"] = serious_violations(staff)
    staff.get_by_label("Motivo", exact=True).select_option(label="Llegó tarde")
    staff.get_by_role("button", name="Guardar").click()
    expect(staff).to_have_url(re.compile(rf"#{row_id}$"))
    expect(staff.locator(f"#{row_id} .tag-turned_away")).to_have_text("Ingreso denegado")
    expect(staff.locator(f"#{row_id}")).to_contain_text("Llegó tarde")
    staff.locator(f"#{row_id} a").first.click()  # the booking's own page
    expect(staff.get_by_role("heading", level=1)).to_contain_text("Reserva")
    expect(staff.locator("ol.timeline")).to_contain_text("Se negó el ingreso a un visitante")
    expect(staff.locator("ol.timeline")).to_contain_text("guardia")
    found["booking page"] = serious_violations(staff)
    staff.goto(f"{base}/staff")
    found["staff home"] = serious_violations(staff)
    staff.get_by_role("button", name="Cerrar sesión").click()
    expect(staff).to_have_url(re.compile(r"/staff/login$"))
    staff.get_by_label("Nombre de usuario").fill("guardia")
    staff.get_by_role("button", name="Iniciar sesión").click()
    expect(staff.locator(".error-summary")).to_be_visible()
    found["sign-in with errors"] = serious_violations(staff)
    assert not any(found.values()), "serious or critical axe violations:\n" + (
        describe_violations(found)
    )


@pytest.mark.browser
def test_a_guard_searching_the_second_visitors_dni_tabs_to_her_own_came_in(staff, gate_day):
    """Ana is the second visitor of Rosa's booking: the search by her DNI lands on her own
    line, so a guard at the keyboard reaches Ana's "came in" with one Tab, never Rosa's."""
    staff_sign_in(staff, gate_day.base, "guardia", "/staff/p/QUENCORO/day")
    staff.get_by_label("Número de documento o código de reserva").fill(SECOND_DNI)
    staff.get_by_role("button", name="Buscar").click()
    expect(staff).to_have_url(re.compile(r"#v-\d+$"))
    expect(staff.locator("li:target")).to_contain_text(f"Ana Ccori · DNI {SECOND_DNI}")
    staff.keyboard.press("Tab")
    expect(staff.locator(":focus")).to_have_text("Ingresó Ana Ccori")


@pytest.mark.browser
def test_an_admin_closes_a_day_and_its_families_messages_are_in_the_outbox(staff, gate_day):
    base, day = gate_day.base, gate_day.later_day
    found: dict[str, list[dict]] = {}
    staff_sign_in(staff, base, "admin", "/staff/p/QUENCORO/closures")
    expect(staff.get_by_role("heading", level=1)).to_have_text("Cierres")
    found["closures"] = serious_violations(staff)

    staff.get_by_label("Día", exact=True).fill(day.isoformat())
    staff.get_by_role("button", name="Ver sus horarios").click()
    expect(staff.get_by_role("group")).to_contain_text("10:15")
    expect(staff.get_by_label("Todo el día")).to_be_checked()
    staff.get_by_label("Motivo").fill("Corte de agua en el penal")
    found["closures with a day"] = serious_violations(staff)
    staff.get_by_role("button", name="Ver las reservas que cancela").click()

    expect(staff.get_by_role("heading", level=1)).to_have_text("Revisa el cierre")
    expect(staff.get_by_role("heading", level=2)).to_have_text("Se cancelará 1 reserva")
    shown = gate_day.later_reference[:4] + "-" + gate_day.later_reference[4:]
    expect(staff.locator("table")).to_contain_text(shown)
    expect(staff.locator("table")).to_contain_text("Lucía Mamani")
    found["closure preview"] = serious_violations(staff)
    # Going back keeps what was typed (a form, not a link: no script on these pages).
    staff.get_by_role("button", name="Volver sin cambiar nada").click()
    expect(staff.get_by_label("Motivo")).to_have_value("Corte de agua en el penal")
    expect(staff.get_by_label("Todo el día")).to_be_checked()
    staff.get_by_role("button", name="Ver las reservas que cancela").click()
    staff.get_by_role("button", name="Cerrar y cancelar 1 reserva").click()

    expect(staff.get_by_role("status")).to_contain_text("Se canceló 1 reserva")
    expect(staff.locator("table")).to_contain_text("Corte de agua en el penal")

    staff.goto(f"{base}/staff/messages?reference={gate_day.later_reference}")
    message = staff.locator("li.message").filter(has_text="Cancelación: visitas cerradas")
    expect(message).to_have_count(1)
    expect(message).to_contain_text("+51987000111")
    expect(message.locator(".body")).to_contain_text("is cancelled")  # the family's language
    found["outbox"] = serious_violations(staff)
    assert not any(found.values()), "serious or critical axe violations:\n" + (
        describe_violations(found)
    )


# The ids of the visible text fields, lists and text areas under 44 px tall (the family
# pages' 48 px target, less the margin a zoomed page loses).
SMALL_FIELDS = """() => [...document.querySelectorAll(
    'input:not([type=hidden]):not([type=radio]):not([type=checkbox]):not([type=file]),'
    + 'select, textarea')]
  .filter(e => e.offsetParent !== null && e.getBoundingClientRect().height < 44)
  .map(e => e.id || e.name)"""


@pytest.mark.browser
def test_the_administrators_pages_have_no_serious_accessibility_problems(staff, gate_day):
    """Every administrator's page, and each one with its errors showing, through axe."""
    base = gate_day.base
    found: dict[str, list[dict]] = {}
    small: dict[str, list[str]] = {}  # fields a finger cannot hit, by page
    staff_sign_in(staff, base, "admin", "/staff/p/QUENCORO/schedule")
    for path, heading in (
        ("/staff/p/QUENCORO/schedule", "Horarios y reglas"),
        ("/staff/p/QUENCORO/suspensions", "Suspensiones"),
        ("/staff/p/QUENCORO/roster", "Padrón"),
        ("/staff/p/QUENCORO/accounts", "Cuentas del personal"),
        ("/staff/p/QUENCORO/broadcast", "Mensaje a las familias"),
        ("/staff/p/QUENCORO/reports", "Reportes"),
        ("/staff/password", "Tu contraseña"),
    ):
        staff.goto(base + path)
        expect(staff.get_by_role("heading", level=1)).to_have_text(heading)
        found[path] = serious_violations(staff)
        small[path] = staff.evaluate(SMALL_FIELDS)

    # Forms sent wrong: every error summary and field error through axe too.
    staff.goto(base + "/staff/p/QUENCORO/schedule")
    staff.get_by_label("Visitantes por reserva, como máximo").fill("0")
    staff.get_by_role("button", name="Ver el efecto").first.click()
    expect(staff.locator(".error-summary")).to_be_visible()
    found["schedule with errors"] = serious_violations(staff)
    staff.goto(base + "/staff/p/QUENCORO/schedule")
    staff.locator("#add-capacity").fill("30")
    staff.locator("#add-start").fill("18:00")
    staff.locator("#add-end").fill("19:00")
    staff.get_by_role("button", name="Ver el efecto").last.click()
    expect(staff.get_by_role("heading", level=1)).to_have_text("Revisa el cambio")
    found["schedule preview"] = serious_violations(staff)
    # Going back keeps what was typed (a form, not a link: no script on these pages).
    staff.get_by_role("button", name="Volver sin cambiar nada").click()
    expect(staff.locator("#add-capacity")).to_have_value("30")
    expect(staff.locator("#add-start")).to_have_value("18:00")
    expect(staff.locator("#add-end")).to_have_value("19:00")
    staff.goto(base + "/staff/p/QUENCORO/suspensions")
    staff.get_by_role("button", name="Ver las reservas que cancela").first.click()
    expect(staff.locator(".error-summary")).to_be_visible()
    found["suspensions with errors"] = serious_violations(staff)
    staff.get_by_label("Código del interno").fill("Q10003")  # Elena's visit, today
    staff.locator("#inmate-until").fill(gate_day.later_day.isoformat())
    staff.locator("#inmate-reason").fill("Pelea en el pabellón")
    staff.get_by_role("button", name="Ver las reservas que cancela").first.click()
    expect(staff.get_by_role("heading", level=1)).to_have_text("Revisa el cambio")
    expect(staff.locator("main")).to_contain_text("Elena Ccahua")
    found["suspension preview"] = serious_violations(staff)
    staff.get_by_role("button", name="Volver sin cambiar nada").click()
    expect(staff.get_by_label("Código del interno")).to_have_value("Q10003")
    staff.goto(base + "/staff/p/QUENCORO/roster")
    staff.locator("#file").set_input_files(
        files=[{"name": "padron.csv", "mimeType": "text/csv", "buffer": b"codigo\nQ1\n"}]
    )
    staff.get_by_role("button", name="Importar").click()
    expect(staff.locator("table")).to_contain_text("falta esta columna obligatoria")
    found["roster refused"] = serious_violations(staff)
    staff.goto(base + "/staff/p/QUENCORO/accounts")
    staff.get_by_role("button", name="Agregar la cuenta").click()
    expect(staff.locator(".error-summary")).to_be_visible()
    found["accounts with errors"] = serious_violations(staff)
    staff.goto(base + "/staff/p/QUENCORO/broadcast")
    staff.get_by_role("button", name="Ver quién lo recibe").click()
    expect(staff.locator(".error-summary")).to_be_visible()
    found["broadcast with errors"] = serious_violations(staff)
    day = gate_day.later_day.isoformat()
    staff.get_by_label("Desde").fill(day)
    staff.get_by_label("Hasta").fill(day)
    staff.get_by_label("Texto en español").fill("Puerta 2.\nTraiga su DNI.")
    staff.get_by_role("button", name="Ver quién lo recibe").click()
    expect(staff.get_by_role("heading", level=1)).to_have_text("Revisa el mensaje")
    found["broadcast preview"] = serious_violations(staff)
    staff.get_by_role("button", name="Volver sin enviar nada").click()
    expect(staff.get_by_label("Hasta")).to_have_value(day)
    expect(staff.get_by_label("Texto en español")).to_have_value("Puerta 2.\nTraiga su DNI.")
    year = gate_day.later_day - timedelta(days=365)
    staff.goto(f"{base}/staff/p/QUENCORO/reports?first={year}&last={gate_day.later_day}")
    expect(staff.locator("table").first).to_be_visible()
    found["reports over a year"] = serious_violations(staff)
    staff.goto(base + "/staff/p/QUENCORO/accounts")
    staff.get_by_label("Nueva contraseña para guardia").fill("corta")
    staff.get_by_role("button", name="Guardar contraseña").first.click()
    expect(staff.locator(".error-summary")).to_be_visible()
    found["account password with errors"] = serious_violations(staff)
    staff.goto(base + "/staff/password")
    staff.get_by_role("button", name="Cambiar la contraseña").click()
    expect(staff.locator(".error-summary")).to_be_visible()
    found["own password with errors"] = serious_violations(staff)
    assert not any(found.values()), "serious or critical axe violations:\n" + (
        describe_violations(found)
    )
    assert {page: ids for page, ids in small.items() if ids} == {}


@pytest.mark.browser
def test_health_staff_issue_an_advisory_a_family_sees_the_measure_and_the_guard_the_flag(
    staff, phone, gate_day
):
    """The issue's whole path in Chromium: the count before confirming, the family's slots
    page, the guard's list; every health page through axe."""
    base = gate_day.base
    found: dict[str, list[dict]] = {}
    staff_sign_in(staff, base, "salud", "/staff/p/QUENCORO/health")
    expect(staff.get_by_role("heading", level=1)).to_have_text("Alertas de salud")
    found["advisories"] = serious_violations(staff)
    staff.get_by_role("button", name="Ver qué cambia").click()  # nothing chosen
    expect(staff.locator(".error-summary")).to_be_visible()
    found["advisories with errors"] = serious_violations(staff)

    staff.get_by_role("radio", name="Un interno").check()
    staff.get_by_label("Código del interno").fill("Q10001")
    kind = staff.get_by_label("Tipo", exact=True)
    kind.select_option(label="TB pulmonar sensible a medicamentos")
    staff.get_by_label("Mascarilla N95 (respirador) obligatoria para los visitantes").check()
    staff.get_by_label("Solo visita sin contacto").check()
    staff.get_by_label("Notas internas").fill("Caso confirmado, celda 4")
    staff.get_by_role("button", name="Ver qué cambia").click()
    expect(staff.get_by_role("heading", level=1)).to_have_text("Revisa la alerta")
    expect(staff.locator("#affected")).to_have_text("1 reserva afectada")  # Rosa's, today
    shown = gate_day.reference[:4] + "-" + gate_day.reference[4:]
    expect(staff.locator("table")).to_contain_text(shown)
    found["advisory preview"] = serious_violations(staff)
    staff.get_by_role("button", name="Volver sin cambiar nada").click()  # keeps what was typed
    expect(staff.get_by_role("radio", name="Un interno")).to_be_checked()
    expect(staff.get_by_label("Código del interno")).to_have_value("Q10001")
    expect(kind).to_have_value("tb_susceptible")
    expect(staff.get_by_label("Solo visita sin contacto")).to_be_checked()
    expect(staff.get_by_label("Notas internas")).to_have_value("Caso confirmado, celda 4")
    staff.get_by_role("button", name="Ver qué cambia").click()
    staff.get_by_role("button", name="Emitir la alerta").click()
    expect(staff.get_by_role("status")).to_contain_text("1 familia conoce las medidas por SMS")
    expect(staff.locator(".details")).to_contain_text("Caso confirmado, celda 4")
    found["advisory"] = serious_violations(staff)

    family = phone(javascript=True)  # axe runs in the page
    family.goto(f"{base}/p/QUENCORO")
    family.get_by_label("Código de la persona que visitas").fill("Q10001")
    family.get_by_label("Su primer apellido").fill("Yupanqui")
    family.get_by_role("button", name="Continuar").click()
    notice = family.locator(".notice-health")
    expect(notice).to_contain_text("Hay una medida de salud para las visitas a esta persona")
    expect(notice).to_contain_text("mascarilla N95")
    expect(notice).to_contain_text("sin contacto físico")
    expect(family.locator("main")).not_to_contain_text("TB")  # never the diagnosis
    found["family slots page"] = serious_violations(family)

    staff.get_by_role("button", name="Cerrar sesión").click()
    staff_sign_in(staff, base, "guardia", "/staff/p/QUENCORO/day")
    row = staff.locator(f"#b-{gate_day.reference}")
    expect(row.locator(".tag-health")).to_have_text(["Mascarilla N95", "Sin contacto"])
    expect(staff.locator("main")).not_to_contain_text("Caso confirmado")
    staff.get_by_role("link", name="Preguntas de salud Elena Ccahua").click()
    expect(staff.get_by_role("heading", level=1)).to_have_text("Preguntas de salud")
    found["gate screening"] = serious_violations(staff)
    staff.get_by_label("Sudor por las noches").check()
    staff.get_by_role("button", name="Guardar las respuestas").click()
    expect(staff.get_by_role("status")).to_contain_text("No ingresa hoy")
    found["gate screening outcome"] = serious_violations(staff)
    assert not any(found.values()), "serious or critical axe violations:\n" + (
        describe_violations(found)
    )


@pytest.mark.browser
def test_every_printed_page_of_a_visit_time_says_its_time_prison_and_day_in_black(staff, gate_day):
    """A printed list runs over many pages per visit time, and pages come loose: the table's
    heading row, which the browser repeats on each page, names the time, prison and day. Its
    tags (status, gate, health) are black on white: a browser prints no backgrounds, and
    their white words would come out faint."""
    base, reference = gate_day.base, gate_day.reference
    staff_sign_in(staff, base, "guardia", "/staff/p/QUENCORO/day")
    table = staff.locator(f"table:has(#b-{reference})")
    time_shown = table.locator("xpath=ancestor::section//h2").inner_text().strip()
    staff.emulate_media(media="print")
    head = table.locator("thead")
    assert head.evaluate("h => getComputedStyle(h).display") == "table-header-group"
    first_row = head.locator("tr").first
    expect(first_row).to_be_visible()
    expect(first_row).to_contain_text(time_shown)
    expect(first_row).to_contain_text("Penal de Cusco (Quencoro)")
    expect(first_row).to_contain_text(re.compile(r"de \d{4}$"))  # the day, with its year
    tag = staff.locator(f"#b-{reference} .tag").first
    colours = tag.evaluate("t => [getComputedStyle(t).color, getComputedStyle(t).backgroundColor]")
    assert colours == ["rgb(0, 0, 0)", "rgba(0, 0, 0, 0)"]
    staff.emulate_media(media="screen")
    expect(first_row).to_be_hidden()


@pytest.mark.browser
def test_other_staff_tables_keep_their_column_headers_on_a_phone(browser, gate_day):
    """Only the day's list stacks its cells on a phone (they say what they are): a report's
    figures without their headers would be numbers nobody can read."""
    context = browser.new_context(locale=PHONE_LOCALE, viewport=PHONE_SCREEN)
    try:
        phone = context.new_page()
        staff_sign_in(phone, gate_day.base, "admin", "/staff/p/QUENCORO/reports")
        headers = phone.locator("table.gate-list th[scope=col]")
        assert headers.count() > 2
        shown = headers.evaluate_all(
            """hs => hs.map(h => {
                h.scrollIntoView({block: "center", inline: "center"});
                const box = h.getBoundingClientRect();
                const at = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
                return h.contains(at);
            })"""
        )  # what a finger on the header's middle touches (a header clipped away is not there)
        assert all(shown), shown
    finally:
        context.close()


@pytest.mark.browser
def test_a_guard_on_a_phone_reads_the_days_list_without_scrolling_sideways(browser, gate_day):
    """A guard at the gate with only a phone (360×740): a visit time with a family of long
    names and documents, one let in already (its tag and "Deshacer"), one to come in (the
    buttons and links), the family's "coming" tag from the SMS, and a person visited with long
    names: the list reflows to the screen, nothing scrolls sideways. (Run last in the module:
    it adds that visit time to today.)"""
    from visits.booking import Booking
    from visits.gate import Actor, record_arrival

    surnames = "Huamantica Quispecondori de la Cruz"
    db = Database(make_engine(gate_day.url))
    now = demo_morning()()
    try:
        with db.writing() as s:
            prison = prison_by_code(s, "QUENCORO")
            assert prison is not None
            inmate = make_inmate(s, prison, "Q20000000000001", surname="Quispecondori")
            inmate.first_names = "Maximiliano Wenceslao Bartolomé"
            inmate.last_name_2 = "Huamanttupa-Ccorimanya"
            slot = make_slot(s, prison, prison.local_date(now), start=time(12, 45), hours=1)
            party = [
                visitor(dni, first_names=first, last_names=surnames, doc_type=kind)
                for dni, first, kind in (
                    ("001234567", "María de los Ángeles Guadalupe", "ce"),
                    ("46123499", "Juana Evangelina Maximiliana", "dni"),
                )
            ]
            booked = create_booking(
                s, prison=prison, inmate=inmate, request=request_for(slot, *party),
                now=now - timedelta(days=3), secret_key="k", sms_policy=SMS,
            ).booking  # fmt: skip
            s.get(Booking, booked.id).family_confirmed_at = now - timedelta(days=1)
            record_arrival(s, prison=prison, visitor_id=booked.visitors[1].id,
                           actor=Actor("staff:guardia", ""), now=now)  # fmt: skip
            reference = booked.reference
    finally:
        db.dispose()
    context = browser.new_context(locale=PHONE_LOCALE, viewport=PHONE_SCREEN)
    try:
        phone = context.new_page()
        staff_sign_in(phone, gate_day.base, "guardia", "/staff/p/QUENCORO/day")
        row = phone.locator(f"#b-{reference}")
        expect(row.locator(".tag-arrived")).to_have_text("Ingresó")
        expect(row).to_contain_text("María de los Ángeles Guadalupe")
        expect(row.get_by_role("button", name="Ingresó María")).to_be_visible()
        widths = phone.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], f"the list is {widths[0]} px wide on a {widths[1]} px screen"
        _still_a_table_to_screen_readers(phone, row)
        assert not serious_violations(phone)
    finally:
        context.close()


def _still_a_table_to_screen_readers(phone, row) -> None:
    """The list's cells stack as blocks on a phone, and a browser may then stop exposing it as
    a table (WebKit does); explicit roles keep it one. Read from the browser's own
    accessibility tree (Chromium's, through the DevTools protocol): the row is a row of three
    cells, under the three column headers the page shows; and every part of the table shown
    as a block says its role itself, so no browser has to infer it from a display that is no
    longer a table's."""
    assert row.evaluate("r => getComputedStyle(r).display") == "block"
    cdp = phone.context.new_cdp_session(phone)
    nodes = [n for n in cdp.send("Accessibility.getFullAXTree")["nodes"] if not n.get("ignored")]
    by_id = {n["nodeId"]: n for n in nodes}
    by_element = {n.get("backendDOMNodeId"): n for n in nodes}

    def exposed(expression: str) -> dict:  # the accessibility node of the element named
        found = cdp.send("Runtime.evaluate", {"expression": expression})["result"]
        element = cdp.send("DOM.describeNode", {"objectId": found["objectId"]})["node"]
        return by_element[element["backendNodeId"]]

    in_row = exposed(f"document.getElementById({row.get_attribute('id')!r})")
    assert in_row["role"]["value"] == "row"
    cells = [by_id[c]["role"]["value"] for c in in_row.get("childIds", []) if c in by_id]
    assert cells == ["cell"] * 3
    table = f"document.getElementById({row.get_attribute('id')!r}).closest('table')"
    assert exposed(table)["role"]["value"] == "table"
    for i in range(3):
        header = exposed(f"{table}.querySelectorAll('th[scope=col]')[{i}]")
        assert header["role"]["value"] == "columnheader"
    unsaid = row.locator("xpath=ancestor::table").evaluate(
        """t => [t, ...t.querySelectorAll('thead, tbody, tr, th, td')]
            .filter(e => getComputedStyle(e).display === 'block' && !e.getAttribute('role'))
            .map(e => e.tagName)"""
    )
    assert unsaid == [], f"shown as blocks without their role: {unsaid}"
