"""The booking rules that need no database: ages, windows, weeks and who may come.

Each returns problems rather than raising, so that a family sees every reason at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from visits.problems import Code, Problem


class VisitorGroup(StrEnum):
    """Who a visit session is for. Many Peruvian prisons keep separate days by visitor sex."""

    ANYONE = "anyone"
    WOMEN = "women"
    MEN = "men"


class Sex(StrEnum):
    FEMALE = "F"
    MALE = "M"


@dataclass(frozen=True)
class PartyMember:
    """What the party rules need to know of one visitor; ``index`` names the form field.

    While a family corrects a form, a visitor may be known only in part: ``birth_date`` is
    ``None`` when the birth date typed is not valid yet, and ``sex_valid`` is false when the
    sex answered is not (a missing or unknown choice). See :func:`party_problems`."""

    index: int
    birth_date: date | None
    sex: Sex | None  # None and valid: not asked (booked on a day open to all)
    sex_valid: bool = True


def age_on(birth_date: date, day: date) -> int:
    """Completed years on ``day`` (someone born on 29 February turns a year older on 1 March)."""
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def iso_week_bounds(day: date) -> tuple[date, date]:
    """Monday and Sunday of the ISO week that holds ``day``."""
    monday = day - timedelta(days=day.isoweekday() - 1)
    return monday, monday + timedelta(days=6)


def last_bookable_day(local_today: date, opens_days: int) -> date:
    """Booking opens ``opens_days`` ahead: today plus that many days is the furthest day."""
    return local_today + timedelta(days=opens_days)


def window_problem(
    *,
    starts_at: datetime,
    local_day: date,
    now: datetime,
    local_today: date,
    opens_days: int,
    closes_hours: int,
) -> Problem | None:
    """Whether the slot can be booked at ``now``: not past, not too late, not too early."""
    if starts_at <= now:
        return Problem(Code.SLOT_IN_PAST, "slot_id")
    if now > starts_at - timedelta(hours=closes_hours):
        return Problem(Code.BOOKING_CLOSED, "slot_id", {"hours": closes_hours})
    if local_day > last_bookable_day(local_today, opens_days):
        opens_on = local_day - timedelta(days=opens_days)
        return Problem(Code.BOOKING_NOT_OPEN_YET, "slot_id", {"opens_on": opens_on})
    return None


def party_problems(
    members: Sequence[PartyMember],
    *,
    visit_day: date,
    max_visitors: int,
    min_adults: int,
    adult_age: int,
    group: VisitorGroup,
) -> list[Problem]:
    """Size, adults, and the session's visitor group.

    The group applies to adults only: children come with the adult who brings them, whatever
    their sex, as on Peruvian women's and men's visiting days.

    Members known only in part (see :class:`PartyMember`) are checked alongside their field
    errors, under one rule: a party rule is reported only when no correction of the fields
    still wrong could satisfy it, so a family is never told something a typo caused. Every
    member counts toward the size (each entry is someone coming). A member whose birth date
    is not valid yet may turn out an adult: they count as one for "at least N adults" (no
    "an adult must come" while the only adult's birth date is mistyped), and as neither
    adult nor child for the group (a man on a women's day may be a boy). A member whose sex
    is not valid yet gets no group problem. Once every field is valid this is the plain rule.
    """
    problems: list[Problem] = []
    if not members:
        return [Problem(Code.NO_VISITORS, "visitors")]
    if len(members) > max_visitors:
        problems.append(Problem(Code.TOO_MANY_VISITORS, "visitors", {"max": max_visitors}))
    adults = [
        m
        for m in members
        if m.birth_date is not None and age_on(m.birth_date, visit_day) >= adult_age
    ]
    undecided = sum(1 for m in members if m.birth_date is None)
    if len(adults) + undecided < min_adults:
        problems.append(Problem(Code.ADULT_REQUIRED, "visitors", {"age": adult_age}))
    if group is not VisitorGroup.ANYONE:
        allowed = Sex.FEMALE if group is VisitorGroup.WOMEN else Sex.MALE
        wrong = Code.SLOT_WOMEN_ONLY if group is VisitorGroup.WOMEN else Code.SLOT_MEN_ONLY
        for member in adults:
            if not member.sex_valid:
                continue  # its own field error says what to do
            # Unknown when the booking was made on a day open to all and is moved here.
            if member.sex is None:
                problems.append(Problem(Code.VISITOR_SEX_UNKNOWN, f"visitors.{member.index}.sex"))
            elif member.sex is not allowed:
                problems.append(Problem(wrong, f"visitors.{member.index}.sex"))
    return problems
