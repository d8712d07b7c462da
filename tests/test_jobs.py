"""Background jobs: idempotent, safe in two processes, and really run by `visits worker`."""

from __future__ import annotations

import subprocess
import threading
import time

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import delete, func, select

from tests.factories import NOW
from tests.server import VISITS, server_env
from visits.demo import CONFIG
from visits.jobs import (
    DISPATCH_GRACE,
    MISFIRE_GRACE,
    purge_throttle,
    schedule_jobs,
    sync_all_slots,
)
from visits.prison_config import apply_config, parse_config
from visits.schedule import Slot
from visits.settings import Settings
from visits.throttle import ThrottleHit


def slot_count(db) -> int:
    with db.read_session() as s:
        return s.scalar(select(func.count()).select_from(Slot))


def test_slot_sync_is_idempotent_and_safe_to_run_twice_at_once(db):
    with db.writing() as s:
        apply_config(s, parse_config(CONFIG.read_text()), NOW)
        s.execute(delete(Slot))
    barrier = threading.Barrier(2)
    reports = []

    def run():
        barrier.wait()
        reports.append(sync_all_slots(db, NOW))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = sum(r["QUENCORO"].created + r["MUJERES-CUSCO"].created for r in reports)
    assert created == slot_count(db) > 0  # every slot made exactly once between the two
    assert sum(r.created for r in sync_all_slots(db, NOW).values()) == 0


def test_old_throttle_hits_are_purged(db):
    with db.writing() as s:
        s.add(ThrottleHit(key="old", at=NOW.replace(day=1, month=11)))
        s.add(ThrottleHit(key="new", at=NOW))
    assert purge_throttle(db, NOW) == 1
    with db.read_session() as s:
        assert s.scalars(select(ThrottleHit.key)).all() == ["new"]


def test_jobs_are_scheduled_with_a_grace_time_and_coalescing(db, db_url):
    settings = Settings(database_url=db_url, secret_key="k")
    scheduler = schedule_jobs(BackgroundScheduler(timezone="UTC"), db, settings)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {
        "dispatch",
        "expire_holds",
        "sync_slots",
        "purge_throttle",
        "purge_messages",
    }
    for job in jobs.values():
        assert job.coalesce is True
        assert job.max_instances == 1
        grace = DISPATCH_GRACE if job.id == "dispatch" else MISFIRE_GRACE
        assert job.misfire_grace_time == grace.total_seconds()
    assert jobs["dispatch"].trigger.interval.total_seconds() == settings.dispatch_every_seconds


def test_the_worker_process_materialises_slots(db, db_url):
    with db.writing() as s:
        apply_config(s, parse_config(CONFIG.read_text()), NOW)
        s.execute(delete(Slot))
    assert slot_count(db) == 0
    worker = subprocess.Popen(
        [VISITS, "worker"],
        env=server_env(db_url, 8000),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while slot_count(db) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert slot_count(db) > 0
    finally:
        worker.terminate()
        worker.wait(timeout=15)
    assert worker.returncode in (0, -15)
