"""The health staff's contact list in a real browser: Debian's Chromium through Playwright,
against the real server on a demo database of this module's own, checked by axe before and
after notifying, and for an advisory that has no contact list."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from notifications.outbox import MessageStatus, OutboxMessage
from tests.browsing import staff_sign_in
from tests.clocked_server import demo_morning
from tests.history import History, Person
from tests.server import free_port, run_cli, running_server, server_env
from tests.test_browser import describe_violations, serious_violations
from visits.advisories import HealthAdvisory
from visits.db import Database, make_engine
from visits.health import AdvisoryKind, Scope
from visits.inmate import Inmate
from visits.prison import prison_by_code


@dataclass(frozen=True)
class Traced:
    base: str
    url: str  # the database's
    advisory: int
    blind: int  # no infectious-since date


def _advisories(db: Database, now: datetime) -> tuple[int, int]:
    """Two families who visited Q10001 and Q10003 (same wing) last week, and advisories over
    Q10001 (one without an infectious-since date)."""
    with db.writing() as s:
        prison = prison_by_code(s, "QUENCORO")
        assert prison is not None
        today = prison.local_date(now)
        history = History(s, prison)
        history.inmates = dict(s.execute(select(Inmate.id, Inmate.wing_id)).all())
        index = s.scalar(select(Inmate).where(Inmate.code == "Q10001"))
        other = s.scalar(select(Inmate.id).where(Inmate.code == "Q10003"))
        adult, child = date(1984, 4, 4), today - timedelta(days=700)
        mother, son, neighbour = history.people([adult, child, adult], first_names="Ana")
        week_ago = today - timedelta(days=7)
        history.book(index.id, week_ago, [Person(mother, adult), Person(son, child)])
        history.book(other, week_ago, [Person(neighbour, adult)], language="en")
        ids = []
        for since in (today - timedelta(days=3), None):
            advisory = HealthAdvisory(
                prison_id=prison.id, scope=Scope.INMATE, inmate_id=index.id,
                wing_id=index.wing_id, kind=AdvisoryKind.TB_SUSCEPTIBLE, masks=True,
                infectious_since=since, starts_on=today, created_by="staff:salud",
                created_at=now, updated_at=now,
            )  # fmt: skip
            s.add(advisory)
            s.flush()
            ids.append(advisory.id)
        return ids[0], ids[1]


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    url = f"sqlite:///{tmp_path_factory.mktemp('tracing-demo') / 'demo.db'}"
    port = free_port()
    loaded = run_cli("demo", env=server_env(url, port))
    assert loaded.returncode == 0, loaded.stderr
    db = Database(make_engine(url))
    clock = demo_morning()  # today stays today however late the module runs
    try:
        advisory, blind = _advisories(db, clock())
        with running_server(url, port=port, clock=clock) as server:
            yield Traced(server.base, url, advisory, blind)
    finally:
        db.dispose()


@pytest.mark.browser
def test_the_contact_list_and_its_notify_form_have_no_serious_accessibility_problems(staff, traced):
    path = f"/staff/p/QUENCORO/health/{traced.advisory}/contacts"
    found: dict[str, list[dict]] = {}
    staff_sign_in(staff, traced.base, "salud", path)
    expect(staff.locator("tbody tr")).to_have_count(3 + 3)  # the counts' rows, the contacts
    found["contacts"] = serious_violations(staff)
    staff.locator("form[action$='/notify'] button").click()
    expect(staff.locator("p.success")).to_be_visible()
    found["contacts after notifying"] = serious_violations(staff)
    db = Database(make_engine(traced.url))
    try:
        with db.writing() as s:  # the provider refused the English family's number
            s.execute(
                update(OutboxMessage)
                .where(OutboxMessage.language == "en")
                .values(status=MessageStatus.FAILED, error_code="21211")
            )
    finally:
        db.dispose()
    staff.reload()
    expect(staff.locator(".notice-missed")).to_be_visible()
    expect(staff.locator("tr.missed")).to_have_count(1)
    found["contacts, one notice failed"] = serious_violations(staff)
    staff.goto(f"{traced.base}/staff/p/QUENCORO/health/{traced.blind}/contacts")
    expect(staff.locator(".error-summary")).to_be_visible()
    found["advisory without a contact list"] = serious_violations(staff)
    assert not any(found.values()), "serious or critical axe violations:\n" + (
        describe_violations(found)
    )
