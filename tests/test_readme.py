"""The README's examples work and its demo roster matches the demo data."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

from sqlalchemy import select

from tests.factories import NOW, SMS
from visits.demo import ROSTERS
from visits.inmate import Inmate
from visits.prison import prison_by_code
from visits.prison_config import apply_config, parse_config
from visits.roster import import_roster

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _block(language: str) -> str:
    return re.search(rf"```{language}\n(.*?)```", README, re.S).group(1)


def test_the_readme_lists_every_demo_inmate():
    for path in ROSTERS.values():
        with path.open() as f:
            for row in csv.DictReader(f):
                line = f"| {row['code']} | {row['first_names']} | {row['last_name_1']} | "
                assert f"{line}{row['birth_date']} | {row['status']}" in README, row["code"]


def test_the_readme_examples_load(db):
    config = parse_config(_block("toml"))
    roster = re.sub(r",[BCD],", ",A,", _block("csv"))  # the example file declares wing A only
    with db.writing() as s:
        apply_config(s, config, NOW, sms_policy=SMS)
        quencoro = prison_by_code(s, "QUENCORO")
        report = import_roster(s, quencoro, roster.encode(), NOW, sms_policy=SMS)
        assert report.created == 4
        assert s.scalar(select(Inmate.birth_date).where(Inmate.code == "Q10150")).day == 24


def test_the_readme_api_example_books_once_however_often_it_is_run(tmp_path):
    """The curl example, run as written on the demo (any day): run again, as a retry would
    be, it answers with the same booking."""
    from tests.clocked_server import demo_morning
    from tests.server import free_port, run_cli, running_server, server_env

    script = next(
        block
        for block in re.findall(r"```sh\n(.*?)```", README, re.S)
        if "/api/v1/bookings" in block
    )
    url, port = f"sqlite:///{tmp_path / 'demo.db'}", free_port()
    assert run_cli("demo", env=server_env(url, port)).returncode == 0
    with running_server(url, port=port, clock=demo_morning()) as server:
        script = script.replace("http://127.0.0.1:8000", server.base)
        first, retry = (
            json.loads(
                subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
            )
            for _ in range(2)
        )
    assert first["status"] in ("held", "confirmed")
    assert (retry["reference"], retry["manage_token"]) == (
        first["reference"],
        first["manage_token"],
    )


def test_the_readme_names_every_field_a_booking_request_has():
    """A program's developer learns the request from the README's API section: a field it
    leaves out (the screening answers default to no) is one the program never sends."""
    from web.api import BookingIn, InmateIn, VisitorIn

    section = README.partition("## The JSON API")[2].partition("\n## ")[0]
    named = set(re.findall(r"`(\w+)`", section)) | set(re.findall(r'"(\w+)":', section))
    for model in (BookingIn, InmateIn, VisitorIn):
        assert set(model.model_fields) <= named, model.__name__
