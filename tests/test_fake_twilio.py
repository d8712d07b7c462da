"""The fake Twilio API, driven by the real ``twilio`` client, so product tests can trust it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests.fake_twilio import POOL_SENDER, FakeTwilio, num_segments, running_fake_twilio, serving

SENDER = "+15005550006"
ALICE = "+447700900001"
BOB = "+447700900002"


class FakeHttpClient(TwilioHttpClient):
    """The client's own HTTP layer, pointed at the fake instead of api.twilio.com."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url

    def request(
        self,
        method,
        url,
        params=None,
        data=None,
        headers=None,
        auth=None,
        timeout=None,
        allow_redirects=False,
    ):
        if url.startswith("https://api.twilio.com"):
            url = self.base_url + url.removeprefix("https://api.twilio.com")
        return super().request(method, url, params, data, headers, auth, timeout, allow_redirects)


def twilio_client(fake: FakeTwilio, timeout: float = 2.0, auth_token: str | None = None) -> Client:
    http_client = FakeHttpClient(fake.base_url, timeout)
    return Client(fake.account_sid, auth_token or fake.auth_token, http_client=http_client)


def wait_until(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with running_fake_twilio() as fake:
        yield fake


@pytest.fixture
def client(fake: FakeTwilio) -> Client:
    return twilio_client(fake)


@pytest.fixture
def receiver(fake: FakeTwilio) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook endpoint that checks each post's signature as the product would."""
    received: list[dict[str, Any]] = []
    validator = RequestValidator(fake.auth_token)

    async def hook(request: Request) -> PlainTextResponse:
        form = dict(await request.form())
        signature = request.headers.get("X-Twilio-Signature", "")
        received.append(
            {
                "path": request.url.path,
                "query": dict(request.query_params),
                "form": form,
                "valid": validator.validate(str(request.url), form, signature),
            }
        )
        return PlainTextResponse("<Response/>", media_type="application/xml")

    app = Starlette(routes=[Route("/{hook:path}", hook, methods=["POST"])])
    with serving(app) as base_url:
        yield base_url, received


def send(client: Client, to: str = ALICE, body: str = "Your visit is booked", **kwargs: Any):
    return client.messages.create(to=to, from_=SENDER, body=body, **kwargs)


def test_create_answers_a_queued_message_and_the_fake_records_it(fake, client):
    message = send(client, status_callback="http://127.0.0.1:9/status?m=out-1")

    assert message.sid.startswith("SM")
    assert len(message.sid) == 34
    assert message.account_sid == fake.account_sid
    assert (message.to, message.from_, message.body) == (ALICE, SENDER, "Your visit is booked")
    assert message.status == "queued"
    assert message.direction == "outbound-api"
    assert message.num_segments == "1"
    assert message.date_created is not None
    assert message.date_sent is None
    assert message.error_code is None
    assert [m.sid for m in fake.messages()] == [message.sid]
    assert fake.sent_count(to=ALICE) == 1
    assert fake.sent_count(key="out-1") == 1
    assert fake.outcomes["accepted"] == fake.create_requests == 1


def test_fetch_returns_the_message_with_its_send_date(client):
    sid = send(client).sid

    fetched = client.messages(sid).fetch()

    assert (fetched.sid, fetched.to, fetched.body) == (sid, ALICE, "Your visit is booked")
    assert fetched.date_sent is not None
    assert fetched.date_sent.tzinfo is not None


def test_fetch_of_an_unknown_message_is_404(fake, client):
    with pytest.raises(TwilioRestException) as caught:
        client.messages("SM" + "0" * 32).fetch()

    assert (caught.value.status, caught.value.code) == (404, 20404)


def test_a_messaging_service_sends_from_its_pool(client):
    message = client.messages.create(to=ALICE, messaging_service_sid="MG" + "1" * 32, body="Hi")

    assert message.from_ == POOL_SENDER
    assert message.messaging_service_sid == "MG" + "1" * 32


def test_list_filters_by_recipient_and_date_sent_after_newest_first(client):
    before = datetime.now(UTC) - timedelta(seconds=2)
    first = send(client, body="one").sid
    send(client, to=BOB)
    second = send(client, body="two").sid

    found = client.messages.list(to=ALICE, date_sent_after=before)
    paged = client.messages.list(to=ALICE, date_sent_after=before, page_size=1)

    assert [m.sid for m in found] == [second, first]
    assert [m.sid for m in paged] == [second, first]
    assert (
        client.messages.list(to=ALICE, date_sent_after=datetime.now(UTC) + timedelta(hours=1)) == []
    )
    assert client.messages.list(date_sent_before=before - timedelta(days=1)) == []
    assert len(client.messages.list(date_sent=datetime.now(UTC))) == 3
    assert len(client.messages.list(from_=SENDER)) == 3


def test_the_client_serialises_date_sent_after_as_utc_seconds(fake, client):
    client.messages.list(date_sent_after=datetime(2024, 5, 1, 10, 30, 15, 999, tzinfo=UTC))

    sent = client.http_client._test_only_last_request
    assert sent.params == {"DateSent>": "2024-05-01T10:30:15Z"}


def test_a_wrong_auth_token_is_401(fake):
    with pytest.raises(TwilioRestException) as caught:
        send(twilio_client(fake, auth_token="wrong"))

    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert fake.sent_count() == 0
    assert fake.outcomes["unauthorized"] == fake.create_requests == 1


@pytest.mark.parametrize(
    ("missing", "code"), [({"to": ""}, 21604), ({"body": ""}, 21602), ({"from_": ""}, 21603)]
)
def test_a_create_missing_a_field_is_400(fake, client, missing, code):
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(**{"to": ALICE, "from_": SENDER, "body": "Hi", **missing})

    assert (caught.value.status, caught.value.code) == (400, code)
    assert fake.sent_count() == 0


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("429", 429, 20429), ("queue_full", 400, 21611), ("500", 500, 20500)],
)
def test_faults_before_acceptance_send_nothing(fake, client, kind, status, code):
    fake.fail_next(kind, times=2)

    for _ in range(2):
        with pytest.raises(TwilioRestException) as caught:
            send(client)
        assert (caught.value.status, caught.value.code) == (status, code)
    assert fake.sent_count() == 0

    send(client)
    assert fake.sent_count() == 1
    assert fake.outcomes == {kind: 2, "accepted": 1}


def test_500_after_accept_raises_but_the_text_goes_out(fake, client):
    fake.fail_next("500_after_accept")

    with pytest.raises(TwilioRestException) as caught:
        send(client, status_callback="http://127.0.0.1:9/status?m=out-2")

    assert caught.value.status == 500
    assert fake.sent_count(key="out-2") == 1


@pytest.mark.parametrize(("kind", "sent"), [("timeout", 0), ("timeout_after_accept", 1)])
def test_a_slow_answer_times_the_client_out(kind, sent):
    with running_fake_twilio(timeout_seconds=1.0) as fake:
        fake.fail_next(kind)

        with pytest.raises(requests.exceptions.ReadTimeout):
            send(twilio_client(fake, timeout=0.3))

        assert fake.sent_count() == sent


def test_an_unreachable_api_is_a_requests_connection_error():
    with running_fake_twilio() as fake:
        client = twilio_client(fake)

    with pytest.raises(requests.exceptions.ConnectionError):
        send(client)


def test_a_rejected_number_answers_its_error_every_time(fake, client):
    fake.reject_number(BOB, 21211, message="The 'To' number +447700900002 is not valid.")

    for _ in range(2):
        with pytest.raises(TwilioRestException) as caught:
            send(client, to=BOB)
        assert (caught.value.status, caught.value.code) == (400, 21211)
        assert "is not valid" in caught.value.msg
    send(client, to=ALICE)

    assert fake.sent_count(to=BOB) == 0
    assert fake.sent_count(to=ALICE) == 1


def test_random_faults_follow_the_rates(fake, client):
    fake.fault_rates(rate_429=0.3, rate_500_after_accept=0.2, seed=7)
    failures = 0

    for _ in range(40):
        try:
            send(client)
        except TwilioRestException:
            failures += 1

    outcomes = fake.outcomes
    assert all(outcomes[kind] > 0 for kind in ("429", "500_after_accept", "accepted"))
    assert failures == outcomes["429"] + outcomes["500_after_accept"]
    assert fake.sent_count() == outcomes["accepted"] + outcomes["500_after_accept"]


def test_latency_delays_each_create_without_serialising_them(fake, client):
    fake.latency = 0.3
    started = time.monotonic()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: send(client, body=f"text {i}"), range(4)))

    assert 0.3 <= time.monotonic() - started < 1.0
    assert fake.sent_count() == 4


def test_a_status_callback_is_signed_and_updates_the_message(fake, client, receiver):
    base_url, received = receiver
    sid = send(client, status_callback=f"{base_url}/status?m=out-3").sid

    assert fake.post_status(sid, "failed", error_code=30001) == 200

    [post] = received
    assert post["valid"]
    assert (post["path"], post["query"]) == ("/status", {"m": "out-3"})
    assert post["form"] == {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": "failed",
        "SmsStatus": "failed",
        "AccountSid": fake.account_sid,
        "From": SENDER,
        "To": ALICE,
        "ApiVersion": "2010-04-01",
        "ErrorCode": "30001",
    }
    fetched = client.messages(sid).fetch()
    assert (fetched.status, fetched.error_code) == ("failed", 30001)
    assert fake.status_posts() == [
        {"sid": sid, "status": "failed", "url": f"{base_url}/status?m=out-3", "http_status": 200}
    ]


def test_auto_status_posts_each_status_in_order(fake, client, receiver):
    base_url, received = receiver
    fake.auto_status = ["sent", "delivered"]
    fake.auto_status_delay = 0.01
    sid = send(client, status_callback=f"{base_url}/status").sid

    wait_until(lambda: len(received) == 2)

    assert [p["form"]["MessageStatus"] for p in received] == ["sent", "delivered"]
    assert all(p["valid"] for p in received)
    assert fake.message(sid).status == "delivered"


def test_an_inbound_text_is_signed(fake, receiver):
    base_url, received = receiver

    response = fake.send_inbound(f"{base_url}/inbound", ALICE, SENDER, "STOP")

    assert (response.status_code, response.text) == (200, "<Response/>")
    [post] = received
    assert post["valid"]
    assert post["form"]["Body"] == "STOP"
    assert (post["form"]["From"], post["form"]["To"]) == (ALICE, SENDER)
    assert post["form"]["MessageSid"].startswith("SM")


def test_duplicates_are_keys_accepted_twice(fake, client):
    send(client, status_callback="http://127.0.0.1:9/status?m=out-4")
    send(client, status_callback="http://127.0.0.1:9/status?m=out-4")
    send(client, status_callback="http://127.0.0.1:9/status?m=out-5")
    send(client, to=BOB, body="same")
    send(client, to=BOB, body="same")

    assert fake.duplicates() == ["out-4", (BOB, "same")]
    assert fake.sent_count(key="out-4") == 2


def test_control_endpoints_drive_the_fake_from_another_process(fake, client, receiver):
    base_url, received = receiver
    faults = {
        "fail_next": [{"kind": "429"}],
        "reject_number": [{"to": BOB, "code": 21610}],
        "latency": 0.0,
    }
    assert httpx.post(f"{fake.base_url}/_fake/faults", json=faults).status_code == 200
    assert httpx.post(f"{fake.base_url}/_fake/faults", json={"nope": 1}).status_code == 400

    with pytest.raises(TwilioRestException, match="Too Many Requests"):
        send(client)
    with pytest.raises(TwilioRestException) as caught:
        send(client, to=BOB)
    assert caught.value.code == 21610
    sid = send(client, status_callback=f"{base_url}/status?m=out-6").sid

    [listed] = httpx.get(f"{fake.base_url}/_fake/messages").json()["messages"]
    assert (listed["sid"], listed["key"], listed["status"]) == (sid, "out-6", "queued")
    status = httpx.post(f"{fake.base_url}/_fake/status", json={"sid": sid, "status": "sent"})
    assert status.json() == {"http_status": 200}
    assert received[0]["valid"]
    stats = httpx.get(f"{fake.base_url}/_fake/stats").json()
    assert stats == {
        "create_requests": 3,
        "outcomes": {"429": 1, "rejected": 1, "accepted": 1},
        "duplicates": [],
    }

    assert httpx.post(f"{fake.base_url}/_fake/reset").status_code == 200
    assert httpx.get(f"{fake.base_url}/_fake/messages").json() == {"messages": []}
    send(client, to=BOB)
    assert fake.sent_count(to=BOB) == 1


def test_num_segments_counts_gsm7_and_ucs2():
    assert num_segments("a" * 160) == 1
    assert num_segments("a" * 161) == 2
    assert num_segments("€" * 80) == 1
    assert num_segments("á" * 70) == 1
    assert num_segments("á" * 71) == 2
