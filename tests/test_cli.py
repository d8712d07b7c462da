"""The ``visits`` command, run as a real process against each database."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

from alembic import command as alembic
from sqlalchemy import delete, func, select

from tests.server import VISITS, free_port, run_cli, server_env
from visits.base import utcnow
from visits.booking import Booking, BookingStatus
from visits.db import Database, make_engine
from visits.demo import CONFIG, ROSTERS
from visits.inmate import Inmate, InmateStatus
from visits.migrate import alembic_config, head, scripts
from visits.schedule import Slot
from visits.staff import SignInPolicy, StaffRole, StaffSession, StaffUser, sign_in
from visits.visitor import VisitorSuspension

PASSWORD = "una clave larga de prueba"


def cli(db_url: str, *args: str):
    return run_cli(*args, env=server_env(db_url, 8000))


def rows(db_url: str, model, **where) -> int:
    """How many rows the table of ``model`` holds (with these values), read as the command
    left it."""
    db = Database(make_engine(db_url))
    with db.read_session() as s:
        count = s.scalar(select(func.count()).select_from(model).filter_by(**where))
    db.dispose()
    return count


def test_load_prisons_twice_changes_nothing(db_url):
    first = cli(db_url, "load-prisons", str(CONFIG))
    assert first.returncode == 0, first.stderr
    assert "QUENCORO: created" in first.stdout
    second = cli(db_url, "load-prisons", str(CONFIG))
    assert second.returncode == 0, second.stderr
    assert second.stdout.split("\n")[:2] == ["QUENCORO: no changes", "MUJERES-CUSCO: no changes"]


def test_a_broken_configuration_changes_nothing(db_url, tmp_path: Path):
    broken = tmp_path / "prisons.toml"
    broken.write_text(CONFIG.read_text().replace("capacity = 150", "capacity = -5", 1))
    result = cli(db_url, "load-prisons", str(broken))
    assert result.returncode == 1
    assert "nothing was changed" in result.stderr
    assert "prison[0].schedule[0].capacity" in result.stderr
    assert rows(db_url, Slot) == 0


def test_import_inmates_reports_a_summary_or_every_bad_row(db_url, tmp_path: Path):
    assert cli(db_url, "load-prisons", str(CONFIG)).returncode == 0
    roster = ROSTERS["QUENCORO"]
    ok = cli(db_url, "import-inmates", "--prison", "QUENCORO", str(roster))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == (
        "QUENCORO: 200 created, 0 updated, 0 unchanged, 0 deactivated, 0 bookings cancelled"
    )

    bad = tmp_path / "bad.csv"
    lines = roster.read_text().splitlines()
    lines[3] = lines[3].replace(",A,", ",Z,").replace(",B,", ",Z,").replace(",C,", ",Z,")
    lines[3] = lines[3].replace(",D,", ",Z,")
    lines[5] = "Q99999,,Quispe,,not-a-date,A,active,"
    bad.write_text("\n".join(lines[:10]) + "\n")
    result = cli(db_url, "import-inmates", "--prison", "QUENCORO", str(bad))
    assert result.returncode == 1
    assert "nothing was imported, 3 problems" in result.stderr
    assert "line 4, column wing: unknown wing 'Z'" in result.stderr
    assert "line 6, column first_names: required" in result.stderr
    assert "line 6, column birth_date" in result.stderr
    assert rows(db_url, Inmate) == 200

    unknown = cli(db_url, "import-inmates", "--prison", "NOWHERE", str(roster))
    assert unknown.returncode == 1
    assert "unknown prison 'NOWHERE'" in unknown.stderr

    active = rows(db_url, Inmate, status=InmateStatus.ACTIVE)
    header_only = tmp_path / "header.csv"
    header_only.write_text(lines[0] + "\n")
    empty = cli(db_url, "import-inmates", "--prison", "QUENCORO", str(header_only))
    assert empty.returncode == 1
    assert "nothing was imported, 1 problem:" in empty.stderr
    assert "line 2, column -: no inmate is listed" in empty.stderr  # in English
    assert rows(db_url, Inmate, status=InmateStatus.ACTIVE) == active > 0

    nul = tmp_path / "nul.csv"
    nul.write_text(lines[0] + "\n" + lines[1].replace("Carlos", "Car\x00los") + "\n")
    refused = cli(db_url, "import-inmates", "--prison", "QUENCORO", str(nul))
    assert refused.returncode == 1, refused.stdout  # not a database error
    assert "nothing was imported, 1 problem:" in refused.stderr
    assert "line 2, column first_names: holds a NUL character" in refused.stderr
    assert rows(db_url, Inmate, status=InmateStatus.ACTIVE) == active  # nobody deactivated


def test_import_inmates_takes_a_spreadsheets_trailing_separator_and_names_a_line_break(
    db_url, tmp_path: Path
):
    assert cli(db_url, "load-prisons", str(CONFIG)).returncode == 0
    lines = ROSTERS["QUENCORO"].read_text().splitlines()
    saved = tmp_path / "saved.csv"
    saved.write_text("".join(f"{line},\n" for line in lines))  # `...,visits_suspended_until,`
    ok = cli(db_url, "import-inmates", "--prison", "QUENCORO", str(saved))
    assert ok.returncode == 0, ok.stderr
    assert "200 created" in ok.stdout
    two_lines = tmp_path / "two_lines.csv"
    two_lines.write_text("\n".join([*lines[:3], lines[3].replace("Teófilo", '"Teó\nfilo"')]))
    refused = cli(db_url, "import-inmates", "--prison", "QUENCORO", str(two_lines))
    assert refused.returncode == 1
    assert "line 4, column first_names: holds a line break" in refused.stderr


def test_a_roster_that_takes_most_people_out_needs_the_confirming_option(db_url, tmp_path: Path):
    assert cli(db_url, "load-prisons", str(CONFIG)).returncode == 0
    roster = ROSTERS["QUENCORO"]
    assert cli(db_url, "import-inmates", "--prison", "QUENCORO", str(roster)).returncode == 0
    one_wing = tmp_path / "one-wing.csv"
    lines = roster.read_text().splitlines()
    one_wing.write_text("\n".join(lines[:51]) + "\n")  # the header and 50 people
    active = rows(db_url, Inmate, status=InmateStatus.ACTIVE)
    kept = sum(1 for line in lines[1:51] if line.split(",")[6] in ("", "active"))
    refused = cli(db_url, "import-inmates", "--prison", "QUENCORO", str(one_wing))
    assert refused.returncode == 1
    said = f"nothing was imported: it takes {active - kept} of the {active} people"
    assert said in refused.stderr
    assert "--confirm-many-out" in refused.stderr
    assert rows(db_url, Inmate, status=InmateStatus.ACTIVE) == active
    args = ("import-inmates", "--prison", "QUENCORO", "--confirm-many-out", str(one_wing))
    confirmed = cli(db_url, *args)
    assert confirmed.returncode == 0, confirmed.stderr
    assert rows(db_url, Inmate, status=InmateStatus.ACTIVE) == kept


def test_demo_loads_and_reloads(db_url):
    first = cli(db_url, "demo")
    assert first.returncode == 0, first.stderr
    assert "QUENCORO roster: 200 created" in first.stdout
    assert "staff accounts guardia, salud, admin (password visitas-demo-2026)" in first.stdout
    again = cli(db_url, "demo")
    assert again.returncode == 0, again.stderr
    assert "QUENCORO: no changes" in again.stdout
    assert "QUENCORO roster: 0 created, 0 updated, 200 unchanged, 0 deactivated" in again.stdout
    assert "staff accounts" not in again.stdout
    assert rows(db_url, StaffUser) == 3


def test_create_staff_makes_an_account_that_signs_in(db_url):
    cli(db_url, "load-prisons", str(CONFIG))
    made = cli(
        db_url,
        *("create-staff", "Luis.Guardia", "--name", "Luis Mamani", "--role", "guard"),
        *("--prison", "QUENCORO", "--prison", "MUJERES-CUSCO", "--password", PASSWORD),
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "created guard luis.guardia (QUENCORO, MUJERES-CUSCO)"
    db = Database(make_engine(db_url))
    sign_in(
        db,
        username="luis.guardia",
        password=PASSWORD,
        client="cli-test",
        now=utcnow(),
        policy=SignInPolicy(),
    )
    with db.read_session() as s:
        [opened] = s.scalars(select(StaffSession)).all()
        assert opened.user.username == "luis.guardia"
        assert opened.user.role is StaffRole.GUARD
    db.dispose()


def test_create_staff_refuses_bad_accounts_and_creates_nothing(db_url):
    cli(db_url, "load-prisons", str(CONFIG))
    base = ("create-staff", "luis", "--name", "Luis", "--password", PASSWORD)
    unknown = cli(db_url, *base, "--role", "guard", "--prison", "NOWHERE")
    assert unknown.returncode == 1
    assert "unknown prison 'NOWHERE'" in unknown.stderr + unknown.stdout
    national = cli(db_url, *base, "--role", "guard", "--national")
    assert national.returncode == 1
    assert "Solo un administrador puede tener alcance nacional" in (
        national.stderr + national.stdout
    )
    short = cli(
        db_url,
        "create-staff",
        "luis",
        "--name",
        "L",
        "--role",
        "admin",
        "--national",
        "--password",
        "corta",
    )
    assert short.returncode == 1
    assert rows(db_url, StaffUser) == 0


def test_create_staff_asks_for_the_password_twice_without_echoing_it(db_url, request):
    from typer.testing import CliRunner

    from visits.cli import app
    from visits.settings import get_settings

    cli(db_url, "load-prisons", str(CONFIG))
    runner = CliRunner(env=server_env(db_url, 8000))
    get_settings.cache_clear()  # read this test's database URL from the environment
    request.addfinalizer(get_settings.cache_clear)
    args = ["create-staff", "ana", "--name", "Ana", "--role", "admin", "--national"]
    mismatch = runner.invoke(app, args, input=f"{PASSWORD}\nsomething else entirely\n")
    assert mismatch.exit_code != 0
    assert rows(db_url, StaffUser) == 0
    made = runner.invoke(app, args, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert made.exit_code == 0, made.output
    assert PASSWORD not in made.output
    assert "created admin ana (every prison)" in made.output


def _suspend_visitor(db_url, doc_number: str, until: str, reason: str):
    """``visits suspend-visitor`` at Quencoro, of a DNI."""
    return cli(
        db_url, "suspend-visitor", "--prison", "QUENCORO", "--doc-type", "dni",
        "--doc-number", doc_number, "--until", until, "--reason", reason,
    )  # fmt: skip


def test_suspend_visitor_needs_a_known_visitor(db_url):
    assert cli(db_url, "load-prisons", str(CONFIG)).returncode == 0
    result = _suspend_visitor(db_url, "45678912", "2027-01-31", "incidente")
    assert result.returncode == 1
    assert "doc_number: Nadie con este documento ha reservado" in result.stderr
    typo = _suspend_visitor(db_url, "123", "2027-01-31", " ")
    assert typo.returncode == 1
    assert "doc_number: El DNI tiene exactamente 8" in typo.stderr
    assert "reason: Completa este dato" in typo.stderr
    assert rows(db_url, VisitorSuspension) == 0


def _booked_at_quencoro(db_url) -> tuple[Database, date]:
    """The demo's prisons and Quencoro's roster loaded, and a booking of its first women's
    visit time (at the tests' NOW); that time's day."""
    from tests.factories import NOW, SMS, request_for, visitor
    from visits.booking import create_booking
    from visits.prison import prison_by_code
    from visits.prison_config import apply_config, parse_config
    from visits.roster import import_roster

    db = Database(make_engine(db_url))
    with db.writing() as s:
        apply_config(s, parse_config(CONFIG.read_text()), NOW, sms_policy=SMS)
        prison = prison_by_code(s, "QUENCORO")
        import_roster(s, prison, ROSTERS["QUENCORO"].read_bytes(), NOW, sms_policy=SMS)
        slot = s.scalar(select(Slot).where(Slot.visitor_group == "women").order_by(Slot.id))
        inmate = s.scalar(select(Inmate).where(Inmate.code == "Q10001"))
        create_booking(
            s, prison=prison, inmate=inmate, request=request_for(slot, visitor()), now=NOW,
            secret_key="k", sms_policy=SMS,
        )  # fmt: skip
        return db, slot.local_date


def test_suspend_a_visitor_who_has_booked(db_url):
    db, _ = _booked_at_quencoro(db_url)
    result = _suspend_visitor(db_url, "45.678.912", "2027-01-31", "incidente")
    assert result.returncode == 0, result.stderr
    assert "dni 45678912 suspended at QUENCORO until 2027-01-31; bookings cancelled: 1" in (
        result.stdout
    )
    with db.read_session() as s:
        suspension = s.scalar(select(VisitorSuspension))
        assert (suspension.until.isoformat(), suspension.reason) == ("2027-01-31", "incidente")
        assert suspension.created_by == "cli"
        assert s.scalar(select(Booking.status)) is BookingStatus.CANCELLED
    # A second bar of the same person is refused while the first runs, saying until when.
    again = _suspend_visitor(db_url, "45678912", "2027-02-15", "otro incidente")
    assert again.returncode == 1
    assert "doc_number: " in again.stderr
    assert "31 de enero de 2027" in again.stderr
    assert rows(db_url, VisitorSuspension) == 1
    db.dispose()


def test_suspending_a_visitor_whose_visit_is_under_way_says_to_tell_the_gate(db_url):
    """The booking's visit time began an hour ago (the command reads the clock) and nobody of
    it came yet: it is left for the gate, and the command says so."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    db, _ = _booked_at_quencoro(db_url)
    now = datetime.now(UTC)
    with db.writing() as s:
        slot = s.scalar(select(Slot).join(Booking, Booking.slot_id == Slot.id))
        slot.starts_at, slot.ends_at = now - timedelta(hours=1), now + timedelta(hours=1)
        slot.local_date = slot.starts_at.astimezone(ZoneInfo("America/Lima")).date()
    result = _suspend_visitor(db_url, "45678912", "2027-01-31", "incidente")
    assert result.returncode == 0, result.stderr
    assert "bookings cancelled: 0; visit time under way, tell the gate: 1" in result.stdout
    with db.read_session() as s:
        assert s.scalar(select(Booking.status)) is BookingStatus.CONFIRMED
    db.dispose()


def test_every_load_of_the_prison_file_tells_the_bookings_left_in_a_time_it_closed(
    db_url, tmp_path: Path, request, monkeypatch
):
    from typer.testing import CliRunner

    import visits.base
    from tests.factories import NOW
    from visits.cli import app
    from visits.settings import get_settings

    db, day = _booked_at_quencoro(db_url)
    db.dispose()
    closed = tmp_path / "closed.toml"
    closure = f'\n[[prison.closures]]\ndate = {day}\nreason = "Paro"\n'
    header, quencoro, *others = CONFIG.read_text().split("\n[[prison]]")
    closed.write_text("\n[[prison]]".join([header, quencoro + closure, *others]))
    monkeypatch.setattr(visits.base, "utcnow", lambda: NOW)
    runner = CliRunner(env=server_env(db_url, 8000))
    get_settings.cache_clear()  # read this test's database URL from the environment
    request.addfinalizer(get_settings.cache_clear)
    for _ in range(2):  # the second load changes nothing, and says it again
        loaded = runner.invoke(app, ["load-prisons", str(closed)])
        assert loaded.exit_code == 0, loaded.output
        assert (
            "  STILL BOOKED 1 bookings in times closed to visits (their families were not told "
            "and may come), 0 in visit times no longer in the schedule (they happen unless "
            "those times are closed): cancel them at "
            "http://127.0.0.1:8000/staff/p/QUENCORO/closures, which texts each family"
        ) in loaded.output.splitlines()


def test_the_command_line_offers_exactly_the_document_types():
    from visits.cli import DocumentChoice
    from visits.visitor import DocumentType

    assert [c.value for c in DocumentChoice] == [d.value for d in DocumentType]


def test_sync_slots_makes_every_other_prisons_slots_and_says_which_failed(db_url):
    from sqlalchemy import update

    from visits.prison import Prison

    assert cli(db_url, "load-prisons", str(CONFIG)).returncode == 0
    db = Database(make_engine(db_url))
    with db.writing() as s:
        s.execute(delete(Slot))
        broken = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        s.execute(update(Prison).where(Prison.id == broken.id).values(timezone="Nowhere/Lost"))
        broken_id = broken.id
    db.dispose()
    synced = cli(db_url, "sync-slots")
    assert synced.returncode == 1
    assert f"failed (see the log above) for prison ids {broken_id}" in synced.stderr
    assert "MUJERES-CUSCO: " in synced.stdout  # the other prison got its slots
    assert rows(db_url, Slot) > 0


def test_the_demo_makes_no_staff_accounts_on_a_site_served_over_https(db_url):
    env = server_env(db_url, 8000) | {
        "VISITS_PUBLIC_BASE_URL": "https://visitas.example.pe",
        "VISITS_SMS_CONSOLE": "true",  # a training site
    }
    loaded = run_cli("demo", env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert "no demo staff accounts" in loaded.stdout
    assert rows(db_url, StaffUser) == 0


def test_a_wrong_setting_is_said_in_one_line_before_any_command_runs(db_url):
    too_long = "https://reservas-de-visitas-familiares.inpe.gob.pe/visitas"
    for command in (("demo",), ("serve", "--port", "1")):
        answer = run_cli(*command, env=server_env(db_url, 0) | {"VISITS_PUBLIC_BASE_URL": too_long})
        assert answer.returncode == 2
        assert answer.stderr.startswith("settings: VISITS_PUBLIC_BASE_URL (58 characters)")
        assert "confirmed/es" in answer.stderr
        assert "Traceback" not in answer.stderr
    assert rows(db_url, Slot) == 0  # the demo did not load


def test_half_set_twilio_is_said_in_one_line_naming_what_is_missing_and_no_secret(db_url):
    half = {"VISITS_TWILIO_ACCOUNT_SID": "AC123", "VISITS_TWILIO_AUTH_TOKEN": "token-x9"}
    answer = run_cli("worker", env=server_env(db_url, 0) | half)
    assert answer.returncode == 2
    assert answer.stderr == (
        "settings: Twilio is half set: VISITS_TWILIO_ACCOUNT_SID, VISITS_TWILIO_AUTH_TOKEN set, "
        "missing VISITS_TWILIO_FROM or VISITS_TWILIO_MESSAGING_SERVICE_SID (set them all, or "
        "none for the console sender)\n"
    )
    # A public site with no Twilio at all is refused too, unless the console is meant.
    public = server_env(db_url, 0) | {"VISITS_PUBLIC_BASE_URL": "https://visitas.example.pe"}
    answer = run_cli("worker", env=public)
    assert answer.returncode == 2
    assert answer.stderr.startswith("settings: VISITS_PUBLIC_BASE_URL is https")
    assert "Traceback" not in answer.stderr


def test_import_inmates_cancels_the_bookings_of_a_person_released_and_says_so(
    db_url, tmp_path: Path
):
    from notifications.outbox import OutboxMessage
    from tests.factories import NOW, SMS, request_for, visitor
    from visits.booking import create_booking
    from visits.prison import prison_by_code
    from visits.prison_config import apply_config, parse_config
    from visits.roster import import_roster

    db = Database(make_engine(db_url))
    with db.writing() as s:
        apply_config(s, parse_config(CONFIG.read_text()), NOW, sms_policy=SMS)
        prison = prison_by_code(s, "QUENCORO")
        import_roster(s, prison, ROSTERS["QUENCORO"].read_bytes(), NOW, sms_policy=SMS)
        slot = s.scalar(select(Slot).where(Slot.visitor_group == "women").order_by(Slot.id))
        inmate = s.scalar(select(Inmate).where(Inmate.code == "Q10001"))
        booked = create_booking(
            s, prison=prison, inmate=inmate, request=request_for(slot, visitor()), now=NOW,
            secret_key="k", sms_policy=SMS,
        )  # fmt: skip
        reference, starts = booked.booking.display_reference, slot.starts_at
    released = tmp_path / "released.csv"
    released.write_text(
        ROSTERS["QUENCORO"].read_text().replace(",2003-12-02,A,active,", ",2003-12-02,A,released,")
    )
    result = cli(db_url, "import-inmates", "--prison", "QUENCORO", str(released))
    assert result.returncode == 0, result.stderr
    local = starts.astimezone(prison.tz).strftime("%Y-%m-%d %H:%M")
    assert result.stdout.splitlines() == [
        "QUENCORO: 0 created, 1 updated, 199 unchanged, 0 deactivated, "
        "1 booking cancelled (released: 1)",
        f"  cancelled {reference} {local} (Q10001): released",
    ]
    with db.read_session() as s:
        assert s.scalar(select(Booking.status)) is BookingStatus.CANCELLED
        assert s.scalar(select(Slot.seats_taken).where(Slot.id == slot.id)) == 0
        told = s.scalars(select(OutboxMessage.kind).where(OutboxMessage.status == "pending"))
        assert list(told) == ["inmate_not_active"]  # the reminders are withdrawn
    db.dispose()


def test_load_prisons_tells_removed_visit_times_from_those_kept_for_their_bookings(
    db_url, tmp_path: Path
):
    """A session taken out of the file: its dates nobody booked are removed, the one holding
    seats stays for them, and the output counts each once, as what it is."""
    from datetime import time

    from visits.prison import Prison
    from visits.schedule import ScheduleTemplate

    assert cli(db_url, "load-prisons", str(CONFIG)).returncode == 0
    db = Database(make_engine(db_url))
    with db.writing() as s:
        session = s.scalar(
            select(ScheduleTemplate)
            .join(Prison, Prison.id == ScheduleTemplate.prison_id)
            .where(Prison.code == "QUENCORO", ScheduleTemplate.weekday == 2)
            .where(ScheduleTemplate.start_time == time(9))
        )
        nine = s.scalars(
            select(Slot).where(Slot.template_id == session.id).order_by(Slot.starts_at)
        ).all()
        nine[0].seats_taken = 2  # as if booked
    db.dispose()
    parts = CONFIG.read_text(encoding="utf-8").split("[[prison.schedule]]")
    assert 'weekday = "wednesday"\nstart = 09:00:00' in parts[1]  # Quencoro's first session
    without = tmp_path / "prisons.toml"
    without.write_text(parts[0] + "[[prison.schedule]]" + "[[prison.schedule]]".join(parts[2:]))
    loaded = cli(db_url, "load-prisons", str(without))
    assert loaded.returncode == 0, loaded.stderr
    assert f"{len(nine) - 1} removed, 1 withdrawn (kept for their bookings)" in loaded.stdout
    assert "holds 2 booked seats: kept for them" in loaded.stdout


def _refusals(db_url: str) -> list[subprocess.CompletedProcess[str]]:
    """``visits serve`` and ``visits worker`` started on the database (a short wait: one that
    does not refuse runs until stopped)."""
    env = server_env(db_url, 8000)
    return [
        subprocess.run(
            [VISITS, *args], env=env, capture_output=True, text=True, timeout=30, check=False
        )
        for args in (["serve", "--port", str(free_port())], ["worker"])
    ]


def test_the_server_and_the_worker_refuse_a_database_an_upgrade_has_not_reached(
    db_url, tmp_path: Path
):
    """Started on a site's database before `visits migrate`, they would half-work: pages and
    jobs failing on the first table or column they lack. They say what to do instead."""
    config = alembic_config(db_url)
    previous = scripts().get_revision(head()).down_revision
    alembic.downgrade(config, previous)
    try:
        for refused in _refusals(db_url):
            assert refused.returncode == 1
            assert refused.stderr.strip() == (
                f"the database is at revision {previous} and this release needs {head()}: "
                "run `visits migrate` first"
            )
    finally:
        alembic.upgrade(config, "head")
    for refused in _refusals(f"sqlite:///{tmp_path / 'new.db'}"):
        assert refused.returncode == 1
        assert refused.stderr.strip() == (
            "the database has no schema yet: run `visits migrate` first"
        )
