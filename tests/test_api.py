"""The JSON API, in-process on the demo data with the clock fixed, on each database."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from visits.audit import AuditEvent
from visits.i18n import use_locale
from visits.problems import Audience, Code, Problem, message
from visits.schedule import Slot

REFERENCE = re.compile(r"^[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}$")


def slots(client, code="QUENCORO", **params):
    response = client.get(f"/api/v1/prisons/{code}/slots", params=params)
    assert response.status_code == 200, response.text
    return [slot for day in response.json()["days"] for slot in day["slots"]]


def open_slot(client, group="women", code="QUENCORO"):
    return next(
        s for s in slots(client, code) if s["state"] == "open" and s["visitor_group"] == group
    )


def body(slot_id, *, inmate="Q10001", surname="Yupanqui", visitors=None, phone="987654321"):
    return {
        "prison": "QUENCORO",
        "inmate": {"code": inmate, "surname": surname},
        "slot_id": slot_id,
        "visitors": visitors
        or [
            {
                "first_names": "María",
                "last_names": "Quispe",
                "doc_type": "dni",
                "doc_number": "45678912",
                "birth_date": "1985-07-25",
                "relationship": "partner",
                "sex": "F",
            }
        ],
        "contact_phone": phone,
    }


def book(client, slot_id, **kwargs):
    headers = kwargs.pop("headers", {})
    return client.post("/api/v1/bookings", json=body(slot_id, **kwargs), headers=headers)


def book_from(client, slot, address, **kwargs):
    """Book as a client at ``address``, on the app of ``client``."""
    with TestClient(client.app, base_url="https://testserver", client=(address, 5555)) as other:
        return book(other, slot["id"], **kwargs)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_prisons_and_their_rules(client):
    prisons = client.get("/api/v1/prisons").json()
    assert [p["code"] for p in prisons] == ["QUENCORO", "MUJERES-CUSCO"]  # by name
    quencoro = prisons[0]
    assert quencoro["rules"]["max_visitors"] == 3
    assert quencoro["timezone"] == "America/Lima"


def test_slots_show_seats_states_groups_and_closures(client):
    response = client.get("/api/v1/prisons/QUENCORO/slots").json()
    days = {d["date"]: d for d in response["days"]}
    assert days["2026-12-13"]["closed_reason"] == "Requisa general del penal"
    assert {s["state"] for s in days["2026-12-13"]["slots"]} == {"closed"}
    wednesday = days["2026-12-02"]["slots"]
    assert [(s["local_start"], s["state"]) for s in wednesday] == [
        ("09:00", "open"),
        ("11:30", "open"),
        ("14:00", "closed"),
    ]
    assert wednesday[0]["seats_left"] == 150
    assert wednesday[0]["visitor_group"] == "women"
    assert wednesday[0]["starts_at"] == "2026-12-02T14:00:00Z"
    assert max(days) == "2026-12-13"  # 14 days ahead of 1 December, no further


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"from": "2026-12-10", "to": "2026-12-01"}, "invalid_date_range"),
        ({"to": "2027-06-01"}, "invalid_date_range"),
        ({"from": "x"}, "invalid_request"),
    ],
)
def test_slot_ranges_are_checked(client, params, code):
    """A range backwards or too long has its own code, and words a person can read (a
    program's developer also gets the rule in ``detail``)."""
    response = client.get("/api/v1/prisons/QUENCORO/slots", params=params)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["code"] == code
    if code == "invalid_date_range":
        assert error["field"] == "to"
        assert "62" in error["message"]
        assert "62 days later" in error["detail"]


def test_unknown_prison_is_404(client):
    response = client.get("/api/v1/prisons/NOPE/slots")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "prison_not_found"
    # A NUL (which PostgreSQL refuses to compare) or an overlong code names no prison either.
    for odd in ("QUEN%00CORO", "Q" * 33):
        odd_code = client.get(f"/api/v1/prisons/{odd}/slots")
        assert odd_code.status_code == 404, odd
        assert odd_code.json()["errors"][0]["code"] == "prison_not_found"
        family_page = client.get(f"/p/{odd}/slots")
        assert family_page.status_code == 404, odd
        assert "Traceback" not in family_page.text
    nul_body = client.post("/api/v1/bookings", json=body(1) | {"prison": "A\x00B"})
    assert nul_body.status_code == 422
    assert nul_body.json()["errors"][0]["field"] == "prison"
    booking = client.post("/api/v1/bookings", json=body(1) | {"prison": "NOPE"})
    assert booking.status_code == 404
    assert booking.json()["errors"] == [
        {
            "code": "prison_not_found",
            "field": "prison",
            "message": "Este penal no acepta reservas por internet.",
        }
    ]


def test_book_read_cancel(client, db):
    slot = open_slot(client)
    created = book(client, slot["id"])
    assert created.status_code == 201, created.text
    data = created.json()
    assert REFERENCE.match(data["reference"])
    assert data["status"] == "confirmed"
    booking = data["booking"]
    assert booking["inmate"] == "Carlos Yupanqui"
    assert booking["contact_phone"] == "+51987654321"
    assert booking["manage_url"].startswith(f"https://visitas.example.pe/b/{data['reference']}")
    token = data["manage_token"]

    read = client.get(f"/api/v1/bookings/{data['reference']}", headers=bearer(token))
    assert read.status_code == 200
    assert read.json()["slot"]["id"] == slot["id"]
    for headers in ({}, bearer("wrong"), bearer("")):
        refused = client.get(f"/api/v1/bookings/{data['reference']}", headers=headers)
        assert refused.status_code == 404
        assert refused.json()["errors"][0]["code"] == "booking_not_found"

    cancelled = client.post(f"/api/v1/bookings/{data['reference']}/cancel", headers=bearer(token))
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    with db.read_session() as s:
        assert s.get(Slot, slot["id"]).seats_taken == 0


def test_a_cancel_sent_again_answers_the_booking_cancelled_once(client, db):
    """A client retrying a cancel whose answer was lost gets the booking, not a refusal:
    one cancellation in the history, one SMS to the family."""
    from notifications.outbox import OutboxMessage
    from visits.audit import AuditEvent

    data = book(client, open_slot(client)["id"]).json()
    cancel = f"/api/v1/bookings/{data['reference']}/cancel"
    first = client.post(cancel, headers=bearer(data["manage_token"]))
    again = client.post(cancel, headers=bearer(data["manage_token"]))
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert again.json()["cancelled_why"] == "family"
    with db.read_session() as s:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.entity == "booking"))
        assert [a for a in actions if a.startswith("booking.cancelled")] == ["booking.cancelled"]
        kinds = s.scalars(select(OutboxMessage.kind).order_by(OutboxMessage.id)).all()
        assert kinds.count("cancelled") == 1


def test_a_cancel_of_a_booking_the_prison_cancelled_is_still_refused(client, db):
    """Not the caller's cancel: 409, and reading the booking says why."""
    from tests.factories import NOW, SMS
    from visits.closing import ClosureRequest, close
    from visits.prison import prison_by_code

    slot = open_slot(client)
    data = book(client, slot["id"]).json()
    with db.writing() as s:
        day = s.get(Slot, slot["id"]).local_date
        close(s, prison_by_code(s, "QUENCORO"), ClosureRequest(day, None, "Requisa"), now=NOW,
              actor="staff:admin", origin="", sms_policy=SMS)  # fmt: skip
    auth = bearer(data["manage_token"])
    refused = client.post(f"/api/v1/bookings/{data['reference']}/cancel", headers=auth)
    assert refused.status_code == 409
    assert [e["code"] for e in refused.json()["errors"]] == ["booking_not_active"]
    read = client.get(f"/api/v1/bookings/{data['reference']}", headers=auth).json()
    assert read["cancelled_why"] == "closed"


def test_the_code_sent_again_answers_the_booking_confirmed_once(make_client, db):
    """The code that confirmed the booking, sent again, answers the booking as it is (no
    second confirmation, no second SMS); another code is still 409 ``not_held``."""
    from notifications.outbox import OutboxMessage
    from tests.test_unconfirmed import code_sent
    from visits.audit import AuditEvent

    client = make_client(phone_verification=True)
    data = book(client, open_slot(client)["id"]).json()
    assert data["status"] == "held"
    with db.read_session() as s:
        code = code_sent(s, data["booking"]["reference"].replace("-", ""))
    verify = f"/api/v1/bookings/{data['reference']}/verify"
    auth = bearer(data["manage_token"])
    first = client.post(verify, json={"code": code}, headers=auth)
    with db.read_session() as s:
        sent = s.scalars(select(OutboxMessage.kind).order_by(OutboxMessage.id)).all()
    again = client.post(verify, json={"code": code}, headers=auth)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert again.json()["status"] == "confirmed"
    other = f"{(int(code) + 1) % 10**6:06d}"
    refused = client.post(verify, json={"code": other}, headers=auth)
    assert refused.status_code == 409
    assert [e["code"] for e in refused.json()["errors"]] == ["not_held"]
    with db.read_session() as s:
        assert s.scalars(select(OutboxMessage.kind).order_by(OutboxMessage.id)).all() == sent
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.entity == "booking"))
        assert list(actions).count("booking.confirmed") == 1


@contextmanager
def transactions(db):
    """Counts the transactions begun on ``db`` (on SQLite a write one takes the write lock)."""
    begun: list[object] = []
    listen = begun.append
    event.listen(db.engine, "begin", listen)
    try:
        yield begun
    finally:
        event.remove(db.engine, "begin", listen)


def test_each_change_takes_the_write_lock_once(client, db):
    """The answer is read before the commit: reading it after would begin a second write
    transaction (the write lock again, on SQLite) for what the first one already knew."""
    women = [s for s in slots(client) if s["state"] == "open" and s["visitor_group"] == "women"]
    first, second = women[:2]
    with transactions(db) as begun:
        created = book(client, first["id"])
    assert created.status_code == 201, created.text
    assert len(begun) == 1
    reference, token = created.json()["reference"], created.json()["manage_token"]
    with transactions(db) as begun:
        moved = client.post(
            f"/api/v1/bookings/{reference}/move",
            json={"slot_id": second["id"]},
            headers=bearer(token),
        )
    assert moved.status_code == 200, moved.text
    assert moved.json()["slot"]["id"] == second["id"]
    assert len(begun) == 1
    with transactions(db) as begun:
        cancelled = client.post(f"/api/v1/bookings/{reference}/cancel", headers=bearer(token))
    assert cancelled.json()["status"] == "cancelled"
    assert len(begun) == 1


def test_every_problem_at_once_in_the_callers_language(client):
    slot = open_slot(client)
    bad = body(slot["id"])
    bad["visitors"][0] |= {"doc_number": "123", "first_names": "<b>x</b>", "sex": "M"}
    bad["contact_phone"] = "12"
    spanish = client.post("/api/v1/bookings", json=bad)
    assert spanish.status_code == 422
    errors = spanish.json()["errors"]
    assert {(e["code"], e["field"]) for e in errors} == {
        ("invalid_dni", "visitors.0.doc_number"),
        ("invalid_name", "visitors.0.first_names"),
        ("invalid_phone", "contact_phone"),
        ("slot_women_only", "visitors.0.sex"),  # an adult man on a women's day, whatever else
    }
    dni = next(e for e in errors if e["code"] == "invalid_dni")
    assert "8" in dni["message"]
    assert "DNI" in dni["message"]
    english = client.post("/api/v1/bookings", json=bad, headers={"Accept-Language": "en"})
    messages = {e["code"]: e["message"] for e in english.json()["errors"]}
    assert messages["invalid_dni"] == "A DNI has exactly 8 digits, for example 45678912."
    assert messages["invalid_dni"] != dni["message"]


def test_the_party_rules_come_back_with_the_field_errors(client):
    slot = open_slot(client)
    child = body(slot["id"])["visitors"][0] | {
        "first_names": "Luz", "doc_number": "70000001", "birth_date": "2015-01-01",
        "relationship": "child",
    }  # fmt: skip
    other = child | {"first_names": "Juan", "doc_number": "70000002", "relationship": ""}
    response = book(client, slot["id"], visitors=[child, other])
    assert response.status_code == 422
    assert {(e["code"], e["field"]) for e in response.json()["errors"]} == {
        ("required", "visitors.1.relationship"),
        ("adult_required", "visitors"),
    }
    adult = body(slot["id"])["visitors"][0]
    man = adult | {"first_names": "José", "doc_number": "40000003", "sex": "M"}
    response = book(client, slot["id"], visitors=[adult, adult | {"relationship": ""}, man])
    assert {(e["code"], e["field"]) for e in response.json()["errors"]} == {
        ("required", "visitors.1.relationship"),
        ("duplicate_visitor", "visitors.1.doc_number"),
        ("slot_women_only", "visitors.2.sex"),
    }


def test_rules_come_back_as_typed_codes(client):
    slot = open_slot(client)
    man = body(slot["id"])
    man["visitors"][0]["sex"] = "M"
    response = client.post("/api/v1/bookings", json=man)
    assert response.status_code == 422
    assert [e["code"] for e in response.json()["errors"]] == ["slot_women_only"]


def test_a_full_slot_is_409_and_says_how_many_places_are_left(client, db):
    slot = open_slot(client)
    with db.writing() as s:
        row = s.get(Slot, slot["id"])
        row.capacity = 1
    two = body(slot["id"])
    two["visitors"].append(
        two["visitors"][0]
        | {"doc_number": "70000001", "first_names": "Luz", "relationship": "child"}
    )
    response = client.post("/api/v1/bookings", json=two)
    assert response.status_code == 409
    error = response.json()["errors"][0]
    assert error["code"] == "slot_full"
    assert error["message"].startswith("Solo queda 1 lugar")
    assert book(client, slot["id"]).status_code == 201
    last = book(client, slot["id"], inmate="Q10002", surname="Puma")
    assert last.status_code == 409


def test_identification_is_neutral_and_throttled(client):
    slot = open_slot(client)
    unknown = book(client, slot["id"], inmate="Q99999")
    wrong = book(client, slot["id"], surname="Mamani")
    assert unknown.status_code == wrong.status_code == 422
    assert unknown.json() == wrong.json()
    assert unknown.json()["errors"][0]["code"] == "inmate_not_identified"
    for _ in range(4):  # five failures for this inmate in all
        book(client, slot["id"], surname="Mamani")
    throttled = book(client, slot["id"])  # even the right details wait now
    assert throttled.status_code == 429
    assert throttled.json()["errors"][0]["code"] == "too_many_attempts"
    other = book(client, slot["id"], inmate="Q10002", surname="Puma")
    assert other.status_code == 201  # the limit is per inmate (and per client, at 10)


def retry_after_minutes(response) -> int:
    """The minutes a 429 asks to wait, from its ``Retry-After`` header (RFC 9110: seconds),
    which must agree with the wait its message tells a person."""
    assert response.status_code == 429
    seconds = int(response.headers["Retry-After"])
    [minutes] = {int(m) for m in re.findall(r"(\d+) minutos", response.text)}
    assert seconds == minutes * 60
    return minutes


def test_a_429_says_in_retry_after_when_to_try_again(client):
    """A program cannot read the wait out of a message in the family's language."""
    slot = open_slot(client)
    for _ in range(5):
        book(client, slot["id"], surname="Mamani")
    assert 1 <= retry_after_minutes(book(client, slot["id"])) <= 60


def test_a_429_for_bookings_waiting_for_their_code_says_when_one_frees(make_client):
    client = make_client(phone_verification=True)
    saturday = open_slot(client, group="men")
    men = [{**body(0)["visitors"][0], "first_names": "Juan", "sex": "M"}]
    assert book(client, saturday["id"], visitors=men).json()["status"] == "held"
    brother = [{**men[0], "first_names": "Luis", "doc_number": "41111111"}]
    waiting = book(client, saturday["id"], visitors=brother)  # one held per person a week
    assert [e["code"] for e in waiting.json()["errors"]] == ["too_many_unconfirmed"]
    assert retry_after_minutes(waiting) == 10  # when the first hold ends


def test_a_refusal_that_waiting_would_not_mend_is_no_429(make_client):
    """A request refused both for a wait and for what it says (a woman on a men's visit) is
    422, with every problem: a program told 429 would wait and send it again, refused again
    for what no wait mends. Only a request refused for waits alone is 429."""
    client = make_client(phone_verification=True)
    saturday = open_slot(client, group="men")
    men = [{**body(0)["visitors"][0], "first_names": "Juan", "sex": "M"}]
    assert book(client, saturday["id"], visitors=men).json()["status"] == "held"
    sister = [{**men[0], "first_names": "Rosa", "doc_number": "41111111", "sex": "F"}]
    refused = book(client, saturday["id"], visitors=sister)
    assert refused.status_code == 422, refused.text
    assert "Retry-After" not in refused.headers
    assert {e["code"] for e in refused.json()["errors"]} == {
        "slot_men_only",
        "too_many_unconfirmed",
    }


def test_rotating_addresses_of_one_ipv6_64_are_one_client(client):
    """Any cheap server has 2**64 addresses: a fresh one per guess must not be a fresh client."""
    slot = open_slot(client)
    for i in range(5):  # the failures one client may have for one inmate
        assert (
            book_from(client, slot, f"2001:db8:1:2::{i + 1:x}", surname="Mamani").status_code == 422
        )
    throttled = book_from(client, slot, "2001:db8:1:2:ffff:ffff:ffff:ffff")  # the right surname
    assert throttled.status_code == 429
    assert throttled.json()["errors"][0]["code"] == "too_many_attempts"
    assert (
        book_from(client, slot, "2001:db8:1:3::1").status_code == 201
    )  # another /64 is someone else


def test_a_person_paused_by_many_networks_failing_says_both_details_still_pass(client):
    slot = open_slot(client)
    for i in range(30):  # the per-inmate ceiling, one failure from each of 30 networks
        assert book_from(client, slot, f"2001:db8:{i}::1", surname="Mamani").status_code == 422
    paused = book_from(client, slot, "2001:db8:ffff::1")  # the right surname alone
    assert paused.status_code == 429
    [problem] = paused.json()["errors"]
    assert problem["code"] == "identify_paused"
    assert "tanto el primer apellido como la fecha de nacimiento" in problem["message"]
    both = body(slot["id"])
    both["inmate"]["birth_date"] = "2003-12-02"
    with TestClient(client.app, base_url="https://testserver", client=("2001:db8:fffe::1", 1)) as c:
        assert c.post("/api/v1/bookings", json=both).status_code == 201


def test_ipv4_clients_count_by_their_address(client):
    slot = open_slot(client)
    for _ in range(5):
        assert book_from(client, slot, "198.51.100.7", surname="Mamani").status_code == 422
    # The same address written as IPv4-mapped IPv6 is the same client.
    assert book_from(client, slot, "::ffff:198.51.100.7").status_code == 429
    assert book_from(client, slot, "198.51.100.8").status_code == 201


def test_released_inmates_cannot_be_booked(client):
    slot = open_slot(client)
    response = book(client, slot["id"], inmate="Q10018", surname="Huarcaya")
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "inmate_not_active"


def test_an_idempotency_key_books_once(client):
    slot = open_slot(client)
    headers = {"Idempotency-Key": "retry-abc"}
    first = book(client, slot["id"], headers=headers)
    second = book(client, slot["id"], headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.json()["reference"] == second.json()["reference"]
    assert first.json()["manage_token"] == second.json()["manage_token"]
    assert open_slot(client)["seats_left"] == 149


def test_a_reused_idempotency_key_never_returns_someone_elses_booking(client):
    slot = open_slot(client)
    headers = {"Idempotency-Key": "1"}
    mine = book(client, slot["id"], headers=headers).json()
    theirs = body(slot["id"], inmate="Q10002", surname="Puma", phone="912345678")
    theirs["visitors"][0]["doc_number"] = "41111111"
    response = client.post("/api/v1/bookings", json=theirs, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "submission_key_reused"
    # Named as the header a program sent, as a key refused for its length is (no request of
    # the API has a field named submission_key).
    overlong = client.post("/api/v1/bookings", json=theirs, headers={"Idempotency-Key": "k" * 65})
    assert response.json()["errors"][0]["field"] == overlong.json()["errors"][0]["field"]
    assert response.json()["errors"][0]["field"] == "header.idempotency-key"
    assert mine["manage_token"] not in response.text
    assert "+51987654321" not in response.text


def test_move_keeps_the_booking_when_it_fails(client):
    wednesday, other = [
        s for s in slots(client) if s["state"] == "open" and s["visitor_group"] == "women"
    ][:2]
    created = book(client, wednesday["id"]).json()
    token, ref = created["manage_token"], created["reference"]
    moved = client.post(
        f"/api/v1/bookings/{ref}/move", json={"slot_id": other["id"]}, headers=bearer(token)
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["slot"]["id"] == other["id"]
    men = open_slot(client, "men")
    refused = client.post(
        f"/api/v1/bookings/{ref}/move", json={"slot_id": men["id"]}, headers=bearer(token)
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["code"] == "slot_men_only"
    foreign = open_slot(client, "anyone", code="MUJERES-CUSCO")
    elsewhere = client.post(
        f"/api/v1/bookings/{ref}/move", json={"slot_id": foreign["id"]}, headers=bearer(token)
    )
    assert elsewhere.json()["errors"][0]["code"] == "slot_not_found"
    after = client.get(f"/api/v1/bookings/{ref}", headers=bearer(token)).json()
    assert after["slot"]["id"] == other["id"]


def test_a_retried_move_answers_the_booking_moved_once(client, db):
    """The same move sent again with its Idempotency-Key (the first answer was lost) is not
    refused as ``same_slot``: it answers the booking as it is, moved once and told once. A
    move to the slot the booking is in, without a key or with a new one, is still refused."""
    wednesday, other = [
        s for s in slots(client) if s["state"] == "open" and s["visitor_group"] == "women"
    ][:2]
    created = book(client, wednesday["id"]).json()
    ref, headers = created["reference"], bearer(created["manage_token"])
    retry = headers | {"Idempotency-Key": "move-7c0f6a52"}
    url = f"/api/v1/bookings/{ref}/move"
    first = client.post(url, json={"slot_id": other["id"]}, headers=retry)
    assert first.status_code == 200, first.text
    again = client.post(url, json={"slot_id": other["id"]}, headers=retry)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    for refused_headers in (headers, headers | {"Idempotency-Key": "another-key-1234"}):
        same = client.post(url, json={"slot_id": other["id"]}, headers=refused_headers)
        assert same.status_code == 422, same.text
        assert [e["code"] for e in same.json()["errors"]] == ["same_slot"]
    with db.read_session() as session:
        moves = session.scalars(
            select(AuditEvent).where(
                AuditEvent.entity_id == ref.replace("-", ""), AuditEvent.action == "booking.moved"
            )
        ).all()
        seats = {s.id: s.seats_taken for s in session.scalars(select(Slot))}
    assert len(moves) == 1
    assert seats[other["id"]] == other["capacity"] - other["seats_left"] + 1
    assert seats[wednesday["id"]] == wednesday["capacity"] - wednesday["seats_left"]


@pytest.mark.parametrize(
    ("language", "accept", "kept"),
    [
        ("en-US", None, "en"),
        ("EN", None, "en"),
        ("fr", "en-GB,en;q=0.8", "en"),
        # A first choice not offered, or weighted lower, gives way to one that is.
        ("fr", "fr-FR, en;q=0.8", "en"),
        ("de", "es;q=0.2, en;q=0.9", "en"),
        ("de", "en;q=0, es", "es"),
        ("de", "fr, en;q=bad", "es"),
    ],
)
def test_the_booking_language_is_read_as_a_language_tag(client, language, accept, kept):
    """Its SMS go out in it: "en-US" is English, and a language not offered is the caller's."""
    headers = {"Accept-Language": accept} if accept else {}
    payload = body(open_slot(client)["id"]) | {"language": language}
    created = client.post("/api/v1/bookings", json=payload, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["booking"]["language"] == kept


@pytest.mark.parametrize("slot_id", [999999999999, "99999999999", 2**31])
def test_slot_ids_no_database_integer_holds_are_unknown_slots(client, slot_id):
    created = book(client, open_slot(client)["id"]).json()
    refused = client.post(
        "/api/v1/bookings", json=body(slot_id) | {"inmate": {"code": "Q10002", "surname": "Puma"}}
    )
    assert refused.status_code == 422, refused.text
    assert [e["code"] for e in refused.json()["errors"]] == ["slot_not_found"]
    moved = client.post(
        f"/api/v1/bookings/{created['reference']}/move",
        json={"slot_id": slot_id},
        headers=bearer(created["manage_token"]),
    )
    assert moved.status_code == 422, moved.text
    assert [e["code"] for e in moved.json()["errors"]] == ["slot_not_found"]


def test_true_is_not_a_slot_id(client, db):
    """JSON ``true`` is no id (read as a number, it would book slot 1)."""
    refused = book(client, True)
    assert refused.status_code == 422
    assert [(e["code"], e["field"]) for e in refused.json()["errors"]] == [
        ("invalid_request", "slot_id")
    ]
    with db.read_session() as s:
        assert s.get(Slot, 1).seats_taken == 0


def test_malformed_bodies_get_the_same_error_shape(client):
    slot = open_slot(client)
    extra = body(slot["id"]) | {"admin": True}
    too_many = body(slot["id"])
    too_many["visitors"] = too_many["visitors"] * 11
    huge = body(slot["id"])
    huge["visitors"][0]["first_names"] = "x" * 500
    for payload in (extra, too_many, huge, {"prison": "QUENCORO"}):
        response = client.post("/api/v1/bookings", json=payload)
        assert response.status_code == 422
        for error in response.json()["errors"]:
            assert error["code"] == "invalid_request"
            assert error["message"] == "Esta solicitud no es válida."  # in the caller's language
            assert error["detail"]  # the technical reason, for the program's developer
    not_json = client.post(
        "/api/v1/bookings", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    assert [e["field"] for e in not_json.json()["errors"]] == [None]  # not "1", a character
    wrong_method = client.put("/api/v1/bookings/ABCD-2345", json={})
    assert wrong_method.status_code == 405
    assert wrong_method.json()["errors"][0]["code"] == "method_not_allowed"
    assert "GET" in wrong_method.headers["allow"]


@pytest.mark.parametrize(
    "content",
    [
        b'{"prison": "\xff"}',  # not UTF-8
        b"[" * 20_000 + b"]" * 20_000,  # nested too deep to read
        b'{"slot_id": 1' + b"0" * 5_000 + b"}",  # a number too long to read
    ],
    ids=["not-utf8", "too-deep", "long-number"],
)
def test_a_body_that_cannot_be_read_as_json_is_a_documented_422(client, content):
    """Not FastAPI's 400, which neither the README nor the OpenAPI document mention."""
    response = client.post(
        "/api/v1/bookings", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["code"], error["field"]) == ("invalid_request", None)
    assert "JSON" in error["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "text/plain;charset=UTF-8"},
        {"Content-Type": "application/x-www-form-urlencoded"},
    ],
    ids=["none", "fetch-default", "curl-default"],
)
def test_a_json_body_sent_without_its_content_type_says_what_is_missing(client, headers):
    """A browser's fetch() of a string, or curl -d without -H, sends JSON under another
    type: the detail says so, not that "the input should be a valid dictionary"."""
    content = json.dumps(body(open_slot(client)["id"])).encode()
    response = client.post("/api/v1/bookings", content=content, headers=headers)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["code"], error["field"]) == ("invalid_request", None)
    assert "Content-Type: application/json" in error["detail"]


def test_pages_of_other_sites_cannot_call_the_api_from_a_browser(client):
    """No CORS, by decision: a page elsewhere could otherwise have each of its visitors'
    browsers guess identities from their own address, past the per-address limits. Its
    preflight is refused and no answer lets its script read it; a "simple" POST a browser
    sends without asking (text/plain) is refused above as not JSON, and books nothing."""
    origin = {"Origin": "https://elsewhere.example"}
    preflight = client.options(
        "/api/v1/bookings",
        headers=origin
        | {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 405
    for answer in (preflight, client.get("/api/v1/prisons", headers=origin)):
        assert not any(h.lower().startswith("access-control-") for h in answer.headers)


def test_oversized_bodies_are_refused_as_the_openapi_document_says(client):
    response = client.post(
        "/api/v1/bookings", content=b"x" * 70_000, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == "body_too_large"
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    posts = [operations["post"] for operations in paths.values() if "post" in operations]
    for operation in posts:
        documented = operation["responses"]["413"]
        assert "64 KB" in documented["description"]
        assert documented["content"]["application/json"]["schema"]["$ref"].endswith("ErrorsOut")


def test_the_openapi_document_describes_the_flow(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert set(paths) == {
        "/api/v1/prisons",
        "/api/v1/prisons/{code}/slots",
        "/api/v1/bookings",
        "/api/v1/bookings/{reference}",
        "/api/v1/bookings/{reference}/cancel",
        "/api/v1/bookings/{reference}/move",
        "/api/v1/bookings/{reference}/verify",
        "/api/v1/bookings/{reference}/code",
    }
    assert "409" in paths["/api/v1/bookings"]["post"]["responses"]


def test_the_openapi_document_says_how_to_send_the_manage_token(client):
    """OpenAPI ignores a header parameter named Authorization: a client generated from the
    document (or Swagger UI) would have had no way to send the token. A security scheme says
    it, on every call about one booking."""
    document = client.get("/api/v1/openapi.json").json()
    [(name, scheme)] = document["components"]["securitySchemes"].items()
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, operations in document["paths"].items():
        for operation in operations.values():
            headers = {
                p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"
            }
            assert "authorization" not in headers
            about_one = path.startswith("/api/v1/bookings/")
            assert (operation.get("security") == [{name: []}]) == about_one, path


def test_every_key_of_a_real_error_is_in_the_documented_error(client):
    """A client generated from the OpenAPI document that refuses unknown keys (Kotlin's
    serialization does, by default) must still read the API's errors."""
    schema = client.get("/api/v1/openapi.json").json()["components"]["schemas"]["ErrorOut"]
    error = client.post("/api/v1/bookings", json={"extra": 1}).json()["errors"][0]
    assert "detail" in error
    assert set(error) <= set(schema["properties"])
    assert set(schema["required"]) == {"code", "field", "message"}


def test_the_openapi_document_lists_every_error_code(client):
    """A client generated from the document has the codes as a type: every code the domain
    can refuse with (visits.problems.Code, which the API's errors are made of) is in it."""
    document = client.get("/api/v1/openapi.json").json()
    code = document["components"]["schemas"]["ErrorOut"]["properties"]["code"]
    enum = document["components"]["schemas"][code["$ref"].rpartition("/")[2]]["enum"]
    assert set(enum) == {c.value for c in Code}
    error = client.post("/api/v1/bookings", json={"extra": 1}).json()["errors"][0]
    assert error["code"] == "invalid_request"  # the bodies still carry the plain string


@pytest.mark.parametrize("locale", ["es", "en"])
def test_api_404s_are_the_apis_errors_and_speak_of_no_page(client, locale):
    """A program asking for an address the API has not, or a booking that is not there or not
    its own, reads a typed code and words about the API (a page is what people ask for), in
    the language of its Accept-Language."""
    created = book(client, open_slot(client)["id"]).json()
    headers = {"Accept-Language": locale}
    asked = {
        "not_found": [
            client.get("/api/v1/nothing-here", headers=headers),
            client.post("/api/v1/bookings/ABCD-EFGH/nothing", headers=headers),
        ],
        "booking_not_found": [
            client.get("/api/v1/bookings/ABCD-EFGH", headers=headers | bearer("x")),
            client.get(f"/api/v1/bookings/{created['reference']}", headers=headers),
            client.post(f"/api/v1/bookings/{created['reference']}/cancel", headers=headers),
        ],
    }
    for code, answers in asked.items():
        with use_locale(locale):
            words = message(Problem(Code(code)), Audience.API)
        for answer in answers:
            assert answer.status_code == 404, answer.text
            assert answer.headers["content-type"] == "application/json"
            assert answer.json() == {"errors": [{"code": code, "field": None, "message": words}]}
            assert "página" not in words.lower()
            assert "page" not in words.lower()


def test_identification_fields_are_named_under_inmate(client):
    slot = open_slot(client)
    payload = body(slot["id"]) | {"inmate": {"code": "", "birth_date": "31/02/2003"}}
    response = client.post("/api/v1/bookings", json=payload)
    assert response.status_code == 422
    assert {(e["code"], e["field"]) for e in response.json()["errors"]} == {
        ("required", "inmate.code"),
        ("invalid_date", "inmate.birth_date"),
    }
    by_birth_date = body(slot["id"]) | {"inmate": {"code": "q10001", "birth_date": "2003-12-02"}}
    assert client.post("/api/v1/bookings", json=by_birth_date).status_code == 201


def test_odd_characters_are_refusals_not_errors(client):
    slot = open_slot(client)
    created = book(client, slot["id"]).json()
    reference = created["reference"]
    odd_token = {"Authorization": "Bearer ñ".encode()}  # bytes: httpx sends them as they are
    assert client.get(f"/api/v1/bookings/{reference}", headers=odd_token).status_code == 404
    odd_slot = client.post(
        "/api/v1/bookings", json=body("²") | {"inmate": {"code": "Q10002", "surname": "Puma"}}
    )
    assert odd_slot.status_code == 422
    assert odd_slot.json()["errors"][0]["code"] == "slot_not_found"
    moved = client.post(
        f"/api/v1/bookings/{reference}/move",
        json={"slot_id": "²"},
        headers=bearer(created["manage_token"]),
    )
    assert moved.status_code == 422


def test_a_visit_the_gate_already_recorded_cannot_be_moved_by_the_family(client, db):
    """Turned away at the gate this morning, for a visit this afternoon: neither the API nor
    the family's page moves it to another day (the gate's record would go with it)."""
    from tests.factories import NOW
    from tests.staffing import make_staff, sign_in
    from tests.test_pages import csrf
    from tests.test_staff_web import _visit_today
    from visits.booking import Booking, BookingStatus
    from visits.gate import Actor, GateCheck, record_turned_away
    from visits.prison import prison_by_code
    from visits.reference import display, manage_token
    from visits.staff import StaffRole

    reference, visitor_id = _visit_today(db)
    with db.writing() as s:
        record_turned_away(
            s, prison=prison_by_code(s, "QUENCORO"), visitor_id=visitor_id, reason="no_document",
            note="", actor=Actor("staff:guardia", ""), now=NOW,
        )  # fmt: skip
        slot_id = s.scalar(select(Booking.slot_id).where(Booking.reference == reference))
    token, later = manage_token("test-secret", reference), open_slot(client)["id"]
    moved = client.post(
        f"/api/v1/bookings/{reference}/move", json={"slot_id": later}, headers=bearer(token)
    )
    assert moved.status_code == 409, moved.text
    assert [e["code"] for e in moved.json()["errors"]] == ["gate_recorded"]
    page = client.post(
        f"/b/{reference}/move",
        data={"csrf_token": csrf(client), "token": token, "slot_id": str(later)},
    )
    assert page.status_code == 409
    assert client.get(f"/b/{reference}/move", params={"token": token}).status_code == 409
    shown = client.get(f"/b/{reference}", params={"token": token}).text
    assert f"/b/{display(reference)}/move" not in shown  # not offered
    assert f"/b/{display(reference)}/cancel" in shown  # cancelling still is
    make_staff(db, "guardia", StaffRole.GUARD)
    assert sign_in(client, "guardia").status_code == 303
    staff_page = client.get(f"/staff/p/QUENCORO/bookings/{reference}").text
    assert f"/bookings/{reference}/move" not in staff_page
    assert f"/bookings/{reference}/cancel" in staff_page
    with db.read_session() as s:
        booking = s.scalar(select(Booking).where(Booking.reference == reference))
        assert (booking.slot_id, booking.status) == (slot_id, BookingStatus.CONFIRMED)
        assert s.get(GateCheck, visitor_id) is not None


def test_a_cancelled_booking_says_why_in_the_pages_words_and_never_staffs_reason(client, db):
    """Null while it stands; "family" once the family cancelled; "closed" once the prison
    closed its day (the closure's own reason, typed by staff, is not said)."""
    from tests.factories import NOW, SMS
    from visits.closing import ClosureRequest, close
    from visits.i18n import gettext, use_locale
    from visits.prison import prison_by_code

    slot = open_slot(client)
    rosa = body(0)["visitors"][0] | {"first_names": "Rosa", "doc_number": "45678913"}
    mine, theirs = (
        book(client, slot["id"]).json(),
        book(client, slot["id"], inmate="Q10002", surname="Puma", visitors=[rosa]).json(),
    )
    standing = client.get(
        f"/api/v1/bookings/{mine['reference']}", headers=bearer(mine["manage_token"])
    )
    assert standing.json()["status"] == "confirmed"
    assert standing.json()["cancelled_why"] is None
    assert standing.json()["cancelled_message"] is None

    cancelled = client.post(
        f"/api/v1/bookings/{mine['reference']}/cancel", headers=bearer(mine["manage_token"])
    ).json()
    with use_locale("es"):
        family = gettext("Cancelled at your request.")
        closed = gettext("The prison has no visits at that time. We are sorry.")
    assert (cancelled["cancelled_why"], cancelled["cancelled_message"]) == ("family", family)
    read = client.get(
        f"/api/v1/bookings/{mine['reference']}",
        headers={**bearer(mine["manage_token"]), "Accept-Language": "en"},
    ).json()
    assert read["cancelled_message"] == "Cancelled at your request."

    with db.writing() as s:
        day = s.get(Slot, slot["id"]).local_date
        request = ClosureRequest(day, None, "Requisa por motín en el pabellón B")
        close(s, prison_by_code(s, "QUENCORO"), request, now=NOW, actor="staff:admin", origin="",
              sms_policy=SMS)  # fmt: skip
    answer = client.get(
        f"/api/v1/bookings/{theirs['reference']}", headers=bearer(theirs["manage_token"])
    )
    assert answer.json()["status"] == "cancelled"
    assert (answer.json()["cancelled_why"], answer.json()["cancelled_message"]) == (
        "closed",
        closed,
    )
    assert "Requisa" not in answer.text


def test_the_cancel_causes_the_api_documents_are_those_the_domain_gives():
    from typing import get_args

    from visits.booking import BY_FAMILY, HOLD_EXPIRED, CancelCause
    from web.api import CancelledWhy

    assert set(get_args(CancelledWhy)) == {*CancelCause, BY_FAMILY, HOLD_EXPIRED}
