"""Files of people's data that staff download (the gate's day list, an advisory's contacts):
their cells made safe for a spreadsheet, and each download recorded in the audit."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from visits import audit
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
    session.close()
    with request.app.state.db.writing() as writing:
        audit.record(
            writing, at=now, actor=who.user.actor, action=action, entity=entity,
            entity_id=entity_id, details={**details, "rows": len(rows) - 1}, origin=client,
        )  # fmt: skip
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return Response(
        # A byte-order mark: Excel, which most prison offices use, then reads UTF-8 accents.
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
