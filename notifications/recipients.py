"""What the channel knows about a phone number: opted out, or unable to receive SMS.

An opt-out is recorded by us, Spanish words included (see :mod:`notifications.inbound`), not
left to the provider, whose automatic handling knows only English keywords. A number the
provider calls invalid or unreachable is marked too, so that it is not tried again and again,
until the number proves it receives SMS (:func:`proven_reachable`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, Session, mapped_column

from notifications.base import Base, UTCDateTime
from notifications.senders import OPTED_OUT_CODES, UNREACHABLE_CODES

OPTED_OUT = "opted_out"
UNREACHABLE = "unreachable"


class Recipient(Base):
    __tablename__ = "sms_recipient"

    phone: Mapped[str] = mapped_column(String(16), primary_key=True)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The word the person sent, or the provider's error code (21610) that told us.
    opted_out_by: Mapped[str | None] = mapped_column(String(32))
    unreachable_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unreachable_code: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


def blocks(recipient: Recipient | None) -> str | None:
    """Why non-essential messages may not go to this number, or ``None``."""
    if recipient is None:
        return None
    return blocking_reason(recipient.opted_out_at, recipient.unreachable_at)


def blocking_reason(opted_out_at: datetime | None, unreachable_at: datetime | None) -> str | None:
    """The same answer from the two columns alone (the dispatcher reads them in its claim)."""
    if opted_out_at is not None:
        return OPTED_OUT
    if unreachable_at is not None:
        return UNREACHABLE
    return None


def blocking(session: Session, phone: str) -> str | None:
    """Why non-essential messages may not go to ``phone`` now (one look-up by key), or ``None``:
    for a page that tells a family no confirmation or reminder will come."""
    return blocks(session.get(Recipient, phone))


def _recipient(session: Session, phone: str, now: datetime) -> Recipient:
    recipient = session.get(Recipient, phone, with_for_update=True)
    if recipient is None:
        recipient = Recipient(phone=phone, updated_at=now)
        session.add(recipient)
    return recipient


def opt_out(session: Session, phone: str, by: str, now: datetime) -> bool:
    """Stop non-essential messages to ``phone``; True if it was not opted out already."""
    recipient = _recipient(session, phone, now)
    if recipient.opted_out_at is not None:
        return False
    recipient.opted_out_at, recipient.opted_out_by, recipient.updated_at = now, by, now
    return True


def opt_in(session: Session, phone: str, now: datetime) -> bool:
    """Resume messages to ``phone``; True if it had opted out."""
    return _lift(session, phone, "opted_out_at", "opted_out_by", now)


def _lift(session: Session, phone: str, mark: str, why: str, now: datetime) -> bool:
    """Clear one mark (its time and its reason) of ``phone``; True if it had it."""
    recipient = session.get(Recipient, phone, with_for_update=True)
    if recipient is None or getattr(recipient, mark) is None:
        return False
    setattr(recipient, mark, None)
    setattr(recipient, why, None)
    recipient.updated_at = now
    return True


def mark_unreachable(session: Session, phone: str, code: str, now: datetime) -> None:
    recipient = _recipient(session, phone, now)
    recipient.unreachable_at, recipient.unreachable_code, recipient.updated_at = now, code, now


def note_refusal(session: Session, phone: str, code: str, now: datetime) -> None:
    """What a provider's error ``code`` for a message to ``phone`` says about the number, the
    same whether it came with the send (a refusal) or later in a delivery report: unreachable
    (:data:`~notifications.senders.UNREACHABLE_CODES`), opted out at the carrier
    (:data:`~notifications.senders.OPTED_OUT_CODES`), or nothing about the number."""
    if code in UNREACHABLE_CODES:
        mark_unreachable(session, phone, code, now)
    elif code in OPTED_OUT_CODES:
        opt_out(session, phone, code, now)


def proven_reachable(session: Session, phone: str, now: datetime) -> bool:
    """``phone`` was shown to receive SMS: clear its unreachable mark; True if it had one.

    Decision, on what counts as proof. A mark is a guess from one error, and it silences every
    confirmation and reminder for every later booking, so it must not outlive the evidence
    against it. Proof is what only a phone that got a message can give:

    - a *delivered* report from the provider (:func:`notifications.outbox.apply_provider_status`);
    - the right verification code typed in (``visits.verification`` calls this): the code
      reached this very phone.

    The provider *accepting* a message is not proof: Twilio accepts a text for a landline or
    a dead number and only reports later that it failed (30005, 30006), so clearing on it
    would undo a mark from a delivery report at the very next send. A typed code or delivery
    does not touch an opt-out: only the person's own opt-in word lifts that.
    """
    return _lift(session, phone, "unreachable_at", "unreachable_code", now)
