"""Jinja2 set up for translated, escaped, locale-formatted pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date
from html import unescape
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from visits import i18n, reference
from visits.booking_request import display_phone
from visits.problems import Audience, Problem, message
from web.job_health import background_late
from web.labels import (
    actor_name,
    audit_action,
    cancel_cause,
    cancelled_why,
    field_label,
    label,
    message_detail,
    message_kind,
    message_reason,
    message_status,
    rule_name,
    turn_away_reason,
    weekday_name,
)

TEMPLATE_DIR = Path(__file__).parent / "templates"


def _gettext(text: str) -> str:
    return i18n.translations(i18n.current_locale()).gettext(text)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return i18n.translations(i18n.current_locale()).ngettext(singular, plural, n)


def errors_by_field(
    problems: list[Problem], audience: Audience = Audience.FAMILY
) -> dict[str, list[str]]:
    """Localized messages keyed by field name, for showing each beside its input, in the
    words for the ``audience`` reading them."""
    grouped: dict[str, list[str]] = {}
    for problem in problems:
        grouped.setdefault(problem.field or "", []).append(message(problem, audience))
    return grouped


# What the error summary of the page being rendered needs from the page: who reads it, and
# how the page labels its fields. A context variable, as the locale is: the summary is a
# macro, imported without the page's context (see web.family.render).
_summary: ContextVar[tuple[Audience, dict[str, str]]] = ContextVar(
    "summary", default=(Audience.FAMILY, {})
)
_LABEL = re.compile(r'<label\b[^>]*\bfor="([^"]+)"[^>]*>(.*?)</label>', re.S)
_LEGEND = re.compile(r'<fieldset\b[^>]*\bid="([^"]+)"[^>]*>\s*<legend\b[^>]*>(.*?)</legend>', re.S)
_TAG = re.compile(r"<[^>]+>")


def page_labels(html: str) -> dict[str, str]:
    """Each field's label as a rendered page shows it, by the field's id (a group of choices:
    its fieldset's legend). Staff forms are many and their labels long; read off the page, the
    summary always names a field as its form does."""
    found = {}
    for pattern in (_LEGEND, _LABEL):
        for field, inner in pattern.findall(html):
            found.setdefault(field, " ".join(unescape(_TAG.sub(" ", inner)).split()))
    return found


@contextmanager
def summarising(audience: Audience, labels: dict[str, str]) -> Iterator[None]:
    token = _summary.set((audience, labels))
    try:
        yield
    finally:
        _summary.reset(token)


def summary_audience() -> Audience:
    return _summary.get()[0]


def summary_label(field: str | None) -> str | None:
    return _summary.get()[1].get(field or "")


def mask_phone(e164: str) -> str:
    """``+51 9•• ••• 321``: enough for a family to recognise its number on a shared screen."""
    if len(e164) < 7:
        return e164
    return f"{e164[:3]} {e164[3]}•• ••• {e164[-3:]}"


def page_address(request: Request, given: str | None = None) -> str:
    """The address the language switch brings the browser back to: this page's own. A page
    that answers a form (a POST) has none a browser can open again, so it says which page to
    go back to (``given``, e.g. the booking form of the same visit time); else a staff page
    goes back to the page the form was sent from (staff pages send a same-site Referer, family
    pages none: their addresses carry tokens); else the path itself."""
    if given:
        return given
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return sent_from(request) or request.url.path


def in_language(address: str, locale: str) -> str:
    """``address`` asked for in ``locale``: ``?lang=`` (which the language middleware honours
    and remembers) added to its query, in place of any it had."""
    parts = urlsplit(address)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "lang"]
    return parts._replace(query=urlencode([*query, ("lang", locale)])).geturl()


def sent_from(request: Request) -> str | None:
    """The page of this site the form was sent from, as the browser's Referer says (a path
    on this host, never one that a link would read as another host's), or ``None``."""
    referer = urlsplit(request.headers.get("referer", ""))
    if (
        referer.netloc == request.url.netloc
        and referer.path.startswith("/")
        and not referer.path.startswith("//")
    ):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return None


def make_templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        extensions=["jinja2.ext.i18n"],
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(
        current_locale=i18n.current_locale,
        language_names=i18n.LANGUAGE_NAMES,
        message=message,
        page_address=page_address,
        field_label=field_label,
        summary_audience=summary_audience,
        summary_label=summary_label,
        message_detail=message_detail,
        background_late=background_late,
    )
    env.filters.update(
        day=i18n.format_day,
        day_with_year=i18n.format_day_with_year,
        clock=i18n.format_clock,
        reference=reference.display,
        mask_phone=mask_phone,
        phone=display_phone,
        in_language=in_language,
        from_iso=date.fromisoformat,  # a day kept as text (a change's details) read back
        label=label,
        message_kind=message_kind,
        message_reason=message_reason,
        message_status=message_status,
        audit_action=audit_action,
        cancel_cause=cancel_cause,
        cancelled_why=cancelled_why,
        actor_name=actor_name,
        turn_away_reason=turn_away_reason,
        weekday_name=weekday_name,
        rule_name=rule_name,
    )
    return Jinja2Templates(env=env)
