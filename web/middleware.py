"""Plain ASGI middleware: the request's language, security headers and a body size limit."""

from __future__ import annotations

import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from visits import i18n
from visits.problems import Code, Problem, message

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


def security_headers(path: str) -> dict[str, str]:
    """No framing, no sniffing, no referrer (manage links carry a token; staff pages tell only
    their own site), no caching of personal pages; and on pages, a policy that allows nothing
    from other origins."""
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
    return headers


class SecurityHeadersMiddleware:
    """Adds :func:`security_headers` to every response that does not set them itself.

    (A server error's page is answered outside all middleware: its handler adds them.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = security_headers(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in wanted.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(Exception):
    """Raised while reading a body sent without a length that grew past the limit."""


class BodySizeLimitMiddleware:
    """Refuse request bodies over ``MAX_BODY_BYTES``: no form or API call needs more, but for
    a prison's roster file (``MAX_UPLOAD_BYTES``, on the upload's own path)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    def limit_for(self, path: str) -> int:
        return MAX_UPLOAD_BYTES if UPLOAD_PATH.fullmatch(path) else self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            text = message(Problem(Code.BODY_TOO_LARGE))
            await PlainTextResponse(text, status_code=413)(scope, receive, send)
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
