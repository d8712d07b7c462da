"""The shape the design requires: migrations match the models, dependencies point one way."""

from __future__ import annotations

import ast
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
