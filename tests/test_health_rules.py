"""The TB-advisory rules, pure: which measures apply, the lookback window, the contact tiers.
Unit tests at every boundary, and properties against a brute-force reading of the rules."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from visits.health import (
    Advisory,
    Measures,
    Scope,
    Tier,
    TracingPolicy,
    Visit,
    contacts,
    infectious_since,
    lookback_window,
    measures_for,
    tier_of,
)

PRISON, OTHER_PRISON = 1, 2
WING_A, WING_B = 10, 20
INDEX, NEIGHBOUR, ELSEWHERE = 100, 101, 200  # the index inmate and a neighbour in wing A
DAY = date(2026, 12, 1)

measures = st.builds(
    Measures,
    inform=st.booleans(),
    masks=st.booleans(),
    no_high_risk=st.booleans(),
    non_contact=st.booleans(),
    visit_minutes=st.none() | st.integers(10, 180),
    suspended=st.booleans(),
)


def inmate_advisory(**changes) -> Advisory:
    values = {
        "scope": Scope.INMATE,
        "prison_id": PRISON,
        "measures": Measures(masks=True),
        "starts_on": DAY,
        "wing_id": WING_A,
        "inmate_id": INDEX,
    }
    return Advisory(**(values | changes))


# --- Measures --------------------------------------------------------------------------------


def test_measures_combine_every_flag_and_the_shortest_visit():
    masks = Measures(masks=True, visit_minutes=60)
    suspended = Measures(suspended=True, visit_minutes=30)
    assert masks | suspended == Measures(masks=True, suspended=True, visit_minutes=30)
    assert (masks | Measures()).visit_minutes == 60
    assert not Measures().any
    assert Measures(inform=True).any


@given(measures, measures, measures)
def test_combining_measures_is_order_free_and_has_no_effect_with_none(a, b, c):
    assert a | b == b | a
    assert (a | b) | c == a | (b | c)
    assert a | Measures() == a
    assert a | a == a


def test_an_advisory_applies_from_its_first_day_until_the_day_it_is_lifted():
    advisory = inmate_advisory(lifted_on=DAY + timedelta(days=10))
    assert not advisory.active_on(DAY - timedelta(days=1))
    assert advisory.active_on(DAY)
    assert advisory.active_on(DAY + timedelta(days=9))
    assert not advisory.active_on(DAY + timedelta(days=10))
    assert inmate_advisory().active_on(DAY + timedelta(days=3650))  # no timer lifts it


@pytest.mark.parametrize(
    ("scope", "visited", "wing", "prison", "covered"),
    [
        (Scope.INMATE, INDEX, WING_A, PRISON, True),
        (Scope.INMATE, NEIGHBOUR, WING_A, PRISON, False),
        (Scope.WING, NEIGHBOUR, WING_A, PRISON, True),
        (Scope.WING, ELSEWHERE, WING_B, PRISON, False),
        (Scope.WING, ELSEWHERE, None, PRISON, False),
        (Scope.PRISON, ELSEWHERE, WING_B, PRISON, True),
        (Scope.PRISON, ELSEWHERE, WING_B, OTHER_PRISON, False),
    ],
)
def test_an_advisory_covers_visits_within_its_scope(scope, visited, wing, prison, covered):
    advisory = inmate_advisory(scope=scope, inmate_id=INDEX if scope is Scope.INMATE else None)
    assert advisory.covers(prison, wing, visited) is covered
    expected = advisory.measures if covered else Measures()
    assert measures_for([advisory], prison, wing, visited, DAY) == expected


def test_the_measures_of_a_visit_are_those_of_every_advisory_over_it():
    wing = inmate_advisory(scope=Scope.WING, inmate_id=None, measures=Measures(masks=True))
    inmate = inmate_advisory(measures=Measures(suspended=True))
    later = inmate_advisory(measures=Measures(non_contact=True), starts_on=DAY + timedelta(1))
    assert measures_for([wing, inmate, later], PRISON, WING_A, INDEX, DAY) == Measures(
        masks=True, suspended=True
    )
    assert measures_for([wing, inmate, later], PRISON, WING_A, NEIGHBOUR, DAY) == Measures(
        masks=True
    )


# --- Lookback --------------------------------------------------------------------------------


def test_infectiousness_counts_from_the_earliest_known_date():
    onset, sample, diagnosis = date(2026, 9, 1), date(2026, 8, 20), date(2026, 9, 5)
    assert infectious_since(onset, sample, diagnosis) == sample
    assert infectious_since(None, None, diagnosis) == diagnosis
    assert infectious_since(None, None, None) is None


def test_the_lookback_starts_90_days_back_or_28_for_a_smear_negative_case():
    since, effective = date(2026, 9, 1), date(2026, 10, 15)
    assert lookback_window(since, effective) == (date(2026, 6, 3), effective)
    assert lookback_window(since, effective, smear_negative_no_cavity=True) == (
        date(2026, 8, 4),
        effective,
    )
    shorter = TracingPolicy(lookback_days=60)
    assert lookback_window(since, effective, policy=shorter)[0] == date(2026, 7, 3)


# --- Tiers -----------------------------------------------------------------------------------


def visit(visitor_id, inmate_id, wing_id, day=DAY, high_risk=False) -> Visit:
    return Visit(visitor_id, inmate_id, wing_id, day, high_risk)


@pytest.mark.parametrize(
    ("scope", "the_visit", "tier"),
    [
        (Scope.INMATE, visit(1, INDEX, WING_A), Tier.ONE),
        (Scope.INMATE, visit(1, NEIGHBOUR, WING_A, high_risk=True), Tier.ONE),
        (Scope.INMATE, visit(1, NEIGHBOUR, WING_A), Tier.TWO),
        (Scope.INMATE, visit(1, ELSEWHERE, WING_B, high_risk=True), None),
        (Scope.WING, visit(1, NEIGHBOUR, WING_A, high_risk=True), Tier.ONE),
        (Scope.WING, visit(1, NEIGHBOUR, WING_A), Tier.TWO),
        (Scope.WING, visit(1, ELSEWHERE, WING_B), None),
        (Scope.PRISON, visit(1, ELSEWHERE, WING_B), Tier.TWO),
        (Scope.PRISON, visit(1, ELSEWHERE, None, high_risk=True), Tier.ONE),
    ],
)
def test_each_visit_is_tiered_by_how_close_it_came(scope, the_visit, tier):
    advisory = inmate_advisory(scope=scope, inmate_id=INDEX if scope is Scope.INMATE else None)
    assert tier_of(the_visit, advisory) == tier


def test_the_window_is_exact_at_both_ends_and_a_visitor_is_one_contact():
    window = (date(2026, 6, 3), date(2026, 10, 15))
    visits = [
        visit(1, INDEX, WING_A, date(2026, 6, 2)),  # the day before: out
        visit(2, INDEX, WING_A, date(2026, 6, 3)),  # the first day: in
        visit(3, NEIGHBOUR, WING_A, date(2026, 10, 15)),  # the last day: in
        visit(4, INDEX, WING_A, date(2026, 10, 16)),  # the day after: out
        visit(5, NEIGHBOUR, WING_A, date(2026, 7, 1)),  # twice: a neighbour, then the index
        visit(5, INDEX, WING_A, date(2026, 8, 1)),
        visit(6, INDEX, WING_A, date(2026, 7, 1)),  # twice: the index, then a neighbour
        visit(6, NEIGHBOUR, WING_A, date(2026, 8, 1)),
    ]
    assert contacts(visits, inmate_advisory(), window) == {
        2: Tier.ONE,
        3: Tier.TWO,
        5: Tier.ONE,
        6: Tier.ONE,
    }


visits_strategy = st.lists(
    st.builds(
        Visit,
        visitor_id=st.integers(1, 30),
        inmate_id=st.sampled_from([INDEX, NEIGHBOUR, ELSEWHERE]),
        wing_id=st.sampled_from([WING_A, WING_B, None]),
        day=st.dates(date(2026, 1, 1), date(2026, 12, 31)),
        high_risk=st.booleans(),
    ),
    max_size=120,
)


@given(
    visits_strategy,
    st.sampled_from(list(Scope)),
    st.dates(date(2026, 1, 1), date(2026, 12, 31)),
    st.integers(0, 200),
)
def test_contacts_are_exactly_the_closest_tier_of_each_visitor_in_the_window(
    visits, scope, first, length
):
    advisory = inmate_advisory(scope=scope, inmate_id=INDEX if scope is Scope.INMATE else None)
    window = (first, first + timedelta(days=length))
    expected: dict[int, Tier] = {}
    for v in visits:  # the rules, read the long way
        if not window[0] <= v.day <= window[1]:
            continue
        if scope is Scope.INMATE and v.inmate_id == INDEX:
            tier = Tier.ONE
        elif scope is Scope.PRISON or v.wing_id == WING_A:
            tier = Tier.ONE if v.high_risk else Tier.TWO
        else:
            continue
        expected[v.visitor_id] = min(expected.get(v.visitor_id, Tier.TWO), tier)
    assert contacts(visits, advisory, window) == expected
