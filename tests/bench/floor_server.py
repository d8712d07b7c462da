"""The app of ``visits serve`` plus ``POST /bench/floor``: what a booking costs before any
rule or database, for :mod:`tests.bench.floor`.

Run as ``python -m tests.bench.floor_server OPTIONS`` by :func:`tests.server.running_server`
only. The route takes the booking API's own body (:class:`web.api.BookingIn`, validated as
``POST /api/v1/bookings`` validates it), and answers what that route answers: a 201 with a
:class:`web.api.CreatedOut` of the same size, or, when ``slot_id`` is odd, the 409 refusal
body a loser of the rush gets. Both serialised by the API's own functions, through the same
middleware. Nothing is read or written, so it is the floor any implementation of the booking
in this stack (FastAPI, pydantic, uvicorn) pays per request.
"""

from __future__ import annotations

import sys
from typing import Any

from fastapi import FastAPI, Request

from visits.base import utcnow
from visits.problems import Code, Problem
from web import api, app, serve


def _created(body: api.BookingIn) -> api.CreatedOut:
    now = utcnow()
    reference, token = "ABCD-EFGH", "x" * 43  # a real reference's and token's lengths
    slot = api.SlotTimeOut(
        id=body.slot_id,
        starts_at=now,
        ends_at=now,
        local_date=now.date(),
        local_start="09:00",
        local_end="10:00",
    )
    visitors = [
        api.VisitorOut(
            first_names=v.first_names, last_names=v.last_names, relationship=v.relationship
        )
        for v in body.visitors
    ]
    booking = api.BookingOut(
        reference=reference,
        status="confirmed",
        prison=body.prison,
        slot=slot,
        inmate="Juan Q.",
        visitors=visitors,
        contact_phone="+51" + body.contact_phone,
        language="es",
        created_at=now,
        hold_expires_at=None,
        manage_url=f"http://127.0.0.1:8000/b/{reference}?token={token}",
        health_measures=None,
        cancelled_why=None,
        cancelled_message=None,
    )
    return api.CreatedOut(
        reference=reference, status="confirmed", manage_token=token, booking=booking
    )


def create_app() -> FastAPI:
    served = app.create_app()

    @served.post("/bench/floor", status_code=201)
    def floor(request: Request, body: api.BookingIn) -> Any:
        if body.slot_id % 2:
            return api._errors([Problem(Code.SLOT_FULL, "slot_id")])
        return api._json(_created(body), 201)

    return served


if __name__ == "__main__":
    serve.main(sys.argv[1], app="tests.bench.floor_server:create_app")
