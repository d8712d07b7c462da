"""Shared fixtures: real databases built by the real migrations.

Every test that takes ``db`` runs on SQLite and, when ``TEST_DATABASE_URL`` names a PostgreSQL
server, on PostgreSQL too (a database of its own, created for the run and dropped after it).
SQLite tests get a fresh copy of a migrated file; PostgreSQL tests get emptied tables.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.browsing import browser, phone, staff  # noqa: F401 (fixtures for the browser tests)
from visits.db import Database, make_engine, normalise_url
from visits.migrate import upgrade
from visits.schema import metadata

PG_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this run's own, migrated to head."""
    assert PG_URL, "TEST_DATABASE_URL is not set"
    server = make_url(normalise_url(PG_URL))
    name = f"visits_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """The URL of an empty, migrated database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_database")
    engine = create_engine(url)
    with engine.begin() as connection:
        tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(make_engine(db_url, busy_timeout_ms=30_000, pool_size=5))
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real server process on an SQLite database loaded with the demo data, its clock at
    10:00 in Lima (no visit time opens or closes to bookings while the tests run), no jobs."""
    from tests.clocked_server import demo_morning
    from tests.server import free_port, run_cli, running_server, server_env

    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
    port = free_port()
    loaded = run_cli("demo", env=server_env(url, port))
    assert loaded.returncode == 0, loaded.stderr
    with running_server(url, port=port, clock=demo_morning()) as server:
        yield server.base


@pytest.fixture
def make_client(db: Database, db_url: str):
    """Builds the app in-process on the demo data, its clock fixed at ``factories.NOW`` (or
    the ``clock`` given, a function a test can move).

    Availability is computed afresh on every request unless a test asks for the cache, and
    bookings confirm at once unless a test asks for phone verification.
    """
    from fastapi.testclient import TestClient

    from tests.factories import NOW, SMS
    from visits.demo import load_demo
    from visits.settings import Settings
    from web.app import create_app

    with db.writing() as session:
        load_demo(session, NOW, SMS)
    clients = []

    def build(clock=None, **overrides):
        values = {
            "database_url": db_url,
            "secret_key": "test-secret",
            "run_jobs_in_process": False,
            "public_base_url": "https://visitas.example.pe",
            # An https site for Secure cookies, yet sending nothing: a staging site's setting.
            "sms_console": True,
            "availability_cache_seconds": 0,
            "phone_verification": False,
        }
        settings = Settings(**(values | overrides))
        app = create_app(settings, db, clock=clock or (lambda: NOW))
        client = TestClient(app, base_url="https://testserver")
        clients.append(client.__enter__())
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()
