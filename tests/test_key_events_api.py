"""``POST /api/key-events`` as a caller with the token but bad input would try it: each
refusal is a clear error of the bad-input family (never a 500), and nothing the station
owes its relays changes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import pytest
from starlette.applications import Starlette

from hotline.errors import HotlineError
from hotline.station.api import StationAPI, error_response
from hotline.station.core import StationCore
from hotline.station.service import StationService
from hotline.station.store import StationStore

from .conftest import World

T = TypeVar("T")
TOKEN = "the token"


class _Service:
    """The two things the route asks of the service: run on the store, wake the links."""

    def __init__(self, core: StationCore) -> None:
        self.core = core

    async def run_db(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)

    def kick(self) -> None:
        pass


def _post(core: StationCore, payload: bytes) -> httpx.Response:
    api = StationAPI(cast(StationService, _Service(core)), TOKEN)
    app = Starlette(routes=api.routes(), exception_handlers={HotlineError: error_response})

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
            return await client.post(
                "/api/key-events",
                content=payload,
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            )

    return asyncio.run(post())


def _core(world: World, tmp: Path) -> StationCore:
    return StationCore(
        StationStore(tmp / "us.db"),
        world.stations["us"],
        world.certs["us"],
        world.roster,
        time.time,
    )


@pytest.mark.parametrize(
    "payload",
    [
        b'{"kind": "revocation", "data": "\\ud800"}',  # a lone surrogate: no UTF-8 for it
        b'{"kind": "revocation", "data": "not a signed note"}',
        b'{"kind": "roster", "data": "x"}',
        b'{"kind": "revocation"}',
        b'{"kind": ["revocation"], "data": "x"}',
    ],
)
def test_a_malformed_key_event_is_a_clear_error_and_changes_nothing(
    world: World, tmp_path: Path, payload: bytes
) -> None:
    core = _core(world, tmp_path)
    before = core.key_events_view()
    answer = _post(core, payload)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "malformed"
    assert core.key_events_view() == before


def test_another_partys_revocation_is_refused_and_changes_nothing(
    world: World, tmp_path: Path
) -> None:
    core = _core(world, tmp_path)
    before = core.key_events_view()
    other = world.parties["ru"].revoke(world.certs["ru"], int(time.time()), "not yours")
    answer = _post(
        core, json.dumps({"kind": "revocation", "data": other.encode().decode()}).encode()
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert core.key_events_view() == before
