"""The gate: the day's list and what guards record there, on each database."""

from __future__ import annotations

import csv
import io
import re
import threading
from datetime import date, time, timedelta
from html import escape, unescape

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event, select

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
from tests.staffing import STAFF_PASSWORD, idle_out, make_staff, sign_in, staff_token
from tests.test_pages import text, visible
from visits.audit import AuditEvent
from visits.booking import Booking, BookingStatus, cancel_booking, create_booking, move_booking
from visits.booking_request import Relationship
from visits.closing import ClosureRequest, close
from visits.gate import (
    Actor,
    AgeGroup,
    GateBooking,
    GateCheck,
    GateStatus,
    GateVisitor,
    TurnAwayReason,
    age_group,
    day_list,
    record_arrival,
    record_no_show,
    record_turned_away,
    refused_for_symptoms,
    screen_at_gate,
    undo_gate,
    undo_no_show,
)
from visits.health import AdvisoryKind, HighRisk, Measures, Scope
from visits.i18n import format_day, format_day_with_year, gettext, use_locale
from visits.issuing import AdvisoryDraft, issue, lift
from visits.prison import Prison
from visits.problems import Code, Problem, Rejected, message
from visits.reference import display
from visits.replies import handle_inbound
from visits.rules import age_on
from visits.schedule import Slot
from visits.screening import Answers, Stage, Symptom
from visits.staff import StaffRole
from visits.visitor import DocumentType, Visitor

GUARD = Actor("staff:guardia", "10.1.2.3")
BOOKED_AT = NOW - timedelta(days=3)
TOMORROW = LIMA_TODAY + timedelta(days=1)


@pytest.fixture
def gate_world(db):
    """Two prisons; in TEST, a visit this afternoon (an adult, a child of 6, one of 2) and
    one tomorrow; in OTHER, a visit this afternoon."""
    with db.writing() as s:
        prison = make_prison(s)
        other = make_prison(s, "OTHER")
        make_inmate(s, prison)
        make_inmate(s, other, "O1")
        today = make_slot(s, prison, LIMA_TODAY, start=time(14))
        tomorrow = make_slot(s, prison, TOMORROW, start=time(14))
        elsewhere = make_slot(s, other, LIMA_TODAY, start=time(14))
    family = [
        visitor(),
        visitor("70000006", first_names="Luz", birth_date="2020-06-01", relationship="child"),
        visitor("70000002", first_names="Sol", birth_date="2024-06-01", relationship="child"),
    ]
    refs = {
        "today": _book(db, "TEST", "Q1", today.id, family),
        "tomorrow": _book(db, "TEST", "Q1", tomorrow.id, [visitor("40000077")]),
        "elsewhere": _book(db, "OTHER", "O1", elsewhere.id, [visitor("40000088")]),
    }
    return db, refs


def _book(db, prison_code, inmate_code, slot_id, visitors) -> str:
    from visits.inmate import Inmate

    with db.writing() as s:
        prison = s.scalar(select(Prison).where(Prison.code == prison_code))
        inmate = s.scalar(select(Inmate).where(Inmate.code == inmate_code))
        booked = create_booking(
            s,
            prison=prison,
            inmate=inmate,
            request=request_for(slot_id, *visitors),
            now=BOOKED_AT,
            secret_key="k",
            sms_policy=SMS,
        )
        return booked.booking.reference


def _prison(s, code="TEST") -> Prison:
    return s.scalar(select(Prison).where(Prison.code == code))


def _undo(s, visitor_id: int, **shown: str):
    """The guard undoes what the list ``shown`` for a visitor of TEST, at NOW."""
    return undo_gate(
        s, prison=_prison(s), visitor_id=visitor_id, actor=GUARD, now=NOW, sms_policy=SMS, **shown
    )


def _visitor_ids(db, reference) -> list[int]:
    with db.read_session() as s:
        booking = s.scalar(select(Booking).where(Booking.reference == reference))
        return [v.id for v in booking.visitors]


def _status(db, reference) -> BookingStatus:
    with db.read_session() as s:
        return s.scalar(select(Booking.status).where(Booking.reference == reference))


def _day(db, day=LIMA_TODAY):
    with db.read_session() as s:
        return day_list(s, _prison(s), day, NOW)


def test_the_day_list_shows_each_booking_under_its_slot_with_age_groups(gate_world):
    db, refs = gate_world
    [slot] = _day(db)
    assert slot.capacity == 50
    assert slot.seats_taken == 3
    [booking] = slot.bookings
    assert booking.reference == refs["today"]
    assert booking.inmate_code == "Q1"
    assert [v.age_group for v in booking.visitors] == [
        AgeGroup.ADULT,
        AgeGroup.MINOR,
        AgeGroup.UNDER_FIVE,
    ]
    assert [b.reference for s in _day(db, TOMORROW) for b in s.bookings] == [refs["tomorrow"]]


def test_arrival_marks_the_booking_attended_and_is_audited_with_who_and_where(gate_world):
    db, refs = gate_world
    adult, *_ = _visitor_ids(db, refs["today"])
    with db.writing() as s:
        record_arrival(s, prison=_prison(s), visitor_id=adult, actor=GUARD, now=NOW)
    assert _status(db, refs["today"]) is BookingStatus.ATTENDED
    [slot] = _day(db)
    assert slot.bookings[0].visitors[0].gate_status is GateStatus.ARRIVED
    assert slot.bookings[0].visitors[1].gate_status is None
    with db.read_session() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "visitor.arrived"))
        assert event.entity_id == refs["today"]
        assert event.actor == "staff:guardia"
        assert event.origin == "10.1.2.3"
        assert event.details == {"visitor": 1}


def test_turning_away_needs_a_listed_reason_and_a_note_for_other(gate_world):
    db, refs = gate_world
    adult, *_ = _visitor_ids(db, refs["today"])
    cases = [("porque sí", "", Code.INVALID_CHOICE), ("other", "  ", Code.REQUIRED),
             ("late", "x" * 301, Code.TOO_LONG)]  # fmt: skip
    for reason, note, code in cases:
        with pytest.raises(Rejected) as refused, db.writing() as s:
            record_turned_away(
                s, prison=_prison(s), visitor_id=adult, reason=reason, note=note,
                actor=GUARD, now=NOW,
            )  # fmt: skip
        assert refused.value.codes == {code}
    with db.read_session() as s:
        assert s.scalar(select(GateCheck)) is None  # nothing recorded
    with db.writing() as s:
        record_turned_away(
            s, prison=_prison(s), visitor_id=adult, reason="other", note=" olía a alcohol ",
            actor=GUARD, now=NOW,
        )  # fmt: skip
    shown = _day(db)[0].bookings[0].visitors[0]
    assert shown.gate_status is GateStatus.TURNED_AWAY
    assert shown.gate_reason is TurnAwayReason.OTHER
    assert shown.gate_note == "olía a alcohol"
    assert _status(db, refs["today"]) is BookingStatus.CONFIRMED  # nobody came in


def test_undo_returns_a_visitor_to_expected_and_the_booking_to_confirmed(gate_world):
    db, refs = gate_world
    adult, child, _ = _visitor_ids(db, refs["today"])
    with db.writing() as s:
        record_arrival(s, prison=_prison(s), visitor_id=adult, actor=GUARD, now=NOW)
        record_arrival(s, prison=_prison(s), visitor_id=child, actor=GUARD, now=NOW)
    with db.writing() as s:
        _undo(s, visitor_id=adult, was="arrived")
    assert _status(db, refs["today"]) is BookingStatus.ATTENDED  # the child is still in
    with db.writing() as s:
        _undo(s, visitor_id=child, was="arrived")
    assert _status(db, refs["today"]) is BookingStatus.CONFIRMED
    assert all(v.gate_status is None for v in _day(db)[0].bookings[0].visitors)
    with db.read_session() as s:
        undone = s.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "visitor.gate_undone")
        ).all()
    assert [d["was"] for d in undone] == ["arrived", "arrived"]


def test_the_gate_records_only_on_the_visit_day_and_only_its_own_prisons_visitors(gate_world):
    db, refs = gate_world
    [tomorrows] = _visitor_ids(db, refs["tomorrow"])
    [elsewhere] = _visitor_ids(db, refs["elsewhere"])
    with pytest.raises(Rejected) as early, db.writing() as s:
        record_arrival(s, prison=_prison(s), visitor_id=tomorrows, actor=GUARD, now=NOW)
    assert early.value.codes == {Code.NOT_THE_VISIT_DAY}
    with pytest.raises(Rejected) as foreign, db.writing() as s:
        record_arrival(s, prison=_prison(s), visitor_id=elsewhere, actor=GUARD, now=NOW)
    assert foreign.value.codes == {Code.BOOKING_NOT_FOUND}
    with pytest.raises(Rejected) as unknown, db.writing() as s:
        record_arrival(s, prison=_prison(s), visitor_id=999_999, actor=GUARD, now=NOW)
    assert unknown.value.codes == {Code.BOOKING_NOT_FOUND}
    assert _status(db, refs["elsewhere"]) is BookingStatus.CONFIRMED


def test_a_no_show_is_said_after_the_visit_time_and_only_if_nobody_came(gate_world):
    db, refs = gate_world
    with db.read_session() as s:
        booking_id = s.scalar(select(Booking.id).where(Booking.reference == refs["today"]))
        ends_at = s.get(Booking, booking_id).slot.ends_at
    with pytest.raises(Rejected) as early, db.writing() as s:
        record_no_show(s, prison=_prison(s), booking_id=booking_id, actor=GUARD, now=NOW)
    assert early.value.codes == {Code.VISIT_NOT_OVER}
    adult, *_ = _visitor_ids(db, refs["today"])
    with db.writing() as s:
        record_turned_away(
            s, prison=_prison(s), visitor_id=adult, reason="late", note="", actor=GUARD,
            now=NOW,
        )  # fmt: skip
    with pytest.raises(Rejected) as came, db.writing() as s:
        record_no_show(s, prison=_prison(s), booking_id=booking_id, actor=GUARD, now=ends_at)
    assert came.value.codes == {Code.CAME_TO_THE_GATE}
    with db.writing() as s:
        _undo(s, visitor_id=adult, was="turned_away", reason="late")
    with db.writing() as s:
        record_no_show(s, prison=_prison(s), booking_id=booking_id, actor=GUARD, now=ends_at)
    assert _status(db, refs["today"]) is BookingStatus.NO_SHOW
    with pytest.raises(Rejected) as again, db.writing() as s:
        record_arrival(s, prison=_prison(s), visitor_id=adult, actor=GUARD, now=ends_at)
    assert again.value.codes == {Code.BOOKING_NOT_ACTIVE}


@given(
    st.dates(min_value=date(1920, 1, 1), max_value=date(2026, 12, 1)),
    st.dates(min_value=date(2026, 12, 1), max_value=date(2030, 12, 31)),
)
def test_age_groups_follow_completed_years(birth, day):
    group = age_group(birth, day, adult_age=18)
    age = age_on(birth, day)
    expected = AgeGroup.ADULT if age >= 18 else AgeGroup.UNDER_FIVE if age < 5 else AgeGroup.MINOR
    assert group is expected


def test_age_groups_at_their_birthdays():
    assert age_group(date(2021, 12, 1), date(2026, 12, 1), 18) is AgeGroup.MINOR  # 5 today
    assert age_group(date(2021, 12, 2), date(2026, 12, 1), 18) is AgeGroup.UNDER_FIVE
    assert age_group(date(2008, 12, 1), date(2026, 12, 1), 18) is AgeGroup.ADULT  # 18 today
    assert age_group(date(2008, 12, 2), date(2026, 12, 1), 18) is AgeGroup.MINOR


def test_what_one_guard_recorded_another_cannot_overwrite_and_twice_is_once(gate_world):
    db, refs = gate_world
    adult, *_ = _visitor_ids(db, refs["today"])
    for _ in range(2):  # a double click
        with db.writing() as s:
            record_arrival(s, prison=_prison(s), visitor_id=adult, actor=GUARD, now=NOW)
    with pytest.raises(Rejected) as stale, db.writing() as s:  # a page loaded before that
        record_turned_away(
            s, prison=_prison(s), visitor_id=adult, reason="late", note="", actor=GUARD,
            now=NOW,
        )  # fmt: skip
    assert stale.value.codes == {Code.ALREADY_RECORDED}
    assert _day(db)[0].bookings[0].visitors[0].gate_status is GateStatus.ARRIVED
    _, child, _ = _visitor_ids(db, refs["today"])
    with db.writing() as s:
        record_turned_away(
            s, prison=_prison(s), visitor_id=child, reason="other", note="sin zapatos",
            actor=GUARD, now=NOW,
        )  # fmt: skip
    with pytest.raises(Rejected) as other_note, db.writing() as s:  # never silently dropped
        record_turned_away(
            s, prison=_prison(s), visitor_id=child, reason="other", note="otra cosa",
            actor=GUARD, now=NOW,
        )  # fmt: skip
    assert other_note.value.codes == {Code.ALREADY_RECORDED}
    with db.read_session() as s:
        arrivals = s.scalars(select(AuditEvent).where(AuditEvent.action == "visitor.arrived"))
        assert len(arrivals.all()) == 1


def test_two_guards_checking_in_the_same_visitor_at_once_record_it_once(gate_world):
    db, refs = gate_world
    adult, *_ = _visitor_ids(db, refs["today"])
    start = threading.Barrier(2)
    errors = []

    def guard(name: str) -> None:
        try:
            start.wait()
            with db.writing() as s:
                actor = Actor(f"staff:{name}", "10.0.0.1")
                record_arrival(s, prison=_prison(s), visitor_id=adult, actor=actor, now=NOW)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=guard, args=(n,)) for n in ("uno", "dos")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read_session() as s:
        assert len(s.scalars(select(GateCheck)).all()) == 1
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "visitor.arrived"))
        assert len(events.all()) == 1


def test_a_no_show_can_be_said_the_next_day_and_undone(gate_world):
    db, refs = gate_world
    with db.read_session() as s:
        booking_id = s.scalar(select(Booking.id).where(Booking.reference == refs["today"]))
    next_day = NOW + timedelta(days=1)
    with db.writing() as s:
        record_no_show(s, prison=_prison(s), booking_id=booking_id, actor=GUARD, now=next_day)
    assert _status(db, refs["today"]) is BookingStatus.NO_SHOW
    with db.writing() as s:
        undo_no_show(s, prison=_prison(s), booking_id=booking_id, actor=GUARD, now=next_day)
    assert _status(db, refs["today"]) is BookingStatus.CONFIRMED
    [tomorrows] = _visitor_ids(db, refs["tomorrow"])
    with pytest.raises(Rejected) as early, db.writing() as s:  # check-in stays that day only
        record_arrival(s, prison=_prison(s), visitor_id=tomorrows, actor=GUARD, now=NOW)
    assert early.value.codes == {Code.NOT_THE_VISIT_DAY}


def test_a_booking_still_waiting_for_its_code_is_not_checked_in(gate_world):
    db, refs = gate_world
    adult, *_ = _visitor_ids(db, refs["today"])
    with db.writing() as s:
        s.scalar(
            select(Booking).where(Booking.reference == refs["today"])
        ).status = BookingStatus.HELD
    with pytest.raises(Rejected) as held, db.writing() as s:
        record_arrival(s, prison=_prison(s), visitor_id=adult, actor=GUARD, now=NOW)
    assert held.value.codes == {Code.BOOKING_NOT_ACTIVE}


def test_a_visit_the_gate_recorded_stays_on_its_day_but_can_still_be_cancelled(gate_world):
    """Turned away this morning, for a visit this afternoon: staff cannot move it to another
    day (its gate record would move too), but can cancel it, which gives its seats back."""
    db, refs = gate_world
    adult, *_ = _visitor_ids(db, refs["today"])
    with db.writing() as s:
        record_turned_away(
            s, prison=_prison(s), visitor_id=adult, reason="no_document", note="", actor=GUARD,
            now=NOW,
        )  # fmt: skip
    with db.read_session() as s:
        tomorrow = s.scalar(select(Booking.slot_id).where(Booking.reference == refs["tomorrow"]))
    with pytest.raises(Rejected) as refused, db.writing() as s:
        move_booking(
            s, s.scalar(select(Booking).where(Booking.reference == refs["today"])),
            slot_id=tomorrow, now=NOW, actor="staff:guardia", sms_policy=SMS, reason="Otro día",
        )  # fmt: skip
    assert refused.value.codes == {Code.GATE_RECORDED}
    [today] = _day(db)[0].bookings
    assert today.reference == refs["today"]
    assert today.visitors[0].gate_status is GateStatus.TURNED_AWAY
    assert [b.reference for slot in _day(db, TOMORROW) for b in slot.bookings] == [refs["tomorrow"]]
    with db.writing() as s:
        cancel_booking(
            s, s.scalar(select(Booking).where(Booking.reference == refs["today"])), now=NOW,
            actor="staff:guardia", sms_policy=SMS, reason="Sin documento, no vuelven hoy",
        )  # fmt: skip
    assert _status(db, refs["today"]) is BookingStatus.CANCELLED
    assert _day(db)[0].seats_taken == 0


# --- The day a visitor came ------------------------------------------------------------------


@pytest.fixture
def same_day(db):
    """A prison taking bookings up to an hour before a visit: María (adult) and Luz (6) booked
    for 14:00 today, a visit at 16:00 today and one tomorrow, and another prison open today."""
    with db.writing() as s:
        prison = make_prison(s, booking_closes_hours=1)
        other = make_prison(s, "OTHER", booking_closes_hours=1)
        make_inmate(s, prison)
        make_inmate(s, other, "O1")
        slots = {
            "14:00": make_slot(s, prison, LIMA_TODAY, start=time(14)).id,
            "16:00": make_slot(s, prison, LIMA_TODAY, start=time(16)).id,
            "tomorrow": make_slot(s, prison, TOMORROW, start=time(14)).id,
            "elsewhere": make_slot(s, other, LIMA_TODAY, start=time(15)).id,
        }
    family = [visitor(), visitor("70000006", first_names="Luz", birth_date="2020-06-01")]
    return db, slots, _book(db, "TEST", "Q1", slots["14:00"], family)


def _booking(s, reference) -> Booking:
    return s.scalar(select(Booking).where(Booking.reference == reference))


def _cancel_as(s, how: str, reference: str) -> None:
    """Cancel the booking the way ``how`` says: each path that cancels one."""
    booking = _booking(s, reference)
    if how == "family":
        cancel_booking(s, booking, now=NOW, actor="family", sms_policy=SMS)
    elif how == "staff":
        cancel_booking(
            s, booking, now=NOW, actor="staff:guardia", sms_policy=SMS, reason="Llamó la familia"
        )
    elif how == "closure":
        request = ClosureRequest(LIMA_TODAY, time(14), "Requisa")
        close(s, _prison(s), request, now=NOW, actor="staff:admin", origin="", sms_policy=SMS)
    else:  # a health measure pausing the person's visits from today
        draft = AdvisoryDraft(
            scope=Scope.INMATE, kind=AdvisoryKind.TB_RESISTANT, inmate_code="Q1",
            measures=Measures(suspended=True), starts_on=LIMA_TODAY,
        )  # fmt: skip
        issue(s, _prison(s), draft, now=NOW, actor="staff:salud", origin="", sms_policy=SMS)
    assert booking.status is BookingStatus.CANCELLED


def _book_now(db, slot_id, *visitors, prison="TEST", inmate="Q1") -> str:
    from visits.inmate import Inmate

    with db.writing() as s:
        whom = s.scalar(select(Inmate).where(Inmate.code == inmate))
        booked = create_booking(
            s, prison=_prison(s, prison), inmate=whom, request=request_for(slot_id, *visitors),
            now=NOW, secret_key="k", sms_policy=SMS,
        )  # fmt: skip
        return booked.booking.reference


@pytest.mark.parametrize("how", ["family", "staff", "closure", "health"])
def test_a_visitor_turned_away_keeps_the_day_when_the_booking_is_then_cancelled(same_day, how):
    """Turned away at 10:00 for a 14:00 visit: cancelling gives the places back, but María
    cannot book 16:00 (nor another prison) that day; Luz, whom the gate never saw, can."""
    db, slots, reference = same_day
    maria, luz = _visitor_ids(db, reference)
    with db.writing() as s:
        record_turned_away(
            s, prison=_prison(s), visitor_id=maria, reason="health", note="", actor=GUARD,
            now=NOW,
        )  # fmt: skip
    with db.writing() as s:
        _cancel_as(s, how, reference)
    with db.read_session() as s:
        assert s.get(Slot, slots["14:00"]).seats_taken == 0  # the places came back
        assert {v.id: v.active for v in _booking(s, reference).visitors} == {
            maria: True,  # the day stays hers
            luz: False,
        }
    for slot_id, prison, inmate in (
        (slots["16:00"], "TEST", "Q1"),
        (slots["elsewhere"], "OTHER", "O1"),
    ):
        with pytest.raises(Rejected) as refused:
            _book_now(db, slot_id, visitor(), prison=prison, inmate=inmate)
        [problem] = [p for p in refused.value.problems if p.field == "visitors.0.doc_number"]
        assert (problem.code, problem.field) == (
            Code.VISITOR_CAME_THAT_DAY,
            "visitors.0.doc_number",
        )
        with use_locale("en"):
            assert message(problem) == (
                "María Quispe Huamán already came to a visit that day, and each person can visit "
                "once a day. Please choose another day."
            )
    if how != "health":  # (visits to Q1 are paused from today under that measure)
        assert _book_now(db, slots["tomorrow"], visitor())  # another day is hers to book
        adult = visitor("40000077", first_names="Rosa")
        luz_again = visitor("70000006", first_names="Luz", birth_date="2020-06-01")
        assert _book_now(db, slots["16:00"], adult, luz_again)


@pytest.mark.parametrize("how", ["family", "staff", "closure", "health"])
def test_a_turn_away_under_a_booking_cancelled_since_is_not_undone_and_says_why(same_day, how):
    """Turned away at 10:00, then the booking cancelled: the guard's undo is refused in words
    that say the booking was cancelled after the gate recorded María, and nothing changes (the
    booking stays cancelled, the record and the day stay hers); a second click says the same.
    Luz, whom the gate never saw, has nothing to undo."""
    db, slots, reference = same_day
    maria, luz = _visitor_ids(db, reference)
    with db.writing() as s:
        record_turned_away(
            s, prison=_prison(s), visitor_id=maria, reason="late", note="", actor=GUARD, now=NOW
        )
    with db.writing() as s:
        _cancel_as(s, how, reference)
    for _ in range(2):
        with pytest.raises(Rejected) as refused, db.writing() as s:
            _undo(s, visitor_id=maria, was="turned_away", reason="late")
        [problem] = refused.value.problems
        assert problem.code is Code.GATE_BOOKING_CANCELLED
        with use_locale("en"):
            assert message(problem, "gate") == (
                "The booking of María Quispe Huamán was cancelled after the gate recorded them: "
                "the gate's record stays with the cancelled booking (that day still counts as "
                "their visit), and nothing was undone."
            )
    assert _status(db, reference) is BookingStatus.CANCELLED
    assert _gate_check(db, maria).status is GateStatus.TURNED_AWAY
    with db.read_session() as s:
        assert s.get(Slot, slots["14:00"]).seats_taken == 0
        assert {v.id: v.active for v in _booking(s, reference).visitors} == {
            maria: True,
            luz: False,
        }
        undone = select(AuditEvent).where(AuditEvent.action == "visitor.gate_undone")
        assert s.scalars(undone).all() == []
    with db.writing() as s:  # nothing recorded for Luz: nothing to undo, as asked
        _undo(s, visitor_id=luz, was="turned_away")


def test_a_cancelled_visit_the_gate_never_saw_frees_the_day(same_day):
    """Recorded then undone, the gate's mistake leaves nothing: the day is free again."""
    db, slots, reference = same_day
    maria, _ = _visitor_ids(db, reference)
    with db.writing() as s:
        record_turned_away(
            s, prison=_prison(s), visitor_id=maria, reason="late", note="", actor=GUARD, now=NOW
        )
    with db.writing() as s:
        _undo(s, visitor_id=maria, was="turned_away", reason="late")
    with db.writing() as s:
        _cancel_as(s, "family", reference)
    assert _book_now(db, slots["16:00"], visitor())


def test_a_visit_of_a_visitor_turned_away_that_day_is_not_moved_onto_it(same_day):
    """María's visit of tomorrow cannot be moved to 16:00 today: she already came today."""
    db, slots, reference = same_day
    maria, _ = _visitor_ids(db, reference)
    tomorrows = _book_now(db, slots["tomorrow"], visitor())
    with db.writing() as s:
        record_turned_away(
            s, prison=_prison(s), visitor_id=maria, reason="no_document", note="", actor=GUARD,
            now=NOW,
        )  # fmt: skip
    with pytest.raises(Rejected) as refused, db.writing() as s:
        move_booking(
            s, _booking(s, tomorrows), slot_id=slots["16:00"], now=NOW, actor="family",
            sms_policy=SMS,
        )  # fmt: skip
    assert refused.value.codes == {Code.VISITOR_CAME_THAT_DAY}
    with db.writing() as s:
        _cancel_as(s, "family", reference)
    with pytest.raises(Rejected) as still, db.writing() as s:
        move_booking(
            s, _booking(s, tomorrows), slot_id=slots["16:00"], now=NOW, actor="family",
            sms_policy=SMS,
        )  # fmt: skip
    assert still.value.codes == {Code.VISITOR_CAME_THAT_DAY}


# --- At the gate, in the browser ---------------------------------------------------------------


@pytest.fixture
def guards(make_client, db):
    """Two guards of Quencoro (the demo data), each signed in on their own tablet."""
    make_staff(db, "guardia", StaffRole.GUARD)
    make_staff(db, "guardia.dos", StaffRole.GUARD)
    tablets = []
    for name in ("guardia", "guardia.dos"):
        client = make_client()
        sign_in(client, name)
        tablets.append(client)
    return tablets


def _quencoro_visit(
    db,
    day: date,
    start: time,
    hours: float = 2,
    prison: str = "QUENCORO",
    inmate: str = "Q10001",
    party: tuple = (),
) -> tuple[str, int, int]:
    """A Quencoro booking (or ``prison``'s) of one adult (or ``party``) on ``day`` at
    ``start``, made days before: its reference, its id and its (first) visitor's id."""
    from visits.inmate import Inmate

    with db.writing() as s:
        slot = make_slot(s, _prison(s, prison), day, start=start, hours=hours)
        booked = create_booking(
            s, prison=_prison(s, prison),
            inmate=s.scalar(select(Inmate).where(Inmate.code == inmate)),
            request=request_for(slot, *(party or [visitor("46000001")])),
            now=NOW - timedelta(days=5),
            secret_key="test-secret", sms_policy=SMS,
        ).booking  # fmt: skip
        return booked.reference, booked.id, booked.visitors[0].id


def _post(client, path: str, **fields: str):
    data = {"csrf_token": staff_token(client), **fields}
    return client.post(f"/staff/p/QUENCORO{path}", data=data, follow_redirects=False)


def _form(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the page's form that posts to ``action``, as a browser sends them."""
    found = re.search(
        rf'<form method="post" action="{re.escape(action)}"[^>]*>(.*?)</form>', html, re.S
    )
    assert found, f"no form for {action}"
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', found.group(1))
    return {name: unescape(value) for name, value in fields}


def _gate_check(db, visitor_id: int) -> GateCheck | None:
    with db.read_session() as s:
        return s.get(GateCheck, visitor_id)


def test_a_stale_undo_never_erases_what_another_guard_recorded_since(guards, db):
    """Guard B's list shows María turned away; guard A undoes that and lets her in. B's
    "Undo", from the list loaded before, is refused: the arrival stands."""
    a, b = guards
    reference, _, maria = _quencoro_visit(db, LIMA_TODAY, time(14))
    undo = f"/staff/p/QUENCORO/visitors/{maria}/undo"
    assert _post(a, f"/visitors/{maria}/turn-away", reason="late").status_code == 303
    stale = _form(b.get("/staff/p/QUENCORO/day").text, undo)
    recorded = stale.pop("recorded_at")
    assert stale == {"csrf_token": staff_token(b), "was": "turned_away", "reason": "late"}
    stale["recorded_at"] = recorded
    shown_to_a = _form(a.get("/staff/p/QUENCORO/day").text, undo)
    assert a.post(undo, data=shown_to_a, follow_redirects=False).status_code == 303
    assert _post(a, f"/visitors/{maria}/arrived").status_code == 303
    refused = b.post(undo, data=stale, follow_redirects=False)
    assert refused.status_code == 409
    with use_locale("es"):
        told = message(Problem(Code.GATE_RECORD_CHANGED, None, {"name": "María Quispe Huamán"}))
    assert told in text(refused)
    assert _gate_check(db, maria).status is GateStatus.ARRIVED
    assert _status(db, reference) is BookingStatus.ATTENDED
    # What B sees now is what B may undo; a second click of it finds nothing left to undo.
    current = _form(b.get("/staff/p/QUENCORO/day").text, undo)
    assert current["was"] == "arrived"
    for _ in range(2):
        assert b.post(undo, data=current, follow_redirects=False).status_code == 303
    assert _gate_check(db, maria) is None
    assert _status(db, reference) is BookingStatus.CONFIRMED


def test_a_stale_undo_never_erases_the_same_record_made_again_since(guards, db):
    """Guard B's list shows María turned away for symptoms; guard A undoes that and turns her
    away again for the same reason a minute later. B's "Undo", from the list loaded before,
    says the same words as the record now standing, and is still refused: clearing it would
    let a person with TB symptoms in."""
    a, b = guards
    reference, _, maria = _quencoro_visit(db, LIMA_TODAY, time(14))
    undo = f"/staff/p/QUENCORO/visitors/{maria}/undo"
    assert _post(a, f"/visitors/{maria}/turn-away", reason="late").status_code == 303
    stale = _form(b.get("/staff/p/QUENCORO/day").text, undo)
    assert a.post(undo, data=_form(a.get("/staff/p/QUENCORO/day").text, undo)).status_code == 200
    a.app.state.clock = lambda: NOW + timedelta(minutes=1)
    assert _post(a, f"/visitors/{maria}/turn-away", reason="late").status_code == 303
    again = _gate_check(db, maria)
    refused = b.post(undo, data=stale, follow_redirects=False)
    assert refused.status_code == 409
    assert _gate_check(db, maria) is not None
    assert _gate_check(db, maria).at == again.at
    # Without the time of the record it names, an undo is refused too (a page from before).
    del stale["recorded_at"]
    assert b.post(undo, data=stale, follow_redirects=False).status_code == 409
    assert _gate_check(db, maria) is not None
    # The list as it stands now undoes it.
    current = _form(b.get("/staff/p/QUENCORO/day").text, undo)
    assert b.post(undo, data=current, follow_redirects=False).status_code == 303
    assert _gate_check(db, maria) is None
    assert _status(db, reference) is BookingStatus.CONFIRMED


def test_an_undo_that_does_not_say_what_it_undoes_is_refused(gate_world):
    db, refs = gate_world
    adult, child, _ = _visitor_ids(db, refs["today"])
    with db.writing() as s:
        record_turned_away(
            s, prison=_prison(s), visitor_id=adult, reason="other", note="olía a alcohol",
            actor=GUARD, now=NOW,
        )  # fmt: skip
        record_arrival(s, prison=_prison(s), visitor_id=child, actor=GUARD, now=NOW)
    shown = {"was": "turned_away", "reason": "other", "note": "olía a alcohol"}
    for wrong in (
        {},  # an old page's form
        {**shown, "was": "arrived"},
        {**shown, "reason": "late"},
        {**shown, "reason": "no such reason"},
        {**shown, "note": "otra cosa"},
    ):
        with pytest.raises(Rejected) as refused, db.writing() as s:
            _undo(s, visitor_id=adult, **{"was": "", **wrong})
        assert refused.value.codes == {Code.GATE_RECORD_CHANGED}, wrong
    with pytest.raises(Rejected), db.writing() as s:
        _undo(s, visitor_id=child, was="turned_away")
    assert {v.gate_status for v in _day(db)[0].bookings[0].visitors} == {
        GateStatus.TURNED_AWAY,
        GateStatus.ARRIVED,
        None,
    }
    with db.writing() as s:  # the note as a browser sends it back, line breaks and all
        _undo(s, visitor_id=adult, **{**shown, "note": "olía a alcohol\r\n"})
    assert _day(db)[0].bookings[0].visitors[0].gate_status is None


def test_nobody_came_and_its_undo_said_twice_are_done_once(gate_world):
    db, refs = gate_world
    with db.read_session() as s:
        booking_id = s.scalar(select(Booking.id).where(Booking.reference == refs["today"]))
    next_day = NOW + timedelta(days=1)
    for step, status in ((record_no_show, BookingStatus.NO_SHOW),
                         (undo_no_show, BookingStatus.CONFIRMED)):  # fmt: skip
        for _ in range(2):  # a double click, or two guards
            with db.writing() as s:
                step(s, prison=_prison(s), booking_id=booking_id, actor=GUARD, now=next_day)
            assert _status(db, refs["today"]) is status
    with db.read_session() as s:
        said = s.scalars(select(AuditEvent.action).where(AuditEvent.action.like("booking.no_%")))
        assert said.all() == ["booking.no_show", "booking.no_show_undone"]


def test_nobody_came_on_a_past_days_list_repeats_quietly_and_is_refused_on_that_list(guards, db):
    a, b = guards
    yesterday = LIMA_TODAY - timedelta(days=1)
    reference, booking_id, maria = _quencoro_visit(db, yesterday, time(14))
    path = f"/bookings/{booking_id}/no-show"
    back = f"/staff/p/QUENCORO/day?date={yesterday}#b-{reference}"
    for guard in (a, a, b):  # a double click, and a second guard's list loaded before
        answer = _post(guard, path)
        assert (answer.status_code, answer.headers["location"]) == (303, back)
    assert _status(db, reference) is BookingStatus.NO_SHOW
    for guard in (a, a, b):
        answer = _post(guard, f"{path}/undo")
        assert (answer.status_code, answer.headers["location"]) == (303, back)
    assert _status(db, reference) is BookingStatus.CONFIRMED
    with db.writing() as s:  # someone of it had come yesterday after all
        record_turned_away(
            s, prison=_prison(s, "QUENCORO"), visitor_id=maria, reason="late", note="",
            actor=GUARD, now=NOW - timedelta(days=1),
        )  # fmt: skip
    refused = _post(b, path)
    assert refused.status_code == 409
    with use_locale("es"):
        assert message(Problem(Code.CAME_TO_THE_GATE), "gate") in text(refused)
    assert f'id="b-{reference}"' in refused.text  # on yesterday's list, not today's
    assert f'name="date" value="{yesterday}"' in refused.text
    assert _status(db, reference) is BookingStatus.CONFIRMED


def test_a_step_on_a_cancelled_booking_is_refused_in_the_guards_words_on_its_days_list(guards, db):
    a, _ = guards
    yesterday = LIMA_TODAY - timedelta(days=1)
    _, booking_id, _ = _quencoro_visit(db, yesterday, time(14))
    with db.writing() as s:
        booking = s.get(Booking, booking_id)
        booking.status = BookingStatus.CANCELLED  # as a closure of yesterday would have left it
    refused = _post(a, f"/bookings/{booking_id}/no-show")
    assert refused.status_code == 409
    problem = Problem(Code.BOOKING_NOT_ACTIVE)
    with use_locale("es"):
        told = message(problem, "gate")
        assert told != message(problem)  # not the family's "cancelled or already over"
    assert told in text(refused)
    assert f'name="date" value="{yesterday}"' in refused.text


def test_an_undo_from_a_list_loaded_before_the_booking_was_cancelled_says_so(guards, db):
    """The family cancels after María was turned away; the guard's "Deshacer", from the list
    loaded before, answers on that day's list why nothing was undone (not "look at the list
    again": a cancelled booking is no longer listed)."""
    a, _ = guards
    reference, _, maria = _quencoro_visit(db, LIMA_TODAY, time(14))
    undo = f"/staff/p/QUENCORO/visitors/{maria}/undo"
    assert _post(a, f"/visitors/{maria}/turn-away", reason="late").status_code == 303
    shown = _form(a.get("/staff/p/QUENCORO/day").text, undo)
    with db.writing() as s:
        cancel_booking(s, _booking(s, reference), now=NOW, actor="family", sms_policy=SMS)
    refused = a.post(f"{undo}?lang=en", data=shown, follow_redirects=False)
    assert refused.status_code == 409
    page = text(refused)
    assert "was cancelled after the gate recorded them" in page
    assert "nothing was undone" in page
    assert "Look at the list again" not in page
    assert f'name="date" value="{LIMA_TODAY}"' in refused.text
    assert _gate_check(db, maria).status is GateStatus.TURNED_AWAY
    assert _status(db, reference) is BookingStatus.CANCELLED


def test_a_visitor_asked_the_health_questions_at_the_gate_came_so_nobody_came_is_refused(
    gate_world,
):
    """María answered the questions at the gate (no symptoms) and was not marked let in yet:
    someone came, and the list offers no "nobody came"."""
    db, refs = gate_world
    adult, *_ = _visitor_ids(db, refs["today"])
    with db.read_session() as s:
        booking_id = s.scalar(select(Booking.id).where(Booking.reference == refs["today"]))
        ends_at = s.get(Booking, booking_id).slot.ends_at
    with db.writing() as s:
        screened = screen_at_gate(
            s, prison=_prison(s), visitor_id=adult, answers=Answers(), actor=GUARD, now=NOW,
            sms_policy=SMS,
        )  # fmt: skip
        assert screened.let_in
    with pytest.raises(Rejected) as refused, db.writing() as s:
        record_no_show(s, prison=_prison(s), booking_id=booking_id, actor=GUARD, now=ends_at)
    [problem] = refused.value.problems
    assert problem.code is Code.SCREENED_AT_THE_GATE
    with use_locale("en"):
        assert message(problem, "gate").startswith("María Quispe Huamán answered the health")
    assert _status(db, refs["today"]) is BookingStatus.CONFIRMED
    assert _day(db)[0].bookings[0].at_the_gate


@pytest.mark.parametrize("why", ["screened", "paused"])
def test_the_list_offers_no_nobody_came_for_a_booking_someone_came_to_or_nobody_could(
    guards, db, why
):
    """María answered the health questions at the gate (she came); or visits to Q10001
    were paused once its 07:00 visit had begun, so nobody of it could come in: neither is a
    no-show (the reports would count a visit a measure called off as one nobody came to)."""
    a, _ = guards
    reference, booking_id, maria = _quencoro_visit(db, LIMA_TODAY, time(7), hours=1)  # over
    no_show = f"/staff/p/QUENCORO/bookings/{booking_id}/no-show"
    assert f'action="{no_show}"' in a.get("/staff/p/QUENCORO/day").text
    if why == "screened":
        assert _post(a, f"/visitors/{maria}/screening").status_code == 303  # no symptoms
        problem = Problem(Code.SCREENED_AT_THE_GATE, None, {"name": "María Quispe Huamán"})
    else:
        with db.writing() as s:
            _measure_q1(s, Measures(suspended=True))
        problem = Problem(Code.NOBODY_MAY_COME_IN)
    page = a.get("/staff/p/QUENCORO/day")
    assert f'id="b-{reference}"' in page.text
    assert f'action="{no_show}"' not in page.text
    refused = _post(a, f"/bookings/{booking_id}/no-show")  # from a list loaded before
    assert refused.status_code == 409
    with use_locale("es"):
        assert message(problem, "gate") in text(refused)
    assert _status(db, reference) is BookingStatus.CONFIRMED


def test_a_gate_form_opened_from_a_stale_list_says_nobody_came_and_offers_no_save(guards, db):
    """Guard B marks María's booking "nobody came"; guard A, on a list loaded before, opens
    her turn-away and health questions: each says what the booking is now, who made it so
    and when, and offers no save the gate would refuse."""
    a, b = guards
    reference, booking_id, maria = _quencoro_visit(db, LIMA_TODAY, time(7), hours=1)  # over
    assert _post(b, f"/bookings/{booking_id}/no-show").status_code == 303
    with db.read_session() as s:
        at = s.scalar(select(AuditEvent.at).where(AuditEvent.action == "booking.no_show"))
        at = at.astimezone(_prison(s, "QUENCORO").tz)
    with use_locale("es"):
        said = gettext(
            "This booking is now “%(status)s”: %(guard)s marked it on %(day)s at %(time)s.",
            {"status": gettext("Did not come"), "guard": "guardia.dos",
             "day": format_day_with_year(at.date()), "time": at.strftime("%H:%M")},
        )  # fmt: skip
    for form in ("turn-away", "screening"):
        page = a.get(f"/staff/p/QUENCORO/visitors/{maria}/{form}")
        assert page.status_code == 200
        assert said in text(page)
        assert f'action="/staff/p/QUENCORO/visitors/{maria}/{form}"' not in page.text
        assert 'type="submit"' not in page.text.split("<main", 1)[-1]
    assert _status(db, reference) is BookingStatus.NO_SHOW


def test_a_gate_form_opened_after_another_guard_let_the_visitor_in_says_so(guards, db):
    """Guard B lets María in; guard A opens her turn-away: it says who let her in and when,
    and offers no save (undo first, on the list). Her health questions say so too, and are
    still offered: answers found then are recorded all the same (screen_at_gate)."""
    a, b = guards
    _, _, maria = _quencoro_visit(db, LIMA_TODAY, time(14))
    assert _post(b, f"/visitors/{maria}/arrived").status_code == 303
    at = _gate_check(db, maria).at
    with db.read_session() as s:
        at = at.astimezone(_prison(s, "QUENCORO").tz).strftime("%H:%M")
    with use_locale("es"):
        said = gettext(
            "Let in by %(guard)s at %(time)s: %(name)s is inside.",
            {"guard": "guardia.dos", "time": at, "name": "María Quispe Huamán"},
        )
    turn_away = a.get(f"/staff/p/QUENCORO/visitors/{maria}/turn-away")
    assert said in text(turn_away)
    assert f'action="/staff/p/QUENCORO/visitors/{maria}/turn-away"' not in turn_away.text
    questions = a.get(f"/staff/p/QUENCORO/visitors/{maria}/screening")
    assert said in text(questions)
    assert f'action="/staff/p/QUENCORO/visitors/{maria}/screening"' in questions.text


def test_a_screening_at_the_gate_stays_on_its_day_when_the_booking_is_moved(gate_world):
    """Asked at the gate this morning (no symptoms), then moved by staff to tomorrow: nobody
    came tomorrow can be said, and tomorrow's list shows no answer given at its gate."""
    db, refs = gate_world
    adult, *_ = _visitor_ids(db, refs["today"])
    with db.writing() as s:
        screen_at_gate(
            s, prison=_prison(s), visitor_id=adult, answers=Answers(), actor=GUARD, now=NOW,
            sms_policy=SMS,
        )  # fmt: skip
    with db.writing() as s:
        tomorrow = s.scalar(select(Booking.slot_id).where(Booking.reference == refs["tomorrow"]))
        moved = move_booking(
            s, s.scalar(select(Booking).where(Booking.reference == refs["today"])),
            slot_id=tomorrow, now=NOW, actor="staff:guardia", sms_policy=SMS, reason="Otro día",
        )  # fmt: skip
        booking_id, ends_at = moved.id, moved.slot.ends_at
    [listed] = [b for slot in _day(db, TOMORROW) for b in slot.bookings if b.id == booking_id]
    assert not listed.at_the_gate
    assert Stage.GATE not in listed.visitors[0].screened
    with db.writing() as s:
        record_no_show(s, prison=_prison(s), booking_id=booking_id, actor=GUARD, now=ends_at)
    assert _status(db, refs["today"]) is BookingStatus.NO_SHOW


def test_the_turn_away_form_opens_with_no_reason_chosen_and_refuses_none(guards, db):
    a, _ = guards
    _, _, maria = _quencoro_visit(db, LIMA_TODAY, time(14))
    form = a.get(f"/staff/p/QUENCORO/visitors/{maria}/turn-away")
    options = re.findall(r"<option [^>]*>[^<]*</option>", form.text)
    assert options[0].startswith('<option value="" selected>')  # "Choose the reason"
    assert all(" selected" not in option for option in options[1:])
    note = "Llegó sin nada, dice que <vuelve> luego"
    refused = _post(a, f"/visitors/{maria}/turn-away", reason="", note=note)
    assert refused.status_code == 422
    with use_locale("es"):
        told = message(Problem(Code.INVALID_CHOICE, "reason"), "gate")
    assert re.search(
        rf'<p class="field-error" id="reason-error">.*{re.escape(told)}</p>', refused.text
    )
    assert 'aria-invalid="true"' in refused.text
    assert f">{escape(note)}</textarea>" in refused.text  # what they typed is kept
    assert re.findall(r"<option [^>]*>", refused.text)[0] == '<option value="" selected>'
    assert _gate_check(db, maria) is None


def _note_shown(html: str) -> str:
    found = re.search(r'<textarea id="note"[^>]*>([^<]*)</textarea>', html)
    assert found, "no note field"
    return unescape(found.group(1))


def test_a_turn_away_sent_after_the_session_ended_comes_back_filled_after_signing_in(guards, db):
    """The guard's session ended while they typed the note: the form saved nothing, and the
    sign-in page carries the reason and note (hidden fields, never the address nor the old
    token) back to the form, filled in, saving nothing until the guard sends it again."""
    a, _ = guards
    _, _, maria = _quencoro_visit(db, LIMA_TODAY, time(14))
    page = f"/staff/p/QUENCORO/visitors/{maria}/turn-away"
    token = staff_token(a)
    idle_out(db)
    note = 'Trajo un celular "escondido" <b>&</b> se fue'
    sent = a.post(
        page,
        data={"csrf_token": token, "reason": "other", "note": note},
        headers={"Referer": f"http://testserver{page}"},
        follow_redirects=False,
    )
    assert sent.status_code == 401
    assert _gate_check(db, maria) is None
    assert "<b>" not in sent.text
    carried = _form(sent.text, "/staff/login")
    assert carried["next"] == page
    assert carried["kept.reason"] == "other"
    assert carried["kept.note"] == note
    assert not any(token in value for value in carried.values())  # the old token stays out
    wrong = a.post(
        "/staff/login",
        data={**carried, "username": "guardia", "password": "not-it"},
        follow_redirects=False,
    )
    assert wrong.status_code == 401
    assert _form(wrong.text, "/staff/login")["kept.note"] == note  # still carried
    signed = a.post(
        "/staff/login",
        data={**carried, "username": "guardia", "password": STAFF_PASSWORD},
        follow_redirects=False,
    )
    assert signed.status_code == 303
    assert signed.headers["location"] == page  # nothing typed in the address
    back = a.get(page)
    assert '<option value="other" selected>' in back.text
    assert _note_shown(back.text) == note
    assert "<b>" not in back.text
    assert _gate_check(db, maria) is None  # filled in, not sent: the guard confirms
    assert _note_shown(a.get(page).text) == ""  # then forgotten
    sent_again = _post(a, f"/visitors/{maria}/turn-away", reason="other", note=note)
    assert sent_again.status_code == 303
    assert _gate_check(db, maria).note == note


def test_the_list_says_which_times_are_closed_and_why_reading_the_closures_once(gate_world):
    db, _ = gate_world
    with db.writing() as s:
        make_slot(s, _prison(s), LIMA_TODAY, start=time(9))
        make_slot(s, _prison(s), TOMORROW, start=time(9))
    with db.writing() as s:
        for request in (ClosureRequest(LIMA_TODAY, time(14), "Requisa"),
                        ClosureRequest(TOMORROW, None, "Feriado regional")):  # fmt: skip
            close(s, _prison(s), request, now=NOW, actor="staff:admin", origin="", sms_policy=SMS)
    assert [(slot.closed, len(slot.bookings)) for slot in _day(db)] == [(None, 0), ("Requisa", 0)]
    assert [slot.closed for slot in _day(db, TOMORROW)] == ["Feriado regional"] * 2
    statements = []
    listen = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        for day in (LIMA_TODAY, TOMORROW):
            statements.clear()
            _day(db, day)
            assert len([s for s in statements if "closure" in s]) == 1, day
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)


def test_the_days_page_shows_a_closed_time_as_closed_not_as_without_bookings(guards, db):
    a, _ = guards
    with db.writing() as s:
        prison = _prison(s, "QUENCORO")
        make_slot(s, prison, LIMA_TODAY, start=time(9))
        make_slot(s, prison, LIMA_TODAY, start=time(14))
    _quencoro_visit(db, LIMA_TODAY, time(16))
    with db.writing() as s:
        close(
            s, _prison(s, "QUENCORO"), ClosureRequest(LIMA_TODAY, time(14), "Requisa"), now=NOW,
            actor="staff:admin", origin="", sms_policy=SMS,
        )  # fmt: skip
    page = a.get("/staff/p/QUENCORO/day").text
    sections = [
        visible(s) for s in re.findall(r'<section class="gate-slot".*?</section>', page, re.S)
    ]
    with use_locale("es"):
        closed, empty = (
            gettext("Closed: %(reason)s", {"reason": "Requisa"}),
            gettext("No bookings."),
        )
    assert [(closed in s, empty in s) for s in sections] == [
        (False, True),  # 9:00: open, nobody booked
        (True, False),  # 14:00: closed
        (False, False),  # 16:00: open, one booking
    ]


# --- A reference the day's list does not show ---------------------------------------------------


def _search(client, reference: str, day: date = LIMA_TODAY):
    params = {"date": day, "q": display(reference)}
    return client.get("/staff/p/QUENCORO/day", params=params, follow_redirects=False)


def test_a_reference_of_another_day_says_its_day_and_time_and_links_that_days_list(guards, db):
    """A family came on the wrong day: the guard is told which day the booking is for."""
    a, _ = guards
    reference, _, _ = _quencoro_visit(db, TOMORROW, time(7))
    found = _search(a, reference)
    assert found.status_code == 200
    with use_locale("es"):
        day = format_day_with_year(TOMORROW)
        told = gettext(
            "Booking %(reference)s is for %(day)s at %(time)s.",
            {"reference": display(reference), "day": day, "time": "07:00"},
        )
        nothing = gettext("No booking or visitor of this day matches %(query)s.", {"query": ""})
    assert told in text(found)
    assert nothing.split("%")[0].strip() not in text(found)
    assert f'href="/staff/p/QUENCORO/day?date={TOMORROW}#b-{reference}"' in found.text
    assert f'value="{display(reference)}"' in found.text  # what was typed stays in its field
    assert _search(a, reference, TOMORROW).status_code == 303  # on its own day, found


def test_a_reference_cancelled_by_a_health_measure_says_when_and_why(guards, db):
    """A suspension cancelled this afternoon's visit this morning; the family did not see the
    SMS and came anyway: the guard can say so."""
    a, _ = guards
    reference, _, _ = _quencoro_visit(db, LIMA_TODAY, time(16))
    with db.writing() as s:
        draft = AdvisoryDraft(
            scope=Scope.INMATE, kind=AdvisoryKind.TB_RESISTANT, inmate_code="Q10001",
            measures=Measures(suspended=True), starts_on=LIMA_TODAY,
        )  # fmt: skip
        issue(s, _prison(s, "QUENCORO"), draft, now=NOW, actor="staff:salud", origin="",
              sms_policy=SMS)  # fmt: skip
    assert _status(db, reference) is BookingStatus.CANCELLED
    found = _search(a, reference)
    assert found.status_code == 200
    shown = text(found)
    with use_locale("es"):
        today = format_day_with_year(LIMA_TODAY)
        assert (
            gettext(
                "Booking %(reference)s was cancelled on %(day)s at %(time)s.",
                {"reference": display(reference), "day": today, "time": "10:00"},  # NOW in Lima
            )
            in shown
        )
        assert gettext("Cancelled: a health measure pauses visits") in shown
        assert gettext("It was for %(day)s at %(time)s.", {"day": today, "time": "16:00"}) in shown
    assert f'href="/staff/p/QUENCORO/bookings/{reference}"' in found.text


def test_a_reference_of_a_prison_the_guard_does_not_serve_reads_as_no_match(
    guards, make_client, db
):
    """Never another prison's booking, unless the guard serves that prison too."""
    a, _ = guards
    reference, _, _ = _quencoro_visit(db, TOMORROW, time(7), prison="MUJERES-CUSCO",
                                      inmate="M10001")  # fmt: skip
    missing = _search(a, reference)
    assert missing.status_code == 422
    with use_locale("es"):
        nothing = gettext(
            "No booking or visitor of this day matches %(query)s.", {"query": display(reference)}
        )
        day = format_day_with_year(TOMORROW)
    assert nothing in text(missing)
    assert day not in text(missing)
    assert "MUJERES-CUSCO" not in missing.text
    make_staff(db, "guardia.tres", StaffRole.GUARD, ("QUENCORO", "MUJERES-CUSCO"))
    both = make_client()
    sign_in(both, "guardia.tres")
    found = _search(both, reference)
    assert found.status_code == 200
    assert day in text(found)
    assert f'href="/staff/p/MUJERES-CUSCO/day?date={TOMORROW}#b-{reference}"' in found.text


# --- Symptoms found at the gate, on the person's next visits -------------------------------------


def test_a_visitor_turned_away_for_symptoms_is_flagged_on_her_next_visits_list(guards, db):
    """Turned away today with a cough, booked again for tomorrow with no symptoms declared:
    the booking stands (a health policy's call), and tomorrow's list says what the gate saw."""
    a, _ = guards
    _, _, maria = _quencoro_visit(db, LIMA_TODAY, time(14))
    assert _post(a, f"/visitors/{maria}/screening", cough="on").status_code == 200
    with db.writing() as s:
        tomorrow = make_slot(s, _prison(s, "QUENCORO"), TOMORROW, start=time(7)).id
    _book_now(db, tomorrow, visitor("46000001"), prison="QUENCORO", inmate="Q10002")
    page = a.get("/staff/p/QUENCORO/day", params={"date": TOMORROW})
    with use_locale("es"):
        flag = gettext(
            "Turned away at the gate for symptoms on %(day)s", {"day": format_day(LIMA_TODAY)}
        )
    assert flag in text(page)
    assert re.search(
        rf'<strong class="tag tag-health">{re.escape(escape(flag))}</strong>', page.text
    )


def test_a_turn_away_for_symptoms_is_remembered_two_weeks_at_its_own_prison_in_one_read(
    gate_world,
):
    db, refs = gate_world
    adult, *_ = _visitor_ids(db, refs["today"])
    with db.writing() as s:
        screen_at_gate(
            s, prison=_prison(s), visitor_id=adult, actor=GUARD, now=NOW, sms_policy=SMS,
            answers=Answers(symptoms=frozenset({Symptom.COUGH})),
        )  # fmt: skip
        make_inmate(s, _prison(s), "Q2")
        tomorrow = s.scalar(select(Booking.slot_id).where(Booking.reference == refs["tomorrow"]))
        elsewhere = make_slot(s, _prison(s, "OTHER"), TOMORROW + timedelta(days=1)).id
    _book_now(db, tomorrow, visitor(), inmate="Q2")
    _book_now(db, elsewhere, visitor(), prison="OTHER", inmate="O1")
    with db.read_session() as s:
        maria = s.scalar(select(Visitor.id).where(Visitor.doc_number == "45678912"))
        test, other = _prison(s), _prison(s, "OTHER")
        assert refused_for_symptoms(s, test, {maria}, LIMA_TODAY) == {}  # that visit's own
        two_weeks = LIMA_TODAY + timedelta(days=14)
        assert refused_for_symptoms(s, test, {maria}, two_weeks) == {maria: LIMA_TODAY}
        assert refused_for_symptoms(s, test, {maria}, two_weeks + timedelta(days=1)) == {}
        flagged = [
            (v.doc_number, v.refused_for_symptoms)
            for slot in day_list(s, other, TOMORROW + timedelta(days=1), NOW)
            for b in slot.bookings
            for v in b.visitors
        ]
        assert flagged == [("45678912", None)]  # another prison's gate: not shown there
    statements = []
    listen = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        listed = _day(db, TOMORROW)
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)
    flagged = [
        (v.doc_number, v.refused_for_symptoms) for b in listed[0].bookings for v in b.visitors
    ]
    assert flagged == [("40000077", None), ("45678912", LIMA_TODAY)]
    assert len([s for s in statements if "screening" in s]) == 2  # outcomes, turn-aways
    with db.writing() as s:  # a turn-away undone was a mistake: nothing to remember
        _undo(s, adult, was="turned_away", reason="health")
    assert [v.refused_for_symptoms for b in _day(db, TOMORROW)[0].bookings for v in b.visitors] == [
        None,
        None,
    ]


def _measure_q1(s, measures: Measures, prison="QUENCORO", inmate="Q10001"):
    """Health staff set ``measures`` for visits to the inmate from today, at NOW."""
    draft = AdvisoryDraft(
        scope=Scope.INMATE, kind=AdvisoryKind.TB_RESISTANT, inmate_code=inmate,
        measures=measures, starts_on=LIMA_TODAY,
    )  # fmt: skip
    return issue(
        s, _prison(s, prison), draft, now=NOW, actor="staff:salud", origin="", sms_policy=SMS
    )


def _pause_q1(s, prison="TEST", inmate="Q1"):
    """Health staff pause visits to the inmate from today, at NOW."""
    return _measure_q1(s, Measures(suspended=True), prison, inmate)


def _queued(db, kind: str) -> list[str]:
    from notifications.outbox import OutboxMessage

    with db.read_session() as s:
        return list(s.scalars(select(OutboxMessage.subject).where(OutboxMessage.kind == kind)))


def test_a_visit_let_in_before_a_health_pause_is_left_for_the_gate_and_its_undo_cancels_it(
    same_day,
):
    """María came in at 10:00 for the 14:00 visit; then health staff pause visits to Q1. The
    booking is not cancelled (she is inside; no SMS), it is counted apart and the day's list
    tells the guard to stop the visit. The guard then undoes her check-in (a mistake): the
    booking is not left confirmed inside the pause, it is cancelled as the pause would have
    (seats back, the family told), and the family hears when the pause is lifted."""
    db, slots, reference = same_day
    maria, _ = _visitor_ids(db, reference)
    with db.writing() as s:
        record_arrival(s, prison=_prison(s), visitor_id=maria, actor=GUARD, now=NOW)
    with db.writing() as s:
        effect = _pause_q1(s)
        assert effect.cancelled == []
        assert [b.reference for b in effect.at_gate] == [reference]
        advisory_id = effect.advisory.id
        issued = s.scalar(select(AuditEvent).where(AuditEvent.action == "advisory.issued"))
        assert issued.details["at_gate"] == [reference]
    assert _status(db, reference) is BookingStatus.ATTENDED
    assert _queued(db, "health_suspended") == []
    [slot] = [slot for slot in _day(db) if slot.slot_id == slots["14:00"]]
    [listed] = slot.bookings
    assert listed.stop_visit
    with db.writing() as s:
        _undo(s, visitor_id=maria, was="arrived")
    assert _status(db, reference) is BookingStatus.CANCELLED
    assert _queued(db, "health_suspended") == [f"booking:{reference}"]
    with db.read_session() as s:
        assert s.get(Slot, slots["14:00"]).seats_taken == 0
        applied = s.scalar(
            select(AuditEvent).where(AuditEvent.action == "advisory.applied_to_undone")
        )
        assert applied.details["cancelled"] == [reference]
    with db.writing() as s:
        lift(s, advisory_id, _prison(s), now=NOW, actor="staff:salud", origin="", sms_policy=SMS)
    assert _queued(db, "health_reopened") == [f"booking:{reference}"]


def test_an_undone_check_in_outside_any_pause_leaves_the_booking_confirmed(same_day):
    db, _, reference = same_day
    maria, _ = _visitor_ids(db, reference)
    with db.writing() as s:
        record_arrival(s, prison=_prison(s), visitor_id=maria, actor=GUARD, now=NOW)
    with db.writing() as s:
        _undo(s, visitor_id=maria, was="arrived")
    assert _status(db, reference) is BookingStatus.CONFIRMED
    assert _queued(db, "health_suspended") == []


def test_the_gate_list_says_to_stop_a_visit_a_pause_caught_inside_and_its_undo_cancels_it(
    guards, db
):
    a, _ = guards
    reference, _, maria = _quencoro_visit(db, LIMA_TODAY, time(14))
    assert _post(a, f"/visitors/{maria}/arrived").status_code == 303
    with db.writing() as s:
        _pause_q1(s, "QUENCORO", "Q10001")
    page = a.get("/staff/p/QUENCORO/day?lang=en")
    assert "Already inside: visits paused, stop this visit" in text(page)
    undo = f"/staff/p/QUENCORO/visitors/{maria}/undo"
    shown = _form(a.get("/staff/p/QUENCORO/day").text, undo)
    assert a.post(undo, data=shown, follow_redirects=False).status_code == 303
    assert _status(db, reference) is BookingStatus.CANCELLED
    assert _queued(db, "health_suspended") == [f"booking:{reference}"]
    assert f'id="b-{reference}"' not in a.get("/staff/p/QUENCORO/day").text


# --- The day's CSV says what the list says ---------------------------------------------------


def test_each_download_of_a_days_csv_is_recorded_with_who_took_it_and_from_where(guards, db):
    """The file carries names, documents and health tags out of the service for good: the
    audit says which guard took which day's list, when, from where, and how many rows."""
    a, _ = guards
    _quencoro_visit(db, LIMA_TODAY, time(14), party=(visitor("46000001"), visitor("46000002")))
    tomorrow = (LIMA_TODAY + timedelta(days=1)).isoformat()
    assert a.get("/staff/p/QUENCORO/day.csv").status_code == 200
    assert a.get("/staff/p/QUENCORO/day.csv", params={"date": tomorrow}).status_code == 200
    with db.read_session() as s:
        taken = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "prison.day_list_downloaded")
            .order_by(AuditEvent.id)
        ).all()
    assert [(e.entity, e.entity_id, e.actor, e.at, e.origin) for e in taken] == [
        ("prison", "QUENCORO", "staff:guardia", NOW, "testclient")
    ] * 2
    assert [e.details for e in taken] == [
        {"day": LIMA_TODAY.isoformat(), "rows": 2},
        {"day": tomorrow, "rows": 0},
    ]


def test_the_days_csv_says_the_health_tags_and_the_gate_record_the_list_shows(guards, db):
    """Masks and a shorter visit for Q10001; of its three visitors one came in, one was
    turned away with a note a spreadsheet would run, one had symptoms at the gate. The CSV
    says it in the list's words (the note kept as text inside its cell)."""
    a, _ = guards
    family = (visitor("46000001"), visitor("46000002", first_names="Ana"),
              visitor("46000003", first_names="Eva"))  # fmt: skip
    reference, _, _ = _quencoro_visit(db, LIMA_TODAY, time(14), party=family)
    with db.writing() as s:
        _measure_q1(s, Measures(masks=True, visit_minutes=30))
    came, kept_out, coughing = _visitor_ids(db, reference)
    assert _post(a, f"/visitors/{came}/arrived").status_code == 303
    note = '=HYPERLINK("http://x")'
    turned = _post(a, f"/visitors/{kept_out}/turn-away", reason="other", note=note)
    assert turned.status_code == 303
    assert _post(a, f"/visitors/{coughing}/screening", cough="on").status_code == 200
    answer = a.get("/staff/p/QUENCORO/day.csv")
    rows = list(csv.reader(io.StringIO(answer.text.removeprefix("\ufeff"))))
    with use_locale("es"):
        assert rows[0][-2:] == [gettext("Health"), gettext("At the gate")]
    cells = {row[9]: row[-2:] for row in rows[1:]}
    measure = "Mascarilla N95; Máximo 30 min"
    assert cells == {
        "46000001": [measure, "Ingresó"],
        "46000002": [measure, f"Ingreso denegado · Otro motivo: {note}"],
        "46000003": [
            f"{measure}; Preguntas de salud: con síntomas",
            "Ingreso denegado · Medida sanitaria",
        ],
    }
    shown = text(a.get("/staff/p/QUENCORO/day"))
    for health, _ in cells.values():
        assert all(tag in shown for tag in health.split("; "))  # the page's own words


def test_the_list_and_its_csv_say_which_family_confirmed_by_sms_reading_no_more(guards, db):
    """The family of the 14:00 visit answered a reminder "1"; that of the 16:00 one did not.
    The page and the CSV (in the same words, beside the status) say so for the first only,
    with the statements the list read before; once someone of it came in, the gate's record
    says more and the tag goes."""
    a, _ = guards
    coming, _, came_in = _quencoro_visit(db, LIMA_TODAY, time(14))
    statements: list[str] = []
    listen = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        _day_of(db, "QUENCORO")
        before = len(statements)
        with db.writing() as s:  # the booking's phone, its only visit still to come
            handle_inbound(s, provider_sid="SM9", sender="+51987654321", body="1", policy=SMS,
                           now=NOW)  # fmt: skip
        quiet, _, _ = _quencoro_visit(db, LIMA_TODAY, time(16), party=(visitor("46000002"),))
        statements.clear()
        _day_of(db, "QUENCORO")
        assert len(statements) == before  # no statement more for the answer
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)
    with db.read_session() as s:
        answered = s.scalar(select(Booking).where(Booking.reference == coming))
        assert answered.family_confirmed_at is not None
    with use_locale("es"):
        tag = gettext("Family confirmed by SMS")  # "La familia confirmó por SMS"
    rows = list(csv.reader(io.StringIO(a.get("/staff/p/QUENCORO/day.csv").text[1:])))
    by_reference = {display(ref): ref for ref in (coming, quiet)}
    assert {by_reference[row[2]]: row[3] for row in rows[1:]} == {
        coming: f"Confirmada · {tag}",
        quiet: "Confirmada",
    }
    page = a.get("/staff/p/QUENCORO/day").text
    row = re.search(rf'<tr id="b-{coming}"[^>]*>(.*?)</tr>', page, re.S)
    other = re.search(rf'<tr id="b-{quiet}"[^>]*>(.*?)</tr>', page, re.S)
    assert row
    assert other
    assert tag in unescape(row.group(1))
    assert tag not in unescape(other.group(1))
    assert _post(a, f"/visitors/{came_in}/arrived").status_code == 303
    assert tag not in unescape(a.get("/staff/p/QUENCORO/day").text)
    assert tag not in a.get("/staff/p/QUENCORO/day.csv").text


def test_a_moved_visit_is_no_longer_said_confirmed_by_sms(guards, db):
    """The family's "1" answered a reminder of the old time, not of the new one."""
    _, booking_id, _ = _quencoro_visit(db, TOMORROW, time(6, 30), hours=1)
    with db.writing() as s:
        handle_inbound(s, provider_sid="SM8", sender="+51987654321", body="1", policy=SMS,
                       now=NOW)  # fmt: skip
        later = make_slot(s, _prison(s, "QUENCORO"), TOMORROW, start=time(17, 30), hours=1)
    assert _confirmed_by_sms(db, TOMORROW) == [True]
    with db.writing() as s:
        move_booking(s, s.get(Booking, booking_id), slot_id=later.id, now=NOW, actor="family",
                     sms_policy=SMS)  # fmt: skip
    assert _confirmed_by_sms(db, TOMORROW) == [False]


def _confirmed_by_sms(db, day) -> list[bool]:
    return [
        "confirmed_by_sms" in b.booking_tags
        for slot in _day_of(db, "QUENCORO", day)
        for b in slot.bookings
    ]


def _day_of(db, code: str, day=LIMA_TODAY):
    with db.read_session() as s:
        return day_list(s, _prison(s, code), day, NOW)


def test_the_days_csv_says_who_a_paused_visit_keeps_out(guards, db):
    a, _ = guards
    _quencoro_visit(db, LIMA_TODAY, time(7), hours=1)  # begun before the pause: still listed
    with db.writing() as s:
        _measure_q1(s, Measures(suspended=True))
    rows = list(csv.reader(io.StringIO(a.get("/staff/p/QUENCORO/day.csv").text[1:])))
    assert [row[-2:] for row in rows[1:]] == [
        ["Visitas en pausa; No puede ingresar: medida de salud", ""]
    ]


# --- Nobody came, when nobody could ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kept", "nobody"), [((True, True), True), ((True, False), False)], ids=["all", "one"]
)
def test_nobody_may_come_in_only_when_the_measures_keep_every_visitor_out(kept, nobody):
    """Where high-risk visitors are kept away, a booking with someone else in it could have
    come: a no-show is said as usual."""
    listed = GateBooking(1, "ABCD2345", BookingStatus.CONFIRMED, "Q1", "Juan", "A")
    listed.measures = Measures(no_high_risk=True)
    for n, out in enumerate(kept):
        listed.visitors.append(
            GateVisitor(n, "X", DocumentType.DNI, "1", AgeGroup.ADULT, Relationship.CHILD,
                        kept_away=HighRisk.YOUNG_CHILD if out else None)
        )  # fmt: skip
    assert listed.nobody_may_come_in is nobody


def _stop(s, how: str, prison="TEST", inmate="Q1", dni="45678912"):
    """Stop today's 14:00 visit (of ``inmate``, with the visitor ``dni``) the way ``how`` says,
    at NOW; the references it cancelled and those it left for the gate."""
    from visits.suspensions import Actor as By
    from visits.suspensions import suspend_inmate, suspend_visitor

    admin = By("staff:admin", "", NOW)
    if how == "closed":
        request = ClosureRequest(LIMA_TODAY, time(14), "Requisa")
        closed = close(
            s, _prison(s, prison), request, now=NOW, actor="staff:admin", origin="",
            sms_policy=SMS,
        )  # fmt: skip
        return closed.cancelled, closed.at_gate
    if how == "inmate_not_active":
        from tests.test_roster import roster_of
        from visits.roster import import_roster

        file = roster_of(s, _prison(s, prison), {inmate: "transferred"})
        report = import_roster(
            s, _prison(s, prison), file, NOW, sms_policy=SMS, actor="staff:admin"
        )
        return [c.reference for c in report.cancelled], [c.reference for c in report.at_gate]
    if how == "inmate_suspended":
        done = suspend_inmate(
            s, _prison(s, prison), code=inmate, until=LIMA_TODAY, reason="Sanción", by=admin,
            sms_policy=SMS,
        )  # fmt: skip
    else:
        done = suspend_visitor(
            s, _prison(s, prison), doc_type="dni", doc_number=dni, until=LIMA_TODAY,
            reason="Pelea", by=admin, sms_policy=SMS,
        )  # fmt: skip
    return [b.reference for b in done.cancelled], [b.reference for b in done.at_gate]


STOPS = ["closed", "inmate_suspended", "inmate_not_active", "visitor_barred"]


@pytest.mark.parametrize("how", STOPS)
def test_a_visit_let_in_before_a_closure_or_suspension_is_left_for_the_gate_and_its_undo_cancels_it(
    same_day, how
):
    """As for a health pause: María came in at 10:00 for the 14:00 visit, then the time is
    closed, visits to Q1 suspended or María barred. The booking is not cancelled (she is
    inside; no SMS), it is listed apart, and the day's list tells the guard to stop the visit
    and why. Undoing her check-in cancels it with that cause: seats back, the family told."""
    db, slots, reference = same_day
    maria, _ = _visitor_ids(db, reference)
    with db.writing() as s:
        record_arrival(s, prison=_prison(s), visitor_id=maria, actor=GUARD, now=NOW)
    with db.writing() as s:
        assert _stop(s, how) == ([], [reference])
    assert _status(db, reference) is BookingStatus.ATTENDED
    assert _queued(db, how) == []
    [slot] = [slot for slot in _day(db) if slot.slot_id == slots["14:00"]]
    [listed] = slot.bookings
    assert listed.stop_visit == how
    [other] = [slot for slot in _day(db) if slot.slot_id == slots["16:00"]]
    assert other.bookings == []
    with db.writing() as s:
        _undo(s, visitor_id=maria, was="arrived")
    assert _status(db, reference) is BookingStatus.CANCELLED
    assert _queued(db, how) == [f"booking:{reference}"]
    with db.read_session() as s:
        assert s.get(Slot, slots["14:00"]).seats_taken == 0
        cancelled = s.scalar(
            select(AuditEvent).where(AuditEvent.action == f"booking.cancelled_{how}")
        )
        assert cancelled.entity_id == reference


def test_a_visit_not_stopped_is_not_flagged_and_its_undo_leaves_it_confirmed(same_day):
    """A suspension of another inmate, a bar of someone else, a closure of another time:
    María's visit is not flagged, and undoing her check-in leaves it confirmed."""
    db, slots, reference = same_day
    maria, _ = _visitor_ids(db, reference)
    with db.writing() as s:
        record_arrival(s, prison=_prison(s), visitor_id=maria, actor=GUARD, now=NOW)
        make_inmate(s, _prison(s), "Q2")
    _book_now(db, slots["16:00"], visitor("41234567"), inmate="Q2")
    with db.writing() as s:
        _stop(s, "inmate_suspended", inmate="Q2")
        _stop(s, "inmate_not_active", inmate="Q2")
        _stop(s, "visitor_barred", dni="41234567")
        request = ClosureRequest(LIMA_TODAY, time(16), "Requisa")
        close(s, _prison(s), request, now=NOW, actor="staff:admin", origin="", sms_policy=SMS)
    [slot] = [slot for slot in _day(db) if slot.slot_id == slots["14:00"]]
    assert slot.bookings[0].stop_visit is None
    with db.writing() as s:
        _undo(s, visitor_id=maria, was="arrived")
    assert _status(db, reference) is BookingStatus.CONFIRMED


@pytest.mark.parametrize(
    ("how", "words"),
    [
        ("closed", "Already inside: visit time closed, stop this visit"),
        ("inmate_suspended", "Already inside: visits suspended, stop this visit"),
        ("inmate_not_active", "Already inside: no longer visitable here, stop this visit"),
        ("visitor_barred", "Already inside: a visitor is barred, stop this visit"),
    ],
)
def test_the_gate_list_says_why_to_stop_a_visit_caught_inside_and_its_undo_cancels_it(
    guards, db, how, words
):
    a, _ = guards
    reference, _, visitor_id = _quencoro_visit(db, LIMA_TODAY, time(14))
    assert _post(a, f"/visitors/{visitor_id}/arrived").status_code == 303
    with db.writing() as s:
        _stop(s, how, "QUENCORO", "Q10001", "46000001")
    page = a.get("/staff/p/QUENCORO/day?lang=en")
    assert words in text(page)
    undo = f"/staff/p/QUENCORO/visitors/{visitor_id}/undo"
    shown = _form(a.get("/staff/p/QUENCORO/day").text, undo)
    assert a.post(undo, data=shown, follow_redirects=False).status_code == 303
    assert _status(db, reference) is BookingStatus.CANCELLED
    assert _queued(db, how) == [f"booking:{reference}"]


def visit_left_for_gate(db, left: str) -> tuple[str, BookingStatus]:
    """Today at 10:00 (NOW), a Quencoro visit a stop leaves for the gate: a visitor came in
    already for the 14:00 visit (``left`` "let in"), or nobody came yet to the 09:00–11:00
    visit under way ("under way"). Its reference, and the status it keeps."""
    if left == "under way":
        reference, _, _ = _quencoro_visit(db, LIMA_TODAY, time(9))
        return reference, BookingStatus.CONFIRMED
    reference, _, visitor_id = _quencoro_visit(db, LIMA_TODAY, time(14))
    with db.writing() as s:
        record_arrival(s, prison=_prison(s, "QUENCORO"), visitor_id=visitor_id, actor=GUARD,
                       now=NOW)  # fmt: skip
    return reference, BookingStatus.ATTENDED


def left_for_the_gate(
    client, db, send, reference: str, stays: BookingStatus = BookingStatus.ATTENDED
) -> str:
    """Send a closure's or a suspension's confirmation twice (``send()``): both answer the
    same, a page (read in English, returned) naming the booking left for the gate (let in
    already, or its visit time under way), which ``stays`` as it was."""
    first, again = send(), send()
    assert first.status_code == 303
    assert again.headers["location"] == first.headers["location"]
    result = text(client.get(first.headers["location"] + "&lang=en"))
    assert (
        "1 booking was not cancelled, as someone of it is inside already or its visit time is "
        f"under way: tell the gate to stop the visit. {display(reference)}"
    ) in result
    assert _status(db, reference) is stays
    return result


def _ana_and_eva(db, b, start: time) -> tuple[str, int, int]:
    """Ana and Eva Ccori's visit at ``start`` at Quencoro today, nobody of it in: guard
    ``b``'s list, loaded now, offers Eva's "came in". The reference, Ana's and Eva's ids."""
    party = (
        visitor("46000001", first_names="Ana", last_names="Ccori"),
        visitor("46000002", first_names="Eva", last_names="Ccori"),
    )
    reference, _, ana = _quencoro_visit(db, LIMA_TODAY, start, party=party)
    eva = ana + 1
    assert f"/visitors/{eva}/arrived" in b.get("/staff/p/QUENCORO/day").text
    return reference, ana, eva


def _ana_in_eva_out(db, a, b) -> tuple[str, int, int]:
    """Ana and Eva Ccori's 14:00 visit (:func:`_ana_and_eva`); then guard ``a`` lets Ana in."""
    reference, ana, eva = _ana_and_eva(db, b, time(14))
    assert _post(a, f"/visitors/{ana}/arrived").status_code == 303
    return reference, ana, eva


def _arrival_refused(client, visitor_id: int) -> str:
    """An arrival recorded for the visitor (from a list loaded before) is refused: the page
    in English, as text."""
    refused = client.post(
        f"/staff/p/QUENCORO/visitors/{visitor_id}/arrived?lang=en",
        data={"csrf_token": staff_token(client)},
        follow_redirects=False,
    )
    assert refused.status_code == 409
    return text(refused)


def test_a_visitor_barred_once_her_party_was_inside_is_never_let_in(guards, db):
    """Ana came in for the 14:00 visit; then Eva, of the same booking and still outside, is
    barred from the prison. The booking is left for the gate (someone is inside), but Eva's
    row says she may not come in and offers no "came in", and an arrival recorded for her
    anyway (a list loaded before the bar) is refused in the guard's words."""
    a, b = guards
    reference, _, eva = _ana_in_eva_out(db, a, b)
    with db.writing() as s:
        _stop(s, "visitor_barred", "QUENCORO", "Q10001", "46000002")
    assert _status(db, reference) is BookingStatus.ATTENDED
    page = a.get("/staff/p/QUENCORO/day?lang=en")
    assert f"/visitors/{eva}/arrived" not in page.text
    assert f"/visitors/{eva}/turn-away" in page.text
    assert "Eva Ccori · DNI 46000002 · Adult May not come in: barred from this prison" in text(page)
    refused = _arrival_refused(b, eva)
    assert "Eva Ccori may not come in: barred from visiting this prison." in refused
    assert _gate_check(db, eva) is None
    with db.read_session() as s:
        [listed] = [bk for slot in day_list(s, _prison(s, "QUENCORO"), LIMA_TODAY, NOW)
                    for bk in slot.bookings if bk.reference == reference]  # fmt: skip
    assert [(v.name, v.barred) for v in listed.visitors] == [
        ("Ana Ccori", False),
        ("Eva Ccori", True),
    ]


@pytest.mark.parametrize(
    "typed",
    ["46.000.001", "46-000-001", "46 000 001", "４６０００００１", "ce-1234.567a", "CE1234567A"],
)
def test_a_document_number_typed_as_the_card_prints_it_finds_its_visitor(guards, db, typed):
    """A guard types the number the way it is printed or read out (dots, dashes, spaces, a
    full-width keyboard, lower case): it is the number the booking stored, and the search
    jumps to that visitor's line, as typing it bare does."""
    a, _ = guards
    party = (visitor("46000001"), visitor("CE1234567A", doc_type="ce", first_names="Ana"))
    _, _, first = _quencoro_visit(db, LIMA_TODAY, time(14), party=party)
    found = a.get(
        "/staff/p/QUENCORO/day", params={"date": LIMA_TODAY, "q": typed}, follow_redirects=False
    )
    assert found.status_code == 303
    whose = first if typed.startswith(("4", "４")) else first + 1
    assert found.headers["location"].endswith(f"#v-{whose}")


# What the list and a refused arrival say of Eva, still outside, once her visit is stopped,
# by how it was stopped: (how, her row's tag, the refusal).
STOPPED_WORDS = [
    (
        "closed",
        "May not come in: visit time closed",
        "Eva Ccori may not come in: this visit time is closed (Requisa).",
    ),
    (
        "inmate_suspended",
        "May not come in: visits suspended",
        "Eva Ccori may not come in: visits to Carlos Yupanqui Huarcaya are suspended.",
    ),
    (
        "inmate_not_active",
        "May not come in: no longer visitable here",
        "Eva Ccori may not come in: Carlos Yupanqui Huarcaya can no longer be visited at "
        "this prison.",
    ),
    (
        "visitor_barred",  # Ana, inside, is barred; Eva is not, but the visit is stopped
        "May not come in: a visitor is barred",
        "Eva Ccori may not come in: a visitor of this booking is barred from this prison, "
        "so this visit is stopped.",
    ),
]


@pytest.mark.parametrize(("how", "tag", "refusal"), STOPPED_WORDS)
def test_nobody_more_of_a_visit_stopped_once_someone_was_inside_is_let_in(
    guards, db, how, tag, refusal
):
    """Ana came in for the 14:00 visit; then the time is closed, visits to Carlos suspended,
    Carlos transferred, or Ana barred. The booking is left for the gate (Ana is inside, and
    her undo stays), but Eva, still outside, may not come in: her row says why and offers
    only "not let in", and an arrival recorded for her anyway (a list loaded before) is
    refused in the guard's words."""
    a, b = guards
    reference, ana, eva = _ana_in_eva_out(db, a, b)
    with db.writing() as s:
        _stop(s, how, "QUENCORO", "Q10001", "46000001")
    assert _status(db, reference) is BookingStatus.ATTENDED
    page = a.get("/staff/p/QUENCORO/day?lang=en")
    assert f"/visitors/{eva}/arrived" not in page.text
    assert f"/visitors/{eva}/turn-away" in page.text
    assert f"/visitors/{ana}/undo" in page.text
    assert f"Eva Ccori · DNI 46000002 · Adult {tag}" in text(page)
    assert f"Ana Ccori · DNI 46000001 · Adult {tag}" not in text(page)  # she is inside
    assert refusal in _arrival_refused(b, eva)
    assert _gate_check(db, eva) is None
    turned = _post(a, f"/visitors/{eva}/turn-away", reason="other", note="Visita detenida")
    assert turned.status_code == 303
    assert _gate_check(db, eva).status is GateStatus.TURNED_AWAY
    assert _status(db, reference) is BookingStatus.ATTENDED


@pytest.mark.parametrize(
    ("how", "refusal"),
    [
        ("visitor_barred", "Eva Ccori may not come in: barred from visiting this prison."),
        ("closed", "Eva Ccori may not come in: this visit time is closed (Requisa)."),
    ],
)
def test_the_health_questions_never_say_a_visitor_the_gate_refuses_can_come_in(
    guards, db, how, refusal
):
    """Ana is inside; Eva, still outside, is barred (or the time closed). Asked the health
    questions with only "lives with someone with TB" ticked (or none), the outcome says she
    may not come in and why, not "no symptoms: they can come in"; the TB advice still
    stands, and nothing is recorded for her at the gate."""
    a, b = guards
    _, _, eva = _ana_in_eva_out(db, a, b)
    with db.writing() as s:
        _stop(s, how, "QUENCORO", "Q10001", "46000002")
    path = f"/staff/p/QUENCORO/visitors/{eva}/screening?lang=en"
    for answers in ({"lives_with_tb": "1"}, {}):
        answered = a.post(
            path, data={"csrf_token": staff_token(a), **answers}, follow_redirects=False
        )
        assert answered.status_code == 200  # the outcome, not back to the list
        said = text(answered)
        assert "Not let in today" in said
        assert refusal in said
        assert "they can come in" not in said
        assert ("a check is advised" in said) is bool(answers)
        assert _gate_check(db, eva) is None


def test_a_document_number_whose_booking_of_the_day_was_cancelled_says_when_and_why(
    guards, make_client, db
):
    """Rosa's 16:00 visit was cancelled this morning when she was barred; she came anyway.
    Her DNI, searched on today's list, says which booking was cancelled, when and why, as its
    reference would; another prison's cancelled booking is never named, even to a guard who
    serves it too, on this prison's list."""
    a, _ = guards
    rosa = (visitor("40000044", first_names="Rosa", last_names="Ccori"),)
    reference, _, _ = _quencoro_visit(db, LIMA_TODAY, time(16), party=rosa)
    with db.writing() as s:
        _stop(s, "visitor_barred", "QUENCORO", "Q10001", "40000044")
    assert _status(db, reference) is BookingStatus.CANCELLED
    found = a.get(
        "/staff/p/QUENCORO/day",
        params={"date": LIMA_TODAY, "q": "40.000.044", "lang": "en"},
        follow_redirects=False,
    )
    assert found.status_code == 200
    shown = text(found)
    assert f"Booking {display(reference)} was cancelled on" in shown
    assert "at 10:00." in shown  # NOW in Lima
    assert "It was for" in shown
    assert "No booking or visitor of this day matches" not in shown
    assert f'href="/staff/p/QUENCORO/bookings/{reference}"' in found.text
    by_reference = text(
        a.get(
            "/staff/p/QUENCORO/day",
            params={"date": LIMA_TODAY, "q": display(reference), "lang": "en"},
        )
    )
    said = shown[shown.index(f"Booking {display(reference)}") : shown.index("See the booking")]
    assert said in by_reference  # the same words as the reference's

    elsewhere, _, _ = _quencoro_visit(
        db, LIMA_TODAY, time(16), prison="MUJERES-CUSCO", inmate="M10001",
        party=(visitor("40000055"),),
    )  # fmt: skip
    with db.writing() as s:
        _stop(s, "visitor_barred", "MUJERES-CUSCO", "M10001", "40000055")
    assert _status(db, elsewhere) is BookingStatus.CANCELLED
    make_staff(db, "guardia.tres", StaffRole.GUARD, ("QUENCORO", "MUJERES-CUSCO"))
    both = make_client()
    sign_in(both, "guardia.tres")
    for guard in (a, both):
        missing = guard.get(
            "/staff/p/QUENCORO/day", params={"date": LIMA_TODAY, "q": "40000055", "lang": "en"}
        )
        assert missing.status_code == 422
        assert "No booking or visitor of this day matches 40000055." in text(missing)
        assert display(elsewhere) not in missing.text


def test_a_document_number_not_on_the_days_list_says_the_next_booking_and_a_bar(
    guards, make_client, db
):
    """Rosa came today but booked Thursday; Pedro is barred from Quencoro (his booking was
    cancelled for it) and came anyway. Their DNIs, searched on today's list, tell the guard
    Rosa's next booking (with that day's list) and that Pedro may not come in, until when.
    Nothing of a prison the guard does not serve is read: a visitor booked only at Mujeres
    reads as nobody, and a bar from Mujeres is not told on Quencoro's list, even to a guard
    of both."""
    from visits.suspensions import Actor as By
    from visits.suspensions import suspend_visitor

    a, _ = guards
    thursday = LIMA_TODAY + timedelta(days=2)
    rosa, _, _ = _quencoro_visit(db, thursday, time(9), party=(visitor("40000066"),))
    _quencoro_visit(db, thursday, time(11), party=(visitor("40000077"),))
    until = LIMA_TODAY + timedelta(days=30)
    with db.writing() as s:
        suspend_visitor(
            s, _prison(s, "QUENCORO"), doc_type="dni", doc_number="40000077", until=until,
            reason="Pelea", by=By("staff:admin", "", NOW), sms_policy=SMS,
        )  # fmt: skip

    def search(guard, number: str, prison: str = "QUENCORO"):
        params = {"date": LIMA_TODAY, "q": number, "lang": "en"}
        return guard.get(f"/staff/p/{prison}/day", params=params, follow_redirects=False)

    found = search(a, "40.000.066")
    assert found.status_code == 200
    with use_locale("en"):
        day, last = format_day_with_year(thursday), format_day_with_year(until)
    assert (
        f"Not booked on this list. Their next booking, {display(rosa)}, is for {day} at 09:00."
    ) in text(found)
    assert f'href="/staff/p/QUENCORO/day?date={thursday}#b-{rosa}"' in found.text
    assert "barred" not in text(found)
    barred = search(a, "40000077")
    assert barred.status_code == 200
    assert (f"This visitor is barred from this prison until {last}: do not let them in.") in text(
        barred
    )
    assert "Their next booking" not in text(barred)  # cancelled when he was barred

    elsewhere, _, _ = _quencoro_visit(
        db, thursday, time(7, 15), 0.25, prison="MUJERES-CUSCO", inmate="M10001",
        party=(visitor("40000088"),),
    )  # fmt: skip
    _quencoro_visit(
        db, thursday, time(7, 45), 0.25, prison="MUJERES-CUSCO", inmate="M10001",
        party=(visitor("40000099"),),
    )  # fmt: skip
    with db.writing() as s:
        suspend_visitor(
            s, _prison(s, "MUJERES-CUSCO"), doc_type="dni", doc_number="40000099", until=until,
            reason="Pelea", by=By("staff:admin", "", NOW), sms_policy=SMS,
        )  # fmt: skip
    missing = search(a, "40000088")
    assert missing.status_code == 422
    assert "No booking or visitor of this day matches 40000088." in text(missing)
    assert display(elsewhere) not in missing.text
    make_staff(db, "guardia.tres", StaffRole.GUARD, ("QUENCORO", "MUJERES-CUSCO"))
    both = make_client()
    sign_in(both, "guardia.tres")
    assert display(elsewhere) in text(search(both, "40000088"))  # a prison this guard serves
    for guard in (a, both):
        not_here = search(guard, "40000099")
        assert not_here.status_code == 422
        assert "barred" not in text(not_here)
    assert "barred from this prison" in text(search(both, "40000099", "MUJERES-CUSCO"))


def test_a_visit_already_over_is_not_named_as_the_visitors_next_booking(make_client, db):
    """Lucía visited Mujeres at 07:00 today and booked Quencoro on Thursday; at 10:00 her DNI
    on Quencoro's list of today names Thursday's visit, not the one she already made."""
    make_staff(db, "guardia.cuatro", StaffRole.GUARD, ("QUENCORO", "MUJERES-CUSCO"))
    guard = make_client()
    sign_in(guard, "guardia.cuatro")
    lucia = (visitor("40000111"),)
    over, _, _ = _quencoro_visit(
        db, LIMA_TODAY, time(7), 1, prison="MUJERES-CUSCO", inmate="M10001", party=lucia
    )
    thursday = LIMA_TODAY + timedelta(days=2)
    later, _, _ = _quencoro_visit(db, thursday, time(9), party=lucia)
    params = {"date": LIMA_TODAY, "q": "40000111", "lang": "en"}
    found = text(guard.get("/staff/p/QUENCORO/day", params=params))
    assert f"Their next booking, {display(later)}, is for" in found
    assert display(over) not in found


def test_a_search_by_document_number_lands_on_that_visitor_and_a_reference_on_the_booking(
    guards, db
):
    """Eva is the second of the booking: her DNI lands on her own line (its anchor), so the
    guard's next Tab reaches her "came in", not Ana's; the reference lands on the booking."""
    a, _ = guards
    party = (
        visitor("46000001", first_names="Ana", last_names="Ccori"),
        visitor("46000002", first_names="Eva", last_names="Ccori"),
        visitor("46000003", first_names="Luz", last_names="Ccori"),
    )
    reference, _, ana = _quencoro_visit(db, LIMA_TODAY, time(14), party=party)
    for n, dni in enumerate(("46000001", "46000002", "46.000.003")):
        found = a.get(
            "/staff/p/QUENCORO/day", params={"date": LIMA_TODAY, "q": dni}, follow_redirects=False
        )
        assert found.status_code == 303
        assert found.headers["location"] == f"?date={LIMA_TODAY}#v-{ana + n}"
    page = a.get("/staff/p/QUENCORO/day").text
    for n in range(3):
        assert page.count(f'id="v-{ana + n}"') == 1
    assert _search(a, reference).headers["location"] == f"?date={LIMA_TODAY}#b-{reference}"


@pytest.mark.parametrize(("how", "tag", "refusal"), STOPPED_WORDS[:2])
def test_nobody_of_a_visit_stopped_once_its_time_began_is_let_in(guards, db, how, tag, refusal):
    """Ana and Eva's 9:00 visit is under way (it is 10:00), nobody of it in yet, when the day
    is closed or visits to Carlos suspended. The booking is left confirmed for the gate (the
    family may be at the door: the guard tells them), but each row says why they may not
    come in and offers no "came in", and an arrival recorded anyway (a list loaded before) is
    refused in the guard's words."""
    a, b = guards
    reference, ana, eva = _ana_and_eva(db, b, time(9))
    with db.writing() as s:
        if how == "closed":  # the whole day: a time under way cannot be closed on its own
            request = ClosureRequest(LIMA_TODAY, None, "Requisa")
            close(
                s, _prison(s, "QUENCORO"), request, now=NOW, actor="staff:admin", origin="",
                sms_policy=SMS,
            )  # fmt: skip
        else:
            _stop(s, how, "QUENCORO", "Q10001")
    assert _status(db, reference) is BookingStatus.CONFIRMED
    page = a.get("/staff/p/QUENCORO/day?lang=en")
    for name, dni, visitor_id in (("Ana", "46000001", ana), ("Eva", "46000002", eva)):
        assert f"/visitors/{visitor_id}/arrived" not in page.text
        assert f"/visitors/{visitor_id}/turn-away" in page.text
        assert f"{name} Ccori · DNI {dni} · Adult {tag}" in text(page)
    assert "Already inside" not in text(page)  # nobody is
    assert refusal in _arrival_refused(b, eva)
    assert _gate_check(db, eva) is None
    assert _status(db, reference) is BookingStatus.CONFIRMED
