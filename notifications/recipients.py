"""What the channel knows about a phone number: opted out, or unable to receive SMS.

An opt-out is recorded by us, Spanish words included (see :mod:`notifications.inbound`), not
left to the provider, whose automatic handling knows only English keywords. A number the
provider calls invalid or unreachable is marked too, so that it is not tried again and again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, Session, mapped_column

from notifications.base import Base, UTCDateTime

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
    recipient = session.get(Recipient, phone, with_for_update=True)
    if recipient is None or recipient.opted_out_at is None:
        return False
    recipient.opted_out_at = recipient.opted_out_by = None
    recipient.updated_at = now
    return True


def mark_unreachable(session: Session, phone: str, code: str, now: datetime) -> None:
    recipient = _recipient(session, phone, now)
    recipient.unreachable_at, recipient.unreachable_code, recipient.updated_at = now, code, now
