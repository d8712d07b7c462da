"""Files of people's data that staff download (the gate's day list, an advisory's contacts):
their cells made safe for a spreadsheet, and each download recorded in the audit; and the
views of a page of sensitive data (an advisory's contacts), recorded likewise
(:func:`record_view`)."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from visits import audit
from visits.audit import AuditEvent
from web.staff import Staff

# A spreadsheet runs a cell that starts like a formula: such cells are given a leading quote
# (OWASP's list, and the full-width forms some Excel locales also read as formulas).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")

# A phone number as stored (E.164): a spreadsheet can read it as a number, never run it, and
# a quote before it would spoil it for the dialler or SMS tool it is copied into.
PHONE_NUMBER = re.compile(r"\+[1-9][0-9]{6,14}")


def csv_cell(value: object) -> str:
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not PHONE_NUMBER.fullmatch(text):
        return f"'{text}"
    return text


def csv_download(
    request: Request,
    session: Session,
    who: Staff,
    now: datetime,
    client: str,
    rows: list[list[str]],
    filename: str,
    *,
    action: str,
    entity: str,
    entity_id: object,
    **details: object,
) -> Response:
    """A CSV of people's data (``rows``, the header first) as a download, recorded first in
    the audit: who took it, when, from where, and what (``details``, with the number of
    rows). A file leaves the service for good; its trail must say who took it. The reading
    ``session`` is closed before the write: a request never holds two connections."""
    _record(request, session, who, now, client, action, entity, entity_id, len(rows) - 1, details)
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return Response(
        # A byte-order mark: Excel, which most prison offices use, then reads UTF-8 accents.
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# A view of sensitive data is recorded once per staff member, record and this long.
VIEW_RECORDED_EVERY = timedelta(hours=1)


def record_view(
    request: Request,
    session: Session,
    who: Staff,
    now: datetime,
    client: str,
    shown: int,
    *,
    action: str,
    entity: str,
    entity_id: object,
) -> None:
    """Record in the audit that ``who`` saw a page of people's sensitive data (``shown``
    rows of it), as a download is (Peru's Ley 29733: who saw health data, when, how much).

    Decision: once per staff member and record within :data:`VIEW_RECORDED_EVERY` (the first
    view of the hour, with its rows): the page reloads after each notice sent, and a trail of
    every reload would drown the history that health staff and administrators read. A download
    is always recorded: a file leaves the service for good. Called once the page is made; the
    reading ``session`` is closed before the write (a request never holds two connections)."""
    since = now - VIEW_RECORDED_EVERY
    seen = session.scalar(
        select(AuditEvent.id)
        .where(
            AuditEvent.action == action,
            AuditEvent.entity == entity,
            AuditEvent.entity_id == str(entity_id),
            AuditEvent.actor == who.user.actor,
            AuditEvent.at > since,
        )
        .limit(1)
    )
    if seen is None:
        _record(request, session, who, now, client, action, entity, entity_id, shown, {})


def _record(
    request: Request,
    session: Session,
    who: Staff,
    now: datetime,
    client: str,
    action: str,
    entity: str,
    entity_id: object,
    rows: int,
    details: dict[str, object],
) -> None:
    """Record who took or saw ``rows`` rows of people's data, in a writing session of its
    own once the reading ``session`` is closed."""
    session.close()
    with request.app.state.db.writing() as writing:
        audit.record(
            writing, at=now, actor=who.user.actor, action=action, entity=entity,
            entity_id=entity_id, details={**details, "rows": rows}, origin=client,
        )  # fmt: skip
