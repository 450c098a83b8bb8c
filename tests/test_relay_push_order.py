"""The relay pushes a new entry before it answers the post that brought it: the sender
takes its own entry in first (one commit, which marks its outbox item accepted) and has
nothing left to write when the acceptance follows (issue 15: one durable commit fewer
per message on each station, nothing acknowledged before the relay's commit)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hotline import body, frames
from hotline.envelope import ZERO_HASH, envelope_hash, seal
from hotline.home import load_roster, load_station

from .netutil import PASSPHRASE, Cluster, login

pytestmark = pytest.mark.network


def test_the_sender_gets_the_push_of_its_entry_before_the_acceptance(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    c.start_relay()
    try:
        roster = load_roster(c.net.relay_dir / "roster.note")
        key, _ = load_station(c.net.stations["us/us-1"], PASSPHRASE, roster)
        certs = [load_station(d, PASSPHRASE, roster)[1] for d in c.net.stations.values()]
        members = roster.channel("us-ru").members
        with login(c, "us/us-1") as ws:
            prev = ZERO_HASH
            for seq in range(1, 4):
                raw = seal(
                    body.encode(body.text(f"order {seq}", "en")),
                    sender=key,
                    channel="us-ru",
                    seq=seq,
                    prev=prev,
                    recipients=[cert for cert in certs if cert.party in members],
                    created_ms=int(time.time() * 1000),
                )
                prev = envelope_hash(raw)
                ws.send(frames.encode_frame(frames.Post(raw, seq)))
                pushed = False
                while True:
                    frame = json.loads(ws.recv(timeout=10))
                    if frame["op"] == "entries":
                        decoded = frames.decode_relay_frame(json.dumps(frame))
                        assert isinstance(decoded, frames.Entries)
                        pushed = pushed or any(e.envelope == raw for e in decoded.entries)
                    if frame.get("id") == seq:
                        assert frame["op"] == "accepted", frame
                        break
                assert pushed, f"the acceptance of seq {seq} came before its push"
    finally:
        c.close()
