"""Staff sign-in and the one access check every staff route goes through.

Every route under ``/staff`` (except the sign-in page itself) depends on :func:`staff_access`
with the roles it admits, which on the server, before the handler runs: finds the signed-in
session (else a page asks to sign in, and anything else answers 401); refuses other roles
(403); refuses a prison outside the account's scope when the path names one (403); and for
every request that changes something, checks the session's CSRF token in the form and that
the browser says the request came from this site (``Origin``, ``Sec-Fetch-Site``) (403, and
nothing changes). A test walks every route of the app and fails on a staff route without it.

The session cookie holds a random token (the database keeps its hash): HttpOnly, SameSite
strict, limited to ``/staff``, Secure when the service is served over HTTPS.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from visits import closing, staff
from visits.prison import Prison, prison_by_code
from visits.problems import Code, Problem, Rejected
from visits.staff import SignInPolicy, StaffRole, StaffSession, StaffUser
from web.deps import ClientKey, Now, ReadSession, WriteSession
from web.family import render
from web.forms import (
    CSRF_FIELD,
    KEPT_PREFIX,
    MAX_FORM_FIELDS,
    FormValues,
    csrf_ok,
    kept_staff_values,
)
from web.templating import sent_from

STAFF_COOKIE = "staff_session"
# The browsers that have signed in to an account before (see visits.staff.remember_device).
DEVICE_COOKIE = "staff_device"
router = APIRouter(prefix="/staff", include_in_schema=False)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALL_ROLES = tuple(StaffRole)
# What a form sent after its session ended had typed in it, from sign-in to that form's page
# (in the signed session cookie): {"path": the form's page, "values": {name: value}}.
KEPT_FORM = "kept_staff_form"


class SignInRequired(Exception):
    """No live staff session: a page sends the browser to sign in."""


@dataclass(frozen=True)
class Staff:
    """Who is asking, as the access check found them."""

    user: StaffUser
    session: StaffSession
    prison: Prison | None  # the prison the path names, already checked against the scope

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token


def sign_in_policy(request: Request) -> SignInPolicy:
    return request.app.state.sign_in_policy


@dataclass(frozen=True)
class _Found:
    session: StaffSession | None
    prison: Prison | None
    prison_named: bool  # the path names a prison (known or not)


def _find(request: Request, now: Now) -> _Found:
    """The live session and the path's prison, read in a worker thread (a plain ``def``
    dependency): the database is never waited on from the event loop."""
    db = request.app.state.db
    code = request.path_params.get("prison")
    with db.read_session() as session:
        found = staff.current_session(
            session, request.cookies.get(STAFF_COOKIE), now, sign_in_policy(request)
        )
        prison = prison_by_code(session, code) if found is not None and code else None
    if found is not None and staff.needs_touch(found, now):
        with db.writing() as session:
            staff.touch(session, found.id, now)
    return _Found(found, prison, code is not None)


def same_site(request: Request) -> bool:
    """Whether the browser says this request comes from our own pages. A browser that sends
    neither header, or an ``Origin`` of ``null`` (what a page with no referrer sends), leaves
    the CSRF token as the only check."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    ours = {_origin(str(request.base_url)), _origin(request.app.state.settings.public_base_url)}
    return origin in ours


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def staff_access(*roles: StaffRole) -> Callable[..., Any]:
    """The dependency of a staff route that admits ``roles`` (see the module's docstring)."""

    async def check(request: Request, found: Annotated[_Found, Depends(_find)]) -> Staff:
        live = found.session
        if live is None:
            if request.method not in SAFE_METHODS:
                # Read here, where the form is: the sign-in page carries what was typed.
                form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
                sent = {k: v for k, v in form.items() if isinstance(v, str)}
                request.state.kept_form = kept_staff_values(sent)
            raise SignInRequired()
        if live.user.role not in roles:
            raise HTTPException(403, Problem(Code.FORBIDDEN))
        if request.method not in SAFE_METHODS:
            # One file at most: the roster upload (its size is limited by its path).
            form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
            given = str(form.get(CSRF_FIELD, ""))
            token_ok = hmac.compare_digest(live.csrf_token.encode(), given.encode())
            if not (token_ok and same_site(request)):
                raise HTTPException(403, Problem(Code.FORM_EXPIRED))
        if found.prison_named:
            if found.prison is None:
                raise HTTPException(404)
            if not live.user.covers(found.prison.id):
                raise HTTPException(403, Problem(Code.FORBIDDEN))
        return Staff(live.user, live, found.prison)

    check.roles = roles  # type: ignore[attr-defined]  # read by the route-enumeration test
    return check


def access(*roles: StaffRole) -> Any:
    return Annotated[Staff, Depends(staff_access(*roles))]


AnyStaff = access(*ALL_ROLES)


def form_pages_on_get(
    router: APIRouter, roles: tuple[StaffRole, ...], pages: dict[str, str]
) -> None:
    """Give each of the router's POST-only ``pages`` (path: its form's path) a GET, for
    ``roles``, that sends the browser to its form's page. A preview, or a form brought back
    from one, answers only the form posted to it, yet a browser may open its address again:
    signing in again after a form on it was sent too late returns to it (its Referer), and
    so do a reload or the history. Register them before a route whose path could take them
    for a row's id."""
    for path, form_path in pages.items():
        router.add_api_route(
            path,
            _to_form_page(router.prefix + form_path),
            methods=["GET"],
            dependencies=[Depends(staff_access(*roles))],
        )


def _to_form_page(form_path: str) -> Callable[[Request], Response]:
    def to_form_page(request: Request) -> Response:
        return RedirectResponse(form_path.format(**request.path_params), status_code=303)

    return to_form_page


def sign_in_redirect(request: Request, exc: Exception) -> Response:
    """A page asked for without a live session goes to sign-in and back. A form sent after the
    session ended (a guard's tablet idle at the gate) did nothing: the sign-in page says so,
    in staff words, and leads back to the page the form was on, to do it again. What was
    typed in the form goes with it, in hidden fields of the sign-in form (see :func:`refill`)."""
    if request.method in SAFE_METHODS:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/staff/login?next={quote(target, safe='')}", status_code=303)
    return render(
        request,
        "staff_login.html",
        status=401,
        problems=[Problem(Code.SESSION_ENDED)],
        values={"next": _safe_next(sent_from(request) or "/staff")},
        unsaved=True,
        kept=getattr(request.state, "kept_form", {}),
    )


def _safe_next(raw: str) -> str:
    """Only a path of this service's staff pages: never another site."""
    return raw if raw.startswith("/staff") and not raw.startswith("//") else "/staff"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/staff") -> HTMLResponse:
    return render(request, "staff_login.html", values={"next": _safe_next(next)})


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, values: FormValues, now: Now, client: ClientKey) -> Response:
    target = _safe_next(values.get("next", "/staff"))
    shown = {"username": values.get("username", ""), "next": target}
    kept = kept_staff_values(values, KEPT_PREFIX)
    if not (csrf_ok(request, values) and same_site(request)):
        problems = [Problem(Code.FORM_EXPIRED)]
        return render(request, "staff_login.html", 403, values=shown, problems=problems, kept=kept)
    db = request.app.state.db
    username = values.get("username", "")
    secret = request.app.state.secret_key
    device_cookie = request.cookies.get(DEVICE_COOKIE)
    try:
        signed = staff.sign_in(
            db,
            username=username,
            password=values.get("password", ""),
            client=client,
            now=now,
            policy=sign_in_policy(request),
            device=staff.remembered_device(device_cookie, secret, username, now.date()),
        )
    except Rejected as rejected:
        status = 429 if Code.SIGN_IN_LOCKED in rejected.codes else 401
        problems = list(rejected.problems)
        page = {"values": shown, "problems": problems, "kept": kept}
        return render(request, "staff_login.html", status, **page)
    # A shared tablet: whoever was signed in on this browser before is signed out.
    if (earlier := request.cookies.get(STAFF_COOKIE)) is not None:
        with db.writing() as session:
            staff.end_session(session, earlier, now, client)
    request.session.pop(KEPT_FORM, None)
    if kept:
        request.session[KEPT_FORM] = {"path": urlsplit(target).path, "values": kept}
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, signed.token)
    response.set_cookie(
        DEVICE_COOKIE,
        staff.remember_device(
            device_cookie, secret, staff.normalise_username(username)[:64], now.date()
        ),
        max_age=staff.DEVICE_DAYS * 24 * 3600,
        path="/staff/login",
        httponly=True,
        samesite="strict",
        secure=_https(request),
    )
    return response


def refill(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    """The fields ``names`` of this page's form as typed when it was sent after the session
    ended, once signed in again (then forgotten), else none: the form comes back filled in,
    saving nothing until it is sent again."""
    kept = request.session.get(KEPT_FORM)
    if not kept or kept.get("path") != request.url.path:
        return {}
    del request.session[KEPT_FORM]
    return {name: str(kept["values"][name]) for name in names if name in kept["values"]}


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        STAFF_COOKIE,
        token,
        path="/staff",
        httponly=True,
        samesite="strict",
        secure=_https(request),
    )


def _https(request: Request) -> bool:
    return request.app.state.settings.public_base_url.startswith("https://")


@router.post("/logout")
def logout(
    request: Request, who: AnyStaff, session: WriteSession, now: Now, client: ClientKey
) -> Response:
    staff.sign_out(session, session.merge(who.session, load=False), now, client)
    session.commit()
    response = RedirectResponse("/staff/login", status_code=303)
    response.delete_cookie(STAFF_COOKIE, path="/staff")
    return response


@router.get("", response_class=HTMLResponse)
def home(request: Request, who: AnyStaff, session: ReadSession, now: Now) -> HTMLResponse:
    """The staff member's prisons and pages. An administrator is told here, for each prison,
    of bookings still on in times nobody can book (closed, or removed from the schedule; see
    :func:`visits.closing.left_on`), in one query, until they are cancelled."""
    prisons = (
        session.scalars(select(Prison).order_by(Prison.name)).all()
        if who.user.national
        else who.user.prisons
    )
    left = closing.left_on(session, prisons, now) if who.user.role == StaffRole.ADMIN else {}
    return render(request, "staff_home.html", who=who, prisons=prisons, left_on=left)
