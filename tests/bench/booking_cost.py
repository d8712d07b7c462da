"""What one booking costs in this process, and what its SQL alone costs, on SQLite and PostgreSQL.

Run from the repository root with ``make bench`` (``python -m tests.bench.booking_cost``).

Why it exists: the booking rush (:mod:`tests.bench.rush`) misses its throughput target, and
the choice between accepting that and writing the booking transaction without the ORM needs
a measured floor, not an estimate. For each database this

1. books ``BOOKINGS`` times through :func:`visits.booking.create_booking` and commits (no web
   layer), and reports this process's CPU per booking;
2. records the statements one more booking sends to the driver, and replays exactly those,
   with the same parameters, through the bare driver (``sqlite3``, ``psycopg``) in a
   transaction rolled back each time, and reports that CPU per booking.

The difference is what the Python around the statements costs: SQLAlchemy's statement
building and unit of work, and the rules. On PostgreSQL only this process's CPU is counted
(the server's work is in another process in both figures). Timings never fail the run.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time as clock
from datetime import timedelta
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import make_url

from tests.bench.rush import Unreachable, postgres_database
from tests.bench.table import print_table
from tests.factories import (
    LIMA_TODAY,
    NOW,
    SMS,
    make_inmate,
    make_prison,
    make_slot,
    request_for,
    visitor,
)
from visits.booking import create_booking
from visits.db import Database, make_engine, normalise_url
from visits.inmate import Inmate
from visits.migrate import upgrade
from visits.prison import Prison

BOOKINGS = 300
WARMUP = 20
INMATES = 500

Statement = tuple[str, Any, bool]  # text, parameters, sent as executemany


@dataclass
class Cost:
    database: str
    booking_ms: float = 0.0
    statements: int = 0
    driver_ms: float = 0.0
    error: str | None = None


class Bench:
    """A prison with room for every booking (the rules all run; none refuses)."""

    def __init__(self, url: str) -> None:
        upgrade(url)
        self.db = Database(make_engine(url))
        with self.db.writing() as session:
            prison = make_prison(session, visits_per_inmate_per_week=BOOKINGS)
            days = range(3, 10)
            slots = [
                make_slot(session, prison, LIMA_TODAY + timedelta(days=d), clock(h), 10_000)
                for d in days
                for h in (9, 11, 13)
            ]
            inmates = [make_inmate(session, prison, f"Q{i}") for i in range(INMATES)]
            self.prison_id = prison.id
            self.slot_ids = [s.id for s in slots]
            self.inmate_ids = [i.id for i in inmates]
        self.recording: list[Statement] | None = None
        event.listen(self.db.engine, "before_cursor_execute", self._record)

    def _record(self, _conn, _cursor, statement, parameters, _context, executemany) -> None:
        if self.recording is not None:
            self.recording.append((statement, parameters, executemany))

    def book(self, n: int, *, commit: bool = True) -> None:
        session = self.db.write_session()
        try:
            create_booking(
                session,
                prison=session.get(Prison, self.prison_id),
                inmate=session.get(Inmate, self.inmate_ids[n % INMATES]),
                request=request_for(
                    self.slot_ids[n % len(self.slot_ids)],
                    visitor(f"{40_000_000 + n:08d}"),
                    phone=f"9{n:08d}",
                ),
                now=NOW,
                secret_key="bench",
                sms_policy=SMS,
            )
            if commit:
                session.commit()
            else:
                session.flush()
        finally:
            session.close()  # rolls back what was not committed

    def statements_of_one_booking(self) -> list[Statement]:
        self.recording = []
        try:
            self.book(BOOKINGS + WARMUP + 1, commit=False)
            return self.recording
        finally:
            self.recording = None


def cpu_ms_each(action: Callable[[int], None], times: int) -> float:
    started = time.process_time()
    for n in range(times):
        action(n)
    return (time.process_time() - started) / times * 1000


def replay(cursor: Any, statements: list[Statement]) -> None:
    for text, parameters, executemany in statements:
        if text.split(None, 1)[0].upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
            continue
        # SQLAlchemy sends a single-row INSERT … RETURNING as "executemany" of one row.
        if executemany and isinstance(parameters, list):
            cursor.executemany(text, parameters)
        else:
            cursor.execute(text, parameters)
            if cursor.description:
                cursor.fetchall()


def measure(
    name: str,
    url: str,
    connect: Callable[[], Any],
    begin: str | None,
    restart: Callable[[Any], str] | None = None,
) -> Cost:
    """``restart``: given a bare connection, the statement that puts every id sequence back
    where it stood before the recorded booking (PostgreSQL's sequences ignore a rollback, and
    the recorded statements name the ids the recorded booking got); its own cost is measured
    apart and taken off."""
    bench = Bench(url)
    connection = connect()
    try:
        for n in range(WARMUP):
            bench.book(BOOKINGS + n)
        cost = Cost(name, booking_ms=cpu_ms_each(bench.book, BOOKINGS))
        rewind = restart(connection) if restart else None
        statements = bench.statements_of_one_booking()
        cost.statements = sum(
            1 for s in statements if s[0].split(None, 1)[0].upper() not in ("BEGIN", "COMMIT")
        )

        def once(_n: int, work: list[Statement] = statements) -> None:
            cursor = connection.cursor()
            if begin:
                cursor.execute(begin)
            if rewind:
                cursor.execute(rewind)
                cursor.fetchall()
            replay(cursor, work)
            connection.rollback()

        once(0)
        cost.driver_ms = cpu_ms_each(once, BOOKINGS)
        if rewind:
            cost.driver_ms -= cpu_ms_each(lambda n: once(n, []), BOOKINGS)
    finally:
        connection.close()
        bench.db.dispose()
    return cost


def sequences_as_now(connection: Any) -> str:
    rows = connection.execute(
        "SELECT schemaname, sequencename, last_value FROM pg_sequences"
        " WHERE schemaname = current_schema()"
    ).fetchall()
    connection.rollback()
    calls = [
        f"setval('{schema}.{name}', {value or 1}, {'true' if value else 'false'})"
        for schema, name, value in rows
    ]
    return "SELECT " + ", ".join(calls)


def on_sqlite(tmp: str) -> Cost:
    path = f"{tmp}/cost.db"
    return measure(
        "SQLite",
        f"sqlite:///{path}",
        lambda: sqlite3.connect(path, isolation_level=None),
        "BEGIN IMMEDIATE",
    )


def on_postgres() -> Cost:
    with postgres_database() as url:
        plain = make_url(normalise_url(url)).set(drivername="postgresql")
        dsn = plain.render_as_string(hide_password=False)
        connect = lambda: psycopg.connect(dsn)  # noqa: E731
        return measure("PostgreSQL", url, connect, None, sequences_as_now)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args(argv)
    print("Booking cost: the whole create_booking against its SQL through the bare driver")
    print(f"Scenario: {BOOKINGS} one-visitor bookings after {WARMUP} warm-up, CPU of this process")
    costs: list[Cost] = []
    with tempfile.TemporaryDirectory(prefix="visits-cost-bench-") as tmp:
        if args.only != "postgresql":
            costs.append(on_sqlite(tmp))
        if args.only != "sqlite":
            try:
                costs.append(on_postgres())
            except Unreachable as error:
                costs.append(Cost("PostgreSQL", error=str(error)))
    done = [c for c in costs if c.error is None]
    for cost in costs:
        if cost.error:
            print(f"{cost.database}: not run ({cost.error})")
    rows = [
        ("statements per booking", "(info)", [str(c.statements) for c in done]),
        ("create_booking + commit (ms CPU)", "(info)", [f"{c.booking_ms:.2f}" for c in done]),
        ("same statements, bare driver (ms CPU)", "(info)", [f"{c.driver_ms:.3f}" for c in done]),
        (
            "driver share of a booking",
            "(info)",
            [f"{c.driver_ms / c.booking_ms:.1%}" for c in done],
        ),
    ]
    print_table(rows, [c.database for c in done])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
