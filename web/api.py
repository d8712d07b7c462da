"""The JSON API, ``/api/v1``: the family flow for programs (and the pages' twin).

A booking is read or changed only with its manage token (returned when it is created, and
carried in the manage link), sent as ``Authorization: Bearer <token>``. Errors use the same
typed codes as the pages: ``{"errors": [{"code", "field", "message"}]}``, with 404 for anything
unknown or not yours, 409 when the slot is full or the booking can no longer change that way
(cancelled, over, not confirmed yet, or already recorded at the gate), 422 for every other
refusal and 429 when too many attempts failed. A ``verify`` or ``cancel`` sent again after it
worked (its answer lost on a flaky connection) answers the booking as it is, done once; so
does a ``move`` sent again with its ``Idempotency-Key``.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy.orm import Session, object_session

from visits import advisories
from visits.booking import (
    BY_FAMILY,
    NO_LONGER_WAITING,
    Booking,
    BookingStatus,
    authorised_booking,
    cancel_booking,
    cancelled_why,
    create_booking,
    move_booking,
    note_refusal,
    probe_wait,
    resend_code,
    verify_booking,
)
from visits.booking_request import BookingRequest, VisitorInput
from visits.health import Measures
from visits.i18n import current_locale
from visits.inmate import identify
from visits.prison import Prison, bookable_prisons, prison_by_code
from visits.problems import WAIT_AND_RETRY, Code, Problem, Rejected, as_dicts
from visits.reference import manage_token
from visits.rules import last_bookable_day
from visits.schedule import DayView, SlotView
from visits.verification import verified_with
from web.availability import AvailabilityCache, commit_seat_change
from web.deps import ClientKey, Now, ReadSession, Sms, Throttling, WriteSession
from web.labels import cancelled_why as cancelled_message
from web.middleware import MAX_BODY_BYTES, readable_size

router = APIRouter(prefix="/api/v1", tags=["visits"])

MAX_RANGE_DAYS = 62
# Generous bounds: the domain gives the precise, typed errors; these only stop abuse.
# No field ever means a NUL character (and PostgreSQL refuses to store one).
Text = Annotated[str, Field(default="", max_length=200, pattern=r"^[^\x00]*$")]


def _not_a_bool(value: object) -> object:
    """JSON ``true`` is no slot id (as a number it would read as 1: slot 1 booked)."""
    if isinstance(value, bool):
        raise ValueError("a slot id is a number or a string of digits, not true or false")
    return value


# An id beyond what the database holds is simply unknown: the domain answers slot_not_found.
SlotId = Annotated[int | str, BeforeValidator(_not_a_bool)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    # Published as an enum (every code of visits.problems.Code: the API answers some of them,
    # the pages share the rest), so a client generated from the document has them as a type.
    code: Code = Field(description="What was refused, as a stable code to act on")
    field: str | None
    message: str
    detail: str | None = Field(
        default=None,
        description="Only where a program's mistake has a technical explanation, in English "
        "for the program's developers (absent otherwise)",
    )


class ErrorsOut(BaseModel):
    errors: list[ErrorOut]


class RulesOut(BaseModel):
    booking_opens_days: int
    booking_closes_hours: int
    max_visitors: int
    min_adults: int
    adult_age: int
    visits_per_inmate_per_week: int


class PrisonOut(BaseModel):
    code: str
    name: str
    address: str
    timezone: str
    languages: list[str]
    rules: RulesOut


class SlotTimeOut(BaseModel):
    id: int
    starts_at: datetime
    ends_at: datetime
    local_date: date
    local_start: str = Field(description="Wall-clock start at the prison, HH:MM")
    local_end: str


class SlotOut(SlotTimeOut):
    capacity: int
    seats_left: int
    visitor_group: str = Field(description="anyone, women or men")
    state: str = Field(description="open, full, closed or not_bookable")
    closed_reason: str | None


class DayOut(BaseModel):
    date: date
    closed_reason: str | None
    slots: list[SlotOut]


class SlotsOut(BaseModel):
    prison: str
    days: list[DayOut]


class InmateIn(_Body):
    code: Text
    surname: Text = Field(default="", description="First surname; or give birth_date")
    birth_date: Text = Field(default="", description="YYYY-MM-DD; or give surname")


class VisitorIn(_Body):
    first_names: Text
    last_names: Text
    doc_type: Text = Field(default="", description="dni, ce or passport")
    doc_number: Text
    birth_date: Text = Field(default="", description="YYYY-MM-DD")
    relationship: Text = Field(
        default="",
        description="partner, parent, child, sibling, grandparent, grandchild, "
        "other_relative or friend",
    )
    sex: Text = Field(default="", description="F or M; required on women's or men's days")
    # The TB screening questions (only the outcome is kept).
    cough: bool = Field(default=False, description="A cough for 15 days or more")
    phlegm: bool = Field(default=False, description="Phlegm, or blood when coughing")
    fever: bool = Field(default=False, description="Fever in the last two weeks")
    night_sweats: bool = False
    weight_loss: bool = Field(default=False, description="Weight loss without trying")
    lives_with_tb: bool = Field(default=False, description="Lives with someone who has TB")
    high_risk: bool = Field(
        default=False, description="Pregnant, or low defences (HIV, diabetes, cancer treatment)"
    )


class BookingIn(_Body):
    prison: Text
    inmate: InmateIn
    slot_id: SlotId
    visitors: list[VisitorIn] = Field(max_length=10)
    contact_phone: Text
    language: Text = ""


class MoveIn(_Body):
    slot_id: SlotId


class VisitorOut(BaseModel):
    first_names: str
    last_names: str
    relationship: str


class MeasuresOut(BaseModel):
    """What a health measure asks of this visit (never why, nor whom it concerns)."""

    masks: bool = Field(description="Every visitor wears an N95 mask (respirator)")
    non_contact: bool = Field(description="No physical contact, through a barrier")
    no_high_risk: bool = Field(
        description="No children under 5, pregnant women or people with low defences"
    )
    visit_minutes: int | None = Field(description="A shorter visit: at most these minutes")
    suspended: bool = Field(description="Visits are paused")


# Why a booking was cancelled, as :func:`visits.booking.cancelled_why` says it: the prison's
# causes (:class:`visits.booking.CancelCause`), the family's request, or the SMS code not
# entered in time (tests/test_api.py checks the list against the domain's).
CancelledWhy = Literal[
    "closed",
    "inmate_suspended",
    "inmate_not_active",
    "visitor_barred",
    "health_suspended",
    "family",
    "hold_expired",
]


class BookingOut(BaseModel):
    reference: str
    status: str
    prison: str
    slot: SlotTimeOut
    inmate: str = Field(description="First name and first surname of the person visited")
    visitors: list[VisitorOut]
    contact_phone: str
    language: str
    created_at: datetime
    hold_expires_at: datetime | None = Field(
        description="While the booking is held: when it is released unless the SMS code is sent"
    )
    manage_url: str
    health_measures: MeasuresOut | None = Field(
        description="The health measures for this visit, when any applies"
    )
    cancelled_why: CancelledWhy | None = Field(
        description="Why it was cancelled (null unless cancelled, or with no record of why): "
        "closed (the day or time was closed), inmate_suspended, inmate_not_active (the person "
        "can no longer be visited there), visitor_barred, health_suspended (a health measure "
        "paused visits), family (at the family's request) or hold_expired (the SMS code was "
        "not entered in time). Never the reason staff typed."
    )
    cancelled_message: str | None = Field(
        description="The cause in the family page's words, in the language asked for"
    )


class CreatedOut(BaseModel):
    reference: str
    status: str
    manage_token: str
    booking: BookingOut


def _errors(problems: list[Problem], status: int | None = None) -> JSONResponse:
    """Every problem, with the status that says what to do: 429 (wait, ``Retry-After``) only
    when waiting alone would mend the request. A request also refused for what it says (a
    visitor the slot is not for, say) is 409 or 422 with the waits listed beside: a program
    told 429 would wait and send it again, to be refused again for what no wait mends."""
    codes = {p.code for p in problems}
    if status is None:
        if codes and codes <= WAIT_AND_RETRY:
            status = 429
        elif Code.SLOT_FULL in codes:
            status = 409
        else:
            status = 422
    headers = {"Retry-After": str(_retry_after(problems))} if status == 429 else None
    return JSONResponse({"errors": as_dicts(problems)}, status_code=status, headers=headers)


def _retry_after(problems: list[Problem]) -> int:
    """Seconds until trying again may succeed: the longest wait the messages tell people, in
    ``Retry-After`` for programs, which cannot read it out of a sentence in Spanish."""
    waits = [int(p.params.get("minutes", 1)) for p in problems if p.code in WAIT_AND_RETRY]
    return max(1, *waits) * 60


def _inmate_field(problem: Problem) -> Problem:
    """Identification problems name the page's fields; here they live under ``inmate``."""
    names = {"inmate_code": "inmate.code", "surname": "inmate.surname"}
    field = names.get(problem.field or "", f"inmate.{problem.field}" if problem.field else None)
    return Problem(problem.code, field, problem.params)


# Where an API error names the Idempotency-Key header: as a refused header's own validation
# error names it, not as the domain's (and the pages') submission_key, which no API request has.
IDEMPOTENCY_KEY_FIELD = "header.idempotency-key"


def _key_field(problem: Problem) -> Problem:
    if problem.field != "submission_key":
        return problem
    return Problem(problem.code, IDEMPOTENCY_KEY_FIELD, problem.params)


def _prison(session: Session, code: str) -> Prison:
    prison = prison_by_code(session, code)
    if prison is None or not prison.online_booking:
        raise HTTPException(404, Problem(Code.PRISON_NOT_FOUND, "prison"))
    return prison


def _prison_out(prison: Prison) -> PrisonOut:
    return PrisonOut(
        code=prison.code,
        name=prison.name,
        address=prison.address,
        timezone=prison.timezone,
        languages=prison.language_list,
        rules=RulesOut.model_validate(prison, from_attributes=True),
    )


def _slot_time(prison: Prison, slot: Any) -> dict[str, Any]:
    tz = prison.tz
    return {
        "id": slot.id,
        "starts_at": slot.starts_at,
        "ends_at": slot.ends_at,
        "local_date": slot.local_date,
        "local_start": slot.starts_at.astimezone(tz).strftime("%H:%M"),
        "local_end": slot.ends_at.astimezone(tz).strftime("%H:%M"),
    }


def _slot_out(prison: Prison, view: SlotView) -> SlotOut:
    return SlotOut(
        **_slot_time(prison, view.slot),
        capacity=view.slot.capacity,
        seats_left=view.seats_left,
        visitor_group=view.slot.visitor_group.value,
        state=view.state.value,
        closed_reason=view.closed_reason,
    )


def _day_out(prison: Prison, day: DayView) -> DayOut:
    return DayOut(
        date=day.day,
        closed_reason=day.closed_reason,
        slots=[_slot_out(prison, view) for view in day.slots],
    )


def _booking_out(
    request: Request, booking: Booking, measures: Measures | None = None
) -> BookingOut:
    """``measures``: the booking's health measures, when the caller already read them."""
    token = manage_token(request.app.state.secret_key, booking.reference)
    base = request.app.state.settings.public_base_url.rstrip("/")
    session = object_session(booking)
    why = cancelled_why(session, booking) if session is not None else None
    return BookingOut(
        reference=booking.display_reference,
        status=booking.status.value,
        prison=booking.prison.code,
        slot=SlotTimeOut(**_slot_time(booking.prison, booking.slot)),
        inmate=booking.inmate.display_name,
        visitors=[
            VisitorOut(
                first_names=v.first_names,
                last_names=v.last_names,
                relationship=v.relationship.value,
            )
            for v in booking.visitors
        ],
        contact_phone=booking.contact_phone,
        language=booking.language,
        created_at=booking.created_at,
        hold_expires_at=booking.hold_expires_at,
        manage_url=f"{base}/b/{booking.display_reference}?token={token}",
        health_measures=_measures_out(booking, measures),
        cancelled_why=why,
        cancelled_message=cancelled_message(why) if why else None,
    )


def _measures_out(booking: Booking, measures: Measures | None) -> MeasuresOut | None:
    session = object_session(booking)
    if session is None or not booking.is_active:
        return None
    if measures is None:
        measures = advisories.for_booking(session, booking)
    if not measures.any:
        return None
    return MeasuresOut(
        masks=measures.masks, non_contact=measures.non_contact,
        no_high_risk=measures.no_high_risk, visit_minutes=measures.visit_minutes,
        suspended=measures.suspended,
    )  # fmt: skip


# A security scheme, not a header parameter: OpenAPI ignores a parameter named Authorization,
# so a client generated from the document would have no way to send the token.
_bearer = HTTPBearer(
    auto_error=False,  # without the token a booking is simply not found (404), as with a wrong one
    scheme_name="manage_token",
    description="The booking's manage_token, as returned when it was created",
)


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    return credentials.credentials.strip() if credentials is not None else ""


BearerToken = Annotated[str, Depends(bearer_token)]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorsOut, "description": "Unknown, or not yours"},
    409: {"model": ErrorsOut, "description": "slot_full, or the booking cannot change"},
    422: {"model": ErrorsOut, "description": "Every problem found, with typed codes"},
    429: {
        "model": ErrorsOut,
        "description": (
            "too_many_attempts, identify_paused, too_many_codes, too_many_unconfirmed, "
            "too_many_codes_from_client: only when waiting alone would do (a request also "
            "refused for what it says is 409 or 422, the waits listed among its problems)"
        ),
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before trying again",
                "schema": {"type": "integer"},
            }
        },
    },
}


# A POST may also meet the limit on bodies (a GET sends none).
POSTED = ERRORS | {
    413: {
        "model": ErrorsOut,
        "description": f"body_too_large: a body over {readable_size(MAX_BODY_BYTES)}",
    }
}


def _json(content: BaseModel | list[BaseModel], status: int = 200, **headers: str) -> JSONResponse:
    """The response, serialised here and now: FastAPI's second validation of a returned model
    would run after the handler, while its database session is still open."""
    if isinstance(content, list):
        body: Any = [item.model_dump(mode="json") for item in content]
    else:
        body = content.model_dump(mode="json")
    return JSONResponse(body, status_code=status, headers=headers or None)


@router.get("/prisons", response_model=list[PrisonOut])
def list_prisons(session: ReadSession) -> Any:
    """Prisons that take online bookings."""
    return _json([_prison_out(p) for p in bookable_prisons(session)])


@router.get("/prisons/{code}/slots", response_model=SlotsOut, responses=ERRORS)
def list_slots(
    request: Request,
    code: str,
    session: ReadSession,
    now: Now,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: date | None = None,
) -> Any:
    """Slots of one prison between two dates (default: the booking window), with seats left."""
    prison = _prison(session, code)
    today = prison.local_date(now)
    first = from_ or today
    last = to or last_bookable_day(today, prison.booking_opens_days)
    if last < first or (last - first) > timedelta(days=MAX_RANGE_DAYS):
        detail = f"'to' must be on or after 'from', at most {MAX_RANGE_DAYS} days later"
        params = {"days": MAX_RANGE_DAYS, "detail": detail}
        return _errors([Problem(Code.INVALID_DATE_RANGE, "to", params)])
    cache: AvailabilityCache = request.app.state.availability
    first = max(first, today)

    def encode() -> str:
        days = cache.days(session, prison, now, first, last)
        out = SlotsOut(prison=prison.code, days=[_day_out(prison, d) for d in days])
        return out.model_dump_json()

    body = cache.rendered(prison, ("api-slots", first, last), encode)
    return Response(body, media_type="application/json")


@router.post(
    "/bookings",
    status_code=201,
    response_model=CreatedOut,
    responses=POSTED,
)
def create(
    request: Request,
    body: BookingIn,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    policy: Throttling,
    sms: Sms,
    idempotency_key: Annotated[str | None, Header(max_length=64)] = None,
) -> Any:
    """Book a visit. The booking is ``held`` until the 6-digit code sent by SMS to the
    contact phone is posted to ``/bookings/{reference}/verify`` (unless this deployment
    verifies phones otherwise). The same ``Idempotency-Key`` sent again returns the first
    booking."""
    prison = _prison(session, body.prison)
    found = identify(
        session,
        prison,
        code=body.inmate.code,
        surname=body.inmate.surname,
        birth_date=body.inmate.birth_date,
        client=client,
        now=now,
        policy=policy,
    )
    if found.inmate is None or found.problems:
        session.commit()  # a failed attempt is recorded for throttling
        return _errors([_inmate_field(p) for p in found.problems])
    if (wait := probe_wait(session, client, policy, now)) is not None:
        return _errors([wait])
    booking_request = BookingRequest(
        slot_id=str(body.slot_id),
        visitors=[VisitorInput(**v.model_dump()) for v in body.visitors],
        contact_phone=body.contact_phone,
        language=body.language or current_locale(),
    )
    try:
        booked = create_booking(
            session,
            prison=prison,
            inmate=found.inmate,
            request=booking_request,
            now=now,
            secret_key=request.app.state.secret_key,
            sms_policy=sms,
            submission_key=idempotency_key,
            actor="api",
            client=client,
        )
    except Rejected as rejected:
        session.rollback()
        if note_refusal(session, rejected, client, now):
            session.commit()
        return _errors([_key_field(p) for p in rejected.problems])
    # Read before the commit: afterwards a write session would start a new transaction
    # (on SQLite, ``BEGIN IMMEDIATE``: the write lock again) for what it already knows.
    out = CreatedOut(
        reference=booked.booking.display_reference,
        status=booked.booking.status.value,
        manage_token=booked.manage_token,
        booking=_booking_out(request, booked.booking, booked.measures),
    )
    commit_seat_change(request, session, prison.id)
    headers = {"Idempotent-Replayed": "true"} if booked.replayed else {}
    return _json(out, 201, **headers)


def _owned(request: Request, session: Session, reference: str, token: str) -> Booking:
    booking = authorised_booking(session, reference, token, request.app.state.secret_key)
    if booking is None:
        raise HTTPException(404, Problem(Code.BOOKING_NOT_FOUND))
    return booking


@router.get("/bookings/{reference}", response_model=BookingOut, responses=ERRORS)
def get_booking(request: Request, reference: str, token: BearerToken, session: ReadSession) -> Any:
    """One booking, for the holder of its manage token."""
    return _json(_booking_out(request, _owned(request, session, reference, token)))


class CodeIn(_Body):
    code: Annotated[str, Field(max_length=20)]


def _as_it_is(request: Request, session: Session, booking: Booking) -> JSONResponse:
    """The answer to a change sent again after it was done (a client retrying when the first
    answer never came): the booking as it now is, with nothing done twice, not a refusal the
    client would read as its change having failed."""
    answer = _json(_booking_out(request, booking))
    session.rollback()  # nothing was written: only the lock taken to look is let go
    return answer


@router.post("/bookings/{reference}/verify", response_model=BookingOut, responses=POSTED)
def verify(
    request: Request,
    reference: str,
    body: CodeIn,
    token: BearerToken,
    session: WriteSession,
    now: Now,
    sms: Sms,
) -> Any:
    """Confirm a held booking with the code sent by SMS. Five wrong codes need a new code;
    after the hold time the booking is released (``hold_expired``). The code that confirmed
    it, sent again (the answer was lost), answers the booking as it is; any other code for a
    booking no longer held is 409 ``not_held``."""
    booking = _owned(request, session, reference, token)
    try:
        verify_booking(session, booking, body.code, now=now, sms_policy=sms, actor="api")
    except Rejected as rejected:
        if booking.status is BookingStatus.CONFIRMED and verified_with(
            session, booking, body.code, sms
        ):
            return _as_it_is(request, session, booking)
        problems = list(rejected.problems)
        session.commit()  # a wrong try is counted; an expired hold is released
        if rejected.codes & {Code.HOLD_EXPIRED}:
            commit_seat_change(request, session, booking.prison_id)
        status = 409 if rejected.codes & NO_LONGER_WAITING else None
        return _errors(problems, status)
    answer = _json(_booking_out(request, booking))  # read before the commit, see create()
    session.commit()
    return answer


@router.post("/bookings/{reference}/code", response_model=BookingOut, responses=POSTED)
def send_new_code(
    request: Request,
    reference: str,
    token: BearerToken,
    session: WriteSession,
    now: Now,
    sms: Sms,
    client: ClientKey,
) -> Any:
    """Send a new code for a held booking (a few per phone, and per client, per hour)."""
    booking = _owned(request, session, reference, token)
    try:
        resend_code(session, booking, now=now, sms_policy=sms, client=client)
    except Rejected as rejected:
        session.rollback()
        status = 429 if rejected.codes & WAIT_AND_RETRY else 409
        return _errors(list(rejected.problems), status)
    answer = _json(_booking_out(request, booking))  # read before the commit, see create()
    session.commit()
    return answer


@router.post("/bookings/{reference}/cancel", response_model=BookingOut, responses=POSTED)
def cancel(
    request: Request,
    reference: str,
    token: BearerToken,
    session: WriteSession,
    now: Now,
    sms: Sms,
) -> Any:
    """Cancel a booking; its seats are free again at once. A booking already cancelled at
    the family's request (``cancelled_why`` ``family``: this call sent again, or the family's
    page or SMS) answers as it is, cancelled once; one the prison cancelled, or whose hold
    ran out, is 409 ``booking_not_active``, and reading it says why."""
    booking = _owned(request, session, reference, token)
    try:
        cancel_booking(session, booking, now=now, actor="api", sms_policy=sms)
    except Rejected as rejected:
        if cancelled_why(session, booking) == BY_FAMILY:
            return _as_it_is(request, session, booking)
        session.rollback()
        return _errors(list(rejected.problems), 409)
    answer = _json(_booking_out(request, booking))  # read before the commit, see create()
    commit_seat_change(request, session, booking.prison_id)
    return answer


def _move_key(idempotency_key: str | None) -> str:
    """A client's ``Idempotency-Key`` as the key a move records in the booking's history:
    hashed, so any key a booking accepts (up to 64 characters, of any form) fits the history's
    key format, and apart from the staff forms' keys."""
    if not idempotency_key or not idempotency_key.strip():
        return ""
    return hashlib.sha256(f"api-move:{idempotency_key.strip()}".encode()).hexdigest()


@router.post("/bookings/{reference}/move", response_model=BookingOut, responses=POSTED)
def move(
    request: Request,
    reference: str,
    body: MoveIn,
    token: BearerToken,
    session: WriteSession,
    now: Now,
    sms: Sms,
    idempotency_key: Annotated[str | None, Header(max_length=64)] = None,
) -> Any:
    """Move a booking to another slot of the same prison, keeping it if the move fails.

    A retry is told from a first request by its ``Idempotency-Key``: the move that key already
    made (the booking's history holds it, to the same slot) answers the booking as it is, moved
    once. Without a key, or with a key not yet used, a move to the slot the booking is in is
    422 ``same_slot``: nothing in the request says it is a repeat, and the client may have read
    a stale slot id."""
    booking = _owned(request, session, reference, token)
    key = _move_key(idempotency_key)
    try:
        move_booking(
            session, booking, slot_id=body.slot_id, now=now, actor="api", sms_policy=sms, key=key
        )
    except Rejected as rejected:
        session.rollback()
        problems = list(rejected.problems)
        changing = {Code.BOOKING_NOT_ACTIVE, Code.BOOKING_HELD, Code.GATE_RECORDED}
        status = 409 if rejected.codes & changing else None
        return _errors(problems, status)
    answer = _json(_booking_out(request, booking))  # read before the commit, see create()
    commit_seat_change(request, session, booking.prison_id)
    return answer
