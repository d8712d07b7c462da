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

from notifications import inbound, outbox
from notifications.dispatcher import Dispatcher, DispatchPolicy, DispatchReport
from notifications.senders import (
    TWILIO_API,
    ConsoleSender,
    Sender,
    TwilioConfig,
    TwilioSender,
)
from visits import job_health, retention, throttle
from visits.base import utcnow
from visits.booking import expire_holds
from visits.db import Database
from visits.prison import Prison
from visits.schedule import SyncReport, sync_slots
from visits.settings import Settings

log = logging.getLogger(__name__)

THROTTLE_KEEP = timedelta(days=1)
MISFIRE_GRACE = timedelta(minutes=10)
# A dispatch tick late by more than this is skipped: the next one comes within seconds.
DISPATCH_GRACE = timedelta(seconds=30)


class SlotSyncFailed(Exception):
    """Some prisons' slots could not be made (each logged); ``reports``: the others'. Raised
    after every prison was tried, so that the job counts as failed (:mod:`visits.job_health`)
    while no prison waits for another's trouble."""

    def __init__(self, failed: list[str], reports: dict[str, SyncReport]) -> None:
        super().__init__(f"slot sync failed for {', '.join(failed)}")
        self.failed, self.reports = failed, reports


def sync_all_slots(db: Database, now: datetime | None = None) -> dict[str, SyncReport]:
    """Materialise every prison's slots for its booking window, one transaction per prison.
    Raises :class:`SlotSyncFailed` once all were tried if any failed."""
    now = now or utcnow()
    with db.read_session() as session:
        ids = list(session.scalars(select(Prison.id).order_by(Prison.id)))
    reports, failed = {}, []
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
            failed.append(str(prison_id))
            continue
        for conflict in report.conflicts:
            log.warning("%s: %s", prison.code, conflict.describe(prison.tz))
    if failed:
        raise SlotSyncFailed(failed, reports)
    return reports


def purge_throttle(db: Database, now: datetime | None = None) -> int:
    with db.writing() as session:
        return throttle.purge(session, (now or utcnow()) - THROTTLE_KEEP)


def release_expired_holds(db: Database, now: datetime | None = None) -> list[str]:
    """Give back the seats of bookings whose phone code was never entered."""
    with db.writing() as session:
        return expire_holds(session, now or utcnow())


def purge_messages(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """Delete settled SMS and received texts older than the retention period."""
    before = (now or utcnow()) - timedelta(days=settings.message_retention_days)
    with db.writing() as session:
        return outbox.purge(session, before) + inbound.purge(session, before)


def _purge_visits(db: Database, edge: retention.Cutoff, batch: int) -> retention.Purged:
    total = retention.Purged()
    while True:
        with db.writing() as session:
            done = retention.purge_batch(session, edge, batch)
        total += done
        if done == retention.Purged():
            break
    while True:
        with db.writing() as session:
            people = retention.purge_ended_suspensions(session, edge, batch)
        total.visitors += people
        if not people:
            break
    return total


def purge_visit_records(
    db: Database, settings: Settings, now: datetime | None = None, batch: int = retention.BATCH
) -> retention.Purged:
    """Purge the personal data of visits past the retention period (:mod:`visits.retention`),
    one short transaction per batch until nothing old is left; then the staff sessions and
    the SMS recipients that serve nothing any more."""
    now = now or utcnow()
    with db.read_session() as session:
        edge = retention.cutoff(session, now, settings.tracing_policy)
    total = retention.Purged() if edge is None else _purge_visits(db, edge, batch)
    with db.writing() as session:
        lifetime = timedelta(hours=settings.staff_session_hours)
        total.staff_sessions = retention.purge_staff_sessions(session, now, lifetime)
    before, after = now - timedelta(days=settings.message_retention_days), ""
    while after is not None:
        with db.writing() as session:
            forgotten, after = retention.purge_recipients(session, before, after, batch)
        total.recipients += forgotten
    if total != retention.Purged():
        log.info(
            "purged visits past retention: %s visitors of bookings, %s phones, %s people, "
            "%s exposure notices; %s staff sessions, %s SMS recipients",
            total.visits, total.bookings, total.visitors, total.notices,
            total.staff_sessions, total.recipients,
        )  # fmt: skip
    return total


def make_sender(settings: Settings) -> Sender:
    """Twilio when its settings are given, else the console (the offline demo; the settings
    refuse it on an https site unless meant). Said once, as each process starts its jobs:
    which one runs is otherwise seen only when families get nothing."""
    log.info("SMS sender: %s", describe_sender(settings))
    if not settings.twilio_configured:
        return ConsoleSender()
    assert settings.twilio_auth_token is not None
    return TwilioSender(
        TwilioConfig(
            account_sid=settings.twilio_account_sid or "",
            auth_token=settings.twilio_auth_token.get_secret_value(),
            from_number=settings.twilio_from,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            api_base_url=settings.twilio_api_base_url,
            timeout_seconds=settings.twilio_timeout_seconds,
            connections=max(10, settings.sms_concurrency),
        )
    )


def describe_sender(settings: Settings) -> str:
    """The sender in a line for the log: where texts go, never a credential."""
    if not settings.twilio_configured:
        return "console (development: texts are printed, nothing is sent)"
    if settings.twilio_messaging_service_sid:
        sending = f"messaging service {settings.twilio_messaging_service_sid}"
    else:
        sending = f"from {settings.twilio_from}"
    api = settings.twilio_api_base_url.rstrip("/")
    return f"twilio ({sending}" + ("" if api == TWILIO_API else f", through {api}") + ")"


def make_dispatcher(
    db: Database,
    settings: Settings,
    sender: Sender | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Dispatcher:
    callback = None
    if settings.twilio_configured:
        callback = f"{settings.public_base_url.rstrip('/')}/twilio/status"
    # A send may wait out the connect and the read timeouts; a lease must outlast two sends.
    send_time = timedelta(seconds=2 * settings.twilio_timeout_seconds + 1)
    return Dispatcher(
        db.writing,
        sender or make_sender(settings),
        policy=DispatchPolicy(
            rate_per_second=settings.sms_rate_per_second,
            concurrency=settings.sms_concurrency,
            lease=max(timedelta(seconds=settings.sms_lease_seconds), 2 * send_time),
            send_time=send_time,
            max_attempts=settings.sms_max_attempts,
            backoff_base=timedelta(seconds=settings.sms_retry_base_seconds),
            backoff_max=timedelta(seconds=settings.sms_retry_max_seconds),
            unknown_wait=timedelta(seconds=settings.sms_unknown_wait_seconds),
        ),
        clock=clock,
        status_callback_url=callback,
    )


def dispatch(dispatcher: Dispatcher) -> DispatchReport:
    report = dispatcher.drain()
    if report.claimed:
        log.info(
            "dispatched %s: %s sent, %s found sent, %s to retry, %s failed, %s unknown, "
            "%s cancelled, %s released",
            report.claimed,
            report.sent,
            report.found_sent,
            report.retried,
            report.failed,
            report.unknown,
            report.cancelled,
            report.released,
        )
    return report


def _safely(
    runs: job_health.RunRecorder, job_id: str, job: Callable[..., object], *args: object
) -> Callable[[], None]:
    """The job as the scheduler runs it: a failure is logged, and each outcome recorded for
    ``GET /healthz/jobs`` (:mod:`visits.job_health`; recording never fails the job)."""

    def run() -> None:
        try:
            job(*args)
        except Exception as error:
            # A failed run is logged and retried at the next interval; it must not stop the clock.
            log.exception("job %s failed", job.__name__)
            runs.failed(job_id, error)
        else:
            runs.succeeded(job_id)

    return run


def schedule_jobs(
    scheduler: BaseScheduler,
    db: Database,
    settings: Settings,
    dispatcher: Dispatcher | None = None,
) -> BaseScheduler:
    """Add every job to ``scheduler``, each starting now and repeating."""
    dispatcher = dispatcher or make_dispatcher(db, settings)
    options = {
        "trigger": "interval",
        "coalesce": True,
        "max_instances": 1,
        "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
        "next_run_time": datetime.now().astimezone(),
    }
    jobs: dict[str, tuple[Callable[..., object], *tuple[object, ...]]] = {
        "dispatch": (dispatch, dispatcher),
        "expire_holds": (release_expired_holds, db),
        "sync_slots": (sync_all_slots, db),
        "purge_throttle": (purge_throttle, db),
        "purge_messages": (purge_messages, db, settings),
        "purge_visit_records": (purge_visit_records, db, settings),
    }
    runs = job_health.RunRecorder(db)
    for job_id, every in job_health.schedule(settings).items():
        job, *args = jobs[job_id]
        job_options = dict(options)
        if job_id == "dispatch":
            job_options["misfire_grace_time"] = int(DISPATCH_GRACE.total_seconds())
        # APScheduler logs a job by its name, else by the qualified name of its function.
        scheduler.add_job(
            _safely(runs, job_id, job, *args),
            id=job_id,
            name=job_id,
            seconds=every.total_seconds(),
            **job_options,
        )
    return scheduler


def stop_jobs(scheduler: BaseScheduler, dispatcher: Dispatcher) -> None:
    """Stop the clock for a restart or deploy: the dispatcher claims nothing more and hands
    back the messages it claimed but has not attempted (due at once, for the next worker);
    sends under way finish within the provider's timeout; then the running jobs are awaited."""
    dispatcher.stop()
    if scheduler.running:
        scheduler.shutdown(wait=True)
