"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs, and their verification.

The tree keeps the hash of every complete (perfect, aligned) subtree in a
``NodeStore``: node ``(level, index)`` covers leaves ``[index << level,
(index + 1) << level)``. Any root, inclusion proof or consistency proof at any
size is then a combination of O(log n) stored nodes; nothing walks the log.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from .errors import BadProof, Malformed

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class NodeStore(Protocol):
    """Where a tree keeps its complete-subtree hashes.

    ``size`` is the number of leaves; ``get`` returns node ``(level, index)``,
    which must exist (its subtree is complete within ``size``); ``extend``
    records the nodes produced by appending leaves and the new size, atomically.
    """

    def size(self) -> int: ...

    def get(self, level: int, index: int) -> bytes: ...

    def extend(self, new_size: int, nodes: Sequence[tuple[int, int, bytes]]) -> None: ...


class MemoryNodeStore:
    """A NodeStore in memory: one list of hashes per level."""

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = []
        self._size = 0

    def size(self) -> int:
        return self._size

    def get(self, level: int, index: int) -> bytes:
        return self._levels[level][index]

    def extend(self, new_size: int, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        for level, index, digest in nodes:
            while len(self._levels) <= level:
                self._levels.append([])
            row = self._levels[level]
            if index != len(row):
                raise ValueError(f"node ({level}, {index}) out of order")
            row.append(digest)
        self._size = new_size


def new_nodes(
    size: int, frontier: Sequence[bytes], leaf_hashes: Iterable[bytes]
) -> tuple[list[tuple[int, int, bytes]], list[bytes]]:
    """Nodes created by appending ``leaf_hashes`` to a tree of ``size`` leaves.

    ``frontier`` holds the roots of the complete subtrees the size decomposes
    into, largest first (one per set bit of ``size``). Returns the new nodes
    (level, index, hash), leaves included, and the new frontier. Pure.
    """
    stack = list(frontier)
    out: list[tuple[int, int, bytes]] = []
    for digest in leaf_hashes:
        out.append((0, size, digest))
        current, level, index = digest, 0, size
        # Each trailing one bit of the old size is a left sibling to merge with.
        while index & 1:
            current = node_hash(stack.pop(), current)
            level += 1
            index >>= 1
            out.append((level, index, current))
        stack.append(current)
        size += 1
    return out, stack


class MerkleTree:
    """An append-only RFC 6962 tree over a NodeStore."""

    def __init__(self, store: NodeStore | None = None) -> None:
        self.store: NodeStore = store if store is not None else MemoryNodeStore()
        size = self.store.size()
        self._frontier = [self._perfect(start, level) for start, level in _decompose(0, size)]

    def _perfect(self, start: int, level: int) -> bytes:
        return self.store.get(level, start >> level)

    @property
    def size(self) -> int:
        return self.store.size()

    def append(self, data: bytes) -> int:
        """Append one leaf (its data); return its index."""
        return self.append_hashes([leaf_hash(data)])

    def append_many(self, items: Iterable[bytes]) -> int:
        """Append leaves (their data) in one store write; return the first index."""
        return self.append_hashes([leaf_hash(d) for d in items])

    def append_hashes(self, hashes: Sequence[bytes]) -> int:
        first = self.size
        nodes, frontier = new_nodes(first, self._frontier, hashes)
        self.store.extend(first + len(hashes), nodes)
        self._frontier = frontier
        return first

    def leaf_hash_at(self, index: int) -> bytes:
        self._check_size(index + 1)
        return self.store.get(0, index)

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the first ``size`` leaves (default: all)."""
        n = self.size if size is None else size
        self._check_size(n)
        if n == 0:
            return EMPTY_ROOT
        return self._range(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 6962 audit path for leaf ``index`` in the tree of ``size`` leaves."""
        n = self.size if size is None else size
        self._check_size(n)
        if not 0 <= index < n:
            raise Malformed(f"leaf index {index} is outside a tree of size {n}", field="index")
        proof: list[bytes] = []
        lo, hi = 0, n
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                proof.append(self._range(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._range(lo, lo + k))
                lo = lo + k
        proof.reverse()
        return proof

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """RFC 6962 consistency proof that the tree of ``size1`` is a prefix of ``size2``."""
        n = self.size if size2 is None else size2
        self._check_size(n)
        if not 0 <= size1 <= n:
            raise Malformed(f"cannot prove size {size1} against size {n}", field="size")
        if size1 == 0 or size1 == n:
            return []
        proof: list[bytes] = []
        lo, hi, m, complete = 0, n, size1, True
        while m != hi - lo:
            k = _split(hi - lo)
            if m <= k:
                proof.append(self._range(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._range(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        if not complete:
            proof.append(self._range(lo, hi))
        proof.reverse()
        return proof

    def _range(self, lo: int, hi: int) -> bytes:
        """Hash of leaves [lo, hi) where lo is a multiple of a power of two >= hi - lo."""
        parts = [self._perfect(start, level) for start, level in _decompose(lo, hi)]
        digest = parts.pop()
        while parts:
            digest = node_hash(parts.pop(), digest)
        return digest

    def _check_size(self, n: int) -> None:
        if not 0 <= n <= self.size:
            raise Malformed(f"tree size {n} is beyond the log ({self.size} leaves)", field="size")


class TreeCache:
    """One MerkleTree per log, over a store's node tables.

    A tree keeps its right edge in memory; whoever rolls back a transaction that
    appended to it must ``drop`` it, and it is rebuilt from the store when next used.
    """

    def __init__(self, nodes: Callable[[str], NodeStore]) -> None:
        self._nodes = nodes
        self._trees: dict[str, MerkleTree] = {}

    def __call__(self, log: str) -> MerkleTree:
        tree = self._trees.get(log)
        if tree is None:
            tree = self._trees[log] = MerkleTree(self._nodes(log))
        return tree

    def drop(self, log: str | None = None) -> None:
        if log is None:
            self._trees.clear()
        else:
            self._trees.pop(log, None)


def _decompose(lo: int, hi: int) -> list[tuple[int, int]]:
    """Split [lo, hi) into complete subtrees (start, level), left to right.

    Follows RFC 6962's split: the left part is always the largest power of two
    smaller than the range, so the pieces are exactly the stored nodes.
    """
    out: list[tuple[int, int]] = []
    while hi > lo:
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            out.append((lo, n.bit_length() - 1))
            break
        k = _split(n)
        out.append((lo, k.bit_length() - 1))
        lo += k
    return out


def _equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an RFC 9162 (2.1.3.2) inclusion proof; raise BadProof if it fails.

    ``leaf`` is the leaf *hash*.
    """
    if index < 0 or index >= size:
        raise BadProof(f"leaf index {index} is outside a tree of size {size}", index=index)
    if len(leaf) != HASH_SIZE or len(root) != HASH_SIZE:
        raise BadProof("leaf hash and root must be 32 bytes", index=index)
    if any(len(p) != HASH_SIZE for p in proof):
        raise BadProof("proof nodes must be 32 bytes", index=index)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise BadProof("inclusion proof is too long", index=index)
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise BadProof("inclusion proof is too short", index=index)
    if not _equal(r, root):
        raise BadProof("inclusion proof does not lead to the root", index=index)


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check an RFC 9162 (2.1.4.2) consistency proof; raise BadProof if it fails."""
    if size1 < 0 or size2 < size1:
        raise BadProof(f"size {size1} cannot be a prefix of size {size2}")
    if size1 == size2:
        if proof:
            raise BadProof("equal sizes need an empty proof")
        if size1 == 0 and not (_equal(root1, EMPTY_ROOT) and _equal(root2, EMPTY_ROOT)):
            raise BadProof("the empty tree has a fixed root")
        if not _equal(root1, root2):
            raise BadProof("equal sizes but different roots")
        return
    if size1 == 0:
        # Everything is consistent with the empty tree; a proof proves nothing.
        if proof:
            raise BadProof("a proof from the empty tree must be empty")
        if not _equal(root1, EMPTY_ROOT):
            raise BadProof("the empty tree has a fixed root")
        raise BadProof("consistency with the empty tree proves nothing; check the new root")
    if not proof:
        raise BadProof("consistency proof is empty")
    if any(len(p) != HASH_SIZE for p in proof):
        raise BadProof("proof nodes must be 32 bytes")
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise BadProof("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise BadProof("consistency proof is too short")
    if not _equal(fr, root1):
        raise BadProof("consistency proof does not lead to the old root")
    if not _equal(sr, root2):
        raise BadProof("consistency proof does not lead to the new root")


def root_of(leaves: Sequence[bytes]) -> bytes:
    """Root of a list of leaf data, straight from RFC 6962's definition (for checks)."""
    hashes = [leaf_hash(d) for d in leaves]
    if not hashes:
        return EMPTY_ROOT

    def mth(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return hashes[lo]
        k = _split(hi - lo)
        return node_hash(mth(lo, lo + k), mth(lo + k, hi))

    return mth(0, len(hashes))
