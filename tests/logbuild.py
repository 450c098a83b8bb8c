"""A channel's log built in-process, as an honest relay and stations would record it.

For tests of `hotline verify` and of logcheck without a cluster: stations seal real
envelopes, the "relay" appends them to a Merkle tree and signs checkpoints, stations
cosign them and write receipts; `transcript()` gives what `hotline export` would.
Tests then lie by changing the transcript, or by logging what an honest relay would not.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from hotline import body as body_mod
from hotline import envelope as env_mod
from hotline.envelope import Kind, Precedence
from hotline.errors import NotARecipient
from hotline.frames import Entry
from hotline.keys import Revocation, StationCertificate
from hotline.leaf import LeafKind, leaf_data
from hotline.merkle import MerkleTree
from hotline.notes import Checkpoint, SignedCheckpoint, b64, cosign, sign_checkpoint
from hotline.station import paths
from hotline.transcript import FORMAT, MULTI_FORMAT

from .conftest import World, make_world

T0 = 1_700_000_000
"""The world's clock (unix s): certificates are valid from an hour before to a day after."""


@dataclass
class ChannelLog:
    world: World
    channel: str = "us-ru"
    entries: list[tuple[bytes, int]] = field(default_factory=list)  # (bytes, relay_ms)
    kinds: list[LeafKind] = field(default_factory=list)  # of each entry
    tree: MerkleTree = field(default_factory=MerkleTree)
    chains: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # party -> last link
    checkpoints: list[SignedCheckpoint] = field(default_factory=list)
    revocations: list[Revocation] = field(default_factory=list)
    now_ms: int = T0 * 1000
    certify: bool = True  # log the members' certificates first, as the relay does
    relay: str = "relay.ae"  # the relay (of the world's roster) whose log this is

    def __post_init__(self) -> None:
        if self.certify:
            for party in self.world.roster.channel(self.channel).members:
                if party in self.world.certs:
                    self.key_event(self.world.certs[party].encode())

    @property
    def origin(self) -> str:
        return self.world.roster.origin(self.channel)

    def recipients(self) -> list[StationCertificate]:
        members = self.world.roster.channel(self.channel).members
        return [self.world.certs[p] for p in members]

    def seal(
        self,
        party: str,
        body: body_mod.Body | dict[str, Any],
        kind: Kind = Kind.MESSAGE,
        *,
        channel: str | None = None,
        link: tuple[int, bytes] | None = None,
    ) -> bytes:
        """An envelope by ``party``'s station: the next link of its chain unless ``link``
        (the previous sequence and hash) says otherwise. A dict is a body no honest
        station would write, sealed as it is."""
        seq, prev = link or self.chains.get(party, (0, env_mod.ZERO_HASH))
        return env_mod.seal(
            raw_body(body) if isinstance(body, dict) else body_mod.encode(body),
            sender=self.world.stations[party],
            channel=channel or self.channel,
            seq=seq + 1,
            prev=prev,
            recipients=self.recipients(),
            created_ms=self.now_ms,
            kind=kind,
            precedence=Precedence.PRIORITY,
        )

    def log(self, raw: bytes, kind: LeafKind = LeafKind.ENVELOPE) -> int:
        """The relay appends an envelope (whatever it is) at the next index."""
        self.now_ms += 1000
        self.entries.append((raw, self.now_ms))
        self.kinds.append(kind)
        return self.tree.append(leaf_data(self.now_ms, raw, kind))

    def key_event(self, statement: bytes) -> int:
        """The relay logs a certificate or a revocation at the next index."""
        return self.log(statement, LeafKind.KEY_EVENT)

    def send(
        self, party: str, body: body_mod.Body | dict[str, Any], kind: Kind = Kind.MESSAGE
    ) -> int:
        raw = self.seal(party, body, kind)
        self.chains[party] = (env_mod.parse(raw).seq, env_mod.envelope_hash(raw))
        return self.log(raw)

    def message(self, party: str, text: str) -> int:
        return self.send(party, body_mod.text(text, "en"))

    def receipt(
        self,
        party: str,
        status: str,
        of_index: int,
        *,
        of_hash: bytes | None = None,
        checkpoint: SignedCheckpoint | None = None,
        operator: str | None = None,
    ) -> int:
        """A receipt carrying the latest checkpoint (as its sender verified it)."""
        note = checkpoint or self.checkpoints[-1]
        digest = env_mod.envelope_hash(self.entries[of_index][0]) if of_hash is None else of_hash
        body = body_mod.receipt(
            body_mod.ReceiptStatus(status), of_index, digest, note.encode(), operator
        )
        return self.send(party, body, Kind.RECEIPT)

    def checkpoint(self, *cosigners: str, tree: MerkleTree | None = None) -> SignedCheckpoint:
        """The relay signs the log (or ``tree``) as it is; the named parties cosign it."""
        tree = tree or self.tree
        cp = Checkpoint(self.origin, tree.size, tree.root(), (f"time {self.now_ms}",))
        signed = sign_checkpoint(cp, self.world.relays.get(self.relay, self.world.relay))
        for party in cosigners:
            signed = cosign(signed, self.world.stations[party].cosigner(), self.now_ms // 1000)
        if tree is self.tree:
            self.checkpoints.append(signed)
        return signed

    def revoke(self, party: str, at_s: int) -> Revocation:
        """``party`` revokes its station key, saying ``at_s``; the relay logs it next."""
        rev = self.world.parties[party].revoke(self.world.certs[party], at_s, "compromised")
        self.revocations.append(rev)
        self.key_event(rev.encode())
        return rev

    def transcript(self, reader: str = "us", bodies: bool = True) -> dict[str, Any]:
        """What ``reader``'s station would export (as `hotline export --with-bodies`)."""
        notes = sorted(self.checkpoints, key=lambda c: c.size)
        sizes = [c.size for c in notes]
        doc: dict[str, Any] = {
            "format": FORMAT,
            "channel": self.channel,
            "exported_by": self.world.stations[reader].ident,
            "exported_ms": self.now_ms,
            "roster": self.world.roster.encode().decode(),
            "entries": [
                Entry(i, raw, ms, kind).wire()
                for i, ((raw, ms), kind) in enumerate(zip(self.entries, self.kinds, strict=True))
            ],
            "checkpoints": [c.encode().decode() for c in notes],
            "consistency": [
                {"from": a, "to": b, "proof": [b64(p) for p in self.tree.consistency_proof(a, b)]}
                for a, b in itertools.pairwise(sizes)
                if 0 < a < b <= self.tree.size
            ],
            "bodies": [],
        }
        if bodies:
            for i, (raw, _) in enumerate(self.entries):
                if self.kinds[i] != LeafKind.ENVELOPE:
                    continue
                env = env_mod.parse(raw)
                try:
                    key = env_mod.unwrap_key(env, self.world.stations[reader])
                except NotARecipient:
                    continue
                doc["bodies"].append(
                    {
                        "index": i,
                        "hash": env.hash.hex(),
                        "body_key": b64(key),
                        "body": b64(env_mod.decrypt_with_key(env, key)),
                    }
                )
        return doc


def exchange() -> ChannelLog:
    """us sends three messages; ru receives them, answers, acknowledges the first.

    Indices: 0-1 the certificates of us and ru (key events), 2-4 us messages, 5-7 ru's
    delivered receipts, 8 ru's message, 9 us's delivered receipt, 10 ru's acknowledgment
    of 2, 11 an overdue notice by us.
    """
    log = ChannelLog(make_world(T0))
    sent = [log.message("us", f"message {i}") for i in range(3)]
    log.checkpoint("us", "ru")
    for i in sent:
        log.receipt("ru", "delivered", i)
    reply = log.message("ru", "reply from ru")
    log.checkpoint("us", "ru")
    log.receipt("us", "delivered", reply)
    log.receipt("ru", "acknowledged", sent[0], operator="Capt. Volkov")
    log.send(
        "us",
        body_mod.OverdueNotice(body_mod.Side.SENDER, sent[1], "ru", 1, log.now_ms),
        Kind.NOTICE,
    )
    log.checkpoint("us", "ru")
    return log


@dataclass
class RelayLogs:
    """One channel logged by each relay of the world's roster (issue 13), each relay its own
    ChannelLog: a station seals an envelope once and posts it to the relays named (all by
    default); receipts and notices name an entry by its qualified index (station/paths.py)."""

    world: World
    channel: str = "us-ru"
    logs: dict[str, ChannelLog] = field(default_factory=dict)
    chains: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # party -> last link

    def __post_init__(self) -> None:
        for name in self.world.roster.relay_names():
            self.logs[name] = ChannelLog(self.world, self.channel, relay=name)

    @property
    def names(self) -> list[str]:
        return list(self.logs)

    def at(self, relay: str, index: int) -> int:
        """The qualified index of entry ``index`` of ``relay``'s log."""
        return paths.qualify(self.names.index(relay), index)

    def seal(
        self, party: str, body: body_mod.Body | dict[str, Any], kind: Kind = Kind.MESSAGE
    ) -> bytes:
        """The next envelope of ``party``'s chain (not posted yet)."""
        first = self.logs[self.names[0]]
        raw = first.seal(party, body, kind, link=self.chains.get(party, (0, env_mod.ZERO_HASH)))
        self.chains[party] = (env_mod.parse(raw).seq, env_mod.envelope_hash(raw))
        return raw

    def post(self, raw: bytes, into: tuple[str, ...] | None = None) -> dict[str, int]:
        """Each relay named logs ``raw``: its index in each."""
        return {name: self.logs[name].log(raw) for name in into or self.names}

    def send(
        self,
        party: str,
        body: body_mod.Body | dict[str, Any],
        kind: Kind = Kind.MESSAGE,
        into: tuple[str, ...] | None = None,
    ) -> dict[str, int]:
        return self.post(self.seal(party, body, kind), into)

    def message(self, party: str, text: str, into: tuple[str, ...] | None = None) -> dict[str, int]:
        return self.send(party, body_mod.text(text, "en"), into=into)

    def receipt(
        self,
        party: str,
        status: str,
        of: tuple[str, int],
        into: tuple[str, ...] | None = None,
        *,
        of_hash: bytes | None = None,
        checkpoint: SignedCheckpoint | None = None,
    ) -> dict[str, int]:
        """A receipt for entry ``of`` = (relay, index), carrying that relay's latest
        checkpoint (as its sender took the envelope from that relay)."""
        named = self.logs[of[0]]
        digest = env_mod.envelope_hash(named.entries[of[1]][0]) if of_hash is None else of_hash
        note = (checkpoint or named.checkpoints[-1]).encode()
        status_ = body_mod.ReceiptStatus(status)
        body = body_mod.receipt(status_, self.at(*of), digest, note, None)
        return self.send(party, body, Kind.RECEIPT, into)

    def overdue(
        self,
        party: str,
        of: tuple[str, int],
        late: str,
        into: tuple[str, ...] | None = None,
        side: body_mod.Side = body_mod.Side.SENDER,
    ) -> dict[str, int]:
        """``party``'s notice that ``late`` is overdue on entry ``of`` = (relay, index)."""
        now = self.logs[self.names[0]].now_ms
        notice = body_mod.OverdueNotice(side, self.at(*of), late, 1, now)
        return self.send(party, notice, Kind.NOTICE, into)

    def checkpoint(self, *cosigners: str) -> None:
        """Every relay signs its log as it is."""
        for log in self.logs.values():
            log.checkpoint(*cosigners)

    def transcript(self, reader: str = "us", bodies: bool = True) -> dict[str, Any]:
        """What ``reader``'s station exports: every relay's log, and each body it can read
        disclosed once, at the first log (in roster order) that holds its envelope."""
        first, *others = self.names
        doc = self.logs[first].transcript(reader, bodies=False)
        doc["format"] = MULTI_FORMAT
        doc["relays"] = []
        for name in others:
            part = self.logs[name].transcript(reader, bodies=False)
            doc["relays"].append(
                {"relay": name, **{k: part[k] for k in ("entries", "checkpoints", "consistency")}}
            )
        if not bodies:
            return doc
        seen: set[bytes] = set()
        for name, log in self.logs.items():
            for i, (raw, _) in enumerate(log.entries):
                if log.kinds[i] != LeafKind.ENVELOPE or env_mod.envelope_hash(raw) in seen:
                    continue
                env = env_mod.parse(raw)
                seen.add(env.hash)
                try:
                    key = env_mod.unwrap_key(env, self.world.stations[reader])
                except NotARecipient:
                    continue
                doc["bodies"].append(
                    {
                        "index": self.at(name, i),
                        "hash": env.hash.hex(),
                        "body_key": b64(key),
                        "body": b64(env_mod.decrypt_with_key(env, key)),
                    }
                )
        return doc


def two_relays(skip: tuple[str, int] | None = None) -> RelayLogs:
    """The exchange of ``exchange()`` through relay.ae and relay.ch, each logging all of it
    (but ``skip`` = (relay, n): that relay never logs the n-th envelope, from 0); ru takes
    us's messages from whichever relay first: #0 and #2 from relay.ae, #1 from relay.ch,
    and its receipts say so; us's overdue notice names #1 as it took it, from relay.ch.
    A receipt or notice names an envelope in a log that holds it."""
    logs = RelayLogs(make_world(T0, more_relays=("relay.ch",)))
    count = itertools.count()

    def send(party: str, body: body_mod.Body, kind: Kind = Kind.MESSAGE) -> dict[str, int]:
        n = next(count)
        into = tuple(r for r in logs.names if skip is None or skip != (r, n))
        return logs.send(party, body, kind, into)

    def named(where: str, held: dict[str, int]) -> tuple[str, int]:
        where = where if where in held else next(iter(held))
        return where, held[where]

    def receipt(party: str, status: str, of: tuple[str, int]) -> dict[str, int]:
        named_log = logs.logs[of[0]]
        body = body_mod.receipt(
            body_mod.ReceiptStatus(status),
            logs.at(*of),
            env_mod.envelope_hash(named_log.entries[of[1]][0]),
            named_log.checkpoints[-1].encode(),
            "Capt. Volkov" if status == "acknowledged" else None,
        )
        return send(party, body, Kind.RECEIPT)

    sent = [send("us", body_mod.text(f"message {i}", "en")) for i in range(3)]
    logs.checkpoint("us", "ru")
    for where, held in zip(["relay.ae", "relay.ch", "relay.ae"], sent, strict=True):
        receipt("ru", "delivered", named(where, held))
    reply = send("ru", body_mod.text("reply from ru", "en"))
    logs.checkpoint("us", "ru")
    receipt("us", "delivered", named("relay.ch", reply))
    receipt("ru", "acknowledged", named("relay.ae", sent[0]))
    now = logs.logs["relay.ae"].now_ms
    late = named("relay.ch", sent[1])
    send(
        "us",
        body_mod.OverdueNotice(body_mod.Side.SENDER, logs.at(*late), "ru", 1, now),
        Kind.NOTICE,
    )
    logs.checkpoint("us", "ru")
    return logs


def raw_body(value: dict[str, Any]) -> bytes:
    """A hand-made body, for the tests of what a hostile station might encrypt."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
