"""The guard's day in a real browser: Debian's Chromium, driven by Playwright, against the real
server on the demo database (whose staff accounts the README lists), at a staff's size."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.browsing import staff_sign_in
from tests.test_browser import describe_violations, serious_violations
from tests.test_server import booking

DNI = "46123456"


def _booked_day(base: str) -> tuple[str, str]:
    """A booking on the demo prison's first open day for women: its reference and day."""
    days = httpx.get(f"{base}/api/v1/prisons/QUENCORO/slots", timeout=30).json()["days"]
    slot = next(
        s
        for d in days
        for s in d["slots"]
        if s["state"] == "open" and s["visitor_group"] == "women" and s["seats_left"] > 0
    )
    answer = httpx.post(f"{base}/api/v1/bookings", json=booking(slot["id"], DNI), timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()["reference"], slot["starts_at"][:10]


@pytest.mark.browser
def test_a_guard_finds_a_visitor_by_dni_and_prints_the_day(staff, demo_server):
    base = demo_server
    reference, day = _booked_day(base)
    found: dict[str, list[dict]] = {}

    staff_sign_in(staff, base, "guardia", f"/staff/p/QUENCORO/day?date={day}")
    expect(staff.get_by_role("heading", level=1)).to_contain_text("Visitantes del")
    found["day list"] = serious_violations(staff)

    staff.get_by_label("Número de documento o código de reserva").fill(DNI)
    staff.get_by_role("button", name="Buscar").click()
    row = staff.locator(f"#b-{reference.replace('-', '')}")
    expect(staff).to_have_url(re.compile(rf"#b-{reference.replace('-', '')}$"))
    expect(row).to_contain_text("Rosa Ccori")
    expect(row).to_contain_text(DNI)
    assert row.evaluate("r => r.matches(':target')")  # the row the search jumped to

    staff.emulate_media(media="print")
    expect(staff.locator(".gate-tools")).to_be_hidden()
    expect(staff.locator("header.top")).to_be_hidden()
    heading = staff.locator(".gate-slot h2").first
    expect(heading.locator(".print-only")).to_be_visible()  # prison and day on every page
    breaks = staff.locator(".gate-slot").evaluate_all(
        "ss => ss.map(s => getComputedStyle(s).breakBefore)"
    )
    assert breaks[0] == "auto"
    assert all(b == "page" for b in breaks[1:])  # one page (and heading) per visit time
    assert len(breaks) >= 2
    staff.pdf()  # the print view renders

    staff.emulate_media(media="screen")
    staff.goto(f"{base}/staff")
    found["staff home"] = serious_violations(staff)
    staff.get_by_role("button", name="Salir").click()
    expect(staff).to_have_url(re.compile(r"/staff/login$"))
    staff.get_by_label("Nombre de usuario").fill("guardia")
    staff.get_by_role("button", name="Ingresar").click()
    expect(staff.locator(".error-summary")).to_be_visible()
    found["sign-in with errors"] = serious_violations(staff)
    assert not any(found.values()), "serious or critical axe violations:\n" + (
        describe_violations(found)
    )
