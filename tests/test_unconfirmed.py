"""Bookings waiting for their SMS code are capped: per client address, per person visited, and
never a whole week (the foreign numbers are tests/test_countries.py's); and so are the code SMS
one client address has sent in an hour, first codes and new ones alike.

The tester's finding: from one client, five bookings for one person with made-up documents and
foreign mobiles were all held, ten codes went abroad, and the real family met
``weekly_limit_reached`` for two weeks, again every ten minutes. Then, within those caps, one
address still had about 15 codes sent every 10 minutes to Peruvian numbers of its choosing.
On each database (the races are tests/test_races.py's).
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.responses import Response

from notifications.outbox import OutboxMessage
from tests.factories import NOW, SMS, make_inmate, make_prison, make_slot, request_for, visitor
from tests.test_api import bearer, book, slots
from tests.test_pages import confirm, csrf, identify, text, visitor_form
from visits.audit import AuditEvent
from visits.booking import (
    Booking,
    BookingStatus,
    cancel_booking,
    create_booking,
    resend_code,
    verify_booking,
)
from visits.i18n import use_locale
from visits.inmate import Inmate
from visits.prison import Prison
from visits.problems import Code, Problem, Rejected, message
from visits.schedule import Slot
from web import verified_phones

# The cap on codes per client as low as the holds cap lets one client reach in a test.
HOLDING = dataclasses.replace(SMS, verification=True, code_sends_per_client=6)
SATURDAY = date(2026, 12, 5)
NEXT_SATURDAY = date(2026, 12, 12)
CODE = re.compile(r"\b(\d{6})\b")


def code_sent(session, reference: str) -> str:
    body = session.scalars(
        select(OutboxMessage.body)
        .where(OutboxMessage.subject == f"booking:{reference}", OutboxMessage.kind == "code")
        .order_by(OutboxMessage.id.desc())
    ).first()
    return CODE.search(body).group(1)


def attempt(db, inmate: str, day: date, n: int, client: str | None, *, now=NOW, **kw) -> str:
    """One booking of one visitor (document and phone of its own): its status, or why not."""
    try:
        with db.writing() as s:
            booked = create_booking(
                s,
                prison=s.scalar(select(Prison)),
                inmate=s.scalar(select(Inmate).where(Inmate.code == inmate)),
                request=request_for(
                    s.scalar(select(Slot.id).where(Slot.local_date == day)),
                    visitor(f"4{n:07d}"),
                    phone=f"98765{n:04d}",
                ),
                now=now,
                secret_key="k",
                sms_policy=HOLDING,
                client=client,
                **kw,
            )
            return booked.booking.status.value
    except Rejected as rejected:
        return ",".join(sorted(rejected.codes))


def counts(db) -> tuple[int, int]:
    """Bookings and messages stored."""
    with db.read_session() as s:
        return (
            s.scalar(select(func.count()).select_from(Booking)),
            s.scalar(select(func.count()).select_from(OutboxMessage)),
        )


@pytest.fixture
def prison_db(db):
    """Five people at a prison allowing five visits a week (the week's own cap is then 4),
    a visit time this Saturday and next."""
    with db.writing() as s:
        prison = make_prison(s, visits_per_inmate_per_week=5)
        for i in range(5):
            make_inmate(s, prison, f"Q{i}")
        make_slot(s, prison, SATURDAY, capacity=100)
        make_slot(s, prison, NEXT_SATURDAY, capacity=100)
    return db


def test_one_client_holds_at_most_three_bookings_waiting_for_their_code(prison_db):
    db = prison_db
    here = "198.51.100.7"
    assert [attempt(db, f"Q{i}", SATURDAY, i, here) for i in range(3)] == ["held"] * 3
    before = counts(db)
    assert attempt(db, "Q3", SATURDAY, 3, here) == "too_many_unconfirmed"
    assert counts(db) == before  # nothing booked, no code sent
    # Another address is not held back by this one; nor is a phone verified in this browser.
    assert attempt(db, "Q3", SATURDAY, 4, "203.0.113.9") == "held"
    assert attempt(db, "Q4", SATURDAY, 5, here, phone_verified=True) == "confirmed"
    # Nor does a request from no web request (no client) count against anyone.
    assert attempt(db, "Q4", NEXT_SATURDAY, 6, None) == "held"


def test_the_refusal_says_how_long_until_a_place_frees_up(prison_db):
    db = prison_db
    here = "198.51.100.7"
    for i in range(3):
        assert attempt(db, f"Q{i}", SATURDAY, i, here, now=NOW + timedelta(minutes=i)) == "held"
    with pytest.raises(Rejected) as refused, db.writing() as s:
        create_booking(
            s,
            prison=s.scalar(select(Prison)),
            inmate=s.scalar(select(Inmate).where(Inmate.code == "Q3")),
            request=request_for(s.scalar(select(Slot.id)), visitor("49999999")),
            now=NOW + timedelta(minutes=4),
            secret_key="k",
            sms_policy=HOLDING,
            client=here,
        )
    # The first hold (made at NOW, for 10 minutes) ends in 6 minutes: then one place frees.
    assert refused.value.problems == (Problem(Code.TOO_MANY_UNCONFIRMED, None, {"minutes": 6}),)
    with use_locale("en"):
        assert "wait 6 minutes" in message(refused.value.problems[0])
        assert "wait 1 minute and" in message(
            Problem(Code.TOO_MANY_UNCONFIRMED, None, {"minutes": 1})
        )


def test_a_confirmed_cancelled_or_expired_hold_frees_its_place(prison_db):
    db = prison_db
    here = "198.51.100.7"
    assert [attempt(db, f"Q{i}", SATURDAY, i, here) for i in range(3)] == ["held"] * 3
    with db.writing() as s:
        first, second, _ = s.scalars(select(Booking).order_by(Booking.id)).all()
        verify_booking(s, first, code_sent(s, first.reference), now=NOW, sms_policy=HOLDING)
        second_id = second.id
    assert attempt(db, "Q3", SATURDAY, 3, here) == "held"  # the confirmed one's place
    assert attempt(db, "Q4", SATURDAY, 4, here) == "too_many_unconfirmed"
    with db.writing() as s:
        cancel_booking(s, s.get(Booking, second_id), now=NOW, actor="family", sms_policy=HOLDING)
    assert attempt(db, "Q4", SATURDAY, 4, here) == "held"  # the cancelled one's place
    assert attempt(db, "Q1", NEXT_SATURDAY, 5, here) == "too_many_unconfirmed"
    # Once the holds' 10 minutes are over they count no more, released by the worker or not.
    later = NOW + HOLDING.verification_time
    assert attempt(db, "Q1", NEXT_SATURDAY, 5, here, now=later) == "held"
    with db.read_session() as s:
        assert s.scalar(select(func.count()).where(Booking.status == BookingStatus.HELD)) == 4


def test_one_person_has_at_most_two_bookings_waiting_for_their_code(prison_db):
    db = prison_db
    # From three addresses: the cap on the person visited holds whoever books.
    assert attempt(db, "Q0", SATURDAY, 0, "198.51.100.1") == "held"
    assert attempt(db, "Q0", NEXT_SATURDAY, 1, "198.51.100.2") == "held"
    before = counts(db)
    assert attempt(db, "Q0", SATURDAY, 2, "198.51.100.3") == "too_many_unconfirmed"
    assert attempt(db, "Q0", NEXT_SATURDAY, 2, None) == "too_many_unconfirmed"
    assert counts(db) == before
    assert attempt(db, "Q1", SATURDAY, 3, "198.51.100.3") == "held"  # another person
    # A phone already verified in this browser books at once: it is never held.
    assert attempt(db, "Q0", SATURDAY, 4, "198.51.100.3", phone_verified=True) == "confirmed"


def test_held_bookings_never_take_a_whole_week(db):
    """Where a person may have two visits a week, one of them is never taken by a booking
    still waiting for its code: a family whose phone is verified can always book it."""
    with db.writing() as s:
        prison = make_prison(s, visits_per_inmate_per_week=2)
        make_inmate(s, prison, "Q0")
        make_slot(s, prison, SATURDAY, capacity=100)
        make_slot(s, prison, NEXT_SATURDAY, capacity=100)
    assert attempt(db, "Q0", SATURDAY, 0, "198.51.100.1") == "held"
    assert attempt(db, "Q0", SATURDAY, 1, "198.51.100.2") == "too_many_unconfirmed"
    assert attempt(db, "Q0", NEXT_SATURDAY, 2, "198.51.100.2") == "held"  # another week
    family = attempt(db, "Q0", SATURDAY, 3, "203.0.113.9", phone_verified=True)
    assert family == "confirmed"
    assert attempt(db, "Q0", SATURDAY, 4, "198.51.100.3", phone_verified=True) == (
        "weekly_limit_reached"
    )


def test_where_a_week_has_one_visit_a_hold_takes_it_for_its_minutes_only(db):
    with db.writing() as s:
        prison = make_prison(s, visits_per_inmate_per_week=1)
        make_inmate(s, prison, "Q0")
        make_slot(s, prison, SATURDAY, capacity=100)
    assert attempt(db, "Q0", SATURDAY, 0, "198.51.100.1") == "held"
    assert attempt(db, "Q0", SATURDAY, 1, "203.0.113.9") == (
        "too_many_unconfirmed,weekly_limit_reached"
    )


def test_the_address_of_a_booking_is_in_its_history(prison_db):
    db = prison_db
    assert attempt(db, "Q0", SATURDAY, 0, "2001:db8::7") == "held"
    assert attempt(db, "Q1", SATURDAY, 1, "2001:db8::7", phone_verified=True) == "confirmed"
    with db.read_session() as s:
        events = s.execute(
            select(AuditEvent.action, AuditEvent.origin)
            .where(AuditEvent.action.in_(["booking.held", "booking.created"]))
            .order_by(AuditEvent.id)
        ).all()
    assert [tuple(e) for e in events] == [
        ("booking.held", "2001:db8::7"),
        ("booking.created", "2001:db8::7"),
    ]


# --- The tester's scenario, through the API and the pages -------------------------------------

ATTACKER = ("198.51.100.66", 40000)
FAMILY = ("190.42.17.3", 50000)
PHONE = "+51987654321"


def from_address(client: TestClient, address: tuple[str, int]) -> TestClient:
    """Another client of the same app, from another address."""
    other = TestClient(client.app, base_url="https://testserver", client=address)
    return other


def visitor_entry(n: int) -> dict[str, str]:
    return {
        "first_names": "Ana",
        "last_names": "Pérez",
        "doc_type": "dni",
        "doc_number": f"7{n:07d}",
        "birth_date": "1990-01-01",
        "relationship": "friend",
        "sex": "F",
    }


def remember_phone(client: TestClient, phone: str) -> None:
    """This browser verified ``phone`` on an earlier visit (the cookie the code page sets)."""
    request = SimpleNamespace(app=client.app, cookies={})
    response = Response()
    verified_phones.remember(request, response, phone)
    value = response.headers["set-cookie"].split(";")[0].split("=", 1)[1].strip('"')
    client.cookies.set(verified_phones.COOKIE, value)


def test_the_testers_scenario_is_capped_and_the_family_still_books(make_client, db):
    app = make_client(phone_verification=True)
    attacker = from_address(app, ATTACKER)
    women = [s for s in slots(app) if s["state"] == "open" and s["visitor_group"] == "women"]
    weeks = sorted({_week(s) for s in women})
    assert len(weeks) == 2  # the demo's booking window holds two weeks of women's days
    # Five bookings for one person, alternating between the weeks, each its own document
    # and mobile (Peruvian now: see the test of foreign numbers below).
    by_week = [[s for s in women if _week(s) == week] for week in weeks]
    chosen = [by_week[i % 2][i // 2] for i in range(5)]
    answers = [
        book(attacker, s["id"], visitors=[visitor_entry(i)], phone=f"98765430{i}")
        for i, s in enumerate(chosen)
    ]
    assert [a.status_code for a in answers] == [201, 201, 429, 429, 429]
    refused = answers[2].json()["errors"]
    assert [(e["code"], e["field"]) for e in refused] == [("too_many_unconfirmed", None)]
    with use_locale("es"):
        expected = message(Problem(Code.TOO_MANY_UNCONFIRMED, None, {"minutes": 10}))
    assert refused[0]["message"] == expected
    # Asking for new codes: 5 a phone an hour, and the cap per address below that.
    for created in answers[:2]:
        out = created.json()
        for _ in range(5):
            attacker.post(
                f"/api/v1/bookings/{out['reference']}/code", headers=bearer(out["manage_token"])
            )
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Booking)) == 2
        codes = s.scalar(select(func.count()).where(OutboxMessage.kind == "code"))
        assert codes == 10  # 2 bookings × 5 codes a phone an hour, where there were 5 × 5
    # The real family, whose phone this browser verified on an earlier visit, books this
    # week's visit at once: the week's other visit was never held.
    family = from_address(app, FAMILY)
    remember_phone(family, PHONE)
    assert identify(family).status_code == 303
    form = visitor_form(by_week[0][1]["id"], csrf(family, "/p/QUENCORO"))
    done = confirm(family, form, "family-key")
    assert done.status_code == 303, text(done)
    assert "done=booked" in done.headers["location"]
    with db.read_session() as s:
        statuses = s.scalars(select(Booking.status).order_by(Booking.id)).all()
    assert statuses == [BookingStatus.HELD, BookingStatus.HELD, BookingStatus.CONFIRMED]


def _week(slot: dict) -> int:
    return date.fromisoformat(slot["local_date"]).isocalendar().week


def test_a_family_without_a_verified_phone_is_told_to_wait_on_the_page(make_client, db):
    app = make_client(phone_verification=True)
    attacker = from_address(app, ATTACKER)
    women = [s for s in slots(app) if s["state"] == "open" and s["visitor_group"] == "women"]
    assert book(attacker, women[0]["id"], visitors=[visitor_entry(0)]).status_code == 201
    family = from_address(app, FAMILY)
    assert identify(family).status_code == 303
    form = visitor_form(women[1]["id"], csrf(family, "/p/QUENCORO"))
    assert _week(women[1]) == _week(women[0])
    before = counts(db)
    refused = confirm(family, form, "family-key")
    assert refused.status_code == 429
    with use_locale("es"):
        assert message(Problem(Code.TOO_MANY_UNCONFIRMED, None, {"minutes": 10})) in text(refused)
    assert counts(db) == before
    # Ten minutes later the hold is over and the family books (and is sent its code).
    app.app.state.clock = lambda: NOW + timedelta(minutes=10)
    form["csrf_token"] = csrf(family, "/p/QUENCORO")
    assert "/verify?token=" in confirm(family, form, "family-key-2").headers["location"]


# --- Code SMS per client address ----------------------------------------------------------------


def resend(db, reference: str, client: str | None, *, now=NOW) -> str:
    """Ask for a new code of a held booking: 'sent', or why not."""
    try:
        with db.writing() as s:
            held = s.scalar(select(Booking).where(Booking.reference == reference))
            resend_code(s, held, now=now, sms_policy=HOLDING, client=client)
            return "sent"
    except Rejected as rejected:
        return ",".join(sorted(rejected.codes))


def resend_refused(db, reference: str, client: str, *, now, policy=HOLDING) -> tuple:
    """Why a new code of a held booking is refused."""
    with db.writing() as s:
        held = s.scalar(select(Booking).where(Booking.reference == reference))
        with pytest.raises(Rejected) as refused:
            resend_code(s, held, now=now, sms_policy=policy, client=client)
    return refused.value.problems


def codes_sent(db) -> int:
    with db.read_session() as s:
        return s.scalar(select(func.count()).where(OutboxMessage.kind == "code"))


def test_one_client_has_at_most_six_codes_sent_an_hour_first_ones_and_new_ones(prison_db):
    db = prison_db
    here = "198.51.100.7"
    assert [attempt(db, f"Q{i}", SATURDAY, i, here) for i in range(3)] == ["held"] * 3
    with db.read_session() as s:
        first, *refs = s.scalars(select(Booking.reference).order_by(Booking.id)).all()
    assert [resend(db, ref, here) for ref in (first, *refs)] == ["sent"] * 3
    assert codes_sent(db) == 6
    before = counts(db)
    assert resend(db, first, here) == "too_many_codes_from_client"
    # A place among the holds frees up, but no seventh code goes: no booking either.
    with db.writing() as s:
        booking = s.scalar(select(Booking).where(Booking.reference == first))
        verify_booking(s, booking, code_sent(s, first), now=NOW, sms_policy=HOLDING)
    before = counts(db)
    assert attempt(db, "Q3", SATURDAY, 3, here) == "too_many_codes_from_client"
    assert counts(db) == before  # nothing booked, no code sent
    # Another address is not held back by this one, nor a phone verified in this browser
    # (it is sent no code), nor a request from no web request.
    assert attempt(db, "Q3", SATURDAY, 4, "203.0.113.9") == "held"
    assert attempt(db, "Q4", SATURDAY, 5, here, phone_verified=True) == "confirmed"
    assert resend(db, refs[0], None) == "sent"
    # The codes are counted over the last hour: an hour after them, codes go again.
    assert attempt(db, "Q4", NEXT_SATURDAY, 6, here, now=NOW + timedelta(hours=1)) == "held"


def test_the_code_refusal_says_how_long_until_a_code_may_go_again(prison_db):
    db = prison_db
    here = "198.51.100.7"
    for i in range(3):
        assert attempt(db, f"Q{i}", SATURDAY, i, here, now=NOW + timedelta(minutes=i)) == "held"
    with db.read_session() as s:
        refs = s.scalars(select(Booking.reference).order_by(Booking.id)).all()
    for ref in refs:
        assert resend(db, ref, here, now=NOW + timedelta(minutes=5)) == "sent"
    later = NOW + timedelta(minutes=9)
    # The first code (at NOW) ages out of the hour in 51 minutes: then one more may go.
    expected = Problem(Code.TOO_MANY_CODES_FROM_CLIENT, None, {"minutes": 51})
    assert resend_refused(db, refs[0], here, now=later) == (expected,)
    with use_locale("en"):
        assert "Wait 51 minutes and try again" in message(expected)
        one = Problem(Code.TOO_MANY_CODES_FROM_CLIENT, None, {"minutes": 1})
        assert "Wait 1 minute and" in message(one)
    # Over both limits at once, the longer wait is the one told: here the phone's (one code
    # an hour, its newest sent at NOW + 5 minutes).
    strict = dataclasses.replace(HOLDING, verification_sends_per_hour=1)
    phone_wait = Problem(Code.TOO_MANY_CODES, "code", {"minutes": 56})
    assert resend_refused(db, refs[2], here, now=later, policy=strict) == (phone_wait,)


def test_codes_asked_for_from_one_address_are_capped_in_the_api_and_on_the_pages(make_client, db):
    app = make_client(phone_verification=True, max_code_sms_per_client_per_hour=6)
    attacker = from_address(app, ATTACKER)
    women = [s for s in slots(app) if s["state"] == "open" and s["visitor_group"] == "women"]
    by_week = [[s for s in women if _week(s) == week] for week in sorted({_week(s) for s in women})]
    created = [
        book(attacker, week[0]["id"], visitors=[visitor_entry(i)], phone=f"98765430{i}").json()
        for i, week in enumerate(by_week)
    ]
    assert [c["status"] for c in created] == ["held", "held"]

    def new_code(out: dict):
        path = f"/api/v1/bookings/{out['reference']}/code"
        return attacker.post(path, headers=bearer(out["manage_token"]))

    assert [new_code(created[i % 2]).status_code for i in range(4)] == [200] * 4  # 6 codes
    refused = new_code(created[0])
    assert refused.status_code == 429
    with use_locale("es"):
        expected = message(Problem(Code.TOO_MANY_CODES_FROM_CLIENT, None, {"minutes": 60}))
    assert refused.json() == {
        "errors": [{"code": "too_many_codes_from_client", "field": None, "message": expected}]
    }
    assert codes_sent(db) == 6
    # "Send a new code" on the code page, from the same address: told to wait, nothing sent.
    page = attacker.post(
        f"/b/{created[1]['reference']}/code",
        data={"csrf_token": csrf(attacker, "/find"), "token": created[1]["manage_token"]},
    )
    assert page.status_code == 429
    assert expected in text(page)
    # A neighbour behind the same address, booking on the page: told to wait, the form kept.
    neighbour = from_address(app, ATTACKER)
    assert identify(neighbour, "Q10002", "Puma").status_code == 303
    form = visitor_form(by_week[0][1]["id"], csrf(neighbour, "/p/QUENCORO"))
    before = counts(db)
    answer = confirm(neighbour, form, "neighbour-key")
    assert answer.status_code == 429
    assert expected in text(answer)
    assert 'value="45678912"' in answer.text  # what was typed comes back
    assert counts(db) == before
    # A family there whose phone this browser verified books at once: it is sent no code.
    family = from_address(app, ATTACKER)
    remember_phone(family, PHONE)
    assert identify(family, "Q10002", "Puma").status_code == 303
    form["csrf_token"] = csrf(family, "/p/QUENCORO")
    done = confirm(family, form, "family-key")
    assert "done=booked" in done.headers["location"], text(done)
    assert codes_sent(db) == 6
