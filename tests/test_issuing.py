"""Health staff issue an advisory: the bookings it covers are re-evaluated at once, in one
transaction, each family told once; lifting reopens booking. On each database."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, time, timedelta

import pytest
from sqlalchemy import func, select

from notifications.outbox import OutboxMessage
from tests.factories import (
    NOW,
    SMS,
    add_template,
    make_inmate,
    make_prison,
    make_slot,
    request_for,
    visitor,
)
from tests.test_races import LATE, attempt, booking_count, interrupted_stream, race
from visits.audit import AuditEvent
from visits.booking import Booking, BookingStatus, create_booking
from visits.db import Database, make_engine
from visits.gate import Actor, record_arrival
from visits.health import AdvisoryKind, Measures, Scope
from visits.inmate import Inmate
from visits.issuing import AdvisoryDraft, issue, lift, preview, reissue
from visits.prison import Prison, Wing
from visits.problems import Code, Problem, Rejected
from visits.roster import import_roster
from visits.schedule import Slot
from visits.sms import TEXTS, measure_sentences, render

SATURDAY = date(2026, 12, 5)
SUNDAY = date(2026, 12, 6)


def _setup(db) -> dict[str, str]:
    """Wings A and B; Q1 and Q2 in wing A, Q3 in wing B; one booking each, three families."""
    with db.writing() as s:
        prison = make_prison(s, visits_per_inmate_per_week=40)
        s.add(Wing(prison_id=prison.id, code="B", name="Pabellón B"))
        s.flush()
        wings = {w.code: w.id for w in s.scalars(select(Wing))}
        for code, wing in (("Q1", "A"), ("Q2", "A"), ("Q3", "B")):
            make_inmate(s, prison, code).wing_id = wings[wing]
        saturday = make_slot(s, prison, SATURDAY, capacity=200)
        sunday = make_slot(s, prison, SUNDAY, capacity=200)
        refs = {}
        for code, slot, dni, phone in (
            ("Q1", saturday, "41111111", "987000001"),
            ("Q2", sunday, "42222222", "987000002"),
            ("Q3", saturday, "43333333", "987000003"),
        ):
            refs[code] = create_booking(
                s, prison=prison, inmate=s.scalar(select(Inmate).where(Inmate.code == code)),
                request=request_for(slot, visitor(dni), phone=phone), now=NOW, secret_key="k",
                sms_policy=SMS,
            ).booking.reference  # fmt: skip
    return refs


@pytest.fixture
def booked(db):
    return db, _setup(db)


# Wing A's visits paused from the first day the tests run.
WING_A_PAUSED = AdvisoryDraft(
    scope=Scope.WING, kind=AdvisoryKind.TB_SUSCEPTIBLE, measures=Measures(suspended=True),
    starts_on=date(2026, 12, 1), wing_code="A",
)  # fmt: skip


def _issue(db, **changes):
    with db.writing() as s:
        effect = issue(
            s, s.scalar(select(Prison)), replace(WING_A_PAUSED, **changes), now=NOW,
            actor="staff:salud", origin="", sms_policy=SMS,
        )  # fmt: skip
        return effect.advisory.id, [b.reference for b in effect.cancelled], len(effect.told)


def _status(db, reference) -> BookingStatus:
    with db.read_session() as s:
        return s.scalar(select(Booking.status).where(Booking.reference == reference))


def _sms(db, kind) -> list[str]:
    with db.read_session() as s:
        return sorted(s.scalars(select(OutboxMessage.subject).where(OutboxMessage.kind == kind)))


def test_a_wing_suspended_cancels_exactly_its_future_bookings_and_tells_each_family(booked):
    db, refs = booked
    advisory_id, cancelled, _ = _issue(db)
    assert sorted(cancelled) == sorted([refs["Q1"], refs["Q2"]])
    assert _status(db, refs["Q3"]) is BookingStatus.CONFIRMED  # wing B untouched
    assert _sms(db, "health_suspended") == sorted(f"booking:{refs[c]}" for c in ("Q1", "Q2"))
    with db.read_session() as s:
        assert s.scalar(select(func.sum(Slot.seats_taken))) == 1  # Q3's place only
    with pytest.raises(Rejected) as caught:
        _book(db, "Q1", SATURDAY, "44444444")
    assert caught.value.codes == {"health_suspended"}
    with db.writing() as s:
        lift(
            s, advisory_id, s.scalar(select(Prison)), now=NOW, actor="staff:salud", origin="",
            sms_policy=SMS,
        )  # fmt: skip
    assert _book(db, "Q1", SATURDAY, "44444444")  # reopened
    assert _status(db, refs["Q1"]) is BookingStatus.CANCELLED  # what was cancelled stays
    # The families it cancelled learn they can book again; nobody else hears of it.
    assert _sms(db, "health_reopened") == sorted(f"booking:{refs[c]}" for c in ("Q1", "Q2"))


def test_families_are_told_of_a_measure_once_per_version_of_it(booked):
    db, refs = booked
    advisory_id, cancelled, told = _issue(db, measures=Measures(masks=True))
    assert (cancelled, told) == ([], 2)
    assert _sms(db, "health_measure") == sorted(f"booking:{refs[c]}" for c in ("Q1", "Q2"))
    late = _book(db, "Q2", SATURDAY, "45555555")  # booked after the advisory
    assert f"booking:{late}" in _sms(db, "health_measure")  # told with its confirmation

    def again(measures):
        with db.writing() as s:
            effect = reissue(
                s, advisory_id, s.scalar(select(Prison)), measures, now=NOW,
                actor="staff:salud", origin="", sms_policy=SMS,
            )  # fmt: skip
            return len(effect.told)

    assert again(Measures(masks=True)) == 3  # re-evaluated: every family knows
    assert len(_sms(db, "health_measure")) == 3  # and nobody told twice
    again(Measures(masks=True, non_contact=True))  # new measures: everyone told again
    assert len(_sms(db, "health_measure")) == 6
    # Another advisory, for the whole prison: it asks nothing new of wing A's visits, so
    # only wing B's family is told (what it asks, not that an advisory exists).
    _issue(db, scope=Scope.PRISON, measures=Measures(non_contact=True))
    assert len(_sms(db, "health_measure")) == 7
    with db.read_session() as s:
        last = s.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "health_measure")
            .order_by(OutboxMessage.id.desc())
        ).first()  # fmt: skip
        assert last.subject == f"booking:{refs['Q3']}"
        assert "Sin contacto fisico." in last.body  # in Spanish, in GSM-7
        assert "N95" not in last.body


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"scope": Scope.INMATE, "inmate_code": "Q99"}, "inmate_not_found"),
        ({"wing_code": "Z"}, "invalid_choice"),
        ({"measures": Measures()}, "measure_required"),
        ({"starts_on": date(2026, 11, 30)}, "day_in_past"),
        ({"infectious_since": date(2026, 12, 2)}, "date_in_future"),
        ({"measures": Measures(visit_minutes=5)}, "out_of_range"),
        ({"measures": Measures(visit_minutes=120)}, "visit_not_shorter"),  # 2-hour slots
    ],
)
def test_an_advisory_that_cannot_be_issued_changes_nothing(booked, changes, code):
    db, refs = booked
    with pytest.raises(Rejected) as caught:
        _issue(db, **changes)
    assert code in caught.value.codes
    assert _status(db, refs["Q1"]) is BookingStatus.CONFIRMED
    assert _sms(db, "health_suspended") == []


@pytest.mark.parametrize(
    "kind",
    ["health_suspended", "health_measure", "health_reopened", "contact_tier1", "contact_tier2"],
)
@pytest.mark.parametrize("language", ["es", "en"])
def test_no_health_sms_names_a_diagnosis_or_anyone(kind, language):
    every = Measures(True, True, True, True, 45)
    params = {"ref": "ABCD-EFGH", "when": "28/12", "prison": "Penal", "link": "https://x.pe"}
    params["measures"] = measure_sentences(every, language)
    text = render(kind, language, params).lower()
    if kind == "health_measure":
        assert "n95" in text  # what to do is said
        assert "45" in text
    assert kind in TEXTS
    for word in ("tb", "tuberculos", "diagn", "contag", "infec", "interno", "inmate"):
        assert word not in text, (word, text)


def test_a_shorter_visit_must_be_shorter_than_the_longest_visit_time_from_its_first_day(booked):
    """Slots already made and weekly templates still valid on the advisory's first day both
    count; a template that ended before it does not."""
    db, _ = booked

    def refused(minutes: int, **changes) -> tuple[Problem, ...]:
        with pytest.raises(Rejected) as caught:
            _issue(db, measures=Measures(visit_minutes=minutes), **changes)
        return caught.value.problems

    longest = Problem(Code.VISIT_NOT_SHORTER, "visit_minutes", {"longest": 120})
    assert refused(120) == (longest,)  # the 2-hour slots: not shorter
    with db.writing() as s:
        prison = s.scalar(select(Prison))
        add_template(s, prison, 2, time(8), time(13), valid_to=date(2026, 11, 30))  # ended
        add_template(s, prison, 5, time(9), time(12), valid_from=date(2027, 1, 2))
    advisory_id, _, _ = _issue(db, measures=Measures(visit_minutes=150))  # 3 hours from January
    assert refused(180)[0].params == {"longest": 180}
    with db.writing() as s:
        with pytest.raises(Rejected) as caught:
            reissue(
                s, advisory_id, s.scalar(select(Prison)), Measures(visit_minutes=180), now=NOW,
                actor="staff:salud", origin="", sms_policy=SMS,
            )  # fmt: skip
        assert caught.value.codes == {Code.VISIT_NOT_SHORTER}


def _book(db, code, day, dni):
    with db.writing() as s:
        slot = s.scalar(select(Slot.id).where(Slot.local_date == day))
        return create_booking(
            s, prison=s.scalar(select(Prison)),
            inmate=s.scalar(select(Inmate).where(Inmate.code == code)),
            request=request_for(slot, visitor(dni)), now=NOW, secret_key="k", sms_policy=SMS,
        ).booking.reference  # fmt: skip


FAMILIES = 30


def test_a_wing_suspended_while_families_book_keeps_no_booking(db_url):
    db = Database(make_engine(db_url, busy_timeout_ms=60_000, pool_size=FAMILIES + 2))
    try:
        with db.writing() as s:
            prison = make_prison(s, visits_per_inmate_per_week=FAMILIES)
            make_inmate(s, prison, "Q1")
            slot_id = make_slot(s, prison, SATURDAY, capacity=200).id

        def health_staff() -> str:
            draft = AdvisoryDraft(
                scope=Scope.PRISON, kind=AdvisoryKind.RESPIRATORY_OUTBREAK,
                measures=Measures(suspended=True), starts_on=date(2026, 12, 1),
            )  # fmt: skip
            with db.writing() as s:
                effect = issue(
                    s, s.scalar(select(Prison)), draft, now=NOW, actor="staff:salud",
                    origin="", sms_policy=SMS,
                )  # fmt: skip
            return f"issued:{len(effect.cancelled)}"

        outcomes = interrupted_stream(
            FAMILIES,
            lambda: booking_count(db),
            health_staff,
            lambda i: attempt(db, slot_id, "Q1", f"4{i:07d}"),
        )
        booked_ = outcomes["ok"]
        assert booked_ >= 1
        assert outcomes[f"issued:{booked_}"] == 1  # every booking that landed was cancelled
        assert outcomes["health_suspended"] == FAMILIES - booked_ >= LATE
        with db.read_session() as s:
            assert s.scalar(select(Slot.seats_taken).where(Slot.id == slot_id)) == 0
    finally:
        db.dispose()


def test_a_reissue_is_checked_like_an_issue_and_never_follows_a_lift(booked):
    db, refs = booked
    advisory_id, _, _ = _issue(db, measures=Measures(masks=True))

    def again(measures) -> str:
        try:
            with db.writing() as s:
                reissue(
                    s, advisory_id, s.scalar(select(Prison)), measures, now=NOW,
                    actor="staff:salud", origin="", sms_policy=SMS,
                )  # fmt: skip
            return "reissued"
        except Rejected as rejected:
            return ",".join(sorted(rejected.codes))

    assert again(Measures(visit_minutes=0)) == "out_of_range"
    assert again(Measures()) == "measure_required"

    def lift_it() -> str:
        with db.writing() as s:
            lift(
                s, advisory_id, s.scalar(select(Prison)), now=NOW, actor="staff:salud",
                origin="", sms_policy=SMS,
            )  # fmt: skip
        return "lifted"

    # A lift and a re-issue that suspends visits, at the same instant: they take turns.
    outcomes = race(2, lambda i: lift_it() if i else again(Measures(suspended=True)))
    with db.read_session() as s:
        events = s.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.action.in_(["advisory.reissued", "advisory.lifted"]))
            .order_by(AuditEvent.id)
        ).all()
    if outcomes["already_lifted"]:  # the lift came first: nothing was cancelled after it
        assert events == ["advisory.lifted"]
        assert _status(db, refs["Q1"]) is BookingStatus.CONFIRMED
    else:  # the re-issue came first, whole
        assert events == ["advisory.reissued", "advisory.lifted"]
        assert _status(db, refs["Q1"]) is BookingStatus.CANCELLED


def _roster(db, wings: dict[str, str]) -> None:
    """Import the test prison's roster with each inmate in the wing given."""
    rows = [
        "code,first_names,last_name_1,last_name_2,birth_date,wing,status,visits_suspended_until"
    ] + [
        f"{code},Juan Carlos,Quispe,Mamani,1990-05-17,{wing},active,"
        for code, wing in wings.items()
    ]
    with db.writing() as s:
        import_roster(s, s.scalar(select(Prison)), "\n".join(rows).encode(), NOW, sms_policy=SMS)


def test_an_inmate_the_roster_moves_into_a_suspended_wing_has_their_visits_cancelled(booked):
    db, refs = booked
    _issue(db)  # wing A paused
    assert _status(db, refs["Q3"]) is BookingStatus.CONFIRMED  # Q3 lives in wing B
    _roster(db, {"Q1": "A", "Q2": "A", "Q3": "A"})  # Q3 moved into wing A
    assert _status(db, refs["Q3"]) is BookingStatus.CANCELLED
    assert f"booking:{refs['Q3']}" in _sms(db, "health_suspended")
    with db.read_session() as s:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.entity == "advisory"))
        assert "advisory.applied_to_moved" in list(actions)


def test_an_inmate_the_roster_moves_into_a_wing_under_measures_has_the_family_told(booked):
    db, refs = booked
    _issue(db, measures=Measures(masks=True))
    assert f"booking:{refs['Q3']}" not in _sms(db, "health_measure")
    _roster(db, {"Q1": "A", "Q2": "A", "Q3": "A"})
    assert f"booking:{refs['Q3']}" in _sms(db, "health_measure")
    _roster(db, {"Q1": "A", "Q2": "A", "Q3": "A"})  # the same file again: nobody told twice
    assert len(_sms(db, "health_measure")) == 3


def _q1_today(s, start: time) -> Booking:
    """A visit to Q1 today (a 2-hour visit time from ``start``), booked days before."""
    prison = s.scalar(select(Prison))
    today = make_slot(s, prison, date(2026, 12, 1), start=start)
    return create_booking(
        s, prison=prison, inmate=s.scalar(select(Inmate).where(Inmate.code == "Q1")),
        request=request_for(today, visitor("46666666")), now=NOW - timedelta(days=3),
        secret_key="k", sms_policy=SMS,
    ).booking  # fmt: skip


def test_a_preview_lists_apart_a_visit_already_let_in_at_the_gate(booked):
    """Q1's family came in at 10:00 for a 14:00 visit today: suspending wing A lists it apart
    (the gate must stop it), never among the bookings it cancels; a measure that does not
    suspend leaves it out (nobody inside is told by SMS)."""
    db, refs = booked
    with db.writing() as s:
        booking = _q1_today(s, time(14))
        record_arrival(
            s, prison=booking.prison, visitor_id=booking.visitors[0].id, actor=Actor("staff:g", ""),
            now=NOW,
        )  # fmt: skip
        inside = booking.reference
    draft = WING_A_PAUSED
    with db.read_session() as s:
        found = preview(s, s.scalar(select(Prison)), draft, now=NOW, actor="staff:salud")
        assert [b.reference for b in found.at_gate] == [inside]
        assert sorted(b.reference for b in found.cancelled) == sorted([refs["Q1"], refs["Q2"]])
        masks = replace(draft, measures=Measures(masks=True))
        found = preview(s, s.scalar(select(Prison)), masks, now=NOW, actor="staff:salud")
        assert found.at_gate == []
        assert inside not in {b.reference for b in found.bookings + found.told}
    _, cancelled, _ = _issue(db)
    assert inside not in cancelled
    assert _status(db, inside) is BookingStatus.ATTENDED


def test_a_suspension_lists_for_the_gate_a_visit_under_way_with_nobody_in(booked):
    """Q1's 09:00-11:00 visit today is under way at 10:00 and nobody of it came in: suspending
    wing A leaves it (the family may be at the gate) and lists it for the gate, in the preview
    and in what issuing did, never among the bookings cancelled."""
    db, refs = booked
    with db.writing() as s:
        under_way = _q1_today(s, time(9)).reference
    draft = WING_A_PAUSED
    with db.read_session() as s:
        found = preview(s, s.scalar(select(Prison)), draft, now=NOW, actor="staff:salud")
        assert [b.reference for b in found.at_gate] == [under_way]
        assert sorted(b.reference for b in found.cancelled) == sorted([refs["Q1"], refs["Q2"]])
        assert under_way not in {b.reference for b in found.bookings}
    with db.writing() as s:
        effect = issue(
            s, s.scalar(select(Prison)), draft, now=NOW, actor="staff:salud", origin="",
            sms_policy=SMS,
        )  # fmt: skip
        assert [b.reference for b in effect.at_gate] == [under_way]
        assert under_way not in {b.reference for b in effect.cancelled}
    assert _status(db, under_way) is BookingStatus.CONFIRMED
    with db.read_session() as s:
        issued = s.scalar(select(AuditEvent).where(AuditEvent.action == "advisory.issued"))
        assert issued.details["at_gate"] == [under_way]


def test_the_preview_lists_bookings_by_visit_day_and_time_then_by_inmate(booked):
    """Q1 and Q3 on Saturday, Q2 on Sunday, booked in that order; Apaza's Saturday booking is
    made last but comes first of Saturday's."""
    db, refs = booked
    with db.writing() as s:
        make_inmate(s, s.scalar(select(Prison)), "Q4", surname="Apaza")
    refs["Q4"] = _book(db, "Q4", SATURDAY, "44444444")
    draft = AdvisoryDraft(
        scope=Scope.PRISON, kind=AdvisoryKind.RESPIRATORY_OUTBREAK,
        measures=Measures(masks=True), starts_on=date(2026, 12, 1),
    )  # fmt: skip
    with db.read_session() as s:
        found = preview(s, s.scalar(select(Prison)), draft, now=NOW, actor="staff:salud")
        shown = [b.reference for b in found.bookings]
    assert shown == [refs["Q4"], refs["Q1"], refs["Q3"], refs["Q2"]]
