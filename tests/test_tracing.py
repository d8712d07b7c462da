"""Exposure tracing on each database: the contact list's one query agrees with the rules of
:mod:`visits.health` on a generated year of visits, at both ends of the window; notifying
tells each person once, even asked twice at once; only health staff of the prison see it."""

from __future__ import annotations

import csv
import io
import random
import re
import threading
from datetime import date, datetime, time, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select, update

from notifications.outbox import Draft, MessageStatus, OutboxMessage, enqueue, purge
from tests.factories import NOW, SMS, make_prison
from tests.history import History, Person, generate_year
from tests.staffing import make_staff, sign_in, staff_token
from tests.test_pages import text as text_of
from tests.test_pages import visible
from tests.test_races import race
from visits import audit, health, tracing
from visits.advisories import HealthAdvisory
from visits.audit import AuditEvent
from visits.booking import Booking, BookingStatus
from visits.gate import GateStatus
from visits.health import AdvisoryKind, Measures, Scope, Tier, TracingPolicy
from visits.i18n import gettext, ngettext, use_locale
from visits.inmate import Inmate
from visits.issuing import AdvisoryDraft, issue
from visits.prison import Prison
from visits.problems import Code, Rejected
from visits.sms import HEALTH_PRIVATE, contact_notice_kind, render
from visits.staff import StaffRole
from visits.tracing import ContactNotice
from web.tracing import CSV_COLUMNS

TODAY = date(2026, 12, 1)  # NOW's day in Lima
POLICY = TracingPolicy()
ADULT = date(1980, 3, 3)


def _advisory(session, prison, scope, **values) -> HealthAdvisory:
    """An advisory as stored, written directly: tracing reads any advisory, including one
    issued long ago (issuing refuses a start in the past)."""
    values = {
        "scope": scope, "kind": AdvisoryKind.TB_SUSCEPTIBLE, "masks": True,
        "starts_on": TODAY, "infectious_since": date(2026, 11, 10), "created_by": "staff:salud",
        "created_at": NOW, "updated_at": NOW,
    } | values  # fmt: skip
    advisory = HealthAdvisory(prison_id=prison.id, **values)
    session.add(advisory)
    session.flush()
    return advisory


def _expected(history: History, advisory: HealthAdvisory, now: datetime):
    """Visitor id → (tier, last day, phone), from the rules and the visits as written."""
    window = tracing.window(advisory, POLICY)
    counted = [v for v in history.visits if v.counts(now)]
    tiers = health.contacts([v.rule() for v in counted], advisory.rule(), window)
    first, last = window
    expected = {}
    for visitor_id, tier in tiers.items():
        theirs = [
            v for v in counted
            if v.visitor_id == visitor_id and first <= v.day <= last
            and health.tier_of(v.rule(), advisory.rule()) is not None
        ]  # fmt: skip
        latest = max(theirs, key=lambda v: (v.day, v.booking_id))
        expected[visitor_id] = (tier, latest.day, latest.phone)
    return expected


def _found(session, advisory, now) -> dict[int, tuple[Tier, date, str]]:
    listed = tracing.contacts(session, advisory, now, POLICY).contacts
    found = {c.visitor_id: (c.tier, c.last_visit, c.phone) for c in listed}
    assert len(found) == len(listed)  # each visitor once
    return found


@pytest.fixture
def year(db):
    """A year of visits to Prison TEST up to two weeks after today."""
    with db.writing() as s:
        history = History(s, make_prison(s, visits_per_inmate_per_week=99))
        generate_year(
            history, random.Random(5), first=date(2025, 12, 1), last=date(2026, 12, 14),
            today=TODAY,
        )  # fmt: skip
    return db, history


@pytest.mark.parametrize("smear_negative", [False, True])
def test_the_contact_list_agrees_with_the_rules_on_a_generated_year(year, smear_negative):
    db, history = year
    later = NOW + timedelta(days=10)  # the measures' first day is over: both ends are past
    assert len(history.visits) > 4000
    with db.writing() as s:
        prison = s.get(Prison, history.prison.id)
        index = next(i for i, w in history.inmates.items() if w == history.wings["A"])
        cases = {
            "inmate": _advisory(s, prison, Scope.INMATE, inmate_id=index,
                                wing_id=history.wings["A"],
                                smear_negative_no_cavity=smear_negative),
            "wing": _advisory(s, prison, Scope.WING, wing_id=history.wings["B"],
                              smear_negative_no_cavity=smear_negative),
            "prison": _advisory(s, prison, Scope.PRISON,
                                smear_negative_no_cavity=smear_negative),
        }  # fmt: skip
        for name, advisory in cases.items():
            expected = _expected(history, advisory, later)
            assert _found(s, advisory, later) == expected, name
            tiers = {tier for tier, _, _ in expected.values()}
            assert tiers == {Tier.ONE, Tier.TWO}, name  # both tiers are exercised
        first, _ = tracing.window(cases["prison"], POLICY)
        assert first == date(2026, 11, 10) - timedelta(days=28 if smear_negative else 90)
        # The exclusions are exercised: without them the list would differ.
        in_window = [v for v in history.visits if first <= v.day <= TODAY]
        for left_out in (
            lambda v: v.gate is GateStatus.TURNED_AWAY and v.status is BookingStatus.ATTENDED,
            lambda v: v.status is BookingStatus.CANCELLED,
            lambda v: v.status is BookingStatus.NO_SHOW,
            lambda v: v.status is BookingStatus.HELD,
        ):
            assert any(left_out(v) for v in in_window)
        assert any(v.rule().high_risk and not v.high_risk for v in in_window)  # under 5


def test_the_window_holds_its_first_and_last_day_and_no_day_beyond(db):
    later = NOW + timedelta(days=10)
    with db.writing() as s:
        prison = make_prison(s)
        history = History(s, prison)
        index = history.inmate("Q1", "A")
        day_of = {}
        for label, day in (
            ("before", date(2026, 8, 11)),  # since (10 Nov) - 91 days
            ("first", date(2026, 8, 12)),  # since - 90 days
            ("smear_before", date(2026, 10, 12)),  # since - 29 days
            ("smear_first", date(2026, 10, 13)),  # since - 28 days
            ("last", TODAY),  # the day the measures took effect
            ("after", TODAY + timedelta(days=1)),
        ):
            (person,) = history.people([ADULT])
            history.book(index, day, [Person(person, ADULT)])
            day_of[person] = label
        advisory = _advisory(s, prison, Scope.INMATE, inmate_id=index, wing_id=history.wings["A"])
        found = {day_of[v] for v in _found(s, advisory, later)}
        assert found == {"first", "smear_first", "smear_before", "last"}
        advisory.smear_negative_no_cavity = True
        found = {day_of[v] for v in _found(s, advisory, later)}
        assert found == {"smear_first", "last"}


def test_visits_not_begun_are_never_contacts(db):
    """Measures that start in five days: the window reaches into the future, where bookings
    are only plans; a visit of today counts once it has begun."""
    with db.writing() as s:
        prison = make_prison(s)
        history = History(s, prison)
        index = history.inmate("Q1", "A")
        morning, afternoon, tomorrow = history.people([ADULT, ADULT, ADULT])
        history.book(index, TODAY, [Person(morning, ADULT)], BookingStatus.CONFIRMED)
        history.book(index, TODAY, [Person(afternoon, ADULT)], BookingStatus.CONFIRMED,
                     start=time(14))  # fmt: skip
        history.book(index, TODAY + timedelta(days=1), [Person(tomorrow, ADULT)],
                     BookingStatus.CONFIRMED)  # fmt: skip
        advisory = _advisory(s, prison, Scope.INMATE, inmate_id=index,
                             starts_on=TODAY + timedelta(days=5))  # fmt: skip
        assert set(_found(s, advisory, NOW)) == {morning}  # 10:00 in Lima
        assert set(_found(s, advisory, NOW + timedelta(days=1, hours=1))) == {
            morning, afternoon, tomorrow,
        }  # fmt: skip


def test_a_visitor_is_listed_once_at_the_closest_tier_with_the_last_visit(db):
    later = NOW + timedelta(days=10)
    with db.writing() as s:
        prison = make_prison(s)
        history = History(s, prison)
        index, neighbour, elsewhere = (
            history.inmate("Q1", "A"), history.inmate("Q2", "A"), history.inmate("Q3", "B")
        )  # fmt: skip
        twice, child, pregnant, other_wing = history.people(
            [ADULT, date(2021, 11, 20), ADULT, ADULT]
        )
        history.book(index, date(2026, 10, 1), [Person(twice, ADULT)], phone="+51911111111")
        history.book(neighbour, date(2026, 11, 20), [Person(twice, ADULT)],
                     phone="+51922222222")  # fmt: skip
        # Under 5 on 20 November 2026 (turns 5 that day the next year: 2026-11-20 is the 5th
        # birthday, so 19 November is the last day it counts).
        history.book(neighbour, date(2026, 11, 19), [Person(child, date(2021, 11, 20))])
        history.book(neighbour, date(2026, 11, 19), [Person(pregnant, ADULT, high_risk=True)])
        history.book(elsewhere, date(2026, 11, 19), [Person(other_wing, ADULT)])
        advisory = _advisory(s, prison, Scope.INMATE, inmate_id=index, wing_id=history.wings["A"])
        found = _found(s, advisory, later)
        assert found[twice] == (Tier.ONE, date(2026, 11, 20), "+51922222222")
        assert found[child][0] is Tier.ONE
        assert found[pregnant][0] is Tier.ONE
        assert other_wing not in found
        history.book(neighbour, date(2026, 11, 21), [Person(child, date(2021, 11, 20))])
        assert _found(s, advisory, later)[child][0] is Tier.ONE  # closest of the two visits
        advisory.scope, advisory.inmate_id = Scope.WING, None
        found = _found(s, advisory, later)
        assert found[twice][0] is Tier.TWO  # no index inmate in a wing advisory
        assert found[child][0] is Tier.ONE


def test_under_five_means_before_the_fifth_birthday_leap_days_included(db):
    """As :func:`visits.rules.age_on` counts: someone born on 29 February 2020 is 4 on 28
    February 2025 and 5 on 1 March; a child is 5 on their fifth birthday."""
    with db.writing() as s:
        prison = make_prison(s)
        history = History(s, prison)
        inmate = history.inmate("Q1", "A")
        leap, plain = date(2020, 2, 29), date(2020, 3, 5)
        day_before, on_birthday, leap_day_before, leap_birthday = history.people(
            [plain, plain, leap, leap]
        )
        for who, born, day in (
            (day_before, plain, date(2025, 3, 4)),
            (on_birthday, plain, date(2025, 3, 5)),
            (leap_day_before, leap, date(2025, 2, 28)),
            (leap_birthday, leap, date(2025, 3, 1)),
        ):
            history.book(inmate, day, [Person(who, born)])
        advisory = _advisory(s, prison, Scope.PRISON, infectious_since=date(2025, 3, 20),
                             starts_on=date(2025, 3, 25))  # fmt: skip
        found = _found(s, advisory, NOW)
    assert {v: t for v, (t, _, _) in found.items()} == {
        day_before: Tier.ONE, on_birthday: Tier.TWO,
        leap_day_before: Tier.ONE, leap_birthday: Tier.TWO,
    }  # fmt: skip


def test_an_advisory_without_infectious_since_has_no_contact_list(db):
    with db.writing() as s:
        prison = make_prison(s)
        advisory = _advisory(s, prison, Scope.PRISON, infectious_since=None)
        with pytest.raises(Rejected) as caught:
            tracing.contacts(s, advisory, NOW, POLICY)
        assert caught.value.codes == {Code.NO_INFECTIOUS_SINCE}


# --- The query against the rules, on histories hypothesis makes up -----------------------------

_visit = st.tuples(
    st.integers(0, 5),  # inmate (0 and 1 in wing A, 2 and 3 in B, 4 in C, 5 in none)
    st.integers(0, 7),  # visitor
    st.integers(-130, 6),  # day, from today
    st.sampled_from(BookingStatus),
    st.sampled_from([None, GateStatus.ARRIVED, GateStatus.TURNED_AWAY]),
    st.booleans(),  # high risk
)
_prisons = iter(range(10_000))


@settings(
    max_examples=25,
    deadline=None,
    # One database for every example on purpose: each example has a prison of its own.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    visits=st.lists(_visit, max_size=30),
    scope=st.sampled_from(Scope),
    smear_negative=st.booleans(),
    since=st.integers(-60, 0),
    starts_in=st.integers(0, 4),
)
def test_the_query_agrees_with_the_rules_on_any_history(
    db, visits, scope, smear_negative, since, starts_in
):
    with db.writing() as s:
        prison = make_prison(s, f"H{next(_prisons)}")
        history = History(s, prison)
        inmates = [history.inmate(f"I{n}", w) for n, w in enumerate("AABBC")] + [
            history.inmate("I5", None)
        ]
        births = [date(2022, 6, 1), date(2021, 12, 3)] + [ADULT] * 6  # two young children
        people = history.people(births)
        used = set()
        for inmate, who, offset, status, gate, risky in visits:
            day = TODAY + timedelta(days=offset)
            if (who, day) in used:  # one visit a day per person, as booking enforces
                continue
            used.add((who, day))
            history.book(inmates[inmate], day, [Person(people[who], births[who], risky, gate)],
                         status)  # fmt: skip
        advisory = _advisory(
            s, prison, scope, smear_negative_no_cavity=smear_negative,
            infectious_since=TODAY + timedelta(days=since),
            starts_on=TODAY + timedelta(days=starts_in),
            wing_id=history.wings["A"] if scope is not Scope.PRISON else None,
            inmate_id=inmates[0] if scope is Scope.INMATE else None,
        )  # fmt: skip
        now = NOW + timedelta(days=2)
        assert _found(s, advisory, now) == _expected(history, advisory, now)


# --- Telling them ---------------------------------------------------------------------------------


def _family(db):
    """Inmate Q1 in wing A (the index case) and Q2 beside him; a family of two sharing a
    phone (one visited Q1, a child visited Q2), a family writing in English, and a visitor
    of Q2 only. An advisory over Q1 issued today, infectious since 10 November."""
    with db.writing() as s:
        prison = make_prison(s)
        history = History(s, prison)
        index, neighbour = history.inmate("Q1", "A"), history.inmate("Q2", "A")
        mother, child, english, plain = history.people([ADULT, date(2023, 1, 1), ADULT, ADULT])
        shared = "+51987000001"
        history.book(neighbour, date(2026, 11, 1), [Person(mother, ADULT)], phone=shared)
        history.book(index, date(2026, 11, 8), [Person(mother, ADULT)], phone=shared)
        history.book(neighbour, date(2026, 11, 15), [Person(child, date(2023, 1, 1))],
                     phone=shared)  # fmt: skip
        history.book(neighbour, date(2026, 11, 15), [Person(english, ADULT)],
                     phone="+51987000002", language="en")  # fmt: skip
        history.book(neighbour, date(2026, 11, 22), [Person(plain, ADULT)],
                     phone="+51987000003")  # fmt: skip
        advisory = issue(
            s, prison,
            AdvisoryDraft(scope=Scope.INMATE, kind=AdvisoryKind.TB_SUSCEPTIBLE,
                          measures=Measures(masks=True), starts_on=TODAY, inmate_code="Q1",
                          infectious_since=date(2026, 11, 10)),
            now=NOW, actor="staff:salud", origin="", sms_policy=SMS,
        ).advisory  # fmt: skip
        return advisory.id, {"mother": mother, "child": child, "english": english,
                             "plain": plain}  # fmt: skip


def _notify(db, advisory_id, now=NOW):
    with db.writing() as s:
        return tracing.notify(
            s, s.scalar(select(Prison)), advisory_id, now=now, actor="staff:salud",
            origin="10.0.0.1", policy=POLICY,
        )  # fmt: skip


def _contact_sms(db) -> list[tuple[str, str, str]]:
    with db.read_session() as s:
        return sorted(
            s.execute(
                select(OutboxMessage.recipient, OutboxMessage.kind, OutboxMessage.body).where(
                    OutboxMessage.kind.like("contact_%")
                )
            ).all()
        )


def test_each_phone_gets_one_sms_at_its_closest_tier_in_its_language_and_only_once(db):
    advisory_id, people = _family(db)
    done = _notify(db, advisory_id)
    assert (len(done.sms), done.visitors, done.already) == (3, 4, 0)
    prison = "Prison TEST"
    assert _contact_sms(db) == [
        ("+51987000001", "contact_tier1", render("contact_tier1", "es", {"prison": prison})),
        ("+51987000002", "contact_tier2", render("contact_tier2", "en", {"prison": prison})),
        ("+51987000003", "contact_tier2", render("contact_tier2", "es", {"prison": prison})),
    ]
    for _, _, body in _contact_sms(db):  # nobody named, no diagnosis
        assert not re.search(r"Juan|Quispe|Mamani|Q1|TB|tubercul", body, re.IGNORECASE)
    with db.read_session() as s:
        notices = {n.visitor_id: (n.tier, n.phone) for n in s.scalars(select(ContactNotice))}
        event = s.scalar(
            select(AuditEvent).where(AuditEvent.action == "advisory.contacts_notified")
        )
    assert notices == {
        people["mother"]: (1, "+51987000001"),  # visited Q1
        people["child"]: (1, "+51987000001"),  # under 5, same wing
        people["english"]: (2, "+51987000002"),
        people["plain"]: (2, "+51987000003"),
    }
    assert event.entity_id == str(advisory_id)
    assert event.origin == "10.0.0.1"
    assert event.details["sms"] == 3
    assert event.details["visitors_told"] == 4
    assert "Rosa" not in str(event.details)
    assert "+51" not in str(event.details)
    again = _notify(db, advisory_id)
    assert (len(again.sms), again.visitors, again.already) == (0, 0, 4)
    assert len(_contact_sms(db)) == 3


def test_a_contact_found_later_is_told_then_and_a_closer_tier_reaches_a_phone_told_before(db):
    advisory_id, _ = _family(db)
    _notify(db, advisory_id)
    with db.writing() as s:
        prison = s.scalar(select(Prison))
        history = History(s, prison)
        history.inmates = dict(s.execute(select(Inmate.id, Inmate.wing_id)).all())
        index = s.scalar(select(Inmate.id).where(Inmate.code == "Q1"))
        newcomer, sibling = history.people([ADULT, ADULT])
        # Today afternoon, after the first notice: the same phone as the tier-2 "plain"
        # family, now visiting the index inmate; and a tier-2 sibling of the English family.
        history.book(index, TODAY, [Person(newcomer, ADULT)], BookingStatus.CONFIRMED,
                     start=time(14), phone="+51987000003")  # fmt: skip
        neighbour = s.scalar(select(Inmate.id).where(Inmate.code == "Q2"))
        history.book(neighbour, TODAY, [Person(sibling, ADULT)], BookingStatus.CONFIRMED,
                     start=time(14), phone="+51987000002", language="en")  # fmt: skip
    done = _notify(db, advisory_id, NOW + timedelta(hours=6))
    assert [(o.phone, o.tier) for o in done.sms] == [("+51987000003", Tier.ONE)]
    assert (done.visitors, done.already) == (2, 4)  # both recorded, one new SMS
    assert len(_contact_sms(db)) == 4


@pytest.mark.slow
def test_two_health_users_notifying_at_once_send_each_sms_once(db):
    advisory_id, _ = _family(db)
    results, errors = [], []
    barrier = threading.Barrier(4)

    def notify_now() -> None:
        barrier.wait()
        try:
            results.append(_notify(db, advisory_id))
        except Exception as error:  # reported below, with the others
            errors.append(error)

    threads = [threading.Thread(target=notify_now) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(len(r.sms) for r in results) == [0, 0, 0, 3]
    assert len(_contact_sms(db)) == 3
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(ContactNotice)) == 4


def test_notifying_an_advisory_of_another_prison_or_without_infectious_since_changes_nothing(db):
    advisory_id, _ = _family(db)
    with db.writing() as s:
        other = make_prison(s, "OTHER")
        blind = _advisory(s, s.scalar(select(Prison).where(Prison.code == "TEST")),
                          Scope.PRISON, infectious_since=None).id  # fmt: skip
    with pytest.raises(Rejected) as caught, db.writing() as s:
        tracing.notify(s, s.get(Prison, other.id), advisory_id, now=NOW, actor="staff:x",
                       origin="", policy=POLICY)  # fmt: skip
    assert caught.value.codes == {Code.NOT_FOUND}
    with pytest.raises(Rejected) as caught:
        _notify(db, blind)
    assert caught.value.codes == {Code.NO_INFECTIOUS_SINCE}
    assert _contact_sms(db) == []
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(ContactNotice)) == 0


# --- The pages ------------------------------------------------------------------------------------


@pytest.fixture
def traced(make_client, db):
    """The demo app; in Quencoro, a visit to Q10001 two weeks ago by a visitor whose name
    starts like a spreadsheet formula, and an advisory over Q10001; health, guard and admin
    users of Quencoro, and a health user of the women's prison."""
    client = make_client()
    with db.writing() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        history = History(s, prison)
        history.inmates = dict(s.execute(select(Inmate.id, Inmate.wing_id)).all())
        index = s.scalar(select(Inmate).where(Inmate.code == "Q10001"))
        (formula,) = history.people([ADULT], first_names="=HYPERLINK(1)")
        (plain,) = history.people([ADULT], first_names="Ñusta")
        history.book(index.id, date(2026, 11, 17), [Person(formula, ADULT)], phone="+51987000009")
        history.book(index.id, date(2026, 11, 18), [Person(plain, ADULT)], phone="+51987000008")
        advisory = _advisory(s, prison, Scope.INMATE, inmate_id=index.id, wing_id=index.wing_id)
        ids = {"advisory": advisory.id}
        women = s.scalar(select(Prison).where(Prison.code == "MUJERES-CUSCO"))
        ids["other"] = _advisory(s, women, Scope.PRISON).id
        ids["blind"] = _advisory(s, prison, Scope.PRISON, infectious_since=None).id
    make_staff(db, "salud", StaffRole.HEALTH)
    make_staff(db, "guardia", StaffRole.GUARD)
    make_staff(db, "admin", StaffRole.ADMIN)
    make_staff(db, "salud.mujeres", StaffRole.HEALTH, ("MUJERES-CUSCO",))
    return client, ids


def _signed(make_client, username):
    client = make_client()
    assert sign_in(client, username).status_code == 303
    return client


def test_health_staff_see_the_counts_then_the_contacts_and_notify_them(traced, make_client, db):
    _, ids = traced
    client = _signed(make_client, "salud")
    path = f"/staff/p/QUENCORO/health/{ids['advisory']}/contacts"
    page = client.get(path)
    assert page.status_code == 200
    html = page.text
    assert html.index("Nivel 1") < html.index("Ñusta Quispe 0")  # counts first, then the rows
    assert '<th scope="col">' in html
    assert "Ñusta Quispe 0" in html
    assert "+51987000008" in html
    assert "0 visitantes ya fueron avisados." in html
    assert "Enviar 2 SMS" in html
    token = staff_token(client)
    sent = client.post(f"{path}/notify", data={"csrf_token": token}, follow_redirects=False)
    assert sent.status_code == 303
    assert sent.headers["location"] == f"{path}?done=notified&count=2&unreachable=0"
    again = client.get(sent.headers["location"]).text
    assert "2 SMS están en camino." in again
    assert "2 visitantes ya fueron avisados." in again
    assert "Ya se avisó a todos los de la lista." in again
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(ContactNotice)) == 2
    # A click from a page made before (another health user's, another tab): nobody is left.
    repeat = client.post(f"{path}/notify", data={"csrf_token": token}, follow_redirects=False)
    assert repeat.headers["location"] == f"{path}?done=nobody"
    shown = text_of(client.get(f"{repeat.headers['location']}&lang=en"))
    assert "Nobody was left to notify" in shown
    assert "on their way" not in shown


_KEY = re.compile(r'name="key" value="([^"]*)"')


def test_the_same_notify_click_sent_twice_notifies_once_and_says_what_it_did(
    traced, make_client, db
):
    """A double click on "Enviar 2 SMS": the browser shows the second answer, so it says what
    the click did ("2 SMS están en camino"), not "0 SMS", and nothing is sent or recorded
    twice."""
    _, ids = traced
    client = _signed(make_client, "salud")
    path = f"/staff/p/QUENCORO/health/{ids['advisory']}/contacts"
    found = _KEY.search(client.get(path).text)
    data = {"csrf_token": staff_token(client), "key": found.group(1) if found else ""}
    first = client.post(f"{path}/notify", data=data, follow_redirects=False)
    second = client.post(f"{path}/notify", data=data, follow_redirects=False)
    assert first.headers["location"] == f"{path}?done=notified&count=2&unreachable=0"
    assert second.headers["location"] == first.headers["location"]
    assert "2 SMS están en camino." in text_of(client.get(second.headers["location"]))
    assert len(_contact_sms(db)) == 2
    with db.read_session() as s:
        notified = select(AuditEvent).where(AuditEvent.action == "advisory.contacts_notified")
        assert len(s.scalars(notified).all()) == 1


def test_recording_visitors_whose_phone_was_told_says_so_not_0_sms(traced, make_client, db):
    """A new visitor shares a phone told already: the page offers "Registrarlos como avisados",
    and the answer says they were recorded and no SMS was sent (not "0 SMS están en camino"),
    for the click sent twice too."""
    _, ids = traced
    client = _signed(make_client, "salud")
    path = f"/staff/p/QUENCORO/health/{ids['advisory']}/contacts"
    token = staff_token(client)
    client.post(f"{path}/notify", data={"csrf_token": token}, follow_redirects=False)
    with db.writing() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        history = History(s, prison)
        history.inmates = dict(s.execute(select(Inmate.id, Inmate.wing_id)).all())
        index = s.scalar(select(Inmate.id).where(Inmate.code == "Q10001"))
        (sibling,) = history.people([ADULT], first_names="Wayra")
        history.book(index, date(2026, 11, 19), [Person(sibling, ADULT)], phone="+51987000008")
    page = client.get(path).text
    assert "Registrarlos como avisados" in page
    found = _KEY.search(page)
    data = {"csrf_token": token, "key": found.group(1) if found else ""}
    first = client.post(f"{path}/notify", data=data, follow_redirects=False)
    second = client.post(f"{path}/notify", data=data, follow_redirects=False)
    assert first.headers["location"] == f"{path}?done=recorded&count=1"
    assert second.headers["location"] == first.headers["location"]
    shown = text_of(client.get(f"{second.headers['location']}&lang=en"))
    assert "1 visitor recorded as notified; no SMS was sent." in shown
    assert "on its way" not in shown
    assert "on their way" not in shown
    assert len(_contact_sms(db)) == 2  # only the first click's
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(ContactNotice)) == 3


def test_one_notify_click_sent_twice_at_the_same_instant_notifies_once(db):
    advisory_id, _ = _family(db)

    def notify_once(_: int) -> str:
        with db.writing() as s:
            planned = tracing.notify(
                s, s.scalar(select(Prison)), advisory_id, now=NOW, actor="staff:salud",
                origin="", policy=POLICY, key="one-click-key-0123456789",
            )  # fmt: skip
        return f"{'again' if planned.replayed else 'sent'}:{planned.queued}"

    assert race(2, notify_once) == {"sent:3": 1, "again:3": 1}
    assert len(_contact_sms(db)) == 3
    with db.read_session() as s:
        notified = select(AuditEvent).where(AuditEvent.action == "advisory.contacts_notified")
        assert len(s.scalars(notified).all()) == 1


def test_the_csv_opens_in_excel_and_defuses_formulas(traced, make_client):
    _, ids = traced
    client = _signed(make_client, "salud")
    answer = client.get(f"/staff/p/QUENCORO/health/{ids['advisory']}/contacts.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    assert answer.content.startswith(b"\xef\xbb\xbf")  # the BOM
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    with use_locale("es"):  # the staff's language, Spanish by default
        assert rows[0] == [gettext(column) for column in CSV_COLUMNS]
    assert len(rows) == 3
    by_name = {r[0]: r for r in rows[1:]}
    assert "'=HYPERLINK(1) Quispe 0" in by_name
    assert "Ñusta Quispe 0" in by_name
    assert "+51987000008" in by_name["Ñusta Quispe 0"]  # as stored, ready for a dialler
    assert all(
        not cell.startswith(("=", "+", "-", "@")) or re.fullmatch(r"\+51\d{9}", cell)
        for row in rows
        for cell in row
    )


def test_each_download_of_the_contacts_is_in_the_advisorys_history(traced, make_client, db):
    """Names, documents and phones of people who may have met TB leave in a file: who took
    them, when and from where is recorded, and health staff and administrators read it."""
    _, ids = traced
    client = _signed(make_client, "salud")
    path = f"/staff/p/QUENCORO/health/{ids['advisory']}"
    assert client.get(f"{path}/contacts.csv").status_code == 200
    with db.read_session() as s:
        (taken,) = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "advisory.contacts_downloaded")
        ).all()
    assert (taken.entity, taken.entity_id) == ("advisory", str(ids["advisory"]))
    assert (taken.actor, taken.at, taken.details) == ("staff:salud", NOW, {"rows": 2})
    assert taken.origin == "testclient"
    with use_locale("es"):
        said = f"{gettext('Contact list downloaded (CSV)')} · salud"
    for username in ("salud", "admin"):
        assert said in text_of(_signed(make_client, username).get(path))


def _views(db, advisory_id) -> list[tuple[str, object, dict]]:
    with db.read_session() as s:
        viewed = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "advisory.contacts_viewed")
            .where(AuditEvent.entity == "advisory", AuditEvent.entity_id == str(advisory_id))
            .order_by(AuditEvent.at)
        )
        return [(e.actor, e.at, e.details) for e in viewed]


def test_seeing_the_contacts_is_in_the_advisorys_history_once_an_hour(traced, make_client, db):
    """Ley 29733: who saw the people who may have met TB, when, from where and how many, is
    recorded as a download is: once per staff member and advisory an hour (the page reloads
    after each notice; a view recorded 59 minutes before stands for it), again after."""
    _, ids = traced
    client = _signed(make_client, "salud")
    path = f"/staff/p/QUENCORO/health/{ids['advisory']}"
    with db.writing() as s:
        audit.record(
            s, at=NOW - timedelta(minutes=59), actor="staff:salud",
            action="advisory.contacts_viewed", entity="advisory", entity_id=ids["advisory"],
            details={"rows": 2},
        )  # fmt: skip
    assert client.get(f"{path}/contacts").status_code == 200
    assert len(_views(db, ids["advisory"])) == 1  # within the hour: nothing more
    with db.writing() as s:
        s.execute(
            update(AuditEvent)
            .where(AuditEvent.action == "advisory.contacts_viewed")
            .values(at=NOW - timedelta(minutes=61))
        )
    assert client.get(f"{path}/contacts").status_code == 200
    assert client.get(f"{path}/contacts").status_code == 200  # a reload
    views = _views(db, ids["advisory"])
    assert views[1:] == [("staff:salud", NOW, {"rows": 2})]
    with db.read_session() as s:
        origins = s.scalars(
            select(AuditEvent.origin).where(AuditEvent.action == "advisory.contacts_viewed")
        )
        assert "testclient" in set(origins)
    with use_locale("es"):
        said = f"{gettext('Contact list viewed')} · salud"
    assert said in text_of(client.get(path))
    assert client.get(f"/staff/p/QUENCORO/health/{ids['blind']}/contacts").status_code == 200
    assert _views(db, ids["blind"]) == []  # no case date, no list: nobody seen


def test_only_health_staff_of_the_advisorys_prison_reach_its_contacts(traced, make_client):
    _, ids = traced
    path = f"/staff/p/QUENCORO/health/{ids['advisory']}/contacts"
    for username in ("guardia", "admin"):
        client = _signed(make_client, username)
        token = staff_token(client)
        assert client.get(path).status_code == 403
        assert client.get(f"{path}.csv").status_code == 403
        refused = client.post(f"{path}/notify", data={"csrf_token": token})
        assert refused.status_code == 403
    outsider = _signed(make_client, "salud.mujeres")
    assert outsider.get(path).status_code == 403  # a prison outside the account's scope
    health_user = _signed(make_client, "salud")
    other = f"/staff/p/QUENCORO/health/{ids['other']}/contacts"
    assert health_user.get(other).status_code == 404  # the women's prison's advisory
    assert health_user.get(f"{other}.csv").status_code == 404
    token = staff_token(health_user)
    assert health_user.post(f"{other}/notify", data={"csrf_token": token}).status_code == 404
    assert health_user.get("/staff/p/QUENCORO/health/999999/contacts").status_code == 404
    assert health_user.get("/staff/p/QUENCORO/health/abc/contacts").status_code == 404


def test_an_advisory_without_infectious_since_says_so_and_sends_nothing(traced, make_client, db):
    _, ids = traced
    client = _signed(make_client, "salud")
    path = f"/staff/p/QUENCORO/health/{ids['blind']}/contacts"
    page = client.get(path)
    assert page.status_code == 200
    assert "no tiene la fecha desde la que el caso era contagioso" in page.text
    assert "<table" not in page.text
    assert client.get(f"{path}.csv").status_code == 409
    token = staff_token(client)
    refused = client.post(f"{path}/notify", data={"csrf_token": token})
    assert refused.status_code == 409
    assert "no tiene la fecha desde la que el caso era contagioso" in refused.text
    assert "Traceback" not in refused.text
    assert _contact_sms(db) == []


def test_a_contact_told_to_watch_who_becomes_tier_1_is_asked_to_get_evaluated(db):
    """ "plain" (tier 2) is told at 10:00 on the measures' first day; at 14:00 the same day
    they visit the index inmate: tier 1 now, so the tier-1 text goes too, once."""
    advisory_id, people = _family(db)
    _notify(db, advisory_id)
    with db.writing() as s:
        history = History(s, s.scalar(select(Prison)))
        history.inmates = {i: w for i, w in s.execute(select(Inmate.id, Inmate.wing_id))}
        index = s.scalar(select(Inmate.id).where(Inmate.code == "Q1"))
        history.book(
            index, TODAY, [Person(people["plain"], ADULT)], BookingStatus.CONFIRMED,
            start=time(14), phone="+51987000003",
        )  # fmt: skip
    later = NOW + timedelta(hours=6)
    _notify(db, advisory_id, later)
    plain = [kind for phone, kind, _ in _contact_sms(db) if phone == "+51987000003"]
    assert sorted(plain) == ["contact_tier1", "contact_tier2"]
    with db.read_session() as s:
        tier = s.scalar(
            select(ContactNotice.tier).where(ContactNotice.visitor_id == people["plain"])
        )
        assert tier == Tier.ONE  # recorded as told closer
    _notify(db, advisory_id, later)  # and nothing more after that
    assert len([p for p, _, _ in _contact_sms(db) if p == "+51987000003"]) == 2


def test_a_contact_gone_between_listing_and_recording_is_neither_told_nor_recorded(db, monkeypatch):
    """The retention purge may delete a person while notify works (an advisory lifted long
    ago no longer holds its visits): they are dropped, never a database error."""
    from sqlalchemy import delete

    from visits.booking import BookingVisitor
    from visits.visitor import Visitor

    advisory_id, people = _family(db)
    gone = people["plain"]
    real_told = tracing.told

    def told_then_purged(session, advisory):
        session.execute(delete(BookingVisitor).where(BookingVisitor.visitor_id == gone))
        session.execute(delete(Visitor).where(Visitor.id == gone))
        return real_told(session, advisory)

    monkeypatch.setattr(tracing, "told", told_then_purged)
    planned = _notify(db, advisory_id)
    assert gone not in {c.visitor_id for c in planned.new}
    assert "+51987000003" not in {phone for phone, _, _ in _contact_sms(db)}
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(ContactNotice)) == len(planned.new) > 0


def test_numbers_that_cannot_get_an_sms_are_counted_apart(traced, make_client, db):
    from notifications.recipients import opt_out

    _, ids = traced
    with db.writing() as s:
        opt_out(s, "+51987000008", "BAJA", NOW)
    client = _signed(make_client, "salud")
    path = f"/staff/p/QUENCORO/health/{ids['advisory']}/contacts"
    sent = client.post(
        f"{path}/notify", data={"csrf_token": staff_token(client)}, follow_redirects=False
    )
    assert sent.headers["location"] == f"{path}?done=notified&count=1&unreachable=1"
    page = client.get(sent.headers["location"]).text
    assert "1 SMS está en camino." in page
    assert "1 teléfono pidió no recibir mensajes" in page
    # And for as long as the list is looked at: that notice reached nobody, and why.
    shown = text_of(client.get(path))
    assert _missed(1) in shown
    assert "Ñusta Quispe 0 " in _contact_rows(client.get(path).text)[0]
    assert "No enviado (cancelado) Motivo: el número pidió no recibir más mensajes" in shown
    # A click whose only SMS could not go says so, not "0 SMS are on their way".
    only_refused = text_of(client.get(f"{path}?done=notified&count=0&unreachable=1"))
    assert "No se envió ningún SMS." in only_refused
    assert "0 SMS" not in only_refused
    assert "1 teléfono pidió no recibir mensajes" in only_refused


def test_a_window_reaching_past_what_was_kept_says_so(db, make_client):
    """Symptoms began 100 days before the advisory: its window opens 190 days back, but
    visits older than 180 days were purged before it was issued; the page says from when."""
    make_staff(db, "salud", StaffRole.HEALTH)
    with db.writing() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        inmate = s.scalar(select(Inmate).where(Inmate.code == "Q10001"))
        early = _advisory(
            s, prison, Scope.INMATE, inmate_id=inmate.id, wing_id=inmate.wing_id,
            infectious_since=TODAY - timedelta(days=100),
        )  # fmt: skip
        recent = _advisory(s, prison, Scope.INMATE, inmate_id=inmate.id, wing_id=inmate.wing_id)
        ids = early.id, recent.id
    client = _signed(make_client, "salud")
    page = text_of(client.get(f"/staff/p/QUENCORO/health/{ids[0]}/contacts"))
    assert "Las visitas anteriores al" in page
    assert "4 de junio de 2026" in page  # 180 days before the advisory was issued
    assert "Las visitas anteriores al" not in text_of(
        client.get(f"/staff/p/QUENCORO/health/{ids[1]}/contacts")
    )


# --- What became of the notices -----------------------------------------------------------


def _settle(db, phone, status, code=None, why=None, kind="contact_%"):
    """The notice SMS of ``phone`` (of one kind) as the dispatcher or a delivery report
    leaves it."""
    with db.writing() as s:
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.recipient == phone, OutboxMessage.kind.like(kind))
            .values(status=status, error_code=code, error_message=why)
        )


def _missed(n: int) -> str:
    with use_locale("es"):
        return ngettext(
            "%(num)s notice did not reach its contact: call them or find them another way. "
            "They are listed first.",
            "%(num)s notices did not reach their contacts: call them or find them another "
            "way. They are listed first.",
            n,
        )


def _contact_rows(html: str) -> list[str]:
    """The contact table's rows, as text, in the page's order."""
    table = html[html.index('id="contacts"') :]
    return [visible(row) for row in re.findall(r"<tr[ >].*?</tr>", table, re.S)[1:]]


def _csv_rows(client, advisory_id) -> list[list[str]]:
    answer = client.get(f"/staff/p/QUENCORO/health/{advisory_id}/contacts.csv")
    assert answer.status_code == 200
    return list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))


def test_a_notice_that_failed_is_counted_at_the_top_and_listed_first_on_the_page_and_csv(
    traced, make_client, db
):
    _, ids = traced
    client = _signed(make_client, "salud")
    path = f"/staff/p/QUENCORO/health/{ids['advisory']}/contacts"
    client.post(f"{path}/notify", data={"csrf_token": staff_token(client)})
    before = client.get(path).text
    assert _missed(1) not in visible(before)
    # Listed by name while nothing failed, each notice's SMS waiting for the dispatcher.
    assert [r.split(" DNI")[0] for r in _contact_rows(before)] == [
        "=HYPERLINK(1) Quispe 0",
        "Ñusta Quispe 0",
    ]
    assert all(r.endswith("Por enviar") for r in _contact_rows(before))
    _settle(db, "+51987000008", MessageStatus.FAILED, "21614", "not a mobile number")
    html = client.get(path).text
    shown = visible(html)
    assert _missed(1) in shown
    assert shown.index(_missed(1)) < shown.index("Nivel 1")  # at the top, before the counts
    ñusta, formula = _contact_rows(html)
    assert ñusta.startswith("Ñusta Quispe 0")  # the one to call, first
    assert ñusta.endswith("Falló Error: 21614 not a mobile number")
    assert formula.endswith("Por enviar")
    assert '<tr class="missed"><th scope="row">Ñusta Quispe 0</th>' in html
    rows = _csv_rows(client, ids["advisory"])
    with use_locale("es"):
        assert rows[0][-1] == gettext("SMS notice")
    assert [(r[0], r[-1]) for r in rows[1:]] == [
        ("Ñusta Quispe 0", "Falló · Error: 21614 not a mobile number"),
        ("'=HYPERLINK(1) Quispe 0", "Por enviar"),
    ]


def test_a_delivered_notice_reads_delivered_and_an_undelivered_one_counts(traced, make_client, db):
    _, ids = traced
    client = _signed(make_client, "salud")
    path = f"/staff/p/QUENCORO/health/{ids['advisory']}/contacts"
    client.post(f"{path}/notify", data={"csrf_token": staff_token(client)})
    _settle(db, "+51987000008", MessageStatus.DELIVERED)
    _settle(db, "+51987000009", MessageStatus.SENT)
    html = client.get(path).text
    assert _missed(1) not in visible(html)
    formula, ñusta = _contact_rows(html)
    assert (formula.split(" DNI")[0], formula.endswith(" Enviado")) == (
        "=HYPERLINK(1) Quispe 0",
        True,
    )
    assert ñusta.endswith(" Entregado")
    assert 'class="missed"' not in html
    rows = _csv_rows(client, ids["advisory"])
    assert [r[-1] for r in rows[1:]] == ["Enviado", "Entregado"]
    _settle(db, "+51987000009", MessageStatus.UNDELIVERED, "30003")  # a phone switched off
    _settle(db, "+51987000008", MessageStatus.FAILED, "30005")
    html = client.get(path).text
    assert _missed(2) in visible(html)
    formula, ñusta = _contact_rows(html)
    assert formula.endswith(" No entregado Error: 30003")
    assert ñusta.endswith(" Falló Error: 30005")


def test_only_health_staff_of_the_prison_see_what_became_of_its_notices(traced, make_client, db):
    _, ids = traced
    path = f"/staff/p/QUENCORO/health/{ids['advisory']}/contacts"
    health_user = _signed(make_client, "salud")
    health_user.post(f"{path}/notify", data={"csrf_token": staff_token(health_user)})
    _settle(db, "+51987000008", MessageStatus.FAILED, "21614", "not a mobile number")
    assert _missed(1) in visible(health_user.get(path).text)
    for username in ("guardia", "admin", "salud.mujeres"):
        client = _signed(make_client, username)
        assert client.get(path).status_code == 403
        assert client.get(f"{path}.csv").status_code == 403
    # The prison's administrator reads the families' SMS about visits, not health notices.
    admin = _signed(make_client, "admin")
    assert "+51987000008" not in admin.get("/staff/messages").text


def test_no_administrator_reads_who_was_told_of_an_exposure(traced, make_client, db):
    """Neither the prison's administrator nor a national one sees a contact's notice on the
    delivery page: not listed, not counted, not found by its phone; the phone's other SMS are."""
    _, ids = traced
    path = f"/staff/p/QUENCORO/health/{ids['advisory']}/contacts"
    health_user = _signed(make_client, "salud")
    health_user.post(f"{path}/notify", data={"csrf_token": staff_token(health_user)})
    with db.writing() as s:
        notice = s.scalar(select(OutboxMessage).where(OutboxMessage.recipient == "+51987000008"))
        body = notice.body[:40]
        enqueue(s, Draft("+51987000008", "aviso del penal", "es", "other", "broadcast"), NOW)
    make_staff(db, "nacional", StaffRole.ADMIN, (), national=True)
    for username in ("admin", "nacional"):
        admin = _signed(make_client, username)
        for params in ({}, {"phone": "987000008"}):
            shown = visible(admin.get("/staff/messages", params=params).text)
            assert "Aviso de salud a un contacto" not in shown
            assert body not in shown
        by_phone = visible(admin.get("/staff/messages", params={"phone": "987000008"}).text)
        assert "aviso del penal" in by_phone
        assert "1 mensaje." in by_phone


def test_every_tier_of_notice_is_health_information():
    assert {contact_notice_kind(tier) for tier in Tier} <= HEALTH_PRIVATE


def test_the_page_asks_the_same_queries_for_two_contacts_as_for_forty(traced, make_client, db):
    """The notices' SMS come in one query with the notices, never one per row."""
    _, ids = traced
    client = _signed(make_client, "salud")
    path = f"/staff/p/QUENCORO/health/{ids['advisory']}/contacts"
    token = staff_token(client)
    engine = client.app.state.db.engine

    def statements(url: str) -> int:
        seen = []

        def count(*_args) -> None:
            seen.append(1)

        event.listen(engine, "before_cursor_execute", count)
        try:
            assert client.get(url).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(seen)

    client.post(f"{path}/notify", data={"csrf_token": token})
    few = statements(path), statements(f"{path}.csv")
    with db.writing() as s:
        history = History(s, s.scalar(select(Prison).where(Prison.code == "QUENCORO")))
        history.inmates = dict(s.execute(select(Inmate.id, Inmate.wing_id)).all())
        index = s.scalar(select(Inmate.id).where(Inmate.code == "Q10001"))
        for person in history.people([ADULT] * 38, first_names="Rosa"):
            history.book(index, date(2026, 11, 20), [Person(person, ADULT)])
    client.post(f"{path}/notify", data={"csrf_token": token})
    _settle(db, "+51987000008", MessageStatus.FAILED, "30005")
    assert len(_contact_rows(client.get(path).text)) == 40
    assert (statements(path), statements(f"{path}.csv")) == few


def test_a_notice_reads_the_sms_that_reached_its_phone_at_its_tier_or_closer(db):
    """ "plain" is told to watch for symptoms; then a newcomer on the same phone visits the
    index inmate, and the phone gets the tier-1 text too. Either SMS reached plain; only
    the tier-1 one reached the newcomer. The family sharing a phone shares its SMS."""
    advisory_id, people = _family(db)
    _notify(db, advisory_id)
    with db.writing() as s:
        history = History(s, s.scalar(select(Prison)))
        history.inmates = dict(s.execute(select(Inmate.id, Inmate.wing_id)).all())
        index = s.scalar(select(Inmate.id).where(Inmate.code == "Q1"))
        (newcomer,) = history.people([ADULT])
        history.book(index, TODAY, [Person(newcomer, ADULT)], BookingStatus.CONFIRMED,
                     start=time(14), phone="+51987000003")  # fmt: skip
    _notify(db, advisory_id, NOW + timedelta(hours=6))

    def delivered():
        with db.read_session() as s:
            found = tracing.deliveries(s, advisory_id)
        return {name: (found[v].status, found[v].missed) for name, v in people.items()} | {
            "newcomer": (found[newcomer].status, found[newcomer].missed)
        }

    assert set(delivered().values()) == {(MessageStatus.PENDING, False)}
    _settle(db, "+51987000003", MessageStatus.DELIVERED, kind="contact_tier2")
    _settle(db, "+51987000003", MessageStatus.FAILED, "30003", kind="contact_tier1")
    _settle(db, "+51987000001", MessageStatus.UNDELIVERED, "30005")
    assert delivered() == {
        "mother": (MessageStatus.UNDELIVERED, True),
        "child": (MessageStatus.UNDELIVERED, True),
        "english": (MessageStatus.PENDING, False),
        "plain": (MessageStatus.DELIVERED, False),  # told to watch, and that reached them
        "newcomer": (MessageStatus.FAILED, True),  # to be evaluated: that never came
    }
    _settle(db, "+51987000003", MessageStatus.FAILED, "30003", kind="contact_tier2")
    _settle(db, "+51987000003", MessageStatus.DELIVERED, kind="contact_tier1")
    assert delivered()["plain"] == delivered()["newcomer"] == (MessageStatus.DELIVERED, False)
    with db.read_session() as s:
        failed = tracing.deliveries(s, advisory_id)[people["mother"]]
    assert (failed.phone, failed.tier, failed.error_code) == ("+51987000001", Tier.ONE, "30005")


def test_a_notice_without_a_phone_reached_nobody_and_one_whose_sms_was_purged_is_unknown(db):
    advisory_id, people = _family(db)
    with db.writing() as s:  # the retention purge blanked the English family's phone
        s.execute(update(Booking).where(Booking.language == "en").values(contact_phone=""))
    done = _notify(db, advisory_id)
    assert len(done.sms) == 2
    with db.writing() as s:  # settled long ago: the SMS purge deleted it
        s.execute(update(OutboxMessage).values(status=MessageStatus.DELIVERED))
        assert purge(s, NOW + timedelta(days=1)) == 2
    with db.read_session() as s:
        found = tracing.deliveries(s, advisory_id)
    assert found[people["english"]] == tracing.Delivery("", Tier.TWO)
    assert found[people["english"]].missed
    assert found[people["plain"]] == tracing.Delivery("+51987000003", Tier.TWO)
    assert not found[people["plain"]].missed  # not known to have failed
