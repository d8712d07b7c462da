"""Invariant 3 across real processes: every message goes out exactly once.

The in-process tests (``test_dispatcher.py``) move a test clock; these run real ``visits worker``
processes on real time against the fake Twilio served from the test process, on SQLite and
PostgreSQL. Two workers compete for one outbox while the provider fails at random, and a worker
killed mid-batch leaves claims that a new worker must settle by lookup, not by sending again.
"""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from notifications.outbox import Draft, MessageStatus, OutboxMessage, enqueue
from tests.fake_twilio import FakeTwilio, running_fake_twilio
from tests.server import Server, free_port, server_env, start_process
from visits.db import Database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SETTLE_DEADLINE = 240.0
MAX_ATTEMPTS = 10
# Fast enough to finish in seconds; the lease is the shortest the settings allow.
TIMINGS = {
    "VISITS_DISPATCH_EVERY_SECONDS": "0.5",
    "VISITS_SMS_RATE_PER_SECOND": "200",
    "VISITS_SMS_CONCURRENCY": "8",
    "VISITS_SMS_UNKNOWN_WAIT_SECONDS": "1",
    "VISITS_SMS_RETRY_BASE_SECONDS": "0.2",
    "VISITS_SMS_RETRY_MAX_SECONDS": "2",
    "VISITS_SMS_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "VISITS_SMS_LEASE_SECONDS": "30",
    "VISITS_TWILIO_TIMEOUT_SECONDS": "2",
}
DISPATCHED = re.compile(
    r"dispatched (?P<claimed>\d+): (?P<sent>\d+) sent, (?P<found_sent>\d+) found sent, "
    r"(?P<retried>\d+) to retry, (?P<failed>\d+) failed, (?P<unknown>\d+) unknown, "
    r"(?P<cancelled>\d+) cancelled"
)
UNSETTLED = (MessageStatus.PENDING, MessageStatus.SENDING)


def dispatched(worker: Server) -> Counter[str]:
    """The worker's "dispatched ..." log lines, added up."""
    total: Counter[str] = Counter()
    for line in list(worker.log):
        if match := DISPATCHED.search(line):
            total.update({k: int(v) for k, v in match.groupdict().items()})
    return total


def errors(worker: Server) -> list[str]:
    return [line for line in list(worker.log) if line.startswith(("ERROR", "CRITICAL"))]


@contextmanager
def workers(db_url: str, fake: FakeTwilio, **settings: str) -> Iterator[Callable[[], Server]]:
    """Yields a function that starts one more worker; every one is stopped at the end."""
    port = free_port()
    env = server_env(
        db_url,
        port,
        VISITS_TWILIO_ACCOUNT_SID=fake.account_sid,
        VISITS_TWILIO_AUTH_TOKEN=fake.auth_token,
        VISITS_TWILIO_FROM="+15005550006",
        VISITS_TWILIO_API_BASE_URL=fake.base_url,
        **(TIMINGS | settings),
    )
    started: list[Server] = []

    def start() -> Server:
        started.append(start_process(f"http://127.0.0.1:{port}", ["worker"], env))
        return started[-1]

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


def queue_many(db: Database, count: int) -> list[int]:
    """``count`` messages due now, to distinct numbers, queued in one transaction."""
    now = datetime.now(UTC)
    with db.writing() as s:
        messages = [
            enqueue(
                s,
                Draft(
                    recipient=f"+5190000{i:04d}",
                    body=f"Recordatorio {i}: su visita es el sábado a las 9:00",
                    language="es",
                    dedupe_key=f"soak:{i}",
                    kind="reminder",
                ),
                now,
            )
            for i in range(count)
        ]
        s.flush()
        return [m.id for m in messages]


def statuses(db: Database) -> Counter[str]:
    with db.read_session() as s:
        rows = s.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        ).all()
    return Counter({status.value: n for status, n in rows})


def all_messages(db: Database) -> list[OutboxMessage]:
    with db.read_session() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def wait_until(
    condition: Callable[[], bool], deadline: float, what: str, workers: list[Server]
) -> None:
    stop = time.monotonic() + deadline
    while not condition():
        for worker in workers:
            if worker.process.poll() is not None:
                log = "\n".join(worker.log[-40:])
                raise AssertionError(f"a worker died while waiting for {what}:\n{log}")
        if time.monotonic() > stop:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def wait_settled(db: Database, workers: list[Server]) -> Counter[str]:
    wait_until(
        lambda: not any(statuses(db)[s.value] for s in UNSETTLED),
        SETTLE_DEADLINE,
        f"every message to settle (now {dict(statuses(db))})",
        workers,
    )
    return statuses(db)


def wait_logged(workers: list[Server], settled: int) -> Counter[str]:
    """The last drain logs its line after the database shows it settled: wait for it."""

    def total() -> Counter[str]:
        return sum((dispatched(w) for w in workers), Counter())

    def logged() -> bool:
        counts = total()
        return counts["sent"] + counts["found_sent"] + counts["failed"] >= settled

    wait_until(logged, 30, "the workers to log their last batch", workers)
    return total()


def stopped_mid_batch(start: Callable[[], Server], fake: FakeTwilio, sent: int, sig: int) -> Server:
    """A worker started and stopped with ``sig`` once the fake has accepted ``sent`` messages."""
    worker = start()
    wait_until(lambda: fake.sent_count() >= sent, 120, "the first sends", [worker])
    worker.stop(sig)
    return worker


def check_sent_once(db: Database, fake: FakeTwilio, ids: list[int]) -> dict[str, OutboxMessage]:
    """What the fake accepted is exactly what the outbox says was sent, each key once."""
    assert fake.duplicates() == []
    accepted = {m.key: m.sid for m in fake.messages()}
    messages = {str(m.id): m for m in all_messages(db)}
    assert set(messages) == {str(i) for i in ids}
    sent = {key: m for key, m in messages.items() if m.status is MessageStatus.SENT}
    assert set(accepted) == set(sent)
    assert {key: m.provider_sid for key, m in sent.items()} == accepted
    return messages


def test_two_workers_under_injected_faults_send_every_message_exactly_once(db, db_url):
    """Two dispatchers claim from one outbox while the provider answers 429, 500 (nothing
    queued) and 500 after accepting: every message is sent once, none twice, none lost."""
    count = 1000
    ids = queue_many(db, count)
    with running_fake_twilio(auto_status=None) as fake, workers(db_url, fake) as start:
        fake.fault_rates(rate_429=0.1, rate_500=0.05, rate_500_after_accept=0.05, seed=20260)
        started = time.monotonic()
        pair = [start(), start()]
        settled = wait_settled(db, pair)
        elapsed = time.monotonic() - started
        logged = wait_logged(pair, count)
        per_worker = [dispatched(w) for w in pair]
        logged_errors = [line for w in pair for line in errors(w)]
        outcomes = fake.outcomes
        messages = check_sent_once(db, fake, ids)
    print(
        f"\n[{db.engine.dialect.name}] {count} messages settled in {elapsed:.1f}s: "
        f"{dict(settled)}; fake outcomes {dict(outcomes)} of {sum(outcomes.values())} creates; "
        f"workers {[dict(c) for c in per_worker]}"
    )
    assert logged_errors == []
    # Both dispatchers really competed for the outbox.
    assert all(c["claimed"] > 0 and c["sent"] > 0 for c in per_worker), per_worker
    # Ten attempts at a 20% fault rate: giving up is a one-in-ten-million event per message.
    assert settled == Counter({"sent": count})
    failed = [m for m in messages.values() if m.status is MessageStatus.FAILED]
    assert failed == []
    # Every fault is accounted for by the outcome the dispatchers logged for it.
    assert min(outcomes["429"], outcomes["500"], outcomes["500_after_accept"]) > 0
    assert outcomes["accepted"] + outcomes["500_after_accept"] == count
    assert logged["sent"] == outcomes["accepted"]
    assert logged["found_sent"] == outcomes["500_after_accept"]
    assert logged["retried"] == outcomes["429"]
    assert logged["unknown"] == outcomes["500"] + outcomes["500_after_accept"]
    # A message that met a fault was attempted again or looked up, never sent blindly.
    assert sum(m.attempts for m in messages.values()) == sum(outcomes.values())


def test_a_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice(db, db_url):
    """A worker dies holding a claimed batch, some of it already accepted by the provider but
    not recorded. Once the lease lapses a new worker looks those up (found, not sent again) and
    sends the rest."""
    count = 400
    ids = queue_many(db, count)
    # Slow answers and few threads make a batch of 100 take seconds, so the kill lands in it.
    slow = {"VISITS_SMS_LEASE_SECONDS": "10", "VISITS_SMS_CONCURRENCY": "4"}
    with (
        running_fake_twilio(auto_status=None, latency=0.05) as fake,
        workers(db_url, fake, **slow) as start,
    ):
        first = stopped_mid_batch(start, fake, 50, signal.SIGKILL)
        assert first.process.returncode == -signal.SIGKILL
        time.sleep(1)  # requests already on their way finish at the fake
        accepted_at_kill = {m.key for m in fake.messages()}
        assert 50 <= len(accepted_at_kill) < count
        at_kill = all_messages(db)
        stuck = [m for m in at_kill if m.status is MessageStatus.SENDING and m.claim_token]
        in_flight = [m for m in stuck if m.last_attempt_at is not None]
        unrecorded = [m for m in in_flight if str(m.id) in accepted_at_kill]
        left = Counter(m.status.value for m in at_kill)

        started = time.monotonic()
        second = start()
        settled = wait_settled(db, [second])
        elapsed = time.monotonic() - started
        logged = wait_logged([second], count - left["sent"])
        logged_errors = errors(second)
        check_sent_once(db, fake, ids)
    print(
        f"\n[{db.engine.dialect.name}] killed after {len(accepted_at_kill)} accepted; at the kill "
        f"{dict(left)}, {len(stuck)} claimed by the dead worker, {len(in_flight)} of them "
        f"mid-attempt ({len(unrecorded)} accepted but unrecorded); the new worker settled the "
        f"rest in {elapsed:.1f}s: {dict(logged)}"
    )
    assert logged_errors == []
    assert stuck, "the kill should land mid-batch, leaving claimed messages"
    assert settled == Counter({"sent": count})
    assert fake.sent_count() == count
    assert len({m.key for m in fake.messages()}) == count
    # Exactly the accepted-but-unrecorded ones were found by lookup; nothing else was.
    assert logged["found_sent"] == len(unrecorded)
    assert logged["sent"] == count - left["sent"] - len(unrecorded)


def test_a_worker_stopped_mid_batch_hands_back_what_it_has_not_sent(db, db_url):
    """SIGTERM (a deploy, a restart) mid-batch: the worker finishes the sends under way and
    hands back the messages it claimed but never attempted, due at once, then exits cleanly. A
    new worker sends them without waiting out the lease, and nothing goes out twice."""
    count = 200
    ids = queue_many(db, count)
    # Slow answers and few threads: a batch takes seconds, so the stop lands in it.
    slow = {"VISITS_SMS_CONCURRENCY": "4"}
    with (
        running_fake_twilio(auto_status=None, latency=0.1) as fake,
        workers(db_url, fake, **slow) as start,
    ):
        first = stopped_mid_batch(start, fake, 20, signal.SIGTERM)
        assert first.process.returncode == 0, "\n".join(first.log[-40:])
        stopped = datetime.now(UTC)
        at_stop = all_messages(db)
        accepted_at_stop = {m.key for m in fake.messages()}
        first_errors = errors(first)

        second = start()
        settled = wait_settled(db, [second])
        left = Counter(m.status.value for m in at_stop)
        logged = wait_logged([second], count - left["sent"])
        check_sent_once(db, fake, ids)
    print(
        f"\n[{db.engine.dialect.name}] stopped after {len(accepted_at_stop)} accepted: "
        f"{dict(left)}; the new worker: {dict(logged)}"
    )
    assert first_errors == []
    # Every send under way was finished and recorded; every other claim was handed back.
    assert [m.id for m in at_stop if m.claim_token is not None] == []
    assert {str(m.id) for m in at_stop if m.status is MessageStatus.SENT} == accepted_at_stop
    assert 20 <= left["sent"] < count
    assert left == Counter({"sent": left["sent"], "pending": count - left["sent"]})
    unsent = [m for m in at_stop if m.status is MessageStatus.PENDING]
    assert all(m.attempts == 0 and m.last_attempt_at is None for m in unsent)
    assert all(m.next_attempt_at.replace(tzinfo=UTC) <= stopped for m in unsent)
    assert settled == Counter({"sent": count})
    assert fake.sent_count() == count
    assert logged["found_sent"] == 0
    assert logged["sent"] == count - left["sent"]
