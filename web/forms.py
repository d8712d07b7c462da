"""Reading HTML forms: raw values, CSRF tokens, and the booking form's fields."""

from __future__ import annotations

import hmac
import json
import re
import secrets
from collections.abc import Iterable
from datetime import date, time, timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request

from visits.booking_request import (
    MAX_DATE_LENGTH,
    MAX_DOCUMENT_LENGTH,
    MAX_ID,
    MAX_NAME_LENGTH,
    MAX_PHONE_LENGTH,
    MAX_VISITOR_ENTRIES,
    BookingRequest,
    VisitorInput,
    date_problem,
    parse_date,
)
from visits.i18n import current_locale
from visits.problems import Code, Problem
from visits.reference import parse as parse_reference

CSRF_FIELD = "csrf_token"
VISITOR_FIELDS = tuple(VisitorInput.__dataclass_fields__)
MAX_FORM_FIELDS = 200


async def form_values(request: Request) -> dict[str, str]:
    """The submitted form as strings, one value per name (the last one sent); files are left
    out (the staff access check admits one, for the roster upload, and reads the form first:
    this reuses what it read)."""
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    # No form field ever means a NUL character, and PostgreSQL refuses to store one.
    if any("\x00" in key or "\x00" in value for key, value in values.items()):
        raise HTTPException(400, Problem(Code.INVALID_REQUEST, None, {"detail": "NUL"}))
    return values


FormValues = Annotated[dict[str, str], Depends(form_values)]
# A record's id in a path: anything else (a word, a number no column holds) is a 422 page
# before any query, never a database error.
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]


def csrf_token(request: Request) -> str:
    """This browser's anti-forgery token, kept in its signed session cookie."""
    token = request.session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(24)
        request.session[CSRF_FIELD] = token
    return token


def csrf_ok(request: Request, values: dict[str, str]) -> bool:
    expected = request.session.get(CSRF_FIELD)
    given = values.get(CSRF_FIELD, "")
    # Bytes: compare_digest refuses non-ASCII text, and a form can carry anything.
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


# The booking form's values as the identify page carries them when the session is gone
# (see :func:`kept_booking_values`): hidden fields named with this prefix.
KEPT_PREFIX = "kept."
# The most of each booking-form field worth carrying: its length on the form (maxlength), or a
# choice's longest value with room to spare. What the identify page sends back then stays far
# inside the body limit and MAX_FORM_FIELDS whatever was sent (tests/test_pages.py checks).
_KEPT_VISITOR_LENGTHS = {
    "first_names": MAX_NAME_LENGTH,
    "last_names": MAX_NAME_LENGTH,
    "doc_type": 16,
    "doc_number": MAX_DOCUMENT_LENGTH,
    "birth_date": MAX_DATE_LENGTH,
    "relationship": 16,
    "sex": 8,
}
_KEPT_CHOICE_LENGTH = 8  # a ticked health question: "1"
_KEPT_ID_LENGTH = 12


def _kept_lengths(entries: int) -> dict[str, int]:
    lengths = {"slot_id": _KEPT_ID_LENGTH, "inmate_id": _KEPT_ID_LENGTH}
    for i in range(min(entries, MAX_VISITOR_ENTRIES)):
        for name in VISITOR_FIELDS:
            lengths[f"visitors.{i}.{name}"] = _KEPT_VISITOR_LENGTHS.get(name, _KEPT_CHOICE_LENGTH)
    lengths["contact_phone"] = MAX_PHONE_LENGTH
    return lengths


def kept_booking_values(values: dict[str, str], entries: int, prefix: str = "") -> dict[str, str]:
    """What was typed into a booking form of ``entries`` visitors, read from ``values`` under
    ``prefix``: the form's own fields only (never its token, key or button), blank ones left
    out, each cut to its length on the form (a browser sends no more). The identify page
    carries these as hidden fields when the session ended while the family was filling the
    form, and the form comes back with them once the same person is identified again."""
    kept = {}
    for name, length in _kept_lengths(entries).items():
        value = values.get(prefix + name, "")
        if value.strip():
            kept[name] = value[:length]
    return kept


# A staff form sent after its session ended: what the sign-in page carries back to it, in
# hidden fields named with KEPT_PREFIX, never in an address. Its token, passwords and the
# sign-in form's own fields stay out; the signed session cookie holds it from sign-in to the
# form's page, so its size is bounded: each value cut to the longest staff note, and fields
# taken in the form's order while the budget lasts (a browser drops a cookie over 4 KB).
_NOT_KEPT = frozenset({CSRF_FIELD, "username", "next", "lang"})
MAX_KEPT_LENGTH = 300
MAX_KEPT_SIZE = 2000


def kept_staff_values(values: dict[str, str], prefix: str = "") -> dict[str, str]:
    """What was typed into a staff form, read from ``values`` under ``prefix`` (see above)."""
    kept: dict[str, str] = {}
    size = 0
    for key, value in values.items():
        name = key.removeprefix(prefix)
        if not key.startswith(prefix) or name in _NOT_KEPT or "password" in name.lower():
            continue
        if not value.strip():
            continue
        value = value[:MAX_KEPT_LENGTH]
        cost = len(json.dumps({name: value}))
        if size + cost <= MAX_KEPT_SIZE:
            kept[name] = value
            size += cost
    return kept


def typed(values: dict[str, str], names: Iterable[str]) -> dict[str, str]:
    """What was typed in a staff form's fields ``names``, and nothing else sent with them (its
    token, a one-off key): what a preview carries back to its form, filled in as it was, when
    staff go back from it (the ``back_form`` macro posts them to the page's ``/edit``)."""
    return {name: values.get(name, "") for name in names}


def booking_request(values: dict[str, str], entries: int) -> BookingRequest:
    visitors = [
        VisitorInput(**{name: values.get(f"visitors.{i}.{name}", "") for name in VISITOR_FIELDS})
        for i in range(entries)
    ]
    return BookingRequest(
        slot_id=values.get("slot_id", ""),
        visitors=visitors,
        contact_phone=values.get("contact_phone", ""),
        language=current_locale(),
    )


# How far from today a page that only shows a day (the gate's list, the reports, the SMS sent)
# may be asked to look: further is a typo, and the day after 9999-12-31 would be an error.
NEAR_YEARS = 10
_NEAR = timedelta(days=round(NEAR_YEARS * 365.25))


def iso_day(
    raw: str | None,
    field: str,
    default: date,
    problems: list[Problem],
    *,
    near: date | None = None,
) -> date:
    """A day as a date input sends it (``YYYY-MM-DD``) or as staff type it where the browser
    shows no calendar (day/month/year, see :func:`visits.booking_request.parse_date`), else
    ``default``; one that cannot be read adds its problem. With ``near`` (today), a day more
    than :data:`NEAR_YEARS` years from it is refused too (``default`` is returned), before
    any date arithmetic: forms whose domain checks have their own limits leave ``near`` out."""
    if not raw:
        return default
    day = parse_date(raw)
    if day is None:
        problems.append(date_problem(raw, field))
        return default
    if near is not None and abs(day - near) > _NEAR:
        code = Code.DATE_TOO_FAR if day > near else Code.DATE_TOO_OLD
        problems.append(Problem(code, field, {"years": NEAR_YEARS}))
        return default
    return day


def shown_count(raw: str) -> int:
    """A count a redirect put in the address for the next page to show (0 if it is not one:
    anyone can edit an address)."""
    return int(raw) if re.fullmatch(r"[0-9]{1,6}", raw) else 0


def shown_references(raw: str) -> list[str]:
    """Booking references a redirect put in the address (comma-separated) for the next page
    to list; any that is not one is left out (anyone can edit an address)."""
    found = (parse_reference(part) for part in raw.split(",")[:100])
    return [reference for reference in found if reference is not None]


_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


def clock_time(raw: str) -> time | None:
    """``HH:MM`` as a time, else ``None``: what a time input sends, and nothing else (a time
    with seconds or a zone would name a moment no visit time has)."""
    found = _CLOCK.fullmatch(raw.strip())
    return time(int(found[1]), int(found[2])) if found else None
