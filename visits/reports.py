"""Administrators' reports for one prison over a range of days: visits, attendance, SMS
delivery, and the overbooking check that must always come back empty (the last line of
defence behind invariant 1: seats taken never above capacity, and always what the bookings
holding seats add up to)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notifications.outbox import MessageStatus, OutboxMessage
from visits.booking import Booking, BookingStatus
from visits.prison import Prison
from visits.schedule import Slot


@dataclass
class DayFigures:
    day: date
    statuses: Counter[BookingStatus] = field(default_factory=Counter)

    @property
    def booked(self) -> int:
        """Bookings that were not cancelled."""
        return sum(n for s, n in self.statuses.items() if s is not BookingStatus.CANCELLED)


@dataclass(frozen=True)
class Overbooked:
    slot_id: int
    starts_at: object
    capacity: int
    seats_taken: int
    seats_booked: int


@dataclass
class Report:
    days: list[DayFigures]
    sms: Counter[MessageStatus]
    overbooked: list[Overbooked]

    @property
    def attended(self) -> int:
        return sum(d.statuses[BookingStatus.ATTENDED] for d in self.days)

    @property
    def no_shows(self) -> int:
        return sum(d.statuses[BookingStatus.NO_SHOW] for d in self.days)

    @property
    def attendance_rate(self) -> float | None:
        """Of the visits whose outcome the gate recorded, the share that came."""
        recorded = self.attended + self.no_shows
        return self.attended / recorded if recorded else None

    @property
    def delivery_rate(self) -> float | None:
        """Of the SMS whose fate is known, the share delivered."""
        known = sum(self.sms[s] for s in DELIVERY_KNOWN)
        return self.sms[MessageStatus.DELIVERED] / known if known else None


DELIVERY_KNOWN = (MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED)


def report(session: Session, prison: Prison, first: date, last: date) -> Report:
    in_range = (Slot.prison_id == prison.id, Slot.local_date >= first, Slot.local_date <= last)
    days = {d: DayFigures(d) for d in _days(first, last)}
    for day, status, count in session.execute(
        select(Slot.local_date, Booking.status, func.count(Booking.id))
        .join(Slot, Booking.slot_id == Slot.id)
        .where(*in_range)
        .group_by(Slot.local_date, Booking.status)
    ):
        days[day].statuses[status] += count
    subjects = (
        select("booking:" + Booking.reference)
        .join(Slot, Booking.slot_id == Slot.id)
        .where(*in_range)
    )
    sms = Counter(
        {
            status: count
            for status, count in session.execute(
                select(OutboxMessage.status, func.count(OutboxMessage.id))
                .where(OutboxMessage.subject.in_(subjects))
                .group_by(OutboxMessage.status)
            )
        }
    )
    return Report(list(days.values()), sms, overbooked(session, prison))


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
