"""The browser's memory of phones it verified: a family is not asked for a code every time.

A signed cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) lists keyed digests of the phones
verified in this browser, never the numbers themselves, each with when it was verified: each
phone is trusted for ``VISITS_VERIFIED_PHONE_DAYS`` from its own verification, however often
other phones are verified in the same (perhaps shared) browser. It proves only that someone
with this browser received a code sent to that phone recently.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "verified_phones"
MAX_PHONES = 5


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.secret_key, salt="verified-phones")


def _digest(request: Request, phone: str) -> str:
    key = request.app.state.secret_key.encode()
    return hmac.new(key, f"phone:{phone}".encode(), hashlib.sha256).hexdigest()[:24]


def _max_age(request: Request) -> int:
    return request.app.state.settings.verified_phone_days * 86_400


def _remembered(request: Request) -> list[tuple[str, int]]:
    """(digest, verified at, in seconds since the epoch) of each phone still trusted."""
    raw = request.cookies.get(COOKIE)
    max_age = _max_age(request)
    if not raw or max_age <= 0:
        return []
    try:
        entries = _serializer(request).loads(raw, max_age=max_age)
    except BadSignature:
        return []
    oldest = time.time() - max_age
    if not isinstance(entries, list):
        return []
    return [
        (entry[0], entry[1])
        for entry in entries
        if isinstance(entry, list)
        and len(entry) == 2
        and isinstance(entry[0], str)
        and isinstance(entry[1], int)
        and entry[1] >= oldest
    ]


def is_verified(request: Request, phone: str) -> bool:
    digest = _digest(request, phone)
    return any(hmac.compare_digest(digest, known) for known, _ in _remembered(request))


def remember(request: Request, response: Response, phone: str) -> None:
    if _max_age(request) <= 0:
        return
    digest = _digest(request, phone)
    others = [[d, at] for d, at in _remembered(request) if d != digest]
    entries = [[digest, int(time.time())], *others][:MAX_PHONES]
    response.set_cookie(
        COOKIE,
        _serializer(request).dumps(entries),
        max_age=_max_age(request),
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.public_base_url.startswith("https://"),
    )
