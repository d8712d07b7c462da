"""Identifying the person visited: neutral answers, and throttling that slows guessers
without locking families out."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from tests.factories import NOW, make_inmate, make_prison
from visits.inmate import Identification, InmateStatus, identify
from visits.prison import Prison
from visits.problems import Code
from visits.throttle import ThrottleHit, ThrottlePolicy, network_key

POLICY = ThrottlePolicy(per_pair=3, per_client=6, per_inmate=5, window=timedelta(minutes=15))


@pytest.fixture
def roster(db):
    with db.writing() as s:
        prison = make_prison(s)
        make_inmate(s, prison, "Q1", surname="Quispe-Ñahui", birth_date=date(1990, 5, 17))
        make_inmate(s, prison, "Q2", surname="Mamani", status=InmateStatus.RELEASED)
        for i in range(3, 12):
            make_inmate(s, prison, f"Q{i}", surname="Rojas")
    return db


def attempt(db, *, code="Q1", surname="", birth_date="", client="a", now=NOW) -> Identification:
    with db.writing() as s:
        return identify(
            s,
            s.scalar(select(Prison)),
            code=code,
            surname=surname,
            birth_date=birth_date,
            client=client,
            now=now,
            policy=POLICY,
        )


def codes(result: Identification) -> set[Code]:
    return {p.code for p in result.problems}


def test_a_match_on_surname_or_birth_date(roster):
    assert attempt(roster, surname="quispe ñahui").inmate.code == "Q1"
    assert attempt(roster, code=" q1 ", surname="QUISPE-NAHUI").inmate.code == "Q1"
    assert attempt(roster, birth_date="17/05/1990").inmate.code == "Q1"
    assert codes(attempt(roster, surname="Quispe")) == {Code.INMATE_NOT_IDENTIFIED}
    # Both surnames, as many families write them, match too; the second alone does not.
    assert attempt(roster, surname="Quispe-Ñahui Mamani").inmate.code == "Q1"
    assert attempt(roster, surname=" quispe nahui  MAMANI ").inmate.code == "Q1"
    assert codes(attempt(roster, surname="Mamani")) == {Code.INMATE_NOT_IDENTIFIED}
    assert codes(attempt(roster, surname="Quispe-Ñahui Rojas")) == {Code.INMATE_NOT_IDENTIFIED}


def test_unknown_code_and_wrong_detail_answer_alike(roster):
    unknown = attempt(roster, code="Q99", surname="Quispe-Ñahui")
    wrong = attempt(roster, surname="Mamani")
    assert unknown.problems == wrong.problems
    assert unknown.inmate is None
    assert wrong.inmate is None


def test_a_released_inmate_is_told_only_after_a_match(roster):
    assert codes(attempt(roster, code="Q2", surname="Mamani")) == {Code.INMATE_NOT_ACTIVE}
    assert codes(attempt(roster, code="Q2", surname="Rojas")) == {Code.INMATE_NOT_IDENTIFIED}


def test_one_guesser_is_slowed_but_the_family_is_not(roster):
    for _ in range(POLICY.per_pair):
        attempt(roster, surname="Wrong", client="guesser")
    blocked = attempt(roster, surname="Quispe-Ñahui", client="guesser")
    assert codes(blocked) == {Code.TOO_MANY_ATTEMPTS}
    assert blocked.problems[0].params["minutes"] == 15
    assert attempt(roster, surname="Quispe-Ñahui", client="family").inmate is not None
    later = NOW + POLICY.window + timedelta(seconds=1)
    assert attempt(roster, surname="Quispe-Ñahui", client="guesser", now=later).inmate


def test_a_crowd_guessing_one_person_pauses_everyone_but_both_details_pass(roster):
    for i in range(POLICY.per_inmate):
        attempt(roster, surname="Wrong", client=f"crowd-{i}")
    assert codes(attempt(roster, surname="Wrong", client="crowd-0")) == {Code.IDENTIFY_PAUSED}
    # A fresh client is paused too, the right surname alone included: a crowd of addresses
    # (or a fresh one per guess) gets no more tries at a person than the ceiling.
    paused = attempt(roster, surname="Quispe-Ñahui", client="fresh")
    assert codes(paused) == {Code.IDENTIFY_PAUSED}
    assert paused.problems[0].params["minutes"] == 15
    assert codes(attempt(roster, birth_date="17/05/1990", client="fresh")) == {Code.IDENTIFY_PAUSED}
    # One right detail of two is not enough while paused, and it is counted.
    assert codes(
        attempt(roster, surname="Quispe-Ñahui", birth_date="18/05/1990", client="stranger")
    ) == {Code.IDENTIFY_PAUSED}
    with roster.read_session() as s:
        pair = "identify:pair:stranger:%"
        assert s.scalar(select(func.count()).where(ThrottleHit.key.like(pair))) == 2
    # A family that knows both details is not kept out by strangers failing on purpose.
    both = attempt(roster, surname="quispe nahui", birth_date="17/05/1990", client="family")
    assert both.inmate is not None
    assert both.inmate.code == "Q1"
    # The pause ends once the failures age out.
    later = NOW + POLICY.window + timedelta(seconds=1)
    assert attempt(roster, surname="Quispe-Ñahui", client="fresh", now=later).inmate


def test_a_failure_with_both_details_counts_as_two_guesses(roster):
    both_wrong = attempt(roster, surname="Wrong", birth_date="01/01/1990", client="guesser")
    assert codes(both_wrong) == {Code.INMATE_NOT_IDENTIFIED}
    with roster.read_session() as s:
        assert s.scalar(select(func.count()).select_from(ThrottleHit)) == 2 * 3
    attempt(roster, surname="Wrong", client="guesser")  # the third guess for per_pair=3
    assert codes(attempt(roster, surname="Quispe-Ñahui", client="guesser")) == {
        Code.TOO_MANY_ATTEMPTS
    }
    # Either detail right is still enough when both are given and nothing is paused.
    found = attempt(roster, surname="Quispe-Ñahui", birth_date="01/01/1990", client="family")
    assert found.inmate is not None


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("198.51.100.7", "198.51.100.7"),
        ("testclient", "testclient"),
    ],
)
def test_a_client_is_an_ipv4_address_or_an_ipv6_64(address, key):
    assert network_key(address) == key


def test_one_client_guessing_many_people_is_slowed(roster):
    for i in range(3, 3 + POLICY.per_client):
        attempt(roster, code=f"Q{i}", surname="Wrong", client="scanner")
    assert codes(attempt(roster, code="Q11", surname="Rojas", client="scanner")) == {
        Code.TOO_MANY_ATTEMPTS
    }


def test_missing_or_malformed_details_are_not_counted(roster):
    assert codes(attempt(roster, surname="")) == {Code.IDENTITY_CHECK_REQUIRED}
    assert codes(attempt(roster, code="", birth_date="31/02/1990")) == {
        Code.REQUIRED,
        Code.INVALID_DATE,
    }
    with roster.read_session() as s:
        assert s.scalar(select(func.count()).select_from(ThrottleHit)) == 0


def test_parallel_guesses_cannot_slip_past_the_limit(roster):
    """Checking and counting take turns per key, on PostgreSQL as on SQLite."""
    barrier = threading.Barrier(24)
    outcomes: list[set[Code]] = []

    def guess() -> None:
        barrier.wait()
        outcomes.append(codes(attempt(roster, surname="Wrong", client="parallel")))

    threads = [threading.Thread(target=guess) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count({Code.INMATE_NOT_IDENTIFIED}) == POLICY.per_pair
    assert outcomes.count({Code.TOO_MANY_ATTEMPTS}) == 24 - POLICY.per_pair
