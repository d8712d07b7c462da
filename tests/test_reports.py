"""Administrators' reports, on each database: the figures, and the overbooking check that
must come back empty unless seat counts and bookings disagree."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import event, insert, select

from notifications.outbox import MessageStatus, OutboxMessage
from tests.factories import LIMA_TODAY, NOW, SMS, make_prison, make_slot, request_for, visitor
from tests.history import History, Person
from tests.staffing import make_staff, sign_in
from tests.test_pages import text
from visits.audit import AuditEvent
from visits.booking import Booking, BookingStatus, create_booking
from visits.gate import Actor, GateStatus, record_arrival, record_no_show
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
        # The confirmations went out three days before the visit: the range holds that day.
        figures = report(s, prison, LIMA_TODAY - timedelta(days=3), LIMA_TODAY, today=LIMA_TODAY)
    assert [d.booked for d in figures.days] == [0, 0, 0, 2]
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
    assert _row(page, LIMA_TODAY) == [2, 1, 1, 0, 0, 0, 0, 0, 0]
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


def _row(page, day: date) -> list[int]:
    """The figures of one day's row of the page's table."""
    row = re.search(rf'<tr data-day="{day.isoformat()}">(.*?)</tr>', page.text, re.S)
    assert row is not None
    return [int(cell) for cell in re.findall(r"<td>(\d+)</td>", row.group(1))]


PAST, FUTURE = LIMA_TODAY - timedelta(days=1), LIMA_TODAY + timedelta(days=2)
IN, AWAY = GateStatus.ARRIVED, GateStatus.TURNED_AWAY


def _tester_history(db) -> None:
    """The exploratory tester's history, in prison LIMA (today is LIMA_TODAY there): on the
    day before, bookings in every state the gate and the jobs leave; two days on, a hold and
    a confirmed booking; SMS created on both sides of the range and of Lima's midnight."""
    with db.writing() as s:
        prison, other = make_prison(s, "LIMA"), make_prison(s, "OTRO")
        h = History(s, prison)
        inmate = h.inmate("L1", None)
        people = iter(h.people([date(1980, 1, 1)] * 20))

        def book(day, gates, status, start=time(9)) -> str:
            party = [Person(next(people), date(1980, 1, 1), False, g) for g in gates]
            [visit, *_] = h.book(inmate, day, party, status, start=start)
            return s.get(Booking, visit.booking_id).reference

        C, X = BookingStatus.CONFIRMED, BookingStatus.CANCELLED
        night = book(PAST, [IN], BookingStatus.ATTENDED, time(22))  # 03:00 UTC the next day
        book(PAST, [IN, AWAY, None], BookingStatus.ATTENDED)  # one in: attended
        book(PAST, [None], BookingStatus.NO_SHOW)
        book(PAST, [AWAY, AWAY], C)  # everyone turned away: stays confirmed
        book(PAST, [None], C)  # the gate never marked it
        book(PAST, [AWAY, None], C)  # one turned away, the other never marked
        cancelled = {
            book(PAST, [None], X): "booking.cancelled",  # by the family
            book(PAST, [None], X): "booking.cancelled_closed",
            book(PAST, [None], X): "booking.hold_expired",
        }
        book(PAST, [None], X)  # no record of why
        book(FUTURE, [None], BookingStatus.HELD)
        later = book(FUTURE, [None], C)
        s.execute(
            insert(AuditEvent),
            [
                {"at": NOW - timedelta(days=3), "actor": "family", "action": action,
                 "entity": "booking", "entity_id": ref, "details": {}}
                for ref, action in cancelled.items()
            ],
        )  # fmt: skip
        family = next(r for r, a in cancelled.items() if a == "booking.cancelled")
        sent = [
            # A confirmation sent before the range for a visit in it: not counted.
            (f"booking:{night}", "confirmation", datetime(2026, 11, 20, tzinfo=UTC), "sent"),
            # Sent in the range for a visit after it: counted.
            (f"booking:{later}", "confirmation", datetime(2026, 12, 1, 12, tzinfo=UTC),
             "delivered"),
            ("prison:LIMA:broadcast", "broadcast", datetime(2026, 11, 30, 15, tzinfo=UTC),
             "failed"),
            (f"booking:{family}", "cancelled", datetime(2026, 11, 30, 14, tzinfo=UTC), "sent"),
            # 23:00 in Lima on the range's last day (04:00 UTC the next): counted.
            (f"booking:{later}", "reminder", datetime(2026, 12, 2, 4, tzinfo=UTC), "pending"),
            # 23:00 in Lima the day before the range (04:00 UTC on its first): not counted.
            (f"booking:{later}", "moved", datetime(2026, 11, 30, 4, tzinfo=UTC), "sent"),
            (f"booking:{later}", "screening_advice", datetime(2026, 12, 1, tzinfo=UTC),
             "sent"),  # health-private
            ("prison:OTRO:broadcast", "broadcast", datetime(2026, 12, 1, tzinfo=UTC), "sent"),
        ]  # fmt: skip
        s.execute(
            insert(OutboxMessage),
            [
                {"recipient": "+51900000001", "body": "x", "language": "es", "segments": 1,
                 "dedupe_key": f"m{n}", "subject": subject, "kind": kind,
                 "status": MessageStatus(status), "send_after": at, "created_at": at,
                 "updated_at": at, "attempts": 0}
                for n, (subject, kind, at, status) in enumerate(sent)
            ],
        )  # fmt: skip
        assert other.id != prison.id


def _lima_report(db, first=PAST, last=LIMA_TODAY):
    with db.read_session() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "LIMA"))
        return report(s, prison, first, last, today=LIMA_TODAY)


def test_the_day_figures_add_up_to_the_booked_visits(db):
    _tester_history(db)
    figures = _lima_report(db, PAST, FUTURE)
    past, future = figures.days[0], figures.days[-1]
    assert (past.booked, past.attended, past.no_show, past.turned_away, past.not_marked) == (
        6, 2, 1, 1, 2,
    )  # fmt: skip
    assert past.attended + past.no_show + past.turned_away + past.not_marked == past.booked
    assert (future.booked, future.to_come, future.not_marked, future.held) == (1, 1, 0, 1)


def test_the_attendance_rate_counts_turned_away_and_unmarked_visits_against_it(db):
    _tester_history(db)
    figures = _lima_report(db, PAST, FUTURE)
    assert (figures.attended, figures.no_shows, figures.turned_away, figures.not_marked) == (
        2, 1, 1, 2,
    )  # fmt: skip
    assert figures.attendance_rate == 2 / 6  # the bookings of days to come left out


def test_people_let_in_and_turned_away_are_counted_apart_from_bookings(db):
    _tester_history(db)
    figures = _lima_report(db)
    assert figures.people == {GateStatus.ARRIVED: 2, GateStatus.TURNED_AWAY: 4}


def test_holds_and_expired_holds_are_apart_and_cancellations_say_why(db):
    _tester_history(db)
    figures = _lima_report(db, PAST, FUTURE)
    past, future = figures.days[0], figures.days[-1]
    assert (future.booked, future.held) == (1, 1)  # the hold is not booked
    assert past.expired == 1
    assert list(figures.cancellations.items()) == [("family", 1), ("closed", 1), (None, 1)]


def test_sms_are_counted_by_the_day_they_were_created_in_the_prison_in_a_fixed_order(db):
    _tester_history(db)
    figures = _lima_report(db)
    assert list(figures.sms.items()) == [
        (MessageStatus.PENDING, 1),
        (MessageStatus.SENT, 1),
        (MessageStatus.DELIVERED, 1),
        (MessageStatus.FAILED, 1),
    ]


def test_the_report_reads_the_same_few_statements_whatever_the_range(db):
    _tester_history(db)
    seen: list[str] = []

    def capture(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    counts = []
    for first, last in ((PAST, PAST), (PAST - timedelta(days=60), FUTURE)):
        seen.clear()
        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            _lima_report(db, first, last)
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)
        counts.append(sum(st.lstrip().upper().startswith(("SELECT", "WITH")) for st in seen))
    assert counts == [5, 5]  # the prison, then days, people, SMS and the overbooking check


def test_the_page_shows_the_tester_history(make_client, db):
    client = make_client()
    _tester_history(db)
    make_staff(db, "admin", StaffRole.ADMIN, prisons=("LIMA",))
    sign_in(client, "admin")
    client.get("/lang/en?next=/staff", follow_redirects=False)
    page = client.get("/staff/p/LIMA/reports", params={"first": PAST, "last": FUTURE})
    assert page.status_code == 200
    # Booked, came in, nobody came, all turned away, not marked, to come, holds, cancelled,
    # expired holds.
    assert _row(page, PAST) == [6, 2, 1, 1, 2, 0, 0, 3, 1]
    assert _row(page, FUTURE) == [1, 0, 0, 0, 0, 1, 1, 0, 0]
    shown = text(page)
    assert "People let in: 2 · people turned away: 4" in shown
    assert "attendance 33%" in shown
    assert "By the family: 1 · Day or visit time closed: 1 · No record of why: 1" in shown


def test_a_reversed_range_is_refused_in_words_that_allow_one_day(make_client, db):
    make_staff(db, "admin", StaffRole.ADMIN)
    client = make_client()
    sign_in(client, "admin")
    client.get("/lang/en?next=/staff", follow_redirects=False)
    bad = client.get(
        "/staff/p/QUENCORO/reports", params={"first": "2026-12-05", "last": "2026-12-01"}
    )
    assert bad.status_code == 422
    assert "The last day cannot be before the first" in text(bad)
    one_day = client.get(
        "/staff/p/QUENCORO/reports", params={"first": "2026-12-01", "last": "2026-12-01"}
    )
    assert one_day.status_code == 200


def test_a_day_left_out_is_set_from_the_one_typed(make_client, db):
    make_staff(db, "admin", StaffRole.ADMIN)
    client = make_client()
    sign_in(client, "admin")
    only_last = client.get("/staff/p/QUENCORO/reports", params={"last": "2026-06-01"})
    assert only_last.status_code == 200
    assert 'value="2026-05-03"' in only_last.text  # the 30 days ending on the day typed
    only_first = client.get("/staff/p/QUENCORO/reports", params={"first": "2025-01-01"})
    assert only_first.status_code == 200
    assert 'value="2025-01-30"' in only_first.text


def test_a_years_bookings_per_day_download_as_a_csv_a_row_a_day(make_client, db):
    """A year's figures, as a spreadsheet wants them for the monthly statistics: every day of
    the range a row (days without visits too), the page's columns, the download audited; a
    range the page refuses gives the page with why, not an empty file."""
    make_staff(db, "admin", StaffRole.ADMIN)
    client = make_client()
    _two_visits_today(db)
    sign_in(client, "admin")
    first = LIMA_TODAY - timedelta(days=365)
    page = client.get("/staff/p/QUENCORO/reports", params={"first": first.isoformat()})
    link = f"/staff/p/QUENCORO/reports.csv?first={first.isoformat()}&amp;last="
    assert link in page.text  # the page links the range it shows
    answer = client.get(
        "/staff/p/QUENCORO/reports.csv",
        params={"first": first.isoformat(), "last": LIMA_TODAY.isoformat()},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(answer.text.removeprefix("\ufeff"))))
    assert rows[0][:3] == ["Día", "Reservada", "Ingresó alguien"]
    assert len(rows) == 1 + 366
    assert rows[1][0] == first.isoformat()
    assert rows[-1] == [LIMA_TODAY.isoformat(), "2", "1", "1", "0", "0", "0", "0", "0", "0"]
    with db.read_session() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "prison.report_downloaded"))
    assert (event.actor, event.details["rows"]) == ("staff:admin", 366)
    bad = client.get(
        "/staff/p/QUENCORO/reports.csv", params={"first": "2026-12-05", "last": "2026-12-01"}
    )
    assert bad.status_code == 422
    assert "text/html" in bad.headers["content-type"]
