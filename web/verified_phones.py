"""The browser's memory of phones it verified: a family is not asked for a code every time.

A signed cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) lists keyed digests of the phones
verified in this browser, never the numbers themselves, and expires after
``VISITS_VERIFIED_PHONE_DAYS``. It proves only that someone with this browser received a code
sent to that phone recently.
"""

from __future__ import annotations

import hashlib
import hmac

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


def _remembered(request: Request) -> list[str]:
    raw = request.cookies.get(COOKIE)
    if not raw or _max_age(request) <= 0:
        return []
    try:
        digests = _serializer(request).loads(raw, max_age=_max_age(request))
    except BadSignature:
        return []
    return [d for d in digests if isinstance(d, str)] if isinstance(digests, list) else []


def is_verified(request: Request, phone: str) -> bool:
    digest = _digest(request, phone)
    return any(hmac.compare_digest(digest, known) for known in _remembered(request))


def remember(request: Request, response: Response, phone: str) -> None:
    if _max_age(request) <= 0:
        return
    digest = _digest(request, phone)
    digests = [digest, *(d for d in _remembered(request) if d != digest)][:MAX_PHONES]
    response.set_cookie(
        COOKIE,
        _serializer(request).dumps(digests),
        max_age=_max_age(request),
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.public_base_url.startswith("https://"),
    )
