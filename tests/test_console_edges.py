"""The console in-process: hostile times never break a page, and sign-in tells no names
and never holds the database thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from hotline import body as body_mod
from hotline.errors import HotlineError
from hotline.station import operators
from hotline.station.api import StationAPI, error_response
from hotline.station.console.app import Console
from hotline.station.core import StationCore
from hotline.station.service import StationService
from hotline.station.store import Message, StationStore

from .conftest import World

PASSWORD = "correct horse battery staple"
TOKEN = "test-token"


def console_app(tmp_path: Path, world: World) -> tuple[Starlette, StationCore]:
    store = StationStore(tmp_path / "station.db")
    core = StationCore(store, world.stations["us"], world.certs["us"], world.roster)
    # The link never runs: no relay is needed to show what is in the store.
    service = StationService(core, "ws://127.0.0.1:9/ws")
    api = StationAPI(service, TOKEN)
    app = Starlette(
        routes=[*api.routes(), *Console(api).routes()],
        exception_handlers={HotlineError: error_response},
    )
    operators.add_operator(store, "Maj. Carter", PASSWORD, "en", core.now_ms())
    return app, core


@pytest.fixture
def console(tmp_path: Path, world: World) -> Iterator[tuple[TestClient, StationCore]]:
    app, core = console_app(tmp_path, world)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, core


def sign_in(client: TestClient, name: str = "Maj. Carter", password: str = PASSWORD) -> int:
    return client.post(
        "/login", data={"name": name, "password": password}, follow_redirects=False
    ).status_code


def add_message(core: StationCore, index: int, created_ms: int, relay_ms: int) -> None:
    content = body_mod.text(f"message {index}", "ru")
    with core.store.transaction():
        core.store.add_message(
            Message(
                "us-ru",
                index,
                "ru/ru-1",
                "ru",
                index + 1,
                1,
                4,
                created_ms,
                relay_ms,
                bytes(32),
                body_mod.encode(content).decode(),
                core.now_ms(),
                None,
            )
        )


TIMES = [2**62, 0, -1, -(2**62), 2**63 - 1]


def test_a_message_with_an_impossible_time_is_shown_flagged(
    console: tuple[TestClient, StationCore],
) -> None:
    client, core = console
    for i, created in enumerate(TIMES):
        add_message(core, i, created_ms=created, relay_ms=created)
    assert sign_in(client) == 303
    for i, created in enumerate(TIMES):
        page = client.get(f"/message/us-ru/{i}")
        assert page.status_code == 200, page.text
        assert page.text.count('class="badge bad time-flag"') == 2  # relay and sender time
        if abs(created) > 2**40:
            assert f"{created} ms" in page.text  # the raw value, since it is no date
    state = client.get("/console/state.json")
    assert state.status_code == 200
    inbox = state.json()["inbox"]
    assert len(inbox) == len(TIMES)
    assert all("time out of range" in m["relay_time"] for m in inbox)
    api = client.get("/api/inbox", headers={"Authorization": f"Bearer {TOKEN}"})
    assert api.status_code == 200
    assert sorted(m["created_ms"] for m in api.json()["items"]) == sorted(TIMES)


def test_a_plausible_time_is_not_flagged(console: tuple[TestClient, StationCore]) -> None:
    client, core = console
    add_message(core, 0, created_ms=core.now_ms(), relay_ms=core.now_ms())
    assert sign_in(client) == 303
    page = client.get("/message/us-ru/0")
    assert page.status_code == 200
    assert "time-flag" not in page.text


def test_an_unknown_name_costs_the_same_argon2id_work_as_a_wrong_password(
    console: tuple[TestClient, StationCore], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same work, counted rather than timed: a busy machine's timings prove nothing.
    client, _ = console
    calls: list[tuple[int, dict[str, int]]] = []
    real = operators.argon2id

    def counting(password: str, salt: bytes, params: dict[str, int]) -> bytes:
        calls.append((len(salt), dict(params)))
        return real(password, salt, params)

    monkeypatch.setattr(operators, "argon2id", counting)
    assert sign_in(client, "Nobody Here", "not the password at all") == 401
    unknown = list(calls)
    calls.clear()
    assert sign_in(client, "Maj. Carter", "not the password at all") == 401
    assert len(unknown) == 1
    assert unknown == calls


def test_argon2id_runs_off_the_database_thread(
    console: tuple[TestClient, StationCore], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = console
    threads: list[str] = []
    real = operators.argon2id

    def recording(*args: Any) -> bytes:
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(operators, "argon2id", recording)
    assert sign_in(client) == 303
    assert sign_in(client, "Nobody Here", PASSWORD) == 401
    assert threads and not any(name.startswith("station-db") for name in threads), threads
    assert len(threads) == 2  # one check per sign-in, known name or not
