"""Failed-attempt counting, so that guessing an inmate's details or a booking is slow.

Kept in the database so the limit holds across web workers and restarts. Only failures are
recorded; a key is limited once it has ``limit`` failures within the window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from visits.base import Base, UTCDateTime


class ThrottleHit(Base):
    __tablename__ = "throttle_hit"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(160), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


def minutes_to_wait(
    session: Session, limits: Mapping[str, int], window: timedelta, now: datetime
) -> int:
    """0 if no key is at its limit, else the whole minutes until the oldest hit ages out."""
    hits: dict[str, list[datetime]] = {key: [] for key in limits}
    for key, at in session.execute(
        select(ThrottleHit.key, ThrottleHit.at).where(
            ThrottleHit.key.in_(list(limits)), ThrottleHit.at > now - window
        )
    ):
        hits[key].append(at)
    wait = timedelta(0)
    for key, limit in limits.items():
        recent = sorted(hits[key], reverse=True)
        if len(recent) >= limit:
            # The limit-th most recent failure is the one that must age out first.
            wait = max(wait, recent[limit - 1] + window - now)
    return math.ceil(wait.total_seconds() / 60) if wait else 0


def record_failure(session: Session, keys: Iterable[str], now: datetime) -> None:
    session.add_all(ThrottleHit(key=key, at=now) for key in keys)


def purge(session: Session, older_than: datetime) -> int:
    return session.execute(delete(ThrottleHit).where(ThrottleHit.at < older_than)).rowcount or 0
