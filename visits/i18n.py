"""Translations and locale-aware formatting.

Every user-facing string is an English message id marked with ``_``/``N_`` and translated from
the catalogs in ``visits/locale`` (Spanish is the default language, English is offered, and a
translator can add Quechua by adding a catalog). The language in force is a context variable,
set per request by the web layer or per message by whoever writes to a family.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_skeleton
from babel.lists import format_list
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
SUPPORTED_LOCALES = ("es", "en")
DEFAULT_LOCALE = "es"
LANGUAGE_NAMES = {"es": "Español", "en": "English"}

_current_locale: ContextVar[str] = ContextVar("visits_locale", default=DEFAULT_LOCALE)


def N_(message: str) -> str:
    """Mark a message for extraction without translating it yet."""
    return message


def Np_(singular: str, plural: str) -> tuple[str, str]:
    """Mark a singular/plural pair for extraction; translate it later with :func:`ngettext`."""
    return singular, plural


@lru_cache
def translations(locale: str) -> NullTranslations:
    return Translations.load(str(LOCALE_DIR), [locale], domain=DOMAIN)


def supported_locale(candidate: str | None) -> str | None:
    """The supported locale a language tag names, whatever its case and region (``en-US``,
    ``EN``, ``es_PE``, ``en;q=0.8`` → ``en``, ``en``, ``es``, ``en``), else ``None``."""
    if candidate:
        base = re.split(r"[-_;]", candidate.strip(), maxsplit=1)[0].strip().lower()
        if base in SUPPORTED_LOCALES:
            return base
    return None


def preferred_locale(accept_language: str) -> str | None:
    """The supported locale an ``Accept-Language`` header prefers most (RFC 9110: highest
    ``q`` first, the header's order between equals; ``q=0`` means "not this one"), else
    ``None``. ``fr, en;q=0.8`` is English, where reading only the first entry gave up."""
    ranked: list[tuple[float, int, str]] = []
    for position, entry in enumerate(accept_language.split(",")):
        tag, _, params = entry.partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0  # a malformed weight counts as no preference at all
        locale = supported_locale(tag)
        if locale is not None and 0 < weight <= 1:
            ranked.append((-weight, position, locale))
    return min(ranked)[2] if ranked else None


def negotiate(candidate: str | None) -> str:
    """The supported locale for a requested one (``es-PE`` → ``es``), else the default."""
    return supported_locale(candidate) or DEFAULT_LOCALE


def current_locale() -> str:
    return _current_locale.get()


@contextmanager
def use_locale(locale: str) -> Iterator[str]:
    token = _current_locale.set(negotiate(locale))
    try:
        yield _current_locale.get()
    finally:
        _current_locale.reset(token)


def gettext(message: str, params: Mapping[str, Any] | None = None) -> str:
    text = translations(current_locale()).gettext(message)
    return text % params if params else text


_ = gettext


def ngettext(singular: str, plural: str, n: int, params: Mapping[str, Any] | None = None) -> str:
    text = translations(current_locale()).ngettext(singular, plural, n)
    return text % {"num": n, **(params or {})}


# Weekday and day of the month, spelled out: "miércoles, 3 de diciembre", "Wednesday, December 3".
# Other locales get CLDR's best match for the same fields.
_DAY_PATTERNS = {"es": "EEEE, d 'de' MMMM", "en": "EEEE, MMMM d"}


@lru_cache(maxsize=8192)
def _format_day(day: date, locale: str, with_year: bool) -> str:
    if with_year:
        return format_date(day, format="full", locale=locale)
    pattern = _DAY_PATTERNS.get(locale)
    if pattern is None:
        return format_skeleton("MMMMEEEEd", datetime.combine(day, time()), locale=locale)
    return format_date(day, format=pattern, locale=locale)


def format_day(day: date) -> str:
    """``miércoles, 3 de diciembre`` / ``Wednesday, December 3`` (cached: a slots page shows
    the same days to everyone)."""
    return _format_day(day, current_locale(), False)


def format_day_with_year(day: date) -> str:
    """``miércoles, 3 de diciembre de 2026``: for dates that may fall in another year."""
    return _format_day(day, current_locale(), True)


def format_clock(moment: datetime, tz: ZoneInfo) -> str:
    """``14:00``: the 24-hour clock, as read in Peru, in every language offered."""
    return moment.astimezone(tz).strftime("%H:%M")


def format_countries(codes: Iterable[str]) -> str:
    """``Perú``, ``Perú o Bolivia``: countries (ISO 3166 codes) by their names in the current
    locale, as alternatives (the code itself where the locale names none)."""
    locale = Locale.parse(current_locale())
    names = [locale.territories.get(code, code) for code in codes]
    return format_list(names, style="or", locale=locale) if names else ""
