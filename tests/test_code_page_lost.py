"""A family whose code page is gone finds its booking waiting for the code again.

The tester's finding: with phone verification on, the code SMS carried no reference or link;
once the code page was gone (a tab closed, Back and the review sent again, a phone's browser
killed), the family had the code and nowhere to type it, and booking again was refused
("... ya tiene una visita reservada ese día") for its own held booking, with nothing pointing
to it. Now the browser that made the booking is led back to its code page, and from any other
the reference in the code SMS and the phone are (through "Find my booking"); nobody who
only knows the visitors' documents is shown anything of it. On each database.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from notifications.outbox import OutboxMessage
from tests.factories import NOW
from tests.test_pages import confirm, csrf, first_open_slot, identify, review, text, visitor_form
from tests.test_unconfirmed import FAMILY, code_sent, from_address
from visits.booking import Booking, BookingStatus
from visits.i18n import SUPPORTED_LOCALES, use_locale
from visits.problems import Code, Problem, message
from visits.reference import parse as parse_reference
from visits.sms import render

REFERENCE = re.compile(r"/b/([2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4})/verify\?token=[^\"&\s]+")


@pytest.fixture
def app(make_client):
    return make_client(phone_verification=True)


def held_booking(client) -> tuple[dict[str, str], str]:
    """Book through the pages up to the code page: the form sent and the code page's address."""
    assert identify(client).status_code == 303
    form = visitor_form(first_open_slot(client), csrf(client, "/p/QUENCORO"))
    sent = confirm(client, form, "first-key")
    assert sent.status_code == 303, text(sent)
    assert "/verify?token=" in sent.headers["location"]
    return form, sent.headers["location"]


@pytest.mark.parametrize("language", SUPPORTED_LOCALES)
def test_the_code_sms_names_the_booking(language):
    params = {"ref": "ABCD-EFGH", "code": "123456", "minutes": 10}
    assert "ABCD-EFGH" in render("code", language, params)


def test_the_code_sent_and_its_kept_copy_name_the_booking(app, db):
    _, location = held_booking(app)
    shown = REFERENCE.search(location).group(1)
    with db.read_session() as s:
        sent = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "code")).one()
    assert shown in sent.body
    assert shown in sent.redacted_body
    assert code_sent_from(db, shown) not in sent.redacted_body


def code_sent_from(db, shown: str) -> str:
    with db.read_session() as s:
        return code_sent(s, parse_reference(shown))


def typed_code(client, db, code_page: str) -> str:
    """Type the code the SMS carried on the code page at ``code_page``: where it leads."""
    page = client.get(code_page)
    assert page.status_code == 200
    token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
    shown = REFERENCE.search(code_page).group(1)
    done = client.post(
        f"/b/{shown}/verify",
        data={
            "csrf_token": csrf(client, "/p/QUENCORO"),
            "token": token,
            "code": code_sent_from(db, shown),
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    return done.headers["location"]


def test_the_same_browser_sending_the_form_again_is_led_to_its_code_page(app, db):
    form, location = held_booking(app)
    shown = REFERENCE.search(location).group(1)
    # The code page is gone; Back to the form, and the review sent again.
    again = review(app, form | {"csrf_token": csrf(app, "/p/QUENCORO")})
    assert again.status_code == 422, text(again)
    # The refusal names the family's own booking waiting for its code, not "a visit".
    name = f"{form['visitors.0.first_names']} {form['visitors.0.last_names']}"
    with use_locale("es"):
        own = message(
            Problem(Code.VISITOR_WAITING_FOR_CODE, None, {"name": name, "reference": shown})
        )
        anyones = message(Problem(Code.VISITOR_ALREADY_BOOKED, None, {"name": name}))
    assert own in text(again)
    assert anyones not in text(again)
    link = REFERENCE.search(again.text)
    assert link is not None, text(again)
    assert link.group(0) == location  # its own code page, nothing else
    # The booking form itself says it too, before anything is typed.
    form_page = app.get(f"/p/QUENCORO/book?slot={form['slot_id']}")
    assert REFERENCE.search(form_page.text).group(0) == location
    # The link leads to the code page, where the code from the SMS confirms the booking.
    assert "done=booked" in typed_code(app, db, link.group(0).replace("&amp;", "&"))
    # Confirmed: the form no longer leads to a code page.
    form_page = app.get(f"/p/QUENCORO/book?slot={form['slot_id']}")
    assert REFERENCE.search(form_page.text) is None


def test_another_browser_typing_the_same_documents_is_shown_nothing_of_the_booking(app, db):
    form, location = held_booking(app)
    shown = REFERENCE.search(location).group(1)
    other = from_address(app, FAMILY)
    assert identify(other).status_code == 303
    refused = review(other, form | {"csrf_token": csrf(other, "/p/QUENCORO")})
    assert refused.status_code == 422
    assert shown not in refused.text
    assert "/verify" not in refused.text
    name = f"{form['visitors.0.first_names']} {form['visitors.0.last_names']}"
    with use_locale("es"):
        assert message(Problem(Code.VISITOR_ALREADY_BOOKED, None, {"name": name})) in text(refused)
    # The same phone and visitors, confirmed: refused as before, nothing of the booking shown.
    refused = confirm(other, form | {"csrf_token": csrf(other, "/p/QUENCORO")}, "other-key")
    assert refused.status_code in (422, 429)  # the visitor's day, or the person's holds
    assert shown not in refused.text
    assert "/verify" not in refused.text


def test_find_my_booking_leads_a_held_booking_to_its_code_page(app, db):
    form, location = held_booking(app)
    shown = REFERENCE.search(location).group(1)
    other = from_address(app, FAMILY)  # another browser: only the SMS and the phone
    found = other.post(
        "/find",
        data={"csrf_token": csrf(other), "reference": shown, "phone": form["contact_phone"]},
        follow_redirects=False,
    )
    assert found.status_code == 303
    assert found.headers["location"] == location
    # A wrong phone finds nothing, as before.
    refused = other.post(
        "/find",
        data={"csrf_token": csrf(other), "reference": shown, "phone": "987 000 000"},
        follow_redirects=False,
    )
    assert refused.status_code != 303
    with db.read_session() as s:
        held = s.scalar(select(Booking).where(Booking.reference == parse_reference(shown)))
        assert held.status is BookingStatus.HELD


def test_a_hold_that_is_over_is_no_longer_named(app):
    form, location = held_booking(app)
    page = f"/p/QUENCORO/book?slot={form['slot_id']}"
    assert REFERENCE.search(app.get(page).text).group(0) == location
    app.app.state.clock = lambda: NOW + timedelta(minutes=10)
    assert REFERENCE.search(app.get(page).text) is None


def test_the_slots_page_names_the_booking_waiting_for_its_code(app, db):
    """Gone back to the slots page (Back from the code page, or from the start again), the
    family is told there, before choosing a time and typing everything again, that its
    booking waits for its code, and led to its code page; another browser is told nothing of
    it, and once the code is typed it is no longer named."""
    _form, location = held_booking(app)
    slots = app.get("/p/QUENCORO/slots")
    assert slots.status_code == 200
    assert REFERENCE.search(slots.text).group(0) == location
    shown = REFERENCE.search(location).group(1)
    assert f'id="waiting-{shown}"' in slots.text

    other = from_address(app, FAMILY)
    assert identify(other).status_code == 303
    assert shown not in other.get("/p/QUENCORO/slots").text

    typed_code(app, db, location)
    assert REFERENCE.search(app.get("/p/QUENCORO/slots").text) is None
