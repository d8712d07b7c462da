"""Whether the background jobs run, for monitoring and for administrators
(:mod:`visits.job_health` decides what is late).

``GET /healthz/jobs`` answers 200 when every job has succeeded recently and 503 when any is
late or never ran, so that a load balancer's or a monitor's check can alert on it (``/healthz``
stays the trivial liveness check). It needs no sign-in, as ``/healthz``: a monitor has no
account. It says only which jobs exist, when each last succeeded or failed and the class name
of its last error: no personal data, no counts, no setting.

Administrators' staff pages show a banner while a job is late; the answer is kept a few
seconds per process, so a page costs at most one small query per ``BANNER_TTL``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from visits import job_health
from visits.staff import StaffRole
from web.deps import Now, ReadSession

router = APIRouter(include_in_schema=False)
BANNER_TTL = 10.0  # seconds


def _moment(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


@router.get("/healthz/jobs")
def jobs(request: Request, session: ReadSession, now: Now) -> JSONResponse:
    """Each job's last success and whether it is late; 503 while any is."""
    expected = job_health.schedule(request.app.state.settings)
    states = job_health.states(session, expected, now)
    late = [state.name for state in states if state.late]
    body = {
        "status": "late" if late else "ok",
        "late": late,
        "jobs": [
            {
                "name": state.name,
                "every_seconds": state.every.total_seconds(),
                "late_after_seconds": job_health.late_after(state.every).total_seconds(),
                "last_success": _moment(state.last_success_at),
                "last_failure": _moment(state.last_failure_at),
                "last_error": state.last_error,
                "late": state.late,
            }
            for state in states
        ],
    }
    return JSONResponse(body, status_code=503 if late else 200)


class LateJobs:
    """Whether any job is late, asked of the database at most once per ``ttl`` seconds."""

    def __init__(self, ttl: float = BANNER_TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._until = float("-inf")
        self._late = False
        self._lock = threading.Lock()  # one thread asks; the others wait for its answer

    def any(self, request: Request) -> bool:
        with self._lock:
            if self.clock() < self._until:
                return self._late
            state = request.app.state
            with state.db.read_session() as session:
                names = job_health.late_jobs(
                    session, job_health.schedule(state.settings), state.clock()
                )
            self._late = bool(names)
            self._until = self.clock() + self.ttl
            return self._late


def background_late(request: Request, who: Any) -> bool:
    """For the staff layout: whether to tell the signed-in reader (``who``, a
    :class:`web.staff.Staff`) that the background jobs are late; administrators only."""
    if who.user.role != StaffRole.ADMIN:
        return False
    late_jobs: LateJobs = request.app.state.late_jobs
    return late_jobs.any(request)
