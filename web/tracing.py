"""Health staff's contact list of an advisory: the counts by tier, then each contact with what
became of their SMS; the CSV for the health post's spreadsheet; and telling them by SMS (see
:mod:`visits.tracing`).

Health staff only, of the advisory's prison: an advisory of another prison is not found here.
The notices' SMS are shown here and nowhere else: administrators' delivery page leaves out
every SMS of :data:`visits.sms.HEALTH_PRIVATE`, as these say who may have been exposed.

The notify form carries a one-off key: the same click sent twice (a double click, a reload)
notifies once and both answers say what it did (see :func:`visits.tracing.notify`). A click
from a page that another health user had made stale (everyone told meanwhile) says that
nobody was left to tell, not "0 SMS are on their way"; one that only records visitors whose
phone was told already ("Record them as notified") says how many were recorded, and that no
SMS was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from visits import audit, tracing
from visits.advisories import HealthAdvisory
from visits.health import Scope, Tier, TracingPolicy
from visits.i18n import LANGUAGE_NAMES, N_, gettext
from visits.inmate import Inmate
from visits.prison import Prison, Wing
from visits.problems import Code, Rejected
from visits.staff import StaffRole
from web.deps import ClientKey, Now, ReadSession, WriteSession
from web.downloads import csv_cell, csv_download, record_view
from web.family import render
from web.forms import FormValues, RowId, shown_count
from web.labels import label, message_detail, message_status
from web.staff import Staff, access

router = APIRouter(prefix="/staff/p/{prison}/health/{advisory_id}", include_in_schema=False)
Health = access(StaffRole.HEALTH)
# In the advisory's history: who took its contacts away in a file, and when.
CONTACTS_DOWNLOADED = "advisory.contacts_downloaded"
CONTACTS_VIEWED = "advisory.contacts_viewed"

CSV_COLUMNS = (
    N_("Visitor"),
    N_("Document"),
    N_("Number"),
    N_("Tier"),
    N_("Last visit"),
    N_("Phone"),
    N_("Language"),
    N_("SMS notice"),
)


@dataclass(frozen=True)
class Row:
    """A contact as listed, with what became of their notice."""

    contact: tracing.Contact
    delivery: tracing.Delivery | None  # None: not told yet (or to be told again, closer)
    # What became of the notice's SMS, in the reader's language, and why (the provider's code
    # and words, or why it never went).
    state: str
    detail: str

    @property
    def missed(self) -> bool:
        return self.delivery is not None and self.delivery.missed

    @property
    def tag(self) -> str:
        """The class that colours the state: the SMS's status, or ``missed`` for no SMS."""
        if self.delivery is None:
            return "none"
        if self.delivery.status is None:
            return "missed" if self.missed else "none"
        return self.delivery.status.value

    @property
    def text(self) -> str:
        return f"{self.state} · {self.detail}" if self.detail else self.state


def _state(delivery: tracing.Delivery | None) -> tuple[str, str]:
    """A notice's state and its detail, as the delivery page words them (the same labels)."""
    if delivery is None:
        return gettext("Not yet"), ""
    if not delivery.phone:
        return gettext("Not sent: no phone number was kept for this visit"), ""
    if delivery.status is None:
        return gettext("Notified; the SMS is no longer on record"), ""
    detail = message_detail(delivery.status, delivery.error_code, delivery.error_message)
    return message_status(delivery.status), detail


def rows(
    listed: tracing.ContactList,
    delivered: dict[int, tracing.Delivery],
    fresh: set[int],
) -> list[Row]:
    """Every contact, those whose notice reached nobody first (each part in the list's own
    order: closest tier, then name): they are the ones to call. A contact to be told now (not
    told yet, or told "watch for symptoms" and tier 1 since) reads "not yet"."""
    found = []
    for contact in listed.contacts:
        delivery = None if contact.visitor_id in fresh else delivered.get(contact.visitor_id)
        found.append(Row(contact, delivery, *_state(delivery)))
    return sorted(found, key=lambda row: not row.missed)


def _policy(request: Request) -> TracingPolicy:
    return request.app.state.settings.tracing_policy


def _path(who: Staff, advisory_id: int) -> str:
    return f"/staff/p/{who.prison.code}/health/{advisory_id}/contacts"  # type: ignore[union-attr]


def _advisory(session: Session, who: Staff, advisory_id: int) -> HealthAdvisory:
    try:
        return tracing.advisory_of(session, who.prison, advisory_id)  # type: ignore[arg-type]
    except Rejected:
        raise HTTPException(404) from None


def _subject(session: Session, advisory: HealthAdvisory) -> dict[str, str]:
    """What the advisory covers, for the page's heading."""
    wing = session.scalar(select(Wing.name).where(Wing.id == advisory.wing_id)) or ""
    code = session.scalar(select(Inmate.code).where(Inmate.id == advisory.inmate_id)) or ""
    return {"wing": wing, "code": code}


def _page(
    request: Request,
    session: Session,
    who: Staff,
    advisory: HealthAdvisory,
    now: datetime,
    client: str,
    status: int = 200,
) -> Response:
    """The contacts page; when it lists the contacts, the view goes into the advisory's
    history (:func:`web.downloads.record_view`, which closes ``session``)."""
    listed = planned = unavailable = None
    listing: list[Row] = []
    try:
        listed, planned, delivered = tracing.preview(session, advisory, now, _policy(request))
    except Rejected as rejected:
        unavailable = rejected.problems[0]
    else:
        listing = rows(listed, delivered, {c.visitor_id for c in planned.new})
    page = render(
        request,
        "staff_contacts.html",
        status,
        who=who,
        prison=who.prison,
        advisory=advisory,
        scopes=Scope,
        tiers=Tier,
        subject=_subject(session, advisory),
        listed=listed,
        planned=planned,
        rows=listing,
        missed=sum(1 for row in listing if row.missed),
        unavailable=unavailable,
        done=request.query_params.get("done", ""),
        count=shown_count(request.query_params.get("count", "")),
        unreachable=shown_count(request.query_params.get("unreachable", "")),
        purged_before=_purged_before(advisory, listed, _policy(request), who.prison),  # type: ignore[arg-type]
        retention_days=_policy(request).retention_days,
        key=audit.new_key(),
    )
    if listed is not None:
        record_view(
            request, session, who, now, client, len(listing), action=CONTACTS_VIEWED,
            entity="advisory", entity_id=advisory.id,
        )  # fmt: skip
    return page


def _purged_before(
    advisory: HealthAdvisory,
    listed: tracing.ContactList | None,
    policy: TracingPolicy,
    prison: Prison,
) -> date | None:
    """The day before which visits of the window were already purged when the advisory was
    issued (from then on the purge keeps them): the list cannot name those contacts."""
    if listed is None:
        return None
    issued = prison.local_date(advisory.created_at)
    horizon = issued - timedelta(days=policy.retention_days)
    return horizon if listed.window[0] < horizon else None


@router.get("/contacts", response_class=HTMLResponse)
def contacts_page(
    request: Request, advisory_id: RowId, who: Health, session: ReadSession, now: Now,
    client: ClientKey,
) -> Response:  # fmt: skip
    """The counts by tier, the form that tells the contacts, then each contact. Seeing the
    contacts goes into the advisory's history (:func:`web.downloads.record_view`)."""
    return _page(request, session, who, _advisory(session, who, advisory_id), now, client)


@router.get("/contacts.csv")
def contacts_csv(
    request: Request,
    advisory_id: RowId,
    who: Health,
    session: ReadSession,
    now: Now,
    client: ClientKey,
) -> Response:
    """Every contact, for a spreadsheet, as the page lists them (those whose notice reached
    nobody first), with what became of each notice: UTF-8 with a byte-order mark (Excel then
    reads the accents), and no cell that a spreadsheet would run as a formula. Each download
    goes into the advisory's history."""
    advisory = _advisory(session, who, advisory_id)
    try:
        listed, planned, delivered = tracing.preview(session, advisory, now, _policy(request))
    except Rejected:
        return _page(request, session, who, advisory, now, client, 409)
    table = [[gettext(column) for column in CSV_COLUMNS]]
    for row in rows(listed, delivered, {c.visitor_id for c in planned.new}):
        c = row.contact
        table.append(
            [
                csv_cell(value)
                for value in (
                    c.name,
                    label(c.doc_type),
                    c.doc_number,
                    int(c.tier),
                    c.last_visit.isoformat(),
                    c.phone,
                    LANGUAGE_NAMES.get(c.language, c.language),
                    row.text,
                )
            ]
        )
    return csv_download(
        request, session, who, now, client, table,
        f"contactos-{who.prison.code}-{advisory.id}.csv",  # type: ignore[union-attr]
        action=CONTACTS_DOWNLOADED, entity="advisory", entity_id=advisory.id,
    )  # fmt: skip


@router.post("/contacts/notify")
def notify(
    request: Request,
    advisory_id: RowId,
    who: Health,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    values: FormValues,
) -> Response:
    """Send each contact not told yet their SMS, once; back to the list with the count (the
    first click's, for the same click sent again)."""
    try:
        planned = tracing.notify(
            session, who.prison, advisory_id, now=now, actor=who.user.actor,  # type: ignore[arg-type]
            origin=client, policy=_policy(request), key=values.get("key", ""),
        )  # fmt: skip
    except Rejected as rejected:
        session.close()
        if Code.NOT_FOUND in rejected.codes:
            raise HTTPException(404) from None
        with request.app.state.db.read_session() as reading:
            advisory = _advisory(reading, who, advisory_id)
            return _page(request, reading, who, advisory, now, client, 409)
    if planned.replayed:  # done by the first click: nothing more to commit
        session.rollback()
    else:
        session.commit()
    path = _path(who, advisory_id)
    if not planned.recorded:
        return RedirectResponse(f"{path}?done=nobody", status_code=303)
    if not planned.queued and not planned.unreachable:  # "Record them as notified"
        return RedirectResponse(f"{path}?done=recorded&count={planned.recorded}", status_code=303)
    query = f"done=notified&count={planned.queued}&unreachable={planned.unreachable}"
    return RedirectResponse(f"{path}?{query}", status_code=303)
