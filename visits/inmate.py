"""The inmate roster, and how a family proves it knows the person it visits.

Inmates are never listed or searched publicly. A family names one by code plus one detail it
knows (the first surname or the birth date); any mismatch gives the same neutral answer, and
failures are throttled per client (an IPv6 one by its /64 network) and per inmate code.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, Index, String, UniqueConstraint, bindparam, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from visits import throttle
from visits.base import Base, UTCDateTime, str_enum, utcnow
from visits.booking_request import date_problem, parse_date
from visits.prison import Prison
from visits.problems import Code, Problem
from visits.throttle import ThrottlePolicy

MAX_CODE_LENGTH = 32
MAX_SURNAME_LENGTH = 100


class InmateStatus(StrEnum):
    ACTIVE = "active"
    TRANSFERRED = "transferred"
    RELEASED = "released"
    INACTIVE = "inactive"  # no longer on the roster the prison sent


class Inmate(Base):
    __tablename__ = "inmate"
    __table_args__ = (
        UniqueConstraint("prison_id", "code"),
        # A wing advisory's inmates: locked when it is issued, their visitors traced.
        Index("ix_inmate_wing_id", "wing_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prison_id: Mapped[int] = mapped_column(ForeignKey("prison.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    first_names: Mapped[str] = mapped_column(String(100))
    last_name_1: Mapped[str] = mapped_column(String(100))
    last_name_2: Mapped[str] = mapped_column(String(100), default="")
    birth_date: Mapped[date] = mapped_column(Date)
    wing_id: Mapped[int | None] = mapped_column(ForeignKey("wing.id", ondelete="SET NULL"))
    status: Mapped[InmateStatus] = mapped_column(
        str_enum(InmateStatus), default=InmateStatus.ACTIVE
    )
    visits_suspended_until: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def display_name(self) -> str:
        """First name and first surname: enough for a family to recognise, no more."""
        return f"{self.first_names.split()[0]} {self.last_name_1}"


def normalise_code(code: str) -> str:
    return "".join(unicodedata.normalize("NFKC", code).split()).upper()


def comparable_name(name: str) -> str:
    """Case, accents, hyphens and spacing ignored: ``Quispe-Ñahui`` matches ``quispe nahui``."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(letters.replace("-", " ").replace("'", " ").split())


class InmateSuspension(Base):
    """Visits to an inmate suspended by staff until a date (inclusive), with a reason for
    staff. Kept apart from the roster's ``visits_suspended_until``, which every import
    rewrites; lifting keeps the row (``lifted_at``) for the record."""

    __tablename__ = "inmate_suspension"

    id: Mapped[int] = mapped_column(primary_key=True)
    inmate_id: Mapped[int] = mapped_column(ForeignKey("inmate.id", ondelete="CASCADE"), index=True)
    until: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lifted_by: Mapped[str | None] = mapped_column(String(64))


# Built once, not on every call: every booking asks it.
_SUSPENSION_ENDS = select(InmateSuspension.until).where(
    InmateSuspension.inmate_id == bindparam("inmate_id"),
    InmateSuspension.lifted_at.is_(None),
    InmateSuspension.until >= bindparam("from_day"),
)


def suspension_ends(session: Session, inmate: Inmate, from_day: date) -> list[date]:
    """The last days of the suspensions of visits to this inmate (staff's, and the roster's)
    that cover ``from_day`` or any day after: a suspension has no start, so these are all that
    can cover a day from then on (see :func:`longest_suspension`)."""
    ends = list(session.scalars(_SUSPENSION_ENDS, {"inmate_id": inmate.id, "from_day": from_day}))
    if inmate.visits_suspended_until is not None and inmate.visits_suspended_until >= from_day:
        ends.append(inmate.visits_suspended_until)
    return ends


def longest_suspension(ends: Iterable[date], on_day: date) -> date | None:
    """The last day of the longest of these suspensions (:func:`suspension_ends`) that covers
    ``on_day``."""
    return max((end for end in ends if end >= on_day), default=None)


def suspended_until(session: Session, inmate: Inmate, on_day: date) -> date | None:
    """The last day of the longest suspension (the roster's or staff's) covering ``on_day``."""
    return longest_suspension(suspension_ends(session, inmate, on_day), on_day)


def inmate_problems(inmate: Inmate, visit_day: date, suspensions: Iterable[date]) -> list[Problem]:
    """Whether this inmate can receive a visit on ``visit_day``, given the ends of their
    suspensions read from that day or earlier (:func:`suspension_ends`)."""
    if inmate.status is not InmateStatus.ACTIVE:
        return [Problem(Code.INMATE_NOT_ACTIVE, "inmate")]
    until = longest_suspension(suspensions, visit_day)
    if until is not None:
        return [Problem(Code.INMATE_SUSPENDED, "inmate", {"until": until})]
    return []


def _surnames(inmate: Inmate) -> set[str]:
    """What a family may type as the surname: the first one, or, as many write it in Peru,
    both of them (knowing the second as well tells no less)."""
    first = comparable_name(inmate.last_name_1)
    return {first, comparable_name(f"{inmate.last_name_1} {inmate.last_name_2}")}


@dataclass
class Identification:
    inmate: Inmate | None = None
    problems: list[Problem] = field(default_factory=list)


def _identify_problems(code: str, surname: str, birth_text: str) -> list[Problem]:
    problems = []
    if not code:
        problems.append(Problem(Code.REQUIRED, "inmate_code"))
    elif len(code) > MAX_CODE_LENGTH:
        problems.append(Problem(Code.TOO_LONG, "inmate_code", {"max": MAX_CODE_LENGTH}))
    if not surname and not birth_text:
        problems.append(Problem(Code.IDENTITY_CHECK_REQUIRED, "surname"))
    elif len(surname) > MAX_SURNAME_LENGTH:
        problems.append(Problem(Code.TOO_LONG, "surname", {"max": MAX_SURNAME_LENGTH}))
    if birth_text and parse_date(birth_text) is None:
        problems.append(date_problem(birth_text, "birth_date"))
    return problems


# Built once, not on every call: every family's request asks it.
_INMATE_BY_CODE = select(Inmate).where(
    Inmate.prison_id == bindparam("prison_id"), Inmate.code == bindparam("code")
)


def identify(
    session: Session,
    prison: Prison,
    *,
    code: str,
    surname: str = "",
    birth_date: str = "",
    client: str,
    now: datetime,
    policy: ThrottlePolicy,
) -> Identification:
    """Find the inmate a family names by code plus surname or birth date (as typed), or say
    neutrally that the details do not match.

    A failed match is recorded in ``session`` even though nothing is found: the caller commits
    in both cases. That an inmate is no longer active is only revealed to a caller whose
    details matched. A suspension is not checked here but per visit day, when booking.

    Decision: given both a surname and a birth date, either one right is enough (a family
    that mistypes a date is not turned away), so a failure tested two guesses and counts as
    two toward every limit. While the person's identification is paused for everyone (see
    :class:`ThrottlePolicy`), only both right passes.
    """
    code, surname, birth_text = normalise_code(code), surname.strip(), birth_date.strip()
    if problems := _identify_problems(code, surname, birth_text):
        return Identification(problems=problems)
    pair = f"identify:pair:{client}:{prison.id}:{code}"
    by_client = f"identify:client:{client}"
    by_inmate = f"identify:inmate:{prison.id}:{code}"
    hits = throttle.recent(session, [pair, by_client, by_inmate], policy.window, now)
    delays = [
        throttle.wait(hits[pair], policy.per_pair, policy.window, now),
        throttle.wait(hits[by_client], policy.per_client, policy.window, now),
    ]
    if wait := throttle.minutes(max(delays)):
        return Identification(problems=[Problem(Code.TOO_MANY_ATTEMPTS, None, {"minutes": wait})])
    paused = throttle.minutes(throttle.wait(hits[by_inmate], policy.per_inmate, policy.window, now))
    too_many = Identification(problems=[Problem(Code.IDENTIFY_PAUSED, None, {"minutes": paused})])
    both = bool(surname and birth_text)
    if paused and not both:
        return too_many

    inmate = session.scalar(_INMATE_BY_CODE, {"prison_id": prison.id, "code": code})
    surname_right = (
        inmate is not None and bool(surname) and comparable_name(surname) in _surnames(inmate)
    )
    born_right = (
        inmate is not None and bool(birth_text) and parse_date(birth_text) == inmate.birth_date
    )
    matched = (surname_right and born_right) if paused else (surname_right or born_right)
    if not matched:
        throttle.record_failure(session, [pair, by_client, by_inmate] * (2 if both else 1), now)
        if paused:
            return too_many
        return Identification(problems=[Problem(Code.INMATE_NOT_IDENTIFIED, "inmate_code")])
    assert inmate is not None
    if inmate.status is not InmateStatus.ACTIVE:
        return Identification(inmate, [Problem(Code.INMATE_NOT_ACTIVE, "inmate_code")])
    return Identification(inmate)
