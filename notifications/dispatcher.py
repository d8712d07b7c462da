"""The dispatcher: sends due messages exactly once by design (invariant 3).

A dispatcher *claims* due messages in one short transaction: it marks them ``sending`` with a
token and a lease (``next_attempt_at`` becomes the end of the lease). On PostgreSQL the rows are
picked with ``FOR UPDATE SKIP LOCKED``, so two dispatchers take different rows without waiting;
on SQLite the caller's write session holds ``BEGIN IMMEDIATE``, so claims take turns. Then it
sends them with bounded concurrency under a rate cap, and records each outcome in its own
transaction, only while its claim still stands.

A message whose lease lapsed (the dispatcher died, or the provider never answered) is due
again, but it is first *looked up* at the provider: found means it went out, and is recorded
as sent; only a message the provider has no record of is sent again.

A dispatcher told to :meth:`~Dispatcher.stop` (the worker is shutting down) claims nothing
more, lets the sends already under way finish, and hands back what it claimed but never
attempted, due at once, so a restarted worker need not wait out the lease.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from notifications import recipients
from notifications.outbox import MessageStatus, OutboxMessage, move, record_event
from notifications.recipients import Recipient, blocking_reason
from notifications.senders import (
    Accepted,
    LookupFailed,
    Outcome,
    Outgoing,
    Refused,
    Retry,
    Sender,
    Unknown,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
WriteSessions = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True)
class DispatchPolicy:
    rate_per_second: float = 10.0
    concurrency: int = 8
    # Long enough to send a whole batch: a lease that lapses mid-batch hands the rest to a
    # lookup, which is safe but slow.
    lease: timedelta = timedelta(minutes=2)
    batch_size: int = 100
    max_attempts: int = 12
    backoff_base: timedelta = timedelta(seconds=5)
    backoff_max: timedelta = timedelta(minutes=15)
    # How long an unanswered attempt waits before it is looked up at the provider.
    unknown_wait: timedelta = timedelta(seconds=30)
    # The longest one send can take (connect and read timeouts): an attempt starts only if
    # the claim outlives it, so no lapsed claim is ever sent by two dispatchers.
    send_time: timedelta = timedelta(seconds=25)
    # A message whose fate the provider cannot tell us for this long is failed, for staff.
    give_up_unknown_after: timedelta = timedelta(hours=1)

    def batch(self) -> int:
        """No more than can be sent well within one lease at the rate cap."""
        affordable = int(self.rate_per_second * self.lease.total_seconds() / 2)
        return max(1, min(self.batch_size, affordable))

    def backoff(self, attempts: int) -> timedelta:
        """Exponential backoff with jitter, so retries of a burst do not come back together."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** max(attempts - 1, 0))
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 (spreading, not secrecy)


class RateLimiter:
    """At most ``rate`` acquisitions per second across the threads of one process: each one
    gets its own moment, ``1/rate`` after the previous one, and sleeps until then."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate
        self.clock, self.sleep = clock, sleep
        self._next = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self.clock()
            slot = max(self._next, now)
            self._next = slot + self.interval
        if (wait := slot - now) > 0:
            self.sleep(wait)


@dataclass(frozen=True)
class Claimed:
    outgoing: Outgoing
    # The last attempt's start if the message's fate is unknown (look it up first), else None.
    unsettled_since: datetime | None
    expires_at: datetime | None
    essential: bool
    attempts: int
    withdrawn: bool = False
    # Why ordinary messages may not go to this number (opted out, unreachable), at claim time.
    blocked: str | None = None


@dataclass
class DispatchReport:
    claimed: int = 0
    sent: int = 0
    found_sent: int = 0
    retried: int = 0
    failed: int = 0
    unknown: int = 0
    cancelled: int = 0
    released: int = 0
    outcomes: dict[int, str] = field(default_factory=dict)

    def add(self, message_id: int, what: str) -> None:
        self.outcomes[message_id] = what
        setattr(self, what, getattr(self, what) + 1)


class Dispatcher:
    def __init__(
        self,
        writing: WriteSessions,
        sender: Sender,
        *,
        policy: DispatchPolicy | None = None,
        clock: Clock,
        status_callback_url: str | None = None,
    ) -> None:
        """``writing`` opens a session that commits on success; on SQLite it must begin with
        ``BEGIN IMMEDIATE`` (``visits.db.Database.writing`` does)."""
        self.writing = writing
        self.sender = sender
        self.policy = policy or DispatchPolicy()
        self.clock = clock
        self.status_callback_url = status_callback_url
        self._stopping = threading.Event()
        # A stop wakes the sends waiting for their turn under the rate cap.
        self.limiter = RateLimiter(self.policy.rate_per_second, sleep=self._stopping.wait)

    def stop(self) -> None:
        """Claim nothing more, and hand back each claimed message before its attempt starts.
        An attempt under way finishes (within the provider's timeout) and is recorded."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # --- Claiming ----------------------------------------------------------------------------

    def claim(self, limit: int | None = None) -> tuple[str, list[Claimed]]:
        token = secrets.token_hex(8)
        now = self.clock()
        with self.writing() as session:
            rows = session.execute(
                select(
                    OutboxMessage.id,
                    OutboxMessage.status,
                    OutboxMessage.recipient,
                    OutboxMessage.body,
                    OutboxMessage.last_attempt_at,
                    OutboxMessage.expires_at,
                    OutboxMessage.essential,
                    OutboxMessage.attempts,
                    OutboxMessage.withdrawn_at,
                    Recipient.opted_out_at,
                    Recipient.unreachable_at,
                )
                .outerjoin(Recipient, Recipient.phone == OutboxMessage.recipient)
                .where(
                    OutboxMessage.status.in_([MessageStatus.PENDING, MessageStatus.SENDING]),
                    OutboxMessage.next_attempt_at <= now,
                )
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(limit or self.policy.batch())
                .with_for_update(of=OutboxMessage, skip_locked=True)
            ).all()
            if not rows:
                return token, []
            ids = [row.id for row in rows]
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids))
                .values(
                    status=MessageStatus.SENDING,
                    claim_token=token,
                    next_attempt_at=now + self.policy.lease,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            for row in rows:
                if row.status is MessageStatus.PENDING:
                    record_event(session, row.id, MessageStatus.SENDING, now, None)
        return token, [
            Claimed(
                Outgoing(row.id, row.recipient, row.body, self._callback(row.id)),
                row.last_attempt_at if row.status is MessageStatus.SENDING else None,
                row.expires_at,
                row.essential,
                row.attempts,
                withdrawn=row.withdrawn_at is not None,
                blocked=blocking_reason(row.opted_out_at, row.unreachable_at),
            )
            for row in rows
        ]

    def _callback(self, message_id: int) -> str | None:
        if not self.status_callback_url:
            return None
        return f"{self.status_callback_url}?m={message_id}"

    # --- Sending -----------------------------------------------------------------------------

    def drain(self, budget: timedelta = timedelta(seconds=50)) -> DispatchReport:
        """Send until nothing is due or ``budget`` is spent (one scheduler tick).

        Batches overlap: the next one is claimed as soon as fewer sends are in flight than
        there are threads, so the rate cap is not lost waiting for a batch's slowest answer.
        Once a claim comes back empty, what is in flight finishes and the tick ends.
        """
        report = DispatchReport()
        stop = time.monotonic() + budget.total_seconds()
        in_flight: dict[Future[str], int] = {}
        more = True
        with ThreadPoolExecutor(max_workers=self.policy.concurrency) as pool:
            while True:
                if more and len(in_flight) <= self.policy.concurrency:
                    more = time.monotonic() < stop and not self.stopping
                    token, claimed = self.claim() if more else ("", [])
                    report.claimed += len(claimed)
                    more = more and bool(claimed)
                    for item in claimed:
                        future = pool.submit(self._deliver, token, item)
                        in_flight[future] = item.outgoing.message_id
                if not in_flight:
                    return report
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    report.add(in_flight.pop(future), future.result())

    def _deliver(self, token: str, item: Claimed) -> str:
        try:
            return self._deliver_unsafely(token, item)
        except Exception:
            # The claim stands; when its lease lapses the message is looked up and settled.
            log.exception("dispatching message %s failed", item.outgoing.message_id)
            return "unknown"

    def _deliver_unsafely(self, token: str, item: Claimed) -> str:
        outgoing = item.outgoing
        if self.stopping:
            return self._release(token, item)
        now = self.clock()
        if item.unsettled_since is not None:
            try:
                found = self._find(outgoing, item.unsettled_since)
            except LookupFailed as error:
                if now - item.unsettled_since < self.policy.give_up_unknown_after:
                    self._record(token, outgoing.message_id, Unknown(f"lookup failed: {error}"), 0)
                    return "unknown"
                self._end(token, outgoing.message_id, MessageStatus.FAILED, "unknown", str(error))
                return "failed"
            if found is not None:
                self._record(token, outgoing.message_id, found, item.attempts)
                return "found_sent"
            if item.attempts >= self.policy.max_attempts:
                self._fail(token, outgoing.message_id, "gave up: no answer from the provider")
                return "failed"
        if item.withdrawn:
            self._cancel(token, outgoing.message_id, "withdrawn", "no longer wanted")
            return "cancelled"
        if item.expires_at is not None and now >= item.expires_at:
            self._cancel(token, outgoing.message_id, "expired", "too late to be useful")
            return "cancelled"
        if not item.essential and item.blocked:
            self._cancel(token, outgoing.message_id, item.blocked, item.blocked)
            return "cancelled"
        self.limiter.acquire()
        if self.stopping:
            return self._release(token, item)
        match self._start_attempt(token, outgoing.message_id):
            case "withdrawn":
                self._cancel(token, outgoing.message_id, "withdrawn", "no longer wanted")
                return "cancelled"
            case "lost":
                # The claim lapsed, or would before an answer: whoever claims it next looks
                # it up first (it was not sent) and sends it.
                return "unknown"
        outcome = self.sender.send(outgoing)
        return self._record(token, outgoing.message_id, outcome, item.attempts + 1)

    def _find(self, outgoing: Outgoing, since: datetime) -> Accepted | None:
        """The provider's record of this message: one with its text, to its number, since the
        attempt, whose id no other message of ours holds (the same text may go twice)."""
        candidates = self.sender.lookup(outgoing, since)
        if not candidates:
            return None
        with self.writing() as session:
            taken = set(
                session.scalars(
                    select(OutboxMessage.provider_sid).where(
                        OutboxMessage.provider_sid.in_([c.sid for c in candidates]),
                        OutboxMessage.id != outgoing.message_id,
                    )
                )
            )
        return next((c for c in candidates if c.sid not in taken), None)

    def _start_attempt(self, token: str, message_id: int) -> str:
        """Count the attempt and note its start (for a later lookup), only while the claim
        holds for longer than a send can take and nobody withdrew the message."""
        now = self.clock()
        with self.writing() as session:
            changed = session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == message_id,
                    OutboxMessage.claim_token == token,
                    OutboxMessage.withdrawn_at.is_(None),
                    OutboxMessage.next_attempt_at >= now + self.policy.send_time,
                )
                .values(attempts=OutboxMessage.attempts + 1, last_attempt_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if changed == 1:
                return "started"
            withdrawn = session.scalar(
                select(OutboxMessage.id).where(
                    OutboxMessage.id == message_id,
                    OutboxMessage.claim_token == token,
                    OutboxMessage.withdrawn_at.is_not(None),
                )
            )
        return "withdrawn" if withdrawn else "lost"

    def _release(self, token: str, item: Claimed) -> str:
        """Give back a message claimed but not attempted under this claim, due now. One whose
        earlier attempt has no known fate stays ``sending`` (as after an unknown outcome), so
        that the next claim looks it up before sending; any other goes back to ``pending``."""
        now = self.clock()
        with self.writing() as session:
            message = session.get(OutboxMessage, item.outgoing.message_id, with_for_update=True)
            if message is None or message.claim_token != token:
                return "unknown"
            if item.unsettled_since is None:
                move(session, message, MessageStatus.PENDING, now, "released: stopping")
            else:
                message.claim_token = None
                message.updated_at = now
            message.next_attempt_at = now
        return "released"

    # --- Recording ---------------------------------------------------------------------------

    def _record(self, token: str, message_id: int, outcome: Outcome, attempts: int) -> str:
        now = self.clock()
        with self.writing() as session:
            message = session.get(OutboxMessage, message_id, with_for_update=True)
            if message is None:
                return "unknown"
            if message.claim_token != token:
                # A delivery report settled it first, or our lease lapsed mid-send: keep the
                # provider's id so that whoever holds the message now finds it sent.
                if isinstance(outcome, Accepted) and message.provider_sid in (None, outcome.sid):
                    message.provider_sid = outcome.sid
                    return "sent"
                return "unknown"
            return self._apply(session, message, outcome, attempts, now)

    def _apply(
        self,
        session: Session,
        message: OutboxMessage,
        outcome: Outcome,
        attempts: int,
        now: datetime,
    ) -> str:
        match outcome:
            case Accepted(sid=sid):
                message.provider_sid = sid
                message.error_code = message.error_message = None
                move(session, message, MessageStatus.SENT, now, None)
                return "sent"
            case Retry(code=code, message=text, after=after, counted=counted):
                message.error_code, message.error_message = code, text
                if counted and attempts >= self.policy.max_attempts:
                    move(session, message, MessageStatus.FAILED, now, f"gave up: {code}")
                    return "failed"
                wait = self.policy.backoff(attempts)
                if after:
                    wait = max(wait, timedelta(seconds=after))
                move(session, message, MessageStatus.PENDING, now, f"retry: {code}")
                message.next_attempt_at = now + wait
                return "retried"
            case Refused(code=code, message=text):
                message.error_code, message.error_message = code, text
                recipients.note_refusal(session, message.recipient, code, now)
                move(session, message, MessageStatus.FAILED, now, f"refused: {code}")
                return "failed"
            case Unknown(message=text):
                # Stays "sending" without a claim: when the wait is over, the next claim looks
                # it up at the provider before anything is sent again.
                message.error_code, message.error_message = "unknown", text
                message.claim_token = None
                message.next_attempt_at = now + self.policy.unknown_wait
                message.updated_at = now
                record_event(session, message.id, MessageStatus.SENDING, now, f"unknown: {text}")
                return "unknown"
        raise TypeError(outcome)

    def _cancel(self, token: str, message_id: int, code: str, why: str) -> None:
        self._end(token, message_id, MessageStatus.CANCELLED, code, why)

    def _fail(self, token: str, message_id: int, why: str) -> None:
        self._end(token, message_id, MessageStatus.FAILED, "gave_up", why)

    def _end(self, token: str, message_id: int, status: MessageStatus, code: str, why: str) -> None:
        now = self.clock()
        with self.writing() as session:
            message = session.get(OutboxMessage, message_id, with_for_update=True)
            if message is not None and message.claim_token == token:
                message.error_code, message.error_message = code, why
                move(session, message, status, now, why)
