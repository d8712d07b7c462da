"""Staff accounts for the web tests, and signing in through the real sign-in page.

Accounts are stored with one argon2id hash made once per run: hashing is deliberately slow,
and ``create_staff`` (which hashes every time) has tests of its own.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cache

from argon2 import PasswordHasher
from sqlalchemy import select

from tests.factories import NOW
from visits.prison import Prison
from visits.staff import StaffRole, StaffSession, StaffUser

STAFF_PASSWORD = "una clave larga de prueba"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@cache
def _hash() -> str:
    return PasswordHasher().hash(STAFF_PASSWORD)


def make_staff(
    db, username: str, role: StaffRole, prisons: tuple[str, ...] = ("QUENCORO",), **extra
) -> None:
    with db.writing() as s:
        covered = s.scalars(select(Prison).where(Prison.code.in_(prisons))).all()
        s.add(
            StaffUser(
                username=username,
                full_name=extra.pop("full_name", username.title()),
                role=role,
                password_hash=_hash(),
                active=True,
                created_at=NOW,
                updated_at=NOW,
                prisons=list(covered),
                **extra,
            )
        )


def form_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _TOKEN.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(client, username: str, password: str = STAFF_PASSWORD, next_path: str = "/staff"):
    """Sign in through the page, as a browser does; the answer to the form."""
    token = form_token(client.get("/staff/login").text)
    return client.post(
        "/staff/login",
        data={"csrf_token": token, "username": username, "password": password, "next": next_path},
        follow_redirects=False,
    )


def staff_token(client) -> str:
    """The signed-in session's CSRF token, from the sign-out form of the staff home page."""
    return form_token(client.get("/staff").text)


def idle_out(db) -> None:
    """Every staff session left idle past its limit (a tablet left at the gate)."""
    with db.writing() as s:
        for live in s.scalars(select(StaffSession)):
            live.last_seen_at = NOW - timedelta(minutes=31)
