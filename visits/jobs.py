"""Background jobs, driven by APScheduler 3 as a clock (the database is the queue).

Every job is idempotent and safe to run in two processes at once. ``visits worker`` runs them
in their own process (production, several web workers); for the embedded SQLite default the
web server runs them in-process. APScheduler's default misfire grace time silently skips a job
that starts one second late, so each job sets an explicit grace time and coalesces missed runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import select

from visits import throttle
from visits.base import utcnow
from visits.db import Database
from visits.prison import Prison
from visits.schedule import SyncReport, sync_slots

log = logging.getLogger(__name__)

SLOT_SYNC_EVERY = timedelta(hours=1)
THROTTLE_PURGE_EVERY = timedelta(hours=1)
THROTTLE_KEEP = timedelta(days=1)
MISFIRE_GRACE = timedelta(minutes=10)


def sync_all_slots(db: Database, now: datetime | None = None) -> dict[str, SyncReport]:
    """Materialise every prison's slots for its booking window, one transaction per prison."""
    now = now or utcnow()
    with db.read_session() as session:
        ids = list(session.scalars(select(Prison.id).order_by(Prison.id)))
    reports = {}
    for prison_id in ids:
        try:
            with db.writing() as session:
                prison = session.get(Prison, prison_id)
                if prison is None:
                    continue
                report = sync_slots(session, prison, now)
                reports[prison.code] = report
        except Exception:
            # One prison's trouble must not leave every other prison without new slots.
            log.exception("slot sync failed for prison %s", prison_id)
            continue
        for conflict in report.conflicts:
            log.warning("%s: %s", prison.code, conflict.describe(prison.tz))
    return reports


def purge_throttle(db: Database, now: datetime | None = None) -> int:
    with db.writing() as session:
        return throttle.purge(session, (now or utcnow()) - THROTTLE_KEEP)


def _safely(job: Callable[[Database], object], db: Database) -> Callable[[], None]:
    def run() -> None:
        try:
            job(db)
        except Exception:
            # A failed run is logged and retried at the next interval; it must not stop the clock.
            log.exception("job %s failed", job.__name__)

    run.__name__ = job.__name__
    return run


def schedule_jobs(scheduler: BaseScheduler, db: Database) -> BaseScheduler:
    """Add every job to ``scheduler``, each starting now and repeating."""
    options = {
        "trigger": "interval",
        "coalesce": True,
        "max_instances": 1,
        "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
        "next_run_time": datetime.now().astimezone(),
    }
    scheduler.add_job(
        _safely(sync_all_slots, db),
        id="sync_slots",
        seconds=int(SLOT_SYNC_EVERY.total_seconds()),
        **options,
    )
    scheduler.add_job(
        _safely(purge_throttle, db),
        id="purge_throttle",
        seconds=int(THROTTLE_PURGE_EVERY.total_seconds()),
        **options,
    )
    return scheduler
