"""Availability as families see it, shared for a few seconds between them.

When booking opens, thousands of families reload the same prison's days at once. Computing
and rendering them once per prison every few seconds keeps the database and the CPU for
bookings. A page may show a seat count up to ``ttl`` seconds old; it never decides anything (the
booking checks afresh under its locks), and a booking, cancellation or move made through this
process clears its prison's entries at once, so a family sees its own change immediately.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy.orm import Session

from visits.i18n import current_locale
from visits.prison import Prison
from visits.rules import last_bookable_day
from visits.schedule import DayView, availability

T = TypeVar("T")
MAX_ENTRIES = 512
MAX_PAGES = 2_000  # a slots page is ~8 KB: at most ~16 MB, whatever the rush


class AvailabilityCache:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[tuple[Any, ...], tuple[float, Any]] = {}
        # Whole pages of one browser (its session's token is in the key), with their prison.
        self._pages: dict[Hashable, tuple[float, int, bytes]] = {}
        self._lock = threading.Lock()

    def _get(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        if self.ttl <= 0:
            return compute()
        now = self.clock()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = compute()  # outside the lock: two threads may both compute; both are right
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            self._entries[key] = (now + self.ttl, value)
        return value

    def days(
        self, session: Session, prison: Prison, now: datetime, first: Any = None, last: Any = None
    ) -> list[DayView]:
        """The prison's days from ``first`` to ``last`` (default: the booking window)."""
        today = prison.local_date(now)
        first = first or today
        last = last or last_bookable_day(today, prison.booking_opens_days)
        return self._get(
            ("days", prison.id, first, last),
            lambda: availability(session, prison, now, first, last),
        )

    def rendered(self, prison: Prison, name: Hashable, render: Callable[[], str]) -> str:
        """A piece of page about this prison's availability, in the current language."""
        return self._get(("html", prison.id, name, current_locale()), render)

    def page(self, key: Hashable) -> bytes | None:
        """A page this browser was shown less than ``ttl`` ago, if nothing changed since.

        During a rush each family reloads its own slots page again and again: answering the
        reload from here costs no database work and no rendering."""
        with self._lock:
            hit = self._pages.get(key)
        return hit[2] if hit is not None and hit[0] > self.clock() else None

    def keep_page(self, key: Hashable, prison_id: int, body: bytes) -> None:
        if self.ttl <= 0:
            return
        now = self.clock()
        with self._lock:
            if len(self._pages) >= MAX_PAGES:
                self._pages = {k: v for k, v in self._pages.items() if v[0] > now}
            if len(self._pages) < MAX_PAGES:
                self._pages[key] = (now + self.ttl, prison_id, body)

    def forget(self, prison_id: int) -> None:
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if k[1] != prison_id}
            self._pages = {k: v for k, v in self._pages.items() if v[1] != prison_id}


def commit_seat_change(request: Request, session: Session, prison_id: int) -> None:
    """Commit a booking, cancellation or move, and let this process's families see it now."""
    session.commit()
    cache: AvailabilityCache = request.app.state.availability
    cache.forget(prison_id)
