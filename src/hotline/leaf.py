"""The Merkle leaf of a logged entry (leaf format v2): the relay's time inside the leaf.

As in Certificate Transparency (RFC 6962 §3.4), the time the relay gives an entry is part
of what the tree commits to, so the signed checkpoint covers it: nobody (relay or editor
of a transcript) can change an entry's time without changing the root. The envelope's own
bytes and signature are untouched; the tree code (merkle.py) hashes whatever leaf data it
is given::

    leaf data = 0x02 (version) || relay_ms (u64) || envelope
    leaf hash = SHA-256(0x00 || leaf data)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import Malformed
from .merkle import leaf_hash
from .wire import MAX_U63

LEAF_VERSION = 2
_HEADER = struct.Struct(">BQ")
HEADER_SIZE = _HEADER.size  # 9 bytes


@dataclass(frozen=True)
class Leaf:
    """One logged entry as the tree holds it: the relay's time and the exact envelope."""

    relay_ms: int
    envelope: bytes

    def data(self) -> bytes:
        return leaf_data(self.relay_ms, self.envelope)

    def hash(self) -> bytes:
        return leaf_hash(self.data())


def leaf_data(relay_ms: int, envelope: bytes) -> bytes:
    """The leaf data of an entry logged at ``relay_ms`` (ms since the epoch)."""
    if not 0 <= relay_ms <= MAX_U63:
        raise Malformed(f"relay time {relay_ms} is outside 0..2^63-1", field="relay_ms")
    return _HEADER.pack(LEAF_VERSION, relay_ms) + envelope


def entry_leaf_hash(relay_ms: int, envelope: bytes) -> bytes:
    """RFC 6962 leaf hash of the entry's leaf data."""
    return leaf_hash(leaf_data(relay_ms, envelope))


def parse_leaf(data: bytes) -> Leaf:
    """Split leaf data into its time and envelope (Malformed if it is not v2)."""
    if len(data) < HEADER_SIZE:
        raise Malformed("leaf data is shorter than its header", field="leaf")
    version, relay_ms = _HEADER.unpack_from(data)
    if version != LEAF_VERSION:
        raise Malformed(f"leaf version {version}, expected {LEAF_VERSION}", field="leaf")
    if relay_ms > MAX_U63:
        raise Malformed(f"relay time {relay_ms} is outside 0..2^63-1", field="relay_ms")
    return Leaf(relay_ms, data[HEADER_SIZE:])


OLD_DATABASE = (
    "this database was written before leaf format v2 (the relay's time inside each Merkle "
    "leaf) and is not migrated: start from a new database"
)


def check_not_v1(held_leaf: bytes, envelope: bytes, what: str) -> None:
    """Refuse a store whose first leaf is a v1 leaf (the bare envelope): its trees were
    built before the time entered the leaf, and nothing from then verifies now."""
    if leaf_hash(envelope) == held_leaf:
        raise Malformed(f"{what}: {OLD_DATABASE}", field="database")
