"""The SMS side of the web app: Twilio webhooks, phone verification pages and API, the short
manage link and the staff delivery page. In-process on the demo data, on each database."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from twilio.request_validator import RequestValidator

from notifications import recipients
from notifications.dispatcher import Dispatcher
from notifications.inbound import Intent, intent
from notifications.outbox import Draft, MessageStatus, OutboxMessage, enqueue
from notifications.recipients import Recipient
from notifications.senders import ConsoleSender
from tests.factories import NOW, SMS
from tests.staffing import make_staff, sign_in
from tests.test_api import bearer, book, open_slot
from tests.test_pages import (
    booked,
    confirm,
    csrf,
    first_open_slot,
    form_fields,
    identify,
    switch_language,
    text,
    visitor_form,
)
from visits.audit import AuditEvent
from visits.booking import Booking, BookingStatus, expire_holds
from visits.migrate import alembic_config, upgrade
from visits.replies import handle_inbound
from visits.sms import short_token
from visits.staff import StaffRole
from web import admin as admin_pages

TOKEN = "twilio-auth-token"
BASE = "https://visitas.example.pe"
PHONE = "+51987654321"
CODE = re.compile(r"\b(\d{6})\b")


@pytest.fixture
def twilio_client(make_client):
    return make_client(
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token=TOKEN,
        twilio_from="+15005550006",
    )


def signed_post(client, path, params, token=TOKEN, signature=None):
    url = BASE + path
    headers = {}
    if signature is None:
        signature = RequestValidator(token).compute_signature(url, params)
    if signature:
        headers["X-Twilio-Signature"] = signature
    return client.post(path, data=params, headers=headers)


def queued(db, **where) -> list[OutboxMessage]:
    with db.read_session() as s:
        query = (
            select(OutboxMessage)
            .options(selectinload(OutboxMessage.events))
            .order_by(OutboxMessage.id)
        )
        for column, value in where.items():
            query = query.where(getattr(OutboxMessage, column) == value)
        return list(s.scalars(query))


def sent_message(db, sid="SMabc") -> int:
    with db.writing() as s:
        draft = Draft(recipient=PHONE, body="Hola", language="es", dedupe_key="k", kind="t")
        message = enqueue(s, draft, NOW)
        message.status, message.provider_sid = MessageStatus.SENT, sid
        s.flush()
        return message.id


# --- Webhooks --------------------------------------------------------------------------------


def test_a_signed_delivery_report_moves_the_message_forward_once(twilio_client, db):
    message_id = sent_message(db)
    report = {"MessageSid": "SMabc", "MessageStatus": "delivered", "AccountSid": "AC"}
    path = f"/twilio/status?m={message_id}"
    assert signed_post(twilio_client, path, report).status_code == 204
    assert signed_post(twilio_client, path, report).status_code == 204  # replayed
    late = {"MessageSid": "SMabc", "MessageStatus": "sent", "AccountSid": "AC"}
    assert signed_post(twilio_client, path, late).status_code == 204
    [message] = queued(db)
    assert message.status is MessageStatus.DELIVERED
    assert [e.status.value for e in message.events] == ["pending", "delivered"]


@pytest.mark.parametrize(
    ("token", "signature"), [(TOKEN, ""), ("another-token", None), (TOKEN, "bm90IGEgc2lnbmF0dXJl")]
)
def test_a_webhook_without_a_valid_signature_is_refused_and_changes_nothing(
    twilio_client, db, token, signature
):
    message_id = sent_message(db)
    report = {"MessageSid": "SMabc", "MessageStatus": "failed", "ErrorCode": "30003"}
    response = signed_post(
        twilio_client, f"/twilio/status?m={message_id}", report, token, signature
    )
    assert response.status_code == 403
    inbound = {"MessageSid": "SMin", "From": PHONE, "Body": "BAJA"}
    assert (
        signed_post(twilio_client, "/twilio/inbound", inbound, token, signature).status_code == 403
    )
    assert queued(db)[0].status is MessageStatus.SENT
    with db.read_session() as s:
        assert s.get(Recipient, PHONE) is None


def test_the_signature_covers_the_public_url_not_the_address_the_request_came_to(twilio_client, db):
    message_id = sent_message(db)
    report = {"MessageSid": "SMabc", "MessageStatus": "delivered"}
    path = f"/twilio/status?m={message_id}"
    internal = RequestValidator(TOKEN).compute_signature("https://testserver" + path, report)
    response = twilio_client.post(path, data=report, headers={"X-Twilio-Signature": internal})
    assert response.status_code == 403


def test_webhooks_are_refused_when_twilio_is_not_configured(client, db):
    sent_message(db)
    report = {"MessageSid": "SMabc", "MessageStatus": "delivered"}
    assert signed_post(client, "/twilio/status", report).status_code == 403


def test_an_inbound_two_cancels_the_booking_and_frees_the_seats(twilio_client, db):
    created = book(twilio_client, open_slot(twilio_client)["id"]).json()
    reference = created["reference"]
    with db.read_session() as s:
        booking = s.scalar(select(Booking))
        slot_id, seats_before = booking.slot_id, booking.slot.seats_taken
    inbound = {"MessageSid": "SMin1", "From": PHONE, "To": "+15005550006", "Body": "2"}
    response = signed_post(twilio_client, "/twilio/inbound", inbound)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert "<Response></Response>" in response.text
    assert signed_post(twilio_client, "/twilio/inbound", inbound).status_code == 200  # replay
    with db.read_session() as s:
        booking = s.scalar(select(Booking))
        assert booking.status is BookingStatus.CANCELLED
        assert booking.slot.seats_taken == seats_before - 1
        assert booking.slot_id == slot_id
    subject = f"booking:{reference.replace('-', '')}"
    assert [m.kind for m in queued(db, subject=subject, status=MessageStatus.PENDING)] == [
        "cancelled"
    ]


def _inbound(db) -> list[tuple[str, str, str, str | None]]:
    from notifications.inbound import InboundMessage

    with db.read_session() as s:
        rows = s.scalars(select(InboundMessage).order_by(InboundMessage.id))
        return [(m.sender, m.body, m.intent.value, m.handled_as) for m in rows]


@pytest.mark.parametrize(
    "sender", ["whatsapp:+51987654321", "+519876543210000000", "+51987\x00654321", "INPE", "-"]
)
def test_an_inbound_text_from_no_phone_number_is_answered_and_ignored(twilio_client, db, sender):
    """No booking, opt-out or answer can concern a sender we could never have texted; a 200
    stops Twilio asking again (it retries what fails)."""
    assert book(twilio_client, open_slot(twilio_client)["id"]).status_code == 201
    inbound = {"MessageSid": "SMin2", "From": sender, "Body": "2"}
    response = signed_post(twilio_client, "/twilio/inbound", inbound)
    assert response.status_code == 200
    assert "<Response></Response>" in response.text
    assert _inbound(db) == []
    with db.read_session() as s:
        assert s.scalar(select(Booking)).status is BookingStatus.CONFIRMED
    assert not queued(db, kind="help")


def test_an_inbound_text_loses_its_nul_characters_and_what_no_sms_can_hold(twilio_client, db):
    stop = {"MessageSid": "SMin3", "From": PHONE, "Body": "BA\x00JA\x00"}
    assert signed_post(twilio_client, "/twilio/inbound", stop).status_code == 200
    long = {"MessageSid": "SMin4", "From": PHONE, "Body": "\x00" + "é" * 5000}
    assert signed_post(twilio_client, "/twilio/inbound", long).status_code == 200
    assert _inbound(db) == [
        (PHONE, "BAJA", "opt_out", "opt_out"),
        (PHONE, "é" * 1600, "text", "help"),
    ]
    with db.read_session() as s:
        assert s.get(Recipient, PHONE).opted_out_at is not None


def test_inbound_keywords_twilio_answers_get_no_second_answer_from_us(twilio_client, db):
    """Twilio answers HELP and STOP alone; "BAJA por favor" and AYUDA are ours to answer."""
    for sid, body in enumerate(["HELP", "BAJA por favor", "STOP", "AYUDA"]):
        inbound = {"MessageSid": f"SMk{sid}", "From": PHONE, "Body": body}
        assert signed_post(twilio_client, "/twilio/inbound", inbound).status_code == 200
    assert [row[2:] for row in _inbound(db)] == [
        ("help", "help by provider"),
        ("opt_out", "opt_out"),
        ("opt_out", "opt_out"),
        ("help", "help"),
    ]
    assert [m.kind for m in queued(db)] == ["opted_out", "help"]


@pytest.mark.parametrize("sid", ["SM\x00in", "SM" + "a" * 70, "SM-in ñ"])
def test_a_webhook_with_an_odd_message_id_is_a_bad_request(twilio_client, db, sid):
    inbound = {"MessageSid": sid, "From": PHONE, "Body": "BAJA"}
    assert signed_post(twilio_client, "/twilio/inbound", inbound).status_code == 400
    report = {"MessageSid": sid, "MessageStatus": "delivered"}
    assert signed_post(twilio_client, "/twilio/status", report).status_code == 400
    assert _inbound(db) == []


def test_a_delivery_report_keeps_what_fits_of_an_odd_error_code(twilio_client, db):
    message_id = sent_message(db, sid=None)
    report = {"MessageSid": "SMabc", "MessageStatus": "failed", "ErrorCode": "3\x00" + "9" * 40}
    assert signed_post(twilio_client, f"/twilio/status?m={message_id}", report).status_code == 204
    [message] = queued(db)
    assert (message.status, message.provider_sid) == (MessageStatus.FAILED, "SMabc")
    assert message.error_code == "3" + "9" * 31
    odd_id = {"MessageSid": "SMdef", "MessageStatus": "delivered"}
    for m in ("%C2%B2", "99999999999"):  # "²", and no id: the report is matched by its sid
        assert signed_post(twilio_client, f"/twilio/status?m={m}", odd_id).status_code == 204


# --- Verification ----------------------------------------------------------------------------


@pytest.fixture
def verifying(make_client):
    return make_client(phone_verification=True)


def code_for(db, reference: str) -> str:
    messages = queued(db, subject=f"booking:{reference.replace('-', '')}", kind="code")
    return CODE.search(messages[-1].body).group(1)


def book_on_the_page(client):
    assert identify(client).status_code == 303
    form = visitor_form(first_open_slot(client), csrf(client, "/p/QUENCORO"))
    return confirm(client, form, "key-1")


def test_booking_on_the_page_asks_for_the_code_then_confirms(verifying, db):
    response = book_on_the_page(verifying)
    assert response.status_code == 303
    assert "/verify?token=" in response.headers["location"]
    page = verifying.get(response.headers["location"])
    assert "Escribe el código que te enviamos" in text(page)
    assert "+51 9•• ••• 321" in text(page)
    assert "10:10" in text(page)  # held until ten minutes after NOW (10:00 in Lima)
    reference = re.search(r"reserva ([A-Z0-9]{4}-[A-Z0-9]{4})", text(page)).group(1)
    token = re.search(r"token=([^&]+)", response.headers["location"]).group(1)
    form = {"csrf_token": csrf(verifying), "token": token}

    right_code = code_for(db, reference)
    wrong_code = f"{(int(right_code) + 1) % 1_000_000:06d}"
    wrong = verifying.post(f"/b/{reference}/verify", data=form | {"code": wrong_code})
    assert wrong.history[0].status_code == 303  # Post/Redirect/Get: see below
    assert "Ese código no es correcto" in text(wrong)
    assert "te quedan 4 intentos" in text(wrong)

    right = verifying.post(
        f"/b/{reference}/verify",
        data=form | {"code": right_code},
        follow_redirects=False,
    )
    assert right.status_code == 303
    assert "done=booked" in right.headers["location"]
    assert "verified_phones" in right.headers["set-cookie"]
    assert "HttpOnly" in right.headers["set-cookie"]
    with db.read_session() as s:
        assert s.scalar(select(Booking)).status is BookingStatus.CONFIRMED


def test_a_phone_verified_in_this_browser_is_not_asked_again(verifying, db):
    first = book_on_the_page(verifying)
    location = first.headers["location"]
    reference = re.search(r"/b/([A-Z0-9-]+)/verify", location).group(1)
    token = re.search(r"token=([^&]+)", location).group(1)
    form = {"csrf_token": csrf(verifying), "token": token, "code": code_for(db, reference)}
    assert verifying.post(f"/b/{reference}/verify", data=form).status_code == 200
    # The same family books another visit, for another visitor, from the same browser.
    assert identify(verifying).status_code == 303
    slot_id = first_open_slot(verifying)
    form = visitor_form(slot_id, csrf(verifying, "/p/QUENCORO"))
    form |= {"visitors.0.doc_number": "45678913", "visitors.0.first_names": "Rosa"}
    second = confirm(verifying, form, "key-2")
    assert "done=booked" in second.headers["location"]
    # Another browser (no cookie) is asked for a code for the same phone.
    verifying.cookies.delete("verified_phones")
    form |= {"visitors.0.doc_number": "45678914", "visitors.0.first_names": "Luz"}
    assert identify(verifying, "Q10002", "Puma").status_code == 303  # within the weekly limit
    form["csrf_token"] = csrf(verifying, "/p/QUENCORO")
    third = confirm(verifying, form, "key-3")
    assert "/verify?token=" in third.headers["location"]


def test_a_new_code_can_be_asked_for_and_only_the_newest_works(verifying, db):
    location = book_on_the_page(verifying).headers["location"]
    reference = re.search(r"/b/([A-Z0-9-]+)/verify", location).group(1)
    token = re.search(r"token=([^&]+)", location).group(1)
    old = code_for(db, reference)
    form = {"csrf_token": csrf(verifying), "token": token}
    new = old
    while new == old:  # a new random code may repeat the old one (one chance in a million)
        resent = verifying.post(f"/b/{reference}/code", data=form)
        assert "Enviamos un código nuevo" in text(resent)
        new = code_for(db, reference)
    refused = verifying.post(f"/b/{reference}/verify", data=form | {"code": old})
    assert "Ese código no es correcto" in text(refused)
    assert verifying.post(f"/b/{reference}/verify", data=form | {"code": new}).status_code == 200
    with db.read_session() as s:
        assert s.scalar(select(Booking)).status is BookingStatus.CONFIRMED


def held_on_the_page(client, db) -> tuple[str, str, dict[str, str]]:
    """A booking made on the pages and waiting for its code: its reference, the code sent,
    and the code form's fields but the code."""
    location = book_on_the_page(client).headers["location"]
    reference = re.search(r"/b/([A-Z0-9-]+)/verify", location).group(1)
    token = re.search(r"token=([^&]+)", location).group(1)
    return reference, code_for(db, reference), {"csrf_token": csrf(client), "token": token}


def test_a_booking_waiting_for_its_code_offers_no_calendar_until_confirmed(verifying, db):
    """A hold that runs out must not leave an event in the family's calendar for a visit
    that does not exist: no calendar while the booking waits for its code, and the
    calendar's address says why (on the booking's page, which leads to the code)."""
    reference, code, form = held_on_the_page(verifying, db)
    page = verifying.get(f"/b/{reference}?token={form['token']}")
    assert page.status_code == 200
    assert "Escribir el código" in text(page)  # the held booking leads to its code
    assert "visit.ics" not in page.text
    assert "Agregar a mi calendario" not in text(page)
    ics = verifying.get(f"/b/{reference}/visit.ics?token={form['token']}")
    assert ics.status_code == 409
    assert ics.headers["content-type"].startswith("text/html")
    assert "BEGIN:VCALENDAR" not in ics.text
    assert "Primero escribe el código que te enviamos por SMS" in text(ics)
    confirmed = verifying.post(f"/b/{reference}/verify", data=form | {"code": code})
    assert "Agregar a mi calendario" in text(confirmed)
    ics = verifying.get(f"/b/{reference}/visit.ics?token={form['token']}")
    assert ics.status_code == 200
    assert "STATUS:CONFIRMED" in ics.text


def test_a_refused_code_is_answered_with_a_redirect_to_the_code_page(verifying, db):
    """Post/Redirect/Get: a wrong code's answer is a redirect (303) to the code page, which
    says why; so going Back or reloading it never asks to send the form again. The address
    names the refusal by its code only, and the page reads the tries left itself."""
    reference, code, form = held_on_the_page(verifying, db)
    verify = f"/b/{reference}/verify"
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for left in (4, 3):
        answer = verifying.post(verify, data=form | {"code": wrong}, follow_redirects=False)
        assert answer.status_code == 303
        location = answer.headers["location"]
        assert location == f"{verify}?token={form['token']}&refused=wrong_code"
        page = verifying.get(location)
        assert page.status_code == 200
        assert f"intenta de nuevo (te quedan {left} intentos)." in text(page)
        assert 'role="alert"' in page.text
        assert 'href="#code"' in page.text
        assert 'aria-invalid="true"' in page.text
        assert wrong not in page.text
    malformed = verifying.post(verify, data=form | {"code": "12ab"}, follow_redirects=False)
    assert malformed.headers["location"].endswith("&refused=invalid_code")
    assert "El código tiene 6 dígitos" in text(verifying.get(malformed.headers["location"]))
    for _ in range(3):
        last = verifying.post(verify, data=form | {"code": wrong}, follow_redirects=False)
    assert "Demasiados códigos equivocados. Pide un código nuevo." in text(
        verifying.get(last.headers["location"])
    )
    # The right code too, once every try is spent: the lockout holds.
    locked = verifying.post(verify, data=form | {"code": code}, follow_redirects=False)
    assert locked.headers["location"].endswith("&refused=code_attempts_exhausted")
    with db.read_session() as s:
        assert s.scalar(select(Booking)).status is BookingStatus.HELD
    # Nothing but a known code is said, and a wrong try a new code made void is not.
    other = verifying.get(f"{verify}?token={form['token']}&refused=<b>Llama+al+0800</b>")
    assert "error-summary" not in other.text
    assert "Llama" not in other.text
    verifying.post(f"/b/{reference}/code", data=form)
    again = verifying.get(last.headers["location"])
    assert "error-summary" not in again.text


def test_the_language_switch_on_the_code_page_keeps_the_refusal_and_the_code(verifying, db):
    """After a wrong code, switching language sends the code form to the code page as its
    address stands (naming the refusal): the refusal is said again in the other language, the
    code typed since is kept, and nothing is tried: no try counted, no code sent."""
    reference, code, form = held_on_the_page(verifying, db)
    verify = f"/b/{reference}/verify"
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    refused = verifying.post(verify, data=form | {"code": wrong})
    assert "te quedan 4 intentos" in text(refused)
    codes_sent = len(queued(db, kind="code"))

    english = switch_language(verifying, refused, verify, code="12345")
    assert english.status_code == 200
    assert "That code is not right. Check the SMS and try again (4 tries left)." in text(english)
    assert form_fields(english.text, verify)["code"] == "12345"
    spanish = switch_language(verifying, english, verify)  # and back, the same way
    assert "intenta de nuevo (te quedan 4 intentos)." in text(spanish)
    assert form_fields(spanish.text, verify)["code"] == "12345"
    assert len(queued(db, kind="code")) == codes_sent
    with db.read_session() as s:
        assert s.scalar(select(Booking)).status is BookingStatus.HELD


def test_a_code_form_sent_late_shows_the_booking_as_it_now_is(verifying, db):
    """The code page left open, the cookie gone: while the booking waits, the form again;
    once confirmed, or cancelled meanwhile (here by its hold running out), the booking and
    why, never a server error; a cancelled one does not read as "needs no code"."""
    location = book_on_the_page(verifying).headers["location"]
    reference = re.search(r"/b/([A-Z0-9-]+)/verify", location).group(1)
    token = re.search(r"token=([^&]+)", location).group(1)
    stale = {"csrf_token": "from-a-lost-session", "token": token, "code": "123456"}
    for action in ("verify", "code"):
        waiting = verifying.post(f"/b/{reference}/{action}", data=stale)
        assert waiting.status_code == 403, action
        assert "Este formulario venció" in text(waiting)
    with db.writing() as s:
        expire_holds(s, NOW + timedelta(hours=1))
    for action in ("verify", "code"):
        late = verifying.post(f"/b/{reference}/{action}", data=stale)
        assert late.status_code == 409, action
        shown = text(late)
        assert "se canceló antes de confirmarse" in shown
        assert "no necesita código" not in shown
    fresh = {"csrf_token": csrf(verifying), "token": token, "code": "123456"}
    refused = verifying.post(f"/b/{reference}/verify", data=fresh)
    assert refused.status_code == 409
    assert "se canceló antes de confirmarse" in text(refused)


def test_the_api_holds_a_booking_until_the_code_is_posted(verifying, db):
    created = book(verifying, open_slot(verifying)["id"])
    assert created.status_code == 201
    out = created.json()
    assert out["status"] == "held"
    assert out["booking"]["hold_expires_at"].startswith("2026-12-01T15:10:00")
    path = f"/api/v1/bookings/{out['reference']}"
    headers = bearer(out["manage_token"])
    wrong = verifying.post(f"{path}/verify", json={"code": "12"}, headers=headers)
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["code"] == "invalid_code"
    code = code_for(db, out["reference"])
    done = verifying.post(f"{path}/verify", json={"code": code}, headers=headers)
    assert done.status_code == 200
    assert done.json()["status"] == "confirmed"
    with db.read_session() as s:
        confirmed = s.scalar(select(AuditEvent).where(AuditEvent.action == "booking.confirmed"))
        assert confirmed.actor == "api"  # the history says it came through the API
    again = verifying.post(f"{path}/verify", json={"code": code}, headers=headers)
    assert (again.status_code, again.json()) == (200, done.json())  # a retry: as it is
    other = f"{(int(code) + 1) % 10**6:06d}"
    refused = verifying.post(f"{path}/verify", json={"code": other}, headers=headers)
    assert (refused.status_code, refused.json()["errors"][0]["code"]) == (409, "not_held")
    assert verifying.post(f"{path}/verify", json={"code": code}).status_code == 404  # no token


# --- Short link and delivery page ------------------------------------------------------------


def test_the_short_link_in_an_sms_opens_the_booking(client, db):
    reference = book(client, open_slot(client)["id"]).json()["reference"]
    compact = reference.replace("-", "")
    link = f"/m/{compact}{short_token('test-secret', compact)}"
    response = client.get(link, follow_redirects=False)
    assert response.status_code == 303
    assert client.get(response.headers["location"]).status_code == 200
    forged = link[:-1] + ("x" if link[-1] != "x" else "y")  # one character off
    assert client.get(forged).status_code == 404
    assert client.get("/m/nothing").status_code == 404


def test_the_short_link_opens_the_booking_in_its_language_unless_the_browser_chose_one(
    make_client, db
):
    client = make_client()
    reference = book(client, open_slot(client)["id"]).json()["reference"]
    compact = reference.replace("-", "")
    with db.writing() as s:
        s.scalar(select(Booking).where(Booking.reference == compact)).language = "en"
    link = f"/m/{compact}{short_token('test-secret', compact)}"
    phone = make_client()  # a browser that never chose a language: as its SMS was written
    opened = phone.get(link, follow_redirects=True)
    assert opened.status_code == 200
    assert 'lang="en"' in opened.text
    assert "Change day or time" in text(opened)
    chose = make_client()
    chose.cookies.set("lang", "es")
    kept = chose.get(link, follow_redirects=False)
    assert "lang=" not in kept.headers["location"]
    assert 'lang="es"' in chose.get(kept.headers["location"]).text


def test_the_delivery_page_is_for_administrators_of_the_bookings_prison(make_client, db):
    make_staff(db, "admin", StaffRole.ADMIN)
    make_staff(db, "admin.mujeres", StaffRole.ADMIN, ("MUJERES-CUSCO",))
    make_staff(db, "guardia", StaffRole.GUARD)
    client = make_client()
    reference = book(client, open_slot(client)["id"]).json()["reference"]
    anonymous = client.get("/staff/messages", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/staff/login")
    sign_in(client, "guardia")
    assert client.get("/staff/messages").status_code == 403
    other = make_client()
    sign_in(other, "admin.mujeres")
    assert reference not in text(other.get("/staff/messages"))  # a Quencoro booking
    admin = make_client()
    sign_in(admin, "admin")
    assert reference in text(admin.get("/staff/messages"))


def test_the_delivery_page_never_shows_a_working_manage_link_while_the_phone_gets_one(
    make_client, db
):
    """The manage link's signature opens the booking as the family: staff act on a booking
    from their own audited page, so theirs shows the link without it, before and after sending,
    and the copy kept once sent has none either."""
    make_staff(db, "admin", StaffRole.ADMIN)
    client = make_client()
    compact = book(client, open_slot(client)["id"]).json()["reference"].replace("-", "")
    token = short_token("test-secret", compact)
    admin = make_client()
    sign_in(admin, "admin")

    def shown_links() -> list[str]:
        page = admin.get("/staff/messages", params={"reference": compact})
        assert page.status_code == 200
        assert token not in page.text
        return re.findall(re.escape(BASE) + r"(/m/[^\s<\"]+)", page.text)

    waiting = shown_links()  # queued, not sent yet
    assert waiting
    for link in waiting:
        assert link.startswith(f"/m/{compact}")
        assert client.get(link, follow_redirects=False).status_code == 404
    phone = ConsoleSender(echo=False)
    assert Dispatcher(db.writing, phone, clock=lambda: NOW).drain().sent == 1
    [(_, received)] = phone.sent
    assert f"{BASE}/m/{compact}{token}" in received.body  # the family's link works
    opened = client.get(f"/m/{compact}{token}", follow_redirects=False)
    assert client.get(opened.headers["location"]).status_code == 200
    [confirmed] = queued(db, subject=f"booking:{compact}", kind="confirmed")
    assert confirmed.status is MessageStatus.SENT
    assert token not in confirmed.body  # nothing working is kept for the retention period
    assert f"{BASE}/m/{compact}" in confirmed.body
    links = shown_links()
    assert links, "the confirmation shows its (redacted) link"
    for link in links:
        assert client.get(link, follow_redirects=False).status_code == 404


def test_links_stored_before_staff_copies_existed_are_masked_by_a_migration(
    make_client, db, db_url
):
    """Migration 0018 does once, for messages stored before, what drafting now does: a sent
    text keeps no working link, and one still waiting keeps it for the phone only."""
    command.downgrade(alembic_config(db_url), "0017")
    make_staff(db, "admin", StaffRole.ADMIN)
    client = make_client()
    slot = open_slot(client)["id"]
    other = {"first_names": "Ana", "last_names": "Rojas", "doc_type": "dni",
             "doc_number": "41111111", "birth_date": "1980-01-01", "relationship": "sibling",
             "sex": "F"}  # fmt: skip
    sent, waiting = (
        answer.json()["reference"].replace("-", "")
        for answer in (
            book(client, slot),
            book(
                client, slot, inmate="Q10002", surname="Puma", visitors=[other], phone="912345678"
            ),
        )
    )
    with db.writing() as s:  # as the code before staff copies stored them
        for message in s.scalars(select(OutboxMessage)):
            message.redacted_body = None
        s.scalar(
            select(OutboxMessage).where(
                OutboxMessage.subject == f"booking:{sent}", OutboxMessage.kind == "confirmed"
            )
        ).status = MessageStatus.SENT
    upgrade(db_url)
    [old] = queued(db, subject=f"booking:{sent}", kind="confirmed")
    assert short_token("test-secret", sent) not in old.body
    assert f"{BASE}/m/{sent}********" in old.body
    [pending] = queued(db, subject=f"booking:{waiting}", kind="confirmed")
    link = f"{BASE}/m/{waiting}{short_token('test-secret', waiting)}"
    assert link in pending.body  # the phone still gets the working link
    assert pending.redacted_body == pending.body.replace(link, f"{BASE}/m/{waiting}********")
    admin = make_client()
    sign_in(admin, "admin")
    page = admin.get("/staff/messages").text
    for reference in (sent, waiting):
        assert short_token("test-secret", reference) not in page


def test_answers_to_a_familys_texts_are_shown_to_the_administrators_of_where_it_booked(
    make_client, db
):
    """A help answer belongs to no booking: it is shown to the administrators of the prisons
    the phone booked at, and to no other prison's."""
    make_staff(db, "admin", StaffRole.ADMIN)
    make_staff(db, "admin.mujeres", StaffRole.ADMIN, ("MUJERES-CUSCO",))
    client = make_client()
    book(client, open_slot(client)["id"])  # from PHONE, at Quencoro
    stranger = "+51911122233"  # never booked anywhere
    with db.writing() as s:
        for sid, sender in (("SMhelp1", PHONE), ("SMhelp2", stranger)):
            handle_inbound(s, provider_sid=sid, sender=sender, body="hola?", policy=SMS, now=NOW)
    with db.read_session() as s:
        answer = s.scalar(select(OutboxMessage).where(OutboxMessage.kind == "help").limit(1))
        help_text = answer.body[:40]
    admin = make_client()
    sign_in(admin, "admin")
    theirs = text(admin.get("/staff/messages", params={"phone": PHONE}))
    assert help_text in theirs
    assert "1 mensaje." not in theirs  # with the booking's own messages
    assert help_text not in text(admin.get("/staff/messages", params={"phone": stranger}))
    other = make_client()
    sign_in(other, "admin.mujeres")
    assert help_text not in text(other.get("/staff/messages"))


def test_the_delivery_page_shows_status_error_and_history_filtered(make_client, db):
    make_staff(db, "nacional", StaffRole.ADMIN, (), national=True)
    admin = make_client()
    reference = book(admin, open_slot(admin)["id"]).json()["reference"]
    assert book(admin, open_slot(admin)["id"], phone="912345678", visitors=[
        {"first_names": "Ana", "last_names": "Rojas", "doc_type": "dni", "doc_number": "41111111",
         "birth_date": "1980-01-01", "relationship": "sibling", "sex": "F"}
    ], inmate="Q10002", surname="Puma").status_code == 201  # fmt: skip
    with db.writing() as s:
        failed = s.scalar(select(OutboxMessage).where(OutboxMessage.kind == "confirmed"))
        failed.status, failed.error_code, failed.error_message = (
            MessageStatus.FAILED,
            "21614",
            "not a mobile number",
        )
    sign_in(admin, "nacional")
    page = admin.get("/staff/messages", params={"reference": reference})
    shown = text(page)
    assert "21614" in shown
    assert "not a mobile number" in shown
    subject = f"booking:{reference.replace('-', '')}"
    assert shown.count("+51987654321") == len(queued(db, subject=subject)) >= 2
    assert "+51912345678" not in shown
    by_status = admin.get("/staff/messages", params={"status": "failed"})
    assert text(by_status).count("21614") == 1
    bad = admin.get("/staff/messages", params={"phone": "12", "day": "x"})
    assert bad.status_code == 422
    assert "Escribe un número de celular" in text(bad)
    for far in ("9999-12-31", "0001-01-01"):
        refused = admin.get("/staff/messages", params={"day": far})  # no day after 9999-12-31
        assert refused.status_code == 422
        assert "Elige una fecha de" in text(refused)
        assert f'value="{far}"' in refused.text


def test_the_delivery_page_counts_in_the_singular_and_says_when_it_shows_only_the_newest(
    make_client, db, monkeypatch
):
    make_staff(db, "nacional", StaffRole.ADMIN, (), national=True)
    admin = make_client()
    sign_in(admin, "nacional")
    with db.writing() as s:
        for n in range(4):
            enqueue(s, Draft(f"+5198765432{n}", f"aviso {n}", "es", f"t{n}", "broadcast"), NOW)
    one = text(admin.get("/staff/messages", params={"phone": "+51987654320"}))
    assert "1 mensaje." in one
    assert "1 mensajes" not in one
    every = text(admin.get("/staff/messages"))
    assert "4 mensajes, los más recientes primero." in every
    assert "Hay más" not in every
    monkeypatch.setattr(admin_pages, "PAGE_SIZE", 3)
    cut = text(admin.get("/staff/messages"))
    assert "Los 3 mensajes más recientes. Hay más:" in cut
    assert "aviso 3" in cut  # the newest three
    assert "aviso 0" not in cut  # the oldest left out


def test_the_delivery_page_says_in_spanish_why_a_message_was_not_sent(make_client, db):
    """A reminder withdrawn by a cancellation reads as such, not as the outbox's own words."""
    make_staff(db, "nacional", StaffRole.ADMIN, (), national=True)
    admin = make_client()
    created = book(admin, open_slot(admin)["id"]).json()
    cancelled = admin.post(
        f"/api/v1/bookings/{created['reference']}/cancel", headers=bearer(created["manage_token"])
    )
    assert cancelled.status_code == 200, cancelled.text
    sign_in(admin, "nacional")
    shown = text(admin.get("/staff/messages", params={"reference": created["reference"]}))
    assert "Motivo: se canceló la reserva" in shown
    assert "No enviado (cancelado): se canceló la reserva" in shown  # in its history too
    for english in ("superseded", "booking cancelled"):
        assert english not in shown


def test_every_reason_a_message_records_reads_in_spanish():
    from visits.i18n import use_locale
    from web.labels import MESSAGE_REASON_PREFIXES, MESSAGE_REASONS, message_reason

    with use_locale("es"):
        for reason in MESSAGE_REASONS:
            assert message_reason(reason) not in ("", reason), reason
        for prefix in MESSAGE_REASON_PREFIXES:
            said = message_reason(f"{prefix}: 20429")
            assert said.endswith(": 20429")
            assert not said.startswith(prefix), said
        assert message_reason("Twilio could not find a route") == "Twilio could not find a route"


def test_each_verified_phone_is_trusted_for_its_own_days(monkeypatch):
    """A shared browser: verifying one phone does not renew trust in the others."""
    from types import SimpleNamespace

    from starlette.responses import Response

    from web import verified_phones

    state = SimpleNamespace(
        secret_key="k",
        settings=SimpleNamespace(verified_phone_days=30, public_base_url=BASE),
    )
    cookies: dict[str, str] = {}
    request = SimpleNamespace(app=SimpleNamespace(state=state), cookies=cookies)
    day = 86_400
    now = [1_800_000_000.0]
    monkeypatch.setattr(verified_phones.time, "time", lambda: now[0])

    def verify(phone):
        response = Response()
        verified_phones.remember(request, response, phone)
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "Secure" in cookie
        assert "samesite=lax" in cookie.lower()
        cookies[verified_phones.COOKIE] = cookie.split(";")[0].split("=", 1)[1].strip('"')

    verify("+51987654321")
    now[0] += 29 * day
    verify("+51912345678")
    assert verified_phones.is_verified(request, "+51987654321")
    now[0] += 2 * day  # 31 days after the first phone, 2 after the second
    assert not verified_phones.is_verified(request, "+51987654321")
    assert verified_phones.is_verified(request, "+51912345678")
    assert not verified_phones.is_verified(request, "+51900000000")
    cookies[verified_phones.COOKIE] = "tampered" + cookies[verified_phones.COOKIE]
    assert not verified_phones.is_verified(request, "+51912345678")


def test_staff_read_every_kind_and_status_of_message_in_their_language():
    from notifications.outbox import MessageStatus
    from visits.i18n import use_locale
    from visits.sms import TEXTS
    from web.labels import message_kind, message_status

    with use_locale("es"):
        assert {message_kind(kind) for kind in TEXTS} & set(TEXTS) == set()  # none untranslated
        assert [message_status(s) for s in MessageStatus] == [
            "Por enviar",
            "Enviándose",
            "Enviado",
            "Entregado",
            "No entregado",
            "Falló",
            "No enviado (cancelado)",
        ]


def test_the_booking_page_says_when_no_sms_will_reach_its_phone(client, db):
    """A family whose phone opted out, or was found unable to receive SMS, is told on its
    booking page that no confirmation or reminder will come, and what to do about it."""
    with db.writing() as s:
        recipients.opt_out(s, PHONE, "BAJA", NOW)
    _, location = booked(client)
    compact = re.search(r"/b/([A-Z0-9-]+)", location).group(1).replace("-", "")
    told = {m.error_code for m in queued(db, subject=f"booking:{compact}")}
    assert told == {"opted_out"}  # recorded as cancelled: nothing will come
    client.cookies.set("lang", "en")  # the English msgids, whatever the catalog holds
    page = text(client.get(location))
    assert "This phone asked not to receive our messages" in page
    word = re.search(r"send the word (\w+) by SMS", page).group(1)
    assert intent(word) is Intent.OPT_IN
    assert "could not reach this phone" not in page

    with db.writing() as s:
        recipients.opt_in(s, PHONE, NOW)
        recipients.mark_unreachable(s, PHONE, "30006", NOW)
    page = text(client.get(location))
    assert "Our messages could not reach this phone" in page
    assert "asked not to receive" not in page

    with db.writing() as s:
        recipients.proven_reachable(s, PHONE, NOW)
    page = text(client.get(location))
    assert "could not reach" not in page
    assert "asked not to receive" not in page
