"""Every user-facing string is in the catalogs, translated, and compiled."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from visits.gate import TurnAwayReason
from visits.i18n import LOCALE_DIR, SUPPORTED_LOCALES, use_locale
from visits.problems import (
    API_MESSAGES,
    GATE_MESSAGES,
    MESSAGES,
    STAFF_MESSAGES,
    Audience,
    Code,
    Problem,
    message,
)
from visits.staff import StaffRole

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def _catalog(locale: str):
    with open(LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f, locale=locale)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> set[str]:
    """The message ids the code and templates use today, extracted afresh."""
    pot = tmp_path_factory.mktemp("pot") / "messages.pot"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "pybabel"), "-q", "extract", "--no-location",
            "-F", str(LOCALE_DIR / "babel.cfg"), "-k", "N_", "-k", "Np_:1,2", "-o", str(pot), ".",
        ],
        cwd=ROOT, check=True,
    )  # fmt: skip
    with open(pot, "rb") as f:
        return {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(f) if m.id}


def test_spanish_translates_every_string_in_use(extracted):
    catalog = _catalog("es")
    translated = {
        (m.id if isinstance(m.id, str) else m.id[0])
        for m in catalog
        if m.id and all(m.string if isinstance(m.string, tuple) else [m.string]) and not m.fuzzy
    }
    assert extracted - translated == set(), "run `make messages` and translate the new entries"


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_placeholders_survive_translation(locale):
    for entry in _catalog(locale):
        if not entry.id:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        for text in filter(None, strings):
            assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(ids[-1])), (
                entry.id
            )


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_compiled_catalogs_match_their_sources(locale):
    source = {m.id: m.string for m in _catalog(locale) if m.id and not m.fuzzy}
    with open(LOCALE_DIR / locale / "LC_MESSAGES" / "messages.mo", "rb") as f:
        compiled = {
            _hashable(m.id): _hashable(m.string)
            for m in read_mo(BytesIO(f.read()))
            if m.id and _hashable(m.string) != _hashable(m.id)  # untranslated: the id itself
        }
    expected = {
        k: v
        for k, v in source.items()
        if (all(v) if isinstance(v, tuple) else v) and v != k  # "DNI" is "DNI" in Spanish too
    }
    assert compiled == expected, "run `make messages` to compile the catalogs"


def test_every_problem_code_has_a_message_in_each_language():
    assert set(MESSAGES) == set(Code)
    for code in Code:
        params = {name: 1 for name in re.findall(r"%\((\w+)\)s", MESSAGES[code])}
        with use_locale("es"):
            spanish = message(Problem(code, None, params))
        with use_locale("en"):
            english = message(Problem(code, None, params))
        assert spanish
        assert english
        assert spanish != english, code


@pytest.mark.parametrize(
    ("audience", "messages"),
    [
        (Audience.GATE, GATE_MESSAGES),
        (Audience.STAFF, STAFF_MESSAGES),
        (Audience.API, API_MESSAGES),
    ],
)
def test_staff_read_their_own_words_for_their_refusals_in_each_language(audience, messages):
    for code, words in messages.items():
        params = {name: 1 for name in re.findall(r"%\((\w+)\)s", words)}
        said = {}
        for locale in ("es", "en"):
            with use_locale(locale):
                said[locale] = message(Problem(code, None, params), audience)
                assert said[locale] != message(Problem(code, None, params)), code
        assert said["es"] != said["en"], code  # translated (run `make messages`)


@pytest.mark.parametrize(
    ("audience", "one", "two"),
    [
        (Audience.FAMILY, "ya tiene 1 visita reservada", "ya tiene 2 visitas reservadas"),
        (Audience.STAFF, "ya tiene 1 visita reservada", "ya tiene 2 visitas reservadas"),
    ],
)
def test_the_weekly_limit_reads_in_the_singular_for_one_visit(audience, one, two):
    with use_locale("es"):
        said = {
            limit: message(
                Problem(Code.WEEKLY_LIMIT_REACHED, "slot_id", {"limit": limit}), audience
            )
            for limit in (1, 2)
        }
    assert one in said[1]
    assert two in said[2]
    with use_locale("en"):
        english = message(Problem(Code.WEEKLY_LIMIT_REACHED, "slot_id", {"limit": 1}), audience)
    assert "1 visit booked" in english


def test_a_problem_without_what_the_gates_words_name_reads_in_the_familys():
    bare = Problem(Code.HEALTH_SUSPENDED, "slot_id")  # visits paused, as booking says it
    with use_locale("en"):
        assert message(bare, Audience.GATE) == message(bare)
        assert "paused" in message(bare, Audience.GATE)


def test_every_member_of_a_labelled_enumeration_has_its_own_label():
    """Two enumerations may share a value ("health" is a staff role and a turn-away reason):
    each member still reads as itself."""
    from web.labels import LABELS, label

    enumerations = {kind for kind, _ in LABELS}
    members = [member for kind in enumerations for member in kind]
    assert len(LABELS) == len(members)  # every member of each enumeration, none overwritten
    with use_locale("en"):
        assert label(StaffRole.HEALTH) == "Health staff"
        assert label(TurnAwayReason.HEALTH) == "Health measure"


# The steps the staff pages' histories show (a booking's, the gate's on it, an advisory's).
SHOWN_ACTION = re.compile(r"(booking|visitor|advisory)\.[a-z_]*[a-z]")


def _shown_actions_written() -> set[str]:
    """Every action name of a shown history the code spells out, read from the source: a
    string literal anywhere in ``visits`` and ``web`` (an action recorded, looked for, or
    kept in a constant), and the cancellations whose name is made from their cause."""
    from visits.booking import CANCELLED_ACTIONS

    written = set(CANCELLED_ACTIONS)
    for path in [*(ROOT / "visits").rglob("*.py"), *(ROOT / "web").rglob("*.py")]:
        if "migrations" in path.parts or path == ROOT / "web" / "labels.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                written.add(node.value)
    # Not actions: a table's column (a foreign key) and a template.
    return {
        name
        for name in written
        if SHOWN_ACTION.fullmatch(name) and not name.endswith((".id", ".html"))
    }


def test_every_step_a_history_shows_has_words():
    """An action without words would read as its raw name (``advisory.contacts_notified``)."""
    from web.labels import AUDIT_ACTIONS

    written = _shown_actions_written()
    assert {"booking.held", "visitor.screened", "advisory.contacts_notified"} <= written
    assert written - set(AUDIT_ACTIONS) == set()
