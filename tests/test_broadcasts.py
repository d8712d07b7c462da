"""An administrator's message to every family booked on some days: count and text first,
then one SMS per phone, once however often sent; on each database."""

from __future__ import annotations

import dataclasses
import re
import time as time_module
from datetime import date, time, timedelta

import pytest
from sqlalchemy import select

from notifications.outbox import MessageStatus, OutboxMessage
from notifications.recipients import opt_out
from tests.factories import NOW, make_slot
from tests.staffing import make_staff, sign_in, staff_token
from tests.test_closures import book_one, quencoro_days, try_booking
from tests.test_pages import form_fields, text
from tests.test_races import race
from visits import broadcasts
from visits.audit import AuditEvent
from visits.broadcasts import BroadcastRequest, new_key, send
from visits.i18n import format_clock
from visits.prison import prison_by_code
from visits.problems import Code, Rejected
from visits.staff import StaffRole

PAGE = "/staff/p/QUENCORO/broadcast"
_KEY = re.compile(r'name="key" value="([^"]+)"')
TEXT_ES = "Mañana la entrada es por la puerta 2 (Av. Las Flores). Traiga su DNI, está prohibido."
# Named as every SMS of the service names its prison, in GSM-7: ñ is in it, á is not.
NAMED = "Penal de Cusco (Quencoro) - demo: "
AS_SENT = (
    NAMED + "Mañana la entrada es por la puerta 2 (Av. Las Flores). Traiga su DNI, esta prohibido."
)
TEXT_EN = "Tomorrow the entrance is gate 2 (Av. Las Flores). Bring your ID."


@pytest.fixture
def families(make_client, db):
    """On Wednesday 2 December: a family with two bookings, one in English, one that asked
    for no more messages, one that cancelled; a family the week after; and one booked at the
    women's prison that day. Quencoro's administrator signed in."""
    make_staff(db, "admin", StaffRole.ADMIN)
    client = make_client()
    day = {
        s["local_start"]: s["id"]
        for d in quencoro_days(client)
        if d["date"] == "2026-12-02"
        for s in d["slots"]
    }
    wednesday = next(d for d in quencoro_days(client) if d["date"] == "2026-12-09")
    book_one(client, day["09:00"], "Q10001", "Yupanqui", "41111111", "987654321")
    book_one(client, day["11:30"], "Q10002", "Puma", "42222222", "987654321")
    book_one(client, day["11:30"], "Q10003", "Hancco", "43333333", "987654322", "en")
    book_one(client, day["09:00"], "Q10004", "Flores", "44444444", "987654323")
    gone = try_booking(client, day["09:00"], "Q10005", "Quispe", "45555555", "987654324")
    reference, token = gone.json()["reference"], gone.json()["manage_token"]
    cancelled = client.post(
        f"/api/v1/bookings/{reference}/cancel", headers={"Authorization": f"Bearer {token}"}
    )
    assert cancelled.status_code == 200, cancelled.text
    next_week = wednesday["slots"][0]["id"]
    book_one(client, next_week, "Q10006", "Huillca", "46666666", "987654325")
    with db.writing() as s:
        women = make_slot(s, prison_by_code(s, "MUJERES-CUSCO"), date(2026, 12, 2), time(10)).id
    elsewhere = try_booking(client, women, "M10001", "Auccapuma", "47777777", "987654326",
                            prison="MUJERES-CUSCO")  # fmt: skip
    assert elsewhere.status_code == 201, elsewhere.text
    with db.writing() as s:
        opt_out(s, "+51987654323", "sms", NOW)
    assert sign_in(client, "admin").status_code == 303
    return client


def _form(client, **changes):
    return {
        "csrf_token": staff_token(client),
        "first": "2026-12-02",
        "last": "2026-12-02",
        "text_es": TEXT_ES,
        "text_en": TEXT_EN,
    } | changes


def _broadcasts(db) -> dict[str, OutboxMessage]:
    with db.read_session() as s:
        query = select(OutboxMessage).where(OutboxMessage.kind == "broadcast")
        return {m.recipient: m for m in s.scalars(query)}


def test_the_preview_counts_the_families_and_shows_the_text_as_it_goes(families, db):
    preview = families.post(f"{PAGE}/preview", data=_form(families))
    assert preview.status_code == 200
    shown = text(preview)
    assert "2 familias lo recibirán" in shown
    assert "1 familia más pidió no recibir mensajes" in shown
    assert AS_SENT in shown  # as it goes: the prison's name first, in GSM-7
    assert NAMED + TEXT_EN in shown
    assert _broadcasts(db) == {}  # looking sends nothing


def test_sending_reaches_each_family_once_in_its_language_and_only_once(families, db):
    preview = families.post(f"{PAGE}/preview", data=_form(families))
    form = _form(families, key=_KEY.search(preview.text).group(1))
    sent = families.post(PAGE, data=form, follow_redirects=False)
    assert sent.status_code == 303
    assert "Enviado a 2 familias" in text(families.get(sent.headers["location"]))
    messages = _broadcasts(db)
    assert set(messages) == {"+51987654321", "+51987654322", "+51987654323"}
    assert messages["+51987654321"].body == AS_SENT
    assert messages["+51987654322"].body == NAMED + TEXT_EN
    assert messages["+51987654323"].status is MessageStatus.CANCELLED  # opted out
    assert messages["+51987654321"].subject == "prison:QUENCORO:broadcast"
    with db.read_session() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "broadcast.sent"))
    assert (event.actor, event.details["families"], event.details["queued"]) == (
        "staff:admin",
        3,
        2,
    )
    again = families.post(PAGE, data=form, follow_redirects=False)  # a double click
    assert "ya se envió" in text(families.get(again.headers["location"]))
    assert len(_broadcasts(db)) == 3
    listed = text(families.get("/staff/messages"))
    assert "Mensaje a las familias de un día" in listed
    assert "pris-on" not in listed  # a broadcast has no booking reference to show


def test_the_segments_shown_count_the_prisons_name(families, db):
    preview = families.post(f"{PAGE}/preview", data=_form(families, text_es="x" * 140))
    assert preview.status_code == 200
    assert f"{NAMED}{'x' * 140} 2 SMS" in text(preview)  # 1 SMS without the name


def test_without_an_english_text_everyone_gets_the_spanish_one(families, db):
    preview = families.post(f"{PAGE}/preview", data=_form(families, text_en=" "))
    form = _form(families, text_en=" ", key=_KEY.search(preview.text).group(1))
    assert families.post(PAGE, data=form, follow_redirects=False).status_code == 303
    assert _broadcasts(db)["+51987654322"].body == AS_SENT


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"text_es": "  "}, "Completa este dato"),
        ({"text_es": "x" * 460}, "ocupa más de 3 SMS"),
        ({"text_es": "x" * 440}, "ocupa más de 3 SMS"),  # 3 SMS, but not with the name
        ({"first": "2026-11-30", "last": "2026-11-30"}, "Este día ya pasó"),
        ({"last": "2027-02-01"}, "como máximo 31 días"),
        ({"first": ""}, "Completa este dato"),
        ({"first": "mañana"}, "Escribe la fecha"),
    ],
)
def test_a_message_that_cannot_go_sends_nothing(families, db, changes, expected):
    for path in (f"{PAGE}/preview", PAGE):
        answer = families.post(path, data=_form(families, key="k" * 24, **changes))
        assert answer.status_code == 422, path
        assert expected in text(answer), path
    assert _broadcasts(db) == {}


def test_a_forged_key_sends_nothing(families, db):
    answer = families.post(PAGE, data=_form(families, key="<x>"))
    assert answer.status_code == 422
    assert _broadcasts(db) == {}


def test_two_sends_of_one_preview_at_the_same_instant_send_once(families, db):
    """A double click lands as two requests at once: one sends, the other finds it sent."""
    request = BroadcastRequest(date(2026, 12, 2), date(2026, 12, 2), {"es": TEXT_ES}, new_key())

    def send_once(_: int) -> str:
        with db.writing() as s:
            queued = send(
                s, prison_by_code(s, "QUENCORO"), request, now=NOW, actor="staff:admin", origin=""
            )
        return "again" if queued is None else f"sent:{queued}"

    assert race(2, send_once) == {"sent:2": 1, "again": 1}
    assert len(_broadcasts(db)) == 3


def test_two_previews_of_one_message_sent_at_the_same_instant_send_once(families, db, monkeypatch):
    """Two administrators click Send together: one sends, the other is told it went."""
    checked = broadcasts.repeated

    def slowly(*args, **kwargs):  # both would check before either has sent, but for the lock
        found = checked(*args, **kwargs)
        time_module.sleep(0.3)
        return found

    monkeypatch.setattr(broadcasts, "repeated", slowly)

    def send_once(_: int) -> str:
        wanted = BroadcastRequest(date(2026, 12, 2), date(2026, 12, 2), {"es": TEXT_ES}, new_key())
        try:
            with db.writing() as s:
                queued = send(
                    s, prison_by_code(s, "QUENCORO"), wanted, now=NOW, actor="cli", origin=""
                )
        except Rejected as refused:
            return str(refused.codes)
        return f"sent:{queued}"

    assert race(2, send_once) == {"sent:2": 1, str({Code.BROADCAST_REPEATED}): 1}


def test_a_date_far_off_is_refused_plainly(families, db):
    answer = families.post(f"{PAGE}/preview", data=_form(families, first="9999-12-31"))
    assert answer.status_code == 422
    assert "de aquí a 1 año como máximo" in text(answer)


def test_going_back_from_the_preview_keeps_the_days_and_the_texts_typed(families, db):
    typed = _form(families, last="2026-12-03", text_es='Puerta "2" & <norte>.\r\nTraiga su DNI.')
    preview = families.post(f"{PAGE}/preview", data=typed)
    assert preview.status_code == 200
    back = families.post(f"{PAGE}/edit", data=form_fields(preview.text, f"{PAGE}/edit"))
    assert back.status_code == 200
    shown = form_fields(back.text, f"{PAGE}/preview")
    assert shown.pop("csrf_token")
    assert shown == {name: value for name, value in typed.items() if name != "csrf_token"}
    assert _broadcasts(db) == {}  # going back sends nothing


def _sent(db) -> int:
    """Broadcast messages queued, however many to one phone."""
    with db.read_session() as s:
        return len(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "broadcast")).all())


def prison_tz(db):
    with db.read_session() as s:
        return prison_by_code(s, "QUENCORO").tz


def _preview_key(client, **changes) -> str:
    return _KEY.search(client.post(f"{PAGE}/preview", data=_form(client, **changes)).text)[1]


def test_a_second_preview_of_a_message_sent_just_now_needs_send_it_again(families, db):
    """Two administrators (or two tabs) preview the same message: their keys differ, yet the
    families must not get it twice unless the second one says so."""
    first, second = _preview_key(families), _preview_key(families)
    assert families.post(PAGE, data=_form(families, key=first)).status_code == 200
    assert _sent(db) == 3
    refused = families.post(PAGE, data=_form(families, key=second))
    assert refused.status_code == 409
    said = text(refused)
    when = format_clock(NOW, prison_tz(db))
    assert f"{when} by Admin (admin)" in said or f"{when} por Admin (admin)" in said
    assert 'name="again"' in refused.text
    assert _sent(db) == 3  # nothing more went
    again = families.post(f"{PAGE}/preview", data=_form(families))
    assert "Admin (admin)" in text(again)  # a new preview says it before anyone sends
    assert 'name="again"' in again.text
    sent = families.post(PAGE, data=_form(families, key=second, again="1"), follow_redirects=False)
    assert sent.status_code == 303
    assert _sent(db) == 6  # asked for: each family gets it once more


def test_only_the_same_text_to_the_same_days_within_half_an_hour_is_held_back(families, db):
    def sending(at, **changes):
        texts = {"es": changes.pop("es", TEXT_ES)}
        wanted = BroadcastRequest(date(2026, 12, 2), date(2026, 12, 2), texts, new_key())
        wanted = dataclasses.replace(wanted, **changes)
        with db.writing() as s:
            return send(s, prison_by_code(s, "QUENCORO"), wanted, now=at, actor="cli", origin="")

    assert sending(NOW) == 2
    with pytest.raises(Rejected) as held:
        sending(NOW + timedelta(minutes=29), es=f"  {TEXT_ES.upper()}\n")  # retyped alike
    assert held.value.codes == {Code.BROADCAST_REPEATED}
    assert held.value.problems[0].params["by"] == "cli"
    assert sending(NOW + timedelta(minutes=1), es=TEXT_ES + " Gracias.") == 2
    assert sending(NOW + timedelta(minutes=1), last=date(2026, 12, 3)) == 2
    assert sending(NOW + timedelta(minutes=31)) == 2


def test_a_family_that_books_after_a_message_reads_it_on_its_booking_page(families, db):
    """The message reached the bookings made before it; one made after it gets no SMS of it,
    but its page shows it, in its language."""
    sent = families.post(PAGE, data=_form(families, key=_preview_key(families)))
    assert sent.status_code == 200
    slots = {d["date"]: d["slots"][0]["id"] for d in quencoro_days(families)}

    def page_of(day, inmate, surname, dni, language="es"):
        booked = try_booking(families, slots[day], inmate, surname, dni, "987654329", language)
        assert booked.status_code == 201, booked.text
        answer = booked.json()
        return text(families.get(f"/b/{answer['reference']}?token={answer['manage_token']}"))

    assert AS_SENT in page_of("2026-12-02", "Q10005", "Quispe", "48888888")
    assert NAMED + TEXT_EN in page_of("2026-12-02", "Q10006", "Huillca", "48888889", "en")
    assert "Las Flores" not in page_of("2026-12-09", "Q10002", "Puma", "48888890")  # other day
