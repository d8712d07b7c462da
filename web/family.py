"""The pages families use on their phones: find a slot, book, and manage the booking.

Server-rendered and complete without JavaScript. Every form is CSRF-protected; a refused form
comes back with what was typed and every problem at once, never an error trace.
"""

from __future__ import annotations

import secrets
from collections.abc import Hashable
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from notifications.recipients import UNREACHABLE, blocking
from visits import advisories, broadcasts, gate, screening
from visits.booking import (
    NO_LONGER_WAITING,
    Booking,
    BookingStatus,
    Pause,
    authorised_booking,
    cancel_booking,
    cancelled_why,
    check_booking,
    create_booking,
    find_booking,
    gate_recorded,
    move_booking,
    move_targets,
    not_waiting_for_code,
    note_refusal,
    outlook,
    probe_wait,
    resend_code,
    slot_in_prison,
    slot_problems,
    verify_booking,
    waiting_for_code,
)
from visits.booking_request import Relationship, parse_phone
from visits.i18n import SUPPORTED_LOCALES, current_locale, negotiate
from visits.inmate import Inmate, identify
from visits.prison import Prison, bookable_prisons, prison_by_code
from visits.problems import WAIT_AND_RETRY, Audience, Code, Problem, Rejected
from visits.reference import display as display_reference
from visits.reference import manage_token
from visits.reference import parse as parse_reference
from visits.rules import Sex, VisitorGroup, last_bookable_day
from visits.schedule import Slot, SlotView
from visits.sms import SmsPolicy, short_token_matches
from visits.verification import CODE_REFUSALS, code_refusal
from visits.visitor import DocumentType, document_key
from web import verified_phones
from web.availability import AvailabilityCache, commit_seat_change
from web.deps import ClientKey, Now, ReadSession, Sms, Throttling, WriteSession
from web.forms import (
    CSRF_FIELD,
    KEPT_PREFIX,
    VISITOR_FIELDS,
    FormValues,
    booking_request,
    csrf_ok,
    csrf_token,
    kept_booking_values,
)
from web.middleware import LANG_COOKIE
from web.templating import errors_by_field, page_labels, summarising

router = APIRouter(include_in_schema=False)

IDENTIFIED = "identified"  # session: prison code → id of the inmate this browser identified
# session: the references of the bookings this browser made that were held for their SMS code
# (see :func:`_waiting_notice`), the newest first.
HELD = "held"
MAX_HELD = 5
# Every visit time of the booking window is checked for the move page (a few dozen at most).
MOVE_TARGETS = 1_000
SWITCH_FIELD = "switch_language"  # sent by the language switch of a page with a form
OTHER_TIMES = 6  # visit times a booking form refused for its own offers instead
# sent by a booking form offering other times (see :func:`_time_refused`): "refused" (its own
# time can no longer be taken) or "changing" (the family asked for another time), so that its
# language switch offers them again.
OFFER_FIELD = "offer"
CHANGING = "changing"


def render(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    """The page ``name``; its problems in the words for ``audience`` (see
    :class:`visits.problems.Audience`): a family's, or staff's on a staff page, unless said.

    A staff page with problems is rendered twice: once to read how it labels its fields,
    then with its error summary naming each field that way (a family page's fields are
    named by :func:`web.labels.field_label`). Only a refused form pays for it."""
    problems: list[Problem] = values.pop("problems", [])
    staff_page = name.startswith(("staff_", "admin_"))
    audience = values.setdefault("audience", Audience.STAFF if staff_page else Audience.FAMILY)
    values.update(
        problems=problems,
        errors=errors_by_field(problems, audience),
        csrf_field=CSRF_FIELD,
        csrf_token=csrf_token(request),
        kept_prefix=KEPT_PREFIX,  # a kept form's hidden fields (identify, staff sign-in)
        switch_field=SWITCH_FIELD,
        locales=SUPPORTED_LOCALES,
    )
    values.setdefault("values", {})
    templates = request.app.state.templates
    labels = {}
    if problems and audience is not Audience.FAMILY:
        with summarising(audience, {}):
            first = templates.get_template(name).render({**values, "request": request})
        labels = page_labels(first)
    with summarising(audience, labels):
        return templates.TemplateResponse(request, name, values, status_code=status)


def status_for(problems: list[Problem]) -> int:
    codes = {p.code for p in problems}
    if codes & WAIT_AND_RETRY:
        return 429
    if Code.FORM_EXPIRED in codes:
        return 403
    if codes & {Code.SLOT_FULL, Code.BOOKING_NOT_ACTIVE, Code.GATE_RECORDED}:
        return 409  # as the API answers: the booking or the time is no longer there to take
    return 422


def switching_language(values: dict[str, str]) -> bool:
    """Whether the form was sent by its page's language switch. A family page with a form
    they type into names it as ``lang_form`` (see base.html): its Español/English switch sends
    that form to the page's own address with ``?lang=`` (which sets the language), since a
    link would drop what was typed. The handler then shows the same page again in that
    language with everything sent kept, and acts on nothing: nobody looked for, no try
    counted, nothing booked, no SMS."""
    return bool(values.get(SWITCH_FIELD))


def redirect(path: str, **query: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode(query)}" if query else path, status_code=303)


def _prison(session: Session, code: str) -> Prison:
    prison = prison_by_code(session, code)
    if prison is None or not prison.online_booking:
        raise HTTPException(404, Problem(Code.PRISON_NOT_FOUND, "prison"))
    return prison


def _identified(request: Request, session: Session, prison: Prison) -> Inmate | None:
    inmate_id = request.session.get(IDENTIFIED, {}).get(prison.code)
    inmate = session.get(Inmate, inmate_id) if isinstance(inmate_id, int) else None
    return inmate if inmate is not None and inmate.prison_id == prison.id else None


def _form_address(prison: Prison, slot: Slot) -> str:
    """The booking form of a visit time, as a link opens it."""
    return f"/p/{prison.code}/book?{urlencode({'slot': slot.id})}"


def _own_address(booking: Booking, page: str, token: str, **query: str) -> str:
    """A booking's page (``page``: "", "/verify", "/cancel", "/move") as a link opens it,
    with what else its address says (``query``; empty values left out)."""
    query = {"token": token} | {name: value for name, value in query.items() if value}
    return f"/b/{booking.display_reference}{page}?{urlencode(query)}"


def _manage_url(request: Request, booking: Booking, token: str) -> str:
    base = request.app.state.settings.public_base_url.rstrip("/")
    return f"{base}/b/{booking.display_reference}?{urlencode({'token': token})}"


# --- Start -----------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: ReadSession) -> HTMLResponse:
    return render(request, "home.html", prisons=bookable_prisons(session))


@router.get("/lang/{locale}")
def switch_language(locale: str, next: str = "/") -> RedirectResponse:
    # Only paths on this site: never an open redirect.
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    if "\\" in target or "\n" in target or "\r" in target:
        target = "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        LANG_COOKIE,
        negotiate(locale),
        max_age=int(timedelta(days=365).total_seconds()),
        samesite="lax",
        httponly=True,
    )
    return response


# --- Identify the person visited -------------------------------------------------------------


@router.get("/p/{code}", response_class=HTMLResponse)
def identify_form(request: Request, code: str, session: ReadSession) -> HTMLResponse:
    return render(request, "identify.html", prison=_prison(session, code))


def _identify_page(
    request: Request,
    prison: Prison,
    status: int = 200,
    problems: list[Problem] | None = None,
    values: dict[str, str] | None = None,
    kept: dict[str, str] | None = None,
) -> HTMLResponse:
    """``kept``: a booking form's values the page carries back to that form (see
    :func:`booking_submit`); its language switch keeps them, as it keeps what was typed
    (:func:`switching_language`)."""
    return render(
        request,
        "identify.html",
        status,
        prison=prison,
        problems=problems or [],
        values=values or {},
        kept=kept or {},
        lang_next=f"/p/{prison.code}",
    )


@router.post("/p/{code}", response_class=HTMLResponse, response_model=None)
def identify_submit(
    request: Request,
    code: str,
    values: FormValues,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    policy: Throttling,
) -> Response:
    """A booking form carried by the page (its session ended while the family filled it)
    comes back filled in once the person it was for is identified again; another person
    goes to the slots page like any identification, and the form's values are dropped: they
    were typed for a visit to someone else. Sent by the language switch, the page comes back
    in the other language, still carrying everything, and nobody is looked for."""
    prison = _prison(session, code)
    kept = kept_booking_values(values, prison.max_visitors, KEPT_PREFIX)
    page = {"prison": prison, "values": values, "kept": kept}
    if switching_language(values):
        return _identify_page(request, **page)
    if not csrf_ok(request, values):
        return _identify_page(request, status=403, problems=[Problem(Code.FORM_EXPIRED)], **page)
    result = identify(
        session,
        prison,
        code=values.get("inmate_code", ""),
        surname=values.get("surname", ""),
        birth_date=values.get("birth_date", ""),
        client=client,
        now=now,
        policy=policy,
    )
    session.commit()  # a failed attempt is recorded for throttling
    if result.inmate is None or result.problems:
        problems = result.problems
        return _identify_page(request, status=status_for(problems), problems=problems, **page)
    request.session[IDENTIFIED] = {
        **request.session.get(IDENTIFIED, {}),
        prison.code: result.inmate.id,
    }
    if kept and kept.get("inmate_id") == str(result.inmate.id):
        return _kept_form(request, session, prison.code, result.inmate.id, kept, now)
    return redirect(f"/p/{prison.code}/slots")


def _kept_form(
    request: Request,
    session: Session,
    code: str,
    inmate_id: int,
    kept: dict[str, str],
    now: datetime,
) -> Response:
    """The booking form again, filled in with what the family typed before its session ended,
    for them to check and send: never sent for them. It answers the identification's POST
    itself, so that what they typed never travels in an address (nor, then, in a log).
    Whatever stands in the way of the visit time now (it filled up, it closed) is said on the
    form, which keeps the values; a time no longer offered leaves only the slots page.
    Read from a read session: the identification is committed, and nothing here writes."""
    session.close()
    with request.app.state.db.read_session() as reading:
        prison = _prison(reading, code)
        inmate = reading.get(Inmate, inmate_id)
        assert inmate is not None  # identified just now
        slot = slot_in_prison(reading, prison, kept.get("slot_id", ""))
        if slot is None:
            problems = [Problem(Code.SLOT_NOT_FOUND, "slot_id")]
            return _slots_page(request, reading, prison, inmate, now, problems, 404)
        party = _party(kept, prison)
        problems = slot_problems(reading, prison, inmate, slot, party, now)
        status = status_for(problems) if problems else 200
        others = _other_times(request, reading, prison, inmate, slot, party, now, problems)
        return _booking_form(request, prison, inmate, slot, kept, problems, status, others)


# --- Choose a slot ---------------------------------------------------------------------------


def _slots_page(
    request: Request,
    session: Session,
    prison: Prison,
    inmate: Inmate,
    now: datetime,
    problems: list[Problem] | None = None,
    status: int = 200,
) -> HTMLResponse:
    today = prison.local_date(now)
    last = last_bookable_day(today, prison.booking_opens_days)
    ahead = outlook(session, prison, inmate, today, last)
    days_html = _days_html(request, session, prison, now, ahead.paused)
    return render(
        request,
        "slots.html",
        status,
        prison=prison,
        inmate=inmate,
        days_html=Markup(days_html),  # noqa: S704 - rendered by our own autoescaping template
        suspended_until=ahead.suspended_until,
        today=today,
        health=ahead.measures,
        waiting=_waiting_notice(request, session, inmate),
        problems=problems or [],
    )


def _days_html(
    request: Request, session: Session, prison: Prison, now: datetime, paused: dict[date, Pause]
) -> str:
    """The days and visit times with their choose links, rendered once for every family of
    the prison for the cache's few seconds: a rush's common case, with nothing about the person
    in it.

    On the days visits to the person are paused (their suspension, a health measure that
    suspends visits, every day once they are no longer active here, or every day of a week in
    which they already have the prison's weekly limit of visits booked) the page offers no
    link, and says why, rather than invite a choice the booking would refuse after the family
    filled in the whole form. Decision: a person with a pause gets a fragment rendered for
    those pauses and cached under them (days and reasons, never who: a full week says how
    many visits, the limit, not by whom or when), so the many people of a wing under one
    health suspension, or everyone whose same weeks are full, share one as well; a person
    with no pause in the window gets the shared fragment exactly as before. The pauses cost
    the page one query more than its notices did (the person's visits of the window's weeks,
    counted in one grouped query, :func:`visits.booking.visits_by_week`), and none on a
    reload answered from this browser's cached page. A booking, cancellation or move through
    this process clears the prison's fragments and pages (:func:`commit_seat_change`), so a
    week that fills or frees up shows at the family's next load."""
    cache: AvailabilityCache = request.app.state.availability
    name: Hashable = ("slot_days", tuple(sorted(paused.items()))) if paused else "slot_days"
    return cache.rendered(
        prison,
        name,
        lambda: request.app.state.templates.get_template("_slot_days.html").render(
            prison=prison, days=cache.days(session, prison, now), paused=paused
        ),
    )


@router.get("/p/{code}/slots", response_class=HTMLResponse, response_model=None)
async def slots(request: Request, code: str, now: Now) -> Response:
    """A reload within the availability cache's few seconds is answered here, on the event
    loop: the rush's most frequent request costs no thread and no database session."""
    cache: AvailabilityCache = request.app.state.availability
    # This browser's own page (its token and person in the key).
    identified = request.session.get(IDENTIFIED, {}).get(code.strip().upper())
    # Its bookings waiting for their code too (_waiting_notice): one made since is said at once.
    held = str(request.session.get(HELD, ""))
    key = (
        "slots",
        code,
        identified,
        held,
        csrf_token(request),
        current_locale(),
        request.url.query,
    )
    if identified is not None and (body := cache.page(key)) is not None:
        return HTMLResponse(body)
    return await run_in_threadpool(_fresh_slots, request, code, now, key)


def _fresh_slots(request: Request, code: str, now: datetime, key: tuple[Any, ...]) -> Response:
    with request.app.state.db.read_session() as session:
        prison = _prison(session, code)
        inmate = _identified(request, session, prison)
        if inmate is None:
            return redirect(f"/p/{prison.code}")
        page = _slots_page(request, session, prison, inmate, now)
    request.app.state.availability.keep_page(key, prison.id, bytes(page.body))
    return page


# --- Book ------------------------------------------------------------------------------------


def _booking_form(
    request: Request,
    prison: Prison,
    inmate: Inmate,
    slot: Slot,
    values: dict[str, str],
    problems: list[Problem] | None = None,
    status: int = 200,
    other_times: list[SlotView] | None = None,
    offer: str = "",
) -> HTMLResponse:
    """``other_times``: the visit times the form offers instead of its own, when its own can
    no longer be taken or the family asked for another (``offer``, see :func:`_time_refused`)."""
    waiting = _waiting_notice(request, object_session(slot), inmate)
    problems = _named_waiting(problems or [], waiting, slot, values)
    # Optional visitor entries start folded, unless the family already typed into them.
    open_entries = {
        i
        for i in range(prison.max_visitors)
        if any(values.get(f"visitors.{i}.{name}", "").strip() for name in VISITOR_FIELDS)
        or any((p.field or "").startswith(f"visitors.{i}.") for p in problems)
    }
    return render(
        request,
        "book.html",
        status,
        waiting=waiting,
        open_entries=open_entries,
        prison=prison,
        inmate=inmate,
        slot=slot,
        values=values,
        problems=problems,
        entries=range(prison.max_visitors),
        other_times=other_times or [],
        offer=offer,
        offer_field=OFFER_FIELD,
        lang_next=_form_address(prison, slot),
        ask_sex=_asks_sex(slot),
        measures=advisories.measures_on(
            object_session(slot), prison.id, inmate.wing_id, inmate.id, slot.local_date
        ),
        doc_types=list(DocumentType),
        relationships=list(Relationship),
        sexes=list(Sex),
    )


def _remember_held(request: Request, booking: Booking) -> None:
    remembered = request.session.get(HELD)
    held = [r for r in remembered if r != booking.reference] if isinstance(remembered, list) else []
    request.session[HELD] = [booking.reference, *held][:MAX_HELD]


def _waiting_notice(request: Request, session: Session, inmate: Inmate) -> list[dict[str, Any]]:
    """The bookings this browser made for this person that still wait for their SMS code,
    each with the address of its code page: the booking form names them (and so does its
    refusal, "already has a visit booked that day", when that visit is one of them).

    Decision: the code page is easily lost (a tab closed, Back and the review sent again, a
    phone's browser killed in the background) while the code is in the SMS, and booking again
    is refused for the held booking itself. Only this browser's session proves a held booking
    is the family's own: it is remembered there when made. Knowing the visitors' documents, the
    phone and the person visited proves nothing (relatives and former partners know all
    three), so a booking is never offered on those. From another browser, the reference the
    code SMS carries and the phone lead to the code page through "Find my booking"
    (:func:`find_submit`)."""
    references = request.session.get(HELD, [])
    if not isinstance(references, list) or not references:
        return []
    now = request.app.state.clock()
    secret = request.app.state.secret_key
    return [
        {
            "booking": held,
            "href": _own_address(held, "/verify", manage_token(secret, held.reference)),
        }
        for held in waiting_for_code(session, references, inmate.id, now)
    ]


def _named_waiting(
    problems: list[Problem], waiting: list[dict[str, Any]], slot: Slot, values: dict[str, str]
) -> list[Problem]:
    """A visitor refused for a visit that day that is one of ``waiting`` (this browser's own
    bookings still waiting for their code, :func:`_waiting_notice`) is told so, with that
    booking's reference, rather than only that they have a visit that day. Matched on the
    document typed, as the refusal itself is."""
    that_day = [w["booking"] for w in waiting if w["booking"].slot.local_date == slot.local_date]

    def named(problem: Problem) -> Problem:
        if problem.code != Code.VISITOR_ALREADY_BOOKED or problem.field is None:
            return problem
        entry = problem.field.removesuffix("doc_number")
        typed = (values.get(f"{entry}doc_type", ""), document_key(values.get(problem.field, "")))
        for held in that_day:
            if any((v.visitor.doc_type, v.visitor.doc_number) == typed for v in held.visitors):
                params = {**problem.params, "reference": held.display_reference}
                return Problem(Code.VISITOR_WAITING_FOR_CODE, problem.field, params)
        return problem

    return [named(problem) for problem in problems]


def _asks_sex(slot: Slot) -> bool:
    """Whether the booking form of this visit time asks each visitor's sex: on a day for
    women or for men only."""
    return slot.visitor_group is not VisitorGroup.ANYONE


def _party(values: dict[str, str], prison: Prison) -> int:
    """How many visitors the form names (at least one, as the slot checks count it)."""
    typed = booking_request(values, prison.max_visitors).visitors
    return max(sum(1 for v in typed if not v.is_blank()), 1)


def _other_times(
    request: Request,
    session: Session,
    prison: Prison,
    inmate: Inmate,
    slot: Slot,
    party: int,
    now: datetime,
    problems: list[Problem],
    changing: bool = False,
) -> list[SlotView]:
    """The visit times the booking form offers when its own can no longer be taken (a problem
    of ``slot_id``: it filled up or closed while the family typed, its booking closed, the
    week filled): the first :data:`OTHER_TIMES` still open with room for the party, on days
    not paused for the person, for the same visitors (the day's group, or anyone's). Chosen
    on the form itself, so that the form is sent again with everything typed in it; the
    slots page would drop it all.

    ``changing``: the family asked for another time (its "choose another time" button): every
    time open with room for the party on a day not paused, of any group, as the slots page
    offers them, whatever the form's own time."""
    if not changing and not any(p.field == "slot_id" for p in problems):
        return []
    today = prison.local_date(now)
    paused = outlook(
        session, prison, inmate, today, last_bookable_day(today, prison.booking_opens_days)
    ).paused
    groups = set(VisitorGroup) if changing else {slot.visitor_group, VisitorGroup.ANYONE}
    days = request.app.state.availability.days(session, prison, now)
    offered = [
        view
        for day in days
        if day.day not in paused
        for view in day.slots
        if view.state == "open"
        and view.slot.id != slot.id
        and view.slot.visitor_group in groups
        and view.seats_left >= party
    ]
    return offered if changing else offered[:OTHER_TIMES]


def _time_refused(
    request: Request,
    session: Session,
    ids: tuple[str, int, int],
    values: dict[str, str],
    problems: list[Problem] | None,
    status: int,
    now: datetime,
    offer: str = "refused",
) -> HTMLResponse:
    """The booking form refused for its visit time (``ids``: the prison's code, the person's
    and the slot's ids), as typed, offering other times (:func:`_other_times`). Read from a
    read session once the write session is closed: the refusals of a rush (the time filled
    up) must not hold up the bookings behind them.

    ``problems`` None: nothing was sent for good (the family asked for another time, or
    switched the language of a form offering them, ``offer`` saying which): what stands in
    the way of the form's own time now is said, and nothing else is checked."""
    code, inmate_id, slot_id = ids
    session.close()
    with request.app.state.db.read_session() as reading:
        prison = _prison(reading, code)
        inmate = reading.get(Inmate, inmate_id)
        slot = reading.get(Slot, slot_id)
        assert inmate is not None
        assert slot is not None
        party = _party(values, prison)
        if problems is None:
            problems = slot_problems(reading, prison, inmate, slot, party, now)
            status = status_for(problems) if problems else 200
        changing = offer == CHANGING
        others = _other_times(
            request, reading, prison, inmate, slot, party, now, problems, changing
        )
        return _booking_form(request, prison, inmate, slot, values, problems, status, others, offer)


@router.get("/p/{code}/book", response_class=HTMLResponse, response_model=None)
def booking_form(
    request: Request, code: str, session: ReadSession, now: Now, slot: str = ""
) -> Response:
    prison = _prison(session, code)
    inmate = _identified(request, session, prison)
    if inmate is None:
        return redirect(f"/p/{prison.code}")
    chosen = slot_in_prison(session, prison, slot)
    if chosen is None:
        problems = [Problem(Code.SLOT_NOT_FOUND, "slot_id")]
        return _slots_page(request, session, prison, inmate, now, problems, 404)
    problems = slot_problems(session, prison, inmate, chosen, 1, now)
    if problems:
        return _slots_page(request, session, prison, inmate, now, problems, status_for(problems))
    return _booking_form(request, prison, inmate, chosen, {"slot_id": str(chosen.id)})


@router.post("/p/{code}/book", response_class=HTMLResponse, response_model=None)
def booking_submit(
    request: Request,
    code: str,
    values: FormValues,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    policy: Throttling,
    sms: Sms,
) -> Response:
    prison = _prison(session, code)
    inmate = _identified(request, session, prison)
    if inmate is None:
        # The session ended (or its cookie was lost) while the family filled the form: the
        # identify page carries what they typed, in hidden fields, back to this form
        # (identify_submit). Its own token is a fresh one: the old one went with the session.
        problems = [Problem(Code.SESSION_EXPIRED)]
        kept = kept_booking_values(values, prison.max_visitors)
        return _identify_page(request, prison, 403, problems, kept=kept)
    slot = slot_in_prison(session, prison, values.get("slot_id", ""))
    if slot is None:
        problems = [Problem(Code.SLOT_NOT_FOUND, "slot_id")]
        return _slots_page(request, session, prison, inmate, now, problems, 404)
    if not csrf_ok(request, values):
        return _booking_form(
            request, prison, inmate, slot, values, [Problem(Code.FORM_EXPIRED)], 403
        )
    shown_for = values.get("inmate_id")
    if shown_for is not None and shown_for != str(inmate.id):
        # Another person was identified in another window since this form was shown: the
        # form comes back, typed details kept, for the person identified now, booking nothing.
        values = {**values, "inmate_id": str(inmate.id)}
        return _booking_form(
            request, prison, inmate, slot, values, [Problem(Code.PERSON_CHANGED)], 409
        )
    action = values.get("action", "review")
    offered = values.get(OFFER_FIELD, "")
    if action == CHANGING or (switching_language(values) and offered):
        # Another time asked for, or the language switched on a form offering them: the form
        # again, as typed, with the times offered in it. Nothing is booked or counted.
        offer = CHANGING if CHANGING in (action, offered) else "refused"
        ids = (prison.code, inmate.id, slot.id)
        return _time_refused(request, session, ids, values, None, 200, now, offer)
    if action == "edit" or switching_language(values):
        # Sent from the review page too: back to the form, filled in, to review again.
        return _booking_form(request, prison, inmate, slot, values)
    if (wait := probe_wait(session, client, policy, now)) is not None:
        return _booking_form(request, prison, inmate, slot, values, [wait], 429)
    request_data = booking_request(values, prison.max_visitors)
    try:
        if action == "confirm":
            phone = parse_phone(request_data.contact_phone)
            booked = create_booking(
                session,
                prison=prison,
                inmate=inmate,
                request=request_data,
                now=now,
                secret_key=request.app.state.secret_key,
                sms_policy=sms,
                phone_verified=isinstance(phone, str)
                and verified_phones.is_verified(request, phone),
                submission_key=values.get("submission_key") or None,
                client=client,
            )
        else:
            checked = check_booking(
                session,
                prison=prison,
                inmate=inmate,
                request=request_data,
                now=now,
                phone_countries=sms.phone_countries,
            )
    except Rejected as rejected:
        problems = list(rejected.problems)
        status = status_for(problems)
        ids = (prison.code, inmate.id, slot.id)
        # Rendered before the rollback, which would make every object load again; a refused
        # visit time after it, with the other times it offers (_time_refused).
        time_refused = any(p.field == "slot_id" for p in problems)
        page = None
        if not time_refused:
            page = _booking_form(request, prison, inmate, slot, values, problems, status)
        session.rollback()
        if note_refusal(session, rejected, client, now):
            session.commit()
        if page is None:
            return _time_refused(request, session, ids, values, problems, status, now)
        return page
    if action != "confirm":
        return render(  # the session closes after this, taking nothing: the review only reads
            request,
            "review.html",
            prison=prison,
            inmate=inmate,
            slot=checked.slot,
            lang_next=_form_address(prison, checked.slot),
            booking=checked.booking,
            ask_sex=_asks_sex(checked.slot),
            values=values,
            offer_field=OFFER_FIELD,  # the offer that led here is over: not carried back
            submission_key=secrets.token_urlsafe(24),
        )
    commit_seat_change(request, session, prison.id)
    reference = booked.booking.display_reference
    if booked.booking.status is BookingStatus.HELD:
        _remember_held(request, booked.booking)
        return redirect(f"/b/{reference}/verify", token=booked.manage_token)
    return redirect(f"/b/{reference}", token=booked.manage_token, done="booked")


# --- Manage ----------------------------------------------------------------------------------


def _owned(request: Request, session: Session, reference: str, token: str) -> Booking:
    booking = authorised_booking(session, reference, token, request.app.state.secret_key)
    if booking is None:
        raise HTTPException(404)
    return booking


# What a booking's page headlines after an action (``done`` in its address), and the states in
# which that headline is still true. The address outlives the moment: a tab left open, the
# browser's history, a reload days later. A visit cancelled since (by the prison, a health
# measure, an SMS answer) must never read "Your visit is booked" in large green letters.
DONE_WHILE = {
    "booked": {BookingStatus.CONFIRMED},
    "moved": {BookingStatus.CONFIRMED},
    "cancelled": {BookingStatus.CANCELLED},
}


def _booking_page(
    request: Request,
    booking: Booking,
    token: str,
    now: datetime,
    done: str = "",
    problems: list[Problem] | None = None,
    status: int = 200,
) -> HTMLResponse:
    # The session that found the booking (still open for this request).
    session = object_session(booking)
    day = gate.visit_day(session, booking, now)
    if booking.status not in DONE_WHILE.get(done, ()):
        done = ""  # no longer true: the page says the booking as it is now
    return render(
        request,
        "booking.html",
        status,
        booking=booking,
        token=token,
        lang_next=_own_address(booking, "", token),
        manage_url=_manage_url(request, booking, token),
        can_change=booking.can_change(now),
        # Held: confirmed first; recorded at the gate: it belongs to that day (cancel only).
        can_move=booking.status is not BookingStatus.HELD and not day.at_gate,
        at_gate=day.at_gate,
        before_visit=day.before_visit,
        measures=advisories.for_booking(session, booking),
        broadcasts=broadcasts.for_booking(session, booking) if day.before_visit else [],
        advised=screening.advised(session, list(booking.visitors)),
        cancelled_why=cancelled_why(session, booking),
        sms_blocked=_sms_blocked(booking),
        done=done,
        problems=problems or [],
    )


def _sms_blocked(booking: Booking) -> str | None:
    """Why this visit's confirmation and reminders will not reach its phone (opted out, or
    found unable to receive SMS), so the page can say so: nobody waits for an SMS that is
    recorded as cancelled. A held booking is not told it is unreachable: the code it waits
    for still goes, and typing it clears the mark."""
    if not booking.is_active:
        return None
    why = blocking(object_session(booking), booking.contact_phone)
    if why == UNREACHABLE and booking.status is BookingStatus.HELD:
        return None
    return why


@router.get("/b/{reference}", response_class=HTMLResponse)
def booking_page(
    request: Request,
    reference: str,
    session: ReadSession,
    now: Now,
    token: str = "",
    done: str = "",
) -> HTMLResponse:
    booking = _owned(request, session, reference, token)
    return _booking_page(request, booking, token, now, done)


def _verify_page(
    request: Request,
    booking: Booking,
    token: str,
    done: str = "",
    problems: list[Problem] | None = None,
    status: int = 200,
    refused: str = "",
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    """``refused``: the refusal the page's address names (see :func:`verify_form`), kept in
    the address its language switch goes back to (a code sent again is said only once)."""
    return render(
        request,
        "verify.html",
        status,
        booking=booking,
        token=token,
        lang_next=_own_address(booking, "/verify", token, refused=refused),
        done=done,
        problems=problems or [],
        values=values or {},
    )


def _code_page(
    request: Request,
    session: Session,
    booking: Booking,
    now: datetime,
    sms: SmsPolicy,
    token: str,
    done: str,
    refused: str,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    """The code page as its address says (``done``, ``refused``), or the booking once it no
    longer waits for a code. Only a refusal the page says stays in its own address."""
    if booking.status is not BookingStatus.HELD:
        return _booking_page(request, booking, token, now)
    problem = code_refusal(session, booking, refused, sms)
    if problem is None:
        return _verify_page(request, booking, token, done, values=values)
    return _verify_page(
        request, booking, token, done, [problem], refused=problem.code, values=values
    )


@router.get("/b/{reference}/verify", response_class=HTMLResponse)
def verify_form(
    request: Request,
    reference: str,
    session: ReadSession,
    now: Now,
    sms: Sms,
    token: str = "",
    done: str = "",
    refused: str = "",
) -> HTMLResponse:
    """``refused``: the code a wrong code was refused with (see :func:`verify_submit`), said
    again as it now stands (how many tries are left)."""
    booking = _owned(request, session, reference, token)
    return _code_page(request, session, booking, now, sms, token, done, refused)


def _code_form_expired(
    request: Request, booking: Booking, token: str, now: datetime
) -> HTMLResponse:
    """A code form sent with an expired session (a page left open, cookies gone): the code
    form again while the booking still waits for its code; once it no longer does (confirmed
    in another tab, its hold over, cancelled), the booking as it now is, and why."""
    refusal = not_waiting_for_code(booking)
    if refusal is None:
        problems = [Problem(Code.FORM_EXPIRED)]
        return _verify_page(request, booking, token, problems=problems, status=403)
    return _booking_page(request, booking, token, now, problems=[refusal], status=409)


@router.post("/b/{reference}/verify", response_class=HTMLResponse, response_model=None)
def verify_submit(
    request: Request,
    reference: str,
    values: FormValues,
    session: WriteSession,
    now: Now,
    sms: Sms,
    refused: str = "",
) -> Response:
    """``refused``: in the address of the code page the form was on, which its language
    switch sends it to: that page again, in the other language, with the code typed kept and
    no try counted."""
    token = values.get("token", "")
    booking = _owned(request, session, reference, token)
    if switching_language(values):
        typed = {"code": values.get("code", "")}
        return _code_page(request, session, booking, now, sms, token, "", refused, typed)
    if not csrf_ok(request, values):
        return _code_form_expired(request, booking, token, now)
    try:
        verify_booking(session, booking, values.get("code", ""), now=now, sms_policy=sms)
    except Rejected as rejected:
        problems = list(rejected.problems)
        if rejected.codes & NO_LONGER_WAITING:
            page = _booking_page(request, booking, token, now, problems=problems, status=409)
        elif len(problems) == 1 and rejected.codes <= CODE_REFUSALS:
            # Post/Redirect/Get: the code page says why, and going Back or reloading it never
            # asks to send the form again (nor sends a wrong code twice). Only the refusal's
            # code goes in the address: the page reads the tries left itself.
            page = redirect(
                f"/b/{booking.display_reference}/verify", token=token, refused=problems[0].code
            )
        else:
            page = _verify_page(request, booking, token, problems=problems, status=422)
        # Kept even though the code was refused: the wrong try counts, an expired hold is freed.
        commit_seat_change(request, session, booking.prison_id)
        return page
    phone = booking.contact_phone
    commit_seat_change(request, session, booking.prison_id)
    response = redirect(f"/b/{booking.display_reference}", token=token, done="booked")
    verified_phones.remember(request, response, phone)
    return response


@router.post("/b/{reference}/code", response_class=HTMLResponse, response_model=None)
def resend_submit(
    request: Request,
    reference: str,
    values: FormValues,
    session: WriteSession,
    now: Now,
    sms: Sms,
    client: ClientKey,
) -> Response:
    token = values.get("token", "")
    booking = _owned(request, session, reference, token)
    if not csrf_ok(request, values):
        return _code_form_expired(request, booking, token, now)
    try:
        resend_code(session, booking, now=now, sms_policy=sms, client=client)
    except Rejected as rejected:
        problems = list(rejected.problems)
        if rejected.codes & NO_LONGER_WAITING:
            return _booking_page(request, booking, token, now, problems=problems, status=409)
        return _verify_page(request, booking, token, problems=problems, status=429)
    session.commit()
    return redirect(f"/b/{booking.display_reference}/verify", token=token, done="resent")


@router.get("/m/{short}")
def short_link(request: Request, short: str, session: ReadSession) -> RedirectResponse:
    """The manage link sent by SMS: reference and a short signature, one tap to the booking,
    in the language the booking was made (and its SMS written) in, unless this browser chose
    one."""
    ref, signature = parse_reference(short[:8]), short[8:].lower()
    secret = request.app.state.secret_key
    if ref is None or not short_token_matches(secret, ref, signature):
        raise HTTPException(404)
    token = manage_token(secret, ref)
    query = {"token": token}
    if LANG_COOKIE not in request.cookies:
        language = session.scalar(select(Booking.language).where(Booking.reference == ref))
        if language:
            query["lang"] = language
    return redirect(f"/b/{display_reference(ref)}", **query)


@router.get("/b/{reference}/visit.ics", response_model=None)
def booking_calendar(
    request: Request, reference: str, session: ReadSession, now: Now, token: str = ""
) -> Response:
    """Refused (the booking's page, saying why) for a booking still waiting for its code."""
    from visits.calendar import visit_calendar  # icalendar is only needed here

    booking = _owned(request, session, reference, token)
    try:
        body = visit_calendar(booking, _manage_url(request, booking, token))
    except Rejected as rejected:
        problems = list(rejected.problems)
        return _booking_page(request, booking, token, now, problems=problems, status=409)
    filename = f"visita-{booking.display_reference}.ics"
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/b/{reference}/cancel", response_class=HTMLResponse)
def cancel_form(
    request: Request, reference: str, session: ReadSession, now: Now, token: str = ""
) -> HTMLResponse:
    booking = _owned(request, session, reference, token)
    if not booking.can_change(now):
        problems = [Problem(Code.BOOKING_NOT_ACTIVE)]
        return _booking_page(request, booking, token, now, problems=problems, status=409)
    return render(request, "cancel.html", booking=booking, token=token)


@router.post("/b/{reference}/cancel", response_class=HTMLResponse, response_model=None)
def cancel_submit(
    request: Request,
    reference: str,
    values: FormValues,
    session: WriteSession,
    now: Now,
    sms: Sms,
) -> Response:
    token = values.get("token", "")
    booking = _owned(request, session, reference, token)
    if booking.status is BookingStatus.CANCELLED:
        # Sent again (a reload, Back and resend, an old tab): what was asked is done, and the
        # booking's page says so; nothing is acted on, so no form check is needed.
        return redirect(f"/b/{booking.display_reference}", token=token)
    if not csrf_ok(request, values):
        problems = [Problem(Code.FORM_EXPIRED)]
        return render(
            request, "cancel.html", 403, booking=booking, token=token, problems=problems,
            lang_next=_own_address(booking, "/cancel", token),
        )  # fmt: skip
    try:
        cancel_booking(session, booking, now=now, actor="family", sms_policy=sms)
    except Rejected as rejected:
        # Rendered before the session rolls back (as it closes), which would reload it all.
        problems = list(rejected.problems)
        return _booking_page(request, booking, token, now, problems=problems, status=409)
    commit_seat_change(request, session, booking.prison_id)
    return redirect(f"/b/{booking.display_reference}", token=token, done="cancelled")


def _move_page(
    request: Request,
    session: Session,
    booking: Booking,
    token: str,
    now: datetime,
    problems: list[Problem] | None = None,
    status: int = 200,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    prison = booking.prison
    days = request.app.state.availability.days(session, prison, now)
    # Only a time the move would take is offered (not the other sex's day, a week already
    # full, a day a health measure pauses); the others show why they are not, as on the staff
    # form. Read before a failed move's session rolls back, like the rest of the page.
    movable = {slot.id for slot in move_targets(session, booking, now, limit=MOVE_TARGETS)}
    return render(
        request,
        "move.html",
        status,
        booking=booking,
        token=token,
        lang_next=_own_address(booking, "/move", token),
        prison=prison,
        days=days,
        movable=movable,
        problems=problems or [],
        values=values or {},
    )


def _move_refused(
    request: Request,
    session: Session,
    reference: str,
    token: str,
    now: datetime,
    problems: list[Problem],
    status: int,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    """The move page again with why nothing moved (none: it was sent by its language
    switch), the time chosen still ticked if it is still offered, read outside the write
    lock: the page (the days, and the times it offers, :func:`visits.booking.move_targets`)
    is a read like any other, which must not hold up every other booking of the database
    meanwhile."""
    session.close()
    with request.app.state.db.read_session() as reading:
        booking = _owned(request, reading, reference, token)
        return _move_page(request, reading, booking, token, now, problems, status, values)


@router.get("/b/{reference}/move", response_class=HTMLResponse)
def move_form(
    request: Request, reference: str, session: ReadSession, now: Now, token: str = ""
) -> HTMLResponse:
    booking = _owned(request, session, reference, token)
    if not booking.can_change(now):
        problems = [Problem(Code.BOOKING_NOT_ACTIVE)]
        return _booking_page(request, booking, token, now, problems=problems, status=409)
    if gate_recorded(session, booking):
        problems = [Problem(Code.GATE_RECORDED)]
        return _booking_page(request, booking, token, now, problems=problems, status=409)
    return _move_page(request, session, booking, token, now)


@router.post("/b/{reference}/move", response_class=HTMLResponse, response_model=None)
def move_submit(
    request: Request,
    reference: str,
    values: FormValues,
    session: WriteSession,
    now: Now,
    sms: Sms,
) -> Response:
    token = values.get("token", "")
    if switching_language(values):
        return _move_refused(request, session, reference, token, now, [], 200, values)
    if not csrf_ok(request, values):
        problems = [Problem(Code.FORM_EXPIRED)]
        return _move_refused(request, session, reference, token, now, problems, 403, values)
    if not values.get("slot_id"):
        problems = [Problem(Code.REQUIRED, "slot_id")]
        return _move_refused(request, session, reference, token, now, problems, 422)
    booking = _owned(request, session, reference, token)
    try:
        move_booking(
            session, booking, slot_id=values["slot_id"], now=now, actor="family", sms_policy=sms
        )
    except Rejected as rejected:
        problems = list(rejected.problems)
        status = status_for(problems)
        return _move_refused(request, session, reference, token, now, problems, status, values)
    commit_seat_change(request, session, booking.prison_id)
    return redirect(f"/b/{booking.display_reference}", token=token, done="moved")


# --- Find a booking again ---------------------------------------------------------------------


@router.get("/find", response_class=HTMLResponse)
def find_form(request: Request) -> HTMLResponse:
    return render(request, "find.html")


@router.post("/find", response_class=HTMLResponse, response_model=None)
def find_submit(
    request: Request,
    values: FormValues,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    policy: Throttling,
) -> Response:
    if switching_language(values):
        return render(request, "find.html", values=values)  # nothing looked for
    if not csrf_ok(request, values):
        return render(
            request, "find.html", 403, values=values, problems=[Problem(Code.FORM_EXPIRED)]
        )
    found = find_booking(
        session,
        reference_text=values.get("reference", ""),
        phone_text=values.get("phone", ""),
        client=client,
        now=now,
        policy=policy,
    )
    session.commit()  # a failed attempt is recorded for throttling
    if found.booking is None:
        problems = found.problems or []
        return render(request, "find.html", status_for(problems), values=values, problems=problems)
    token = manage_token(request.app.state.secret_key, found.booking.reference)
    if found.booking.status is BookingStatus.HELD:
        # Found from the reference its code SMS carries: where the code is typed.
        return redirect(f"/b/{found.booking.display_reference}/verify", token=token)
    return redirect(f"/b/{found.booking.display_reference}", token=token)
