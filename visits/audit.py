"""Who did what to which record, and when: one event for every change of state.

The events also make a staff form's one-off submission key work (:func:`done_with`): the page
puts a random key in the form (:func:`new_key`), the action records it in its event, and the
same form sent again (a double click, a reload, a browser resending a post) finds that event
under the lock the action itself takes, so it changes nothing and answers as the first did.
Closures, suspensions, the schedule editor, staff changes of a booking and the notices of an
advisory's contacts all work so; the key is looked for only in the record's own events.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from visits.base import Base, UTCDateTime

ORIGIN_LENGTH = 64


class AuditEvent(Base):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # "family", "api", "cli", later "staff:<id>": who caused the change.
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Where the change came from: the client's address for a web request, else empty.
    origin: Mapped[str] = mapped_column(String(ORIGIN_LENGTH), default="", server_default="")


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: object,
    details: dict[str, Any] | None = None,
    origin: str = "",
) -> AuditEvent:
    event = AuditEvent(
        at=at,
        actor=actor,
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        details=details or {},
        origin=origin[:ORIGIN_LENGTH],
    )
    session.add(event)
    return event


def timeline(session: Session, entity: str, entity_id: object) -> list[AuditEvent]:
    """Everything that happened to one record, oldest first."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity == entity, AuditEvent.entity_id == str(entity_id))
            .order_by(AuditEvent.at, AuditEvent.id)
        )
    )


# What a page's one-off key looks like (:func:`new_key`): anything else is no key at all.
SUBMISSION_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_key() -> str:
    """A form's one-off submission key."""
    return secrets.token_urlsafe(24)


def submission_key(raw: str | None) -> str:
    """The key a form sent, or ``""`` for none (a form from before keys, or a forged one)."""
    raw = (raw or "").strip()
    return raw if SUBMISSION_KEY.fullmatch(raw) else ""


def done_with(
    session: Session,
    entity: str,
    entity_id: object,
    actions: Iterable[str],
    key: str,
    **same: object,
) -> AuditEvent | None:
    """The latest event among ``actions`` of this record that the submission with ``key``
    recorded (and whose details hold every ``same`` value), if any: that submission was done.

    Call it under the lock the action takes before changing anything, so that a second
    submission sent at the same instant waits for the first and then finds its event (on
    PostgreSQL each statement reads what was committed before it; SQLite writes one at a
    time)."""
    if not key:
        return None
    events = session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.entity == entity,
            AuditEvent.entity_id == str(entity_id),
            AuditEvent.action.in_(list(actions)),
        )
        .order_by(AuditEvent.id.desc())
    )
    for event in events:
        details = event.details or {}
        if details.get("key") == key and all(details.get(k) == v for k, v in same.items()):
            return event
    return None
