"""The ``visits`` command: database, configuration, roster, demo, server and worker.

Commands import what they use when they run. ``visits serve`` goes further: it replaces itself
with ``python -m web.serve``, so that uvicorn's supervisor holds neither typer nor the
application, and only its workers load the application.
"""

from __future__ import annotations

import logging
import sys
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from visits.db import Database

app = typer.Typer(help="Family visit scheduling for prisons.", no_args_is_help=True)


class DocumentChoice(StrEnum):
    """The document types, as the command line offers them (mirrors visits.visitor)."""

    dni = "dni"
    ce = "ce"
    passport = "passport"


def _database() -> Database:
    from visits.db import Database
    from visits.settings import get_settings

    return Database.from_settings(get_settings())


def _fail(lines: list[str], code: int = 1) -> typer.Exit:
    for line in lines:
        typer.echo(line, err=True)
    return typer.Exit(code)


def _schema_current(db: Database) -> None:
    """Refuse to serve or run jobs on a database this release's migrations have not brought
    to their head: every page and job would fail on the first table or column it lacks."""
    from visits.migrate import schema_problem

    problem = schema_problem(db.engine)
    if problem is not None:
        raise _fail([problem])


@app.callback()
def _settings_first() -> None:
    """Every command runs on the settings: a wrong one is said in a line that names it, before
    anything starts, not as a traceback from whatever first reads it."""
    from pydantic import ValidationError

    from visits.settings import get_settings

    try:
        get_settings()
    except ValidationError as error:
        said = [f"settings: {e['msg'].removeprefix('Value error, ')}" for e in error.errors()]
        raise _fail(said, 2) from None


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from visits.migrate import upgrade
    from visits.settings import get_settings

    upgrade(get_settings().database_url)
    typer.echo("database is up to date")


@app.command("load-prisons")
def load_prisons(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    overwrite_browser_edits: Annotated[
        bool,
        typer.Option(help="Apply the file's rules and schedule to prisons edited in the browser."),
    ] = False,
) -> None:
    """Apply a prison configuration file (TOML). Running it twice changes nothing. Rules and
    schedules administrators edited in the browser are kept unless told otherwise."""
    from visits.base import utcnow
    from visits.prison_config import ConfigInvalid, apply_config, parse_config
    from visits.settings import get_settings
    from visits.sms import SmsPolicy

    try:
        config = parse_config(file.read_text(encoding="utf-8"))
    except ConfigInvalid as invalid:
        raise _fail([f"{file}: nothing was changed:", *invalid.errors]) from None
    db = _database()
    settings = get_settings()
    with db.writing() as session:
        reports = apply_config(
            session,
            config,
            utcnow(),
            sms_policy=SmsPolicy.from_settings(settings),
            overwrite_browser_edits=overwrite_browser_edits,
        )
    base_url = settings.public_base_url
    typer.echo("\n".join(line for report in reports for line in report.lines(base_url)))


@app.command("import-inmates")
def import_inmates(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    prison: Annotated[str, typer.Option(help="Prison code, as in the configuration file.")],
    confirm_many_out: Annotated[
        bool,
        typer.Option(help="Apply a file that takes most of the prison out of visits."),
    ] = False,
) -> None:
    """Import a prison's whole roster (CSV). A bad row imports nothing."""
    from visits.base import utcnow
    from visits.prison import prison_by_code
    from visits.roster import RosterInvalid, RosterTakesManyOut, import_roster
    from visits.settings import get_settings
    from visits.sms import SmsPolicy

    db = _database()
    with db.writing() as session:
        found = prison_by_code(session, prison)
        if found is None:
            raise _fail([f"unknown prison {prison!r}"])
        try:
            report = import_roster(
                session, found, file.read_bytes(), utcnow(),
                sms_policy=SmsPolicy.from_settings(get_settings()),
                many_out_confirmed=confirm_many_out,
            )  # fmt: skip
        except RosterInvalid as invalid:
            session.rollback()
            errors = [f"  {e}" for e in invalid.errors]
            count = f"{len(errors)} problem" + ("" if len(errors) == 1 else "s")
            raise _fail([f"{file}: nothing was imported, {count}:", *errors]) from None
        except RosterTakesManyOut as many:
            session.rollback()
            raise _fail(
                [
                    f"{file}: nothing was imported: it takes {many.count} of the {many.active} "
                    "people who can be visited now out of visits, and cancels their visits to "
                    "come; if that is right, run again with --confirm-many-out",
                ]
            ) from None
    typer.echo(f"{found.code}: {report.summary()}")
    for line in report.cancellation_lines():
        typer.echo(f"  {line}")


@app.command("sync-slots")
def sync_slots_command() -> None:
    """Materialise slots for every prison's booking window (the worker does this hourly)."""
    from visits.jobs import SlotSyncFailed, sync_all_slots

    try:
        reports, failed = sync_all_slots(_database()), []
    except SlotSyncFailed as error:
        reports, failed = error.reports, error.failed
    for code, report in reports.items():
        typer.echo(f"{code}: {report.created} created, {len(report.conflicts)} conflicts")
    if failed:
        raise _fail([f"failed (see the log above) for prison ids {', '.join(failed)}"])


@app.command("suspend-visitor")
def suspend_visitor(
    prison: Annotated[str, typer.Option(help="Prison code.")],
    doc_type: Annotated[DocumentChoice, typer.Option(help="Document type.")],
    doc_number: Annotated[str, typer.Option(help="Document number.")],
    until: Annotated[str, typer.Option(help="Last day of the suspension, YYYY-MM-DD.")],
    reason: Annotated[str, typer.Option(help="Why, for staff (never shown to families).")],
) -> None:
    """Bar a visitor who has booked before from visiting a prison until a date; their
    bookings there in that time are cancelled and the families told (as on the staff page)."""
    from visits.base import utcnow
    from visits.prison import prison_by_code
    from visits.problems import Rejected, message
    from visits.settings import get_settings
    from visits.sms import SmsPolicy
    from visits.stopping import gate_summary, under_way
    from visits.suspensions import Actor
    from visits.suspensions import suspend_visitor as suspend

    try:
        last_day = date.fromisoformat(until)
    except ValueError:
        raise _fail([f"--until must be YYYY-MM-DD, got {until!r}"]) from None
    db = _database()
    with db.writing() as session:
        found = prison_by_code(session, prison)
        if found is None:
            raise _fail([f"unknown prison {prison!r}"])
        try:
            done = suspend(
                session,
                found,
                doc_type=doc_type.value,
                doc_number=doc_number,
                until=last_day,
                reason=reason,
                by=Actor("cli", "", now := utcnow()),
                sms_policy=SmsPolicy.from_settings(get_settings()),
            )
        except Rejected as rejected:
            raise _fail([f"{p.field}: {message(p)}" for p in rejected.problems]) from None
        number = done.suspension.visitor.doc_number
        left = gate_summary([under_way(b, now) for b in done.at_gate])
    typer.echo(
        f"{doc_type.value} {number} suspended at {found.code} until {last_day}; "
        f"bookings cancelled: {len(done.cancelled)}" + left
    )


class RoleChoice(StrEnum):
    """Mirrors visits.staff.StaffRole (not imported here: see the module docstring)."""

    GUARD = "guard"
    HEALTH = "health"
    ADMIN = "admin"


@app.command("create-staff")
def create_staff_command(
    username: Annotated[str, typer.Argument(help="Sign-in name: lowercase, 3 to 64 chars.")],
    name: Annotated[str, typer.Option(help="Full name, as staff pages show it.")],
    role: Annotated[RoleChoice, typer.Option(help="What the account may do.")],
    prison: Annotated[
        list[str] | None, typer.Option(help="Prison code the account covers; repeatable.")
    ] = None,
    national: Annotated[bool, typer.Option(help="Every prison (administrators only).")] = False,
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            show_default=False,
            hide_input=True,
            confirmation_prompt=True,
            help="Asked for when not given (given here, it shows in the shell's history).",
        ),
    ] = "",
) -> None:
    """Create a staff account (guard, health or admin) for one or more prisons."""
    from visits.base import utcnow
    from visits.prison import prison_by_code
    from visits.problems import Rejected, message
    from visits.staff import StaffRole, create_staff

    db = _database()
    with db.writing() as session:
        prisons = [(code, prison_by_code(session, code)) for code in prison or []]
        unknown = [code for code, found in prisons if found is None]
        if unknown:
            raise _fail([f"unknown prison {code!r}" for code in unknown])
        try:
            user = create_staff(
                session,
                username=username,
                full_name=name,
                role=StaffRole(role.value),
                password=password,
                prisons=[found for _, found in prisons if found is not None],
                national=national,
                now=utcnow(),
                actor="cli",
            )
        except Rejected as rejected:
            raise _fail([f"{p.field}: {message(p)}" for p in rejected.problems]) from None
        covers = "every prison" if user.national else ", ".join(p.code for p in user.prisons)
    typer.echo(f"created {user.role.value} {user.username} ({covers})")


@app.command()
def demo() -> None:
    """Migrate and load the demo prisons, rosters and staff accounts (safe to run again)."""
    from visits.base import utcnow
    from visits.demo import DEMO_STAFF_PASSWORD, load_demo, load_demo_staff
    from visits.migrate import upgrade
    from visits.settings import get_settings
    from visits.sms import SmsPolicy

    settings = get_settings()
    upgrade(settings.database_url)
    db = _database()
    with db.writing() as session:
        reports, rosters = load_demo(session, utcnow(), SmsPolicy.from_settings(settings))
        # Their password is in the README: never on a site served over HTTPS.
        public = settings.is_public_site
        accounts = [] if public else load_demo_staff(session, utcnow())
    typer.echo("\n".join(line for report in reports for line in report.lines()))
    for code, roster in rosters.items():
        typer.echo(f"{code} roster: {roster.summary()}")
    if accounts:
        typer.echo(f"staff accounts {', '.join(accounts)} (password {DEMO_STAFF_PASSWORD})")
    if public:
        typer.echo("no demo staff accounts: VISITS_PUBLIC_BASE_URL is https (use create-staff)")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="Web worker processes.")] = 1,
    proxy_headers: Annotated[
        bool, typer.Option(help="Trust X-Forwarded-For from --forwarded-allow-ips.")
    ] = False,
    forwarded_allow_ips: str = "127.0.0.1",
) -> None:
    """Serve the web application with uvicorn."""
    import json
    import os

    db = _database()
    try:
        _schema_current(db)
    finally:
        db.dispose()
    options = {
        "host": host,
        "port": port,
        "workers": workers,
        "proxy_headers": proxy_headers,
        "forwarded_allow_ips": forwarded_allow_ips,
    }
    # glibc gives each thread that allocates an arena of its own (up to 8 per core) and keeps
    # the memory each one once held: with two, a worker's peak under the booking rush is some
    # 4 MB lower, for no CPU we could measure (Python allocates under the GIL anyway). Set
    # here, before the exec below, as glibc reads it once when a process starts; it applies
    # to uvicorn's supervisor and to every worker it spawns.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    # This process becomes the server (the same process id, so signals and supervisors find
    # it) in a fresh interpreter: typer, and pydantic through it, cost uvicorn's supervisor
    # 12 MB it never uses. -P keeps the working directory off the import path, as it is for
    # this command.
    command = [sys.executable, "-P", "-m", "web.serve", json.dumps(options)]
    os.execv(command[0], command)  # noqa: S606 (this interpreter, no shell, fixed arguments)


def worker_log_handler() -> logging.Handler:
    """Where ``visits worker`` writes: standard error, with no working manage link in any line
    (a failed send's traceback may quote an SMS), as ``visits serve`` writes its own."""
    from visits.reference import LinkHidingFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LinkHidingFormatter(logging.BASIC_FORMAT))
    return handler


@app.command()
def worker() -> None:
    """Run the background jobs in this process until stopped (SIGTERM or Ctrl-C)."""
    import signal
    from types import FrameType

    from apscheduler.schedulers.blocking import BlockingScheduler

    from visits.jobs import make_dispatcher, schedule_jobs, stop_jobs
    from visits.settings import get_settings

    db, settings = _database(), get_settings()
    _schema_current(db)  # before logging starts: a refusal is its one line
    logging.basicConfig(level=logging.INFO, handlers=[worker_log_handler()])
    dispatcher = make_dispatcher(db, settings)
    scheduler = schedule_jobs(BlockingScheduler(timezone="UTC"), db, settings, dispatcher)

    def stop(signum: int, frame: FrameType | None) -> None:
        # Out of the scheduler's loop; a second signal while stopping ends the process at once.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    typer.echo("worker started; Ctrl-C stops it")
    try:
        scheduler.start()
    except SystemExit:
        logging.getLogger(__name__).info("stopping: handing back the messages not yet sent")
        stop_jobs(scheduler, dispatcher)


if __name__ == "__main__":
    app()
