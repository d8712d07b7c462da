"""Debian's Chromium through Playwright, as a family's cheap Android phone or the gate's
tablet: the browser fixtures every browser test shares (registered for all tests by
``conftest.py``), and signing in as staff."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from visits.demo import DEMO_STAFF_PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PHONE_SCREEN = {"width": 360, "height": 740}
PHONE_LOCALE = "es-PE"
TABLET_SCREEN = {"width": 1024, "height": 768}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Opens a page on a phone of its own (own cookies, own cache); all closed after the test.
    A second page of the same phone (same cookies) comes from ``page.context.new_page()``."""
    contexts = []

    def open_page(*, javascript: bool) -> Page:
        context = browser.new_context(
            java_script_enabled=javascript, viewport=PHONE_SCREEN, locale=PHONE_LOCALE
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def staff(browser: Browser) -> Iterator[Page]:
    """A staff member's page, on a tablet of its own."""
    context = browser.new_context(locale=PHONE_LOCALE, viewport=TABLET_SCREEN)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def staff_sign_in(page: Page, base: str, username: str, next_path: str) -> None:
    """Sign in as a demo account the way a person does (asked on the way to ``next_path``),
    ending on ``next_path``."""
    page.goto(f"{base}{next_path}")
    expect(page).to_have_url(re.compile(r"/staff/login\?next="))
    page.get_by_label("Nombre de usuario").fill(username)
    page.get_by_label("Contraseña").fill(DEMO_STAFF_PASSWORD)
    page.get_by_role("button", name="Iniciar sesión").click()
    expect(page).to_have_url(f"{base}{next_path}")
