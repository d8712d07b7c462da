"""Texts families send back: 1 (coming), 2 (cannot come), opt-out words, anything else.

The channel records the text and applies opt-outs (:mod:`notifications.inbound`); this module
decides what it means for a visit and what to answer. A reply concerns the visit of the last
reminder sent to that phone while that reminder stands (its visit's day not over, the visit
not moved), or else the phone's only coming visit (with several, the family is pointed to the
links in their SMS rather than guessed for). ``2`` cancels that visit as if the family had
done it on the page (seats back, reminders cancelled, the cancellation SMS is the answer, sent
even to a number that opted out of reminders); ``1`` is recorded for the guards; anything else
gets the help text, except the help words the provider answers itself (HELP, INFO).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from notifications.inbound import Intent, Received, normalise, receive
from notifications.outbox import MessageStatus, OutboxMessage
from visits import booking as bookings
from visits.booking import Booking, BookingStatus
from visits.i18n import DEFAULT_LOCALE
from visits.problems import Rejected
from visits.schedule import Slot
from visits.sms import SmsPolicy, queue_attending, queue_reply

COMING = "1"
NOT_COMING = "2"
WENT_OUT = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED)


def _visit_in_question(session: Session, phone: str, now: datetime) -> Booking | str:
    """The visit a digit answers: the one whose reminder went out last to this phone, while
    that reminder still stands; else the phone's only coming visit. Otherwise why not
    (``no_visit``, ``several_visits``).

    A reminder stops standing once its visit's day is over (last week's visit must not keep
    next week's booking from being answered) or once the booking was moved to another time.
    Until then a digit may be a late or repeated answer to it, so a reminded visit already
    cancelled or begun is never swapped for another one: the family is pointed to the links."""
    reminder = session.scalar(
        select(OutboxMessage)
        .where(
            OutboxMessage.recipient == phone,
            OutboxMessage.kind == "reminder",
            OutboxMessage.status.in_(WENT_OUT),
        )
        .order_by(OutboxMessage.last_attempt_at.desc().nulls_last(), OutboxMessage.id.desc())
        .limit(1)
    )
    reminded = None
    if reminder is not None and reminder.subject.startswith("booking:"):
        reminded = session.scalar(
            select(Booking).where(Booking.reference == reminder.subject.removeprefix("booking:"))
        )
    coming = session.scalars(
        select(Booking)
        .join(Slot, Booking.slot_id == Slot.id)
        .where(
            Booking.contact_phone == phone,
            Booking.status == BookingStatus.CONFIRMED,
            Slot.starts_at > now,
        )
        .limit(2)
    ).all()
    if reminded is not None and _still_stands(reminder, reminded, now):
        if reminded.can_change(now):
            return reminded
        return "several_visits" if coming else "no_visit"
    if len(coming) == 1:
        return coming[0]
    return "several_visits" if coming else "no_visit"


def _still_stands(reminder: OutboxMessage, booking: Booking, now: datetime) -> bool:
    """Whether a reminder that went out still decides what a digit is about: its visit's day
    is not over, and the booking is still at the time it reminded of."""
    slot = booking.slot
    if slot.local_date < now.astimezone(booking.prison.tz).date():
        return False
    return reminder.expires_at is None or reminder.expires_at == slot.starts_at


def _language(session: Session, phone: str) -> str:
    """The language this phone was last written to in."""
    language = session.scalar(
        select(OutboxMessage.language)
        .where(OutboxMessage.recipient == phone)
        .order_by(OutboxMessage.id.desc())
        .limit(1)
    )
    return language or DEFAULT_LOCALE


def _cancelled(session: Session, booking: Booking, policy: SmsPolicy, now: datetime) -> bool:
    try:
        with session.begin_nested():
            bookings.cancel_booking(
                session, booking, now=now, actor="sms", sms_policy=policy, answering=True
            )
    except Rejected:
        return False  # it began or was cancelled meanwhile: answered as "no visit"
    return True


def handle_inbound(
    session: Session,
    *,
    provider_sid: str,
    sender: str,
    body: str,
    policy: SmsPolicy,
    now: datetime,
) -> Received | None:
    """Record and act on one inbound text, in the caller's write transaction; ``None`` when
    this text was handled before (the provider repeats webhooks)."""
    received = receive(session, provider_sid=provider_sid, sender=sender, body=body, now=now)
    if received is None:
        return None
    inbound = received.message
    language = _language(session, sender)

    def answer(kind: str) -> None:
        queue_reply(
            session,
            phone=sender,
            language=language,
            kind=kind,
            policy=policy,
            reply_to=inbound.id,
            now=now,
        )

    if inbound.intent in (Intent.OPT_OUT, Intent.OPT_IN):
        inbound.handled_as = inbound.intent.value
        # The provider answers its own keywords itself (and refuses to send after STOP).
        if received.changed and not received.provider_answers:
            answer("opted_out" if inbound.intent is Intent.OPT_OUT else "opted_in")
        return received
    if inbound.intent is Intent.HELP and received.provider_answers:
        inbound.handled_as = "help by provider"  # Twilio answers HELP and INFO itself
        return received
    word = normalise(inbound.body)  # as recorded: without NUL characters
    if word not in (COMING, NOT_COMING):
        answer("help")
        inbound.handled_as = "help"
        return received
    booking = _visit_in_question(session, sender, now)
    if isinstance(booking, str):
        answer(booking)
        inbound.handled_as = booking.replace("_", " ")
    elif word == NOT_COMING:
        if _cancelled(session, booking, policy, now):
            inbound.handled_as = f"cancelled {booking.reference}"
        else:
            answer("no_visit")
            inbound.handled_as = "no visit"
    else:
        bookings.record_attending(session, booking, now)
        queue_attending(session, booking, policy, now, reply_to=inbound.id)
        inbound.handled_as = f"coming {booking.reference}"
    return received
