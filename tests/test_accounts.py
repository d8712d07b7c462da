"""Administrators manage the staff accounts of their prison; everyone changes their own
password. On each database."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.staffing import STAFF_PASSWORD, make_staff, sign_in, staff_token
from tests.test_pages import text
from visits import staff
from visits.audit import AuditEvent
from visits.problems import Code, Problem, Rejected
from visits.staff import StaffRole, StaffUser
from web.staff import STAFF_COOKIE

PAGE = "/staff/p/QUENCORO/accounts"
NEW_PASSWORD = "otra clave bastante larga"


@pytest.fixture
def accounts(make_client, db):
    """Quencoro's administrator signed in; a guard of Quencoro signed in on another browser;
    a guard of both prisons; a guard of the women's prison only."""
    make_staff(db, "admin", StaffRole.ADMIN)
    make_staff(db, "guardia", StaffRole.GUARD)
    make_staff(db, "guardia.doble", StaffRole.GUARD, ("QUENCORO", "MUJERES-CUSCO"))
    make_staff(db, "guardia.mujeres", StaffRole.GUARD, ("MUJERES-CUSCO",))
    admin, guard = make_client(), make_client()
    assert sign_in(admin, "admin").status_code == 303
    assert sign_in(guard, "guardia").status_code == 303
    return admin, guard


def _id(db, username: str) -> int:
    with db.read_session() as s:
        return s.scalar(select(StaffUser.id).where(StaffUser.username == username))


def _post(client, path, **data):
    return client.post(
        f"{PAGE}{path}", data={"csrf_token": staff_token(client), **data}, follow_redirects=False
    )


def change_password(client, current, new=NEW_PASSWORD, again=None):
    """One's own password change, as the form sends it."""
    return client.post(
        "/staff/password",
        data={
            "csrf_token": staff_token(client),
            "current_password": current,
            "new_password": new,
            "new_password_again": new if again is None else again,
        },
        follow_redirects=False,
    )


def _signed_in(client) -> bool:
    return client.get("/staff", follow_redirects=False).status_code == 200


def test_an_administrator_sees_the_accounts_of_the_prison_and_which_are_theirs(accounts):
    admin, _ = accounts
    page = admin.get(PAGE)
    assert page.status_code == 200
    shown = text(page)
    assert "guardia Guardia Guardia Activa Desactivar" in shown
    assert "guardia.doble Guardia.Doble Guardia Activa También sirve a otros penales" in shown
    assert "admin Admin Administrador(a) Activa Tu propia cuenta" in shown
    assert "guardia.mujeres" not in shown


def test_an_administrator_adds_an_account_for_the_prison(accounts, make_client, db):
    admin, _ = accounts
    form = {"username": "Rosa.H", "full_name": "Rosa Huamán", "role": "guard"}
    done = _post(admin, "", **form, password=NEW_PASSWORD, password_again=NEW_PASSWORD)
    assert done.status_code == 303
    assert "Cuenta creada" in text(admin.get(done.headers["location"]))
    with db.read_session() as s:
        rosa = s.scalar(select(StaffUser).where(StaffUser.username == "rosa.h"))
        assert [p.code for p in rosa.prisons] == ["QUENCORO"]
        assert rosa.role is StaffRole.GUARD
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "staff.created"))
        assert (event.actor, event.origin) == ("staff:admin", "testclient")
    assert sign_in(make_client(), "rosa.h", NEW_PASSWORD).status_code == 303


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"password_again": "otra cosa distinta"}, "Las dos contraseñas nuevas no son iguales"),
        ({"password": "corta", "password_again": "corta"}, "al menos 12"),
        ({"username": "guardia"}, "ya está en uso"),
        ({"username": "x"}, "De 3 a 64"),
        ({"role": "director"}, "Elige una de las opciones"),
        ({"full_name": " "}, "Completa este dato"),
    ],
)
def test_an_account_that_cannot_be_made_changes_nothing(accounts, db, form, expected):
    admin, _ = accounts
    data = {"username": "rosa", "full_name": "Rosa", "role": "guard"}
    data |= {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD} | form
    answer = _post(admin, "", **data)
    assert answer.status_code == 422
    assert expected in text(answer)
    assert NEW_PASSWORD not in answer.text  # a password is never sent back
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(StaffUser)) == 4


def test_a_new_account_form_shows_every_mistake_at_once(accounts, db):
    admin, _ = accounts
    answer = _post(
        admin, "", username="guardia", full_name="", role="director",
        password="corta", password_again="otra",
    )  # fmt: skip
    assert answer.status_code == 422
    shown = text(answer)
    for expected in (
        "ya está en uso",
        "Completa este dato",
        "Elige una de las opciones",
        "al menos 12",
        "Las dos contraseñas nuevas no son iguales",
    ):
        assert expected in shown
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(StaffUser)) == 4


def test_switching_an_account_off_signs_it_out_everywhere_and_on_again_lets_it_in(
    accounts, make_client, db
):
    admin, guard = accounts
    guard_id = _id(db, "guardia")
    assert _post(admin, f"/{guard_id}/deactivate").status_code == 303
    assert not _signed_in(guard)
    assert sign_in(make_client(), "guardia").status_code == 401
    assert _post(admin, f"/{guard_id}/activate").status_code == 303
    assert sign_in(make_client(), "guardia").status_code == 303
    with db.read_session() as s:
        actions = s.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.entity_id == "guardia")
            .order_by(AuditEvent.id)
        ).all()
    assert "staff.deactivated" in actions
    assert "staff.reactivated" in actions


def test_a_new_password_from_the_administrator_ends_the_old_one_and_its_sessions(
    accounts, make_client, db
):
    admin, guard = accounts
    guard_id = _id(db, "guardia")
    short = _post(admin, f"/{guard_id}/password", password="corta", password_again="corta")
    assert short.status_code == 422
    # Said at that account's form, and the summary names the account, not "Add an account".
    assert f'id="password-{guard_id}-error"' in short.text
    assert f'aria-describedby="password-{guard_id}-error"' in short.text
    assert 'id="password-error"' not in short.text
    assert f'href="#password-{guard_id}">Nueva contraseña para guardia: ' in short.text
    assert _signed_in(guard)
    slip = _post(admin, f"/{guard_id}/password", password=NEW_PASSWORD, password_again="x" * 12)
    assert slip.status_code == 422  # a slip nobody saw would have locked the guard out
    assert f'href="#password-{guard_id}">Nueva contraseña para guardia: ' in slip.text
    assert "no son iguales" in text(slip)
    assert _signed_in(guard)
    assert sign_in(make_client(), "guardia", NEW_PASSWORD).status_code == 401
    done = _post(admin, f"/{guard_id}/password", password=NEW_PASSWORD, password_again=NEW_PASSWORD)
    assert done.status_code == 303
    assert not _signed_in(guard)
    assert sign_in(make_client(), "guardia", STAFF_PASSWORD).status_code == 401
    assert sign_in(make_client(), "guardia", NEW_PASSWORD).status_code == 303


def test_a_password_of_only_spaces_is_refused_everywhere(accounts, make_client, db):
    """Twelve spaces are long enough, and the first thing anyone would try."""
    admin, guard = accounts
    for client in accounts:
        client.get("/staff?lang=en")  # the language is remembered
    spaces = " " * 12
    for answer in (
        _post(admin, "", username="rosa", full_name="Rosa", role="guard", password=spaces,
              password_again=spaces),
        _post(admin, f"/{_id(db, 'guardia')}/password", password=spaces, password_again=spaces),
        change_password(guard, STAFF_PASSWORD, spaces),
    ):  # fmt: skip
        assert answer.status_code == 422
        assert "A password of only spaces is not allowed" in text(answer)
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(StaffUser)) == 4
    assert sign_in(make_client(), "guardia", spaces).status_code == 401
    assert sign_in(make_client(), "guardia", STAFF_PASSWORD).status_code == 303


@pytest.mark.parametrize("username", ["guardia.doble", "admin", "guardia.mujeres"])
def test_accounts_beyond_the_administrators_scope_cannot_be_changed(
    accounts, make_client, db, username
):
    admin, _ = accounts
    user_id = _id(db, username)
    for action in ("/deactivate", "/password"):
        new = {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
        answer = _post(admin, f"/{user_id}{action}", **new)
        assert answer.status_code == 403, (username, action)
    with db.read_session() as s:
        assert s.get(StaffUser, user_id).active
    assert sign_in(make_client(), username, STAFF_PASSWORD).status_code == 303  # unchanged


def test_anyone_changes_their_own_password_proven_by_the_current_one(accounts, make_client):
    _, guard = accounts
    elsewhere = make_client()
    assert sign_in(elsewhere, "guardia").status_code == 303

    def change(current, new, again=None):
        return change_password(guard, current, new, again)

    assert "no son iguales" in text(change(STAFF_PASSWORD, NEW_PASSWORD, "otra"))
    assert "al menos 12" in text(change(STAFF_PASSWORD, "corta"))
    same = change(STAFF_PASSWORD, STAFF_PASSWORD)
    assert same.status_code == 422
    assert "La nueva contraseña es la que ya tienes" in text(same)
    assert _signed_in(elsewhere)  # nothing changed: no session ended
    wrong = change("no es la clave", NEW_PASSWORD)
    assert wrong.status_code == 422
    assert "Esta no es tu contraseña actual" in text(wrong)
    old_token = guard.cookies.get(STAFF_COOKIE, path="/staff")
    done = change(STAFF_PASSWORD, NEW_PASSWORD)
    assert done.status_code == 303
    assert _signed_in(guard)  # this browser goes on...
    new_token = guard.cookies.get(STAFF_COOKIE, path="/staff")
    assert new_token
    assert new_token != old_token
    copied = make_client()
    copied.cookies.set(STAFF_COOKIE, old_token, path="/staff")
    assert not _signed_in(copied)  # whoever copied the old token is out
    assert not _signed_in(elsewhere)  # the other sessions end
    assert sign_in(make_client(), "guardia", STAFF_PASSWORD).status_code == 401
    assert sign_in(make_client(), "guardia", NEW_PASSWORD).status_code == 303


def test_guessing_the_current_password_locks_like_signing_in(accounts):
    _, guard = accounts
    for _ in range(5):
        change_password(guard, "no es la clave")
    locked = change_password(guard, STAFF_PASSWORD)
    assert locked.status_code == 429
    assert "Espera 15 minutos" in text(locked)


def test_a_password_change_on_a_session_ended_meanwhile_asks_to_sign_in(accounts, monkeypatch):
    _, guard = accounts

    def ended(*args, **kwargs):
        raise Rejected([Problem(Code.SESSION_ENDED)])

    monkeypatch.setattr(staff, "change_own_password", ended)
    answer = change_password(guard, STAFF_PASSWORD)
    assert answer.status_code == 401  # the sign-in form, as for any form sent signed out
    assert 'action="/staff/login' in answer.text
