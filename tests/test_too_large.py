"""A request body over the size limit is refused before it is read: the API with its JSON
error, a page with a page in the site's layout that says the limit and links back."""

from __future__ import annotations

import pytest

from tests.staffing import make_staff, sign_in, staff_token
from tests.test_pages import text
from visits.staff import StaffRole
from web.middleware import MAX_BODY_BYTES, MAX_UPLOAD_BYTES, readable_size

ROSTER = "/staff/p/QUENCORO/roster"


def _chunks(size: int):
    """A body sent without a length (chunked), as a client streaming it does."""
    for _ in range(size // 8192 + 1):
        yield b"x" * 8192


def test_limits_read_as_people_say_them():
    assert readable_size(MAX_UPLOAD_BYTES) == "4 MB"
    assert readable_size(MAX_BODY_BYTES) == "64 KB"
    assert readable_size(1000) == "1 KB"


@pytest.mark.parametrize("streamed", [False, True])
def test_a_roster_too_large_gets_a_staff_page_saying_the_limit(make_client, db, streamed):
    make_staff(db, "admin", StaffRole.ADMIN)
    client = make_client()
    assert sign_in(client, "admin").status_code == 303
    token = staff_token(client)
    size = MAX_UPLOAD_BYTES + 1
    kwargs = (
        {"content": _chunks(size), "headers": {"content-type": "multipart/form-data; boundary=x"}}
        if streamed
        else {"data": {"csrf_token": token}, "files": {"file": ("p.csv", b"x" * size, "text/csv")}}
    )
    referer = {"referer": f"http://testserver{ROSTER}"}
    kwargs["headers"] = kwargs.get("headers", {}) | referer
    answer = client.post(f"{ROSTER}?lang=en", **kwargs)
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["x-frame-options"] == "DENY"  # the site's headers, as on any page
    shown = text(answer)
    assert "What you sent is larger than 4 MB" in shown
    assert f'href="{ROSTER}"' in answer.text  # back to the page the form was sent from
    assert "/static/staff.css" in answer.text  # the staff pages' layout


@pytest.mark.parametrize("streamed", [False, True])
def test_a_family_form_too_large_gets_a_page_in_spanish_by_default(client, streamed):
    path = "/find"
    body = _chunks(MAX_BODY_BYTES + 1) if streamed else b"x" * (MAX_BODY_BYTES + 1)
    headers = {"content-type": "application/x-www-form-urlencoded"}
    answer = client.post(path, content=body, headers=headers)
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("text/html")
    assert '<html lang="es">' in answer.text
    assert "64 KB" in text(answer)
    assert f'href="{path}"' in answer.text  # no referrer from family pages: this address
    assert "/static/staff.css" not in answer.text


@pytest.mark.parametrize("streamed", [False, True])
def test_the_api_keeps_its_json_error(client, streamed):
    body = _chunks(MAX_BODY_BYTES + 1) if streamed else b"x" * (MAX_BODY_BYTES + 1)
    answer = client.post(
        "/api/v1/bookings", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413
    (error,) = answer.json()["errors"]
    assert error["code"] == "body_too_large"
    assert error["message"] == "Lo que enviaste es demasiado grande."
    assert str(MAX_BODY_BYTES) in error["detail"]
