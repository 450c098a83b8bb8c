"""``GET /api/received``: the long poll a client follows new messages with. Each message
received comes exactly once, in the order the station took it in, in the answer to the
first poll after it was committed; the poll answers as soon as one is there, never
sleeps through one committed while it looked, and refuses a cursor or timeout it did not
give."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hotline import body as body_mod
from hotline.envelope import Kind
from hotline.station import paging
from hotline.station.api import StationAPI
from hotline.station.core import StationCore
from hotline.station.store import Message

from .conftest import World
from .test_client_edge import station


def _receive(
    core: StationCore, index: int, channel: str = "us-ru", sender: str = "ru/ru-1"
) -> None:
    """A message as the ingest stores it, committed."""
    content = body_mod.text(f"message {index}", "ru")
    with core.store.transaction():
        core.store.add_message(
            Message(
                channel,
                index,
                sender,
                sender.split("/")[0],
                index + 1,
                int(Kind.MESSAGE),
                1 + index % 4,  # precedence: the inbox's order is not the arrival order
                1_000 + index,
                1_000 - index,
                index.to_bytes(32, "big"),
                body_mod.encode(content).decode(),
                core.now_ms(),
                None,
            )
        )


def _follow(client: Any, since: str, **params: str) -> tuple[list[int], str]:
    """Every message after ``since`` (no waiting): their indexes and the last cursor."""
    seen: list[int] = []
    while True:
        answer = client.get("/api/received", params={"since": since, "timeout": "0", **params})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        if not page["items"]:
            return seen, page["since"]
        seen += [m["index"] for m in page["items"]]
        since = page["since"]


def test_without_a_cursor_it_answers_at_once_with_where_to_start(
    tmp_path: Path, world: World
) -> None:
    with station(tmp_path / "us.db", world) as (client, core):
        _receive(core, 0)
        start = client.get("/api/received").json()  # no since: no waiting, nothing old
        assert start["items"] == []
        _receive(core, 1)
        seen, _ = _follow(client, start["since"])
        assert seen == [1]  # only what came after the cursor


@settings(max_examples=25, deadline=None)
@given(
    batches=st.lists(st.lists(st.sampled_from(["us-ru", "us-ru-ua"]), max_size=7), max_size=6),
    limit=st.integers(1, 5),
)
def test_every_message_comes_once_in_arrival_order_whatever_the_page_size(
    tmp_path_factory: Any, world: World, batches: list[list[str]], limit: int
) -> None:
    path = tmp_path_factory.mktemp("received") / "us.db"
    with station(path, world) as (client, core):
        since = client.get("/api/received").json()["since"]
        arrived: list[tuple[str, int]] = []
        via_ua: list[int] = []
        index = 0
        for batch in batches:
            for channel in batch:
                _receive(core, index, channel)
                arrived.append((channel, index))
                if channel == "us-ru-ua":
                    via_ua.append(index)
                index += 1
            _receive(core, index, "us-ru", sender="us/us-2")  # this party's other station
            arrived.append(("us-ru", index))
            index += 1
            _receive(core, index, "us-ru", sender="us/us-1")  # our own: never "received"
            index += 1
            seen, since = _follow(client, since, limit=str(limit))
            assert seen == [i for _, i in arrived], "each once, in the order taken in"
            arrived = []
        # One channel's view of all of it: the same order, that channel only.
        start = paging.encode((0,))
        ua, _ = _follow(client, start, channel="us-ru-ua")
        assert ua == via_ua


def test_a_poll_answers_when_a_message_is_committed_not_at_its_timeout(
    tmp_path: Path, world: World
) -> None:
    with station(tmp_path / "us.db", world) as (client, core):
        since = client.get("/api/received").json()["since"]
        answer: concurrent.futures.Future[Any] = concurrent.futures.Future()
        polling = threading.Thread(
            target=lambda: answer.set_result(
                client.get("/api/received", params={"since": since, "timeout": "25"})
            )
        )
        began = time.monotonic()
        polling.start()
        service = _service(client)
        # Commit only once the poll is waiting (its version read, its query empty).
        while not service.changed._waiters:  # type: ignore[attr-defined]
            time.sleep(0.01)
            assert not answer.done(), answer.result().text
        _receive(core, 7)
        assert client.portal is not None
        client.portal.call(service.notify)  # as the ingest does after its commit
        got = answer.result(timeout=60).json()
        polling.join()
        assert [m["index"] for m in got["items"]] == [7]
        assert time.monotonic() - began < 20, "answered at the commit, not at the timeout"


def test_a_message_committed_while_the_poll_looked_is_not_slept_through(
    tmp_path: Path, world: World
) -> None:
    """The worst moment: committed (and announced) after the poll read the version but
    before it waits. The poll must answer with it without waiting out its timeout."""
    with station(tmp_path / "us.db", world) as (client, core):
        api = _api(client)
        since = client.get("/api/received").json()["since"]
        loop_of: list[asyncio.AbstractEventLoop] = []
        original = api.received_page
        calls = []

        def page_then_commit(*args: Any) -> dict[str, Any]:
            page = original(*args)  # empty: nothing yet
            calls.append(len(page["items"]))
            if len(calls) == 1:
                _receive(core, 9)
                asyncio.run_coroutine_threadsafe(api.service.notify(), loop_of[0]).result(30)
            return page

        async def remember_loop() -> None:
            loop_of.append(asyncio.get_running_loop())

        assert client.portal is not None
        client.portal.call(remember_loop)
        api.received_page = page_then_commit  # type: ignore[method-assign]
        began = time.monotonic()
        got = client.get("/api/received", params={"since": since, "timeout": "25"}).json()
        assert [m["index"] for m in got["items"]] == [9]
        assert calls == [0, 1]
        assert time.monotonic() - began < 20, "the change during the query woke the poll"


def test_a_cursor_or_timeout_it_did_not_give_is_refused_and_named(
    tmp_path: Path, world: World
) -> None:
    with station(tmp_path / "us.db", world) as (client, _):
        cases = {
            # The last: a cursor ahead of the store (another store's, one restored from a
            # backup): refused, not every message up to it skipped without a word.
            "since": [
                "",
                "not-a-cursor",
                paging.encode(("x",)),
                paging.encode((2**70,)),
                paging.encode((1,)),
            ],
            "timeout": ["-1", "26", "nan", "soon", "1e400"],
            # A channel this station is not in: refused, not 25 s of nothing at every poll.
            "channel": ["us-xx", "US-RU"],
        }
        for field, values in cases.items():
            for value in values:
                params = {field: value}
                if field in ("timeout", "channel"):
                    params["since"] = paging.encode((0,))
                answer = client.get("/api/received", params=params)
                assert answer.status_code == 400, (field, value, answer.text)
                error = answer.json()["error"]
                assert error["code"] == "malformed" and field in error["message"], error
        assert client.get("/api/received", headers={"Authorization": "Bearer x"}).status_code == 401


def _api(client: Any) -> StationAPI:
    """The StationAPI behind a test client's app (its routes' bound methods)."""
    for route in client.app.routes:
        owner = getattr(route.endpoint, "__self__", None)
        if isinstance(owner, StationAPI):
            return owner
    raise AssertionError("no StationAPI route")


def _service(client: Any) -> Any:
    return _api(client).service


def test_an_empty_answer_moves_the_cursor_past_what_it_looked_at(
    tmp_path: Path, world: World
) -> None:
    """Rows the poll skips (our own messages, another channel's) are looked at once: an
    answer with no items gives a cursor after them. Before, the cursor stayed where it
    was, so every later poll (and every wake of it, one per commit) scanned them all
    again: a sending station's client rescanned everything it sent since it last
    received, each time anything committed."""
    with station(tmp_path / "us.db", world) as (client, core):
        start = client.get("/api/received").json()["since"]
        for index in range(5):
            _receive(core, index, "us-ru", sender="us/us-1")  # our own
        for index in range(5, 8):
            _receive(core, index, "us-ru-ua")
        page = client.get(
            "/api/received", params={"since": start, "channel": "us-ru", "timeout": "0"}
        )
        assert page.json()["items"] == []
        assert page.json()["since"] == paging.encode((core.store.last_arrival(),))
        # Nothing is lost by it: the next message comes, once.
        _receive(core, 8, "us-ru")
        seen, _ = _follow(client, page.json()["since"], channel="us-ru")
        assert seen == [8]
