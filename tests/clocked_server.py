"""``visits serve`` on a clock of the test's choosing, for browser tests that need a time of
day: the real clock moved by a fixed offset, so that a module's seeded visits are still ahead
(or already begun) whenever the suite runs, late in Lima's evening included.

Run as ``python -m tests.clocked_server OPTIONS`` by :func:`tests.server.running_server`
only, the offset in ``TESTS_CLOCK_OFFSET`` (seconds). It serves what ``visits serve`` serves
(:func:`web.serve.main`, :func:`web.app.create_app`) with that clock in ``app.state.clock``,
which every request reads for its ``now``: the production code has no test knob.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from visits.base import utcnow
from visits.settings import get_settings
from web import app, serve

OFFSET = "TESTS_CLOCK_OFFSET"
DEMO_TZ = ZoneInfo("America/Lima")  # both demo prisons'
DEMO_MORNING = time(10, 0)


@dataclass(frozen=True)
class ShiftedClock:
    """The real clock plus ``offset``: time still passes, from another moment."""

    offset: timedelta

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    @classmethod
    def reading(cls, local: time, tz: ZoneInfo) -> ShiftedClock:
        """The clock that reads ``local`` now at a place in ``tz``, on the date it has now."""
        real = utcnow()
        wanted = datetime.combine(real.astimezone(tz).date(), local, tzinfo=tz)
        return cls(wanted - real)


def demo_morning() -> ShiftedClock:
    """The clock browser tests run their servers on: 10:00 at the demo prisons, on today's
    date there. For hours, no visit time of the demo's opens or closes to bookings (they start
    at 09:00, 11:30 and 14:00 and close 12 or 24 hours before), and no day ends."""
    return ShiftedClock.reading(DEMO_MORNING, DEMO_TZ)


def create_app() -> FastAPI:
    """The app of ``visits serve`` on the shifted clock. Background jobs read the real clock,
    so a clocked server runs none."""
    settings = get_settings()
    if settings.jobs_in_process:
        raise SystemExit("a clocked server runs no jobs: set VISITS_RUN_JOBS_IN_PROCESS=false")
    clock = ShiftedClock(timedelta(seconds=float(os.environ[OFFSET])))
    return app.create_app(settings, clock=clock)


if __name__ == "__main__":
    serve.main(sys.argv[1], app="tests.clocked_server:create_app")
