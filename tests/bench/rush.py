"""Booking-rush benchmark against the real server process, on SQLite and PostgreSQL.

Run from the repository root with ``make bench`` (``python -m tests.bench.rush``).

For each database it prepares a fresh database through the real command line (``visits
migrate``, ``load-prisons``, ``import-inmates``), starts ``visits serve`` with production
settings, and measures from this process:

1. a booking rush: 64 concurrent clients book through ``POST /api/v1/bookings`` (one visitor
   each, a distinct DNI per request, a random inmate) until every seat is gone, plus some
   extra attempts so that losers are measured too; then the database is read directly to
   check that no slot is overbooked and that seats taken agree with the bookings;
2. the trivial endpoint ``GET /healthz`` at the same concurrency, as the yardstick;
3. the family slots page (``/p/CODE/slots``, with a session of its own per client) and its
   JSON twin ``GET /api/v1/prisons/CODE/slots``;
4. the peak memory of the server's process tree.

Timings never fail the run: targets are reported as met or missed. The exit status is
non-zero only when a correctness check fails (an overbooked seat, or bookings and seat counts
that disagree).

The load comes from a minimal HTTP/1.1 keep-alive client on asyncio (uvloop when installed),
one connection per concurrent client. On a 2-core machine the client shares the CPU with the
server, so it must be cheap: it spends about 0.03 ms of CPU per request, where
``httpx.AsyncClient`` with 64 connections spent about 5 ms (a whole core for under 200 /healthz
requests a second), which would cap the yardstick and flatter every ratio. httpx is used only
for the untimed set-up requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from tests.bench.table import print_table
from tests.server import free_port, run_cli, running_server, server_env
from visits.db import normalise_url

# --- Scenario --------------------------------------------------------------------------------

PRISON = "BENCH"
TIMEZONE = "America/Lima"
OPENS_DAYS = 14  # the booking window: today and the 14 days after it
SESSION_STARTS = (7, 9, 11, 13, 15, 17)  # every day, one hour each
SEATS_PER_SESSION = 5  # 15 days x 6 sessions x 5 = 450 seats, minus today's past sessions
INMATES = 2000
SURNAMES = (
    "Quispe",
    "Mamani",
    "Huaman",
    "Condori",
    "Flores",
    "Chambi",
    "Yupanqui",
    "Ccori",
    "Apaza",
    "Sanchez",
)
FIRST_NAMES = ("Carlos", "Jose", "Ruben", "Luis", "Mario", "Juan", "Pedro", "Victor")

SQLITE_WORKERS = (1, 2)
PG_WORKERS = (1, 2)
CONCURRENCY = 64
WARMUP_SECONDS = 1.0
MEASURE_SECONDS = 3.0
EXTRA_ATTEMPTS = 2 * CONCURRENCY  # booking attempts once every seat is known to be gone
RUSH_TIME_LIMIT = 90.0  # seconds: a safety net, never reached by a healthy server
REQUEST_TIMEOUT = 40.0  # above the server's 30 s database pool timeout

TARGET_BOOKING_RATIO = 0.25
TARGET_PAGE_RATIO = 0.40
TARGET_MEMORY_MB = 200.0

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
HOLDS_SEATS = ("held", "confirmed")
# 422 codes that say a slot can no longer be booked at all (so the client stops trying it).
SLOT_GONE_CODES = {"slot_in_past", "booking_closed", "slot_not_found", "slot_closed"}


# --- A small, fast HTTP/1.1 client -----------------------------------------------------------


class TransportError(Exception):
    pass


def http_request(
    method: str, path: str, host: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept: */*"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One keep-alive connection; requests on it go one after another."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, raw: bytes, *, idempotent: bool = False) -> tuple[int, bytes]:
        reused = self.writer is not None
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                try:
                    return await self._exchange(raw)
                except (ConnectionError, asyncio.IncompleteReadError) as error:
                    # A kept-alive connection the server had closed (uvicorn closes it after
                    # an unhandled error): like a browser, send an idempotent request again.
                    nothing_read = not isinstance(error, asyncio.IncompleteReadError) or (
                        not error.partial
                    )
                    if not (idempotent and reused and nothing_read):
                        raise
                    self.close()
                    return await self._exchange(raw)
        except TimeoutError:
            self.close()
            raise TransportError(f"no answer in {REQUEST_TIMEOUT:.0f} s") from None
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            self.close()
            raise TransportError(f"{type(e).__name__}: {e}") from None

    async def _exchange(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head.partition(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for line in header_block.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if b"content-length" in headers:
            body = await self.reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(p[:-2] for p in parts)
        else:
            body = await self.reader.read()
            headers[b"connection"] = b"close"
        # uvicorn closes the connection after an unhandled error (a 500): start a new one.
        if status >= 500 or headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, body


async def open_connections(host: str, port: int, count: int) -> list[Connection]:
    connections = [Connection(host, port) for _ in range(count)]
    await asyncio.gather(*(c.open() for c in connections))
    return connections


@dataclass
class LoadResult:
    requests: int = 0  # answered, whatever the status
    ok: int = 0  # answered 200
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, of every answer
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return self.ok / self.seconds if self.seconds else 0.0


async def closed_loop(
    connections: list[Connection], requests: list[bytes], seconds: float
) -> LoadResult:
    """Every connection sends its request again and again until ``seconds`` have passed."""
    result = LoadResult()
    deadline = time.perf_counter() + seconds

    async def client(connection: Connection, raw: bytes) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                status, _ = await connection.request(raw, idempotent=True)
            except TransportError:
                result.statuses["transport error"] += 1
                await asyncio.sleep(0.05)  # a server that is gone must not spin this loop
                continue
            result.latencies.append(time.perf_counter() - started)
            result.statuses[str(status)] += 1
            result.requests += 1
            result.ok += status == 200

    started = time.perf_counter()
    await asyncio.gather(*(client(c, r) for c, r in zip(connections, requests, strict=True)))
    result.seconds = time.perf_counter() - started
    return result


def run_async(coroutine: Any) -> Any:
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure_endpoint(
    host: str, port: int, requests: list[bytes]
) -> tuple[LoadResult, LoadResult]:
    connections = await open_connections(host, port, len(requests))
    try:
        warmup = await closed_loop(connections, requests, WARMUP_SECONDS)
        measured = await closed_loop(connections, requests, MEASURE_SECONDS)
    finally:
        for c in connections:
            c.close()
    return warmup, measured


# --- The booking rush ------------------------------------------------------------------------


@dataclass
class RushResult:
    seats_at_start: int = 0
    warmup_booked: int = 0
    attempts: int = 0
    booked: int = 0
    seconds_to_sell_out: float = 0.0
    seconds_total: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)  # error codes of refusals
    unexpected: list[str] = field(default_factory=list)  # a few sample bodies of odd answers
    warmup_errors: int = 0  # warm-up bookings lost to transport errors
    warmup_statuses: Counter[str] = field(default_factory=Counter)
    hit_time_limit: bool = False

    @property
    def bookings_per_second(self) -> float:
        return self.booked / self.seconds_to_sell_out if self.seconds_to_sell_out else 0.0


class Families:
    """Booking bodies: a fresh visitor (distinct DNI) for a random inmate each time."""

    def __init__(self, rng: random.Random, inmates: list[tuple[str, str]]) -> None:
        self.rng = rng
        self.inmates = inmates
        self.next_dni = 40_000_000

    def body(self, slot_id: int) -> bytes:
        code, surname = self.rng.choice(self.inmates)
        self.next_dni += 1
        return json.dumps(
            {
                "prison": PRISON,
                "inmate": {"code": code, "surname": surname},
                "slot_id": slot_id,
                "visitors": [
                    {
                        "first_names": "Ana María",
                        "last_names": "Quispe Rojas",
                        "doc_type": "dni",
                        "doc_number": f"{self.next_dni:08d}",
                        "birth_date": "1985-04-12",
                        "relationship": "sibling",
                    }
                ],
                "contact_phone": f"9{self.rng.randrange(10**8):08d}",
            }
        ).encode()


async def booking_rush(
    host: str, port: int, seats: dict[int, int], families: Families
) -> RushResult:
    """Book until every seat is gone, then ``EXTRA_ATTEMPTS`` more against full slots."""
    result = RushResult()
    remaining = dict(seats)  # slot id -> seats this client believes are still free
    all_slots = list(seats)
    extra = EXTRA_ATTEMPTS
    headers = {"Content-Type": "application/json"}
    path = "/api/v1/bookings"
    target = f"{host}:{port}"

    def record(status: int, body: bytes, slot_id: int) -> None:
        result.statuses[str(status)] += 1
        if status == 201:
            if slot_id in remaining:
                remaining[slot_id] -= 1
                if remaining[slot_id] <= 0:
                    del remaining[slot_id]
            return
        try:
            codes = [e["code"] for e in json.loads(body)["errors"]]
        except (ValueError, KeyError, TypeError):
            codes = [f"HTTP {status} (not an error list)"]
        result.codes.update(codes)
        if status == 409 or SLOT_GONE_CODES & set(codes):
            remaining.pop(slot_id, None)
        elif len(result.unexpected) < 5:
            result.unexpected.append(f"{status} {body[:300].decode(errors='replace')}")

    async def book(connection: Connection, slot_id: int, timed: bool) -> int | None:
        raw = http_request("POST", path, target, headers, families.body(slot_id))
        started = time.perf_counter()
        try:
            status, body = await connection.request(raw)
        except TransportError as error:
            result.statuses["transport error"] += 1
            if len(result.unexpected) < 5:
                result.unexpected.append(str(error))
            return None
        if timed:
            result.latencies.append(time.perf_counter() - started)
        record(status, body, slot_id)
        return status

    connections = await open_connections(host, port, CONCURRENCY)
    try:
        # Warm-up: one booking per connection, so every worker, thread and pooled database
        # connection has done the whole path once. Its seats are not part of the timed rush.
        warm_slots = [families.rng.choice(all_slots) for _ in connections]
        warm = await asyncio.gather(
            *(book(c, s, timed=False) for c, s in zip(connections, warm_slots, strict=True))
        )
        result.warmup_booked = sum(1 for s in warm if s == 201)
        result.warmup_errors = sum(1 for s in warm if s is None)
        result.warmup_statuses = Counter(result.statuses)
        result.statuses.clear()
        result.codes.clear()
        result.seats_at_start = sum(remaining.values())

        started = time.perf_counter()
        deadline = started + RUSH_TIME_LIMIT
        last_success = started

        async def client(connection: Connection) -> None:
            nonlocal extra, last_success
            while time.perf_counter() < deadline:
                if remaining:
                    slot_id = families.rng.choice(list(remaining))
                elif extra > 0:
                    extra -= 1
                    slot_id = families.rng.choice(all_slots)
                else:
                    return
                result.attempts += 1
                if await book(connection, slot_id, timed=True) == 201:
                    result.booked += 1
                    last_success = time.perf_counter()
            result.hit_time_limit = True

        await asyncio.gather(*(client(c) for c in connections))
        result.seconds_total = time.perf_counter() - started
        result.seconds_to_sell_out = last_success - started
    finally:
        for c in connections:
            c.close()
    return result


# --- Server memory ---------------------------------------------------------------------------


def _read_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (kB) from /proc/PID/status, and Pss (kB) from smaps_rollup."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                values["Pss"] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return values


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time the processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def connections_per_process(pids: list[int], port: int) -> dict[int, int]:
    """How many established client connections to ``port`` each process holds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == "01":
                inodes.add(f"socket:[{fields[9]}]")
    counts = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        held = 0
        for fd in fds:
            with suppress(OSError):
                held += os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
        counts[pid] = held
    return counts


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return sorted(tree)


def describe_process(pid: int, root: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    command = " ".join(a.decode(errors="replace") for a in argv if a)
    if pid == root:
        return "visits serve"
    if "resource_tracker" in command:
        return "resource tracker"
    if "multiprocessing" in command or "spawn_main" in command:
        return "worker"
    return command[:40]


class MemoryWatch:
    """Samples the memory of the server's process tree; per-process peaks come from VmHWM.

    RSS counts shared pages (libraries) once per process; PSS splits them between the
    processes sharing them, so the sum of PSS is the tree's real footprint.
    """

    def __init__(self, root: int, port: int, every: float = 0.25) -> None:
        self.root = root
        self.port = port
        self.every = every
        self.phase = ""  # set by the caller: connection splits are kept per phase
        self.splits: dict[str, dict[int, int]] = {}
        self.peak_total_kb = 0
        self.peak_pss_kb = 0
        self.peaks: dict[int, int] = {}
        self.roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()  # last look while the server still runs

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def sample(self) -> None:
        total = pss = 0
        for pid in process_tree(self.root):
            status = _read_status(pid)
            if not status:
                continue
            total += status.get("VmRSS", 0)
            pss += status.get("Pss", 0)
            self.peaks[pid] = max(self.peaks.get(pid, 0), status.get("VmHWM", 0))
            self.roles.setdefault(pid, describe_process(pid, self.root))
        self.peak_total_kb = max(self.peak_total_kb, total)
        self.peak_pss_kb = max(self.peak_pss_kb, pss)
        phase = self.phase  # read once: the caller may change it meanwhile
        if phase:
            split = connections_per_process(list(self.peaks), self.port)
            if sum(split.values()) > sum(self.splits.get(phase, {}).values()):
                self.splits[phase] = split

    @property
    def sum_of_peaks_mb(self) -> float:
        return sum(self.peaks.values()) / 1024


# --- Preparing a database --------------------------------------------------------------------


def prison_toml() -> str:
    lines = [
        "[[prison]]",
        f'code = "{PRISON}"',
        'name = "Penal de prueba de carga"',
        'address = "Benchmark"',
        f'timezone = "{TIMEZONE}"',
        "online_booking = true",
        'languages = ["es", "en"]',
        "",
        "[prison.rules]",
        f"booking_opens_days = {OPENS_DAYS}",
        "booking_closes_hours = 0",
        "max_visitors = 3",
        "min_adults = 1",
        "adult_age = 18",
        "visits_per_inmate_per_week = 21",
        "",
        "[[prison.wings]]",
        'code = "A"',
        'name = "Pabellón A"',
    ]
    weekdays = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    for weekday in weekdays:
        for hour in SESSION_STARTS:
            lines += [
                "",
                "[[prison.schedule]]",
                f'weekday = "{weekday}"',
                f"start = {hour:02d}:00:00",
                f"end = {hour + 1:02d}:00:00",
                f"capacity = {SEATS_PER_SESSION}",
                'visitor_group = "anyone"',
                "valid_from = 2020-01-01",
            ]
    return "\n".join(lines) + "\n"


def roster(rng: random.Random) -> tuple[str, list[tuple[str, str]]]:
    rows = ["code,first_names,last_name_1,last_name_2,birth_date,wing,status"]
    inmates = []
    for i in range(1, INMATES + 1):
        code, surname = f"B{i:05d}", rng.choice(SURNAMES)
        born = date(1960, 1, 1) + timedelta(days=rng.randrange(40 * 365))
        first = rng.choice(FIRST_NAMES)
        rows.append(f"{code},{first},{surname},{rng.choice(SURNAMES)},{born},A,active")
        inmates.append((code, surname))
    return "\n".join(rows) + "\n", inmates


def prepare(url: str, workdir: Path, rng: random.Random) -> list[tuple[str, str]]:
    """Migrate and load the prison and its roster through the real command line."""
    config = workdir / "prisons.toml"
    config.write_text(prison_toml(), encoding="utf-8")
    roster_csv, inmates = roster(rng)
    roster_file = workdir / "inmates.csv"
    roster_file.write_text(roster_csv, encoding="utf-8")
    env = server_env(url, 0)
    for args in (
        ("migrate",),
        ("load-prisons", str(config)),
        ("import-inmates", "--prison", PRISON, str(roster_file)),
    ):
        done = run_cli(*args, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"visits {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return inmates


class Unreachable(Exception):
    pass


@contextmanager
def postgres_database() -> Iterator[str]:
    """A database of our own on the PostgreSQL server, dropped afterwards."""
    server = make_url(normalise_url(os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG_URL))
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as error:
        admin.dispose()
        where = server.render_as_string(hide_password=True)
        raise Unreachable(f"{where}: {str(error).splitlines()[0]}") from None
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with suppress(SQLAlchemyError), admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- Checking the database -------------------------------------------------------------------


@dataclass
class DbCheck:
    slots: int = 0
    capacity: int = 0
    seats_taken: int = 0
    overbooked: int = 0
    overbooked_slots: int = 0
    bookings_holding: int = 0
    party_seats: int = 0  # sum of party_size of bookings holding seats
    active_visitors: int = 0  # booking_visitor rows of bookings holding seats
    slots_disagreeing: int = 0  # seats_taken != that slot's bookings' party sizes

    def problems(self, created: int | None) -> list[str]:
        found = []
        if self.overbooked:
            found.append(f"{self.overbooked} seats overbooked in {self.overbooked_slots} slots")
        if self.slots_disagreeing:
            found.append(f"{self.slots_disagreeing} slots whose seats_taken != their bookings")
        if self.active_visitors != self.seats_taken:
            found.append(
                f"visitors of bookings holding seats ({self.active_visitors}) "
                f"!= seats taken ({self.seats_taken})"
            )
        if self.party_seats != self.seats_taken:
            found.append(f"sum of party sizes ({self.party_seats}) != seats taken")
        if created is not None and created != self.bookings_holding:
            found.append(
                f"the server answered 201 {created} times but {self.bookings_holding} "
                "bookings hold seats"
            )
        return found


def check_database(url: str) -> DbCheck:
    engine = create_engine(normalise_url(url))
    check = DbCheck()
    holding = ", ".join(f"'{s}'" for s in HOLDS_SEATS)
    try:
        with engine.connect() as connection:
            prison_id = connection.execute(
                text("SELECT id FROM prison WHERE code = :code"), {"code": PRISON}
            ).scalar_one()
            slots = connection.execute(
                text("SELECT id, capacity, seats_taken FROM slot WHERE prison_id = :p"),
                {"p": prison_id},
            ).all()
            by_slot = dict(
                connection.execute(
                    text(
                        "SELECT slot_id, SUM(party_size) FROM booking "
                        f"WHERE status IN ({holding}) GROUP BY slot_id"
                    )
                ).all()
            )
            check.bookings_holding = connection.execute(
                text(f"SELECT COUNT(*) FROM booking WHERE status IN ({holding})")
            ).scalar_one()
            check.active_visitors = connection.execute(
                text(
                    "SELECT COUNT(*) FROM booking_visitor bv JOIN booking b "
                    f"ON b.id = bv.booking_id WHERE b.status IN ({holding})"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    check.slots = len(slots)
    for slot_id, capacity, taken in slots:
        check.capacity += capacity
        check.seats_taken += taken
        if taken > capacity:
            check.overbooked += taken - capacity
            check.overbooked_slots += 1
        if taken != int(by_slot.get(slot_id) or 0):
            check.slots_disagreeing += 1
    check.party_seats = sum(int(v or 0) for v in by_slot.values())
    return check


# --- One server, every measurement ----------------------------------------------------------


@dataclass
class RunReport:
    label: str
    workers: int
    rush: RushResult = field(default_factory=RushResult)
    health: LoadResult = field(default_factory=LoadResult)
    page: LoadResult = field(default_factory=LoadResult)
    api_slots: LoadResult = field(default_factory=LoadResult)
    check: DbCheck | None = None
    memory: MemoryWatch | None = None
    created_total: int | None = None
    unsold: int = 0
    cpu_ms: dict[str, float] = field(default_factory=dict)  # server CPU per request
    correctness: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def open_slots(base: str) -> dict[int, int]:
    answer = httpx.get(f"{base}/api/v1/prisons/{PRISON}/slots", timeout=30)
    answer.raise_for_status()
    return {
        slot["id"]: slot["seats_left"]
        for day in answer.json()["days"]
        for slot in day["slots"]
        if slot["state"] == "open" and slot["seats_left"] > 0
    }


def family_session(base: str, code: str, surname: str) -> str:
    """Identify an inmate as a family does; return the session cookie for the slots page."""
    with httpx.Client(base_url=base, timeout=30) as client:
        form = client.get(f"/p/{PRISON}")
        form.raise_for_status()
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        if token is None:
            raise RuntimeError("no csrf_token on the identify page")
        answer = client.post(
            f"/p/{PRISON}",
            data={"csrf_token": token.group(1), "inmate_code": code, "surname": surname},
        )
        if answer.status_code != 303 or not answer.headers["location"].endswith("/slots"):
            raise RuntimeError(f"identifying {code} gave {answer.status_code}: {answer.text[:200]}")
        cookie = client.cookies.get("visit_session")
        if not cookie:
            raise RuntimeError("identifying did not set the visit_session cookie")
        return f"visit_session={cookie}"


class ServerLog:
    """Counts the unhandled errors in the server's log (``tests.server`` collects its stderr)."""

    MARKER = "Exception in ASGI application"  # uvicorn, once per unhandled error

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    @property
    def errors(self) -> int:
        return sum(self.MARKER in line for line in self.lines)

    @property
    def last_error_line(self) -> str:
        skipped = (" ", "INFO:", "Traceback", "During", "The above")
        errors = [line for line in self.lines if line and not line.startswith(skipped)]
        return errors[-1][:300] if errors else ""


def run_server(label: str, url: str, workers: int, inmates: list[tuple[str, str]]) -> RunReport:
    report = RunReport(label, workers)
    rng = random.Random(f"{label}-{workers}")
    port = free_port()
    host = "127.0.0.1"
    target = f"{host}:{port}"
    warmups: dict[str, LoadResult] = {}
    print(f"  {label}, {workers} worker(s): starting the server", flush=True)
    with running_server(url, port=port, workers=workers) as running:
        base, process, log = running.base, running.process, ServerLog(running.log)
        if workers > 1:
            time.sleep(1.0)  # /healthz answered from one worker; let the other finish starting
        server = process_tree(process.pid)

        def measure(name: str, requests: list[bytes]) -> LoadResult:
            print(f"    {name}", flush=True)
            memory.phase = name
            before = cpu_seconds(server)
            warmups[name], measured = run_async(measure_endpoint(host, port, requests))
            served = warmups[name].requests + measured.requests
            report.cpu_ms[name] = 1000 * (cpu_seconds(server) - before) / max(served, 1)
            return measured

        with MemoryWatch(process.pid, port) as memory:
            report.memory = memory
            health = [http_request("GET", "/healthz", target)] * CONCURRENCY
            report.health = measure("healthz", health)

            print("    booking rush", flush=True)
            memory.phase = "booking"
            seats = open_slots(base)
            families = Families(rng, inmates)
            before = cpu_seconds(server)
            report.rush = run_async(booking_rush(host, port, seats, families))
            attempts = report.rush.attempts + CONCURRENCY  # with the warm-up's
            report.cpu_ms["booking"] = 1000 * (cpu_seconds(server) - before) / attempts
            memory.phase = ""
            report.unsold = sum(open_slots(base).values())

            try:
                api = [http_request("GET", f"/api/v1/prisons/{PRISON}/slots", target)]
                report.api_slots = measure("slots API", api * CONCURRENCY)
                people = rng.sample(inmates, CONCURRENCY)
                pages = [
                    http_request("GET", f"/p/{PRISON}/slots", target, {"Cookie": cookie})
                    for cookie in (family_session(base, c, s) for c, s in people)
                ]
                report.page = measure("slots page", pages)
                memory.phase = ""
            except (RuntimeError, OSError, httpx.HTTPError) as error:
                report.notes.append(f"the read endpoints could not be measured: {error!r}")
        if process.poll() is not None:
            report.notes.append(f"the server exited during the run (status {process.poll()})")
    if log.errors:
        report.notes.append(
            f"the server logged {log.errors} unhandled errors; the last: {log.last_error_line}"
        )

    rush = report.rush
    clean = "transport error" not in rush.statuses and not rush.warmup_errors
    report.created_total = rush.warmup_booked + rush.statuses["201"] if clean else None
    if not clean:
        report.notes.append("transport errors: the 201 count cannot be compared with the database")
    report.check = check_database(url)
    report.correctness = report.check.problems(report.created_total)
    if rush.hit_time_limit:
        report.notes.append(f"the rush was cut at {RUSH_TIME_LIMIT:.0f} s")
    if report.unsold:
        report.notes.append(f"the server still offers {report.unsold} seats after the rush")
    measured = {"healthz": report.health, "slots API": report.api_slots, "slots page": report.page}
    for name, result in measured.items():
        for phase, seen in (("warm-up", warmups.get(name, LoadResult())), ("measured", result)):
            odd = {k: v for k, v in seen.statuses.items() if k != "200"}
            if odd:
                slowest = max(seen.latencies, default=0.0)
                report.notes.append(
                    f"{name} ({phase}): answers other than 200: {dict(odd)}; "
                    f"phase took {seen.seconds:.1f} s, slowest answer {slowest:.1f} s"
                )
    return report


# --- Report ----------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def print_tables(reports: list[RunReport]) -> None:
    done = [r for r in reports if r.error is None]
    for r in reports:
        if r.error is not None:
            print(f"\n{r.label}, {r.workers} worker(s): NOT RUN: {r.error}")
    if not done:
        return
    rows: list[tuple[str, str, list[str]]] = []

    def row(name: str, target: str, cells: Callable[[RunReport], str]) -> None:
        rows.append((name, target, [cells(r) for r in done]))

    row("seats in the rush", "", lambda r: f"{r.rush.seats_at_start}")
    row("booking attempts", "", lambda r: f"{r.rush.attempts}")
    row("bookings/s (201s until sold out)", "", lambda r: f"{r.rush.bookings_per_second:.1f}")
    row("booking latency p50 (ms)", "", lambda r: _ms(percentile(r.rush.latencies, 0.50)))
    row("booking latency p99 (ms)", "", lambda r: _ms(percentile(r.rush.latencies, 0.99)))
    row(
        "booking answers",
        "",
        lambda r: " ".join(f"{k}:{v}" for k, v in sorted(r.rush.statuses.items())),
    )
    row(
        "seats overbooked",
        "0",
        lambda r: f"{r.check.overbooked} {_verdict(r.check.overbooked == 0)}",
    )
    row(
        "seats taken = booked visitors",
        "equal",
        lambda r: (
            f"{r.check.seats_taken}={r.check.active_visitors} "
            f"{_verdict(r.check.seats_taken == r.check.active_visitors)}"
        ),
    )
    row(
        "correctness checks",
        "all pass",
        lambda r: "pass" if not r.correctness else f"FAIL ({len(r.correctness)})",
    )
    row("GET /healthz req/s", "", lambda r: f"{r.health.rps:.0f}")
    row(
        "bookings/s / healthz req/s",
        f">= {TARGET_BOOKING_RATIO:.0%}",
        lambda r: _ratio_cell(r.rush.bookings_per_second, r.health.rps, TARGET_BOOKING_RATIO),
    )
    row("slots page req/s (HTML, 14 days)", "", lambda r: f"{r.page.rps:.0f}")
    row("slots page p50 / p99 (ms)", "", lambda r: _p50_p99(r.page))
    row(
        "slots page / healthz",
        f">= {TARGET_PAGE_RATIO:.0%}",
        lambda r: _ratio_cell(r.page.rps, r.health.rps, TARGET_PAGE_RATIO),
    )
    row("slots API req/s (JSON)", "", lambda r: f"{r.api_slots.rps:.0f}")
    row("slots API p50 / p99 (ms)", "", lambda r: _p50_p99(r.api_slots))
    row("slots API / healthz", "(info)", lambda r: f"{_ratio(r.api_slots.rps, r.health.rps):.1%}")
    row(
        "server peak RSS, sum of processes (MB)",
        f"< {TARGET_MEMORY_MB:.0f}",
        lambda r: (
            f"{r.memory.sum_of_peaks_mb:.0f} "
            f"{_verdict(r.memory.sum_of_peaks_mb < TARGET_MEMORY_MB)}"
        ),
    )
    row(
        "server RSS, highest sample of tree (MB)",
        "(info)",
        lambda r: f"{r.memory.peak_total_kb / 1024:.0f}",
    )
    row(
        "server PSS, highest sample of tree (MB)",
        "(info)",
        lambda r: f"{r.memory.peak_pss_kb / 1024:.0f}",
    )
    row(
        "server CPU ms/request: healthz",
        "(info)",
        lambda r: f"{r.cpu_ms.get('healthz', 0):.2f}",
    )
    for name in ("booking", "slots API", "slots page"):
        row(
            f"server CPU ms/request: {name}",
            "(info)",
            lambda r, n=name: f"{r.cpu_ms.get(n, 0):.1f}",
        )

    headers = [f"{r.label}, {r.workers}w" for r in done]
    print_table(rows, headers)

    print(
        "\nbookings/s: 201 answers / time from the rush's start to its last 201. req/s: 200\n"
        "answers a second over the measured seconds. Ratios use the same server's /healthz.\n"
        "Memory target: the sum of each server process's peak RSS (VmHWM); PSS shares\n"
        "library pages between processes. CPU: the server processes' user+system time."
    )
    for r in done:
        print(f"\n{r.label}, {r.workers} worker(s):")
        rush = r.rush
        print(
            f"  rush: {rush.booked} booked of {rush.seats_at_start} seats "
            f"(+{rush.warmup_booked} in the warm-up) in {rush.seconds_to_sell_out:.2f} s; "
            f"{rush.attempts} attempts in {rush.seconds_total:.2f} s "
            f"({_ratio(rush.attempts, rush.seconds_total):.0f} attempts/s)"
        )
        if rush.codes:
            refusals = ", ".join(f"{k}:{v}" for k, v in rush.codes.most_common())
            print(f"  refusal codes: {refusals}")
        if set(rush.warmup_statuses) != {"201"}:
            print(f"  warm-up booking answers: {dict(rush.warmup_statuses)}")
        for sample in rush.unexpected:
            print(f"  unexpected answer: {sample}")
        check = r.check
        print(
            f"  database: {check.slots} slots, capacity {check.capacity}, "
            f"seats taken {check.seats_taken}, bookings holding seats {check.bookings_holding}, "
            f"their visitors {check.active_visitors}, sum of party sizes {check.party_seats}, "
            f"server 201s {r.created_total if r.created_total is not None else '?'}"
        )
        memory = r.memory
        for pid in sorted(memory.peaks):
            role = memory.roles.get(pid, "?")
            print(f"  memory: pid {pid} ({role}): peak RSS {memory.peaks[pid] / 1024:.0f} MB")
        if r.workers > 1:
            workers = [pid for pid, role in memory.roles.items() if role == "worker"]
            splits = "; ".join(
                f"{phase} {'/'.join(str(split.get(pid, 0)) for pid in workers)}"
                for phase, split in memory.splits.items()
            )
            print(f"  client connections per worker process: {splits}")
        for note in r.notes:
            print(f"  note: {note}")
        for problem in r.correctness:
            print(f"  CORRECTNESS FAILURE: {problem}")


def _ratio_cell(value: float, trivial: float, target: float) -> str:
    ratio = _ratio(value, trivial)
    return f"{ratio:.1%} {_verdict(ratio >= target)}"


def _p50_p99(result: LoadResult) -> str:
    return f"{_ms(percentile(result.latencies, 0.5))} / {_ms(percentile(result.latencies, 0.99))}"


# --- Main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        choices=("sqlite", "postgresql"),
        help="measure one database only (default: both)",
    )
    parser.add_argument(
        "--sqlite-workers",
        type=int,
        nargs="+",
        default=list(SQLITE_WORKERS),
        help="web workers to measure SQLite with (default: %(default)s)",
    )
    parser.add_argument(
        "--pg-workers",
        type=int,
        nargs="+",
        default=list(PG_WORKERS),
        help="web workers to measure PostgreSQL with (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print("Booking rush benchmark")
    python = sys.version.split()[0]
    print(f"CPUs: {os.cpu_count()} (usable by this process: {usable}); Python {python}")
    sessions = len(SESSION_STARTS)
    print(
        f"Scenario: prison {PRISON}, {sessions} sessions a day x {SEATS_PER_SESSION} seats over "
        f"{OPENS_DAYS + 1} days, {INMATES} inmates; {CONCURRENCY} concurrent connections; "
        f"{WARMUP_SECONDS:.0f} s warm-up + {MEASURE_SECONDS:.0f} s per read endpoint; "
        f"{EXTRA_ATTEMPTS} extra booking attempts after the sell-out"
    )
    rng = random.Random(20261128)
    reports: list[RunReport] = []
    with tempfile.TemporaryDirectory(prefix="visits-bench-") as tmp:
        workdir = Path(tmp)

        # SQLite: prepared once, then a fresh copy for each server.
        if args.only != "postgresql":
            print("SQLite: preparing the database", flush=True)
            reports += run_sqlite(workdir, rng, args.sqlite_workers)
        if args.only != "sqlite":
            reports += run_postgresql(workdir, rng, args.pg_workers)

    print_tables(reports)
    failures = [r for r in reports if r.correctness]
    print(f"\nTotal time: {time.perf_counter() - started:.0f} s")
    not_run = [f"{r.label} {r.workers}w" for r in reports if r.error is not None]
    if not_run:
        print(f"NOT RUN: {', '.join(not_run)} (see above)")
    if failures:
        print("RESULT: correctness checks FAILED (see above)")
        return 1
    print("RESULT: correctness checks passed (timing targets are informative only)")
    return 0


def run_sqlite(workdir: Path, rng: random.Random, worker_counts: list[int]) -> list[RunReport]:
    template = workdir / "template.db"
    try:
        inmates = prepare(f"sqlite:///{template}", workdir, rng)
    except RuntimeError as error:
        return [RunReport("SQLite", w, error=str(error)) for w in worker_counts]
    reports = []
    for workers in worker_counts:
        copy = workdir / f"sqlite-{workers}w.db"
        shutil.copy(template, copy)
        for suffix in ("-wal", "-shm"):
            if Path(f"{template}{suffix}").exists():
                shutil.copy(f"{template}{suffix}", f"{copy}{suffix}")
        reports.append(_run_safely("SQLite", f"sqlite:///{copy}", workers, inmates))
    return reports


def run_postgresql(workdir: Path, rng: random.Random, worker_counts: list[int]) -> list[RunReport]:
    """A fresh database for each worker count (a run sells every seat)."""
    return [_run_postgresql(workdir, random.Random(rng.random()), w) for w in worker_counts]


def _run_postgresql(workdir: Path, rng: random.Random, workers: int) -> RunReport:
    print(f"PostgreSQL ({workers}w): preparing the database", flush=True)
    try:
        with postgres_database() as url:
            try:
                inmates = prepare(url, workdir, rng)
            except RuntimeError as error:
                return RunReport("PostgreSQL", workers, error=str(error))
            return _run_safely("PostgreSQL", url, workers, inmates)
    except Unreachable as error:
        print(f"PostgreSQL is unreachable, not measured: {error}", flush=True)
        return RunReport("PostgreSQL", workers, error=f"unreachable: {error}")


def _run_safely(label: str, url: str, workers: int, inmates: list[tuple[str, str]]) -> RunReport:
    """A run that breaks (a server that does not start, say) is reported, not fatal."""
    try:
        return run_server(label, url, workers, inmates)
    except (RuntimeError, TimeoutError, OSError, httpx.HTTPError, SQLAlchemyError) as error:
        return RunReport(label, workers, error=f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    sys.exit(main())
