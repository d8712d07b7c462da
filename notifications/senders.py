"""Senders: the one small interface between the outbox and whatever carries an SMS.

A sender answers each attempt with what happened, in the terms the dispatcher acts on:

- :class:`Accepted`: the provider took the message (its id is kept for delivery reports);
- :class:`Retry`: the provider said it did not take it, try later (Twilio 429, queue full,
  a connection that never opened);
- :class:`Refused`: it will never take it (invalid number, not a mobile, opted out at the
  carrier); not retried;
- :class:`Unknown`: no answer (a timeout, a 5xx). The message may or may not have been sent,
  so it is looked up later (:meth:`Sender.lookup`), never sent again blindly (invariant 3).
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    sid: str
    status: str = "queued"


@dataclass(frozen=True)
class Retry:
    code: str
    message: str
    # Seconds the provider asked us to wait, when it said.
    after: float | None = None
    # False for our own configuration's fault (credentials): retried until it is fixed.
    counted: bool = True


@dataclass(frozen=True)
class Refused:
    code: str
    message: str


@dataclass(frozen=True)
class Unknown:
    message: str


Outcome = Accepted | Retry | Refused | Unknown


@dataclass(frozen=True)
class Outgoing:
    """One attempt to send: the message as the sender needs it."""

    message_id: int
    recipient: str
    body: str
    status_callback: str | None


class LookupFailed(Exception):
    """The provider could not be asked whether a message went out."""


class Sender(Protocol):
    def send(self, outgoing: Outgoing) -> Outcome: ...

    def lookup(self, outgoing: Outgoing, since: datetime) -> list[Accepted]:
        """The provider's messages that may be ``outgoing``: same number and text, accepted
        at or after ``since``, newest first (raises :class:`LookupFailed`)."""
        ...


class ConsoleSender:
    """Development and demo sender: prints each message and keeps it (``make run`` offline).

    It prints the whole text, verification codes included: it is for machines without an SMS
    provider, never production.
    """

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.sent: list[tuple[Accepted, Outgoing]] = []
        self._lock = threading.Lock()

    def send(self, outgoing: Outgoing) -> Outcome:
        accepted = Accepted(sid=f"CONSOLE{uuid.uuid4().hex}", status="sent")
        with self._lock:
            self.sent.append((accepted, outgoing))
        if self.echo:
            print(f"[SMS to {outgoing.recipient}] {outgoing.body}", flush=True)
        return accepted

    def lookup(self, outgoing: Outgoing, since: datetime) -> list[Accepted]:
        with self._lock:
            return [a for a, sent in reversed(self.sent) if sent.message_id == outgoing.message_id]


# Twilio error codes (https://www.twilio.com/docs/api/errors).
TOO_MANY_REQUESTS = 20429
# The sender's queue at Twilio is full (the create is refused, nothing was queued).
QUEUE_FULL = 21611
AUTHENTICATION = 20003
INVALID_NUMBER = 21211
NOT_A_MOBILE = 21614
UNSUBSCRIBED = 21610
# Reported after acceptance, in a delivery report: a landline or a carrier that takes no SMS,
# and a number the network does not know (may no longer exist). Not 30003 (handset off or out
# of coverage: it passes) nor 30004/30007 (blocked, filtered: not the number's fault alone).
LANDLINE_OR_UNREACHABLE_CARRIER = 30006
UNKNOWN_HANDSET = 30005
# Codes that mean the number itself cannot be messaged, whether the send or a later delivery
# report says so: the recipient is marked (:func:`notifications.recipients.note_refusal`).
UNREACHABLE_CODES = frozenset(
    str(code)
    for code in (INVALID_NUMBER, NOT_A_MOBILE, LANDLINE_OR_UNREACHABLE_CARRIER, UNKNOWN_HANDSET)
)
OPTED_OUT_CODES = frozenset({str(UNSUBSCRIBED)})
TWILIO_API = "https://api.twilio.com"
# How many of a number's newest messages a lookup reads: ours is among the last few.
LOOKUP_LIMIT = 20


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str
    auth_token: str
    from_number: str | None = None
    messaging_service_sid: str | None = None
    api_base_url: str = TWILIO_API
    timeout_seconds: float = 10.0
    # Kept-alive connections: at least one per sending thread, or each extra send pays for a
    # new TLS handshake (the client's own pool is cpu_count + 4).
    connections: int = 10


class TwilioSender:
    """Sends through the real ``twilio`` client; ``api_base_url`` may point it at a sandbox or
    the tests' fake server (the client's own URLs are rewritten by its HTTP client)."""

    def __init__(self, config: TwilioConfig) -> None:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        if not (config.from_number or config.messaging_service_sid):
            raise ValueError("Twilio needs a sending number or a messaging service SID")
        base = config.api_base_url.rstrip("/")

        class BaseUrlHttpClient(TwilioHttpClient):
            def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
                if base != TWILIO_API and url.startswith(TWILIO_API):
                    url = base + url[len(TWILIO_API) :]
                return super().request(method, url, *args, **kwargs)

        from requests.adapters import HTTPAdapter

        http_client = BaseUrlHttpClient(timeout=config.timeout_seconds)
        assert http_client.session is not None
        for scheme in ("https://", "http://"):
            http_client.session.mount(scheme, HTTPAdapter(pool_maxsize=config.connections))
        self.config = config
        self.client = Client(config.account_sid, config.auth_token, http_client=http_client)
        # The client logs every request at INFO, phone numbers included: not in our logs.
        logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

    def send(self, outgoing: Outgoing) -> Outcome:
        import requests
        from twilio.base.exceptions import TwilioRestException

        options: dict[str, Any] = {"to": outgoing.recipient, "body": outgoing.body}
        if self.config.messaging_service_sid:
            options["messaging_service_sid"] = self.config.messaging_service_sid
        else:
            options["from_"] = self.config.from_number
        if outgoing.status_callback:
            options["status_callback"] = outgoing.status_callback
        try:
            created = self.client.messages.create(**options)
        except TwilioRestException as error:
            return classify(error.status, error.code, error.msg)
        except requests.exceptions.ConnectTimeout as error:
            # The connection never opened: nothing reached Twilio.
            return Retry("connect_timeout", str(error)[:200])
        except requests.exceptions.RequestException as error:
            return Unknown(f"{type(error).__name__}: {error}"[:200])
        return Accepted(sid=created.sid, status=created.status or "queued")

    def lookup(self, outgoing: Outgoing, since: datetime) -> list[Accepted]:
        import requests
        from twilio.base.exceptions import TwilioException

        try:
            # Not filtered by DateSent: a message Twilio accepted but still holds in its queue
            # has none yet. The newest messages to the number, created since the attempt (a
            # minute of slack for clocks that disagree) and with the same text, are ours.
            found = self.client.messages.list(to=outgoing.recipient, limit=LOOKUP_LIMIT)
        except (TwilioException, requests.exceptions.RequestException) as error:
            raise LookupFailed(str(error)[:200]) from error
        after = since - timedelta(minutes=1)
        return [
            Accepted(sid=message.sid, status=message.status or "sent")
            for message in found
            if message.body == outgoing.body
            and (message.date_created is None or message.date_created >= after)
        ]


def classify(status: int, code: int | None, text: str) -> Outcome:
    """What a Twilio error answer means for the message."""
    text = (text or "")[:200]
    if status == 429 or code in (TOO_MANY_REQUESTS, QUEUE_FULL):
        return Retry(str(code or status), text)
    if status >= 500:
        return Unknown(f"HTTP {status}: {text}")
    if status in (401, 403) or code == AUTHENTICATION:
        # Our credentials, not the message: retry once someone fixes the configuration.
        log.error("Twilio refused our credentials (%s): check VISITS_TWILIO_*", code)
        return Retry(str(code or status), text, counted=False)
    return Refused(str(code or status), text)
