"""Typed request dependencies: database sessions, the clock, the settings, the client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from visits.db import Database
from visits.sms import SmsPolicy
from visits.throttle import ThrottlePolicy, network_key


def _db(request: Request) -> Database:
    return request.app.state.db


def read_session(request: Request) -> Iterator[Session]:
    with _db(request).read_session() as session:
        yield session


def write_session(request: Request) -> Iterator[Session]:
    """A session that takes its write locks first. The handler commits; closing rolls back
    whatever it did not commit."""
    with _db(request).write_session() as session:
        yield session


# The small dependencies below are ``async``: FastAPI runs a plain ``def`` dependency in the
# thread pool, a thread hop per dependency per request for what is only an attribute read.


async def now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


async def client_key(request: Request) -> str:
    """Who is asking, for every throttle and cap (failed look-ups, bookings waiting for their
    code, code SMS) and for the audit's ``origin``: the client address (set from a trusted
    proxy's X-Forwarded-For when ``visits serve --proxy-headers`` is on), an IPv6 one by its
    /64 network (:func:`visits.throttle.network_key` says why). One function, so a cap and the
    history it reads (``audit_event.origin``) always name a client alike."""
    return network_key(request.client.host) if request.client else "unknown"


async def throttle_policy(request: Request) -> ThrottlePolicy:
    return request.app.state.throttle_policy


async def sms_policy(request: Request) -> SmsPolicy:
    return request.app.state.sms


# Closed as soon as the handler returns, before the response is sent: a family's slow
# connection never holds a database connection.
ReadSession = Annotated[Session, Depends(read_session, scope="function")]
WriteSession = Annotated[Session, Depends(write_session, scope="function")]
Now = Annotated[datetime, Depends(now)]
ClientKey = Annotated[str, Depends(client_key)]
Throttling = Annotated[ThrottlePolicy, Depends(throttle_policy)]
Sms = Annotated[SmsPolicy, Depends(sms_policy)]
