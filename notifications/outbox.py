"""The outbox: every SMS the service means to send, queued in the caller's transaction.

Invariant 2 of the design: a message is a row written in the same transaction as the change
that causes it, so a booking that commits has its messages and one that rolls back has none.
The dispatcher (:mod:`notifications.dispatcher`) sends what is due; delivery callbacks move a
message forward only (:func:`apply_provider_status`), never back.

Statuses: ``pending`` (waiting for its time) → ``sending`` (claimed by a dispatcher under a
lease; also where a message whose fate is unknown waits to be looked up) → ``sent`` (the
provider accepted it) → ``delivered`` / ``undelivered`` / ``failed``; or ``cancelled`` (no longer
wanted, expired, or the recipient opted out). Every change is kept in ``outbox_event``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, bindparam, delete, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from notifications import gsm
from notifications.base import Base, UTCDateTime, str_enum
from notifications.recipients import Recipient, blocks, note_refusal, proven_reachable


class MessageStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


# How far along a message is: a status report may only move a message to a higher rank.
RANK = {
    MessageStatus.PENDING: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.UNDELIVERED: 3,
    MessageStatus.FAILED: 3,
    MessageStatus.CANCELLED: 3,
}
FINAL = frozenset(s for s, rank in RANK.items() if rank == 3)

# Twilio's delivery statuses, as ours.
PROVIDER_STATUSES = {
    "accepted": MessageStatus.SENT,
    "scheduled": MessageStatus.SENT,
    "queued": MessageStatus.SENT,
    "sending": MessageStatus.SENT,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.CANCELLED,
}
ERROR_CODE_LENGTH = 32


class OutboxMessage(Base):
    __tablename__ = "outbox_message"
    __table_args__ = (
        # The dispatcher's one question: what is due now (pending, or a lapsed lease)?
        Index("ix_outbox_message_due", "status", "next_attempt_at"),
        Index("ix_outbox_message_recipient_created", "recipient", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    # What staff may see, and what ``body`` becomes once sent: a code is never kept readable.
    redacted_body: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8))
    segments: Mapped[int]
    # The same dedupe key can be queued once only: a reminder can never go out twice.
    dedupe_key: Mapped[str] = mapped_column(String(128), unique=True)
    # Whose message this is, opaque to the channel (for example ``booking:ABCD2345``).
    subject: Mapped[str | None] = mapped_column(String(64), index=True)
    # The kind of message for whoever queued it (for example ``reminder``).
    kind: Mapped[str] = mapped_column(String(32))
    # Essential messages (a code the person just asked for, an answer to their own text) go
    # out even to a number that opted out of everything else.
    essential: Mapped[bool] = mapped_column(default=False)
    status: Mapped[MessageStatus] = mapped_column(str_enum(MessageStatus))
    send_after: Mapped[datetime] = mapped_column(UTCDateTime)
    # Not worth sending after this moment (a reminder once the visit has begun).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the dispatcher should look at it next: its send time, a retry's time, or the end of
    # the lease of whoever holds it now.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    # No longer wanted while a dispatcher held it or its fate was unknown: it is not sent
    # again; if the provider has it, it is recorded as sent, else cancelled.
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    error_code: Mapped[str | None] = mapped_column(String(ERROR_CODE_LENGTH))
    error_message: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # Loaded only when read (the delivery page asks for it): the dispatcher never needs it.
    events: Mapped[list[MessageEvent]] = relationship(
        back_populates="message", order_by="MessageEvent.id"
    )

    @property
    def shown_body(self) -> str:
        return self.redacted_body or self.body


class MessageEvent(Base):
    """One change of a message's status, with when and why."""

    __tablename__ = "outbox_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("outbox_message.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[MessageStatus] = mapped_column(str_enum(MessageStatus))
    detail: Mapped[str | None] = mapped_column(String(255))

    message: Mapped[OutboxMessage] = relationship(back_populates="events")


def record_event(
    session: Session, message_id: int, status: MessageStatus, at: datetime, detail: str | None
) -> None:
    session.add(MessageEvent(message_id=message_id, status=status, at=at, detail=detail))


def _note(
    session: Session,
    message: OutboxMessage,
    status: MessageStatus,
    at: datetime,
    detail: str | None,
) -> None:
    """A change of ``message`` into its history, written with the message itself (a message
    just queued has no id before the transaction's one flush)."""
    session.add(MessageEvent(message=message, status=status, at=at, detail=detail))


@dataclass(frozen=True)
class Draft:
    """A message to queue: who, what, when, and what it is for."""

    recipient: str
    body: str
    language: str
    dedupe_key: str
    kind: str
    subject: str | None = None
    send_after: datetime | None = None
    expires_at: datetime | None = None
    essential: bool = False
    redacted_body: str | None = None


def enqueue(session: Session, draft: Draft, now: datetime) -> OutboxMessage:
    """Queue ``draft`` in the caller's transaction (see :func:`enqueue_all`)."""
    return enqueue_all(session, [draft], now)[0]


# Built once, not on every call: every booking queues its messages.
_MESSAGES_WITH_KEYS = select(OutboxMessage).where(
    OutboxMessage.dedupe_key.in_(bindparam("keys", expanding=True))
)
_RECIPIENTS = select(Recipient).where(Recipient.phone.in_(bindparam("phones", expanding=True)))


def enqueue_all(session: Session, drafts: Sequence[Draft], now: datetime) -> list[OutboxMessage]:
    """Queue ``drafts`` in the caller's transaction, once per dedupe key, with one look-up of
    their keys and one of their recipients however many there are (a booking queues its
    confirmation and reminders together: one query each would double what queueing costs).

    Each text is transliterated to GSM-7 first. A key queued before returns that message
    unchanged, unless it was cancelled before it ever left: then it is queued again with the
    new text and time (a visit moved back to a slot it had before gets its reminder back). A
    number that opted out, or that the provider said cannot receive SMS, gets a non-essential
    message recorded as cancelled with the reason, so staff can see why it never went.
    Nothing is flushed here: a new message has its id once the caller's session flushes.
    """
    # Messages queued in this transaction and not yet flushed, by key: nothing is flushed
    # per message, and the same key twice in one transaction is still one message.
    queued: dict[str, OutboxMessage] = session.info.setdefault("outbox_queued", {})
    known = {key: m for key, m in queued.items() if m in session}  # not rolled back since
    keys = {d.dedupe_key for d in drafts} - known.keys()
    with session.no_autoflush:
        if keys:
            stored = session.scalars(_MESSAGES_WITH_KEYS, {"keys": list(keys)})
            known.update((m.dedupe_key, m) for m in stored)
        phones = list({d.recipient for d in drafts})
        recipients = {r.phone: r for r in session.scalars(_RECIPIENTS, {"phones": phones})}
    messages = []
    for draft in drafts:
        message = _enqueue_one(session, draft, now, known.get(draft.dedupe_key), recipients)
        known[draft.dedupe_key] = queued[draft.dedupe_key] = message
        messages.append(message)
    return messages


def _enqueue_one(
    session: Session,
    draft: Draft,
    now: datetime,
    message: OutboxMessage | None,
    recipients: dict[str, Recipient],
) -> OutboxMessage:
    if message is not None:
        if message.status is not MessageStatus.CANCELLED or message.provider_sid is not None:
            return message
        move(session, message, MessageStatus.PENDING, now, "queued again")
        message.attempts, message.last_attempt_at, message.withdrawn_at = 0, None, None
        message.error_code = message.error_message = None
    else:
        message = OutboxMessage(
            recipient=draft.recipient,
            dedupe_key=draft.dedupe_key,
            subject=draft.subject,
            kind=draft.kind,
            language=draft.language,
            essential=draft.essential,
            status=MessageStatus.PENDING,
            attempts=0,
            created_at=now,
        )
        session.add(message)
        _note(session, message, MessageStatus.PENDING, now, None)
    body = gsm.transliterate(draft.body)
    message.body, message.segments = body, gsm.segments(body)
    message.redacted_body = gsm.transliterate(draft.redacted_body) if draft.redacted_body else None
    message.send_after = message.next_attempt_at = draft.send_after or now
    message.expires_at = draft.expires_at
    message.updated_at = now
    if not draft.essential and (reason := blocks(recipients.get(draft.recipient))) is not None:
        message.error_code = reason
        move(session, message, MessageStatus.CANCELLED, now, reason)
    return message


def move(
    session: Session,
    message: OutboxMessage,
    status: MessageStatus,
    now: datetime,
    detail: str | None,
) -> None:
    """Change a message's status and keep the change in its history. It leaves whoever held
    the message's claim (set ``next_attempt_at`` after this to queue it again). A message that
    will not be sent again keeps only its redacted text."""
    message.status = status
    message.claim_token = None
    message.next_attempt_at = None
    message.updated_at = now
    if status not in (MessageStatus.PENDING, MessageStatus.SENDING) and message.redacted_body:
        message.body = message.redacted_body
    _note(session, message, status, now, detail)


def history(session: Session, subject: str, kinds: Sequence[str]) -> list[OutboxMessage]:
    """The messages of these kinds about one subject, oldest first, as they are now (one just
    cancelled in this transaction shows it)."""
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.subject == subject, OutboxMessage.kind.in_(kinds))
            .order_by(OutboxMessage.created_at, OutboxMessage.id)
            .execution_options(populate_existing=True)
        )
    )


def cancel_pending(
    session: Session, subject: str, now: datetime, reason: str, kind: str | None = None
) -> int:
    """Cancel the messages of ``subject`` (of one ``kind``, if given) that have not left, in
    the caller's transaction. Those a dispatcher holds right now, or whose fate is unknown,
    are marked withdrawn: the dispatcher sends them no more (invariant 4)."""
    which = [OutboxMessage.subject == subject]
    if kind is not None:
        which.append(OutboxMessage.kind == kind)
    ids = list(
        session.scalars(
            update(OutboxMessage)
            .where(*which, OutboxMessage.status == MessageStatus.PENDING)
            .values(
                status=MessageStatus.CANCELLED,
                body=func.coalesce(OutboxMessage.redacted_body, OutboxMessage.body),
                next_attempt_at=None,
                error_code="superseded",
                error_message=reason,
                updated_at=now,
            )
            .returning(OutboxMessage.id)
            .execution_options(synchronize_session=False)
        )
    )
    for message_id in ids:
        record_event(session, message_id, MessageStatus.CANCELLED, now, reason)
    # Messages queued earlier in this transaction are read again: one queued once more with
    # the same key (a booking moved right after it was made) must see it was cancelled.
    cancelled = set(ids)
    for message in session.info.get("outbox_queued", {}).values():
        if message in session and message.id in cancelled:
            session.expire(message)
    session.execute(
        update(OutboxMessage)
        .where(*which, OutboxMessage.status == MessageStatus.SENDING)
        .values(withdrawn_at=now, error_message=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return len(ids)


def apply_provider_status(
    session: Session,
    *,
    message_id: int | None,
    provider_sid: str,
    provider_status: str,
    error_code: str | None,
    now: datetime,
) -> bool:
    """A delivery report from the provider. Moves the message forward only; a late or repeated
    report changes nothing. Returns whether anything changed.

    What a report that changes the message says about the number is recorded, as for a send:
    an error code in a failed or undelivered report marks it (:func:`note_refusal`: a landline
    is often only found out here, 30006), and a delivered one clears an unreachable mark
    (:func:`proven_reachable`). A repeated report changes nothing, so an old failure read
    again cannot undo a later delivery.

    ``message_id`` comes from the callback address when the provider sends one: it lets a
    report settle a message whose send outcome was unknown (the provider's id is learnt here).
    """
    status = PROVIDER_STATUSES.get(provider_status.lower())
    if status is None:
        return False
    message = session.scalar(
        select(OutboxMessage).where(OutboxMessage.provider_sid == provider_sid).with_for_update()
    )
    if message is None and message_id is not None:
        message = session.get(OutboxMessage, message_id, with_for_update=True)
        if message is None or message.provider_sid not in (None, provider_sid):
            return False
    if message is None or RANK[status] <= RANK[message.status]:
        return False
    message.provider_sid = provider_sid
    # What the column holds of it (a code is 5 digits; PostgreSQL stores no NUL character).
    if error_code := (error_code or "").replace("\x00", "")[:ERROR_CODE_LENGTH]:
        message.error_code = error_code
    move(session, message, status, now, f"provider: {provider_status}")
    if status is MessageStatus.DELIVERED:
        proven_reachable(session, message.recipient, now)
    elif error_code and status in (MessageStatus.UNDELIVERED, MessageStatus.FAILED):
        note_refusal(session, message.recipient, error_code, now)
    return True


def purge(session: Session, before: datetime) -> int:
    """Delete messages (and their history) settled before ``before``: they hold phone
    numbers and names, kept no longer than the retention period."""
    # "sent" counts as settled too: a console or unreported message never hears more.
    settled = (OutboxMessage.status.in_([*FINAL, MessageStatus.SENT]),)
    old = select(OutboxMessage.id).where(*settled, OutboxMessage.updated_at < before)
    session.execute(delete(MessageEvent).where(MessageEvent.message_id.in_(old)))
    deleted = session.execute(
        delete(OutboxMessage).where(*settled, OutboxMessage.updated_at < before)
    )
    return deleted.rowcount or 0
