"""TB symptom screening of visitors, when they book and again at the gate.

Each visitor is asked five symptom questions (cough for 15 days or more, phlegm or blood,
fever in the last two weeks, night sweats, weight loss without trying) and two routing
questions (lives with someone who has TB; pregnant or with low defences). Any symptom: the
visitor is not let in that day, the booking is flagged for the gate, and the family is told
kindly, by SMS and on the page, where to get a free TB check. Living with someone with TB
earns the same advice, not a refusal (a contact without symptoms is not contagious).

Only the outcome and its date are stored, never the answers; the one routing answer kept is
"high risk" on the booking's visitor (exposure tracing counts such a visitor as a close contact,
and a health measure that keeps high-risk visitors away refuses them). Every visitor is asked,
not only adults: a child with a cough of 15 days needs the check as much.

The cough is MINSA's "sintomático respiratorio": a cough (with phlegm) for 15 days or more.
Every text that names the symptoms (the questions, the health measure notice, the contact's
SMS) names them as the questions do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import Date, ForeignKey, String, UniqueConstraint, false, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from visits.base import Base, UTCDateTime, str_enum
from visits.problems import Code, Problem

if TYPE_CHECKING:
    from visits.booking import Booking, BookingVisitor
    from visits.prison import Prison


class Symptom(StrEnum):
    COUGH = "cough"  # for 15 days or more
    PHLEGM = "phlegm"  # phlegm or blood when coughing
    FEVER = "fever"  # in the last two weeks
    NIGHT_SWEATS = "night_sweats"
    WEIGHT_LOSS = "weight_loss"  # without trying


# The routing questions, by the name their answer has in a form.
LIVES_WITH_TB = "lives_with_tb"
HIGH_RISK = "high_risk"  # pregnant, or low defences (HIV, diabetes, cancer treatment...)
QUESTIONS = (*(s.value for s in Symptom), LIVES_WITH_TB, HIGH_RISK)


class Stage(StrEnum):
    BOOKING = "booking"
    GATE = "gate"


class Outcome(StrEnum):
    CLEAR = "clear"
    ADVISED = "advised"  # no symptom, lives with someone with TB: a free check is advised
    REFER = "refer"  # a symptom: a free TB check first; not let in that day


@dataclass(frozen=True)
class Answers:
    """One visitor's answers, as given (never stored)."""

    symptoms: frozenset[Symptom] = frozenset()
    lives_with_tb: bool = False
    high_risk: bool = False

    @property
    def outcome(self) -> Outcome:
        if self.symptoms:
            return Outcome.REFER
        return Outcome.ADVISED if self.lives_with_tb else Outcome.CLEAR


_YES = {"1", "on", "true", "yes"}
_NO = {"", "0", "off", "false", "no"}


def parse_answers(raw: dict[str, str], field_prefix: str) -> Answers | list[Problem]:
    """A form's or the API's yes/no answers (a ticked box is yes, an absent one no)."""
    problems: list[Problem] = []
    said: dict[str, bool] = {}
    for name in QUESTIONS:
        value = str(raw.get(name, "")).strip().lower()
        if value not in _YES | _NO:
            problems.append(Problem(Code.INVALID_CHOICE, f"{field_prefix}{name}"))
        said[name] = value in _YES
    if problems:
        return problems
    return Answers(
        symptoms=frozenset(s for s in Symptom if said[s.value]),
        lives_with_tb=said[LIVES_WITH_TB],
        high_risk=said[HIGH_RISK],
    )


class Screening(Base):
    """A visitor's screening outcome on a day, at booking or at the gate (never the answers)."""

    __tablename__ = "screening"
    __table_args__ = (UniqueConstraint("booking_visitor_id", "stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_visitor_id: Mapped[int] = mapped_column(
        ForeignKey("booking_visitor.id", ondelete="CASCADE")
    )
    stage: Mapped[Stage] = mapped_column(str_enum(Stage))
    outcome: Mapped[Outcome] = mapped_column(str_enum(Outcome))
    # The one routing answer kept: undoing the gate's screening restores the family's.
    high_risk: Mapped[bool] = mapped_column(default=False, server_default=false())
    day: Mapped[date] = mapped_column(Date)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    by: Mapped[str] = mapped_column(String(64))


def record(
    session: Session,
    booking_visitor_id: int,
    stage: Stage,
    answers: Answers,
    now: datetime,
    by: str,
    prison: Prison,
) -> None:
    """Store an outcome, its day and the high-risk answer (a second screening at the same
    stage replaces it)."""
    found = _at(session, booking_visitor_id, stage)
    if found is None:
        found = Screening(booking_visitor_id=booking_visitor_id, stage=stage)
        session.add(found)
    found.outcome, found.high_risk = answers.outcome, answers.high_risk
    found.day, found.at, found.by = prison.local_date(now), now, by
    session.flush()


def record_at_booking(
    session: Session, booking: Booking, answers: list[Answers], now: datetime, by: str
) -> None:
    """The outcomes a new booking's visitors gave (in their order), added without a look-up:
    a booking made now has none yet."""
    day = booking.prison.local_date(now)
    session.add_all(
        Screening(
            booking_visitor_id=visitor.id,
            stage=Stage.BOOKING,
            outcome=given.outcome,
            high_risk=given.high_risk,
            day=day,
            at=now,
            by=by,
        )
        for visitor, given in zip(booking.visitors, answers, strict=True)
    )


def high_risk_at_booking(session: Session, booking_visitor_id: int) -> bool:
    """What the family answered when booking (what stands once the gate's answer is undone)."""
    found = _at(session, booking_visitor_id, Stage.BOOKING)
    return found is not None and found.high_risk


def forget(session: Session, booking_visitor_id: int, stage: Stage) -> None:
    found = _at(session, booking_visitor_id, stage)
    if found is not None:
        session.delete(found)


def _at(session: Session, booking_visitor_id: int, stage: Stage) -> Screening | None:
    return session.scalar(
        select(Screening).where(
            Screening.booking_visitor_id == booking_visitor_id, Screening.stage == stage
        )
    )


def outcomes(
    session: Session, visitor_ids: list[int], *, visit_day: date | None = None
) -> dict[int, dict[Stage, Outcome]]:
    """Each booking visitor's outcomes, by stage (for the gate's list and the booking page).
    ``visit_day``: the gate's only if recorded that day (a booking moved after a screening at
    the gate does not take it to its new day)."""
    found: dict[int, dict[Stage, Outcome]] = {}
    if not visitor_ids:
        return found
    query = select(Screening.booking_visitor_id, Screening.stage, Screening.outcome).where(
        Screening.booking_visitor_id.in_(visitor_ids)
    )
    if visit_day is not None:
        query = query.where(or_(Screening.stage == Stage.BOOKING, Screening.day == visit_day))
    rows = session.execute(query)
    for visitor_id, stage, outcome in rows:
        found.setdefault(visitor_id, {})[stage] = outcome
    return found


def advised(session: Session, visitors: list[BookingVisitor]) -> dict[str, Outcome]:
    """The visitors told to get a free check, by name, with the closest reason (a symptom
    before living with someone with TB)."""
    found = outcomes(session, [v.id for v in visitors])
    told = {}
    for v in visitors:
        said = set(found.get(v.id, {}).values()) - {Outcome.CLEAR}
        if said:
            told[v.full_name] = Outcome.REFER if Outcome.REFER in said else Outcome.ADVISED
    return told
