"""The floor under the booking rush's throughput target: what a booking request costs the
server before any rule or database, against ``/healthz`` in the same run.

Run from the repository root with ``make bench`` (``python -m tests.bench.floor``).

Why it exists: the rush (:mod:`tests.bench.rush`) asks booking throughput to reach 25 % of
``/healthz``'s, that is at most 4 × its CPU per booking attempt. This serves the app of
``visits serve`` plus one route (:mod:`tests.bench.floor_server`) that parses the booking API's
body and answers its 201 or its 409 through the same middleware and serialisers, touching no
database, and measures the server's CPU per request for the three, interleaved over
``ROUNDS``. What 4 × ``/healthz`` leaves after that floor is the budget for everything else of
a booking: the rules, the SQL (:mod:`tests.bench.booking_cost` measures its bare-driver cost)
and the losers' refusals. Timings never fail the run.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile

from tests.bench.rush import (
    CONCURRENCY,
    Families,
    cpu_seconds,
    http_request,
    measure_endpoint,
    process_tree,
    run_async,
)
from tests.bench.table import print_table
from tests.server import free_port, run_cli, running_server, server_env

ROUNDS = 3
TARGET_SHARE = 0.25  # the rush's booking throughput target, as a share of /healthz


def main() -> int:
    print("Booking floor: server CPU per request, /healthz against a booking with no rule or SQL")
    print(f"Scenario: SQLite, 1 worker, {CONCURRENCY} connections, {ROUNDS} interleaved rounds")
    families = Families(random.Random(0), [("A00001", "Quispe")])
    with tempfile.TemporaryDirectory(prefix="visits-floor-bench-") as tmp:
        url = f"sqlite:///{tmp}/floor.db"
        port = free_port()
        migrated = run_cli("migrate", env=server_env(url, port))
        if migrated.returncode:
            raise SystemExit(migrated.stderr)
        target = f"127.0.0.1:{port}"
        json_type = {"Content-Type": "application/json"}
        requests = {
            "GET /healthz": [http_request("GET", "/healthz", target)] * CONCURRENCY,
            "booking floor, 201": [
                http_request("POST", "/bench/floor", target, json_type, families.body(2 * i))
                for i in range(CONCURRENCY)
            ],
            "booking floor, 409": [
                http_request("POST", "/bench/floor", target, json_type, families.body(2 * i + 1))
                for i in range(CONCURRENCY)
            ],
        }
        cpu: dict[str, list[float]] = {name: [] for name in requests}
        rps: dict[str, list[float]] = {name: [] for name in requests}
        with running_server(url, port=port, module="tests.bench.floor_server") as server:
            pids = process_tree(server.process.pid)
            for _ in range(ROUNDS):
                for name, raw in requests.items():
                    before = cpu_seconds(pids)
                    warmup, measured = run_async(measure_endpoint("127.0.0.1", port, raw))
                    served = warmup.requests + measured.requests
                    cpu[name].append(1000 * (cpu_seconds(pids) - before) / served)
                    answered = sum(measured.statuses.values())
                    rps[name].append(answered / measured.seconds)
                    wrong = set(measured.statuses) - {"200", "201", "409"}
                    if wrong:
                        raise SystemExit(f"{name}: unexpected answers {dict(measured.statuses)}")
    ms = {name: statistics.median(values) for name, values in cpu.items()}
    health = ms["GET /healthz"]
    budget = health / TARGET_SHARE
    rows = [(f"server CPU ms/request: {name}", "(info)", [f"{ms[name]:.3f}"]) for name in requests]
    rows += [
        (f"req/s: {name}", "(info)", [f"{statistics.median(rps[name]):.0f}"]) for name in requests
    ]
    rows += [
        ("CPU per booking the target allows (ms)", "(info)", [f"{budget:.3f}"]),
        (
            "left after its 201 floor: refusals, rules, SQL (ms)",
            "(info)",
            [f"{budget - ms['booking floor, 201']:.3f}"],
        ),
        (
            "bookings/s / healthz if a booking cost its floor",
            f">= {TARGET_SHARE:.0%}",
            [f"{health / ms['booking floor, 201']:.0%}"],
        ),
    ]
    print_table(rows, ["SQLite, 1w"])
    print(f"\nEach round, ms/request: {json.dumps(cpu)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
