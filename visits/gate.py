"""The gate: a prison's visitor list for one day, as guards check it.

Read in one query of plain rows (no ORM objects): a busy prison's day holds a couple of
thousand visitors, and the list is opened again and again at the gate. Cancelled bookings are
left out; held ones (waiting for the family's code) are listed, marked as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from visits.booking import Booking, BookingStatus, BookingVisitor
from visits.booking_request import Relationship
from visits.inmate import Inmate
from visits.prison import Prison, Wing
from visits.rules import age_on
from visits.schedule import Slot, local_moment
from visits.visitor import DocumentType, Visitor

UNDER_FIVE = 5
LISTED = (
    BookingStatus.HELD,
    BookingStatus.CONFIRMED,
    BookingStatus.ATTENDED,
    BookingStatus.NO_SHOW,
)


class AgeGroup(StrEnum):
    ADULT = "adult"
    MINOR = "minor"
    UNDER_FIVE = "under_five"  # the group TB advisories may keep away


def age_group(birth_date: date, day: date, adult_age: int) -> AgeGroup:
    age = age_on(birth_date, day)
    if age >= adult_age:
        return AgeGroup.ADULT
    return AgeGroup.UNDER_FIVE if age < UNDER_FIVE else AgeGroup.MINOR


@dataclass(frozen=True)
class GateVisitor:
    name: str
    doc_type: DocumentType
    doc_number: str
    age_group: AgeGroup
    relationship: Relationship


@dataclass
class GateBooking:
    reference: str
    status: BookingStatus
    inmate_code: str
    inmate_name: str
    wing: str
    visitors: list[GateVisitor] = field(default_factory=list)


@dataclass
class GateSlot:
    slot_id: int
    starts_at: datetime
    ends_at: datetime
    capacity: int
    seats_taken: int
    bookings: list[GateBooking] = field(default_factory=list)

    @property
    def visitors(self) -> int:
        return sum(len(b.visitors) for b in self.bookings)


def day_list(session: Session, prison: Prison, day: date) -> list[GateSlot]:
    """Every slot of the prison's ``day`` (in its own time), with its bookings and visitors
    in the order they were booked."""
    start = local_moment(day, time(), prison.tz)
    end = local_moment(day + timedelta(days=1), time(), prison.tz)
    slots = {
        row.id: GateSlot(row.id, row.starts_at, row.ends_at, row.capacity, row.seats_taken)
        for row in session.execute(
            select(Slot.id, Slot.starts_at, Slot.ends_at, Slot.capacity, Slot.seats_taken)
            .where(Slot.prison_id == prison.id, Slot.starts_at >= start, Slot.starts_at < end)
            .where(Slot.withdrawn_at.is_(None))
            .order_by(Slot.starts_at)
        )
    }
    rows = session.execute(
        select(
            Booking.slot_id,
            Booking.reference,
            Booking.status,
            Inmate.code,
            Inmate.first_names,
            Inmate.last_name_1,
            Inmate.last_name_2,
            Wing.name,
            BookingVisitor.first_names,
            BookingVisitor.last_names,
            BookingVisitor.birth_date,
            BookingVisitor.relationship,
            Visitor.doc_type,
            Visitor.doc_number,
        )
        .join(Inmate, Booking.inmate_id == Inmate.id)
        .outerjoin(Wing, Inmate.wing_id == Wing.id)
        .join(BookingVisitor, BookingVisitor.booking_id == Booking.id)
        .join(Visitor, BookingVisitor.visitor_id == Visitor.id)
        .where(Booking.slot_id.in_(list(slots)), Booking.status.in_(LISTED))
        .order_by(Booking.slot_id, Booking.id, BookingVisitor.position)
    )
    current: GateBooking | None = None
    for row in rows:
        if current is None or current.reference != row[1]:
            surnames = f"{row[5]} {row[6]}".strip()
            current = GateBooking(row[1], row[2], row[3], f"{row[4]} {surnames}", row[7] or "")
            slots[row[0]].bookings.append(current)
        current.visitors.append(
            GateVisitor(
                name=f"{row[8]} {row[9]}",
                doc_type=row[12],
                doc_number=row[13],
                age_group=age_group(row[10], day, prison.adult_age),
                relationship=row[11],
            )
        )
    return list(slots.values())
