"""The whole SMS story, black-box: real server and worker processes, the real ``twilio``
client, and the fake Twilio on 127.0.0.1, on each database.

A family books through the API, reads the code from its "phone" (the fake), verifies, gets the
confirmation and a reminder, answers 2 by SMS (a signed inbound webhook), and its seats come
back while the remaining reminders are cancelled. Delivery reports reach the server signed.
The reminder is made due within seconds by the reminder offset setting, computed from the
slot the family books (the clock is real: these are separate processes).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day

import httpx
import pytest
from sqlalchemy import select

from notifications.outbox import MessageStatus, OutboxMessage
from tests.fake_twilio import FakeTwilio, running_fake_twilio
from tests.server import free_port, run_cli, running_server, running_worker, server_env
from visits.prison import Prison
from visits.rules import VisitorGroup
from visits.schedule import Slot

pytestmark = pytest.mark.slow

PHONE = "+51987654321"
SENDER = "+15005550006"
CODE = re.compile(r"\b(\d{6})\b")
REMINDER_IN = timedelta(seconds=25)


def wait_for(what: str, found: Callable[[], object], timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := found():
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def texts_to(fake: FakeTwilio, phone: str, containing: str) -> list[str]:
    return [m.body for m in fake.messages() if m.to == phone and containing in m.body]


def bookable_slot(db, now: datetime) -> Slot:
    """The first women's-day (or open) slot of the demo prison that is still bookable."""
    with db.read_session() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        return s.scalar(
            select(Slot)
            .where(
                Slot.prison_id == prison.id,
                Slot.starts_at > now + timedelta(hours=prison.booking_closes_hours, minutes=30),
                Slot.visitor_group.in_([VisitorGroup.WOMEN, VisitorGroup.ANYONE]),
            )
            .order_by(Slot.starts_at)
            .limit(1)
        )


def test_book_verify_confirm_remind_reply_two_and_get_the_seats_back(db, db_url):
    port = free_port()
    assert run_cli("demo", env=server_env(db_url, port)).returncode == 0
    slot = bookable_slot(db, datetime.now(UTC))
    # The one reminder is due REMINDER_IN from now.
    hours_before = (slot.starts_at - datetime.now(UTC) - REMINDER_IN).total_seconds() / 3600
    with running_fake_twilio(auto_status=["sent", "delivered"]) as fake:
        settings = {
            "VISITS_PHONE_VERIFICATION": "true",
            "VISITS_RUN_JOBS_IN_PROCESS": "false",
            "VISITS_TWILIO_ACCOUNT_SID": fake.account_sid,
            "VISITS_TWILIO_AUTH_TOKEN": fake.auth_token,
            "VISITS_TWILIO_FROM": SENDER,
            "VISITS_TWILIO_API_BASE_URL": fake.base_url,
            "VISITS_DISPATCH_EVERY_SECONDS": "0.5",
            "VISITS_REMINDER_HOURS_BEFORE": f"[{hours_before:.6f}]",
        }
        with (
            running_server(db_url, port=port, **settings) as server,
            running_worker(db_url, port=port, **settings) as worker,
        ):
            base = server.base
            before = seats_left(base, slot.id)
            booked_at = datetime.now(UTC)
            created = httpx.post(f"{base}/api/v1/bookings", json=request(slot.id), timeout=30)
            assert created.status_code == 201, created.text
            booking = created.json()
            assert booking["status"] == "held"
            reference, token = booking["reference"], booking["manage_token"]
            auth = {"Authorization": f"Bearer {token}"}
            assert seats_left(base, slot.id) == before - 1  # held while the code travels

            [code_text] = wait_for("the code", lambda: texts_to(fake, PHONE, "codigo"))
            code = CODE.search(code_text).group(1)
            verified = httpx.post(
                f"{base}/api/v1/bookings/{reference}/verify", json={"code": code}, headers=auth
            )
            assert verified.status_code == 200, verified.text
            assert verified.json()["status"] == "confirmed"

            [confirmation] = wait_for(
                "the confirmation", lambda: texts_to(fake, PHONE, f"{reference} confirmada")
            )
            assert "/m/" in confirmation
            [reminder] = wait_for(
                "the reminder", lambda: texts_to(fake, PHONE, "Responda 1 si viene"), timeout=90
            )
            assert reference in reminder
            wait_for("delivery reports", lambda: delivered(db, reference) >= 3)

            answered = fake.send_inbound(f"{base}/twilio/inbound", PHONE, SENDER, "2")
            assert answered.status_code == 200
            got = httpx.get(f"{base}/api/v1/bookings/{reference}", headers=auth).json()
            assert got["status"] == "cancelled"
            assert wait_for("the seats back", lambda: seats_left(base, slot.id) == before)
            [cancellation] = wait_for(
                "the cancellation", lambda: texts_to(fake, PHONE, "cancelada"), timeout=30
            )
            assert reference in cancellation
            wait_for("its delivery report", lambda: delivered(db, reference) == 4)
            assert worker.process.poll() is None
    assert fake.duplicates() == []
    states = message_states(db, reference)
    for kind in ("code", "confirmed", "reminder", "cancelled"):
        assert states[kind] == [MessageStatus.DELIVERED], states
    # The morning reminder (07:00 at the prison) was queued if still ahead at booking, and
    # cancelled with the booking.
    with db.read_session() as s:
        tz = s.scalar(select(Prison).where(Prison.code == "QUENCORO")).tz
    morning = datetime.combine(slot.local_date, time_of_day(7), tz)
    ahead = booked_at < morning < slot.starts_at
    assert states.get("morning", []) == ([MessageStatus.CANCELLED] if ahead else [])


def request(slot_id: int) -> dict:
    return {
        "prison": "QUENCORO",
        "inmate": {"code": "Q10001", "surname": "Yupanqui"},
        "slot_id": slot_id,
        "visitors": [
            {
                "first_names": "María",
                "last_names": "Quispe Huamán",
                "doc_type": "dni",
                "doc_number": "45678912",
                "birth_date": "1985-07-25",
                "relationship": "partner",
                "sex": "F",
            }
        ],
        "contact_phone": "987 654 321",
        "language": "es",
    }


def seats_left(base: str, slot_id: int) -> int:
    days = httpx.get(f"{base}/api/v1/prisons/QUENCORO/slots", timeout=30).json()["days"]
    return next(s["seats_left"] for d in days for s in d["slots"] if s["id"] == slot_id)


def message_states(db, reference: str) -> dict[str, list[MessageStatus]]:
    """Each kind of message of the booking and the statuses its messages ended in; the
    morning reminder apart from the one the test made due."""
    states: dict[str, list[MessageStatus]] = {}
    with db.read_session() as s:
        subject = f"booking:{reference.replace('-', '')}"
        for m in s.scalars(select(OutboxMessage).where(OutboxMessage.subject == subject)):
            kind = "morning" if m.dedupe_key.split(":")[3:4] == ["morning"] else m.kind
            states.setdefault(kind, []).append(m.status)
    return states


def delivered(db, reference: str) -> int:
    return sum(
        s is MessageStatus.DELIVERED
        for states in message_states(db, reference).values()
        for s in states
    )
