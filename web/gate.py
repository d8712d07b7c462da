"""Guards' pages: the day's visitor list of one prison, on screen, printed and as CSV, and
the check-in at the gate.

Server-rendered and without scripts, like the family pages: a tablet on the gate's slow
connection gets one light page; the print stylesheet starts each visit time on its own page
under its own heading. A search by document number or booking reference answers with the
list scrolled to that booking, or to the visitor a document number names (a ``#fragment`` on the
redirect), and so does every check-in
(post, then redirect: a reload never records twice). A reference this list does not show (a
booking of another day, or cancelled) is explained, not "no match": a family that came on the
wrong day, or did not see the SMS, is told why (only for the prisons the guard serves); so is
a document number whose visitor's booking of the day was cancelled (this prison's only). A
refusal reads in the guard's words (:data:`visits.problems.GATE_MESSAGES`: who may not come
in, and why), not in those a family booking its visit reads, on the list of the booking's own
day. Each *Deshacer* form carries what the list showed (``was``, ``reason``, ``note``, and the
record's time, ``recorded_at``): the gate undoes that record or none, never the same words
recorded again since.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from visits import gate
from visits.booking import Booking, BookingStatus, CancelCause
from visits.gate import (
    Actor,
    AgeGroup,
    GateBooking,
    GateSlot,
    GateStatus,
    GateVisitor,
    TurnAwayReason,
)
from visits.i18n import N_, format_day, gettext
from visits.problems import Audience, Code, Problem, Rejected
from visits.reference import display as display_reference
from visits.reference import parse as parse_reference
from visits.screening import Outcome, parse_answers
from visits.staff import StaffRole
from visits.visitor import DocumentType, document_key
from web.deps import ClientKey, Now, ReadSession, Sms, WriteSession
from web.downloads import csv_cell, csv_download
from web.family import render
from web.forms import FormValues, RowId, iso_day
from web.labels import label
from web.staff import Staff, access, refill

router = APIRouter(prefix="/staff/p/{prison}", include_in_schema=False)
GateStaff = access(StaffRole.GUARD, StaffRole.ADMIN)
# The CSV's columns, in the staff's language like its values.
CSV_COLUMNS = (
    N_("Start"),
    N_("End"),
    N_("Booking"),
    N_("Status"),
    N_("Inmate code"),
    N_("Person visited"),
    N_("Wing"),
    N_("Visitor"),
    N_("Document"),
    N_("Document number"),
    N_("Age group"),
    N_("Relationship"),
    N_("Health"),
    N_("At the gate"),
)


def _day(raw: str | None, who: Staff, now) -> tuple[date, list[Problem]]:
    """The day asked for (today if none); a malformed one, or one years away, is a problem
    and today is shown instead."""
    problems: list[Problem] = []
    today = who.prison.local_date(now)  # type: ignore[union-attr]
    return iso_day(raw, "date", today, problems, near=today), problems


@router.get("/day", response_class=HTMLResponse)
def day_page(
    request: Request,
    who: GateStaff,
    session: ReadSession,
    now: Now,
    date: str | None = None,
    q: str = "",
) -> Response:
    day, problems = _day(date, who, now)
    if problems:
        return _day_page(request, who, now, day, [], problems, 422, q, typed=date)
    slots = gate.day_list(session, who.prison, day, now)  # type: ignore[arg-type]
    found = gate.DocumentSearch([])
    if q.strip():
        if (anchor := _find(slots, q)) is not None:
            return RedirectResponse(f"?date={day.isoformat()}#{anchor}", status_code=303)
        found = _not_listed(session, who, day, q, now)
        if not found:
            problems = [Problem(Code.NOTHING_MATCHES, "q", {"query": q.strip()[:40]})]
    status = 422 if problems else 200
    return _day_page(request, who, now, day, slots, problems, status, q, found=found)


def _not_listed(
    session: Session, who: Staff, day: date, query: str, now: datetime
) -> gate.DocumentSearch:
    """What a search the day's list does not answer names: the booking a reference names
    (another day's, or cancelled), else what the gate is told of the visitor a document
    number names (:func:`visits.gate.search_document`)."""
    prison = who.prison
    assert prison is not None
    if reference := parse_reference(query):
        named = gate.named_booking(session, reference, who.user, prison, day)
        if named is not None:
            return gate.DocumentSearch([named])
    number = document_key(query)
    if not number:
        return gate.DocumentSearch([])
    return gate.search_document(session, who.user, prison, number, day, now)


def _day_page(
    request: Request,
    who: Staff,
    now,
    day: date,
    slots: list[GateSlot],
    problems: list[Problem],
    status: int,
    q: str = "",
    typed: str | None = None,
    found: gate.DocumentSearch | None = None,
) -> Response:
    """``typed``: the date as it was sent, when it was refused (kept in its field);
    ``found``: what a search names that this list does not show."""
    prison = who.prison
    assert prison is not None
    return render(
        request,
        "staff_day.html",
        status,
        audience=Audience.GATE,
        who=who,
        prison=prison,
        day=day,
        slots=slots,
        problems=problems,
        values={"date": day.isoformat() if typed is None else typed, "q": q},
        # Check-in happens on the visit's day only; a no-show once the time is over.
        gate_open=day == prison.local_date(now),
        past_or_today=day <= prison.local_date(now),
        now=now,
        words=(words := _words()),
        said=Said(words),
        named=found.named if found else [],
        barred_until=found.barred_until if found else None,
    )


def _words() -> dict[object, str]:
    """Every word the list repeats on each row, translated once per page."""
    words: dict[object, str] = {
        member: label(member)
        for kind in (BookingStatus, DocumentType, AgeGroup, GateStatus, TurnAwayReason)
        for member in kind
    }
    words.update(
        came_in=gettext("Came in"),
        not_let_in=gettext("Not let in…"),
        undo=gettext("Undo"),
        nobody_came=gettext("Nobody came"),
        masks=gettext("N95 masks"),
        non_contact=gettext("No contact"),
        no_high_risk=gettext("No under-5s, pregnant or low-defence visitors"),
        suspended=gettext("Visits paused"),
        # Someone came in before visits were stopped for it (visits.stopping): why, and stop.
        stop_visit={
            CancelCause.HEALTH_SUSPENDED: gettext("Already inside: visits paused, stop this visit"),
            CancelCause.INMATE_SUSPENDED: gettext(
                "Already inside: visits suspended, stop this visit"
            ),
            CancelCause.INMATE_NOT_ACTIVE: gettext(
                "Already inside: no longer visitable here, stop this visit"
            ),
            CancelCause.VISITOR_BARRED: gettext(
                "Already inside: a visitor is barred, stop this visit"
            ),
            CancelCause.CLOSED: gettext("Already inside: visit time closed, stop this visit"),
        },
        # The family answered a reminder "1" (visits.gate.GateBooking.booking_tags).
        confirmed_by_sms=gettext("Family confirmed by SMS"),
        inform=gettext("Health measure"),
        visit_minutes=gettext("At most %(num)s min"),
        may_not_come_in=gettext("May not come in: health measure"),
        barred=gettext("May not come in: barred from this prison"),
        # Visits were stopped for it once someone of it came in or its time began: those
        # still outside, why they may not come in (a health pause says "may_not_come_in").
        visit_stopped={
            CancelCause.INMATE_SUSPENDED: gettext("May not come in: visits suspended"),
            CancelCause.INMATE_NOT_ACTIVE: gettext("May not come in: no longer visitable here"),
            CancelCause.VISITOR_BARRED: gettext("May not come in: a visitor is barred"),
            CancelCause.CLOSED: gettext("May not come in: visit time closed"),
            # Shown as may_not_come_in first (kept_out): here so that no cause lacks words.
            CancelCause.HEALTH_SUSPENDED: gettext("May not come in: health measure"),
        },
        health_questions=gettext("Health questions"),
        symptoms_at_booking=gettext("Symptoms at booking: ask again"),
        # Formatted on the row with the day (Babel reads no f-string).
        refused_for_symptoms=gettext("Turned away at the gate for symptoms on %(day)s"),
        advised_at_booking=gettext("Check advised at booking"),
        screened_clear=gettext("Health questions: no symptoms"),
        screened_advised=gettext("Health questions: check advised"),
        screened_refer=gettext("Health questions: symptoms"),
    )
    return words


@dataclass(frozen=True)
class Said:
    """What a row of the list says of the booking, health and the gate, in its words: the one
    place the page and the CSV take them from (which tags show is decided once, in
    :class:`visits.gate.GateBooking`), so the two cannot tell different stories."""

    words: dict[object, str]

    def tag(self, key: str, booking: GateBooking, visitor: GateVisitor | None = None) -> str:
        """The words of a tag (see :attr:`GateBooking.booking_tags`,
        :attr:`GateBooking.health_tags`, :meth:`GateBooking.visitor_tags`), with the number
        or day it names."""
        if key == "visit_minutes":
            return self.words[key] % {"num": booking.measures.visit_minutes}
        if key == "refused_for_symptoms" and visitor is not None:
            return self.words[key] % {"day": format_day(visitor.refused_for_symptoms)}
        if key == "visit_stopped":
            return self.words[key][booking.stopped]  # type: ignore[index]
        return self.words[key]

    def status(self, booking: GateBooking) -> list[str]:
        """The booking's status, then what the list says beside it (the family's SMS
        answer): the page shows them one under another, the CSV in its status cell."""
        return [self.words[booking.status]] + [
            self.tag(key, booking) for key in booking.booking_tags
        ]

    def health(self, booking: GateBooking, visitor: GateVisitor) -> list[str]:
        """Every health tag of the visitor's row: the booking's, then the visitor's own."""
        stop = booking.stop_visit
        said = [self.words["stop_visit"][stop]] if stop else []  # type: ignore[index]
        keys = booking.health_tags + booking.visitor_tags(visitor)
        return said + [self.tag(key, booking, visitor) for key in keys]

    def gate(self, visitor: GateVisitor) -> tuple[str, str]:
        """What the gate recorded (nothing yet: two blanks): its status, and the reason and
        note of a turn-away."""
        if visitor.gate_status is None:
            return "", ""
        reason = self.words[visitor.gate_reason] if visitor.gate_reason else ""
        note = f"{reason}: {visitor.gate_note}" if visitor.gate_note else reason
        return self.words[visitor.gate_status], note


def _find(slots: list[GateSlot], query: str) -> str | None:
    """The anchor of the booking a reference names, or of the visitor a document number does
    (her own line: the next Tab reaches her "came in", not the first visitor's): a number
    typed as the card prints it (dots, dashes, spaces) or on a full-width keyboard is the one
    stored."""
    wanted = document_key(query)
    reference = parse_reference(query)
    for slot in slots:
        for booking in slot.bookings:
            if booking.reference == reference:
                return f"b-{booking.reference}"
            for visitor in booking.visitors:
                if visitor.doc_number.upper() == wanted:
                    return f"v-{visitor.id}"
    return None


@router.get("/day.csv")
def day_csv(
    request: Request,
    who: GateStaff,
    session: ReadSession,
    now: Now,
    client: ClientKey,
    date: str | None = None,
) -> Response:
    day, problems = _day(date, who, now)
    if problems:  # the page, with why: a bare error would be an empty download
        return _day_page(request, who, now, day, [], problems, 422, typed=date)
    prison = who.prison
    assert prison is not None
    rows = [[gettext(column) for column in CSV_COLUMNS]]
    said = Said(_words())
    for slot in gate.day_list(session, prison, day, now):
        starts = slot.starts_at.astimezone(prison.tz).strftime("%H:%M")
        ends = slot.ends_at.astimezone(prison.tz).strftime("%H:%M")
        for booking in slot.bookings:
            for visitor in booking.visitors:
                at_gate = " · ".join(part for part in said.gate(visitor) if part)
                rows.append(
                    [
                        csv_cell(value)
                        for value in (
                            starts,
                            ends,
                            display_reference(booking.reference),  # as the pages show it
                            " · ".join(said.status(booking)),
                            booking.inmate_code,
                            booking.inmate_name,
                            booking.wing,
                            visitor.name,
                            label(visitor.doc_type),
                            visitor.doc_number,
                            label(visitor.age_group),
                            label(visitor.relationship),
                            "; ".join(said.health(booking, visitor)),
                            at_gate,
                        )
                    ]
                )
    return csv_download(
        request, session, who, now, client, rows, f"visitas-{prison.code}-{day.isoformat()}.csv",
        action="prison.day_list_downloaded", entity="prison", entity_id=prison.code,
        day=day.isoformat(),
    )  # fmt: skip


# --- Check-in -----------------------------------------------------------------------------------


def _actor(who: Staff, client: str) -> Actor:
    return Actor(who.user.actor, client)


def _back_to(who: Staff, booking: Booking) -> RedirectResponse:
    """After a change, the day's list at the booking's row (the browser asks again: a reload
    never sends the form twice)."""
    day = booking.slot.local_date.isoformat()
    path = f"/staff/p/{who.prison.code}/day?date={day}#b-{booking.reference}"  # type: ignore[union-attr]
    return RedirectResponse(path, status_code=303)


def _refused(
    request: Request, who: Staff, session, now, rejected: Rejected, target: dict[str, int]
) -> Response:
    """The list of the booking's day (``target`` names it, or one of its visitors; today's if
    it is none of this prison's) again, with why nothing was recorded (read outside the write
    lock): a guard completing a past day's list stays on it."""
    session.close()
    prison = who.prison
    assert prison is not None
    with request.app.state.db.read_session() as reading:
        day = gate.booking_day(reading, prison, **target) or prison.local_date(now)
        slots = gate.day_list(reading, prison, day, now)
    return _day_page(request, who, now, day, slots, list(rejected.problems), 409)


def _step(
    request: Request,
    who: Staff,
    session: Session,
    now: datetime,
    client: str,
    record: Callable[..., Booking],
    target: dict[str, int],
    **given: object,
) -> Response:
    """One step at the gate (``record`` with the visitor or booking ``target`` names, and
    what the form ``given`` says): committed and back to the booking's row, or its day's
    list with why nothing was recorded."""
    try:
        booking = record(
            session, prison=who.prison, actor=_actor(who, client), now=now, **target, **given
        )
    except Rejected as rejected:
        return _refused(request, who, session, now, rejected, target)
    session.commit()
    return _back_to(who, booking)


@router.post("/visitors/{visitor_id}/arrived")
def arrived(
    request: Request,
    visitor_id: RowId,
    who: GateStaff,
    session: WriteSession,
    now: Now,
    client: ClientKey,
) -> Response:
    return _step(
        request, who, session, now, client, gate.record_arrival, {"visitor_id": visitor_id}
    )


@router.get("/visitors/{visitor_id}/turn-away", response_class=HTMLResponse)
def turn_away_page(
    request: Request, visitor_id: RowId, who: GateStaff, session: ReadSession, now: Now
) -> Response:
    found = gate.visitor_at_gate(session, who.prison, visitor_id, now)  # type: ignore[arg-type]
    if found is None:
        raise HTTPException(404)
    return render(
        request,
        "staff_turn_away.html",
        audience=Audience.GATE,
        who=who,
        prison=who.prison,
        visitor=found,
        reasons=list(TurnAwayReason),
        values=refill(request, ("reason", "note")),
    )


@router.post("/visitors/{visitor_id}/turn-away")
def turn_away(
    request: Request,
    visitor_id: RowId,
    who: GateStaff,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    values: FormValues,
) -> Response:
    try:
        booking = gate.record_turned_away(
            session,
            prison=who.prison,
            visitor_id=visitor_id,
            reason=values.get("reason", ""),
            note=values.get("note", ""),
            actor=_actor(who, client),
            now=now,
        )
    except Rejected as rejected:
        session.close()
        with request.app.state.db.read_session() as reading:
            found = gate.visitor_at_gate(reading, who.prison, visitor_id, now)  # type: ignore[arg-type]
        if found is None:
            raise HTTPException(404) from None
        return render(
            request,
            "staff_turn_away.html",
            422,
            audience=Audience.GATE,
            who=who,
            prison=who.prison,
            visitor=found,
            reasons=list(TurnAwayReason),
            problems=list(rejected.problems),
            values=values,
        )
    session.commit()
    return _back_to(who, booking)


def _screening_page(
    request: Request,
    who: Staff,
    session: Session,
    visitor_id: int,
    now: datetime,
    values: dict[str, str] | None = None,
    problems: list[Problem] | None = None,
    screened: gate.Screened | None = None,
    status: int = 200,
) -> Response:
    found = gate.visitor_at_gate(session, who.prison, visitor_id, now)  # type: ignore[arg-type]
    if found is None:
        raise HTTPException(404)
    return render(
        request,
        "staff_screening.html",
        status,
        audience=Audience.GATE,
        who=who,
        prison=who.prison,
        visitor=found,
        values=values or {},
        problems=problems or [],
        screened=screened,
    )


@router.get("/visitors/{visitor_id}/screening", response_class=HTMLResponse)
def screening_page(
    request: Request, visitor_id: RowId, who: GateStaff, session: ReadSession, now: Now
) -> Response:
    """The health questions, asked again at the gate."""
    return _screening_page(request, who, session, visitor_id, now)


@router.post("/visitors/{visitor_id}/screening", response_class=HTMLResponse)
def screen(
    request: Request,
    visitor_id: RowId,
    who: GateStaff,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    sms: Sms,
    values: FormValues,
) -> Response:
    """Record the outcome: any symptom, the visitor is not let in today and the family gets
    the advice by SMS; the guard sees what to tell the visitor."""
    answers = parse_answers(values, "")
    try:
        if isinstance(answers, list):
            raise Rejected(answers)
        screened = gate.screen_at_gate(
            session, prison=who.prison, visitor_id=visitor_id, answers=answers,  # type: ignore[arg-type]
            actor=_actor(who, client), now=now, sms_policy=sms,
        )  # fmt: skip
    except Rejected as rejected:
        session.close()
        status = 409 if Code.ALREADY_RECORDED in rejected.codes else 422
        with request.app.state.db.read_session() as reading:
            return _screening_page(
                request, who, reading, visitor_id, now, values, list(rejected.problems),
                status=status,
            )  # fmt: skip
    session.commit()
    if screened.let_in and screened.outcome is Outcome.CLEAR:
        return _back_to(who, screened.booking)
    with request.app.state.db.read_session() as reading:
        return _screening_page(request, who, reading, visitor_id, now, screened=screened)


@router.post("/visitors/{visitor_id}/undo")
def undo(
    request: Request,
    visitor_id: RowId,
    who: GateStaff,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    sms: Sms,
    values: FormValues,
) -> Response:
    """Undo what the list showed for the visitor (the form says what it was): a record that
    changed since the page was loaded is refused, not erased. A check-in undone inside a
    health suspension cancels the booking (:func:`visits.gate.undo_gate`)."""
    shown = {key: values.get(key, "") for key in ("was", "reason", "note", "recorded_at")}
    target = {"visitor_id": visitor_id}
    return _step(
        request, who, session, now, client, gate.undo_gate, target, sms_policy=sms, **shown
    )


@router.post("/bookings/{booking_id}/no-show")
def no_show(
    request: Request,
    booking_id: RowId,
    who: GateStaff,
    session: WriteSession,
    now: Now,
    client: ClientKey,
) -> Response:
    return _step(
        request, who, session, now, client, gate.record_no_show, {"booking_id": booking_id}
    )


@router.post("/bookings/{booking_id}/no-show/undo")
def undo_no_show(
    request: Request,
    booking_id: RowId,
    who: GateStaff,
    session: WriteSession,
    now: Now,
    client: ClientKey,
) -> Response:
    return _step(request, who, session, now, client, gate.undo_no_show, {"booking_id": booking_id})
