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
from dataclasses import dataclass, field, replace
from typing import Any

from . import envelope as env_mod
from . import logcheck
from .anchor import Anchor, root_fingerprint, roster_hash
from .body import OverdueNotice, Receipt, ReceiptStatus
from .envelope import Kind
from .errors import BadProof, ForkDetected, HotlineError, Malformed
from .frames import Entry
from .keys import KeyRing
from .leaf import LeafKind, leaf_data
from .merkle import MerkleTree
from .notes import SignedCheckpoint, parse_checkpoint_text, parse_note, unb64
from .roster import Roster, open_roster
from .station import paths
from .wire import MAX_U63

FORMAT = "hotline-transcript/v3"  # v2: the relay's time in each leaf; v3: key events
# A channel logged by several independent relays: the first relay's log as in FORMAT,
# each other relay's under "relays": [{"relay", "entries", "checkpoints", "consistency"}];
# "bodies" name entries by qualified index (station/paths.py).
MULTI_FORMAT = FORMAT + "+relays"


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
    relay: str | None = None  # with several relays: the relay this failure shows faulty

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
            **({"relay": self.relay} if self.relay is not None else {}),
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
    # Several relays: every failure shows a relay faulty (named in Report.faulty), and the
    # channel's record is intact: every envelope is proven in at least one signed log.
    RELAY_FAULTY = "relay_faulty"
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
    # With several relays: per relay, what its log holds, what it omits that another
    # relay's log holds, senders it logs out of order, whether its checkpoints are
    # consistent, and whether it is faulty (render.py and docs/EVIDENCE.md say each).
    relays: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Every valid envelope and key event is in at least one relay's log, under a checkpoint
    # of that relay that matches it, and no sender's chain differs between logs.
    record_intact: bool = True
    faulty: list[str] = field(default_factory=list)  # relays some failure shows faulty

    @property
    def ok(self) -> bool:
        """Every check holds (whether or not it was anchored)."""
        return not self.failures

    @property
    def verdict(self) -> Verdict:
        if not self.failures:
            return Verdict.VERIFIED if self.anchored else Verdict.CONSISTENT_ONLY
        if self.record_intact and all(f.relay is not None for f in self.failures):
            return Verdict.RELAY_FAULTY
        return Verdict.FAILED

    def fail(
        self,
        index: int | None,
        exc: HotlineError | str,
        code: str | None = None,
        *,
        checkpoint: int | None = None,
        channel: str | None = None,
        relay: str | None = None,
    ) -> None:
        """A failure placed at ``index`` (or the checkpoint, or the channel) of this
        report's channel, or of ``channel`` (a relay's log: ``channel@relay``); ``relay``:
        the relay it shows faulty."""
        reason, default = (exc.message, exc.code) if isinstance(exc, HotlineError) else (exc, None)
        self.failures.append(
            Failure(
                channel or self.channel,
                index,
                reason,
                code or default or "verification_failed",
                checkpoint,
                relay,
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
            **(
                {
                    "relays": self.relays,
                    "record_intact": self.record_intact,
                    "faulty_relays": self.faulty,
                }
                if self.relays
                else {}
            ),
        }


def _format_problem(doc: Any) -> str | None:
    """Why this is not a transcript this version reads, or None."""
    if not isinstance(doc, dict):
        return f"not a {FORMAT} file: a JSON object was expected"
    found = doc.get("format")
    if found in (FORMAT, MULTI_FORMAT):
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
    names = roster.relay_names()
    if len(names) == 1:
        logs = [_check_log(report, ctx, doc, names[0])]
        for part in _dicts(report, doc, "relays") if doc.get("format") == MULTI_FORMAT else []:
            name = str(part.get("relay"))
            report.fail(None, f"relay {name!r} is not another relay of the roster", "malformed")
    else:  # every relay's log, each against its own key; then across the logs
        logs = _check_relays(report, roster, ring, doc)
    _check_bodies(report, doc, logs, names)
    if len(names) > 1:
        _judge_relays(report, logs, names)
    messages = {
        env.hash: env
        for log in logs
        for env in log.envelopes.values()
        if env.kind == Kind.MESSAGE and env.party in report.parties
    }
    for env in messages.values():
        report.parties[env.party].sent += 1
    return report


def _check_log(report: Report, ctx: logcheck.LogContext, doc: dict[str, Any], name: str) -> _Log:
    """One relay's log: entries (its key events taken into its own key history),
    checkpoints signed by that relay, consistency, times."""
    log = _check_entries(report, ctx, _list(report, doc, "entries"))
    log.name, log.ctx, log.channel = name, ctx, report.channel
    report.key_history = [e.describe() for e in ctx.history.events]
    before = len(report.failures)
    good = _check_checkpoints(report, ctx, doc, log.tree)
    log.checkpoints_consistent = len(report.failures) == before
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
    log.covered = report.largest_checkpoint
    return log


def _check_relays(report: Report, roster: Roster, ring: KeyRing, doc: dict[str, Any]) -> list[_Log]:
    """Every relay's log (the first relay's in the file's own fields, each other's under
    ``relays``), each against its own key and its own key history, failures placed at
    ``channel@relay#index`` and naming that relay; the report's own counts are the first
    relay's log's."""
    names = roster.relay_names()
    parts: dict[str, dict[str, Any]] = {names[0]: doc}
    for part in _dicts(report, doc, "relays") if doc.get("format") == MULTI_FORMAT else []:
        name = str(part.get("relay"))
        if name not in names[1:] or name in parts:
            report.fail(None, f"relay {name!r} is not another relay of the roster", "malformed")
            continue
        parts[name] = part
    logs: list[_Log] = []
    for name in names:
        if name not in parts:  # the file's fault: it leaves out what the roster names
            report.fail(None, f"the transcript lacks relay {name}'s log", "path_omits")
            continue
        sub = Report(f"{report.channel}@{name}")
        ctx = logcheck.LogContext.of(roster, report.channel, ring, name)
        log = _check_log(sub, ctx, parts[name], name)
        log.position = names.index(name)
        report.failures += [replace(f, relay=log.blame) for f in sub.failures]
        if name == names[0]:
            for key in ("entries", "first_ms", "last_ms", "checkpoints", "largest_checkpoint"):
                setattr(report, key, getattr(sub, key))
            report.cosigned, report.uncovered = sub.cosigned, sub.uncovered
            report.key_history = sub.key_history
        report.relays[name] = {
            "entries": sub.entries,
            "envelopes": len(log.first_at),
            "checkpoints": sub.checkpoints,
            "largest_checkpoint": sub.largest_checkpoint,
            "checkpoints_consistent": log.checkpoints_consistent,
        }
        logs.append(log)
    _compare_logs(report, logs, len(logs) == len(names))
    return logs


OMITS_NAMED = 20  # omissions named one per line, per relay; the rest are counted


def _compare_logs(report: Report, logs: list[_Log], complete: bool) -> None:
    """Across the relays' logs: each must hold every valid entry another holds (an
    omission names the relay and the entry, as the station's path audit does), log each
    sender's envelopes in its chain's order, and one sender's sequence number must name
    one envelope in all (else the sender signed two histories: the record is not intact).
    ``complete``: every relay's log is in the file."""
    holder: dict[bytes, tuple[_Log, int]] = {}  # every valid entry: its first holder
    for log in logs:
        for digest, index in log.valid_at.items():
            holder.setdefault(digest, (log, index))
    by_seq: dict[tuple[str, int], tuple[bytes, str]] = {}
    for log in logs:
        omits = [d for d in holder if d not in log.first_at]
        summary = report.relays[log.name]
        summary["omits"] = [d.hex() for d in omits]
        summary["missing"] = len(omits)
        for digest in omits[:OMITS_NAMED]:
            other, at = holder[digest]
            report.fail(
                None,
                f"relay {log.name}'s log lacks {other.describe(at)} that relay {other.name}'s "
                f"log holds at #{at}",
                "path_omits",
                channel=log.channel,
                relay=log.blame,
            )
        if len(omits) > OMITS_NAMED:
            report.fail(
                None,
                f"relay {log.name}'s log lacks {len(omits) - OMITS_NAMED} more entries other "
                f"relays' logs hold (each in the report's relays.{log.name}.omits)",
                "path_omits",
                channel=log.channel,
                relay=log.blame,
            )
        summary["out_of_order"] = _out_of_order(report, log)
        for env in log.envelopes.values():
            seen = by_seq.setdefault((env.sender, env.seq), (env.hash, log.name))
            if seen[0] != env.hash:
                report.record_intact = False
                report.fail(
                    None,
                    f"{env.sender}'s number {env.seq} is another envelope in relay "
                    f"{log.name}'s log than in relay {seen[1]}'s: {env.sender} signed two",
                    "path_chain",
                )
    _sender_forks(report, logs, by_seq)
    proven = {d for log in logs for d, i in log.valid_at.items() if i < log.covered}
    if not complete or any(d not in proven for d in holder):
        report.record_intact = False


def _sender_forks(
    report: Report, logs: list[_Log], by_seq: dict[tuple[str, int], tuple[bytes, str]]
) -> None:
    """An envelope a relay's log holds but that is not valid there (a replay, out of
    its chain, before its key's certificate), at a sender's number where a log holds
    another valid envelope: if the sender's key signed it, the sender signed two (the
    record is not intact); if not, it is only that relay's failure, already named."""
    for log in logs:
        for index, env in log.parsed.items():
            seen = by_seq.get((env.sender, env.seq))
            if index in log.envelopes or seen is None or seen[0] == env.hash:
                continue
            certs = [
                c for other in logs if other.ctx for c in other.ctx.history.certificates(env.sender)
            ]
            try:
                env_mod.signed_by(env, certs, "in any log")
            except HotlineError:
                continue
            report.record_intact = False
            report.fail(
                index,
                f"{env.sender}'s number {env.seq} is another envelope here (not valid in "
                f"this log, but signed by {env.sender}) than in relay {seen[1]}'s log: "
                f"{env.sender} signed two",
                "path_chain",
                channel=log.channel,
            )


def _out_of_order(report: Report, log: _Log) -> list[str]:
    """Where this relay's log holds a sender's envelope after a later one of the same
    sender (read as logged, valid or not); the first per sender is a failure."""
    found: list[str] = []
    named: set[str] = set()
    top: dict[str, env_mod.Envelope] = {}
    for index, env in log.parsed.items():
        last = top.get(env.sender)
        if last is not None and env.seq < last.seq:
            found.append(f"{env.sender} #{env.seq} at #{index}, after #{last.seq}")
            if env.sender not in named:
                named.add(env.sender)
                report.fail(
                    index,
                    f"relay {log.name} logs {env.sender}'s envelope #{env.seq} after its "
                    f"#{last.seq}: another order than the sender's chain",
                    "path_order",
                    channel=log.channel,
                    relay=log.blame,
                )
        if last is None or env.seq > last.seq:
            top[env.sender] = env
    return found


def _judge_relays(report: Report, logs: list[_Log], names: list[str]) -> None:
    """Per relay: how many failures show it faulty; the faulty ones, in roster order."""
    counts = {name: sum(1 for f in report.failures if f.relay == name) for name in names}
    for log in logs:
        report.relays[log.name]["failures"] = counts[log.name]
        report.relays[log.name]["faulty"] = counts[log.name] > 0
    report.faulty = [name for name in names if counts[name]]


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
    """One relay's log, as read so far."""

    tree: MerkleTree = field(default_factory=MerkleTree)
    hashes: list[bytes] = field(default_factory=list)  # of every entry, valid or not
    times: list[int] = field(default_factory=list)  # relay time of every entry
    envelopes: dict[int, env_mod.Envelope] = field(default_factory=dict)  # those that hold
    chains: dict[str, logcheck.Chain] = field(default_factory=dict)
    parsed: dict[int, env_mod.Envelope] = field(default_factory=dict)  # valid or not
    first_at: dict[bytes, int] = field(default_factory=dict)  # each entry's hash: first index
    valid_at: dict[bytes, int] = field(default_factory=dict)  # same, of entries that hold
    name: str = ""  # the relay's
    position: int = 0  # the relay's in the roster (qualified indexes, station/paths.py)
    ctx: logcheck.LogContext | None = None
    channel: str = ""  # where its failures are placed: the channel, or channel@relay
    covered: int = 0  # entries under a checkpoint that matches them
    checkpoints_consistent: bool = True

    @property
    def blame(self) -> str | None:
        """The relay a failure of this log shows faulty: only if the file holds the log
        as the relay signed it (every checkpoint matches, every entry under one). Else
        whoever made the file may have edited it (cut, changed or added entries, cut the
        later checkpoints): the failure is the file's, not evidence against the relay."""
        as_signed = self.checkpoints_consistent and self.covered == len(self.hashes)
        return self.name if as_signed else None

    def hash_at(self, index: int) -> bytes | None:
        return self.hashes[index] if 0 <= index < len(self.hashes) else None

    def describe(self, index: int) -> str:
        """The entry at ``index``, as an omission names it."""
        digest = self.hashes[index].hex()[:16]
        env = self.parsed.get(index)
        if env is None:
            return f"key event {digest}"
        return f"envelope {digest} ({env.sender} #{env.seq}, {env.kind.name.lower()})"


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
        digest = env_mod.envelope_hash(raw)
        log.hashes.append(digest)
        log.first_at.setdefault(digest, index)
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
            log.valid_at.setdefault(digest, index)
            continue
        try:
            env = logcheck.parse_entry(ctx, raw, index=index)
            log.parsed[index] = env
            logcheck.check_envelope(
                ctx,
                env,
                index=index,
                relay_ms=relay_ms,
                last=log.chains.get(env.sender, logcheck.NO_CHAIN),
            )
        except HotlineError as exc:
            report.fail(index, exc)
            continue
        log.chains[env.sender] = (env.seq, env.hash)
        log.envelopes[index] = env
        log.valid_at.setdefault(digest, index)
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


def _check_bodies(report: Report, doc: dict[str, Any], logs: list[_Log], names: list[str]) -> None:
    """Each disclosed body, named by its entry's (qualified) index: bound to that
    envelope and what it decrypts to; then a receipt's or notice's reference, checked in
    the log it names (station/paths.py): there, if that log holds the receipt or notice
    too, it must name an earlier entry, as with one relay. Counted once per envelope
    referred to (by hash), however many logs or stations name it."""
    items = doc.get("bodies", [])
    report.receipts_counted = bool(items)
    by_position = {log.position: log for log in logs}
    valid = {env.hash: env for log in logs for env in log.envelopes.values()}
    delivered: dict[bytes, set[str]] = defaultdict(set)
    acknowledged: dict[bytes, set[str]] = defaultdict(set)
    late: set[tuple[bytes, str]] = set()  # (message, party) recorded overdue
    done: set[bytes] = set()  # receipts and notices whose references were checked

    for item in _dicts(report, doc, "bodies"):
        named = item.get("index")
        qualified = named if isinstance(named, int) and not isinstance(named, bool) else None
        position, index = paths.split(qualified) if qualified is not None else (0, -1)
        log = by_position.get(position) if qualified is not None and qualified >= 0 else None
        if log is not None and index not in log.envelopes and 0 <= index < len(log.hashes):
            # Not valid in the log it names (that log's failure says why): the same
            # envelope, by hash, where another relay's log holds it valid.
            digest = log.hashes[index]
            log, index = next(
                ((other, other.valid_at[digest]) for other in logs if digest in other.valid_at),
                (log, index),
            )
        env = log.envelopes.get(index) if log is not None else None
        if log is None or env is None or log.ctx is None:
            if log is not None and 0 <= index < len(log.hashes):
                report.fail(
                    index, "a disclosed body names no valid entry", "malformed", channel=log.channel
                )
            else:
                report.fail(
                    None,
                    f"a disclosed body names entry #{named!r}, which is not in the log",
                    "malformed",
                )
            continue
        try:
            content = logcheck.check_disclosed_body(
                log.ctx,
                env,
                index=index,
                envelope_hash=str(item.get("hash")),
                body_key=_unb64(item.get("body_key"), "body_key"),
                body=_unb64(item.get("body"), "body"),
            )
        except HotlineError as exc:
            report.fail(index, exc, channel=log.channel)
            continue
        report.bodies_checked += 1
        if env.hash in done or env.kind not in (Kind.RECEIPT, Kind.NOTICE):
            continue
        done.add(env.hash)
        if env.kind == Kind.RECEIPT:
            try:
                receipt = logcheck.receipt_of(content)
            except HotlineError as exc:
                report.fail(
                    index, f"malformed receipt: {exc.message}", "malformed", channel=log.channel
                )
                continue
            refs = receipt.each()
            if len({paths.split(one.of_index)[0] for one in refs}) > 1:
                report.fail(
                    index,
                    "malformed receipt: it names entries of more than one relay's log",
                    "malformed",
                    channel=log.channel,
                )
                continue
            for one in refs:  # a delivered run: the same statement for each entry
                of_hash = _check_receipt(report, one, env, log, index, by_position, valid, names)
                if of_hash is None:
                    continue
                of = valid.get(of_hash)
                if of is None or of.kind != Kind.MESSAGE or of.party == env.party:
                    # Counted only as what it says: a message of another party taken in.
                    if one.status == ReceiptStatus.DELIVERED:
                        report.fail(
                            index,
                            f"malformed receipt: entry #{one.of_index} it names as delivered"
                            " is no message of another party",
                            "malformed",
                            channel=log.channel,
                        )
                    continue
                counted = acknowledged if one.status == ReceiptStatus.ACKNOWLEDGED else delivered
                counted[of_hash].add(env.party)
        else:
            said = _check_notice(report, content, env, log, index, by_position, valid)
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


def _named(
    env: env_mod.Envelope, of_index: int, log: _Log, index: int, by_position: dict[int, _Log]
) -> tuple[_Log | None, _Log, int]:
    """For a receipt or notice ``env`` disclosed at ``index`` of ``log`` naming the
    qualified ``of_index``: the log it names (None if the file has none at that position)
    and where to check it: that log's own copy of it if it holds one, else the copy
    disclosed."""
    named = by_position.get(paths.split(of_index)[0])
    if named is not None and named is not log:
        at = named.first_at.get(env.hash)
        if at is not None and at in named.envelopes:
            return named, named, at
    return named, log, index


def _check_receipt(
    report: Report,
    receipt: Receipt,
    env: env_mod.Envelope,
    log: _Log,
    index: int,
    by_position: dict[int, _Log],
    valid: dict[bytes, env_mod.Envelope],
    names: list[str],
) -> bytes | None:
    """A receipt's reference and carried checkpoint, in the log it names; the hash of
    the envelope it answers, or None (a failure). A reference to another history of a
    relay's log (an entry with another hash, a carried checkpoint that disagrees with the
    log) shows that relay faulty: it showed the receipt's sender something else."""
    position, of = paths.split(receipt.of_index)
    named, where, at = _named(env, receipt.of_index, log, index, by_position)
    blame = named.blame if len(names) > 1 and named is not None else None
    if len(names) == 1:  # one relay: the index is the plain log index, as it always was
        named, of = where, receipt.of_index
    try:
        if named is None:
            raise ForkDetected(
                f"receipt references entry #{of} of relay "
                f"{names[position] if position < len(names) else position}'s log, "
                "which the transcript does not hold",
                field="of_index",
            )
        assert named.ctx is not None
        local = replace(receipt, of_index=of)
        if named is where:  # as with one relay: an earlier entry, a checkpoint it had
            logcheck.check_receipt(
                named.ctx,
                local,
                index=at,
                entry_hash_at=named.hash_at,
                root_at=named.tree.root,
                size_now=at + 1,
            )
            return receipt.of_hash
        # Named in another relay's log than the one it stands in: by hash; that log's copy
        # in this file may stop short of it (the exporter's mirror was behind).
        held = named.hash_at(of)
        # Not in the file's copy yet: an envelope of the channel, not held at another
        # place of that log (an envelope is logged once per log).
        unheld = receipt.of_hash not in valid or receipt.of_hash in named.first_at
        if (held is None and unheld) or held not in (None, receipt.of_hash):
            raise ForkDetected(
                f"receipt references no message #{of} of relay {named.name}'s log",
                field="of_hash",
            )
        signed = logcheck.open_log_checkpoint(named.ctx, receipt.checkpoint)
        if signed.size <= named.tree.size:
            logcheck.check_carried_checkpoint(
                named.ctx,
                local,
                index=at,
                root_at=named.tree.root,
                size_now=named.tree.size,
            )
    except ForkDetected as exc:
        if exc.field != "checkpoint" and named is not None and not _shown_another(named, receipt):
            blame = None  # what the relay signed does not contradict it: the sender's claim
        who = f" (relay {blame} showed its sender another history)" if blame else ""
        report.fail(at, exc.message + who, exc.code, channel=where.channel, relay=blame)
        return None
    except HotlineError as exc:
        report.fail(at, f"malformed receipt: {exc.message}", "malformed", channel=where.channel)
        return None
    return receipt.of_hash


def _shown_another(named: _Log, receipt: Receipt) -> bool:
    """Whether the checkpoint a receipt carries is the named relay's signature on
    another history than its log in the file. A receipt naming an entry by another hash
    shows that relay faulty only so: else its sender signed a reference the relay's
    own signature does not back (a party cannot frame a relay by a false receipt)."""
    assert named.ctx is not None
    try:
        signed = logcheck.open_log_checkpoint(named.ctx, receipt.checkpoint)
        if signed.size > named.tree.size:
            return False  # the file's copy stops short of it: nothing to compare
        logcheck.check_root(named.ctx, signed, root_at=named.tree.root, size_now=named.tree.size)
    except BadProof:
        return True
    except HotlineError:
        return False
    return False


def _check_notice(
    report: Report,
    content: Any,
    env: env_mod.Envelope,
    log: _Log,
    index: int,
    by_position: dict[int, _Log],
    valid: dict[bytes, env_mod.Envelope],
) -> tuple[bytes, str] | None:
    """An overdue notice's reference, resolved in the log it names: (the message's
    hash, the late party), or None (another body, or a failure)."""
    if not isinstance(content, OverdueNotice):
        return None
    named, where, at = _named(env, content.of_index, log, index, by_position)
    of = paths.split(content.of_index)[1]
    held = named.hash_at(of) if named is not None else None

    def message_party(_: int) -> str | None:
        message = valid.get(held) if held is not None else None
        return message.party if message is not None and message.kind == Kind.MESSAGE else None

    assert where.ctx is not None
    try:
        said = logcheck.overdue_of(
            where.ctx,
            content,
            index=at,
            author=env.party,
            message_party=message_party,
            before=lambda _: named is not where or of < at,
        )
    except HotlineError as exc:
        report.fail(at, exc, channel=where.channel)
        return None
    return (held, said[1]) if said is not None and held is not None else None
