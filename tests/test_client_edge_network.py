"""A script's sends and status against real processes: a send cut between its commit
and its answer, retried with its key, is stored once; bulk status agrees with each
message's own status."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from hotline.envelope import Kind
from hotline.errors import Unavailable
from hotline.station.api import CRASH_AFTER_SEND

from .netutil import Cluster, hotline, wait_for

pytestmark = pytest.mark.network
US = "us/us-1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("edge")).start()
    yield c
    c.close()


def _restart_us(cluster: Cluster, monkeypatch: pytest.MonkeyPatch, crash: bool) -> None:
    """Start us-1 again; with ``crash`` it exits right after committing a keyed send."""
    if crash:
        monkeypatch.setenv(CRASH_AFTER_SEND, "1")
    else:
        monkeypatch.delenv(CRASH_AFTER_SEND, raising=False)
    cluster.stations[US].stop()
    old = cluster.clients.pop(US, None)
    if old is not None:
        old.close()
    cluster.start_station(US)
    cluster.wait_ready([US])


def _keyed(cluster: Cluster, key: str) -> list[Any]:
    with cluster.station_store(US) as store:
        return [i for i in store.outbox() if i.kind == Kind.MESSAGE and i.key == key]


def test_a_send_cut_after_its_commit_and_retried_with_its_key_is_stored_once(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    _restart_us(cluster, monkeypatch, crash=True)
    with pytest.raises(Unavailable):  # the station committed it, then died unanswered
        cluster.client(US).send("us-ru", text="cut once", key="cut-1")
    assert cluster.stations[US].p is not None and cluster.stations[US].p.wait(10) == 70
    assert len(_keyed(cluster, "cut-1")) == 1
    _restart_us(cluster, monkeypatch, crash=False)
    again = cluster.client(US).send("us-ru", text="cut once", key="cut-1")
    assert again["repeated"] is True
    (stored,) = _keyed(cluster, "cut-1")
    assert (again["seq"], again["hash"]) == (stored.seq, stored.hash.hex())
    wait_for(
        lambda: any(m["hash"] == again["hash"] for m in cluster.inbox("ru/ru-1", "us-ru")),
        what="delivered once",
    )
    assert [m["hash"] for m in cluster.inbox("ru/ru-1", "us-ru")].count(again["hash"]) == 1


def test_hotline_send_retries_a_cut_send_with_its_own_key(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    _restart_us(cluster, monkeypatch, crash=True)
    us = str(cluster.net.stations[US])
    cli = subprocess.Popen(
        [sys.executable, "-m", "hotline", "send", "--dir", us, "us-ru", "-t", "cut by cli",
         "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert cluster.stations[US].p is not None and cluster.stations[US].p.wait(30) == 70
    _restart_us(cluster, monkeypatch, crash=False)
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    answer = json.loads(out)
    assert answer["repeated"] is True and answer["key"]
    (stored,) = _keyed(cluster, answer["key"])
    assert stored.seq == answer["seq"] and stored.excerpt == "cut by cli"


def test_bulk_status_agrees_with_each_messages_status(cluster: Cluster) -> None:
    sent = [cluster.send(US, "us-ru", f"bulk {n}") for n in range(3)]
    client = cluster.client(US)

    def logged() -> list[dict[str, Any]] | None:
        items = client.sent("us-ru")
        ours = [i for i in items if i["seq"] in {s["seq"] for s in sent}]
        return ours if all(i["index"] is not None for i in ours) else None

    index = wait_for(logged, what="accepted")[0]["index"]
    hotline("ack", "--dir", str(cluster.net.stations["ru/ru-1"]), "us-ru", str(index),
            "--operator", "Maj. Ivanova")  # fmt: skip
    wait_for(
        lambda: any(i["recipients"]["ru"]["acknowledged"] for i in client.sent("us-ru")),
        what="the acknowledgment at us",
    )
    bulk = json.loads(
        hotline("status", "--dir", str(cluster.net.stations[US]), "us-ru", "--all", "--json").stdout
    )
    assert bulk["next"] is None and {i["channel"] for i in bulk["items"]} == {"us-ru"}
    for item in bulk["items"]:
        one = client.sent_message("us-ru", item["seq"])
        assert one == item
    acked = [i for i in bulk["items"] if i["recipients"]["ru"]["acknowledged"]]
    assert [i["index"] for i in acked] == [index]
    text = hotline("status", "--dir", str(cluster.net.stations[US]), "us-ru").stdout
    assert "bulk 1" in text and "acknowledged by Maj. Ivanova" in text
