"""Transcripts: a channel's record, exported by a station, verified offline by anyone.

Format ``hotline-transcript/v3`` (JSON, documented in docs/EVIDENCE.md)::

    {"format": "hotline-transcript/v3", "channel", "exported_by", "exported_ms",
     "roster": NOTE,
     "entries": [{"index", "kind": "envelope"|"key_event", "envelope": B64, "relay_ms"}],
     "checkpoints": [NOTE],                      # every checkpoint the station verified
     "consistency": [{"from", "to", "proof": [B64]}],   # between successive checkpoints
     "bodies": [{"index", "hash": HEX, "body_key": B64, "body": B64}]}   # optional

Verification needs no network and no keys: the roster must be signed by every
party; certificates and revocations are the log's own key events (covered by its
checkpoints, so none can be left out), taken in log order; then every entry (its Merkle
leaf recomputed from its kind, relay time and bytes), its signer's key by log position
(keyhistory.py), its time, checkpoint, cosignature,
disclosed body, receipt and notice is checked by logcheck.py, the same checks a station
makes as it receives the log. Each failure becomes a line ``WHERE: code: reason``, WHERE
being ``channel#index``, ``channel (checkpoint of size N)`` or ``channel (channel)``.
The roster is the file's own, so the result is evidence only when it matches an
``Anchor`` the caller trusts (anchor.py); without one the verdict is consistent only.
"""

from __future__ import annotations

import enum
import itertools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from . import envelope as env_mod
from . import logcheck
from .anchor import Anchor, root_fingerprint, roster_hash
from .body import ReceiptStatus
from .envelope import Kind
from .errors import BadProof, ForkDetected, HotlineError, Malformed
from .frames import Entry
from .keys import KeyRing
from .leaf import LeafKind, leaf_data
from .merkle import MerkleTree
from .notes import SignedCheckpoint, parse_checkpoint_text, parse_note, unb64
from .roster import Roster, open_roster
from .wire import MAX_U63

FORMAT = "hotline-transcript/v3"  # v2: the relay's time in each leaf; v3: key events


def loads(data: bytes) -> Any:
    """A transcript file's JSON; Malformed (never RecursionError) for anything else."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"not a transcript: {exc}", field="transcript") from exc


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise Malformed(f"{what} is not base64", field=what)
    return unb64(text, what)


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


@dataclass(frozen=True)
class Failure:
    """One problem, placed: at an entry (``index``), at a checkpoint (its size), or else
    on the channel as a whole."""

    channel: str
    index: int | None
    reason: str
    code: str
    checkpoint: int | None = None

    @property
    def where(self) -> str:
        if self.index is not None:
            return f"{self.channel}#{self.index}"
        if self.checkpoint is not None:
            return f"{self.channel} (checkpoint of size {self.checkpoint})"
        return f"{self.channel} (channel)"

    def __str__(self) -> str:
        return f"{self.where}: {self.code}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "channel": self.channel,
            "index": self.index,
            "checkpoint": self.checkpoint,
            "code": self.code,
            "reason": self.reason,
        }


@dataclass
class PartyReport:
    sent: int = 0
    delivered: int = 0
    acknowledged: int = 0
    overdue: int = 0  # messages this party was recorded late on, by a notice that may say so


class Verdict(enum.StrEnum):
    VERIFIED = "verified"  # every check holds and the roster matches the trust anchor
    CONSISTENT_ONLY = "consistent_only"  # every check holds, but nothing was pinned
    FAILED = "failed"


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
    receipts_counted: bool = False  # only disclosed bodies show receipts and notices
    bodies_checked: int = 0
    roster: str | None = None  # "name vN"
    roster_hash: str | None = None
    roots: dict[str, str] = field(default_factory=dict)  # party -> root key fingerprint
    pins: list[str] = field(default_factory=list)  # the trust anchor, in words
    anchored: bool = False  # a trust anchor was given and the roster matches all of it
    uncovered: tuple[int, int] | None = None  # first and last entry no checkpoint covers
    key_history: list[str] = field(default_factory=list)  # the log's key events, in order
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every check holds (whether or not it was anchored)."""
        return not self.failures

    @property
    def verdict(self) -> Verdict:
        if self.failures:
            return Verdict.FAILED
        return Verdict.VERIFIED if self.anchored else Verdict.CONSISTENT_ONLY

    def fail(
        self,
        index: int | None,
        exc: HotlineError | str,
        code: str | None = None,
        *,
        checkpoint: int | None = None,
    ) -> None:
        reason, default = (exc.message, exc.code) if isinstance(exc, HotlineError) else (exc, None)
        self.failures.append(
            Failure(
                self.channel, index, reason, code or default or "verification_failed", checkpoint
            )
        )

    def to_dict(self) -> dict[str, Any]:
        counted = ("delivered", "acknowledged", "overdue")
        return {
            "ok": self.ok,
            "verdict": str(self.verdict),
            "anchored": self.anchored,
            "pins": self.pins,
            "channel": self.channel,
            "roster": self.roster,
            "roster_hash": self.roster_hash,
            "roots": self.roots,
            "entries": self.entries,
            "first_ms": self.first_ms,
            "last_ms": self.last_ms,
            "checkpoints": self.checkpoints,
            "largest_checkpoint": self.largest_checkpoint,
            "uncovered": list(self.uncovered) if self.uncovered else None,
            "key_history": self.key_history,
            "cosigned": self.cosigned,
            "bodies_checked": self.bodies_checked,
            "receipts_counted": self.receipts_counted,
            "parties": {
                p: {
                    k: (v if self.receipts_counted or k not in counted else None)
                    for k, v in vars(r).items()
                }
                for p, r in self.parties.items()
            },
            "failures": [f.to_dict() for f in self.failures],
        }


def _format_problem(doc: Any) -> str | None:
    """Why this is not a transcript this version reads, or None."""
    if not isinstance(doc, dict):
        return f"not a {FORMAT} file: a JSON object was expected"
    found = doc.get("format")
    if found == FORMAT:
        return None
    if isinstance(found, str) and found.startswith(FORMAT.rsplit("/", 1)[0] + "/"):
        return f"old format {found}: this version reads {FORMAT} (export the channel again)"
    return f"not a transcript: format is {found!r}, expected {FORMAT!r}"


def verify(doc: Any, anchor: Anchor | None = None, workers: int = 1) -> Report:
    """Check a transcript; every problem becomes a Failure naming where it is.

    ``anchor``: what the caller trusts, given apart from the file. Without one the
    report can say only that the transcript is consistent (``Verdict.CONSISTENT_ONLY``).
    ``workers`` > 1 checks the envelope signatures ahead on that many processes
    (``parallel_verify``); the report is the same.
    """
    if workers > 1:
        from .parallel_verify import proven_for

        with proven_for(doc, workers):
            return verify(doc, anchor)
    anchor = anchor or Anchor()
    if (problem := _format_problem(doc)) is not None:
        report = Report(str(doc.get("channel", "?")) if isinstance(doc, dict) else "?")
        report.fail(None, Malformed(problem))
        return report
    channel = str(doc.get("channel"))
    report = Report(channel, pins=anchor.pins())
    try:
        roster = open_roster(_note(doc.get("roster"), "roster"))
        ring = KeyRing(roster.roots())
        ctx = logcheck.LogContext.of(roster, channel, ring)
        members = roster.channel(channel).members
    except HotlineError as exc:
        report.fail(None, exc)
        return report
    _check_anchor(report, roster, anchor)
    report.parties = {p: PartyReport() for p in members}
    log = _check_entries(report, ctx, _list(report, doc, "entries"))
    report.key_history = [e.describe() for e in ctx.history.events]
    good = _check_checkpoints(report, ctx, doc, log.tree)
    _check_times(report, ctx, log, good)
    if report.largest_checkpoint < report.entries:
        # A station takes entries only in runs that end at a checkpoint it verified, so
        # its export is covered to the end: entries past the last signed root were never
        # shown to be logged (anyone holding the file could have appended them).
        first, last = report.uncovered = (report.largest_checkpoint, report.entries - 1)
        what = f"entry {first} is" if first == last else f"entries {first}..{last} are"
        report.fail(
            first,
            f"{what} not covered by any checkpoint: nothing signed says they were logged",
            "not_covered",
        )
    _check_bodies(report, ctx, doc, log)
    for env in log.envelopes.values():
        if env.kind == Kind.MESSAGE and env.party in report.parties:
            report.parties[env.party].sent += 1
    return report


def _check_anchor(report: Report, roster: Roster, anchor: Anchor) -> None:
    """Name the roster and its roots; fail on every pin it does not match."""
    report.roster = f"{roster.name} v{roster.version}"
    report.roster_hash = roster_hash(roster)
    report.roots = {p.name: root_fingerprint(p.root) for p in roster.parties.values()}
    mismatches = anchor.mismatches(roster)
    for reason in mismatches:
        report.fail(None, reason, "not_anchored")
    report.anchored = anchor.given and not mismatches


@dataclass
class _Log:
    """The entries as read so far."""

    tree: MerkleTree = field(default_factory=MerkleTree)
    hashes: list[bytes] = field(default_factory=list)  # of every entry, valid or not
    times: list[int] = field(default_factory=list)  # relay time of every entry
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
            entry = Entry.read(item)
        except HotlineError as exc:
            report.fail(index, f"entry is not readable: {exc}", "malformed")
            break
        raw, relay_ms = entry.envelope, entry.relay_ms
        log.tree.append(leaf_data(relay_ms, raw, entry.kind))
        log.hashes.append(env_mod.envelope_hash(raw))
        log.times.append(relay_ms)
        report.entries += 1
        report.first_ms = relay_ms if report.first_ms is None else report.first_ms
        report.last_ms = relay_ms
        if entry.kind == LeafKind.KEY_EVENT:
            try:
                logcheck.take_key_event(ctx, raw, index=index, relay_ms=relay_ms)
            except HotlineError as exc:
                report.fail(index, exc)
            continue
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


def _claimed_size(note: bytes) -> int | None:
    """The size a checkpoint note claims, read without checking it (to name it)."""
    try:
        return parse_checkpoint_text(parse_note(note).text).size
    except HotlineError:
        return None


def _check_checkpoints(
    report: Report, ctx: logcheck.LogContext, doc: dict[str, Any], tree: MerkleTree
) -> list[SignedCheckpoint]:
    """Check every checkpoint; return those whose root matches the entries."""
    seen: list[SignedCheckpoint] = []
    unmatched: list[int] = []
    for number, note in enumerate(_list(report, doc, "checkpoints"), 1):
        try:
            data = _note(note, "checkpoint")
        except HotlineError as exc:
            report.fail(None, f"checkpoint {number} of the file: {exc}", exc.code)
            continue
        try:
            cp = logcheck.open_log_checkpoint(ctx, data)
        except HotlineError as exc:
            size = _claimed_size(data)
            which = f"checkpoint {number} of the file" if size is None else "checkpoint"
            report.fail(None, f"{which} does not verify: {exc}", exc.code, checkpoint=size)
            continue
        report.checkpoints += 1
        try:
            logcheck.check_root(ctx, cp, root_at=tree.root, size_now=tree.size)
        except HotlineError as exc:
            report.fail(None, exc, checkpoint=cp.size)
            if isinstance(exc, BadProof) and cp.size <= tree.size:
                unmatched.append(cp.size)
            continue
        report.largest_checkpoint = max(report.largest_checkpoint, cp.size)
        try:
            for name in logcheck.check_cosignatures(ctx, cp):
                report.cosigned[name] = max(report.cosigned.get(name, 0), cp.size)
        except HotlineError as exc:
            report.fail(
                None, f"cosignature does not verify: {exc.message}", exc.code, checkpoint=cp.size
            )
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
            report.fail(None, exc, checkpoint=b.size)
    for before, after in itertools.pairwise(cp.size for cp in seen):
        try:
            logcheck.check_no_rollback(ctx, before, after)
        except HotlineError as exc:
            report.fail(None, exc, checkpoint=after)
            break
    _name_changed_entries(report, unmatched, {cp.size for cp in seen})
    return seen


def _name_changed_entries(report: Report, unmatched: list[int], matched: set[int]) -> None:
    """A root that does not match, right after one that does, names the one entry
    between them: its envelope or its relay time (both inside its leaf) was changed."""
    for size in unmatched:
        if size - 1 in matched or size == 1:
            report.fail(
                size - 1,
                BadProof(
                    f"this entry's leaf (its envelope or its relay time) is not the one the "
                    f"checkpoint of size {size} signed"
                ),
            )


def _check_times(
    report: Report, ctx: logcheck.LogContext, log: _Log, good: list[SignedCheckpoint]
) -> None:
    """Each entry's relay time: never before the previous entry's, and between the
    signed times of the checkpoints just before and just after it."""
    ordered = sorted(good, key=lambda cp: cp.size)
    below: SignedCheckpoint | None = None  # the largest checkpoint without the entry
    above = 0  # position in ``ordered`` of the first checkpoint that may hold it
    for index, relay_ms in enumerate(log.times):
        while above < len(ordered) and ordered[above].size <= index:
            below = ordered[above]
            above += 1
        try:
            logcheck.check_entry_time(
                ctx,
                relay_ms,
                index=index,
                previous_ms=log.times[index - 1] if index else None,
                since=below,
                until=ordered[above] if above < len(ordered) else None,
            )
        except HotlineError as exc:
            report.fail(index, exc)


def _check_bodies(report: Report, ctx: logcheck.LogContext, doc: dict[str, Any], log: _Log) -> None:
    items = doc.get("bodies", [])
    report.receipts_counted = bool(items)
    delivered: dict[int, set[str]] = defaultdict(set)
    acknowledged: dict[int, set[str]] = defaultdict(set)
    late: set[tuple[int, str]] = set()  # (message, party) recorded overdue

    def message_party(i: int) -> str | None:
        env = log.envelopes.get(i)
        return env.party if env is not None and env.kind == Kind.MESSAGE else None

    for item in _dicts(report, doc, "bodies"):
        named = item.get("index")
        index = named if isinstance(named, int) and not isinstance(named, bool) else None
        env = log.envelopes.get(index) if index is not None else None
        if index is None or env is None:
            if index is not None and 0 <= index < report.entries:
                report.fail(index, "a disclosed body names no valid entry", "malformed")
            else:
                report.fail(
                    None,
                    f"a disclosed body names entry #{named!r}, which is not in the log",
                    "malformed",
                )
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
        elif env.kind == Kind.NOTICE:
            try:
                said = logcheck.overdue_of(
                    ctx, content, index=index, author=env.party, message_party=message_party
                )
            except HotlineError as exc:
                report.fail(index, exc)
                continue
            if said is not None:
                late.add(said)
    for parties in delivered.values():
        for p in parties & report.parties.keys():
            report.parties[p].delivered += 1
    for parties in acknowledged.values():
        for p in parties & report.parties.keys():
            report.parties[p].acknowledged += 1
    for _, p in late:
        if p in report.parties:
            report.parties[p].overdue += 1
