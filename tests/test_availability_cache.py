"""The few-seconds availability cache: shared between families, cleared by this process's
own changes, and never stale for longer than its time to live."""

from __future__ import annotations

from sqlalchemy import select

from tests.test_api import body, open_slot
from visits.schedule import Slot


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def seats(client, slot_id: int) -> int:
    days = client.get("/api/v1/prisons/QUENCORO/slots").json()["days"]
    return next(s["seats_left"] for d in days for s in d["slots"] if s["id"] == slot_id)


def cached_client(make_client):
    client = make_client(availability_cache_seconds=2)
    clock = FakeClock()
    client.app.state.availability.clock = clock
    return client, clock


def test_changes_made_elsewhere_show_once_the_entry_expires(make_client, db):
    client, clock = cached_client(make_client)
    slot = open_slot(client)
    with db.writing() as s:
        s.get(Slot, slot["id"]).seats_taken = 100  # another worker's bookings, say
    assert seats(client, slot["id"]) == 150  # still the shared answer
    clock.now += 2.01
    assert seats(client, slot["id"]) == 50


def test_a_booking_through_this_process_shows_at_once(make_client):
    client, _ = cached_client(make_client)
    slot = open_slot(client)
    assert seats(client, slot["id"]) == 150
    assert client.post("/api/v1/bookings", json=body(slot["id"])).status_code == 201
    assert seats(client, slot["id"]) == 149


def test_the_slots_page_is_shared_but_each_language_has_its_own(make_client, db):
    from tests.test_pages import identify, text

    client, clock = cached_client(make_client)
    assert identify(client).status_code == 303
    spanish = text(client.get("/p/QUENCORO/slots"))
    with db.writing() as s:
        first = s.scalar(select(Slot).where(Slot.visitor_group == "women").order_by(Slot.id))
        first.seats_taken = first.capacity
    english = text(client.get("/p/QUENCORO/slots?lang=en"))
    assert "quedan 150 lugares" in spanish
    assert "150 places left" in english
    # ?lang=en is remembered: back to Spanish the same way.
    assert "Lleno" not in text(client.get("/p/QUENCORO/slots?lang=es"))  # cached a moment more
    clock.now += 5
    assert "Lleno" in text(client.get("/p/QUENCORO/slots?lang=es"))


def test_a_reload_of_ones_own_slots_page_does_no_database_work(make_client, db):
    from sqlalchemy import event

    from tests.test_pages import identify, text

    client, clock = cached_client(make_client)
    assert identify(client).status_code == 303
    first = client.get("/p/QUENCORO/slots")
    statements = []
    listen = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        again = client.get("/p/QUENCORO/slots")
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)
    assert again.text == first.text
    assert statements == []
    clock.now += 2.01
    assert "Carlos" in text(client.get("/p/QUENCORO/slots"))  # computed afresh, still right


def test_another_browser_never_gets_someone_elses_page(make_client):
    from tests.test_pages import identify, text

    client, _ = cached_client(make_client)
    assert identify(client).status_code == 303
    assert "Carlos" in text(client.get("/p/QUENCORO/slots"))
    other = make_client(availability_cache_seconds=2)
    other.app.state.availability = client.app.state.availability  # one process, one cache
    assert identify(other, "Q10002", "Puma").status_code == 303
    page = text(other.get("/p/QUENCORO/slots"))
    assert "José Puma" in page
    assert "Carlos" not in page
    stranger = make_client(availability_cache_seconds=2)
    stranger.app.state.availability = client.app.state.availability
    assert stranger.get("/p/QUENCORO/slots", follow_redirects=False).status_code == 303


def test_ones_own_booking_clears_ones_cached_page(make_client):
    from tests.test_pages import confirm, csrf, first_open_slot, identify, text, visitor_form

    client, _ = cached_client(make_client)
    assert identify(client).status_code == 303
    slot_id = first_open_slot(client)
    before = text(client.get("/p/QUENCORO/slots"))
    form = visitor_form(slot_id, csrf(client, "/p/QUENCORO"))
    assert confirm(client, form, "k").status_code == 303
    after = text(client.get("/p/QUENCORO/slots"))
    assert after != before
    assert "quedan 149 lugares" in after
