"""Transcripts: a channel's record, exported by a station, verified offline by anyone.

Format ``hotline-transcript/v1`` (JSON, documented in docs/TRANSCRIPT.md)::

    {"format": "hotline-transcript/v1", "channel", "exported_by", "exported_ms",
     "roster": NOTE, "certificates": [NOTE], "revocations": [NOTE],
     "entries": [{"index", "envelope": B64, "relay_ms"}],
     "checkpoints": [NOTE],                      # every checkpoint the station verified
     "consistency": [{"from", "to", "proof": [B64]}],   # between successive checkpoints
     "bodies": [{"index", "hash": HEX, "body_key": B64, "body": B64}]}   # optional

Verification needs no network and no keys: the roster must be signed by every
party, certificates by their party roots; every envelope's signature must verify with
a certificate valid (and not revoked) at the relay time; each sender's sequence and
hash chain must be gap-free; every checkpoint must be signed by the relay's key in the
roster and its root must equal the Merkle root of the entries; successive checkpoints
must be consistent; cosignatures must verify; disclosed bodies must decrypt from their
envelopes to exactly what the file claims; receipts must reference existing messages
and carry checkpoints consistent with the log.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from . import body as body_mod
from . import envelope as env_mod
from .envelope import Kind
from .errors import HotlineError, Malformed
from .keys import KeyRing
from .merkle import MerkleTree, verify_consistency
from .notes import CosignatureVerifier, cosigners, open_checkpoint
from .roster import open_roster

FORMAT = "hotline-transcript/v1"


def _unb64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Malformed(f"{what} is not base64", field=what) from exc


def dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=None, separators=(",", ":")).encode() + b"\n"


# --- verify --------------------------------------------------------------------------------------


@dataclass
class Failure:
    channel: str
    index: int | None
    reason: str
    code: str

    def __str__(self) -> str:
        where = f"{self.channel}#{self.index}" if self.index is not None else self.channel
        return f"{where}: {self.code}: {self.reason}"


@dataclass
class PartyReport:
    sent: int = 0
    delivered: int = 0
    acknowledged: int = 0
    overdue: int = 0


@dataclass
class Report:
    channel: str
    entries: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    checkpoints: int = 0
    largest_checkpoint: int = 0
    cosigned: dict[str, int] = field(default_factory=dict)  # witness -> largest size cosigned
    parties: dict[str, PartyReport] = field(default_factory=dict)
    bodies_checked: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, index: int | None, exc: HotlineError | str, code: str | None = None) -> None:
        if isinstance(exc, HotlineError):
            self.failures.append(Failure(self.channel, index, exc.message, code or exc.code))
        else:
            self.failures.append(Failure(self.channel, index, exc, code or "verification_failed"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "channel": self.channel,
            "entries": self.entries,
            "first_ms": self.first_ms,
            "last_ms": self.last_ms,
            "checkpoints": self.checkpoints,
            "largest_checkpoint": self.largest_checkpoint,
            "cosigned": self.cosigned,
            "bodies_checked": self.bodies_checked,
            "parties": {p: vars(r) for p, r in self.parties.items()},
            "failures": [vars(f) for f in self.failures],
        }


def verify(doc: Any) -> Report:
    """Check a transcript; every problem becomes a Failure naming channel, index, reason."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        report = Report(str(doc.get("channel", "?")) if isinstance(doc, dict) else "?")
        report.fail(None, Malformed(f"not a {FORMAT} file"))
        return report
    channel = str(doc.get("channel"))
    report = Report(channel)
    try:
        roster = open_roster(str(doc["roster"]).encode())
        roster.channel(channel)
    except (HotlineError, KeyError) as exc:
        report.fail(None, exc if isinstance(exc, HotlineError) else Malformed(str(exc)))
        return report
    members = roster.channel(channel).members
    report.parties = {p: PartyReport() for p in members}
    ring = KeyRing(roster.roots())
    for kind, items in (
        ("certificate", doc.get("certificates", [])),
        ("revocation", doc.get("revocations", [])),
    ):
        for data in items:
            try:
                (ring.add_certificate if kind == "certificate" else ring.add_revocation)(
                    str(data).encode()
                )
            except HotlineError as exc:
                report.fail(None, f"{kind} does not verify: {exc}", exc.code)
    tree = MerkleTree()
    chains: dict[str, tuple[int, bytes]] = {}
    envelopes: dict[int, env_mod.Envelope] = {}
    for expected, item in enumerate(doc.get("entries", [])):
        index = item.get("index")
        if index != expected:
            report.fail(expected, f"entries jump from {expected - 1} to {index}", "chain_gap")
            break
        raw = _unb64(item.get("envelope"), "envelope")
        relay_ms = int(item.get("relay_ms", 0))
        tree.append(raw)
        report.entries += 1
        report.first_ms = relay_ms if report.first_ms is None else report.first_ms
        report.last_ms = relay_ms
        _check_entry(report, ring, chains, envelopes, channel, index, raw, relay_ms)
    _check_checkpoints(report, doc, roster, ring, tree)
    _check_bodies(report, doc, envelopes, tree, roster, channel)
    for env in envelopes.values():
        if env.kind == Kind.MESSAGE and env.party in report.parties:
            report.parties[env.party].sent += 1
    return report


def _check_entry(
    report: Report,
    ring: KeyRing,
    chains: dict[str, tuple[int, bytes]],
    envelopes: dict[int, env_mod.Envelope],
    channel: str,
    index: int,
    raw: bytes,
    relay_ms: int,
) -> None:
    try:
        env = env_mod.parse(raw)
        if env.channel != channel:
            raise Malformed(f"envelope of channel {env.channel} in {channel}", index=index)
        env_mod.verify(env, ring, at=relay_ms // 1000)
        last = chains.get(env.sender, (0, env_mod.ZERO_HASH))
        env_mod.check_chain(*last, env)
    except HotlineError as exc:
        report.fail(index, exc)
        return
    chains[env.sender] = (env.seq, env.hash)
    envelopes[index] = env


def _check_checkpoints(
    report: Report, doc: dict[str, Any], roster: Any, ring: KeyRing, tree: MerkleTree
) -> None:
    channel = report.channel
    origin = roster.origin(channel)
    witnesses = [CosignatureVerifier(c.ident, c.signing) for c in ring.all_certificates()]
    seen: list[Any] = []
    for note in doc.get("checkpoints", []):
        try:
            cp = open_checkpoint(str(note).encode(), roster.relay_key, origin)
        except HotlineError as exc:
            report.fail(None, f"checkpoint does not verify: {exc}", exc.code)
            continue
        report.checkpoints += 1
        if cp.size > tree.size:
            report.fail(
                cp.size,
                f"checkpoint of size {cp.size} is beyond the {tree.size} entries",
                "bad_proof",
            )
            continue
        if tree.root(cp.size) != cp.root:
            report.fail(
                cp.size - 1 if cp.size else None,
                f"checkpoint of size {cp.size} does not match the entries' Merkle root",
                "bad_proof",
            )
            continue
        report.largest_checkpoint = max(report.largest_checkpoint, cp.size)
        try:
            for name, _ts in cosigners(cp, witnesses).items():
                report.cosigned[name] = max(report.cosigned.get(name, 0), cp.size)
        except HotlineError as exc:
            report.fail(cp.size, f"cosignature does not verify: {exc}", exc.code)
        seen.append(cp)
    by_size = {cp.size: cp for cp in seen}
    for item in doc.get("consistency", []):
        a, b = by_size.get(item.get("from")), by_size.get(item.get("to"))
        if a is None or b is None:
            continue
        try:
            verify_consistency(
                a.size, b.size, [_unb64(p, "proof") for p in item["proof"]], a.root, b.root
            )
        except HotlineError as exc:
            report.fail(
                b.size, f"checkpoints {a.size} and {b.size} are not consistent: {exc}", "fork"
            )
    sizes = [cp.size for cp in seen]
    if sizes != sorted(sizes):
        report.fail(None, "checkpoints go back in size (a rollback)", "fork")


def _check_bodies(
    report: Report,
    doc: dict[str, Any],
    envelopes: dict[int, env_mod.Envelope],
    tree: MerkleTree,
    roster: Any,
    channel: str,
) -> None:
    delivered: dict[int, set[str]] = defaultdict(set)
    acknowledged: dict[int, set[str]] = defaultdict(set)
    overdue: Counter[str] = Counter()
    for item in doc.get("bodies", []):
        index = item.get("index")
        env = envelopes.get(index) if isinstance(index, int) else None
        if env is None:
            report.fail(index, "a disclosed body names no valid entry", "malformed")
            continue
        try:
            if env.hash.hex() != item.get("hash"):
                raise Malformed("disclosed body is bound to another envelope hash", index=index)
            plain = env_mod.decrypt_with_key(env, _unb64(item.get("body_key"), "body_key"))
            if plain != _unb64(item.get("body"), "body"):
                raise Malformed(
                    "the envelope decrypts to something else than the file claims", index=index
                )
            content = body_mod.decode(plain)
        except HotlineError as exc:
            report.fail(index, exc)
            continue
        report.bodies_checked += 1
        if env.kind == Kind.RECEIPT:
            _check_receipt(
                report,
                index,
                env,
                content,
                envelopes,
                tree,
                roster,
                channel,
                delivered,
                acknowledged,
            )
        elif (
            env.kind == Kind.NOTICE
            and content.get("notice") == "overdue"
            and content.get("side") == "sender"
            and content.get("level") == 1
        ):
            overdue[str(content.get("party"))] += 1
    for parties in delivered.values():
        for p in parties:
            if p in report.parties:
                report.parties[p].delivered += 1
    for parties in acknowledged.values():
        for p in parties:
            if p in report.parties:
                report.parties[p].acknowledged += 1
    for p, n in overdue.items():
        if p in report.parties:
            report.parties[p].overdue += n


def _check_receipt(
    report: Report,
    index: int,
    env: env_mod.Envelope,
    content: dict[str, Any],
    envelopes: dict[int, env_mod.Envelope],
    tree: MerkleTree,
    roster: Any,
    channel: str,
    delivered: dict[int, set[str]],
    acknowledged: dict[int, set[str]],
) -> None:
    try:
        of_index = int(content["of_index"])
        target = envelopes.get(of_index)
        if of_index >= index or target is None or target.hash.hex() != content.get("of_hash"):
            report.fail(index, f"receipt references no message #{of_index} of this log", "fork")
            return
        cp = open_checkpoint(
            str(content.get("checkpoint", "")).encode(), roster.relay_key, roster.origin(channel)
        )
        if cp.size > tree.size or tree.root(cp.size) != cp.root:
            report.fail(
                index,
                f"receipt carries a checkpoint of size {cp.size} inconsistent with this log",
                "fork",
            )
            return
    except (HotlineError, KeyError, ValueError) as exc:
        report.fail(index, f"malformed receipt: {exc}", "malformed")
        return
    (acknowledged if content.get("status") == "acknowledged" else delivered)[of_index].add(
        env.party
    )
