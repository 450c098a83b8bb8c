"""The Merkle leaf of a logged entry (leaf format v2): the relay's time inside the leaf.

As in Certificate Transparency (RFC 6962 §3.4), the time the relay gives an entry is part
of what the tree commits to, so the signed checkpoint covers it: nobody (relay or editor
of a transcript) can change an entry's time without changing the root. The envelope's own
bytes and signature are untouched; the tree code (merkle.py) hashes whatever leaf data it
is given::

    leaf data = 0x02 (envelope)  || relay_ms (u64) || envelope
              | 0x03 (key event) || relay_ms (u64) || statement
    leaf hash = SHA-256(0x00 || leaf data)

A key event's statement is the exact signed-note bytes of a station certificate or a
revocation (keys.py), logged by the relay in every channel of the party it names; see
keyhistory.py for what a key event does to the envelopes after it.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from .errors import Malformed
from .merkle import leaf_hash
from .wire import MAX_U63

LEAF_VERSION = 2  # the envelope kind: its byte was the leaf's version before key events


class LeafKind(enum.IntEnum):
    """What a leaf holds (its first byte)."""

    ENVELOPE = 2
    KEY_EVENT = 3


_HEADER = struct.Struct(">BQ")
HEADER_SIZE = _HEADER.size  # 9 bytes


@dataclass(frozen=True)
class Leaf:
    """One logged entry as the tree holds it: its kind, the relay's time and the exact
    envelope or statement bytes."""

    kind: LeafKind
    relay_ms: int
    payload: bytes

    def data(self) -> bytes:
        return leaf_data(self.relay_ms, self.payload, self.kind)

    def hash(self) -> bytes:
        return leaf_hash(self.data())


def leaf_data(relay_ms: int, payload: bytes, kind: LeafKind = LeafKind.ENVELOPE) -> bytes:
    """The leaf data of an entry of ``kind`` logged at ``relay_ms`` (ms since the epoch)."""
    if not 0 <= relay_ms <= MAX_U63:
        raise Malformed(f"relay time {relay_ms} is outside 0..2^63-1", field="relay_ms")
    return _HEADER.pack(LeafKind(kind), relay_ms) + payload


def entry_leaf_hash(relay_ms: int, payload: bytes, kind: LeafKind = LeafKind.ENVELOPE) -> bytes:
    """RFC 6962 leaf hash of the entry's leaf data."""
    return leaf_hash(leaf_data(relay_ms, payload, kind))


def parse_leaf(data: bytes) -> Leaf:
    """Split leaf data into its kind, time and payload (Malformed for any other kind)."""
    if len(data) < HEADER_SIZE:
        raise Malformed("leaf data is shorter than its header", field="leaf")
    kind, relay_ms = _HEADER.unpack_from(data)
    if kind not in set(LeafKind):
        raise Malformed(f"leaf kind {kind}, expected 2 or 3", field="leaf")
    if relay_ms > MAX_U63:
        raise Malformed(f"relay time {relay_ms} is outside 0..2^63-1", field="relay_ms")
    return Leaf(LeafKind(kind), relay_ms, data[HEADER_SIZE:])


OLD_DATABASE = (
    "this database was written before leaf format v2 (the relay's time inside each Merkle "
    "leaf) and is not migrated: start from a new database"
)


def check_not_v1(held_leaf: bytes, envelope: bytes, what: str) -> None:
    """Refuse a store whose first leaf is a v1 leaf (the bare envelope): its trees were
    built before the time entered the leaf, and nothing from then verifies now."""
    if leaf_hash(envelope) == held_leaf:
        raise Malformed(f"{what}: {OLD_DATABASE}", field="database")
