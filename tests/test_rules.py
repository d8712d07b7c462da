"""Pure rules: slot generation, booking windows, ISO weeks, ages, party composition."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from visits.problems import Code
from visits.rules import (
    PartyMember,
    Sex,
    VisitorGroup,
    age_on,
    iso_week_bounds,
    party_problems,
    window_problem,
)
from visits.schedule import TemplateRule, generate_slots

LIMA = ZoneInfo("America/Lima")
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
clock = st.times().map(lambda t: t.replace(second=0, microsecond=0))


@st.composite
def rules(draw):
    start = draw(st.integers(min_value=0, max_value=22 * 60))
    length = draw(st.integers(min_value=15, max_value=(23 * 60 + 59) - start))
    valid_from = draw(days)
    open_ended = draw(st.booleans())
    return TemplateRule(
        weekday=draw(st.integers(min_value=0, max_value=6)),
        start_time=time(start // 60, start % 60),
        end_time=time((start + length) // 60, (start + length) % 60),
        capacity=draw(st.integers(min_value=0, max_value=500)),
        visitor_group=draw(st.sampled_from(list(VisitorGroup))),
        valid_from=valid_from,
        valid_to=None if open_ended else draw(st.dates(min_value=valid_from)),
    )


@given(rule=rules(), first=days, span=st.integers(min_value=0, max_value=70))
def test_generated_slots_follow_their_template_exactly_in_lima(rule, first, span):
    last = first + timedelta(days=span)
    slots = generate_slots([rule], first, last, LIMA)
    expected_days = [
        first + timedelta(days=i)
        for i in range(span + 1)
        if rule.applies_on(first + timedelta(days=i))
    ]
    assert [s.local_date for s in slots] == expected_days
    for slot in slots:
        local = slot.starts_at.astimezone(LIMA)
        assert local.date() == slot.local_date
        assert local.time() == rule.start_time
        assert slot.ends_at.astimezone(LIMA).time() == rule.end_time
        assert slot.starts_at.utcoffset() == timedelta(0)
        # Lima keeps UTC-5 all year: no daylight saving shifts a visit.
        assert slot.starts_at - datetime.combine(slot.local_date, rule.start_time, UTC) == (
            timedelta(hours=5)
        )
        assert slot.local_date.weekday() == rule.weekday
        assert rule.valid_from <= slot.local_date
        assert rule.valid_to is None or slot.local_date <= rule.valid_to
        assert slot.capacity == rule.capacity


def test_generation_crosses_month_and_year_ends():
    evening = TemplateRule(
        weekday=3, start_time=time(20), end_time=time(23, 30), capacity=5,
        visitor_group=VisitorGroup.ANYONE, valid_from=date(2026, 1, 1), valid_to=None,
    )  # fmt: skip
    slots = generate_slots([evening], date(2026, 12, 28), date(2027, 1, 8), LIMA)
    assert [s.local_date for s in slots] == [date(2026, 12, 31), date(2027, 1, 7)]
    # 20:00 in Lima on New Year's Eve is already 2027 in UTC.
    assert slots[0].starts_at == datetime(2027, 1, 1, 1, 0, tzinfo=UTC)
    assert slots[0].local_date == date(2026, 12, 31)


def test_generation_on_a_leap_day_and_month_boundary():
    thursday = TemplateRule(
        weekday=3, start_time=time(9), end_time=time(11), capacity=5,
        visitor_group=VisitorGroup.ANYONE, valid_from=date(2028, 2, 1),
        valid_to=date(2028, 3, 2),
    )  # fmt: skip
    slots = generate_slots([thursday], date(2028, 2, 20), date(2028, 3, 10), LIMA)
    assert [s.local_date for s in slots] == [date(2028, 2, 24), date(2028, 3, 2)]
    assert generate_slots([thursday], date(2028, 2, 29), date(2028, 2, 29), LIMA) == []


@given(templates=st.lists(rules(), max_size=5), first=days, span=st.integers(0, 40))
def test_generated_slots_are_ordered(templates, first, span):
    slots = generate_slots(templates, first, first + timedelta(days=span), LIMA)
    assert [s.starts_at for s in slots] == sorted(s.starts_at for s in slots)
    assert len(slots) == sum(
        rule.applies_on(first + timedelta(days=i)) for rule in templates for i in range(span + 1)
    )


@given(day=days)
def test_iso_week_bounds_hold_the_day_and_run_monday_to_sunday(day):
    monday, sunday = iso_week_bounds(day)
    assert monday <= day <= sunday
    assert monday.isoweekday() == 1
    assert sunday - monday == timedelta(days=6)
    assert monday.isocalendar()[:2] == day.isocalendar()[:2]


def test_iso_week_across_the_year_end():
    assert iso_week_bounds(date(2027, 1, 1)) == (date(2026, 12, 28), date(2027, 1, 3))


@given(born=st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 1, 1)), later=days)
def test_age_counts_completed_years(born, later):
    if later < born:
        return
    age = age_on(born, later)
    assert age >= 0
    try:
        birthday = born.replace(year=born.year + age)
    except ValueError:  # 29 February in a common year: the birthday is 1 March
        birthday = date(born.year + age, 3, 1)
    assert birthday <= later


def test_birthday_on_29_february():
    assert age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17
    assert age_on(date(2008, 2, 29), date(2026, 3, 1)) == 18


def _window(starts_at, now, local_day=None, opens=14, closes=24):
    local_day = local_day or starts_at.astimezone(LIMA).date()
    return window_problem(
        starts_at=starts_at,
        local_day=local_day,
        now=now,
        local_today=now.astimezone(LIMA).date(),
        opens_days=opens,
        closes_hours=closes,
    )


def test_booking_window_edges():
    now = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in Lima
    assert _window(now, now).code is Code.SLOT_IN_PAST
    exactly_24h = now + timedelta(hours=24)
    assert _window(exactly_24h, now) is None
    assert _window(exactly_24h - timedelta(minutes=1), now).code is Code.BOOKING_CLOSED
    day_14 = datetime(2026, 12, 15, 23, 0, tzinfo=UTC)  # 18:00 in Lima on the 15th
    day_15 = datetime(2026, 12, 16, 14, 0, tzinfo=UTC)
    assert _window(day_14, now) is None
    late = _window(day_15, now)
    assert late.code is Code.BOOKING_NOT_OPEN_YET
    assert late.params["opens_on"] == date(2026, 12, 2)
    assert _window(now + timedelta(minutes=1), now, closes=0) is None


@given(
    now=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
    ahead=st.integers(min_value=-48 * 60, max_value=30 * 24 * 60),
    opens=st.integers(min_value=1, max_value=60),
    closes=st.integers(min_value=0, max_value=72),
)
def test_a_slot_is_bookable_exactly_inside_the_window(now, ahead, opens, closes):
    starts_at = now + timedelta(minutes=ahead)
    local_day = starts_at.astimezone(LIMA).date()
    problem = _window(starts_at, now, opens=opens, closes=closes)
    inside = (
        starts_at > now
        and starts_at - now >= timedelta(hours=closes)
        and (local_day - now.astimezone(LIMA).date()).days <= opens
    )
    assert (problem is None) == inside


def _member(i, born, sex=None):
    return PartyMember(i, born, sex)


VISIT = date(2026, 12, 5)


def test_party_problems_every_rule_at_once():
    children = [_member(i, date(2015, 1, 1), Sex.MALE) for i in range(4)]
    problems = party_problems(
        children, visit_day=VISIT, max_visitors=3, min_adults=1, adult_age=18,
        group=VisitorGroup.WOMEN,
    )  # fmt: skip
    assert {p.code for p in problems} == {Code.TOO_MANY_VISITORS, Code.ADULT_REQUIRED}


def test_group_applies_to_adults_only():
    party = [_member(0, date(1980, 1, 1), Sex.FEMALE), _member(1, date(2016, 1, 1), Sex.MALE)]
    assert party_problems(party, visit_day=VISIT, max_visitors=3, min_adults=1,
                          adult_age=18, group=VisitorGroup.WOMEN) == []  # fmt: skip
    men_day = party_problems(party, visit_day=VISIT, max_visitors=3, min_adults=1,
                             adult_age=18, group=VisitorGroup.MEN)  # fmt: skip
    assert [(p.code, p.field) for p in men_day] == [(Code.SLOT_MEN_ONLY, "visitors.0.sex")]


def test_no_visitors_and_no_adult_rule():
    assert [p.code for p in party_problems([], visit_day=VISIT, max_visitors=3, min_adults=1,
            adult_age=18, group=VisitorGroup.ANYONE)] == [Code.NO_VISITORS]  # fmt: skip
    minors_only = [_member(0, date(2012, 1, 1))]
    assert party_problems(minors_only, visit_day=VISIT, max_visitors=3, min_adults=0,
                          adult_age=18, group=VisitorGroup.ANYONE) == []  # fmt: skip


def _rules(members, **kwargs):
    rules = {"visit_day": VISIT, "max_visitors": 3, "min_adults": 1, "adult_age": 18,
             "group": VisitorGroup.ANYONE} | kwargs  # fmt: skip
    return {(p.code, p.field) for p in party_problems(members, **rules)}


def test_a_birth_date_not_valid_yet_may_be_the_adults():
    """Reported alongside the field errors, a rule must hold whatever the fields still wrong
    turn out to be: an unreadable birth date may be an adult's."""
    child = _member(1, date(2015, 1, 1), Sex.MALE)
    assert _rules([_member(0, None, Sex.FEMALE), child]) == set()
    assert _rules([child, _member(2, date(2016, 1, 1))]) == {(Code.ADULT_REQUIRED, "visitors")}
    assert _rules([_member(0, None), child], min_adults=2) == {(Code.ADULT_REQUIRED, "visitors")}
    assert _rules([_member(i, None) for i in range(4)]) == {(Code.TOO_MANY_VISITORS, "visitors")}


def test_the_group_waits_for_a_valid_birth_date_and_sex():
    women = {"group": VisitorGroup.WOMEN}
    adult = _member(0, date(1980, 1, 1), Sex.FEMALE)
    assert _rules([adult, _member(1, None, Sex.MALE)], **women) == set()  # may be a boy
    unreadable = PartyMember(1, date(1980, 1, 1), None, sex_valid=False)
    assert _rules([adult, unreadable], **women) == set()  # its own field error says it
    moved_here = PartyMember(1, date(1980, 1, 1), None)  # booked on a day open to all
    assert _rules([adult, moved_here], **women) == {(Code.VISITOR_SEX_UNKNOWN, "visitors.1.sex")}
