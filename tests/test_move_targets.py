"""The visit times a booking is offered to move to (:func:`visits.booking.move_targets`):
exactly those :func:`visits.booking.move_booking` would take, soonest first, found in a fixed
number of queries however many times the window holds; on each database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import event, select

from tests.factories import NOW, SMS, add_closure, make_inmate, make_prison, make_slot, request_for
from tests.factories import visitor as person
from visits.advisories import HealthAdvisory
from visits.booking import Booking, cancel_booking, create_booking, move_booking, move_targets
from visits.gate import Actor, record_turned_away
from visits.health import AdvisoryKind, Scope
from visits.inmate import Inmate, InmateSuspension
from visits.prison import Prison, Wing
from visits.problems import Code, Rejected
from visits.rules import VisitorGroup
from visits.schedule import Slot
from visits.visitor import Visitor, VisitorSuspension

# Booking opens 20 days ahead: from Wednesday 2 December (today is Tuesday the 1st) to Monday
# the 21st, four ISO weeks.
OPENS_DAYS = 20
FIRST, LAST = date(2026, 12, 2), date(2026, 12, 21)
DAYS = [FIRST + timedelta(days=n) for n in range((LAST - FIRST).days + 1)]

# The booking to move: a man, a woman and a child of three.
MAN = person("41000001", first_names="Pedro", last_names="Quispe", sex="M")
WOMAN = person("41000002", first_names="Rosa", last_names="Quispe", relationship="sibling")
CHILD = person("81000003", first_names="Ana", birth_date="2023-06-01", relationship="child")


def _others(n: int):
    return person(f"4900000{n}", first_names="Otra", relationship="friend")


def _lima(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=Prison(timezone="America/Lima").tz).astimezone(UTC)


def _book(s, code: str, day: date, *people, at: time = time(9)) -> Booking:
    prison = s.scalar(select(Prison))
    slot = s.scalar(select(Slot).where(Slot.local_date == day, Slot.starts_at == _lima(day, at)))
    return create_booking(
        s,
        prison=prison,
        inmate=s.scalar(select(Inmate).where(Inmate.code == code)),
        request=request_for(slot, *people),
        now=NOW,
        secret_key="k",
        sms_policy=SMS,
    ).booking


def _advise(
    s, prison: Prison, scope: Scope, starts_on: date, *, wing_id, inmate_id=None, **measures
) -> None:
    s.add(
        HealthAdvisory(
            prison_id=prison.id, scope=scope, wing_id=wing_id, inmate_id=inmate_id,
            kind=AdvisoryKind.TB_SUSCEPTIBLE, starts_on=starts_on, created_by="staff:salud",
            created_at=NOW, updated_at=NOW, **measures,
        )
    )  # fmt: skip


@pytest.fixture(params=["inmate", "visitor"])
def varied(db, request) -> str:
    """A prison where every rule refuses some time of the window to the booking of Q1 on
    Saturday 5 December at 9:00, and lets others through; its reference. A suspension covers
    every day up to its last: the longer of the inmate's and the visitor's (the parameter)
    refuses a day on its own."""
    with db.writing() as s:
        prison = make_prison(s, booking_opens_days=OPENS_DAYS, visits_per_inmate_per_week=2)
        other = make_prison(s, "OTRA")
        wing_a = s.scalar(select(Wing).where(Wing.prison_id == prison.id))
        wing_b = Wing(prison_id=prison.id, code="B", name="Pabellón B")
        s.add(wing_b)
        s.flush()
        q1, q2 = make_inmate(s, prison, "Q1"), make_inmate(s, prison, "Q2")
        q1.wing_id = q2.wing_id = wing_a.id
        for day in [*DAYS, LAST + timedelta(days=1)]:  # the last one not open yet
            make_slot(s, prison, day, time(9), capacity=10)
            make_slot(s, prison, day, time(14), capacity=10)
        make_slot(s, prison, date(2026, 12, 5), time(11), group=VisitorGroup.WOMEN)
        make_slot(s, prison, date(2026, 12, 14), time(11), group=VisitorGroup.MEN)
        make_slot(s, prison, date(2026, 12, 17), time(16), capacity=2)  # too small for three
        withdrawn = make_slot(s, prison, date(2026, 12, 18), time(16))
        withdrawn.withdrawn_at = NOW

    with db.writing() as s:
        moving = _book(s, "Q1", date(2026, 12, 5), MAN, WOMAN, CHILD)
        reference = moving.reference
        # Q1's week of the 7th is full (two a week); the week of the 14th has one visit left
        # (a cancelled visit counts for nothing); the week of the move itself still has room,
        # the booking moved being left out of the count (as its visitors' day is).
        _book(s, "Q1", date(2026, 12, 4), _others(1))
        _book(s, "Q1", date(2026, 12, 8), _others(2))
        _book(s, "Q1", date(2026, 12, 10), _others(3))
        _book(s, "Q1", date(2026, 12, 14), _others(4))
        dropped = _book(s, "Q1", date(2026, 12, 15), _others(5))
        cancel_booking(s, dropped, now=NOW, actor="family", sms_policy=SMS)
        # The man visits Q2 on the 4th; the woman's visit to Q2 on the 18th was cancelled.
        _book(s, "Q2", date(2026, 12, 4), MAN, at=time(14))
        dropped = _book(s, "Q2", date(2026, 12, 18), WOMAN)
        cancel_booking(s, dropped, now=NOW, actor="family", sms_policy=SMS)
        seen = _book(s, "Q2", date(2026, 12, 6), WOMAN)
        seen_id = seen.id
    # The gate turns the woman away on the 6th and her visit is cancelled: the day stays hers.
    morning = _lima(date(2026, 12, 6), time(8))
    with db.writing() as s:
        seen = s.get(Booking, seen_id)
        record_turned_away(
            s, prison=seen.prison, visitor_id=seen.visitors[0].id, reason="no_document",
            note="", actor=Actor("staff:guardia", ""), now=morning,
        )  # fmt: skip
    with db.writing() as s:
        cancel_booking(s, s.get(Booking, seen_id), now=morning, actor="family", sms_policy=SMS)

    with db.writing() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "TEST"))
        q1 = s.scalar(select(Inmate).where(Inmate.code == "Q1"))
        woman = s.scalar(select(Visitor).where(Visitor.doc_number == "41000002"))
        inmate_until, visitor_until = (
            (date(2026, 12, 3), FIRST) if request.param == "inmate" else (FIRST, date(2026, 12, 3))
        )
        # Visits to Q1 suspended to the 2nd or 3rd; a longer suspension was lifted.
        s.add(InmateSuspension(inmate_id=q1.id, until=inmate_until, reason="x", created_by="t",
                               created_at=NOW))  # fmt: skip
        s.add(InmateSuspension(inmate_id=q1.id, until=LAST, reason="x", created_by="t",
                               created_at=NOW, lifted_at=NOW))  # fmt: skip
        # The woman barred here to the 3rd or 2nd; elsewhere, and here again but lifted, longer.
        s.add(VisitorSuspension(visitor_id=woman.id, prison_id=prison.id, until=visitor_until))
        s.add(VisitorSuspension(visitor_id=woman.id, prison_id=other.id, until=LAST))
        s.add(VisitorSuspension(visitor_id=woman.id, prison_id=prison.id, until=LAST,
                                lifted_at=NOW))  # fmt: skip
        # Closed: all of the 16th, and the 17th at 9:00.
        add_closure(s, prison, date(2026, 12, 16))
        add_closure(s, prison, date(2026, 12, 17), time(9))
        # Health: no high-risk visitors (the child) from the 19th; visits to Q1 paused from
        # the 20th; advisories over wing B and over Q2 change nothing for Q1.
        _advise(s, prison, Scope.PRISON, date(2026, 12, 19), wing_id=None, no_high_risk=True)
        _advise(s, prison, Scope.INMATE, date(2026, 12, 20), wing_id=wing_a.id,
                inmate_id=q1.id, suspended=True)  # fmt: skip
        _advise(s, prison, Scope.WING, FIRST, wing_id=wing_b.id, suspended=True)
        q2 = s.scalar(select(Inmate).where(Inmate.code == "Q2"))
        _advise(s, prison, Scope.INMATE, FIRST, wing_id=wing_a.id, inmate_id=q2.id,
                suspended=True)  # fmt: skip
    return reference


def _move_refusal(db, reference: str, slot_id: int) -> set[Code]:
    """What :func:`move_booking` says to moving the booking to this time now (nothing: it
    moves), rolled back either way."""
    with db.write_session() as s:
        booking = s.scalar(select(Booking).where(Booking.reference == reference))
        try:
            move_booking(s, booking, slot_id=slot_id, now=NOW, actor="family", sms_policy=SMS)
        except Rejected as rejected:
            return rejected.codes
        finally:
            s.rollback()
    return set()


def _targets(db, reference: str, limit: int) -> list[int]:
    with db.read_session() as s:
        booking = s.scalar(select(Booking).where(Booking.reference == reference))
        return [slot.id for slot in move_targets(s, booking, NOW, limit=limit)]


def test_the_times_offered_are_exactly_those_the_move_takes(varied, db):
    with db.read_session() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "TEST"))
        every = s.scalars(
            select(Slot.id).where(Slot.prison_id == prison.id).order_by(Slot.starts_at)
        ).all()
    refusals = {slot_id: _move_refusal(db, varied, slot_id) for slot_id in every}
    taken = [slot_id for slot_id in every if not refusals[slot_id]]

    assert _targets(db, varied, limit=100) == taken
    assert _targets(db, varied, limit=3) == taken[:3]
    # Every rule refused some time here, and some times passed them all.
    assert set().union(*refusals.values()) >= {
        Code.BOOKING_CLOSED, Code.BOOKING_NOT_OPEN_YET, Code.SAME_SLOT, Code.SLOT_NOT_FOUND,
        Code.SLOT_FULL, Code.SLOT_CLOSED, Code.SLOT_WOMEN_ONLY, Code.SLOT_MEN_ONLY,
        Code.INMATE_SUSPENDED, Code.VISITOR_SUSPENDED, Code.VISITOR_ALREADY_BOOKED,
        Code.VISITOR_CAME_THAT_DAY, Code.WEEKLY_LIMIT_REACHED, Code.HEALTH_SUSPENDED,
        Code.HEALTH_NO_YOUNG_CHILDREN,
    }  # fmt: skip
    with db.read_session() as s:
        days = {s.get(Slot, slot_id).local_date for slot_id in taken}
    # The day of the move itself, the week with a visit left (a cancelled visit, a closed
    # time, a day freed by a cancellation): nothing else.
    assert sorted(days) == [date(2026, 12, d) for d in (5, 14, 15, 17, 18)]


@contextmanager
def _counting(db) -> Iterator[list[str]]:
    """The statements sent to the database meanwhile."""
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


@pytest.fixture
def plain(db) -> str:
    """A prison with two visit times a day for 15 days, and a booking of Q1 (a man, a woman
    and a child) on the first: every other time could take it."""
    with db.writing() as s:
        prison = make_prison(s, booking_opens_days=15, visits_per_inmate_per_week=7)
        make_inmate(s, prison, "Q1")
        for day in (FIRST + timedelta(days=n) for n in range(16)):
            make_slot(s, prison, day, time(9), capacity=10)
            make_slot(s, prison, day, time(14), capacity=10)
    with db.writing() as s:
        return _book(s, "Q1", date(2026, 12, 3), MAN, WOMAN, CHILD).reference


def test_the_times_offered_cost_the_same_queries_for_three_as_for_thirty(plain, db):
    def queries(opens_days: int) -> tuple[int, int]:
        """The times offered with booking open that many days ahead, and the queries."""
        with db.writing() as s:
            s.scalar(select(Prison)).booking_opens_days = opens_days
        with db.read_session() as s:
            booking = s.scalar(select(Booking).where(Booking.reference == plain))
            with _counting(db) as seen:
                found = move_targets(s, booking, NOW, limit=100)
        return len(found), len(seen)

    few, many = queries(2), queries(15)
    assert (few[0], many[0]) == (2, 28)  # the 2nd and 3rd at 14:00; all but 9:00 on the 2nd
    assert few[1] == many[1]
