"""TB symptom screening at booking and at the gate (on each database): any symptom keeps the
visitor out that day and the family is told kindly where to get a free check; only the
outcome and the day are stored."""

from __future__ import annotations

from datetime import date, timedelta
from html import escape

import pytest
from sqlalchemy import func, inspect, select

from notifications.outbox import OutboxMessage
from tests.factories import NOW, SMS, request_for, visitor
from tests.staffing import make_staff, sign_in, staff_token
from tests.test_closures import try_booking
from tests.test_gate import _form as gate_form
from tests.test_gate import _post as gate_post
from tests.test_pages import booked as book_on_the_web
from tests.test_pages import csrf, first_open_slot, identify, review, text, visitor_form
from tests.test_staff_web import _visit_today
from visits.booking import Booking, BookingStatus, BookingVisitor, create_booking
from visits.gate import Actor, GateCheck, GateStatus, TurnAwayReason, screen_at_gate
from visits.health import AdvisoryKind, Measures, Scope
from visits.i18n import gettext, use_locale
from visits.issuing import AdvisoryDraft, issue
from visits.prison import prison_by_code
from visits.problems import Rejected
from visits.reference import display, manage_token
from visits.screening import QUESTIONS, Answers, Outcome, Screening, Stage, Symptom, parse_answers
from visits.staff import StaffRole

GUARD = Actor("staff:guardia", "10.1.2.3")


# --- The questions --------------------------------------------------------------------------


@pytest.mark.parametrize("symptom", list(Symptom))
def test_any_one_symptom_refers_the_visitor(symptom):
    answers = parse_answers({symptom.value: "1"}, "")
    assert answers.outcome is Outcome.REFER
    assert answers.symptoms == {symptom}


def test_routing_answers_advise_but_do_not_refer():
    assert parse_answers({}, "").outcome is Outcome.CLEAR
    assert parse_answers({"lives_with_tb": "1"}, "").outcome is Outcome.ADVISED
    high_risk = parse_answers({"high_risk": "on"}, "")
    assert (high_risk.outcome, high_risk.high_risk) == (Outcome.CLEAR, True)
    assert parse_answers({"cough": "1", "lives_with_tb": "1"}, "").outcome is Outcome.REFER


def test_an_answer_that_is_neither_yes_nor_no_is_named():
    problems = parse_answers({"fever": "maybe", "cough": "<b>"}, "visitors.1.")
    assert {p.field for p in problems} == {"visitors.1.fever", "visitors.1.cough"}


def test_only_the_outcome_and_the_day_are_stored():
    columns = {c.key for c in inspect(Screening).columns}
    assert columns == {
        "id",
        "booking_visitor_id",
        "stage",
        "outcome",
        "high_risk",
        "day",
        "at",
        "by",
    }  # the outcome, its day, and the one routing answer kept
    assert not set(QUESTIONS) - {"high_risk"} & {c.key for c in inspect(BookingVisitor).columns}


# --- At booking -----------------------------------------------------------------------------


def _advice(db) -> list[OutboxMessage]:
    with db.read_session() as s:
        query = select(OutboxMessage).where(OutboxMessage.kind == "screening_advice")
        return list(s.scalars(query))


def _outcomes(db, stage) -> dict[str, Outcome]:
    with db.read_session() as s:
        rows = s.execute(
            select(BookingVisitor.first_names, Screening.outcome)
            .join(Screening, Screening.booking_visitor_id == BookingVisitor.id)
            .where(Screening.stage == stage)
        )
        return {name: outcome for name, outcome in rows}


def test_a_family_marks_a_cough_books_and_is_told_kindly_where_to_get_checked(client, db):
    identify(client)
    slot_id = first_open_slot(client)
    form = visitor_form(slot_id, csrf(client), **{"visitors.0.cough": "1"})
    assert "notice-health" in review(client, form).text  # said before confirming, too
    _, location = book_on_the_web(client, **{"visitors.0.cough": "1"})
    page = client.get(location)
    assert "notice-health" in page.text
    assert "gratuito en cualquier puesto o centro de salud" in text(page)
    assert list(_outcomes(db, Stage.BOOKING).values()) == [Outcome.REFER]
    (advice,) = _advice(db)
    assert "gratuito en cualquier puesto de salud" in advice.body


def test_no_administrator_reads_which_family_was_advised_a_tb_check(client, make_client, db):
    """The advice says its family reported a symptom: neither the prison's administrator nor a
    national one finds it on the delivery page, by phone, by reference or in the count; the
    booking's other SMS are still there."""
    make_staff(db, "admin", StaffRole.ADMIN)
    make_staff(db, "nacional", StaffRole.ADMIN, (), national=True)
    book_on_the_web(client, **{"visitors.0.cough": "1"})
    (advice,) = _advice(db)
    with db.read_session() as s:
        others = s.scalar(select(func.count(OutboxMessage.id)))
    others -= 1
    assert others >= 1
    reference = advice.subject.removeprefix("booking:")
    for username in ("admin", "nacional"):
        admin = make_client()
        sign_in(admin, username)
        for params in ({}, {"phone": advice.recipient}, {"reference": reference}):
            shown = text(admin.get("/staff/messages", params=params))
            assert "Confirmación" in shown
            assert "Consejo: examen de TB gratuito" not in shown
            assert advice.body[:40] not in shown
            assert shown.count(advice.recipient) == others
            assert f"{others} mensaje" in shown


def test_a_booking_without_symptoms_is_stored_clear_and_says_nothing(client, db):
    _, location = book_on_the_web(client)
    assert "notice-health" not in client.get(location).text
    assert list(_outcomes(db, Stage.BOOKING).values()) == [Outcome.CLEAR]
    assert _advice(db) == []


def test_a_high_risk_visitor_is_refused_only_where_a_measure_keeps_them_away(make_client, db):
    from tests.test_closures import quencoro_days

    client = make_client()
    slot = next(
        s["id"] for d in quencoro_days(client) if d["date"] == "2026-12-02" for s in d["slots"]
    )
    answer = try_booking(client, slot, "Q10005", "Quispe", "41111111", "987654321")
    assert answer.status_code == 201  # nobody said high risk
    with db.writing() as s:
        draft = AdvisoryDraft(
            scope=Scope.PRISON, kind=AdvisoryKind.RESPIRATORY_OUTBREAK,
            measures=Measures(no_high_risk=True), starts_on=date(2026, 12, 1),
        )  # fmt: skip
        issue(s, prison_by_code(s, "QUENCORO"), draft, now=NOW, actor="staff:salud", origin="",
              sms_policy=SMS)  # fmt: skip
    payload_visitor = {
        "first_names": "Ana", "last_names": "Quispe", "doc_type": "dni", "doc_number": "42222222",
        "birth_date": "1990-01-01", "relationship": "partner", "sex": "F", "high_risk": True,
    }  # fmt: skip
    refused = client.post(
        "/api/v1/bookings",
        json={
            "prison": "QUENCORO", "inmate": {"code": "Q10004", "surname": "Flores"},
            "slot_id": slot, "visitors": [payload_visitor], "contact_phone": "987654322",
        },
    )  # fmt: skip
    assert refused.status_code == 422, refused.text
    assert [e["code"] for e in refused.json()["errors"]] == ["health_high_risk"]
    assert refused.json()["errors"][0]["field"] == "visitors.0.high_risk"


# --- At the gate ----------------------------------------------------------------------------


@pytest.fixture
def today(make_client, db):
    """A Quencoro visit this afternoon, and a guard signed in."""
    make_staff(db, "guardia", StaffRole.GUARD)
    make_staff(db, "guardia.mujeres", StaffRole.GUARD, ("MUJERES-CUSCO",))
    reference, visitor_id = _visit_today(db)
    client = make_client()
    assert sign_in(client, "guardia").status_code == 303
    return client, reference, visitor_id


def _screen(client, visitor_id, prison="QUENCORO", **answers):
    return client.post(
        f"/staff/p/{prison}/visitors/{visitor_id}/screening",
        data={"csrf_token": staff_token(client), **answers},
        follow_redirects=False,
    )


def test_a_visitor_with_symptoms_at_the_gate_is_not_let_in_and_the_family_is_told(today, db):
    client, _, visitor_id = today
    day = client.get("/staff/p/QUENCORO/day").text
    assert f"/staff/p/QUENCORO/visitors/{visitor_id}/screening" in day
    assert client.get(f"/staff/p/QUENCORO/visitors/{visitor_id}/screening").status_code == 200
    answer = _screen(client, visitor_id, night_sweats="1")
    assert answer.status_code == 200
    assert "notice-health" in answer.text  # what to tell the visitor
    with db.read_session() as s:
        check = s.get(GateCheck, visitor_id)
        assert (check.status, check.reason) == (GateStatus.TURNED_AWAY, TurnAwayReason.HEALTH)
    assert _outcomes(db, Stage.GATE) == {"María": Outcome.REFER}
    assert len(_advice(db)) == 1
    again = _screen(client, visitor_id, night_sweats="1")  # a double click
    assert again.status_code == 200
    assert len(_advice(db)) == 1  # told once
    assert "tag-health" in client.get("/staff/p/QUENCORO/day").text


def _family_page(client, reference) -> str:
    """The family's booking page, in English, as its link opens it."""
    token = manage_token("test-secret", reference)
    return text(client.get(f"/b/{display(reference)}", params={"token": token, "lang": "en"}))


BEFORE_THE_VISIT = ("30 minutes", "before visiting", "asked the same questions again")


def test_the_family_page_says_the_gate_turned_away_a_visitor_with_symptoms(today, client):
    guard, reference, visitor_id = today
    before = _family_page(client, reference)
    assert "Arrive 30 minutes early" in before
    assert "Not let in" not in before
    assert _screen(guard, visitor_id, cough="1").status_code == 200
    after = _family_page(client, reference)
    assert (
        "Not let in on Tuesday, December 1, 2026: the health questions at the gate called for a "
        "free TB check first." in after
    )
    assert not [said for said in BEFORE_THE_VISIT if said in after]


def test_the_family_page_says_a_visitor_came_in_and_gives_no_advice_for_before(today, client):
    guard, reference, visitor_id = today
    assert gate_post(guard, f"/visitors/{visitor_id}/arrived").status_code == 303
    after = _family_page(client, reference)
    assert "Came in on Tuesday, December 1, 2026." in after
    assert not [said for said in BEFORE_THE_VISIT if said in after]


def test_the_family_page_gives_no_advice_for_before_once_the_visit_time_is_over(today, client):
    _, reference, _ = today
    assert "Arrive 30 minutes early" in _family_page(client, reference)
    client.app.state.clock = lambda: NOW + timedelta(hours=7)  # 17:00 in Lima: it ended at 16:00
    after = _family_page(client, reference)
    assert "Not let in" not in after  # nobody recorded at the gate
    assert not [said for said in BEFORE_THE_VISIT if said in after]


def test_another_turn_away_is_said_plainly_without_the_guards_note(today, client):
    guard, reference, visitor_id = today
    turned = gate_post(guard, f"/visitors/{visitor_id}/turn-away", reason="other", note="Ebrio")
    assert turned.status_code == 303
    after = _family_page(client, reference)
    assert "Not let in on Tuesday, December 1, 2026." in after
    assert "TB" not in after
    assert "Ebrio" not in after  # the guard's words stay with staff
    assert not [said for said in BEFORE_THE_VISIT if said in after]


def test_a_visitor_without_symptoms_goes_back_to_the_list_to_be_let_in(today, db):
    client, _, visitor_id = today
    answer = _screen(client, visitor_id)
    assert answer.status_code == 303
    assert _outcomes(db, Stage.GATE) == {"María": Outcome.CLEAR}
    with db.read_session() as s:
        assert s.get(GateCheck, visitor_id) is None  # the guard still lets them in
    assert _advice(db) == []


def test_odd_gate_answers_and_other_prisons_change_nothing(today, make_client, db):
    client, _, visitor_id = today
    bad = _screen(client, visitor_id, fever="quizás")
    assert bad.status_code == 422
    assert 'href="#fever"' in bad.text
    assert _screen(client, 99_999_999).status_code == 404
    stranger = make_client()
    assert sign_in(stranger, "guardia.mujeres").status_code == 303
    assert _screen(stranger, visitor_id, fever="1").status_code == 403
    assert _screen(stranger, visitor_id, "MUJERES-CUSCO", fever="1").status_code == 404
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(GateCheck)) == 0
    assert _outcomes(db, Stage.GATE) == {}


def test_screening_is_only_on_the_visit_day(db):
    with db.writing() as s:
        from tests.factories import make_inmate, make_prison, make_slot

        prison = make_prison(s)
        inmate = make_inmate(s, prison)
        slot = make_slot(s, prison, NOW.date() + timedelta(days=2))
        booking = create_booking(
            s, prison=prison, inmate=inmate, request=request_for(slot, visitor()), now=NOW,
            secret_key="k", sms_policy=SMS,
        ).booking  # fmt: skip
        visitor_id = booking.visitors[0].id
    with db.writing() as s, pytest.raises(Rejected) as caught:
        screen_at_gate(
            s, prison=s.get(type(prison), prison.id), visitor_id=visitor_id,
            answers=Answers(symptoms=frozenset({Symptom.FEVER})), actor=GUARD, now=NOW,
            sms_policy=SMS,
        )  # fmt: skip
    assert caught.value.codes == {"not_the_visit_day"}
    with db.read_session() as s:
        assert s.scalar(select(Booking.status)) is BookingStatus.CONFIRMED


@pytest.mark.parametrize("found", ["symptoms", "lives_with_tb"])
def test_answers_saved_after_another_guard_let_the_visitor_in_are_recorded_all_the_same(
    today, make_client, db, found
):
    """Guard A opens María's health questions; guard B lets her in; A saves her answers. They
    are recorded and the family advised (symptoms of TB found at the gate are never lost), B's
    record stands, and A is told who let her in and when: she is inside."""
    client, _, visitor_id = today
    make_staff(db, "guardia.dos", StaffRole.GUARD)
    other = make_client()
    assert sign_in(other, "guardia.dos").status_code == 303
    assert client.get(f"/staff/p/QUENCORO/visitors/{visitor_id}/screening").status_code == 200
    assert gate_post(other, f"/visitors/{visitor_id}/arrived").status_code == 303
    answer = _screen(client, visitor_id, **{"cough" if found == "symptoms" else found: "1"})
    assert answer.status_code == 200
    outcome = Outcome.REFER if found == "symptoms" else Outcome.ADVISED
    assert _outcomes(db, Stage.GATE) == {"María": outcome}
    assert len(_advice(db)) == 1
    with db.read_session() as s:
        check = s.get(GateCheck, visitor_id)
        assert (check.status, check.by) == (GateStatus.ARRIVED, "staff:guardia.dos")
        at = check.at.astimezone(prison_by_code(s, "QUENCORO").tz).strftime("%H:%M")
        assert s.scalar(select(Booking.status)) is BookingStatus.ATTENDED
    with use_locale("es"):
        params = {"guard": "guardia.dos", "time": at, "name": "María Quispe Huamán"}
        told = [
            gettext("Let in by %(guard)s at %(time)s: %(name)s is inside.", params),
            gettext("The answers were recorded."),
        ]
        if found == "symptoms":  # she is the gate's to fetch out
            told.append(gettext("Stop the visit if the symptoms require it."))
        marked = gettext(
            "Health questions: symptoms"
            if found == "symptoms"
            else "Health questions: check advised"
        )
    assert " ".join(told) in text(answer)
    day = client.get("/staff/p/QUENCORO/day")
    assert marked in text(day)
    # Symptoms of someone inside ask the gate to act: loud on the list.
    loud = f'<strong class="tag tag-health">{escape(marked)}</strong>' in day.text
    assert loud is (found == "symptoms")


def test_symptoms_found_after_another_guard_turned_the_visitor_away_are_recorded(
    today, make_client, db
):
    """Guard B turns María away (late) while guard A asks her the health questions: her cough
    is recorded and the family advised; B's reason stands, and A is told it."""
    client, _, visitor_id = today
    make_staff(db, "guardia.dos", StaffRole.GUARD)
    other = make_client()
    assert sign_in(other, "guardia.dos").status_code == 303
    assert gate_post(other, f"/visitors/{visitor_id}/turn-away", reason="late").status_code == 303
    answer = _screen(client, visitor_id, cough="1")
    assert answer.status_code == 200
    assert _outcomes(db, Stage.GATE) == {"María": Outcome.REFER}
    assert len(_advice(db)) == 1
    with db.read_session() as s:
        check = s.get(GateCheck, visitor_id)
        assert (check.reason, check.by) == (TurnAwayReason.LATE, "staff:guardia.dos")
        at = check.at.astimezone(prison_by_code(s, "QUENCORO").tz).strftime("%H:%M")
    with use_locale("es"):
        told = " ".join(
            [
                gettext(
                    "Turned away by %(guard)s at %(time)s (%(reason)s).",
                    {"guard": "guardia.dos", "time": at, "reason": gettext("Came too late")},
                ),
                gettext("The answers were recorded."),
            ]
        )
    assert told in text(answer)


@pytest.mark.parametrize(
    ("step", "fields", "was"),
    [("arrived", {}, "arrived"), ("turn-away", {"reason": "late"}, "turned_away")],
)
def test_a_record_undone_after_symptoms_were_found_leaves_the_visitor_turned_away(
    today, make_client, db, step, fields, was
):
    """Guard B let María in (or turned her away as late) while guard A asked her the health
    questions, and A found a cough; B's record was a mistake and is undone: María is turned
    away for health (the answers would have done it), her symptoms stay recorded, and nobody
    of the booking is in."""
    client, _, visitor_id = today
    make_staff(db, "guardia.dos", StaffRole.GUARD)
    other = make_client()
    assert sign_in(other, "guardia.dos").status_code == 303
    assert gate_post(other, f"/visitors/{visitor_id}/{step}", **fields).status_code == 303
    assert _screen(client, visitor_id, cough="1").status_code == 200
    undo = f"/staff/p/QUENCORO/visitors/{visitor_id}/undo"
    shown = gate_form(other.get("/staff/p/QUENCORO/day").text, undo)
    assert shown["was"] == was
    assert other.post(undo, data=shown, follow_redirects=False).status_code == 303
    with db.read_session() as s:
        check = s.get(GateCheck, visitor_id)
        assert (check.status, check.reason) == (GateStatus.TURNED_AWAY, TurnAwayReason.HEALTH)
        assert s.scalar(select(Booking.status)) is BookingStatus.CONFIRMED
    assert _outcomes(db, Stage.GATE) == {"María": Outcome.REFER}
    day = client.get("/staff/p/QUENCORO/day").text
    assert f'action="/staff/p/QUENCORO/visitors/{visitor_id}/arrived"' not in day


def test_an_arrival_undone_keeps_the_answers_given_while_it_stood(today, make_client, db):
    """María said she lives with someone with TB (advice, no turn-away) after guard B let her
    in; B's "came in" is undone: she is expected again, and what she answered stays."""
    client, _, visitor_id = today
    make_staff(db, "guardia.dos", StaffRole.GUARD)
    other = make_client()
    assert sign_in(other, "guardia.dos").status_code == 303
    assert gate_post(other, f"/visitors/{visitor_id}/arrived").status_code == 303
    assert _screen(client, visitor_id, lives_with_tb="1").status_code == 200
    undo = f"/staff/p/QUENCORO/visitors/{visitor_id}/undo"
    shown = gate_form(other.get("/staff/p/QUENCORO/day").text, undo)
    assert other.post(undo, data=shown, follow_redirects=False).status_code == 303
    with db.read_session() as s:
        assert s.get(GateCheck, visitor_id) is None
    assert _outcomes(db, Stage.GATE) == {"María": Outcome.ADVISED}
