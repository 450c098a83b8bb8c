"""A relay that lies is caught: each lie, the station that catches it, the evidence kept.

The relay here is the real one with hooks (tests/liar.py). Offline, `hotline verify`
names the same lies in a transcript: see test_transcript.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from hotline import frames
from hotline.envelope import ZERO_HASH, parse, seal
from hotline.errors import NotAuthorized
from hotline.home import load_party, load_relay_key, load_roster, load_station
from hotline.keys import KeyRing, PartyKey, StationKey
from hotline.notes import NoteSigner
from hotline.relay.core import RelayCore
from hotline.relay.sqlite import SqliteRelayStore
from hotline.roster import roster_text, sign_roster

from .netutil import PASSPHRASE, Cluster, Proc, login, wait_for

pytestmark = pytest.mark.network

DETECTED: dict[str, float] = {}


def liar(tmp: Path, mode: str) -> Cluster:
    c = Cluster(tmp)
    c.relay = Proc(
        ["--dir", str(c.net.relay_dir), "--port", str(c.net.relay_port), "--mode", mode],
        tmp / "relay.log",
        module="tests.liar",
    )
    return c


def caught(
    c: Cluster, ident: str, kinds: set[str], since: float, name: str, timeout: float = 20
) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]]:
        return [a for a in c.alarms(ident) if a["kind"] in kinds]

    alarms = wait_for(found, timeout=timeout, what=f"{name} caught at {ident}")
    DETECTED[name] = time.monotonic() - since
    return list(alarms)


def offline_then_sync(c: Cluster, n: int = 3) -> float:
    """ru is down while us sends; ru then catches up through the relay."""
    c.stations["ru/ru-1"].stop()
    for i in range(n):
        c.send("us/us-1", "us-ru", f"message {i}")
    wait_for(lambda: c.status("us/us-1")["outbox"]["queued"] == 0, what="accepted")
    c.clients.pop("ru/ru-1").close()
    start = time.monotonic()
    c.start_station("ru/ru-1")
    return start


@pytest.mark.parametrize(
    ("mode", "kinds"),
    [
        # The entries after the dropped one are misnumbered: a bad frame, refused whole.
        ("drop", {"bad-checkpoint", "fork", "bad-frame"}),
        ("reorder", {"fork", "verification"}),
        ("alter", {"fork", "verification"}),
        ("badroot", {"fork"}),
    ],
)
def test_a_relay_that_tampers_with_what_a_station_receives_is_caught(
    tmp_path: Path, mode: str, kinds: set[str]
) -> None:
    c = liar(tmp_path, mode).start()
    try:
        since = offline_then_sync(c)
        alarms = caught(c, "ru/ru-1", kinds, since, mode)
        assert all(a["level"] == 3 or a["kind"] == "bad-checkpoint" for a in alarms)
        assert any(a["has_evidence"] for a in alarms)
        # Nothing of the lie was taken in: ru's copy of the log matches the true one.
        with c.station_store("ru/ru-1") as store, c.relay_db() as rdb:
            mine = [(e.index, e.hash) for e in store.entries("us-ru")]
            truth = dict(rdb.execute("SELECT idx, hash FROM entry WHERE channel='us-ru'"))
        assert all(truth.get(i) == h for i, h in mine)
    finally:
        c.close()


def test_a_replayed_envelope_is_caught_by_every_station(tmp_path: Path) -> None:
    c = liar(tmp_path, "replay").start()
    try:
        start = time.monotonic()
        c.send("us/us-1", "us-ru", "first")
        c.send("us/us-1", "us-ru", "second")
        for ident in ("ru/ru-1", "us/us-1"):
            alarms = caught(c, ident, {"verification"}, start, "replay")
            assert any("already used" in a["message"] and a["has_evidence"] for a in alarms)
        assert len(c.inbox("ru/ru-1")) == 2  # the replay was not taken as a new message
    finally:
        c.close()


def test_an_envelope_signed_by_a_revoked_key_is_caught(tmp_path: Path) -> None:
    c = liar(tmp_path, "revoked").start()
    try:
        us = load_party(c.net.root / "parties" / "us", PASSPHRASE)
        roster = load_roster(c.net.relay_dir / "roster.note")
        stolen, cert = load_station(c.net.stations["us/us-1"], PASSPHRASE, roster)
        ru_cert = KeyRing(roster.roots()).add_certificate(
            (c.net.stations["ru/ru-1"] / "station.cert").read_bytes()
        )
        with login(c, "us/us-1") as ws:  # the thief connected while the key was still good
            c.stations["us/us-1"].stop()  # and continues us-1's chain where it stopped
            revocation = us.revoke(cert, int(time.time()), "key compromised")
            ws.send(frames.encode_frame(frames.Revoke(revocation.encode(), id="r")))
            while getattr(frames.decode_relay_frame(ws.recv(timeout=10)), "id", None) != "r":
                pass
            time.sleep(1.1)  # the relay's clock is now past the revocation
            with c.station_store("us/us-1") as store:
                seq, prev = store.last_sent("us-ru")
            raw = seal(
                b'{"type":"text","lang":"en","text":"stolen"}',
                sender=stolen,
                channel="us-ru",
                seq=seq + 1,
                prev=prev,
                recipients=[cert, ru_cert],
                created_ms=int(time.time() * 1000),
            )
            start = time.monotonic()
            ws.send(frames.encode_frame(frames.Post(raw, id="p")))
            alarms = caught(c, "ru/ru-1", {"verification"}, start, "revoked")
        assert any("revoked" in a["message"] and a["has_evidence"] for a in alarms)
        assert c.inbox("ru/ru-1") == []
    finally:
        c.close()


def _roster_with_minimum(c: Cluster) -> None:
    """Every party signs a roster that refuses version-1 envelopes from time 0 on."""
    parties = {
        p: load_party(c.net.root / "parties" / p, PASSPHRASE) for p in ("us", "ru", "ua", "ae")
    }
    old = load_roster(c.net.relay_dir / "roster.note")
    text = roster_text(
        old.name,
        {p: k.public_keys() for p, k in parties.items()},
        {n: {"members": list(ch.members)} for n, ch in old.channels.items()},
        old.relay_key.encode(),
        min_envelope_version=2,
        min_envelope_from_ms=0,
    )
    note = sign_roster(text, parties["us"])
    for p in ("ru", "ua", "ae"):
        note = sign_roster(note, parties[p])
    for d in (c.net.relay_dir, *c.net.stations.values()):
        (d / "roster.note").write_bytes(note.encode())


def test_version_1_traffic_a_relay_logs_against_the_roster_minimum_is_caught(
    tmp_path: Path,
) -> None:
    """The roster refuses version 1; a station from before (us/us-0, /v1 certificate
    under us's Ed25519 root, signing correctly) posts anyway and the relay logs it: ru's
    station refuses the entry, and an honest relay would have refused the post."""
    c = liar(tmp_path, "oldversion")
    _roster_with_minimum(c)
    c.start()
    try:
        roster = load_roster(c.net.relay_dir / "roster.note")
        assert roster.min_envelope_version == 2
        us = load_party(c.net.root / "parties" / "us", PASSPHRASE)
        old_us = PartyKey("us", us.signer.private)  # the Ed25519 root alone, as before v2
        now = int(time.time())
        us0 = StationKey.generate("us", "us-0", pq=False)
        cert0 = old_us.certify(us0, now - 60, now + 3600)
        ru_cert = KeyRing(roster.roots()).add_certificate(
            (c.net.stations["ru/ru-1"] / "station.cert").read_bytes()
        )
        raw = seal(
            b'{"type":"text","lang":"en","text":"old format"}',
            sender=us0,
            channel="us-ru",
            seq=1,
            prev=ZERO_HASH,
            recipients=[cert0, ru_cert],
            created_ms=int(time.time() * 1000),
        )
        assert parse(raw).version == 1
        honest = RelayCore(SqliteRelayStore(tmp_path / "honest.db"), roster, _relay_signer(c))
        honest.register_certificate(cert0.encode())
        refused = honest.accept([("us/us-0", raw)])[0]
        assert isinstance(refused, NotAuthorized) and refused.field == "version"
        with connect(c.net.relay_url, max_size=None) as ws:
            challenge = frames.decode_relay_frame(ws.recv(timeout=10))
            assert isinstance(challenge, frames.Challenge)
            rh = hashlib.sha256(roster.encode()).digest()
            sig = us0.signing.sign(frames.auth_message(challenge.nonce, "us/us-0", rh))
            ws.send(frames.encode_frame(frames.Hello("us/us-0", cert0.encode(), sig)))
            assert json.loads(ws.recv(timeout=10))["op"] == "welcome"
            start = time.monotonic()
            ws.send(frames.encode_frame(frames.Post(raw, id="p")))
            alarms = caught(c, "ru/ru-1", {"verification"}, start, "oldversion")
        assert any("version 1" in a["message"] for a in alarms), alarms
        assert c.inbox("ru/ru-1") == []
    finally:
        c.close()


def _relay_signer(c: Cluster) -> NoteSigner:
    return load_relay_key(c.net.relay_dir, PASSPHRASE)


def test_a_relay_showing_a_station_another_history_is_caught_by_receipts(tmp_path: Path) -> None:
    c = liar(tmp_path, "fork").start()
    try:
        c.send("us/us-1", "us-ru", "seen by both")
        wait_for(lambda: len(c.inbox("ru/ru-1")) == 1, what="first message at ru")
        c.send("us/us-1", "us-ru", "hidden from ru")  # the relay leaves it out of ru's view
        wait_for(lambda: c.status("us/us-1")["outbox"]["queued"] == 0, what="accepted")
        start = time.monotonic()
        c.send("ru/ru-1", "us-ru", "ru speaks after the fork")
        # us answers with a signed delivered receipt, the next link of us's hash chain:
        # in ru's version of the log that link does not follow, and ru alarms.
        alarms = caught(c, "ru/ru-1", {"fork", "verification"}, start, "fork")
        assert any("sequence jumps" in a["message"] or a["kind"] == "fork" for a in alarms)
        assert any(a["has_evidence"] for a in alarms)
    finally:
        c.close()


def test_a_frame_that_does_not_decode_drops_the_connection_not_the_station(
    tmp_path: Path,
) -> None:
    c = liar(tmp_path, "badframe").start()  # ru's first certificates frame: {"op":"accepted"}
    try:
        start = time.monotonic()
        [alarm] = caught(c, "ru/ru-1", {"bad-frame"}, start, "bad frame")
        assert alarm["level"] == 1 and "accepted frame lacks" in alarm["message"]
        log = tmp_path / "ru_ru-1.log"
        wait_for(
            lambda: log.read_text().count("ru/ru-1 connected to relay") >= 2, what="a reconnect"
        )
        c.wait_ready(["ru/ru-1"])
        c.send("us/us-1", "us-ru", "after the bad frame")
        wait_for(lambda: len(c.inbox("ru/ru-1")) == 1, what="delivered after reconnecting")
        ru = c.stations["ru/ru-1"].p
        assert ru is not None and ru.poll() is None  # the station process lives on
    finally:
        c.close()


def test_a_relay_rolled_back_after_a_restart_is_caught(tmp_path: Path) -> None:
    c = Cluster(tmp_path).start()
    try:
        for i in range(3):
            c.send("us/us-1", "us-ru", f"before snapshot {i}")
        wait_for(lambda: len(c.inbox("ru/ru-1")) == 3, what="delivered")
        time.sleep(1)
        snapshot = tmp_path / "old-relay.db"
        with (
            sqlite3.connect(c.net.relay_dir / "relay.db") as live,
            sqlite3.connect(snapshot) as old,
        ):
            live.backup(old)
        for i in range(3):
            c.send("us/us-1", "us-ru", f"after snapshot {i}")
        wait_for(lambda: len(c.inbox("ru/ru-1")) == 6, what="delivered")
        wait_for(lambda: c.status("ru/ru-1")["outbox"]["queued"] == 0, what="receipts out")
        time.sleep(1.5)
        c.relay.kill9()
        for suffix in ("-wal", "-shm"):
            (c.net.relay_dir / f"relay.db{suffix}").unlink(missing_ok=True)
        shutil.copy(snapshot, c.net.relay_dir / "relay.db")
        start = time.monotonic()
        c.start_relay()
        for ident in ("us/us-1", "ru/ru-1"):
            alarms = caught(c, ident, {"fork"}, start, "rollback")
            assert any("rollback" in a["message"] for a in alarms)
    finally:
        c.close()


def test_zz_print_detection_times() -> None:
    for name, seconds in sorted(DETECTED.items()):
        print(f"time to detection, {name}: {seconds:.2f} s")
