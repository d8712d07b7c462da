"""Schema migrations with Alembic: the only way the schema is built, in tests too.

``visits serve`` and ``visits worker`` start only on a database at this release's head
(:func:`schema_problem`): on one an upgrade has not reached yet, pages and jobs would
half-work, each failing on the first table or column it lacks.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine

from visits.db import normalise_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic reads this through ConfigParser: a literal % must be doubled.
    config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


@functools.cache
def scripts() -> ScriptDirectory:
    """This release's migrations (read once per process)."""
    return ScriptDirectory(str(MIGRATIONS_DIR))


def head() -> str:
    """The revision this release's code is written for."""
    found = scripts().get_current_head()
    assert found is not None
    return found


def schema_problem(engine: Engine) -> str | None:
    """Why this release must not run on the database ``engine`` reaches, in a line for the
    operator, or ``None`` when it is at this release's head."""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    wanted = head()
    if current == wanted:
        return None
    if current is None:
        return "the database has no schema yet: run `visits migrate` first"
    try:
        scripts().get_revision(current)
    except CommandError:  # a revision no script of this release has
        return (
            f"the database is at revision {current}, which this release does not know "
            f"(a newer release migrated it?): this release needs {wanted}"
        )
    return (
        f"the database is at revision {current} and this release needs {wanted}: "
        "run `visits migrate` first"
    )
