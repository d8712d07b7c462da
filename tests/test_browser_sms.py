"""Phone verification and the SMS pages in a real browser.

Debian's Chromium, driven by Playwright, against a real server process of this module's own,
on a fresh SQLite demo database (with its staff accounts), with phone verification on, on a
clock that reads 10:00 at the prison (:func:`tests.clocked_server.demo_morning`). No
background jobs run in it:
every SMS stays pending in the outbox, where the tests read it like the family's phone would,
because a code is replaced by its redacted text once it has been sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from notifications.outbox import MessageStatus, OutboxMessage
from tests.browsing import staff_sign_in
from tests.clocked_server import demo_morning
from tests.server import free_port, run_cli, running_server, server_env
from tests.test_browser import (
    PAGE_BUDGET,
    NetworkLog,
    adult,
    booked_reference,
    confirm,
    describe_violations,
    expect_heading,
    expect_language,
    fill_visitor,
    first_open_slot,
    identify,
    review,
    serious_violations,
    sideways_overflow,
    slot_link,
    squashed,
    unfold_everything,
    weight_by_type,
    without_cache,
)
from visits.booking import Booking
from visits.db import Database, make_engine
from visits.i18n import format_clock

CODE = re.compile(r"\b(\d{6})\b")
SHORT_LINK = re.compile(r"https?://\S+/m/\S+")

# Spanish, exactly as visits/locale/es/LC_MESSAGES/messages.po says it.
ENTER_THE_CODE = "Escribe el código que te enviamos"
BOOKED = "Tu visita está reservada"
YOUR_VISIT = "Tu visita"
CONFIRMED = "Confirmada"
DELIVERY_PAGE = "SMS enviados a las familias"


def code_sent_to(masked_phone: str, reference: str) -> str:
    return (
        f"Enviamos un código de 6 dígitos por SMS al {masked_phone}. "
        f"Escríbelo para confirmar la reserva {reference}."
    )


def held_until(time: str) -> str:
    return (
        f"Tus lugares están guardados hasta las {time}. "
        "Si no escribes el código antes, pasan a otras familias."
    )


def wrong_code(left: int) -> str:
    return (
        f"Ese código no es correcto. Revisa el SMS e intenta de nuevo (te quedan {left} intentos)."
    )


# --- The server, its database and the browser -------------------------------------------------


@dataclass(frozen=True)
class SmsServer:
    base: str
    db: Database


@pytest.fixture(scope="module")
def sms_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmsServer]:
    """The real server with phone verification on, on a demo database of its own; no jobs run,
    so every SMS stays pending (and readable) in the outbox."""
    url = f"sqlite:///{tmp_path_factory.mktemp('sms-demo') / 'demo.db'}"
    port = free_port()
    loaded = run_cli("demo", env=server_env(url, port))
    assert loaded.returncode == 0, loaded.stderr
    db = Database(make_engine(url))
    try:
        with running_server(
            url, port=port, clock=demo_morning(), VISITS_PHONE_VERIFICATION="true"
        ) as server:
            yield SmsServer(server.base, db)
    finally:
        db.dispose()


# --- The outbox, read as the family's phone would -----------------------------------------------


def messages_of(db: Database, reference: str, kind: str) -> list[OutboxMessage]:
    """The messages of one kind for a booking, oldest first."""
    subject = f"booking:{reference.replace('-', '')}"
    with db.read_session() as session:
        return list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.subject == subject, OutboxMessage.kind == kind)
                .order_by(OutboxMessage.id)
            )
        )


def sms_code(db: Database, reference: str) -> str:
    """The code of the newest code SMS for the booking (still pending: nothing sends it)."""
    messages = messages_of(db, reference, "code")
    assert messages, f"no code SMS for {reference}"
    newest = messages[-1]
    assert newest.status is MessageStatus.PENDING
    found = CODE.search(newest.body)
    assert found, newest.body
    return found.group(1)


def not_the(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def hold_time(db: Database, reference: str) -> str:
    """When the booking's hold ends, as the page shows it (the prison's clock)."""
    with db.read_session() as session:
        booking = session.scalar(
            select(Booking).where(Booking.reference == reference.replace("-", ""))
        )
        assert booking is not None
        assert booking.hold_expires_at is not None
        return format_clock(booking.hold_expires_at, booking.prison.tz)


# --- The family's pages -------------------------------------------------------------------------


def book_until_the_review(
    page: Page, base: str, code: str, surname: str, dni: str, phone_number: str
) -> None:
    """Identify, choose the first open slot, fill one adult and the phone, and review."""
    identify(page, base, code, surname)
    slot = first_open_slot(page)
    slot_link(page, slot.slot_id).click()
    expect_heading(page, "¿Quiénes van a visitar?")
    fill_visitor(page, 1, adult(slot.adult_sex, dni))
    page.get_by_label("Celular", exact=True).fill(phone_number)
    review(page)
    expect_heading(page, "Revisa y confirma")


def book_until_asked_for_the_code(
    page: Page, base: str, code: str, surname: str, dni: str, phone_number: str
) -> None:
    """Book up to the confirmation; with an unverified phone the code page comes next."""
    book_until_the_review(page, base, code, surname, dni, phone_number)
    confirm(page)


def held_reference(page: Page, base: str) -> str:
    """The reference of the verify page the browser is on."""
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/b/[^/?]+/verify\?token="))
    expect_heading(page, ENTER_THE_CODE)
    return page.url.removeprefix(f"{base}/b/").split("/", 1)[0]


def enter_code(page: Page, code: str) -> None:
    page.get_by_label("Código del SMS", exact=True).fill(code)
    page.get_by_role("button", name="Confirmar la reserva").click()


def masked(phone_number: str) -> str:
    e164 = f"+51{phone_number}"
    return f"{e164[:3]} {e164[3]}•• ••• {e164[-3:]}"


# --- 1. Verify the phone, then book again without a code --------------------------------------


@pytest.mark.browser
def test_a_family_verifies_its_phone_and_the_booking_is_confirmed(phone, sms_server):
    base, db = sms_server.base, sms_server.db
    number = "987650011"
    page = phone(javascript=False)
    book_until_asked_for_the_code(page, base, "Q10011", "Hancco", "51000001", number)

    reference = held_reference(page, base)
    expect_language(page, "es")
    main = page.locator("main")
    expect(main).to_contain_text(code_sent_to(masked(number), reference))
    expect(main).to_contain_text(held_until(hold_time(db, reference)))
    assert number not in page.content()  # only the masked number is shown
    code = sms_code(db, reference)

    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        enter_code(page, not_the(code))
    assert answer.value.status == 303  # Post/Redirect/Get: Back never resends the form
    expect(page).to_have_url(re.compile(r"/verify\?token=[^&]+&refused=wrong_code$"))
    expect_heading(page, ENTER_THE_CODE)
    summary = page.locator(".error-summary li")
    expect(summary).to_have_count(1)
    expect(summary).to_have_text(wrong_code(4))
    expect(summary.locator("a")).to_have_attribute("href", "#code")
    field = page.get_by_label("Código del SMS", exact=True)
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_attribute("aria-describedby", re.compile(r"\bcode-error\b"))
    error = page.locator('[id="code-error"]')
    assert squashed(error.inner_text()) == f"Error: {wrong_code(4)}"

    enter_code(page, code)
    assert booked_reference(page, base)[0] == reference
    expect(page).to_have_url(re.compile(r"[?&]done=booked\b"))
    expect_language(page, "es")
    expect_heading(page, BOOKED)
    expect(page.locator(".details .tag")).to_have_text(CONFIRMED)
    expect(page.get_by_role("link", name="Escribir el código")).to_have_count(0)
    assert len(messages_of(db, reference, "confirmed")) == 1
    # Back: the code page's address opens again (no "Confirm form resubmission", no
    # ERR_CACHE_MISS), and shows the booking as it now is.
    page.go_back()
    expect(page).to_have_url(re.compile(r"[?&]refused=wrong_code$"))
    expect_heading(page, YOUR_VISIT)
    expect(page.locator(".details .tag")).to_have_text(CONFIRMED)

    # The same phone, again in this browser: no code this time.
    second = page.context.new_page()
    book_until_asked_for_the_code(second, base, "Q10012", "Huarcaya", "51000002", number)
    again, _ = booked_reference(second, base)
    assert again != reference
    expect(second).to_have_url(re.compile(r"[?&]done=booked\b"))
    expect_heading(second, BOOKED)
    expect(second.locator(".details .tag")).to_have_text(CONFIRMED)
    assert messages_of(db, again, "code") == []
    assert len(messages_of(db, again, "confirmed")) == 1


@pytest.mark.browser
def test_another_browser_is_asked_for_the_code_even_for_a_verified_phone(phone, sms_server):
    """The verified-phones memory is the browser's, not the number's."""
    base, db = sms_server.base, sms_server.db
    number = "987650022"
    first = phone(javascript=False)
    book_until_asked_for_the_code(first, base, "Q10016", "Puma", "52000001", number)
    reference = held_reference(first, base)
    enter_code(first, sms_code(db, reference))
    expect_heading(first, BOOKED)

    other = phone(javascript=False)
    book_until_asked_for_the_code(other, base, "Q10017", "Ccallo", "52000002", number)
    held = held_reference(other, base)
    assert held != reference
    assert len(messages_of(db, held, "code")) == 1


# --- 1b. The code page lost ---------------------------------------------------------------------


@pytest.mark.browser
def test_a_family_whose_code_page_is_gone_is_led_back_to_it(phone, sms_server):
    """The tester's finding: the code page gone (here, its tab closed), the family had the code
    and nowhere to type it, and booking again was refused for its own held booking."""
    base, db = sms_server.base, sms_server.db
    number = "987650066"
    first = phone(javascript=False)
    book_until_the_review(first, base, "Q10019", "Choque", "56000001", number)
    confirm(first)
    reference = held_reference(first, base)
    code = sms_code(db, reference)
    [sent] = messages_of(db, reference, "code")
    assert reference in sent.body  # the SMS names the booking (for "Find my booking")
    first.close()

    # The same phone's browser, again from the start: the form says the booking waits for
    # its code, and sending it again names that booking instead of "a visit that day".
    again = first.context.new_page()
    identify(again, base, "Q10019", "Choque")
    slot = first_open_slot(again)
    slot_link(again, slot.slot_id).click()
    expect_heading(again, "¿Quiénes van a visitar?")
    waiting = again.locator(f'[id="waiting-{reference}"]')
    expect(waiting).to_contain_text(reference)
    expect(waiting).to_contain_text(masked(number))
    fill_visitor(again, 1, adult(slot.adult_sex, "56000001"))
    again.get_by_label("Celular", exact=True).fill(number)
    review(again)
    expect(again.locator(".error-summary li")).to_contain_text(reference)
    assert again.get_by_role("heading", name="Revisa y confirma").count() == 0
    found = again.locator(f'[id="waiting-{reference}"]')
    found.get_by_role("link", name="Escribir el código").click()
    assert held_reference(again, base) == reference
    enter_code(again, code)
    assert booked_reference(again, base)[0] == reference
    expect_heading(again, BOOKED)


@pytest.mark.browser
def test_find_my_booking_leads_a_held_booking_to_its_code_page(phone, sms_server):
    """From any other browser: the reference the code SMS names, and the phone."""
    base, db = sms_server.base, sms_server.db
    number = "987650077"
    booker = phone(javascript=False)
    book_until_asked_for_the_code(booker, base, "Q10020", "Salas", "57000001", number)
    reference = held_reference(booker, base)
    [sent] = messages_of(db, reference, "code")
    assert reference in sent.body

    page = phone(javascript=False)
    page.goto(f"{base}/find")
    page.get_by_label("Código de reserva", exact=True).fill(reference)
    page.get_by_label("Celular que pusiste en la reserva", exact=True).fill(number)
    page.get_by_role("button", name="Buscar", exact=True).click()
    assert held_reference(page, base) == reference
    enter_code(page, sms_code(db, reference))
    assert booked_reference(page, base)[0] == reference
    expect_heading(page, BOOKED)


# --- 2. Accessibility and weight ------------------------------------------------------------


@pytest.mark.browser
def test_the_verify_and_delivery_pages_pass_axe(phone, staff, sms_server):
    base, db = sms_server.base, sms_server.db
    page = phone(javascript=True)
    without_cache(page)
    log = NetworkLog()
    log.listen(page)
    found: dict[str, list[dict]] = {}
    sideways: dict[str, int] = {}

    def check(page: Page, name: str, *, family: bool = True) -> None:
        page.wait_for_load_state("load")
        unfold_everything(page)
        if violations := serious_violations(page):
            found[name] = violations
        if family and (overflow := sideways_overflow(page)):
            sideways[name] = overflow

    book_until_the_review(page, base, "Q10014", "Puma", "53000001", "987650033")
    # Weigh only what confirming brings (the redirect and the verify page): the review page's
    # own requests all answered first, or one answering late is read once it is left behind.
    page.wait_for_load_state("networkidle")
    log.take()
    confirm(page)
    reference = held_reference(page, base)
    page.wait_for_load_state("load")
    _, responses = log.take()
    weights = weight_by_type(responses)
    assert weights["document"] > 0, "the verify page was not weighed"
    assert weights["stylesheet"] > 0, "the stylesheet was not weighed"
    assert sum(weights.values()) < PAGE_BUDGET, f"verify page over {PAGE_BUDGET}: {weights}"
    check(page, "verify")

    code = sms_code(db, reference)
    enter_code(page, not_the(code))
    expect(page.locator(".error-summary")).to_be_visible()
    check(page, "verify with errors")

    page.get_by_role("button", name="Enviar un código nuevo").click()
    expect(page).to_have_url(re.compile(r"/verify\?.*done=resent"))
    expect(page.locator(".success")).to_be_visible()
    check(page, "verify after a new code")
    newest = sms_code(db, reference)

    staff_sign_in(staff, base, "admin", "/staff/messages")
    expect_language(staff, "es")
    expect_heading(staff, DELIVERY_PAGE)
    check(staff, "delivery", family=False)

    staff.get_by_label("Código de reserva", exact=True).fill(reference)
    staff.get_by_role("button", name="Buscar").click()
    expect(staff).to_have_url(re.compile(rf"[?&]reference={reference}\b"))
    expect(staff.locator("li.message")).to_have_count(2)  # the first code and the new one
    expect(staff.locator("li.message").first).to_contain_text(reference)
    expect(staff.locator("li.message .body").first).to_contain_text("******")
    html = staff.content()
    assert code not in html
    assert newest not in html  # staff never see a code
    check(staff, "delivery for one booking", family=False)

    staff.goto(f"{base}/staff/messages?reference=nope")
    expect(staff.locator(".error-summary")).to_be_visible()
    check(staff, "delivery with errors", family=False)

    assert not found, "serious or critical axe violations:\n" + describe_violations(found)
    assert not sideways, f"pages wider than the phone (px too wide): {sideways}"


# --- 3. The link in the confirmation SMS -----------------------------------------------------


@pytest.mark.browser
def test_the_short_link_from_the_sms_opens_the_booking(phone, sms_server):
    base, db = sms_server.base, sms_server.db
    booker = phone(javascript=False)
    book_until_asked_for_the_code(booker, base, "Q10015", "Castillo", "54000001", "987650044")
    reference = held_reference(booker, base)
    enter_code(booker, sms_code(db, reference))
    expect_heading(booker, BOOKED)

    [confirmation] = messages_of(db, reference, "confirmed")
    assert reference in confirmation.body
    found = SHORT_LINK.search(confirmation.body)
    assert found, confirmation.body
    link = found.group(0)
    assert link.startswith(f"{base}/m/")

    page = phone(javascript=False)  # the link opens wherever the SMS was read
    page.goto(link)
    assert booked_reference(page, base)[0] == reference
    expect_language(page, "es")
    expect_heading(page, YOUR_VISIT)
    expect(page.locator(".details .tag")).to_have_text(CONFIRMED)
    expect(page.get_by_role("link", name="Cancelar la visita")).to_be_visible()

    tampered = link[:-1] + ("a" if link[-1] != "a" else "b")
    missing = page.goto(tampered)
    assert missing is not None
    assert missing.status == 404


# --- 4. Signing in to the delivery page -------------------------------------------------------


@pytest.mark.browser
def test_the_delivery_page_asks_to_sign_in_and_comes_back(staff, sms_server):
    base = sms_server.base
    staff_sign_in(staff, base, "admin", "/staff/messages?status=pending")
    expect_heading(staff, DELIVERY_PAGE)
    expect(staff.get_by_label("Estado")).to_have_value("pending")
    staff.get_by_role("button", name="Cerrar sesión").click()
    expect(staff).to_have_url(re.compile(r"/staff/login$"))
    answer = staff.goto(f"{base}/staff/messages")
    assert answer is not None
    expect(staff).to_have_url(re.compile(r"/staff/login\?next="))  # signed out for real
