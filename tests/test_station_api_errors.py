"""The station's local API answers each error with the status of its family
(``errors.http_status``, as the relay does), never by reading the message."""

from __future__ import annotations

import asyncio
from typing import cast

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hotline.errors import HotlineError, Malformed, NotAuthorized, Unavailable, UnknownKey
from hotline.station.api import StationAPI, error_response
from hotline.station.service import StationService


class _NoService:
    core = None  # the token is checked before any handler reaches the station


def _app(api: StationAPI, failure: HotlineError) -> Starlette:
    async def fail(request: Request) -> Response:
        raise failure

    return Starlette(
        routes=[*api.routes(), Route("/fail", fail)],
        exception_handlers={HotlineError: error_response},
    )


def _get(app: Starlette, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://station") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(get())


def test_a_missing_or_wrong_token_is_401_unauthenticated() -> None:
    api = StationAPI(cast(StationService, _NoService()), "the token")
    for headers in ({}, {"Authorization": "Bearer another token"}):
        answer = _get(_app(api, Malformed("x")), "/api/status", headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthenticated"


def test_every_route_and_method_refuses_a_request_without_the_token() -> None:
    """No route of the local API changes or reads anything for a caller without the
    token (``/api/rotate`` once switched keys for anyone who could reach the port)."""
    api = StationAPI(cast(StationService, _NoService()), "the token")
    app = _app(api, Malformed("x"))
    checked = 0
    for route in api.routes():
        path = route.path.replace("{channel}", "c").replace("{index:int}", "1")
        path = path.replace("{seq:int}", "1").replace("{alarm_id:int}", "1")
        for method in sorted(route.methods or {"GET"}):
            if method == "HEAD":
                continue

            async def call(method: str = method, path: str = path) -> httpx.Response:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://s") as c:
                    return await c.request(method, path, json={} if method == "POST" else None)

            answer = asyncio.run(call())
            assert answer.status_code == 401, (method, path, answer.text)
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (Malformed("no such channel"), 400),
        (NotAuthorized("a token is named here, yet this is a refusal"), 403),
        (UnknownKey("x"), 403),
        (Unavailable("no station of ru is known yet"), 503),
    ],
)
def test_other_errors_get_the_status_of_their_family(failure: HotlineError, status: int) -> None:
    api = StationAPI(cast(StationService, _NoService()), "the token")
    answer = _get(_app(api, failure), "/fail")
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == failure.code
