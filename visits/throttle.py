"""Failed-attempt counting, so that guessing an inmate's details or a booking is slow.

Kept in the database so the limit holds across web workers and restarts. Only failures are
recorded; a key is limited once it has ``limit`` failures within the window. Checking and
recording happen in the caller's write transaction; on PostgreSQL the keys are also locked
(advisory locks, in key order), so parallel guesses cannot all slip past one check.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, delete, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from visits.base import Base, UTCDateTime


class ThrottleHit(Base):
    __tablename__ = "throttle_hit"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(160), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failures a window allows.

    ``per_pair`` bounds one client guessing one person's details. ``per_client`` bounds one
    client overall; it is generous because a whole neighbourhood may share one mobile-network
    address. ``per_inmate`` bounds many clients guessing one person, and only applies to
    clients that have already failed for that person: a crowd of guessers cannot lock a
    family out before it has even tried.
    """

    per_pair: int = 5
    per_client: int = 20
    per_inmate: int = 30
    window: timedelta = timedelta(minutes=15)


_LOCK_KEYS = text(
    "SELECT pg_advisory_xact_lock(h) FROM "
    "(SELECT DISTINCT hashtext(k) AS h FROM unnest(CAST(:keys AS text[])) AS k ORDER BY h) AS s"
)


def lock_keys(session: Session, keys: Iterable[str]) -> None:
    """On PostgreSQL, lock these keys until commit (advisory locks, taken in one order by one
    statement); SQLite's write transaction already excludes every other writer."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK_KEYS, {"keys": sorted(set(keys))})


def recent(
    session: Session, keys: Iterable[str], window: timedelta, now: datetime, *, lock: bool = True
) -> dict[str, list[datetime]]:
    """Each key's failures within the window, newest first. With ``lock`` (PostgreSQL), the
    keys stay locked until commit, taken in one order by one statement."""
    keys = sorted(set(keys))
    if lock:
        lock_keys(session, keys)
    hits: dict[str, list[datetime]] = {key: [] for key in keys}
    for key, at in session.execute(
        select(ThrottleHit.key, ThrottleHit.at).where(
            ThrottleHit.key.in_(keys), ThrottleHit.at > now - window
        )
    ):
        hits[key].append(at)
    for times in hits.values():
        times.sort(reverse=True)
    return hits


def wait(hits: list[datetime], limit: int, window: timedelta, now: datetime) -> timedelta:
    """How long until a key with these failures is below its limit again (0 if it is)."""
    if len(hits) < limit:
        return timedelta(0)
    # The limit-th most recent failure is the one that must age out first.
    return hits[limit - 1] + window - now


def minutes(delay: timedelta) -> int:
    return math.ceil(delay.total_seconds() / 60) if delay > timedelta(0) else 0


def record_failure(session: Session, keys: Iterable[str], now: datetime) -> None:
    session.add_all(ThrottleHit(key=key, at=now) for key in keys)


def purge(session: Session, older_than: datetime) -> int:
    return session.execute(delete(ThrottleHit).where(ThrottleHit.at < older_than)).rowcount or 0
