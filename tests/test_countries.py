"""A booking's SMS go only to mobiles of the countries served (``VISITS_SMS_COUNTRIES``, Peru
by default): the tester's foreign numbers are refused on the phone field, on the pages and in
the API, and nothing is stored or sent. On each database."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from notifications.outbox import OutboxMessage
from tests.test_api import book, slots
from tests.test_pages import confirm, csrf, identify, review, text, visible, visitor_form
from tests.test_unconfirmed import visitor_entry
from visits.booking import Booking
from visits.booking_request import parse_phone
from visits.i18n import use_locale
from visits.problems import Code, Problem, message
from visits.settings import Settings


def counts(db) -> tuple[int, int]:
    """Bookings and messages stored."""
    with db.read_session() as s:
        return (
            s.scalar(select(func.count()).select_from(Booking)),
            s.scalar(select(func.count()).select_from(OutboxMessage)),
        )


FOREIGN = ["+447911123401", "+1 212 555 0123", "+591 71234567", "+34 612 345 678"]


@pytest.mark.parametrize("phone", FOREIGN)
def test_a_foreign_mobile_is_no_contact_phone_but_is_still_a_phone_to_look_up(phone):
    refused = parse_phone(phone, ("PE",))
    assert refused == Problem(Code.PHONE_COUNTRY_NOT_ALLOWED, params={"countries": ("PE",)})
    assert parse_phone(phone).startswith("+")  # finding a booking reads any number
    assert parse_phone("987 654 321", ("PE",)) == "+51987654321"
    # A foreign landline is told which mobiles are taken, not only that it is no mobile.
    assert parse_phone("+44 20 7946 0958", ("PE",)).code is Code.PHONE_COUNTRY_NOT_ALLOWED


@pytest.mark.parametrize("phone", FOREIGN)
def test_a_foreign_mobile_is_refused_in_the_api_and_nothing_is_stored(make_client, db, phone):
    app = make_client(phone_verification=True)
    slot_id = next(
        s["id"] for s in slots(app) if s["state"] == "open" and s["visitor_group"] == "women"
    )
    answer = book(app, slot_id, phone=phone)
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    assert [(e["code"], e["field"]) for e in errors] == [
        ("phone_country_not_allowed", "contact_phone")
    ]
    with use_locale("es"):
        problem = Problem(Code.PHONE_COUNTRY_NOT_ALLOWED, None, {"countries": ("PE",)})
        assert errors[0]["message"] == message(problem)
        assert "Perú" in message(problem)
    assert counts(db) == (0, 0)


def test_a_foreign_mobile_is_refused_on_the_page_next_to_the_phone_field(make_client, db):
    app = make_client(phone_verification=True)
    assert identify(app).status_code == 303
    slot_id = next(
        s["id"] for s in slots(app) if s["state"] == "open" and s["visitor_group"] == "women"
    )
    form = visitor_form(slot_id, csrf(app, "/p/QUENCORO"), contact_phone="+44 7911 123401")
    with use_locale("es"):
        expected = message(Problem(Code.PHONE_COUNTRY_NOT_ALLOWED, None, {"countries": ("PE",)}))
    for answer in (review(app, form), confirm(app, form, "key-1")):
        assert answer.status_code == 422
        assert expected in text(answer)
        said = re.search(r'id="contact_phone-error">(.*?)</p>', answer.text, re.S).group(1)
        assert expected in visible(said)  # next to the phone field
        field = re.search(r'<input[^>]*name="contact_phone"[^>]*>', answer.text).group(0)
        assert 'aria-invalid="true"' in field
        assert 'value="+44 7911 123401"' in field  # what was typed comes back
    assert counts(db) == (0, 0)


def test_the_countries_served_are_a_setting(make_client, db):
    app = make_client(sms_countries="pe, BO")
    slot_id = next(
        s["id"] for s in slots(app) if s["state"] == "open" and s["visitor_group"] == "women"
    )
    assert book(app, slot_id, phone="+591 71234567").status_code == 201
    english = {"Accept-Language": "en"}
    refused = book(
        app, slot_id, visitors=[visitor_entry(1)], phone="+447911123401", headers=english
    )
    assert refused.json()["errors"][0]["message"].startswith(
        "Use a mobile number from Peru or Bolivia:"
    )
    with pytest.raises(ValueError, match="XX"):
        Settings(sms_countries="PE,XX")
