"""The README's examples work and its demo roster matches the demo data."""

from __future__ import annotations

import csv
import re
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
        apply_config(s, config, NOW)
        quencoro = prison_by_code(s, "QUENCORO")
        report = import_roster(s, quencoro, roster.encode(), NOW, sms_policy=SMS)
        assert report.created == 4
        assert s.scalar(select(Inmate.birth_date).where(Inmate.code == "Q10150")).day == 24
