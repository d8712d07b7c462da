"""The slots page on the days visits to the family's person are paused (a health measure that
suspends visits, the person's suspension until a date, the person no longer active here, or a
week in which they already have the prison's weekly limit of visits booked): those days offer
no choice and say why, the other days stay bookable, and everyone else still gets the prison's
shared days from the cache. On each database.

The demo's clock is Tuesday 1 December 2026; Quencoro's visit days in the window are 2, 5, 6,
9, 12 and 13 December (the 13th closed by the prison): the ISO week of 30 November holds the
2nd, 5th and 6th, the next one the 9th, 12th and 13th. Women visit on Wednesdays and Sundays,
men on Saturdays; the limit is 2 visits to a person per week.
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import event, select

from tests.factories import NOW, SMS, request_for, visitor
from tests.test_availability_cache import cached_client
from tests.test_closures import quencoro_days
from tests.test_pages import confirm, csrf, identify, text, visible, visitor_form
from visits.booking import Booking, BookingStatus, create_booking, outlook, slot_problems
from visits.health import AdvisoryKind, Measures, Scope
from visits.i18n import use_locale
from visits.inmate import Inmate, InmateStatus
from visits.issuing import AdvisoryDraft, issue
from visits.prison import prison_by_code
from visits.problems import Code, Problem, message
from visits.rules import last_bookable_day
from visits.schedule import Slot
from visits.sms import SmsPolicy
from visits.suspensions import Actor, suspend_inmate

# Wing A: Carlos Yupanqui and Teófilo Hancco; wing D: José Luis Puma.
CARLOS, TEOFILO, JOSE = ("Q10001", "Yupanqui"), ("Q10003", "Hancco"), ("Q10002", "Puma")
DAYS = ["2026-12-02", "2026-12-05", "2026-12-06", "2026-12-09", "2026-12-12", "2026-12-13"]
HEALTH_REASON = "No visits Visits paused for a health measure."
LINK = re.compile(r'href="/p/QUENCORO/book\?slot=(\d+)"')


def _health_suspension(db, starts_on: date, **scope: str) -> None:
    """Health staff suspend visits from ``starts_on`` (``inmate_code=`` or ``wing_code=``)."""
    draft = AdvisoryDraft(
        scope=Scope.INMATE if "inmate_code" in scope else Scope.WING,
        kind=AdvisoryKind.TB_SUSCEPTIBLE,
        measures=Measures(suspended=True),
        starts_on=starts_on,
        **scope,
    )
    with db.writing() as s:
        prison = prison_by_code(s, "QUENCORO")
        issue(s, prison, draft, now=NOW, actor="staff:salud", origin="", sms_policy=SMS)


def _days(client, page) -> dict[str, str]:
    """Each visit day's part of a slots page (its HTML), by date."""
    sections = re.findall(r'<section class="day">(.*?)</section>', page.text, re.S)
    dates = [d["date"] for d in quencoro_days(client)]
    assert dates == DAYS
    assert len(sections) == len(dates)
    return dict(zip(dates, sections, strict=True))


def _open_slots(client) -> dict[str, set[str]]:
    """The ids of the visit times open to anyone, by date."""
    return {
        d["date"]: {str(s["id"]) for s in d["slots"] if s["state"] == "open"}
        for d in quencoro_days(client)
    }


def _links(section: str) -> set[str]:
    return set(LINK.findall(section))


def test_a_health_suspension_takes_the_choice_off_the_days_it_covers(client, db):
    _health_suspension(db, date(2026, 12, 6), inmate_code="Q10001")
    open_slots = _open_slots(client)
    assert identify(client, *CARLOS).status_code == 303
    page = client.get("/p/QUENCORO/slots?lang=en")
    assert page.status_code == 200
    days = _days(client, page)
    for day in ("2026-12-02", "2026-12-05"):  # before the measure: bookable as ever
        assert open_slots[day]
        assert _links(days[day]) == open_slots[day]
        assert "paused" not in visible(days[day])
    for day in ("2026-12-06", "2026-12-09", "2026-12-12"):
        assert _links(days[day]) == set()
        assert HEALTH_REASON in visible(days[day])
        assert "places left" not in visible(days[day])  # nothing invites a choice
        assert 'class="slots"' not in days[day]  # nor lists times that cannot be had
    assert _links(days["2026-12-13"]) == set()  # closed by the prison anyway
    assert "The visit lasts" not in text(page)
    assert "Visits are paused." in text(page)  # the notice above the days, as before

    # Another person of the same prison is not paused: every open time offers its choice.
    assert identify(client, *JOSE).status_code == 303
    other = client.get("/p/QUENCORO/slots?lang=en")
    assert {d: _links(s) for d, s in _days(client, other).items()} == open_slots
    assert "paused" not in text(other)


def test_the_refused_choice_of_a_paused_day_says_why_on_the_same_days(client, db):
    """The booking form of a paused day (an old link, say) is refused, as it was, and the
    page it gives back shows the days the same way."""
    _health_suspension(db, date(2026, 12, 6), inmate_code="Q10001")
    nine = next(iter(sorted(_open_slots(client)["2026-12-09"], key=int)))
    assert identify(client, *CARLOS).status_code == 303
    refused = client.get(f"/p/QUENCORO/book?slot={nine}")
    assert refused.status_code == 422
    assert "suspendidas por una medida de salud" in text(refused)
    days = _days(client, refused)
    assert _links(days["2026-12-09"]) == set()
    assert _links(days["2026-12-02"])


@pytest.mark.parametrize("by", ["staff", "roster"])
def test_a_suspension_until_a_date_takes_the_choice_off_the_days_up_to_it(client, db, by):
    with db.writing() as s:
        prison = prison_by_code(s, "QUENCORO")
        if by == "staff":
            suspend_inmate(
                s, prison, code="Q10001", until=date(2026, 12, 9), reason="Sanción",
                by=Actor("admin", "", NOW), sms_policy=SMS,
            )  # fmt: skip
        else:
            carlos = s.scalar(select(Inmate).where(Inmate.code == "Q10001"))
            carlos.visits_suspended_until = date(2026, 12, 9)
    open_slots = _open_slots(client)
    assert identify(client, *CARLOS).status_code == 303
    page = client.get("/p/QUENCORO/slots")
    days = _days(client, page)
    reason = "No hay visitas Las visitas a esta persona están suspendidas hasta el"
    for day in ("2026-12-02", "2026-12-05", "2026-12-06", "2026-12-09"):
        assert _links(days[day]) == set()
        assert reason in visible(days[day])
        assert "9 de diciembre de 2026" in visible(days[day])
        assert "lugares" not in visible(days[day])
    for day in ("2026-12-12",):  # after the suspension's last day
        assert open_slots[day]
        assert _links(days[day]) == open_slots[day]
        assert "suspendidas" not in visible(days[day])
    refused = client.get(f"/p/QUENCORO/book?slot={min(open_slots['2026-12-09'], key=int)}")
    assert refused.status_code == 422
    assert "suspendidas hasta el" in text(refused)

    assert identify(client, *JOSE).status_code == 303
    other = client.get("/p/QUENCORO/slots")
    assert {d: _links(s) for d, s in _days(client, other).items()} == open_slots
    assert "suspendidas" not in text(other)


def test_both_reasons_when_both_pause_a_day(client, db):
    _health_suspension(db, date(2026, 12, 9), inmate_code="Q10001")
    with db.writing() as s:
        s.scalar(select(Inmate).where(Inmate.code == "Q10001")).visits_suspended_until = date(
            2026, 12, 9
        )
    assert identify(client, *CARLOS).status_code == 303
    days = _days(client, client.get("/p/QUENCORO/slots?lang=en"))
    assert "Visits to this person are suspended until" in visible(days["2026-12-06"])
    assert "health measure" not in visible(days["2026-12-06"])
    both = visible(days["2026-12-09"])
    assert "suspended until" in both
    assert "health measure" in both
    assert "suspended until" not in visible(days["2026-12-12"])
    assert HEALTH_REASON in visible(days["2026-12-12"])
    assert not any(_links(s) for s in days.values())


def test_a_person_without_a_pause_still_gets_the_shared_days_from_the_cache(make_client, db):
    """The prison's days are rendered once for every family without a pause; the people of a
    suspended wing share one rendering of their own; neither ever reaches the other."""
    client, clock = cached_client(make_client)
    cache = client.app.state.availability
    rendered: list[object] = []
    original = cache.rendered

    def spy(prison, name, render):
        def counted():
            if "slot_days" in (name, name[0]):  # not the API's answer
                rendered.append(name)
            return render()

        return original(prison, name, counted)

    cache.rendered = spy
    _health_suspension(db, date(2026, 12, 6), wing_code="A")  # Carlos and Teófilo
    with db.read_session() as s:
        wing_d = s.scalars(
            select(Inmate).where(Inmate.wing_id == s.scalar(select(Inmate.wing_id).where(
                Inmate.code == "Q10002")), Inmate.code != "Q10002").order_by(Inmate.code)
        ).first()  # fmt: skip
        neighbour = (wing_d.code, wing_d.last_name_1)
    open_slots = _open_slots(client)

    def browser(person):
        family = make_client(availability_cache_seconds=2)
        family.app.state.availability = cache  # one process, one cache
        assert identify(family, *person).status_code == 303
        return family, family.get("/p/QUENCORO/slots")

    jose, page = browser(JOSE)
    assert {d: _links(s) for d, s in _days(jose, page).items()} == open_slots
    assert rendered == ["slot_days"]
    with db.writing() as s:
        s.get(Slot, 1).seats_taken = 100  # another worker's bookings, say

    carlos, page = browser(CARLOS)
    paused = _days(carlos, page)
    assert _links(paused["2026-12-02"]) == open_slots["2026-12-02"]
    assert _links(paused["2026-12-09"]) == set()
    assert len(rendered) == 2
    assert rendered[1] != "slot_days"

    neighbour_client, page = browser(neighbour)
    assert {d: _links(s) for d, s in _days(neighbour_client, page).items()} == open_slots
    assert "quedan 150 lugares" in text(page)  # the shared days, cached before the change
    assert "quedan 50 lugares" not in text(page)
    assert "pausa" not in text(page)
    assert "paused" not in text(page)

    teofilo, page = browser(TEOFILO)  # the same pauses as Carlos: the same rendering
    assert _links(_days(teofilo, page)["2026-12-09"]) == set()
    assert len(rendered) == 2

    clock.now += 2.01  # the cache's few seconds are over: everyone's days afresh
    _, page = browser(JOSE)
    assert "quedan 50 lugares" in text(page)
    assert rendered[2:] == ["slot_days"]


def test_a_person_no_longer_active_here_is_offered_no_day(client, db):
    """Identified while active, then released by the roster: no day offers a choice, and each
    says why in the words a refused booking uses."""
    open_slots = _open_slots(client)
    assert identify(client, *CARLOS).status_code == 303
    with db.writing() as s:
        carlos = s.scalar(select(Inmate).where(Inmate.code == CARLOS[0]))
        carlos.status = InmateStatus.RELEASED
    page = client.get("/p/QUENCORO/slots")
    assert page.status_code == 200
    days = _days(client, page)
    assert any(open_slots.values())
    for day in DAYS:
        assert _links(days[day]) == set(), day
    assert "Esta persona no puede recibir visitas en este penal" in visible(days[DAYS[0]])


# --- A week that already has the prison's limit of visits to the person ----------------------

FIRST_WEEK, NEXT_WEEK = DAYS[:3], DAYS[3:]  # 30 Nov-6 Dec and 7-13 Dec


def _book(db, slot_id: str, code: str = CARLOS[0], dni: str = "45678912", **policy) -> str:
    """Another family's booking of a visit to ``code`` (as from another phone, or another
    worker): its reference. Confirmed at once, or held with ``verification=True``."""
    sms = SmsPolicy(**(SMS.__dict__ | policy)) if policy else SMS
    with db.writing() as s:
        prison = prison_by_code(s, "QUENCORO")
        inmate = s.scalar(select(Inmate).where(Inmate.prison_id == prison.id, Inmate.code == code))
        booked = create_booking(
            s, prison=prison, inmate=inmate, request=request_for(slot_id, visitor(dni)),
            now=NOW, secret_key="test-secret", sms_policy=sms,
        )  # fmt: skip
        return booked.booking.reference


def _first(slots: set[str]) -> str:
    return min(slots, key=int)


def _week_full(limit: int) -> str:
    """What a refused booking says of a full week, in Spanish: the days say the same."""
    with use_locale("es"):
        return message(Problem(Code.WEEKLY_LIMIT_REACHED, "slot_id", {"limit": limit}))


def test_a_full_week_offers_no_choice_and_says_why_in_the_bookings_words(client, db):
    """Two visits to Carlos this week, booked by whoever: the page says the week is full on
    each of its days, as the booking form would (and does, for an old link), and names no
    one; next week stays bookable, and another person of the prison is not touched."""
    open_slots = _open_slots(client)
    _book(db, _first(open_slots["2026-12-02"]))
    reference = _book(db, _first(open_slots["2026-12-06"]))
    assert identify(client, *CARLOS).status_code == 303
    page = client.get("/p/QUENCORO/slots")
    assert page.status_code == 200
    days = _days(client, page)
    reason = _week_full(2)
    assert "ya tiene 2 visitas reservadas esa semana" in reason
    for day in FIRST_WEEK:
        assert _links(days[day]) == set(), day
        assert f"No hay visitas {reason}" in visible(days[day])
        assert 'class="slots"' not in days[day]  # no time listed that cannot be had
    for day in NEXT_WEEK:
        assert _links(days[day]) == open_slots[day], day
        assert "reservadas" not in visible(days[day])
    assert "María" not in page.text  # who booked, and when, is not said
    assert reference not in page.text
    assert reference[:4] not in page.text

    # The booking form of a day of that week (an old link) is refused in the same words.
    refused = client.get(f"/p/QUENCORO/book?slot={_first(open_slots['2026-12-05'])}")
    assert refused.status_code == 422
    assert reason in text(refused)
    assert _links(_days(client, refused)["2026-12-05"]) == set()

    # Another person of the same prison: every open time offers its choice.
    assert identify(client, *JOSE).status_code == 303
    other = client.get("/p/QUENCORO/slots")
    assert {d: _links(s) for d, s in _days(client, other).items()} == open_slots
    assert "reservadas" not in text(other)


def test_a_limit_of_one_visit_reads_in_the_singular(client, db):
    with db.writing() as s:
        prison_by_code(s, "QUENCORO").visits_per_inmate_per_week = 1
    open_slots = _open_slots(client)
    _book(db, _first(open_slots["2026-12-09"]))
    assert identify(client, *CARLOS).status_code == 303
    days = _days(client, client.get("/p/QUENCORO/slots?lang=en"))
    for day in NEXT_WEEK:
        assert _links(days[day]) == set(), day
        assert (
            "No visits The person you visit already has 1 visit booked that week. "
            "Please choose another week."
        ) in visible(days[day])
    for day in FIRST_WEEK:
        assert _links(days[day]) == open_slots[day], day


@pytest.mark.parametrize("status", list(BookingStatus))
def test_a_week_is_full_on_the_page_exactly_when_the_booking_would_refuse_it(client, db, status):
    """The page counts a week's visits as the booking's check does (held, confirmed and
    attended visits count; cancelled, expired and missed ones do not), whatever the state of
    the second visit of this week (next week has two confirmed): every visit time of the
    window agrees with the check."""
    open_slots = _open_slots(client)
    nine = sorted(open_slots["2026-12-09"], key=int)
    _book(db, nine[0])
    _book(db, nine[1], dni="40000002")
    _book(db, _first(open_slots["2026-12-02"]))
    second = _book(db, _first(open_slots["2026-12-06"]), dni="40000001", verification=True)
    with db.writing() as s:
        booking = s.scalar(select(Booking).where(Booking.reference == second))
        assert booking.status is BookingStatus.HELD  # as booked, waiting for its code
        booking.status = status
    with db.read_session() as s:
        prison = prison_by_code(s, "QUENCORO")
        carlos = s.scalar(select(Inmate).where(Inmate.code == CARLOS[0]))
        today = prison.local_date(NOW)
        paused = outlook(
            s, prison, carlos, today, last_bookable_day(today, prison.booking_opens_days)
        ).paused
        slots = s.scalars(
            select(Slot).where(Slot.id.in_([int(i) for ids in open_slots.values() for i in ids]))
        ).all()
        refused = {
            slot.local_date.isoformat(): Code.WEEKLY_LIMIT_REACHED
            in {p.code for p in slot_problems(s, prison, carlos, slot, 1, NOW)}
            for slot in slots
        }
    full = {day: paused.get(date.fromisoformat(day)) is not None for day in refused}
    assert full == refused
    counts = status in (BookingStatus.HELD, BookingStatus.CONFIRMED, BookingStatus.ATTENDED)
    assert {day for day, is_full in full.items() if is_full} == refused.keys() & (
        set(DAYS) if counts else set(NEXT_WEEK)
    )
    for day, is_full in full.items():
        if is_full:
            assert paused[date.fromisoformat(day)].week_full == 2


def test_a_visit_booked_or_cancelled_shows_at_the_next_load_whatever_the_cache(make_client, db):
    """With the availability cache on (its clock stopped, so nothing expires): the family's
    own page, kept for this browser, and the days rendered for its pauses are both cleared by
    its booking and by its cancellation, so the week shows full at the next load after the
    second visit, and open again after cancelling one. Another browser's person, sharing the
    cache, keeps the prison's shared days."""
    client, _ = cached_client(make_client)
    open_slots = _open_slots(client)
    assert identify(client, *CARLOS).status_code == 303
    token = csrf(client, "/p/QUENCORO")
    first = confirm(client, visitor_form(_first(open_slots["2026-12-02"]), token), "one")
    assert first.status_code == 303
    days = _days(client, client.get("/p/QUENCORO/slots"))
    assert _links(days["2026-12-05"]) == open_slots["2026-12-05"]  # one visit of two: open

    second = confirm(client, visitor_form(_first(open_slots["2026-12-06"]), token), "two")
    assert second.status_code == 303
    days = _days(client, client.get("/p/QUENCORO/slots"))
    for day in FIRST_WEEK:
        assert _links(days[day]) == set(), day
        assert _week_full(2) in visible(days[day])
    assert _links(days["2026-12-09"]) == open_slots["2026-12-09"]

    other = make_client(availability_cache_seconds=2)
    other.app.state.availability = client.app.state.availability  # one process, one cache
    assert identify(other, *JOSE).status_code == 303
    shared = _days(other, other.get("/p/QUENCORO/slots"))
    assert {d: _links(s) for d, s in shared.items()} == open_slots

    path, query = second.headers["location"].split("?")
    manage = dict(p.split("=") for p in query.split("&"))["token"]
    cancelled = client.post(f"{path}/cancel", data={"csrf_token": csrf(client), "token": manage})
    assert "Tu visita fue cancelada" in text(cancelled)
    days = _days(client, client.get("/p/QUENCORO/slots"))
    for day in DAYS[:5]:
        assert _links(days[day]) == open_slots[day], day
        assert "reservadas" not in visible(days[day])


def test_the_slots_page_reads_the_persons_weeks_in_one_query(make_client, db):
    """The page's reads, with the prison's days already cached (the rush's common case): the
    prison, the person, their suspensions, the advisories and, in one grouped query, their
    visits of the window's weeks, however many weeks hold how many visits; a reload is
    answered from this browser's page, with none."""
    client, clock = cached_client(make_client)
    engine = client.app.state.db.engine
    other = make_client(availability_cache_seconds=2)
    other.app.state.availability = client.app.state.availability  # one process, one cache
    assert identify(other, *JOSE).status_code == 303

    def tables_read() -> list[str]:
        seen: list[str] = []

        def read(_conn, _cursor, statement, *_args) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                seen.append(re.search(r"\bFROM\s+(\w+)", statement).group(1))

        clock.now += 2.01  # every page and the prison's days expire ...
        assert other.get("/p/QUENCORO/slots").status_code == 200  # ... another family reads them
        event.listen(engine, "before_cursor_execute", read)
        try:
            page = client.get("/p/QUENCORO/slots")
            assert page.status_code == 200
            assert client.get("/p/QUENCORO/slots").text == page.text  # a reload: no query
        finally:
            event.remove(engine, "before_cursor_execute", read)
        return seen

    open_slots = _open_slots(client)
    assert identify(client, *CARLOS).status_code == 303
    reads = ["prison", "inmate", "inmate_suspension", "health_advisory", "booking"]
    assert tables_read() == reads  # no visit booked
    _book(db, _first(open_slots["2026-12-02"]))
    _book(db, _first(open_slots["2026-12-06"]))
    nine = sorted(open_slots["2026-12-09"], key=int)
    _book(db, nine[0])
    _book(db, nine[1], dni="40000002")
    assert tables_read() == reads  # two full weeks of two visits each
    days = _days(client, client.get("/p/QUENCORO/slots"))
    assert not any(_links(days[day]) for day in DAYS)
