"""Phone verification: a booking is held until the family types the code sent to its phone.

A held booking already holds its seats and counts toward every limit (so nobody takes them
while the SMS travels); if the code is not entered within the hold time, the booking is
cancelled and the seats come back (:func:`expire_holds`, run by the worker, and at once when
a late code arrives). Codes are 6 random digits, stored only as an HMAC, compared in constant
time, single-use, limited to a few wrong tries each, and limited in how many are sent to one
phone, and at one client address's asking, per hour. They are never logged: the outbox keeps
only a redacted copy of the text.

Decision: a health advisory issued while a booking waits for its code meets it as it meets a
confirmed booking. Issuing re-evaluates every booking holding seats
(:func:`visits.issuing.touched`): a suspension cancels the held one at once, for the health
measure (seats back; its code then confirms nothing, :func:`visits.booking.not_waiting_for_code`).
A measure texts no held booking (a code may never come); the confirmation reads the measures in
force then and tells the family in the words a confirmed booking's family got at issue
(:func:`visits.booking.tell_measures`, once for the same measures).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from notifications.recipients import proven_reachable
from visits import audit, throttle
from visits.base import Base, UTCDateTime
from visits.db import require_write_lock
from visits.problems import Code, Problem, Rejected
from visits.sms import SmsPolicy, queue_code

if TYPE_CHECKING:
    from visits.booking import Booking

CODE_DIGITS = 6
SEND_WINDOW = timedelta(hours=1)


class PhoneVerification(Base):
    """The current code of one held booking (a new code replaces the old one)."""

    __tablename__ = "phone_verification"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(
        ForeignKey("booking.id", ondelete="CASCADE"), unique=True
    )
    code_hash: Mapped[str] = mapped_column(String(64))
    sends: Mapped[int] = mapped_column(default=1)
    wrong_attempts: Mapped[int] = mapped_column(default=0)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def _digest(secret_key: str, booking_id: int, code: str) -> str:
    message = f"phone-code:{booking_id}:{code}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def _current(session: Session, booking: Booking) -> PhoneVerification | None:
    return session.scalar(
        select(PhoneVerification).where(PhoneVerification.booking_id == booking.id)
    )


def _sends_key(phone: str) -> str:
    return f"sms-code:phone:{phone}"


def _client_sends_key(client: str) -> str:
    return f"sms-code:client:{client}"


def _send_keys(phone: str, client: str | None) -> list[str]:
    return [_sends_key(phone)] + ([_client_sends_key(client)] if client is not None else [])


def send_wait(
    session: Session, phone: str, policy: SmsPolicy, now: datetime, client: str | None = None
) -> Problem | None:
    """Too many codes sent in the last hour, to this phone or at the asking of this client
    address (first codes and new ones alike): the longer wait, else ``None``.

    Decision: one address, typing made-up documents, could otherwise have a code sent to a
    new Peruvian number with every booking and every "send a new code" (about 15 every 10
    minutes, within the caps on bookings waiting for their code), and each SMS is paid for. So
    the sends asked for by one client are capped too (:attr:`SmsPolicy.code_sends_per_client`,
    20 an hour by default: see :class:`visits.settings.Settings`); ``client=None`` (no web
    request) is not. The keys stay locked (PostgreSQL) until the caller commits the code it
    then sends, so parallel requests cannot all slip past one count. A phone verified in its
    browser is never sent a code, so it never meets this."""
    keys = _send_keys(phone, client)
    hits = throttle.recent(session, keys, SEND_WINDOW, now)
    caps = [(Code.TOO_MANY_CODES, "code", policy.verification_sends_per_hour)]
    if client is not None:
        caps.append((Code.TOO_MANY_CODES_FROM_CLIENT, None, policy.code_sends_per_client))
    waits = [
        (throttle.minutes(throttle.wait(hits[key], limit, SEND_WINDOW, now)), code, field)
        for key, (code, field, limit) in zip(keys, caps, strict=True)
    ]
    wait, code, field = max(waits, key=lambda found: found[0])  # a tie: the phone's
    return Problem(code, field, {"minutes": wait}) if wait else None


def send_code(
    session: Session, booking: Booking, policy: SmsPolicy, now: datetime, client: str | None = None
) -> None:
    """Queue a new code for a held booking (replacing any earlier one) in this transaction,
    counted for its phone and for the ``client`` that asked. The caller checked
    :func:`send_wait` first."""
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    current = _current(session, booking)
    if current is None:
        current = PhoneVerification(booking_id=booking.id, sends=0)
        session.add(current)
    current.code_hash = _digest(policy.secret_key, booking.id, code)
    current.sends += 1
    current.wrong_attempts = 0
    current.sent_at = now
    session.flush()
    throttle.record_failure(session, _send_keys(booking.contact_phone, client), now)
    key = f"booking:{booking.reference}:code:{current.sends}"
    queue_code(session, booking, code, key, policy, now)


def parse_code(text: str) -> str | None:
    digits = "".join(ch for ch in text if not ch.isspace())
    if len(digits) != CODE_DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    return digits


def check_code(
    session: Session, booking: Booking, text: str, policy: SmsPolicy, now: datetime
) -> None:
    """Accept the code or raise :class:`Rejected`. A wrong try is counted in this session:
    the caller commits whether or not the code was right. A right code proves the phone
    receives SMS (:func:`notifications.recipients.proven_reachable`)."""
    require_write_lock(session)
    code = parse_code(text)
    if code is None:
        raise Rejected([Problem(Code.INVALID_CODE, "code")])
    current = _current(session, booking)
    if current is None or current.verified_at is not None:
        raise Rejected([Problem(Code.NOT_HELD, "code")])
    if current.wrong_attempts >= policy.verification_attempts:
        raise Rejected([_wrong_tries(current, policy)])
    expected = _digest(policy.secret_key, booking.id, code)
    if not hmac.compare_digest(expected.encode(), current.code_hash.encode()):
        current.wrong_attempts += 1
        audit.record(
            session,
            at=now,
            actor="family",
            action="booking.code_rejected",
            entity="booking",
            entity_id=booking.reference,
        )
        raise Rejected([_wrong_tries(current, policy)])
    current.verified_at = now
    # The code reached this phone: whatever error once marked it unreachable is outdated, and
    # the confirmation queued next must not be cancelled for it.
    proven_reachable(session, booking.contact_phone, now)


def verified_with(session: Session, booking: Booking, text: str, policy: SmsPolicy) -> bool:
    """Whether ``text`` is the code already accepted for this booking: a confirmation sent
    again because its answer was lost on the way (see ``web.api.verify``). Nothing is
    counted: the booking takes no code any more, and the caller, holding its manage token,
    may read it anyway, so a yes or no tells nobody anything new."""
    code = parse_code(text)
    current = _current(session, booking)
    if code is None or current is None or current.verified_at is None:
        return False
    expected = _digest(policy.secret_key, booking.id, code)
    return hmac.compare_digest(expected.encode(), current.code_hash.encode())


def _wrong_tries(current: PhoneVerification, policy: SmsPolicy) -> Problem:
    """What the wrong tries of the current code leave: how many more, or none."""
    left = policy.verification_attempts - current.wrong_attempts
    if left <= 0:
        return Problem(Code.CODE_ATTEMPTS_EXHAUSTED, "code")
    return Problem(Code.WRONG_CODE, "code", {"left": left})


# The refusals of a typed code: the code page can say one again after the fact, named by its
# code (see :func:`code_refusal`).
CODE_REFUSALS = frozenset({Code.INVALID_CODE, Code.WRONG_CODE, Code.CODE_ATTEMPTS_EXHAUSTED})


def code_refusal(
    session: Session, booking: Booking, refused: str, policy: SmsPolicy
) -> Problem | None:
    """The refusal of a typed code named ``refused`` (one of :data:`CODE_REFUSALS`: the code
    page is told only its name, never text to show), as it stands now: the tries left are read
    again, and a wrong try made void by a new code (none counted since) is no longer said.
    ``None`` for any other name."""
    if refused == Code.INVALID_CODE:
        return Problem(Code.INVALID_CODE, "code")
    if refused not in CODE_REFUSALS:
        return None
    current = _current(session, booking)
    if current is None or current.verified_at is not None or current.wrong_attempts == 0:
        return None
    return _wrong_tries(current, policy)
