"""Sync: take a run of entries up to a signed checkpoint, or raise the alarm.

The run must extend what we verified before (same bytes where it overlaps, a
consistency proof from our last checkpoint), and its entries must give the signed
root. Then the station cosigns the checkpoint and owes delivered receipts, all in
one transaction; a rollback reloads the tree from the store. The receipts are
sealed after it (outbox.send_receipts), so one that cannot be sealed waits. The checks are
logcheck's, the same ``hotline verify`` runs; here they become alarms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import logcheck, stamps
from ..errors import BadProof, BadTime, ForkDetected, HotlineError
from ..frames import Entries, Entry
from ..notes import SignedCheckpoint, cosign
from . import outbox, paths, receive
from .alarms import Alarm, AlarmKind
from .state import Station
from .store import DueReceipt

COSIGN_EVERY_S = 1.0  # at most one cosignature per channel a second goes to the relay


@dataclass
class Ingested:
    """What the shell must do after a batch of entries."""

    need_sync_from: int | None = None
    cosign: tuple[str, int, bytes] | None = None
    arrived: list[receive.Arrived] = field(default_factory=list)
    queued: int = 0


def on_entries(
    st: Station, frame: Entries, receipts: bool = True, relay: str | None = None
) -> Ingested:
    """Verify and store a run of entries of ``relay``'s log (None: the roster's first
    relay) ending at a checkpoint signed by that relay; then, unless ``receipts`` is False
    (the caller seals them itself, after it has told its readers), seal the delivered
    receipts owed. Each relay's log is mirrored and checked on its own (paths.py); an
    envelope is taken once, from whichever log brings it first (receive.py)."""
    channel = frame.channel
    if channel not in st.channels:
        st.alarm(
            Alarm(AlarmKind.UNEXPECTED_CHANNEL, "unexpected-channel", params={"channel": channel})
        )
        return Ingested()
    if (misplaced := _misplaced(st, frame, relay)) is not None:
        st.alarm(misplaced)
        return Ingested()
    note = frame.checkpoint
    ctx = st.log(channel, relay)
    key = st.log_key(channel, relay)
    position = st.position(relay)
    try:
        signed = logcheck.open_log_checkpoint(ctx, note)
    except HotlineError as exc:
        st.alarm(
            Alarm(
                AlarmKind.BAD_CHECKPOINT,
                "checkpoint-fails",
                channel=channel,
                evidence=note,
                params={"channel": st.log_key(channel, relay), "detail": str(exc)},
            )
        )
        return Ingested()
    start = frame.start
    entries = list(frame.entries)
    have = st.size(channel, relay)
    if start > have:
        return Ingested(need_sync_from=have)
    # Entries we already hold must be the very same bytes.
    tree = st.tree(key)
    for e in entries:
        if e.index >= have:
            continue
        try:
            logcheck.check_held_entry(
                ctx,
                e.envelope,
                tree.leaf_hash_at(e.index),
                index=e.index,
                relay_ms=e.relay_ms,
                kind=e.kind,
            )
        except ForkDetected:
            st.alarm(
                Alarm(
                    AlarmKind.FORK,
                    "fork-other-entry",
                    channel=channel,
                    index=e.index,
                    evidence=e.envelope,
                    params={"channel": st.log_key(channel, relay), "index": e.index},
                )
            )
            return Ingested()
    entries = [e for e in entries if e.index >= have]
    if have + len(entries) != signed.size:
        if signed.size < have:
            _check_older(st, channel, signed, relay)
            return Ingested()
        st.alarm(
            Alarm(
                AlarmKind.BAD_CHECKPOINT,
                "checkpoint-short",
                channel=channel,
                evidence=note,
                params={
                    "channel": st.log_key(channel, relay),
                    "count": len(entries),
                    "start": have,
                    "size": signed.size,
                },
            )
        )
        return Ingested()
    last = st.verified(channel, relay)
    if last is not None:
        proof = list(frame.consistency)
        try:
            if signed.size < last.size or last.size == start:
                logcheck.check_consistent(ctx, last, signed, proof)
        except ForkDetected as exc:
            st.alarm(
                Alarm(
                    AlarmKind.FORK,
                    "fork",
                    level=3,
                    channel=channel,
                    evidence=last.encode() + b"\n--\n" + note,
                    params={"channel": st.log_key(channel, relay), "detail": exc.message},
                )
            )
            return Ingested()
    if (late := _mistimed(st, frame, entries, last, signed, relay)) is not None:
        st.alarm(late)
        return Ingested()
    result = Ingested()
    with st.alarms.deferred():  # alarms of a batch rolled back must survive it
        try:
            with st.store.transaction():
                for e in entries:
                    at = paths.qualify(position, e.index)
                    arrived = receive.ingest(st, channel, at, e.envelope, e.relay_ms, e.kind)
                    if arrived is not None:
                        result.arrived.append(arrived)
                tree = st.tree(key)
                try:
                    logcheck.check_root(ctx, signed, root_at=tree.root, size_now=tree.size)
                except BadProof as exc:
                    raise ForkDetected(
                        f"{channel}: entries up to {signed.size} do not give the signed root",
                        channel=channel,
                    ) from exc
                for a in result.arrived:
                    stamps.stamp("verified", st.ident, a.hash)
                cosigned = cosign(signed, st.witness, int(st.clock()))
                encoded = cosigned.encode()
                st.store.add_checkpoint(key, signed.size, encoded, st.now_ms())
                result.cosign = (channel, signed.size, encoded)
                _owe_receipts(st, channel, result.arrived, encoded)
            st.set_verified(channel, cosigned, relay)
            for a in result.arrived:
                stamps.stamp("committed", st.ident, a.hash)
        except ForkDetected as exc:
            st.forget(channel, relay)
            st.alarm(
                Alarm(
                    AlarmKind.FORK,
                    "fork",
                    level=3,
                    channel=channel,
                    evidence=note,
                    params={"channel": st.log_key(channel, relay), "detail": exc.message},
                )
            )
            return Ingested()
        except BaseException:
            st.forget(channel, relay)
            raise
    # Sealed apart from the ingest: a receipt that cannot be sealed now waits (an
    # alarm), it never undoes what was taken in.
    if receipts:
        result.queued += outbox.send_receipts(st)
    return result


def _misplaced(st: Station, frame: Entries, relay: str | None) -> Alarm | None:
    """A frame's entries are positions ``start``, ``start + 1``, ... of the log, each
    index as its place says: the relay's numbers are checked, never taken as given.

    Those below our size are then compared with our copy (a fork if they differ); a run
    overlapping ours is no lie (a push can cross a sync). A misnumbered entry is a
    bad frame: nothing of it is taken in."""
    for position, e in enumerate(frame.entries):
        if e.index != frame.start + position:
            return Alarm(
                AlarmKind.BAD_FRAME,
                "misnumbered-run",
                level=3,  # not noise on the wire: the relay misstates the log
                channel=frame.channel,
                index=frame.start + position,
                evidence=e.envelope,
                params={
                    "channel": st.log_key(frame.channel, relay),
                    "position": frame.start + position,
                    "start": frame.start,
                    "given": e.index,
                    "size": st.size(frame.channel, relay),
                },
            )
    return None


def _mistimed(
    st: Station,
    frame: Entries,
    entries: list[Entry],
    last: SignedCheckpoint | None,
    signed: SignedCheckpoint,
    relay: str | None,
) -> Alarm | None:
    """The relay's times, signed in the leaves, must hold before anything is taken in:
    never going back, between our last verified checkpoint's signed time and the new
    one's, and not ahead of our own clock (logcheck.check_entry_time). A frame that lies
    about time is refused whole: nothing of it is taken in, deadlines included."""
    ctx = st.log(frame.channel, relay)
    now = st.now_ms()
    previous: int | None = None  # before the run: bounded by ``last``'s signed time
    try:
        logcheck.check_checkpoint_time(ctx, signed, clock_ms=now)
        for e in entries:
            since = last if last is not None and last.size <= e.index else None
            logcheck.check_entry_time(
                ctx,
                e.relay_ms,
                index=e.index,
                previous_ms=previous,
                since=since,
                until=signed,
                clock_ms=now,
            )
            previous = e.relay_ms
    except BadTime as exc:
        return Alarm(
            AlarmKind.BAD_CHECKPOINT,
            "relay-time",
            level=3,
            channel=frame.channel,
            index=exc.index,
            evidence=signed.encode(),
            params={"channel": st.log_key(frame.channel, relay), "detail": exc.message},
        )
    return None


def check_sizes(st: Station, sizes: Mapping[str, int], relay: str | None = None) -> None:
    """The relay's log sizes at connection: smaller than what we verified is a rollback."""
    for channel in st.channels:
        mine = st.verified(channel, relay)
        theirs = sizes.get(channel)
        if mine is None or not isinstance(theirs, int):
            continue
        try:
            logcheck.check_no_rollback(st.log(channel, relay), mine.size, theirs)
        except ForkDetected:
            st.alarm(
                Alarm(
                    AlarmKind.FORK,
                    "fork-rollback",
                    level=3,
                    channel=channel,
                    evidence=mine.encode(),
                    params={
                        "channel": st.log_key(channel, relay),
                        "theirs": theirs,
                        "size": mine.size,
                    },
                )
            )


def _check_older(st: Station, channel: str, signed: SignedCheckpoint, relay: str | None) -> None:
    """A checkpoint smaller than our log: it must match our own history."""
    tree = st.tree(st.log_key(channel, relay))
    try:
        logcheck.check_root(st.log(channel, relay), signed, root_at=tree.root, size_now=tree.size)
    except BadProof:
        st.alarm(
            Alarm(
                AlarmKind.FORK,
                "fork-other-root",
                level=3,
                channel=channel,
                evidence=signed.encode(),
                params={"channel": st.log_key(channel, relay), "size": signed.size},
            )
        )


def _owe_receipts(st: Station, channel: str, arrived: list[receive.Arrived], note: bytes) -> None:
    """Note a delivered receipt for each message that arrived, carrying our checkpoint."""
    for m in arrived:
        st.store.owe_receipt(DueReceipt(channel, m.index, m.hash, int(m.precedence), note))


class CosignThrottle:
    """At most one cosignature per channel every ``COSIGN_EVERY_S``; the latest waits."""

    def __init__(self, st: Station) -> None:
        self.st = st
        self._last: dict[str, float] = {}
        self._pending: dict[str, tuple[int, bytes]] = {}

    def offer(self, channel: str, size: int, note: bytes) -> tuple[str, int, bytes] | None:
        """The cosignature to send now, or None when it must wait its turn."""
        now = self.st.monotonic()
        if now - self._last.get(channel, 0.0) < COSIGN_EVERY_S:
            self._pending[channel] = (size, note)
            return None
        self._last[channel] = now
        self._pending.pop(channel, None)
        return (channel, size, note)

    def due(self) -> list[tuple[str, int, bytes]]:
        """Cosignatures that waited and may go now."""
        out = []
        for channel, (size, note) in list(self._pending.items()):
            sent = self.offer(channel, size, note)
            if sent is not None:
                out.append(sent)
        return out
