"""The slots page on the days visits to the family's person are paused (a health measure that
suspends visits, or the person's suspension until a date): those days offer no choice and say
why, the other days stay bookable, and everyone else still gets the prison's shared days from
the cache. On each database.

The demo's clock is Tuesday 1 December 2026; Quencoro's visit days in the window are 2, 5, 6,
9, 12 and 13 December (the 13th closed by the prison).
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import select

from tests.factories import NOW, SMS
from tests.test_availability_cache import cached_client
from tests.test_closures import quencoro_days
from tests.test_pages import identify, text, visible
from visits.health import AdvisoryKind, Measures, Scope
from visits.inmate import Inmate, InmateStatus
from visits.issuing import AdvisoryDraft, issue
from visits.prison import prison_by_code
from visits.schedule import Slot
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
