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
  :func:`visits.booking.unconfirmed_problem`). What was done, by whom and when stays, and so
  does where staff acted from.

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
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, delete, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from visits.advisories import HealthAdvisory
from visits.audit import AuditEvent
from visits.booking import Booking, BookingVisitor
from visits.db import lock_rows, require_write_lock
from visits.gate import GateCheck
from visits.health import TracingPolicy
from visits.prison import Prison
from visits.screening import Screening
from visits.tracing import ContactNotice, window
from visits.visitor import Visitor, VisitorSuspension

BATCH = 1000


@dataclass
class Purged:
    visits: int = 0  # visitors of a booking
    bookings: int = 0  # phones blanked
    visitors: int = 0  # people deleted
    notices: int = 0

    def __add__(self, other: Purged) -> Purged:
        return Purged(
            self.visits + other.visits,
            self.bookings + other.bookings,
            self.visitors + other.visitors,
            self.notices + other.notices,
        )


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
    """Take the staff-typed reasons, and the family's address, out of these records'
    history."""
    keys = [str(i) for i in ids]
    if not keys:
        return
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.entity == entity, AuditEvent.entity_id.in_(keys))
    )
    for event in events:
        if "reason" in event.details:
            event.details = {k: v for k, v in event.details.items() if k != "reason"}
        if event.actor in FAMILY_ACTORS and event.origin:
            event.origin = ""
