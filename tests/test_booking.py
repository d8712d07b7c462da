"""Booking, cancelling and moving, and every rule's typed error, on each database."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine.interfaces import CacheStats

from tests.factories import (
    NOW,
    SMS,
    add_closure,
    make_inmate,
    make_prison,
    make_slot,
    request_for,
    visitor,
)
from visits.audit import AuditEvent
from visits.booking import (
    Booking,
    BookingStatus,
    BookingVisitor,
    authorised_booking,
    cancel_booking,
    check_booking,
    create_booking,
    move_booking,
)
from visits.db import WriteLockMissing
from visits.inmate import InmateStatus
from visits.problems import Code, Rejected
from visits.reference import ALPHABET
from visits.rules import VisitorGroup
from visits.schedule import Slot
from visits.visitor import Visitor, VisitorSuspension

KEY = "test-secret"
SATURDAY = date(2026, 12, 5)
SUNDAY = date(2026, 12, 6)
NEXT_SATURDAY = date(2026, 12, 12)


@pytest.fixture
def world(db):
    """A prison with two slots this week, one next week, and one inmate."""
    with db.writing() as s:
        prison = make_prison(s)
        make_inmate(s, prison)
        make_slot(s, prison, SATURDAY, capacity=10)
        make_slot(s, prison, SUNDAY, capacity=10)
        make_slot(s, prison, NEXT_SATURDAY, capacity=10)
    return db


def ids(db):
    with db.read_session() as s:
        slots = s.scalars(select(Slot.id).order_by(Slot.starts_at)).all()
    return slots


def book(db, slot_id, *visitors, phone="987654321", key=None, inmate_code="Q1", now=NOW):
    from visits.inmate import Inmate
    from visits.prison import Prison

    with db.writing() as s:
        prison = s.scalar(select(Prison))
        inmate = s.scalar(select(Inmate).where(Inmate.code == inmate_code))
        booked = create_booking(
            s,
            prison=prison,
            inmate=inmate,
            request=request_for(slot_id, *visitors, phone=phone),
            now=now,
            secret_key=KEY,
            sms_policy=SMS,
            submission_key=key,
        )
        return booked.booking.reference, booked.manage_token, booked.replayed


def rejection(db, slot_id, *visitors, **kwargs) -> Rejected:
    with pytest.raises(Rejected) as caught:
        book(db, slot_id, *visitors, **kwargs)
    return caught.value


def seats_taken(db, slot_id) -> int:
    with db.read_session() as s:
        return s.get(Slot, slot_id).seats_taken


def count(db, model) -> int:
    with db.read_session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_a_booking_takes_seats_and_gets_a_reference_and_token(world):
    sat, _, _ = ids(world)
    ref, token, replayed = book(
        world, sat, visitor(), visitor("40000001", first_names="Rosa", relationship="sibling")
    )
    assert not replayed
    assert len(ref) == 8
    assert set(ref) <= set(ALPHABET)
    assert seats_taken(world, sat) == 2
    with world.read_session() as s:
        booking = authorised_booking(s, f"{ref[:4]}-{ref[4:]}", token, KEY)
        assert booking is not None
        assert booking.status is BookingStatus.CONFIRMED
        assert booking.contact_phone == "+51987654321"
        assert [v.first_names for v in booking.visitors] == ["María", "Rosa"]
        assert authorised_booking(s, ref, token + "x", KEY) is None
        assert authorised_booking(s, ref, None, KEY) is None
        events = s.scalars(select(AuditEvent.action)).all()
    assert events == ["booking.created"]


def test_the_same_person_is_one_visitor_across_bookings(world):
    sat, sun, _ = ids(world)
    book(world, sat, visitor())
    book(world, sun, visitor(first_names="María Elena"))
    with world.read_session() as s:
        people = s.scalars(select(Visitor)).all()
    assert len(people) == 1
    assert people[0].first_names == "María Elena"  # the latest details are kept


def test_a_second_booking_compiles_no_statement_anew(world):
    """A booking's statements are compiled once, by the first booking, then taken from the
    engine's compiled cache: compiling is much of a booking's CPU. Every execution of a
    compiled statement says whether its compiled form came from that cache (the context's
    ``cache_hit``); a statement that cannot be cached at all (one carrying its rows, as the
    visitors' insert did) says so too, where a count of the cache's entries would miss it."""
    sat, _, _ = ids(world)
    book(world, sat, visitor("40000001"), phone="987650001")  # warm-up: compiles them all
    compiled: list[tuple[CacheStats, str]] = []

    def note(_conn, _cursor, statement, _parameters, context, _executemany) -> None:
        if context is not None and context.compiled is not None:
            compiled.append((context.cache_hit, statement.split("\n", 1)[0]))

    event.listen(world.engine, "before_cursor_execute", note)
    try:
        book(world, sat, visitor("40000002"), phone="987650002")
    finally:
        event.remove(world.engine, "before_cursor_execute", note)
    assert len(compiled) > 10  # the whole booking was watched
    assert [c for c in compiled if c[0] is not CacheStats.CACHE_HIT] == []


def test_a_repeated_submission_books_once(world):
    sat, _, _ = ids(world)
    first = book(world, sat, key="click-1")
    second = book(world, sat, key="click-1")
    assert second[0] == first[0]
    assert second[1] == first[1]
    assert second[2] is True
    assert seats_taken(world, sat) == 1
    assert count(world, Booking) == 1


def test_a_key_sent_again_with_other_details_is_refused_not_answered(world):
    sat, sun, _ = ids(world)
    first = book(world, sat, key="k-1")
    with pytest.raises(Rejected) as caught:
        book(world, sun, visitor("40000099", first_names="Otra"), phone="912345678", key="k-1")
    assert caught.value.codes == {Code.SUBMISSION_KEY_REUSED}
    assert book(world, sat, key="k-1")[0] == first[0]  # the identical request still replays
    assert count(world, Booking) == 1


def test_every_field_problem_is_reported_at_once_and_nothing_changes(world):
    sat, _, _ = ids(world)
    bad = visitor(
        "1234",
        first_names="<script>alert(1)</script>",
        last_names="",
        birth_date="31/02/1990",
        relationship="cousin",
    )
    error = rejection(world, sat, bad, phone="12")
    found = {(p.code, p.field) for p in error.problems}
    assert found == {
        (Code.INVALID_NAME, "visitors.0.first_names"),
        (Code.REQUIRED, "visitors.0.last_names"),
        (Code.INVALID_DNI, "visitors.0.doc_number"),
        (Code.INVALID_DATE, "visitors.0.birth_date"),
        (Code.INVALID_CHOICE, "visitors.0.relationship"),
        (Code.INVALID_PHONE, "contact_phone"),
    }
    assert seats_taken(world, sat) == 0
    assert count(world, Booking) == count(world, Visitor) == count(world, AuditEvent) == 0


def test_over_long_fields_are_refused(world):
    sat, _, _ = ids(world)
    error = rejection(world, sat, visitor(first_names="A" * 61, dni="1" * 21), phone="9" * 31)
    assert {(p.code, p.field) for p in error.problems} == {
        (Code.TOO_LONG, "visitors.0.first_names"),
        (Code.TOO_LONG, "visitors.0.doc_number"),
        (Code.TOO_LONG, "contact_phone"),
    }


@pytest.mark.parametrize(
    ("slot_id", "code"),
    [("999999", Code.SLOT_NOT_FOUND), ("abc", Code.SLOT_NOT_FOUND), ("", Code.SLOT_NOT_FOUND)],
)
def test_unknown_slots_are_refused(world, slot_id, code):
    assert rejection(world, slot_id).codes == {code}


def test_a_slot_of_another_prison_is_unknown_here(world):
    with world.writing() as s:
        other = make_prison(s, "OTHER")
        foreign = make_slot(s, other, SATURDAY).id
    assert rejection(world, foreign).codes == {Code.SLOT_NOT_FOUND}


def test_past_too_late_and_too_early_slots(world):
    with world.writing() as s:
        from visits.prison import Prison

        prison = s.scalar(select(Prison))
        past = make_slot(s, prison, date(2026, 11, 30)).id
        tomorrow = make_slot(s, prison, date(2026, 12, 2)).id  # 23 hours away, closes at 24
        far = make_slot(s, prison, date(2026, 12, 16)).id  # 15 days ahead, opens at 14
        last_day = make_slot(s, prison, date(2026, 12, 15)).id
    assert rejection(world, past).codes == {Code.SLOT_IN_PAST}
    assert rejection(world, tomorrow).codes == {Code.BOOKING_CLOSED}
    too_early = rejection(world, far)
    assert too_early.codes == {Code.BOOKING_NOT_OPEN_YET}
    assert too_early.problems[0].params["opens_on"] == date(2026, 12, 2)
    assert book(world, last_day)[0]


def test_closed_days_and_closed_sessions(world):
    sat, sun, _ = ids(world)
    with world.writing() as s:
        from visits.prison import Prison

        prison = s.scalar(select(Prison))
        add_closure(s, prison, SATURDAY, reason="Requisa general")
        add_closure(s, prison, SUNDAY, start=time(10), reason="Otra sesión")
    error = rejection(world, sat)
    assert error.codes == {Code.SLOT_CLOSED}
    assert error.problems[0].params["reason"] == "Requisa general"
    assert book(world, sun)[0]  # a closure of another session that day does not apply


def test_party_size_and_adults(world):
    sat, _, _ = ids(world)
    child = visitor("70000001", first_names="Luz", birth_date="2015-03-01", relationship="child")
    error = rejection(world, sat, child)
    assert error.codes == {Code.ADULT_REQUIRED}
    four = [visitor(f"4000000{i}", first_names=f"Ana {chr(65 + i)}") for i in range(4)]
    assert rejection(world, sat, *four).codes == {Code.TOO_MANY_VISITORS}
    assert book(world, sat, visitor(), child)[0]


def test_someone_turning_eighteen_counts_as_adult_on_the_visit_day(world):
    sat, _, _ = ids(world)
    almost = visitor(birth_date="2008-12-06")  # 18 the day after the visit
    exactly = visitor("40000002", birth_date="2008-12-05")  # 18 on the visit day
    assert rejection(world, sat, almost).codes == {Code.ADULT_REQUIRED}
    assert book(world, sat, exactly)[0]


def test_a_visitor_cannot_appear_twice_in_one_booking(world):
    sat, _, _ = ids(world)
    error = rejection(world, sat, visitor(), visitor(first_names="Otra"))
    assert {(p.code, p.field) for p in error.problems} == {
        (Code.DUPLICATE_VISITOR, "visitors.1.doc_number")
    }


def test_visitor_groups_apply_to_adults_only(world):
    with world.writing() as s:
        from visits.prison import Prison

        prison = s.scalar(select(Prison))
        women = make_slot(s, prison, SATURDAY, start=time(13), group=VisitorGroup.WOMEN).id
        men = make_slot(s, prison, SUNDAY, start=time(13), group=VisitorGroup.MEN).id
    man = visitor("40000003", first_names="José", sex="M")
    boy = visitor("70000002", first_names="Pedro", birth_date="2016-01-01", sex="M")
    error = rejection(world, women, man)
    assert {(p.code, p.field) for p in error.problems} == {(Code.SLOT_WOMEN_ONLY, "visitors.0.sex")}
    assert rejection(world, women, visitor(sex="")).codes == {Code.REQUIRED}
    assert book(world, women, visitor(), boy)[0]
    assert rejection(world, men, visitor("40000004", first_names="Ana")).codes == {
        Code.SLOT_MEN_ONLY
    }


def test_a_visitor_holds_one_booking_per_day(world):
    sat, _, _ = ids(world)
    with world.writing() as s:
        from visits.prison import Prison

        prison = s.scalar(select(Prison))
        make_inmate(s, prison, "Q2", surname="Mamani")
        afternoon = make_slot(s, prison, SATURDAY, start=time(14)).id
    book(world, sat, visitor())
    error = rejection(world, afternoon, visitor(), inmate_code="Q2")
    assert {(p.code, p.field) for p in error.problems} == {
        (Code.VISITOR_ALREADY_BOOKED, "visitors.0.doc_number")
    }
    assert error.problems[0].params["name"] == "María Quispe Huamán"


def test_visits_per_inmate_per_week_in_the_prison_timezone(world):
    sat, sun, next_sat = ids(world)
    with world.writing() as s:
        from visits.prison import Prison

        prison = s.scalar(select(Prison))
        # Sunday 23:30 in Lima is already Monday in UTC: it still belongs to this ISO week.
        late_sunday = make_slot(s, prison, SUNDAY, start=time(23, 30), hours=0.4).id
    book(world, sat, visitor())
    book(world, sun, visitor("40000005", first_names="Ana"))
    error = rejection(world, late_sunday, visitor("40000006", first_names="Eva"))
    assert error.codes == {Code.WEEKLY_LIMIT_REACHED}
    assert error.problems[0].params["limit"] == 2
    # Reported together with a visitor's own mistakes: it does not depend on them.
    both = rejection(world, late_sunday, visitor("123", first_names="Eva"))
    assert both.codes == {Code.WEEKLY_LIMIT_REACHED, Code.INVALID_DNI}
    assert book(world, next_sat, visitor("40000006", first_names="Eva"))[0]


def test_inmate_status_and_suspensions(world):
    sat, _, next_sat = ids(world)
    with world.writing() as s:
        from visits.inmate import Inmate

        inmate = s.scalar(select(Inmate))
        inmate.visits_suspended_until = SATURDAY
    error = rejection(world, sat)
    assert error.codes == {Code.INMATE_SUSPENDED}
    assert error.problems[0].params["until"] == SATURDAY
    assert book(world, next_sat)[0]
    with world.writing() as s:
        from visits.inmate import Inmate

        s.scalar(select(Inmate)).status = InmateStatus.TRANSFERRED
    assert rejection(world, next_sat, visitor("40000007")).codes >= {Code.INMATE_NOT_ACTIVE}


def test_visitor_suspensions_at_this_prison(world):
    sat, _, next_sat = ids(world)
    book(world, sat, visitor())
    with world.writing() as s:
        from visits.prison import Prison

        person = s.scalar(select(Visitor))
        s.add(
            VisitorSuspension(
                visitor_id=person.id, prison_id=s.scalar(select(Prison.id)), until=NEXT_SATURDAY
            )
        )
    error = rejection(world, next_sat, visitor())
    assert error.codes == {Code.VISITOR_SUSPENDED}
    assert "until" not in error.problems[0].params  # the date is for staff to tell


def test_a_full_slot_says_how_many_seats_are_left(world):
    with world.writing() as s:
        from visits.prison import Prison

        prison = s.scalar(select(Prison))
        small = make_slot(s, prison, SATURDAY, start=time(16), capacity=2).id
    book(world, small, visitor())
    error = rejection(world, small, visitor("40000008"), visitor("40000009", first_names="Ana"))
    assert error.codes == {Code.SLOT_FULL}
    assert error.problems[0].params["seats_left"] == 1
    book(world, small, visitor("40000008"))
    assert rejection(world, small, visitor("40000010")).problems[0].params["seats_left"] == 0
    assert seats_taken(world, small) == 2


def test_rules_and_field_problems_come_together_when_the_slot_is_known(world):
    with world.writing() as s:
        from visits.prison import Prison

        prison = s.scalar(select(Prison))
        add_closure(s, prison, SATURDAY, reason="Requisa")
    sat, _, _ = ids(world)
    error = rejection(world, sat, visitor(dni="12"))
    assert error.codes == {Code.INVALID_DNI, Code.SLOT_CLOSED}


def found(error: Rejected) -> set[tuple[Code, str | None]]:
    return {(p.code, p.field) for p in error.problems}


def review_rejection(db, slot_id, *visitors, phone="987654321") -> Rejected:
    """What the review page is told (check_booking), which reads and takes nothing."""
    from visits.inmate import Inmate
    from visits.prison import Prison

    with db.read_session() as s, pytest.raises(Rejected) as caught:
        check_booking(
            s,
            prison=s.scalar(select(Prison)),
            inmate=s.scalar(select(Inmate)),
            request=request_for(slot_id, *visitors, phone=phone),
            now=NOW,
        )
    return caught.value


def both_ways(db, slot_id, *visitors, phone="987654321") -> set[tuple[Code, str | None]]:
    """The problems of the review and of the booking itself, which must be the same."""
    reviewed = found(review_rejection(db, slot_id, *visitors, phone=phone))
    assert found(rejection(db, slot_id, *visitors, phone=phone)) == reviewed
    return reviewed


def test_party_rules_come_with_the_field_problems(world):
    """Two children, the second with no relationship: "an adult must come" used to wait until
    the relationship was filled in. A duplicate document too."""
    sat, _, _ = ids(world)
    child = visitor("70000001", first_names="Luz", birth_date="01/01/2015", relationship="child")
    other = visitor("70000002", first_names="Juan", birth_date="2016-03-01", relationship="")
    assert both_ways(world, sat, child, other) == {
        (Code.REQUIRED, "visitors.1.relationship"),
        (Code.ADULT_REQUIRED, "visitors"),
    }
    twice = visitor(first_names="Otra", relationship="")
    assert both_ways(world, sat, visitor(), twice) == {
        (Code.REQUIRED, "visitors.1.relationship"),
        (Code.DUPLICATE_VISITOR, "visitors.1.doc_number"),
    }
    four = [visitor(f"4000000{i}", first_names=f"Ana {chr(65 + i)}") for i in range(4)]
    assert both_ways(world, sat, *four, phone="12") == {
        (Code.INVALID_PHONE, "contact_phone"),
        (Code.TOO_MANY_VISITORS, "visitors"),
    }
    assert seats_taken(world, sat) == 0
    assert count(world, Booking) == count(world, Visitor) == 0


@pytest.mark.parametrize("typed", ["1985-13-45", "31/02/1985", "25/07/2085", ""])
def test_no_adult_is_not_said_while_a_birth_date_is_wrong(world, typed):
    """The adult's birth date mistyped may be an adult's once corrected: only the date is
    refused, never "an adult must come"."""
    sat, _, _ = ids(world)
    adult = visitor(birth_date=typed)
    child = visitor("70000001", first_names="Luz", birth_date="2015-03-01", relationship="child")
    problems = both_ways(world, sat, adult, child)
    assert {field for _, field in problems} == {"visitors.0.birth_date"}


def test_the_days_group_comes_with_the_field_problems_for_adults_it_can_tell(world):
    with world.writing() as s:
        from visits.prison import Prison

        prison = s.scalar(select(Prison))
        women = make_slot(s, prison, SATURDAY, start=time(13), group=VisitorGroup.WOMEN).id
    man = visitor("40000003", first_names="José", sex="M")
    assert both_ways(world, women, man, phone="12") == {
        (Code.INVALID_PHONE, "contact_phone"),
        (Code.SLOT_WOMEN_ONLY, "visitors.0.sex"),
    }
    # A man whose birth date is wrong may be a boy, who comes with any adult.
    boy_or_man = visitor("40000003", first_names="José", sex="M", birth_date="1/13/2016")
    assert both_ways(world, women, visitor(), boy_or_man) == {
        (Code.INVALID_DATE, "visitors.1.birth_date")
    }
    # An answer that is no sex says what to do itself.
    assert both_ways(world, women, visitor(sex="X"), phone="12") == {
        (Code.INVALID_CHOICE, "visitors.0.sex"),
        (Code.INVALID_PHONE, "contact_phone"),
    }


def test_a_visitor_taken_that_day_is_said_with_the_field_problems_once_named(world):
    sat, _, _ = ids(world)
    with world.writing() as s:
        from visits.prison import Prison

        prison = s.scalar(select(Prison))
        make_inmate(s, prison, "Q2", surname="Mamani")
    book(world, sat, visitor(), inmate_code="Q2")
    assert both_ways(world, sat, visitor(), phone="12") == {
        (Code.VISITOR_ALREADY_BOOKED, "visitors.0.doc_number"),
        (Code.INVALID_PHONE, "contact_phone"),
    }
    # The refusal names the visitor: with a name that is not one yet, it waits for it.
    assert both_ways(world, sat, visitor(first_names="M4ria")) == {
        (Code.INVALID_NAME, "visitors.0.first_names")
    }


def test_check_booking_takes_nothing(world):
    sat, _, _ = ids(world)
    with world.read_session() as s:
        from visits.inmate import Inmate
        from visits.prison import Prison

        checked = check_booking(
            s,
            prison=s.scalar(select(Prison)),
            inmate=s.scalar(select(Inmate)),
            request=request_for(sat),
            now=NOW,
        )
    assert checked.slot.id == sat
    assert seats_taken(world, sat) == 0
    assert count(world, Visitor) == 0


def test_writes_refuse_a_read_session_on_sqlite(tmp_path, sqlite_template):
    """Only BEGIN IMMEDIATE makes SQLite's cross-row checks safe: a read session is refused.
    (PostgreSQL locks rows inside any transaction, so it has no such guard.)"""
    import shutil

    from visits.db import Database, make_engine

    shutil.copy(sqlite_template, tmp_path / "guard.db")
    db = Database(make_engine(f"sqlite:///{tmp_path / 'guard.db'}"))
    with db.writing() as s:
        prison = make_prison(s)
        make_inmate(s, prison)
        slot = make_slot(s, prison, SATURDAY).id
    with db.read_session() as s:
        from visits.inmate import Inmate
        from visits.prison import Prison

        with pytest.raises(WriteLockMissing):
            create_booking(
                s,
                prison=s.scalar(select(Prison)),
                inmate=s.scalar(select(Inmate)),
                request=request_for(slot),
                now=NOW,
                secret_key=KEY,
                sms_policy=SMS,
            )
    db.dispose()


def _booking(db, ref):
    with db.read_session() as s:
        return s.scalar(select(Booking).where(Booking.reference == ref))


def test_cancel_gives_seats_back_once(world):
    sat, _, _ = ids(world)
    ref, _, _ = book(world, sat, visitor(), visitor("40000011", first_names="Ana"))
    with world.writing() as s:
        booking = s.scalar(select(Booking).where(Booking.reference == ref))
        cancel_booking(s, booking, now=NOW, actor="family", sms_policy=SMS)
    assert seats_taken(world, sat) == 0
    cancelled = _booking(world, ref)
    assert cancelled.status is BookingStatus.CANCELLED
    assert cancelled.cancelled_at == NOW
    with pytest.raises(Rejected) as again, world.writing() as s:
        cancel_booking(s, s.get(Booking, cancelled.id), now=NOW, actor="family", sms_policy=SMS)
    assert again.value.codes == {Code.BOOKING_NOT_ACTIVE}
    assert seats_taken(world, sat) == 0
    # The visitor's day is free again.
    assert book(world, sat, visitor())[0]


def test_a_visit_that_has_started_cannot_be_cancelled(world):
    sat, _, _ = ids(world)
    ref, _, _ = book(world, sat)
    later = NOW + timedelta(days=5)
    with pytest.raises(Rejected) as caught, world.writing() as s:
        cancel_booking(
            s, s.get(Booking, _booking(world, ref).id), now=later, actor="family", sms_policy=SMS
        )
    assert caught.value.codes == {Code.BOOKING_NOT_ACTIVE}
    assert seats_taken(world, sat) == 1


def test_move_takes_new_seats_and_gives_back_the_old(world):
    sat, sun, _ = ids(world)
    ref, _, _ = book(world, sat, visitor(), visitor("40000012", first_names="Ana"))
    with world.writing() as s:
        booking = s.get(Booking, _booking(world, ref).id)
        move_booking(s, booking, slot_id=sun, now=NOW, actor="family", sms_policy=SMS)
    assert seats_taken(world, sat) == 0
    assert seats_taken(world, sun) == 2
    moved = _booking(world, ref)
    assert moved.slot_id == sun
    with world.read_session() as s:
        days = s.scalars(select(BookingVisitor.visit_date)).all()
        actions = s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert days == [SUNDAY, SUNDAY]
    assert actions == ["booking.created", "booking.moved"]


def test_a_failed_move_keeps_the_booking_as_it_was(world):
    sat, sun, _ = ids(world)
    with world.writing() as s:
        from visits.inmate import Inmate
        from visits.prison import Prison

        prison = s.scalar(select(Prison))
        make_inmate(s, prison, "Q2", surname="Mamani")
        full = make_slot(s, prison, SUNDAY, start=time(15), capacity=1).id
    ref, _, _ = book(world, sat, visitor(), visitor("40000013", first_names="Ana"))
    book(world, sun, visitor("40000014", first_names="Eva"), inmate_code="Q2")
    for target, code in [
        (full, Code.SLOT_FULL),
        (sat, Code.SAME_SLOT),
        (987654, Code.SLOT_NOT_FOUND),
    ]:
        with pytest.raises(Rejected) as caught, world.writing() as s:
            move_booking(
                s,
                s.get(Booking, _booking(world, ref).id),
                slot_id=target,
                now=NOW,
                actor="t",
                sms_policy=SMS,
            )
        assert code in caught.value.codes
    assert _booking(world, ref).slot_id == sat
    assert seats_taken(world, sat) == 2
    assert seats_taken(world, full) == 0
    with world.read_session() as s:
        assert s.scalar(select(Inmate).where(Inmate.code == "Q2")) is not None


def test_move_ignores_the_booking_itself_in_the_limits(world):
    sat, sun, _ = ids(world)
    ref, _, _ = book(world, sat)
    book(world, sun, visitor("40000015", first_names="Ana"))
    # Two visits this week already: moving one within the week is still allowed.
    with world.writing() as s:
        move_booking(
            s,
            s.get(Booking, _booking(world, ref).id),
            slot_id=sun,
            now=NOW,
            actor="t",
            sms_policy=SMS,
        )
    assert seats_taken(world, sun) == 2


def test_a_failed_write_hands_the_turn_to_the_next_writer(db):
    """A write that fails inside its transaction must not keep other writers waiting."""

    def fail_halfway() -> None:
        with db.writing() as s:
            make_prison(s)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail_halfway()
    # The failed writer's connection is busy elsewhere, so the next write gets another one:
    # it would wait out the busy timeout if the turn had not been handed on.
    with db.read_session() as reader, db.writing() as s:
        reader.execute(select(1))
        make_prison(s)
    with db.read_session() as s:
        from visits.prison import Prison

        assert s.scalar(select(func.count()).select_from(Prison)) == 1


def test_a_move_to_a_womens_day_checks_who_is_coming(world):
    """A booking made on a day open to all never said the visitors' sex: moving it to a day
    for women (or men) must not let an unknown adult through."""
    sat, _, _ = ids(world)
    with world.writing() as s:
        from visits.prison import Prison

        women = make_slot(s, s.scalar(select(Prison)), SUNDAY, time(13), group=VisitorGroup.WOMEN)
        women_id = women.id
    ref, _, _ = book(world, sat, visitor("40000020", first_names="Pedro", sex=""))
    with pytest.raises(Rejected) as caught, world.writing() as s:
        move_booking(
            s,
            s.get(Booking, _booking(world, ref).id),
            slot_id=women_id,
            now=NOW,
            actor="t",
            sms_policy=SMS,
        )
    assert [(p.code, p.field) for p in caught.value.problems] == [
        (Code.VISITOR_SEX_UNKNOWN, "visitors.0.sex")
    ]
    assert _booking(world, ref).slot_id == sat


def test_the_database_itself_refuses_overbooking_and_a_second_visit_that_day(world):
    """The backstops, should a future bug skip the conditional update or the locked checks."""
    from sqlalchemy import update as sql_update
    from sqlalchemy.exc import IntegrityError

    sat, sun, _ = ids(world)
    with world.writing() as s:
        from visits.prison import Prison

        make_inmate(s, s.scalar(select(Prison)), "Q2", surname="Mamani")
    book(world, sat)
    second, _, _ = book(world, sun, inmate_code="Q2")  # the same visitor, another day: fine
    overbook = sql_update(Slot).where(Slot.id == sat).values(seats_taken=Slot.capacity + 1)
    same_day = (
        sql_update(BookingVisitor)
        .where(BookingVisitor.booking_id == _booking(world, second).id)
        .values(visit_date=SATURDAY)
    )
    for statement in (overbook, same_day):
        with pytest.raises(IntegrityError), world.writing() as s:
            s.execute(statement)
    assert seats_taken(world, sat) == 1
