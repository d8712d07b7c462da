"""Exposure tracing: who visited while a case was infectious, how close they came, and telling
each of them once. The rules are :mod:`visits.health`; this module asks them of the database,
in one query, and records who was told.

Who is a contact of an advisory with an infectious-since date: a visitor of a visit whose day
is in the lookback window (:func:`visits.health.lookback_window`, from so many days before the
case was infectious to the day the advisory's measures took effect, both days included) and
whose visit has begun (visitors in the room now were exposed too; a booking still to come is
never a contact). By the booking's status:

- ``attended`` and ``confirmed``: each visitor the gate let in, and each visitor the gate
  recorded nothing for (an unmarked list is no proof that someone stayed away). A visitor
  turned away never came in and is not a contact; a booking whose visitors were all turned
  away stays ``confirmed``, hence the check per visitor.
- ``no_show`` (a guard said nobody came), ``cancelled`` (expired holds included: the visit did
  not happen) and ``held`` (never confirmed, and the gate admits no held booking): no contact.

``booking_visitor.active`` only says whether a visit takes its visitor's day (false once
cancelled, unless the gate saw the visitor: see :func:`visits.booking.cancel_booking`), so
the booking's status decides, not it.

Tiers are :func:`visits.health.tier_of` exactly: tier 1 visited the index inmate, or is a
high-risk visitor (under 5 on the visit day by the birth date given for that visit, or
``high_risk``: answered pregnant or with low defences at screening) who visited the advisory's
wing (the whole prison for a prison advisory); tier 2 visited anyone else in that wing or
prison. A visitor is listed once, at the closest tier of their visits, with the last day they
visited in the window and the phone and language of that visit's booking.

Known limit: the wing of a visit is the inmate's wing now (``inmate.wing_id``), not where they
lived on the visit day: the roster keeps no history of moves. An inmate moved since is traced
with their new wing.

Notifying sends one SMS per phone, at the closest tier of the visitors who share it, in that
booking's language, and records every visitor told (:class:`ContactNotice`): sending again, or
two health users at once, tells nobody twice; a visitor found later (a visit of the measures'
first day, for instance) is told then.

What became of each notice (:func:`deliveries`) is read from the outbox: a notice records the
phone and tier told, and those name its SMS (:func:`notice_key`), so no column links them and
the outbox's own purge needs no care of notices. A notice whose SMS failed, was not delivered
or never went reached nobody, and health staff must reach that contact another way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (
    ColumnElement,
    ForeignKey,
    Index,
    Select,
    String,
    UniqueConstraint,
    and_,
    case,
    extract,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from notifications import outbox
from notifications.outbox import MessageStatus, OutboxMessage
from visits import audit, health, sms
from visits.advisories import HealthAdvisory
from visits.base import Base, UTCDateTime
from visits.booking import Booking, BookingStatus, BookingVisitor
from visits.db import lock_rows, require_write_lock
from visits.gate import GateCheck, GateStatus
from visits.health import UNDER_FIVE, Scope, Tier, TracingPolicy
from visits.inmate import Inmate
from visits.prison import Prison
from visits.problems import Code, Problem, Rejected
from visits.schedule import Slot
from visits.visitor import DocumentType, Visitor

# The bookings whose visitors may have come in (see the module's docstring).
CONTACT_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.ATTENDED)


class ContactNotice(Base):
    """A visitor told of an advisory's exposure: once per advisory, whatever happens."""

    __tablename__ = "contact_notice"
    __table_args__ = (
        UniqueConstraint("advisory_id", "visitor_id"),
        # Deleting a visitor (visits.retention) checks their notices.
        Index("ix_contact_notice_visitor_id", "visitor_id"),
        # The retention purge deletes the oldest notices.
        Index("ix_contact_notice_at", "at"),
        # ...and which phones notices still hold.
        Index("ix_contact_notice_phone", "phone"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    advisory_id: Mapped[int] = mapped_column(ForeignKey("health_advisory.id", ondelete="CASCADE"))
    visitor_id: Mapped[int] = mapped_column(ForeignKey("visitor.id", ondelete="CASCADE"))
    tier: Mapped[int]
    # The number the SMS went to (shared by the visitors of one family); empty: none.
    phone: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class Contact:
    visitor_id: int
    first_names: str
    last_names: str
    doc_type: DocumentType
    doc_number: str
    tier: Tier
    last_visit: date
    phone: str
    language: str

    @property
    def name(self) -> str:
        return f"{self.first_names} {self.last_names}"


@dataclass(frozen=True)
class ContactList:
    advisory: HealthAdvisory
    window: tuple[date, date]
    contacts: list[Contact]

    def count(self, tier: Tier) -> int:
        return sum(1 for c in self.contacts if c.tier is tier)


def window(advisory: HealthAdvisory, policy: TracingPolicy) -> tuple[date, date]:
    """The first and last visit days traced; an advisory without an infectious-since date has
    no window (:class:`Rejected`)."""
    if advisory.infectious_since is None:
        raise Rejected([Problem(Code.NO_INFECTIOUS_SINCE)])
    return health.lookback_window(
        advisory.infectious_since,
        advisory.starts_on,
        smear_negative_no_cavity=advisory.smear_negative_no_cavity,
        policy=policy,
    )


def _yyyymmdd(day: ColumnElement[date]) -> ColumnElement[int]:
    """A date as the number YYYYMMDD: the difference of two of them, divided by 10,000, is
    the completed years between them exactly as :func:`visits.rules.age_on` counts (29
    February included), on both databases."""
    return extract("year", day) * 10_000 + extract("month", day) * 100 + extract("day", day)


def contact_query(advisory: HealthAdvisory, first: date, last: date, now: datetime) -> Select:
    """Every contact of the advisory once (see the module's docstring): one query, its rows
    ``(visitor_id, first_names, last_names, doc_type, doc_number, tier, last_visit, phone,
    language)``, closest tier first, then by name."""
    day = Slot.local_date
    under_five = _yyyymmdd(day) - _yyyymmdd(BookingVisitor.birth_date) < UNDER_FIVE * 10_000
    high_risk = or_(BookingVisitor.high_risk, under_five)
    index_inmate = (
        Booking.inmate_id == advisory.inmate_id if advisory.scope is Scope.INMATE else false()
    )
    if advisory.scope is Scope.PRISON:
        same_wing: ColumnElement[bool] = true()
    elif advisory.wing_id is None:  # an index inmate who lives in no wing
        same_wing = false()
    else:
        same_wing = Inmate.wing_id == advisory.wing_id
    visits = (
        select(
            BookingVisitor.visitor_id,
            day.label("day"),
            Booking.id.label("booking_id"),
            Booking.contact_phone.label("phone"),
            Booking.language.label("language"),
            case((index_inmate, 1), (high_risk, 1), else_=2).label("tier"),
        )
        .select_from(BookingVisitor)
        .join(Booking, Booking.id == BookingVisitor.booking_id)
        .join(Slot, Slot.id == Booking.slot_id)
        .join(Inmate, Inmate.id == Booking.inmate_id)
        .outerjoin(GateCheck, GateCheck.booking_visitor_id == BookingVisitor.id)
        .where(
            Slot.prison_id == advisory.prison_id,
            day >= first,
            day <= last,
            Slot.starts_at <= now,
            Booking.status.in_(CONTACT_STATUSES),
            or_(GateCheck.status.is_(None), GateCheck.status == GateStatus.ARRIVED),
            or_(index_inmate, same_wing),
        )
        .subquery("visits")
    )
    ranked = select(
        visits,
        func.min(visits.c.tier).over(partition_by=visits.c.visitor_id).label("closest"),
        func.row_number()
        .over(
            partition_by=visits.c.visitor_id,
            order_by=(visits.c.day.desc(), visits.c.booking_id.desc()),
        )
        .label("latest"),
    ).subquery("ranked")
    return (
        select(
            ranked.c.visitor_id,
            Visitor.first_names,
            Visitor.last_names,
            Visitor.doc_type,
            Visitor.doc_number,
            ranked.c.closest,
            ranked.c.day,
            ranked.c.phone,
            ranked.c.language,
        )
        .join(Visitor, Visitor.id == ranked.c.visitor_id)
        .where(ranked.c.latest == 1)
        .order_by(ranked.c.closest, Visitor.last_names, Visitor.first_names, Visitor.id)
    )


def contacts(
    session: Session, advisory: HealthAdvisory, now: datetime, policy: TracingPolicy
) -> ContactList:
    """The advisory's contacts as of ``now`` (:class:`Rejected` without infectious-since)."""
    first, last = window(advisory, policy)
    rows = session.execute(contact_query(advisory, first, last, now))
    found = [
        Contact(
            visitor_id=visitor_id,
            first_names=first_names,
            last_names=last_names,
            doc_type=doc_type,
            doc_number=doc_number,
            tier=Tier(int(tier)),
            last_visit=day,
            phone=phone,
            language=language,
        )
        for visitor_id, first_names, last_names, doc_type, doc_number, tier, day, phone, language
        in rows
    ]  # fmt: skip
    return ContactList(advisory, (first, last), found)


def advisory_of(session: Session, prison: Prison, advisory_id: int) -> HealthAdvisory:
    """The advisory, if it is this prison's (else :class:`Rejected`: not found)."""
    advisory = session.get(HealthAdvisory, advisory_id)
    if advisory is None or advisory.prison_id != prison.id:
        raise Rejected([Problem(Code.NOT_FOUND)])
    return advisory


# --- Telling them --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """One SMS: to a phone, at the closest tier of the visitors who share it."""

    phone: str
    tier: Tier
    language: str
    visitor_ids: tuple[int, ...]


@dataclass
class NoticePlan:
    sms: list[Outgoing]  # what to send now
    new: list[Contact]  # every visitor to tell now: each is recorded as told (at their tier)
    already: int  # visitors told before, at their tier or closer
    # After notifying: SMS not sent because the number asked for none or cannot get them.
    unreachable: int = 0
    # After notifying: SMS queued to go.
    queued: int = 0
    # After notifying: visitors recorded as told, with an SMS or without (their phone was
    # told already, or none was kept).
    recorded: int = 0
    # The same notification sent again (its form's key): nothing was done now (``sms`` and
    # ``new`` are empty); ``queued``, ``unreachable`` and ``recorded`` are what the first did.
    replayed: bool = False

    @property
    def visitors(self) -> int:
        return len(self.new)


def plan(contacts: Iterable[Contact], told: Mapping[int, tuple[str, Tier]]) -> NoticePlan:
    """Who to tell now, given who was told before (visitor id → the phone and tier recorded):
    everyone not told, and everyone told at a farther tier than theirs now.

    Visitors who share a phone get one SMS, at their closest tier, in the language of that
    visitor's booking. A phone already sent this tier or a closer one for this advisory gets
    nothing new (its new visitors are recorded as told by it); a phone told "watch for
    symptoms" whose new visitor is tier 1 gets the tier-1 text too. A contact whose booking
    lost its phone (purged) is recorded without an SMS.
    """
    listed = list(contacts)
    # Not told yet, or told "watch for symptoms" and tier 1 now (a visit of the measures'
    # first day, a high-risk answer at the gate): they get the tier-1 text.
    fresh = [c for c in listed if c.visitor_id not in told or c.tier < told[c.visitor_id][1]]
    sent: dict[str, Tier] = {}
    for phone, tier in told.values():
        sent[phone] = min(tier, sent.get(phone, tier))
    by_phone: dict[str, list[Contact]] = {}
    for contact in fresh:
        by_phone.setdefault(contact.phone, []).append(contact)
    outgoing = []
    for phone, group in by_phone.items():
        closest = min(group, key=lambda c: (c.tier, -c.last_visit.toordinal(), c.visitor_id))
        if not phone or (phone in sent and sent[phone] <= closest.tier):
            continue
        ids = tuple(c.visitor_id for c in group)
        outgoing.append(Outgoing(phone, closest.tier, closest.language, ids))
    return NoticePlan(outgoing, fresh, len(listed) - len(fresh))


def told(session: Session, advisory_id: int) -> dict[int, tuple[str, Tier]]:
    """Visitor id → the phone and tier recorded when they were told of this advisory."""
    rows = session.execute(
        select(ContactNotice.visitor_id, ContactNotice.phone, ContactNotice.tier).where(
            ContactNotice.advisory_id == advisory_id
        )
    )
    return {visitor_id: (phone, Tier(tier)) for visitor_id, phone, tier in rows}


def notice_subject(advisory_id: int) -> str:
    """The outbox subject of every SMS notifying the advisory's contacts."""
    return f"advisory:{advisory_id}"


def _key_prefix(advisory_id: int) -> str:
    return f"{notice_subject(advisory_id)}:contact:"


def notice_key(advisory_id: int, phone: str, tier: Tier) -> str:
    """The dedupe key of the advisory's SMS to ``phone`` at ``tier``: one of each at most, and
    how a notice (which records the phone and tier) finds its SMS (:func:`deliveries`)."""
    return f"{_key_prefix(advisory_id)}{phone}:t{int(tier)}"


def preview(
    session: Session, advisory: HealthAdvisory, now: datetime, policy: TracingPolicy
) -> tuple[ContactList, NoticePlan, dict[int, Delivery]]:
    """The contact list, what notifying would send now, and what became of the notices sent
    (:func:`deliveries`, which also says who was told): two queries."""
    found = contacts(session, advisory, now, policy)
    delivered = deliveries(session, advisory.id)
    before = {visitor_id: (d.phone, d.tier) for visitor_id, d in delivered.items()}
    return found, plan(found.contacts, before), delivered


NOTIFIED = "advisory.contacts_notified"


def notify(
    session: Session,
    prison: Prison,
    advisory_id: int,
    *,
    now: datetime,
    actor: str,
    origin: str,
    policy: TracingPolicy,
    key: str = "",
) -> NoticePlan:
    """Queue the SMS of every contact not told yet, record each of them, and audit it (counts
    only, no names), in this transaction. The advisory's row is locked first: two health
    users notifying at once take turns, and the second finds everyone told.

    The contact page's form gives a one-off ``key`` (:func:`visits.audit.done_with`): the
    same click sent again (a double click, a reload) does nothing more and answers what the
    first did (``replayed``, with its counts). Decision: health staff are told "2 SMS are on
    their way" again, not "already sent" nor "0 SMS": with a double click the browser shows
    only the second answer, so it must say what the click did."""
    require_write_lock(session)
    locked = session.scalar(
        select(HealthAdvisory)
        .where(HealthAdvisory.id == advisory_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if locked is None or locked.prison_id != prison.id:
        raise Rejected([Problem(Code.NOT_FOUND)])
    key = audit.submission_key(key)
    earlier = audit.done_with(session, "advisory", locked.id, (NOTIFIED,), key)
    if earlier is not None:
        done = earlier.details
        unreachable = done.get("sms_not_possible", 0)
        queued = done.get("sms", 0) - unreachable
        recorded = done.get("visitors_told", 0)
        return NoticePlan([], [], done.get("already_told", 0), unreachable, queued, recorded, True)
    found = contacts(session, locked, now, policy)
    before = told(session, locked.id)
    planned = plan(found.contacts, before)
    # The people are locked, then read again: one the retention purge deleted meanwhile is
    # neither written to nor recorded (their record is gone, as it must be).
    people = [c.visitor_id for c in planned.new]
    lock_rows(session, Visitor.id, people)
    still = set(session.scalars(select(Visitor.id).where(Visitor.id.in_(people))))
    if len(still) < len(people):
        kept = [c for c in found.contacts if c.visitor_id in still or c.visitor_id in before]
        planned = plan(kept, before)
    drafts = [
        sms.contact_notice(
            phone=o.phone,
            language=o.language,
            tier=o.tier,
            prison=prison.name,
            key=notice_key(locked.id, o.phone, o.tier),
            subject=notice_subject(locked.id),
        )
        for o in planned.sms
    ]
    messages = outbox.enqueue_all(session, drafts, now)
    planned.unreachable = sum(1 for m in messages if m.status is MessageStatus.CANCELLED)
    planned.queued = len(messages) - planned.unreachable
    planned.recorded = planned.visitors
    first_time = [c for c in planned.new if c.visitor_id not in before]
    if first_time:
        session.execute(
            insert(ContactNotice),
            [
                {"advisory_id": locked.id, "visitor_id": c.visitor_id, "tier": int(c.tier),
                 "phone": c.phone, "at": now}
                for c in first_time
            ],
        )  # fmt: skip
    for contact in planned.new:
        if contact.visitor_id in before:  # told again, closer: the record says so
            session.execute(
                update(ContactNotice)
                .where(
                    ContactNotice.advisory_id == locked.id,
                    ContactNotice.visitor_id == contact.visitor_id,
                )
                .values(tier=int(contact.tier), phone=contact.phone, at=now)
            )
    audit.record(
        session,
        at=now,
        actor=actor,
        action=NOTIFIED,
        entity="advisory",
        entity_id=locked.id,
        details={
            "window": [d.isoformat() for d in found.window],
            "contacts": len(found.contacts),
            "visitors_told": planned.visitors,
            "already_told": planned.already,
            "sms": len(planned.sms),
            "sms_not_possible": planned.unreachable,
            "sms_tier_1": sum(1 for o in planned.sms if o.tier is Tier.ONE),
            "sms_tier_2": sum(1 for o in planned.sms if o.tier is Tier.TWO),
        }
        | ({"key": key} if key else {}),
        origin=origin,
    )
    session.flush()
    return planned


# --- What became of the notices -----------------------------------------------------------

# An SMS that reached nobody: the provider failed it or could not deliver it, or it never went
# (the number asked for no messages or cannot receive SMS: the outbox cancels it at once).
MISSED = frozenset({MessageStatus.UNDELIVERED, MessageStatus.FAILED, MessageStatus.CANCELLED})
# Of a phone's two SMS (told "watch for symptoms", then "get evaluated"), the one further
# along toward the person speaks for a notice that either would do.
_REACH = {
    MessageStatus.DELIVERED: 6,
    MessageStatus.SENT: 5,
    MessageStatus.SENDING: 4,
    MessageStatus.PENDING: 3,
    MessageStatus.UNDELIVERED: 2,
    MessageStatus.FAILED: 1,
    MessageStatus.CANCELLED: 0,
}


@dataclass(frozen=True)
class Delivery:
    """What became of the SMS that told a contact (:func:`deliveries`).

    ``status`` is ``None`` when there is no SMS to speak of: the notice was recorded without
    one because its booking had lost its phone to the retention purge (``phone`` is empty), or
    the SMS itself was deleted since (settled SMS are kept ``VISITS_MESSAGE_RETENTION_DAYS``).
    """

    phone: str
    tier: Tier
    status: MessageStatus | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def missed(self) -> bool:
        """The notice reached nobody: its SMS failed, was not delivered or never went, or there
        was no number to send it to. Staff must call the contact or find them another way."""
        return not self.phone or self.status in MISSED


def deliveries(session: Session, advisory_id: int) -> dict[int, Delivery]:
    """Visitor id → what became of the SMS that told them of the advisory, for every visitor
    told: one query, each notice joined to its SMS by the dedupe key (:func:`notice_key`)
    through that column's unique index, however many notices there are.

    A notice records the phone told and the tier told; its SMS is the advisory's SMS to that
    phone at that tier, or, for a tier-2 notice, the phone's tier-1 SMS too (a "get
    evaluated" text asks more than "watch for symptoms"): visitors sharing a phone share its
    SMS, and a phone may have had both. Of two, the one further along (delivered, sent,
    being sent, waiting, then not delivered, failed, not sent) speaks for the notice.
    """
    prefix = _key_prefix(advisory_id)
    first, second = aliased(OutboxMessage), aliased(OutboxMessage)

    def key(tier: Tier) -> ColumnElement[str]:
        return literal(prefix) + ContactNotice.phone + literal(f":t{int(tier)}")

    rows = session.execute(
        select(
            ContactNotice.visitor_id,
            ContactNotice.phone,
            ContactNotice.tier,
            first.status,
            first.error_code,
            first.error_message,
            second.status,
            second.error_code,
            second.error_message,
        )
        .outerjoin(first, first.dedupe_key == key(Tier.ONE))
        .outerjoin(
            second,
            and_(ContactNotice.tier == int(Tier.TWO), second.dedupe_key == key(Tier.TWO)),
        )
        .where(ContactNotice.advisory_id == advisory_id)
    )
    found = {}
    for visitor_id, phone, tier, *sent in rows:
        candidates = [
            Delivery(phone, Tier(tier), status, code, message)
            for status, code, message in (sent[:3], sent[3:])
            if status is not None
        ]
        found[visitor_id] = max(
            candidates, key=lambda d: _REACH[d.status], default=Delivery(phone, Tier(tier))
        )
    return found
