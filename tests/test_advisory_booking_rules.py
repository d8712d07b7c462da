"""Advisories in force change what can be booked: a suspension refuses the visit, a measure
against high-risk visitors refuses children under 5; lifting reopens. On each database."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import select

from tests.factories import NOW, SMS, make_inmate, make_prison, make_slot, request_for, visitor
from visits.advisories import HealthAdvisory
from visits.booking import Booking, create_booking, move_booking
from visits.health import AdvisoryKind, Scope
from visits.i18n import use_locale
from visits.inmate import Inmate
from visits.prison import Prison, Wing
from visits.problems import Code, Problem, Rejected, message
from visits.schedule import Slot

SATURDAY = date(2026, 12, 5)
SUNDAY = date(2026, 12, 6)


@pytest.fixture
def prison_db(db):
    """Wings A and B; Q1 and Q2 in wing A, Q3 in wing B; visit times on Saturday and Sunday."""
    with db.writing() as s:
        prison = make_prison(s, visits_per_inmate_per_week=5)
        wing_b = Wing(prison_id=prison.id, code="B", name="Pabellón B")
        s.add(wing_b)
        s.flush()
        wing_a = s.scalar(select(Wing).where(Wing.code == "A"))
        for code, wing in (("Q1", wing_a), ("Q2", wing_a), ("Q3", wing_b)):
            make_inmate(s, prison, code).wing_id = wing.id
        make_slot(s, prison, SATURDAY)
        make_slot(s, prison, SUNDAY)
    return db


def advise(db, scope: Scope, *, on: str | None = None, starts_on=date(2026, 12, 1), **measures):
    """An advisory over wing A (or inmate ``on``), in force from ``starts_on``."""
    with db.writing() as s:
        wing_a = s.scalar(select(Wing).where(Wing.code == "A"))
        inmate = s.scalar(select(Inmate).where(Inmate.code == on)) if on else None
        advisory = HealthAdvisory(
            prison_id=s.scalar(select(Prison.id)),
            scope=scope,
            wing_id=wing_a.id,
            inmate_id=inmate.id if inmate else None,
            kind=AdvisoryKind.TB_SUSCEPTIBLE,
            starts_on=starts_on,
            created_by="staff:salud",
            created_at=NOW,
            updated_at=NOW,
            **measures,
        )
        s.add(advisory)
        s.flush()
        return advisory.id


def book(db, code: str, day: date, *people):
    with db.writing() as s:
        slot = s.scalar(select(Slot.id).where(Slot.local_date == day))
        return create_booking(
            s,
            prison=s.scalar(select(Prison)),
            inmate=s.scalar(select(Inmate).where(Inmate.code == code)),
            request=request_for(slot, *(people or [visitor()])),
            now=NOW,
            secret_key="k",
            sms_policy=SMS,
        ).booking.reference


def refusal(db, code: str, day: date, *people) -> set[tuple[str, str | None]]:
    with pytest.raises(Rejected) as caught:
        book(db, code, day, *people)
    return {(p.code.value, p.field) for p in caught.value.problems}


def test_a_wing_suspended_for_health_cannot_be_booked_and_other_wings_can(prison_db):
    advise(prison_db, Scope.WING, suspended=True)
    assert refusal(prison_db, "Q1", SATURDAY) == {("health_suspended", "slot_id")}
    assert refusal(prison_db, "Q2", SATURDAY, visitor("41111111")) == {
        ("health_suspended", "slot_id")
    }
    assert book(prison_db, "Q3", SATURDAY, visitor("42222222"))  # wing B


def test_an_advisory_applies_from_its_first_day_and_stops_when_lifted(prison_db):
    advisory_id = advise(prison_db, Scope.INMATE, on="Q1", suspended=True, starts_on=SUNDAY)
    assert book(prison_db, "Q1", SATURDAY)  # the day before it starts
    assert refusal(prison_db, "Q1", SUNDAY, visitor("41111111")) == {
        ("health_suspended", "slot_id")
    }
    assert book(prison_db, "Q2", SUNDAY, visitor("42222222"))  # a neighbour: not the index
    with prison_db.writing() as s:
        s.get(HealthAdvisory, advisory_id).lifted_at = NOW
    assert book(prison_db, "Q1", SUNDAY, visitor("43333333"))


def test_children_under_5_are_refused_where_high_risk_visitors_are_kept_away(prison_db):
    advise(prison_db, Scope.WING, no_high_risk=True, masks=True)
    mother = visitor("41111111")
    child = visitor("71111111", first_names="Luz", birth_date="2022-01-10", relationship="child")
    older = visitor("72222222", first_names="Ana", birth_date="2021-12-05", relationship="child")
    assert refusal(prison_db, "Q1", SATURDAY, mother, child) == {
        ("health_no_young_children", "visitors.1.birth_date")
    }
    assert book(prison_db, "Q1", SATURDAY, mother, older)  # five on the day: not high-risk
    assert book(prison_db, "Q3", SATURDAY, visitor("42222222"), child)  # wing B


def test_a_measure_keeps_visitors_away_alongside_the_field_problems(prison_db):
    """Said with the other mistakes of the form, for whoever it would keep away whatever
    the fields still wrong turn out to be."""
    advise(prison_db, Scope.WING, no_high_risk=True)
    mother = visitor("41111111")
    child = visitor("71111111", first_names="Luz", birth_date="2022-01-10", relationship="child")
    assert refusal(prison_db, "Q1", SATURDAY, mother, replace(child, relationship="")) == {
        ("required", "visitors.1.relationship"),
        ("health_no_young_children", "visitors.1.birth_date"),
    }
    # Pregnant, with a birth date mistyped: kept away at any age.
    pregnant = replace(visitor("41111111", birth_date="25/13/1990"), high_risk="1")
    assert refusal(prison_db, "Q1", SATURDAY, pregnant) == {
        ("invalid_date", "visitors.0.birth_date"),
        ("health_high_risk", "visitors.0.high_risk"),
    }
    # A birth date mistyped is no young child yet.
    unknown = replace(child, birth_date="10/01/20222")
    assert refusal(prison_db, "Q1", SATURDAY, mother, unknown) == {
        ("invalid_date", "visitors.1.birth_date")
    }


def test_a_move_into_a_suspended_day_is_refused(prison_db):
    reference = book(prison_db, "Q1", SATURDAY)
    advise(prison_db, Scope.INMATE, on="Q1", suspended=True, starts_on=SUNDAY)
    with prison_db.writing() as s:
        booking = s.scalar(select(Booking).where(Booking.reference == reference))
        sunday = s.scalar(select(Slot.id).where(Slot.local_date == SUNDAY))
        with pytest.raises(Rejected) as caught:
            move_booking(s, booking, slot_id=sunday, now=NOW, actor="family", sms_policy=SMS)
    assert Code.HEALTH_SUSPENDED in caught.value.codes


@pytest.mark.parametrize("language", ["es", "en"])
def test_the_family_is_told_of_a_health_measure_never_of_a_diagnosis(language):
    with use_locale(language):
        texts = [
            message(Problem(Code.HEALTH_SUSPENDED)),
            message(Problem(Code.HEALTH_NO_YOUNG_CHILDREN, params={"name": "Luz"})),
        ]
    for text in texts:
        assert "salud" in text or "health" in text
        for word in ("TB", "tuberculos", "diagn", "contag", "infec"):
            assert word.lower() not in text.lower(), (word, text)
