"""Whether the background jobs run: recorded by each run, checked by ``/healthz/jobs`` and
shown to administrators, on each database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import event, select

from tests.factories import NOW
from tests.staffing import make_staff, sign_in
from visits import jobs
from visits.job_health import JobRun, RunRecorder, schedule
from visits.settings import Settings
from visits.staff import StaffRole

LATE_BANNER = "Background work is late"


def recorded(db) -> dict[str, JobRun]:
    with db.read_session() as s:
        return {row.name: row for row in s.scalars(select(JobRun))}


def record(db, **last_success) -> None:
    """Each named job last succeeded at the moment given."""
    with db.writing() as s:
        for name, at in last_success.items():
            s.merge(JobRun(name=name, last_success_at=at))


def all_fresh(db, **overrides) -> None:
    record(db, **({name: NOW - timedelta(seconds=20) for name in schedule(Settings())} | overrides))


def scheduled(db, db_url):
    settings = Settings(database_url=db_url, secret_key="k")
    scheduler = jobs.schedule_jobs(BackgroundScheduler(timezone="UTC"), db, settings)
    return {job.id: job.func for job in scheduler.get_jobs()}


def test_every_scheduled_job_is_one_the_health_check_expects(db, db_url):
    assert list(scheduled(db, db_url)) == list(schedule(Settings(dispatch_every_seconds=2)))


def test_a_job_run_records_its_success_and_a_failure_only_by_its_error_class(
    db, db_url, monkeypatch
):
    def leaky_failure(db):
        raise ValueError("+51987654321 Quispe Mamani")  # what a message might carry

    monkeypatch.setattr(jobs, "purge_throttle", leaky_failure)
    run = scheduled(db, db_url)
    run["expire_holds"]()
    run["purge_throttle"]()  # logged, recorded, and never raised

    rows = recorded(db)
    assert set(rows) == {"expire_holds", "purge_throttle"}
    assert rows["expire_holds"].last_success_at is not None
    assert rows["expire_holds"].last_failure_at is None
    failed = rows["purge_throttle"]
    assert (failed.last_success_at, failed.last_error) == (None, "ValueError")
    assert failed.last_failure_at is not None


def test_a_failure_to_record_never_fails_the_job(db, db_url, monkeypatch):
    def broken(*args):
        raise RuntimeError("the database is gone")

    monkeypatch.setattr(RunRecorder, "_write", broken)
    scheduled(db, db_url)["expire_holds"]()  # no exception
    assert recorded(db) == {}


def test_runs_are_written_at_most_once_per_job_every_30_seconds(db):
    now = [NOW]
    recorder = RunRecorder(db, clock=lambda: now[0])
    writes = []

    def count(conn, cursor, statement, *args):
        if "job_run" in statement and statement.lstrip().upper().startswith("INSERT"):
            writes.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        recorder.succeeded("dispatch")
        now[0] = NOW + timedelta(seconds=10)
        recorder.failed("dispatch", TimeoutError())
        now[0] = NOW + timedelta(seconds=20)
        recorder.succeeded("dispatch")
        assert len(writes) == 1
        row = recorded(db)["dispatch"]
        assert (row.last_success_at, row.last_failure_at) == (NOW, None)

        recorder.succeeded("expire_holds")  # each job has its own turn
        assert len(writes) == 2

        now[0] = NOW + timedelta(seconds=31)
        recorder.succeeded("dispatch")  # what happened meanwhile goes with it
        assert len(writes) == 3
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    row = recorded(db)["dispatch"]
    assert row.last_success_at == NOW + timedelta(seconds=31)
    assert (row.last_failure_at, row.last_error) == (NOW + timedelta(seconds=10), "TimeoutError")


def test_the_jobs_check_says_200_when_every_job_succeeded_recently(make_client, db):
    client = make_client()
    # The hourly slot sync is not late two hours on: three of its runs and two minutes are.
    all_fresh(db, sync_slots=NOW - timedelta(hours=2))
    answer = client.get("/healthz/jobs")  # no sign-in: monitors have no account
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["late"]) == ("ok", [])
    assert [job["name"] for job in body["jobs"]] == list(schedule(Settings()))
    dispatch = body["jobs"][0]
    assert dispatch["last_success"] == (NOW - timedelta(seconds=20)).isoformat()
    assert dispatch["late"] is False


@pytest.mark.parametrize(
    "stale",
    [
        {"dispatch": NOW - timedelta(minutes=3)},
        {"expire_holds": NOW - timedelta(minutes=4)},
        {"sync_slots": NOW - timedelta(hours=3, minutes=3)},
    ],
)
def test_the_jobs_check_says_503_naming_a_job_that_is_late(make_client, db, stale):
    client = make_client()
    all_fresh(db, **stale)
    answer = client.get("/healthz/jobs")
    assert answer.status_code == 503
    assert answer.json()["status"] == "late"
    assert answer.json()["late"] == list(stale)


def test_the_jobs_check_says_503_when_no_job_ever_ran(make_client, db):
    """A worker never started: nothing in the table, every job late."""
    answer = make_client().get("/healthz/jobs")
    assert answer.status_code == 503
    assert answer.json()["late"] == list(schedule(Settings()))
    assert all(job["last_success"] is None for job in answer.json()["jobs"])


def test_a_job_that_only_ever_failed_is_late_and_named_with_its_error_class(make_client, db):
    client = make_client()
    all_fresh(db)
    with db.writing() as s:
        row = s.get(JobRun, "sync_slots")
        row.last_success_at = None
        row.last_failure_at = NOW - timedelta(seconds=5)
        row.last_error = "OperationalError"
    answer = client.get("/healthz/jobs")
    assert answer.status_code == 503
    assert answer.json()["late"] == ["sync_slots"]
    (sync,) = [job for job in answer.json()["jobs"] if job["name"] == "sync_slots"]
    assert sync["last_error"] == "OperationalError"


@pytest.fixture
def staffed(make_client, db):
    make_staff(db, "guardia", StaffRole.GUARD)
    make_staff(db, "salud", StaffRole.HEALTH)
    make_staff(db, "admin", StaffRole.ADMIN)
    return make_client


def staff_home(make_client, username: str) -> str:
    client = make_client()
    assert sign_in(client, username).status_code == 303
    return client.get("/staff", params={"lang": "en"}).text


def test_administrators_see_a_banner_while_jobs_are_late(staffed, db):
    page = staff_home(staffed, "admin")
    assert LATE_BANNER in page
    assert "<code>visits worker</code>" in page
    for username in ("guardia", "salud"):
        assert LATE_BANNER not in staff_home(staffed, username)


def test_no_banner_when_every_job_is_on_time(staffed, db):
    all_fresh(db)
    assert LATE_BANNER not in staff_home(staffed, "admin")
