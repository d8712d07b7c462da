"""Staff accounts: creation rules, argon2id, sign-in with lockout, sessions, on each database."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from tests.factories import NOW, make_prison
from visits import staff
from visits.audit import AuditEvent
from visits.problems import Code, Rejected
from visits.staff import (
    SignInPolicy,
    StaffRole,
    StaffSession,
    StaffUser,
    change_own_password,
    create_staff,
    current_session,
    sign_in,
    sign_out,
    touch,
)

PASSWORD = "una clave larga de prueba"
POLICY = SignInPolicy(failures_per_pair=3, failures_per_user=6, failures_per_client=10)


@pytest.fixture
def guard(db):
    with db.writing() as s:
        prison = make_prison(s)
        create_staff(
            s,
            username="Rosa.Guardia",
            full_name="Rosa Huamán",
            role=StaffRole.GUARD,
            password=PASSWORD,
            prisons=[prison],
            now=NOW,
            actor="cli",
        )
    return db


KEY = "test-secret"


def _sign_in(
    db, password=PASSWORD, username="rosa.guardia", client="10.0.0.1", now=NOW, device=None
):
    return sign_in(
        db,
        username=username,
        password=password,
        client=client,
        now=now,
        policy=POLICY,
        device=device,
    )


def _locked_by_strangers(db, username="rosa.guardia"):
    """The name locked everywhere by wrong passwords from many addresses."""
    for n in range(POLICY.failures_per_user):
        with pytest.raises(Rejected):
            _sign_in(db, password="no es la clave", username=username, client=f"203.0.113.{n}")
    with pytest.raises(Rejected) as locked:
        _sign_in(db, username=username, client="10.0.0.1")
    assert locked.value.codes == {Code.SIGN_IN_LOCKED}


TODAY = NOW.date()


def _device(username="rosa.guardia", cookie=None):
    """The id of a browser that has signed in as ``username``."""
    cookie = staff.remember_device(cookie, KEY, username, TODAY)
    return staff.remembered_device(cookie, KEY, username, TODAY)


def test_a_new_account_keeps_only_an_argon2id_hash_and_is_audited(guard):
    with guard.read_session() as s:
        user = s.scalar(select(StaffUser))
        assert user.username == "rosa.guardia"  # one spelling of a name
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        assert [p.code for p in user.prisons] == ["TEST"]
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "staff.created"))
        assert event.entity_id == "rosa.guardia"
        assert event.actor == "cli"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"username": "a b"}, Code.INVALID_USERNAME),
        ({"username": "rosa.guardia"}, Code.USERNAME_TAKEN),
        ({"password": "corta"}, Code.PASSWORD_TOO_SHORT),
        ({"password": " " * 12}, Code.PASSWORD_BLANK),
        ({"password": "\t  \u00a0" * 4}, Code.PASSWORD_BLANK),
        ({"password": "x" * 300}, Code.TOO_LONG),
        ({"full_name": "  "}, Code.REQUIRED),
        ({"national": True, "prisons": []}, Code.NATIONAL_ADMINS_ONLY),
        ({"prisons": []}, Code.PRISON_REQUIRED),
    ],
)
def test_bad_accounts_are_refused_with_the_reason_and_nothing_is_created(guard, changes, code):
    with guard.writing() as s:
        values = {
            "username": "otro.guardia",
            "full_name": "Otro",
            "role": StaffRole.GUARD,
            "password": PASSWORD,
            "prisons": [s.scalar(select(StaffUser)).prisons[0]],
            "now": NOW,
            "actor": "cli",
        } | changes
        with pytest.raises(Rejected) as refused:
            create_staff(s, **values)
        assert code in refused.value.codes
    with guard.read_session() as s:
        assert s.scalar(select(func.count(StaffUser.id))) == 1


def _national_admin(s, username):
    return create_staff(
        s,
        username=username,
        full_name=username.title(),
        role=StaffRole.ADMIN,
        password=PASSWORD,
        prisons=[],
        national=True,
        now=NOW,
        actor="cli",
    )


def test_a_national_admin_covers_every_prison(db):
    with db.writing() as s:
        prison = make_prison(s)
        admin = _national_admin(s, "admin")
        assert admin.covers(prison.id)
        assert admin.covers(prison.id + 1000)


def test_sign_in_opens_a_session_whose_token_is_stored_only_as_a_hash(guard):
    signed = _sign_in(guard)
    with guard.read_session() as s:
        stored = s.scalar(select(StaffSession))
        assert stored.token_hash != signed.token
        assert signed.token not in stored.token_hash
        found = current_session(s, signed.token, NOW + timedelta(minutes=5), POLICY)
        assert found is not None
        assert found.user.username == "rosa.guardia"
        assert current_session(s, signed.token + "x", NOW, POLICY) is None
        assert current_session(s, None, NOW, POLICY) is None


def test_a_wrong_password_and_an_unknown_name_read_alike(guard):
    for attempt in ({"password": "no es la clave"}, {"username": "nadie"}):
        with pytest.raises(Rejected) as refused:
            _sign_in(guard, **attempt)
        assert refused.value.codes == {Code.SIGN_IN_FAILED}


def test_repeated_failures_lock_the_name_even_against_the_right_password(guard):
    for _ in range(POLICY.failures_per_pair):
        with pytest.raises(Rejected):
            _sign_in(guard, password="no es la clave", client="10.0.0.9")
    later = NOW + timedelta(minutes=1)
    with pytest.raises(Rejected) as locked:
        _sign_in(guard, client="10.0.0.9", now=later)  # the right password, too late
    assert locked.value.codes == {Code.SIGN_IN_LOCKED}
    assert locked.value.problems[0].params["minutes"] == 14
    assert _sign_in(guard, client="10.0.0.9", now=NOW + POLICY.window + timedelta(seconds=1)).token


def test_guessing_from_outside_cannot_lock_a_guard_out_of_the_gate(guard):
    for _ in range(POLICY.failures_per_pair):
        with pytest.raises(Rejected):
            _sign_in(guard, password="no es la clave", client="203.0.113.7")
    assert _sign_in(guard, client="10.0.0.1").token  # the gate's tablet still signs in


def test_guessing_one_name_from_many_addresses_locks_it_everywhere(guard):
    for n in range(POLICY.failures_per_user):
        with pytest.raises(Rejected):
            _sign_in(guard, password="no es la clave", client=f"203.0.113.{n}")
    with pytest.raises(Rejected) as locked:
        _sign_in(guard, client="10.0.0.1")
    assert locked.value.codes == {Code.SIGN_IN_LOCKED}


def test_strangers_cannot_lock_out_a_browser_that_signed_in_to_the_account_before(guard):
    """The gate's tablet (and an administrator's own computer) still signs in while strangers
    keep the name locked for everyone else."""
    device = _device()
    _locked_by_strangers(guard)
    assert _sign_in(guard, client="203.0.113.1", device=device).token


def test_a_remembered_browser_is_held_to_its_own_failures_only(guard):
    device = _device()
    for _ in range(POLICY.failures_per_pair):
        with pytest.raises(Rejected):
            _sign_in(guard, password="no es la clave", device=device)
    with pytest.raises(Rejected) as locked:
        _sign_in(guard, device=device)  # a stolen cookie guesses no more than a pair
    assert locked.value.codes == {Code.SIGN_IN_LOCKED}
    assert _sign_in(guard, device=_device()).token  # another remembered browser
    assert _sign_in(guard, client="10.0.0.1").token  # nor do its failures lock the name


def test_a_device_cookie_vouches_only_for_the_accounts_signed_in_on_it():
    def remember(cookie, username, key=KEY, today=TODAY):
        return staff.remember_device(cookie, key, username, today)

    def vouches(cookie, username, key=KEY, today=TODAY):
        return staff.remembered_device(cookie, key, username, today)

    cookie = remember(None, "rosa.guardia")
    assert "rosa" not in cookie  # a shared tablet does not list who used it
    assert vouches(cookie, "Rosa.Guardia ")
    assert vouches(cookie, "admin") is None
    assert vouches(cookie, "rosa.guardia", key="another key") is None
    device, entry = cookie.split("~")
    other = remember(None, "rosa.guardia").split("~")[0]
    assert vouches(f"{other}~{entry}", "rosa.guardia") is None
    day, mac = entry.split(".")
    assert vouches(f"{device}~{int(day) + 30}.{mac}", "rosa.guardia") is None  # its day is signed
    assert vouches("garbage", "rosa.guardia") is None
    assert vouches(None, "rosa.guardia") is None
    shared = remember(cookie, "admin")  # a tablet shared by a shift
    assert shared.split("~")[0] == device
    assert vouches(shared, "rosa.guardia") == device
    assert vouches(shared, "admin") == device
    for n in range(staff.DEVICE_ACCOUNTS):
        shared = remember(shared, f"guardia{n}")
    assert vouches(shared, "rosa.guardia") is None  # the oldest forgotten
    assert len(shared) < 4096  # a cookie browsers keep


def test_a_device_cookie_vouches_for_a_limited_time_from_the_last_sign_in():
    """A copy of the cookie (from a shared tablet) does not last for ever, whatever the
    browser keeps; signing in again renews the account's entry."""
    cookie = staff.remember_device(None, KEY, "rosa.guardia", TODAY)
    last = TODAY + timedelta(days=staff.DEVICE_DAYS)
    assert staff.remembered_device(cookie, KEY, "rosa.guardia", last)
    later = last + timedelta(days=1)
    assert staff.remembered_device(cookie, KEY, "rosa.guardia", later) is None
    renewed = staff.remember_device(cookie, KEY, "rosa.guardia", last)
    assert renewed.count("~") == 1  # the account's entry replaced, not added
    assert staff.remembered_device(renewed, KEY, "rosa.guardia", later)


def test_a_remembered_browsers_failures_are_counted_on_the_name(guard):
    """Guesses from a remembered browser (a stolen cookie) are seen on the name: with the
    strangers' they lock the name for everyone else, though never that browser."""
    device = _device()
    for _ in range(POLICY.failures_per_pair):
        with pytest.raises(Rejected):
            _sign_in(guard, password="no es la clave", device=device)
    for n in range(POLICY.failures_per_user - POLICY.failures_per_pair):
        with pytest.raises(Rejected):
            _sign_in(guard, password="no es la clave", client=f"203.0.113.{n}")
    with pytest.raises(Rejected) as locked:
        _sign_in(guard, client="10.0.0.1")
    assert locked.value.codes == {Code.SIGN_IN_LOCKED}
    assert _sign_in(guard, device=_device()).token  # another remembered browser


def test_strangers_locking_the_name_do_not_stop_a_signed_in_password_change(guard):
    signed = _sign_in(guard)
    _locked_by_strangers(guard)
    for _ in range(POLICY.failures_per_pair):
        with pytest.raises(Rejected) as wrong:
            _change(guard, signed.session, current="no es la clave")
        assert wrong.value.codes == {Code.WRONG_PASSWORD}
    with pytest.raises(Rejected) as locked:
        _change(guard, signed.session)  # the session's own guesses are bounded as a pair's
    assert locked.value.codes == {Code.SIGN_IN_LOCKED}
    assert _change(guard, _sign_in(guard, device=_device()).session).token  # another may


def test_an_administrators_password_reset_clears_the_names_failures(guard):
    with guard.writing() as s:
        _national_admin(s, "jefa")
    _locked_by_strangers(guard)
    _locked_by_strangers(guard, "nadie")
    with guard.writing() as s:
        admin = s.scalar(select(StaffUser).where(StaffUser.username == "jefa"))
        user = s.scalar(select(StaffUser).where(StaffUser.username == "rosa.guardia"))
        hashed = staff.password_hash("otra clave larga nueva")
        staff.reset_password(s, admin, user.id, hashed, now=NOW, origin="10.0.0.2")
    assert _sign_in(guard, password="otra clave larga nueva", client="203.0.113.1").token
    with pytest.raises(Rejected) as still:
        _sign_in(guard, username="nadie")  # only that name's failures are forgotten
    assert still.value.codes == {Code.SIGN_IN_LOCKED}


def test_an_unknown_name_costs_a_password_check_too(guard, monkeypatch):
    from visits import staff

    checked = []
    real = staff._verify
    monkeypatch.setattr(staff, "_verify", lambda user, pw: checked.append(user) or real(user, pw))
    with pytest.raises(Rejected):
        _sign_in(guard, username="nadie")
    assert checked == [None]  # verified against the stand-in hash: the same time as a user


def test_the_stand_in_hash_is_made_at_the_first_check_whoever_signs_in(guard):
    """Not at import: argon2's 64 MiB would be every web worker's peak memory. And for a known
    name too, so that the first check's extra hash says nothing about the name."""
    from visits import staff

    staff._dummy_hash.cache_clear()
    _sign_in(guard)
    assert staff._dummy_hash.cache_info().currsize == 1


def test_an_unknown_name_locks_the_same_way(guard):
    for _ in range(POLICY.failures_per_user):
        with pytest.raises(Rejected):
            _sign_in(guard, username="nadie")
    with pytest.raises(Rejected) as locked:
        _sign_in(guard, username="nadie")
    assert locked.value.codes == {Code.SIGN_IN_LOCKED}  # no way to tell it does not exist


def test_a_session_ends_when_idle_signed_out_or_the_account_is_deactivated(guard):
    signed = _sign_in(guard)
    with guard.read_session() as s:
        assert current_session(s, signed.token, NOW + POLICY.idle, POLICY) is not None
        idle = NOW + POLICY.idle + timedelta(seconds=1)
        assert current_session(s, signed.token, idle, POLICY) is None
    late = NOW + POLICY.lifetime + timedelta(seconds=1)
    with guard.writing() as s:
        session_id = s.scalar(select(StaffSession.id))
        touch(s, session_id, late - timedelta(minutes=1))  # busy until the very end
    with guard.read_session() as s:
        assert current_session(s, signed.token, late - timedelta(seconds=2), POLICY) is not None
        assert current_session(s, signed.token, late, POLICY) is None  # a shift at most
    second = _sign_in(guard)
    with guard.writing() as s:
        sign_out(s, current_session(s, second.token, NOW, POLICY), NOW)
    with guard.read_session() as s:
        assert current_session(s, second.token, NOW, POLICY) is None
    third = _sign_in(guard)
    with guard.writing() as s:
        s.scalar(select(StaffUser)).active = False
    with guard.read_session() as s:
        assert current_session(s, third.token, NOW, POLICY) is None
    with pytest.raises(Rejected) as refused:
        _sign_in(guard)
    assert refused.value.codes == {Code.SIGN_IN_FAILED}


def test_a_new_password_moves_this_session_to_a_new_token_without_lengthening_it(guard):
    signed = _sign_in(guard)
    other = _sign_in(guard, client="10.0.0.2")
    later = NOW + timedelta(hours=3)
    renewed = change_own_password(
        guard,
        signed.session,
        current=PASSWORD,
        new="otra clave larga de prueba",
        client="10.0.0.1",
        now=later,
        policy=POLICY,
    )
    assert renewed.token != signed.token
    with guard.read_session() as s:
        assert current_session(s, signed.token, later, POLICY) is None  # a copy of it is out
        assert current_session(s, other.token, later, POLICY) is None
        kept = current_session(s, renewed.token, later, POLICY)
        assert kept is not None
        assert kept.user.username == "rosa.guardia"
    # Still a shift from signing in at most, not from the change.
    late = NOW + POLICY.lifetime + timedelta(seconds=1)
    with guard.writing() as s:
        touch(s, kept.id, late - timedelta(minutes=1))
    with guard.read_session() as s:
        assert current_session(s, renewed.token, late - timedelta(seconds=2), POLICY) is not None
        assert current_session(s, renewed.token, late, POLICY) is None


NEW_PASSWORD = "otra clave larga de prueba"


def _live_session(db, signed):
    """The session as the access check found it, with its user loaded."""
    with db.read_session() as s:
        found = current_session(s, signed.token, NOW, POLICY)
        assert found is not None
        assert found.user.username == "rosa.guardia"
        return found


def _change(db, found, now=NOW + timedelta(seconds=1), current=PASSWORD):
    return change_own_password(
        db, found, current=current, new=NEW_PASSWORD, client="10.0.0.1", now=now, policy=POLICY
    )


def test_a_session_that_ends_while_its_password_is_checked_changes_nothing(guard):
    """Signed out in another tab while argon2 ran: no new session, the password stays."""
    found = _live_session(guard, _sign_in(guard))
    with guard.writing() as s:
        s.execute(update(StaffSession).values(ended_at=NOW))
    with pytest.raises(Rejected) as refused:
        _change(guard, found)
    assert refused.value.codes == {Code.SESSION_ENDED}
    with guard.read_session() as s:
        assert s.scalar(select(func.count()).where(StaffSession.ended_at.is_(None))) == 0
    assert _sign_in(guard, now=NOW + timedelta(seconds=2)).token  # the old password still works


def test_an_account_switched_off_while_its_password_is_checked_changes_nothing(guard):
    found = _live_session(guard, _sign_in(guard))
    with guard.writing() as s:
        s.scalar(select(StaffUser)).active = False
        s.execute(update(StaffSession).values(ended_at=NOW))
    with pytest.raises(Rejected) as refused:
        _change(guard, found)
    assert refused.value.codes == {Code.SESSION_ENDED}
    with guard.writing() as s:
        s.scalar(select(StaffUser)).active = True  # switched on again later
    with guard.read_session() as s:
        assert s.scalar(select(func.count()).where(StaffSession.ended_at.is_(None))) == 0


def test_a_sign_in_with_the_old_password_racing_a_change_opens_no_session(guard, monkeypatch):
    """The change holds its transaction open; a sign-in with the old password read the old
    hash before it committed. The account row makes them take turns: the sign-in then sees
    the new password and fails, rather than opening a session the change never ended."""
    found = _live_session(guard, _sign_in(guard))
    inside, release = threading.Event(), threading.Event()
    recorded = staff._account_event

    def held_open(*args, **kwargs):
        recorded(*args, **kwargs)
        inside.set()
        release.wait(10)

    monkeypatch.setattr(staff, "_account_event", held_open)
    outcome: dict[str, object] = {}

    def sign_in_meanwhile():
        try:
            outcome["signed"] = _sign_in(guard, client="10.9.9.9", now=NOW + timedelta(seconds=1))
        except Rejected as refused:
            outcome["refused"] = refused.codes

    changer = threading.Thread(target=lambda: outcome.setdefault("new", _change(guard, found)))
    changer.start()
    assert inside.wait(10)
    signer = threading.Thread(target=sign_in_meanwhile)
    signer.start()
    signer.join(1.5)  # it has checked the old password and waits for the account
    release.set()
    changer.join(10)
    signer.join(10)
    assert outcome.get("refused") == {Code.SIGN_IN_FAILED}
    with guard.read_session() as s:
        live = s.scalars(select(StaffSession).where(StaffSession.ended_at.is_(None))).all()
    assert [x.client for x in live] == ["10.0.0.1"]  # only the changed browser's new session
