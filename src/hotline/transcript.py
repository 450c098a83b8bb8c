"""Transcripts: a channel's record, exported by a station, verified offline by anyone.

Format ``hotline-transcript/v1`` (JSON, documented in docs/EVIDENCE.md)::

    {"format": "hotline-transcript/v1", "channel", "exported_by", "exported_ms",
     "roster": NOTE, "certificates": [NOTE], "revocations": [NOTE],
     "entries": [{"index", "envelope": B64, "relay_ms"}],
     "checkpoints": [NOTE],                      # every checkpoint the station verified
     "consistency": [{"from", "to", "proof": [B64]}],   # between successive checkpoints
     "bodies": [{"index", "hash": HEX, "body_key": B64, "body": B64}]}   # optional

Verification needs no network and no keys: the roster must be signed by every
party, certificates by their party roots; then every entry, checkpoint, cosignature,
disclosed body and receipt is checked by logcheck.py, the same checks a station makes
as it receives the log. Each failure becomes a line ``channel#index: code: reason``.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from . import envelope as env_mod
from . import logcheck
from .body import ReceiptStatus
from .envelope import Kind
from .errors import ForkDetected, HotlineError, Malformed
from .keys import KeyRing
from .merkle import MerkleTree
from .notes import SignedCheckpoint
from .roster import open_roster
from .wire import MAX_U63

FORMAT = "hotline-transcript/v1"


def loads(data: bytes) -> Any:
    """A transcript file's JSON; Malformed (never RecursionError) for anything else."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"not a transcript: {exc}", field="transcript") from exc


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise Malformed(f"{what} is not base64", field=what)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Malformed(f"{what} is not base64", field=what) from exc


def _note(value: Any, what: str) -> bytes:
    """A signed note as it stands in the JSON: a string of UTF-8 text."""
    if not isinstance(value, str):
        raise Malformed(f"{what} is not a string", field=what)
    try:
        return value.encode()
    except UnicodeEncodeError as exc:  # JSON can carry lone surrogates
        raise Malformed(f"{what} is not valid Unicode", field=what) from exc


def _count(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_U63:
        raise Malformed(f"{what} must be an integer in 0..2^63-1", field=what)
    return value


def _list(report: Report, doc: dict[str, Any], key: str) -> list[Any]:
    """``doc[key]`` as a list ([] when absent); anything else is a failure, read as []."""
    value = doc.get(key, [])
    if isinstance(value, list):
        return value
    report.fail(None, Malformed(f"{key} is not a list", field=key))
    return []


def _dicts(report: Report, doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = _list(report, doc, key)
    if all(isinstance(item, dict) for item in items):
        return items
    report.fail(None, Malformed(f"an item of {key} is not an object", field=key))
    return [item for item in items if isinstance(item, dict)]


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
        roster = open_roster(_note(doc.get("roster"), "roster"))
        ring = KeyRing(roster.roots())
        ctx = logcheck.LogContext.of(roster, channel, ring)
        members = roster.channel(channel).members
    except HotlineError as exc:
        report.fail(None, exc)
        return report
    report.parties = {p: PartyReport() for p in members}
    for kind in ("certificate", "revocation"):
        for data in _list(report, doc, f"{kind}s"):
            try:
                (ring.add_certificate if kind == "certificate" else ring.add_revocation)(
                    _note(data, kind)
                )
            except HotlineError as exc:
                report.fail(None, f"{kind} does not verify: {exc}", exc.code)
    log = _check_entries(report, ctx, _list(report, doc, "entries"))
    _check_checkpoints(report, ctx, doc, log.tree)
    _check_bodies(report, ctx, doc, log)
    for env in log.envelopes.values():
        if env.kind == Kind.MESSAGE and env.party in report.parties:
            report.parties[env.party].sent += 1
    return report


@dataclass
class _Log:
    """The entries as read so far."""

    tree: MerkleTree = field(default_factory=MerkleTree)
    hashes: list[bytes] = field(default_factory=list)  # of every entry, valid or not
    envelopes: dict[int, env_mod.Envelope] = field(default_factory=dict)  # those that hold
    chains: dict[str, logcheck.Chain] = field(default_factory=dict)

    def hash_at(self, index: int) -> bytes | None:
        return self.hashes[index] if 0 <= index < len(self.hashes) else None


def _check_entries(report: Report, ctx: logcheck.LogContext, items: list[Any]) -> _Log:
    log = _Log()
    for expected, item in enumerate(items):
        index = item.get("index") if isinstance(item, dict) else None
        if index != expected:
            report.fail(expected, f"entries jump from {expected - 1} to {index}", "chain_gap")
            break
        try:
            raw = _unb64(item.get("envelope"), "envelope")
            relay_ms = _count(item.get("relay_ms", 0), "relay_ms")
        except HotlineError as exc:
            report.fail(index, f"entry is not readable: {exc}", "malformed")
            break
        log.tree.append(raw)
        log.hashes.append(env_mod.envelope_hash(raw))
        report.entries += 1
        report.first_ms = relay_ms if report.first_ms is None else report.first_ms
        report.last_ms = relay_ms
        try:
            env = logcheck.check_entry(
                ctx,
                raw,
                index=index,
                relay_ms=relay_ms,
                chain=lambda sender: log.chains.get(sender, logcheck.NO_CHAIN),
            )
        except HotlineError as exc:
            report.fail(index, exc)
            continue
        log.chains[env.sender] = (env.seq, env.hash)
        log.envelopes[index] = env
    return log


def _check_checkpoints(
    report: Report, ctx: logcheck.LogContext, doc: dict[str, Any], tree: MerkleTree
) -> None:
    seen: list[SignedCheckpoint] = []
    for note in _list(report, doc, "checkpoints"):
        try:
            cp = logcheck.open_log_checkpoint(ctx, _note(note, "checkpoint"))
        except HotlineError as exc:
            report.fail(None, f"checkpoint does not verify: {exc}", exc.code)
            continue
        report.checkpoints += 1
        try:
            logcheck.check_root(ctx, cp, root_at=tree.root, size_now=tree.size)
        except HotlineError as exc:
            report.fail(exc.index, exc)
            continue
        report.largest_checkpoint = max(report.largest_checkpoint, cp.size)
        try:
            for name in logcheck.check_cosignatures(ctx, cp):
                report.cosigned[name] = max(report.cosigned.get(name, 0), cp.size)
        except HotlineError as exc:
            report.fail(cp.size, f"cosignature does not verify: {exc.message}", exc.code)
        seen.append(cp)
    by_size = {cp.size: cp for cp in seen}
    for item in _dicts(report, doc, "consistency"):
        start, end = item.get("from"), item.get("to")
        if not isinstance(start, int) or not isinstance(end, int):
            report.fail(None, Malformed("a consistency proof names no sizes", field="consistency"))
            continue
        a, b = by_size.get(start), by_size.get(end)
        if a is None or b is None:
            continue
        try:
            hashes = item.get("proof", [])
            if not isinstance(hashes, list):
                raise Malformed("a consistency proof is not a list", field="proof")
            proof = [_unb64(p, "proof") for p in hashes]
            logcheck.check_consistent(ctx, a, b, proof)
        except HotlineError as exc:
            report.fail(b.size, exc)
    for before, after in itertools.pairwise(cp.size for cp in seen):
        try:
            logcheck.check_no_rollback(ctx, before, after)
        except HotlineError as exc:
            report.fail(None, exc)
            break


def _check_bodies(report: Report, ctx: logcheck.LogContext, doc: dict[str, Any], log: _Log) -> None:
    delivered: dict[int, set[str]] = defaultdict(set)
    acknowledged: dict[int, set[str]] = defaultdict(set)
    overdue: Counter[str] = Counter()
    for item in _dicts(report, doc, "bodies"):
        named = item.get("index")
        index = named if isinstance(named, int) and not isinstance(named, bool) else None
        env = log.envelopes.get(index) if index is not None else None
        if index is None or env is None:
            report.fail(index, "a disclosed body names no valid entry", "malformed")
            continue
        try:
            content = logcheck.check_disclosed_body(
                ctx,
                env,
                index=index,
                envelope_hash=str(item.get("hash")),
                body_key=_unb64(item.get("body_key"), "body_key"),
                body=_unb64(item.get("body"), "body"),
            )
        except HotlineError as exc:
            report.fail(index, exc)
            continue
        report.bodies_checked += 1
        if env.kind == Kind.RECEIPT:
            try:
                receipt = logcheck.receipt_of(content)
                logcheck.check_receipt(
                    ctx,
                    receipt,
                    index=index,
                    entry_hash_at=log.hash_at,
                    root_at=log.tree.root,
                    size_now=index + 1,  # what the log held when the receipt entered it
                )
            except ForkDetected as exc:
                report.fail(index, exc)
                continue
            except HotlineError as exc:
                report.fail(index, f"malformed receipt: {exc.message}", "malformed")
                continue
            done = acknowledged if receipt.status == ReceiptStatus.ACKNOWLEDGED else delivered
            done[receipt.of_index].add(env.party)
        elif env.kind == Kind.NOTICE and (late := logcheck.overdue_party(content)) is not None:
            overdue[late] += 1
    for parties in delivered.values():
        for p in parties & report.parties.keys():
            report.parties[p].delivered += 1
    for parties in acknowledged.values():
        for p in parties & report.parties.keys():
            report.parties[p].acknowledged += 1
    for p, n in overdue.items():
        if p in report.parties:
            report.parties[p].overdue += n
