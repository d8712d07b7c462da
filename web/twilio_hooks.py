"""Twilio's webhooks: delivery status callbacks and inbound SMS.

Both refuse (403, nothing changed) a request whose ``X-Twilio-Signature`` does not validate
against the configured public URL (``VISITS_PUBLIC_BASE_URL``: the address Twilio was given,
whatever proxy stands in between), and both are idempotent: a repeated or late callback moves
nothing backwards, a repeated inbound text is acted on once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from twilio.request_validator import RequestValidator

from notifications.outbox import apply_provider_status
from visits.replies import handle_inbound
from web.deps import Now, Sms, WriteSession

router = APIRouter(prefix="/twilio", include_in_schema=False)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


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


@router.post("/status")
def delivery_status(form: SignedForm, session: WriteSession, now: Now, m: str = "") -> Response:
    sid = form.get("MessageSid") or form.get("SmsSid")
    status = form.get("MessageStatus") or form.get("SmsStatus")
    if not sid or not status:
        raise HTTPException(400)
    apply_provider_status(
        session,
        # Our own message id, from the callback address we gave (bounded: a database integer).
        message_id=int(m) if m.isdigit() and len(m) <= 9 else None,
        provider_sid=sid,
        provider_status=status,
        error_code=form.get("ErrorCode") or None,
        now=now,
    )
    session.commit()
    return Response(status_code=204)


@router.post("/inbound")
def inbound_sms(form: SignedForm, session: WriteSession, now: Now, sms: Sms) -> Response:
    sid = form.get("MessageSid") or form.get("SmsSid")
    sender = form.get("From")
    if not sid or not sender:
        raise HTTPException(400)
    handle_inbound(
        session, provider_sid=sid, sender=sender, body=form.get("Body", ""), policy=sms, now=now
    )
    session.commit()
    # Answers go through the outbox (logged, rate-capped, retried), not through TwiML.
    return Response(EMPTY_TWIML, media_type="text/xml")
