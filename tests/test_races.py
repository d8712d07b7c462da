"""Invariant 1 under real concurrency: capacity and the cross-row rules never break.

Real threads (and, below, real processes) race for the last seats of one slot on each
database. Every attempt opens its own session, as web workers do.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from notifications.outbox import OutboxMessage
from tests.factories import NOW, SMS, make_inmate, make_prison, make_slot, request_for, visitor
from visits.booking import Booking, BookingStatus, create_booking, resend_code
from visits.db import Database, make_engine
from visits.inmate import Inmate
from visits.prison import Prison
from visits.problems import Rejected
from visits.schedule import Slot
from visits.sms import SmsPolicy

THREADS = 64
HOLDING = dataclasses.replace(SMS, verification=True, code_sends_per_client=6)
SATURDAY = date(2026, 12, 5)
SUNDAY = date(2026, 12, 6)


def attempt(db: Database, slot_id: int, inmate_code: str, dni: str) -> str:
    """One family booking one visitor: 'ok' or the sorted problem codes."""
    try:
        with db.writing() as s:
            create_booking(
                s,
                prison=s.scalar(select(Prison)),
                inmate=s.scalar(select(Inmate).where(Inmate.code == inmate_code)),
                request=request_for(slot_id, visitor(dni, first_names="Ana")),
                now=NOW,
                secret_key="k",
                sms_policy=SMS,
            )
        return "ok"
    except Rejected as rejected:
        return ",".join(sorted(rejected.codes))


def race(count: int, run) -> Counter[str]:
    """Start ``count`` threads at the same instant; tally their outcomes."""
    barrier = threading.Barrier(count)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        barrier.wait()
        outcome = run(i)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Counter(outcomes)


STAGGER = 0.01  # seconds between two families of a stream
LATE = 5  # families of a stream that try only after the interruption


def interrupted_stream(
    count: int, landed: Callable[[], int], interrupt: Callable[[], str], attempt_one
) -> Counter[str]:
    """``count`` families attempt one after another (``STAGGER`` apart) while ``interrupt``
    (a closure, a suspension) runs once, as soon as ``landed()`` says a booking has; the last
    ``LATE`` families try only after it finished. Both sides of the interruption are always
    exercised, and the middle of the stream races it."""
    finished = threading.Event()

    def interrupter() -> str:
        deadline = time.monotonic() + 60
        while landed() == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        try:
            return interrupt()
        finally:
            finished.set()

    def family(i: int) -> str:
        time.sleep(i * STAGGER)
        if i >= count - LATE:
            finished.wait(60)
        return attempt_one(i)

    return race(count + 1, lambda i: interrupter() if i == count else family(i))


def booking_count(db: Database) -> int:
    with db.read_session() as s:
        return s.scalar(select(func.count()).select_from(Booking)) or 0


def slot_state(db: Database, slot_id: int) -> tuple[int, int, int]:
    with db.read_session() as s:
        slot = s.get(Slot, slot_id)
        booked = s.scalar(
            select(func.coalesce(func.sum(Booking.party_size), 0)).where(
                Booking.slot_id == slot_id, Booking.status == BookingStatus.CONFIRMED
            )
        )
        return slot.capacity, slot.seats_taken, booked


def people_and_a_slot(db: Database, capacity: int = 200, **rules) -> int:
    """A prison with a person to visit for each thread (Q0, Q1, …) and one visit time on
    Saturday: its id."""
    with db.writing() as s:
        prison = make_prison(s, **rules)
        for i in range(THREADS):
            make_inmate(s, prison, f"Q{i}")
        return make_slot(s, prison, SATURDAY, capacity=capacity).id


@pytest.fixture
def racing_db(db_url):
    database = Database(make_engine(db_url, busy_timeout_ms=60_000, pool_size=THREADS))
    yield database
    database.dispose()


def test_threads_racing_for_the_last_seats_never_overbook(racing_db):
    db = racing_db
    slot_id = people_and_a_slot(db, capacity=60, visits_per_inmate_per_week=5)
    with db.writing() as s:
        s.get(Slot, slot_id).seats_taken = 40  # the last 20 seats are left
    outcomes = race(THREADS, lambda i: attempt(db, slot_id, f"Q{i}", f"4{i:07d}"))
    assert outcomes == {"ok": 20, "slot_full": THREADS - 20}
    capacity, taken, booked = slot_state(db, slot_id)
    assert taken == capacity == 60
    assert booked == 20  # every seat taken belongs to a booking that exists


def test_threads_racing_for_one_inmate_respect_the_weekly_limit(racing_db):
    db = racing_db
    with db.writing() as s:
        prison = make_prison(s, visits_per_inmate_per_week=2)
        make_inmate(s, prison, "Q1")
        saturday = make_slot(s, prison, SATURDAY, capacity=200).id
        sunday = make_slot(s, prison, SUNDAY, capacity=200).id
    outcomes = race(
        THREADS,
        lambda i: attempt(db, saturday if i % 2 else sunday, "Q1", f"4{i:07d}"),
    )
    assert outcomes == {"ok": 2, "weekly_limit_reached": THREADS - 2}
    with db.read_session() as s:
        assert s.scalar(select(func.sum(Slot.seats_taken))) == 2
        assert s.scalar(select(func.count()).select_from(Booking)) == 2


def test_threads_racing_with_one_visitor_book_one_visit_that_day(racing_db):
    db = racing_db
    slot_id = people_and_a_slot(db)
    outcomes = race(THREADS, lambda i: attempt(db, slot_id, f"Q{i}", "45678912"))
    assert outcomes == {"ok": 1, "visitor_already_booked": THREADS - 1}


PROCESSES = 8
ATTEMPTS_PER_PROCESS = 8


def _process_attempts(
    url: str, slot_id: int, first: int, barrier, results, inmate: str | None = None
) -> None:
    db = Database(make_engine(url, busy_timeout_ms=60_000, pool_size=2))
    barrier.wait()
    outcomes = [
        attempt(db, slot_id, inmate or f"Q{i}", f"4{i:07d}")
        for i in range(first, first + ATTEMPTS_PER_PROCESS)
    ]
    db.dispose()
    results.put(outcomes)


def _race_processes(db_url: str, slot_id: int, inmate: str | None = None) -> Counter[str]:
    """PROCESSES real processes, each making ATTEMPTS_PER_PROCESS bookings at once."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(
            target=_process_attempts,
            args=(db_url, slot_id, p * ATTEMPTS_PER_PROCESS, barrier, results, inmate),
        )
        for p in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes = Counter(o for _ in processes for o in results.get(timeout=240))
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return outcomes


def test_processes_racing_for_the_last_seats_never_overbook(db_url):
    db = Database(make_engine(db_url))
    total = PROCESSES * ATTEMPTS_PER_PROCESS
    with db.writing() as s:
        prison = make_prison(s, visits_per_inmate_per_week=5)
        for i in range(total):
            make_inmate(s, prison, f"Q{i}")
        slot_id = make_slot(s, prison, SATURDAY, capacity=17).id
    assert _race_processes(db_url, slot_id) == {"ok": 17, "slot_full": total - 17}
    assert slot_state(db, slot_id) == (17, 17, 17)
    db.dispose()


def test_processes_racing_for_one_inmate_respect_the_weekly_limit(db_url):
    db = Database(make_engine(db_url))
    total = PROCESSES * ATTEMPTS_PER_PROCESS
    with db.writing() as s:
        prison = make_prison(s, visits_per_inmate_per_week=2)
        make_inmate(s, prison, "Q1")
        slot_id = make_slot(s, prison, SATURDAY, capacity=200).id
    outcomes = _race_processes(db_url, slot_id, inmate="Q1")
    assert outcomes == {"ok": 2, "weekly_limit_reached": total - 2}
    assert slot_state(db, slot_id) == (200, 2, 2)
    db.dispose()


def seats_match_bookings(db: Database) -> bool:
    """Every slot's seats taken equal the party sizes of the bookings that hold it."""
    with db.read_session() as s:
        held = dict(
            s.execute(
                select(Booking.slot_id, func.sum(Booking.party_size))
                .where(Booking.status.in_(["held", "confirmed"]))
                .group_by(Booking.slot_id)
            ).all()
        )
        return all(held.get(slot.id, 0) == slot.seats_taken for slot in s.scalars(select(Slot)))


def change(db: Database, action, booking_id: int, **kwargs) -> str:
    """Cancel or move one booking in a transaction of its own: what happened, or why not."""
    try:
        with db.writing() as s:
            action(s, s.get(Booking, booking_id), now=NOW, actor="t", sms_policy=SMS, **kwargs)
        return action.__name__
    except Rejected as rejected:
        return ",".join(sorted(rejected.codes))


def test_a_cancel_racing_a_move_of_the_same_booking_keeps_the_seats_right(racing_db):
    from visits.booking import cancel_booking, move_booking

    db = racing_db
    with db.writing() as s:
        prison = make_prison(s, visits_per_inmate_per_week=50)
        make_inmate(s, prison, "Q0")
        make_inmate(s, prison, "OTHER")
        a = make_slot(s, prison, SATURDAY, capacity=100).id
        b = make_slot(s, prison, SUNDAY, capacity=100).id
    assert attempt(db, a, "OTHER", "49999999") == "ok"  # another family, also on slot A
    for round_ in range(12):  # each round races a fresh booking's cancel against its move
        assert attempt(db, a, "Q0", f"4{round_:07d}") == "ok"
        with db.read_session() as s:
            booking_id = s.scalar(select(Booking.id).order_by(Booking.id.desc()))
        actions = [
            lambda _, b_id=booking_id: change(db, cancel_booking, b_id),
            lambda _, b_id=booking_id: change(db, move_booking, b_id, slot_id=b),
        ]
        outcomes = race(2, lambda i, actions=actions: actions[i](i))
        assert outcomes["cancel_booking"] == 1, outcomes
        assert seats_match_bookings(db), f"round {round_}: {outcomes}"
    with db.read_session() as s:
        assert s.get(Slot, a).seats_taken == 1  # only the other family's seat is left
        assert s.get(Slot, b).seats_taken == 0


def test_one_key_sent_at_once_for_two_inmates_books_one_and_refuses_the_other(racing_db):
    db = racing_db
    with db.writing() as s:
        prison = make_prison(s)
        make_inmate(s, prison, "Q0")
        make_inmate(s, prison, "Q1")
        slot_id = make_slot(s, prison, SATURDAY, capacity=50).id

    def attempt_with_key(i: int) -> str:
        try:
            with db.writing() as s:
                create_booking(
                    s,
                    prison=s.scalar(select(Prison)),
                    inmate=s.scalar(select(Inmate).where(Inmate.code == f"Q{i % 2}")),
                    request=request_for(slot_id, visitor(f"4{i:07d}", first_names="Ana")),
                    now=NOW,
                    secret_key="k",
                    sms_policy=SMS,
                    submission_key="same-key",
                )
            return "ok"
        except Rejected as rejected:
            return ",".join(sorted(rejected.codes))

    outcomes = race(2, attempt_with_key)
    assert outcomes == {"ok": 1, "submission_key_reused": 1}
    assert seats_match_bookings(db)


def hold_attempt(
    db: Database,
    slot_id: int,
    inmate_code: str,
    n: int,
    client: str | None,
    policy: SmsPolicy = HOLDING,
) -> str:
    """One booking waiting for its code (its own document and phone): 'ok' or why not."""
    try:
        with db.writing() as s:
            create_booking(
                s,
                prison=s.scalar(select(Prison)),
                inmate=s.scalar(select(Inmate).where(Inmate.code == inmate_code)),
                request=request_for(slot_id, visitor(f"4{n:07d}"), phone=f"9876{n:05d}"),
                now=NOW,
                secret_key="k",
                sms_policy=policy,
                client=client,
            )
        return "ok"
    except Rejected as rejected:
        return ",".join(sorted(rejected.codes))


def test_threads_of_one_client_hold_at_most_three_bookings_waiting_for_their_code(racing_db):
    """Each thread books another person (no inmate lock in common): the client's own lock
    keeps the cap."""
    db = racing_db
    slot_id = people_and_a_slot(db)
    outcomes = race(THREADS, lambda i: hold_attempt(db, slot_id, f"Q{i}", i, "198.51.100.7"))
    assert outcomes == {"ok": 3, "too_many_unconfirmed": THREADS - 3}
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Booking)) == 3
        assert s.get(Slot, slot_id).seats_taken == 3


def test_threads_of_one_client_have_at_most_six_codes_sent_an_hour(racing_db):
    """Half the threads book (another person each), half ask for a new code of a booking
    made earlier from no web request: only the client's lock on its codes is common to all
    (the cap on its holds is lifted here), and 6 codes go."""
    db = racing_db
    slot_id = people_and_a_slot(db)
    half = THREADS // 2
    assert [hold_attempt(db, slot_id, f"Q{i}", i, None) for i in range(half)] == ["ok"] * half
    with db.read_session() as s:
        held_ids = s.scalars(select(Booking.id).order_by(Booking.id)).all()
    holding = dataclasses.replace(HOLDING, unconfirmed_per_client=THREADS)
    client = "198.51.100.7"

    def new_code(i: int) -> str:
        try:
            with db.writing() as s:
                resend_code(
                    s, s.get(Booking, held_ids[i]), now=NOW, sms_policy=holding, client=client
                )
            return "ok"
        except Rejected as rejected:
            return ",".join(sorted(rejected.codes))

    def book_or_resend(i: int) -> str:
        if i < half:
            return new_code(i)
        return hold_attempt(db, slot_id, f"Q{i}", i, client, policy=holding)

    outcomes = race(THREADS, book_or_resend)
    assert outcomes == {"ok": 6, "too_many_codes_from_client": THREADS - 6}
    with db.read_session() as s:
        codes = s.scalar(select(func.count()).where(OutboxMessage.kind == "code"))
        assert codes == half + 6
        assert s.get(Slot, slot_id).seats_taken == s.scalar(
            select(func.count()).select_from(Booking)
        )


def test_threads_of_many_clients_hold_at_most_two_bookings_for_one_person(racing_db):
    db = racing_db
    with db.writing() as s:
        prison = make_prison(s, visits_per_inmate_per_week=5)
        make_inmate(s, prison, "Q1")
        saturday = make_slot(s, prison, SATURDAY, capacity=200).id
        next_saturday = make_slot(s, prison, SATURDAY + timedelta(days=7), capacity=200).id
    outcomes = race(
        THREADS,
        lambda i: hold_attempt(
            db, saturday if i % 2 else next_saturday, "Q1", i, f"198.51.100.{i}"
        ),
    )
    assert outcomes == {"ok": 2, "too_many_unconfirmed": THREADS - 2}
    with db.read_session() as s:
        assert s.scalar(select(func.sum(Slot.seats_taken))) == 2


def _hold_the_writer_turn(url: str, holding) -> None:
    db = Database(make_engine(url))
    with db.writing() as s:
        s.execute(select(1))
        holding.set()
        time.sleep(120)  # until killed


def test_sqlite_writers_of_different_processes_take_turns_and_a_dead_holder_frees_its_turn(
    tmp_path,
):
    """Web workers queue for SQLite's write lock on a lock file, not on SQLite's busy handler
    (which polls with sleeps of up to 100 ms and starves some writers under a rush): another
    process's writer meets the turn already taken and says the database is busy when its
    timeout passes; and a worker killed while holding the turn does not keep it."""
    url = f"sqlite:///{tmp_path / 'turns.db'}"
    Database(make_engine(url)).dispose()
    context = multiprocessing.get_context("spawn")
    holding = context.Event()
    holder = context.Process(target=_hold_the_writer_turn, args=(url, holding))
    holder.start()
    impatient = Database(make_engine(url, busy_timeout_ms=300))
    try:
        assert holding.wait(timeout=60)
        with pytest.raises(TimeoutError), impatient.writing() as s:
            s.execute(select(1))
    finally:
        holder.kill()
        holder.join(timeout=60)
    with impatient.writing() as s:
        s.execute(select(1))
    impatient.dispose()
