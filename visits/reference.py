"""Booking references families read aloud and type, and the tokens that prove ownership.

A reference is 8 characters from an alphabet without look-alikes (no 0/O, 1/I), shown as
``XXXX-XXXX``: 40 random bits, unguessable and short enough for an SMS. The manage token is an
HMAC of the reference under the server's secret key: nothing secret is stored in the database,
and a repeated submission can hand back the same link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import unicodedata

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
LENGTH = 8
# The manage link an SMS carries is ``/m/`` + the reference + a signature of this length
# (:meth:`visits.sms.SmsPolicy.short_link`).
SHORT_LINK_LENGTH = 8
# What stands for a manage link's signature wherever staff read an SMS, and in the copy kept
# once it is sent: the same length, so the text counts the same segments.
LINK_MASK = "*" * SHORT_LINK_LENGTH


def new_reference() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def display(reference: str) -> str:
    return f"{reference[:4]}-{reference[4:]}"


# Unicode's dashes (Pd) and spaces (Zs), and the controls a paste may bring (Cc: tabs, ends of
# lines).
SEPARATORS = frozenset({"Pd", "Zs", "Cc"})


def parse(text: str) -> str | None:
    """The stored form of a typed reference (dashes, spaces and case ignored), if valid. Any
    dash or space counts (a phone's keyboard turns "-" into "–", a copy keeps a no-break
    space), and full-width letters and digits read as the plain ones."""
    folded = unicodedata.normalize("NFKC", text).upper()
    compact = "".join(
        ch for ch in folded if ch not in "_." and unicodedata.category(ch) not in SEPARATORS
    )
    if len(compact) != LENGTH or any(ch not in ALPHABET for ch in compact):
        return None
    return compact


def manage_token(secret_key: str, reference: str) -> str:
    digest = hmac.new(
        secret_key.encode(), f"manage-booking:{reference}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def token_matches(secret_key: str, reference: str, token: str | None) -> bool:
    if not token:
        return False
    # Bytes: compare_digest refuses non-ASCII text, and a link can carry anything.
    return hmac.compare_digest(manage_token(secret_key, reference).encode(), token.encode())


# A short manage link (the reference, then what may be its signature), and the long one's
# token, in any text: a path, a log line, a traceback.
_SHORT_LINK = re.compile(rf"(/m/[^/?#\s\"'<>]{{{LENGTH}}})[^/?#\s\"'<>]+")
_TOKEN = re.compile(r"(\btoken=)[^&#\s\"'<>]+")


def hide_links(text: str) -> str:
    """``text`` with no working manage link: a short link's signature and a long link's token
    masked (the reference stays, to tell which booking). Each opens the booking as the
    family, so what is written down for staff or operators (a log line) never carries one.
    """
    return _TOKEN.sub(rf"\g<1>{LINK_MASK}", _SHORT_LINK.sub(rf"\g<1>{LINK_MASK}", text))


class HidesLinks:
    """A log formatter mixin: every line it writes, tracebacks included, goes through
    :func:`hide_links` (a request's path or an error's text may hold a manage link)."""

    def format(self, record: logging.LogRecord) -> str:
        return hide_links(super().format(record))  # type: ignore[misc]


class LinkHidingFormatter(HidesLinks, logging.Formatter):
    """The standard formatter, hiding manage links: for ``visits worker``'s log."""
