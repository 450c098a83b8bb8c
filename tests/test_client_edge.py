"""The local API at a script's edge, in-process: a send with an Idempotency-Key is queued
once however often it is repeated (across restarts), and every list pages through all
it holds exactly once, saying when more remain."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.testclient import TestClient

from hotline import body as body_mod
from hotline.envelope import Kind
from hotline.errors import HotlineError
from hotline.station import paging
from hotline.station.alarms import Alarm, AlarmKind
from hotline.station.api import StationAPI, error_response
from hotline.station.core import StationCore
from hotline.station.service import StationService
from hotline.station.store import Message, OutboxItem, OutboxState, StationStore

from .conftest import World

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextmanager
def station(path: Path, world: World) -> Iterator[tuple[TestClient, StationCore]]:
    """A station's API over its store at ``path`` (no relay link runs)."""
    core = StationCore(StationStore(path), world.stations["us"], world.certs["us"], world.roster)
    core.add_statements([c.encode() for c in world.certs.values()], [])
    api = StationAPI(StationService(core, "ws://127.0.0.1:9/ws"), TOKEN)
    app = Starlette(routes=api.routes(), exception_handlers={HotlineError: error_response})
    with TestClient(app, base_url="http://127.0.0.1", headers=AUTH) as client:
        yield client, core
    core.store.close()


def send(client: TestClient, key: str | None, text: str = "Confirm intent.") -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(
        "/api/send", json={"channel": "us-ru", "text": text, "precedence": "FLASH"}, headers=headers
    )


def everything(client: TestClient, path: str, limit: int, **params: str) -> list[list[Any]]:
    """Every page of a list, as pages of items."""
    pages, after = [], None
    while True:
        query = {**params, "limit": str(limit), **({"after": after} if after else {})}
        answer = client.get(path, params=query)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        pages.append(page["items"])
        after = page["next"]
        if after is None:
            return pages


# --- idempotent sends --------------------------------------------------------------------


def test_a_send_repeated_with_its_key_is_queued_once_even_after_a_restart(
    tmp_path: Path, world: World
) -> None:
    with station(tmp_path / "us.db", world) as (client, core):
        first = send(client, "report-0400Z")
        assert first.status_code == 202 and "repeated" not in first.json()
        again = send(client, "report-0400Z")
        assert again.status_code == 200 and again.json()["repeated"] is True
        assert {k: again.json()[k] for k in first.json()} == first.json()
    with station(tmp_path / "us.db", world) as (client, core):
        after_restart = send(client, "report-0400Z")
        assert after_restart.status_code == 200 and after_restart.json()["repeated"] is True
        assert after_restart.json()["seq"] == first.json()["seq"]
        assert after_restart.json()["hash"] == first.json()["hash"]
        messages = [i for i in core.store.outbox() if i.kind == Kind.MESSAGE]
        assert len(messages) == 1
        (listed,) = client.get("/api/sent").json()["items"]
        assert listed["key"] == "report-0400Z" and listed["excerpt"] == "Confirm intent."


def test_a_key_reused_for_another_message_is_refused(tmp_path: Path, world: World) -> None:
    with station(tmp_path / "us.db", world) as (client, core):
        assert send(client, "k1").status_code == 202
        other = send(client, "k1", "Something else.")
        assert other.status_code == 409
        assert other.json()["error"]["code"] == "idempotency_conflict"
        assert len([i for i in core.store.outbox() if i.kind == Kind.MESSAGE]) == 1


def test_a_key_is_1_to_128_printable_ascii_characters(tmp_path: Path, world: World) -> None:
    with station(tmp_path / "us.db", world) as (client, _):
        for bad in (b"", b"x" * 129, "caf\u00e9".encode(), b"tab\there"):
            answer = client.post(
                "/api/send",
                json={"channel": "us-ru", "text": "x"},
                headers={"Idempotency-Key": bad},
            )
            assert answer.status_code == 400, bad
            assert answer.json()["error"]["code"] == "malformed"
        assert send(client, "x" * 128).status_code == 202
        assert send(client, None).status_code == 202  # without a key: queued every time


def test_sent_shows_a_forms_name_and_a_long_texts_start(tmp_path: Path, world: World) -> None:
    with station(tmp_path / "us.db", world) as (client, _):
        send(client, None, "a" * 300)
        with_form = {"channel": "us-ru", "body": {"type": "form", "form": "x"}}
        client.post("/api/send", json=with_form)  # refused: not a valid form
        items = client.get("/api/sent").json()["items"]
        assert [i["excerpt"] for i in items] == ["a" * 80]
        assert items[0]["key"] is None


# --- paging -------------------------------------------------------------------------------


def _fill_inbox(core: StationCore, n: int) -> None:
    with core.store.transaction():
        for i in range(n):
            content = body_mod.text(f"message {i}", "ru")
            core.store.add_message(
                Message(
                    "us-ru" if i % 3 else "us-ru-ua",
                    i,
                    "ru/ru-1",
                    "ru",
                    i + 1,
                    int(Kind.MESSAGE),
                    1 + i % 4,
                    1_000 + i,
                    1_000 + i // 7,  # many share a relay time: the cursor must tell them apart
                    bytes(32),
                    body_mod.encode(content).decode(),
                    core.now_ms(),
                    None,
                )
            )


def test_a_thousand_messages_page_through_the_inbox_exactly_once(
    tmp_path: Path, world: World
) -> None:
    with station(tmp_path / "us.db", world) as (client, core):
        _fill_inbox(core, 1000)
        pages = everything(client, "/api/inbox", 37)
        assert [len(p) for p in pages] == [37] * 27 + [1]
        seen = [(m["channel"], m["index"]) for p in pages for m in p]
        assert len(seen) == len(set(seen)) == 1000
        whole = client.get("/api/inbox", params={"limit": "1000"}).json()
        assert whole["next"] is None
        assert [(m["channel"], m["index"]) for m in whole["items"]] == seen  # the same order
        assert whole["items"][0]["precedence"] == "FLASH"
        first = client.get("/api/inbox").json()
        assert len(first["items"]) == 200 and first["next"] is not None  # never a silent cap
        channel = everything(client, "/api/inbox", 100, channel="us-ru-ua")
        assert sum(len(p) for p in channel) == len(range(0, 1000, 3))


def test_sent_and_alarms_page_through_exactly_once(tmp_path: Path, world: World) -> None:
    with station(tmp_path / "us.db", world) as (client, core):
        with core.store.transaction():
            for seq in range(1, 251):
                for channel in ("us-ru", "us-ru-ua"):
                    core.store.add_outbox(
                        OutboxItem(
                            channel, seq, b"e", bytes(32), int(Kind.MESSAGE), 4, 0,
                            OutboxState.QUEUED, None, None, None,
                        )
                    )  # fmt: skip
            for n in range(300):
                core.alarm(Alarm(AlarmKind.REFUSED, f"alarm {n}", subject=str(n)))
        sent = [(i["channel"], i["seq"]) for p in everything(client, "/api/sent", 33) for i in p]
        assert len(sent) == len(set(sent)) == 500 and sent == sorted(sent)
        one = [i["seq"] for p in everything(client, "/api/sent", 40, channel="us-ru") for i in p]
        assert one == list(range(1, 251))
        ids = [a["id"] for p in everything(client, "/api/alarms", 64) for a in p]
        assert len(set(ids)) == 300 and ids == sorted(ids, reverse=True)


def test_a_cursor_or_limit_the_api_did_not_give_is_refused(tmp_path: Path, world: World) -> None:
    with station(tmp_path / "us.db", world) as (client, _):
        for path in ("/api/inbox", "/api/sent", "/api/alarms"):
            for params in ({"after": "not-a-cursor"}, {"after": "WyJ4Il0"}, {"limit": "0"}):
                answer = client.get(path, params=params)
                assert answer.status_code == 400, (path, params)
                assert answer.json()["error"]["code"] == "malformed"


def test_bad_requests_to_the_api_are_malformed_not_a_server_error(
    tmp_path: Path, world: World
) -> None:
    huge = paging.encode((4, 2**70, "us-ru", 3))  # shaped like an inbox cursor, out of range
    with station(tmp_path / "us.db", world) as (client, _):
        answers = [
            client.get("/api/inbox", params={"after": huge}),
            client.get("/api/wait", params={"version": "a"}),
            client.post("/api/send", content=b"[" * 100_000),
            client.post("/api/send", content=b"{}", headers={"Content-Length": "x"}),
        ]
        for answer in answers:
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["code"] == "malformed"
