"""The FastAPI application: ``create_app()`` is what uvicorn serves (``visits serve``)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from visits.base import utcnow
from visits.db import Database
from visits.i18n import SUPPORTED_LOCALES, use_locale
from visits.problems import Code, Problem, as_dicts
from visits.reference import hide_links
from visits.settings import Settings, get_settings
from visits.sms import SmsPolicy
from visits.staff import SignInPolicy
from visits.throttle import ThrottlePolicy
from web import (
    accounts,
    admin,
    api,
    broadcasts,
    closures,
    family,
    gate,
    health,
    job_health,
    reports,
    roster,
    schedule,
    staff,
    staff_bookings,
    suspensions,
    tracing,
    twilio_hooks,
)
from web.availability import AvailabilityCache
from web.job_health import LateJobs
from web.middleware import (
    BodySizeLimitMiddleware,
    BodyTooLarge,
    LocaleMiddleware,
    SecurityHeadersMiddleware,
    body_limit,
    request_locale,
    security_headers,
    too_large,
)
from web.staff import SignInRequired
from web.templating import make_templates, sent_from

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
SESSION_MAX_AGE = timedelta(hours=8)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error_response(request: Request, status: int, problem: Problem) -> Response:
    """JSON for the API, a friendly page for people; never a stack trace. Under ``/staff`` the
    page is in the staff layout, in staff words, and leads back to the page it came from
    (a form refused as expired is sent again from there) and to the staff home, never to the
    family's start."""
    with use_locale(request_locale(request)):
        if _is_api(request):
            return JSONResponse({"errors": as_dicts([problem])}, status_code=status)
        staff_page = request.url.path.startswith("/staff")
        back = sent_from(request) if staff_page else None
        templates = request.app.state.templates
        return templates.TemplateResponse(
            request,
            "error.html",
            {"problem": problem, "staff": staff_page, "back": back, "locales": SUPPORTED_LOCALES},
            status_code=status,
        )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if isinstance(exc.detail, Problem):  # a handler said precisely what is missing
        problem = exc.detail
    elif status == 405 and _is_api(request):  # a page sent wrong is just not there
        problem = Problem(Code.METHOD_NOT_ALLOWED)
    elif status == 400 and _is_api(request):
        # FastAPI's answer to a body it could not decode (not UTF-8, nested or a number too
        # long to read): for a program, a body that is not JSON is the documented 422.
        detail = "the body is not JSON that can be read (UTF-8, not nested too deep)"
        problem, status = Problem(Code.INVALID_REQUEST, None, {"detail": detail}), 422
    elif status in (404, 405):
        problem = Problem(Code.NOT_FOUND)
    else:
        problem = Problem(Code.INVALID_REQUEST, None, {"detail": str(exc.detail)})
    response = _error_response(request, status, problem)
    # WWW-Authenticate (a browser asks for the password only when told), Allow on 405.
    response.headers.update(exc.headers or {})
    return response


async def _validation_error(request: Request, exc: Exception) -> Response:
    """Request bodies the API schema refuses, in the same ``{code, field, message}`` shape.
    A page's address that does not fit its route (``/visitors/abc/arrived``) is a page that
    does not exist, and any other refused part of a page's request a bad request, both as a
    page: people never see the API's JSON."""
    assert isinstance(exc, RequestValidationError)
    if not _is_api(request):
        in_path = any(error["loc"][:1] == ("path",) for error in exc.errors())
        if in_path:
            return _error_response(request, 404, Problem(Code.NOT_FOUND))
        return _error_response(request, 400, Problem(Code.INVALID_REQUEST))
    problems = []
    for error in exc.errors():
        location = [str(part) for part in error["loc"] if part not in ("body", "query", "path")]
        if error["type"] == "json_invalid":  # its location is a character, not a field
            location = []
        problems.append(
            Problem(Code.INVALID_REQUEST, ".".join(location) or None, {"detail": error["msg"]})
        )
    if _body_not_sent_as_json(request, exc):
        detail = "the body must be JSON, sent with Content-Type: application/json"
        problems = [Problem(Code.INVALID_REQUEST, None, {"detail": detail})]
    with use_locale(request_locale(request)):
        return JSONResponse({"errors": as_dicts(problems)}, status_code=422)


def _body_not_sent_as_json(request: Request, exc: RequestValidationError) -> bool:
    """A body FastAPI left unread because its type was not JSON (curl's ``-d`` without a
    ``Content-Type``, a browser's ``fetch`` of a string as ``text/plain``): pydantic would only
    say the input is no "valid dictionary", which leads a program's developer nowhere."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        return False
    return any(error["loc"] == ("body",) for error in exc.errors())


async def _too_large(request: Request, exc: Exception) -> Response:
    return too_large(request, body_limit(request.url.path))


async def _server_error(request: Request, exc: Exception) -> Response:
    # The path of a short manage link carries its signature: the log line must not open it.
    path = hide_links(request.url.path)
    log.exception("unhandled error on %s %s", request.method, path, exc_info=exc)
    response = _error_response(request, 500, Problem(Code.SERVER_ERROR))
    https = request.app.state.settings.is_public_site
    response.headers.update(security_headers(request.url.path, https=https))  # outside middleware
    return response


# Collections of the youngest generation after this many new objects (CPython's default is
# 700): a page of a few thousand rows no longer runs dozens of collections.
GC_YOUNG_THRESHOLD = 20_000


_gc_tuned = False


def _tune_garbage_collector() -> None:
    """Once per process, everything loaded at start-up (modules, the app, the catalogs) is
    moved out of the collector's sight, and collections run less often. Without this, full
    collections over those objects landed in the middle of requests: the guard's
    2,000-visitor list took 370 ms at p99 instead of 140 ms (``make bench``)."""
    global _gc_tuned
    if _gc_tuned:
        return
    gc.collect()  # what is garbage now would never be collected once frozen
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 100)
    _gc_tuned = True


def create_app(
    settings: Settings | None = None,
    db: Database | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    settings = settings or get_settings()
    db = db or Database.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # No more request threads than database connections: a thread that waits for a
        # connection must never keep a finished request from giving its connection back.
        anyio.to_thread.current_default_thread_limiter().total_tokens = db.max_connections
        _tune_garbage_collector()
        stop = None
        if settings.jobs_in_process:
            from apscheduler.schedulers.background import BackgroundScheduler

            from visits.jobs import make_dispatcher, schedule_jobs, stop_jobs

            dispatcher = make_dispatcher(db, settings)
            scheduler = schedule_jobs(BackgroundScheduler(timezone="UTC"), db, settings, dispatcher)
            scheduler.start()
            stop = partial(stop_jobs, scheduler, dispatcher)
        try:
            yield
        finally:
            if stop is not None:
                # Hand back the claimed SMS not yet sent, as the worker does on SIGTERM.
                await anyio.to_thread.run_sync(stop)
            db.dispose()

    app = FastAPI(
        title="Visitas familiares",
        summary="Book and manage family visits to prisons.",
        version="1",
        lifespan=lifespan,
        # The browsable page loads Swagger UI from a CDN: script from another origin on ours,
        # so a site families use serves the description only (openapi_url).
        docs_url=None if settings.is_public_site else "/api/docs",
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.settings = settings
    app.state.db = db
    app.state.clock = clock
    app.state.secret_key = settings.signing_key()
    app.state.templates = make_templates()
    app.state.sms = SmsPolicy.from_settings(settings)
    app.state.availability = AvailabilityCache(settings.availability_cache_seconds)
    app.state.late_jobs = LateJobs()
    app.state.throttle_policy = ThrottlePolicy(
        per_pair=settings.lookup_failures_per_pair,
        per_client=settings.lookup_failures_per_client,
        per_inmate=settings.lookup_failures_per_inmate,
        window=timedelta(minutes=settings.lookup_window_minutes),
    )

    app.state.sign_in_policy = SignInPolicy(
        failures_per_pair=settings.staff_sign_in_failures,
        failures_per_user=settings.staff_sign_in_failures_per_user,
        failures_per_client=settings.staff_sign_in_failures_per_client,
        window=timedelta(minutes=settings.staff_sign_in_window_minutes),
        idle=timedelta(minutes=settings.staff_idle_minutes),
        lifetime=timedelta(hours=settings.staff_session_hours),
    )

    app.add_exception_handler(SignInRequired, staff.sign_in_redirect)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(BodyTooLarge, _too_large)
    app.add_exception_handler(Exception, _server_error)

    # Outermost last: headers and language wrap everything, including error pages.
    app.add_middleware(
        SessionMiddleware,
        secret_key=app.state.secret_key,
        session_cookie="visit_session",
        max_age=int(SESSION_MAX_AGE.total_seconds()),
        same_site="lax",
        https_only=settings.public_base_url.startswith("https://"),
    )
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_middleware(LocaleMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, https=settings.is_public_site)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """Liveness for load balancers and tests: answers without touching the database."""
        return {"status": "ok"}

    app.include_router(job_health.router)  # GET /healthz/jobs: the background jobs run

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(api.router)
    app.include_router(family.router)
    app.include_router(twilio_hooks.router)
    app.include_router(staff.router)
    app.include_router(gate.router)
    app.include_router(staff_bookings.router)
    app.include_router(reports.router)
    app.include_router(admin.router)
    app.include_router(closures.router)
    app.include_router(suspensions.router)
    app.include_router(roster.router)
    app.include_router(accounts.router)
    app.include_router(broadcasts.router)
    app.include_router(schedule.router)
    app.include_router(health.router)
    app.include_router(tracing.router)
    return app
