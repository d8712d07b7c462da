"""Administrators' reports for one prison over a range of days: visits, attendance, SMS
delivery, and the overbooking check that must always come back empty (the last line of
defence behind invariant 1: seats taken never above capacity, and always what the bookings
holding seats add up to)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from notifications.outbox import MessageStatus, OutboxMessage
from visits.audit import AuditEvent
from visits.booking import (
    BY_FAMILY,
    CANCELLED_ACTIONS,
    HOLD_EXPIRED,
    Booking,
    BookingStatus,
    BookingVisitor,
    CancelCause,
    cancelled_by,
)
from visits.broadcasts import subject as broadcast_subject
from visits.gate import GateCheck, GateStatus
from visits.prison import Prison
from visits.schedule import Slot
from visits.sms import HEALTH_PRIVATE

# Why a booking was cancelled, in the order the page lists them (see
# :func:`visits.booking.cancelled_by`); ``None``: its history has no record of it.
CANCEL_CAUSES: tuple[str | None, ...] = (BY_FAMILY, *CancelCause, None)


@dataclass
class DayFigures:
    """The bookings of one visit day, each counted once: ``booked`` (confirmed to the family)
    is what came in, nobody came, all turned away and not marked add up to; holds waiting
    for their code and cancelled bookings are apart."""

    day: date
    over: bool = False  # a day before today: a visit nobody marked will not be marked now
    statuses: Counter[BookingStatus] = field(default_factory=Counter)
    # Confirmed bookings whose every visitor the gate turned away (they stay confirmed).
    turned_away: int = 0
    # Cancelled bookings by why (a cause, BY_FAMILY or None), expired holds apart.
    cancelled: Counter[str | None] = field(default_factory=Counter)
    expired: int = 0

    @property
    def attended(self) -> int:
        return self.statuses[BookingStatus.ATTENDED]

    @property
    def no_show(self) -> int:
        return self.statuses[BookingStatus.NO_SHOW]

    @property
    def unmarked(self) -> int:
        """Confirmed bookings the gate did not close: nobody let in, not all turned away."""
        return self.statuses[BookingStatus.CONFIRMED] - self.turned_away

    @property
    def not_marked(self) -> int:
        """On a day that is over, the bookings the gate never marked."""
        return self.unmarked if self.over else 0

    @property
    def to_come(self) -> int:
        """Today or later, the confirmed bookings not marked yet."""
        return 0 if self.over else self.unmarked

    @property
    def held(self) -> int:
        """Holds still waiting for the code sent to the family's phone."""
        return self.statuses[BookingStatus.HELD]

    @property
    def booked(self) -> int:
        """Bookings confirmed to the family and not cancelled (not holds)."""
        return self.attended + self.no_show + self.statuses[BookingStatus.CONFIRMED]

    @property
    def any(self) -> bool:
        return bool(self.statuses)


@dataclass(frozen=True)
class Overbooked:
    slot_id: int
    starts_at: object
    capacity: int
    seats_taken: int
    seats_booked: int


# The order a message moves through, for the page to list them in.
SMS_ORDER = (
    MessageStatus.PENDING,
    MessageStatus.SENDING,
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.UNDELIVERED,
    MessageStatus.FAILED,
    MessageStatus.CANCELLED,
)


@dataclass
class Report:
    days: list[DayFigures]
    # SMS created in the range (by the prison's calendar), by status in SMS_ORDER.
    sms: Counter[MessageStatus]
    overbooked: list[Overbooked]
    # People, not bookings: visitors the gate let in and turned away on the range's days.
    people: Counter[GateStatus] = field(default_factory=Counter)

    def _sum(self, figure: str) -> int:
        return sum(getattr(d, figure) for d in self.days)

    @property
    def attended(self) -> int:
        """Bookings someone of which came in."""
        return self._sum("attended")

    @property
    def no_shows(self) -> int:
        return self._sum("no_show")

    @property
    def turned_away(self) -> int:
        return self._sum("turned_away")

    @property
    def not_marked(self) -> int:
        return self._sum("not_marked")

    @property
    def expired(self) -> int:
        return self._sum("expired")

    @property
    def cancellations(self) -> Counter[str | None]:
        """Cancelled bookings by why, in :data:`CANCEL_CAUSES` order (expired holds apart)."""
        found: Counter[str | None] = Counter()
        for d in self.days:
            found.update(d.cancelled)
        return Counter({c: found[c] for c in CANCEL_CAUSES if found[c]})

    @property
    def attendance_rate(self) -> float | None:
        """Of the booked visits whose outcome is known, the share someone of which came in:
        came / (came + nobody came + all turned away + not marked on a day that is over).
        A booking the gate turned everyone of away did not take place, and one nobody marked
        once its day was over is not known to have: both count against the rate. Confirmed
        bookings of today and later not marked yet are left out (they may still come)."""
        known = self.attended + self.no_shows + self.turned_away + self.not_marked
        return self.attended / known if known else None

    @property
    def delivery_rate(self) -> float | None:
        """Of the SMS whose fate is known, the share delivered."""
        known = sum(self.sms[s] for s in DELIVERY_KNOWN)
        return self.sms[MessageStatus.DELIVERED] / known if known else None


DELIVERY_KNOWN = (MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED)


def report(session: Session, prison: Prison, first: date, last: date, *, today: date) -> Report:
    """The figures of the visit days from ``first`` to ``last``, in four queries whatever
    the range (each grouped, none per booking or per day); ``today`` is the prison's."""
    in_range = (Slot.prison_id == prison.id, Slot.local_date >= first, Slot.local_date <= last)
    days = {d: DayFigures(d, over=d < today) for d in _days(first, last)}
    ranged = select(Booking.id).join(Slot, Booking.slot_id == Slot.id).where(*in_range)
    turned = case((GateCheck.status == GateStatus.TURNED_AWAY, 1), else_=0)
    all_turned_away = (
        select(BookingVisitor.booking_id)
        .outerjoin(GateCheck, GateCheck.booking_visitor_id == BookingVisitor.id)
        .where(
            BookingVisitor.booking_id.in_(ranged.where(Booking.status == BookingStatus.CONFIRMED))
        )
        .group_by(BookingVisitor.booking_id)
        .having(func.sum(turned) == func.count(BookingVisitor.id))
        .subquery()
    )
    # The latest event that cancelled each cancelled booking (cancelled_why's record).
    last_cancel = (
        select(AuditEvent.entity_id, func.max(AuditEvent.id).label("id"))
        .where(
            AuditEvent.entity == "booking",
            AuditEvent.action.in_(CANCELLED_ACTIONS),
            AuditEvent.entity_id.in_(
                select(Booking.reference)
                .join(Slot, Booking.slot_id == Slot.id)
                .where(*in_range, Booking.status == BookingStatus.CANCELLED)
            ),
        )
        .group_by(AuditEvent.entity_id)
        .subquery()
    )
    flag = all_turned_away.c.booking_id.is_not(None)
    for day, status, away, action, count in session.execute(
        select(Slot.local_date, Booking.status, flag, AuditEvent.action, func.count(Booking.id))
        .join(Slot, Booking.slot_id == Slot.id)
        .outerjoin(all_turned_away, all_turned_away.c.booking_id == Booking.id)
        .outerjoin(last_cancel, last_cancel.c.entity_id == Booking.reference)
        .outerjoin(AuditEvent, AuditEvent.id == last_cancel.c.id)
        .where(*in_range)
        .group_by(Slot.local_date, Booking.status, flag, AuditEvent.action)
    ):
        figures = days[day]
        figures.statuses[status] += count
        if status is BookingStatus.CONFIRMED and away:
            figures.turned_away += count
        elif status is BookingStatus.CANCELLED:
            why = cancelled_by(action) if action else None
            if why == HOLD_EXPIRED:
                figures.expired += count
            else:
                figures.cancelled[why] += count
    people = Counter(
        dict(
            session.execute(
                select(GateCheck.status, func.count())
                .join(BookingVisitor, GateCheck.booking_visitor_id == BookingVisitor.id)
                .where(BookingVisitor.booking_id.in_(ranged))
                .group_by(GateCheck.status)
            ).all()
        )
    )
    return Report(
        list(days.values()), sms(session, prison, first, last), overbooked(session, prison), people
    )


def sms(session: Session, prison: Prison, first: date, last: date) -> Counter[MessageStatus]:
    """The SMS of the prison's bookings and broadcasts created from ``first`` to ``last`` by
    the prison's calendar (not the visit day: a confirmation goes out days before), by
    status; health notices to one family (:data:`visits.sms.HEALTH_PRIVATE`) left out."""
    start, end = (
        datetime.combine(d, time(), tzinfo=prison.tz).astimezone(UTC)
        for d in (first, last + timedelta(days=1))
    )
    bookings = select("booking:" + Booking.reference).where(Booking.prison_id == prison.id)
    found = dict(
        session.execute(
            select(OutboxMessage.status, func.count(OutboxMessage.id))
            .where(
                or_(
                    OutboxMessage.subject.in_(bookings),
                    OutboxMessage.subject == broadcast_subject(prison),
                ),
                OutboxMessage.kind.not_in(HEALTH_PRIVATE),
                OutboxMessage.created_at >= start,
                OutboxMessage.created_at < end,
            )
            .group_by(OutboxMessage.status)
        ).all()
    )
    return Counter({s: found[s] for s in SMS_ORDER if found.get(s)})


def overbooked(session: Session, prison: Prison) -> list[Overbooked]:
    """Every slot of the prison, past or future, whose seats taken exceed its capacity or
    differ from the party sizes of its bookings that were not cancelled."""
    held = (
        select(Booking.slot_id, func.sum(Booking.party_size).label("seats"))
        # Only a cancellation (or an expired hold, which cancels) gives seats back: attended
        # and no-show bookings keep theirs.
        .where(Booking.prison_id == prison.id, Booking.status != BookingStatus.CANCELLED)
        .group_by(Booking.slot_id)
        .subquery()
    )
    booked = func.coalesce(held.c.seats, 0)
    rows = session.execute(
        select(Slot.id, Slot.starts_at, Slot.capacity, Slot.seats_taken, booked)
        .outerjoin(held, held.c.slot_id == Slot.id)
        .where(Slot.prison_id == prison.id)
        .where((Slot.seats_taken > Slot.capacity) | (Slot.seats_taken != booked))
        .order_by(Slot.starts_at)
    )
    return [Overbooked(*row) for row in rows]


def _days(first: date, last: date) -> list[date]:
    return [date.fromordinal(n) for n in range(first.toordinal(), last.toordinal() + 1)]
