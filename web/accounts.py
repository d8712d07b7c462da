"""Staff accounts of a prison, managed by its administrators, and every user's own password.

An administrator sees the accounts that serve their prison and may add one (guard, health or
administrator of this prison), switch one off or on, or give it a new password; they change
only accounts all of whose prisons they cover (see :func:`visits.staff.manages`). A new
password ends the account's sessions; so does switching it off. Passwords are hashed before
the write transaction opens (argon2 is slow by design)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from visits import staff
from visits.problems import Code, Problem, Rejected
from visits.staff import StaffRole, StaffUser
from web.deps import ClientKey, Now, ReadSession, WriteSession
from web.family import render
from web.forms import FormValues, RowId
from web.staff import (
    AnyStaff,
    SignInRequired,
    Staff,
    access,
    set_session_cookie,
    sign_in_policy,
)

router = APIRouter(prefix="/staff", include_in_schema=False)
Admin = access(StaffRole.ADMIN)


def _path(who: Staff, **query: str) -> str:
    path = f"/staff/p/{who.prison.code}/accounts"  # type: ignore[union-attr]
    return path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def _page(
    request: Request,
    session: Session,
    who: Staff,
    problems: list[Problem] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    accounts = staff.accounts_at(session, who.prison)  # type: ignore[arg-type]
    return render(
        request,
        "staff_accounts.html",
        status,
        who=who,
        prison=who.prison,
        accounts=[(a, staff.manages(who.user, a)) for a in accounts],
        roles=StaffRole,
        problems=problems or [],
        values=values or {},
        done=request.query_params.get("done", ""),
    )


@router.get("/p/{prison}/accounts", response_class=HTMLResponse)
def accounts_page(request: Request, who: Admin, session: ReadSession) -> Response:
    """The accounts serving this prison, and the form that adds one."""
    return _page(request, session, who)


def _again(request: Request, session: Session, who: Staff, problems, values) -> Response:
    session.close()
    with request.app.state.db.read_session() as reading:
        status = 403 if Code.FORBIDDEN in {p.code for p in problems} else 422
        return _page(request, reading, who, list(problems), values, status)


@router.post("/p/{prison}/accounts")
def create_account(
    request: Request,
    who: Admin,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    values: FormValues,
) -> Response:
    """A new account for this prison (administrators of this prison may add administrators)."""
    role = next((r for r in StaffRole if r.value == values.get("role")), None)
    shown = {k: v for k, v in values.items() if "password" not in k}
    password = values.get("password", "")
    # Every mistake at once, read before the write transaction takes its lock and before the
    # password is hashed (argon2 is slow); the account is checked again under the lock.
    with request.app.state.db.read_session() as reading:
        problems = staff.new_account_problems(
            reading,
            username=values.get("username", ""),
            full_name=values.get("full_name", ""),
            role=role,
            password=password,
            prisons=[who.prison],  # type: ignore[list-item]
        )
    if password != values.get("password_again", ""):
        problems.append(Problem(Code.PASSWORDS_DIFFER, "password"))
    if problems or role is None:
        return _again(request, session, who, problems, shown)
    hashed = staff.password_hash(password)
    try:
        staff.create_staff(
            session,
            username=values.get("username", ""),
            full_name=values.get("full_name", ""),
            role=role,
            password=password,
            prisons=[session.merge(who.prison, load=False)],  # type: ignore[arg-type]
            now=now,
            actor=who.user.actor,
            origin=client,
            hashed=hashed,
        )
    except Rejected as rejected:
        return _again(request, session, who, rejected.problems, shown)
    session.commit()
    return RedirectResponse(_path(who, done="created"), status_code=303)


def _change(
    request: Request, session: Session, who: Staff, done: str, act: Callable[[StaffUser], object]
) -> Response:
    try:
        act(who.user)
    except Rejected as rejected:
        return _again(request, session, who, rejected.problems, {})
    session.commit()
    return RedirectResponse(_path(who, done=done), status_code=303)


@router.post("/p/{prison}/accounts/{user_id}/deactivate")
def deactivate(
    request: Request, user_id: RowId, who: Admin, session: WriteSession, now: Now, client: ClientKey
) -> Response:
    """Switch the account off: its sessions end at once."""
    return _change(
        request, session, who, "deactivated",
        lambda admin: staff.set_active(session, admin, user_id, False, now=now, origin=client),
    )  # fmt: skip


@router.post("/p/{prison}/accounts/{user_id}/activate")
def activate(
    request: Request, user_id: RowId, who: Admin, session: WriteSession, now: Now, client: ClientKey
) -> Response:
    return _change(
        request, session, who, "activated",
        lambda admin: staff.set_active(session, admin, user_id, True, now=now, origin=client),
    )  # fmt: skip


@router.post("/p/{prison}/accounts/{user_id}/password")
def reset_password(
    request: Request,
    user_id: RowId,
    who: Admin,
    session: WriteSession,
    now: Now,
    client: ClientKey,
    values: FormValues,
) -> Response:
    """Give the account a new password (to pass on in person): its sessions end. Typed twice,
    as a new account's is: a slip in a password nobody sees would sign the user out everywhere
    and lock them out with it, until an administrator is found again."""
    password = values.get("password", "")
    try:
        if password != values.get("password_again", ""):
            raise Rejected([Problem(Code.PASSWORDS_DIFFER, "password")])
        hashed = staff.password_hash(password)
    except Rejected as rejected:
        # Beside this account's own password field, not the new account's.
        field = f"password-{user_id}"
        problems = [Problem(p.code, field, p.params) for p in rejected.problems]
        return _again(request, session, who, problems, {})
    return _change(
        request, session, who, "password",
        lambda admin: staff.reset_password(session, admin, user_id, hashed, now=now, origin=client),
    )  # fmt: skip


@router.get("/password", response_class=HTMLResponse)
def password_page(request: Request, who: AnyStaff) -> Response:
    return render(request, "staff_password.html", who=who, done=request.query_params.get("done"))


@router.post("/password", response_class=HTMLResponse)
def change_password(
    request: Request, who: AnyStaff, now: Now, client: ClientKey, values: FormValues
) -> Response:
    """Change one's own password, proven by the current one; one's other sessions end, and
    this one goes on under a new token."""
    new = values.get("new_password", "")
    try:
        if new != values.get("new_password_again", ""):
            raise Rejected([Problem(Code.PASSWORDS_DIFFER, "new_password")])
        signed = staff.change_own_password(
            request.app.state.db,
            who.session,
            current=values.get("current_password", ""),
            new=new,
            client=client,
            now=now,
            policy=sign_in_policy(request),
        )
    except Rejected as rejected:
        if Code.SESSION_ENDED in rejected.codes:
            raise SignInRequired() from None  # signed out meanwhile: nothing changed
        status = 429 if Code.SIGN_IN_LOCKED in rejected.codes else 422
        return render(
            request, "staff_password.html", status, who=who, problems=list(rejected.problems)
        )
    response = RedirectResponse("/staff/password?done=1", status_code=303)
    set_session_cookie(request, response, signed.token)  # the old token ended with the others
    return response
