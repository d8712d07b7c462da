"""The outbox and its dispatcher, through the real ``twilio`` client and the fake Twilio.

Each test runs on SQLite and PostgreSQL. The dispatcher's clock is a test clock, so retries,
leases and lookups happen when the test moves time, not after real waits. It starts at the real
time: a lookup asks the fake for messages sent since an attempt, by the fake's own clock.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from notifications import recipients
from notifications.dispatcher import Dispatcher, DispatchPolicy, RateLimiter
from notifications.outbox import (
    Draft,
    MessageStatus,
    OutboxMessage,
    apply_provider_status,
    cancel_pending,
    enqueue,
)
from notifications.recipients import Recipient
from notifications.senders import LookupFailed, TwilioConfig, TwilioSender, Unknown
from tests.fake_twilio import FakeTwilio, running_fake_twilio

NOW = datetime.now(UTC).replace(microsecond=0)
PHONE = "+51987654321"
OTHER = "+51912345678"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self):
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="module")
def twilio_server():
    with running_fake_twilio(timeout_seconds=1.0) as fake:
        yield fake


@pytest.fixture
def fake(twilio_server: FakeTwilio) -> FakeTwilio:
    twilio_server.reset()
    return twilio_server


@pytest.fixture
def clock() -> Clock:
    return Clock()


def sender_for(fake: FakeTwilio, timeout: float = 0.4) -> TwilioSender:
    return TwilioSender(
        TwilioConfig(
            account_sid=fake.account_sid,
            auth_token=fake.auth_token,
            from_number="+15005550006",
            api_base_url=fake.base_url,
            timeout_seconds=timeout,
        )
    )


@pytest.fixture
def dispatcher(db, fake, clock) -> Dispatcher:
    policy = DispatchPolicy(rate_per_second=1000, concurrency=4, max_attempts=3)
    return Dispatcher(
        db.writing,
        sender_for(fake),
        policy=policy,
        clock=clock,
        status_callback_url="https://visitas.example.pe/twilio/status",
    )


def queue(db, key="k1", to=PHONE, body="Hola", clock_now=NOW, **extra) -> int:
    with db.writing() as s:
        draft = Draft(recipient=to, body=body, language="es", dedupe_key=key, kind="t", **extra)
        message = enqueue(s, draft, clock_now)
        s.flush()
        return message.id


def message(db, message_id: int) -> OutboxMessage:
    with db.read_session() as s:
        found = s.get(OutboxMessage, message_id)
        assert found is not None
        found.events  # noqa: B018 (loaded while the session is open)
        return found


def history(db, message_id: int) -> list[str]:
    return [e.status.value for e in message(db, message_id).events]


def test_a_due_message_is_sent_once_and_its_history_kept(db, fake, dispatcher):
    first = queue(db, "a", body="Visita confirmada: mañana a las 9:00")
    later = queue(db, "b", send_after=NOW + timedelta(hours=1))
    report = dispatcher.drain()
    assert report.sent == 1
    sent = message(db, first)
    assert sent.status is MessageStatus.SENT
    assert sent.body == "Visita confirmada: mañana a las 9:00"  # ñ is GSM-7
    assert history(db, first) == ["pending", "sending", "sent"]
    accepted = fake.messages()
    assert [(m.to, m.body, m.sid) for m in accepted] == [(PHONE, sent.body, sent.provider_sid)]
    assert accepted[0].status_callback == f"https://visitas.example.pe/twilio/status?m={first}"
    assert message(db, later).status is MessageStatus.PENDING  # not due yet
    assert dispatcher.drain().claimed == 0  # nothing is sent twice


def test_text_is_transliterated_to_one_gsm7_segment_when_queued(db):
    body = "Visita confirmada: sábado 05/12 a las 09:00, Penal de Quencoro. Cámbiela aquí"
    sent = message(db, queue(db, body=body))
    assert sent.body == body.replace("á", "a").replace("í", "i")
    assert sent.segments == 1


def test_the_same_dedupe_key_is_queued_once(db):
    first = queue(db, "reminder:1")
    assert queue(db, "reminder:1", body="otro texto") == first
    with db.read_session() as s:
        assert s.scalar(select(func.count(OutboxMessage.id))) == 1


def test_the_same_dedupe_key_twice_in_one_transaction_is_one_message(db):
    with db.writing() as s:
        draft = Draft(recipient=PHONE, body="Hola", language="es", dedupe_key="k", kind="t")
        assert enqueue(s, draft, NOW) is enqueue(s, draft, NOW)
    with db.read_session() as s:
        assert s.scalar(select(func.count(OutboxMessage.id))) == 1


def test_a_cancelled_unsent_key_can_be_queued_again(db):
    first = queue(db, "r", subject="booking:X")
    with db.writing() as s:
        assert cancel_pending(s, "booking:X", NOW, "moved") == 1
    assert queue(db, "r", subject="booking:X", body="nuevo") == first
    again = message(db, first)
    assert (again.status, again.body) == (MessageStatus.PENDING, "nuevo")
    assert history(db, first) == ["pending", "cancelled", "pending"]


@pytest.mark.parametrize("fault", ["429", "queue_full"])
def test_a_refusal_to_accept_for_now_is_retried_with_backoff(db, fake, dispatcher, clock, fault):
    fake.fail_next(fault)
    message_id = queue(db)
    assert dispatcher.drain().retried == 1
    waiting = message(db, message_id)
    assert waiting.status is MessageStatus.PENDING
    assert waiting.attempts == 1
    assert waiting.next_attempt_at > clock.now  # backoff: not claimed again at once
    assert dispatcher.drain().claimed == 0
    clock.advance(minutes=1)
    assert dispatcher.drain().sent == 1
    assert fake.sent_count(to=PHONE) == 1
    assert message(db, message_id).status is MessageStatus.SENT


def test_retries_stop_after_the_last_attempt(db, fake, dispatcher, clock):
    fake.fail_next("429", times=3)
    message_id = queue(db)
    for _ in range(3):
        dispatcher.drain()
        clock.advance(hours=1)
    failed = message(db, message_id)
    assert (failed.status, failed.attempts, failed.error_code) == (MessageStatus.FAILED, 3, "20429")
    assert fake.sent_count() == 0


@pytest.mark.parametrize("fault", ["500_after_accept", "timeout_after_accept"])
def test_an_unanswered_send_that_went_out_is_found_not_sent_again(
    db, fake, dispatcher, clock, fault
):
    fake.fail_next(fault)
    message_id = queue(db)
    assert dispatcher.drain().unknown == 1
    unsure = message(db, message_id)
    assert unsure.status is MessageStatus.SENDING
    assert unsure.provider_sid is None
    assert dispatcher.drain().claimed == 0  # waits before looking it up
    clock.advance(minutes=1)
    report = dispatcher.drain()
    assert report.found_sent == 1
    assert fake.create_requests == 1  # looked up, never created again
    settled = message(db, message_id)
    assert settled.status is MessageStatus.SENT
    assert settled.provider_sid == fake.messages()[0].sid


@pytest.mark.parametrize("fault", ["500", "timeout"])
def test_an_unanswered_send_that_did_not_go_out_is_sent_after_the_lookup(
    db, fake, dispatcher, clock, fault
):
    fake.fail_next(fault)
    message_id = queue(db)
    assert dispatcher.drain().unknown == 1
    clock.advance(minutes=1)
    assert dispatcher.drain().sent == 1
    assert fake.sent_count() == 1
    assert message(db, message_id).attempts == 2


def test_a_crashed_dispatchers_claim_lapses_and_the_message_goes_out_once(db, fake, dispatcher):
    message_id = queue(db)
    _token, claimed = dispatcher.claim()  # claimed, then the process "dies"
    assert [c.outgoing.message_id for c in claimed] == [message_id]
    assert dispatcher.claim()[1] == []  # nobody else takes it while the lease runs
    dispatcher.clock.advance(minutes=3)  # type: ignore[attr-defined]
    report = dispatcher.drain()
    assert (report.claimed, report.sent) == (1, 1)
    assert fake.sent_count() == 1


def test_a_crash_after_the_provider_accepted_is_settled_by_lookup(db, fake, dispatcher, clock):
    message_id = queue(db)
    token, claimed = dispatcher.claim()
    assert dispatcher._start_attempt(token, message_id)
    dispatcher.sender.send(claimed[0].outgoing)  # sent, but the result was never recorded
    clock.advance(minutes=3)
    assert dispatcher.drain().found_sent == 1
    assert fake.sent_count() == 1
    assert message(db, message_id).status is MessageStatus.SENT


@pytest.mark.parametrize(
    ("code", "mark"),
    [(21211, "unreachable_at"), (21614, "unreachable_at"), (21610, "opted_out_at")],
)
def test_a_permanent_refusal_fails_the_message_and_marks_the_number(
    db, fake, dispatcher, code, mark
):
    fake.reject_number(PHONE, code)
    message_id = queue(db)
    assert dispatcher.drain().failed == 1
    failed = message(db, message_id)
    assert (failed.status, failed.error_code, failed.attempts) == (
        MessageStatus.FAILED,
        str(code),
        1,
    )
    with db.read_session() as s:
        assert getattr(s.get(Recipient, PHONE), mark) is not None
    # The next ordinary message to that number is not even tried; an essential one is.
    later = message(db, queue(db, "later"))
    assert (later.status, later.error_code) == (
        MessageStatus.CANCELLED,
        "opted_out" if code == 21610 else "unreachable",
    )
    assert message(db, queue(db, "code", essential=True)).status is MessageStatus.PENDING


def report(db, sid, status, code=None, message_id=None) -> bool:
    with db.writing() as s:
        return apply_provider_status(
            s,
            message_id=message_id,
            provider_sid=sid,
            provider_status=status,
            error_code=code,
            now=NOW,
        )


@pytest.mark.parametrize(
    ("status", "code", "mark"),
    [
        ("undelivered", "30006", "unreachable_at"),  # a landline, found out after acceptance
        ("undelivered", "30005", "unreachable_at"),
        ("failed", "21610", "opted_out_at"),
        ("undelivered", "30003", None),  # the handset was off: it passes
    ],
)
def test_a_delivery_report_error_marks_the_number_as_a_refusal_would(
    db, fake, dispatcher, status, code, mark
):
    message_id = queue(db)
    dispatcher.drain()
    assert report(db, message(db, message_id).provider_sid, status, code) is True
    with db.read_session() as s:
        recipient = s.get(Recipient, PHONE)
        marks = {
            column
            for column in ("unreachable_at", "opted_out_at")
            if recipient is not None and getattr(recipient, column) is not None
        }
    assert marks == ({mark} if mark else set())
    later = message(db, queue(db, "later"))
    assert later.status is (MessageStatus.CANCELLED if mark else MessageStatus.PENDING)


def test_a_delivery_not_an_acceptance_clears_an_unreachable_mark(db, fake, dispatcher):
    with db.writing() as s:
        recipients.mark_unreachable(s, PHONE, "30006", NOW)
        recipients.mark_unreachable(s, OTHER, "30006", NOW)
        recipients.opt_out(s, OTHER, "BAJA", NOW)
    code = queue(db, "code", essential=True)
    other = queue(db, "other", to=OTHER, essential=True)
    assert dispatcher.drain().sent == 2
    with db.read_session() as s:  # accepted is no proof: a landline is accepted too
        assert s.get(Recipient, PHONE).unreachable_code == "30006"
    assert report(db, message(db, code).provider_sid, "delivered") is True
    assert report(db, message(db, other).provider_sid, "delivered") is True
    with db.read_session() as s:
        assert s.get(Recipient, PHONE).unreachable_at is None
        assert s.get(Recipient, OTHER).unreachable_at is None
        assert s.get(Recipient, OTHER).opted_out_at is not None  # only ALTA lifts an opt-out
    assert message(db, queue(db, "reminder")).status is MessageStatus.PENDING


def test_an_opted_out_number_gets_no_ordinary_message_queued_before_the_opt_out(
    db, fake, dispatcher
):
    ordinary = queue(db, "reminder")
    essential = queue(db, "code", essential=True)
    with db.writing() as s:
        recipients.opt_out(s, PHONE, "BAJA", NOW)
    dispatcher.drain()
    assert message(db, ordinary).status is MessageStatus.CANCELLED
    assert message(db, essential).status is MessageStatus.SENT
    assert fake.sent_count() == 1


def test_a_message_past_its_usefulness_is_cancelled_not_sent(db, fake, dispatcher, clock):
    message_id = queue(db, expires_at=NOW + timedelta(minutes=5))
    clock.advance(minutes=10)
    assert dispatcher.drain().cancelled == 1
    assert message(db, message_id).error_code == "expired"
    assert fake.sent_count() == 0


def test_cancelling_a_subject_cancels_only_its_pending_messages(db, dispatcher):
    sent = queue(db, "sent", subject="booking:A")
    dispatcher.drain()
    pending = queue(db, "pending", subject="booking:A", send_after=NOW + timedelta(days=1))
    other = queue(db, "other", subject="booking:B", send_after=NOW + timedelta(days=1))
    with db.writing() as s:
        assert cancel_pending(s, "booking:A", NOW, "booking cancelled") == 1
    assert message(db, sent).status is MessageStatus.SENT
    assert message(db, pending).status is MessageStatus.CANCELLED
    assert message(db, other).status is MessageStatus.PENDING


def test_delivery_reports_only_move_a_message_forward(db, fake, dispatcher):
    message_id = queue(db)
    dispatcher.drain()
    sid = message(db, message_id).provider_sid
    assert report(db, sid, "sent") is False  # already there
    assert report(db, sid, "delivered") is True
    assert report(db, sid, "sent") is False  # late
    assert report(db, sid, "undelivered", "30006") is False  # a final status stays final
    assert report(db, sid, "delivered") is False  # repeated
    final = message(db, message_id)
    assert final.status is MessageStatus.DELIVERED
    assert history(db, message_id) == ["pending", "sending", "sent", "delivered"]
    with db.read_session() as s:  # a stale failure says nothing of the number either
        assert s.get(Recipient, PHONE) is None


def test_a_delivery_report_settles_a_message_whose_send_had_no_answer(db, fake, dispatcher):
    fake.fail_next("500_after_accept")
    message_id = queue(db)
    dispatcher.drain()
    sid = fake.messages()[0].sid
    with db.writing() as s:
        assert apply_provider_status(
            s,
            message_id=message_id,
            provider_sid=sid,
            provider_status="delivered",
            error_code=None,
            now=NOW,
        )
    settled = message(db, message_id)
    assert (settled.status, settled.provider_sid) == (MessageStatus.DELIVERED, sid)


def test_a_verification_code_is_not_kept_readable_after_sending(db, fake, dispatcher):
    message_id = queue(
        db, body="Su codigo es 123456.", redacted_body="Su codigo es ******.", essential=True
    )
    dispatcher.drain()
    assert fake.messages()[0].body == "Su codigo es 123456."
    assert message(db, message_id).body == "Su codigo es ******."


def test_the_rate_limiter_spaces_sends_evenly():
    moments: list[float] = []
    now = [100.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(50, clock=lambda: now[0], sleep=sleep)
    for _ in range(101):
        limiter.acquire()
        moments.append(now[0])
    assert moments[-1] - moments[0] == pytest.approx(2.0)  # 100 intervals of 1/50 s
    assert min(b - a for a, b in itertools.pairwise(moments)) == pytest.approx(0.02)


def test_a_batch_never_exceeds_what_one_lease_can_send():
    policy = DispatchPolicy(rate_per_second=1, lease=timedelta(seconds=60), batch_size=500)
    assert policy.batch() == 30
    assert DispatchPolicy(rate_per_second=100, batch_size=500).batch() == 500
    for attempts in range(1, 12):
        wait = policy.backoff(attempts)
        assert timedelta(0) < wait <= policy.backoff_max


# --- What a review found: withdrawn, look-alike, late and unanswerable messages ---------------


@pytest.mark.parametrize(("fault", "ends"), [("500", "cancelled"), ("500_after_accept", "sent")])
def test_a_message_withdrawn_while_its_fate_is_unknown_is_never_sent_again(
    db, fake, dispatcher, clock, fault, ends
):
    fake.fail_next(fault)
    message_id = queue(db, subject="booking:A")
    assert dispatcher.drain().unknown == 1
    with db.writing() as s:  # the family cancels meanwhile
        assert cancel_pending(s, "booking:A", clock(), "booking cancelled") == 0
    clock.advance(minutes=1)
    dispatcher.drain()
    settled = message(db, message_id)
    assert settled.status.value == ends  # sent only if the provider already had it
    assert fake.create_requests == 1


def test_a_message_withdrawn_while_claimed_is_not_sent(db, fake, dispatcher):
    message_id = queue(db, subject="booking:A")
    token, [claimed] = dispatcher.claim()
    with db.writing() as s:
        cancel_pending(s, "booking:A", NOW, "booking cancelled")
    assert dispatcher._deliver(token, claimed) == "cancelled"
    assert message(db, message_id).status is MessageStatus.CANCELLED
    assert fake.create_requests == 0


def test_the_same_text_twice_to_one_number_is_told_apart_by_lookup(db, fake, dispatcher, clock):
    first = queue(db, "help:1", body="Visitas: responda 1 o 2")
    dispatcher.drain()
    fake.fail_next("500")  # the second is not accepted, and its answer is lost
    second = queue(db, "help:2", body="Visitas: responda 1 o 2")
    assert dispatcher.drain().unknown == 1
    clock.advance(minutes=1)
    assert dispatcher.drain().sent == 1  # the first one's id is not taken for the second
    sids = {message(db, first).provider_sid, message(db, second).provider_sid}
    assert sids == {m.sid for m in fake.messages()}
    assert len(sids) == 2


def test_no_attempt_starts_when_the_claim_would_lapse_before_an_answer(db, fake, dispatcher, clock):
    message_id = queue(db)
    token, [claimed] = dispatcher.claim()
    clock.advance(seconds=dispatcher.policy.lease.total_seconds() - 10)
    assert dispatcher._deliver(token, claimed) == "unknown"
    assert fake.create_requests == 0
    assert message(db, message_id).attempts == 0
    clock.advance(minutes=1)  # the claim lapses; the next one finds nothing sent, and sends
    assert dispatcher.drain().sent == 1
    assert fake.sent_count() == 1


def test_rejected_credentials_are_retried_until_someone_fixes_them(db, fake, clock):
    wrong = sender_for(fake)
    wrong.client.password = "not-the-token"
    wrong.client.auth = (wrong.client.username, "not-the-token")
    policy = DispatchPolicy(rate_per_second=1000, max_attempts=2)
    dispatcher = Dispatcher(db.writing, wrong, policy=policy, clock=clock)
    message_id = queue(db)
    for _ in range(4):
        assert dispatcher.drain().retried == 1
        clock.advance(hours=1)
    waiting = message(db, message_id)
    assert (waiting.status, waiting.attempts, waiting.error_code) == (
        MessageStatus.PENDING,
        4,
        "20003",
    )


class Unanswerable:
    """A provider that never answers, nor says what became of a message."""

    def send(self, outgoing):
        return Unknown("timeout")

    def lookup(self, outgoing, since):
        raise LookupFailed("the provider is down")


def test_a_message_whose_fate_cannot_be_learnt_fails_after_an_hour(db, clock):
    policy = DispatchPolicy(rate_per_second=1000, unknown_wait=timedelta(minutes=1))
    dispatcher = Dispatcher(db.writing, Unanswerable(), policy=policy, clock=clock)
    message_id = queue(db)
    assert dispatcher.drain().unknown == 1
    for _ in range(5):
        clock.advance(minutes=10)
        assert dispatcher.drain().unknown == 1  # looked up again and again, never resent
    clock.advance(minutes=11)
    assert dispatcher.drain().failed == 1
    failed = message(db, message_id)
    assert (failed.status, failed.attempts, failed.error_code) == (
        MessageStatus.FAILED,
        1,
        "unknown",
    )


@pytest.mark.parametrize(("fault", "then"), [("500", "sent"), ("500_after_accept", "found_sent")])
def test_a_stopping_dispatcher_hands_back_its_claims_without_forgetting_an_attempt(
    db, fake, dispatcher, clock, fault, then
):
    """On shutdown a claimed message goes back due now; one whose last attempt has no known
    fate stays ``sending`` (never "unattempted"), so the next dispatcher looks it up first."""
    fake.fail_next(fault)
    unsure = queue(db, "unsure", to=OTHER)
    assert dispatcher.drain().unknown == 1
    fresh = queue(db, "fresh")
    clock.advance(minutes=1)
    token, claimed = dispatcher.claim()
    assert {c.outgoing.message_id for c in claimed} == {unsure, fresh}
    dispatcher.stop()
    assert [dispatcher._deliver(token, c) for c in claimed] == ["released", "released"]
    assert dispatcher.drain().claimed == 0  # a stopped dispatcher claims nothing more
    assert fake.create_requests == 1
    back = message(db, fresh)
    assert (back.status, back.claim_token, back.attempts) == (MessageStatus.PENDING, None, 0)
    assert back.next_attempt_at == clock()
    assert history(db, fresh) == ["pending", "sending", "pending"]
    kept = message(db, unsure)
    assert (kept.status, kept.claim_token, kept.attempts) == (MessageStatus.SENDING, None, 1)
    assert kept.next_attempt_at == clock()

    policy = DispatchPolicy(rate_per_second=1000, concurrency=4, max_attempts=3)
    successor = Dispatcher(db.writing, sender_for(fake), policy=policy, clock=clock)
    report = successor.drain()
    assert report.outcomes == {fresh: "sent", unsure: then}
    assert fake.sent_count() == 2
    assert fake.duplicates() == []
