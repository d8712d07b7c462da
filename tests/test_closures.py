"""Administrators close a day or a visit time: the bookings it cancels are shown first, then
closing, cancelling and each family's SMS happen together; on each database."""

from __future__ import annotations

import html
import re
from datetime import date, time, timedelta
from urllib.parse import unquote

import pytest
from sqlalchemy import func, select

from notifications.outbox import OutboxMessage
from tests.factories import NOW, SMS, make_inmate, make_prison, make_slot, request_for, visitor
from tests.staffing import make_staff, sign_in, staff_token
from tests.test_api import body
from tests.test_pages import form_fields, text
from tests.test_races import LATE, attempt, booking_count, interrupted_stream, race
from visits.audit import AuditEvent
from visits.booking import Booking, BookingStatus, cancel_booking, create_booking
from visits.closing import ClosureRequest, LeftOn, close, left_on, reopen
from visits.db import Database, make_engine
from visits.demo import demo_config
from visits.inmate import Inmate
from visits.prison import Prison
from visits.prison_config import ClosureConfig, apply_config
from visits.problems import Rejected
from visits.schedule import Closure, Slot
from visits.staff import StaffRole

WEDNESDAY = "2026-12-02"  # the demo's women's day, with visits at 09:00 and 11:30
PAGE = "/staff/p/QUENCORO/closures"
_SHOWN = re.compile(r'name="shown" value="([^"]*)"')
_KEY = re.compile(r'name="key" value="([^"]*)"')


def quencoro_days(client) -> list[dict]:
    return client.get("/api/v1/prisons/QUENCORO/slots").json()["days"]


def try_booking(client, slot_id, inmate, surname, dni, phone, language="es", prison="QUENCORO"):
    """The API's answer to one adult visitor booking ``inmate`` (code, first surname)."""
    visitors = [
        {
            "first_names": "Ana",
            "last_names": "Quispe",
            "doc_type": "dni",
            "doc_number": dni,
            "birth_date": "1985-07-25",
            "relationship": "partner",
            "sex": "F",
        }
    ]
    payload = body(slot_id, inmate=inmate, surname=surname, visitors=visitors, phone=phone)
    return client.post("/api/v1/bookings", json=payload | {"language": language, "prison": prison})


def book_one(client, slot_id, inmate, surname, dni, phone, language="es") -> str:
    answer = try_booking(client, slot_id, inmate, surname, dni, phone, language)
    assert answer.status_code == 201, answer.text
    return answer.json()["reference"].replace("-", "")


@pytest.fixture
def wednesday(make_client, db):
    """Three bookings on Wednesday (two at 09:00, one in English at 11:30), a Friday one,
    and Quencoro's administrator signed in."""
    make_staff(db, "admin", StaffRole.ADMIN)
    make_staff(db, "admin.mujeres", StaffRole.ADMIN, ("MUJERES-CUSCO",))
    client = make_client()
    day = {
        s["local_start"]: s
        for d in quencoro_days(client)
        if d["date"] == WEDNESDAY
        for s in d["slots"]
    }
    other = next(
        s
        for d in quencoro_days(client)
        if d["date"] > WEDNESDAY
        for s in d["slots"]
        if s["state"] == "open" and s["visitor_group"] == "women"
    )
    refs = {
        "nine_a": book_one(
            client, day["09:00"]["id"], "Q10001", "Yupanqui", "41111111", "987654321"
        ),
        "nine_b": book_one(client, day["09:00"]["id"], "Q10002", "Puma", "42222222", "987654322"),
        "half_eleven": book_one(
            client, day["11:30"]["id"], "Q10003", "Hancco", "43333333", "987654323", "en"
        ),
        "later": book_one(client, other["id"], "Q10004", "Flores", "44444444", "987654324"),
    }
    assert sign_in(client, "admin").status_code == 303
    return client, refs, day


def status_of(db, reference) -> BookingStatus:
    with db.read_session() as s:
        return s.scalar(select(Booking.status).where(Booking.reference == reference))


def _closed_sms(db) -> dict[str, OutboxMessage]:
    with db.read_session() as s:
        return {
            m.subject.removeprefix("booking:"): m
            for m in s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "closed"))
        }


def _preview(client, start="", reason="Requisa de seguridad"):
    return client.post(
        f"{PAGE}/preview",
        data={
            "csrf_token": staff_token(client),
            "day": WEDNESDAY,
            "start": start,
            "reason": reason,
        },
    )


def _confirm(client, preview, **changes):
    data = {
        "csrf_token": staff_token(client),
        "day": WEDNESDAY,
        "start": "",
        "reason": "Requisa de seguridad",
        "shown": _SHOWN.search(preview.text).group(1),
        "key": _KEY.search(preview.text).group(1),
    }
    return client.post(PAGE, data=data | changes, follow_redirects=False)


def test_closing_a_day_shows_its_bookings_then_cancels_them_and_tells_each_family(wednesday, db):
    client, refs, day = wednesday
    page = client.get(PAGE, params={"day": WEDNESDAY})
    assert page.status_code == 200
    shown = text(page)
    assert "11:30–13:30 · 1 de 150 lugares reservados" in shown  # each session, with its seats
    assert "14:00–16:00 · Cerrado: Actividad por el Día de la Familia" in shown  # the file's

    preview = _preview(client)
    assert preview.status_code == 200
    shown = text(preview)
    assert "Se cancelarán 3 reservas" in shown
    for key in ("nine_a", "nine_b", "half_eleven"):
        assert refs[key][:4] in shown
    assert refs["later"][:4] not in shown
    # Looking changes nothing.
    assert status_of(db, refs["nine_a"]) is BookingStatus.CONFIRMED

    done = _confirm(client, preview)
    assert done.status_code == 303
    assert "Se cancelaron 3 reservas" in text(client.get(done.headers["location"]))
    for key in ("nine_a", "nine_b", "half_eleven"):
        assert status_of(db, refs[key]) is BookingStatus.CANCELLED
    assert status_of(db, refs["later"]) is BookingStatus.CONFIRMED
    with db.read_session() as s:
        assert s.get(Slot, day["09:00"]["id"]).seats_taken == 0
        closure = s.scalar(select(Closure).where(Closure.created_by.is_not(None)))
        assert (closure.day, closure.start_time) == (date(2026, 12, 2), None)
        assert closure.created_by == "staff:admin"
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "closure.created"))
        assert sorted(event.details["cancelled"]) == sorted(
            refs[k] for k in ("nine_a", "nine_b", "half_eleven")
        )
        assert event.origin == "testclient"
        cancelled = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "booking.cancelled_closed")
        ).all()
        assert {e.details["reason"] for e in cancelled} == {"Requisa de seguridad"}

    sms = _closed_sms(db)
    assert set(sms) == {refs[k] for k in ("nine_a", "nine_b", "half_eleven")}
    assert "cancelada" in sms[refs["nine_a"]].body  # in each family's language
    assert sms[refs["nine_a"]].recipient == "+51987654321"
    assert "is cancelled" in sms[refs["half_eleven"]].body
    # Families see the day closed, with the reason.
    day_after = next(d for d in quencoro_days(client) if d["date"] == WEDNESDAY)
    assert day_after["closed_reason"] == "Requisa de seguridad"
    history = text(client.get(f"/staff/p/QUENCORO/bookings/{refs['nine_a']}"))
    assert "Cancelada: el penal cerró este horario" in history


def test_closing_one_visit_time_leaves_the_other_times_of_the_day(wednesday, db):
    client, refs, _ = wednesday
    # The day may be typed as everyone writes it, where the browser shows no calendar.
    day = client.get(PAGE, params={"day": "02/12/2026"})
    assert day.status_code == 200
    assert "11:30–13:30 · 1 de 150 lugares reservados" in text(day)
    preview = _preview(client, start="09:00")
    assert "Se cancelarán 2 reservas" in text(preview)
    assert _confirm(client, preview, start="09:00").status_code == 303
    assert status_of(db, refs["nine_a"]) is BookingStatus.CANCELLED
    assert status_of(db, refs["half_eleven"]) is BookingStatus.CONFIRMED
    assert set(_closed_sms(db)) == {refs["nine_a"], refs["nine_b"]}


def test_bookings_made_after_the_preview_are_cancelled_too_and_counted(wednesday, db):
    client, _, day = wednesday
    preview = _preview(client)
    assert "Se cancelarán 3 reservas" in text(preview)
    # A family books while the administrator reads the list: it must not come to a closed
    # prison either.
    late = book_one(client, day["11:30"]["id"], "Q10005", "Quispe", "45555555", "987654325")
    done = _confirm(client, preview)
    assert done.status_code == 303
    shown = text(client.get(done.headers["location"]))
    assert "Se cancelaron 4 reservas" in shown
    assert "1 de ellas se reservó después de que miraste la lista" in shown
    assert status_of(db, late) is BookingStatus.CANCELLED
    assert late in _closed_sms(db)


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"reason": "  "}, "Completa este dato"),
        ({"reason": "x" * 201}, "como máximo 200"),
        ({"day": "2026-11-30"}, "Este día ya pasó"),
        ({"day": "30/11/2026"}, "Este día ya pasó"),  # read as typed, and past
        ({"day": "el miércoles"}, "Escribe la fecha"),
        ({"start": "10:15"}, "No hay horario de visita a esa hora"),
        ({"start": "nueve"}, "Elige una de las opciones"),
        ({"start": "09:00+05:00"}, "Elige una de las opciones"),
        ({"start": "09:00:00.5"}, "Elige una de las opciones"),
    ],
)
def test_a_closure_that_cannot_be_made_changes_nothing(wednesday, db, form, expected):
    client, refs, _ = wednesday
    data = {"csrf_token": staff_token(client), "day": WEDNESDAY, "start": "", "reason": "Requisa"}
    data |= form
    for path in (f"{PAGE}/preview", PAGE):
        answer = client.post(path, data=data | {"shown": "0"}, follow_redirects=False)
        assert answer.status_code == 422, path
        assert expected in text(answer), path
    with db.read_session() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.entity == "closure")
            )
            == 0
        )
    assert status_of(db, refs["nine_a"]) is BookingStatus.CONFIRMED


def test_a_day_already_closed_cannot_be_closed_again(wednesday):
    client, _, _ = wednesday
    assert _confirm(client, _preview(client)).status_code == 303
    again = _preview(client, start="11:30")
    assert again.status_code == 422
    assert "ya está cerrado" in text(again)
    # Another confirmation (another key) is refused as well: only the same one is answered.
    data = {"csrf_token": staff_token(client), "day": WEDNESDAY, "start": "", "shown": "",
            "reason": "Requisa de seguridad", "key": "another-preview-key-0123"}  # fmt: skip
    again = client.post(PAGE, data=data, follow_redirects=False)
    assert again.status_code == 422
    assert "ya está cerrado" in text(again)


def test_confirming_a_closure_twice_closes_once_and_answers_the_same(wednesday, db):
    """A double click on "Cerrar", or a reload of its answer's post: the second post finds
    the first done and answers as it did, with nothing cancelled, told or recorded twice."""
    client, _, day = wednesday
    preview = _preview(client)
    late = book_one(client, day["11:30"]["id"], "Q10005", "Quispe", "45555555", "987654325")
    first = _confirm(client, preview)
    assert first.status_code == 303
    second = _confirm(client, preview)
    assert second.status_code == 303
    assert second.headers["location"] == first.headers["location"]
    shown = text(client.get(second.headers["location"]))
    assert "Se cancelaron 4 reservas" in shown
    assert "reciben un SMS. 1 de ellas se reservó después de que miraste la lista" in shown
    assert status_of(db, late) is BookingStatus.CANCELLED
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Closure).where(
            Closure.created_by.is_not(None))) == 1  # fmt: skip
        events = s.scalars(select(AuditEvent.action).where(AuditEvent.entity == "closure")).all()
        assert events == ["closure.created"]
    assert len(_closed_sms(db)) == 4


def test_reopening_lets_families_book_again_and_keeps_the_cancellations(wednesday, db):
    client, refs, day = wednesday
    assert _confirm(client, _preview(client, start="09:00"), start="09:00").status_code == 303
    with db.read_session() as s:
        closure_id = s.scalar(select(Closure.id).where(Closure.created_by.is_not(None)))
        file_closure = s.scalar(select(Closure.id).where(Closure.created_by.is_(None)))
    page = client.get(PAGE)
    assert "Abrir de nuevo" in text(page)
    assert "el archivo de configuración" in text(page)  # the file's own: not reopened here

    token = staff_token(client)
    refused = client.post(f"{PAGE}/{file_closure}/reopen", data={"csrf_token": token})
    assert refused.status_code == 404
    done = client.post(
        f"{PAGE}/{closure_id}/reopen", data={"csrf_token": token}, follow_redirects=False
    )
    assert done.status_code == 303
    assert status_of(db, refs["nine_a"]) is BookingStatus.CANCELLED
    state = next(
        s
        for d in quencoro_days(client)
        if d["date"] == WEDNESDAY
        for s in d["slots"]
        if s["id"] == day["09:00"]["id"]
    )
    assert state["state"] == "open"
    with db.read_session() as s:
        assert s.get(Closure, closure_id) is None
        assert s.scalar(select(AuditEvent).where(AuditEvent.action == "closure.reopened"))


def test_reopening_twice_opens_once_and_answers_the_same(wednesday, db):
    """A double click on "Abrir de nuevo": the second post finds the closure reopened by the
    first and says it is open again, as the first answer did (it said "page not found")."""
    client, _, _ = wednesday
    assert _confirm(client, _preview(client, start="09:00"), start="09:00").status_code == 303
    with db.read_session() as s:
        closure_id = s.scalar(select(Closure.id).where(Closure.created_by.is_not(None)))
    path, token = f"{PAGE}/{closure_id}/reopen", staff_token(client)
    first = client.post(path, data={"csrf_token": token}, follow_redirects=False)
    second = client.post(path, data={"csrf_token": token}, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert second.headers["location"] == first.headers["location"]
    assert "Abierto de nuevo para nuevas reservas" in text(client.get(second.headers["location"]))
    with db.read_session() as s:
        assert s.get(Closure, closure_id) is None
        reopened = s.scalars(select(AuditEvent).where(AuditEvent.action == "closure.reopened"))
        assert len(reopened.all()) == 1
    # Another prison's administrator still finds nothing there.
    assert sign_in(client, "admin.mujeres").status_code == 303
    theirs = f"/staff/p/MUJERES-CUSCO/closures/{closure_id}/reopen"
    assert client.post(theirs, data={"csrf_token": staff_token(client)}).status_code == 404


def test_two_reopens_of_one_closure_at_the_same_instant_reopen_it_once(wednesday, db):
    client, _, _ = wednesday
    assert _confirm(client, _preview(client)).status_code == 303
    with db.read_session() as s:
        closure_id = s.scalar(select(Closure.id).where(Closure.created_by.is_not(None)))

    def reopen_once(_: int) -> str:
        with db.writing() as s:
            prison = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
            done = reopen(s, prison, closure_id, now=NOW, actor="staff:admin", origin="")
        return "reopened" if done else "again"

    assert race(2, reopen_once) == {"reopened": 1, "again": 1}
    with db.read_session() as s:
        assert s.get(Closure, closure_id) is None
        reopened = s.scalars(select(AuditEvent).where(AuditEvent.action == "closure.reopened"))
        assert len(reopened.all()) == 1


def test_an_administrator_of_another_prison_cannot_reopen_its_closures(wednesday, db):
    client, _, _ = wednesday
    assert _confirm(client, _preview(client)).status_code == 303
    with db.read_session() as s:
        closure_id = s.scalar(select(Closure.id).where(Closure.created_by.is_not(None)))
    assert sign_in(client, "admin.mujeres").status_code == 303
    token = staff_token(client)
    by_url = client.post(f"{PAGE}/{closure_id}/reopen", data={"csrf_token": token})
    assert by_url.status_code == 403
    by_form = client.post(
        f"/staff/p/MUJERES-CUSCO/closures/{closure_id}/reopen", data={"csrf_token": token}
    )
    assert by_form.status_code == 404
    with db.read_session() as s:
        assert s.get(Closure, closure_id) is not None


def test_reloading_the_prison_file_keeps_what_staff_closed(wednesday, db):
    client, _, _ = wednesday
    assert _confirm(client, _preview(client)).status_code == 303
    with db.writing() as s:
        apply_config(s, demo_config(date(2026, 12, 1)), NOW, sms_policy=SMS)
    with db.read_session() as s:
        staff_made = s.scalars(select(Closure).where(Closure.created_by.is_not(None))).all()
        assert [(c.day, c.reason) for c in staff_made] == [
            (date(2026, 12, 2), "Requisa de seguridad")
        ]


def test_bookings_left_in_a_time_the_file_closed_are_cancelled_from_the_page(wednesday, db):
    """Loading a file that closes a booked day only warns: the closures page lists what is
    left there and cancels it the usual way, under the file's own closure."""
    client, refs, _ = wednesday
    config = demo_config(date(2026, 12, 1))
    quencoro = config.prisons[0]
    file_closure = ClosureConfig(date=date(2026, 12, 2), start=time(9), reason="Fumigación")
    closed = quencoro.model_copy(update={"closures": [*quencoro.closures, file_closure]})
    with db.writing() as s:
        [report, *_] = apply_config(
            s, config.model_copy(update={"prisons": [closed]}), NOW, sms_policy=SMS
        )
    assert any("closures page" in w for w in report.warnings)
    assert status_of(db, refs["nine_a"]) is BookingStatus.CONFIRMED  # the file cancels nothing
    # Missed once, it is told again: by the next load, and on the administrator's home page.
    with db.writing() as s:
        [again, *_] = apply_config(
            s, config.model_copy(update={"prisons": [closed]}), NOW, sms_policy=SMS
        )
    assert again.warnings == []
    assert "STILL BOOKED 2 bookings" in "\n".join(again.lines())
    home = text(client.get("/staff", params={"lang": "en"}))
    assert (
        "Penal de Cusco (Quencoro) - demo: 2 bookings are still on in times closed to visits, and "
        "their families have not been told." in home
    )
    assert f'href="{PAGE}"' in client.get("/staff", params={"lang": "es"}).text

    page = text(client.get(PAGE))
    assert "2 reservas siguen en pie en este horario cerrado." in page
    preview = _preview(client, start="09:00", reason="Fumigación")
    assert preview.status_code == 200
    assert "ya está cerrado" in text(preview)
    assert "Cancelar 2 reservas" in text(preview)
    assert set(_SHOWN.search(preview.text).group(1).split(",")) == {
        refs["nine_a"],
        refs["nine_b"],
    }
    done = _confirm(client, preview, start="09:00", reason="Fumigación")
    assert done.status_code == 303
    assert status_of(db, refs["nine_a"]) is BookingStatus.CANCELLED
    assert status_of(db, refs["nine_b"]) is BookingStatus.CANCELLED
    assert status_of(db, refs["half_eleven"]) is BookingStatus.CONFIRMED  # another time
    assert set(_closed_sms(db)) == {refs["nine_a"], refs["nine_b"]}
    with db.read_session() as s:
        closures = s.scalars(select(Closure).where(Closure.day == date(2026, 12, 2))).all()
        assert (time(9), None) in [(c.start_time, c.created_by) for c in closures]
        assert all(c.created_by is None for c in closures)  # no second closure of the time
        event = s.scalar(
            select(AuditEvent).where(AuditEvent.action == "closure.bookings_cancelled")
        )
        assert set(event.details["cancelled"]) == {refs["nine_a"], refs["nine_b"]}
    assert "siguen en pie" not in text(client.get(PAGE))
    assert "still on" not in text(client.get("/staff", params={"lang": "en"}))
    client.get("/staff", params={"lang": "es"})
    with db.writing() as s:
        [done, *_] = apply_config(
            s, config.model_copy(update={"prisons": [closed]}), NOW, sms_policy=SMS
        )
    assert not done.left_on
    again = _preview(client, start="09:00", reason="Fumigación")
    assert again.status_code == 422  # nothing left: closed, as before
    assert "ya está cerrado" in text(again)


def test_bookings_left_under_a_closure_are_cancelled_with_its_reason(wednesday, db):
    client, refs, _ = wednesday
    config = demo_config(date(2026, 12, 1))
    quencoro = config.prisons[0]
    whole_day = ClosureConfig(date=date(2026, 12, 2), reason="Fumigación")
    closed = quencoro.model_copy(update={"closures": [whole_day]})
    with db.writing() as s:
        apply_config(s, config.model_copy(update={"prisons": [closed]}), NOW, sms_policy=SMS)
    preview = _preview(client, start="09:00", reason="Otra razón")
    done = _confirm(client, preview, start="09:00", reason="Otra razón")
    assert done.status_code == 303
    with db.read_session() as s:
        reasons = {
            e.entity_id: e.details.get("reason")
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.action == "booking.cancelled_closed")
            )
        }
    assert reasons == {refs["nine_a"]: "Fumigación", refs["nine_b"]: "Fumigación"}
    assert status_of(db, refs["half_eleven"]) is BookingStatus.CONFIRMED


# --- Closing while families book -------------------------------------------------------------

FAMILIES = 40
SATURDAY = date(2026, 12, 5)


@pytest.fixture
def racing_db(db_url):
    database = Database(make_engine(db_url, busy_timeout_ms=60_000, pool_size=FAMILIES + 2))
    yield database
    database.dispose()


def test_a_day_closed_while_families_book_it_keeps_no_booking(racing_db):
    """Families book one Saturday while the administrator closes it: every booking either
    lands before the closure (and is cancelled by it, with its SMS) or is refused."""
    db = racing_db
    with db.writing() as s:
        prison = make_prison(s, visits_per_inmate_per_week=5)
        for i in range(FAMILIES):
            make_inmate(s, prison, f"Q{i}")
        slot_id = make_slot(s, prison, SATURDAY, capacity=200).id
        make_slot(s, prison, SATURDAY, start=time(14), capacity=200)
    request = ClosureRequest(SATURDAY, None, "Requisa")

    def closer() -> str:
        with db.writing() as s:
            cancelled = close(
                s, s.scalar(select(Prison)), request, now=NOW, actor="staff:admin", origin="",
                sms_policy=SMS,
            ).cancelled  # fmt: skip
        return f"closed:{len(cancelled)}"

    outcomes = interrupted_stream(
        FAMILIES,
        lambda: booking_count(db),
        closer,
        lambda i: attempt(db, slot_id, f"Q{i}", f"4{i:07d}"),
    )
    closed = next(o for o in outcomes if o.startswith("closed:"))
    booked = outcomes["ok"]
    assert set(outcomes) <= {closed, "ok", "slot_closed"}
    assert booked >= 1  # before the closure
    assert outcomes["slot_closed"] == FAMILIES - booked >= LATE  # after it
    assert closed == f"closed:{booked}"  # every booking that landed was cancelled
    with db.read_session() as s:
        assert s.scalar(select(func.sum(Slot.seats_taken))) == 0
        statuses = s.scalars(select(Booking.status)).all()
        assert len(statuses) == booked
        assert set(statuses) <= {BookingStatus.CANCELLED}
        told = s.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "closed")
        )
        assert told == booked


def test_a_closure_also_cancels_bookings_kept_in_a_withdrawn_session(db):
    """A session the schedule dropped keeps its bookings: closing the day must reach them."""
    with db.writing() as s:
        prison = make_prison(s)
        make_inmate(s, prison, "Q1")
        slot = make_slot(s, prison, date(2026, 12, 5))
        slot_id = slot.id
    assert attempt(db, slot_id, "Q1", "41234567") == "ok"
    with db.writing() as s:
        s.get(Slot, slot_id).withdrawn_at = NOW
    with db.writing() as s:
        request = ClosureRequest(date(2026, 12, 5), time(9), "Requisa")
        cancelled = close(
            s, s.scalar(select(Prison)), request, now=NOW, actor="staff:admin", origin="",
            sms_policy=SMS,
        ).cancelled  # fmt: skip
    assert len(cancelled) == 1
    with db.read_session() as s:
        assert s.get(Slot, slot_id).seats_taken == 0


def test_a_session_already_started_is_neither_closed_nor_emptied(db):
    """Today at 10:00 in Lima: the 09:00 session is under way, its visitors inside."""
    with db.writing() as s:
        prison = make_prison(s)
        make_inmate(s, prison, "Q1")
        started = make_slot(s, prison, date(2026, 12, 1), start=time(9)).id
        later = make_slot(s, prison, date(2026, 12, 1), start=time(15)).id
        started_booking = create_booking(
            s, prison=prison, inmate=s.scalar(select(Inmate)),
            request=request_for(started, visitor("41234567")), now=NOW - timedelta(days=3),
            secret_key="k", sms_policy=SMS,
        ).booking.reference  # fmt: skip
    with db.writing() as s:
        prison = s.scalar(select(Prison))
        refused = ClosureRequest(date(2026, 12, 1), time(9), "Requisa")
        with pytest.raises(Rejected) as caught:
            close(s, prison, refused, now=NOW, actor="a", origin="", sms_policy=SMS)
        assert caught.value.codes == {"slot_started"}  # not "passed": it is under way
    with db.writing() as s:
        whole_day = ClosureRequest(date(2026, 12, 1), None, "Requisa")
        cancelled = close(
            s, s.scalar(select(Prison)), whole_day, now=NOW, actor="a", origin="", sms_policy=SMS
        ).cancelled
    assert cancelled == []
    assert status_of(db, started_booking) is BookingStatus.CONFIRMED
    with db.read_session() as s:
        assert s.get(Slot, later).seats_taken == 0


def test_odd_numbers_in_addresses_and_forms_never_break_the_page(wednesday, db):
    client, _, _ = wednesday
    for count in ("²", "9" * 5000, "-1"):
        page = client.get(PAGE, params={"done": "closed", "count": count, "unseen": count})
        assert page.status_code == 200
    for closure_id in ("2147483648", "9" * 30, "0", "abc"):
        answer = client.post(
            f"{PAGE}/{closure_id}/reopen", data={"csrf_token": staff_token(client)}
        )
        assert answer.status_code == 404, closure_id  # no such closure: a page, not JSON
        assert "Esta página no existe" in text(answer)
    far = client.post(
        f"{PAGE}/preview",
        data={"csrf_token": staff_token(client), "day": "9999-12-31", "start": "", "reason": "x"},
    )
    assert far.status_code == 422
    assert "de aquí a 2 años como máximo" in text(far)
    # The preview's list, tampered with: the closure is made and the page still answers.
    done = _confirm(client, _preview(client), shown="²,<b>,")
    assert done.status_code == 303
    assert "Se cancelaron 3 reservas" in text(client.get(done.headers["location"]))


def test_the_language_link_of_a_preview_goes_back_to_the_page_it_came_from(wednesday):
    """A preview answers a form: its language link opens the page the form was on (staff
    pages send a same-site Referer), not the preview's address (which only takes a POST)."""
    client, _, _ = wednesday
    page = f"{PAGE}?day={WEDNESDAY}"
    preview = client.post(
        f"{PAGE}/preview",
        data={"csrf_token": staff_token(client), "day": WEDNESDAY, "start": "", "reason": "x"},
        headers={"Referer": f"https://testserver{page}"},
    )
    assert preview.status_code == 200
    link = re.search(r'href="/lang/en\?next=([^"]+)"', preview.text).group(1)
    assert unquote(link) == page
    elsewhere = client.post(
        f"{PAGE}/preview",
        data={"csrf_token": staff_token(client), "day": WEDNESDAY, "start": "", "reason": "x"},
        headers={"Referer": "https://evil.example/staff/p/QUENCORO/closures"},
    )
    link = re.search(r'href="/lang/en\?next=([^"]+)"', elsewhere.text).group(1)
    assert unquote(link) == f"{PAGE}/preview"  # another site's address is never used


def test_a_visit_time_under_way_is_shown_but_not_offered_and_is_refused_as_started(make_client, db):
    """Today at 10:00 in Lima: 07:00–09:00 is over, 09:00–11:00 under way, 15:00 to come. A
    page loaded before 09:00 and sent after is refused with what happened: it started."""
    make_staff(db, "admin", StaffRole.ADMIN)
    with db.writing() as s:
        quencoro = s.scalar(select(Prison).where(Prison.code == "QUENCORO"))
        for start in (time(7), time(9), time(15)):
            make_slot(s, quencoro, date(2026, 12, 1), start=start)
    client = make_client()
    assert sign_in(client, "admin").status_code == 303
    page = client.get(PAGE, params={"day": "2026-12-01", "lang": "en"})
    offered = re.findall(r'name="start" value="([^"]*)"', page.text)
    assert offered == ["", "15:00"]  # the whole day, and the time to come
    shown = text(page)
    assert "07:00–09:00 · Already started: it can no longer be closed" in shown
    assert "09:00–11:00 · Already started: it can no longer be closed" in shown
    for start, said in (
        ("09:00", "This visit time has already started."),
        ("07:00", "This visit time has already passed."),
    ):
        data = {"csrf_token": staff_token(client), "day": "2026-12-01", "start": start,
                "reason": "Requisa"}  # fmt: skip
        refused = client.post(f"{PAGE}/preview?lang=en", data=data)
        assert refused.status_code == 422, start
        assert said in text(refused), start


def test_going_back_from_the_preview_keeps_the_time_and_the_reason_typed(wednesday, db):
    client, refs, _ = wednesday
    reason = 'Requisa "general" & <revisión>'
    preview = _preview(client, start="11:30", reason=reason)
    assert preview.status_code == 200
    back = client.post(f"{PAGE}/edit", data=form_fields(preview.text, f"{PAGE}/edit"))
    assert back.status_code == 200
    assert re.search(r'name="start" value="11:30" checked', back.text)
    typed = re.search(r'name="reason" maxlength="200" value="([^"]*)"', back.text).group(1)
    assert html.unescape(typed) == reason
    assert f'value="{WEDNESDAY}"' in back.text  # the same day's times
    # Going back changes nothing, and the form goes on from there.
    assert status_of(db, refs["half_eleven"]) is BookingStatus.CONFIRMED
    without_token = form_fields(preview.text, f"{PAGE}/edit") | {"csrf_token": ""}
    assert client.post(f"{PAGE}/edit", data=without_token).status_code == 403


@pytest.mark.parametrize(("left", "start"), [("let in", "14:00"), ("under way", "")])
def test_a_visit_let_in_already_or_under_way_is_listed_apart_not_cancelled_and_named(
    make_client, db, left, start
):
    """Today at 10:00 a visitor came in for the 14:00 visit and the administrator closes
    14:00; or nobody came yet to the 09:00–11:00 visit under way and the administrator closes
    the day. The preview lists that booking apart (tell the gate), closing leaves it as it was
    with no SMS, and the result names it; the same confirmation sent again answers the same."""
    from tests.test_gate import left_for_the_gate, visit_left_for_gate
    from visits.reference import display

    reference, stays = visit_left_for_gate(db, left)
    make_staff(db, "admin", StaffRole.ADMIN)
    client = make_client()
    assert sign_in(client, "admin").status_code == 303
    form = {"csrf_token": staff_token(client), "day": "2026-12-01", "start": start,
            "reason": "Requisa"}  # fmt: skip
    preview = client.post(f"{PAGE}/preview?lang=en", data=form)
    shown = text(preview)
    assert "0 bookings will be cancelled" in shown
    assert "1 booking inside already or with its visit time under way: tell the gate" in shown
    assert display(reference) in shown
    data = form | {"shown": "", "key": _KEY.search(preview.text).group(1)}
    send = lambda: client.post(PAGE, data=data, follow_redirects=False)  # noqa: E731
    result = left_for_the_gate(client, db, send, reference, stays)
    assert "Closed. 0 bookings were cancelled." in result
    assert _closed_sms(db) == {}
    with db.read_session() as s:
        created = s.scalar(select(AuditEvent).where(AuditEvent.action == "closure.created"))
        assert created.details["at_gate"] == [reference]


def test_only_administrators_of_the_prison_are_told_of_bookings_kept_in_a_withdrawn_time(
    wednesday, db, make_client
):
    client, _, day = wednesday
    with db.writing() as s:
        s.get(Slot, day["11:30"]["id"]).withdrawn_at = NOW
    kept = "1 booking is kept in a visit time removed from the schedule"
    assert kept in text(client.get("/staff", params={"lang": "en"}))
    make_staff(db, "guardia", StaffRole.GUARD)
    for username in ("admin.mujeres", "guardia"):
        other = make_client()
        assert sign_in(other, username).status_code == 303
        assert "removed from the schedule" not in text(other.get("/staff", params={"lang": "en"}))


def test_what_is_left_on_counts_live_bookings_of_times_not_begun_that_are_closed(db):
    """Closed by the whole day's closure or by that time's (counted once under both); not by
    another time's closure; a time begun (its visitors inside) or a cancelled booking is not
    counted; a withdrawn time that is closed counts as closed."""
    times = [
        (date(2026, 12, 1), time(9)),  # begun at NOW (10:00 in Lima)
        (date(2026, 12, 5), time(9)),  # withdrawn, and another time of its day closed
        (date(2026, 12, 5), time(15)),  # closed
        (date(2026, 12, 6), time(9)),  # closed twice: the day, and the time
        (date(2026, 12, 6), time(9)),
        (date(2026, 12, 6), time(9)),  # cancelled
    ]
    with db.writing() as s:
        prison = make_prison(s)
        slots: dict[tuple[date, time], Slot] = {}
        for n, (day, at) in enumerate(times):
            slot = slots.get((day, at)) or make_slot(s, prison, day, start=at)
            slots[(day, at)] = slot
            booked = create_booking(
                s, prison=prison, inmate=make_inmate(s, prison, f"Q{n}"),
                request=request_for(slot, visitor(f"4123456{n}")), now=NOW - timedelta(days=3),
                secret_key="k", sms_policy=SMS,
            ).booking  # fmt: skip
        cancel_booking(s, booked, now=NOW, actor="t", sms_policy=SMS)
        slots[(date(2026, 12, 5), time(9))].withdrawn_at = NOW
        for day, at in [
            (date(2026, 12, 1), None),
            (date(2026, 12, 5), time(15)),
            (date(2026, 12, 6), None),
            (date(2026, 12, 6), time(9)),
        ]:
            s.add(Closure(prison_id=prison.id, day=day, start_time=at, reason="Requisa"))
    with db.read_session() as s:
        prison = s.scalar(select(Prison))
        assert left_on(s, [prison], NOW) == {prison.id: LeftOn(closed=3, withdrawn=1)}
        assert left_on(s, [], NOW) == {}
