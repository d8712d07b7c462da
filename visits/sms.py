"""What families are told by SMS, in their language, and when.

The domain decides; the channel (:mod:`notifications`) sends. Every function here queues into
the caller's session, so a message commits or rolls back with the change that caused it
(invariant 2). Texts are plain, within one 160-character GSM-7 segment (the prison's name is
shortened if a long one would not fit), and never ask for a word reply: carriers treat words
like CANCEL and STOP as opt-outs, so families answer with digits (1 = I come, 2 = I cannot).

SMS texts use *usted*, as official messages in Peru do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from babel.dates import format_date
from sqlalchemy.orm import Session

from notifications import gsm, outbox
from notifications.outbox import Draft
from visits.i18n import N_, SUPPORTED_LOCALES, Np_, gettext, ngettext, use_locale
from visits.reference import LINK_MASK, SHORT_LINK_LENGTH

if TYPE_CHECKING:
    from visits.booking import Booking
    from visits.health import Measures
    from visits.settings import Settings

MIN_PRISON_NAME = 12
ELLIPSIS = "..."

TEXTS = {
    # The reference too: with it and the phone, "Find my booking" leads to where the code is
    # typed when that page is gone (web.family.find_submit). No link: it would open the
    # booking to whoever holds the SMS without the code, and codes that come with links are
    # what phishing looks like.
    "code": N_(
        "Your code for visit booking %(ref)s is %(code)s. It expires in %(minutes)s minutes. "
        "Do not share it."
    ),
    "confirmed": N_(
        "Visit %(ref)s confirmed: %(when)s, %(prison)s, %(people)s. Change or cancel: %(link)s"
    ),
    "reminder": N_(
        "Reminder: visit %(ref)s %(when)s, %(prison)s. "
        "Reply 1 if you are coming, 2 if you cannot come."
    ),
    "cancelled": N_(
        "Visit %(ref)s (%(when)s) is cancelled and its places are free. To book again: %(link)s"
    ),
    "closed": N_(
        "Visit %(ref)s (%(when)s) is cancelled: %(prison)s has no visits at that time. "
        "Sorry. To book again: %(link)s"
    ),
    "inmate_suspended": N_(
        "Visit %(ref)s (%(when)s) is cancelled: visits to the person you visit are suspended "
        "for now. Please ask %(prison)s."
    ),
    "inmate_not_active": N_(
        "Visit %(ref)s (%(when)s) is cancelled: the person you visit can no longer receive "
        "visits at %(prison)s. Please ask the prison."
    ),
    "visitor_barred": N_(
        "Visit %(ref)s (%(when)s) is cancelled: a visitor in it may not come to %(prison)s. "
        "Book without them: %(link)s"
    ),
    "health_suspended": N_(
        "Visit %(ref)s (%(when)s) cancelled: a health measure pauses visits at %(prison)s. "
        "Sorry. Book later: %(link)s"
    ),
    "health_measure": N_(
        "Visit %(ref)s (%(when)s), %(prison)s: a health measure applies. %(measures)sMore: %(link)s"
    ),
    "health_lifted": N_(
        "Visit %(ref)s (%(when)s), %(prison)s: the health measure no longer applies. More: %(link)s"
    ),
    "health_reopened": N_(
        "Good news: after a health measure, visits at %(prison)s can be booked again. "
        "To book: %(link)s"
    ),
    "screening_advice": N_(
        "We care about your health: the TB check is free at any health post. Please get it "
        "before you visit again. Visit %(ref)s."
    ),
    # Exposure tracing (visits.tracing): never a diagnosis, the person visited or anyone else.
    "contact_tier1": N_(
        "Health notice after visiting %(prison)s: please get a free check-up at your health "
        "post, even if you feel well. Show this message."
    ),
    "contact_tier2": N_(
        "Health notice after visiting %(prison)s: watch for a cough of 15 days or more, phlegm, "
        "fever, night sweats, weight loss. Free check at your health post."
    ),
    "moved": N_("Visit %(ref)s moved: %(when)s, %(prison)s. Change or cancel: %(link)s"),
    "attending": N_("Thank you. We expect you %(when)s, %(prison)s. Visit %(ref)s."),
    "help": N_(
        "Visits: reply 1 if you are coming to your visit, 2 if you cannot. "
        "Send BAJA to stop these messages. Info: %(link)s"
    ),
    "no_visit": N_("We found no coming visit for this phone. To book: %(link)s"),
    "several_visits": N_(
        "This phone has several visits booked. To change one, use the link in its SMS or %(link)s"
    ),
    "opted_out": N_("You will get no more messages from Visits. Send ALTA to get them again."),
    "opted_in": N_("You will get messages from Visits again. Send BAJA to stop them."),
}
# The texts that are health information about the one who got them: that they may have been
# exposed (a contact's notice, :mod:`visits.tracing`) or that their family reported a TB symptom
# (the screening advice). Administrators never see them, not even as "a health message": which
# phone got one is the secret, so no line, count or filter of theirs may show it (web.admin).
# Health staff see the notices on the advisory's contact list. A health measure's, suspension's
# or reopening's text is not among them: it tells of a measure over a wing or a prison, the same
# for every family visiting there, and administrators answer families' questions about it.
HEALTH_PRIVATE = frozenset({"screening_advice", "contact_tier1", "contact_tier2"})
# Texts allowed more than one segment: what a family must do at the gate does not fit in one.
SEGMENTS = {"health_measure": 2}
# The texts whose link is the service's home page, not the booking's own short link: a
# cancelled booking has nothing left to manage, and a reply may concern no booking.
HOME_LINKED = frozenset({
    "cancelled", "closed", "inmate_suspended", "inmate_not_active", "visitor_barred",
    "health_suspended", "health_reopened", "help", "no_visit", "several_visits", "opted_out",
    "opted_in",
})  # fmt: skip
# What a health measure asks of the family, one short sentence each (never why).
MEASURE_TEXTS = {
    "masks": N_("Wear an N95 mask."),
    "non_contact": N_("No physical contact."),
    "visit_minutes": N_("The visit lasts at most %(num)s min."),
    "no_high_risk": N_(
        "Children under 5, pregnant women and people with low defences must not come."
    ),
}
_PEOPLE = Np_("%(num)s person", "%(num)s people")
_WHEN = N_("on %(day)s at %(time)s")


@dataclass(frozen=True)
class SmsPolicy:
    """How and when families are written to (from :class:`visits.settings.Settings`)."""

    public_base_url: str
    secret_key: str
    verification: bool = True
    verification_time: timedelta = timedelta(minutes=10)
    verification_attempts: int = 5
    verification_sends_per_hour: int = 5
    # Bookings waiting for their code at once, per client address and per person visited
    # (visits.booking.unconfirmed_problem), and the countries whose mobiles get our SMS
    # (visits.booking_request.parse_phone).
    unconfirmed_per_client: int = 3
    unconfirmed_per_inmate: int = 2
    # Codes sent per hour at one client address's asking (visits.verification.send_wait).
    code_sends_per_client: int = 20
    phone_countries: tuple[str, ...] = ("PE",)
    reminders_before: tuple[timedelta, ...] = (timedelta(hours=24),)
    morning_at: time | None = time(7, 0)

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsPolicy:
        return cls(
            public_base_url=settings.public_base_url.rstrip("/"),
            secret_key=settings.signing_key(),
            verification=settings.phone_verification,
            verification_time=timedelta(minutes=settings.verification_minutes),
            verification_attempts=settings.verification_attempts,
            verification_sends_per_hour=settings.verification_sends_per_hour,
            unconfirmed_per_client=settings.max_unconfirmed_per_client,
            unconfirmed_per_inmate=settings.max_unconfirmed_per_inmate,
            code_sends_per_client=settings.max_code_sms_per_client_per_hour,
            phone_countries=settings.phone_countries,
            reminders_before=tuple(timedelta(hours=h) for h in settings.reminder_hours_before),
            morning_at=settings.reminder_morning_at,
        )

    def short_link(self, reference: str) -> str:
        """A manage link short enough for an SMS: ``/m/`` + reference + 8 signed characters."""
        return f"{self.public_base_url}/m/{reference}{short_token(self.secret_key, reference)}"

    def redact_link(self, text: str, reference: str) -> str | None:
        """``text`` with the manage link's signature masked, or None when it has no manage
        link. The signature opens the booking as the family, so staff (who have their own
        audited booking page) never see it and the outbox keeps no working link once sent."""
        link = self.short_link(reference)
        if link not in text:
            return None
        return text.replace(link, f"{self.public_base_url}/m/{reference}{LINK_MASK}")


def short_token(secret_key: str, reference: str) -> str:
    digest = hmac.new(secret_key.encode(), f"sms-link:{reference}".encode(), hashlib.sha256)
    return base64.b32encode(digest.digest()).decode()[:SHORT_LINK_LENGTH].lower()


def short_token_matches(secret_key: str, reference: str, token: str) -> bool:
    return hmac.compare_digest(short_token(secret_key, reference).encode(), token.encode())


def render(kind: str, language: str, params: Mapping[str, Any]) -> str:
    """One text in one language, in GSM-7; a prison name too long for its segments (one, or
    :data:`SEGMENTS`) is cut (never the reference, the code or the link)."""
    parts = SEGMENTS.get(kind, 1)
    limit = gsm.SINGLE_SEGMENT if parts == 1 else parts * gsm.PART_SEGMENT
    with use_locale(language):
        values = dict(params)
        name = gsm.transliterate(str(values.get("prison", "")))
        cut = False
        while True:
            text = gsm.transliterate(gettext(TEXTS[kind], values))
            excess = gsm.septets(text) - limit
            if excess <= 0 or len(name) <= MIN_PRISON_NAME:
                # A cut name before the text's own full stop: one "...", not four dots.
                return text.replace(ELLIPSIS + ".", ELLIPSIS) if cut else text
            cut = True
            name = name[: max(len(name) - excess - len(ELLIPSIS), MIN_PRISON_NAME)]
            values["prison"] = name.rstrip(" .,;:-") + ELLIPSIS  # never "E.P....."


def texts_too_long(public_base_url: str) -> list[str]:
    """The texts (``kind/language``) that would need more segments than they are allowed with
    this public address, even with the prison's name cut as short as it may be. The address
    is in most texts and is never cut: a long one would make those SMS cost double, every
    one, so the settings refuse it (:class:`visits.settings.Settings`)."""
    from visits.health import Measures

    home = public_base_url.rstrip("/")
    short_link = f"{home}/m/{'A' * 8}{'a' * SHORT_LINK_LENGTH}"  # as SmsPolicy.short_link
    every_measure = Measures(masks=True, no_high_risk=True, non_contact=True, visit_minutes=999)
    too_long = []
    for language in SUPPORTED_LOCALES:
        with use_locale(language):
            people = ngettext(*_PEOPLE, 10)
        longest = {  # the longest value each placeholder takes
            "ref": "ABCD-EFGH",
            "when": _when_local(datetime(2026, 9, 28, 15, 30, tzinfo=UTC), language),
            "prison": "X" * 200,
            "people": people,
            "code": "123456",
            "minutes": 999,
            "measures": measure_sentences(every_measure, language),
        }
        for kind in TEXTS:
            link = home if kind in HOME_LINKED else short_link
            text = render(kind, language, {**longest, "link": link})
            if gsm.segments(text) > SEGMENTS.get(kind, 1):
                too_long.append(f"{kind}/{language}")
    return too_long


# The day in as few characters as its readers cannot misread: day/month is Peru's order, but
# an English reader takes 09/12 for September 12, so English names the month ("Dec 9").
_SMS_DAY = {"es": "dd/MM", "en": "MMM d"}


def _when(booking: Booking, language: str) -> str:
    return _when_local(booking.slot.starts_at.astimezone(booking.prison.tz), language)


def _when_local(local: datetime, language: str) -> str:
    day = format_date(local.date(), _SMS_DAY.get(language, "dd/MM"), locale=language)
    with use_locale(language):
        return gettext(_WHEN, {"day": day, "time": local.strftime("%H:%M")})


def _params(booking: Booking, policy: SmsPolicy) -> dict[str, Any]:
    with use_locale(booking.language):
        people = ngettext(*_PEOPLE, booking.party_size)
    return {
        "ref": booking.display_reference,
        "when": _when(booking, booking.language),
        "prison": booking.prison.name,
        "people": people,
        "link": policy.short_link(booking.reference),
    }


def subject(booking: Booking) -> str:
    return f"booking:{booking.reference}"


def _draft(
    booking: Booking,
    kind: str,
    key: str,
    *,
    params: Mapping[str, Any],
    policy: SmsPolicy,
    **extra: Any,
) -> Draft:
    """One text about ``booking``; one that carries its manage link gets a redacted copy
    (:meth:`SmsPolicy.redact_link`), as a code does, which staff see and the outbox keeps."""
    body = render(kind, booking.language, params)
    extra.setdefault("redacted_body", policy.redact_link(body, booking.reference))
    return Draft(
        recipient=booking.contact_phone,
        body=body,
        language=booking.language,
        dedupe_key=key,
        kind=kind,
        subject=subject(booking),
        **extra,
    )


def _queue(
    session: Session,
    booking: Booking,
    kind: str,
    key: str,
    now: datetime,
    policy: SmsPolicy,
    **extra: Any,
) -> None:
    outbox.enqueue(session, _draft(booking, kind, key, policy=policy, **extra), now)


def queue_code(
    session: Session, booking: Booking, code: str, key: str, policy: SmsPolicy, now: datetime
) -> None:
    """The verification code: essential (the family is waiting for it), never kept readable."""
    minutes = int(policy.verification_time.total_seconds() // 60)
    # Only the newest code works: an older one still waiting to leave would only confuse.
    outbox.cancel_pending(session, subject(booking), now, "replaced by a new code", kind="code")
    _queue(
        session,
        booking,
        "code",
        key,
        now,
        policy,
        params={"ref": booking.display_reference, "code": code, "minutes": minutes},
        essential=True,
        expires_at=booking.hold_expires_at,
        redacted_body=render(
            "code",
            booking.language,
            {"ref": booking.display_reference, "code": "******", "minutes": minutes},
        ),
    )


def reminder_times(booking: Booking, policy: SmsPolicy) -> list[tuple[str, datetime]]:
    """When to remind: so long before the visit, and on its morning at the local hour."""
    starts = booking.slot.starts_at
    times = [(f"{int(b.total_seconds() // 60)}m", starts - b) for b in policy.reminders_before]
    if policy.morning_at is not None:
        morning = datetime.combine(booking.slot.local_date, policy.morning_at, booking.prison.tz)
        times.append(("morning", morning))
    return times


def queue_confirmed(
    session: Session, booking: Booking, policy: SmsPolicy, now: datetime, *, remind: bool = True
) -> None:
    """The confirmation, and the reminders still ahead (none when not ``remind``: its time
    was closed meanwhile, see :func:`withdraw_reminders`)."""
    params = _params(booking, policy)
    confirmed = _draft(
        booking, "confirmed", f"{subject(booking)}:confirmed", params=params, policy=policy
    )
    reminders = _reminders(booking, policy, now, params) if remind else []
    outbox.enqueue_all(session, [confirmed, *reminders], now)


# Why a booking's reminders were withdrawn while the booking stays (see withdraw_reminders).
TIME_CLOSED = "visit time closed"


def withdraw_reminders(session: Session, booking: Booking, now: datetime) -> None:
    """No reminder for a visit in a time closed to visits. The prison file can close a booked
    time without cancelling its bookings (:mod:`visits.closing`): "your visit tomorrow" would
    send the family to a closed prison. Their booking awaits an administrator's cancellation,
    which texts them why; its reminders come back if the time opens again
    (:func:`queue_reminders`)."""
    outbox.cancel_pending(session, subject(booking), now, TIME_CLOSED, kind="reminder")


def queue_reminders(session: Session, booking: Booking, policy: SmsPolicy, now: datetime) -> None:
    """The reminders still ahead, again: those withdrawn (never sent) are queued again, the
    others are left as they are."""
    outbox.enqueue_all(session, _reminders(booking, policy, now, _params(booking, policy)), now)


def _reminders(
    booking: Booking, policy: SmsPolicy, now: datetime, params: dict[str, Any]
) -> list[Draft]:
    starts = booking.slot.starts_at
    return [
        _draft(
            booking,
            "reminder",
            f"{subject(booking)}:reminder:{label}:{booking.slot_id}",
            params=params,
            policy=policy,
            send_after=at,
            expires_at=starts,
        )
        for label, at in reminder_times(booking, policy)
        # A reminder whose time has passed would arrive out of place; one after the start is
        # no reminder at all.
        if now < at < starts
    ]


def withdraw(session: Session, booking: Booking, now: datetime, reason: str) -> None:
    """Cancel this booking's messages that have not left yet (reminders, an unused code)."""
    outbox.cancel_pending(session, subject(booking), now, reason)


def queue_cancelled(
    session: Session,
    booking: Booking,
    policy: SmsPolicy,
    now: datetime,
    essential: bool = False,
    kind: str = "cancelled",
) -> None:
    """Cancel what was still to come and tell the family the visit is off (``kind``: the
    text that says why, when the prison cancelled it; see :class:`visits.booking.CancelCause`)."""
    withdraw(session, booking, now, "booking cancelled")
    params = {**_params(booking, policy), "link": policy.public_base_url}
    key = f"{subject(booking)}:cancelled"
    _queue(session, booking, kind, key, now, policy, params=params, essential=essential)


def measure_sentences(measures: Measures, language: str) -> str:
    """What the measures ask of the family, in a few words each, in their language."""
    with use_locale(language):
        said = [
            gettext(MEASURE_TEXTS[name], {"num": measures.visit_minutes})
            for name in MEASURE_TEXTS
            if getattr(measures, name)
        ]
    return "".join(f"{sentence} " for sentence in said)


def queue_health_measure(
    session: Session, booking: Booking, policy: SmsPolicy, now: datetime, measures: Measures
) -> bool:
    """Tell the family the health measures for their visit and what they ask, unless the
    last thing they were told for this booking says the same (re-issued, re-evaluated, or the
    same measures under another advisory). Measures that change and change back are told
    again: the family's last message must match what applies. None left (``Measures()``, an
    advisory lifted): a family told of measures for this booking is told they no longer apply,
    or it would keep a child home, or buy a mask, for nothing. Whether a message was queued."""
    news, said, sent = _health_news(session, booking, measures)
    if not news:
        return False
    key = f"{subject(booking)}:health:{said}:{sent}"
    if not measures.any:
        _queue(session, booking, "health_lifted", key, now, policy, params=_params(booking, policy))
        return True
    params = {**_params(booking, policy), "measures": measure_sentences(measures, booking.language)}
    _queue(session, booking, "health_measure", key, now, policy, params=params)
    return True


# What a health text says when no measure applies (in its dedupe key, as :attr:`Measures.said`).
_NONE_SAID = "none"


def health_news(session: Session, booking: Booking, measures: Measures) -> bool:
    """Whether :func:`queue_health_measure` would text the family of these measures: their
    last health text for this booking says otherwise (what lifting's preview counts)."""
    return _health_news(session, booking, measures)[0]


def _health_news(session: Session, booking: Booking, measures: Measures) -> tuple[bool, str, int]:
    """Whether the family's last health text says other than ``measures``; what a text of them
    says (in its key); how many health texts the booking had."""
    said = measures.said if measures.any else _NONE_SAID
    history = outbox.history(session, subject(booking), ("health_measure", "health_lifted"))
    told = [m for m in history if m.status is not outbox.MessageStatus.CANCELLED]
    return (told[-1].dedupe_key.split(":")[3] if told else _NONE_SAID) != said, said, len(history)


def queue_health_reopened(
    session: Session, booking: Booking, policy: SmsPolicy, now: datetime, key: str
) -> None:
    """Visits a health measure paused can be booked again: the family whose booking it
    cancelled is told, with the service's address."""
    params = {**_params(booking, policy), "link": policy.public_base_url}
    _queue(session, booking, "health_reopened", key, now, policy, params=params)


def queue_screening_advice(
    session: Session, booking: Booking, policy: SmsPolicy, now: datetime, key: str
) -> None:
    """A visitor's answers call for a free TB check: the family is told, kindly, where."""
    params = _params(booking, policy)
    _queue(session, booking, "screening_advice", key, now, policy, params=params)


def queue_moved(
    session: Session, booking: Booking, policy: SmsPolicy, now: datetime, change_id: int
) -> None:
    """Reminders for the old time are cancelled, the new time's are queued, and the family is
    told the new time."""
    withdraw(session, booking, now, "booking moved")
    params = _params(booking, policy)
    moved = _draft(
        booking, "moved", f"{subject(booking)}:moved:{change_id}", params=params, policy=policy
    )
    outbox.enqueue_all(session, [moved, *_reminders(booking, policy, now, params)], now)


def queue_attending(
    session: Session, booking: Booking, policy: SmsPolicy, now: datetime, reply_to: int
) -> None:
    _queue(
        session,
        booking,
        "attending",
        f"inbound:{reply_to}:reply",
        now,
        policy,
        params=_params(booking, policy),
        essential=True,
    )


def queue_reply(
    session: Session,
    *,
    phone: str,
    language: str,
    kind: str,
    policy: SmsPolicy,
    reply_to: int,
    now: datetime,
) -> None:
    """An answer to a text that concerns no particular booking (help, opt-out notices)."""
    outbox.enqueue(
        session,
        Draft(
            recipient=phone,
            body=render(kind, language, {"link": policy.public_base_url}),
            language=language,
            dedupe_key=f"inbound:{reply_to}:reply",
            kind=kind,
            essential=True,
        ),
        now,
    )


def contact_notice_kind(tier: int) -> str:
    """The outbox ``kind`` of a contact's notice at ``tier``."""
    return f"contact_tier{tier}"


def contact_notice(
    *, phone: str, language: str, tier: int, prison: str, key: str, subject: str
) -> Draft:
    """A visitor's notice of exposure (:mod:`visits.tracing`): tier 1 is asked to get
    evaluated, tier 2 to watch for symptoms; both are told the check is free."""
    kind = contact_notice_kind(tier)
    return Draft(
        recipient=phone,
        body=render(kind, language, {"prison": prison}),
        language=language,
        dedupe_key=key,
        kind=kind,
        subject=subject,
    )
