"""Staff accounts: who may see and change what, at which prisons, and their signed-in sessions.

Roles: ``guard`` (the gate: the day's visitor list and check-in), ``health`` (health
advisories) and ``admin`` (calendars, closures, roster, bans, accounts, broadcasts, reports).
Every account is scoped to one or more prisons; only an admin may be national (every prison).

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile) and
re-hashed at sign-in when those defaults grow. Failed sign-ins are counted per user name and
client, per user name and per client (see :class:`SignInPolicy`), for names known or not, so a
lockout says nothing about which accounts exist; a locked name stays locked for the rest of
the window whatever password is tried, except on a browser that has signed in to that account
before (see :func:`remember_device`). Sessions live in the database, so signing out or a
deactivated account ends them at once on every worker; only a hash of the session's token is
stored, and a session ends after ``idle`` without a request or ``lifetime`` after sign-in.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, Column, ForeignKey, String, Table, delete, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from visits import audit, throttle
from visits.base import Base, UTCDateTime, str_enum
from visits.db import Database
from visits.prison import Prison
from visits.problems import Code, Problem, Rejected

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,63}")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256  # argon2 takes any length; a megabyte "password" is an attack
# Only touch a session's last-seen time this often: a page view need not be a write.
TOUCH_EVERY = timedelta(minutes=1)
# Accounts a browser is remembered for (a gate's shared tablet serves a shift's guards), and
# for how many days after it last signed in to each.
DEVICE_ACCOUNTS = 20
DEVICE_DAYS = 180

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user name is unknown, so that an unknown name costs as much
    time as a wrong password (no way to tell from the clock which accounts exist). Made at the
    first check, not at import: hashing takes argon2's 64 MiB, which was every web worker's
    peak memory even when no staff ever signed in."""
    return _hasher.hash(secrets.token_urlsafe(16))


class StaffRole(StrEnum):
    GUARD = "guard"
    HEALTH = "health"
    ADMIN = "admin"


staff_prison = Table(
    "staff_prison",
    Base.metadata,
    Column("user_id", ForeignKey("staff_user.id", ondelete="CASCADE"), primary_key=True),
    Column("prison_id", ForeignKey("prison.id", ondelete="CASCADE"), primary_key=True),
)


class StaffUser(Base):
    __tablename__ = "staff_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[StaffRole] = mapped_column(str_enum(StaffRole))
    # Every prison, now and later (admins only).
    national: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    prisons: Mapped[list[Prison]] = relationship(
        secondary=staff_prison, order_by=Prison.name, lazy="selectin"
    )

    def covers(self, prison_id: int) -> bool:
        """Whether this account may act at that prison."""
        return self.national or any(p.id == prison_id for p in self.prisons)

    @property
    def actor(self) -> str:
        """How the audit trail names this user."""
        return f"staff:{self.username}"


class StaffSession(Base):
    __tablename__ = "staff_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"))
    # Carried by every form of this session and checked on every change (CSRF).
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    client: Mapped[str] = mapped_column(String(64), default="")

    user: Mapped[StaffUser] = relationship(lazy="joined")


@dataclass(frozen=True)
class SignInPolicy:
    """Failed sign-ins allowed per window: of one user name from one client (the lockout a
    person meets), of one user name from anywhere (guessing from many addresses), and of one
    client (guessing many names). A browser that has signed in to the account before (see
    :func:`remember_device`) is held only to ``failures_per_pair`` of its own for that account.
    """

    failures_per_pair: int = 5
    failures_per_user: int = 50
    failures_per_client: int = 30
    window: timedelta = timedelta(minutes=15)
    idle: timedelta = timedelta(minutes=30)
    # However active: a session lasts a shift at most.
    lifetime: timedelta = timedelta(hours=12)


@dataclass(frozen=True)
class SignedIn:
    session: StaffSession
    token: str  # for the cookie only: the database keeps its hash


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_username(raw: str) -> str:
    return raw.strip().lower()


def password_problems(password: str) -> list[Problem]:
    """Why this password may not be used, if it may not: too short, too long, or nothing but
    spaces (long enough to pass, and the first thing anyone would guess)."""
    if password and not password.strip():
        return [Problem(Code.PASSWORD_BLANK, "password")]
    if len(password) < MIN_PASSWORD_LENGTH:
        return [Problem(Code.PASSWORD_TOO_SHORT, "password", {"min": MIN_PASSWORD_LENGTH})]
    if len(password) > MAX_PASSWORD_LENGTH:
        return [Problem(Code.TOO_LONG, "password", {"max": MAX_PASSWORD_LENGTH})]
    return []


def new_account_problems(
    session: Session,
    *,
    username: str,
    full_name: str,
    role: StaffRole | None,
    password: str,
    prisons: list[Prison],
    national: bool = False,
) -> list[Problem]:
    """Every reason a new account may not be made as asked, all at once (a form that showed
    one at a time would send its user round once per mistake). ``role`` is ``None`` when the
    form's choice was not a role."""
    username = normalise_username(username)
    problems = []
    if not USERNAME.fullmatch(username):
        problems.append(Problem(Code.INVALID_USERNAME, "username"))
    elif session.scalar(select(StaffUser.id).where(StaffUser.username == username)):
        problems.append(Problem(Code.USERNAME_TAKEN, "username"))
    if not full_name.strip():
        problems.append(Problem(Code.REQUIRED, "full_name"))
    elif len(full_name) > 100:
        problems.append(Problem(Code.TOO_LONG, "full_name", {"max": 100}))
    if role is None:
        problems.append(Problem(Code.INVALID_CHOICE, "role"))
    problems += password_problems(password)
    if national and role is not StaffRole.ADMIN:
        problems.append(Problem(Code.NATIONAL_ADMINS_ONLY, "national"))
    if not national and not prisons:
        problems.append(Problem(Code.PRISON_REQUIRED, "prisons"))
    return problems


def create_staff(
    session: Session,
    *,
    username: str,
    full_name: str,
    role: StaffRole,
    password: str,
    prisons: list[Prison],
    national: bool = False,
    now: datetime,
    actor: str,
    origin: str = "",
    hashed: str | None = None,
) -> StaffUser:
    """A new account, or :class:`Rejected` with every reason why not. A web request gives the
    password already ``hashed`` (by :func:`password_hash`, before its write transaction)."""
    username = normalise_username(username)
    problems = new_account_problems(
        session,
        username=username,
        full_name=full_name,
        role=role,
        password=password,
        prisons=prisons,
        national=national,
    )
    if problems:
        raise Rejected(problems)
    user = StaffUser(
        username=username,
        full_name=full_name.strip(),
        role=role,
        national=national,
        password_hash=hashed or _hasher.hash(password),
        active=True,
        created_at=now,
        updated_at=now,
        prisons=[] if national else list(prisons),
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        at=now,
        actor=actor,
        action="staff.created",
        entity="staff_user",
        entity_id=user.username,
        details={
            "role": role.value,
            "national": national,
            "prisons": [p.code for p in user.prisons],
        },
        origin=origin,
    )
    return user


# --- Administrators managing accounts --------------------------------------------------------


def manages(admin: StaffUser, user: StaffUser) -> bool:
    """Whether ``admin`` may change ``user``'s account: a national administrator any account;
    another only accounts all of whose prisons they cover (an account that also serves a
    prison they do not is not theirs to switch off), never a national one, never their own
    (nobody locks themselves out by a slip)."""
    if admin.role is not StaffRole.ADMIN or admin.id == user.id:
        return False
    if admin.national:
        return True
    return not user.national and all(admin.covers(p.id) for p in user.prisons)


def accounts_at(session: Session, prison: Prison) -> list[StaffUser]:
    """The accounts that serve this prison by name (national ones serve it too, but belong to
    national administrators), by role and name."""
    return list(
        session.scalars(
            select(StaffUser)
            .join(staff_prison, staff_prison.c.user_id == StaffUser.id)
            .where(staff_prison.c.prison_id == prison.id)
            .order_by(StaffUser.role, StaffUser.username)
        )
    )


def password_hash(password: str) -> str:
    """The hash to store, or :class:`Rejected`. Slow by design (argon2): call it outside any
    write transaction."""
    if problems := password_problems(password):
        raise Rejected(problems)
    return _hasher.hash(password)


def _managed(session: Session, admin: StaffUser, user_id: int) -> StaffUser:
    user = _locked_user(session, user_id)
    if user is None or not manages(admin, user):
        raise Rejected([Problem(Code.FORBIDDEN)])
    return user


def _locked_user(session: Session, user_id: int) -> StaffUser | None:
    """The account as it is now, locked until commit: a sign-in, a password change and an
    administrator's change to the same account take turns (on PostgreSQL; SQLite has one
    writer), so none of them opens or keeps a session the other has just ended."""
    return session.get(StaffUser, user_id, populate_existing=True, with_for_update=True)


def _end_sessions(session: Session, user_id: int, now: datetime) -> None:
    session.execute(
        update(StaffSession)
        .where(StaffSession.user_id == user_id, StaffSession.ended_at.is_(None))
        .values(ended_at=now)
    )


def _account_event(
    session: Session, actor: str, action: str, user: StaffUser, now: datetime, origin: str
) -> None:
    audit.record(
        session,
        at=now,
        actor=actor,
        action=action,
        entity="staff_user",
        entity_id=user.username,
        origin=origin,
    )


def set_active(
    session: Session,
    admin: StaffUser,
    user_id: int,
    active: bool,
    *,
    now: datetime,
    origin: str,
) -> StaffUser:
    """Switch an account off (its sessions end at once, on every worker) or on again."""
    user = _managed(session, admin, user_id)
    if user.active == active:
        return user
    user.active = active
    user.updated_at = now
    if not active:
        _end_sessions(session, user.id, now)
    action = "staff.reactivated" if active else "staff.deactivated"
    _account_event(session, admin.actor, action, user, now, origin)
    return user


def reset_password(
    session: Session, admin: StaffUser, user_id: int, hashed: str, *, now: datetime, origin: str
) -> StaffUser:
    """A new password an administrator gives (hashed by :func:`password_hash`): every session
    of the account ends, so whoever knew the old one is out, and its failed sign-ins are
    forgotten, so that the person it is given to can use it at once (a lock from strangers'
    guesses otherwise outlives the reset)."""
    user = _managed(session, admin, user_id)
    user.password_hash = hashed
    user.updated_at = now
    _end_sessions(session, user.id, now)
    _forget_failures(session, user.username)
    _account_event(session, admin.actor, "staff.password_reset", user, now, origin)
    return user


def change_own_password(
    db: Database,
    staff_session: StaffSession,
    *,
    current: str,
    new: str,
    client: str,
    now: datetime,
    policy: SignInPolicy,
) -> SignedIn:
    """A signed-in user's new password, proven by the current one, or :class:`Rejected`.

    Wrong current passwords lock this session's changes as a sign-in's lock a pair (a stolen
    session cannot guess its way to the password), and strangers' failures on the name do not
    lock them (see :func:`remember_device`); both argon2 steps run outside any write
    transaction. Every session of the user ends, this one included: it goes on under a new
    token (returned for the cookie), so whoever copied the old one is out too. The new token
    keeps the old one's start, so a password change never lengthens a session."""
    user = staff_session.user
    keys = _keys(user.username, client[:64], f"session:{staff_session.id}")
    with db.read_session() as session:
        if (locked := _lockout(session, keys, now, policy, lock=False)) is not None:
            raise Rejected([locked])
    problems = password_problems(new)
    if problems:
        raise Rejected([Problem(p.code, "new_password", p.params) for p in problems])
    # Said before the current one is checked: it tells nothing not typed in the same form.
    if new == current:
        raise Rejected([Problem(Code.PASSWORD_UNCHANGED, "new_password")])
    if not _verify(user, current[:MAX_PASSWORD_LENGTH]):
        with db.writing() as session:
            throttle.record_failure(session, keys.values(), now)
        raise Rejected([Problem(Code.WRONG_PASSWORD, "current_password")])
    hashed = _hasher.hash(new)
    with db.writing() as session:
        fresh = _locked_user(session, user.id)
        if fresh is None or fresh.password_hash != user.password_hash:
            raise Rejected([Problem(Code.WRONG_PASSWORD, "current_password")])
        # Signed out, or switched off, while the password was being checked: no change.
        live = session.execute(
            select(StaffSession.ended_at)
            .where(StaffSession.id == staff_session.id)
            .with_for_update()
        ).first()
        if not fresh.active or live is None or live.ended_at is not None:
            raise Rejected([Problem(Code.SESSION_ENDED)])
        fresh.password_hash = hashed
        fresh.updated_at = now
        _end_sessions(session, fresh.id, now)
        _account_event(session, fresh.actor, "staff.password_changed", fresh, now, client)
        return _new_session(session, fresh, client, now, started=staff_session.created_at)


def _keys(username: str, client: str, own: str | None = None) -> dict[str, str]:
    """The throttle keys a password check of ``username`` counts against: one that has a key
    of its ``own`` (``device:<id>``, a remembered browser, see :func:`remember_device`;
    ``session:<id>``, a signed-in user's password change) only that one, held to the pair's
    limit, so that strangers' failures on the name never lock it; anyone else the pair, the
    name and the client."""
    if own is not None:
        return {"pair": f"staff-login:{own}:{username}"}
    return {
        "pair": f"staff-login:pair:{client}:{username}",
        "user": f"staff-login:user:{username}",
        "client": f"staff-login:client:{client}",
    }


def remember_device(cookie: str | None, secret: str, username: str, today: date) -> str:
    """The device cookie to set once ``username`` has signed in with its password here.

    Decision (OWASP's "device cookies"): failures from anywhere lock a name, so that nobody
    guesses a password from many addresses; but strangers could then keep the gate's guard or
    an administrator locked out during visiting hours. A browser that has signed in to the
    account before is not held to that lock, only to its own failures for that account
    (``failures_per_pair`` a window). Nobody gets one without the password, so guessing stays
    bounded: the pair, name and client limits for everyone else, and the pair limit per
    stolen cookie. The cookie holds a random id for the browser and, for each of its last
    ``DEVICE_ACCOUNTS`` accounts (a gate's tablet is shared), the day it last signed in and a
    MAC of id, name and day under the service's key, not the name: nothing is stored, a shared
    tablet does not list who used it, and nobody without the key makes an entry. An entry
    older than ``DEVICE_DAYS`` vouches for nothing, whatever the browser keeps: a copied cookie
    does not last for ever. A remembered browser's failures still count on the name too (see
    :func:`sign_in`): its guesses are seen, though they alone never lock it out."""
    device, entries = _device_entries(cookie)
    device = device or secrets.token_urlsafe(16)
    kept = [
        (day, mac)
        for day, mac in entries
        if _fresh(day, today) and not _vouches(secret, device, username, day, mac)
    ][-(DEVICE_ACCOUNTS - 1) :]
    mine = (today.toordinal(), _device_mac(secret, device, username, today.toordinal()))
    return "~".join([device, *(f"{day}.{mac}" for day, mac in [*kept, mine])])


def remembered_device(cookie: str | None, secret: str, username: str, today: date) -> str | None:
    """The browser's id if its device cookie vouches for ``username``, else ``None``."""
    device, entries = _device_entries(cookie)
    if device is None:
        return None
    name = normalise_username(username)[:64]
    vouched = any(
        _fresh(day, today) and _vouches(secret, device, name, day, mac) for day, mac in entries
    )
    return device if vouched else None


_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{22}")


_DEVICE_ENTRY = re.compile(r"([0-9]{1,7})\.([A-Za-z0-9_-]{22})")


def _device_entries(cookie: str | None) -> tuple[str | None, list[tuple[int, str]]]:
    """The browser's id in a device cookie and its accounts' entries (the day as an ordinal,
    the MAC), oldest first; ``None`` and none for anything else."""
    device, *entries = (cookie or "")[:4096].split("~")
    if not _DEVICE_ID.fullmatch(device):
        return None, []
    read = (_DEVICE_ENTRY.fullmatch(entry) for entry in entries)
    return device, [(int(m[1]), m[2]) for m in read if m is not None]


def _fresh(day: int, today: date) -> bool:
    return 0 <= today.toordinal() - day <= DEVICE_DAYS


def _vouches(secret: str, device: str, username: str, day: int, mac: str) -> bool:
    return hmac.compare_digest(_device_mac(secret, device, username, day), mac)


def _device_mac(secret: str, device: str, username: str, day: int) -> str:
    message = f"staff-device:{device}:{username}:{day}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def _forget_failures(session: Session, username: str) -> None:
    """Clear the failed sign-ins counted against this name (from any client or browser)."""
    key = throttle.ThrottleHit.key
    session.execute(
        delete(throttle.ThrottleHit).where(
            or_(
                key == _keys(username, "")["user"],
                *(
                    key.startswith(f"staff-login:{kind}:")
                    & key.endswith(f":{username}", autoescape=True)
                    for kind in ("pair", "device", "session")
                ),
            )
        )
    )


def _lockout(
    session: Session, keys: dict[str, str], now: datetime, policy: SignInPolicy, *, lock: bool
) -> Problem | None:
    hits = throttle.recent(session, keys.values(), policy.window, now, lock=lock)
    limits = {
        "pair": policy.failures_per_pair,
        "user": policy.failures_per_user,
        "client": policy.failures_per_client,
    }
    wait = max(throttle.wait(hits[key], limits[k], policy.window, now) for k, key in keys.items())
    if not wait:
        return None
    return Problem(Code.SIGN_IN_LOCKED, None, {"minutes": throttle.minutes(wait)})


def sign_in(
    db: Database,
    *,
    username: str,
    password: str,
    client: str,
    now: datetime,
    policy: SignInPolicy,
    device: str | None = None,
) -> SignedIn:
    """Check the password and open a session, or raise :class:`Rejected` with one neutral
    problem (wrong name and wrong password read alike) or the minutes left of a lockout.
    ``device`` is the browser's id if it has signed in to this name before (see
    :func:`remembered_device`): then only that browser's own failures lock it.

    The password is checked outside any write transaction: argon2 takes a fifth of a second
    by design, and holding the write lock that long would stall every booking. The lockout is
    checked before (read only) and again under the lock, where a failure is recorded and
    committed."""
    username = normalise_username(username)[:64]
    keys = _keys(username, client[:64], None if device is None else f"device:{device}")
    with db.read_session() as session:
        if (locked := _lockout(session, keys, now, policy, lock=False)) is not None:
            raise Rejected([locked])  # not even a right password opens it; nothing counted
        user = session.scalar(select(StaffUser).where(StaffUser.username == username))
    usable = user if user is not None and user.active else None
    right = _verify(usable, password[:MAX_PASSWORD_LENGTH])
    rehashed = None
    if right and usable is not None and _hasher.check_needs_rehash(usable.password_hash):
        rehashed = _hasher.hash(password)  # argon2's defaults grew; hashed outside the lock
    signed = None
    with db.writing() as session:
        if (locked := _lockout(session, keys, now, policy, lock=True)) is not None:
            raise Rejected([locked])
        if right and usable is not None:
            # Deactivated or given a new password since it was read: not this password.
            signed = _open_session(session, usable, rehashed, client, now)
        if signed is None:
            # A remembered browser's failures count on the name as well: never checked
            # against it (strangers must not lock that browser out), but seen, and counted
            # toward the name's lock for everyone else.
            name = _keys(username, "")["user"]
            throttle.record_failure(session, {*keys.values(), name}, now)
    if signed is None:
        raise Rejected([Problem(Code.SIGN_IN_FAILED)])
    return signed


def _open_session(
    session: Session, verified: StaffUser, rehashed: str | None, client: str, now: datetime
) -> SignedIn | None:
    """A session for the user just verified, if the account is unchanged since."""
    user = _locked_user(session, verified.id)
    if user is None or not user.active or user.password_hash != verified.password_hash:
        return None
    if rehashed is not None:
        user.password_hash = rehashed
    user.last_login_at = now
    signed = _new_session(session, user, client, now, started=now)
    audit.record(
        session,
        at=now,
        actor=user.actor,
        action="staff.signed_in",
        entity="staff_user",
        entity_id=user.username,
        origin=client,
    )
    session.flush()
    return signed


def _new_session(
    session: Session, user: StaffUser, client: str, now: datetime, *, started: datetime
) -> SignedIn:
    """A new session row for ``user``; the token itself only goes to the cookie."""
    token = secrets.token_urlsafe(32)
    staff_session = StaffSession(
        token_hash=_token_hash(token),
        user=user,
        csrf_token=secrets.token_urlsafe(32),
        created_at=started,
        last_seen_at=now,
        client=client[:64],
    )
    session.add(staff_session)
    return SignedIn(staff_session, token)


def _verify(user: StaffUser | None, password: str) -> bool:
    """Whether ``password`` is the user's; with no user, the same work ends in ``False``."""
    dummy = _dummy_hash()  # whoever asks: the first check's extra hash must not tell names apart
    stored = user.password_hash if user is not None else dummy
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
    return user is not None


def current_session(
    session: Session, token: str | None, now: datetime, policy: SignInPolicy
) -> StaffSession | None:
    """The live session this cookie token opens; ``None`` when the token is unknown, signed
    out, idle too long, older than a shift, or its account deactivated. Read only: see
    :func:`touch`."""
    if not token or len(token) > 128:
        return None
    found = session.scalar(
        select(StaffSession).where(StaffSession.token_hash == _token_hash(token))
    )
    if found is None or found.ended_at is not None or not found.user.active:
        return None
    if now - found.last_seen_at > policy.idle or now - found.created_at > policy.lifetime:
        return None
    return found


def needs_touch(staff_session: StaffSession, now: datetime) -> bool:
    return now - staff_session.last_seen_at >= TOUCH_EVERY


def touch(session: Session, staff_session_id: int, now: datetime) -> None:
    """Seen now: the idle time counts again from here."""
    session.execute(
        update(StaffSession).where(StaffSession.id == staff_session_id).values(last_seen_at=now)
    )


def end_session(session: Session, token: str, now: datetime, origin: str = "") -> None:
    """Sign out the session a cookie names, if it is still live."""
    found = session.scalar(
        select(StaffSession).where(
            StaffSession.token_hash == _token_hash(token[:128]), StaffSession.ended_at.is_(None)
        )
    )
    if found is not None:
        sign_out(session, found, now, origin)


def sign_out(
    session: Session, staff_session: StaffSession, now: datetime, origin: str = ""
) -> None:
    staff_session.ended_at = now
    audit.record(
        session,
        at=now,
        actor=staff_session.user.actor,
        action="staff.signed_out",
        entity="staff_user",
        entity_id=staff_session.user.username,
        origin=origin,
    )
