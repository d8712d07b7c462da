"""Plain ASGI middleware: the request's language, security headers and a body size limit."""

from __future__ import annotations

import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from visits import i18n
from visits.problems import Code, Problem, as_dicts
from web.templating import sent_from

LANG_COOKIE = "lang"
MAX_BODY_BYTES = 64 * 1024
# A roster of the largest prison (about 10,000 people) is under 1 MB.
MAX_UPLOAD_BYTES = 4 * 1024 * 1024
UPLOAD_PATH = re.compile(r"/staff/p/[^/]+/roster")

_PAGE_POLICY = (
    "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def request_locale(request: Request) -> str:
    """Pages: ``?lang=``, then the language cookie, then Spanish. The API also honours
    ``Accept-Language``, which a program sets on purpose (a phone's may not match its owner)."""
    chosen = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    if not chosen and request.url.path.startswith("/api/"):
        chosen = i18n.preferred_locale(request.headers.get("accept-language", ""))
    return i18n.negotiate(chosen)


LANG_COOKIE_MAX_AGE = 365 * 24 * 3600


def language_cookie(locale: str) -> str:
    """The ``Set-Cookie`` value that remembers a family's language for a year."""
    return f"{LANG_COOKIE}={locale}; HttpOnly; Max-Age={LANG_COOKIE_MAX_AGE}; Path=/; SameSite=lax"


class LocaleMiddleware:
    """Runs the request in its language. A page asked for with ``?lang=`` (a link shared in
    English, say) also remembers that language, as the language switch does: the next form
    sent comes back in it, and a booking made then is told by SMS in it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        locale = request_locale(request)
        named = i18n.supported_locale(request.query_params.get("lang"))
        remember = (
            named is not None
            and request.cookies.get(LANG_COOKIE) != named
            and not request.url.path.startswith("/api/")
        )

        async def send_remembering(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("set-cookie", language_cookie(locale))
            await send(message)

        with i18n.use_locale(locale):
            await self.app(scope, receive, send_remembering if remember else send)


# A year, the site's subdomains too: what browsers' preload lists ask for.
HSTS = "max-age=31536000; includeSubDomains"


def security_headers(path: str, *, https: bool = False) -> dict[str, str]:
    """No framing, no sniffing, no referrer (manage links carry a token; staff pages tell only
    their own site), no caching of personal pages; and on pages, a policy that allows nothing
    from other origins. A site served over https also tells browsers never to try it over
    plain http: on a café's Wi-Fi a first visit typed without "https" could otherwise be
    answered by someone else, and read the manage links that follow."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        # Staff pages carry no tokens in their addresses: their forms may say where they come
        # from (an Origin header), which the staff CSRF check reads.
        "Referrer-Policy": "same-origin" if path.startswith("/staff") else "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "public, max-age=86400" if path.startswith("/static/") else "no-store",
    }
    if path != "/api/docs":
        headers["Content-Security-Policy"] = _PAGE_POLICY
    if https:
        headers["Strict-Transport-Security"] = HSTS
    return headers


class SecurityHeadersMiddleware:
    """Adds :func:`security_headers` to every response that does not set them itself.

    (A server error's page is answered outside all middleware: its handler adds them.)
    """

    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = security_headers(scope["path"], https=self.https)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in wanted.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(HTTPException):
    """Raised while reading a body sent without a length that grew past the limit. An HTTP
    error, so that FastAPI reading a JSON body passes it on (any other error there becomes
    its own 400) to the handler that answers :func:`too_large`."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


def body_limit(path: str, default: int = MAX_BODY_BYTES) -> int:
    """The most a request to ``path`` may send."""
    return MAX_UPLOAD_BYTES if UPLOAD_PATH.fullmatch(path) else default


def readable_size(size: int) -> str:
    """``4 MB``, ``64 KB``: a limit as people read it (in units of 1,024)."""
    if size >= 1024 * 1024 and size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MB"
    return f"{-(-size // 1024)} KB"


def too_large(request: Request, limit: int) -> Response:
    """The answer to a body over ``limit``: the API's JSON error; for a page, a page in the
    site's layout (the staff one under ``/staff``) in the visitor's language that says the
    limit and links back to the page the form was sent from. Nothing of the body is read and
    nothing is asked of the database (it is answered before the session is even read)."""
    path = request.url.path
    with i18n.use_locale(request_locale(request)):
        if path.startswith("/api/"):
            detail = f"a request body may have at most {limit} bytes"
            problem = Problem(Code.BODY_TOO_LARGE, None, {"detail": detail})
            return JSONResponse({"errors": as_dicts([problem])}, status_code=413)
        back = sent_from(request) or request.url.path
        return request.app.state.templates.TemplateResponse(
            request,
            "too_large.html",
            {
                "size": readable_size(limit),
                "back": back,
                "lang_next": back,
                "staff": path.startswith("/staff"),
                "locales": i18n.SUPPORTED_LOCALES,
            },
            status_code=413,
        )


class BodySizeLimitMiddleware:
    """Refuse request bodies over ``MAX_BODY_BYTES``: no form or API call needs more, but for
    a prison's roster file (``MAX_UPLOAD_BYTES``, on the upload's own path). A body that says
    its length is refused before it is read (see :func:`too_large`); one that does not is
    counted as it comes, and refused (:class:`BodyTooLarge`) once past the limit."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    def limit_for(self, path: str) -> int:
        return body_limit(path, self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await too_large(Request(scope), limit)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge()
            return message

        await self.app(scope, counting_receive, send)
