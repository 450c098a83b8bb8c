"""Independent relays at different hosts (issue 13 part 2), as real processes.

Two relays, ``relay.ae`` and ``relay.ch``, each with its own key and its own log of every
channel; every station posts each envelope through both and takes each envelope from
whichever relay brings it first, once. One relay is killed in the middle of a burst:
traffic goes on through the other, nothing lost and nothing twice.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hotline import body as body_mod
from hotline.envelope import Kind
from hotline.transcript import Verdict, loads, verify

from .conftest import _database
from .netutil import LIES, Cluster, Proc, hotline, wait_for
from .test_network import _burst

pytestmark = pytest.mark.network

CHANNEL = "us-ru"


def _cluster(
    root: Path,
    audit_seconds: float = 60,
    ch_mode: str | None = None,
    database: str | None = None,
    ch_database: str | None = None,
) -> Cluster:
    """us-1 and ru-1 on relay.ae and relay.ch; ``ch_mode``: relay.ch is tests/liar.py's;
    ``database``, ``ch_database``: relay.ae's and relay.ch's own PostgreSQL (two schemas:
    two hosts, each its own database; by default each its own SQLite)."""
    c = Cluster(
        root,
        database=database,
        more_databases={"relay.ch": ch_database} if ch_database else None,
        stations={"us": ["us-1"], "ru": ["ru-1"]},
        channels={CHANNEL: {"members": ["us", "ru"], "link_test_seconds": 2}},
        relay_args=("--rate", "100000"),
        extra_relays=("relay.ch",),
    )
    for d in c.net.stations.values():
        with (d / "station.toml").open("a") as f:
            f.write(f"audit_seconds = {audit_seconds}\n")
    if ch_mode is not None:
        d, port = c.net.more_relays["relay.ch"]
        c.more_relays["relay.ch"] = Proc(
            ["--dir", str(d), "--port", str(port), "--mode", ch_mode],
            root / "relay.ch.log",
            module="tests.liar",
        )
    return c


def _start(c: Cluster) -> Cluster:
    c.start_relay()
    for ident in c.stations:
        c.start_station(ident)
    for ident in c.stations:
        wait_for(
            lambda i=ident: all(p["connected"] for p in c.status(i)["relays"].values()),
            what=f"{ident} linked to both relays",
        )
    return c


@pytest.fixture(params=["sqlite", "postgresql"])
def two(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Both relays on SQLite, or both on PostgreSQL (each its own schema)."""
    ae, ch = _database(request.param), _database(request.param)
    c = _start(_cluster(tmp_path, database=next(ae), ch_database=next(ch)))
    yield c
    c.close()
    ae.close()  # drop the PostgreSQL schemas
    ch.close()


def _received(c: Cluster, ident: str, sender: str) -> list[int]:
    with c.station_store(ident) as store:
        return [
            m.seq for m in store.messages(CHANNEL) if m.sender == sender and m.kind == Kind.MESSAGE
        ]


def _lies(c: Cluster, ident: str) -> list[dict[str, object]]:
    return [a for a in c.alarms(ident) if a["kind"] in LIES]


def test_one_relay_killed_mid_burst_traffic_goes_on_through_the_other(
    two: Cluster, tmp_path: Path
) -> None:
    c = two
    c.send("us/us-1", CHANNEL, "warm-up")
    wait_for(lambda: len(_received(c, "ru/ru-1", "us/us-1")) == 1, what="warm-up delivered")
    sent: list[int] = []
    errors: list[Exception] = []
    burst = _burst(c, "us/us-1", CHANNEL, 200, sent, errors)
    wait_for(lambda: len(_received(c, "ru/ru-1", "us/us-1")) >= 40, what="part delivered")
    c.relay.kill9()  # relay.ae (the roster's first relay) is gone for good
    print("relay.ae killed with", len(_received(c, "ru/ru-1", "us/us-1")), "delivered")
    burst.join(120)
    assert not errors and len(sent) == 200
    wait_for(
        lambda: len(_received(c, "ru/ru-1", "us/us-1")) == 201,
        timeout=120,
        what="every message delivered through relay.ch",
    )
    got = _received(c, "ru/ru-1", "us/us-1")
    assert not [s for s, n in Counter(got).items() if n > 1]  # nothing twice
    assert set(got) >= set(sent)  # nothing lost
    # relay.ch logged every one: the sender's outbox shows each taken by relay.ch.
    wait_for(
        lambda: c.status("us/us-1")["relays"]["relay.ch"]["unsent"] == 0,
        what="relay.ch took every envelope of us-1",
    )
    assert not c.status("us/us-1")["relays"]["relay.ae"]["connected"]
    # Message views show which relays logged each one: the last only relay.ch.
    last = max(c.inbox("ru/ru-1", CHANNEL), key=lambda m: m["seq"])
    assert set(last["logged"]) == {"relay.ch"}
    first = min(c.inbox("ru/ru-1", CHANNEL), key=lambda m: m["seq"])
    assert set(first["logged"]) == {"relay.ae", "relay.ch"}
    assert not _lies(c, "us/us-1") and not _lies(c, "ru/ru-1")
    # The transcript, bodies disclosed (the last only in relay.ch's log): relay.ae is
    # named for what it never logged, and the channel's record is intact through relay.ch.
    out = tmp_path / "after.json"

    def judged() -> Any:
        hotline(
            "export",
            "--dir",
            str(c.net.stations["ru/ru-1"]),
            CHANNEL,
            "--out",
            str(out),
            "--with-bodies",
        )
        report = verify(loads(out.read_bytes()))
        done = report.verdict == Verdict.RELAY_FAULTY and report.parties["ru"].delivered == 201
        return report if done and {f.code for f in report.failures} == {"path_omits"} else None

    report = wait_for(judged, timeout=60, what="relay.ae named, the record intact")
    assert report.faulty == ["relay.ae"] and report.record_intact
    assert report.parties["us"].sent == 201 and report.relays["relay.ch"]["missing"] == 0
    # Each message, and ru's receipts of them (a receipt names a run of up to 64), once.
    assert report.bodies_checked >= 201 + -(-201 // body_mod.MAX_RECEIPT_REFS)


def test_a_relay_that_silently_leaves_out_one_envelope_is_named_within_the_bound(
    tmp_path: Path,
) -> None:
    c = _start(_cluster(tmp_path, audit_seconds=3, ch_mode="omit"))
    try:
        for i in range(3):
            c.send("us/us-1", CHANNEL, f"m{i}")
        wait_for(lambda: len(_received(c, "ru/ru-1", "us/us-1")) == 3, what="all delivered")
        with c.station_store("us/us-1") as store:
            second = [i for i in store.outbox(None, CHANNEL) if i.kind == Kind.MESSAGE][1]

        def named(ident: str) -> list[dict[str, object]]:
            return [
                a
                for a in c.alarms(ident)
                if a["kind"] == "path"
                and a["text"] == "path-omits"
                and a["params"]["hash"] == second.hash.hex()[:16]
            ]

        for ident in ("us/us-1", "ru/ru-1"):
            (alarm,) = wait_for(lambda i=ident: named(i), timeout=30, what=f"{ident} names it")
            assert alarm["params"]["relay"] == "relay.ch"
            assert alarm["params"]["seen"] == "relay.ae"
        # Delivery went on meanwhile (relay.ae brought it), once.
        got = _received(c, "ru/ru-1", "us/us-1")
        assert sorted(got) == sorted(set(got))
        assert not _lies(c, "us/us-1") and not _lies(c, "ru/ru-1")
        # The transcript holds both relays' logs; verify names the one that left it out.
        out = tmp_path / "us-ru.json"
        hotline("export", "--dir", str(c.net.stations["ru/ru-1"]), CHANNEL, "--out", str(out))
        report = verify(loads(out.read_bytes()))
        assert report.relays["relay.ae"]["missing"] == 0
        assert report.relays["relay.ch"]["missing"] >= 1
        omits = [f for f in report.failures if f.code == "path_omits"]
        assert omits and all("relay.ch" in f.reason for f in omits)
        assert any(second.hash.hex()[:16] in f.reason for f in omits)
        assert {f.code for f in report.failures} == {"path_omits"}
    finally:
        c.close()


def test_both_relays_logs_export_and_verify_per_relay(two: Cluster, tmp_path: Path) -> None:
    c = two
    for i in range(3):
        c.send("us/us-1", CHANNEL, f"m{i}")
    wait_for(lambda: len(_received(c, "ru/ru-1", "us/us-1")) == 3, what="delivered")

    def verified() -> Any:
        out = tmp_path / "t.json"
        hotline("export", "--dir", str(c.net.stations["ru/ru-1"]), CHANNEL, "--out", str(out))
        report = verify(loads(out.read_bytes()))
        return report if report.ok and report.relays["relay.ch"]["entries"] >= 6 else None

    report = wait_for(verified, timeout=60, what="both logs complete and verified")
    assert set(report.relays) == {"relay.ae", "relay.ch"}
    assert report.relays["relay.ae"]["missing"] == report.relays["relay.ch"]["missing"] == 0
    doc = loads((tmp_path / "t.json").read_bytes())
    assert doc["format"] == "hotline-transcript/v3+relays"
    # A relay's log altered in the file is caught against THAT relay's key and place.
    doc["relays"][0]["entries"][1]["relay_ms"] += 1
    bad = verify(doc)
    assert not bad.ok and any(f.channel == f"{CHANNEL}@relay.ch" for f in bad.failures)


def test_an_omission_alarmed_once_is_not_alarmed_again_after_a_restart(tmp_path: Path) -> None:
    """The path audit remembers (in the station's store) what it raised: a restart, which
    rebuilds the audit from the stored logs, neither raises the same omission again nor
    forgets it; its evidence stays."""
    c = _start(_cluster(tmp_path, audit_seconds=3, ch_mode="omit"))
    try:
        for i in range(3):
            c.send("us/us-1", CHANNEL, f"m{i}")
        wait_for(lambda: len(_received(c, "ru/ru-1", "us/us-1")) == 3, what="all delivered")
        with c.station_store("us/us-1") as store:
            second = [i for i in store.outbox(None, CHANNEL) if i.kind == Kind.MESSAGE][1]

        def named() -> list[dict[str, Any]]:
            return [
                a
                for a in c.client("ru/ru-1").alarms(everything=True)
                if a["kind"] == "path"
                and a["text"] == "path-omits"
                and a["params"]["hash"] == second.hash.hex()[:16]
            ]

        (alarm,) = wait_for(named, timeout=30, what="ru-1 names relay.ch")
        assert alarm["count"] == 1 and alarm["has_evidence"]
        c.stations["ru/ru-1"].stop()
        c.start_station("ru/ru-1")
        wait_for(
            lambda: all(p["connected"] for p in c.status("ru/ru-1")["relays"].values()),
            what="ru-1 linked to both relays again",
        )
        time.sleep(3 * 3 + 2)  # three bounds of the audit's ticks after its restart
        (again,) = named()
        assert again["id"] == alarm["id"] and again["count"] == 1 and again["has_evidence"]
        # Not forgotten either: the omission is open in the audit's memory.
        assert c.status("ru/ru-1")["relays"]["relay.ch"]["omissions"]["open"] >= 1
    finally:
        c.close()
