"""Debian's Chromium through Playwright, as a family's cheap Android phone: the browser
fixtures every browser test shares (registered for all tests by ``conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

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
