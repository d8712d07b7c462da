"""Every query of booking, moving (and finding the times a booking could move to) and
cancelling, of what the slots page reads of a person (the days their visits are paused, a full
week among them), of the gate's list, of administrators' home page, of tracing an advisory's
contacts, and of the worker's jobs finds its rows through an index, on each database: a table
scan costs nothing in a test and grows with every booking ever made (the one-visit-a-day check
once read all booked visitors on SQLite, for every booking; the hold-expiry job read every
booking every 30 s, holding the write lock)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from notifications.recipients import opt_out
from notifications.senders import ConsoleSender
from tests.factories import NOW, SMS, make_inmate, make_prison, make_slot, request_for, visitor
from tests.staffing import make_staff
from visits import tracing
from visits.advisories import HealthAdvisory
from visits.booking import (
    Booking,
    cancel_booking,
    create_booking,
    move_booking,
    move_targets,
    outlook,
)
from visits.closing import left_on
from visits.gate import day_list, search_document
from visits.health import AdvisoryKind, Scope, TracingPolicy
from visits.inmate import Inmate
from visits.jobs import (
    dispatch,
    make_dispatcher,
    purge_messages,
    purge_visit_records,
    release_expired_holds,
)
from visits.prison import Prison, Wing
from visits.schedule import Slot
from visits.schema import metadata
from visits.settings import Settings
from visits.staff import StaffRole, StaffUser

READS = ("SELECT", "UPDATE", "DELETE")
SATURDAY = date(2026, 12, 5)
SUNDAY = date(2026, 12, 6)


def _statements(db, db_url: str) -> list[tuple[str, Any]]:
    """The reads and conditional writes of a booking, the times it could move to, a move and a
    cancel, of the slots page's outlook on the person, of the gate's day list, and of the jobs
    that expire holds, send messages and purge old ones (and only those: the test's own
    look-ups are not captured)."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn, _cursor, statement, parameters, _context, executemany) -> None:
        if not executemany and statement.lstrip().upper().startswith(READS):
            seen.append((statement, parameters))

    @contextmanager
    def capturing() -> Iterator[None]:
        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            yield
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)

    with db.writing() as s:
        prison, inmate = s.scalar(select(Prison)), s.scalar(select(Inmate))
        request = request_for(_slot(s, SATURDAY), visitor())
        with capturing():
            booked = create_booking(
                s,
                prison=prison,
                inmate=inmate,
                request=request,
                now=NOW,
                secret_key="k",
                sms_policy=SMS,
            )
            s.commit()
    with db.read_session() as s:
        booking = s.scalar(select(Booking).where(Booking.id == booked.booking.id))
        with capturing():
            assert move_targets(s, booking, NOW, limit=10)  # the times the move may take
    with db.writing() as s:
        booking = s.scalar(select(Booking).where(Booking.id == booked.booking.id))
        sunday = _slot(s, SUNDAY)
        with capturing():
            move_booking(s, booking, slot_id=sunday, now=NOW, actor="family", sms_policy=SMS)
            s.commit()
    with db.writing() as s:
        booking = s.scalar(select(Booking).where(Booking.id == booked.booking.id))
        with capturing():
            cancel_booking(s, booking, now=NOW, actor="family", sms_policy=SMS)
            s.commit()
    with db.writing() as s:  # a booking held for its code: the caps on holds read too
        prison, inmate = s.scalar(select(Prison)), s.scalar(select(Inmate))
        request = request_for(_slot(s, SUNDAY), visitor("45678913"))
        with capturing():
            create_booking(
                s, prison=prison, inmate=inmate, request=request, now=NOW, secret_key="k",
                sms_policy=replace(SMS, verification=True), client="198.51.100.7",
            )  # fmt: skip
            s.commit()
    settings = Settings(database_url=db_url, secret_key="k")
    make_staff(db, "guardia", StaffRole.GUARD, ("TEST",))
    with db.read_session() as s:
        prison, inmate = s.scalar(select(Prison)), s.scalar(select(Inmate))
        guard = s.scalar(select(StaffUser))
        with capturing():
            day_list(s, prison, SATURDAY, NOW)
            day_list(s, prison, SUNDAY, NOW)  # with a booking: its visitors' screenings are read
            search_document(s, guard, prison, visitor().doc_number, SATURDAY, NOW)  # a DNI typed
            outlook(s, prison, inmate, SATURDAY, SUNDAY)
            left_on(s, [prison], NOW)  # administrators' home page, on every visit
    with capturing():
        release_expired_holds(db, NOW)
        dispatch(make_dispatcher(db, settings, ConsoleSender(), clock=lambda: NOW))
        purge_messages(db, settings, NOW)
    with db.writing() as s:
        prison = s.scalar(select(Prison))
        for scope in Scope:
            advisory = HealthAdvisory(
                prison_id=prison.id, scope=scope, kind=AdvisoryKind.TB_SUSCEPTIBLE, masks=True,
                starts_on=SATURDAY, infectious_since=SATURDAY, created_by="staff:salud",
                created_at=NOW, updated_at=NOW, wing_id=s.scalar(select(Wing.id)),
                inmate_id=s.scalar(select(Inmate.id)) if scope is Scope.INMATE else None,
            )  # fmt: skip
            s.add(advisory)
            s.flush()
            with capturing():
                tracing.notify(
                    s, prison, advisory.id, now=NOW, actor="staff:salud", origin="",
                    policy=TracingPolicy(),
                )  # fmt: skip
                tracing.deliveries(s, advisory.id)  # what became of its notices
    with db.writing() as s:  # a phone that opted out long ago: the purge asks what holds it
        opt_out(s, "+51987000999", "sms", NOW)
    with capturing():
        purge_visit_records(db, settings, NOW + timedelta(days=400))
    return seen


def _slot(session, day: date) -> int:
    return session.scalar(select(Slot.id).where(Slot.local_date == day))


def _scans(db, statements: list[tuple[str, Any]]) -> list[str]:
    """Each statement whose plan reads a whole table, with that plan."""
    found = []
    with db.engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()
        if db.engine.dialect.name == "postgresql":
            # Tables this small are cheaper to scan: forbid it, so only a missing index shows.
            cursor.execute("SET enable_seqscan = off")
            explain, scan = "EXPLAIN ", "Seq Scan"
        else:
            explain, scan = "EXPLAIN QUERY PLAN ", "SCAN "
        for statement, parameters in statements:
            cursor.execute(explain + statement, parameters)
            plan = [str(row[-1]) for row in cursor.fetchall()]
            if any(_reads_a_table(step.lstrip(" ->"), scan) for step in plan):
                found.append(f"{statement}\n  " + "\n  ".join(plan))
        connection.rollback()
    return found


# Read whole by design: one row per prison (the retention purge reads their time zones), a
# few advisories per prison over the years (the daily purge reads those still traced), and
# what that purge keeps small itself: staff sessions of the last day or two, and only the
# phones that carry a mark (it deletes the sessions ended and the phones with no mark left).
READ_WHOLE = {"prison", "health_advisory", "staff_session", "sms_recipient"}


def _reads_a_table(step: str, scan: str) -> bool:
    """Whether a plan's step reads a whole table (SQLite also says SCAN of the rows a
    subquery made, which are no table)."""
    if not step.startswith(scan):
        return False
    words = step.removeprefix(scan).split()
    table = words[1] if words[0] == "on" else words[0]  # PostgreSQL: "Seq Scan on <table>"
    return table in metadata.tables and table not in READ_WHOLE


@pytest.fixture
def world(db):
    with db.writing() as s:
        prison = make_prison(s)
        make_inmate(s, prison)
        make_slot(s, prison, SATURDAY, capacity=10)
        make_slot(s, prison, SUNDAY, capacity=10)
    return db


def test_bookings_and_frequent_jobs_read_through_indexes(world, db_url):
    statements = _statements(world, db_url)
    assert len(statements) > 10  # the capture saw the rule checks, not just a commit
    assert _scans(world, statements) == []
