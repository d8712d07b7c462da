"""The prison configuration file: parsing, applying idempotently, and protecting bookings."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, select

from notifications.outbox import MessageStatus, OutboxMessage
from notifications.senders import ConsoleSender
from tests.factories import NOW, SMS, make_inmate, request_for, visitor
from visits import closing
from visits.booking import Booking, BookingStatus, create_booking, verify_booking
from visits.inmate import Inmate
from visits.jobs import dispatch, make_dispatcher
from visits.prison import Prison, Wing
from visits.prison_config import ConfigInvalid, apply_config, parse_config
from visits.schedule import Closure, ConflictKind, ScheduleTemplate, Slot
from visits.settings import Settings
from visits.sms import TIME_CLOSED

BASE = """
[[prison]]
code = "CUS"
name = "Penal de Cusco"
timezone = "America/Lima"

[prison.rules]
booking_opens_days = 14
booking_closes_hours = 24
max_visitors = 3
visits_per_inmate_per_week = 2

[[prison.wings]]
code = "A"
name = "Pabellón A"

[[prison.schedule]]
weekday = "saturday"
start = 09:00:00
end = 11:00:00
capacity = CAPACITY
visitor_group = "men"
valid_from = 2026-01-01

[[prison.schedule]]
weekday = "sunday"
start = "09:00"
end = "11:00"
capacity = 50
visitor_group = "women"
valid_from = 2026-01-01

[[prison.closures]]
date = 2026-12-13
reason = "Requisa"
"""


def config(capacity: int = 30, extra: str = ""):
    return parse_config(BASE.replace("CAPACITY", str(capacity)) + extra)


def snapshot(db):
    with db.read_session() as s:
        return (
            [tuple(r) for r in s.execute(select(Prison.code, Prison.name, Prison.max_visitors))],
            [tuple(r) for r in s.execute(select(Wing.code, Wing.name))],
            [tuple(r) for r in s.execute(
                select(ScheduleTemplate.weekday, ScheduleTemplate.start_time,
                       ScheduleTemplate.capacity).order_by(ScheduleTemplate.id))],
            [tuple(r) for r in s.execute(
                select(Slot.id, Slot.starts_at, Slot.capacity, Slot.seats_taken,
                       Slot.template_id).order_by(Slot.id))],
            [tuple(r) for r in s.execute(select(Closure.day, Closure.reason))],
        )  # fmt: skip


def apply(db, cfg, now=NOW):
    with db.writing() as s:
        return apply_config(s, cfg, now, sms_policy=SMS)


def test_applying_twice_changes_nothing_the_second_time(db):
    first = apply(db, config())
    assert first[0].created
    assert first[0].slots.created == 4  # two Saturdays and two Sundays in 14 days
    before = snapshot(db)
    second = apply(db, config())
    assert not second[0].changed
    assert second[0].lines() == ["CUS: no changes"]
    assert snapshot(db) == before


def test_slots_follow_the_booking_window(db):
    apply(db, config())
    with db.read_session() as s:
        days = s.scalars(select(Slot.local_date).order_by(Slot.starts_at)).all()
    assert days == [date(2026, 12, 5), date(2026, 12, 6), date(2026, 12, 12), date(2026, 12, 13)]
    # A day later the window has moved on: one more Saturday? No: the 19th is 18 days away.
    later = apply(db, config(), now=NOW.replace(day=6))
    assert later[0].slots.created == 2  # Saturday 19 and Sunday 20 came into the window


def _book_seats(db, seats: int, sms_policy=SMS) -> int:
    """Book ``seats`` visitors on the first Saturday; return the slot id."""
    with db.writing() as s:
        prison = s.scalar(select(Prison))
        make_inmate(s, prison)
        slot = s.scalar(select(Slot).where(Slot.local_date == date(2026, 12, 5)))
        people = [
            visitor(f"4000000{i}", first_names=f"Juan {chr(65 + i)}", sex="M") for i in range(seats)
        ]
        create_booking(
            s,
            prison=prison,
            inmate=s.scalar(select(Inmate)),
            request=request_for(slot, *people),
            now=NOW,
            secret_key="k",
            sms_policy=sms_policy,
        )
        return slot.id


def test_a_lower_capacity_never_drops_below_seats_taken(db):
    apply(db, config(capacity=30))
    slot_id = _book_seats(db, 3)
    report = apply(db, config(capacity=2))[0]
    conflicts = report.slots.conflicts
    assert len(conflicts) == 1
    assert conflicts[0].seats_taken == 3
    assert conflicts[0].wanted_capacity == 2
    assert any("CONFLICT" in line and "below the 3 seats" in line for line in report.lines())
    with db.read_session() as s:
        booked = s.get(Slot, slot_id)
        assert (booked.capacity, booked.seats_taken) == (3, 3)
        others = s.scalars(
            select(Slot.capacity).where(Slot.id != slot_id, Slot.visitor_group == "men")
        )
        assert list(others) == [2]
    # Running the same file again changes nothing and still reports the conflict.
    again = apply(db, config(capacity=2))[0]
    assert not again.changed
    assert len(again.slots.conflicts) == 1


def test_a_removed_session_keeps_its_booked_slots(db):
    apply(db, config())
    slot_id = _book_seats(db, 1)
    text = _saturday_removed()
    report = apply(db, parse_config(text))[0]
    assert report.templates["removed"] == 1
    # The unbooked Saturday deleted, the booked one withdrawn: each counted once, as what it is.
    assert (report.slots.removed, report.slots.withdrawn) == (1, 1)
    assert "0 retimed, 1 removed, 1 withdrawn (kept for their bookings)" in "".join(report.lines())
    assert [c.kind for c in report.slots.conflicts] == [ConflictKind.WITHDRAWN]
    with db.read_session() as s:
        kept = s.get(Slot, slot_id)
        assert kept.seats_taken == 1
        assert kept.template_id is None
        assert kept.withdrawn_at == NOW
        assert s.scalar(select(func.count()).select_from(ScheduleTemplate)) == 1
    assert not apply(db, parse_config(text))[0].changed


def test_closures_follow_the_file(db):
    apply(db, config())
    moved = BASE.replace("CAPACITY", "30").replace("2026-12-13", "2026-12-12")
    report = apply(db, parse_config(moved))[0]
    assert report.closures == {"created": 1, "changed": 0, "removed": 1}
    with db.read_session() as s:
        assert s.scalars(select(Closure.day)).all() == [date(2026, 12, 12)]


def test_a_closure_on_a_booked_day_warns(db):
    apply(db, config())
    _book_seats(db, 1)
    report = apply(db, config(extra='[[prison.closures]]\ndate = 2026-12-05\nreason = "Paro"\n'))
    assert any("1 bookings fall on that day" in w for w in report[0].warnings)


PAGE = "https://visitas.example/staff/p/CUS/closures"


def _still_booked(report) -> list[str]:
    return [line for line in report.lines("https://visitas.example/") if "STILL BOOKED" in line]


def test_bookings_left_in_a_closed_time_are_told_on_every_load_until_cancelled(db):
    """The warning of the load that closed the day is easily missed: every later load says
    again what is still on there, with where to cancel it, until it is cancelled."""
    from visits.booking import Booking, cancel_booking

    apply(db, config())
    _book_seats(db, 1)
    closed = config(extra='[[prison.closures]]\ndate = 2026-12-05\nreason = "Paro"\n')
    first = apply(db, closed)[0]
    again = apply(db, closed)[0]
    assert not again.changed
    assert again.warnings == []  # the closure's own warning came once, with the first load
    for report in (first, again):
        assert report.left_on == closing.LeftOn(closed=1)
        assert _still_booked(report) == [
            "  STILL BOOKED 1 bookings in times closed to visits (their families were not told "
            "and may come), 0 in visit times no longer in the schedule (they happen unless "
            f"those times are closed): cancel them at {PAGE}, which texts each family"
        ]
    with db.writing() as s:
        cancel_booking(s, s.scalar(select(Booking)), now=NOW, actor="t", sms_policy=SMS)
    done = apply(db, closed)[0]
    assert not done.left_on
    assert done.lines() == ["CUS: no changes"]


def test_bookings_kept_in_a_removed_session_are_told_on_every_load(db):
    apply(db, config())
    _book_seats(db, 1)
    for _ in range(2):
        report = apply(db, parse_config(_saturday_removed()))[0]
        assert report.left_on == closing.LeftOn(withdrawn=1)
        assert "0 bookings in times closed to visits" in _still_booked(report)[0]
    # Closed by the file as well: counted once, as closed.
    both = _saturday_removed() + '[[prison.closures]]\ndate = 2026-12-05\nreason = "Paro"\n'
    assert apply(db, parse_config(both))[0].left_on == closing.LeftOn(closed=1)


AFTERNOON = (
    '[[prison.schedule]]\nweekday = "saturday"\nstart = 14:00:00\nend = 16:00:00\n'
    'capacity = 5\nvisitor_group = "men"\nvalid_from = 2026-01-01\n'
)


def _closing(day: str, start: str) -> str:
    return f'[[prison.closures]]\ndate = {day}\nstart = {start}\nreason = "Paro"\n'


def test_a_closure_of_one_visit_time_warns_of_its_bookings_only(db):
    apply(db, config(extra=AFTERNOON))
    slot_id = _book_seats(db, 1)
    with db.read_session() as s:
        assert s.get(Slot, slot_id).starts_at.astimezone(ZoneInfo("America/Lima")).hour == 9
    afternoon = AFTERNOON + _closing("2026-12-05", "14:00:00")
    report = apply(db, config(extra=afternoon))[0]
    assert report.closures["created"] == 1
    assert report.warnings == []  # the morning's booking is not in the closed time
    report = apply(db, config(extra=afternoon + _closing("2026-12-05", "09:00:00")))[0]
    assert report.warnings == [
        "closure 2026-12-05 09:00: 1 bookings fall in that visit time and were not cancelled; "
        "cancel them from the closures page, which tells each family"
    ]


def test_a_closure_at_a_time_no_visit_starts_is_told_on_every_load(db):
    # A slip (14:30 for 14:00) closes nothing: the session stays open to families.
    text = config(
        extra=AFTERNOON
        + _closing("2026-12-05", "14:30:00")
        + _closing("2027-02-06", "14:00:00")  # a Saturday far beyond the window: right
        + _closing("2027-02-06", "10:00:00")
        + _closing("2027-02-07", "14:00:00")  # a Sunday: its session starts at 09:00
    )
    expected = [
        f"closure {when}: no visit time starts then, so it closes nothing"
        for when in ("2026-12-05 14:30", "2027-02-06 10:00", "2027-02-07 14:00")
    ]
    assert apply(db, text)[0].warnings == expected
    again = apply(db, text)[0]
    assert again.warnings == expected
    # Running it twice changes nothing, and says so beside what is still to look at.
    assert again.lines()[:2] == ["CUS: no changes", f"  WARNING {expected[0]}"]


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ("capacity = CAPACITY", "capacity"),
        ('weekday = "saturday"', "weekday"),
        ('timezone = "America/Lima"', "timezone"),
        ("end = 11:00:00", "end must be after start"),
    ],
)
def test_mistakes_are_listed_with_their_place(broken, expected):
    replacements = {
        "capacity = CAPACITY": "capacity = -1",
        'weekday = "saturday"': 'weekday = "samedi"',
        'timezone = "America/Lima"': 'timezone = "Mars/Olympus"',
        "end = 11:00:00": "end = 08:00:00",
    }
    text = BASE.replace("CAPACITY", "30") if broken != "capacity = CAPACITY" else BASE
    text = text.replace(broken, replacements[broken])
    with pytest.raises(ConfigInvalid) as caught:
        parse_config(text)
    assert any(expected in line for line in caught.value.errors)
    assert all(line.startswith(("prison", "file", "not valid")) for line in caught.value.errors)


def test_overlapping_sessions_and_duplicates_are_refused():
    overlap = config().prisons[0].schedule[0].model_dump()
    text = BASE.replace("CAPACITY", "30") + (
        '[[prison.schedule]]\nweekday = "saturday"\nstart = 10:00:00\nend = 12:00:00\n'
        "capacity = 5\nvalid_from = 2026-06-01\n"
    )
    with pytest.raises(ConfigInvalid) as caught:
        parse_config(text)
    assert "overlap" in caught.value.errors[0]
    assert overlap["capacity"] == 30
    with pytest.raises(ConfigInvalid):
        parse_config("not toml = = =")
    with pytest.raises(ConfigInvalid):
        parse_config(BASE.replace("CAPACITY", "30") + BASE.replace("CAPACITY", "30"))


def test_rules_asking_more_adults_than_visitors_are_refused():
    # No booking could ever meet them; the browser refuses them too (schedule_edits).
    text = BASE.replace("CAPACITY", "30").replace(
        "max_visitors = 3", "max_visitors = 2\nmin_adults = 3"
    )
    with pytest.raises(ConfigInvalid) as caught:
        parse_config(text)
    assert caught.value.errors == [
        "prison[0].rules.min_adults: min_adults (3) is more than max_visitors (2): "
        "no booking could meet them"
    ]
    assert parse_config(text.replace("min_adults = 3", "min_adults = 2")).prisons[0].rules


def test_every_mistake_across_entries_is_listed_at_its_place():
    # One round of corrections must be enough: each repeat and overlap is told, where it is.
    text = (
        BASE.replace("CAPACITY", "30")
        + '[[prison.wings]]\ncode = "A"\nname = "Otro"\n'
        + '[[prison.schedule]]\nweekday = "saturday"\nstart = 10:00:00\nend = 12:00:00\n'
        + "capacity = 5\nvalid_from = 2026-06-01\n"
        + '[[prison.schedule]]\nweekday = "monday"\nstart = 10:00:00\nend = 09:00:00\n'
        + "capacity = 5\nvalid_from = 2026-06-01\nvalid_to = 2026-05-01\n"
        + '[[prison.closures]]\ndate = 2026-12-13\nreason = "Otra vez"\n'
    )
    # Each entry's own mistakes first: checks across entries read entries that are right.
    with pytest.raises(ConfigInvalid) as caught:
        parse_config(text)
    assert caught.value.errors == [
        "prison[0].schedule[3].end: end must be after start",
        "prison[0].schedule[3].valid_to: valid_to must not be before valid_from",
    ]
    with pytest.raises(ConfigInvalid) as caught:
        parse_config(text.replace("end = 09:00:00", "end = 11:00:00").replace("05-01", "07-01"))
    assert caught.value.errors == [
        "prison[0].wings[1].code: wing A repeats wings[0]",
        "prison[0].schedule[2]: saturday 10:00-12:00 overlaps schedule[0] "
        "(saturday 09:00-11:00) in time and validity",
        "prison[0].closures[1]: closure 2026-12-13 repeats closures[0]",
    ]
    with pytest.raises(ConfigInvalid) as caught:
        parse_config(BASE.replace("CAPACITY", "30") * 3)
    assert caught.value.errors == [
        "prison[1].code: prison CUS repeats prison[0]",
        "prison[2].code: prison CUS repeats prison[0]",
    ]


def test_sessions_valid_in_different_periods_may_share_a_time():
    text = BASE.replace("CAPACITY", "30").replace(
        "valid_from = 2026-01-01\n", "valid_from = 2026-01-01\nvalid_to = 2026-12-31\n", 1
    ) + (
        '[[prison.schedule]]\nweekday = "saturday"\nstart = 09:00:00\nend = 12:00:00\n'
        "capacity = 5\nvalid_from = 2027-01-01\n"
    )
    assert len(parse_config(text).prisons[0].schedule) == 3


def test_single_session_closure_in_the_file():
    cfg = config(extra='[[prison.closures]]\ndate = 2026-12-05\nstart = 09:00:00\nreason = "X"\n')
    assert cfg.prisons[0].closures[1].start == time(9)


def _saturday_removed() -> str:
    parts = BASE.replace("CAPACITY", "30").split("[[prison.schedule]]")
    return parts[0] + "[[prison.schedule]]" + parts[2]


def test_a_removed_session_with_only_cancelled_bookings_is_withdrawn_not_deleted(db):
    from visits.booking import Booking, cancel_booking

    apply(db, config())
    slot_id = _book_seats(db, 1)
    with db.writing() as s:
        cancel_booking(s, s.scalar(select(Booking)), now=NOW, actor="t", sms_policy=SMS)
    report = apply(db, parse_config(_saturday_removed()))[0]  # used to fail on the booking's key
    assert (report.slots.removed, report.slots.withdrawn) == (1, 1)
    assert report.slots.conflicts == []  # nobody holds a seat there any more
    with db.read_session() as s:
        withdrawn = s.get(Slot, slot_id)
        assert withdrawn.withdrawn_at == NOW
        assert s.scalar(select(Booking.slot_id)) == slot_id  # the history is intact
    # Not offered any more, and not bookable.
    from visits.schedule import availability

    with db.read_session() as s:
        prison = s.scalar(select(Prison))
        days = availability(s, prison, NOW, date(2026, 12, 1), date(2026, 12, 15))
        assert slot_id not in [v.slot.id for d in days for v in d.slots]
    with db.writing() as s:
        from visits.booking import slot_in_prison

        assert slot_in_prison(s, s.scalar(select(Prison)), slot_id) is None
    # The session comes back: so does the slot.
    back = apply(db, config())[0]
    assert back.slots.created == 2
    with db.read_session() as s:
        assert s.get(Slot, slot_id).withdrawn_at is None


def test_a_regrouped_slot_with_bookings_is_reported(db):
    apply(db, config())
    _book_seats(db, 1)
    anyone = BASE.replace("CAPACITY", "30").replace(
        'visitor_group = "men"', 'visitor_group = "anyone"'
    )
    report = apply(db, parse_config(anyone))[0]
    assert [(c.kind, c.seats_taken) for c in report.slots.conflicts] == [
        (ConflictKind.REGROUPED, 1)
    ]


def test_a_new_end_reaches_the_open_slots_and_booked_ones_are_reported(db):
    apply(db, config())
    slot_id = _book_seats(db, 1)
    shorter = BASE.replace("CAPACITY", "30").replace("end = 11:00:00", "end = 10:30:00")
    report = apply(db, parse_config(shorter))[0]
    assert report.slots.retimed == 2  # both Saturdays of the window
    assert [(c.kind, c.seats_taken) for c in report.slots.conflicts] == [(ConflictKind.RETIMED, 1)]
    assert any("2 retimed" in line for line in report.lines())
    with db.read_session() as s:
        saturdays = s.scalars(select(Slot).where(Slot.starts_at.isnot(None))).all()
        ends = {
            x.ends_at.astimezone(ZoneInfo("America/Lima")).strftime("%H:%M")
            for x in saturdays
            if x.local_date.weekday() == 5
        }
        assert ends == {"10:30"}
        assert s.get(Slot, slot_id).seats_taken == 1  # the booking keeps its seat
    assert not apply(db, parse_config(shorter))[0].changed  # and once is enough


def test_one_prison_failing_does_not_stop_the_others(db, monkeypatch):
    from visits import jobs

    with db.writing() as s:
        apply_config(s, parse_config(BASE.replace("CAPACITY", "30")), NOW, sms_policy=SMS)
        other = BASE.replace("CAPACITY", "30").replace('code = "CUS"', 'code = "ZZZ"')
        apply_config(s, parse_config(other), NOW, sms_policy=SMS)
        s.execute(delete(Slot))
    real = jobs.sync_slots

    def broken_for_cus(session, prison, now):
        if prison.code == "CUS":
            raise RuntimeError("boom")
        return real(session, prison, now)

    monkeypatch.setattr(jobs, "sync_slots", broken_for_cus)
    with pytest.raises(jobs.SlotSyncFailed) as failed:  # the job is seen to fail...
        jobs.sync_all_slots(db, NOW)
    reports = failed.value.reports  # ...after every other prison got its slots
    assert list(reports) == ["ZZZ"]
    assert reports["ZZZ"].created == 4
    with db.read_session() as s:
        cus = s.scalar(select(Prison.id).where(Prison.code == "CUS"))
    assert failed.value.failed == [str(cus)]


SATURDAY_CLOSED = '[[prison.closures]]\ndate = 2026-12-05\nreason = "Paro"\n'
# 08:00 in Lima on the closed Saturday: every reminder of its 09:00 visit is due.
SATURDAY_MORNING = datetime(2026, 12, 5, 13, 0, tzinfo=UTC)


def _reminders(db) -> list[tuple[MessageStatus, str | None]]:
    with db.read_session() as s:
        query = select(OutboxMessage).where(OutboxMessage.kind == "reminder")
        return [(m.status, m.error_message) for m in s.scalars(query.order_by(OutboxMessage.id))]


def test_no_reminder_goes_for_a_time_the_file_closed_until_it_opens_again(db, db_url):
    """The booking left in a closed time awaits an administrator's cancellation (which texts
    the family why): "your visit tomorrow" would send them to a closed prison."""
    apply(db, config())
    _book_seats(db, 1)
    booked = _reminders(db)
    assert booked
    assert all(status is MessageStatus.PENDING for status, _ in booked)
    for _ in range(2):  # every load: the same
        apply(db, config(extra=SATURDAY_CLOSED))
        assert _reminders(db) == [(MessageStatus.CANCELLED, TIME_CLOSED)] * len(booked)
    sender = ConsoleSender(echo=False)
    settings = Settings(database_url=db_url, secret_key="k")
    dispatch(make_dispatcher(db, settings, sender, clock=lambda: SATURDAY_MORNING))
    assert len(sender.sent) == 1  # the confirmation, queued before the closure; no reminder
    assert _reminders(db) == [(MessageStatus.CANCELLED, TIME_CLOSED)] * len(booked)
    with db.read_session() as s:
        assert s.scalar(select(Booking.status)) is BookingStatus.CONFIRMED  # not cancelled
    apply(db, config())  # the file opens the day again: the family is reminded after all
    assert _reminders(db) == booked
    dispatch(make_dispatcher(db, settings, sender, clock=lambda: SATURDAY_MORNING))
    assert _reminders(db) == [(MessageStatus.SENT, None)] * len(booked)


def test_a_booking_confirmed_in_a_time_closed_since_its_code_was_sent_gets_no_reminder(db):
    apply(db, config())
    _book_seats(db, 1, sms_policy=replace(SMS, verification=True))
    apply(db, config(extra=SATURDAY_CLOSED))
    with db.writing() as s:
        held = s.scalar(select(Booking))
        code = s.scalar(select(OutboxMessage.body).where(OutboxMessage.kind == "code"))
        verify_booking(
            s, held, re.search(r"\b(\d{6})\b", code).group(1), now=NOW,
            sms_policy=replace(SMS, verification=True),
        )  # fmt: skip
        assert held.status is BookingStatus.CONFIRMED
    assert _reminders(db) == []
