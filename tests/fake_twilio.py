"""A fake Twilio REST API that the real ``twilio`` client talks to over HTTP on 127.0.0.1.

The product's SMS sending is tested through the real client, so the tests also check how the
product builds requests, reads answers and survives failures: the fake speaks the Messages
resource of API 2010-04-01 (create, fetch, list), answers errors in Twilio's JSON shape, injects
faults (rate limits, queue overflow, 5xx before or after accepting, timeouts), records what it
accepted so tests can count duplicates, and posts signed status callbacks and inbound texts.

Control endpoints under ``/_fake/`` let other processes (test workers, a server under test) read
and drive the same fake. They need no authentication.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import random
import secrets
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"
# Twilio fills From from the service's sender pool when a message names only a Messaging Service.
POOL_SENDER = "+15005550006"
FAULT_KINDS = ("429", "queue_full", "500", "500_after_accept", "timeout", "timeout_after_accept")

# (HTTP status, Twilio code, message) of the faults that answer with a Twilio error. Queue
# overflow on create is 21611 with HTTP 400 ("This 'From' number has exceeded the maximum number
# of queued messages"); 30001 is the delivery error a message fails with *after* creation, which
# a test reproduces with post_status(sid, "failed", error_code=30001).
_FAULT_ERRORS = {
    "429": (429, 20429, "Too Many Requests"),
    "queue_full": (
        400,
        21611,
        "This 'From' number has exceeded the maximum number of queued messages",
    ),
    "500": (500, 20500, "An internal server error has occurred"),
    "500_after_accept": (500, 20500, "An internal server error has occurred"),
}

# GSM 03.38, counted independently of the product's own encoder so the fake can check it.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """How many segments Twilio bills for ``body``: GSM-7 160/153, else UCS-2 70/67."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in body):
        units = len(body) + sum(c in _GSM7_EXTENDED for c in body)
        single, part = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, part = 70, 67
    return 1 if units <= single else -(-units // part)


def message_key(status_callback: str | None, to: str, body: str) -> str | tuple[str, str]:
    """What identifies one intended text: outbox id ``m`` in its callback URL, else (to, body)."""
    m = parse_qs(urlsplit(status_callback or "").query).get("m")
    return m[0] if m else (to, body)


def _rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment) if moment else None


def twilio_error(status: int, code: int, message: str) -> JSONResponse:
    """An error body the way Twilio's API answers it (the client reads code and message)."""
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


@dataclass
class FakeMessage:
    """One message the fake accepted, with the status it last reported."""

    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None
    messaging_service_sid: str | None
    accepted_at: datetime
    updated_at: datetime
    status: str = "queued"
    error_code: int | None = None

    @property
    def key(self) -> str | tuple[str, str]:
        return message_key(self.status_callback, self.to, self.body)

    @property
    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    def resource(self, *, as_created: bool = False) -> dict[str, Any]:
        """The JSON Twilio returns for the message; the create answer has no date_sent yet."""
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": _rfc2822(self.accepted_at),
            "date_sent": None if as_created else _rfc2822(self.accepted_at),
            "date_updated": _rfc2822(self.updated_at),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(num_segments(self.body)),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {
                "media": self.uri.removesuffix(".json") + "/Media.json",
                "feedback": self.uri.removesuffix(".json") + "/Feedback.json",
            },
            "to": self.to,
            "uri": self.uri,
        }

    def snapshot(self) -> dict[str, Any]:
        """The resource plus what only the fake knows, for ``GET /_fake/messages``."""
        key = self.key
        return {
            **self.resource(),
            "status_callback": self.status_callback,
            "key": key if isinstance(key, str) else list(key),
            "accepted_at": self.accepted_at.isoformat(),
        }


def _date_bound(value: str) -> date | datetime:
    """A DateSent filter value: ``YYYY-MM-DD`` or an ISO datetime such as the client's ``...Z``."""
    if len(value) == 10:
        return date.fromisoformat(value)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _sent_matches(sent: datetime, op: str, bound: date | datetime) -> bool:
    """Twilio's inclusive DateSent filters; a bare date compares by day, a datetime by second."""
    left: date | datetime = sent if isinstance(bound, datetime) and op != "=" else sent.date()
    right = bound.date() if isinstance(bound, datetime) and op == "=" else bound
    return {"=": left == right, ">": left >= right, "<": left <= right}[op]


class FakeTwilio:
    """State and ASGI app of the fake. All methods are safe to call from any thread."""

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str = "fake-twilio-auth-token",
        *,
        latency: float = 0.0,
        timeout_seconds: float = 5.0,
        auto_status: list[str] | None = None,
        auto_status_delay: float = 0.05,
    ) -> None:
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token
        self.base_url = ""  # set by running_fake_twilio
        self._defaults = {
            "latency": latency,
            "timeout_seconds": timeout_seconds,
            "auto_status": auto_status,
            "auto_status_delay": auto_status_delay,
        }
        self._lock = threading.Lock()
        self._callback_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fake-twilio")
        self.reset()
        self.app = Starlette(
            routes=[
                Route(
                    "/2010-04-01/Accounts/{account_sid}/Messages.json",
                    self._create,
                    methods=["POST"],
                ),
                Route("/2010-04-01/Accounts/{account_sid}/Messages.json", self._list),
                Route("/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json", self._fetch),
                Route("/_fake/messages", self._control_messages),
                Route("/_fake/stats", self._control_stats),
                Route("/_fake/faults", self._control_faults, methods=["POST"]),
                Route("/_fake/status", self._control_status, methods=["POST"]),
                Route("/_fake/reset", self._control_reset, methods=["POST"]),
            ]
        )

    # -- configuration -----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget messages, counts and faults; restore the constructor's options."""
        with self._lock:
            self.latency: float = self._defaults["latency"]
            self.timeout_seconds: float = self._defaults["timeout_seconds"]
            self.auto_status: list[str] | None = self._defaults["auto_status"]
            self.auto_status_delay: float = self._defaults["auto_status_delay"]
            self._messages: dict[str, FakeMessage] = {}
            self._create_requests = 0
            self._outcomes: Counter[str] = Counter()
            self._status_posts: list[dict[str, Any]] = []
            self._fail_queue: deque[str] = deque()
            self._rejections: dict[str, tuple[int, int, str]] = {}
            self._rates = {"429": 0.0, "500": 0.0, "500_after_accept": 0.0}
            self._random = random.Random()

    def fail_next(self, kind: str, times: int = 1) -> None:
        """Answer the next ``times`` creates with fault ``kind`` (one of FAULT_KINDS), in order."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {FAULT_KINDS}")
        with self._lock:
            self._fail_queue.extend([kind] * times)

    def reject_number(
        self, to: str, code: int, status: int = 400, message: str | None = None
    ) -> None:
        """Refuse every create to ``to`` with Twilio error ``code`` (e.g. 21211, 21614, 21610)."""
        text = message or f"Twilio refused to send to {to} (error {code})"
        with self._lock:
            self._rejections[to] = (status, code, text)

    def fault_rates(
        self,
        rate_429: float = 0.0,
        rate_500: float = 0.0,
        rate_500_after_accept: float = 0.0,
        seed: int | None = None,
    ) -> None:
        """Fail each create at random with these probabilities, for soak tests."""
        with self._lock:
            self._rates = {
                "429": rate_429,
                "500": rate_500,
                "500_after_accept": rate_500_after_accept,
            }
            self._random = random.Random(seed)

    def close(self) -> None:
        """Stop posting automatic callbacks; waits for a post already under way."""
        self._callback_pool.shutdown(wait=True, cancel_futures=True)

    # -- what happened -----------------------------------------------------------------------

    def messages(self) -> list[FakeMessage]:
        """Copies of every accepted message, oldest first."""
        with self._lock:
            return [dataclasses.replace(m) for m in self._messages.values()]

    def message(self, sid: str) -> FakeMessage:
        with self._lock:
            return dataclasses.replace(self._messages[sid])

    def sent_count(self, to: str | None = None, key: str | tuple[str, str] | None = None) -> int:
        """Accepted messages, optionally only those to ``to`` and/or with ``key``."""
        return sum(
            1
            for m in self.messages()
            if (to is None or m.to == to) and (key is None or m.key == key)
        )

    def duplicates(self) -> list[str | tuple[str, str]]:
        """Keys accepted more than once: texts a recipient would have received twice."""
        counts = Counter(m.key for m in self.messages())
        return [key for key, n in counts.items() if n > 1]

    @property
    def create_requests(self) -> int:
        """Every create request received, whatever its outcome."""
        with self._lock:
            return self._create_requests

    @property
    def outcomes(self) -> Counter[str]:
        """Create requests by outcome: accepted, unauthorized, invalid, rejected or a fault kind."""
        with self._lock:
            return Counter(self._outcomes)

    def status_posts(self) -> list[dict[str, Any]]:
        """Every status callback attempted: sid, status, url, http_status (None if unreachable)."""
        with self._lock:
            return [dict(p) for p in self._status_posts]

    # -- outgoing webhooks -------------------------------------------------------------------

    def post_status(self, sid: str, status: str, error_code: int | None = None) -> int | None:
        """Move the message to ``status`` and post the signed callback Twilio would send.

        Returns the receiver's HTTP status, or None when the message has no StatusCallback.
        Raises KeyError for an unknown sid, httpx.HTTPError when the receiver is unreachable.
        """
        with self._lock:
            message = self._messages[sid]
            message.status = status
            message.error_code = error_code
            message.updated_at = datetime.now(UTC)
            url = message.status_callback
            params = {
                "MessageSid": sid,
                "SmsSid": sid,
                "MessageStatus": status,
                "SmsStatus": status,
                "AccountSid": self.account_sid,
                "From": message.from_,
                "To": message.to,
                "ApiVersion": API_VERSION,
            }
            if message.messaging_service_sid:
                params["MessagingServiceSid"] = message.messaging_service_sid
            if error_code is not None:
                params["ErrorCode"] = str(error_code)
        if not url:
            return None
        posted = {"sid": sid, "status": status, "url": url, "http_status": None}
        try:
            posted["http_status"] = self._post_signed(url, params).status_code
        finally:
            with self._lock:
                self._status_posts.append(posted)
        return posted["http_status"]

    def send_inbound(self, url: str, from_: str, to: str, body: str) -> httpx.Response:
        """Post the signed webhook Twilio sends when ``from_`` texts ``body`` to ``to``."""
        sid = "SM" + secrets.token_hex(16)
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "SmsStatus": "received",
            "AccountSid": self.account_sid,
            "From": from_,
            "To": to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": str(num_segments(body)),
            "ApiVersion": API_VERSION,
        }
        return self._post_signed(url, params)

    def _post_signed(self, url: str, params: dict[str, str]) -> httpx.Response:
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        headers = {"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"}
        return httpx.post(url, data=params, headers=headers, timeout=10)

    def _auto_status(self, sid: str, statuses: list[str], delay: float) -> None:
        for status in statuses:
            time.sleep(delay)
            try:
                self.post_status(sid, status)
            except KeyError:  # reset() forgot the message
                return
            except httpx.HTTPError:  # already logged with http_status None
                continue

    # -- REST API ----------------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        expected = f"{self.account_sid}:{self.auth_token}".encode()
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        return (
            scheme.lower() == "basic"
            and secrets.compare_digest(credentials.strip().encode(), base64.b64encode(expected))
            and request.path_params["account_sid"] == self.account_sid
        )

    def _count(self, outcome: str) -> None:
        with self._lock:
            self._outcomes[outcome] += 1

    def _choose_fault(self, to: str) -> str | None:
        """The fault this create meets: a queued one, a rejected number, or a random one."""
        with self._lock:
            if self._fail_queue:
                return self._fail_queue.popleft()
            if to in self._rejections:
                return "rejected"
            roll = self._random.random()
            for kind, rate in self._rates.items():
                if roll < rate:
                    return kind
                roll -= rate
            return None

    def _accept(self, form: Any) -> FakeMessage:
        now = datetime.now(UTC)
        message = FakeMessage(
            sid="SM" + secrets.token_hex(16),
            account_sid=self.account_sid,
            to=form["To"],
            from_=form.get("From") or POOL_SENDER,
            body=form["Body"],
            status_callback=form.get("StatusCallback"),
            messaging_service_sid=form.get("MessagingServiceSid"),
            accepted_at=now,
            updated_at=now,
        )
        with self._lock:
            self._messages[message.sid] = message
            statuses, delay = self.auto_status, self.auto_status_delay
        if statuses:
            self._callback_pool.submit(self._auto_status, message.sid, list(statuses), delay)
        return message

    async def _create(self, request: Request) -> Response:
        with self._lock:
            self._create_requests += 1
        if not self._authorised(request):
            self._count("unauthorized")
            return twilio_error(401, 20003, "Authenticate")
        form = await request.form()
        if self.latency:
            await asyncio.sleep(self.latency)
        for field, code, text in (
            ("To", 21604, "A 'To' phone number is required."),
            ("Body", 21602, "Message body is required."),
        ):
            if not form.get(field):
                self._count("invalid")
                return twilio_error(400, code, text)
        if not (form.get("From") or form.get("MessagingServiceSid")):
            self._count("invalid")
            return twilio_error(400, 21603, "A 'From' phone number is required.")

        fault = self._choose_fault(str(form["To"]))
        self._count(fault or "accepted")
        if fault == "rejected":
            with self._lock:
                status, code, text = self._rejections[str(form["To"])]
            return twilio_error(status, code, text)
        if fault in ("429", "queue_full", "500"):
            return twilio_error(*_FAULT_ERRORS[fault])
        if fault == "timeout":
            await asyncio.sleep(self.timeout_seconds)
            return PlainTextResponse("504 Gateway Time-out", status_code=504)
        message = self._accept(form)
        if fault == "500_after_accept":
            return twilio_error(*_FAULT_ERRORS[fault])
        if fault == "timeout_after_accept":
            await asyncio.sleep(self.timeout_seconds)
            return PlainTextResponse("504 Gateway Time-out", status_code=504)
        return JSONResponse(message.resource(as_created=True), status_code=201)

    async def _fetch(self, request: Request) -> Response:
        if not self._authorised(request):
            return twilio_error(401, 20003, "Authenticate")
        with self._lock:
            message = self._messages.get(request.path_params["sid"])
            resource = message.resource() if message else None
        if resource is None:
            return twilio_error(
                404, 20404, f"The requested resource {request.url.path} was not found"
            )
        return JSONResponse(resource)

    async def _list(self, request: Request) -> Response:
        if not self._authorised(request):
            return twilio_error(401, 20003, "Authenticate")
        query = request.query_params
        try:
            bounds = [
                (op, _date_bound(query[name]))
                for name, op in (("DateSent", "="), ("DateSent>", ">"), ("DateSent<", "<"))
                if name in query
            ]
        except ValueError:
            return twilio_error(400, 20001, "Invalid date value")
        page_size = min(int(query.get("PageSize", 50)), 1000)
        page = int(query.get("Page", 0))
        with self._lock:
            matching = [
                m.resource()
                for m in reversed(self._messages.values())
                if query.get("To", m.to) == m.to
                and query.get("From", m.from_) == m.from_
                and all(
                    _sent_matches(m.accepted_at.replace(microsecond=0), op, bound)
                    for op, bound in bounds
                )
            ]
        start = page * page_size
        records = matching[start : start + page_size]
        filters = {k: v for k, v in query.items() if k not in ("PageSize", "Page", "PageToken")}

        def page_uri(number: int) -> str:
            params = urlencode({**filters, "PageSize": page_size, "Page": number})
            return f"{request.url.path}?{params}"

        return JSONResponse(
            {
                "messages": records,
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1) if start + page_size < len(matching) else None,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
                "page": page,
                "page_size": page_size,
                "uri": page_uri(page),
                "start": start,
                "end": start + max(len(records) - 1, 0),
            }
        )

    # -- control endpoints -------------------------------------------------------------------

    async def _control_messages(self, request: Request) -> Response:
        return JSONResponse({"messages": [m.snapshot() for m in self.messages()]})

    async def _control_stats(self, request: Request) -> Response:
        return JSONResponse(
            {
                "create_requests": self.create_requests,
                "outcomes": dict(self.outcomes),
                "duplicates": [k if isinstance(k, str) else list(k) for k in self.duplicates()],
            }
        )

    async def _control_faults(self, request: Request) -> Response:
        """Apply a JSON object of settings; lists of objects for fail_next and reject_number.

        ``{"fail_next": [{"kind": "429", "times": 2}], "reject_number": [{"to": "+44...",
        "code": 21211}], "latency": 0.1, "timeout_seconds": 1, "fault_rates": {"rate_429": 0.1,
        "seed": 1}, "auto_status": ["sent", "delivered"], "auto_status_delay": 0.05}``
        """
        options = await request.json()
        unknown = set(options) - {
            "fail_next",
            "reject_number",
            "fault_rates",
            "latency",
            "timeout_seconds",
            "auto_status",
            "auto_status_delay",
        }
        if unknown:
            return JSONResponse({"error": f"unknown settings {sorted(unknown)}"}, 400)
        try:
            for fault in options.get("fail_next", []):
                self.fail_next(**fault)
            for rejection in options.get("reject_number", []):
                self.reject_number(**rejection)
            if "fault_rates" in options:
                self.fault_rates(**options["fault_rates"])
        except (TypeError, ValueError) as error:
            return JSONResponse({"error": str(error)}, 400)
        with self._lock:
            for name in ("latency", "timeout_seconds", "auto_status", "auto_status_delay"):
                if name in options:
                    setattr(self, name, options[name])
        return JSONResponse({"ok": True})

    async def _control_status(self, request: Request) -> Response:
        """Post a status callback for another process: ``{"sid", "status", "error_code"}``."""
        options = await request.json()
        try:
            http_status = await run_in_threadpool(
                self.post_status, options["sid"], options["status"], options.get("error_code")
            )
        except KeyError:
            return JSONResponse({"error": "unknown message"}, 404)
        except httpx.HTTPError as error:
            return JSONResponse({"error": f"callback failed: {error!r}"}, 502)
        return JSONResponse({"http_status": http_status})

    async def _control_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn on a free 127.0.0.1 port in a thread; yield its base URL.

    The socket is bound before the server starts, so no other process can take the port.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {port}")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def running_fake_twilio(**kwargs: Any) -> Iterator[FakeTwilio]:
    """A FakeTwilio (built with ``kwargs``) served over HTTP, with ``base_url`` set."""
    fake = FakeTwilio(**kwargs)
    try:
        with serving(fake.app) as base_url:
            fake.base_url = base_url
            yield fake
    finally:
        fake.close()
