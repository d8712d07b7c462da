"""Visitors: one person across bookings, identified by an identity document.

Keeping the same person across bookings is what makes suspensions, the one-visit-a-day rule
and (later) exposure tracing work. Names and birth date are updated to what the person last
gave; the document never changes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    bindparam,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from visits.base import Base, UTCDateTime, str_enum, utcnow
from visits.db import insert_ignoring_conflicts, require_write_lock
from visits.problems import Code, Problem
from visits.rules import Sex


class DocumentType(StrEnum):
    DNI = "dni"  # Peruvian national identity document: 8 digits
    CE = "ce"  # carné de extranjería
    PASSPORT = "passport"


# (pattern, min length, max length) of each document's number once spaces and dashes are gone.
DOCUMENT_FORMATS: dict[DocumentType, tuple[re.Pattern[str], int, int]] = {
    DocumentType.DNI: (re.compile(r"[0-9]{8}"), 8, 8),
    DocumentType.CE: (re.compile(r"[A-Z0-9]{8,12}"), 8, 12),
    DocumentType.PASSPORT: (re.compile(r"[A-Z0-9]{6,12}"), 6, 12),
}
# Decision: a DNI's 8 digits carry no check digit (the one printed after the dash is apart)
# and real numbers may begin with zeros, so no rule tells a real number from a made-up one.
# Only number zero is refused: it is the placeholder typed for "no document", nobody's.
# A number of one repeated digit (11111111) is not: nothing published says none was issued.
DNI_ZERO = "00000000"


def document_key(raw: str) -> str:
    """A document number as typed, in the form numbers are stored in: without spaces, dots or
    dashes, full-width characters made plain, upper case (what the gate's search compares)."""
    return re.sub(r"[\s.\-]", "", unicodedata.normalize("NFKC", raw)).upper()


def normalise_document(doc_type: DocumentType, raw: str) -> str | Problem:
    """The document number as stored, or the problem with what was typed.

    Full-width digits and letters (as some phone keyboards type them) become plain ones, so
    one document is always one visitor; other scripts' digits are refused.
    """
    number = document_key(raw)
    pattern, low, high = DOCUMENT_FORMATS[doc_type]
    if pattern.fullmatch(number) and (doc_type, number) != (DocumentType.DNI, DNI_ZERO):
        return number
    if doc_type is DocumentType.DNI:
        return Problem(Code.INVALID_DNI)
    return Problem(Code.INVALID_DOCUMENT_NUMBER, params={"min": low, "max": high})


class Visitor(Base):
    __tablename__ = "visitor"
    __table_args__ = (UniqueConstraint("doc_type", "doc_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    doc_type: Mapped[DocumentType] = mapped_column(str_enum(DocumentType))
    doc_number: Mapped[str] = mapped_column(String(16))
    first_names: Mapped[str] = mapped_column(String(100))
    last_names: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[Sex | None] = mapped_column(str_enum(Sex))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class VisitorSuspension(Base):
    """A visitor barred from visiting one prison until a date (inclusive), unless lifted."""

    __tablename__ = "visitor_suspension"
    __table_args__ = (
        # Every booking asks whether its visitors are barred from this prison.
        Index("ix_visitor_suspension_prison_visitor", "prison_id", "visitor_id"),
        # The retention purge asks whether a person is barred still, or was until lately
        # (visits.retention), and finds the suspensions that ended long ago.
        Index("ix_visitor_suspension_visitor_until", "visitor_id", "until"),
        Index("ix_visitor_suspension_until", "until"),
        Index("ix_visitor_suspension_lifted_at", "lifted_at"),  # and those lifted long ago
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    visitor_id: Mapped[int] = mapped_column(ForeignKey("visitor.id", ondelete="CASCADE"))
    prison_id: Mapped[int] = mapped_column(ForeignKey("prison.id", ondelete="CASCADE"))
    until: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # "cli" or "staff:<name>"; lifting keeps the row for the record.
    created_by: Mapped[str | None] = mapped_column(String(64))
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lifted_by: Mapped[str | None] = mapped_column(String(64))

    visitor: Mapped[Visitor] = relationship()


@dataclass(frozen=True)
class Identity:
    """A person as a booking names them: their document and what they said of themselves."""

    doc_type: DocumentType
    doc_number: str
    first_names: str
    last_names: str
    birth_date: date
    sex: Sex | None

    @property
    def key(self) -> tuple[DocumentType, str]:
        return (self.doc_type, self.doc_number)

    @property
    def full_name(self) -> str:
        return f"{self.first_names} {self.last_names}"


def find_visitors(
    session: Session, keys: Iterable[tuple[DocumentType, str]], *, lock: bool = False
) -> dict[tuple[DocumentType, str], Visitor]:
    """The visitors with these documents; with ``lock``, their rows are locked until commit
    (in id order, on PostgreSQL) and reloaded as they are now."""
    keys = list(keys)
    if not keys:
        return {}
    matches = [(Visitor.doc_type == t) & (Visitor.doc_number == n) for t, n in keys]
    query = select(Visitor).where(or_(*matches)).order_by(Visitor.id)
    if lock:
        query = query.execution_options(populate_existing=True)
        if session.get_bind().dialect.name != "sqlite":
            query = query.with_for_update()
    return {(v.doc_type, v.doc_number): v for v in session.scalars(query)}


CLAIM_ATTEMPTS = 2


def claim_visitors(session: Session, people: Sequence[Identity], now: datetime) -> list[Visitor]:
    """The visitor rows for ``people``, created where new (dated ``now``: the retention purge
    measures from it, on the caller's clock), locked until commit, in order.

    Concurrent bookings naming the same new person both end up with the one row (the insert
    ignores the conflict), and the lock makes their per-day checks take turns.
    """
    require_write_lock(session)
    rows = [
        {
            "doc_type": p.doc_type,
            "doc_number": p.doc_number,
            "first_names": p.first_names,
            "last_names": p.last_names,
            "birth_date": p.birth_date,
            "sex": p.sex,
            "created_at": now,
            "updated_at": now,
        }
        # In document order: two bookings naming the same new people in another order
        # must not wait on each other's half-inserted rows.
        for p in sorted(people, key=lambda p: p.key)
    ]
    for _ in range(CLAIM_ATTEMPTS):
        insert_ignoring_conflicts(session, Visitor.__table__, rows, ["doc_type", "doc_number"])
        by_key = find_visitors(session, (p.key for p in people), lock=True)
        if all(person.key in by_key for person in people):
            return [by_key[person.key] for person in people]
        # A person the retention purge deleted while we waited for their row: made anew.
    raise RuntimeError("visitor rows vanished twice while being claimed")


def remember_details(visitor: Visitor, person: Identity) -> None:
    """Keep the latest name, birth date and sex the person gave."""
    visitor.first_names = person.first_names
    visitor.last_names = person.last_names
    visitor.birth_date = person.birth_date
    if person.sex is not None:
        visitor.sex = person.sex


# Built once, not on every call: every booking asks it. The prison's id is typed here, as in
# visits.advisories: the column takes its type from prison.id, not declared yet on import.
_SUSPENSIONS_FROM = select(VisitorSuspension.visitor_id, VisitorSuspension.until).where(
    VisitorSuspension.prison_id == bindparam("prison_id", type_=Integer),
    VisitorSuspension.visitor_id.in_(bindparam("visitor_ids", expanding=True)),
    VisitorSuspension.until >= bindparam("from_day"),
    VisitorSuspension.lifted_at.is_(None),
)


def suspensions_from(
    session: Session, prison_id: int, visitor_ids: Iterable[int], from_day: date
) -> list[tuple[int, date]]:
    """(visitor id, last day) of each suspension of these visitors at this prison that covers
    ``from_day`` or any day after (a suspension has no start: see :func:`suspended_on`)."""
    ids = list(visitor_ids)
    if not ids:
        return []
    wanted = {"prison_id": prison_id, "visitor_ids": ids, "from_day": from_day}
    rows = session.execute(_SUSPENSIONS_FROM, wanted)
    return [(visitor_id, until) for visitor_id, until in rows]


def suspended_on(found: Iterable[tuple[int, date]], on_day: date) -> dict[int, date]:
    """Visitor id → the last day of the longest of these suspensions
    (:func:`suspensions_from`) covering ``on_day``."""
    until: dict[int, date] = {}
    for visitor_id, day in found:
        if day >= on_day:
            until[visitor_id] = max(day, until.get(visitor_id, day))
    return until
