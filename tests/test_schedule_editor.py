"""Administrators edit the weekly schedule and the booking rules in the browser: every change
previewed against the visit times already booked, then confirmed; on each database."""

from __future__ import annotations

import re
from datetime import date, time

import pytest
from sqlalchemy import func, select

from tests.factories import NOW, SMS
from tests.staffing import make_staff, sign_in, staff_token
from tests.test_closures import book_one, quencoro_days, try_booking
from tests.test_pages import form_fields, text
from tests.test_races import race
from visits import schedule_edits
from visits.audit import AuditEvent
from visits.demo import demo_config
from visits.prison import Prison, prison_by_code
from visits.prison_config import RulesConfig, apply_config
from visits.problems import Rejected
from visits.reference import display
from visits.rules import VisitorGroup
from visits.schedule import ScheduleTemplate, Slot
from visits.schedule_edits import ScheduleChange, WeeklySession
from visits.staff import StaffRole
from web.labels import RULE_NAMES

PAGE = "/staff/p/QUENCORO/schedule"
WEDNESDAY = date(2026, 12, 2)


@pytest.fixture
def admin(make_client, db):
    """Two bookings on Wednesday 2 December at 09:00; Quencoro's administrator signed in."""
    make_staff(db, "admin", StaffRole.ADMIN)
    client = make_client()
    nine = next(
        s["id"]
        for d in quencoro_days(client)
        if d["date"] == WEDNESDAY.isoformat()
        for s in d["slots"]
        if s["local_start"] == "09:00"
    )
    book_one(client, nine, "Q10001", "Yupanqui", "41111111", "987654321")
    book_one(client, nine, "Q10002", "Puma", "42222222", "987654322")
    assert sign_in(client, "admin").status_code == 303
    return client


def _template(db, weekday: int, start: time) -> ScheduleTemplate:
    with db.read_session() as s:
        prison = prison_by_code(s, "QUENCORO")
        return s.scalar(
            select(ScheduleTemplate).where(
                ScheduleTemplate.prison_id == prison.id,
                ScheduleTemplate.weekday == weekday,
                ScheduleTemplate.start_time == start,
            )
        )


def _slot(db, day: date, start: time) -> Slot:
    with db.read_session() as s:
        prison = prison_by_code(s, "QUENCORO")
        for slot in s.scalars(
            select(Slot).where(Slot.local_date == day, Slot.prison_id == prison.id)
        ):
            if slot.starts_at.astimezone(prison.tz).time() == start:
                return slot
    raise AssertionError("no such slot")


def _send(client, path, **data):
    return client.post(
        f"{PAGE}{path}", data={"csrf_token": staff_token(client), **data}, follow_redirects=False
    )


def _edit(template: ScheduleTemplate, **changes) -> dict[str, str]:
    p = f"t{template.id}-"
    return {
        "action": "edit",
        "template_id": str(template.id),
        f"{p}end": template.end_time.strftime("%H:%M"),
        f"{p}capacity": str(template.capacity),
        f"{p}group": template.visitor_group.value,
        f"{p}valid_to": "",
    } | {f"{p}{k}": v for k, v in changes.items()}


def test_lowering_places_is_previewed_then_stops_at_the_places_booked(admin, db):
    nine = _template(db, 2, time(9))
    page = admin.get(PAGE)
    assert page.status_code == 200
    assert "Miércoles 09:00–11:00 · 150 lugares" in text(page)
    preview = _send(admin, "/preview?lang=en", **_edit(nine, capacity="1"))
    assert preview.status_code == 200
    shown = text(preview)
    assert "02/12/2026 09:00: 2 places are booked, so it keeps 2 places instead of 1" in shown
    # A preview keeps nothing.
    assert _template(db, 2, time(9)).capacity == 150
    assert _slot(db, WEDNESDAY, time(9)).capacity == 150
    done = _send(admin, "", **_edit(nine, capacity="1"))
    assert done.status_code == 303
    assert _template(db, 2, time(9)).capacity == 1
    assert _slot(db, WEDNESDAY, time(9)).capacity == 2  # never below the places booked
    assert _slot(db, date(2026, 12, 9), time(9)).capacity == 1
    with db.read_session() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "schedule.changed"))
        assert event.details["to"]["capacity"] == 1
        assert event.actor == "staff:admin"
        assert s.scalar(select(Prison.schedule_edited_at).where(Prison.code == "QUENCORO")) == NOW


def test_a_new_end_is_previewed_then_reaches_every_dated_visit_time(admin, db):
    nine = _template(db, 2, time(9))
    preview = _send(admin, "/preview?lang=en", **_edit(nine, end="10:30"))
    assert preview.status_code == 200
    shown = text(preview)
    # Wednesdays 2 and 9, and 16: the day past the window, made before it opens.
    assert "3 visit times with another end" in shown
    assert "02/12/2026 09:00: now ends at another time, with 2 places booked before" in shown
    assert _slot(db, WEDNESDAY, time(9)).ends_at.astimezone(NOW.tzinfo).hour == 16  # 11:00
    assert _send(admin, "", **_edit(nine, end="10:30")).status_code == 303
    for day in (WEDNESDAY, date(2026, 12, 9), date(2026, 12, 16)):
        slot = _slot(db, day, time(9))
        assert (slot.ends_at - slot.starts_at).total_seconds() == 90 * 60, day
    assert _slot(db, WEDNESDAY, time(9)).seats_taken == 2


def test_a_new_weekly_visit_time_makes_its_dated_visit_times(admin, db):
    form = {
        "action": "add", "add-weekday": "4", "add-start": "15:00", "add-end": "17:00",
        "add-capacity": "40", "add-group": "anyone", "add-valid_from": "2026-12-01",
    }  # fmt: skip
    preview = _send(admin, "/preview", **form)
    assert preview.status_code == 200
    assert "2 horarios nuevos" in text(preview)  # the two Fridays of the booking window
    assert _send(admin, "", **form).status_code == 303
    assert _slot(db, date(2026, 12, 4), time(15)).capacity == 40


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"add-start": "09:30"}, "add-start", "Se superpone con el horario 09:00–11:00"),
        ({"add-end": "08:00", "add-start": "10:00"}, "add-end", "debe terminar después de empezar"),
        ({"add-start": "nueve"}, "add-start", "horas:minutos"),
        ({"add-capacity": "-3"}, "add-capacity", "número entero"),
        ({"add-valid_from": "2026-11-01"}, "add-valid_from", "Este día ya pasó"),
        ({"add-weekday": "9"}, "add-weekday", "Elige una de las opciones"),
        ({"add-group": "children"}, "add-group", "Elige una de las opciones"),
    ],
)
def test_a_weekly_visit_time_that_cannot_be_added_changes_nothing(
    admin, db, changes, field, expected
):
    form = {
        "action": "add", "add-weekday": "2", "add-start": "16:30", "add-end": "17:30",
        "add-capacity": "40", "add-group": "anyone", "add-valid_from": "2026-12-01",
    } | changes  # fmt: skip
    with db.read_session() as s:
        before = s.scalar(select(ScheduleTemplate.id).order_by(ScheduleTemplate.id.desc()))
    for path in ("/preview", ""):
        answer = _send(admin, path, **form)
        assert answer.status_code == 422, path
        assert expected in text(answer), path
        assert f'id="{field}-error"' in answer.text
    with db.read_session() as s:
        assert s.scalar(select(ScheduleTemplate.id).order_by(ScheduleTemplate.id.desc())) == before


def test_removing_a_visit_time_keeps_the_booked_dates_for_their_families(admin, db):
    nine = _template(db, 2, time(9))
    preview = _send(admin, "/preview?lang=en", action="remove", template_id=str(nine.id))
    assert "02/12/2026 09:00: no longer in the schedule, but 2 places are booked" in text(preview)
    # The booked date is kept, not counted as removed too: only the unbooked ones are gone.
    assert "2 visit times removed" in text(preview)  # 9 and 16 December
    assert "1 visit time no longer offered, kept for its bookings" in text(preview)
    assert _send(admin, "", action="remove", template_id=str(nine.id)).status_code == 303
    kept = _slot(db, WEDNESDAY, time(9))
    assert kept.withdrawn_at is not None
    assert kept.seats_taken == 2
    with pytest.raises(AssertionError):
        _slot(db, date(2026, 12, 9), time(9))  # never booked: gone


def test_one_place_booked_reads_in_the_singular_and_a_last_day_is_written_out(admin, db):
    """ "tiene 1 lugares reservados" and "hasta el 9999-12-31" among written-out dates."""
    eleven = _template(db, 2, time(11, 30))
    book_one(admin, _slot(db, WEDNESDAY, time(11, 30)).id, "Q10003", "Hancco", "43333333",
             "987654323")  # fmt: skip
    to_the_end = _send(admin, "/preview", **_edit(eleven, valid_to="31/12/9999"))
    assert "hasta el viernes, 31 de diciembre de 9999" in text(to_the_end)
    assert "9999-12-31" not in to_the_end.text.replace('value="9999-12-31"', "")
    english = {
        "capacity": ("1 place is booked, so it keeps 1 place instead of 0", {"capacity": "0"}),
        "retimed": ("with 1 place booked before", {"end": "13:00"}),
        "regrouped": ("with 1 place booked before: check that booking", {"group": "men"}),
    }
    for kind, (said, change) in english.items():
        preview = _send(admin, "/preview?lang=en", **_edit(eleven, **change))
        assert preview.status_code == 200, kind
        assert said in text(preview), kind
        assert "1 places" not in text(preview), kind
    removed = _send(admin, "/preview?lang=en", action="remove", template_id=str(eleven.id))
    assert "1 place is booked: it stays for that booking" in text(removed)


def test_booking_rules_are_checked_then_applied(admin, db):
    rules = {name: str(v) for name, v in RulesConfig().model_dump().items()}
    refused = _send(admin, "/preview", action="rules", **(rules | {"max_visitors": "0"}))
    assert refused.status_code == 422
    assert "Escribe un número entero de 1 a 10" in text(refused)
    adults = _send(admin, "/preview", action="rules", **(rules | {"min_adults": "4"}))
    assert "no pueden ser más que los visitantes" in text(adults)
    longer = rules | {"booking_opens_days": "21"}
    preview = _send(admin, "/preview", action="rules", **longer)
    assert "horarios nuevos" in text(preview)
    assert _send(admin, "", action="rules", **longer).status_code == 303
    with db.read_session() as s:
        assert prison_by_code(s, "QUENCORO").booking_opens_days == 21
        assert s.scalar(select(Slot.local_date).order_by(Slot.local_date.desc())) > date(
            2026, 12, 15
        )


def test_reloading_the_prison_file_keeps_what_was_edited_in_the_browser(admin, db):
    nine = _template(db, 2, time(9))
    assert _send(admin, "", **_edit(nine, capacity="90")).status_code == 303
    with db.writing() as s:
        reports = apply_config(s, demo_config(date(2026, 12, 1)), NOW, sms_policy=SMS)
    quencoro = next(r for r in reports if r.code == "QUENCORO")
    assert any("edited in the browser" in w for w in quencoro.warnings)
    assert _template(db, 2, time(9)).capacity == 90
    with db.writing() as s:
        apply_config(
            s, demo_config(date(2026, 12, 1)), NOW, sms_policy=SMS, overwrite_browser_edits=True
        )
    assert _template(db, 2, time(9)).capacity == 150


def test_an_unknown_visit_time_is_not_found(admin):
    for template_id in ("999999", "abc"):
        answer = _send(admin, "/preview", action="remove", template_id=template_id)
        assert answer.status_code == 404


def test_every_booking_rule_has_a_name_on_the_page():
    assert set(RULE_NAMES) == set(RulesConfig.model_fields)


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"add-start": "17:00+05:00"}, "add-start", "horas:minutos"),
        ({"add-start": "15:00Z"}, "add-start", "horas:minutos"),
        ({"add-start": "18:00:30.5"}, "add-start", "horas:minutos"),
        ({"add-end": "24:00"}, "add-end", "horas:minutos"),
        ({"add-weekday": "²"}, "add-weekday", "Elige una de las opciones"),
        ({"add-valid_from": "9999-12-31"}, "add-valid_from", "horarios nuevos"),
    ],
)
def test_odd_times_and_days_are_refused_or_harmless(admin, changes, field, expected):
    form = {
        "action": "add", "add-weekday": "4", "add-start": "16:30", "add-end": "17:30",
        "add-capacity": "40", "add-group": "anyone", "add-valid_from": "2026-12-01",
    } | changes  # fmt: skip
    answer = _send(admin, "/preview", **form)
    assert expected in text(answer)
    if answer.status_code == 422:
        assert f'id="{field}-error"' in answer.text
    else:
        assert answer.status_code == 200  # far off: valid, and makes no visit time yet


def test_a_changed_visit_time_is_shown_from_before_to_after_and_errors_sit_by_its_fields(admin, db):
    nine = _template(db, 2, time(9))
    preview = _send(admin, "/preview", **_edit(nine, capacity="120"))
    assert (
        "Miércoles 09:00–11:00 · 150 lugares · Día de visita para mujeres → "
        "Miércoles 09:00–11:00 · 120 lugares · Día de visita para mujeres"
    ) in text(preview)
    overlapping = _send(admin, "/preview", **_edit(nine, end="12:00"))  # into 11:30–13:30
    assert overlapping.status_code == 422
    assert f'id="t{nine.id}-end-error"' in overlapping.text
    assert "Se superpone con el horario 11:30–13:30" in text(overlapping)
    rules = {name: str(v) for name, v in RulesConfig().model_dump().items()}
    word = _send(admin, "/preview", action="rules", **(rules | {"adult_age": "dieciocho"}))
    assert "Escribe un número entero de 1 a 21" in text(word)
    changed = _send(admin, "/preview", action="rules", **(rules | {"max_visitors": "4"}))
    assert "Visitantes por reserva, como máximo: 3 → 4" in text(changed)


def test_two_administrators_adding_overlapping_visit_times_at_once_get_one(admin, db):
    starts = (time(15), time(16))

    def add(i: int) -> str:
        session = WeeklySession(
            weekday=4, start=starts[i], end=time(starts[i].hour + 2), capacity=40,
            visitor_group=VisitorGroup.ANYONE, valid_from=date(2026, 12, 1), valid_to=None,
        )  # fmt: skip
        try:
            with db.writing() as s:
                schedule_edits.apply(
                    s, prison_by_code(s, "QUENCORO"), ScheduleChange(session=session),
                    now=NOW, actor=f"staff:admin{i}", origin="",
                )  # fmt: skip
            return "added"
        except Rejected as rejected:
            return ",".join(sorted(rejected.codes))

    assert race(2, add) == {"added": 1, "sessions_overlap": 1}


_KEY = re.compile(r'name="key" value="([^"]*)"')
SATURDAY_AFTERNOON = {
    "action": "add", "add-weekday": "5", "add-start": "16:30", "add-end": "18:00",
    "add-capacity": "40", "add-group": "men", "add-valid_from": "2026-12-01",
}  # fmt: skip


def _saturday_afternoons(db) -> tuple[int, int]:
    """How many weekly sessions on Saturday at 16:30, and how many schedule changes made."""
    with db.read_session() as s:
        templates = s.scalar(
            select(func.count())
            .select_from(ScheduleTemplate)
            .where(ScheduleTemplate.weekday == 5, ScheduleTemplate.start_time == time(16, 30))
        )
        changes = s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "schedule.changed")
        )
    return templates, changes


def test_the_same_confirmation_sent_twice_changes_the_schedule_once(admin, db):
    """A double click on "Confirmar el cambio", or a reload of its post: the second finds the
    change made and answers as the first did, not that it overlaps the session just added."""
    preview = _send(admin, "/preview", **SATURDAY_AFTERNOON)
    assert preview.status_code == 200
    found = _KEY.search(preview.text)
    confirmation = SATURDAY_AFTERNOON | {"key": found.group(1) if found else ""}
    first = _send(admin, "", **confirmation)
    second = _send(admin, "", **confirmation)
    assert first.status_code == 303
    assert second.status_code == 303, text(second)
    assert second.headers["location"] == first.headers["location"]
    assert "Se superpone" not in text(admin.get(second.headers["location"]))
    assert _saturday_afternoons(db) == (1, 1)
    # Another preview of the same session is another change, refused as it always was.
    again = _send(admin, "/preview", **SATURDAY_AFTERNOON)
    assert again.status_code == 422
    assert "Se superpone con el horario 16:30–18:00" in text(again)


def test_one_confirmation_sent_twice_at_the_same_instant_changes_the_schedule_once(admin, db):
    session = WeeklySession(
        weekday=5, start=time(16, 30), end=time(18), capacity=40,
        visitor_group=VisitorGroup.MEN, valid_from=date(2026, 12, 1), valid_to=None,
    )  # fmt: skip
    change = ScheduleChange(session=session, key="one-preview-key-0123456789")

    def confirm(_: int) -> str:
        try:
            with db.writing() as s:
                applied = schedule_edits.apply(
                    s, prison_by_code(s, "QUENCORO"), change, now=NOW, actor="staff:admin",
                    origin="",
                )  # fmt: skip
            return "again" if applied.replayed else "added"
        except Rejected as rejected:
            return ",".join(sorted(rejected.codes))

    assert race(2, confirm) == {"added": 1, "again": 1}
    assert _saturday_afternoons(db) == (1, 1)


def test_a_removed_visit_time_stays_on_the_gates_list_and_closures_while_it_holds_bookings(
    admin, db
):
    """A weekly time removed keeps its booked dates: the guard still finds them (list, search
    by reference or document, CSV) and the closures page still offers that time to close.
    Once nothing is booked there any more, it is gone from both."""
    friday, day = date(2026, 12, 4), {"date": "2026-12-04"}
    form = {
        "action": "add", "add-weekday": "4", "add-start": "15:00", "add-end": "17:00",
        "add-capacity": "40", "add-group": "anyone", "add-valid_from": "2026-12-01",
    }  # fmt: skip
    assert _send(admin, "", **form).status_code == 303
    slot_id = _slot(db, friday, time(15)).id
    created = try_booking(admin, slot_id, "Q10003", "Hancco", "43333333", "987654323")
    assert created.status_code == 201, created.text
    ref = created.json()["reference"].replace("-", "")
    removed = _send(admin, "", action="remove", template_id=str(_template(db, 4, time(15)).id))
    assert removed.status_code == 303
    assert _slot(db, friday, time(15)).withdrawn_at is not None

    listed = admin.get("/staff/p/QUENCORO/day", params=day)
    assert f'id="slot-{slot_id}"' in listed.text
    assert f'id="b-{ref}"' in listed.text
    for query, anchor in ((ref, f"b-{ref}"), ("43333333", r"v-\d+")):
        found = admin.get(
            "/staff/p/QUENCORO/day", params=day | {"q": query}, follow_redirects=False
        )
        assert found.status_code == 303, query
        assert re.search(f"#{anchor}$", found.headers["location"]), query  # booking, visitor
    assert display(ref) in admin.get("/staff/p/QUENCORO/day.csv", params=day).text
    closures = admin.get("/staff/p/QUENCORO/closures", params={"day": "2026-12-04"})
    assert 'name="start" value="15:00"' in closures.text
    assert 'class="withdrawn"' in closures.text  # said to be no longer offered
    preview = admin.post(
        "/staff/p/QUENCORO/closures/preview",
        data={"csrf_token": staff_token(admin), "day": "2026-12-04", "start": "15:00",
              "reason": "Requisa"},
    )  # fmt: skip
    assert preview.status_code == 200
    assert created.json()["reference"] in text(preview)

    token = created.json()["manage_token"]
    cancelled = admin.post(
        f"/api/v1/bookings/{ref}/cancel", headers={"Authorization": f"Bearer {token}"}
    )
    assert cancelled.status_code == 200, cancelled.text
    assert f'id="slot-{slot_id}"' not in admin.get("/staff/p/QUENCORO/day", params=day).text
    closures = admin.get("/staff/p/QUENCORO/closures", params={"day": "2026-12-04"})
    assert 'name="start" value="15:00"' not in closures.text


ADD = {
    "action": "add", "add-weekday": "4", "add-start": "15:00", "add-end": "17:00",
    "add-capacity": "40", "add-group": "anyone", "add-valid_from": "2026-12-01",
}  # fmt: skip


def _error_fields(answer) -> set[str]:
    return set(re.findall(r'id="([\w-]+)-error"', answer.text))


def test_a_last_day_before_the_first_is_told_so_not_that_it_has_passed(admin, db):
    """Today is 1 December 2026: the 2nd has not passed, it only comes before the 28th."""
    form = ADD | {"add-valid_from": "2026-12-28", "add-valid_to": "2026-12-02"}
    for path in ("/preview?lang=en", "?lang=en"):
        answer = _send(admin, path, **form)
        assert answer.status_code == 422, path
        shown = text(answer)
        assert "The last day must be on or after the first day, Monday, December 28, 2026." in shown
        assert "already passed" not in shown
        assert _error_fields(answer) == {"add-valid_to"}
    past = _send(admin, "/preview?lang=en", **(form | {"add-valid_to": "2026-11-30"}))
    assert "This day has already passed." in text(past)  # and before the first day, too
    assert "on or after the first day" in text(past)
    nine = _template(db, 2, time(9))
    edited = _send(admin, "/preview?lang=en", **_edit(nine, valid_to="2026-11-30"))
    assert edited.status_code == 422
    assert "This day has already passed." in text(edited)


def test_every_problem_of_a_weekly_visit_time_is_told_at_once(admin, db):
    """A choice not offered no longer hides the checks of the times, days and places: one
    round of corrections is enough."""
    wrong = {
        "add-group": "children", "add-start": "10:00", "add-end": "09:00",
        "add-capacity": "20000", "add-valid_from": "2026-11-01", "add-valid_to": "2026-10-01",
    }  # fmt: skip
    answer = _send(admin, "/preview?lang=en", **(ADD | wrong))
    assert answer.status_code == 422
    assert _error_fields(answer) == {
        "add-group", "add-end", "add-capacity", "add-valid_from", "add-valid_to",
    }  # fmt: skip
    shown = text(answer)
    for said in (
        "Please choose one of the options.",
        "The visit must end after it starts.",
        "Write a whole number from 0 to 10000.",
        "This day has already passed.",
        "The last day must be on or after the first day",
    ):
        assert said in shown, said
    # An overlap is told beside a choice not offered, and a time that cannot be read hides
    # no check of the others.
    overlapping = ADD | {"add-weekday": "2", "add-start": "09:30", "add-end": "10:30"}
    answer = _send(admin, "/preview?lang=en", **(overlapping | {"add-group": "children"}))
    assert _error_fields(answer) == {"add-group", "add-start"}
    assert "This overlaps the visit time 09:00–11:00" in text(answer)
    unread = ADD | {"add-start": "nueve", "add-capacity": "-1", "add-valid_from": "2026-11-01"}
    answer = _send(admin, "/preview?lang=en", **unread)
    assert _error_fields(answer) == {"add-start", "add-capacity", "add-valid_from"}
    with db.read_session() as s:
        assert s.scalar(select(ScheduleTemplate).where(ScheduleTemplate.weekday == 4)) is None


def test_every_problem_of_the_booking_rules_is_told_at_once(admin):
    rules = {name: str(v) for name, v in RulesConfig().model_dump().items()}
    wrong = rules | {"adult_age": "dieciocho", "min_adults": "4"}
    answer = _send(admin, "/preview?lang=en", action="rules", **wrong)
    assert answer.status_code == 422
    assert _error_fields(answer) == {"adult_age", "min_adults"}
    assert "cannot be more than the visitors allowed per booking" in text(answer)


FRIDAY_WOMEN = {
    "action": "add", "add-weekday": "4", "add-start": "15:00", "add-end": "17:00",
    "add-capacity": "40", "add-group": "women", "add-valid_from": "2026-12-01",
    "add-valid_to": "2027-01-29",
}  # fmt: skip


@pytest.mark.parametrize("form", ["rules", "add", "edit"])
def test_going_back_from_the_preview_keeps_what_was_typed_and_changes_nothing(admin, db, form):
    nine = _template(db, 2, time(9))
    typed = {
        "rules": {"action": "rules"}
        | {name: str(v) for name, v in RulesConfig().model_dump().items()}
        | {"booking_opens_days": "21"},
        "add": FRIDAY_WOMEN,
        "edit": _edit(nine, end="10:30", capacity="80", group="men", valid_to="2027-01-27"),
    }[form]
    with db.read_session() as s:
        events = s.scalar(select(func.count()).select_from(AuditEvent))
    preview = _send(admin, "/preview", **typed)
    assert preview.status_code == 200, text(preview)
    back = admin.post(f"{PAGE}/edit", data=form_fields(preview.text, f"{PAGE}/edit"))
    assert back.status_code == 200
    # Every form of the page sends to the preview: the one sent is found by its fields' names.
    shown = form_fields(back.text, f"{PAGE}/preview")
    for name, value in typed.items():
        if name not in ("action", "template_id"):
            assert shown.get(name, "") == value, name
    # Going back changes nothing.
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == events
        assert prison_by_code(s, "QUENCORO").booking_opens_days != 21
    assert _template(db, 2, time(9)).capacity == nine.capacity
    assert _template(db, 4, time(15)) is None
