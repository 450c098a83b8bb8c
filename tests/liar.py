"""A relay that lies: the real relay with hooks, one lie per mode (a test double).

    python -m tests.liar --dir RELAY_DIR --port N --mode MODE --target ru/ru-1

drop     withholds one message from the target's entries (the checkpoint stays honest)
reorder  swaps two messages in what the target receives
alter    flips one byte of an envelope sent to the target
badroot  signs, for the target, a checkpoint whose root does not match the entries
replay   logs an old envelope of us/us-1 a second time, for everyone
revoked  logs envelopes whatever their key's revocation says
oldversion logs envelopes whatever version the roster's minimum asks for
fork     shows the target a different history: one message of us/us-1 left out,
         every later entry shifted, checkpoints signed over that other tree
badframe sends the target, once, a frame that does not decode instead of its certificates
omit     silently leaves out of its log the second message us/us-1 posts, however often it
         is posted (no answer at all; the sender's later envelopes then break its chain):
         with several relays, only the path audit can see it (issue 13)
nolink   carries no link test to or from the target (everything else honestly): the
         target's path through this relay is down, its other paths up (issue 13)
omitrevoke answers ok to every revocation and never logs one: the revoked key stays
         usable in its log; with several relays, the path audit names it (issue 13)
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import replace

from hotline import envelope as env_mod
from hotline import frames
from hotline.home import load_relay_key, load_roster
from hotline.keys import Revocation
from hotline.leaf import LeafKind, leaf_data
from hotline.merkle import MerkleTree
from hotline.notes import Checkpoint, sign_checkpoint
from hotline.relay.app import Connection, Relay
from hotline.relay.core import RelayCore
from hotline.relay.sqlite import SqliteRelayStore
from hotline.relay.storage import StoredEntry
from hotline.run import serve_relay

# What "badframe" sends the target once, in place of a certificates frame: an op the
# station knows, without any of its fields.
BAD_FRAME = '{"op":"accepted"}'


def _kind(entry: frames.Entry) -> int:
    """The envelope kind of an entry (0 for a key event)."""
    return entry.envelope[5] if entry.kind == LeafKind.ENVELOPE else 0


class LyingCore(RelayCore):
    mode = ""
    done = False

    def _check(self, station: str, raw: bytes, now_s: int) -> env_mod.Envelope:
        if self.mode == "revoked":
            env = env_mod.parse(raw)
            self.may_read(env.party, env.channel)
            return env  # no signature, certificate or revocation check
        return super()._check(station, raw, now_s)

    def _check_version(self, env: env_mod.Envelope, now_ms: int) -> None:
        if self.mode != "oldversion":  # else: whatever version the roster's minimum asks
            super()._check_version(env, now_ms)

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
            index = self.tree(entry.channel).append(leaf_data(now_ms, first.envelope))
            self.store.add_entry(
                StoredEntry(entry.channel, index, first.envelope, os.urandom(32), "liar", 0, now_ms)
            )
        return out


class LyingRelay(Relay):
    def __init__(self, core: RelayCore, mode: str, target: str) -> None:
        super().__init__(core, rate=100000, burst=100000)
        self.mode, self.target, self.done = mode, target, False
        self.alt: dict[str, list[tuple[bytes, int, LeafKind]]] = {}
        self.alt_seen: dict[str, set[bytes]] = {}
        self.alt_sent: dict[str, int] = {}
        self.real_next: dict[str, int] = {}  # the next index of the true log to take
        self.victim: set[bytes] = set()
        self.omit_seen: set[bytes] = set()  # us/us-1's messages posted (mode omit)
        self.us_messages = 0
        self._posted: dict[str, bytes] = {}
        self._requested: dict[str, int] = {}
        self.outgoing = self.lie

    def end_sessions(self, revocation: Revocation) -> None:
        if self.mode != "revoked":  # a relay that ignores revocations keeps the thief on
            super().end_sessions(revocation)

    # --- simple lies on what the target receives ---------------------------------------

    def lie(self, conn: Connection, text: str) -> str | None:
        if conn.cert.ident != self.target:
            return text
        frame = frames.decode_relay_frame(text)
        if self.mode == "nolink" and isinstance(frame, frames.Link):
            return None  # never handed to the target
        if self.mode == "fork":
            return frames.encode_frame(self.fork_view(frame))
        if self.mode == "badframe":
            if isinstance(frame, frames.Certificates) and not self.done:
                self.done = True
                return BAD_FRAME
            return text
        if not isinstance(frame, frames.Entries) or self.done:
            return text
        entries = list(frame.entries)
        msgs = [i for i, e in enumerate(entries) if _kind(e) == 1]
        if self.mode == "drop" and msgs:
            del entries[msgs[0]]
        elif self.mode == "reorder" and len(msgs) >= 2:
            a, b = entries[msgs[0]], entries[msgs[1]]
            entries[msgs[0]] = replace(a, envelope=b.envelope)
            entries[msgs[1]] = replace(b, envelope=a.envelope)
        elif self.mode == "alter" and msgs:
            raw = bytearray(entries[msgs[0]].envelope)
            raw[-3] ^= 0x40
            entries[msgs[0]] = replace(entries[msgs[0]], envelope=bytes(raw))
        elif self.mode == "badroot" and msgs:
            size = frame.start + len(entries)
            at = max((e.relay_ms for e in entries), default=0)  # a time that holds
            cp = Checkpoint(
                self.core.roster.origin(frame.channel), size, os.urandom(32), (f"time {at}",)
            )
            frame = replace(frame, checkpoint=sign_checkpoint(cp, self.core.log_key).encode())
        else:
            return text
        self.done = True
        return frames.encode_frame(replace(frame, entries=tuple(entries)))

    # --- a forked view for the target ------------------------------------------------------

    def _alt_add(
        self, channel: str, raw: bytes, relay_ms: int, kind: LeafKind = LeafKind.ENVELOPE
    ) -> int:
        digest = env_mod.envelope_hash(raw)
        seen = self.alt_seen.setdefault(channel, set())
        log = self.alt.setdefault(channel, [])
        if digest in self.victim:
            return -1
        if digest not in seen:
            env = env_mod.parse(raw) if kind == LeafKind.ENVELOPE else None
            if env is not None and env.sender == "us/us-1" and env.kind == env_mod.Kind.MESSAGE:
                self.us_messages += 1
                if self.us_messages == 2:
                    self.victim.add(digest)  # us's second message: the target never sees it
                    return -1
            seen.add(digest)
            log.append((raw, relay_ms, kind))
        return next(i for i, (r, _, _) in enumerate(log) if env_mod.envelope_hash(r) == digest)

    def _alt_checkpoint(self, channel: str, size: int) -> tuple[bytes, MerkleTree]:
        tree = MerkleTree()
        log = self.alt.setdefault(channel, [])[:size]
        tree.append_many([leaf_data(ms, r, k) for r, ms, k in log])
        at = max((ms for _, ms, _ in log), default=0)  # its times hold: only the history lies
        cp = Checkpoint(self.core.roster.origin(channel), size, tree.root(), (f"time {at}",))
        return sign_checkpoint(cp, self.core.log_key).encode(), tree

    def fork_view(self, frame: frames.RelayFrame) -> frames.RelayFrame:
        match frame:
            case frames.Entries(id=rid, channel=channel):
                # Taken from the true log in its order only (a push can come before the
                # sync that precedes it), so that the forked view's times still hold.
                upto = self.real_next.get(channel, 0)
                for e in frame.entries:
                    if e.index == upto:
                        self._alt_add(channel, e.envelope, e.relay_ms, e.kind)
                        upto += 1
                self.real_next[channel] = upto
                log = self.alt.get(channel, [])
                start = (
                    self.alt_sent.get(channel, 0)
                    if rid is None
                    else self._requested.get(channel, 0)
                )
                note, tree = self._alt_checkpoint(channel, len(log))
                self.alt_sent[channel] = len(log)
                return frames.Entries(
                    rid,
                    channel,
                    start,
                    tuple(
                        frames.Entry(i, r, ms, k) for i, (r, ms, k) in enumerate(log) if i >= start
                    ),
                    note,
                    tuple(tree.consistency_proof(start, len(log)) if 0 < start < len(log) else []),
                    more=False,
                )
            case frames.Accepted(channel=channel, hash=digest, relay_ms=relay_ms):
                raw = self._posted.get(digest)
                if raw is None:
                    return frame
                index = self._alt_add(channel, raw, relay_ms)
                note, tree = self._alt_checkpoint(channel, len(self.alt.setdefault(channel, [])))
                return replace(
                    frame,
                    index=index,
                    checkpoint=note,
                    proof=tuple(tree.inclusion_proof(index, tree.size)),
                )
        return frame

    async def _dispatch(self, conn: Connection, frame: frames.StationFrame) -> None:
        if (
            self.mode == "nolink"
            and conn.cert.ident == self.target
            and isinstance(frame, frames.Link)
        ):
            return  # never forwarded from the target
        if self.mode == "omitrevoke" and isinstance(frame, frames.Revoke):
            conn.send(frames.encode_frame(frames.Ok(frame.id)))  # "logged": it is not
            return
        if self.mode == "omit" and isinstance(frame, frames.Post):
            env = env_mod.parse(frame.envelope)
            if env.hash in self.victim:
                return  # posted again: still never logged, never answered
            if env.sender == "us/us-1" and env.kind == env_mod.Kind.MESSAGE:
                if env.hash not in self.omit_seen:
                    self.omit_seen.add(env.hash)
                    self.us_messages += 1
                if self.us_messages == 2 and not self.victim:
                    self.victim.add(env.hash)
                    return  # never logged, never answered
        if self.mode == "fork" and conn.cert.ident == self.target:
            match frame:
                case frames.Post(envelope=raw):
                    self._posted[env_mod.envelope_hash(raw)] = raw
                case frames.Sync(channel=channel, start=start):
                    self._requested[channel] = start
        await super()._dispatch(conn, frame)


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
