"""Visiting histories for the tracing and retention tests, written in bulk (booking thousands
of visits one by one through the booking rules would take minutes), with every visitor of
every booking kept as a :class:`Visit`, so a test can work out what it expects on its own."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from tests.factories import make_inmate, make_slot
from visits import health
from visits.booking import Booking, BookingStatus, BookingVisitor
from visits.booking_request import Relationship
from visits.gate import GateCheck, GateStatus, TurnAwayReason
from visits.prison import Prison, Wing
from visits.reference import new_reference
from visits.rules import age_on
from visits.schedule import Slot
from visits.visitor import DocumentType, Visitor

_documents = itertools.count(70_000_000)


@dataclass(frozen=True)
class Person:
    """A visitor of a booking as planned: who, and what the gate recorded of them."""

    visitor_id: int
    birth_date: date
    high_risk: bool = False
    gate: GateStatus | None = None


@dataclass(frozen=True)
class Visit:
    """One visitor of one booking, as written."""

    booking_visitor_id: int
    booking_id: int
    visitor_id: int
    inmate_id: int
    wing_id: int | None
    day: date
    starts_at: datetime
    status: BookingStatus
    gate: GateStatus | None
    birth_date: date
    high_risk: bool
    phone: str
    language: str

    def counts(self, now: datetime) -> bool:
        """Whether this is a contact visit, said independently of the query: begun, booked
        or attended, and the visitor not turned away."""
        return (
            self.starts_at <= now
            and self.status in (BookingStatus.CONFIRMED, BookingStatus.ATTENDED)
            and self.gate is not GateStatus.TURNED_AWAY
        )

    def rule(self) -> health.Visit:
        young = age_on(self.birth_date, self.day) < health.UNDER_FIVE
        return health.Visit(
            self.visitor_id, self.inmate_id, self.wing_id, self.day, self.high_risk or young
        )


@dataclass
class History:
    session: Session
    prison: Prison
    wings: dict[str, int] = field(default_factory=dict)
    inmates: dict[int, int | None] = field(default_factory=dict)  # inmate id → wing id
    visits: list[Visit] = field(default_factory=list)
    _slots: dict[tuple[date, time], Slot] = field(default_factory=dict)
    _phones: itertools.count = field(default_factory=lambda: itertools.count(900_000_000))

    def wing(self, code: str) -> int:
        if code not in self.wings:
            wing = self.session.scalar(
                select(Wing).where(Wing.prison_id == self.prison.id, Wing.code == code)
            )
            if wing is None:
                wing = Wing(prison_id=self.prison.id, code=code, name=f"Pabellón {code}")
                self.session.add(wing)
                self.session.flush()
            self.wings[code] = wing.id
        return self.wings[code]

    def inmate(self, code: str, wing: str | None) -> int:
        inmate = make_inmate(self.session, self.prison, code)
        inmate.wing_id = self.wing(wing) if wing else None
        self.session.flush()
        self.inmates[inmate.id] = inmate.wing_id
        return inmate.id

    def people(self, birth_dates: list[date], first_names: str = "Rosa") -> list[int]:
        now = datetime(2025, 1, 1, tzinfo=UTC)
        rows = [
            {"doc_type": DocumentType.DNI, "doc_number": f"{next(_documents):08d}",
             "first_names": first_names, "last_names": f"Quispe {i}", "birth_date": born,
             "sex": None, "created_at": now, "updated_at": now}
            for i, born in enumerate(birth_dates)
        ]  # fmt: skip
        returning = insert(Visitor).returning(Visitor.id, sort_by_parameter_order=True)
        return list(self.session.scalars(returning, rows))

    def slot(self, day: date, start: time = time(9)) -> Slot:
        if (day, start) not in self._slots:
            self._slots[day, start] = make_slot(self.session, self.prison, day, start, 500)
        return self._slots[day, start]

    def phone(self) -> str:
        return f"+51{next(self._phones)}"

    def book(
        self,
        inmate_id: int,
        day: date,
        party: list[Person],
        status: BookingStatus = BookingStatus.ATTENDED,
        *,
        start: time = time(9),
        phone: str | None = None,
        language: str = "es",
    ) -> list[Visit]:
        return self.book_all([(inmate_id, day, party, status, start, phone, language)])

    def book_all(self, planned: list[tuple]) -> list[Visit]:
        """Write bookings planned as ``(inmate_id, day, party, status, start, phone,
        language)`` with their visitors and gate records; their visits."""
        if not planned:
            return []
        plans = [(*p[:5], p[5] or self.phone(), p[6]) for p in planned]
        created = datetime(2025, 1, 1, tzinfo=UTC)
        slots = [self.slot(day, start) for _, day, _, _, start, _, _ in plans]
        bookings = list(
            self.session.scalars(
                insert(Booking).returning(Booking.id, sort_by_parameter_order=True),
                [
                    {"reference": new_reference(), "prison_id": self.prison.id,
                     "slot_id": slot.id, "inmate_id": inmate, "status": status,
                     "party_size": len(party), "contact_phone": phone, "language": language,
                     "created_at": created, "updated_at": created}
                    for slot, (inmate, _, party, status, _, phone, language)
                    in zip(slots, plans, strict=True)
                ],
            )
        )  # fmt: skip
        people = [
            (booking, slot, plan, n, person)
            for booking, slot, plan in zip(bookings, slots, plans, strict=True)
            for n, person in enumerate(plan[2])
        ]
        ids = list(
            self.session.scalars(
                insert(BookingVisitor).returning(BookingVisitor.id, sort_by_parameter_order=True),
                [
                    {"booking_id": booking, "visitor_id": person.visitor_id, "position": n,
                     "first_names": "Rosa", "last_names": "Quispe",
                     "birth_date": person.birth_date, "relationship": Relationship.SIBLING,
                     "sex": None, "visit_date": slot.local_date,
                     "active": plan[3] is not BookingStatus.CANCELLED,
                     "high_risk": person.high_risk}
                    for booking, slot, plan, n, person in people
                ],
            )
        )  # fmt: skip
        gates = [
            {"booking_visitor_id": bv, "status": person.gate,
             "reason": TurnAwayReason.LATE if person.gate is GateStatus.TURNED_AWAY else None,
             "note": "llegó tarde" if person.gate is GateStatus.TURNED_AWAY else "",
             "at": slot.starts_at, "by": "staff:guardia"}
            for bv, (_, slot, _, _, person) in zip(ids, people, strict=True)
            if person.gate is not None
        ]  # fmt: skip
        if gates:
            self.session.execute(insert(GateCheck), gates)
        for slot, plan in zip(slots, plans, strict=True):
            if plan[3] is not BookingStatus.CANCELLED:  # seats as the reports expect them
                slot.seats_taken += len(plan[2])
        self.session.flush()
        made = [
            Visit(bv, booking, person.visitor_id, plan[0], self.inmates[plan[0]],
                  slot.local_date, slot.starts_at, plan[3], person.gate, person.birth_date,
                  person.high_risk, plan[5], plan[6])
            for bv, (booking, slot, plan, _, person) in zip(ids, people, strict=True)
        ]  # fmt: skip
        self.visits += made
        return made


STATUSES = (
    (BookingStatus.ATTENDED, 40),
    (BookingStatus.CONFIRMED, 30),
    (BookingStatus.NO_SHOW, 10),
    (BookingStatus.CANCELLED, 15),
    (BookingStatus.HELD, 5),
)


def _gate(rng: random.Random, status: BookingStatus, first: bool) -> GateStatus | None:
    """What the gate recorded of one visitor of a booking in this status (an attended booking
    has its first visitor in)."""
    if status is BookingStatus.ATTENDED:
        if first:
            return GateStatus.ARRIVED
        return rng.choice([GateStatus.ARRIVED, GateStatus.ARRIVED, GateStatus.TURNED_AWAY, None])
    if status is BookingStatus.CONFIRMED:
        return rng.choice([None, None, GateStatus.TURNED_AWAY])
    return None


def generate_year(
    history: History,
    rng: random.Random,
    *,
    first: date,
    last: date,
    today: date,
    per_day: int = 8,
    people: int = 500,
) -> None:
    """Bookings on every day from ``first`` to ``last`` (two visit times on ``today``, one
    each other day), to inmates of wings A to C and of no wing; past days in every status
    with what the gate recorded, days after ``today`` booked or held. A sixth of the people
    are children who turn 5 somewhere in the period; some visitors answered high-risk."""
    wings = ("A", "A", "B", "C", None)
    inmates = [
        history.inmate(f"G{n:03d}", wings[n % len(wings)]) for n in range(24)
    ]  # fmt: skip
    span = (last - first).days
    births = [
        first - timedelta(days=5 * 365 - rng.randrange(span))
        if n % 6 == 0
        else date(1960, 1, 1) + timedelta(days=rng.randrange(40 * 365))
        for n in range(people)
    ]
    ids = history.people(births)
    born = dict(zip(ids, births, strict=True))
    planned = []
    for offset in range(span + 1):
        day = first + timedelta(days=offset)
        crowd = iter(rng.sample(ids, per_day * 3))
        starts = (time(9), time(14)) if day == today else (time(9),)
        for n in range(per_day):
            if day > today:
                status = rng.choice([BookingStatus.CONFIRMED, BookingStatus.HELD])
            else:
                status = rng.choices(*zip(*STATUSES, strict=True))[0]
            party = [next(crowd) for _ in range(rng.randint(1, 3))]
            planned.append(
                (
                    rng.choice(inmates),
                    day,
                    [
                        Person(v, born[v], rng.random() < 0.07, _gate(rng, status, i == 0))
                        for i, v in enumerate(party)
                    ],
                    status,
                    starts[n % len(starts)],
                    None,
                    "en" if n % 5 == 0 else "es",
                )
            )
    history.book_all(planned)
