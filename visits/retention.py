"""How long the personal data of a visit is kept: ``VISITS_TRACING_RETENTION_DAYS`` (180) past
the visit's day, long enough to trace any contact (the setting may not be shorter than the
lookback), then a daily job purges it (:func:`visits.jobs.purge_visit_records`).

For a visit whose day is more than the retention period ago (by the prison's calendar: the
day is compared with the earliest "today" of the prisons' time zones, so nothing is purged
early anywhere):

- its visitors as booked (``booking_visitor``: names, birth date, sex, relationship, the
  high-risk answer, the link to the person), what the gate recorded of them (``gate_check``,
  the guard's note included) and their screening outcomes (``screening``) are deleted;
- the booking stays, with what the administrators' reports count (:mod:`visits.reports`:
  prison, visit time, inmate, status, number of visitors; and its reference, language and
  timestamps), but loses its contact phone (blanked) and the fingerprint of the form sent;
- a visitor (the person: document, names, birth date) left with no visit, no suspension
  ending within the retention period and no exposure notice within it is deleted, with their
  older suspensions and notices;
- exposure notices (:class:`visits.tracing.ContactNotice`, with the phone told) older than the
  retention period are deleted;
- except what an advisory still needs: while it may be traced (not lifted, or lifted within
  the retention period), its prison's visits from its lookback window's first day and its
  notices are kept, so its contact list never shrinks under health staff's eyes;
- a visitor suspension ends on its last day or when it was lifted, whichever comes first;
- the reasons staff typed into the history of a purged booking (a cancel or move for the
  family) or of a deleted person (why they were barred) are removed from the audit log: free
  text may say anything about someone; and so is the family's address (``origin``) in the
  history of a purged booking (kept until then to see who holds places, and for abuse, see
  :func:`visits.booking.unconfirmed_problem`). What the gate found of a visitor goes from it
  too (:data:`visits.gate.FINDINGS`: why they were not let in, "health" among the reasons), as
  the gate's records do: the history says a screening happened, never what it found. What was
  done, by whom and when stays, and so does where staff acted from. (Histories purged before
  the purge knew a key lost it once, by migration: 0017 for the reasons, 0020 for what the
  gate found.)

The same daily job deletes two records that would otherwise stay for ever:

- a staff session (:class:`visits.staff.StaffSession`, with the address it was used from) a
  day after it was signed out or its shift ended (:func:`purge_staff_sessions`): it opens
  nothing any more, and the audit keeps the sign-in and sign-out with their addresses;
- what the SMS channel knows of a phone (:class:`notifications.recipients.Recipient`, see
  :func:`purge_recipients`): a number with no mark left (its opt-out or its unreachable mark
  lifted) at once, as it says nothing a missing row does not; a marked one once the mark is
  older than the SMS retention period (``VISITS_MESSAGE_RETENTION_DAYS``) and no booking,
  SMS, received text or exposure notice holds the number any more.

  Decision: an opt-out is kept while the service can still send to the number, that is while
  anything it sends from holds it (every SMS goes to a booking's phone, a notice's phone, or
  answers a text received), and never less than the SMS retention period. Once nothing holds
  it, no SMS can reach it, and keeping the number only to remember it would keep a phone
  number with nothing else, for ever; a family that gives it again in a new booking (months
  after its visits were purged) has given it afresh, and may send the stop word again. An
  unreachable mark follows the same rule: it keeps us from texting a dead number we hold.

Nothing of a visit within the retention period, or still to come, is touched; neither are the
SMS and received texts, which have their own period (``VISITS_MESSAGE_RETENTION_DAYS``).

Each call purges one batch in the caller's short transaction, so no lock is held long. On
PostgreSQL a batch takes the rows no other purge holds (``SKIP LOCKED``) and locks the people,
then the bookings, in id order (the order every writer keeps, see :mod:`visits.booking`), so
two processes share the work without waiting on each other in a circle; on SQLite batches
take turns at the write lock. Everything it does only removes what is old: running it again
changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, delete, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from notifications.inbound import InboundMessage
from notifications.outbox import OutboxMessage
from notifications.recipients import Recipient
from visits.advisories import HealthAdvisory
from visits.audit import AuditEvent
from visits.booking import Booking, BookingVisitor
from visits.db import lock_rows, require_write_lock
from visits.gate import FINDINGS, GateCheck
from visits.health import TracingPolicy
from visits.prison import Prison
from visits.screening import Screening
from visits.staff import StaffSession
from visits.tracing import ContactNotice, window
from visits.visitor import Visitor, VisitorSuspension

BATCH = 1000
# What a purged visit's history, or a deleted person's, loses: the reasons staff typed (free
# text may say anything about someone) and what the gate found of a visitor.
FORGOTTEN = ("reason", *FINDINGS)
# A staff session that opens nothing any more is kept this long: a request that found it live
# just before may still be writing to it (signing out, changing its password).
STAFF_SESSION_KEEP = timedelta(days=1)


@dataclass
class Purged:
    visits: int = 0  # visitors of a booking
    bookings: int = 0  # phones blanked
    visitors: int = 0  # people deleted
    notices: int = 0
    staff_sessions: int = 0
    recipients: int = 0  # phones the SMS channel no longer remembers

    def __add__(self, other: Purged) -> Purged:
        return Purged(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Purged)))


@dataclass(frozen=True)
class Cutoff:
    """Visits of a day before ``day``, and notices recorded before ``moment``, are purged;
    except, while an advisory's contacts may still be traced, its prison's visits from its
    window's first day (``held``: prison id → that day) and its notices (``advisories``)."""

    day: date
    moment: datetime
    held: dict[int, date] = field(default_factory=dict)
    advisories: frozenset[int] = frozenset()


def cutoff(session: Session, now: datetime, policy: TracingPolicy) -> Cutoff | None:
    """Where the retention period ends now; ``None`` with no prison (nothing to purge).

    An advisory with a date infectiousness is counted from, not lifted (or lifted within the
    retention period), holds its prison's visits from its lookback window's first day: its
    contact list must not shrink while health staff may still read it and tell its contacts.
    """
    zones = set(session.scalars(select(Prison.timezone).distinct()))
    if not zones:
        return None
    today = min(now.astimezone(ZoneInfo(zone)).date() for zone in zones)
    keep = timedelta(days=policy.retention_days)
    open_advisories = session.scalars(
        select(HealthAdvisory).where(
            HealthAdvisory.infectious_since.is_not(None),
            or_(HealthAdvisory.lifted_at.is_(None), HealthAdvisory.lifted_at >= now - keep),
        )
    ).all()
    held: dict[int, date] = {}
    for advisory in open_advisories:
        first, _ = window(advisory, policy)
        held[advisory.prison_id] = min(first, held.get(advisory.prison_id, first))
    return Cutoff(today - keep, now - keep, held, frozenset(a.id for a in open_advisories))


def _skip_locked(session: Session, query: Select) -> Select:
    """Rows another purge holds are left to it (PostgreSQL; SQLite has one writer)."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


def purge_batch(session: Session, edge: Cutoff, batch: int = BATCH) -> Purged:
    """Purge at most ``batch`` old visitors of bookings and ``batch`` old notices, and the
    people left with nothing; what was purged (all zero: nothing old is left)."""
    require_write_lock(session)
    visits = session.execute(
        _skip_locked(
            session,
            select(BookingVisitor.id, BookingVisitor.booking_id, BookingVisitor.visitor_id)
            .where(BookingVisitor.visit_date < edge.day, *_not_held(edge))
            .order_by(BookingVisitor.visit_date, BookingVisitor.id)
            .limit(batch),
        )
    ).all()
    notices = session.execute(
        _skip_locked(
            session,
            select(ContactNotice.id, ContactNotice.visitor_id)
            .where(
                ContactNotice.at < edge.moment,
                ContactNotice.advisory_id.not_in(edge.advisories),
            )
            .order_by(ContactNotice.at, ContactNotice.id)
            .limit(batch),
        )
    ).all()
    people = {v.visitor_id for v in visits} | {n.visitor_id for n in notices}
    lock_rows(session, Visitor.id, people)
    bookings = sorted({v.booking_id for v in visits})
    lock_rows(session, Booking.id, bookings)
    done = Purged(visits=len(visits), notices=len(notices))
    if bookings:
        done.bookings = session.execute(
            update(Booking)
            .where(Booking.id.in_(bookings), Booking.contact_phone != "")
            .values(contact_phone="", submission_key=None, submission_hash=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        ids = [v.id for v in visits]
        session.execute(delete(GateCheck).where(GateCheck.booking_visitor_id.in_(ids)))
        session.execute(delete(Screening).where(Screening.booking_visitor_id.in_(ids)))
        session.execute(delete(BookingVisitor).where(BookingVisitor.id.in_(ids)))
        references = session.scalars(select(Booking.reference).where(Booking.id.in_(bookings)))
        _forget_reasons(session, "booking", references)
    if notices:
        session.execute(delete(ContactNotice).where(ContactNotice.id.in_([n.id for n in notices])))
    done.visitors = _delete_people(session, people, edge)
    return done


def _not_held(edge: Cutoff) -> tuple[ColumnElement[bool], ...]:
    """The visit (a ``booking_visitor`` of the outer query) is in no open advisory's window."""
    if not edge.held:
        return ()
    in_window = or_(
        *(
            and_(Booking.prison_id == prison_id, BookingVisitor.visit_date >= first)
            for prison_id, first in sorted(edge.held.items())
        )
    )
    return (~exists().where(Booking.id == BookingVisitor.booking_id, in_window),)


def purge_ended_suspensions(session: Session, edge: Cutoff, batch: int = BATCH) -> int:
    """People kept past their last visit only by a suspension that ended more than the
    retention period ago: at most ``batch`` of them deleted; how many (0: none left)."""
    require_write_lock(session)
    person = VisitorSuspension.visitor_id
    people: set[int] = set()
    # Ended on its last day, or lifted: one index each (an OR would read the whole table).
    for ended in (VisitorSuspension.until < edge.day, VisitorSuspension.lifted_at < edge.moment):
        query = select(person).where(ended, *_unneeded(edge, person)).limit(batch)
        people |= set(session.scalars(query))
    lock_rows(session, Visitor.id, people)
    return _delete_people(session, people, edge)


def _unneeded(edge: Cutoff, person: ColumnElement[int]) -> tuple[ColumnElement[bool], ...]:
    """The person (an id column of the outer query) is referred to by nothing within the
    retention period: no visit, no suspension ending in it, no exposure notice made in it."""
    barred = aliased(VisitorSuspension)
    needed = or_(
        exists().where(BookingVisitor.visitor_id == person),
        # A suspension ends on its last day, or when it was lifted.
        exists().where(
            barred.visitor_id == person,
            barred.until >= edge.day,
            or_(barred.lifted_at.is_(None), barred.lifted_at >= edge.moment),
        ),
        exists().where(
            ContactNotice.visitor_id == person,
            or_(ContactNotice.at >= edge.moment, ContactNotice.advisory_id.in_(edge.advisories)),
        ),
    )
    return (~needed,)


def _delete_people(session: Session, people: set[int], edge: Cutoff) -> int:
    """Delete those of ``people`` (locked by the caller) nothing recent refers to."""
    if not people:
        return 0
    deleted = session.scalars(
        delete(Visitor)
        .where(
            Visitor.id.in_(sorted(people)),
            Visitor.created_at < edge.moment,
            *_unneeded(edge, Visitor.id),
        )
        .returning(Visitor.id)
        .execution_options(synchronize_session=False)
    ).all()
    _forget_reasons(session, "visitor", deleted)
    return len(deleted)


# Who a change was made by when a family made it (on the pages, or through the API).
FAMILY_ACTORS = ("family", "api")


def _forget_reasons(session: Session, entity: str, ids: Iterable[object]) -> None:
    """Take the staff-typed reasons, what the gate found, and the family's address out of
    these records' history."""
    keys = [str(i) for i in ids]
    if not keys:
        return
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.entity == entity, AuditEvent.entity_id.in_(keys))
    )
    for event in events:
        _forget_details(event)
        if event.actor in FAMILY_ACTORS and event.origin:
            event.origin = ""


def _forget_details(event: AuditEvent) -> None:
    if any(key in event.details for key in FORGOTTEN):
        event.details = {k: v for k, v in event.details.items() if k not in FORGOTTEN}


def purge_staff_sessions(session: Session, now: datetime, lifetime: timedelta) -> int:
    """Delete the staff sessions (and the address each was used from) signed out, or older
    than a shift (``lifetime``), more than :data:`STAFF_SESSION_KEEP` ago; how many."""
    require_write_lock(session)
    gone = now - STAFF_SESSION_KEEP
    ended = or_(StaffSession.ended_at < gone, StaffSession.created_at < gone - lifetime)
    return session.execute(delete(StaffSession).where(ended)).rowcount or 0


# Where the service sends SMS from: a number none of these holds receives nothing of ours.
_HOLDERS = (
    Booking.contact_phone,
    OutboxMessage.recipient,
    InboundMessage.sender,
    ContactNotice.phone,
)


def purge_recipients(
    session: Session, before: datetime, after: str = "", batch: int = BATCH
) -> tuple[int, str | None]:
    """Forget phones the SMS channel has no more use for (see the module's decision): every
    number with no mark; of the marked ones unchanged since ``before`` (the SMS retention
    period) after ``after``, in order, at most ``batch`` looked at, those nothing holds. How
    many were deleted, and the last number looked at (``None``: no more to look at)."""
    require_write_lock(session)
    unmarked = and_(Recipient.opted_out_at.is_(None), Recipient.unreachable_at.is_(None))
    deleted = session.execute(delete(Recipient).where(unmarked)).rowcount or 0
    phones = list(
        session.scalars(
            select(Recipient.phone)
            .where(Recipient.updated_at < before, Recipient.phone > after)
            .order_by(Recipient.phone)
            .limit(batch)
        )
    )
    if not phones:
        return deleted, None
    # Asked in the DELETE itself, not read before it: a booking giving the number again
    # meanwhile keeps its mark (one committed during the statement may still miss it, and
    # then gives the number afresh, as the module's decision says).
    unheld = [~exists().where(column == Recipient.phone) for column in _HOLDERS]
    forgotten = delete(Recipient).where(
        Recipient.phone.in_(phones), Recipient.updated_at < before, *unheld
    )
    deleted += session.execute(forgotten).rowcount or 0
    return deleted, phones[-1]
