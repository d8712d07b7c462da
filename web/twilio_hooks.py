"""Twilio's webhooks: delivery status callbacks and inbound SMS.

Both refuse (403, nothing changed) a request whose ``X-Twilio-Signature`` does not validate
against the configured public URL (``VISITS_PUBLIC_BASE_URL``: the address Twilio was given,
whatever proxy stands in between), and both are idempotent: a repeated or late callback moves
nothing backwards, a repeated inbound text is acted on once.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from twilio.request_validator import RequestValidator

from notifications.outbox import apply_provider_status
from visits.booking_request import MAX_ID
from visits.replies import handle_inbound
from web.deps import Now, Sms, WriteSession

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", include_in_schema=False)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# Twilio's ids are two letters and 32 hex digits; the column holds 64.
_SID = re.compile(r"[A-Za-z0-9]{1,64}")
# A number in E.164, as every SMS is sent (visits.booking_request.parse_phone): what fits the
# sender column (16 characters), and the only kind of sender a family's text can come from.
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


async def signed_form(request: Request) -> dict[str, str]:
    """The form Twilio posted, if its signature is right; else 403."""
    settings = request.app.state.settings
    if settings.twilio_auth_token is None:
        raise HTTPException(403)
    form = await request.form()
    params = {key: str(value) for key, value in form.items()}
    url = settings.public_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not validator.validate(url, params, signature):
        raise HTTPException(403)
    return params


SignedForm = Annotated[dict[str, str], Depends(signed_form)]


def _sid(form: dict[str, str]) -> str:
    """The message's id; a missing or malformed one (never Twilio's) is a bad request."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not _SID.fullmatch(sid):
        raise HTTPException(400)
    return sid


def _message_id(raw: str) -> int | None:
    """Our own message id, from the callback address we gave: ASCII digits ("²" is a digit to
    Python, not to int) that a database integer holds; else none."""
    if raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) <= MAX_ID:
        return int(raw)
    return None


@router.post("/status")
def delivery_status(form: SignedForm, session: WriteSession, now: Now, m: str = "") -> Response:
    sid = _sid(form)
    status = form.get("MessageStatus") or form.get("SmsStatus")
    if not status:
        raise HTTPException(400)
    apply_provider_status(
        session,
        message_id=_message_id(m),
        provider_sid=sid,
        provider_status=status,
        error_code=form.get("ErrorCode") or None,
        now=now,
    )
    session.commit()
    return Response(status_code=204)


@router.post("/inbound")
def inbound_sms(form: SignedForm, session: WriteSession, now: Now, sms: Sms) -> Response:
    """A text sent to our number: recorded once and acted on (see :mod:`visits.replies`).

    A sender that is not a phone number in E.164 (``whatsapp:+51…`` when a WhatsApp sender
    points here, an alphanumeric sender id, anything longer than a number) is answered 200
    and ignored, only logged: every SMS is sent to an E.164 number, so no booking, reminder or
    opt-out can concern it, there is no number to answer it on, and its sender does not fit the
    column. A 200 rather than an error, because Twilio repeats and reports what fails, and
    repeating would never change the answer. NUL characters and what no SMS can hold are
    dropped from the body when it is recorded (:func:`notifications.inbound.receive`).
    """
    sid = _sid(form)
    sender = form.get("From")
    if not sender:
        raise HTTPException(400)
    if not _E164.fullmatch(sender):
        log.warning("inbound text %s ignored: its sender is not a phone number", sid)
        return Response(EMPTY_TWIML, media_type="text/xml")
    handle_inbound(
        session, provider_sid=sid, sender=sender, body=form.get("Body", ""), policy=sms, now=now
    )
    session.commit()
    # Answers go through the outbox (logged, rate-capped, retried), not through TwiML.
    return Response(EMPTY_TWIML, media_type="text/xml")
