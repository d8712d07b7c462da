"""TB-exposure advisories: the rules, pure (no database), so each can be tested on its own.

Health staff issue an advisory for a whole prison, a wing or one inmate, with measures for the
visits it covers. The rules here say which measures apply to a visit (:func:`measures_for`),
which past visits count for exposure tracing (:func:`lookback_window`) and how close each
visitor's contact was (:func:`contacts`). Every number is a configurable default
(:class:`TracingPolicy`), from WHO, CDC and Peruvian practice:

- Lookback: from 90 days before the date infectiousness is counted from (the earliest of
  symptom onset, first positive sample and diagnosis), or 28 days for a smear-negative case
  without cavity, until the day the advisory's measures took effect, both days included.
- Tier 1: visited the index inmate, or is a high-risk visitor (a child under 5, pregnant or
  immunocompromised: the family is asked, not guessed) who visited the same wing. Tier 2:
  visited another inmate of the same wing. A wing or prison advisory has no index inmate: its
  high-risk visitors are tier 1, the others tier 2. A visitor who visited several times is one
  contact, at the closest tier.

An advisory is lifted only by a health user, never by a timer: drug-resistant TB can stay
infectious for months.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import IntEnum, StrEnum

# A visitor younger than this is high-risk whatever the family answers.
UNDER_FIVE = 5


class AdvisoryKind(StrEnum):
    TB_SUSCEPTIBLE = "tb_susceptible"  # pulmonary TB, drug-susceptible
    TB_RESISTANT = "tb_resistant"  # pulmonary TB, drug-resistant (MDR/RR)
    TB_UNKNOWN = "tb_unknown"  # pulmonary TB, resistance not known yet
    RESPIRATORY_OUTBREAK = "outbreak"  # a respiratory outbreak


class Scope(StrEnum):
    PRISON = "prison"
    WING = "wing"
    INMATE = "inmate"


@dataclass(frozen=True)
class Measures:
    """What applies to a visit. Several advisories combine: every flag any of them sets, and
    the shortest visit any of them allows."""

    inform: bool = False  # tell the visitors there is a health measure
    masks: bool = False  # a respirator for every visitor
    no_high_risk: bool = False  # no children under 5, pregnant or immunocompromised visitors
    non_contact: bool = False  # through glass or a barrier only
    visit_minutes: int | None = None  # a shorter visit, in minutes
    suspended: bool = False  # no visits at all

    def __or__(self, other: Measures) -> Measures:
        minutes = [m for m in (self.visit_minutes, other.visit_minutes) if m is not None]
        return Measures(
            inform=self.inform or other.inform,
            masks=self.masks or other.masks,
            no_high_risk=self.no_high_risk or other.no_high_risk,
            non_contact=self.non_contact or other.non_contact,
            visit_minutes=min(minutes) if minutes else None,
            suspended=self.suspended or other.suspended,
        )

    @property
    def any(self) -> bool:
        return self != Measures()

    @property
    def said(self) -> str:
        """A short stable name for what the measures ask of a family (what its SMS says):
        "inform" adds nothing to say, and suspended visits are told otherwise."""
        flags = (self.masks, self.no_high_risk, self.non_contact)
        return "".join("1" if f else "0" for f in flags) + f"-{self.visit_minutes or 0}"


class HighRisk(StrEnum):
    """Why a visitor is at high risk from TB: the visitors a measure may keep away."""

    YOUNG_CHILD = "young_child"  # under 5 on the visit day, whatever the family answers
    DECLARED = "declared"  # pregnant or with low defences, as the family (or the gate) said


def high_risk(age: int, declared: bool) -> HighRisk | None:
    """Why a visitor of this age (on the visit day) is high-risk, if they are."""
    if age < UNDER_FIVE:
        return HighRisk.YOUNG_CHILD
    return HighRisk.DECLARED if declared else None


def kept_away(measures: Measures, age: int, declared: bool) -> HighRisk | None:
    """Why these measures keep a visitor of this age (on the visit day) away from the visit,
    if they do: where high-risk visitors are kept away, a child under 5, or a visitor said to
    be pregnant or with low defences. The one rule that refuses a booking, marks the row on
    the guard's list and refuses the visitor at the gate."""
    return high_risk(age, declared) if measures.no_high_risk else None


@dataclass(frozen=True)
class Advisory:
    """An advisory as the rules need it (a row, or one being drafted)."""

    scope: Scope
    prison_id: int
    measures: Measures
    starts_on: date  # the first day its measures apply
    wing_id: int | None = None  # a wing advisory's wing; an inmate advisory's inmate's wing
    inmate_id: int | None = None  # an inmate advisory's index inmate
    lifted_on: date | None = None  # the first day its measures no longer apply

    def active_on(self, day: date) -> bool:
        return self.starts_on <= day and (self.lifted_on is None or day < self.lifted_on)

    def covers(self, prison_id: int, wing_id: int | None, inmate_id: int) -> bool:
        """Whether a visit to this inmate (living in this wing) falls under it."""
        if prison_id != self.prison_id:
            return False
        if self.scope is Scope.INMATE:
            return inmate_id == self.inmate_id
        if self.scope is Scope.WING:
            return wing_id is not None and wing_id == self.wing_id
        return True


def measures_for(
    advisories: Iterable[Advisory], prison_id: int, wing_id: int | None, inmate_id: int, day: date
) -> Measures:
    """Every measure that applies to a visit to this inmate on this day."""
    combined = Measures()
    for advisory in advisories:
        if advisory.active_on(day) and advisory.covers(prison_id, wing_id, inmate_id):
            combined = combined | advisory.measures
    return combined


def timeline(
    advisories: Iterable[Advisory],
    prison_id: int,
    wing_id: int | None,
    inmate_id: int,
    first: date,
    last: date,
) -> list[tuple[date, Measures]]:
    """The measures for visits to this inmate from ``first`` to ``last``: each change as (the
    day it starts, the measures from then on), only where some measure applies."""
    covering = [a for a in advisories if a.covers(prison_id, wing_id, inmate_id)]
    days = sorted({first} | {a.starts_on for a in covering if first < a.starts_on <= last})
    changes: list[tuple[date, Measures]] = []
    previous = Measures()
    for day in days:
        now_in_force = measures_for(covering, prison_id, wing_id, inmate_id, day)
        if now_in_force != previous:
            changes.append((day, now_in_force))
        previous = now_in_force
    return [(day, m) for day, m in changes if m.any]


@dataclass(frozen=True)
class TracingPolicy:
    lookback_days: int = 90
    smear_negative_lookback_days: int = 28  # smear-negative and no cavity on the X-ray
    # Visit records needed for tracing are kept this long past the visit, then purged.
    retention_days: int = 180


def infectious_since(*dates: date | None) -> date | None:
    """The date infectiousness is counted from: the earliest of symptom onset, first positive
    sample and diagnosis (any of them may be unknown)."""
    known = [d for d in dates if d is not None]
    return min(known, default=None)


def lookback_window(
    since: date,
    measures_from: date,
    *,
    smear_negative_no_cavity: bool = False,
    policy: TracingPolicy = TracingPolicy(),
) -> tuple[date, date]:
    """The first and last visit days (both included) whose visitors count as contacts."""
    days = policy.smear_negative_lookback_days if smear_negative_no_cavity else policy.lookback_days
    first = since - timedelta(days=days)
    return first, max(measures_from, first)


class Tier(IntEnum):
    ONE = 1  # evaluation at the health post, free
    TWO = 2  # watch for symptoms


@dataclass(frozen=True)
class Visit:
    """One visitor's visit, as tracing needs it: attended, or booked when the gate recorded
    nothing."""

    visitor_id: int
    inmate_id: int
    wing_id: int | None
    day: date
    high_risk: bool = False


def tier_of(visit: Visit, advisory: Advisory) -> Tier | None:
    """How close this visit came to the advisory's case(s); ``None``: not a contact."""
    if advisory.scope is Scope.INMATE and visit.inmate_id == advisory.inmate_id:
        return Tier.ONE
    same_wing = advisory.scope is Scope.PRISON or (
        advisory.wing_id is not None and visit.wing_id == advisory.wing_id
    )
    if not same_wing:
        return None
    return Tier.ONE if visit.high_risk else Tier.TWO


def contacts(
    visits: Iterable[Visit], advisory: Advisory, window: tuple[date, date]
) -> dict[int, Tier]:
    """Visitor id → the closest tier of their visits in the window (each visitor once)."""
    first, last = window
    found: dict[int, Tier] = {}
    for visit in visits:
        if not first <= visit.day <= last:
            continue
        tier = tier_of(visit, advisory)
        if tier is not None and (visit.visitor_id not in found or tier < found[visit.visitor_id]):
            found[visit.visitor_id] = tier
    return found
