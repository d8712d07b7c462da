"""SMS dispatch benchmark: the real dispatcher and ``twilio`` client against the fake Twilio.

Run from the repository root with ``make bench`` (after the booking rush) or
``python -m tests.bench.dispatch``.

For each database it migrates a fresh database, queues ``--messages`` messages with
:func:`notifications.outbox.enqueue` (one recipient each), serves the fake Twilio in this
process with ``--latency`` seconds before each answer, and runs the dispatcher in a child
process of its own (``--child``), so that its CPU time and peak memory are its own and not the
fake's or the set-up's. The child drains the outbox as a scheduler tick would
(``Dispatcher.drain``, again until nothing is due) and prints what it measured as JSON.

Throughput is compared with the rate cap (``--rate``): the limiter spaces sends ``1/rate``
apart, so the cap is reached only if ``concurrency / latency`` exceeds it and nothing else
stalls the sends (the gaps between batches, the database writes around each send).

Timings never fail the run. The exit status is non-zero only when a correctness check fails:
a message accepted twice by the fake, a message not accepted, or an outbox that disagrees with
what the fake accepted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.table import print_table

# Heavy imports (the fake's web server, the schema tools) are made inside the functions that
# need them, so the child that runs the dispatcher loads only what production's worker loads.

DEFAULT_MESSAGES = 2000
DEFAULT_RATE = 50.0
DEFAULT_LATENCY = 0.1
DEFAULT_CONCURRENCY = 8
TARGET_RATIO = 0.90
FROM_NUMBER = "+15005550006"
# As in production (``make_dispatcher``): each create names a status callback. The fake posts
# none here, but its ``m`` parameter lets the fake tell one intended message from another.
STATUS_CALLBACK = "https://visitas.example.pe/twilio/status"
BODY = (
    "Recordatorio: su visita al Penal de prueba es el {day} a las 09:00, referencia {ref}. "
    "Traiga su DNI. Para cancelar responda CANCELAR."
)


# --- The child: the dispatcher alone in its process ------------------------------------------


def child(config: dict[str, Any]) -> int:
    """Drain the outbox through the real client; print wall time, CPU and peak RSS as JSON."""
    from notifications.dispatcher import Dispatcher, DispatchPolicy, DispatchReport
    from notifications.senders import TwilioConfig, TwilioSender
    from visits.base import utcnow
    from visits.db import Database, make_engine

    db = Database(make_engine(config["url"]))
    sender = TwilioSender(
        TwilioConfig(
            account_sid=config["account_sid"],
            auth_token=config["auth_token"],
            from_number=FROM_NUMBER,
            api_base_url=config["base_url"],
        )
    )
    policy = DispatchPolicy(rate_per_second=config["rate"], concurrency=config["concurrency"])
    dispatcher = Dispatcher(
        db.writing, sender, policy=policy, clock=utcnow, status_callback_url=STATUS_CALLBACK
    )
    rss_before_kb = _vm_rss_kb()
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    total = DispatchReport()
    drains = 0
    started = time.perf_counter()
    limit = started + config["time_limit"]
    while time.perf_counter() < limit:
        report = dispatcher.drain()
        drains += 1
        total.claimed += report.claimed
        for message_id, what in report.outcomes.items():
            total.add(message_id, what)
        if report.claimed == 0:
            break
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    db.dispose()
    result = {
        "wall_seconds": wall,
        "drains": drains,
        "batch": policy.batch(),
        "claimed": total.claimed,
        "outcomes": {
            name: getattr(total, name)
            for name in ("sent", "found_sent", "retried", "failed", "unknown", "cancelled")
        },
        "cpu_user": usage.ru_utime - usage_before.ru_utime,
        "cpu_system": usage.ru_stime - usage_before.ru_stime,
        "cpu_total_process": usage.ru_utime + usage.ru_stime,
        "rss_before_kb": rss_before_kb,
        "max_rss_kb": usage.ru_maxrss,  # kB on Linux
        "voluntary_switches": usage.ru_nvcsw - usage_before.ru_nvcsw,
    }
    print(json.dumps(result))
    return 0


def _vm_rss_kb() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


# --- The parent: databases, the fake, the checks ---------------------------------------------


@dataclass
class Options:
    messages: int
    rate: float
    latency: float
    concurrency: int


@dataclass
class RunReport:
    label: str
    enqueue_seconds: float = 0.0
    child: dict[str, Any] = field(default_factory=dict)
    fake_requests: int = 0
    fake_outcomes: Counter[str] = field(default_factory=Counter)
    fake_accepted: int = 0
    duplicates: int = 0
    accept_span: float = 0.0  # seconds from the fake's first acceptance to its last
    # Gaps between acceptances of more than five spacings (1/rate): where sending stalled.
    long_gaps: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)  # outbox rows by status
    sids_agree: bool = False
    correctness: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def sent(self) -> int:
        return int(self.child.get("outcomes", {}).get("sent", 0))

    @property
    def per_second(self) -> float:
        wall = self.child.get("wall_seconds", 0.0)
        return self.sent / wall if wall else 0.0

    @property
    def cpu_seconds(self) -> float:
        return self.child.get("cpu_user", 0.0) + self.child.get("cpu_system", 0.0)


def queue_messages(url: str, count: int) -> float:
    """Migrate, then queue ``count`` messages in one transaction; return the seconds it took."""
    from notifications.outbox import Draft, enqueue
    from visits.base import utcnow
    from visits.db import Database, make_engine
    from visits.migrate import upgrade

    upgrade(url)
    db = Database(make_engine(url))
    started = time.perf_counter()
    try:
        now = utcnow()
        with db.writing() as session:
            for i in range(count):
                ref = f"B{i:03d}-{i * 7919 % 10000:04d}"
                draft = Draft(
                    recipient=f"+519{i:08d}",
                    body=BODY.format(day=f"{1 + i % 28} de diciembre", ref=ref),
                    language="es",
                    dedupe_key=f"bench:reminder:{i}",
                    kind="reminder",
                    subject=f"booking:{ref}",
                )
                enqueue(session, draft, now)
    finally:
        db.dispose()
    return time.perf_counter() - started


def run_child(url: str, fake: Any, options: Options) -> dict[str, Any]:
    """The dispatcher in a process of its own; its stderr (any log) passes through."""
    ideal = options.messages / options.rate
    config = {
        "url": url,
        "base_url": fake.base_url,
        "account_sid": fake.account_sid,
        "auth_token": fake.auth_token,
        "rate": options.rate,
        "concurrency": options.concurrency,
        "time_limit": 3 * ideal + 60,
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.dispatch", "--child", json.dumps(config)],
        stdout=subprocess.PIPE,
        text=True,
        timeout=3 * ideal + 120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the dispatcher process exited with {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(report: RunReport, url: str, fake: Any, options: Options) -> None:
    """Compare what the fake accepted with what the outbox recorded."""
    from sqlalchemy import func, select

    from notifications.outbox import OutboxMessage
    from visits.db import Database, make_engine

    accepted = fake.messages()
    report.fake_requests = fake.create_requests
    report.fake_outcomes = fake.outcomes
    report.fake_accepted = len(accepted)
    report.duplicates = len(fake.duplicates())
    moments = sorted(m.accepted_at for m in accepted)
    if len(moments) > 1:
        report.accept_span = (moments[-1] - moments[0]).total_seconds()
        spacing = 1 / options.rate
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(moments)]
        report.long_gaps = [g for g in gaps if g > 5 * spacing]

    db = Database(make_engine(url))
    try:
        with db.read_session() as session:
            report.statuses = Counter(
                {
                    str(status): n
                    for status, n in session.execute(
                        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
                    ).all()
                }
            )
            sids = set(session.scalars(select(OutboxMessage.provider_sid)))
    finally:
        db.dispose()
    report.sids_agree = sids == {m.sid for m in accepted}

    problems = report.correctness
    if report.duplicates:
        problems.append(f"{report.duplicates} messages accepted more than once by the fake")
    if report.fake_accepted != options.messages:
        problems.append(f"the fake accepted {report.fake_accepted} of {options.messages}")
    if report.statuses != Counter({"sent": options.messages}):
        problems.append(f"outbox statuses {dict(report.statuses)}, not all sent")
    if not report.sids_agree:
        problems.append("the outbox's provider ids differ from the fake's accepted messages")
    if report.fake_requests != report.fake_accepted:
        problems.append(f"{report.fake_requests} create requests for {report.fake_accepted}")


def run_backend(label: str, url: str, options: Options) -> RunReport:
    from tests.fake_twilio import running_fake_twilio

    report = RunReport(label)
    print(f"{label}: migrating and queuing {options.messages} messages", flush=True)
    report.enqueue_seconds = queue_messages(url, options.messages)
    with running_fake_twilio(latency=options.latency) as fake:
        print(f"{label}: dispatching (about {options.messages / options.rate:.0f} s)", flush=True)
        report.child = run_child(url, fake, options)
        check(report, url, fake, options)
    return report


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="visits-dispatch-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'dispatch.db'}"


def run_safely(label: str, database: Callable[[], Any], options: Options) -> RunReport:
    """A run that breaks (an unreachable server, a child that dies) is reported, not fatal."""
    from sqlalchemy.exc import SQLAlchemyError

    from tests.bench.rush import Unreachable

    try:
        with database() as url:
            return run_backend(label, url, options)
    except Unreachable as error:
        return RunReport(label, error=f"unreachable: {error}")
    except (
        RuntimeError,
        OSError,
        ValueError,
        subprocess.TimeoutExpired,
        SQLAlchemyError,
    ) as error:
        return RunReport(label, error=f"{type(error).__name__}: {error}")


# --- Report ----------------------------------------------------------------------------------


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def print_results(reports: list[RunReport], options: Options) -> None:
    done = [r for r in reports if r.error is None]
    for r in reports:
        if r.error is not None:
            print(f"\n{r.label}: NOT RUN: {r.error}")
    if not done:
        return
    cap = options.rate
    rows: list[tuple[str, str, list[str]]] = []

    def row(name: str, target: str, cell: Callable[[RunReport], str]) -> None:
        rows.append((name, target, [cell(r) for r in done]))

    row("messages sent", f"{options.messages}", lambda r: f"{r.sent}")
    row("dispatch wall time (s)", "", lambda r: f"{r.child['wall_seconds']:.2f}")
    row("messages/s", f"cap {cap:g}", lambda r: f"{r.per_second:.1f}")
    row(
        "messages/s / rate cap",
        f">= {TARGET_RATIO:.0%}",
        lambda r: f"{r.per_second / cap:.1%} {_verdict(r.per_second / cap >= TARGET_RATIO)}",
    )
    row(
        "accepted/s at the fake (first to last)",
        "(info)",
        lambda r: f"{(r.fake_accepted - 1) / r.accept_span:.1f}" if r.accept_span else "-",
    )
    row(
        "wall time beyond messages/cap (s)",
        "(info)",
        lambda r: f"{r.child['wall_seconds'] - options.messages / cap:.2f}",
    )
    row(
        f"stalls: gaps > {5000 / cap:.0f} ms between sends",
        "(info)",
        lambda r: f"{len(r.long_gaps)}, {sum(r.long_gaps):.2f} s",
    )
    row("dispatcher CPU, user+sys (s)", "(info)", lambda r: f"{r.cpu_seconds:.2f}")
    row(
        "dispatcher CPU per message (ms)",
        "(info)",
        lambda r: f"{1000 * r.cpu_seconds / max(r.sent, 1):.2f}",
    )
    row(
        "dispatcher CPU, share of one core",
        "(info)",
        lambda r: f"{r.cpu_seconds / r.child['wall_seconds']:.0%}",
    )
    row(
        "dispatcher peak RSS (MB)",
        "(info)",
        lambda r: f"{r.child['max_rss_kb'] / 1024:.0f}",
    )
    row(
        "dispatcher RSS before sending (MB)",
        "(info)",
        lambda r: f"{r.child['rss_before_kb'] / 1024:.0f}",
    )
    row(
        "duplicates at the fake",
        "0",
        lambda r: f"{r.duplicates} {_verdict(r.duplicates == 0)}",
    )
    row(
        "accepted by the fake",
        "all",
        lambda r: (
            f"{r.fake_accepted}/{options.messages} {_verdict(r.fake_accepted == options.messages)}"
        ),
    )
    row(
        "outbox: sent, provider ids = fake's",
        "all",
        lambda r: (
            f"{r.statuses.get('sent', 0)}/{options.messages} "
            f"{_verdict(r.statuses.get('sent', 0) == options.messages and r.sids_agree)}"
        ),
    )
    row(
        "correctness checks",
        "all pass",
        lambda r: "pass" if not r.correctness else f"FAIL ({len(r.correctness)})",
    )

    headers = [r.label for r in done]
    print_table(rows, headers)
    print(
        "\nmessages/s: messages sent / the dispatcher's wall time, from its first claim until a\n"
        "claim found nothing due. Stalls are gaps between the fake's acceptances (batches\n"
        "overlap, so a claim should not leave the threads idle).\n"
        "CPU and peak RSS are the dispatcher process's own (getrusage: CPU while dispatching;\n"
        "peak RSS over its life, imports included)."
    )
    for r in done:
        c = r.child
        outcomes = ", ".join(f"{k} {v}" for k, v in c["outcomes"].items() if v)
        print(
            f"\n{r.label}: queued in {r.enqueue_seconds:.1f} s; {c['drains']} drain call(s), "
            f"batches of {c['batch']}; outcomes: {outcomes or 'none'}; "
            f"fake create answers: {dict(r.fake_outcomes)}"
        )
        print(
            f"  CPU user {c['cpu_user']:.2f} s, system {c['cpu_system']:.2f} s; whole process "
            f"{c['cpu_total_process']:.2f} s with start-up; "
            f"{c['voluntary_switches']} voluntary context switches"
        )
        for note in r.notes:
            print(f"  note: {note}")
        for problem in r.correctness:
            print(f"  CORRECTNESS FAILURE: {problem}")


# --- Main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", choices=("sqlite", "postgresql"), help="one database only (default: both)"
    )
    parser.add_argument(
        "--messages", type=int, default=DEFAULT_MESSAGES, help="messages to queue (%(default)s)"
    )
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="rate cap, msg/s (%(default)s)"
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=DEFAULT_LATENCY,
        help="the fake's answer latency, s (%(default)s)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="sender threads (%(default)s)"
    )
    parser.add_argument("--child", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))

    from tests.bench.rush import DEFAULT_PG_URL, postgres_database

    options = Options(args.messages, args.rate, args.latency, args.concurrency)
    started = time.perf_counter()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print("SMS dispatch benchmark")
    python = sys.version.split()[0]
    print(f"CPUs: {os.cpu_count()} (usable by this process: {usable}); Python {python}")
    print(
        f"Scenario: {options.messages} messages, rate cap {options.rate:g}/s, "
        f"{options.concurrency} sender threads, fake Twilio answering after "
        f"{options.latency * 1000:.0f} ms (most the threads can do: "
        f"{options.concurrency / options.latency:.0f}/s if a send took only the latency)"
    )
    print(f"Load average at the start: {_load()} (other work on the machine slows the sends)")
    reports = []
    if args.only != "postgresql":
        reports.append(run_safely("SQLite", sqlite_database, options))
    if args.only != "sqlite":
        pg = os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG_URL
        print(f"PostgreSQL: a fresh database on {pg.rpartition('@')[2]}", flush=True)
        reports.append(run_safely("PostgreSQL", postgres_database, options))

    print_results(reports, options)
    print(f"\nTotal time: {time.perf_counter() - started:.0f} s; load average now {_load()}")
    not_run = [r.label for r in reports if r.error is not None]
    if not_run:
        print(f"NOT RUN: {', '.join(not_run)} (see above)")
    if any(r.correctness for r in reports):
        print("RESULT: correctness checks FAILED (see above)")
        return 1
    print("RESULT: correctness checks passed (timing targets are informative only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
