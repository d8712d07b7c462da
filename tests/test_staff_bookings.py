"""Staff cancel and move a booking for the family, with a reason; the booking's history shows
who did what, when and from where. On each database."""

from __future__ import annotations

import re
from datetime import date, datetime, time

import pytest
from sqlalchemy import select

from notifications.outbox import OutboxMessage
from tests.factories import LIMA_TODAY, NOW, SMS, add_closure, make_slot
from tests.staffing import make_staff, sign_in, staff_token
from tests.test_api import book, book_from, open_slot, slots
from tests.test_pages import text
from tests.test_races import race
from visits.audit import AuditEvent
from visits.booking import Booking, BookingStatus, cancel_booking, move_booking
from visits.health import AdvisoryKind, Measures, Scope
from visits.inmate import Inmate
from visits.issuing import AdvisoryDraft, issue
from visits.prison import Prison
from visits.problems import Rejected
from visits.rules import VisitorGroup, iso_week_bounds
from visits.schedule import Slot
from visits.staff import StaffRole


@pytest.fixture
def booked(make_client, db):
    """A family's booking at Quencoro, and a guard of Quencoro signed in."""
    make_staff(db, "guardia", StaffRole.GUARD)
    make_staff(db, "admin.mujeres", StaffRole.ADMIN, ("MUJERES-CUSCO",))
    client = make_client()
    slot = open_slot(client)
    answer = book(client, slot["id"])
    assert answer.status_code == 201, answer.text
    sign_in(client, "guardia")
    return client, answer.json()["reference"].replace("-", ""), slot


def _booking(db, reference) -> Booking:
    with db.read_session() as s:
        booking = s.scalar(select(Booking).where(Booking.reference == reference))
        return booking


def _kinds(db, reference) -> list[str]:
    with db.read_session() as s:
        return list(
            s.scalars(
                select(OutboxMessage.kind)
                .where(OutboxMessage.subject == f"booking:{reference}")
                .order_by(OutboxMessage.id)
            )
        )


def test_staff_cancel_for_the_family_with_a_reason_and_the_family_is_told(booked, db):
    client, reference, slot = booked
    page = client.get(f"/staff/p/QUENCORO/bookings/{reference}")
    assert page.status_code == 200
    assert "Reservada" in text(page)  # the history so far
    path = f"/staff/p/QUENCORO/bookings/{reference}/cancel"
    token = staff_token(client)
    missing = client.post(path, data={"csrf_token": token, "reason": "  "})
    assert missing.status_code == 422
    assert 'id="cancel-reason-error"' in missing.text  # beside the form that was sent
    assert 'id="move-reason-error"' not in missing.text
    assert _booking(db, reference).status is BookingStatus.CONFIRMED
    done = client.post(
        path,
        data={"csrf_token": token, "reason": "La familia llamó: está enferma"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert _booking(db, reference).status is BookingStatus.CANCELLED
    with db.read_session() as s:
        assert s.get(Slot, slot["id"]).seats_taken == 0  # the seat is back at once
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "booking.cancelled"))
    assert event.actor == "staff:guardia"
    assert event.origin == "testclient"
    assert event.details["reason"] == "La familia llamó: está enferma"
    assert "cancelled" in _kinds(db, reference)  # the family's SMS, in its language
    shown = text(client.get(done.headers["location"]))
    assert "La familia llamó: está enferma" in shown
    assert "· guardia: La familia llamó" in shown  # where from: for administrators


def test_staff_move_for_the_family_under_every_rule(booked, db):
    client, reference, slot = booked
    other = open_slot(client, group="men")
    path = f"/staff/p/QUENCORO/bookings/{reference}/move"
    token = staff_token(client)
    # A day for men, a woman visiting: the family's own rules apply to staff too.
    refused = client.post(
        path, data={"csrf_token": token, "slot_id": str(other["id"]), "reason": "trabajo"}
    )
    assert refused.status_code == 422
    assert _booking(db, reference).slot_id == slot["id"]
    later = next(
        s["id"]
        for d in client.get("/api/v1/prisons/QUENCORO/slots").json()["days"]
        for s in d["slots"]
        if s["state"] == "open" and s["visitor_group"] == "women" and s["id"] != slot["id"]
    )
    moved = client.post(
        path,
        data={"csrf_token": token, "slot_id": str(later), "reason": "trabajo"},
        follow_redirects=False,
    )
    assert moved.status_code == 303
    assert _booking(db, reference).slot_id == later
    assert "moved" in _kinds(db, reference)


def test_a_move_refused_reads_in_words_for_staff_not_for_the_family(booked, db):
    """Visits to the person paused from a later day: moving there is refused, and the guard
    reads what it means for the family, not "please look again in a few days"."""
    client, reference, slot = booked
    with db.read_session() as s:
        first_day = s.get(Slot, slot["id"]).local_date.isoformat()
    days = client.get("/api/v1/prisons/QUENCORO/slots").json()["days"]
    later_day, later = next(
        (d["date"], s["id"])
        for d in days
        for s in d["slots"]
        if d["date"] > first_day and s["state"] == "open" and s["visitor_group"] == "women"
    )
    with db.writing() as s:
        draft = AdvisoryDraft(
            scope=Scope.INMATE, kind=AdvisoryKind.TB_RESISTANT, inmate_code="Q10001",
            measures=Measures(suspended=True), starts_on=date.fromisoformat(later_day),
        )  # fmt: skip
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        issue(s, prison, draft, now=NOW, actor="staff:salud", origin="", sms_policy=SMS)
    assert _booking(db, reference).status is BookingStatus.CONFIRMED  # its day is before
    assert client.get(f"/staff/p/QUENCORO/bookings/{reference}?lang=en").status_code == 200
    refused = client.post(
        f"/staff/p/QUENCORO/bookings/{reference}/move",
        data={"csrf_token": staff_token(client), "slot_id": str(later), "reason": "trabajo"},
    )
    assert refused.status_code in (409, 422)
    assert (
        "A health measure pauses visits to this person on that day: no visit can be booked "
        "until health staff lift it." in text(refused)
    )
    assert "look again in a few days" not in text(refused)  # the family's words
    assert _booking(db, reference).slot_id == slot["id"]


_KEY = re.compile(r'name="key" value="([^"]*)"')


def _page_key(client, reference) -> str:
    """The one-off key of the booking page's forms ("" where the page gives none)."""
    found = _KEY.search(client.get(f"/staff/p/QUENCORO/bookings/{reference}").text)
    return found.group(1) if found else ""


def _events(db, reference, action) -> int:
    with db.read_session() as s:
        query = select(AuditEvent).where(
            AuditEvent.entity_id == reference, AuditEvent.action == action
        )
        return len(s.scalars(query).all())


def _later_slot(client, slot) -> int:
    """Another open women's visit time of the booking window."""
    return next(
        s["id"]
        for d in client.get("/api/v1/prisons/QUENCORO/slots").json()["days"]
        for s in d["slots"]
        if s["state"] == "open" and s["visitor_group"] == "women" and s["id"] != slot["id"]
    )


def test_the_same_cancel_sent_twice_cancels_once_and_answers_cancelled(booked, db):
    """A double click on "Cancelar la visita": the second post is this very cancel, done, and
    answers as the first did (it said 409 "cancelled or already over"). Another cancel of the
    cancelled booking is still refused: that one was not done."""
    client, reference, slot = booked
    path = f"/staff/p/QUENCORO/bookings/{reference}/cancel"
    data = {"csrf_token": staff_token(client), "reason": "La familia llamó",
            "key": _page_key(client, reference)}  # fmt: skip
    first = client.post(path, data=data, follow_redirects=False)
    second = client.post(path, data=data, follow_redirects=False)
    assert first.status_code == 303
    assert second.status_code == 303, text(second)
    assert second.headers["location"] == first.headers["location"]
    assert "Cancelada. La familia recibe un SMS." in text(client.get(second.headers["location"]))
    assert _booking(db, reference).status is BookingStatus.CANCELLED
    assert _events(db, reference, "booking.cancelled") == 1
    assert _kinds(db, reference).count("cancelled") == 1
    with db.read_session() as s:
        assert s.get(Slot, slot["id"]).seats_taken == 0
    other = client.post(path, data=data | {"key": _page_key(client, reference)})
    assert other.status_code == 409
    assert "Esta reserva fue cancelada o ya pasó" in text(other)


def test_the_same_move_sent_twice_moves_once_and_answers_moved(booked, db):
    """A double click on "Mover la visita": the second post finds the booking in that time by
    this very move and answers "moved" (it said "already at this time")."""
    client, reference, slot = booked
    later = _later_slot(client, slot)
    path = f"/staff/p/QUENCORO/bookings/{reference}/move"
    data = {"csrf_token": staff_token(client), "slot_id": str(later), "reason": "trabajo",
            "key": _page_key(client, reference)}  # fmt: skip
    first = client.post(path, data=data, follow_redirects=False)
    second = client.post(path, data=data, follow_redirects=False)
    assert first.status_code == 303
    assert second.status_code == 303, text(second)
    assert second.headers["location"] == first.headers["location"]
    assert "Cambiada. La familia recibe un SMS" in text(client.get(second.headers["location"]))
    assert _booking(db, reference).slot_id == later
    assert _events(db, reference, "booking.moved") == 1
    assert _kinds(db, reference).count("moved") == 1
    with db.read_session() as s:
        party = _booking(db, reference).party_size
        assert (s.get(Slot, slot["id"]).seats_taken, s.get(Slot, later).seats_taken) == (0, party)
    # Another move to the time the booking is in is still refused: it was not asked before.
    other = client.post(path, data=data | {"key": _page_key(client, reference)})
    assert other.status_code == 422
    assert "ya está en este horario" in text(other)


@pytest.mark.parametrize("action", ["cancel", "move"])
def test_one_staff_change_sent_twice_at_the_same_instant_is_done_once(booked, db, action):
    client, reference, slot = booked
    later = _later_slot(client, slot)
    key = "one-form-key-0123456789"

    def change(_: int) -> str:
        try:
            with db.writing() as s:
                booking = s.scalar(select(Booking).where(Booking.reference == reference))
                if action == "cancel":
                    cancel_booking(s, booking, now=NOW, actor="staff:guardia", sms_policy=SMS,
                                   reason="x", key=key)  # fmt: skip
                else:
                    move_booking(s, booking, slot_id=later, now=NOW, actor="staff:guardia",
                                 sms_policy=SMS, reason="x", key=key)  # fmt: skip
            return "done"
        except Rejected as rejected:
            return ",".join(sorted(rejected.codes))

    assert race(2, change) == {"done": 2}
    done = "booking.cancelled" if action == "cancel" else "booking.moved"
    assert _events(db, reference, done) == 1
    assert _kinds(db, reference).count("cancelled" if action == "cancel" else "moved") == 1
    with db.read_session() as s:
        taken = s.get(Slot, slot["id"]).seats_taken + s.get(Slot, later).seats_taken
    assert taken == (0 if action == "cancel" else _booking(db, reference).party_size)


def test_a_slot_id_no_database_integer_holds_is_an_unknown_slot(booked, db):
    client, reference, slot = booked
    path = f"/staff/p/QUENCORO/bookings/{reference}/move"
    data = {"csrf_token": staff_token(client), "slot_id": "99999999999", "reason": "trabajo"}
    refused = client.post(path, data=data)
    assert refused.status_code == 422
    assert "Ese horario no existe" in text(refused)
    assert _booking(db, reference).slot_id == slot["id"]


def test_a_booking_of_another_prison_is_unknown_there(booked, db, make_client):
    _, reference, _ = booked
    other = make_client()
    sign_in(other, "admin.mujeres")
    assert other.get(f"/staff/p/MUJERES-CUSCO/bookings/{reference}").status_code == 404
    assert other.get(f"/staff/p/QUENCORO/bookings/{reference}").status_code == 403
    token = staff_token(other)
    answer = other.post(
        f"/staff/p/MUJERES-CUSCO/bookings/{reference}/cancel",
        data={"csrf_token": token, "reason": "x"},
    )
    assert answer.status_code == 404
    assert _booking(db, reference).status is BookingStatus.CONFIRMED


def test_the_history_names_why_a_visitor_was_not_let_in(booked, db):
    client, reference, _ = booked
    from visits.audit import record

    with db.writing() as s:  # as the gate records it (see tests/test_gate.py)
        record(s, at=NOW, actor="staff:guardia", action="visitor.turned_away",
               entity="booking", entity_id=reference,
               details={"visitor": 1, "turn_away_reason": "no_document"})  # fmt: skip
    shown = text(client.get(f"/staff/p/QUENCORO/bookings/{reference}"))
    assert "Se negó el ingreso a un visitante (visitante 1) · guardia: Sin documento" in shown


def test_only_administrators_see_where_each_step_came_from(make_client, db):
    """A family's address is for administrators, who look into abuse: a guard sees who did
    what and when, from nowhere, and health staff have no booking page at all."""
    make_staff(db, "guardia", StaffRole.GUARD)
    make_staff(db, "jefa", StaffRole.ADMIN)
    make_staff(db, "salud", StaffRole.HEALTH)
    client = make_client()
    answer = book_from(client, open_slot(client), "203.0.113.7")
    assert answer.status_code == 201, answer.text
    page = f"/staff/p/QUENCORO/bookings/{answer.json()['reference'].replace('-', '')}"
    sign_in(client, "guardia")
    guard = client.get(page)
    assert "Reservada" in text(guard)
    assert "203.0.113.7" not in guard.text
    sign_in(client, "jefa")
    assert "la familia, desde una aplicación (203.0.113.7)" in text(client.get(page))
    sign_in(client, "salud")
    assert client.get(page).status_code in (403, 404)


def _offered(client, reference) -> set[int]:
    page = client.get(f"/staff/p/QUENCORO/bookings/{reference}")
    assert page.status_code == 200
    select_ = page.text.split('<select id="slot_id"', 1)[1].split("</select>", 1)[0]
    return {int(v) for v in re.findall(r'<option value="(\d+)"', select_)}


def _person(doc_number: str, sex: str) -> dict[str, str]:
    return {"first_names": "Pedro" if sex == "M" else "Rosa", "last_names": "Quispe",
            "doc_type": "dni", "doc_number": doc_number, "birth_date": "1980-03-02",
            "relationship": "sibling", "sex": sex}  # fmt: skip


def test_the_move_form_offers_only_times_the_move_would_take(make_client, db):
    """A men's visit is offered neither women's times, nor a closed time, nor one outside the
    booking window, nor a week the person visited has no visit left in: each would be
    refused, and a guard on the phone with a family would pick it first."""
    make_staff(db, "guardia", StaffRole.GUARD)
    client = make_client()
    open_ = [s for s in slots(client) if s["state"] == "open"]
    men = [s for s in open_ if s["visitor_group"] == "men"]
    first_week = iso_week_bounds(date.fromisoformat(men[0]["local_date"]))
    answer = book(client, men[0]["id"], visitors=[_person("41234567", "M")])
    assert answer.status_code == 201, answer.text
    reference = answer.json()["reference"].replace("-", "")
    closed, kept = men[-1], [s["id"] for s in men[1:-1]]
    with db.writing() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        start = datetime.fromisoformat(closed["starts_at"]).astimezone(prison.tz).time()
        add_closure(s, prison, date.fromisoformat(closed["local_date"]), start, "Requisa")
        # Tonight (booking closes 12 hours before) and the Saturday after the window.
        tonight = make_slot(s, prison, LIMA_TODAY, time(20), group=VisitorGroup.MEN).id
        later = make_slot(s, prison, date(2026, 12, 19), group=VisitorGroup.MEN).id
    sign_in(client, "guardia")
    offered = _offered(client, reference)
    assert offered == set(kept)
    assert len({s["local_date"] for s in men if s["id"] in offered}) == 2  # both Saturdays
    assert not offered & {closed["id"], tonight, later}

    # Two other visits to the same person in the second week: its times go from the form.
    second_week = [
        s for s in open_
        if s["visitor_group"] == "women"
        and iso_week_bounds(date.fromisoformat(s["local_date"])) != first_week
    ]  # fmt: skip
    for i, slot in enumerate(second_week[:2]):
        other = book(client, slot["id"], visitors=[_person(f"4200000{i}", "F")])
        assert other.status_code == 201, other.text
    offered = _offered(client, reference)
    assert offered
    assert offered < set(kept)
    assert all(
        iso_week_bounds(date.fromisoformat(s["local_date"])) == first_week
        for s in men
        if s["id"] in offered
    )
    # Whatever the form offers, the move takes.
    path = f"/staff/p/QUENCORO/bookings/{reference}/move"
    choice = max(offered)
    data = {"csrf_token": staff_token(client), "slot_id": str(choice), "reason": "trabajo"}
    assert client.post(path, data=data, follow_redirects=False).status_code == 303
    assert _booking(db, reference).slot_id == choice
    # Visits to the person suspended: no time can take the visit, and the page says so.
    with db.writing() as s:
        inmate = s.scalar(select(Inmate).where(Inmate.code == "Q10001"))
        inmate.visits_suspended_until = date(2030, 12, 31)
    page = client.get(f"/staff/p/QUENCORO/bookings/{reference}?lang=en")
    assert "No other visit time can take this visit now." in text(page)
    assert '<select id="slot_id"' not in page.text
