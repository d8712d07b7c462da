"""The edges of health measures and screening a review found wanting, each held here: a
measure that comes back is told again, a lift never says "book again" while visits stay
paused, the symptom answers cannot be recovered from anything stored, the gate keeps a
high-risk visitor out where a measure says so, and no odd input gives a server error. On
each database."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from datetime import date, time, timedelta

import pytest
from sqlalchemy import select, update

from notifications.outbox import MessageStatus, OutboxMessage
from tests.factories import (
    LIMA_TODAY,
    NOW,
    SMS,
    make_inmate,
    make_prison,
    make_slot,
    request_for,
    visitor,
)
from tests.staffing import make_staff, sign_in, staff_token
from tests.test_closures import quencoro_days
from tests.test_gate import _form as gate_form
from tests.test_health_web import WING_A_MASKS, _post
from tests.test_health_web import booked as booked
from tests.test_issuing import SUNDAY, _issue, _setup, _sms
from tests.test_pages import csrf, first_open_slot, identify, review, text, visitor_form
from tests.test_screening import _outcomes, _screen
from tests.test_screening import today as today
from tests.test_unconfirmed import HOLDING, code_sent
from visits.audit import AuditEvent
from visits.booking import (
    Booking,
    BookingRequest,
    BookingStatus,
    create_booking,
    move_booking,
    verify_booking,
)
from visits.gate import (
    Actor,
    GateCheck,
    GateStatus,
    TurnAwayReason,
    record_arrival,
    screen_at_gate,
)
from visits.health import AdvisoryKind, Measures, Scope
from visits.i18n import use_locale
from visits.inmate import Inmate
from visits.issuing import AdvisoryDraft, issue, lift, preview_change, preview_lift, reissue
from visits.prison import Prison
from visits.problems import Code, Problem, Rejected, message
from visits.screening import QUESTIONS, Answers, Outcome, Stage, Symptom
from visits.staff import StaffRole


def _measure_texts(db, reference) -> list[str]:
    with db.read_session() as s:
        query = (
            select(OutboxMessage.body)
            .where(OutboxMessage.kind == "health_measure")
            .where(OutboxMessage.subject == f"booking:{reference}")
            .order_by(OutboxMessage.id)
        )
        return list(s.scalars(query))


def _reissue(db, advisory_id, measures):
    with db.writing() as s:
        reissue(
            s, advisory_id, s.scalar(select(Prison)), measures, now=NOW, actor="staff:salud",
            origin="", sms_policy=SMS,
        )  # fmt: skip


def _book_q1(db, dni="49999999"):
    """A new booking for Q1 on the first booking's slot (raises Rejected if refused)."""
    with db.writing() as s:
        slot = s.scalar(select(Booking).order_by(Booking.id)).slot
        return create_booking(
            s, prison=s.scalar(select(Prison)),
            inmate=s.scalar(select(Inmate).where(Inmate.code == "Q1")),
            request=request_for(slot, visitor(dni), phone="987000009"), now=NOW,
            secret_key="k", sms_policy=SMS,
        )  # fmt: skip


# --- What families are told -----------------------------------------------------------------


def test_measures_that_change_back_are_told_again(db):
    """No high-risk → masks → no high-risk: the family's last text must say what applies."""
    refs = _setup(db)
    advisory_id, _, _ = _issue(db, measures=Measures(no_high_risk=True))
    _reissue(db, advisory_id, Measures(masks=True))
    _reissue(db, advisory_id, Measures(no_high_risk=True))
    texts = _measure_texts(db, refs["Q1"])
    assert len(texts) == 3
    assert "menores de 5" in texts[-1]
    assert "N95" not in texts[-1]


def test_an_advisory_that_asks_nothing_new_sends_no_second_text(db):
    refs = _setup(db)
    _issue(db, measures=Measures(masks=True))
    _issue(db, measures=Measures(inform=True))  # says nothing the first did not
    assert len(_measure_texts(db, refs["Q1"])) == 1


def _held_q1(db, slot_of: str, dni: str, *party) -> str:
    """A booking for Q1 on ``slot_of``'s slot, waiting for its code: its reference."""
    with db.writing() as s:
        slot = s.scalar(select(Booking).where(Booking.reference == slot_of)).slot
        return create_booking(
            s, prison=s.scalar(select(Prison)),
            inmate=s.scalar(select(Inmate).where(Inmate.code == "Q1")),
            request=request_for(slot, visitor(dni), *party, phone="987000009"), now=NOW,
            secret_key="k", sms_policy=HOLDING,
        ).booking.reference  # fmt: skip


def _confirm(db, reference, code: str | None = None) -> BookingStatus:
    """The family types the code it was sent (or ``code``): the booking's status after."""
    with db.writing() as s:
        held = s.scalar(select(Booking).where(Booking.reference == reference))
        code = code or code_sent(s, reference)
        verify_booking(s, held, code, now=NOW, sms_policy=HOLDING)
        return held.status


def test_a_booking_waiting_for_its_code_meets_an_advisory_as_a_confirmed_one_does(db):
    """A measure issued while the code travels is told when the family confirms (the text a
    confirmed booking's family got at issue); a suspension cancels the booking waiting, for
    the health measure, and its code then confirms nothing."""
    refs = _setup(db)
    child = visitor("72222222", first_names="Ana", birth_date="2024-05-01", relationship="child")
    measured = _held_q1(db, refs["Q1"], "49999999", child)
    _issue(db, measures=Measures(no_high_risk=True))
    assert _measure_texts(db, measured) == []  # nothing confirmed yet: nothing told
    assert _confirm(db, measured) is BookingStatus.CONFIRMED
    (told,) = _measure_texts(db, measured)  # as the confirmed booking's family was told
    assert "menores de 5" in told
    assert "menores de 5" in _measure_texts(db, refs["Q1"])[0]
    paused = _held_q1(db, refs["Q1"], "48888888")
    with db.read_session() as s:
        code = code_sent(s, paused)  # the family has it; cancelling masks the stored copy
    _, cancelled, _ = _issue(db)
    assert paused in cancelled
    with db.read_session() as s:
        events = s.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == paused))
        assert "booking.cancelled_health_suspended" in set(events)
    with pytest.raises(Rejected) as refused:
        _confirm(db, paused, code)
    assert refused.value.codes == {"hold_cancelled"}


def _health_texts(db, reference) -> list[tuple[str, str]]:
    """(kind, body) of every text about the booking's health measures, oldest first."""
    with db.read_session() as s:
        query = (
            select(OutboxMessage.kind, OutboxMessage.body)
            .where(OutboxMessage.kind.in_(("health_measure", "health_lifted")))
            .where(OutboxMessage.subject == f"booking:{reference}")
            .order_by(OutboxMessage.id)
        )
        return [tuple(row) for row in s.execute(query)]


def test_lifting_a_measure_tells_the_families_it_no_longer_applies(db):
    """Told "no children under 5", a family must not keep leaving the child home once the
    measure is lifted: its last text must say what applies (nothing), once."""
    refs = _setup(db)
    advisory_id, _, _ = _issue(db, measures=Measures(masks=True, no_high_risk=True))
    _lift(db, advisory_id)
    for code in ("Q1", "Q2"):
        assert [kind for kind, _ in _health_texts(db, refs[code])] == [
            "health_measure", "health_lifted",
        ]  # fmt: skip
    assert _health_texts(db, refs["Q3"]) == []  # wing B was never told anything
    _issue(db, measures=Measures(masks=True))  # a new measure later is told afresh
    assert _health_texts(db, refs["Q1"])[-1][0] == "health_measure"
    with db.read_session() as s:
        lifted = s.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "advisory.lifted")
        ).one()  # fmt: skip
    assert lifted["told"] == 2  # the history says how many families were told


def test_lifting_one_of_two_advisories_tells_what_the_other_still_asks(db):
    refs = _setup(db)
    _issue(db, measures=Measures(masks=True))  # wing A: masks
    whole, _, _ = _issue(
        db, scope=Scope.PRISON, wing_code=None, measures=Measures(no_high_risk=True)
    )
    _lift(db, whole)
    kind, body = _health_texts(db, refs["Q1"])[-1]
    assert kind == "health_measure"
    assert "N95" in body  # masks still
    assert "menores de 5" not in body  # children welcome again
    assert _health_texts(db, refs["Q3"])[-1][0] == "health_lifted"  # wing B: nothing now


def test_the_lift_preview_counts_whom_lifting_tells_what_applies_without_it(db):
    """Wing A masks, the whole prison no high-risk: lifting the second texts Q1's and Q2's
    families the masks that still apply and Q3's that no measure does. The preview counts
    exactly these, apart, and the lift's history keeps both counts; nobody can book again
    (nothing was paused)."""
    refs = _setup(db)
    _issue(db, measures=Measures(masks=True))
    whole, _, _ = _issue(
        db, scope=Scope.PRISON, wing_code=None, measures=Measures(no_high_risk=True)
    )
    with db.read_session() as s:
        found = preview_lift(s, whole, s.scalar(select(Prison)), now=NOW)
        assert sorted(b.reference for b in found.still) == sorted([refs["Q1"], refs["Q2"]])
        assert [b.reference for b in found.no_longer] == [refs["Q3"]]
        assert found.reopened == []
    with db.writing() as s:
        effect = lift(
            s, whole, s.scalar(select(Prison)), now=NOW, actor="staff:salud", origin="",
            sms_policy=SMS,
        )  # fmt: skip
        assert sorted(b.reference for b in effect.told) == sorted(refs.values())
        assert [b.reference for b in effect.no_longer] == [refs["Q3"]]
    assert _health_texts(db, refs["Q3"])[-1][0] == "health_lifted"
    with db.read_session() as s:
        lifted = s.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "advisory.lifted")
        ).one()  # fmt: skip
    assert (lifted["told"], lifted["no_longer"]) == (3, 1)


def test_a_visit_moved_out_of_a_measure_is_told_it_no_longer_applies(db):
    refs = _setup(db)
    _issue(db, measures=Measures(masks=True), starts_on=SUNDAY)  # Q2's Sunday visit: masks
    assert [kind for kind, _ in _health_texts(db, refs["Q2"])] == ["health_measure"]
    with db.writing() as s:
        s.execute(update(OutboxMessage).values(status=MessageStatus.SENT))  # it reached them
        saturday = s.scalar(select(Booking).where(Booking.reference == refs["Q1"])).slot_id
        move_booking(
            s, s.scalar(select(Booking).where(Booking.reference == refs["Q2"])),
            slot_id=saturday, now=NOW, actor="family", sms_policy=SMS,
        )  # fmt: skip
    # Saturday is before the measures: "wear an N95" must not stand as its last word.
    assert _health_texts(db, refs["Q2"])[-1][0] == "health_lifted"


def test_lifting_says_nothing_while_another_advisory_still_pauses_visits(db):
    _setup(db)
    wing_advisory, _, _ = _issue(db)  # wing A paused: Q1's and Q2's bookings cancelled
    _issue(db, scope=Scope.PRISON, wing_code=None)  # and the whole prison
    with db.writing() as s:
        lift(
            s, wing_advisory, s.scalar(select(Prison)), now=NOW, actor="staff:salud", origin="",
            sms_policy=SMS,
        )  # fmt: skip
    with pytest.raises(Rejected) as refused:
        _book_q1(db)
    assert refused.value.codes == {"health_suspended"}
    assert _sms(db, "health_reopened") == []  # "book again" would be untrue


def test_a_suspension_changed_to_milder_measures_tells_the_cancelled_families(db):
    refs = _setup(db)
    advisory_id, _, _ = _issue(db)  # wing A paused: Q1's and Q2's bookings cancelled
    _reissue(db, advisory_id, Measures(masks=True))  # visits reopen, with masks
    assert _book_q1(db)  # as they truly do
    assert _sms(db, "health_reopened") == sorted(f"booking:{refs[c]}" for c in ("Q1", "Q2"))


def test_moving_a_booking_keeps_its_tb_advice(db):
    with db.writing() as s:
        prison = make_prison(s)
        inmate = make_inmate(s, prison)
        saturday = make_slot(s, prison, date(2026, 12, 5))
        sunday = make_slot(s, prison, date(2026, 12, 6))
        coughing = dataclasses.replace(visitor(), cough="1")
        booking = create_booking(
            s, prison=prison, inmate=inmate, request=request_for(saturday, coughing), now=NOW,
            secret_key="k", sms_policy=SMS,
        ).booking  # fmt: skip
        move_booking(s, booking, slot_id=sunday.id, now=NOW, actor="family", sms_policy=SMS)
    with db.read_session() as s:
        query = select(OutboxMessage.status).where(OutboxMessage.kind == "screening_advice")
        assert list(s.scalars(query)) == [MessageStatus.PENDING]  # still on its way, once


# --- What is stored -------------------------------------------------------------------------


def test_the_symptom_answers_cannot_be_recovered_from_the_stored_submission(db):
    """The double-click guard keeps a hash of what was sent: trying every combination of
    ticked boxes against it must not give the symptoms back."""
    with db.writing() as s:
        prison = make_prison(s)
        inmate = make_inmate(s, prison)
        slot = make_slot(s, prison, date(2026, 12, 5))
        coughing = dataclasses.replace(visitor(), cough="1", night_sweats="1")
        create_booking(
            s, prison=prison, inmate=inmate, request=request_for(slot, coughing), now=NOW,
            secret_key="k", sms_policy=SMS, submission_key="abc",
        )  # fmt: skip
    with db.read_session() as s:
        booking = s.scalar(select(Booking))
        stored, person = booking.submission_hash, booking.visitors[0]
        assert stored
        known = {"slot_id": str(booking.slot_id), "contact_phone": "987654321", "language": "es"}
        base = visitor(
            person.visitor.doc_number, first_names=person.first_names,
            last_names=person.last_names, birth_date=person.birth_date.isoformat(),
            relationship=person.relationship.value, sex=person.sex.value,
        )  # fmt: skip
        for ticks in itertools.product(("", "1"), repeat=len(QUESTIONS)):
            guess = dataclasses.replace(base, **dict(zip(QUESTIONS, ticks, strict=True)))
            request = BookingRequest(visitors=[guess], **known)
            payload = json.dumps([booking.inmate_id, dataclasses.asdict(request)], sort_keys=True)
            assert hashlib.sha256(payload.encode()).hexdigest() != stored, ticks


# --- At the gate ----------------------------------------------------------------------------


def _keep_high_risk_away(db, code: str) -> None:
    """A prison-wide advisory from today: no children under 5, pregnant or low-defence
    visitors."""
    with db.writing() as s:
        draft = AdvisoryDraft(
            scope=Scope.PRISON, kind=AdvisoryKind.RESPIRATORY_OUTBREAK,
            measures=Measures(no_high_risk=True), starts_on=LIMA_TODAY,
        )  # fmt: skip
        prison = s.scalar(select(Prison).where(Prison.code == code))
        issue(s, prison, draft, now=NOW, actor="staff:salud", origin="", sms_policy=SMS)


def test_a_high_risk_visitor_is_kept_out_at_the_gate_under_a_no_high_risk_measure(today, db):
    client, _, visitor_id = today
    _keep_high_risk_away(db, "QUENCORO")
    answer = _screen(client, visitor_id, high_risk="1")  # "she is pregnant"
    assert answer.status_code == 200  # not sent back to the list to be let in
    assert "notice-health" in answer.text
    day = client.get("/staff/p/QUENCORO/day").text
    assert "No puede ingresar: medida de salud" in day
    assert _outcomes(db, Stage.GATE) == {"María": Outcome.CLEAR}  # no symptom, but not let in


@pytest.fixture
def kept_out(make_client, db):
    """A Quencoro visit this afternoon, booked before a measure came to keep high-risk
    visitors away: an adult, a child of 2 and a pregnant woman; a guard signed in."""
    make_staff(db, "guardia", StaffRole.GUARD)
    with db.writing() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        inmate = s.scalar(select(Inmate).where(Inmate.code == "Q10001"))
        slot = make_slot(s, prison, LIMA_TODAY, start=time(14))
        toddler = visitor(
            "72222222", first_names="Ana", birth_date="2024-05-01", relationship="child"
        )
        pregnant = dataclasses.replace(visitor("43333333", first_names="Rosa"), high_risk="1")
        party = request_for(slot, visitor(), toddler, pregnant)
        booking = create_booking(
            s, prison=prison, inmate=inmate, request=party, now=NOW - timedelta(days=3),
            secret_key="k", sms_policy=SMS,
        ).booking  # fmt: skip
        reference, ids = booking.reference, [v.id for v in booking.visitors]
    _keep_high_risk_away(db, "QUENCORO")
    client = make_client()
    assert sign_in(client, "guardia").status_code == 303
    return client, reference, ids


def test_the_gate_cannot_let_in_a_visitor_a_health_measure_keeps_away(kept_out, db):
    client, reference, (adult, toddler, pregnant) = kept_out
    day = client.get("/staff/p/QUENCORO/day").text
    row = re.search(rf'<tr id="b-{reference}"[^>]*>(.*?)</tr>', day, re.S).group(1)
    assert f"/visitors/{adult}/arrived" in row
    for kept in (toddler, pregnant):
        assert f"/visitors/{kept}/arrived" not in row  # no "Ingresó" to press
        assert f"/visitors/{kept}/turn-away" in row
        assert f"/visitors/{kept}/screening" in row
    for kept, code in ((toddler, Code.HEALTH_NO_YOUNG_CHILDREN), (pregnant, Code.HEALTH_HIGH_RISK)):
        with pytest.raises(Rejected) as refused, db.writing() as s:
            record_arrival(
                s, prison=s.scalar(select(Prison).where(Prison.code == "QUENCORO")),
                visitor_id=kept, actor=Actor("staff:guardia", ""), now=NOW,
            )  # fmt: skip
        assert refused.value.codes == {code}
        answer = client.post(
            f"/staff/p/QUENCORO/visitors/{kept}/arrived",
            data={"csrf_token": staff_token(client)},
            follow_redirects=False,
        )
        assert answer.status_code == 409
        # The guard's words, not the family's ("no puede venir por ahora").
        assert "no puede venir por ahora" not in text(answer)
    with db.read_session() as s:
        assert s.scalar(select(GateCheck)) is None
        assert s.scalar(select(Booking.status)) is BookingStatus.CONFIRMED
    for kept in (toddler, pregnant):  # turned away, as the measure asks
        turned = client.post(
            f"/staff/p/QUENCORO/visitors/{kept}/turn-away",
            data={"csrf_token": staff_token(client), "reason": "health", "note": ""},
            follow_redirects=False,
        )
        assert turned.status_code == 303
    let_in = client.post(
        f"/staff/p/QUENCORO/visitors/{adult}/arrived",
        data={"csrf_token": staff_token(client)},
        follow_redirects=False,
    )
    assert let_in.status_code == 303
    with db.read_session() as s:
        checks = {c.booking_visitor_id: c.status for c in s.scalars(select(GateCheck))}
    assert checks == {
        adult: GateStatus.ARRIVED,
        toddler: GateStatus.TURNED_AWAY,
        pregnant: GateStatus.TURNED_AWAY,
    }


def test_a_guard_is_told_who_may_not_come_in_and_why_in_the_guards_words(kept_out, db):
    """The refusal of "came in" names the visitor and the measure for the guard, while a
    family booking such a visitor still reads its own words."""
    client, _, (_, toddler, pregnant) = kept_out
    assert client.get("/staff/p/QUENCORO/day?lang=en").status_code == 200  # remembered
    said = {}
    for kept in (toddler, pregnant):
        answer = client.post(
            f"/staff/p/QUENCORO/visitors/{kept}/arrived",
            data={"csrf_token": staff_token(client)},
            follow_redirects=False,
        )
        assert answer.status_code == 409
        said[kept] = text(answer)
    assert (
        "Ana Quispe Huamán may not come in: a health measure keeps children under 5 away from "
        "this visit." in said[toddler]
    )
    assert (
        "Rosa Quispe Huamán may not come in: a health measure keeps pregnant women and people "
        "with low defences away from this visit." in said[pregnant]
    )
    for page in said.values():
        assert "cannot come for now" not in page  # the family's words
    with use_locale("en"):
        family = message(Problem(Code.HEALTH_NO_YOUNG_CHILDREN, None, {"name": "Ana"}))
    assert family == (
        "Ana cannot come for now: a health measure keeps children under 5 away from this visit."
    )


@pytest.fixture
def paused(make_client, db):
    """A Quencoro visit that began at 9:00 today (an adult and a child of 6), then a health
    measure from today pausing visits to the whole prison: the visit under way is not
    cancelled (it has begun) and stays on the guard's list; a guard signed in, in English."""
    make_staff(db, "guardia", StaffRole.GUARD)
    with db.writing() as s:
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        inmate = s.scalar(select(Inmate).where(Inmate.code == "Q10001"))
        slot = make_slot(s, prison, LIMA_TODAY, start=time(9))  # NOW is 10:00 in Lima
        child = visitor(
            "76666666", first_names="Luz", birth_date="2020-06-01", relationship="child"
        )
        booking = create_booking(
            s, prison=prison, inmate=inmate, request=request_for(slot, visitor(), child),
            now=NOW - timedelta(days=3), secret_key="k", sms_policy=SMS,
        ).booking  # fmt: skip
        reference, ids = booking.reference, [v.id for v in booking.visitors]
    with db.writing() as s:
        draft = AdvisoryDraft(
            scope=Scope.PRISON, kind=AdvisoryKind.TB_RESISTANT,
            measures=Measures(suspended=True), starts_on=LIMA_TODAY,
        )  # fmt: skip
        prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        issue(s, prison, draft, now=NOW, actor="staff:salud", origin="", sms_policy=SMS)
    client = make_client()
    assert sign_in(client, "guardia").status_code == 303
    assert client.get("/staff/p/QUENCORO/day?lang=en").status_code == 200  # remembered
    return client, reference, ids


def test_the_gate_lets_nobody_in_to_a_visit_a_health_measure_paused(paused, db):
    client, reference, (adult, child) = paused
    day = client.get("/staff/p/QUENCORO/day").text
    row = re.search(rf'<tr id="b-{reference}"[^>]*>(.*?)</tr>', day, re.S).group(1)
    assert "Visits paused" in row
    for kept in (adult, child):
        assert f"/visitors/{kept}/arrived" not in row  # no "came in" to press
        assert f"/visitors/{kept}/turn-away" in row
    assert row.count("May not come in: health measure") == 2
    with pytest.raises(Rejected) as refused, db.writing() as s:
        record_arrival(
            s, prison=s.scalar(select(Prison).where(Prison.code == "QUENCORO")),
            visitor_id=adult, actor=Actor("staff:guardia", ""), now=NOW,
        )  # fmt: skip
    assert refused.value.codes == {Code.HEALTH_SUSPENDED}
    answer = client.post(
        f"/staff/p/QUENCORO/visitors/{adult}/arrived",
        data={"csrf_token": staff_token(client)},
        follow_redirects=False,
    )
    assert answer.status_code == 409
    assert (
        "María Quispe Huamán may not come in: a health measure has paused visits to Carlos "
        "Yupanqui Huarcaya." in text(answer)
    )
    assert "please look again in a few days" not in text(answer)  # the family's words
    with db.read_session() as s:
        assert s.scalar(select(GateCheck)) is None
        assert s.scalar(select(Booking.status)) is BookingStatus.CONFIRMED
    screened = _screen(client, child)  # no symptom, but visits are paused
    assert screened.status_code == 200  # not sent back to the list to be let in
    assert "a health measure has paused visits to this person for now" in text(screened)
    with db.read_session() as s:
        check = s.get(GateCheck, child)
        assert (check.status, check.reason) == (GateStatus.TURNED_AWAY, TurnAwayReason.HEALTH)


def test_the_gate_screening_says_why_a_child_under_5_is_kept_out(kept_out, db):
    client, _, (_, toddler, _) = kept_out
    assert client.get("/staff/p/QUENCORO/day?lang=en").status_code == 200  # remembered
    answer = _screen(client, toddler)
    assert answer.status_code == 200
    said = text(answer)
    assert "a health measure keeps children under 5 away from this visit" in said
    assert "pregnant" not in said


def test_a_stale_clear_screening_never_overwrites_symptoms_found(today, db):
    client, _, visitor_id = today
    assert _screen(client, visitor_id, cough="1").status_code == 200  # one guard: symptoms
    stale = _screen(client, visitor_id)  # another, from a page loaded before: none ticked
    assert stale.status_code == 409
    assert _outcomes(db, Stage.GATE) == {"María": Outcome.REFER}


def _undo_as_listed(client, visitor_id: int):
    """The day list's "Deshacer" for the visitor, sent as the page has it."""
    path = f"/staff/p/QUENCORO/visitors/{visitor_id}/undo"
    shown = gate_form(client.get("/staff/p/QUENCORO/day").text, path)
    assert shown["was"] == "turned_away"
    assert shown["reason"] == "health"
    return client.post(path, data=shown, follow_redirects=False)


def test_undoing_a_health_turn_away_clears_its_screening(today, db):
    client, reference, visitor_id = today
    assert _screen(client, visitor_id, cough="1").status_code == 200
    undo = _undo_as_listed(client, visitor_id)
    assert undo.status_code == 303
    assert _outcomes(db, Stage.GATE) == {}  # asked again, from the start
    day = client.get("/staff/p/QUENCORO/day").text
    row = re.search(rf'<tr id="b-{reference}"[^>]*>(.*?)</tr>', day, re.S).group(1)
    assert f"/visitors/{visitor_id}/arrived" in row
    assert "con síntomas" not in row


def test_two_visitors_with_symptoms_send_the_family_one_text(db):
    with db.writing() as s:
        prison = make_prison(s)
        inmate = make_inmate(s, prison)
        slot = make_slot(s, prison, LIMA_TODAY, start=time(14))
        party = request_for(slot, visitor("41111111"), visitor("42222222", first_names="Ana"))
        booking = create_booking(
            s, prison=prison, inmate=inmate, request=party, now=NOW - timedelta(days=3),
            secret_key="k", sms_policy=SMS,
        ).booking  # fmt: skip
        ids = [v.id for v in booking.visitors]
    for visitor_id in ids:
        with db.writing() as s:
            screen_at_gate(
                s, prison=s.get(Prison, prison.id), visitor_id=visitor_id,
                answers=Answers(symptoms=frozenset({Symptom.COUGH})),
                actor=Actor("staff:guardia", ""), now=NOW, sms_policy=SMS,
            )  # fmt: skip
    assert len(_sms(db, "screening_advice")) == 1


def test_the_booking_history_names_a_screening(today):
    client, reference, visitor_id = today
    _screen(client, visitor_id)
    page = client.get(f"/staff/p/QUENCORO/bookings/{reference}")
    assert page.status_code == 200
    assert "visitor.screened" not in page.text
    assert "respondió las preguntas de salud" in page.text


# --- Odd input ------------------------------------------------------------------------------

ODD = [
    "", " ", "x", "٤٥", "１２", "9" * 40, "-1", "0", "1e3", "\x00", "2026-12-01T00:00",
    "20261201", "2026-W49-2", "+45", "45.0", "1" * 5, "<b>", "ñ" * 3000,
]  # fmt: skip


def test_an_unknown_inmate_error_points_at_its_field(booked):
    staff = booked[0]
    answer = _post(
        staff, "/preview", **(WING_A_MASKS | {"scope": "inmate", "inmate_code": "Q99999"})
    )
    anchors = re.findall(r'href="#([^"]+)"', answer.text)
    ids = set(re.findall(r'id="([^"]+)"', answer.text))
    assert anchors
    assert set(anchors) <= ids


@pytest.mark.parametrize(
    "field",
    [
        "scope", "wing", "inmate_code", "kind", "infectious_since", "visit_minutes",
        "starts_on", "notes", "masks", "suspended",
    ],
)  # fmt: skip
def test_odd_advisory_form_values_never_give_a_server_error(booked, field):
    staff = booked[0]
    for value in ODD:
        for path in ("/preview", ""):
            answer = _post(staff, path, **(WING_A_MASKS | {field: value}))
            assert answer.status_code < 500, (field, value)
    advisory = _post(staff, **WING_A_MASKS).headers["location"].split("?")[0]
    for value in ODD:
        for path in ("/preview", ""):
            answer = staff.post(
                f"{advisory}{path}",
                data={"csrf_token": staff_token(staff), "masks": "1", field: value},
                follow_redirects=False,
            )
            assert answer.status_code < 500, (field, value)


def test_odd_gate_answers_never_give_a_server_error(today):
    client, _, visitor_id = today
    for question in QUESTIONS:
        for value in ODD:
            assert _screen(client, visitor_id, **{question: value}).status_code < 500


def test_a_nul_in_a_staff_form_is_a_refusal(today):
    client, _, visitor_id = today
    answer = client.post(
        f"/staff/p/QUENCORO/visitors/{visitor_id}/turn-away",
        data={"csrf_token": staff_token(client), "reason": "other", "note": "a\x00b"},
        follow_redirects=False,
    )
    assert answer.status_code == 400


def test_odd_family_answers_never_give_a_server_error(client):
    identify(client)
    slot = first_open_slot(client)
    token = csrf(client)
    for question in QUESTIONS:
        for value in ODD:
            for entry in (0, 1, 99):
                form = visitor_form(slot, token, **{f"visitors.{entry}.{question}": value})
                assert review(client, form).status_code < 500, (question, value, entry)


def test_odd_api_answers_never_give_a_server_error(client):
    slot = next(s["id"] for d in quencoro_days(client) for s in d["slots"] if s["state"] == "open")
    for value in ["maybe", None, [1], {"a": 1}, 2, -1, "yes", "on", 1.5, "٠", "a\x00"]:
        person = {
            "first_names": "Ana", "last_names": "Quispe", "doc_type": "dni",
            "doc_number": "41111111", "birth_date": "1985-07-25", "relationship": "partner",
            "sex": "F", "cough": value,
        }  # fmt: skip
        payload = {
            "prison": "QUENCORO", "inmate": {"code": "Q10001", "surname": "Yupanqui"},
            "slot_id": slot, "contact_phone": "987654321", "visitors": [person],
        }  # fmt: skip
        answer = client.post("/api/v1/bookings", json=payload)
        assert answer.status_code < 500, (value, answer.text)


# --- A third look ---------------------------------------------------------------------------


def _lift(db, advisory_id):
    with db.writing() as s:
        lift(
            s, advisory_id, s.scalar(select(Prison)), now=NOW, actor="staff:salud", origin="",
            sms_policy=SMS,
        )  # fmt: skip


def test_families_hear_book_again_when_the_last_suspension_over_them_is_lifted(db):
    refs = _setup(db)
    wing, _, _ = _issue(db)  # wing A paused: Q1's and Q2's bookings cancelled
    whole, _, _ = _issue(db, scope=Scope.PRISON, wing_code=None)  # then the whole prison
    _lift(db, wing)
    assert _sms(db, "health_reopened") == []  # still paused by the other
    _lift(db, whole)  # wing B's family too: the whole prison's pause cancelled theirs
    everyone = sorted(f"booking:{refs[c]}" for c in ("Q1", "Q2", "Q3"))
    assert _sms(db, "health_reopened") == everyone  # each family once


def test_the_previews_count_the_book_again_texts_that_lifting_and_easing_send(db):
    """The previews ask the code that queues the texts: the same families, before and after,
    whatever other suspension still pauses some of them."""
    refs = _setup(db)
    wing, _, _ = _issue(db)  # wing A paused: Q1's and Q2's bookings cancelled
    whole, _, _ = _issue(db, scope=Scope.PRISON, wing_code=None)  # then Q3's too

    def previewed(advisory_id, measures=None) -> list[str]:
        with db.read_session() as s:
            prison = s.scalar(select(Prison))
            if measures is None:
                found = preview_lift(s, advisory_id, prison, now=NOW)
            else:
                found = preview_change(s, advisory_id, prison, measures, now=NOW)
            return sorted(f"booking:{b.reference}" for b in found.reopened)

    assert previewed(wing) == previewed(wing, Measures(masks=True)) == []  # still paused
    assert previewed(whole, Measures(masks=True)) == [f"booking:{refs['Q3']}"]
    assert previewed(whole, Measures(suspended=True)) == []  # still suspends: nobody
    _lift(db, wing)
    everyone = sorted(f"booking:{refs[c]}" for c in ("Q1", "Q2", "Q3"))
    assert previewed(whole) == previewed(whole, Measures(masks=True)) == everyone
    _reissue(db, whole, Measures(masks=True))
    assert _sms(db, "health_reopened") == everyone  # what the previews said


def test_a_second_suspension_eased_tells_again(db):
    refs = _setup(db)
    advisory_id, _, _ = _issue(db)
    _reissue(db, advisory_id, Measures(masks=True))  # eased: told
    with db.writing() as s:
        slot = s.scalar(select(Booking).where(Booking.reference == refs["Q1"])).slot
        again = create_booking(
            s, prison=s.scalar(select(Prison)),
            inmate=s.scalar(select(Inmate).where(Inmate.code == "Q1")),
            request=request_for(slot, visitor("41111111"), phone="987000001"), now=NOW,
            secret_key="k", sms_policy=SMS,
        ).booking.reference  # fmt: skip
    _reissue(db, advisory_id, Measures(suspended=True))  # the new booking cancelled
    _reissue(db, advisory_id, Measures(masks=True))  # and eased again
    told = _sms(db, "health_reopened")
    assert f"booking:{again}" in told
    assert len([t for t in told if t in (f"booking:{refs['Q1']}", f"booking:{again}")]) == 2


def test_a_guards_mistaken_high_risk_tick_is_undone_with_its_screening(today, db):
    client, _, visitor_id = today
    _keep_high_risk_away(db, "QUENCORO")
    assert _screen(client, visitor_id, high_risk="1").status_code == 200  # kept out
    undo = _undo_as_listed(client, visitor_id)
    assert undo.status_code == 303
    assert _screen(client, visitor_id).status_code == 303  # not high risk after all: let in


def test_a_child_under_5_is_kept_out_at_the_gate_under_a_no_high_risk_measure(db):
    with db.writing() as s:
        prison = make_prison(s)
        inmate = make_inmate(s, prison)
        slot = make_slot(s, prison, LIMA_TODAY, start=time(14))
        toddler = visitor(
            "72222222", first_names="Ana", birth_date="2024-05-01", relationship="child"
        )
        booking = create_booking(
            s, prison=prison, inmate=inmate, request=request_for(slot, visitor(), toddler),
            now=NOW - timedelta(days=3), secret_key="k", sms_policy=SMS,
        ).booking  # fmt: skip
        child = booking.visitors[1].id
    _keep_high_risk_away(db, prison.code)
    with db.writing() as s:
        screened = screen_at_gate(
            s, prison=s.get(Prison, prison.id), visitor_id=child, answers=Answers(),
            actor=Actor("staff:guardia", ""), now=NOW, sms_policy=SMS,
        )  # fmt: skip
        assert screened.kept_away
        assert not screened.let_in
