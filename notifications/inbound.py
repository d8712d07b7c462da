"""Texts people send back: opt-out and opt-in keywords, and everything else for the caller.

Opt-out. A text opts out when, normalised (:func:`normalise`), it is

- exactly one opt-out word: Twilio's own (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE,
  OPTOUT), blocked by Twilio itself and recorded here too to stay in step, or ours (BAJA, ALTO,
  PARAR, PARE, DETENER, SALIR, BASTA, DESUSCRIBIR, NOMAS / NO MAS);
- or begins with a word that means nothing but "stop" at the head of a text (STOP, STOPALL,
  UNSUBSCRIBE, OPTOUT, BAJA, PARAR, PARE, DETENER, DESUSCRIBIR, DESUSCRIBIRME): "BAJA por
  favor", "STOP ALL";
- or begins with a short stop phrase: "NO MAS MENSAJES", "NO MAS SMS", "NO ENVIEN MAS",
  "NO MANDEN MAS".

Why so narrow: a wish to stop is better respected than missed, and an opt-out never cancels a
visit (it only stops reminders), but a family wrongly opted out misses its reminders. So words
that also begin ordinary questions are whole-message only: "Basta con el DNI?" (is the ID
enough), "Nomas queria saber..." (Peruvian "just"), "No mas de dos personas?", "Salir a que
hora", "Cancel my visit", "End". Any other text, "no puedo ir" or "2 gracias" included, is for
the caller, which reads only a bare digit as an answer.

Opt-in: START, UNSTOP, YES (Twilio's) and ALTA, INICIO, VOLVER. Help: HELP, INFO (Twilio's)
and AYUDA.

Twilio answers its own keywords, and only a text that is the keyword alone ("STOP PLEASE" is not
one), so the caller answers neither those nor Twilio's HELP and INFO: a family would get two
SMS. Our wider matches ("BAJA por favor", "STOP ALL") Twilio neither blocks nor answers: they are
recorded and answered here.

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
OPT_OUT = TWILIO_OPT_OUT | {
    "BAJA", "ALTO", "PARAR", "PARE", "DETENER", "SALIR", "BASTA", "DESUSCRIBIR", "NOMAS", "NO MAS"
}  # fmt: skip
# Opt out even with more words after them: nothing else starts a text with these.
LEADING_OPT_OUT = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "OPTOUT", "BAJA", "PARAR", "PARE", "DETENER"}
    | {"DESUSCRIBIR", "DESUSCRIBIRME"}
)
OPT_OUT_PHRASES = ("NO MAS MENSAJES", "NO MAS SMS", "NO ENVIEN MAS", "NO MANDEN MAS")
TWILIO_OPT_IN = frozenset({"START", "UNSTOP", "YES"})
OPT_IN = TWILIO_OPT_IN | {"ALTA", "INICIO", "VOLVER"}
TWILIO_HELP = frozenset({"HELP", "INFO"})
HELP = TWILIO_HELP | {"AYUDA"}
# What Twilio answers itself: a text that is one of these words alone.
TWILIO_ANSWERS = TWILIO_OPT_OUT | TWILIO_OPT_IN | TWILIO_HELP
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


def opt_out_keyword(text: str) -> str | None:
    """The opt-out word or phrase ``text`` is or begins with (see the module's rule), else
    ``None``: what is recorded as the reason of the opt-out."""
    word = normalise(text)
    if word in OPT_OUT:
        return word
    first = word.partition(" ")[0]
    if first in LEADING_OPT_OUT:
        return first
    return next((p for p in OPT_OUT_PHRASES if f"{word} ".startswith(f"{p} ")), None)


def intent(text: str) -> Intent:
    word = normalise(text)
    if opt_out_keyword(word):
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
        changed = recipients.opt_out(session, sender, opt_out_keyword(word), now)
    elif kind is Intent.OPT_IN:
        changed = recipients.opt_in(session, sender, now)
    return Received(message, changed, word in TWILIO_ANSWERS)


def purge(session: Session, before: datetime) -> int:
    """Delete texts received before ``before`` (retention of personal data)."""
    return (
        session.execute(delete(InboundMessage).where(InboundMessage.received_at < before)).rowcount
        or 0
    )
