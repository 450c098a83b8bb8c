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
