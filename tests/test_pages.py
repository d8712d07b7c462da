"""The family pages, in-process on the demo data: the flow, every refusal, and its safety."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from html import unescape
from html.parser import HTMLParser
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import pytest
from sqlalchemy import func, select, update

from tests.factories import NOW
from visits.booking import Booking, BookingStatus
from visits.db import lock_rows
from visits.rules import VisitorGroup
from visits.schedule import Slot

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(client, path="/find") -> str:
    return CSRF.search(client.get(path).text).group(1)


def text(response) -> str:
    """The visible text of a page, whitespace folded."""
    return visible(response.text)


def visible(html: str) -> str:
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", body)).split())


def identify(client, code="Q10001", surname="Yupanqui", birth_date=""):
    token = csrf(client, "/p/QUENCORO")
    return client.post(
        "/p/QUENCORO",
        data={
            "csrf_token": token,
            "inmate_code": code,
            "surname": surname,
            "birth_date": birth_date,
        },
        follow_redirects=False,
    )


def first_open_slot(client, group_label="Día de visita para mujeres") -> int:
    page = client.get("/p/QUENCORO/slots")
    for match in re.finditer(r'href="/p/QUENCORO/book\?slot=(\d+)".*?</a>', page.text, re.S):
        if group_label in match.group(0):
            return int(match.group(1))
    raise AssertionError("no open slot for " + group_label)


def visitor_form(slot_id: int, token: str, **changes: str) -> dict[str, str]:
    form = {
        "csrf_token": token,
        "slot_id": str(slot_id),
        "visitors.0.first_names": "María",
        "visitors.0.last_names": "Quispe Huamán",
        "visitors.0.doc_type": "dni",
        "visitors.0.doc_number": "45678912",
        "visitors.0.birth_date": "25/07/1985",
        "visitors.0.relationship": "partner",
        "visitors.0.sex": "F",
        "contact_phone": "987 654 321",
    }
    form.update(changes)
    return form


def review(client, form):
    return client.post("/p/QUENCORO/book", data=form | {"action": "review"})


def confirm(client, form, key):
    return client.post(
        "/p/QUENCORO/book",
        data=form | {"action": "confirm", "submission_key": key},
        follow_redirects=False,
    )


def booked(client, **changes):
    assert identify(client).status_code == 303
    slot_id = first_open_slot(client)
    form = visitor_form(slot_id, csrf(client), **changes)
    page = review(client, form)
    assert page.status_code == 200, text(page)
    key = re.search(r'name="submission_key" value="([^"]+)"', page.text).group(1)
    response = confirm(client, form, key)
    assert response.status_code == 303
    return slot_id, response.headers["location"]


def test_home_lists_prisons_in_spanish_and_switches_to_english(client):
    home = client.get("/")
    assert '<html lang="es">' in home.text
    assert "Reserva una visita" in text(home)
    assert "Penal de Cusco (Quencoro) - demo" in text(home)
    switched = client.get("/lang/en?next=/find", follow_redirects=False)
    assert switched.status_code == 303
    assert switched.headers["location"] == "/find"
    english = client.get("/find")
    assert '<html lang="en">' in english.text
    assert "Find my booking" in text(english)


LANG_LINK = re.compile(r'href="/lang/en\?next=([^"]+)"')


def _switch_to_english(client, page):
    """Follow the page's language link, as a family would."""
    target = unquote(LANG_LINK.search(page.text).group(1))
    switched = client.get(f"/lang/en?next={quote(target, safe='')}", follow_redirects=False)
    return client.get(switched.headers["location"])


def test_the_language_switch_on_a_booking_page_answering_a_form_keeps_the_booking(client):
    _, location = booked(client)
    address = urlsplit(location)
    token = parse_qs(address.query)["token"][0]
    reference = address.path.split("/")[2]
    wrong = client.post(
        f"/b/{reference}/cancel", data={"csrf_token": "stale", "token": token}
    )  # a form left open too long
    assert wrong.status_code == 403
    english = _switch_to_english(client, wrong)
    assert english.status_code == 200  # the same booking's cancel page, not "not found"
    assert "Cancel the visit?" in text(english)


def test_the_error_summary_names_the_field_of_each_problem(client):
    assert identify(client).status_code == 303
    slot_id = first_open_slot(client)
    blank = {"visitors.0.first_names": "", "visitors.0.last_names": "", "contact_phone": ""}
    refused = review(client, visitor_form(slot_id, csrf(client), **blank))
    assert refused.status_code == 422
    summary = re.search(r'<div class="error-summary".*?</div>', refused.text, re.S).group(0)
    shown = visible(summary)
    assert "Visitante 1 · Nombres:" in shown
    assert "Visitante 1 · Apellidos:" in shown
    assert "Celular:" in shown


def test_a_page_asked_for_in_english_remembers_it(client):
    page = client.get("/p/QUENCORO?lang=en")
    assert '<html lang="en">' in page.text
    assert client.cookies.get("lang") == "en"
    refused = identify(client, code="Q99999")  # the next form comes back in English
    assert '<html lang="en">' in refused.text
    client.get("/find?lang=xx")  # no such language: nothing remembered
    assert client.cookies.get("lang") == "en"


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example", "/\\evil"])
def test_the_language_switch_is_not_an_open_redirect(client, target):
    response = client.get("/lang/en", params={"next": target}, follow_redirects=False)
    assert response.headers["location"] == "/"


def test_a_form_shown_for_one_person_never_books_another(client, db):
    """Identifying another person in another window changes whom the browser visits: a form
    still open for the first person comes back for the second, with what was typed, and
    books nothing until sent again."""
    assert identify(client).status_code == 303  # Carlos Yupanqui
    slot_id = first_open_slot(client)
    form_page = client.get(f"/p/QUENCORO/book?slot={slot_id}")
    assert "(de 18 años o más). Este día, los adultos" in text(form_page)  # sentences apart
    shown_for = re.search(r'name="inmate_id" value="(\d+)"', form_page.text).group(1)
    assert identify(client, code="Q10002", surname="Puma").status_code == 303  # another tab
    form = visitor_form(slot_id, csrf(client)) | {"inmate_id": shown_for}
    for action in ("review", "confirm"):
        page = client.post("/p/QUENCORO/book", data=form | {"action": action})
        assert page.status_code == 409
        assert "Identificaste a otra persona en otra ventana" in text(page)
        assert 'value="Quispe Huamán"' in page.text  # what was typed is kept
        assert re.search(r'name="inmate_id" value="(\d+)"', page.text).group(1) != shown_for
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Booking)) == 0


class _Form(HTMLParser):
    """What a browser sends for the form posted to ``action``: text and hidden inputs, ticked
    boxes and radios, chosen options, text areas."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action, self.inside, self.select, self.textarea = action, False, "", ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("action") == self.action
        elif not self.inside or (not a.get("name") and tag != "option"):
            return
        elif tag == "input" and a.get("type") in ("checkbox", "radio"):
            if "checked" in a:
                self.fields[a["name"]] = a.get("value", "on")
        elif tag == "input" and a.get("type") != "submit":
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "select":
            self.select = a["name"]
        elif tag == "textarea":
            self.textarea = a["name"]
            self.fields[self.textarea] = ""
        elif tag == "option" and self.select and "selected" in a:
            self.fields[self.select] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = ""
        elif tag == "textarea":
            self.textarea = ""

    def handle_data(self, data):
        if self.textarea:
            self.fields[self.textarea] += data


def form_fields(html: str, action: str) -> dict[str, str]:
    parser = _Form(action)
    parser.feed(html)
    return {name: value for name, value in parser.fields.items() if value}


KEPT_FORM = {
    "visitors.0.cough": "1",
    "visitors.0.high_risk": "1",
    "visitors.1.first_names": "Luz",
    "visitors.1.last_names": "Quispe Huamán",
    "visitors.1.doc_type": "dni",
    "visitors.1.doc_number": "70000001",
    "visitors.1.birth_date": "03/03/2016",
    "visitors.1.relationship": "child",
    "visitors.1.sex": "F",
    "visitors.1.fever": "1",
}


def typed_booking_form(make_client, **changes: str) -> dict[str, str]:
    """A booking form as a family filled it in, in a session about to be lost: without its
    token, which went with that session."""
    client = make_client()
    identify(client)
    slot_id = first_open_slot(client)
    shown = client.get(f"/p/QUENCORO/book?slot={slot_id}")
    typed = form_fields(shown.text, "/p/QUENCORO/book") | visitor_form(slot_id, "", **changes)
    return {name: value for name, value in typed.items() if name != "csrf_token"}


def test_a_booking_form_sent_after_the_session_ended_keeps_what_was_typed(make_client, db):
    """The session ended (or its cookie was lost) while the family filled the form: the
    identify page carries what they typed, in hidden fields, and identifying the same person
    again brings the form back filled in, to check and send: nothing is booked meanwhile."""
    typed = typed_booking_form(make_client, **KEPT_FORM)

    cookieless = make_client()  # the same phone once its cookie is gone
    expired = cookieless.post("/p/QUENCORO/book", data=typed | {"action": "review"})
    assert expired.status_code == 403
    assert "Pasó mucho tiempo" in text(expired)
    carried = form_fields(expired.text, "/p/QUENCORO")
    token = carried.pop("csrf_token")
    assert token  # a fresh one: the old one went with the session
    assert carried == {f"kept.{name}": value for name, value in typed.items()}
    assert "kept.action" not in carried

    again = cookieless.post(
        "/p/QUENCORO",
        data=carried | {"csrf_token": token, "inmate_code": "Q10001", "surname": "Yupanqui"},
        follow_redirects=False,
    )
    assert again.status_code == 200  # answered in place: the values never go in an address
    assert "¿Quiénes van a visitar?" in text(again)
    back = form_fields(again.text, "/p/QUENCORO/book")
    new_token = back.pop("csrf_token")
    assert back == typed
    assert re.search(r"<details[^>]* open", again.text)  # the second visitor is shown
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Booking)) == 0
    reviewed = review(cookieless, back | {"csrf_token": new_token})
    assert reviewed.status_code == 200, text(reviewed)
    assert "Revisa y confirma" in text(reviewed)


def test_values_kept_for_one_person_are_dropped_when_another_is_identified(make_client):
    typed = typed_booking_form(make_client)
    cookieless = make_client()
    expired = cookieless.post("/p/QUENCORO/book", data=typed | {"action": "confirm"})
    carried = form_fields(expired.text, "/p/QUENCORO")
    # A mistake on the way keeps carrying them.
    wrong = cookieless.post("/p/QUENCORO", data=carried | {"inmate_code": "Q10001", "surname": "X"})
    assert wrong.status_code == 422
    again = form_fields(wrong.text, "/p/QUENCORO")
    assert {k: v for k, v in again.items() if k.startswith("kept.")} == {
        k: v for k, v in carried.items() if k.startswith("kept.")
    }
    assert len(carried) > 10
    other = cookieless.post(
        "/p/QUENCORO",
        data=carried | {"inmate_code": "Q10002", "surname": "Puma"},
        follow_redirects=False,
    )
    assert other.status_code == 303
    assert other.headers["location"] == "/p/QUENCORO/slots"
    slots = cookieless.get("/p/QUENCORO/slots")
    for typed_value in ("Quispe Huamán", "45678912"):
        assert typed_value not in slots.text


SWITCH = re.compile(r'<button[^>]*name="switch_language"[^>]*>')


def switch_language(client, page, action: str, **typed: str):
    """Press the page's language switch, as a family would once they typed ``typed`` into its
    form (the one sent to ``action``): a button sending that form, not a link."""
    assert 'href="/lang/' not in page.text
    button = dict(re.findall(r'([\w-]+)="([^"]*)"', SWITCH.search(page.text).group(0)))
    assert f'action="{action}" id="{button["form"]}"' in page.text
    sent = form_fields(page.text, action) | typed | {button["name"]: button["value"]}
    return client.post(unescape(button["formaction"]), data=sent)


def test_the_language_switch_on_the_booking_form_keeps_what_was_typed(client, db):
    """Switching language on the booking form (as it opened, refused, or from the review)
    sends the form to itself in the other language: it comes back with everything typed,
    ticks and opened visitors included, and nothing is checked or booked."""
    assert identify(client).status_code == 303
    slot_id = first_open_slot(client)
    typed = visitor_form(slot_id, "", **KEPT_FORM)
    del typed["csrf_token"]
    shown = client.get(f"/p/QUENCORO/book?slot={slot_id}")
    refused = review(client, visitor_form(slot_id, csrf(client), contact_phone="12"))
    assert refused.status_code == 422
    for page in (shown, refused):
        english = switch_language(client, page, "/p/QUENCORO/book", **typed)
        assert english.status_code == 200
        assert '<html lang="en">' in english.text
        assert "Who will visit?" in text(english)
        assert "error-summary" not in english.text  # nothing was checked
        kept = form_fields(english.text, "/p/QUENCORO/book")
        assert kept.pop("csrf_token")
        assert {name: kept[name] for name in typed} == typed
        assert '<details class="more" open>' in english.text  # visitor 2 typed into
        spanish = switch_language(client, english, "/p/QUENCORO/book")
        assert '<html lang="es">' in spanish.text
        assert form_fields(spanish.text, "/p/QUENCORO/book") == form_fields(
            english.text, "/p/QUENCORO/book"
        )

    checked = review(client, visitor_form(slot_id, csrf(client)))
    assert "Revisa y confirma" in text(checked)
    back = switch_language(client, checked, "/p/QUENCORO/book")
    assert "Who will visit?" in text(back)  # the form, filled in, to review again
    assert form_fields(back.text, "/p/QUENCORO/book")["contact_phone"] == "987 654 321"
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Booking)) == 0


def test_the_language_switch_on_the_find_and_identify_forms_keeps_what_was_typed(client, db):
    """Nobody is looked for (no try counted toward the limit): the page comes back in the
    other language with what was typed."""
    find = switch_language(client, client.get("/find"), "/find", reference="ABCD-2345")
    assert find.status_code == 200
    assert "Find my booking" in text(find)
    assert form_fields(find.text, "/find")["reference"] == "ABCD-2345"
    assert "error-summary" not in find.text
    page = client.get("/p/QUENCORO")  # in English now, remembered: back to Spanish
    who = switch_language(client, page, "/p/QUENCORO", inmate_code="Q10001")
    assert "¿A quién visitas?" in text(who)
    assert form_fields(who.text, "/p/QUENCORO")["inmate_code"] == "Q10001"
    assert "error-summary" not in who.text
    assert client.get("/p/QUENCORO/slots", follow_redirects=False).status_code == 303


def test_the_language_switch_on_the_identify_page_keeps_what_it_carries(make_client):
    """The identify page carrying a booking form's values switches language by sending its
    form again (a link would drop them): it comes back in the other language with the same
    values and what was typed into it, nobody is looked for, and identifying then brings the
    booking form back filled in, in that language."""
    typed = typed_booking_form(make_client, **KEPT_FORM)
    cookieless = make_client()
    expired = cookieless.post("/p/QUENCORO/book", data=typed)
    carried = form_fields(expired.text, "/p/QUENCORO") | {"surname": "Yupanqui"}

    english = switch_language(cookieless, expired, "/p/QUENCORO", surname="Yupanqui")
    assert english.status_code == 200
    assert '<html lang="en">' in english.text
    assert "We kept what you typed in the booking form" in text(english)
    assert "error-summary" not in english.text  # nobody was looked for
    assert form_fields(english.text, "/p/QUENCORO") == carried
    assert 'lang="es">Español</button>' in english.text  # and back the same way

    again = cookieless.post("/p/QUENCORO", data=carried | {"inmate_code": "Q10001"})
    assert again.status_code == 200
    assert "Who will visit?" in text(again)
    back = form_fields(again.text, "/p/QUENCORO/book")
    assert back.pop("csrf_token")
    assert back == typed


def test_kept_values_come_back_with_what_changed_about_the_visit_time(make_client, db):
    """The time filled up while the family was away: the form still comes back with what they
    typed, and says so, rather than drop it for the slots page."""
    typed = typed_booking_form(make_client)
    cookieless = make_client()
    carried = form_fields(cookieless.post("/p/QUENCORO/book", data=typed).text, "/p/QUENCORO")
    with db.writing() as s:
        slot = s.get(Slot, int(typed["slot_id"]))
        slot.capacity = slot.seats_taken
    full = cookieless.post(
        "/p/QUENCORO", data=carried | {"inmate_code": "Q10001", "surname": "Yupanqui"}
    )
    assert full.status_code == 409
    assert "Este horario ya está lleno" in text(full)
    assert form_fields(full.text, "/p/QUENCORO/book")["visitors.0.last_names"] == "Quispe Huamán"


def test_the_values_carried_always_fit_the_identify_form(client):
    """Whatever was sent, the identify page carries only the booking form's fields, each cut
    to its length on the form: sent back with the identification, they fit the body limit
    and the number of fields a form may have."""
    from web.forms import MAX_FORM_FIELDS, VISITOR_FIELDS, kept_booking_values
    from web.middleware import MAX_BODY_BYTES

    huge = "\U0001f600" * 1000  # four bytes each, twelve once encoded in a form
    sent = {f"visitors.{i}.{name}": huge for i in range(20) for name in VISITOR_FIELDS}
    sent |= {"slot_id": huge, "inmate_id": huge, "contact_phone": huge, "csrf_token": huge}
    kept = kept_booking_values(sent | {"action": "confirm", "submission_key": "k"}, 99)
    assert not {"csrf_token", "action", "submission_key"} & kept.keys()
    identify_form = {f"kept.{k}": v for k, v in kept.items()}
    identify_form |= {"csrf_token": "t" * 32, "inmate_code": huge[:32], "surname": huge[:100],
                      "birth_date": huge[:10]}  # fmt: skip
    assert len(identify_form) < MAX_FORM_FIELDS
    assert len(urlencode(identify_form).encode()) < MAX_BODY_BYTES
    assert max(len(v) for v in kept.values()) == 60  # a name's length on the form


def test_identification_is_neutral(client):
    unknown = identify(client, code="Q99999")
    wrong = identify(client, surname="Mamani")
    assert unknown.status_code == wrong.status_code == 422
    assert "No encontramos a la persona" in text(unknown)
    assert text(unknown) == text(wrong)  # nothing tells an unknown code from a wrong surname
    assert "Carlos" not in unknown.text
    assert "Carlos" not in wrong.text
    assert identify(client, surname="", birth_date="02/12/2003").status_code == 303


def test_identification_is_throttled_per_inmate(client):
    for _ in range(5):
        assert identify(client, surname="Mamani").status_code == 422
    throttled = identify(client)
    assert throttled.status_code == 429
    assert "Espera 15 minutos" in text(throttled)


def test_identification_needs_one_check_and_a_valid_date(client):
    missing = identify(client, surname="")
    assert missing.status_code == 422
    assert "primer apellido o la fecha de nacimiento" in text(missing)
    bad_date = identify(client, surname="", birth_date="31/02/2003")
    assert bad_date.status_code == 422


def test_forms_without_the_csrf_token_change_nothing(client):
    response = client.post(
        "/p/QUENCORO", data={"inmate_code": "Q10001", "surname": "Yupanqui"}, follow_redirects=False
    )
    assert response.status_code == 403
    assert "Este formulario venció" in text(response)
    assert 'value="Q10001"' in response.text  # what was typed is kept
    assert client.get("/p/QUENCORO/slots", follow_redirects=False).status_code == 303


def test_released_inmates_are_refused_after_a_correct_pair(client):
    response = identify(client, code="Q10018", surname="Huarcaya")
    assert response.status_code == 422
    assert "no puede recibir visitas" in text(response)


def test_slots_need_an_identified_inmate(client):
    response = client.get("/p/QUENCORO/slots", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/p/QUENCORO"


def test_slots_show_seats_groups_closures_and_full_slots(client, db):
    identify(client)
    slot_id = first_open_slot(client)
    with db.writing() as s:
        s.get(Slot, slot_id).capacity = 0
    page = text(client.get("/p/QUENCORO/slots"))
    assert "Vas a visitar a Carlos Yupanqui" in page
    assert "quedan 150 lugares" in page
    assert "Día de visita para varones" in page
    assert "Requisa general del penal" in page
    assert "Actividad por el Día de la Familia" in page
    assert "Lleno" in page
    assert f'book?slot={slot_id}"' not in client.get("/p/QUENCORO/slots").text


def test_the_whole_booking_flow(client, db):
    slot_id, location = booked(client)
    assert location.startswith("/b/")
    page = client.get(location)
    assert page.status_code == 200
    body = text(page)
    assert "Tu visita está reservada" in body
    assert "Carlos Yupanqui" in body
    assert "+51 9•• ••• 321" in body
    reference = re.search(r"/b/([2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4})", location).group(1)
    assert reference in body
    assert "https://visitas.example.pe/b/" + reference in page.text
    with db.read_session() as s:
        assert s.get(Slot, slot_id).seats_taken == 1
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def test_only_a_site_on_https_asks_for_https_and_hides_the_api_page_that_loads_a_cdn(
    make_client,
):
    public = make_client()  # https://visitas.example.pe
    assert public.get("/api/docs").status_code == 404  # Swagger UI comes from a CDN
    assert public.get("/api/v1/openapi.json").json()["info"]["title"] == "Visitas familiares"
    local = make_client(public_base_url="http://127.0.0.1:8000")
    page = local.get("/")
    assert page.status_code == 200
    assert "strict-transport-security" not in page.headers  # it would lock a local site out
    assert local.get("/api/docs").status_code == 200


def filled_up_before_confirming(client, db) -> tuple[int, dict[str, str], object]:
    """A form reviewed, then refused at its confirmation, the time having filled up meanwhile:
    its time, the form sent and the refusal."""
    assert identify(client).status_code == 303
    slot_id = first_open_slot(client)
    form = visitor_form(slot_id, csrf(client)) | KEPT_FORM
    page = review(client, form)
    key = re.search(r'name="submission_key" value="([^"]+)"', page.text).group(1)
    with db.writing() as s:
        s.execute(update(Slot).where(Slot.id == slot_id).values(seats_taken=Slot.capacity))
    refused = confirm(client, form, key)
    assert refused.status_code == 409
    return slot_id, form, refused


def test_a_time_that_fills_up_while_typing_offers_others_keeping_what_was_typed(client, db):
    """The time fills up between the review and the confirmation: the form comes back as
    typed, ticks included, and lists other free times of the same visitors' group in the form
    itself, so that choosing one books it without typing anything again (the slots page would
    drop everything)."""
    slot_id, form, refused = filled_up_before_confirming(client, db)
    assert "Este horario ya está lleno" in text(refused)
    kept = form_fields(refused.text, "/p/QUENCORO/book")
    assert {name: kept.get(name) for name in form if name != "csrf_token"} == {
        name: value for name, value in form.items() if name != "csrf_token"
    }
    offered = [
        int(v) for v in re.findall(r'type="radio" name="slot_id" value="(\d+)"', refused.text)
    ]
    assert offered
    assert slot_id not in offered
    with db.read_session() as s:
        slots = {slot.id: slot for slot in s.scalars(select(Slot).where(Slot.id.in_(offered)))}
        assert {slots[i].visitor_group for i in offered} <= {
            VisitorGroup.WOMEN,
            VisitorGroup.ANYONE,
        }
        assert all(slots[i].seats_taken + 2 <= slots[i].capacity for i in offered)

    # The browser sends the hidden slot_id, then the time ticked: the last one is read.
    chosen = kept | {"slot_id": [str(slot_id), str(offered[0])], "action": "review"}
    again = client.post("/p/QUENCORO/book", data=chosen)
    assert again.status_code == 200, text(again)
    assert "Revisa y confirma" in text(again)
    key = re.search(r'name="submission_key" value="([^"]+)"', again.text).group(1)
    done = confirm(client, kept | {"slot_id": str(offered[0])}, key)
    assert done.status_code == 303
    with db.read_session() as s:
        booking = s.scalar(select(Booking))
        assert (booking.slot_id, booking.party_size) == (offered[0], 2)


OFFERED = re.compile(r'type="radio" name="slot_id" value="(\d+)"')


def test_choosing_another_time_keeps_what_was_typed_and_books_nothing(client, db):
    """The tester's finding: "choose another time" was a link to the slots page, and a family
    that only changed its mind about the time lost every visitor, tick and phone typed. It now
    sends the form, which comes back as typed with every open time in it (any group: the
    family chose nothing yet); the one ticked goes to the review, and nothing is booked or
    held until the family confirms. Not ticking one keeps the form's own time."""
    assert identify(client).status_code == 303
    slot_id = first_open_slot(client)
    shown = client.get(f"/p/QUENCORO/book?slot={slot_id}")
    button = re.search(r'<button[^>]*value="changing"[^>]*>', shown.text)
    assert button is not None, "no button sends the form for another time"
    assert 'form="book"' in button.group(0)
    assert 'name="action"' in button.group(0)
    assert 'href="/p/QUENCORO/slots"' not in shown.text  # no link that drops what was typed
    form = visitor_form(slot_id, csrf(client)) | KEPT_FORM

    changing = client.post("/p/QUENCORO/book", data=form | {"action": "changing"})
    assert changing.status_code == 200, text(changing)
    assert "error-summary" not in changing.text  # nothing was checked
    kept = form_fields(changing.text, "/p/QUENCORO/book")
    assert {name: kept.get(name) for name in form} == form
    offered = [int(v) for v in OFFERED.findall(changing.text)]
    assert slot_id not in offered
    with db.read_session() as s:
        slots = {slot.id: slot for slot in s.scalars(select(Slot).where(Slot.id.in_(offered)))}
        assert VisitorGroup.MEN in {slot.visitor_group for slot in slots.values()}
        assert len(offered) > 6  # not only the few a refusal offers
        assert all(slots[i].seats_taken + 2 <= slots[i].capacity for i in offered)
        assert s.scalar(select(func.count()).select_from(Booking)) == 0
    other = next(i for i in offered if slots[i].visitor_group is not VisitorGroup.MEN)

    # The browser sends the form's own slot_id, then the one ticked: the last one is read.
    chosen = kept | {"slot_id": [str(slot_id), str(other)], "action": "review"}
    checked = client.post("/p/QUENCORO/book", data=chosen)
    assert checked.status_code == 200, text(checked)
    assert "Revisa y confirma" in text(checked)
    sent = form_fields(checked.text, "/p/QUENCORO/book")
    assert sent["slot_id"] == str(other)
    assert sent["visitors.1.doc_number"] == KEPT_FORM["visitors.1.doc_number"]
    assert "offer" not in sent  # the review goes back to the plain form
    # None ticked: the form's own time is reviewed.
    same = client.post("/p/QUENCORO/book", data=kept | {"action": "review"})
    assert form_fields(same.text, "/p/QUENCORO/book")["slot_id"] == str(slot_id)
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Booking)) == 0
        assert s.get(Slot, other).seats_taken == slots[other].seats_taken


def test_the_language_switch_keeps_the_other_times_a_form_offers(client, db):
    """The tester's finding: the language switch of a form offering other times (its own
    filled up, or the family asked for another) brought the form back without them. They come
    back in the other language, with what was typed and why the form's own time cannot be
    taken, and nothing is booked."""
    _, form, refused = filled_up_before_confirming(client, db)
    changing = client.post("/p/QUENCORO/book", data=form | {"action": "changing"})
    assert changing.status_code == 409  # its own time is full: said, with every other one

    for before in (refused, changing):
        offered = OFFERED.findall(before.text)
        assert offered
        english = switch_language(client, before, "/p/QUENCORO/book")
        assert '<html lang="en">' in english.text
        assert "Who will visit?" in text(english)
        assert OFFERED.findall(english.text) == offered
        kept = form_fields(english.text, "/p/QUENCORO/book")
        assert {name: kept.get(name) for name in form if name != "csrf_token"} == {
            name: value for name, value in form.items() if name != "csrf_token"
        }
        assert "This visit time is full" in text(english)
        spanish = switch_language(client, english, "/p/QUENCORO/book")
        assert '<html lang="es">' in spanish.text
        assert OFFERED.findall(spanish.text) == offered
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Booking)) == 0


def test_a_double_submission_books_once(client, db):
    identify(client)
    slot_id = first_open_slot(client)
    form = visitor_form(slot_id, csrf(client))
    first = confirm(client, form, "same-key")
    second = confirm(client, form, "same-key")
    assert first.headers["location"] == second.headers["location"]
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Booking)) == 1
        assert s.get(Slot, slot_id).seats_taken == 1


def test_bad_input_is_kept_escaped_and_explained(client, db):
    identify(client)
    slot_id = first_open_slot(client)
    form = visitor_form(
        slot_id,
        csrf(client),
        **{
            "visitors.0.first_names": "<script>alert(1)</script>",
            "visitors.0.doc_number": "1234",
            "visitors.1.first_names": "Luz",
            "contact_phone": "12",
        },
    )
    response = review(client, form)
    assert response.status_code == 422
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    body = text(response)
    assert "El DNI tiene 8" in body
    assert body.count("Completa este dato") >= 4  # the half-filled second visitor
    assert 'value="1234"' in response.text
    assert re.search(r"<details[^>]* open", response.text)  # the second visitor is shown
    with db.read_session() as s:
        assert s.get(Slot, slot_id).seats_taken == 0


def test_a_refused_form_says_the_party_rules_with_the_field_problems(client, db):
    """The tester's form: two children, the second with no relationship. "Fill this in" and
    "an adult must come" come together, each next to its place, not one after the other."""
    identify(client)
    slot_id = first_open_slot(client)
    two_children = {
        "visitors.0.birth_date": "01/01/2015",
        "visitors.0.relationship": "child",
        "visitors.1.first_names": "Juan",
        "visitors.1.last_names": "Quispe",
        "visitors.1.doc_type": "dni",
        "visitors.1.doc_number": "70000002",
        "visitors.1.birth_date": "03/03/2016",
        "visitors.1.sex": "M",
    }
    response = review(client, visitor_form(slot_id, csrf(client), **two_children))
    assert response.status_code == 422
    body = text(response)
    assert "Completa este dato" in body
    assert "Al menos un visitante debe tener 18 años o más" in body
    assert 'href="#visitors.1.relationship"' in response.text
    assert 'href="#visitors"' in response.text
    # The same document twice, with the relationship still missing: both said at once.
    twice = two_children | {
        "visitors.0.birth_date": "25/07/1985",
        "visitors.1.doc_number": "45678912",
    }
    response = review(client, visitor_form(slot_id, csrf(client), **twice))
    assert response.status_code == 422
    assert "Completa este dato" in text(response)
    assert "Esta persona ya está en la reserva" in text(response)
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Booking)) == 0


def test_unknown_past_and_foreign_slots(client, db):
    identify(client)
    with db.read_session() as s:
        foreign = s.scalar(select(Slot.id).where(Slot.prison_id != s.get(Slot, 1).prison_id))
    for slot in ("999999", "abc", str(foreign)):
        page = client.get(f"/p/QUENCORO/book?slot={slot}")
        assert page.status_code == 404
        assert "Ese horario no existe" in text(page)
    posted = client.post(
        "/p/QUENCORO/book", data=visitor_form(999999, csrf(client)) | {"action": "confirm"}
    )
    assert posted.status_code == 404
    with db.writing() as s:
        s.get(Slot, first_open_slot(client)).capacity = 0
    with db.read_session() as s:
        full = s.scalar(select(Slot.id).where(Slot.capacity == 0))
    assert client.get(f"/p/QUENCORO/book?slot={full}").status_code == 409


def test_slot_ids_no_database_integer_holds_are_unknown(client, db):
    """Beyond PostgreSQL's integer (2**31 - 1) an id is unknown, as on SQLite: no error page."""
    slot_id, location = booked(client)
    for slot in ("2147483648", "99999999999", "999999999999"):
        page = client.get(f"/p/QUENCORO/book?slot={slot}")
        assert page.status_code == 404
        assert "Ese horario no existe" in text(page)
        form = visitor_form(int(slot), csrf(client), **{"visitors.0.doc_number": "41234567"})
        posted = client.post("/p/QUENCORO/book", data=form | {"action": "review"})
        assert posted.status_code == 404
        path, query = location.split("?")
        token = dict(p.split("=") for p in query.split("&"))["token"]
        moved = client.post(
            f"{path}/move", data={"csrf_token": csrf(client), "token": token, "slot_id": slot}
        )
        assert moved.status_code == 422
        assert "Ese horario no existe" in text(moved)
    with db.read_session() as s:
        assert s.scalar(select(Booking.slot_id)) == slot_id


def test_the_booking_page_needs_its_token(client):
    _, location = booked(client)
    reference = location.split("?")[0]
    assert client.get(reference).status_code == 404
    assert client.get(reference + "?token=nope").status_code == 404
    assert "no existe" in text(client.get(reference))


def test_calendar_file(client):
    _, location = booked(client)
    path, query = location.split("?")
    ics = client.get(f"{path}/visit.ics?{query}")
    assert ics.status_code == 200
    assert ics.headers["content-type"].startswith("text/calendar")
    assert "BEGIN:VEVENT" in ics.text
    assert "DTSTART:20261202T140000Z" in ics.text
    assert path.removeprefix("/b/") in ics.text
    assert "TRIGGER:-P1D" in ics.text
    # Nobody is named: a title shows on a lock screen, and calendars are synced and shared.
    assert "SUMMARY:Visita familiar" in ics.text
    assert "Yupanqui" not in ics.text
    assert "Carlos" not in ics.text


def test_cancel_gives_the_seats_back(client, db):
    slot_id, location = booked(client)
    path, query = location.split("?")
    token = dict(p.split("=") for p in query.split("&"))["token"]
    assert "¿Cancelar la visita?" in text(client.get(f"{path}/cancel?token={token}"))
    response = client.post(
        f"{path}/cancel", data={"csrf_token": csrf(client), "token": token}, follow_redirects=True
    )
    assert "Tu visita fue cancelada" in text(response)
    with db.read_session() as s:
        assert s.get(Slot, slot_id).seats_taken == 0
        assert s.scalar(select(Booking.status)) is BookingStatus.CANCELLED
    # Sent again (Back and resend): done already, so the booking's page, not an error.
    for form in ({"csrf_token": csrf(client), "token": token}, {"token": token}):
        again = client.post(f"{path}/cancel", data=form, follow_redirects=False)
        assert again.status_code == 303
        assert again.headers["location"].startswith(f"{path}?token=")
    shown = text(client.get(again.headers["location"]))
    assert "Cancelada" in shown
    assert "Revisa lo siguiente" not in shown


def test_move_to_another_slot(client, db):
    slot_id, location = booked(client)
    path, query = location.split("?")
    token = dict(p.split("=") for p in query.split("&"))["token"]
    page = client.get(f"{path}/move?token={token}")
    choices = [int(v) for v in re.findall(r'name="slot_id" value="(\d+)"', page.text)]
    assert slot_id not in choices
    target = choices[0]
    nothing = client.post(f"{path}/move", data={"csrf_token": csrf(client), "token": token})
    assert nothing.status_code == 422
    moved = client.post(
        f"{path}/move",
        data={"csrf_token": csrf(client), "token": token, "slot_id": str(target)},
        follow_redirects=True,
    )
    assert "Tu visita cambió" in text(moved)
    with db.read_session() as s:
        assert s.get(Slot, slot_id).seats_taken == 0
        assert s.get(Slot, target).seats_taken == 1


def test_the_language_switch_on_the_move_page_keeps_the_time_chosen(client, db):
    slot_id, location = booked(client)
    path, query = location.split("?")
    page = client.get(f"{path}/move?{query}")
    target = re.findall(r'name="slot_id" value="(\d+)"', page.text)[0]
    english = switch_language(client, page, f"{path}/move", slot_id=target)
    assert english.status_code == 200
    assert "Change day or time" in text(english)
    assert "error-summary" not in english.text
    assert form_fields(english.text, f"{path}/move")["slot_id"] == target
    with db.read_session() as s:
        assert s.get(Slot, slot_id).seats_taken == 1  # nothing moved
        assert s.get(Slot, int(target)).seats_taken == 0


def test_a_move_sent_from_an_expired_form_comes_back_with_the_time_chosen(client, db):
    slot_id, location = booked(client)
    path, query = location.split("?")
    token = dict(p.split("=") for p in query.split("&"))["token"]
    page = client.get(f"{path}/move?token={token}")
    target = re.findall(r'name="slot_id" value="(\d+)"', page.text)[0]
    stale = client.post(
        f"{path}/move", data={"csrf_token": "stale", "token": token, "slot_id": target}
    )
    assert stale.status_code == 403
    assert form_fields(stale.text, f"{path}/move")["slot_id"] == target
    with db.read_session() as s:
        assert s.get(Slot, slot_id).seats_taken == 1  # nothing moved


def test_the_move_page_offers_only_times_the_move_would_take(client, db):
    """The visit of two women: the men's days are shown, marked, and never offered."""
    _, location = booked(client)
    path, query = location.split("?")
    token = dict(p.split("=") for p in query.split("&"))["token"]
    page = client.get(f"{path}/move?token={token}")
    offered = {int(v) for v in re.findall(r'name="slot_id" value="(\d+)"', page.text)}
    with db.read_session() as s:
        open_times = {
            slot.id: slot.visitor_group
            for slot in s.scalars(select(Slot).where(Slot.seats_taken < Slot.capacity))
            if slot.starts_at > NOW + timedelta(hours=12)
        }
    mens = {i for i, group in open_times.items() if group is VisitorGroup.MEN}
    assert mens
    assert offered
    assert not offered & mens
    assert all(open_times[i] is not VisitorGroup.MEN for i in offered)
    assert "No es para esta visita" in text(page)
    men = next(iter(mens))
    refused = client.post(
        f"{path}/move", data={"csrf_token": csrf(client), "token": token, "slot_id": str(men)}
    )
    assert refused.status_code == 422
    assert str(men) not in re.findall(r'name="slot_id" value="(\d+)"', refused.text)


def test_a_refused_move_is_shown_without_holding_up_other_writers(client, db, monkeypatch):
    """The page offers each time the move could take, read after the write session gave its
    locks back, so no booking waits on it meanwhile."""
    import web.family

    _, location = booked(client)
    path, query = location.split("?")
    token = dict(p.split("=") for p in query.split("&"))["token"]
    with db.read_session() as s:
        mens = s.scalar(select(Slot.id).where(Slot.visitor_group == VisitorGroup.MEN))
    real_targets = web.family.move_targets
    writers: list[threading.Thread] = []
    finished_meanwhile: list[bool] = []

    def targets(session, booking, now, *, limit):
        def another_writer() -> None:
            with db.writing() as s:
                lock_rows(s, Booking.id, [booking.id])

        writer = threading.Thread(target=another_writer)
        writer.start()
        writer.join(5)
        writers.append(writer)
        finished_meanwhile.append(not writer.is_alive())
        return real_targets(session, booking, now, limit=limit)

    monkeypatch.setattr(web.family, "move_targets", targets)
    refused = client.post(
        f"{path}/move", data={"csrf_token": csrf(client), "token": token, "slot_id": str(mens)}
    )
    assert refused.status_code == 422
    for writer in writers:
        writer.join(30)  # whatever happened, no thread is left behind
    assert finished_meanwhile == [True]


def test_moving_a_visit_that_has_started_is_a_conflict_as_in_the_api(client, db):
    slot_id, location = booked(client)
    path, query = location.split("?")
    token = dict(p.split("=") for p in query.split("&"))["token"]
    page = client.get(f"{path}/move?token={token}")
    target = re.findall(r'name="slot_id" value="(\d+)"', page.text)[0]
    with db.read_session() as s:
        started = s.get(Slot, slot_id).starts_at + timedelta(minutes=1)
    client.app.state.clock = lambda: started
    late = client.post(
        f"{path}/move", data={"csrf_token": csrf(client), "token": token, "slot_id": target}
    )
    assert late.status_code == 409
    assert "cancelada o ya pasó" in text(late)


def test_find_a_booking_again(client):
    _, location = booked(client)
    reference = location.split("?")[0].removeprefix("/b/")
    wrong = client.post(
        "/find", data={"csrf_token": csrf(client), "reference": reference, "phone": "912345678"}
    )
    assert wrong.status_code == 422
    assert "No encontramos una reserva" in text(wrong)
    found = client.post(
        "/find",
        data={"csrf_token": csrf(client), "reference": reference.lower(), "phone": "+51987654321"},
        follow_redirects=False,
    )
    assert found.status_code == 303
    assert found.headers["location"] == location.replace("&done=booked", "")
    # As a phone's keyboard or a copy writes it: an en dash, a no-break space, full width.
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in reference)
    for typed in (reference.replace("-", "\u2013"), reference.replace("-", "\u00a0"), fullwidth):
        again = client.post(
            "/find",
            data={"csrf_token": csrf(client), "reference": typed, "phone": "987654321"},
            follow_redirects=False,
        )
        assert again.status_code == 303, typed
    malformed = client.post(
        "/find", data={"csrf_token": csrf(client), "reference": "0000-0000", "phone": ""}
    )
    assert malformed.status_code == 422


def test_errors_never_show_a_trace(client, monkeypatch):
    import web.family

    def broken(session):
        raise RuntimeError("database exploded")

    monkeypatch.setattr(web.family, "bookable_prisons", broken)
    from fastapi.testclient import TestClient

    quiet = TestClient(client.app, base_url="https://testserver", raise_server_exceptions=False)
    response = quiet.get("/")
    assert response.status_code == 500
    assert "Traceback" not in response.text
    assert "exploded" not in response.text
    assert "Algo salió mal" in text(response)
    assert response.headers["cache-control"] == "no-store"  # answered outside the middleware
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "max-age=31536000" in response.headers["strict-transport-security"]
    missing = quiet.get("/no/such/page")
    assert missing.status_code == 404
    assert "no existe" in text(missing)


def test_an_error_on_a_short_manage_link_is_logged_without_its_signature(
    client, monkeypatch, caplog
):
    """The short link's path is the reference and its signature, which opens the booking as
    the family: the log line names the reference only."""
    import logging

    import web.family
    from visits.sms import short_token

    def broken(secret, reference):
        raise RuntimeError("database exploded")

    monkeypatch.setattr(web.family, "manage_token", broken)
    from fastapi.testclient import TestClient

    reference = "ABCD2345"
    signature = short_token("test-secret", reference)
    quiet = TestClient(client.app, base_url="https://testserver", raise_server_exceptions=False)
    caplog.set_level(logging.ERROR, logger="web.app")
    response = quiet.get(f"/m/{reference}{signature}", follow_redirects=False)
    assert response.status_code == 500
    assert f"unhandled error on GET /m/{reference}********" in caplog.text
    assert signature not in caplog.text


def test_the_servers_log_lines_carry_no_working_manage_link():
    """Uvicorn's own lines too (its "Exception in ASGI application" and the traceback after
    it), and its access lines should they be turned on: both kinds of manage link."""
    import logging
    import sys

    line = "failed on /m/ABCD2345abcdefgh and /b/ABCD-2345?token=c2VjcmV0&lang=es"
    try:
        raise RuntimeError(line)
    except RuntimeError:
        record = logging.LogRecord("uvicorn.error", logging.ERROR, "x", 1, line, (), sys.exc_info())
    written = _formatter("default").format(record)
    assert "/m/ABCD2345******** and /b/ABCD-2345?token=********&lang=es" in written
    request = ("203.0.113.7:5000", "GET", "/m/ABCD2345abcdefgh", "1.1", 500)
    said = '%s - "%s %s HTTP/%s" %d'  # as uvicorn logs a request
    access = logging.LogRecord("uvicorn.access", logging.INFO, "x", 1, said, request, None)
    accessed = _formatter("access").format(access)
    assert '"GET /m/ABCD2345******** HTTP/1.1" 500' in accessed
    for line in (written, accessed):
        assert "abcdefgh" not in line
        assert "c2VjcmV0" not in line


def test_the_workers_log_lines_carry_no_working_manage_link():
    """``visits worker`` sends the SMS: a failed send's traceback may quote one's text."""
    import logging
    import sys

    from visits.cli import worker_log_handler

    line = "sending 'Gestione su visita: https://x.pe/m/ABCD2345abcdefgh' failed"
    try:
        raise RuntimeError(line)
    except RuntimeError:
        record = logging.LogRecord("notifications", logging.ERROR, "x", 1, line, (), sys.exc_info())
    written = worker_log_handler().format(record)
    assert written.count("/m/ABCD2345********") == 2  # the message, and the traceback's
    assert "abcdefgh" not in written


def _formatter(name: str):
    """The formatter ``visits serve`` writes its log lines with."""
    from web.serve import LOG_CONFIG

    config = dict(LOG_CONFIG["formatters"][name])
    return config.pop("()")(**config)


@pytest.mark.parametrize("path", ["/find", "/p/QUENCORO"])
def test_odd_characters_in_a_csrf_token_are_a_refusal_not_an_error(client, path):
    csrf(client)  # the session exists, with its token
    response = client.post(path, data={"csrf_token": "ñ", "inmate_code": "Q1", "reference": "x"})
    assert response.status_code == 403


def test_odd_characters_in_links_are_a_refusal_not_an_error(client):
    _, location = booked(client)
    path = location.split("?")[0]
    assert client.get(f"{path}?token=ñ").status_code == 404
    assert client.get("/p/QUENCORO/book?slot=²").status_code == 404


def test_every_form_refuses_a_missing_csrf_token(client, db):
    slot_id, location = booked(client)
    path, query = location.split("?")
    token = dict(p.split("=") for p in query.split("&"))["token"]
    forms = {
        "/find": {"reference": path.removeprefix("/b/"), "phone": "987654321"},
        "/p/QUENCORO/book": visitor_form(slot_id, "wrong") | {"action": "confirm"},
        f"{path}/cancel": {"token": token},
        f"{path}/move": {"token": token, "slot_id": str(slot_id + 1)},
    }
    for form_path, data in forms.items():
        data = {k: v for k, v in data.items() if k != "csrf_token"} | {"csrf_token": "wrong"}
        response = client.post(form_path, data=data, follow_redirects=False)
        assert response.status_code == 403, form_path
        assert "Este formulario venció" in text(response)
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Booking)) == 1
        assert s.scalar(select(Booking.status)) is BookingStatus.CONFIRMED
        assert s.get(Slot, slot_id).seats_taken == 1


def test_finding_bookings_is_throttled(client):
    for _ in range(client.app.state.throttle_policy.per_client):
        wrong = client.post(
            "/find",
            data={"csrf_token": csrf(client), "reference": "ABCD-2345", "phone": "987654321"},
        )
        assert wrong.status_code == 422
    throttled = client.post(
        "/find", data={"csrf_token": csrf(client), "reference": "ABCD-2345", "phone": "987654321"}
    )
    assert throttled.status_code == 429


def test_refusals_that_reveal_someone_are_throttled(client):
    """Typing other people's document numbers on the review page tells whether they have a
    visit that day: a client that keeps hitting such refusals is slowed down."""
    slot_id, _ = booked(client)  # María (45678912) now has a visit that day
    identify(client, code="Q10002", surname="Puma")
    form = visitor_form(slot_id, csrf(client))
    for _ in range(client.app.state.throttle_policy.per_client):
        refused = review(client, form)
        assert refused.status_code == 422
        assert "ya tiene una visita reservada ese día" in text(refused)
    throttled = review(client, form)
    assert throttled.status_code == 429
    assert "Espera 15 minutos" in text(throttled)


def _cancel_by(db, how: str, reference: str) -> None:
    """Cancel the booking (Carlos's, Q10001) the way ``how`` says."""
    from datetime import date

    from tests.factories import SMS
    from visits.booking import cancel_booking
    from visits.health import AdvisoryKind, Measures, Scope
    from visits.issuing import AdvisoryDraft, issue
    from visits.prison import prison_by_code
    from visits.suspensions import Actor, suspend_inmate

    with db.writing() as s:
        prison = prison_by_code(s, "QUENCORO")
        if how.startswith("health"):
            scope = Scope(how.removeprefix("health_"))  # Carlos's, his wing's, or the prison's
            draft = AdvisoryDraft(
                scope=scope, kind=AdvisoryKind.TB_RESISTANT, measures=Measures(suspended=True),
                starts_on=date(2026, 12, 1), wing_code="A" if scope is Scope.WING else None,
                inmate_code="Q10001" if scope is Scope.INMATE else None,
            )  # fmt: skip
            issue(s, prison, draft, now=NOW, actor="staff:salud", origin="", sms_policy=SMS)
        elif how == "inmate":
            suspend_inmate(
                s, prison, code="Q10001", until=date(2027, 1, 31), reason="Pelea en el patio",
                by=Actor("staff:admin", "", NOW), sms_policy=SMS,
            )  # fmt: skip
        else:
            booking = s.scalar(select(Booking).where(Booking.reference == reference))
            cancel_booking(s, booking, now=NOW, actor="family", sms_policy=SMS)


# A measure may cover one wing or one person: the prison's other visits go on, so the family
# is told of the person they visit, which is as true when the whole prison is paused.
PAUSED = "A health measure pauses visits to the person you visit for now."


@pytest.mark.parametrize(
    ("how", "why", "book_again"),
    [
        *(
            (f"health_{scope}", f"{PAUSED} We are sorry. You can book again when visits", True)
            for scope in ("inmate", "wing", "prison")
        ),
        ("family", "Cancelled at your request.", True),
        ("inmate", "Visits to the person you visit are suspended for now.", False),
    ],
)
def test_a_cancelled_booking_says_why_in_family_words_and_how_to_book_again(
    client, db, how, why, book_again
):
    _, location = booked(client)
    _cancel_by(db, how, location.split("?")[0].rsplit("/", 1)[1].replace("-", ""))
    page = client.get(f"{location}&lang=en")
    shown = text(page)
    assert "Cancelled" in shown
    assert why in shown
    assert "Pelea" not in shown  # staff's reason stays with staff
    assert "at this prison" not in shown  # other wings' visits may go on
    assert ('href="/p/QUENCORO"' in page.text) is book_again
    assert ("Book another visit" in shown) is book_again


@pytest.mark.parametrize("how", ["health_prison", "inmate", "family"])
def test_an_old_address_of_the_booked_page_never_says_booked_once_cancelled(client, db, how):
    """The address of the page that said "Your visit is booked" stays in a tab left open and
    in the browser's history; opened again after the visit was cancelled (by a health
    measure, a suspension, or an SMS answer), it says the visit as it is now."""
    _, location = booked(client)
    assert location.endswith("&done=booked")
    assert "Tu visita está reservada" in text(client.get(location))
    _cancel_by(db, how, location.split("?")[0].rsplit("/", 1)[1].replace("-", ""))
    shown = text(client.get(location))
    assert "Cancelada" in shown
    assert "Tu visita está reservada" not in shown
    assert "Guarda el código de reserva y el enlace" not in shown


def test_an_old_address_of_the_moved_page_never_says_changed_once_cancelled(client, db):
    _, location = booked(client)
    path, query = location.split("?")
    token = dict(p.split("=") for p in query.split("&"))["token"]
    choices = re.findall(
        r'name="slot_id" value="(\d+)"', client.get(f"{path}/move?token={token}").text
    )
    moved = client.post(
        f"{path}/move",
        data={"csrf_token": csrf(client), "token": token, "slot_id": choices[0]},
        follow_redirects=False,
    )
    moved_at = moved.headers["location"]
    assert moved_at.endswith("&done=moved")
    assert "Tu visita cambió" in text(client.get(moved_at))
    _cancel_by(db, "family", path.rsplit("/", 1)[1].replace("-", ""))
    shown = text(client.get(moved_at))
    assert "Cancelada" in shown
    assert "Tu visita cambió" not in shown


# --- The booking form's health boxes ---------------------------------------------------------


def test_a_refused_health_box_says_why_before_it_and_is_tied_to_it(client, db):
    """A measure keeps people at high risk away: the box the family ticked says why before
    it (as every field does), and a screen reader hears the error on reaching the box."""
    from datetime import date

    from tests.factories import SMS
    from visits.health import AdvisoryKind, Measures, Scope
    from visits.issuing import AdvisoryDraft, issue
    from visits.prison import prison_by_code

    with db.writing() as s:
        draft = AdvisoryDraft(
            scope=Scope.WING, kind=AdvisoryKind.TB_SUSCEPTIBLE,
            measures=Measures(no_high_risk=True), starts_on=date(2026, 12, 1), wing_code="A",
        )  # fmt: skip
        issue(
            s, prison_by_code(s, "QUENCORO"), draft, now=NOW, actor="staff:salud", origin="",
            sms_policy=SMS,
        )  # fmt: skip
    assert identify(client).status_code == 303  # Carlos, of wing A
    form = visitor_form(first_open_slot(client), csrf(client), **{"visitors.0.high_risk": "1"})
    refused = review(client, form)
    assert refused.status_code == 422
    html = refused.text
    box = re.search(r'<label class="checkbox"><input [^>]*id="visitors\.0\.high_risk"[^>]*>', html)
    assert box, "the box is in its own label, the whole row to tap"
    assert 'aria-describedby="visitors.0.high_risk-error"' in box.group(0)
    assert 'aria-invalid="true"' in box.group(0)
    error = re.search(r'<p class="field-error" id="visitors\.0\.high_risk-error">(.*?)</p>', html)
    assert "no puede venir" in visible(error.group(1))
    # Said after the box above it and before its own, as a text field's error is.
    assert html.index('id="visitors.0.lives_with_tb"') < error.start() < box.start()
    # The other boxes are not marked.
    cough = re.search(r'<input [^>]*id="visitors\.0\.cough"[^>]*>', html).group(0)
    assert "aria-invalid" not in cough
    assert "aria-describedby" not in cough


# --- The review -----------------------------------------------------------------------------------


def test_the_review_shows_birth_dates_sex_and_the_phone_as_the_family_reads_them(client, db):
    """The details most often mistyped are the ones the family is asked to check."""
    assert identify(client).status_code == 303
    slot_id = first_open_slot(client)
    form = visitor_form(slot_id, csrf(client), **{"visitors.0.birth_date": "5071985"})
    refused = review(client, form)  # seven digits: no date
    assert refused.status_code == 422
    form["visitors.0.birth_date"] = "05071985"  # typed on a number pad, without the "/"
    page = text(review(client, form))
    assert "Revisa y confirma" in page
    assert "Fecha de nacimiento: 05/07/1985" in page
    assert "Sexo: Mujer" in page  # a day for women: the form asked it
    assert "987 654 321" in page
    assert "+51" not in page
    # A day open to all does not ask it, nor does its review say it (even sent, as a form
    # of a women's day sends it when another time it offers is chosen).
    with db.writing() as s:
        s.execute(update(Slot).where(Slot.id == slot_id).values(visitor_group="anyone"))
    page = text(review(client, visitor_form(slot_id, csrf(client))))
    assert "Para todos los visitantes" in page
    assert "Fecha de nacimiento: 25/07/1985" in page
    assert "Sexo" not in page


def test_a_foreign_mobile_is_reviewed_with_its_country_code(make_client):
    client = make_client(sms_countries="PE,BO")
    assert identify(client).status_code == 303
    form = visitor_form(first_open_slot(client), csrf(client), contact_phone="+591 71234567")
    page = text(review(client, form))
    assert "Revisa y confirma" in page
    assert "+591 71234567" in page
