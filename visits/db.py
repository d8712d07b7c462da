"""Engines and sessions for the two supported databases.

SQLite (the embedded default) runs in WAL mode with a busy timeout and foreign keys on. Its
Python driver starts transactions lazily and only on writes, which lets a read-then-write race
slip through; so transactions are begun explicitly, and *write* sessions begin with
``BEGIN IMMEDIATE``: the database write lock is taken before the first read, and every rule
checked inside that transaction holds until commit. PostgreSQL gets row locks instead
(``SELECT … FOR UPDATE`` through :func:`lock_rows`).

Services never commit; the caller that opened the session commits once or rolls back.

A database error names its statement but none of its values, which are people's names,
document numbers and phones: the server and the jobs log errors, and a log is kept and read
apart from the data (so PostgreSQL's ``DETAIL`` line, which quotes the failing row or key, is
dropped too).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from visits.settings import Settings

WRITE_OPTION = "visits_write_transaction"
_HOLDS_TURN = "visits_holds_writer_turn"


class WriteLockMissing(RuntimeError):
    """A write service ran in a session that was not opened for writing."""


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _without_values(context: Any) -> None:
    """Keep the first line of the driver's message: PostgreSQL's next ones (``DETAIL:``
    "Failing row contains (…)", "Key (…)=(…) already exists") quote the values."""
    for error in (context.original_exception, context.sqlalchemy_exception):
        # The driver's error, and the one SQLAlchemy raises, which quotes it.
        if error is not None and len(error.args) == 1 and isinstance(error.args[0], str):
            error.args = (error.args[0].split("\n", 1)[0],)


def make_engine(url: str, *, busy_timeout_ms: int = 15_000, pool_size: int = 10) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            hide_parameters=True,
        )
        event.listen(engine, "handle_error", _without_values)
        return engine

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        pool_size=pool_size,
        max_overflow=pool_size,
        hide_parameters=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (see the "begin" listener below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    # Writers queue for their turn instead of meeting at SQLite's busy handler, which polls
    # with sleeps of up to 100 ms: under a rush that polling, not the work, made the slowest
    # bookings wait seconds. Within a process they queue on a lock; between processes (several
    # web workers, the job runner) the one writer each process lets through then takes a lock
    # file beside the database, which the kernel frees even if its holder dies.
    writer_turn = _WriterTurn(
        None if not parsed.database or parsed.database == ":memory:" else parsed.database
    )

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if not connection.get_execution_options().get(WRITE_OPTION, False):
            connection.exec_driver_sql("BEGIN")
            return
        if not connection.info.get(_HOLDS_TURN):
            if not writer_turn.acquire(timeout=busy_timeout_ms / 1000):
                raise TimeoutError("the database stayed busy; try again")
            connection.info[_HOLDS_TURN] = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            connection.info.pop(_HOLDS_TURN)
            writer_turn.release()
            raise

    def _end_turn(_dbapi_connection: Any, record: Any, *_: Any) -> None:
        if record.info.pop(_HOLDS_TURN, False):
            writer_turn.release()

    # Back in the pool means committed or rolled back; a broken connection is thrown away.
    # Either way, the next writer's turn.
    event.listen(engine, "checkin", _end_turn)
    event.listen(engine, "invalidate", _end_turn)

    return engine


class _WriterTurn:
    """One writer at a time: a lock for this process's threads, then, for a database file, an
    exclusive ``flock`` on ``<file>-writer.lock`` shared with every other process.

    The file lock is polled without blocking (at most one thread per process polls, so this
    costs nothing), every 0.5 to 2 ms: a blocking ``flock`` could not honour the timeout.
    """

    def __init__(self, database_file: str | None) -> None:
        self._threads = threading.Lock()
        self._path = f"{database_file}-writer.lock" if database_file else None
        self._fd: int | None = None
        self._pid = os.getpid()

    def _file(self) -> int:
        # A forked child must not share its parent's open file description (flock belongs
        # to it, so parent and child would both "hold" the lock).
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            return False
        if self._path is None:
            return True
        try:
            fd = self._file()
            pause = 0.0005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        self._threads.release()
                        return False
                    time.sleep(pause)
                    pause = min(pause * 2, 0.002)
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        try:
            if self._path is not None and self._fd is not None and self._pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


class Database:
    """One engine and two session factories: reads, and writes that take their locks first."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(
            make_engine(
                settings.database_url,
                busy_timeout_ms=settings.sqlite_busy_timeout_ms,
                pool_size=settings.db_pool_size,
            )
        )

    @property
    def max_connections(self) -> int:
        """How many connections this process may hold at once: :func:`make_engine` allows
        as much overflow as the pool's size."""
        return 2 * self.engine.pool.size()  # type: ignore[attr-defined]

    def read_session(self) -> Session:
        return self._read()

    def write_session(self) -> Session:
        return self._write()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write session that commits when the block ends normally and rolls back otherwise."""
        with self.write_session() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


def require_write_lock(session: Session) -> None:
    """Fail loudly if a rule-checking write runs outside a write session.

    On SQLite only ``BEGIN IMMEDIATE`` makes the checks that span rows safe, so a service that
    checks such rules calls this first.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite" and not connection.get_execution_options().get(
        WRITE_OPTION
    ):
        raise WriteLockMissing("this operation needs Database.write_session()")


def lock_rows(
    session: Session, column: Any, ids: Iterable[Any], *, key_share: bool = False
) -> None:
    """Lock the rows whose ``column`` is in ``ids`` until commit, in a fixed order.

    PostgreSQL: ``SELECT … ORDER BY … FOR UPDATE`` (the order prevents deadlocks between two
    transactions locking overlapping sets); with ``key_share``, ``FOR NO KEY UPDATE``, which
    rows referring to these (a booking's prison) can still be inserted beside. SQLite: the
    write session already holds the database's single write lock.
    """
    require_write_lock(session)
    wanted = sorted(set(ids))
    if not wanted or session.get_bind().dialect.name == "sqlite":
        return
    query = select(column).where(column.in_(wanted)).order_by(column)
    session.execute(query.with_for_update(key_share=key_share))


def dialect_insert(session: Session, table: Any) -> Any:
    """An ``INSERT`` of this session's database, which knows ``ON CONFLICT`` (both dialects
    spell it alike)."""
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(table)


def insert_ignoring_conflicts(
    session: Session, table: Any, rows: Sequence[dict[str, Any]], conflict_columns: list[str]
) -> int:
    """``INSERT … ON CONFLICT DO NOTHING``: returns how many rows were really inserted."""
    if not rows:
        return 0
    statement = dialect_insert(session, table).on_conflict_do_nothing(
        index_elements=conflict_columns
    )
    # RETURNING counts reliably on both drivers (a batched insert's rowcount may be -1). The
    # rows go as the execution's parameters, not into the statement (``.values(rows)``): the
    # statement then stays the same from one call to the next, and SQLAlchemy compiles it
    # once (a statement carrying its rows has no cache key: it was compiled on every booking).
    returning = statement.returning(table.c[conflict_columns[0]])
    return len(session.execute(returning, list(rows)).all())
