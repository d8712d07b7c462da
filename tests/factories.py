"""Small builders for test data, with sensible defaults and every rule adjustable."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session

from visits.booking_request import BookingRequest, VisitorInput
from visits.inmate import Inmate, InmateStatus
from visits.prison import Prison, Wing
from visits.rules import VisitorGroup
from visits.schedule import Closure, ScheduleTemplate, Slot, sync_slots
from visits.sms import SmsPolicy

# Tuesday 1 December 2026, 10:00 in Lima (UTC-5, no daylight saving).
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
LIMA_TODAY = date(2026, 12, 1)
# What families are told, as the tests' app says it; bookings confirm at once (the tests of
# phone verification turn it on).
SMS = SmsPolicy(
    public_base_url="https://visitas.example.pe", secret_key="test-secret", verification=False
)


def make_prison(session: Session, code: str = "TEST", **rules: Any) -> Prison:
    values: dict[str, Any] = {
        "name": f"Prison {code}",
        "timezone": "America/Lima",
        "booking_opens_days": 14,
        "booking_closes_hours": 24,
        "max_visitors": 3,
        "min_adults": 1,
        "adult_age": 18,
        "visits_per_inmate_per_week": 2,
    }
    values.update(rules)
    prison = Prison(code=code, **values)
    session.add(prison)
    session.flush()
    session.add(Wing(prison_id=prison.id, code="A", name="Pabellón A"))
    session.flush()
    return prison


def add_template(
    session: Session,
    prison: Prison,
    weekday: int,
    start: time = time(9),
    end: time = time(11),
    capacity: int = 50,
    group: VisitorGroup = VisitorGroup.ANYONE,
    valid_from: date = date(2026, 1, 1),
    valid_to: date | None = None,
) -> ScheduleTemplate:
    template = ScheduleTemplate(
        prison_id=prison.id,
        weekday=weekday,
        start_time=start,
        end_time=end,
        capacity=capacity,
        visitor_group=group,
        valid_from=valid_from,
        valid_to=valid_to,
    )
    session.add(template)
    session.flush()
    return template


def make_slot(
    session: Session,
    prison: Prison,
    day: date,
    start: time = time(9),
    capacity: int = 50,
    group: VisitorGroup = VisitorGroup.ANYONE,
    hours: float = 2,
) -> Slot:
    """A slot without a template (as staff would add one)."""
    starts_at = datetime.combine(day, start, tzinfo=prison.tz).astimezone(UTC)
    slot = Slot(
        prison_id=prison.id,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=hours),
        local_date=day,
        capacity=capacity,
        seats_taken=0,
        visitor_group=group,
    )
    session.add(slot)
    session.flush()
    return slot


def make_inmate(
    session: Session,
    prison: Prison,
    code: str = "Q1",
    *,
    surname: str = "Quispe",
    birth_date: date = date(1990, 5, 17),
    status: InmateStatus = InmateStatus.ACTIVE,
    suspended_until: date | None = None,
) -> Inmate:
    inmate = Inmate(
        prison_id=prison.id,
        code=code,
        first_names="Juan Carlos",
        last_name_1=surname,
        last_name_2="Mamani",
        birth_date=birth_date,
        status=status,
        visits_suspended_until=suspended_until,
    )
    session.add(inmate)
    session.flush()
    return inmate


def add_closure(
    session: Session, prison: Prison, day: date, start: time | None = None, reason: str = "Requisa"
) -> Closure:
    closure = Closure(prison_id=prison.id, day=day, start_time=start, reason=reason)
    session.add(closure)
    session.flush()
    return closure


def visitor(
    dni: str = "45678912",
    *,
    first_names: str = "María",
    last_names: str = "Quispe Huamán",
    birth_date: str = "1985-07-25",
    relationship: str = "partner",
    sex: str = "F",
    doc_type: str = "dni",
) -> VisitorInput:
    return VisitorInput(
        first_names=first_names,
        last_names=last_names,
        doc_type=doc_type,
        doc_number=dni,
        birth_date=birth_date,
        relationship=relationship,
        sex=sex,
    )


def request_for(
    slot: Slot | int | str, *visitors: VisitorInput, phone: str = "987654321"
) -> BookingRequest:
    slot_id = slot.id if isinstance(slot, Slot) else slot
    return BookingRequest(
        slot_id=str(slot_id),
        visitors=list(visitors) or [visitor()],
        contact_phone=phone,
        language="es",
    )


def synced(session: Session, prison: Prison, now: datetime = NOW) -> list[Slot]:
    sync_slots(session, prison, now)
    session.flush()
    return list(session.query(Slot).filter(Slot.prison_id == prison.id).order_by(Slot.starts_at))


def fill_day(
    session: Session,
    prison: Prison,
    inmates: list[Inmate],
    day: date,
    *,
    visitors: int = 2000,
    slots: int = 4,
    first_dni: int = 60_000_000,
) -> list[Slot]:
    """A busy day at the gate: ``slots`` visit times holding ``visitors`` visitors in parties
    of one to three, written in bulk (booking them one by one would take minutes). Some
    parties bring a child under 5; the seat counts agree with the bookings."""
    from sqlalchemy import insert, select

    from visits.booking import Booking, BookingStatus, BookingVisitor
    from visits.booking_request import Relationship
    from visits.reference import new_reference
    from visits.visitor import DocumentType, Visitor

    per_slot = -(-visitors // slots)
    made = [
        make_slot(session, prison, day, start=time(8 + 2 * i), capacity=per_slot, hours=2)
        for i in range(slots)
    ]
    now = datetime.combine(day, time(), tzinfo=UTC) - timedelta(days=3)
    dnis = [f"{first_dni + i:08d}" for i in range(visitors)]
    session.execute(
        insert(Visitor),
        [
            {"doc_type": DocumentType.DNI, "doc_number": dni, "first_names": "Rosa",
             "last_names": f"Quispe {i}", "birth_date": date(1980, 1, 1), "sex": None,
             "created_at": now, "updated_at": now}
            for i, dni in enumerate(dnis)
        ],
    )  # fmt: skip
    ids = dict(
        session.execute(
            select(Visitor.doc_number, Visitor.id).where(Visitor.doc_number.in_(dnis))
        ).all()
    )
    parties, taken, position = [], dict.fromkeys((s.id for s in made), 0), 0
    for slot in made:
        while taken[slot.id] < per_slot and position < visitors:
            size = min(1 + len(parties) % 3, per_slot - taken[slot.id], visitors - position)
            parties.append((slot, dnis[position : position + size]))
            taken[slot.id] += size
            position += size
    references = [new_reference() for _ in parties]
    session.execute(
        insert(Booking),
        [
            {"reference": ref, "prison_id": prison.id, "slot_id": slot.id,
             "inmate_id": inmates[i % len(inmates)].id, "status": BookingStatus.CONFIRMED,
             "party_size": len(party), "contact_phone": "+51987654321", "language": "es",
             "created_at": now, "updated_at": now}
            for i, (ref, (slot, party)) in enumerate(zip(references, parties, strict=True))
        ],
    )  # fmt: skip
    booking_ids = dict(
        session.execute(
            select(Booking.reference, Booking.id).where(Booking.reference.in_(references))
        ).all()
    )
    session.execute(
        insert(BookingVisitor),
        [
            {"booking_id": booking_ids[ref], "visitor_id": ids[dni], "position": n,
             "first_names": "Rosa", "last_names": f"Quispe {dni}",
             "birth_date": date(2024, 1, 1) if n and i % 11 == 0 else date(1980, 1, 1),
             "relationship": Relationship.SIBLING, "sex": None, "visit_date": day,
             "active": True}
            for i, (ref, (_, party)) in enumerate(zip(references, parties, strict=True))
            for n, dni in enumerate(party)
        ],
    )  # fmt: skip
    for slot in made:
        slot.seats_taken = taken[slot.id]
    session.flush()
    return made
