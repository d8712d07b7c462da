"""The shape the design requires: migrations match the models, dependencies point one way."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from visits.db import Database, make_engine
from visits.migrate import alembic_config
from visits.schema import metadata

ROOT = Path(__file__).resolve().parent.parent


def test_the_migrations_build_exactly_the_models(db_url):
    db = Database(make_engine(db_url))
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        assert context.get_current_revision() == (
            ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
        )
    db.dispose()


def _imports(package: str) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_dependencies_point_from_web_to_visits_to_notifications():
    assert _imports("visits").isdisjoint({"web", "fastapi", "starlette", "jinja2", "twilio"})
    assert _imports("notifications").isdisjoint({"web", "visits"})


# Statements built once at import (beside the function that runs them): the modules that hold
# them, each found by its upper-case name.
_PREBUILT = """
import importlib, sys
from sqlalchemy import TextClause
from sqlalchemy.sql.base import Executable
module = importlib.import_module(sys.argv[1])
for name, value in vars(module).items():
    built = isinstance(value, Executable) and not isinstance(value, TextClause)
    if built and name.lstrip("_").isupper():
        for key, bind in value.compile().binds.items():
            print(name, key, bind.type._isnull)
"""


def test_a_statement_built_at_import_types_its_parameters_whichever_module_comes_first():
    """A bind parameter takes its column's type when the statement is built; a foreign key's
    column has none until the table it points to is declared. Built at import, a statement of
    a module imported before that table's keeps an untyped parameter for good (PostgreSQL then
    lost a cast). Each module is imported first, alone, in a process of its own."""
    modules = [
        f"{path.parent.name}.{path.stem}"
        for package in ("visits", "notifications")
        for path in sorted((ROOT / package).glob("*.py"))
        if re.search(r"^_?[A-Z_]+ = \(?\s*(select|update|insert|delete)\(", path.read_text(), re.M)
    ]
    assert "visits.advisories" in modules  # the search finds them
    for module in modules:
        run = subprocess.run(
            [sys.executable, "-c", _PREBUILT, module],
            capture_output=True, text=True, cwd=ROOT, check=True,
        )  # fmt: skip
        binds = [line.split() for line in run.stdout.splitlines()]
        assert binds, module
        assert [b for b in binds if b[2] == "True"] == [], module
