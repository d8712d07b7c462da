"""Health staff's advisory pages, and the measures as families and guards see them (on each
database): the count comes before confirming, families see what to do and never why, guards
see the flags, only health staff change anything."""

from __future__ import annotations

import re
from datetime import date, time

import pytest
from sqlalchemy import func, select

from notifications.outbox import OutboxMessage
from tests.factories import NOW, SMS, make_inmate, make_prison
from tests.staffing import make_staff, sign_in, staff_token
from tests.test_closures import book_one, quencoro_days, status_of, try_booking
from tests.test_gate import GUARD, _quencoro_visit
from tests.test_pages import form_fields, identify, text, visible
from tests.test_races import race
from visits.advisories import HealthAdvisory
from visits.audit import AuditEvent
from visits.booking import BookingStatus
from visits.db import Database, make_engine
from visits.gate import record_arrival
from visits.health import AdvisoryKind, Measures, Scope
from visits.issuing import AdvisoryDraft, issue
from visits.prison import Prison, prison_by_code
from visits.reference import display, manage_token
from visits.staff import StaffRole

PAGE = "/staff/p/QUENCORO/health"
WEDNESDAY = "2026-12-02"
# Wing A: Carlos Yupanqui (Q10001) and Teófilo Hancco (Q10003); wing D: José Luis Puma.
CARLOS, TEOFILO, JOSE = ("Q10001", "Yupanqui"), ("Q10003", "Hancco"), ("Q10002", "Puma")
WING_A_MASKS = {
    "scope": "wing", "wing": "A", "kind": "tb_susceptible", "masks": "1", "non_contact": "1",
    "visit_minutes": "45", "starts_on": "2026-12-01", "infectious_since": "2026-11-20",
    "notes": "Caso índice en celda 12",
}  # fmt: skip


@pytest.fixture
def booked(make_client, db):
    """Bookings for Carlos and Teófilo (wing A) and José Luis (wing D) on Wednesday at 09:00;
    Quencoro's health staff signed in on their own browser."""
    for name, role, prisons in (
        ("salud", StaffRole.HEALTH, ("QUENCORO",)),
        ("salud.mujeres", StaffRole.HEALTH, ("MUJERES-CUSCO",)),
        ("admin", StaffRole.ADMIN, ("QUENCORO",)),
        ("guardia", StaffRole.GUARD, ("QUENCORO",)),
    ):
        make_staff(db, name, role, prisons)
    family = make_client()
    nine = next(
        s["id"]
        for d in quencoro_days(family)
        if d["date"] == WEDNESDAY
        for s in d["slots"]
        if s["local_start"] == "09:00"
    )
    refs = {
        "carlos": book_one(family, nine, *CARLOS, "41111111", "987654321"),
        "teofilo": book_one(family, nine, *TEOFILO, "42222222", "987654322", language="en"),
        "jose": book_one(family, nine, *JOSE, "43333333", "987654323"),
    }
    staff = make_client()
    assert sign_in(staff, "salud").status_code == 303
    return staff, family, refs, nine


def _post(client, path="", **data):
    return client.post(
        f"{PAGE}{path}", data={"csrf_token": staff_token(client), **data}, follow_redirects=False
    )


def _messages(db, kind) -> dict[str, str]:
    with db.read_session() as s:
        rows = s.execute(
            select(OutboxMessage.subject, OutboxMessage.body).where(OutboxMessage.kind == kind)
        )
        return {subject.removeprefix("booking:"): body for subject, body in rows}


def _advisories(db) -> int:
    with db.read_session() as s:
        return s.scalar(select(func.count()).select_from(HealthAdvisory))


def _affected(page) -> int:
    """The count the preview's heading gives."""
    heading = re.search(r'<h2 id="affected">(.*?)</h2>', page.text, re.S).group(1)
    return int(re.search(r"\d+", heading).group(0))


def test_health_staff_see_the_count_first_then_issue_and_each_family_learns_what_to_do(
    booked, db, make_client
):
    staff, family, refs, _ = booked
    preview = _post(staff, "/preview", **WING_A_MASKS)
    assert preview.status_code == 200
    assert _affected(preview) == 2  # Carlos's and Teófilo's, not José Luis's
    shown = set(re.findall(r"[A-Z0-9]{4}-[A-Z0-9]{4}", text(preview)))
    assert {refs["carlos"], refs["teofilo"]} == {r.replace("-", "") for r in shown}
    assert _advisories(db) == 0  # a preview stores nothing
    assert _messages(db, "health_measure") == {}

    assert "Afecta a Pabellón A" in text(preview)  # the wing's name says it is one

    done = _post(staff, **WING_A_MASKS)
    assert done.status_code == 303
    page = staff.get(done.headers["location"])
    assert "Caso índice en celda 12" in page.text  # staff see their notes
    shown = text(page)
    assert "Alerta de salud: Pabellón A" in shown
    assert "Pabellón Pabellón" not in shown
    assert "Emitida. Se cancelaron 0 reservas." in shown  # each sentence apart
    listed = text(staff.get(PAGE))
    assert "Pabellón A" in listed
    assert "Pabellón Pabellón" not in listed
    contacts = re.search(r'href="([^"]+/contacts)"', page.text).group(1)
    assert staff.get(contacts).status_code == 200  # exposure tracing, one link away
    told = _messages(db, "health_measure")
    assert set(told) == {refs["carlos"], refs["teofilo"]}
    assert "N95" in told[refs["carlos"]]
    assert "45 min" in told[refs["teofilo"]]
    assert "No physical contact." in told[refs["teofilo"]]  # in the family's own language
    assert status_of(db, refs["carlos"]) is BookingStatus.CONFIRMED

    # The API says the same to an app: what the measures ask, for the bookings they cover.
    def measures_by_api(reference):
        bearer = {"Authorization": f"Bearer {manage_token('test-secret', reference)}"}
        found = family.get(f"/api/v1/bookings/{reference}", headers=bearer)
        assert found.status_code == 200, found.text
        return found.json()["health_measures"]

    carlos = measures_by_api(refs["carlos"])
    assert (carlos["masks"], carlos["non_contact"], carlos["visit_minutes"]) == (True, True, 45)
    assert carlos["suspended"] is False
    assert measures_by_api(refs["jose"]) is None

    # The family visiting Carlos sees the measures; the one visiting José Luis does not.
    identify(family, *CARLOS)
    slots = family.get("/p/QUENCORO/slots")
    assert "notice-health" in slots.text
    assert "N95" in text(slots)
    assert "45" in text(slots)
    notice = re.search(r'<section class="notice notice-health".*?</section>', slots.text, re.S)
    assert re.search(r"\b15\b", visible(notice.group(0)))  # the cough as the screening asks
    identify(family, *JOSE)
    assert "notice-health" not in family.get("/p/QUENCORO/slots").text

    # The guard's list flags Carlos's booking, and not José Luis's.
    guard = make_client()
    assert sign_in(guard, "guardia").status_code == 303
    day = guard.get(f"/staff/p/QUENCORO/day?date={WEDNESDAY}").text
    rows = {ref: row for ref, row in re.findall(r'<tr id="b-(\w+)"[^>]*>(.*?)</tr>', day, re.S)}
    assert "tag-health" in rows[refs["carlos"]]
    assert "tag-health" not in rows[refs["jose"]]
    assert "Caso índice" not in day  # guards see the measures, never the notes


def test_suspending_a_wing_cancels_its_bookings_and_lifting_reopens_it(booked, db):
    staff, family, refs, nine = booked
    form = {**WING_A_MASKS, "suspended": "1"}
    preview = _post(staff, "/preview", **form)
    assert _affected(preview) == 2
    done = _post(staff, **form)
    assert done.status_code == 303
    assert "cancelled=2" in done.headers["location"]
    assert status_of(db, refs["carlos"]) is BookingStatus.CANCELLED
    assert status_of(db, refs["jose"]) is BookingStatus.CONFIRMED  # wing D untouched
    assert set(_messages(db, "health_suspended")) == {refs["carlos"], refs["teofilo"]}

    identify(family, *CARLOS)
    assert "notice-health" in family.get("/p/QUENCORO/slots").text
    refused = try_booking(family, nine, *CARLOS, "44444444", "987654324")
    assert refused.status_code == 422
    assert [e["code"] for e in refused.json()["errors"]] == ["health_suspended"]

    advisory = done.headers["location"].split("?")[0]
    lifted = staff.post(
        f"{advisory}/lift", data={"csrf_token": staff_token(staff)}, follow_redirects=False
    )
    assert lifted.status_code == 303
    assert try_booking(family, nine, *CARLOS, "44444444", "987654324").status_code == 201
    again = staff.post(f"{advisory}/lift", data={"csrf_token": staff_token(staff)})
    assert again.status_code == 409  # already lifted: said, nothing changes
    assert status_of(db, refs["carlos"]) is BookingStatus.CANCELLED  # stays cancelled


REOPENED = "{} families whose visits were cancelled get an SMS: they can book again."


def _suspended_wing_a(staff, db) -> str:
    """Wing A's visits suspended: Carlos's and Teófilo's bookings cancelled; the advisory.
    The pages in English from here on."""
    assert staff.get(f"{PAGE}?lang=en").status_code == 200
    done = _post(staff, **WING_A_MASKS, suspended="1")
    assert "cancelled=2" in done.headers["location"]
    return done.headers["location"].split("?")[0]


def test_easing_a_suspension_says_before_and_after_how_many_families_can_book_again(booked, db):
    staff = booked[0]
    advisory = _suspended_wing_a(staff, db)
    eased = {"masks": "1", "csrf_token": staff_token(staff)}
    preview = staff.post(f"{advisory}/preview", data=eased)
    assert preview.status_code == 200
    assert REOPENED.format(2) in text(preview)  # what confirming sends, counted first
    assert _messages(db, "health_reopened") == {}  # a preview sends nothing
    done = staff.post(advisory, data=eased, follow_redirects=False)
    assert done.status_code == 303
    assert len(_messages(db, "health_reopened")) == 2
    assert REOPENED.format(2) in text(staff.get(done.headers["location"]))
    again = staff.post(f"{advisory}/preview", data={**eased, "inform": "1"})
    assert "whose visits were cancelled" not in text(again)  # not suspended now: nobody


def test_lifting_shows_first_whom_it_tells_and_a_double_click_lifts_once(booked, db):
    staff, family, _, nine = booked
    advisory = _suspended_wing_a(staff, db)
    page = staff.get(advisory).text
    assert f'action="{advisory}/lift/preview"' in page
    assert f'action="{advisory}/lift"' not in page  # no click that texts families at once
    preview = staff.post(f"{advisory}/lift/preview", data={"csrf_token": staff_token(staff)})
    assert preview.status_code == 200
    assert REOPENED.format(2) in text(preview)
    assert _messages(db, "health_reopened") == {}
    with db.read_session() as s:
        assert s.scalar(select(HealthAdvisory.lifted_at)) is None  # a preview lifts nothing
    assert f'href="{advisory}"' in preview.text  # back to the advisory, unchanged
    key = re.search(r'name="key" value="([^"]+)"', preview.text).group(1)
    form = {"csrf_token": staff_token(staff), "key": key}
    first = staff.post(f"{advisory}/lift", data=form, follow_redirects=False)
    second = staff.post(f"{advisory}/lift", data=form, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert second.headers["location"] == first.headers["location"]  # answered as the first
    assert "reopened=2" in first.headers["location"]
    assert len(_messages(db, "health_reopened")) == 2  # each family once
    with db.read_session() as s:
        lifts = s.scalars(select(AuditEvent).where(AuditEvent.action == "advisory.lifted"))
        assert len(list(lifts)) == 1
    assert try_booking(family, nine, *CARLOS, "44444444", "987654324").status_code == 201
    stale = staff.post(f"{advisory}/lift/preview", data={"csrf_token": staff_token(staff)})
    assert stale.status_code == 409  # lifted already: said, nothing to preview


LIFTED_NEWS = "2 families told of its measures get an SMS: they no longer apply."


def test_lifting_masks_says_what_the_families_are_texted_not_that_they_can_book_again(booked, db):
    """Wing A asked for masks only: lifting it reopens nothing (nothing was paused), and
    Carlos's and Teófilo's families, told of the masks, are texted they no longer apply.
    The preview and the result say so, and say nothing of booking again."""
    staff = booked[0]
    assert staff.get(f"{PAGE}?lang=en").status_code == 200
    advisory = _post(staff, **WING_A_MASKS).headers["location"].split("?")[0]
    preview = staff.post(f"{advisory}/lift/preview", data={"csrf_token": staff_token(staff)})
    assert LIFTED_NEWS in text(preview)
    assert "book these visits again" not in text(preview)
    assert "can book again" not in text(preview)
    assert _messages(db, "health_lifted") == {}  # a preview sends nothing
    key = re.search(r'name="key" value="([^"]+)"', preview.text).group(1)
    form = {"csrf_token": staff_token(staff), "key": key}
    done = staff.post(f"{advisory}/lift", data=form, follow_redirects=False)
    assert "no_longer=2" in done.headers["location"]
    refs = booked[2]
    assert set(_messages(db, "health_lifted")) == {refs["carlos"], refs["teofilo"]}
    page = text(staff.get(done.headers["location"]))
    assert LIFTED_NEWS in page
    assert "book these visits again" not in page


def test_changing_the_measures_tells_only_what_is_new(booked, db):
    staff = booked[0]
    advisory = _post(staff, **WING_A_MASKS).headers["location"].split("?")[0]
    assert len(_messages(db, "health_measure")) == 2
    same = {k: v for k, v in WING_A_MASKS.items() if k in ("masks", "non_contact", "visit_minutes")}
    preview = staff.post(f"{advisory}/preview", data={"csrf_token": staff_token(staff), **same})
    assert preview.status_code == 200
    assert (
        staff.post(
            advisory, data={"csrf_token": staff_token(staff), **same}, follow_redirects=False
        ).status_code
        == 303
    )
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == "health_measure")) == 2  # fmt: skip
    changed = staff.post(
        advisory,
        data={"csrf_token": staff_token(staff), **same, "no_high_risk": "1"},
        follow_redirects=False,
    )
    assert changed.status_code == 303
    with db.read_session() as s:
        bodies = s.scalars(select(OutboxMessage.body).where(OutboxMessage.kind == "health_measure"))
        assert len(list(bodies)) == 4
        assert s.scalar(select(HealthAdvisory.version)) == 2
    page = staff.get(advisory).text
    history = visible(re.search(r'<ol class="history">.*?</ol>', page, re.S).group(0))
    assert history.count("staff:salud") == 0  # staff are shown by name, not by key
    assert "salud" in history
    # Each issue or change says what the measures became, not only that they changed.
    before = "Medidas: Mascarilla N95, visita sin contacto, máximo 45 minutos"
    assert f"{before} ·" in history
    assert f"{before}, sin visitantes de alto riesgo" in history


def test_an_advisory_starting_later_is_listed_apart_with_its_day_not_as_in_force(booked, db):
    staff = booked[0]
    now_on = _post(staff, **WING_A_MASKS).headers["location"].split("?")[0]
    later = {"scope": "inmate", "inmate_code": JOSE[0], "starts_on": "2026-12-10"}
    later_on = _post(staff, **(WING_A_MASKS | later)).headers["location"].split("?")[0]
    page = staff.get(PAGE).text
    in_force = re.search(r'<h2 id="in-force">(.*?)</table>', page, re.S).group(1)
    upcoming = re.search(r'<h2 id="upcoming">(.*?)</table>', page, re.S).group(1)
    assert now_on in in_force
    assert later_on not in in_force
    assert later_on in upcoming
    assert "Puma" in upcoming
    assert "10 de diciembre de 2026" in upcoming  # the day its measures start
    assert "In force" not in text(staff.get(f"{later_on}?lang=en"))  # its own page says so too
    assert "Upcoming" in text(staff.get(later_on))
    assert "In force" in text(staff.get(now_on))


def test_a_shorter_visit_as_long_as_the_visits_themselves_is_refused_when_issued_or_changed(
    booked, db
):
    """Quencoro's visits last 2 hours: "at most 600 minutes" would limit nothing."""
    staff = booked[0]
    assert staff.get(f"{PAGE}?lang=en").status_code == 200
    for path in ("/preview", ""):
        answer = _post(staff, path, **(WING_A_MASKS | {"visit_minutes": "600"}))
        assert answer.status_code == 422
        assert "Visits here last at most 120 minutes" in text(answer)
        assert 'value="600"' in answer.text  # what was typed stays
    assert _advisories(db) == 0
    advisory = _post(staff, **WING_A_MASKS).headers["location"].split("?")[0]
    for path in ("/preview", ""):
        answer = staff.post(
            f"{advisory}{path}",
            data={"csrf_token": staff_token(staff), "masks": "1", "visit_minutes": "120"},
        )
        assert answer.status_code == 422
        assert "Visits here last at most 120 minutes" in text(answer)
    with db.read_session() as s:
        assert s.scalar(select(HealthAdvisory.visit_minutes)) == 45


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"scope": ""}, "scope"),
        ({"scope": "planet"}, "scope"),
        ({"kind": "flu"}, "kind"),
        ({"wing": "Z"}, "wing"),
        ({"scope": "inmate", "inmate_code": "Q99999"}, "inmate_code"),
        ({"masks": "", "non_contact": "", "visit_minutes": ""}, "measures"),
        ({"visit_minutes": "cuarenta"}, "visit_minutes"),
        ({"visit_minutes": "5"}, "visit_minutes"),
        ({"visit_minutes": "120"}, "visit_minutes"),  # Quencoro's visits last 2 hours
        ({"starts_on": "2026-13-01"}, "starts_on"),
        ({"starts_on": "2026-11-30"}, "starts_on"),
        ({"starts_on": "9999-12-31"}, "starts_on"),
        ({"infectious_since": "0001-01-01"}, "infectious_since"),
        ({"infectious_since": "2026-12-25"}, "infectious_since"),
        ({"notes": "x" * 2001}, "notes"),
    ],
)
def test_an_advisory_that_cannot_be_issued_is_explained_and_changes_nothing(
    booked, db, changes, field
):
    staff, _, refs, _ = booked
    for path in ("/preview", ""):
        answer = _post(staff, path, **(WING_A_MASKS | changes))
        assert answer.status_code == 422, answer.text
        assert f'href="#{field}"' in answer.text  # the error summary points at the field
        assert "Traceback" not in answer.text
    assert _advisories(db) == 0
    assert _messages(db, "health_measure") == {}
    assert status_of(db, refs["carlos"]) is BookingStatus.CONFIRMED


def test_only_health_staff_of_the_prison_change_advisories_and_admins_only_read(
    booked, db, make_client
):
    staff, _, _, _ = booked
    advisory = _post(staff, **WING_A_MASKS).headers["location"].split("?")[0]
    other = make_client()
    assert sign_in(other, "admin").status_code == 303
    page = other.get(advisory)
    assert page.status_code == 200
    assert "Caso índice en celda 12" in page.text  # administrators see advisories and notes
    assert "/lift" not in page.text  # but no form that changes them
    assert "health/preview" not in other.get(PAGE).text
    token = staff_token(other)
    assert other.post(f"{advisory}/lift", data={"csrf_token": token}).status_code == 403
    assert (
        other.post(f"{PAGE}/preview", data={"csrf_token": token, **WING_A_MASKS}).status_code == 403
    )
    guard = make_client()
    assert sign_in(guard, "guardia").status_code == 303
    assert guard.get(advisory).status_code == 403
    assert guard.get(PAGE).status_code == 403
    stranger = make_client()
    assert sign_in(stranger, "salud.mujeres").status_code == 303
    assert stranger.get(advisory).status_code == 403
    # An advisory of another prison is not found through this prison's address.
    with db.writing() as s:
        mujeres = prison_by_code(s, "MUJERES-CUSCO")
        draft = AdvisoryDraft(
            scope=Scope.PRISON, kind=AdvisoryKind.RESPIRATORY_OUTBREAK,
            measures=Measures(masks=True), starts_on=date(2026, 12, 1),
        )  # fmt: skip
        foreign = issue(s, mujeres, draft, now=NOW, actor="staff:x", origin="", sms_policy=SMS)
        foreign_id = foreign.advisory.id
    assert staff.get(f"{PAGE}/{foreign_id}").status_code == 404
    lifted = staff.post(f"{PAGE}/{foreign_id}/lift", data={"csrf_token": staff_token(staff)})
    assert lifted.status_code == 404


def test_the_case_date_given_after_issuing_opens_the_contact_list_and_is_in_the_history(
    booked, db, make_client
):
    """Measures are taken on suspicion; the date the case is infectious from comes with the
    results, weeks later: without it there would never be a contact list."""
    staff, _, _, _ = booked
    undated = {k: v for k, v in WING_A_MASKS.items() if k != "infectious_since"}
    advisory = _post(staff, **undated).headers["location"].split("?")[0]
    advisory_id = int(advisory.rsplit("/", 1)[1])
    assert "/contacts" not in staff.get(advisory).text
    token = staff_token(staff)

    def dated(**data):
        return staff.post(
            f"{advisory}/infectious-since", data={"csrf_token": token, **data},
            follow_redirects=False,
        )  # fmt: skip

    refused = dated(infectious_since="2026-12-05")  # after today: a typing mistake
    assert refused.status_code == 422
    assert "2026-12-05" in refused.text  # kept as typed, with why
    assert 'class="error-summary' in refused.text
    assert dated(infectious_since="").status_code == 422
    with db.read_session() as s:
        assert s.get(HealthAdvisory, advisory_id).infectious_since is None  # nothing changed
    admin = make_client()
    assert sign_in(admin, "admin").status_code == 303
    assert "/infectious-since" not in admin.get(advisory).text
    forbidden = admin.post(
        f"{advisory}/infectious-since",
        data={"csrf_token": staff_token(admin), "infectious_since": "2026-11-20"},
    )  # fmt: skip
    assert forbidden.status_code == 403
    assert dated(infectious_since="2026-11-20", smear_negative_no_cavity="1").status_code == 303
    page = staff.get(advisory)
    assert f"{advisory}/contacts" in page.text
    with db.read_session() as s:
        row = s.get(HealthAdvisory, advisory_id)
        assert (row.infectious_since, row.smear_negative_no_cavity) == (date(2026, 11, 20), True)
        event = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "advisory.dated")
        ).one()  # fmt: skip
        assert event.actor == "staff:salud"
        assert event.details["before"] is None
    assert staff.get(f"{advisory}/contacts").status_code == 200


HEALTH_NOTICE = r'<section class="notice notice-health".*?</section>'
DIAGNOSIS_WORDS = ("tb", "tuberculos", "diagn", "contag", "infec", "index", "índice", "caso")


def test_no_family_page_names_a_diagnosis_or_anyone_else(booked, db):
    """Every health text a family can see, with every measure at once, in both languages."""
    staff, family, refs, nine = booked
    every = {**WING_A_MASKS, "no_high_risk": "1", "inform": "1"}
    assert _post(staff, **every).status_code == 303
    # And one about Carlos, who lives in the wing of Teófilo, whose family looks.
    about_carlos = {**WING_A_MASKS, "scope": "inmate", "inmate_code": "Q10001"}
    assert _post(staff, **about_carlos).status_code == 303
    # Staff read whom it is about in words that fit a women's prison too.
    assert re.search(r"Interno\(a\)\s+Carlos", staff.get(PAGE).text)
    identify(family, *TEOFILO)
    ref = refs["teofilo"]
    manage = f"b/{display(ref)}?token={manage_token('test-secret', ref)}"
    for language in ("es", "en"):
        family.cookies.set("lang", language)
        pages = [
            family.get("/p/QUENCORO/slots"),
            family.get(f"/p/QUENCORO/book?slot={nine}"),
            family.get(f"/{manage}"),
        ]
        for page in pages:
            sections = re.findall(
                r'<section class="notice notice-health".*?</section>', page.text, re.S
            )
            assert sections, page.url
            for section in sections:
                words = " ".join(re.sub(r"<[^>]+>", " ", section).lower().split())
                for word in DIAGNOSIS_WORDS:
                    assert not re.search(rf"\b{word}", words), (word, words)
                assert "yupanqui" not in words  # nor the inmate the advisory is about


def test_confirming_twice_issues_one_advisory(booked, db):
    """A double click on "issue", or a reload of its answer: one advisory, nobody told twice."""
    staff = booked[0]
    preview = _post(staff, "/preview", **WING_A_MASKS)
    key = re.search(r'name="submission_key" value="([^"]+)"', preview.text).group(1)
    first = _post(staff, **WING_A_MASKS, submission_key=key)
    second = _post(staff, **WING_A_MASKS, submission_key=key)
    assert first.status_code == second.status_code == 303
    assert second.headers["location"] == first.headers["location"].split("?")[0]
    assert _advisories(db) == 1
    assert len(_messages(db, "health_measure")) == 2
    assert _post(staff, **WING_A_MASKS).status_code == 303  # a new preview is a new advisory
    assert _advisories(db) == 2


def test_two_confirmations_at_the_same_instant_issue_one_advisory(db_url):
    """Real threads on the same key: on PostgreSQL the second waits on the first's key."""

    db = Database(make_engine(db_url, busy_timeout_ms=60_000, pool_size=6))
    try:
        with db.writing() as s:
            make_inmate(s, make_prison(s))
        draft = AdvisoryDraft(
            scope=Scope.PRISON, kind=AdvisoryKind.RESPIRATORY_OUTBREAK,
            measures=Measures(masks=True), starts_on=date(2026, 12, 1),
            submission_key="same-key-0123456789",
        )  # fmt: skip

        def confirm(_: int) -> str:
            with db.writing() as s:
                prison = s.scalar(select(Prison))
                effect = issue(
                    s, prison, draft, now=NOW, actor="staff:salud", origin="", sms_policy=SMS
                )
                return "replayed" if effect.replayed else "issued"

        assert race(4, confirm) == {"issued": 1, "replayed": 3}
        assert _advisories(db) == 1
    finally:
        db.dispose()


def test_going_back_from_a_preview_keeps_what_was_typed_and_changes_nothing(booked, db):
    staff, _, refs, _ = booked
    # Informing is ticked on a new form: left unticked, it must come back unticked.
    typed = WING_A_MASKS | {"smear_negative_no_cavity": "1", "notes": 'Celda "12" & <patio>'}
    preview = _post(staff, "/preview", **typed)
    assert preview.status_code == 200
    back = _post(staff, "/edit", **form_fields(preview.text, f"{PAGE}/edit"))
    assert back.status_code == 200
    shown = form_fields(back.text, f"{PAGE}/preview")
    assert shown.pop("csrf_token")
    assert shown == typed
    assert _advisories(db) == 0  # going back issues nothing
    assert _messages(db, "health_measure") == {}

    # The same from a change of the measures: back to the advisory's form as typed.
    advisory = _post(staff, **WING_A_MASKS).headers["location"].split("?")[0]
    change = {"inform": "1", "suspended": "1", "visit_minutes": "30"}
    preview = _post(staff, advisory.removeprefix(PAGE) + "/preview", **change)
    assert preview.status_code == 200
    back = staff.post(f"{advisory}/edit", data=form_fields(preview.text, f"{advisory}/edit"))
    assert back.status_code == 200
    shown = form_fields(back.text, f"{advisory}/preview")
    assert shown.pop("csrf_token")
    assert shown == change  # masks and non-contact unticked, as sent
    assert status_of(db, refs["carlos"]) is BookingStatus.CONFIRMED  # nothing suspended
    with db.read_session() as s:
        assert s.scalar(select(HealthAdvisory.suspended)) is False


def test_a_visit_already_let_in_at_the_gate_is_listed_apart_not_cancelled(booked, db):
    """Someone of a 14:00 visit for Carlos came in at 10:00: suspending wing A does not cancel
    it (the person is inside), and health staff see it apart, before and after, to tell the
    gate."""
    staff, _, refs, _ = booked
    reference, _, maria = _quencoro_visit(db, date(2026, 12, 1), time(14))
    with db.writing() as s:
        record_arrival(
            s, prison=prison_by_code(s, "QUENCORO"), visitor_id=maria, actor=GUARD, now=NOW
        )
    form = {**WING_A_MASKS, "suspended": "1"}
    preview = _post(staff, "/preview?lang=en", **form)
    assert _affected(preview) == 2  # Carlos's and Teófilo's Wednesday bookings
    _the_gate_is_told_of(staff, db, refs, reference)
    assert status_of(db, reference) is BookingStatus.ATTENDED
    assert reference not in _messages(db, "health_suspended")


def _the_gate_is_told_of(staff, db, refs, reference) -> None:
    """Suspending wing A cancels Carlos's and Teófilo's Wednesday bookings and lists
    ``reference`` apart, to tell the gate, in the preview, the result and the history."""
    form = {**WING_A_MASKS, "suspended": "1"}
    preview = _post(staff, "/preview?lang=en", **form)
    assert _affected(preview) == 2  # Carlos's and Teófilo's Wednesday bookings
    at_gate = re.search(r'<h2 id="at-gate">(.*?)</h2>(.*?)</ul>', preview.text, re.S)
    assert (
        "1 booking inside already or with its visit time under way: tell the gate"
        in at_gate.group(1)
    )
    assert display(reference) in at_gate.group(2)
    assert display(refs["carlos"]) not in at_gate.group(2)
    done = _post(staff, **form)
    assert "cancelled=2" in done.headers["location"]
    assert "at_gate=1" in done.headers["location"]
    page = text(staff.get(f"{done.headers['location']}&lang=en"))
    assert "1 booking was not cancelled, as someone of it is inside already" in page
    assert f"visit time under way, tell the gate: {display(reference)}" in page


def test_a_visit_under_way_with_nobody_in_is_listed_for_the_gate_not_cancelled(booked, db):
    """Carlos's 09:00 visit today is under way at 10:00 and nobody of it came in: suspending
    wing A leaves it (the family may be at the gate), and health staff see it apart, before
    and after, to tell the gate; its family gets no SMS."""
    staff, _, refs, _ = booked
    reference, _, _ = _quencoro_visit(db, date(2026, 12, 1), time(9))
    _the_gate_is_told_of(staff, db, refs, reference)
    assert status_of(db, reference) is BookingStatus.CONFIRMED
    assert reference not in _messages(db, "health_suspended")
