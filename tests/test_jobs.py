"""Background jobs: idempotent, safe in two processes, and really run by `visits worker`."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import threading
import time
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from pydantic import ValidationError
from sqlalchemy import delete, func, select

from notifications.inbound import InboundMessage, receive
from notifications.outbox import Draft, MessageEvent, MessageStatus, OutboxMessage, enqueue
from notifications.senders import ConsoleSender, TwilioSender
from tests import factories
from tests.factories import NOW, SMS, make_inmate, make_prison, make_slot, request_for, visitor
from tests.server import VISITS, server_env
from tests.test_closures import try_booking
from tests.test_pages import identify
from tests.test_races import race
from visits.booking import create_booking
from visits.demo import CONFIG
from visits.inmate import Inmate
from visits.job_health import JobRun, RunRecorder
from visits.jobs import (
    DISPATCH_GRACE,
    MISFIRE_GRACE,
    _safely,
    make_sender,
    purge_messages,
    purge_throttle,
    release_expired_holds,
    schedule_jobs,
    sync_all_slots,
)
from visits.prison import Prison, prison_by_code
from visits.prison_config import apply_config, parse_config
from visits.schedule import ScheduleTemplate, Slot, generate_slots, rule_of, sync_slots
from visits.settings import Settings
from visits.throttle import ThrottleHit
from visits.visitor import DocumentType, Visitor


def slot_count(db) -> int:
    with db.read_session() as s:
        return s.scalar(select(func.count()).select_from(Slot))


def test_slot_sync_is_idempotent_and_safe_to_run_twice_at_once(db):
    with db.writing() as s:
        apply_config(s, parse_config(CONFIG.read_text()), NOW, sms_policy=SMS)
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


LIMA = ZoneInfo("America/Lima")
# Quencoro books 14 days ahead: on Tuesday 1 December up to the 15th, on the 2nd up to the 16th.
PAST_THE_WINDOW = date(2026, 12, 16)


def test_the_day_past_the_window_has_slots_before_its_midnight_and_opens_at_it(make_client, db):
    """Families who wait up for a day to open find its visit times at 00:00, not at the next
    hourly sync; until then those times exist but are neither listed nor bookable."""
    now = [datetime(2026, 12, 1, 23, 30, tzinfo=LIMA)]
    client = make_client(clock=lambda: now[0])
    assert identify(client).status_code == 303
    sync_all_slots(db, now[0])  # the last hourly sync before midnight
    with db.read_session() as s:
        made = {
            starts_at: slot_id
            for slot_id, starts_at in s.execute(
                select(Slot.id, Slot.starts_at)
                .join(Prison, Slot.prison_id == Prison.id)
                .where(Prison.code == "QUENCORO", Slot.local_date == PAST_THE_WINDOW)
            )
        }
    assert made  # made a day early
    nine = made[datetime(2026, 12, 16, 9, tzinfo=LIMA)]

    def listed() -> tuple[set[int], set[int]]:
        """The day's times the API (asked past the window) and the family's page list."""
        api = client.get("/api/v1/prisons/QUENCORO/slots", params={"to": "2026-12-20"})
        ids = {s["id"] for d in api.json()["days"] for s in d["slots"]} & set(made.values())
        page = client.get("/p/QUENCORO/slots").text
        return ids, {i for i in made.values() if f'book?slot={i}"' in page}

    assert listed() == (set(), set())
    refused = try_booking(client, nine, "Q10001", "Yupanqui", "41111111", "987654321")
    assert refused.status_code == 422
    assert [e["code"] for e in refused.json()["errors"]] == ["booking_not_open_yet"]

    now[0] = datetime(2026, 12, 2, 0, 0, 30, tzinfo=LIMA)  # midnight, and no sync since
    in_api, on_page = listed()
    assert in_api == set(made.values())
    assert nine in on_page
    booked = try_booking(client, nine, "Q10001", "Yupanqui", "41111111", "987654321")
    assert booked.status_code == 201, booked.text


def test_two_slot_syncs_at_once_both_succeed_with_the_result_of_one(db):
    """Two workers, or the hourly job and a staff schedule edit, after a schedule change that
    removes and adds slots: on PostgreSQL the second used to update a slot the first had just
    deleted, and fail (a staff edit lost)."""
    with db.writing() as s:
        prison = make_prison(s, "RACE", booking_opens_days=28)
        for weekday in range(7):
            for hour in (8, 10, 12, 14, 16):
                factories.add_template(s, prison, weekday, clock_time(hour), clock_time(hour, 30))
        sync_slots(s, prison, NOW)
    with db.writing() as s:  # every session moves an hour later
        for template in s.scalars(select(ScheduleTemplate)):
            hour = template.start_time.hour + 1
            template.start_time, template.end_time = clock_time(hour), clock_time(hour, 30)

    def run(_: int) -> str:
        try:
            with db.writing() as s:
                sync_slots(s, prison_by_code(s, "RACE"), NOW)
        except Exception as error:  # the outcome is what the test counts
            return type(error).__name__
        return "ok"

    assert race(2, run) == {"ok": 2}
    with db.read_session() as s:
        prison = prison_by_code(s, "RACE")
        rules = [rule_of(t) for t in s.scalars(select(ScheduleTemplate))]
        wanted = {
            (spec.starts_at, spec.ends_at)
            for spec in generate_slots(rules, date(2026, 12, 1), date(2026, 12, 30), prison.tz)
            if spec.starts_at > NOW
        }
        future = s.execute(select(Slot.starts_at, Slot.ends_at).where(Slot.starts_at > NOW))
        assert sorted(future) == sorted(wanted)  # the window's 28 days and one more


def test_old_throttle_hits_are_purged(db):
    with db.writing() as s:
        s.add(ThrottleHit(key="old", at=NOW.replace(day=1, month=11)))
        s.add(ThrottleHit(key="new", at=NOW))
    assert purge_throttle(db, NOW) == 1
    with db.read_session() as s:
        assert s.scalars(select(ThrottleHit.key)).all() == ["new"]


def test_settled_messages_and_received_texts_are_purged_after_the_retention(db, db_url):
    settings = Settings(database_url=db_url, secret_key="k", message_retention_days=180)
    old, recent = NOW - timedelta(days=181), NOW - timedelta(days=179)
    with db.writing() as s:
        for key, at, status in [
            ("old-sent", old, MessageStatus.SENT),
            ("old-failed", old, MessageStatus.FAILED),
            ("old-pending", old, MessageStatus.PENDING),  # not settled: kept
            ("recent", recent, MessageStatus.DELIVERED),
        ]:
            draft = Draft(
                recipient="+51987654321", body="x", language="es", dedupe_key=key, kind="t"
            )
            message = enqueue(s, draft, at)
            message.status = status
        for sid, at in [("SMold", old), ("SMnew", recent)]:
            receive(s, provider_sid=sid, sender="+51987654321", body="1", now=at)
    assert purge_messages(db, settings, NOW) == 3  # two messages, one received text
    with db.read_session() as s:
        assert set(s.scalars(select(OutboxMessage.dedupe_key))) == {"old-pending", "recent"}
        assert set(s.scalars(select(InboundMessage.provider_sid))) == {"SMnew"}
        assert s.scalar(select(func.count()).select_from(MessageEvent)) == 2


def test_expired_holds_are_released_by_the_job(db):
    with db.writing() as s:
        prison = make_prison(s, booking_closes_hours=2)
        make_inmate(s, prison)
        slot = make_slot(s, prison, date(2026, 12, 5), capacity=5)
        create_booking(
            s,
            prison=prison,
            inmate=s.scalar(select(Inmate)),
            request=request_for(slot, visitor()),
            now=NOW,
            secret_key="k",
            sms_policy=dataclasses.replace(SMS, verification=True),
        )
    assert release_expired_holds(db, NOW + timedelta(minutes=5)) == []
    assert len(release_expired_holds(db, NOW + timedelta(minutes=10))) == 1
    with db.read_session() as s:
        assert s.scalar(select(Slot.seats_taken)) == 0


def test_without_twilio_credentials_messages_go_to_the_console(db_url):
    assert isinstance(make_sender(Settings(database_url=db_url)), ConsoleSender)
    twilio = Settings(
        database_url=db_url,
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token="t",
        twilio_from="+15005550006",
    )
    assert isinstance(make_sender(twilio), TwilioSender)


TWILIO = {
    "twilio_account_sid": "AC" + "0" * 32,
    "twilio_auth_token": "secret-token-value",
    "twilio_from": "+51987000111",
}


def test_twilio_settings_are_all_or_nothing_and_the_refusal_names_no_secret():
    for missing, named in (
        ("twilio_auth_token", "missing VISITS_TWILIO_AUTH_TOKEN ("),
        ("twilio_account_sid", "missing VISITS_TWILIO_ACCOUNT_SID ("),
        ("twilio_from", "missing VISITS_TWILIO_FROM or VISITS_TWILIO_MESSAGING_SERVICE_SID ("),
    ):
        with pytest.raises(ValidationError) as refused:
            Settings(**(TWILIO | {missing: None}))
        (error,) = refused.value.errors()
        assert error["msg"].startswith("Value error, Twilio is half set: "), error["msg"]
        assert named in error["msg"]
        assert "secret-token-value" not in str(refused.value)
        assert "+51987000111" not in error["msg"]
    # A blank value is no value.
    with pytest.raises(ValidationError, match=r"missing VISITS_TWILIO_AUTH_TOKEN \("):
        Settings(**(TWILIO | {"twilio_auth_token": " "}))
    # Only a token, as a misspelt SID leaves it: the two others are named.
    with pytest.raises(
        ValidationError, match="missing VISITS_TWILIO_ACCOUNT_SID, and VISITS_TWILIO_FROM or"
    ):
        Settings(twilio_auth_token="secret-token-value")
    service = TWILIO | {"twilio_from": None, "twilio_messaging_service_sid": "MG" + "1" * 32}
    assert Settings(**service).twilio_configured


def test_an_https_site_without_twilio_is_refused_unless_the_console_is_meant():
    with pytest.raises(ValidationError, match="VISITS_SMS_CONSOLE=true"):
        Settings(public_base_url="https://visitas.example.pe")
    assert not Settings(
        public_base_url="https://visitas.example.pe", sms_console=True
    ).twilio_configured
    assert Settings(public_base_url="https://visitas.example.pe", **TWILIO).twilio_configured
    # The local default (make run) and the tests' servers keep the console.
    assert not Settings().twilio_configured
    assert not Settings(public_base_url="http://127.0.0.1:8123").twilio_configured


def test_the_sender_in_use_is_logged_without_its_secret(caplog):
    caplog.set_level(logging.INFO, logger="visits.jobs")
    make_sender(Settings())
    assert "SMS sender: console (development: texts are printed, nothing is sent)" in caplog.text
    caplog.clear()
    make_sender(Settings(**TWILIO))
    assert "SMS sender: twilio (from +51987000111)" in caplog.text
    caplog.clear()
    service = "MG" + "1" * 32
    make_sender(Settings(**TWILIO, twilio_messaging_service_sid=service))
    assert f"SMS sender: twilio (messaging service {service})" in caplog.text
    assert "secret-token-value" not in caplog.text


def test_a_job_failing_on_the_database_is_logged_without_the_values_it_was_writing(db, caplog):
    """The log holds the error and the statement, never its values: those are the people's
    (names, document numbers, phones), and the log is kept and read apart from the data."""

    def write_a_visitor() -> None:
        with db.writing() as s:  # no birth date: refused by the database
            s.add(
                Visitor(
                    doc_type=DocumentType.DNI, doc_number="44556677", first_names="Rosalinda",
                    last_names="Quispecahuana", birth_date=None, created_at=NOW, updated_at=NOW,
                )
            )  # fmt: skip

    caplog.set_level(logging.INFO, logger="visits.jobs")
    _safely(RunRecorder(db), "expire_holds", write_a_visitor)()
    assert "job write_a_visitor failed" in caplog.text
    assert "INSERT INTO visitor" in caplog.text
    for value in ("44556677", "Rosalinda", "Quispecahuana"):
        assert value not in caplog.text


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
        "purge_visit_records",
    }
    for job in jobs.values():
        assert job.coalesce is True
        assert job.max_instances == 1
        grace = DISPATCH_GRACE if job.id == "dispatch" else MISFIRE_GRACE
        assert job.misfire_grace_time == grace.total_seconds()
    assert jobs["dispatch"].trigger.interval.total_seconds() == settings.dispatch_every_seconds
    assert jobs["purge_visit_records"].trigger.interval.total_seconds() == 24 * 3600


def sync_recorded(db):
    with db.read_session() as s:
        return s.scalar(select(JobRun.last_success_at).where(JobRun.name == "sync_slots"))


def test_the_worker_process_materialises_slots(db, db_url):
    with db.writing() as s:
        apply_config(s, parse_config(CONFIG.read_text()), NOW, sms_policy=SMS)
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
        while sync_recorded(db) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sync_recorded(db) is not None  # what /healthz/jobs reads
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=15)
    assert worker.returncode in (0, -15)
    # Which sender runs is said as the worker starts.
    assert b"SMS sender: console (development: texts are printed, nothing is sent)" in stderr


def test_each_job_is_named_for_the_log(db, db_url):
    """APScheduler logs a job by its name: the job's id, not the wrapper's ``run``."""
    settings = Settings(database_url=db_url, secret_key="k")
    scheduler = schedule_jobs(BackgroundScheduler(timezone="UTC"), db, settings)
    assert all(job.name == job.id for job in scheduler.get_jobs())
