"""Administrators' reports, on each database: the figures, and the overbooking check that
must come back empty unless seat counts and bookings disagree."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from sqlalchemy import select

from tests.factories import LIMA_TODAY, NOW, SMS, make_slot, request_for, visitor
from tests.staffing import make_staff, sign_in
from tests.test_pages import text
from visits.booking import Booking, create_booking
from visits.gate import Actor, record_arrival, record_no_show
from visits.inmate import Inmate
from visits.prison import Prison
from visits.reports import overbooked, report
from visits.schedule import Slot
from visits.staff import StaffRole

GUARD = Actor("staff:guardia", "10.0.0.1")


def _two_visits_today(db) -> tuple[int, list[int]]:
    """Two Quencoro bookings this afternoon: one attended, one a no-show."""
    with db.writing() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        inmate = s.scalar(select(Inmate).where(Inmate.code == "Q10001"))
        slot = make_slot(s, prison, LIMA_TODAY, start=time(8), hours=1)
        ids = [
            create_booking(
                s, prison=prison, inmate=inmate, request=request_for(slot, visitor(dni)),
                now=NOW - timedelta(days=3), secret_key="k", sms_policy=SMS,
            ).booking.id
            for dni in ("46000001", "46000002")
        ]  # fmt: skip
        slot_id = slot.id
    with db.writing() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        first = s.get(Booking, ids[0])
        record_arrival(s, prison=prison, visitor_id=first.visitors[0].id, actor=GUARD, now=NOW)
        record_no_show(s, prison=prison, booking_id=ids[1], actor=GUARD, now=NOW)
    return slot_id, ids


def test_the_report_counts_visits_attendance_and_sms(make_client, db):
    make_client()  # the demo prisons
    _two_visits_today(db)
    with db.read_session() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        figures = report(s, prison, LIMA_TODAY - timedelta(days=1), LIMA_TODAY)
    assert [d.booked for d in figures.days] == [0, 2]
    assert figures.attended == 1
    assert figures.no_shows == 1
    assert figures.attendance_rate == 0.5
    assert sum(figures.sms.values()) >= 2  # each family's confirmation
    assert figures.delivery_rate is None  # nothing reported delivered or failed yet
    assert figures.overbooked == []


def test_the_overbooking_check_finds_seats_that_disagree_with_bookings(make_client, db):
    make_client()
    slot_id, _ = _two_visits_today(db)
    with db.writing() as s:
        s.get(Slot, slot_id).seats_taken += 1  # what a bug in seat counting would leave
    with db.read_session() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        [found] = overbooked(s, prison)
    assert (found.slot_id, found.seats_taken, found.seats_booked) == (slot_id, 3, 2)


def test_administrators_read_the_report_page(make_client, db):
    make_staff(db, "admin", StaffRole.ADMIN)
    client = make_client()
    _two_visits_today(db)
    sign_in(client, "admin")
    page = client.get("/staff/p/QUENCORO/reports")
    assert page.status_code == 200
    shown = text(page)
    assert "Ninguna hora de visita tiene sobrecupo." in shown
    assert "Vinieron: 1 · Nadie vino: 1" in shown
    bad = client.get(
        "/staff/p/QUENCORO/reports", params={"first": "2026-12-05", "last": "2026-12-01"}
    )
    assert bad.status_code == 422


@pytest.mark.parametrize(
    "params",
    [
        {"first": "9999-12-31", "last": "9999-12-31"},
        {"first": "9999-12-01"},
        {"last": "9999-12-31"},
        {"first": "0001-01-01", "last": "0001-01-02"},
    ],
)
def test_days_far_off_are_refused_before_any_arithmetic(make_client, db, params):
    make_staff(db, "admin", StaffRole.ADMIN)
    client = make_client()
    sign_in(client, "admin")
    page = client.get("/staff/p/QUENCORO/reports", params=params)
    assert page.status_code == 422
    assert "Elige una fecha de" in text(page)
    for value in params.values():
        assert f'value="{value}"' in page.text
