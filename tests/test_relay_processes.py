"""Several relay processes on one PostgreSQL database (active-active), as real processes.

Three `hotline relay serve` processes share one database; stations are spread over them,
each given every process's URL. One process is killed (-9) in the middle of a burst: the
stations on it move to another and resume from their own log position. Nothing is lost,
nothing is logged twice, and every checkpoint any process signed belongs to one log.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from hotline import frames
from hotline.home import load_party, load_roster, load_station
from hotline.notes import SignedCheckpoint, check_extends, open_checkpoint, unb64

from .conftest import _database
from .netutil import (
    LIES,
    PASSPHRASE,
    Cluster,
    Proc,
    answer_challenge,
    free_ports,
    wait_for,
)
from .test_network import _accepted, _burst, _received_seqs, _sent_seqs

pytestmark = pytest.mark.network

CHANNEL = "us-ru"


@pytest.fixture
def postgres() -> Iterator[str]:
    """A fresh schema in the test PostgreSQL (skipped, with the reason, without one)."""
    yield from (d for d in _database("postgresql") if d is not None)


class Relays:
    """A cluster whose relay runs as several processes on one database."""

    def __init__(self, root: Path, database: str, processes: int, stations: dict[str, list[str]]):
        self.c = Cluster(
            root,
            stations=stations,
            channels={CHANNEL: {"members": ["us", "ru"], "link_test_seconds": 2}},
            relay_args=("--rate", "100000"),
            database=database,
        )
        ports = [self.c.net.relay_port, *free_ports(processes - 1)]
        self.ports = ports
        self.urls = [f"ws://127.0.0.1:{p}/ws" for p in ports]
        self.procs = [self.c.relay] + [
            Proc(
                [
                    "relay",
                    "serve",
                    "--dir",
                    str(self.c.net.relay_dir),
                    "--port",
                    str(p),
                    "--rate",
                    "100000",
                    "--database",
                    database,
                ],
                root / f"relay-{p}.log",
            )
            for p in ports[1:]
        ]
        # Station i starts on process i mod n, and knows every process's URL after it.
        self.first: dict[str, int] = {}
        for i, (ident, proc) in enumerate(self.c.stations.items()):
            self.first[ident] = i % processes
            rotated = self.urls[i % processes :] + self.urls[: i % processes]
            proc.args = [*proc.args, *(a for url in rotated for a in ("--relay", url))]

    def start(self) -> Relays:
        for port, proc in zip(self.ports, self.procs, strict=True):
            proc.start()
            wait_for(lambda p=port: self.health(p) is not None, what=f"relay on {port} up")
        for ident in self.c.stations:
            self.c.start_station(ident)
        for ident in self.c.stations:
            want = self.ports[self.first[ident]]
            wait_for(
                lambda i=ident, w=want: i in (self.health(w) or {}).get("stations_online", []),
                what=f"{ident} on the relay at {want}",
            )
        return self

    def health(self, port: int) -> dict[str, Any] | None:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        except httpx.HTTPError:
            return None
        return dict(r.json()) if r.is_success else None

    def close(self) -> None:
        for c in self.c.clients.values():
            c.close()
        for p in self.c.stations.values():
            p.stop()
        for proc in self.procs:
            proc.stop()


@pytest.fixture
def relays(tmp_path: Path, postgres: str) -> Iterator[Relays]:
    r = Relays(
        tmp_path, postgres, 3, {"us": ["us-1", "us-2", "us-3"], "ru": ["ru-1", "ru-2", "ru-3"]}
    ).start()
    yield r
    r.close()


class Checkpoints:
    """Every checkpoint each live process serves, polled in the background."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.seen: set[bytes] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll)

    def _poll(self) -> None:
        with httpx.Client(timeout=2) as http:
            while not self.stop.is_set():
                for port in self.ports:
                    try:
                        r = http.get(f"http://127.0.0.1:{port}/channels/{CHANNEL}/checkpoint")
                    except httpx.HTTPError:
                        continue  # that process is down
                    if r.is_success:
                        self.seen.add(r.text.encode())
                time.sleep(0.05)

    def __enter__(self) -> Checkpoints:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _assert_one_log(r: Relays, notes: set[bytes], port: int) -> int:
    """Every checkpoint verifies, equal sizes have equal roots, and each extends the one
    before it (consistency proofs from a live process); returns how many sizes."""
    roster = load_roster(r.c.net.relay_dir / "roster.note")
    by_size: dict[int, SignedCheckpoint] = {}
    for note in notes:
        signed = open_checkpoint(note, roster.relay_key, roster.origin(CHANNEL))
        other = by_size.setdefault(signed.size, signed)
        assert other.checkpoint.root == signed.checkpoint.root, f"two roots at {signed.size}"
    sizes = sorted(by_size)
    base = f"http://127.0.0.1:{port}/channels/{CHANNEL}/proof/consistency"
    with httpx.Client(timeout=10) as http:
        for a, b in itertools.pairwise(sizes):
            answer = http.get(base, params={"from": a, "to": b})
            while answer.status_code == 429:  # the relay's per-address rate: wait our turn
                time.sleep(0.5)
                answer = http.get(base, params={"from": a, "to": b})
            proof = answer.json()["proof"]
            check_extends(by_size[a].checkpoint, by_size[b].checkpoint, [unb64(p) for p in proof])
    return len(sizes)


def _lies(r: Relays) -> list[dict[str, Any]]:
    return [a for i in r.c.stations for a in r.c.alarms(i) if a["kind"] in LIES]


def test_relay_process_killed_mid_burst_the_stations_move_on_one_log(relays: Relays) -> None:
    c = relays.c
    c.send("us/us-1", CHANNEL, "warm-up")
    receivers = ["ru/ru-1", "ru/ru-2", "ru/ru-3"]  # one on each process
    for ident in receivers:
        wait_for(lambda i=ident: len(c.inbox(i)) == 1, what=f"warm-up at {ident}")
    victim = relays.procs[relays.first["us/us-1"]]
    sent: list[int] = []
    back: list[int] = []
    errors: list[Exception] = []
    with Checkpoints(relays.ports) as seen:
        burst = _burst(c, "us/us-1", CHANNEL, 500, sent, errors)
        reply = _burst(c, "ru/ru-2", CHANNEL, 100, back, errors)
        # A wait, not a speed check: on a loaded machine the first 120 may take minutes.
        wait_for(
            lambda: len(_accepted(c, "us/us-1", CHANNEL)) >= 120, timeout=300, what="part accepted"
        )
        victim.kill9()
        burst.join(600)
        reply.join(600)
        assert not errors and len(sent) == 500 and len(back) == 100
        wait_for(
            lambda: len(_accepted(c, "us/us-1", CHANNEL)) == 501,
            timeout=600,
            what="all of us-1's accepted after the failover",
        )
        for ident in receivers:
            wait_for(
                lambda i=ident: len(_received_seqs(c, i, CHANNEL, "us/us-1")) == 501,
                timeout=600,
                what=f"all of us-1's at {ident}",
            )
        for ident in ["us/us-1", "us/us-2", "us/us-3"]:
            wait_for(
                lambda i=ident: len(_received_seqs(c, i, CHANNEL, "ru/ru-2")) == 100,
                timeout=600,
                what=f"all of ru-2's at {ident}",
            )
    # The stations of the killed process moved to another one.
    assert c.status("us/us-1")["relay"]["connected"]
    assert c.status("us/us-1")["relay"]["url"] != relays.urls[relays.first["us/us-1"]]
    # Each sender's envelopes are in the log once each, gap-free, in its own order.
    with c.relay_db() as db:
        rows = db.execute(  # the envelopes (a key event's sender is empty)
            f"SELECT sender, seq, hash FROM entry WHERE channel='{CHANNEL}' AND sender <> ''"
        )
        rows = rows.fetchall()
        db_notes = {
            bytes(n)
            for (n,) in db.execute(
                "SELECT note FROM checkpoint WHERE channel=?", (CHANNEL,)
            ).fetchall()
        }
    assert len({bytes(h) for _s, _q, h in rows}) == len(rows), "an envelope is logged twice"
    seqs: dict[str, list[int]] = {}
    for sender, seq, _h in rows:
        seqs.setdefault(sender, []).append(int(seq))
    for sender, got in seqs.items():
        assert sorted(got) == list(range(1, len(got) + 1)), f"{sender}'s chain has a gap"
    us_messages = _sent_seqs(c, "us/us-1", CHANNEL)
    ru_messages = _sent_seqs(c, "ru/ru-2", CHANNEL)
    assert len(us_messages) == 501 and len(ru_messages) == 100
    for ident in receivers:
        assert _received_seqs(c, ident, CHANNEL, "us/us-1") == us_messages
    for ident in ["us/us-1", "us/us-2", "us/us-3"]:
        assert _received_seqs(c, ident, CHANNEL, "ru/ru-2") == ru_messages
    # One log: every checkpoint any process served or stored is consistent with all others.
    live = relays.ports[(relays.first["us/us-1"] + 1) % 3]
    assert len(seen.seen) > 3, "the poller saw too few checkpoints to judge"
    assert _assert_one_log(relays, seen.seen | db_notes, live) > 3
    assert _lies(relays) == []


def test_link_tests_and_revocations_cross_relay_processes(tmp_path: Path, postgres: str) -> None:
    r = Relays(tmp_path, postgres, 2, {"us": ["us-1"], "ru": ["ru-1"]}).start()
    try:
        c = r.c
        assert r.first == {"us/us-1": 0, "ru/ru-1": 1}  # on different processes

        # Link tests (never logged) reach the station on the other process, and back.
        def answered() -> bool:
            board = c.status("us/us-1")["links"][CHANNEL]
            return bool(board.get("ru", {}).get("rtt_ms") is not None)

        wait_for(answered, timeout=60, what="a link test answered across processes")
        # A revocation registered at one process ends the key's session at the other.
        assert c.status("ru/ru-1")["relay"]["connected"]
        _revoke_at(r, "ru/ru-1", port=r.ports[0])
        wait_for(
            lambda: not c.status("ru/ru-1")["relay"]["connected"],
            timeout=30,
            what="ru-1's session at the other process closed",
        )
        health = r.health(r.ports[1]) or {}
        assert "ru/ru-1" not in health.get("stations_online", [])
    finally:
        r.close()


def _revoke_at(r: Relays, ident: str, port: int) -> None:
    """Revoke ``ident``'s key with its party's root, through the relay at ``port``."""
    roster = load_roster(r.c.net.relay_dir / "roster.note")
    party = ident.split("/")[0]
    _key, cert = load_station(r.c.net.stations[ident], PASSPHRASE, roster)
    root = load_party(r.c.net.root / "parties" / party, PASSPHRASE)
    revocation = root.revoke(cert, int(time.time()), "key compromised")
    # Whoever carries it, the party's root signed it: a us station carries ru's here.
    with connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
        assert answer_challenge(r.c, ws, "us/us-1")["op"] == "welcome"
        ws.send(frames.encode_frame(frames.Revoke(revocation.encode(), id="rev")))
        while True:
            frame = frames.decode_relay_frame(ws.recv(timeout=10))
            if isinstance(frame, frames.Ok):
                return
            if isinstance(frame, frames.ErrorReply):
                raise frame.error()
