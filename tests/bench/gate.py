"""The guard's day list with 2,000 visitors, against the real server, on SQLite and PostgreSQL.

Run from the repository root with ``make bench`` (``python -m tests.bench.gate``).

For each database: a fresh database through the real command line (migrate, the bench prison,
its roster, a guard account made by ``visits create-staff``), 2,000 visitors on one day in
four visit times (written in bulk by ``tests.factories.fill_day``) under health measures (every
row flagged), then ``visits serve`` with
production settings (one worker). A guard signs in through the sign-in form, and one client
asks for the day's list again and again, then for ``/healthz`` as the yardstick, each after a
warm-up. Reported: p50 and p99 of each, their ratio, and the list's size. Timings never fail
the run; a list that does not show the 2,000 visitors does (exit status 1).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import select

from tests.bench.rush import (
    PRISON,
    Unreachable,
    percentile,
    postgres_database,
    prepare,
)
from tests.bench.table import print_table
from tests.factories import fill_day
from tests.server import free_port, run_cli, running_server, server_env
from visits.advisories import HealthAdvisory
from visits.db import Database, make_engine
from visits.health import AdvisoryKind, Scope
from visits.inmate import Inmate
from visits.prison import prison_by_code

VISITORS = 2000
SLOTS = 4
WARMUP = 5
SAMPLES = 60
HEALTH_SAMPLES = 300
TARGET_P50_MS = 150.0
PASSWORD = "bench-guard-password"
LISTED = re.compile(r"<li>Rosa Quispe \d{8} ")
BOOKING_ROW = re.compile(r'<tr id="b-')
FLAGGED = re.compile(r'<ul class="flags"[^>]*><li class="tag tag-health">')


@dataclass
class GateRun:
    label: str
    day: str = ""
    list_ms: list[float] = field(default_factory=list)
    health_ms: list[float] = field(default_factory=list)
    listed: int = 0
    bookings: int = 0
    flagged: int = 0  # bookings tagged with the prison-wide measures
    page_bytes: int = 0
    csv_ms: float = 0.0
    error: str | None = None


def _fill(url: str) -> str:
    """2,000 visitors on the prison's day a week from now; that day (ISO)."""
    db = Database(make_engine(url))
    try:
        with db.writing() as s:
            prison = prison_by_code(s, PRISON)
            assert prison is not None
            inmates = list(s.scalars(select(Inmate).where(Inmate.prison_id == prison.id)))
            day = prison.local_date(datetime.now(UTC) + timedelta(days=7))
            fill_day(s, prison, inmates, day, visitors=VISITORS, slots=SLOTS)
            # Measures in force over every visit, and more over one inmate's: each row is
            # flagged, as on a day under a prison-wide advisory.
            for scope, inmate_id, measures in (
                (Scope.PRISON, None, {"masks": True, "non_contact": True}),
                (Scope.INMATE, inmates[0].id, {"visit_minutes": 45, "no_high_risk": True}),
            ):
                s.add(
                    HealthAdvisory(
                        prison_id=prison.id, scope=scope, inmate_id=inmate_id,
                        wing_id=inmates[0].wing_id if inmate_id else None,
                        kind=AdvisoryKind.RESPIRATORY_OUTBREAK, starts_on=day - timedelta(days=1),
                        created_by="bench", created_at=datetime.now(UTC),
                        updated_at=datetime.now(UTC), **measures,
                    )
                )  # fmt: skip
            return day.isoformat()
    finally:
        db.dispose()


def _timed(client: httpx.Client, path: str, count: int) -> tuple[list[float], httpx.Response]:
    times, answer = [], None
    for _ in range(count):
        started = time.perf_counter()
        answer = client.get(path)
        times.append(1000 * (time.perf_counter() - started))
        answer.raise_for_status()
    assert answer is not None
    return times, answer


def run(label: str, url: str, workdir: Path) -> GateRun:
    result = GateRun(label)
    print(f"{label}: preparing the database", flush=True)
    prepare(url, workdir, random.Random(20261128))
    env = server_env(url, 0)
    made = run_cli(
        *("create-staff", "guard", "--name", "Bench Guard", "--role", "guard"),
        *("--prison", PRISON, "--password", PASSWORD),
        env=env,
    )
    if made.returncode != 0:
        raise RuntimeError(f"create-staff failed: {made.stdout}{made.stderr}")
    result.day = _fill(url)
    port = free_port()
    print(f"{label}: measuring", flush=True)
    with running_server(url, port=port) as server, httpx.Client(base_url=server.base) as client:
        form = client.get("/staff/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        signed = client.post(
            "/staff/login",
            data={"csrf_token": token[1], "username": "guard", "password": PASSWORD},
        )
        if signed.status_code != 303:
            raise RuntimeError(f"the guard could not sign in: {signed.status_code}")
        path = f"/staff/p/{PRISON}/day?date={result.day}"
        _timed(client, path, WARMUP)
        result.list_ms, page = _timed(client, path, SAMPLES)
        result.listed = len(LISTED.findall(page.text))
        result.bookings = len(BOOKING_ROW.findall(page.text))
        result.flagged = len(FLAGGED.findall(page.text))
        result.page_bytes = len(page.content)
        csv_times, _ = _timed(client, f"/staff/p/{PRISON}/day.csv?date={result.day}", 5)
        result.csv_ms = percentile(csv_times, 0.5)
        _timed(client, "/healthz", WARMUP)
        result.health_ms, _ = _timed(client, "/healthz", HEALTH_SAMPLES)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args(argv)
    print("Guard's day list benchmark")
    print(
        f"Scenario: {VISITORS} visitors in {SLOTS} visit times on one day; one client; "
        f"{SAMPLES} list requests and {HEALTH_SAMPLES} /healthz, after {WARMUP} warm-up each"
    )
    runs: list[GateRun] = []
    with tempfile.TemporaryDirectory(prefix="visits-gate-bench-") as tmp:
        if args.only != "postgresql":
            runs.append(
                _safely("SQLite", lambda: run("SQLite", f"sqlite:///{tmp}/g.db", Path(tmp)))
            )
        if args.only != "sqlite":

            def on_postgres() -> GateRun:
                with postgres_database() as url:
                    return run("PostgreSQL", url, Path(tmp))

            runs.append(_safely("PostgreSQL", on_postgres))
    rows = []

    def row(name: str, target: str, cell) -> None:
        rows.append((name, target, [cell(r) if r.error is None else "not run" for r in runs]))

    row(
        "visitors listed",
        str(VISITORS),
        lambda r: f"{r.listed} {'met' if r.listed == VISITORS else 'WRONG'}",
    )
    row(
        "bookings flagged",
        "all",
        lambda r: f"{r.flagged} {'met' if r.flagged == r.bookings > 0 else 'WRONG'}",
    )
    row("page size (KB)", "(info)", lambda r: f"{r.page_bytes / 1024:.0f}")
    row("list p50 (ms)", f"< {TARGET_P50_MS:.0f}", lambda r: _p50_cell(r))
    row("list p99 (ms)", "(info)", lambda r: f"{percentile(r.list_ms, 0.99):.1f}")
    row("/healthz p50 (ms)", "(info)", lambda r: f"{percentile(r.health_ms, 0.5):.2f}")
    row(
        "list p50 / healthz p50",
        "(info)",
        lambda r: f"{percentile(r.list_ms, 0.5) / percentile(r.health_ms, 0.5):.0f}x",
    )
    row(
        "healthz p50 / list p50",
        "(info)",
        lambda r: f"{percentile(r.health_ms, 0.5) / percentile(r.list_ms, 0.5):.1%}",
    )
    row("CSV p50 (ms)", "(info)", lambda r: f"{r.csv_ms:.1f}")  # fmt: skip
    print_table(rows, [r.label for r in runs])
    for r in runs:
        if r.error:
            print(f"{r.label}: NOT RUN: {r.error}")
    wrong = [
        r.label
        for r in runs
        if r.error is None and (r.listed != VISITORS or not r.flagged == r.bookings > 0)
    ]
    if wrong:
        print(f"RESULT: the list did not show every visitor on {', '.join(wrong)}")
        return 1
    if any(r.error for r in runs):
        print("RESULT: not every database was measured (see above)")
        return 1
    print("RESULT: correctness checks passed (timing targets are informative only)")
    return 0


def _p50_cell(r: GateRun) -> str:
    p50 = percentile(r.list_ms, 0.5)
    return f"{p50:.1f} {'met' if p50 < TARGET_P50_MS else 'MISSED'}"


def _safely(label: str, measure) -> GateRun:
    try:
        return measure()
    except (RuntimeError, TimeoutError, OSError, httpx.HTTPError, Unreachable) as error:
        return GateRun(label, error=f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    sys.exit(main())
