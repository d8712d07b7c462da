"""The family pages in a real browser, as a family's cheap Android phone sees them.

Debian's Chromium, driven by Playwright, against the real server process on the demo data
(``demo_server``): a 360×740 screen, the es-PE locale, and JavaScript off wherever a family
may have it off. The server runs on real time, so nothing here assumes a weekday: every slot,
seat count and reference is read from the pages. Bookings last for the whole session, so
each test visits its own inmate with its own visitors' document numbers.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Locator, Page, Response, expect

PRISON = "QUENCORO"
PRISON_LINK = re.compile("Quencoro")
REFERENCE = re.compile(r"^[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}$")
PHONE_NUMBER = "987654321"
PAGE_BUDGET = 50 * 1024  # bytes of document + stylesheet + script per page
WEIGHED_TYPES = ("document", "stylesheet", "script")
BLOCKING_IMPACTS = {"serious", "critical"}

# Spanish, exactly as visits/locale/es/LC_MESSAGES/messages.po says it.
SEX_FOR_GROUP = {
    "Día de visita para mujeres": "F",
    "Día de visita para varones": "M",
    "Para todos los visitantes": None,
}
SEX_LABEL = {"F": "Mujer", "M": "Hombre"}
OTHER_SEX = {"F": "M", "M": "F"}
NOT_IDENTIFIED = (
    "No encontramos a la persona con esos datos. "
    "Revisa el código y el apellido o la fecha de nacimiento."
)
INVALID_DNI = "El DNI tiene exactamente 8 números, por ejemplo 45678912."
INVALID_NAME = "Usa solo letras. También puedes usar espacios, guiones (-) y apóstrofos (')."
SCRIPT_NAME = '"><script>alert(1)</script>'  # tries to break out of the value attribute


# --- Browser ---------------------------------------------------------------------------------


# --- People ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Visitor:
    first_names: str
    last_names: str
    doc_number: str  # a DNI: 8 digits
    birth_date: str  # dd/mm/yyyy
    relationship: str
    sex: str | None  # asked only on women's and men's days

    @property
    def full_name(self) -> str:
        return f"{self.first_names} {self.last_names}"


def adult(sex: str | None, doc_number: str) -> Visitor:
    first = "Juan" if sex == "M" else "María Elena"
    return Visitor(first, "Quispe Huamán", doc_number, "15/03/1985", "partner", sex)


def child(sex: str | None, doc_number: str) -> Visitor:
    """Eight or nine years old whatever today is."""
    first = "Luis" if sex == "M" else "Rosa"
    born = f"15/06/{date.today().year - 9}"
    return Visitor(first, "Quispe Huamán", doc_number, born, "child", sex)


# --- Pages -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenSlot:
    slot_id: str
    group: str  # the visitor group's label, e.g. "Día de visita para mujeres"
    seats_left: int

    @property
    def adult_sex(self) -> str | None:
        return SEX_FOR_GROUP[self.group]


def expect_language(page: Page, lang: str) -> None:
    expect(page.locator("html")).to_have_attribute("lang", lang)


def expect_heading(page: Page, text: str) -> None:
    expect(page.locator("h1")).to_have_text(text)


def seats_in(text: str) -> int:
    found = re.search(r"quedan? (\d+) lugar", text)
    assert found, f"no seat count in {text!r}"
    return int(found.group(1))


def identify(page: Page, base: str, code: str, surname: str) -> None:
    page.goto(f"{base}/p/{PRISON}")
    page.get_by_label("Código de la persona que visitas").fill(code)
    page.get_by_label("Su primer apellido").fill(surname)
    page.get_by_role("button", name="Continuar").click()


def first_open_slot(page: Page) -> OpenSlot:
    """The first slot the slots page offers as a link."""
    expect_heading(page, "Elige día y horario")
    link = page.locator("a.slot-link").first
    expect(link).to_be_visible()
    href = link.get_attribute("href") or ""
    (slot_id,) = parse_qs(urlsplit(href).query)["slot"]
    group = link.locator(".group").inner_text().strip()
    return OpenSlot(slot_id, group, seats_in(link.locator(".seats").inner_text()))


def slot_link(page: Page, slot_id: str) -> Locator:
    return page.locator(f'a.slot-link[href$="slot={slot_id}"]')


def open_booking_form(page: Page, base: str, code: str, surname: str) -> OpenSlot:
    """Identify the person, then open the booking form of the first slot offered."""
    identify(page, base, code, surname)
    slot = first_open_slot(page)
    slot_link(page, slot.slot_id).click()
    expect_heading(page, "¿Quiénes van a visitar?")
    return slot


def seats_left(page: Page, base: str, slot_id: str) -> int:
    """What the slots page says now (the browser must have identified an inmate)."""
    page.goto(f"{base}/p/{PRISON}/slots")
    return seats_in(slot_link(page, slot_id).locator(".seats").inner_text())


def visitor_group(page: Page, number: int) -> Locator:
    """The fieldset of visitor ``number`` (1-based), found by its legend."""
    return page.get_by_role("group", name=re.compile(rf"^Visitante {number}\b"))


def fill_visitor(page: Page, number: int, visitor: Visitor) -> None:
    group = visitor_group(page, number)
    group.get_by_label("Nombres", exact=True).fill(visitor.first_names)
    group.get_by_label("Apellidos", exact=True).fill(visitor.last_names)
    group.get_by_label("Documento de identidad", exact=True).select_option("dni")
    group.get_by_label("Número de documento", exact=True).fill(visitor.doc_number)
    group.get_by_label("Fecha de nacimiento", exact=True).fill(visitor.birth_date)
    relationship = group.get_by_label("Relación con la persona que visitas", exact=True)
    relationship.select_option(visitor.relationship)
    if visitor.sex:
        group.get_by_role("radio", name=SEX_LABEL[visitor.sex], exact=True).check()


def open_extra_visitor(page: Page, number: int) -> None:
    """Unfold the ``<details>`` of an optional visitor by tapping its summary."""
    details = page.locator("details.more", has=page.get_by_text(f"Agregar visitante {number}"))
    expect(details).not_to_have_attribute("open", "")
    details.locator("summary").click()
    expect(details).to_have_attribute("open", "")


def fill_phone(page: Page) -> None:
    page.get_by_label("Celular", exact=True).fill(PHONE_NUMBER)


def review(page: Page) -> None:
    page.get_by_role("button", name="Revisar la reserva").click()


def confirm(page: Page) -> None:
    expect_heading(page, "Revisa y confirma")
    page.get_by_role("button", name="Confirmar la reserva").click()


def booked_reference(page: Page, base: str) -> tuple[str, str]:
    """The reference and manage token of the booking page the browser is on."""
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/b/[^/?]+\?"))
    reference = page.locator(".reference strong").inner_text().strip()
    assert REFERENCE.match(reference), reference
    url = urlsplit(page.url)
    assert url.path == f"/b/{reference}"
    (token,) = parse_qs(url.query)["token"]
    return reference, token


def hidden_fields(form: Locator) -> dict[str, str]:
    inputs = form.locator('input[type="hidden"]')
    return {i.get_attribute("name") or "": i.get_attribute("value") or "" for i in inputs.all()}


def squashed(text: str) -> str:
    return " ".join(text.split())


def unfolded_ical(text: str) -> str:
    return text.replace("\r\n ", "").replace("\n ", "")


# --- 1. The whole journey --------------------------------------------------------------------


@pytest.mark.browser
def test_a_family_books_downloads_and_cancels_in_spanish_without_javascript(phone, demo_server):
    base = demo_server
    page = phone(javascript=False)

    page.goto(f"{base}/")
    expect_language(page, "es")
    expect_heading(page, "Reserva una visita")
    page.get_by_role("link", name=PRISON_LINK).click()

    expect(page).to_have_url(f"{base}/p/{PRISON}")
    expect_language(page, "es")
    expect_heading(page, "¿A quién visitas?")
    page.get_by_label("Código de la persona que visitas").fill("Q10001")
    page.get_by_label("Su primer apellido").fill("Yupanqui")
    page.get_by_role("button", name="Continuar").click()

    expect(page).to_have_url(f"{base}/p/{PRISON}/slots")
    expect_language(page, "es")
    expect(page.locator("main")).to_contain_text("Vas a visitar a Carlos Yupanqui.")
    slot = first_open_slot(page)
    slot_link(page, slot.slot_id).click()

    expect(page).to_have_url(f"{base}/p/{PRISON}/book?slot={slot.slot_id}")
    expect_language(page, "es")
    expect_heading(page, "¿Quiénes van a visitar?")
    expect(page.locator(".summary-box")).to_contain_text(slot.group)
    grown_up = adult(slot.adult_sex, "41000001")
    kid = child(OTHER_SEX.get(slot.adult_sex or ""), "41000002")  # children of either sex
    fill_visitor(page, 1, grown_up)
    open_extra_visitor(page, 2)
    fill_visitor(page, 2, kid)
    fill_phone(page)
    review(page)

    expect_language(page, "es")
    expect_heading(page, "Revisa y confirma")
    for visitor in (grown_up, kid):
        expect(page.locator("main")).to_contain_text(visitor.full_name)
    confirm(page)

    reference, token = booked_reference(page, base)
    booking_url = page.url
    assert parse_qs(urlsplit(booking_url).query)["done"] == ["booked"]
    expect_language(page, "es")
    expect_heading(page, "Tu visita está reservada")
    expect(page.locator(".details")).to_contain_text("Confirmada")
    expect(page.locator(".details")).to_contain_text("Carlos Yupanqui")
    for visitor in (grown_up, kid):
        expect(page.locator(".details")).to_contain_text(visitor.full_name)
    assert seats_left(page, base, slot.slot_id) == slot.seats_left - 2

    page.goto(booking_url)
    calendar_link = page.get_by_role("link", name="Agregar a mi calendario")
    with page.expect_download() as download_info:
        calendar_link.click()
    download = download_info.value
    assert download.suggested_filename == f"visita-{reference}.ics"
    ics = unfolded_ical(Path(download.path()).read_text(encoding="utf-8"))
    assert "BEGIN:VCALENDAR" in ics
    assert "BEGIN:VEVENT" in ics
    assert reference in ics
    calendar = page.request.get(base + (calendar_link.get_attribute("href") or ""))
    assert calendar.ok
    assert calendar.headers["content-type"].startswith("text/calendar")
    assert reference in unfolded_ical(calendar.text())

    page.get_by_role("link", name="Cancelar la visita").click()
    expect(page).to_have_url(re.compile(rf"/b/{reference}/cancel\?token="))
    expect_language(page, "es")
    expect_heading(page, "¿Cancelar la visita?")
    page.get_by_role("button", name="Sí, cancelar la visita").click()

    expect(page).to_have_url(re.compile(rf"/b/{reference}\?.*done=cancelled"))
    assert booked_reference(page, base) == (reference, token)
    expect_language(page, "es")
    expect_heading(page, "Tu visita fue cancelada")
    expect(page.locator(".details .tag")).to_have_text("Cancelada")
    expect(page.get_by_role("link", name="Cancelar la visita")).to_have_count(0)
    assert seats_left(page, base, slot.slot_id) == slot.seats_left


# --- 2. Errors -------------------------------------------------------------------------------


@pytest.mark.browser
def test_a_wrong_code_or_surname_gets_one_neutral_message_and_no_name(phone, demo_server):
    """A real code with the wrong surname reads exactly like a code that does not exist."""
    base = demo_server
    page = phone(javascript=False)
    messages = []
    for code in ("Q10002", "Q99999"):  # Q10002 is José Luis Puma Auccapuma
        identify(page, base, code, "Quispe")
        expect(page).to_have_url(f"{base}/p/{PRISON}")
        expect_language(page, "es")
        summary = page.locator(".error-summary li")
        expect(summary).to_have_count(1)
        named, _, said = summary.inner_text().strip().partition(": ")
        assert named == "Código de la persona que visitas"  # the summary names the field
        messages.append(said)
        shown = {squashed(e) for e in page.locator(".field-error").all_inner_texts()}
        assert shown <= {f"Error: {messages[-1]}"}, shown
        html = page.content()
        for part in ("José Luis", "Puma", "Auccapuma"):
            assert part not in html
    assert messages == [NOT_IDENTIFIED, NOT_IDENTIFIED]


@pytest.mark.browser
@pytest.mark.parametrize("javascript", [False, True], ids=["js-off", "js-on"])
def test_a_refused_booking_form_keeps_what_was_typed_and_escapes_it(phone, demo_server, javascript):
    base = demo_server
    page = phone(javascript=javascript)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    slot = open_booking_form(page, base, "Q10003", "Hancco")

    visitor = adult(slot.adult_sex, "1234")
    fill_visitor(page, 1, visitor)
    first_names = visitor_group(page, 1).get_by_label("Nombres", exact=True)
    first_names.fill(SCRIPT_NAME)
    fill_phone(page)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        review(page)

    assert answer.value.status == 422
    expect_heading(page, "¿Quiénes van a visitar?")
    assert page.locator("script").count() == 0
    assert dialogs == []
    raw = answer.value.text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    assert "<script>" not in raw
    expect(page.locator(".error-summary")).to_contain_text(INVALID_DNI)
    expect(page.locator(".error-summary")).to_contain_text(INVALID_NAME)
    for name, value, error in (
        ("visitors.0.doc_number", "1234", INVALID_DNI),
        ("visitors.0.first_names", SCRIPT_NAME, INVALID_NAME),
    ):
        field_input = page.locator(f'input[id="{name}"]')
        expect(field_input).to_have_value(value)
        expect(field_input).to_have_attribute("aria-invalid", "true")
        expect(field_input).to_have_attribute("aria-describedby", re.compile(f"{name}-error"))
        beside = page.locator(".field", has=field_input).locator(f'[id="{name}-error"]')
        expect(beside).to_have_text(f"Error: {error}")
    for name, value in (
        ("visitors.0.last_names", visitor.last_names),
        ("visitors.0.birth_date", visitor.birth_date),
        ("contact_phone", PHONE_NUMBER),
    ):
        expect(page.locator(f'input[id="{name}"]')).to_have_value(value)
    expect(page.locator('select[id="visitors.0.relationship"]')).to_have_value("partner")

    # Switching language there and back keeps it all (what was corrected meanwhile too), and
    # checks nothing: no refusal said, nothing booked.
    page.locator('input[id="visitors.0.doc_number"]').fill("45670001")
    page.locator("header").get_by_role("button", name="English").click()
    expect_language(page, "en")
    expect_heading(page, "Who will visit?")
    expect(page.locator(".error-summary")).to_have_count(0)
    page.locator("header").get_by_role("button", name="Español").click()
    expect_language(page, "es")
    expect_heading(page, "¿Quiénes van a visitar?")
    for name, value in (
        ("visitors.0.first_names", SCRIPT_NAME),
        ("visitors.0.doc_number", "45670001"),
        ("visitors.0.last_names", visitor.last_names),
        ("visitors.0.birth_date", visitor.birth_date),
        ("contact_phone", PHONE_NUMBER),
    ):
        expect(page.locator(f'input[id="{name}"]')).to_have_value(value)
    expect(page.locator('select[id="visitors.0.relationship"]')).to_have_value("partner")
    assert page.locator("script").count() == 0
    assert dialogs == []
    assert seats_left(page, base, slot.slot_id) == slot.seats_left


@pytest.mark.browser
def test_a_form_sent_after_the_session_ended_comes_back_filled_in(phone, demo_server):
    """The cookie is gone when the family sends the booking form (the session expired, the
    phone cleared it): they identify the person again and get the form back as they left it,
    ticks included, to check and send. What they typed never shows in an address, and
    switching language on the way (there and back) keeps it all."""
    base = demo_server
    page = phone(javascript=False)
    slot = open_booking_form(page, base, "Q10010", "Salas")
    grown_up = adult(slot.adult_sex, "47000001")
    kid = child(OTHER_SEX.get(slot.adult_sex or ""), "47000002")
    fill_visitor(page, 1, grown_up)
    visitor_group(page, 1).get_by_label("Tos por 15 días o más").check()
    open_extra_visitor(page, 2)
    fill_visitor(page, 2, kid)
    visitor_group(page, 2).get_by_label("Fiebre en las últimas dos semanas").check()
    fill_phone(page)

    page.context.clear_cookies()
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        review(page)
    assert answer.value.status == 403
    expect_heading(page, "¿A quién visitas?")
    expect(page.locator(".error-summary")).to_contain_text("Pasó mucho tiempo")
    expect(page.locator("p.notice")).to_be_visible()
    page.get_by_label("Código de la persona que visitas").fill("Q10010")
    page.locator("header").get_by_role("button", name="English").click()
    expect_language(page, "en")
    expect_heading(page, "Who do you visit?")
    expect(page.locator(".error-summary")).to_have_count(0)  # nobody was looked for
    expect(page.locator("p.notice")).to_contain_text("We kept what you typed")
    expect(page.get_by_label("Code of the person you visit")).to_have_value("Q10010")
    page.locator("header").get_by_role("button", name="Español").click()
    expect_language(page, "es")
    expect(page.locator("p.notice")).to_be_visible()
    page.get_by_label("Su primer apellido").fill("Salas")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Continuar").click()
    assert answer.value.status == 200

    expect_heading(page, "¿Quiénes van a visitar?")
    assert page.url == f"{base}/p/{PRISON}"  # the identification's answer: no values in it
    for number, visitor in ((1, grown_up), (2, kid)):
        group = visitor_group(page, number)
        expect(group.get_by_label("Nombres", exact=True)).to_have_value(visitor.first_names)
        expect(group.get_by_label("Apellidos", exact=True)).to_have_value(visitor.last_names)
        number_field = group.get_by_label("Número de documento", exact=True)
        expect(number_field).to_have_value(visitor.doc_number)
        birth = group.get_by_label("Fecha de nacimiento", exact=True)
        expect(birth).to_have_value(visitor.birth_date)
        relationship = group.get_by_label("Relación con la persona que visitas", exact=True)
        expect(relationship).to_have_value(visitor.relationship)
        if visitor.sex:
            radio = group.get_by_role("radio", name=SEX_LABEL[visitor.sex], exact=True)
            expect(radio).to_be_checked()
    expect(visitor_group(page, 1).get_by_label("Tos por 15 días o más")).to_be_checked()
    expect(
        visitor_group(page, 1).get_by_label("Fiebre en las últimas dos semanas")
    ).not_to_be_checked()
    expect(visitor_group(page, 2).get_by_label("Fiebre en las últimas dos semanas")).to_be_checked()
    expect(page.get_by_label("Celular", exact=True)).to_have_value(PHONE_NUMBER)
    other_tab = page.context.new_page()  # the same phone: nothing was sent for them
    assert seats_left(other_tab, base, slot.slot_id) == slot.seats_left
    review(page)
    expect_heading(page, "Revisa y confirma")
    for visitor in (grown_up, kid):
        expect(page.locator("main")).to_contain_text(visitor.full_name)


# --- 3. Double submission --------------------------------------------------------------------


@pytest.mark.browser
def test_confirming_twice_books_once(phone, demo_server):
    base = demo_server
    page = phone(javascript=False)
    slot = open_booking_form(page, base, "Q10004", "Flores")
    fill_visitor(page, 1, adult(slot.adult_sex, "43000001"))
    fill_phone(page)
    review(page)
    expect_heading(page, "Revisa y confirma")
    form = page.locator("form", has=page.get_by_role("button", name="Confirmar la reserva"))
    sent = {**hidden_fields(form), "action": "confirm"}
    assert sent.get("submission_key")

    confirm(page)
    reference, token = booked_reference(page, base)
    again = page.request.post(f"{base}/p/{PRISON}/book", form=sent, max_redirects=0)

    assert again.status == 303
    location = urlsplit(again.headers["location"])
    assert location.path == f"/b/{reference}"
    assert parse_qs(location.query)["token"] == [token]
    page.goto(base + again.headers["location"])
    assert booked_reference(page, base) == (reference, token)
    assert seats_left(page, base, slot.slot_id) == slot.seats_left - 1


@pytest.mark.browser
def test_choosing_another_time_keeps_what_was_typed_without_javascript(phone, demo_server):
    """The tester's finding: a family that changed its mind about the time lost everything it
    had typed, since "choose another time" was a link to the slots page. Now it sends the form,
    which comes back as typed with the times in it (kept by the language switch too), and the
    time ticked goes to the review, nothing booked meanwhile."""
    base = demo_server
    page = phone(javascript=False)
    slot = open_booking_form(page, base, "Q10021", "Chávez")
    visitor = adult(slot.adult_sex, "47000001")
    fill_visitor(page, 1, visitor)
    cough = page.locator('input[name="visitors.0.cough"]')
    cough.check()
    fill_phone(page)

    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Elige otro horario").click()
    assert answer.value.status == 200
    expect_heading(page, "¿Quiénes van a visitar?")
    expect(page.locator(".error-summary")).to_have_count(0)
    times = page.locator("#other_times label.slot-choice")
    expect(times.first).to_be_visible()
    offered = times.count()

    page.locator("header").get_by_role("button", name="English").click()
    expect_language(page, "en")
    expect(times).to_have_count(offered)
    page.locator("header").get_by_role("button", name="Español").click()
    expect_language(page, "es")
    expect(times).to_have_count(offered)
    for name, value in (
        ("visitors.0.first_names", visitor.first_names),
        ("visitors.0.doc_number", visitor.doc_number),
        ("visitors.0.birth_date", visitor.birth_date),
        ("contact_phone", PHONE_NUMBER),
    ):
        expect(page.locator(f'input[id="{name}"]')).to_have_value(value)
    expect(cough).to_be_checked()

    # A time of the same visitors' group: the sex typed still fits it.
    same_group = times.filter(has=page.locator(".group", has_text=slot.group)).first
    chosen = same_group.locator("input").get_attribute("value") or ""
    seats = seats_in(same_group.locator(".seats").inner_text())
    same_group.locator("input").check()
    review(page)
    expect_heading(page, "Revisa y confirma")
    expect(page.locator("main")).to_contain_text(visitor.full_name)
    form = page.locator("form", has=page.get_by_role("button", name="Confirmar la reserva"))
    sent = hidden_fields(form)
    assert sent["slot_id"] == chosen
    assert sent["visitors.0.cough"] == "1"
    assert seats_left(page, base, chosen) == seats
    assert seats_left(page, base, slot.slot_id) == slot.seats_left


@pytest.mark.browser
def test_the_enter_key_sends_the_form_and_never_switches_the_language(phone, demo_server):
    """The tester's finding: the Enter or "Go" key of a phone's keyboard, pressed in a field,
    presses the first button sending the form, which was its language switch in the header:
    the page came back in English, nothing looked for or reviewed. It now sends the form as
    its own button does."""
    base = demo_server
    page = phone(javascript=False)
    page.goto(f"{base}/p/{PRISON}")
    page.get_by_label("Código de la persona que visitas").fill("Q10013")
    page.get_by_label("Su primer apellido").fill("Álvarez")
    page.get_by_label("Su primer apellido").press("Enter")
    expect_language(page, "es")
    slot = first_open_slot(page)
    slot_link(page, slot.slot_id).click()
    fill_visitor(page, 1, adult(slot.adult_sex, "48000001"))
    fill_phone(page)
    page.get_by_label("Celular", exact=True).press("Enter")
    expect_language(page, "es")
    expect_heading(page, "Revisa y confirma")
    assert seats_left(page, base, slot.slot_id) == slot.seats_left


# --- 4. English ------------------------------------------------------------------------------


@pytest.mark.browser
def test_the_english_link_translates_this_page_and_the_next_ones(phone, demo_server):
    base = demo_server
    page = phone(javascript=False)
    slot = open_booking_form(page, base, "Q10005", "Quispe")
    spanish_url = page.url

    # The booking form's switch is a button sending the form (to keep what is typed).
    page.locator("header").get_by_role("button", name="English").click()
    expect(page).to_have_url(f"{spanish_url}&lang=en")
    expect_language(page, "en")
    expect_heading(page, "Who will visit?")
    expect(page.get_by_role("button", name="Review the booking")).to_be_visible()

    # "Choose another time" sends the form too: the times come back in it, in English.
    page.get_by_role("button", name="Choose another time").click()
    expect_language(page, "en")
    expect_heading(page, "Who will visit?")
    expect(page.locator("#other_times .seats").first).to_contain_text("places left")
    page.goto(f"{base}/p/{PRISON}/slots")
    expect_language(page, "en")
    expect_heading(page, "Choose a day and time")
    expect(slot_link(page, slot.slot_id)).to_contain_text("places left")
    page.get_by_role("link", name="Find my booking").click()
    expect_language(page, "en")
    expect_heading(page, "Find my booking")
    page.get_by_role("link", name="Family visits").click()
    expect_language(page, "en")
    expect_heading(page, "Book a visit")

    page.locator("header").get_by_role("link", name="Español").click()
    expect(page).to_have_url(f"{base}/")
    expect_language(page, "es")
    expect_heading(page, "Reserva una visita")


# --- 5 and 6. Every family page: accessibility and weight -------------------------------------


def family_pages(page: Page, base: str, code: str, surname: str, dni: str) -> Iterator[str]:
    """Walk through every family page, yielding each one's name once it has fully loaded."""

    def loaded(name: str) -> str:
        page.wait_for_load_state("load")
        return name

    page.goto(f"{base}/")
    yield loaded("home")
    page.get_by_role("link", name=PRISON_LINK).click()
    expect_heading(page, "¿A quién visitas?")
    yield loaded("identify")
    page.get_by_role("button", name="Continuar").click()
    expect(page.locator(".error-summary")).to_be_visible()
    yield loaded("identify with errors")
    page.get_by_label("Código de la persona que visitas").fill(code)
    page.get_by_label("Su primer apellido").fill(surname)
    page.get_by_role("button", name="Continuar").click()
    slot = first_open_slot(page)
    yield loaded("slots")
    slot_link(page, slot.slot_id).click()
    expect_heading(page, "¿Quiénes van a visitar?")
    yield loaded("booking form")
    review(page)
    expect(page.locator(".error-summary")).to_be_visible()
    yield loaded("booking form with errors")
    fill_visitor(page, 1, adult(slot.adult_sex, dni))
    fill_phone(page)
    review(page)
    expect_heading(page, "Revisa y confirma")
    yield loaded("review")
    confirm(page)
    reference, token = booked_reference(page, base)
    yield loaded("booking")
    page.goto(f"{base}/b/{reference}/cancel?token={token}")
    expect_heading(page, "¿Cancelar la visita?")
    yield loaded("cancel")
    page.goto(f"{base}/b/{reference}/move?token={token}")
    expect_heading(page, "Cambiar día u horario")
    yield loaded("move")
    page.goto(f"{base}/find")
    expect_heading(page, "Buscar mi reserva")
    yield loaded("find")
    missing = page.goto(f"{base}/esta-pagina-no-existe")
    assert missing is not None
    assert missing.status == 404
    yield loaded("404")


def unfold_everything(page: Page) -> None:
    """Open folded ``<details>`` so that axe checks the fields inside them too."""
    folded = page.locator("details:not([open]) > summary")
    for _ in range(folded.count()):
        folded.first.click()
    expect(folded).to_have_count(0)


def sideways_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the screen (it should reflow, not scroll)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def serious_violations(page: Page) -> list[dict]:
    violations = Axe().run(page).response["violations"]
    return [v for v in violations if v["impact"] in BLOCKING_IMPACTS]


def describe_violations(found: dict[str, list[dict]]) -> str:
    lines = []
    for page_name, violations in found.items():
        for v in violations:
            lines.append(f"{page_name}: {v['id']} ({v['impact']}) {v['help']}")
            lines.extend(f"    {', '.join(n['target'])}: {n['html']}" for n in v["nodes"])
    return "\n".join(lines)


@pytest.mark.browser
def test_every_family_page_passes_axe(phone, demo_server):
    page = phone(javascript=True)
    found, sideways = {}, {}
    visited = []
    for name in family_pages(page, demo_server, "Q10006", "Huillca", "45000001"):
        visited.append(name)
        unfold_everything(page)
        if violations := serious_violations(page):
            found[name] = violations
        if overflow := sideways_overflow(page):
            sideways[name] = overflow
    assert len(visited) == 12
    assert not found, "serious or critical axe violations:\n" + describe_violations(found)
    assert not sideways, f"pages wider than the phone (px too wide): {sideways}"


@dataclass
class NetworkLog:
    """Every request a page makes and every response it receives, taken page by page."""

    requests: list[str] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)

    def listen(self, page: Page) -> None:
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("response", lambda response: self.responses.append(response))

    def take(self) -> tuple[list[str], list[Response]]:
        taken = self.requests, self.responses
        self.requests, self.responses = [], []
        return taken


def body_size(response: Response) -> int:
    if 300 <= response.status < 400:  # a redirect has no body to read
        return int(response.headers.get("content-length", "0"))
    return len(response.body())


def weight_by_type(responses: list[Response]) -> dict[str, int]:
    weights = dict.fromkeys(WEIGHED_TYPES, 0)
    for response in responses:
        kind = response.request.resource_type
        if kind in weights:
            weights[kind] += body_size(response)
    return weights


def without_cache(page: Page) -> None:
    """Weigh every page as a first visit would: the stylesheet is fetched each time."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})


@pytest.mark.browser
def test_every_family_page_is_light_and_asks_nothing_of_third_parties(phone, demo_server):
    base = demo_server
    page = phone(javascript=True)
    without_cache(page)
    log = NetworkLog()
    log.listen(page)
    too_heavy, foreign = {}, {}
    print(f"\n{'page':<26}{'document':>10}{'style':>8}{'script':>8}{'total':>8}")
    for name in family_pages(page, base, "Q10007", "Huarcaya", "46000001"):
        requested, responses = log.take()
        weights = weight_by_type(responses)
        total = sum(weights.values())
        print(
            f"{name:<26}{weights['document']:>10}{weights['stylesheet']:>8}"
            f"{weights['script']:>8}{total:>8}"
        )
        assert weights["document"] > 0, f"{name}: no document was weighed"
        assert weights["stylesheet"] > 0, f"{name}: the stylesheet was not weighed"
        if total >= PAGE_BUDGET:
            too_heavy[name] = weights
        if outside := [url for url in requested if not url.startswith(f"{base}/")]:
            foreign[name] = outside
    assert not foreign, f"requests to other sites: {foreign}"
    assert not too_heavy, f"pages over {PAGE_BUDGET} bytes: {too_heavy}"


@pytest.mark.browser
def test_a_person_whose_visits_are_suspended_is_offered_no_choice_and_told_why(phone, demo_server):
    """The demo's Q10150 is suspended until the end of 2030: every day of the window is
    listed without a link, each saying why; the page stays accessible and light."""
    base = demo_server
    page = phone(javascript=False)
    without_cache(page)
    identify(page, base, "Q10150", "Mamani")
    expect_heading(page, "Elige día y horario")
    log = NetworkLog()
    log.listen(page)
    page.reload()
    page.wait_for_load_state("load")
    expect(page.locator("a.slot-link")).to_have_count(0)
    days = page.locator("section.day")
    assert days.count() > 0
    reason = "Las visitas a esta persona están suspendidas hasta el"
    for day in days.all():
        expect(day.locator("p.paused")).to_contain_text(reason)
        expect(day.locator("p.paused")).to_contain_text("2030")
    _, responses = log.take()
    weights = weight_by_type(responses)
    assert 0 < sum(weights.values()) < PAGE_BUDGET, weights

    scripted = phone(javascript=True)
    identify(scripted, base, "Q10150", "Mamani")
    expect_heading(scripted, "Elige día y horario")
    found = serious_violations(scripted)
    assert not found, describe_violations({"paused slots": found})
    assert sideways_overflow(scripted) == 0


# --- Tap targets -------------------------------------------------------------------------------

TAP_TARGET = 44  # CSS px: the smallest row a thumb hits reliably (WCAG 2.5.5; radios get 48)


@pytest.mark.browser
def test_each_health_question_is_a_row_a_thumb_can_tap(phone, demo_server):
    """Seven boxes stacked: ticking the one above or below changes the TB advice. Each row,
    its words included, is a finger-sized target of its own, as a radio's is."""
    base = demo_server
    page = phone(javascript=False)
    open_booking_form(page, base, "Q10019", "Choque")
    rows = visitor_group(page, 1).locator("label.checkbox")
    expect(rows).to_have_count(7)
    boxes = [row.bounding_box() for row in rows.all()]
    for row, box in zip(rows.all(), boxes, strict=True):
        assert box is not None
        assert box["height"] >= TAP_TARGET, (row.inner_text(), box)
        tick = row.locator("input").bounding_box()
        assert tick is not None
        assert min(tick["width"], tick["height"]) >= 24, (row.inner_text(), tick)
    for above, below in itertools.pairwise(boxes):
        assert above["y"] + above["height"] <= below["y"] + 1  # rows do not overlap
    # The whole row ticks its box: a tap on the words, and on the space after them.
    night_sweats = visitor_group(page, 1).get_by_role("checkbox", name="Sudor por las noches")
    row = rows.nth(3)
    width = row.bounding_box()["width"]
    row.click(position={"x": width - 4, "y": 10})
    expect(night_sweats).to_be_checked()
    row.get_by_text("Sudor por las noches").click()
    expect(night_sweats).not_to_be_checked()
