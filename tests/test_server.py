"""Black-box: the real server process, over HTTP, on each database."""

from __future__ import annotations

import csv
import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import time, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.clocked_server import ShiftedClock
from tests.factories import make_slot
from tests.server import free_port, run_cli, running_server, server_env
from visits.base import utcnow
from visits.db import Database, make_engine
from visits.demo import ROSTERS
from visits.prison import Prison
from visits.schedule import Slot


@pytest.fixture
def loaded(db_url):
    loaded = run_cli("demo", env=server_env(db_url, 8000))
    assert loaded.returncode == 0, loaded.stderr
    return db_url


def open_women_slot(base: str) -> dict:
    days = httpx.get(f"{base}/api/v1/prisons/QUENCORO/slots").json()["days"]
    return next(
        s
        for d in days
        for s in d["slots"]
        if s["state"] == "open" and s["visitor_group"] == "women"
    )


def booking(slot_id: int, dni: str, inmate: str = "Q10001", surname: str = "Yupanqui") -> dict:
    return {
        "prison": "QUENCORO",
        "inmate": {"code": inmate, "surname": surname},
        "slot_id": slot_id,
        "visitors": [
            {
                "first_names": "Rosa",
                "last_names": "Ccori",
                "doc_type": "dni",
                "doc_number": dni,
                "birth_date": "1979-03-08",
                "relationship": "sibling",
                "sex": "F",
            }
        ],
        "contact_phone": "987654321",
    }


def test_a_booking_survives_a_restart_and_its_link_still_works(loaded):
    port = free_port()
    with running_server(loaded, port=port) as server:
        base = server.base
        slot = open_women_slot(base)
        created = httpx.post(f"{base}/api/v1/bookings", json=booking(slot["id"], "41234567"))
        assert created.status_code == 201, created.text
        link = created.json()["booking"]["manage_url"]
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=15)
    assert any("Finished server process" in line for line in server.log)  # a clean stop
    with running_server(loaded, port=port) as server:
        base = server.base
        page = httpx.get(link)
        assert page.status_code == 200
        assert created.json()["reference"] in page.text
        days = httpx.get(f"{base}/api/v1/prisons/QUENCORO/slots").json()["days"]
        after = next(s for d in days for s in d["slots"] if s["id"] == slot["id"])
        assert after["seats_left"] == slot["seats_left"] - 1


def test_a_clocked_server_answers_at_the_time_its_clock_reads(loaded):
    """Browser tests that need a time of day run ``tests.clocked_server``: two days back, a
    visit at noon yesterday is still ahead and open to bookings (to the real clock, gone)."""
    db = Database(make_engine(loaded))
    with db.writing() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        yesterday = prison.local_date(utcnow()) - timedelta(days=1)
        slot_id = make_slot(s, prison, yesterday, start=time(12)).id
    db.dispose()
    with running_server(loaded, clock=ShiftedClock(timedelta(days=-2))) as server:
        answer = httpx.get(f"{server.base}/api/v1/prisons/QUENCORO/slots?from={yesterday}")
    assert answer.status_code == 200, answer.text
    states = {s["id"]: s["state"] for d in answer.json()["days"] for s in d["slots"]}
    assert states.get(slot_id) == "open"


def test_a_server_running_the_jobs_says_once_which_sms_sender_it_uses(loaded):
    with running_server(loaded, VISITS_RUN_JOBS_IN_PROCESS="true") as server:
        pass
    said = [line for line in server.log if "SMS sender: " in line]
    assert len(said) == 1, server.log
    assert said[0].endswith("SMS sender: console (development: texts are printed, nothing is sent)")


def test_concurrent_requests_never_overbook_a_slot(loaded):
    db = Database(make_engine(loaded))
    with db.writing() as s:
        # A slot no template makes (as staff would add one): the slot job leaves it alone.
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        day = prison.local_date(utcnow()) + timedelta(days=3)
        slot_id = make_slot(s, prison, day, start=time(17), capacity=5).id
    with ROSTERS["QUENCORO"].open() as f:
        active = [row for row in csv.DictReader(f) if row["status"] == "active"][:20]

    def attempt(i: int) -> int:
        inmate = active[i]
        body = booking(slot_id, f"5{i:07d}", inmate=inmate["code"], surname=inmate["last_name_1"])
        return httpx.post(f"{base}/api/v1/bookings", json=body, timeout=30).status_code

    with running_server(loaded, workers=2) as server, ThreadPoolExecutor(20) as pool:
        base = server.base
        outcomes = Counter(pool.map(attempt, range(20)))
    assert outcomes == {201: 5, 409: 15}
    with db.read_session() as s:
        row = s.get(Slot, slot_id)
        assert (row.capacity, row.seats_taken) == (5, 5)
    db.dispose()


def test_the_supervisor_of_several_workers_loads_neither_the_cli_nor_the_app(loaded):
    """``visits serve`` becomes uvicorn's supervisor in a fresh interpreter (``web.serve``):
    typer's pydantic, which it would hold for nothing, is not among its libraries, and glibc
    is limited to two malloc arenas there and in the workers it spawns."""
    with running_server(loaded, workers=2) as server:
        supervisor = Path(f"/proc/{server.process.pid}")
        maps = (supervisor / "maps").read_text()
        environ = (supervisor / "environ").read_bytes().split(b"\0")
    assert "pydantic_core" not in maps
    assert b"MALLOC_ARENA_MAX=2" in environ


def test_a_small_pool_never_stalls_under_load(loaded):
    """More requests than database connections: each waits its turn, none times out.

    (Request threads once outnumbered connections: finished requests then waited for a
    thread to give their connection back while every thread waited for a connection.)
    """
    with running_server(loaded, VISITS_DB_POOL_SIZE="1") as server:
        base = server.base

        def read(i: int) -> int:
            path = "/api/v1/prisons/QUENCORO/slots" if i % 2 else "/api/v1/prisons"
            return httpx.get(f"{base}{path}", timeout=60).status_code

        with ThreadPoolExecutor(48) as pool:
            outcomes = Counter(pool.map(read, range(192)))
    assert outcomes == {200: 192}
