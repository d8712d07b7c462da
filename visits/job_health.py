"""Whether the background jobs run: each job's last success and failure, and which are late.

The jobs may run in another process than the one asked (``visits worker`` beside the web
workers), so the only shared truth is a small table, ``job_run``: one row per job, written by
the process that ran it (:class:`RunRecorder`, called by ``visits.jobs._safely``).

Writes are cheap by design: at most one per job per :data:`RECORD_EVERY` per process (the
last write is remembered in memory; what happened since waits for the next write), each in
its own short transaction after the job's own, never inside a booking's. A failure to record
is logged and forgotten: it never fails the job. Only the error's class name is kept (never
its message, which may quote a phone number or a name).

A job is late when it has not succeeded within :func:`late_after` of now: three of its
intervals plus :data:`GRACE` (two minutes), so one slow or failed run, a recording held back
by the throttle, or a worker restarting never raises the alarm, and a stopped worker does
within a few minutes for the frequent jobs. A job that never succeeded is late.

Just after a start, this does not flap, and the decision rests on the table alone (a web
process cannot know when the worker started): the table outlives processes, so a restarted
worker's jobs keep their last success and stay on time until their deadline passes; a worker
runs every job as it starts, so they succeed again well before. The only moment a job has no
success at all is on a new database (or for a job a release adds), before its very first run:
then nothing has been done yet, and saying so is the truth, not a flap. It ends within the
first run's seconds once a worker runs; if none ever does, that is what the alarm is for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from visits.base import Base, UTCDateTime, utcnow
from visits.db import Database, dialect_insert
from visits.settings import Settings

log = logging.getLogger(__name__)

HOLD_EXPIRY_EVERY = timedelta(seconds=30)
SLOT_SYNC_EVERY = timedelta(hours=1)
THROTTLE_PURGE_EVERY = timedelta(hours=1)
MESSAGE_PURGE_EVERY = timedelta(hours=6)
VISIT_PURGE_EVERY = timedelta(days=1)

RECORD_EVERY = timedelta(seconds=30)
LATE_AFTER_RUNS = 3
GRACE = timedelta(minutes=2)
ERROR_LENGTH = 80


def schedule(settings: Settings) -> dict[str, timedelta]:
    """Every job by its id, with how often it runs. ``visits.jobs`` schedules from this, so
    the jobs checked here are the jobs that run."""
    return {
        "dispatch": timedelta(seconds=settings.dispatch_every_seconds),
        "expire_holds": HOLD_EXPIRY_EVERY,
        "sync_slots": SLOT_SYNC_EVERY,
        "purge_throttle": THROTTLE_PURGE_EVERY,
        "purge_messages": MESSAGE_PURGE_EVERY,
        "purge_visit_records": VISIT_PURGE_EVERY,
    }


def late_after(every: timedelta) -> timedelta:
    return LATE_AFTER_RUNS * every + GRACE


class JobRun(Base):
    """A job's last success and last failure, whichever process ran it."""

    __tablename__ = "job_run"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(ERROR_LENGTH))


@dataclass(frozen=True)
class JobState:
    name: str
    every: timedelta
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    late: bool


def states(session: Session, expected: Mapping[str, timedelta], now: datetime) -> list[JobState]:
    """Each expected job as the table has it (one query), in the schedule's order."""
    rows = {row.name: row for row in session.scalars(select(JobRun))}
    found = []
    for name, every in expected.items():
        row = rows.get(name)
        success = row.last_success_at if row else None
        found.append(
            JobState(
                name=name,
                every=every,
                last_success_at=success,
                last_failure_at=row.last_failure_at if row else None,
                last_error=row.last_error if row else None,
                late=success is None or now - success > late_after(every),
            )
        )
    return found


def late_jobs(session: Session, expected: Mapping[str, timedelta], now: datetime) -> list[str]:
    return [state.name for state in states(session, expected, now) if state.late]


class RunRecorder:
    """Records this process's job runs in ``job_run``, at most once per job per ``every``."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime] = utcnow,
        every: timedelta = RECORD_EVERY,
    ) -> None:
        self.db = db
        self.clock = clock
        self.every = every
        self._lock = threading.Lock()  # jobs run in the scheduler's threads
        self._written: dict[str, datetime] = {}
        self._pending: dict[str, dict[str, Any]] = {}

    def succeeded(self, name: str) -> None:
        self._record(name, {"last_success_at": self.clock()})

    def failed(self, name: str, error: BaseException) -> None:
        kind = type(error).__name__[:ERROR_LENGTH]
        self._record(name, {"last_failure_at": self.clock(), "last_error": kind})

    def _record(self, name: str, values: dict[str, Any]) -> None:
        try:
            now = self.clock()
            with self._lock:
                pending = self._pending.setdefault(name, {})
                pending.update(values)
                last = self._written.get(name)
                if last is not None and last <= now < last + self.every:
                    return
                del self._pending[name]
                self._written[name] = now
            self._write(name, pending)
        except Exception:
            log.warning("could not record a run of job %s", name, exc_info=True)

    def _write(self, name: str, values: dict[str, Any]) -> None:
        with self.db.writing() as session:
            statement = dialect_insert(session, JobRun).values(name=name, **values)
            session.execute(statement.on_conflict_do_update(index_elements=["name"], set_=values))
