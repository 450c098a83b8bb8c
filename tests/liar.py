"""A relay that lies: the real relay with hooks, one lie per mode (a test double).

    python -m tests.liar --dir RELAY_DIR --port N --mode MODE --target ru/ru-1

drop     withholds one message from the target's entries (the checkpoint stays honest)
reorder  swaps two messages in what the target receives
alter    flips one byte of an envelope sent to the target
badroot  signs, for the target, a checkpoint whose root does not match the entries
replay   logs an old envelope of us/us-1 a second time, for everyone
revoked  logs envelopes whatever their key's revocation says
fork     shows the target a different history: one message of us/us-1 left out,
         every later entry shifted, checkpoints signed over that other tree
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
from typing import Any

from hotline import envelope as env_mod
from hotline import frames
from hotline.home import load_relay_key, load_roster
from hotline.merkle import MerkleTree
from hotline.notes import Checkpoint, b64, sign_checkpoint
from hotline.relay.app import Connection, Relay
from hotline.relay.core import RelayCore
from hotline.relay.sqlite import SqliteRelayStore
from hotline.relay.storage import StoredEntry
from hotline.run import serve_relay


def _kind(entry: dict[str, Any]) -> int:
    return base64.b64decode(entry["envelope"])[5]


class LyingCore(RelayCore):
    mode = ""
    done = False

    def _check(self, station: str, raw: bytes, now_s: int) -> env_mod.Envelope:
        if self.mode == "revoked":
            env = env_mod.parse(raw)
            self.may_read(env.party, env.channel)
            return env  # no signature, certificate or revocation check
        return super()._check(station, raw, now_s)

    def _accept_one(
        self, station: str, raw: bytes, now_ms: int, touched: set[str]
    ) -> tuple[StoredEntry, bool]:
        out = super()._accept_one(station, raw, now_ms, touched)
        entry = out[0]
        if (
            self.mode == "replay"
            and not self.done
            and entry.sender == "us/us-1"
            and entry.seq >= 2
            and not out[1]
        ):
            self.done = True
            old = self.store.entries(entry.channel, 0, entry.index)
            first = next(e for e in old if e.sender == "us/us-1")
            index = self.tree(entry.channel).append(first.envelope)
            self.store.add_entry(
                StoredEntry(entry.channel, index, first.envelope, os.urandom(32), "liar", 0, now_ms)
            )
        return out


class LyingRelay(Relay):
    def __init__(self, core: RelayCore, mode: str, target: str) -> None:
        super().__init__(core, rate=100000, burst=100000)
        self.mode, self.target, self.done = mode, target, False
        self.alt: dict[str, list[tuple[bytes, int]]] = {}
        self.alt_seen: dict[str, set[bytes]] = {}
        self.alt_sent: dict[str, int] = {}
        self.victim: set[bytes] = set()
        self.us_messages = 0
        self._posted: dict[str, bytes] = {}
        self._requested: dict[str, int] = {}
        self.outgoing = self.lie

    # --- simple lies on what the target receives ---------------------------------------

    def lie(self, conn: Connection, frame: str) -> str | None:
        if conn.cert.ident != self.target:
            return frame
        f = json.loads(frame)
        if self.mode == "fork":
            return self.fork_view(f)
        if f["op"] != "entries" or self.done:
            return frame
        msgs = [i for i, e in enumerate(f["entries"]) if _kind(e) == 1]
        if self.mode == "drop" and msgs:
            del f["entries"][msgs[0]]
        elif self.mode == "reorder" and len(msgs) >= 2:
            e = f["entries"]
            e[msgs[0]]["envelope"], e[msgs[1]]["envelope"] = (
                e[msgs[1]]["envelope"],
                e[msgs[0]]["envelope"],
            )
        elif self.mode == "alter" and msgs:
            raw = bytearray(base64.b64decode(f["entries"][msgs[0]]["envelope"]))
            raw[-3] ^= 0x40
            f["entries"][msgs[0]]["envelope"] = b64(bytes(raw))
        elif self.mode == "badroot" and f["entries"]:
            size = f["start"] + len(f["entries"])
            cp = Checkpoint(
                self.core.roster.origin(f["channel"]), size, os.urandom(32), ("time 1",)
            )
            f["checkpoint"] = sign_checkpoint(cp, self.core.log_key).encode().decode()
        else:
            return frame
        self.done = True
        return json.dumps(f)

    # --- a forked view for the target ------------------------------------------------------

    def _alt_add(self, channel: str, raw: bytes, relay_ms: int) -> int:
        digest = env_mod.envelope_hash(raw)
        seen = self.alt_seen.setdefault(channel, set())
        log = self.alt.setdefault(channel, [])
        if digest in self.victim:
            return -1
        if digest not in seen:
            env = env_mod.parse(raw)
            if env.sender == "us/us-1" and env.kind == env_mod.Kind.MESSAGE:
                self.us_messages += 1
                if self.us_messages == 2:
                    self.victim.add(digest)  # us's second message: the target never sees it
                    return -1
            seen.add(digest)
            log.append((raw, relay_ms))
        return next(i for i, (r, _) in enumerate(log) if env_mod.envelope_hash(r) == digest)

    def _alt_checkpoint(self, channel: str, size: int) -> tuple[str, MerkleTree]:
        tree = MerkleTree()
        tree.append_many([r for r, _ in self.alt.setdefault(channel, [])[:size]])
        cp = Checkpoint(self.core.roster.origin(channel), size, tree.root(), ("time 2",))
        return sign_checkpoint(cp, self.core.log_key).encode().decode(), tree

    def fork_view(self, f: dict[str, Any]) -> str | None:
        channel = f.get("channel", "")
        if f["op"] == "entries":
            for e in f["entries"]:
                self._alt_add(channel, base64.b64decode(e["envelope"]), e["relay_ms"])
            log = self.alt.get(channel, [])
            start = (
                self.alt_sent.get(channel, 0)
                if f.get("id") is None
                else self._requested.get(channel, 0)
            )
            note, tree = self._alt_checkpoint(channel, len(log))
            self.alt_sent[channel] = len(log)
            return frames.encode(
                "entries",
                id=f.get("id"),
                channel=channel,
                start=start,
                entries=[
                    {"index": i, "envelope": b64(r), "relay_ms": ms}
                    for i, (r, ms) in enumerate(log)
                    if i >= start
                ],
                checkpoint=note,
                more=False,
                consistency=frames.hashes(
                    tree.consistency_proof(start, len(log)) if 0 < start < len(log) else []
                ),
            )
        if f["op"] == "accepted":
            raw = self._posted.get(f["hash"])
            if raw is None:
                return json.dumps(f)
            index = self._alt_add(channel, raw, f["relay_ms"])
            note, tree = self._alt_checkpoint(channel, len(self.alt.setdefault(channel, [])))
            f.update(
                index=index,
                checkpoint=note,
                proof=frames.hashes(tree.inclusion_proof(index, tree.size)),
            )
            return json.dumps(f)
        return json.dumps(f)

    async def _handle(self, conn: Connection, frame: dict[str, Any], request_id: Any) -> None:
        if self.mode == "fork" and conn.cert.ident == self.target:
            if frame["op"] == "post":
                raw = frames.field_bytes(frame, "envelope")
                self._posted[b64(env_mod.envelope_hash(raw))] = raw
            elif frame["op"] == "sync":
                self._requested[str(frame.get("channel"))] = int(frame.get("from", 0))
        await super()._handle(conn, frame, request_id)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", required=True)
    parser.add_argument("--target", default="ru/ru-1")
    args = parser.parse_args()
    from pathlib import Path

    directory = Path(args.dir)
    roster = load_roster(directory / "roster.note")
    LyingCore.mode = args.mode
    core = LyingCore(
        SqliteRelayStore(directory / "relay.db"),
        roster,
        load_relay_key(directory, os.environ["HOTLINE_PASSPHRASE"]),
    )
    relay = LyingRelay(core, args.mode, args.target)
    asyncio.run(serve_relay(relay, "127.0.0.1", args.port))


if __name__ == "__main__":
    main()
