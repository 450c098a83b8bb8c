"""Every check of a channel's log: entries, receipts, checkpoints, cosignatures.

One implementation for both callers: the station, which turns a failure into an
alarm, and ``hotline verify``, which turns it into a report line. Pure functions over
typed values: no store, no clock, no network. What the caller holds (the sender's last
link, the Merkle root at a size, the hash of an earlier entry) is passed in as a value or
a function; every failure is one specific HotlineError naming channel, index and field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import envelope as env_mod
from .body import Body, OverdueNotice, Receipt, Side, parse_body
from .envelope import Envelope
from .errors import BadProof, BadTime, ForkDetected, HotlineError, Malformed, NotAuthorized
from .keyhistory import KeyEvent, KeyHistory
from .keys import KeyRing
from .leaf import LeafKind, entry_leaf_hash
from .merkle import verify_inclusion
from .notes import (
    CosignatureVerifier,
    Note,
    NoteVerifier,
    SignedCheckpoint,
    check_extends,
    cosigners,
    open_checkpoint,
)
from .roster import Roster

Chain = tuple[int, bytes]
"""A sender's last link in a channel: (sequence, envelope hash)."""

NO_CHAIN: Chain = (0, env_mod.ZERO_HASH)
"""The link before a sender's first envelope."""

MAX_AHEAD_MS = 5 * 60 * 1000
"""How far a signed relay time may be ahead of a station's own clock."""


@dataclass(frozen=True, eq=False)
class LogContext:
    """What every check needs to know of the channel whose log it checks."""

    channel: str
    origin: str
    relay_key: NoteVerifier
    members: frozenset[str]
    keyring: KeyRing  # the caller's: the keys known now (to seal to, to authenticate)
    history: KeyHistory  # this log's key events, taken in log order: who may sign where
    roster: Roster | None = None  # for its minimum envelope version (none: any version)

    @classmethod
    def of(
        cls, roster: Roster, channel: str, keyring: KeyRing, relay: str | None = None
    ) -> LogContext:
        """The channel of this roster (Malformed if it has no such channel), as logged by
        ``relay`` (a relay name of the roster; None: its first relay), with an empty key
        history: the caller feeds it that log's key events in order."""
        members = frozenset(roster.channel(channel).members)
        return cls(
            channel,
            roster.origin(channel),
            roster.relay_key if relay is None else roster.relay(relay),
            members,
            keyring,
            KeyHistory(roster.roots(), members, roster),
            roster,
        )

    def witnesses(self, signed: SignedCheckpoint) -> list[CosignatureVerifier]:
        """The station keys that may witness this checkpoint: stations of the channel's
        members certified in its log, not revoked within the checkpoint's size, and
        valid at its signed time."""
        at = (signed.time_ms or 0) // 1000
        return [
            CosignatureVerifier(c.ident, c.signing) for c in self.history.witnesses(signed.size, at)
        ]

    def placed(self, exc: HotlineError, index: int | None) -> HotlineError:
        """The same error, naming this channel and the index where it happened."""
        return type(exc)(
            exc.message,
            channel=self.channel,
            index=index if exc.index is None else exc.index,
            field=exc.field,
        )


# --- entries ------------------------------------------------------------------------------------


def parse_entry(ctx: LogContext, raw: bytes, *, index: int) -> Envelope:
    """Parse a logged envelope (strictly; the error names the entry)."""
    try:
        return env_mod.parse(raw)
    except HotlineError as exc:
        raise ctx.placed(exc, index) from exc


def check_envelope(
    ctx: LogContext, env: Envelope, *, index: int, relay_ms: int, last: Chain
) -> None:
    """A parsed entry: for this channel, by a station of a member party, its signature
    valid with a key certified before ``index`` in this log, not revoked before it, and
    valid at the relay time (keyhistory.py), and directly following ``last``, its
    sender's previous link."""
    if env.channel != ctx.channel:
        raise Malformed(
            f"envelope of channel {env.channel} logged in {ctx.channel}",
            channel=ctx.channel,
            index=index,
            field="channel",
        )
    if env.party not in ctx.members:
        raise NotAuthorized(
            f"{env.sender} signs for {env.party}, which is not a member of {ctx.channel}",
            channel=ctx.channel,
            index=index,
            field="party",
        )
    try:
        if ctx.roster is not None:  # a relay that logged refused traffic is caught here
            ctx.roster.check_envelope_version(env.version, relay_ms, ctx.channel)
        ctx.history.verify(env, index=index, relay_ms=relay_ms)
        env_mod.check_chain(*last, env)
    except HotlineError as exc:
        raise ctx.placed(exc, index) from exc


def check_entry(
    ctx: LogContext,
    raw: bytes,
    *,
    index: int,
    relay_ms: int,
    chain: Callable[[str], Chain],
) -> Envelope:
    """``parse_entry`` then ``check_envelope`` (``chain(sender)`` gives its last link)."""
    env = parse_entry(ctx, raw, index=index)
    check_envelope(ctx, env, index=index, relay_ms=relay_ms, last=chain(env.sender))
    return env


def take_key_event(ctx: LogContext, raw: bytes, *, index: int, relay_ms: int) -> KeyEvent:
    """A key event at ``index``: into the log's key history, or the error naming it."""
    try:
        return ctx.history.take(raw, index=index, relay_ms=relay_ms)
    except HotlineError as exc:
        raise ctx.placed(exc, index) from exc


def check_held_entry(
    ctx: LogContext,
    raw: bytes,
    held_leaf: bytes,
    *,
    index: int,
    relay_ms: int,
    kind: LeafKind = LeafKind.ENVELOPE,
) -> None:
    """An entry served again must be the very leaf already held at its index: the same
    kind and bytes at the same relay time."""
    try:
        same = entry_leaf_hash(relay_ms, raw, kind) == held_leaf
    except HotlineError:
        same = False
    if not same:
        raise ForkDetected(
            f"entry {index} differs from the one held before (its bytes or its time)",
            channel=ctx.channel,
            index=index,
        )


def check_included(
    ctx: LogContext,
    raw: bytes,
    *,
    index: int,
    relay_ms: int,
    signed: SignedCheckpoint,
    proof: list[bytes],
    kind: LeafKind = LeafKind.ENVELOPE,
) -> None:
    """An entry, logged at ``relay_ms``, is at ``index`` of the log that ``signed``
    commits to (BadProof); its time is then within the checkpoint's (BadTime)."""
    try:
        verify_inclusion(
            entry_leaf_hash(relay_ms, raw, kind), index, signed.size, proof, signed.root
        )
    except HotlineError as exc:
        raise ctx.placed(exc, index) from exc
    check_entry_time(ctx, relay_ms, index=index, until=signed)


# --- time ---------------------------------------------------------------------------------------


def check_entry_time(
    ctx: LogContext,
    relay_ms: int,
    *,
    index: int,
    previous_ms: int | None = None,
    since: SignedCheckpoint | None = None,
    until: SignedCheckpoint | None = None,
    clock_ms: int | None = None,
) -> None:
    """An entry's signed time (inside its leaf) is where the log says it can be.

    Never before ``previous_ms`` (the previous entry's time: time does not go back),
    nor before the signed time of ``since`` (a checkpoint the relay signed without the
    entry), nor after that of ``until`` (a checkpoint that holds it), nor beyond
    ``clock_ms`` + ``MAX_AHEAD_MS`` (the checking station's own clock). BadTime names the
    entry; a bound given as None is not checked.
    """
    problem = None
    if previous_ms is not None and relay_ms < previous_ms:
        problem = f"before the previous entry's time {previous_ms}: time goes backwards"
    elif since is not None and (t := since.time_ms) is not None and relay_ms < t:
        problem = f"before the signed time {t} of the checkpoint of size {since.size}"
    elif until is not None and (t := until.time_ms) is not None and relay_ms > t:
        problem = f"after the signed time {t} of the checkpoint of size {until.size}"
    elif clock_ms is not None and relay_ms > clock_ms + MAX_AHEAD_MS:
        problem = f"more than {MAX_AHEAD_MS // 1000} s ahead of this station's clock {clock_ms}"
    if problem is not None:
        raise BadTime(
            f"entry {index} of {ctx.channel} is logged at {relay_ms}, {problem}",
            channel=ctx.channel,
            index=index,
            field="relay_ms",
        )


def check_checkpoint_time(ctx: LogContext, signed: SignedCheckpoint, *, clock_ms: int) -> None:
    """A checkpoint's signed time is not beyond the checking station's clock + bound."""
    t = signed.time_ms
    if t is not None and t > clock_ms + MAX_AHEAD_MS:
        raise BadTime(
            f"checkpoint of size {signed.size} of {ctx.channel} is signed at {t}, more than "
            f"{MAX_AHEAD_MS // 1000} s ahead of this station's clock {clock_ms}",
            channel=ctx.channel,
            field="time",
        )


def check_disclosed_body(
    ctx: LogContext,
    env: Envelope,
    *,
    index: int,
    envelope_hash: str,
    body_key: bytes,
    body: bytes,
) -> Body:
    """A body disclosed with its key is bound to this envelope (by hex hash) and is
    exactly what the envelope decrypts to. Returns the decoded body."""
    if env.hash.hex() != envelope_hash:
        raise Malformed(
            "disclosed body is bound to another envelope hash",
            channel=ctx.channel,
            index=index,
            field="hash",
        )
    try:
        plain = env_mod.decrypt_with_key(env, body_key)
        if plain != body:
            raise Malformed(
                "the envelope decrypts to something else than the file claims", field="body"
            )
        return parse_body(plain)
    except HotlineError as exc:
        raise ctx.placed(exc, index) from exc


# --- receipts -----------------------------------------------------------------------------------


def receipt_of(content: Body) -> Receipt:
    """The receipt inside a receipt envelope; Malformed if the body is something else."""
    if not isinstance(content, Receipt):
        raise Malformed("a receipt envelope holds no receipt", field="type")
    return content


def check_receipt_reference(
    ctx: LogContext,
    receipt: Receipt,
    *,
    index: int,
    entry_hash_at: Callable[[int], bytes | None],
) -> None:
    """A receipt at ``index`` names an earlier entry of this log by its exact hash.

    ``entry_hash_at(i)``: the envelope hash of the log's entry ``i`` (None if none).
    Any other hash means the receipt's sender was shown another history (ForkDetected).
    """
    of = receipt.of_index
    held = entry_hash_at(of) if of < index else None
    if held is None or held != receipt.of_hash:
        raise ForkDetected(
            f"receipt references no message #{of} of this log",
            channel=ctx.channel,
            index=index,
            field="of_hash",
        )


def check_carried_checkpoint(
    ctx: LogContext,
    receipt: Receipt,
    *,
    index: int,
    root_at: Callable[[int], bytes],
    size_now: int,
) -> SignedCheckpoint:
    """The checkpoint a receipt carries is the relay's and agrees with this log.

    One that does not open raises its own error (Malformed, BadSignature); one that
    opens but disagrees with the log's first ``size_now`` entries raises ForkDetected.
    """
    try:
        signed = open_log_checkpoint(ctx, receipt.checkpoint)
    except HotlineError as exc:
        raise ctx.placed(exc, index) from exc
    try:
        check_root(ctx, signed, root_at=root_at, size_now=size_now)
    except BadProof as exc:
        raise ForkDetected(
            f"receipt carries a checkpoint of size {signed.size} inconsistent with this log",
            channel=ctx.channel,
            index=index,
            field="checkpoint",
        ) from exc
    return signed


def check_receipt(
    ctx: LogContext,
    receipt: Receipt,
    *,
    index: int,
    entry_hash_at: Callable[[int], bytes | None],
    root_at: Callable[[int], bytes],
    size_now: int,
) -> SignedCheckpoint:
    """``check_receipt_reference`` then ``check_carried_checkpoint``."""
    check_receipt_reference(ctx, receipt, index=index, entry_hash_at=entry_hash_at)
    return check_carried_checkpoint(ctx, receipt, index=index, root_at=root_at, size_now=size_now)


# --- checkpoints --------------------------------------------------------------------------------


def open_log_checkpoint(ctx: LogContext, note: bytes) -> SignedCheckpoint:
    """A checkpoint note signed by the relay for this channel's log (its origin)."""
    return open_checkpoint(note, ctx.relay_key, ctx.origin)


def check_root(
    ctx: LogContext, signed: SignedCheckpoint, *, root_at: Callable[[int], bytes], size_now: int
) -> None:
    """The checkpoint commits to this log: within its size, with the same Merkle root.

    ``root_at(n)`` is the root of the first ``n`` entries held; ``size_now`` how many.
    """
    size = signed.size
    if size > size_now:
        raise BadProof(
            f"checkpoint of size {size} is beyond the {size_now} entries",
            channel=ctx.channel,
            index=size,
            field="size",
        )
    if root_at(size) != signed.root:
        raise BadProof(
            f"checkpoint of size {size} does not match the entries' Merkle root",
            channel=ctx.channel,
            index=size - 1 if size else None,
            field="root",
        )


def check_consistent(
    ctx: LogContext, older: SignedCheckpoint, newer: SignedCheckpoint, proof: list[bytes]
) -> None:
    """``newer`` extends ``older`` append-only (RFC 6962 proof); ForkDetected if not."""
    try:
        check_extends(older.checkpoint, newer.checkpoint, proof)
    except ForkDetected as exc:
        raise ForkDetected(
            f"checkpoints {older.size} and {newer.size} are not consistent: {exc.message}",
            channel=ctx.channel,
            index=newer.size,
        ) from exc


def check_no_rollback(ctx: LogContext, previous: int, now: int) -> None:
    """The log's size never goes back below one the relay signed before."""
    if now < previous:
        raise ForkDetected(
            f"the log went back from size {previous} to {now} (a rollback)", channel=ctx.channel
        )


# --- cosignatures -------------------------------------------------------------------------------


def check_cosignatures(ctx: LogContext, signed: SignedCheckpoint) -> dict[str, int]:
    """Known witnesses whose cosignature verifies, with their timestamps.

    A known witness's cosignature that does not verify is a BadSignature (a forgery);
    signatures of unknown keys are ignored.
    """
    try:
        return cosigners(signed, ctx.witnesses(signed))
    except HotlineError as exc:
        raise ctx.placed(exc, signed.size) from exc


def merge_cosignatures(ctx: LogContext, ours: Note | None, theirs: SignedCheckpoint) -> Note | None:
    """The note to keep once another station showed ``theirs`` (a checkpoint that
    matches the log): ours plus their verified cosignatures, or theirs with only the
    relay's signature and verified cosignatures when we hold none of that size. None
    when nothing changes (same size signed at another time: both stay valid evidence).

    Only signatures that verify are kept, so what a station keeps passes ``verify``;
    a known witness's bad cosignature raises BadSignature.
    """
    check_cosignatures(ctx, theirs)
    keep = {(w.name, w.key_hash) for w in ctx.witnesses(theirs)}
    keep.add((ctx.relay_key.name, ctx.relay_key.key_hash))
    carried = [s for s in theirs.note.signatures if (s.name, s.key_hash) in keep]
    if ours is None:
        return Note(theirs.note.text, tuple(carried))
    if ours.text != theirs.note.text:
        return None
    have = {(s.name, s.key_hash) for s in ours.signatures}
    merged = ours
    for sig in carried:
        if (sig.name, sig.key_hash) not in have:
            merged = merged.with_signature(sig)
    return merged if merged is not ours else None


# --- notices ------------------------------------------------------------------------------------


def overdue_of(
    ctx: LogContext,
    content: Body,
    *,
    index: int,
    author: str,
    message_party: Callable[[int], str | None],
    before: Callable[[int], bool] | None = None,
) -> tuple[int, str] | None:
    """The (message index, late party) an overdue notice at ``index`` records; None for
    any other body. ``before(i)``: whether ``i`` names an entry before the notice (by
    default ``i < index``; with several relays an index may name another relay's log,
    station/paths.py, where no order with the notice holds).

    A notice speaks only for its author: the sender's party about a member that has not
    acknowledged its message (side sender), or the late party about itself (side
    recipient). Anything else is NotAuthorized; a notice naming no earlier message
    (``message_party(i)``: the party that sent message ``i``, None if none) is Malformed.
    """
    if not isinstance(content, OverdueNotice):
        return None
    of, late = content.of_index, content.party
    earlier = before(of) if before is not None else of < index
    sender = message_party(of) if of >= 0 and earlier else None
    if sender is None:
        raise Malformed(
            f"overdue notice names no message #{of} before it",
            channel=ctx.channel,
            index=index,
            field="of_index",
        )
    by_sender = content.side == Side.SENDER and author == sender
    by_late = content.side == Side.RECIPIENT and author == late
    if late == sender or late not in ctx.members or not (by_sender or by_late):
        raise NotAuthorized(
            f"overdue notice by {author} ({content.side} side) says {late} is late on "
            f"#{of} sent by {sender}: only the sender's party or the late party may say so",
            channel=ctx.channel,
            index=index,
            field="party",
        )
    return of, late
