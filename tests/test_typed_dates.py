"""Dates typed where a browser shows no calendar: day/month/year as everyone writes it, or
the ISO form a date input sends; a day that does not exist is said not to exist, rather than
asked for again in the form it was typed in."""

from __future__ import annotations

from datetime import date

import pytest

from tests.staffing import make_staff, sign_in
from tests.test_api import body
from tests.test_pages import text
from visits.i18n import use_locale
from visits.problems import Code, Problem, message
from visits.staff import StaffRole
from web.forms import iso_day

TODAY = date(2026, 12, 1)


@pytest.mark.parametrize("typed", ["2026-12-31", "31/12/2026", "31-12-2026", "31.12.2026",
                                   " 31/12/2026 ", "３１/１２/２０２６", "31 12 2026",
                                   "31122026"])  # fmt: skip
def test_a_day_reads_as_a_date_input_sends_it_or_as_people_write_it(typed):
    problems: list[Problem] = []
    assert iso_day(typed, "day", TODAY, problems, near=TODAY) == date(2026, 12, 31)
    assert problems == []


@pytest.mark.parametrize(
    ("typed", "no_such_day"),
    [("31/02/2026", True), ("2026-02-30", True), ("29.02.2027", True), ("12/31/2026", True),
     ("31 02 2026", True), ("31022026", True),
     ("mañana", False), ("31/12/26", False), ("31/12-2026", False), ("2026/12/31", False),
     ("20261231", False), ("311226", False)],
)  # fmt: skip
def test_a_day_that_cannot_be_read_says_why(typed, no_such_day):
    problems: list[Problem] = []
    assert iso_day(typed, "day", TODAY, problems) == TODAY  # the default
    (problem,) = problems
    assert (problem.code, problem.field) == (Code.INVALID_DATE, "day")  # the API's code stays
    with use_locale("en"):
        said = message(problem)
    if no_such_day:
        assert said == "There is no such day in the calendar: check the day and the month."
    else:
        assert said == "Write the date as day/month/year, for example 25/07/1985."


def test_a_typed_day_far_away_is_still_refused():
    problems: list[Problem] = []
    iso_day("01/01/2040", "day", TODAY, problems, near=TODAY)
    assert [p.code for p in problems] == [Code.DATE_TOO_FAR]


def test_the_gate_list_of_a_day_typed_day_month_year(make_client, db):
    make_staff(db, "guardia", StaffRole.GUARD)
    client = make_client()
    assert sign_in(client, "guardia").status_code == 303
    typed = client.get("/staff/p/QUENCORO/day", params={"date": "02/12/2026"})
    iso = client.get("/staff/p/QUENCORO/day", params={"date": "2026-12-02"})
    assert typed.status_code == 200
    assert text(typed) == text(iso)
    wrong = client.get("/staff/p/QUENCORO/day", params={"date": "31/02/2026", "lang": "en"})
    assert wrong.status_code == 422
    assert "There is no such day in the calendar" in text(wrong)


def test_a_birth_date_that_does_not_exist_is_said_so(client):
    visitor = body(1)["visitors"][0] | {"birth_date": "31/02/1985"}
    answer = client.post(
        "/api/v1/bookings", json=body(1, visitors=[visitor]), headers={"Accept-Language": "en"}
    )
    assert answer.status_code == 422
    errors = {e["field"]: e for e in answer.json()["errors"]}
    assert errors["visitors.0.birth_date"]["code"] == "invalid_date"
    assert errors["visitors.0.birth_date"]["message"].startswith("There is no such day")


def test_a_birth_date_typed_on_a_phones_number_pad_identifies_and_books(client, db):
    """The birth date fields open a phone's number pad (``inputmode="numeric"``), which has no
    "/": a family types the digits run together, or with spaces as the DNI prints them."""
    from tests.test_pages import csrf, first_open_slot, identify, review, visitor_form

    assert identify(client, surname="", birth_date="02122003").status_code == 303  # Carlos
    assert identify(client, surname="", birth_date="02 12 2003").status_code == 303
    form = visitor_form(first_open_slot(client), csrf(client))
    for typed in ("25071985", "25 07 1985"):
        page = review(client, form | {"visitors.0.birth_date": typed})
        assert page.status_code == 200, text(page)
        assert "Revisa y confirma" in text(page)
