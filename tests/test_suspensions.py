"""Administrators suspend visits to an inmate or bar a visitor until a date: bookings in the
period are cancelled (each family told), new ones refused, and lifting reopens; on each
database."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from notifications.outbox import OutboxMessage
from tests.factories import NOW, SMS, make_inmate, make_prison, make_slot
from tests.staffing import make_staff, sign_in, staff_token
from tests.test_api import slots
from tests.test_closures import book_one, quencoro_days, status_of, try_booking
from tests.test_pages import form_fields, text
from tests.test_races import LATE, attempt, booking_count, interrupted_stream, race
from visits.audit import AuditEvent
from visits.booking import Booking, BookingStatus
from visits.db import Database, make_engine
from visits.demo import ROSTERS
from visits.inmate import InmateSuspension
from visits.prison import Prison, prison_by_code
from visits.problems import Rejected
from visits.roster import import_roster
from visits.schedule import Slot
from visits.staff import StaffRole
from visits.suspensions import Actor, lift_inmate_suspension, suspend_inmate, suspend_visitor
from visits.visitor import VisitorSuspension

PAGE = "/staff/p/QUENCORO/suspensions"


@pytest.fixture
def booked(make_client, db):
    """Quencoro's administrator signed in; bookings on the first two women's Wednesdays."""
    make_staff(db, "admin", StaffRole.ADMIN)
    make_staff(db, "admin.mujeres", StaffRole.ADMIN, ("MUJERES-CUSCO",))
    client = make_client()
    nine = {
        d["date"]: s["id"]
        for d in quencoro_days(client)
        for s in d["slots"]
        if s["local_start"] == "09:00" and s["visitor_group"] == "women"
    }
    carlos, jose = ("Q10001", "Yupanqui"), ("Q10002", "Puma")
    refs = {
        "carlos_soon": book_one(client, nine["2026-12-02"], *carlos, "41111111", "987654321"),
        "carlos_later": book_one(client, nine["2026-12-09"], *carlos, "42222222", "987654322"),
        "jose_soon": book_one(client, nine["2026-12-02"], *jose, "43333333", "987654323"),
    }
    assert sign_in(client, "admin").status_code == 303
    return client, refs, nine


def _kinds(db) -> dict[str, str]:
    with db.read_session() as s:
        return {
            subject.removeprefix("booking:"): kind
            for subject, kind in s.execute(
                select(OutboxMessage.subject, OutboxMessage.kind).where(
                    OutboxMessage.kind.in_(["inmate_suspended", "visitor_barred"])
                )
            )
        }


def _suspend_inmate(client, code, until="2026-12-31", reason="Sanción"):
    return _post(client, "/inmates", code=code, **{"inmate-until": until, "inmate-reason": reason})


def _post(client, path, **data):
    return client.post(
        f"{PAGE}{path}", data={"csrf_token": staff_token(client), **data}, follow_redirects=False
    )


def test_suspending_an_inmate_cancels_the_bookings_in_the_period_and_refuses_new_ones(booked, db):
    client, refs, nine = booked
    done = _suspend_inmate(client, "q10001", "2026-12-05", "Sanción disciplinaria")
    assert done.status_code == 303
    assert "Se canceló 1 reserva en ese periodo" in text(client.get(done.headers["location"]))
    assert status_of(db, refs["carlos_soon"]) is BookingStatus.CANCELLED
    assert status_of(db, refs["carlos_later"]) is BookingStatus.CONFIRMED  # after the period
    assert status_of(db, refs["jose_soon"]) is BookingStatus.CONFIRMED  # another inmate
    assert _kinds(db) == {refs["carlos_soon"]: "inmate_suspended"}
    with db.read_session() as s:
        body = s.scalar(select(OutboxMessage.body).where(OutboxMessage.kind == "inmate_suspended"))
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "inmate.suspended"))
    assert "suspendidas" in body
    assert "Sanción" not in body  # the reason is for staff only
    assert event.details["cancelled"] == [refs["carlos_soon"]]
    assert event.actor == "staff:admin"

    page = text(client.get(PAGE))
    assert "Carlos Yupanqui (Q10001)" in page
    assert "Sanción disciplinaria" in page
    refused = try_booking(client, nine["2026-12-02"], "Q10001", "Yupanqui", "44444444", "987654329")
    assert refused.status_code == 422
    assert [e["code"] for e in refused.json()["errors"]] == ["inmate_suspended"]

    with db.read_session() as s:
        suspension_id = s.scalar(select(InmateSuspension.id))
    lifted = _post(client, f"/inmates/{suspension_id}/lift")
    assert lifted.status_code == 303
    again = book_one(client, nine["2026-12-02"], "Q10001", "Yupanqui", "44444444", "987654329")
    assert status_of(db, again) is BookingStatus.CONFIRMED
    assert status_of(db, refs["carlos_soon"]) is BookingStatus.CANCELLED  # stays cancelled
    twice = _post(client, f"/inmates/{suspension_id}/lift")
    assert twice.status_code == 409
    assert "ya se levantó" in text(twice)


def test_a_roster_import_keeps_what_staff_suspended(booked, db):
    client, _, nine = booked
    _suspend_inmate(client, "Q10002")
    with db.writing() as s:
        prison = prison_by_code(s, "QUENCORO")
        import_roster(s, prison, ROSTERS["QUENCORO"].read_bytes(), NOW, sms_policy=SMS)
    refused = try_booking(client, nine["2026-12-09"], "Q10002", "Puma", "45555555", "987654329")
    assert [e["code"] for e in refused.json()["errors"]] == ["inmate_suspended"]


def test_barring_a_visitor_cancels_their_bookings_here_and_refuses_new_ones(booked, db):
    client, refs, nine = booked
    done = _post(
        client, "/visitors", doc_type="dni", doc_number="41.111.111",
        **{"visitor-until": "2026-12-31", "visitor-reason": "Ingresó un objeto prohibido"},
    )  # fmt: skip
    assert done.status_code == 303
    assert status_of(db, refs["carlos_soon"]) is BookingStatus.CANCELLED
    assert status_of(db, refs["jose_soon"]) is BookingStatus.CONFIRMED
    assert _kinds(db) == {refs["carlos_soon"]: "visitor_barred"}
    assert "Ana Quispe · DNI 41111111" in text(client.get(PAGE))
    answer = try_booking(client, nine["2026-12-09"], "Q10003", "Hancco", "41111111", "987654329")
    assert [e["code"] for e in answer.json()["errors"]] == ["visitor_suspended"]
    with db.read_session() as s:
        suspension = s.scalar(select(VisitorSuspension))
    assert suspension.created_by == "staff:admin"
    assert _post(client, f"/visitors/{suspension.id}/lift").status_code == 303
    again = book_one(client, nine["2026-12-09"], "Q10003", "Hancco", "41111111", "987654329")
    assert status_of(db, again) is BookingStatus.CONFIRMED


@pytest.mark.parametrize(
    ("path", "form", "field", "expected"),
    [
        ("/inmates", {"code": "Q99999"}, "code", "Ningún interno de este penal"),
        ("/inmates", {"code": " "}, "code", "Completa este dato"),
        ("/inmates", {"inmate-reason": " "}, "inmate-reason", "Completa este dato"),
        ("/inmates", {"inmate-until": "2026-11-30"}, "inmate-until", "Este día ya pasó"),
        ("/inmates", {"inmate-until": "fin de año"}, "inmate-until", "Escribe la fecha"),
        ("/inmates", {"inmate-until": ""}, "inmate-until", "Completa este dato"),
        ("/visitors", {"doc_number": "49999999"}, "doc_number", "Nadie con este documento"),
        ("/visitors", {"doc_number": ""}, "doc_number", "Completa este dato"),
        ("/visitors", {"doc_number": "123"}, "doc_number", "El DNI tiene exactamente 8"),
        ("/visitors", {"doc_type": "licencia"}, "doc_type", "Elige una de las opciones"),
        ("/visitors", {"visitor-reason": "x" * 301}, "visitor-reason", "como máximo 300"),
    ],
)
def test_a_suspension_that_cannot_be_made_changes_nothing(booked, db, path, form, field, expected):
    client, refs, _ = booked
    data = {
        "code": "Q10001", "inmate-until": "2026-12-31", "inmate-reason": "Sanción",
        "doc_type": "dni", "doc_number": "41111111", "visitor-until": "2026-12-31",
        "visitor-reason": "Incidente",
    } | form  # fmt: skip
    answer = _post(client, path, **data)
    assert answer.status_code == 422
    assert expected in text(answer)
    assert f'id="{field}-error"' in answer.text  # beside the field of the form that was sent
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(InmateSuspension)) == 0
        assert s.scalar(select(func.count()).select_from(VisitorSuspension)) == 0
    assert status_of(db, refs["carlos_soon"]) is BookingStatus.CONFIRMED


def test_an_administrator_of_another_prison_cannot_touch_these_suspensions(booked, db):
    client, _, _ = booked
    _suspend_inmate(client, "Q10001")
    with db.read_session() as s:
        suspension_id = s.scalar(select(InmateSuspension.id))
    assert sign_in(client, "admin.mujeres").status_code == 303
    token = staff_token(client)
    by_url = client.post(f"{PAGE}/inmates/{suspension_id}/lift", data={"csrf_token": token})
    assert by_url.status_code == 403
    theirs = "/staff/p/MUJERES-CUSCO/suspensions"
    by_form = client.post(f"{theirs}/inmates/{suspension_id}/lift", data={"csrf_token": token})
    assert by_form.status_code == 404
    form = {"code": "Q10002", "inmate-until": "2026-12-31", "inmate-reason": "x"}
    other_inmate = client.post(f"{theirs}/inmates", data={"csrf_token": token, **form})
    assert other_inmate.status_code == 422  # Quencoro's inmate is unknown there
    with db.read_session() as s:
        assert s.scalar(select(InmateSuspension.lifted_at)) is None
        assert s.scalar(select(func.count()).select_from(InmateSuspension)) == 1


# --- Seen before it is done ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "form", "named", "until"),
    [
        ("/inmates", {"code": "q10001", "inmate-until": "2026-12-05", "inmate-reason": "pelea"},
         "Carlos Yupanqui", "5 de diciembre de 2026"),
        ("/visitors", {"doc_type": "dni", "doc_number": "41111111", "visitor-until": "2026-12-31",
                       "visitor-reason": "pelea"}, "Ana Quispe · DNI 41111111",
         "31 de diciembre de 2026"),
    ],
)  # fmt: skip
def test_the_form_shows_who_it_found_and_what_it_cancels_before_anything_is_done(
    booked, db, path, form, named, until
):
    """A code or a document number mistyped by one digit is another person: suspending them
    would cancel a stranger's visits and text their family, for good (lifting leaves the
    bookings cancelled). So the page's form shows first whom it found and each booking it
    would cancel, and changes nothing; its confirmation does it; going back keeps the form."""
    client, refs, _ = booked
    page = client.get(PAGE).text
    assert f'action="{PAGE}{path}/preview"' in page  # the form goes to the preview first
    preview = _post(client, f"{path}/preview", **form)
    assert preview.status_code == 200
    shown = text(preview)
    assert named in shown
    assert until in shown
    assert f"{refs['carlos_soon'][:4]}-{refs['carlos_soon'][4:]}" in shown
    assert f"{refs['jose_soon'][:4]}-{refs['jose_soon'][4:]}" not in shown
    assert _suspensions(db) == (0, 0, 0)  # looking changes nothing, tells nobody
    assert _family_sms(db) == 0
    assert all(status_of(db, r) is BookingStatus.CONFIRMED for r in refs.values())

    back = client.post(f"{PAGE}/edit", data=form_fields(preview.text, f"{PAGE}/edit"))
    assert back.status_code == 200
    for name, value in form.items():
        assert f'value="{value}"' in back.text or f'value="{value}" selected' in back.text, name

    confirmation = form_fields(preview.text, f"{PAGE}{path}")
    done = client.post(f"{PAGE}{path}", data=confirmation, follow_redirects=False)
    assert done.status_code == 303
    assert status_of(db, refs["carlos_soon"]) is BookingStatus.CANCELLED
    assert status_of(db, refs["jose_soon"]) is BookingStatus.CONFIRMED
    assert _family_sms(db) == 1


def test_the_preview_marks_the_bookings_still_waiting_for_their_code(booked, db):
    """Their families get no SMS (the booking was never confirmed to them): the preview shows
    which they are, though by then, inside the rolled-back call, all are cancelled."""
    client, refs, _ = booked
    with db.writing() as s:
        waiting = s.scalar(select(Booking).where(Booking.reference == refs["carlos_soon"]))
        waiting.status = BookingStatus.HELD
        waiting.hold_expires_at = NOW + timedelta(minutes=10)
    form = {"code": "Q10001", "inmate-until": "2026-12-31", "inmate-reason": "pelea"}
    rows = {
        row.split("</td>")[1]
        for row in _post(client, "/inmates/preview", **form).text.split("<tr>")[2:]
    }
    tagged = {
        name: any(ref[:4] in row and "Por confirmar" in row for row in rows)
        for name, ref in refs.items()
    }
    assert tagged == {"carlos_soon": True, "carlos_later": False, "jose_soon": False}
    assert status_of(db, refs["carlos_soon"]) is BookingStatus.HELD  # nothing was kept


# --- The same form sent twice ---------------------------------------------------------------

_KEY = re.compile(r'name="key" value="([^"]*)"')


def _preview_key(client, path: str, form: dict[str, str]) -> str:
    """The one-off key of the confirmation a preview of ``form`` shows."""
    preview = _post(client, f"{path}/preview", **form)
    assert preview.status_code == 200, text(preview)
    return _KEY.search(preview.text).group(1)


def _suspensions(db) -> tuple[int, int, int]:
    """How many suspensions of inmates and of visitors, and how many audit events of them."""
    with db.read_session() as s:
        return (
            s.scalar(select(func.count()).select_from(InmateSuspension)),
            s.scalar(select(func.count()).select_from(VisitorSuspension)),
            s.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action.in_(["inmate.suspended", "visitor.suspended"]))
            ),
        )


def _family_sms(db) -> int:
    with db.read_session() as s:
        kinds = ["inmate_suspended", "visitor_barred"]
        query = select(func.count()).select_from(OutboxMessage)
        return s.scalar(query.where(OutboxMessage.kind.in_(kinds)))


@pytest.mark.parametrize(
    ("path", "form", "listed", "cancelled"),
    [
        ("/inmates", {"code": "Q10001", "inmate-until": "2026-12-31", "inmate-reason": "pelea"},
         "Carlos Yupanqui (Q10001)", ["carlos_soon", "carlos_later"]),
        ("/visitors", {"doc_type": "dni", "doc_number": "41111111", "visitor-until": "2026-12-31",
                       "visitor-reason": "pelea"}, "Ana Quispe · DNI 41111111", ["carlos_soon"]),
    ],
)  # fmt: skip
def test_the_same_form_sent_twice_suspends_once_and_answers_the_same(
    booked, db, path, form, listed, cancelled
):
    """A double click on "Suspender visitas" (or "Impedir visitas"), or a browser sending the
    post again: one suspension, one record, each family told once, and the second answer is
    the first's success page (not a second row to lift, which left visits suspended)."""
    client, refs, _ = booked
    key = _preview_key(client, path, form)
    first = _post(client, path, key=key, **form)
    second = _post(client, path, key=key, **form)
    assert first.status_code == second.status_code == 303
    assert second.headers["location"] == first.headers["location"]
    shown = text(client.get(second.headers["location"]))
    said = "Se canceló 1 reserva" if len(cancelled) == 1 else "Se cancelaron 2 reservas"
    assert f"Guardado. {said} en ese periodo" in shown  # as the first answer said
    assert shown.count(listed) == 1
    expected = (1, 0, 1) if path == "/inmates" else (0, 1, 1)
    assert _suspensions(db) == expected
    for name in cancelled:
        assert status_of(db, refs[name]) is BookingStatus.CANCELLED
    assert _family_sms(db) == len(cancelled)  # each family told once
    # The same key with other words is another suspension: refused while the first runs.
    reason = "inmate-reason" if path == "/inmates" else "visitor-reason"
    other = _post(client, path, key=key, **(form | {reason: "otra pelea"}))
    assert other.status_code == 422
    assert _suspensions(db) == expected


def test_the_same_suspension_sent_twice_at_the_same_instant_is_recorded_once(booked, db):
    """Two posts of one form land at once (a double click): they take turns on the inmate's
    lock, and the second finds what the first recorded."""
    _, refs, _ = booked

    def suspend_once(_: int) -> str:
        with db.writing() as s:
            suspension, cancelled, *_ = suspend_inmate(
                s, prison_by_code(s, "QUENCORO"), code="Q10001", until=date(2026, 12, 31),
                reason="pelea", by=Actor("staff:admin", "", NOW), sms_policy=SMS,
                key="one-form-key-0123456789",
            )  # fmt: skip
            return f"{suspension.id}:{sorted(b.reference for b in cancelled)}"

    outcomes = race(2, suspend_once)
    assert len(outcomes) == 1  # both answered the same
    assert sum(outcomes.values()) == 2
    cancelled = sorted([refs["carlos_soon"], refs["carlos_later"]])
    assert next(iter(outcomes)).endswith(str(cancelled))
    assert _suspensions(db) == (1, 0, 1)
    assert _family_sms(db) == 2


# --- One suspension of a person at a time ----------------------------------------------------

_SUMMARY = re.compile(r'<div class="error-summary".*?</div>', re.S)


@pytest.mark.parametrize(
    ("path", "form", "field", "kind", "listed"),
    [
        ("/inmates", {"code": "Q10001", "inmate-until": "2026-12-31", "inmate-reason": "pelea"},
         "code", InmateSuspension, "Carlos Yupanqui (Q10001)"),
        ("/visitors", {"doc_type": "dni", "doc_number": "41111111", "visitor-until": "2026-12-31",
                       "visitor-reason": "pelea"}, "doc_number", VisitorSuspension,
         "Ana Quispe · DNI 41111111"),
    ],
)  # fmt: skip
def test_a_person_suspended_already_is_not_suspended_again_until_it_is_lifted(
    booked, db, path, form, field, kind, listed
):
    """Two tabs of the page, each with its own key, both sending a suspension of the same
    person (or a post with no key, or a forged one): the first is recorded, the others are
    refused saying until when the first runs, and change nothing (else the page listed the
    person twice, and lifting one left the other in force). Once lifted, a new one is
    recorded."""
    client, _, _ = booked
    keys = [_preview_key(client, path, form) for _ in "ab"]
    assert len(set(keys)) == 2
    until = "inmate-until" if path == "/inmates" else "visitor-until"
    assert _post(client, path, key=keys[0], **form).status_code == 303
    before = (_suspensions(db), _family_sms(db))
    for key in (keys[1], "", "not a key!"):
        refused = _post(client, path, key=key, **(form | {until: "2027-01-15"}))
        assert refused.status_code == 422
        summary = _SUMMARY.search(refused.text)
        assert summary is not None
        assert "31 de diciembre de 2026" in summary.group(0)  # when the one running ends
        assert f'id="{field}-error"' in refused.text  # beside the person's field
        assert (_suspensions(db), _family_sms(db)) == before
    assert text(client.get(PAGE)).count(listed) == 1
    with db.read_session() as s:
        suspension_id = s.scalar(select(kind.id))
    assert _post(client, f"{path}/{suspension_id}/lift").status_code == 303
    again = _post(client, path, key=keys[1], **(form | {until: "2027-01-15"}))
    assert again.status_code == 303
    with db.read_session() as s:
        running = s.scalars(select(kind.until).where(kind.lifted_at.is_(None))).all()
    assert running == [date(2027, 1, 15)]


@pytest.mark.parametrize("person", ["inmate", "visitor"])
def test_two_suspensions_of_one_person_sent_at_the_same_instant_record_one(booked, db, person):
    """Two administrators (or two tabs) suspend the same person at once, each from its own
    form: they take turns on the person's lock, and the second finds the first running."""

    def suspend_once(i: int) -> str:
        try:
            with db.writing() as s:
                prison = prison_by_code(s, "QUENCORO")
                common = {
                    "until": date(2026, 12, 31), "reason": f"pelea {i}", "sms_policy": SMS,
                    "by": Actor("staff:admin", "", NOW), "key": f"form-key-{i}-0123456789abcdef",
                }  # fmt: skip
                if person == "inmate":
                    suspend_inmate(s, prison, code="Q10001", **common)
                else:
                    suspend_visitor(s, prison, doc_type="dni", doc_number="41111111", **common)
        except Rejected as rejected:
            return ",".join(sorted(rejected.codes))
        return "suspended"

    refused = "inmate_already_suspended" if person == "inmate" else "already_barred"
    assert race(2, suspend_once) == {"suspended": 1, refused: 1}
    assert _suspensions(db) == ((1, 0, 1) if person == "inmate" else (0, 1, 1))


def test_a_suspension_that_has_ended_does_not_hold_back_a_new_one(booked, db):
    """A suspension whose last day has passed runs no more: the person may be suspended
    again without lifting it first."""

    def suspend(now, until) -> None:
        with db.writing() as s:
            suspend_visitor(
                s, prison_by_code(s, "QUENCORO"), doc_type="dni", doc_number="41111111",
                until=until, reason="pelea", by=Actor("staff:admin", "", now), sms_policy=SMS,
            )  # fmt: skip

    suspend(NOW, date(2026, 12, 2))
    with pytest.raises(Rejected):
        suspend(NOW + timedelta(days=1), date(2026, 12, 31))  # its last day: it still runs
    suspend(NOW + timedelta(days=2), date(2026, 12, 31))
    assert _suspensions(db) == (0, 2, 2)


def _lifted_events(db) -> int:
    with db.read_session() as s:
        lifted = ["inmate.suspension_lifted", "visitor.suspension_lifted"]
        query = select(func.count()).select_from(AuditEvent)
        return s.scalar(query.where(AuditEvent.action.in_(lifted)))


@pytest.mark.parametrize(
    ("path", "form", "kind"),
    [
        ("/inmates", {"code": "Q10001", "inmate-until": "2026-12-31", "inmate-reason": "pelea"},
         InmateSuspension),
        ("/visitors", {"doc_type": "dni", "doc_number": "41111111", "visitor-until": "2026-12-31",
                       "visitor-reason": "pelea"}, VisitorSuspension),
    ],
)  # fmt: skip
def test_the_same_lift_sent_twice_lifts_once_and_answers_the_same(booked, db, path, form, kind):
    """A double click on "Levantar" (or Back and send again): the second answer is the first's
    success page, not "ya se levantó"; a lift from another form (another administrator's page,
    loaded before) of the suspension lifted since still says it was lifted already."""
    client, _, _ = booked
    assert _post(client, path, **form).status_code == 303
    with db.read_session() as s:
        suspension_id = s.scalar(select(kind.id))
    page = client.get(PAGE).text
    found = _KEY.search(page)
    key = found.group(1) if found else ""
    other = _KEY.search(client.get(PAGE).text)  # another rendering: another form
    lift = f"{path}/{suspension_id}/lift"
    assert f'action="{PAGE}{lift}"' in page
    first = _post(client, lift, key=key)
    second = _post(client, lift, key=key)
    assert first.status_code == second.status_code == 303
    assert second.headers["location"] == first.headers["location"]
    assert "Levantada." in text(client.get(second.headers["location"]))
    assert _lifted_events(db) == 1
    with db.read_session() as s:
        assert s.get(kind, suspension_id).lifted_by == "staff:admin"
    for stale in ({"key": other.group(1) if other else ""}, {}):
        refused = _post(client, lift, **stale)
        assert refused.status_code == 409
        assert "ya se levantó" in text(refused)
    assert _lifted_events(db) == 1


def test_the_same_lift_sent_twice_at_the_same_instant_is_done_once(booked, db):
    """Two posts of one "Levantar" land at once: they take turns on the suspension's lock, and
    the second finds the first's record and answers as it did."""
    with db.writing() as s:
        suspension, *_ = suspend_inmate(
            s, prison_by_code(s, "QUENCORO"), code="Q10001", until=date(2026, 12, 31),
            reason="pelea", by=Actor("staff:admin", "", NOW), sms_policy=SMS,
        )  # fmt: skip
        suspension_id = suspension.id

    def lift_once(_: int) -> str:
        try:
            with db.writing() as s:
                lift_inmate_suspension(
                    s, prison_by_code(s, "QUENCORO"), suspension_id,
                    Actor("staff:admin", "", NOW), key="one-lift-key-0123456789",
                )  # fmt: skip
        except Rejected as rejected:
            return str(sorted(rejected.codes))
        return "lifted"

    assert race(2, lift_once) == {"lifted": 2}
    assert _lifted_events(db) == 1


# --- Suspending while families book ----------------------------------------------------------

FAMILIES = 30
SATURDAY = date(2026, 12, 5)


def test_an_inmate_suspended_while_families_book_keeps_no_booking(db_url):
    """Families book visits to one inmate while an administrator suspends them: each booking
    lands before the suspension (and is cancelled by it) or is refused after it."""
    db = Database(make_engine(db_url, busy_timeout_ms=60_000, pool_size=FAMILIES + 2))
    with db.writing() as s:
        prison = make_prison(s, visits_per_inmate_per_week=FAMILIES)
        make_inmate(s, prison, "Q1")
        slot_id = make_slot(s, prison, SATURDAY, capacity=200).id

    def administrator() -> str:
        with db.writing() as s:
            _, cancelled, *_ = suspend_inmate(
                s, s.scalar(select(Prison)), code="Q1", until=SATURDAY, reason="Sanción",
                by=Actor("staff:admin", "", NOW), sms_policy=SMS,
            )  # fmt: skip
        return f"suspended:{len(cancelled)}"

    try:
        outcomes = interrupted_stream(
            FAMILIES,
            lambda: booking_count(db),
            administrator,
            lambda i: attempt(db, slot_id, "Q1", f"4{i:07d}"),
        )
        booked = outcomes["ok"]
        assert booked >= 1  # before the suspension
        assert outcomes[f"suspended:{booked}"] == 1  # every booking that landed was cancelled
        assert outcomes["inmate_suspended"] == FAMILIES - booked >= LATE  # after it
        with db.read_session() as s:
            assert s.scalar(select(Slot.seats_taken).where(Slot.id == slot_id)) == 0
            assert set(s.scalars(select(Booking.status))) <= {BookingStatus.CANCELLED}
    finally:
        db.dispose()


def test_a_bar_stays_within_its_prison(booked, db):
    client, refs, _ = booked
    theirs = next(
        s
        for s in slots(client, "MUJERES-CUSCO")
        if s["state"] == "open" and s["visitor_group"] in ("anyone", "women")
    )
    answer = try_booking(
        client, theirs["id"], "M10001", "Auccapuma", "46666666", "987654330", prison="MUJERES-CUSCO"
    )
    assert answer.status_code == 201, answer.text
    elsewhere = answer.json()["reference"].replace("-", "")
    # Someone who booked only at the women's prison is unknown here.
    unknown = _post(client, "/visitors", doc_type="dni", doc_number="46666666",
                    **{"visitor-until": "2026-12-31", "visitor-reason": "x"})  # fmt: skip
    assert unknown.status_code == 422
    assert "Nadie con este documento ha reservado una visita aquí" in text(unknown)
    assert "Auccapuma" not in text(unknown)
    # A visitor of both prisons barred here keeps their booking there.
    both = try_booking(
        client, theirs["id"], "M10002", "Zúñiga", "41111111", "987654331", prison="MUJERES-CUSCO"
    )
    assert both.status_code == 201, both.text
    done = _post(client, "/visitors", doc_type="dni", doc_number="41111111",
                 **{"visitor-until": "2026-12-31", "visitor-reason": "Incidente"})  # fmt: skip
    assert done.status_code == 303
    assert status_of(db, refs["carlos_soon"]) is BookingStatus.CANCELLED
    assert status_of(db, both.json()["reference"].replace("-", "")) is BookingStatus.CONFIRMED
    assert status_of(db, elsewhere) is BookingStatus.CONFIRMED
    with db.read_session() as s:
        suspension_id = s.scalar(select(VisitorSuspension.id))
    assert sign_in(client, "admin.mujeres").status_code == 303
    token = staff_token(client)
    by_url = client.post(f"{PAGE}/visitors/{suspension_id}/lift", data={"csrf_token": token})
    assert by_url.status_code == 403
    mine = f"/staff/p/MUJERES-CUSCO/suspensions/visitors/{suspension_id}/lift"
    assert client.post(mine, data={"csrf_token": token}).status_code == 404
    with db.read_session() as s:
        assert s.get(VisitorSuspension, suspension_id).lifted_at is None


def test_the_last_day_may_be_typed_day_month_year(booked, db):
    """Where the browser shows no calendar, staff type the date as everyone writes it."""
    client, refs, _ = booked
    assert _suspend_inmate(client, "Q10001", until="31/12/2026").status_code == 303
    with db.read_session() as s:
        assert s.scalar(select(InmateSuspension.until)) == date(2026, 12, 31)
    assert status_of(db, refs["carlos_later"]) is BookingStatus.CANCELLED
    # A day that does not exist is not asked for "as day/month/year" again: it was.
    client.get(f"{PAGE}?lang=en")
    answer = _post(client, "/visitors", doc_type="dni", doc_number="43333333",
                   **{"visitor-until": "31/02/2027", "visitor-reason": "x"})  # fmt: skip
    assert answer.status_code == 422
    assert "There is no such day in the calendar" in text(answer)
    assert "day/month/year" not in text(answer)
    assert 'id="visitor-until-error"' in answer.text


def test_odd_suspension_dates_and_ids_are_refused_plainly(booked, db):
    client, _, _ = booked
    far = _suspend_inmate(client, "Q10001", until="2040-01-01")
    assert far.status_code == 422
    assert "de aquí a 5 años como máximo" in text(far)
    token = staff_token(client)
    for suspension_id in ("2147483648", "0"):
        lift = client.post(f"{PAGE}/inmates/{suspension_id}/lift", data={"csrf_token": token})
        assert lift.status_code == 404  # no such suspension: a page that says so
        assert "Esta página no existe" in text(lift)
    assert client.get(PAGE, params={"done": "inmate", "count": "²"}).status_code == 200
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(InmateSuspension)) == 0


@pytest.mark.parametrize("left", ["let in", "under way"])
@pytest.mark.parametrize("path", ["/inmates", "/visitors"])
def test_a_visit_let_in_already_or_under_way_is_not_cancelled_and_the_result_names_it(
    make_client, db, path, left
):
    """Today at 10:00 a visitor came in for the 14:00 visit, or nobody came yet to the
    09:00–11:00 visit under way; then visits to the person are suspended, or the visitor
    barred. The booking stays as it was (no SMS), the result names it for the gate, and the
    same form sent again answers the same."""
    from tests.test_gate import left_for_the_gate, visit_left_for_gate

    reference, stays = visit_left_for_gate(db, left)
    make_staff(db, "admin", StaffRole.ADMIN)
    client = make_client()
    assert sign_in(client, "admin").status_code == 303
    if path == "/inmates":
        form = {"code": "Q10001", "inmate-until": "2026-12-01", "inmate-reason": "Sanción"}
    else:
        form = {"doc_type": "dni", "doc_number": "46000001", "visitor-until": "2026-12-01",
                "visitor-reason": "Pelea"}  # fmt: skip
    send = lambda: _post(client, path, key="one-form-key-0123456789", **form)  # noqa: E731
    result = left_for_the_gate(client, db, send, reference, stays)
    assert "Saved. 0 bookings in that time were cancelled." in result
    assert _kinds(db) == {}
    with db.read_session() as s:
        done = s.scalar(select(AuditEvent).where(AuditEvent.action.like("%.suspended")))
        assert done.details["at_gate"] == [reference]
