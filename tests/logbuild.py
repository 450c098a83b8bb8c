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
from hotline.transcript import FORMAT

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
        signed = sign_checkpoint(cp, self.world.relay)
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


def raw_body(value: dict[str, Any]) -> bytes:
    """A hand-made body, for the tests of what a hostile station might encrypt."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
