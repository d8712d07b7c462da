"""Texts people send back: opt-out and opt-in keywords, and everything else for the caller.

Opt-out words. Twilio's own (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT)
are blocked by Twilio itself, so they are recorded here too, to stay in step. The Spanish
ones are ours: BAJA, ALTO, PARAR, DETENER, SALIR, NOMAS / NO MAS. Opt-in: START, UNSTOP, YES
(Twilio's) and ALTA, INICIO, VOLVER. Help: HELP, INFO, AYUDA.

CANCELAR is deliberately *not* an opt-out word: a family writing it most likely wants to cancel
a visit, not stop every message. It gets the help text, which says to reply 2 to cancel the
visit or BAJA to stop messages. Messages never ask anyone to reply with a word (carriers treat
CANCEL and STOP as opt-outs); they ask for digits.

Each inbound text is stored once by the provider's id, so a repeated webhook changes nothing.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import String, Text, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from notifications import recipients
from notifications.base import Base, UTCDateTime, str_enum

TWILIO_OPT_OUT = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_OUT = TWILIO_OPT_OUT | {"BAJA", "ALTO", "PARAR", "DETENER", "SALIR", "NOMAS", "NO MAS"}
TWILIO_OPT_IN = frozenset({"START", "UNSTOP", "YES"})
OPT_IN = TWILIO_OPT_IN | {"ALTA", "INICIO", "VOLVER"}
HELP = frozenset({"HELP", "INFO", "AYUDA"})
# The longest text Twilio delivers (10 concatenated segments): more is kept no longer.
MAX_BODY = 1600


class Intent(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    TEXT = "text"


def normalise(text: str) -> str:
    """Upper case, no accents, no punctuation around, single spaces: "¡Baja!" → "BAJA"."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    words = "".join(c if c.isalnum() else " " for c in plain.upper()).split()
    return " ".join(words)


def clean_body(text: str) -> str:
    """What is kept of a text: without NUL characters, at most :data:`MAX_BODY` long."""
    return text.replace("\x00", "")[:MAX_BODY]


def intent(text: str) -> Intent:
    word = normalise(text)
    if word in OPT_OUT:
        return Intent.OPT_OUT
    if word in OPT_IN:
        return Intent.OPT_IN
    if word in HELP:
        return Intent.HELP
    return Intent.TEXT


class InboundMessage(Base):
    __tablename__ = "inbound_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_sid: Mapped[str] = mapped_column(String(64), unique=True)
    sender: Mapped[str] = mapped_column(String(16), index=True)
    body: Mapped[str] = mapped_column(Text)
    intent: Mapped[Intent] = mapped_column(str_enum(Intent))
    # Indexed for the retention purge, which runs with the write lock held.
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # What the caller made of it ("confirmed ABCD2345", "help"), for staff.
    handled_as: Mapped[str | None] = mapped_column(String(64))


@dataclass(frozen=True)
class Received:
    message: InboundMessage
    # Whether the opt-out or opt-in changed anything (a repeated STOP changes nothing).
    changed: bool
    # The provider answers its own keywords: the caller must not answer those again.
    provider_answers: bool


def receive(
    session: Session, *, provider_sid: str, sender: str, body: str, now: datetime
) -> Received | None:
    """Record an inbound text and apply opt-out or opt-in; ``None`` if it was seen before.

    NUL characters are dropped from the body (no text means one, and PostgreSQL stores none)
    and it is cut to :data:`MAX_BODY`."""
    if session.scalar(select(InboundMessage.id).where(InboundMessage.provider_sid == provider_sid)):
        return None
    body = clean_body(body)
    kind = intent(body)
    message = InboundMessage(
        provider_sid=provider_sid, sender=sender, body=body, intent=kind, received_at=now
    )
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError:
        return None  # the same text delivered twice at the same moment
    word = normalise(body)
    changed = False
    if kind is Intent.OPT_OUT:
        changed = recipients.opt_out(session, sender, word, now)
    elif kind is Intent.OPT_IN:
        changed = recipients.opt_in(session, sender, now)
    return Received(message, changed, word in TWILIO_OPT_OUT | TWILIO_OPT_IN)


def purge(session: Session, before: datetime) -> int:
    """Delete texts received before ``before`` (retention of personal data)."""
    return (
        session.execute(delete(InboundMessage).where(InboundMessage.received_at < before)).rowcount
        or 0
    )
