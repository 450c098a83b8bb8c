"""Relay and stations as real processes on 127.0.0.1: delivery, crashes, outages."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline.envelope import Kind
from hotline.home import load_roster
from hotline.notes import check_extends, open_checkpoint, unb64
from hotline.station.store import OutboxState

from .netutil import Cluster, wait_for

pytestmark = pytest.mark.network


@pytest.fixture
def cluster(tmp_path: Path, relay_database: str | None) -> Any:
    """Every test here runs against a relay on SQLite and on PostgreSQL."""
    c = Cluster(tmp_path, database=relay_database).start()
    yield c
    c.close()


def _texts(items: list[dict[str, Any]]) -> list[str]:
    return sorted(m["body"]["text"] for m in items)


def test_three_stations_see_exactly_their_channels(cluster: Cluster) -> None:
    cluster.send("us/us-1", "us-ru", "us to ru", "FLASH")
    cluster.send("us/us-1", "us-ru-ua", "us to all")
    cluster.send("ru/ru-1", "us-ru", "ru to us", "IMMEDIATE")
    cluster.send("ua/ua-1", "us-ru-ua", "ua to all", "PRIORITY")
    wait_for(lambda: len(cluster.inbox("us/us-1")) == 2, what="us inbox")
    wait_for(lambda: len(cluster.inbox("ru/ru-1")) == 3, what="ru inbox")
    wait_for(lambda: len(cluster.inbox("ua/ua-1")) == 1, what="ua inbox")
    assert _texts(cluster.inbox("us/us-1")) == ["ru to us", "ua to all"]
    assert _texts(cluster.inbox("ua/ua-1")) == ["us to all"]
    assert _texts(cluster.inbox("ru/ru-1", "us-ru")) == ["us to ru"]
    # Inboxes are ordered by precedence first.
    assert [m["precedence"] for m in cluster.inbox("ru/ru-1")] == ["FLASH", "PRIORITY", "ROUTINE"]
    # ua holds nothing at all of us-ru: no entries, no cursor, no keys to it.
    with cluster.station_store("ua/ua-1") as store:
        assert store.entries("us-ru") == []
    assert set(cluster.status("ua/ua-1")["channels"]) == {"us-ru-ua"}

    # Signed delivered receipts come back to the sender, per party.
    def delivered() -> bool:
        sent = {m["channel"]: m for m in cluster.sent("us/us-1")}
        return sent["us-ru"]["recipients"]["ru"]["delivered"] is not None and all(
            v["delivered"] for v in sent["us-ru-ua"]["recipients"].values()
        )

    wait_for(delivered, what="delivered receipts at us")
    # The FLASH alarmed at ru (and only there); nothing failed verification anywhere.
    assert [a["kind"] for a in cluster.alarms("ru/ru-1")] == ["flash"]
    assert cluster.alarms("us/us-1") == [] and cluster.alarms("ua/ua-1") == []


def _relay_checkpoints(cluster: Cluster, channel: str) -> list[bytes]:
    with cluster.relay_db() as db:
        return [
            bytes(r[0])
            for r in db.execute(
                "SELECT note FROM checkpoint WHERE channel=? ORDER BY size", (channel,)
            )
        ]


def _assert_log_extends(cluster: Cluster, channel: str, old_notes: list[bytes]) -> None:
    roster = load_roster(cluster.net.relay_dir / "roster.note")
    base = f"http://127.0.0.1:{cluster.net.relay_port}/channels/{channel}"
    latest = open_checkpoint(httpx.get(f"{base}/checkpoint").text.encode(), roster.relay_key)
    assert old_notes, "no checkpoint was signed before the crash"
    for note in old_notes:
        old = open_checkpoint(note, roster.relay_key)
        proof = httpx.get(
            f"{base}/proof/consistency", params={"from": old.size, "to": latest.size}
        ).json()["proof"]
        check_extends(old.checkpoint, latest.checkpoint, [unb64(p) for p in proof])


def _burst(
    cluster: Cluster, ident: str, channel: str, n: int, sent: list[int], errors: list[Exception]
) -> threading.Thread:
    def run() -> None:
        try:
            for i in range(n):
                r = cluster.api(ident).post(
                    "/api/send",
                    json={"channel": channel, "text": f"burst {i}", "precedence": "ROUTINE"},
                )
                assert r.status_code == 202, r.text
                sent.append(r.json()["seq"])
        except (httpx.HTTPError, AssertionError) as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    return t


def _accepted(cluster: Cluster, ident: str, channel: str) -> dict[int, int]:
    with cluster.station_store(ident) as store:
        return {
            item.seq: item.index
            for item in store.outbox(OutboxState.ACCEPTED, channel)
            if item.kind == Kind.MESSAGE and item.index is not None
        }


def _sent_seqs(cluster: Cluster, ident: str, channel: str) -> list[int]:
    """Sequence numbers of the messages (not link tests or receipts) a station sent."""
    with cluster.station_store(ident) as store:
        return [item.seq for item in store.outbox(None, channel) if item.kind == Kind.MESSAGE]


def _received_seqs(cluster: Cluster, ident: str, channel: str, sender: str) -> list[int]:
    with cluster.station_store(ident) as store:
        return [
            m.seq for m in store.messages(channel) if m.sender == sender and m.kind == Kind.MESSAGE
        ]


def test_relay_killed_mid_burst_loses_nothing_and_duplicates_nothing(cluster: Cluster) -> None:
    sent: list[int] = []
    errors: list[Exception] = []
    cluster.send("us/us-1", "us-ru", "warm-up")
    wait_for(lambda: len(_accepted(cluster, "us/us-1", "us-ru")) == 1, what="warm-up accepted")
    burst = _burst(cluster, "us/us-1", "us-ru", 500, sent, errors)
    wait_for(lambda: len(_accepted(cluster, "us/us-1", "us-ru")) >= 120, what="part accepted")
    cluster.relay.kill9()
    accepted_before = _accepted(cluster, "us/us-1", "us-ru")
    checkpoints_before = _relay_checkpoints(cluster, "us-ru")
    burst.join(60)
    assert not errors and len(sent) == 500  # the station queued every one while the relay was down
    assert len(accepted_before) < 501
    cluster.start_relay()
    wait_for(
        lambda: len(_accepted(cluster, "us/us-1", "us-ru")) == 501,
        timeout=90,
        what="all accepted after restart",
    )
    wait_for(
        lambda: len(_received_seqs(cluster, "ru/ru-1", "us-ru", "us/us-1")) == 501,
        timeout=90,
        what="all received at ru",
    )
    # Every envelope of us's (messages, and its hourly link test) is in the log exactly once.
    with cluster.relay_db() as db:
        rows = db.execute(
            "SELECT idx, hash, seq FROM entry WHERE channel='us-ru' AND sender='us/us-1'"
        ).fetchall()
    by_seq: dict[int, list[int]] = {}
    for idx, _h, seq in rows:
        by_seq.setdefault(seq, []).append(idx)
    assert all(len(v) == 1 for v in by_seq.values()), "an envelope is in the log twice"
    assert sorted(by_seq) == list(range(1, len(by_seq) + 1)), "us's chain has a gap"
    messages = _sent_seqs(cluster, "us/us-1", "us-ru")
    assert len(messages) == 501 and set(messages) <= set(by_seq)
    for seq, idx in accepted_before.items():
        assert by_seq[seq] == [idx], f"seq {seq} moved after the crash"
    # ru received all 501 once, in the sender's order.
    assert _received_seqs(cluster, "ru/ru-1", "us-ru", "us/us-1") == messages
    _assert_log_extends(cluster, "us-ru", checkpoints_before)
    assert cluster.alarms("us/us-1") == [] and cluster.alarms("ru/ru-1") == []


def test_sender_killed_mid_burst_resends_after_restart(cluster: Cluster) -> None:
    sent: list[int] = []
    errors: list[Exception] = []
    burst = _burst(cluster, "us/us-1", "us-ru", 500, sent, errors)
    wait_for(lambda: len(sent) >= 150, what="part queued")
    cluster.stations["us/us-1"].kill9()
    burst.join(60)
    assert errors, "the burst should have hit the dead station"
    queued = len(sent)  # messages the station said it had queued (202), not seq numbers
    cluster.clients.pop("us/us-1").close()
    cluster.start_station("us/us-1")
    cluster.wait_ready(["us/us-1"])

    # Every message the station said it queued is delivered once, in order, gap-free.
    def arrived() -> bool:
        got = _received_seqs(cluster, "ru/ru-1", "us-ru", "us/us-1")
        # At least what was queued, and the one committed as the kill came, if it was.
        return len(got) >= queued and got == _sent_seqs(cluster, "us/us-1", "us-ru")

    wait_for(arrived, timeout=90, what="queued messages at ru")
    got = _received_seqs(cluster, "ru/ru-1", "us-ru", "us/us-1")
    assert got == _sent_seqs(cluster, "us/us-1", "us-ru")  # all, once, in sender order
    assert len(got) in (queued, queued + 1)  # +1: committed just before the kill, reply lost
    assert cluster.alarms("ru/ru-1") == []


def test_recipient_outage_catches_up_on_restart(cluster: Cluster) -> None:
    cluster.stations["ru/ru-1"].stop()
    for i in range(50):
        cluster.send("us/us-1", "us-ru", f"while ru was down {i}")
    wait_for(lambda: len(_accepted(cluster, "us/us-1", "us-ru")) == 50, what="accepted")
    cluster.clients.pop("ru/ru-1").close()
    cluster.start_station("ru/ru-1")
    wait_for(lambda: len(cluster.inbox("ru/ru-1", "us-ru")) == 50, what="ru caught up")
    assert _received_seqs(cluster, "ru/ru-1", "us-ru", "us/us-1") == _sent_seqs(
        cluster, "us/us-1", "us-ru"
    )
    relay_size = httpx.get(f"http://127.0.0.1:{cluster.net.relay_port}/health").json()
    wait_for(
        lambda: (
            cluster.status("ru/ru-1")["channels"]["us-ru"]["verified_size"]
            >= relay_size["channels"]["us-ru"]
        ),
        what="ru verified up to the relay's size",
    )


def test_a_large_backlog_arrives_in_frames_under_the_limit(cluster: Cluster) -> None:
    cluster.stations["ru/ru-1"].stop()
    for i in range(60):
        cluster.send("us/us-1", "us-ru", f"{i} " + "x" * 20_000)  # ~1.2 MB waiting for ru
    wait_for(lambda: len(_accepted(cluster, "us/us-1", "us-ru")) == 60, what="accepted")
    cluster.clients.pop("ru/ru-1").close()
    cluster.start_station("ru/ru-1")
    wait_for(lambda: len(cluster.inbox("ru/ru-1", "us-ru")) == 60, timeout=60, what="caught up")
    assert cluster.alarms("ru/ru-1") == []
