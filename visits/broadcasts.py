"""Administrators write once to every family booked at their prison on a day or a few days
(a strike, a change of entrance, documents to bring).

The families are the contact phones of the bookings confirmed (or already at the gate) in the
range, each phone once however many bookings it holds; each gets the text in its booking's
language when the administrator wrote one for it, else in Spanish, after the prison's name.
The preview shows the count (and how many asked for no more messages or cannot receive SMS:
they get none) and the text exactly as it goes (the name too), in GSM-7 and its SMS segments.
Sending queues one message per phone in one transaction, audited; the same preview sent twice
(a double click, a reload) queues nothing more, because each message's key carries the
preview's own random key. Two previews of the same message (two administrators, two tabs)
have two keys: the second is refused, saying when and by whom the first went, unless its
administrator ticks "send it again" (see :func:`repeated`). A message that has not left by
the end of the range is dropped: it would arrive too late to matter.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from notifications import gsm, outbox
from notifications.outbox import Draft, MessageStatus, OutboxMessage
from notifications.recipients import Recipient
from visits import audit
from visits.audit import AuditEvent
from visits.booking import Booking, BookingStatus
from visits.db import lock_rows, require_write_lock
from visits.i18n import format_clock
from visits.prison import Prison
from visits.problems import Code, Problem, Rejected
from visits.schedule import Slot
from visits.staff import StaffUser

MAX_SEGMENTS = 3
MAX_DAYS = 31
MAX_AHEAD = timedelta(days=365)
# Families booked for these: confirmed, or already come to the gate that day.
REACHED = (BookingStatus.CONFIRMED, BookingStatus.ATTENDED)
KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
# The same message to the same days sent this recently is refused unless asked again.
REPEAT_WINDOW = timedelta(minutes=30)


@dataclass(frozen=True)
class BroadcastRequest:
    first: date
    last: date
    texts: dict[str, str]  # language → text as written ("es" required)
    key: str = ""  # the preview's random key; empty for a new preview
    again: bool = False  # the administrator knows the same message went out just now


@dataclass(frozen=True)
class Family:
    phone: str
    language: str


@dataclass(frozen=True)
class Preview:
    families: list[Family]
    blocked: int  # asked for no more messages, or cannot receive SMS: they get none
    texts: dict[str, str]  # language → the text as it goes (GSM-7)
    segments: dict[str, int]
    key: str
    repeated: Problem | None = None  # the same message went out just now (see repeated())


def new_key() -> str:
    return secrets.token_urlsafe(18)


def problems(prison: Prison, request: BroadcastRequest, now: datetime) -> list[Problem]:
    found: list[Problem] = []
    today = prison.local_date(now)
    if request.first < today:
        found.append(Problem(Code.DAY_IN_PAST, "first"))
    elif request.first > today + MAX_AHEAD:
        found.append(Problem(Code.DATE_TOO_FAR, "first", {"years": 1}))
        return found  # no arithmetic on a date near the end of the calendar
    if not (request.first <= request.last <= request.first + timedelta(days=MAX_DAYS - 1)):
        found.append(Problem(Code.INVALID_DATE_RANGE, "last", {"days": MAX_DAYS}))
    if not request.texts.get("es", "").strip():
        found.append(Problem(Code.REQUIRED, "text_es"))
    for language, text in request.texts.items():
        if text.strip() and gsm.segments(_sent_text(prison, text)) > MAX_SEGMENTS:
            found.append(Problem(Code.TOO_MANY_SEGMENTS, f"text_{language}", {"max": MAX_SEGMENTS}))
    return found


def families(session: Session, prison: Prison, first: date, last: date) -> list[Family]:
    """Each phone booked in the range once, in the language of its earliest booking."""
    rows = session.execute(
        select(Booking.contact_phone, Booking.language)
        .join(Slot, Booking.slot_id == Slot.id)
        .where(
            Booking.prison_id == prison.id,
            Booking.status.in_(REACHED),
            Slot.local_date >= first,
            Slot.local_date <= last,
        )
        .order_by(Slot.starts_at, Booking.id)
    )
    seen: dict[str, Family] = {}
    for phone, language in rows:
        seen.setdefault(phone, Family(phone, language))
    return list(seen.values())


def _sent_texts(prison: Prison, request: BroadcastRequest) -> dict[str, str]:
    return {
        language: _sent_text(prison, text)
        for language, text in request.texts.items()
        if text.strip()
    }


def _sent_text(prison: Prison, text: str) -> str:
    """The SMS as it goes, in GSM-7: the prison's name first, as every other SMS of the
    service names it, so that a family does not take a message from an unknown number
    that names nobody for spam or phishing; its segments count the name too."""
    return gsm.transliterate(f"{prison.name}: {text.strip()}")


def preview(session: Session, prison: Prison, request: BroadcastRequest, now: datetime) -> Preview:
    """Who would get what; raises :class:`Rejected` with every problem of the request."""
    if found := problems(prison, request, now):
        raise Rejected(found)
    reached = families(session, prison, request.first, request.last)
    blocked = 0
    if reached:
        blocked = session.scalar(
            select(func.count(Recipient.phone)).where(
                Recipient.phone.in_([f.phone for f in reached]),
                or_(Recipient.opted_out_at.is_not(None), Recipient.unreachable_at.is_not(None)),
            )
        )
    texts = _sent_texts(prison, request)
    return Preview(
        families=reached,
        blocked=blocked or 0,
        texts=texts,
        segments={language: gsm.segments(text) for language, text in texts.items()},
        key=request.key or new_key(),
        repeated=repeated(session, prison, request, now),
    )


def repeated(
    session: Session, prison: Prison, request: BroadcastRequest, now: datetime
) -> Problem | None:
    """Why this message may not go unless asked again: the same texts to the same days of
    this prison were sent within :data:`REPEAT_WINDOW` (by any preview: two administrators,
    or two tabs, have two keys), said with when and by whom; ``None`` otherwise, or when the
    administrator ticked "send it again".

    Decision: texts compare without regard to case or runs of spaces, so a retyped copy is
    caught too; a message changed in substance, or to other days, goes at once. The window
    is short: a correction or a reminder later in the day is the administrator's to send."""
    if request.again:
        return None
    texts = _alike(_sent_texts(prison, request))
    wanted = (request.first.isoformat(), request.last.isoformat(), texts)
    sent = session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.action == "broadcast.sent",
            AuditEvent.entity == "prison",
            AuditEvent.entity_id == prison.code,
            AuditEvent.at > now - REPEAT_WINDOW,
        )
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    )
    for event in sent:
        details = event.details
        if (details.get("first"), details.get("last"), _alike(details.get("texts", {}))) != wanted:
            continue
        username = event.actor.removeprefix("staff:")
        name = session.scalar(select(StaffUser.full_name).where(StaffUser.username == username))
        by = f"{name} ({username})" if name else event.actor
        return Problem(
            Code.BROADCAST_REPEATED, "again", {"at": format_clock(event.at, prison.tz), "by": by}
        )
    return None


def _alike(texts: dict[str, str]) -> dict[str, str]:
    return {language: " ".join(text.split()).casefold() for language, text in texts.items()}


def send(
    session: Session,
    prison: Prison,
    request: BroadcastRequest,
    *,
    now: datetime,
    actor: str,
    origin: str,
) -> int | None:
    """Queue the message to every family booked in the range now; how many will go out (the
    others asked for no more messages or cannot receive SMS), or ``None`` when this
    preview's key was sent already."""
    if found := problems(prison, request, now):
        raise Rejected(found)
    if not KEY.fullmatch(request.key):
        raise Rejected([Problem(Code.FORM_EXPIRED)])
    # Two sends of one preview (a double click) take turns here, so the second sees the first.
    require_write_lock(session)
    lock_rows(session, Prison.id, [prison.id], key_share=True)  # bookings go on meanwhile
    prefix = f"broadcast:{request.key}:"
    reached = families(session, prison, request.first, request.last)
    keys = [prefix + family.phone for family in reached]
    already = session.scalar(
        select(OutboxMessage.id).where(OutboxMessage.dedupe_key.in_(keys)).limit(1)
    )
    if already is not None:
        return None
    if (again := repeated(session, prison, request, now)) is not None:
        raise Rejected([again])
    texts = _sent_texts(prison, request)
    ends = datetime.combine(request.last + timedelta(days=1), time(), tzinfo=prison.tz)
    messages = outbox.enqueue_all(
        session,
        [
            Draft(
                recipient=family.phone,
                body=texts.get(family.language, texts["es"]),
                language=family.language if family.language in texts else "es",
                dedupe_key=prefix + family.phone,
                kind="broadcast",
                subject=subject(prison),
                expires_at=ends,
            )
            for family in reached
        ],
        now,
    )
    queued = sum(1 for m in messages if m.status is MessageStatus.PENDING)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="broadcast.sent",
        entity="prison",
        entity_id=prison.code,
        details={
            "first": request.first.isoformat(),
            "last": request.last.isoformat(),
            "families": len(reached),
            "queued": queued,
            "texts": texts,
            "key": request.key,
            "again": request.again,
        },
        origin=origin,
    )
    return queued


def for_booking(session: Session, booking: Booking) -> list[str]:
    """The messages sent to the families of this booking's day, as they went, in its language
    (else Spanish), oldest first, each once.

    Decision: a broadcast reaches the bookings that exist when it is sent; a family that
    books that day later would never hear it (another entrance, a strike). So the booking's
    page (where the family is when it books, and comes back to) shows them, not a new SMS:
    the page is read at the moment it matters and costs nothing; an SMS to each later
    booking would need its own rules (how late, how often). The preview says so."""
    if not booking.is_active:
        return []
    day = booking.slot.local_date
    day_starts = datetime.combine(day, time(), tzinfo=booking.prison.tz)
    sent = session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.action == "broadcast.sent",
            AuditEvent.entity == "prison",
            AuditEvent.entity_id == booking.prison.code,
            # Sent at most a year before a range of at most 31 days.
            AuditEvent.at > day_starts - MAX_AHEAD - timedelta(days=MAX_DAYS),
        )
        .order_by(AuditEvent.at, AuditEvent.id)
    )
    texts: dict[str, None] = {}
    for event in sent:
        details = event.details
        if details.get("first", "") <= day.isoformat() <= details.get("last", ""):
            written = details.get("texts", {})
            if text := written.get(booking.language) or written.get("es"):
                texts.setdefault(text)
    return list(texts)


def subject(prison: Prison) -> str:
    """Whose messages these are: the prison's, so its administrators see them."""
    return f"prison:{prison.code}:broadcast"
