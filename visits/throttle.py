"""Failed-attempt counting, so that guessing an inmate's details or a booking is slow.

Kept in the database so the limit holds across web workers and restarts. Only failures are
recorded; a key is limited once it has ``limit`` failures within the window. Checking and
recording happen in the caller's write transaction; on PostgreSQL the keys are also locked
(advisory locks, in key order), so parallel guesses cannot all slip past one check.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, bindparam, delete, select, text
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

    A client is a :func:`network_key`. ``per_pair`` bounds one client guessing one person's
    details. ``per_client`` bounds one client overall; it is generous because a whole
    neighbourhood may share one mobile-network address.

    ``per_inmate`` bounds many clients guessing one person, and applies to every client, new
    ones too: once that many failures from anywhere are in the window, the person's
    identification is paused for everyone until they age out (at most the window). Exempting
    clients that had not failed yet (as before) let whoever holds many addresses guess
    without end, and that person's whereabouts is what the service promises to keep. The
    denial of service this opens (a stranger failing on purpose, from ``per_inmate /
    per_pair`` networks, to keep a family out) is bounded, not locked: during the pause a
    client that gives *both* the surname and the birth date, both right, still passes. A
    family usually knows both; a guesser who knows one must also guess the other, and every
    such try is still counted. A family that knows only one waits the pause out.
    """

    per_pair: int = 5
    per_client: int = 20
    per_inmate: int = 30
    window: timedelta = timedelta(minutes=15)


def network_key(address: str) -> str:
    """The client a request counts as, for throttling and caps: an IPv4 address as it is, an
    IPv6 address by its /64 network (``2001:db8:1:2::/64``), an IPv4-mapped IPv6 address as
    its IPv4 address; anything else (no address, a test client's name) as given.

    Decision: a /64 is the smallest network an IPv6 subscriber is given (one home line, one
    mobile, the cheapest server), and it holds 2**64 addresses, so counting exact IPv6
    addresses let one machine take a fresh address per guess. Counting /64s treats one
    subscriber as one client, as an IPv4 address is; a provider that hands one subscriber a
    /56 or a /48 still gives it 256 or 65536 clients, which the per-inmate ceiling bounds.
    Customers of one provider never share a /64, so neighbours are not lumped together."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


_LOCK_KEYS = text(
    "SELECT pg_advisory_xact_lock(h) FROM "
    "(SELECT DISTINCT hashtext(k) AS h FROM unnest(CAST(:keys AS text[])) AS k ORDER BY h) AS s"
)


def lock_keys(session: Session, keys: Iterable[str]) -> None:
    """On PostgreSQL, lock these keys until commit (advisory locks, taken in one order by one
    statement); SQLite's write transaction already excludes every other writer."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK_KEYS, {"keys": sorted(set(keys))})


# Built once, not on every call: every family request asks it.
_HITS_SINCE = select(ThrottleHit.key, ThrottleHit.at).where(
    ThrottleHit.key.in_(bindparam("keys", expanding=True)), ThrottleHit.at > bindparam("since")
)


def recent(
    session: Session, keys: Iterable[str], window: timedelta, now: datetime, *, lock: bool = True
) -> dict[str, list[datetime]]:
    """Each key's failures within the window, newest first. With ``lock`` (PostgreSQL), the
    keys stay locked until commit, taken in one order by one statement."""
    keys = sorted(set(keys))
    if lock:
        lock_keys(session, keys)
    hits: dict[str, list[datetime]] = {key: [] for key in keys}
    for key, at in session.execute(_HITS_SINCE, {"keys": keys, "since": now - window}):
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
