"""Property tests: every generated proof verifies; any tampering is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.errors import BadProof
from hotline.merkle import (
    EMPTY_ROOT,
    MemoryNodeStore,
    MerkleTree,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

N = 4096
LEAVES = [i.to_bytes(4, "big") + b"leaf" for i in range(N)]
TREE = MerkleTree()
TREE.append_many(LEAVES)


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_shape(m: int, n: int) -> tuple[str, ...]:
    """Which side each proof node sits on, from RFC 6962's PATH recursion."""
    if n <= 1:
        return ()
    k = _split(n)
    if m < k:
        return (*inclusion_shape(m, k), "R")
    return (*inclusion_shape(m - k, n - k), "L")


def consistency_shape(m: int, n: int, complete: bool = True) -> tuple[str, ...]:
    """Token sequence of RFC 6962's SUBPROOF recursion."""
    if m == n:
        return () if complete else ("S",)
    k = _split(n)
    if m <= k:
        return (*consistency_shape(m, k, complete), "R")
    return (*consistency_shape(m - k, n - k, False), "L")


def flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


sizes = st.integers(min_value=1, max_value=N)


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(sizes)
    return n, draw(st.integers(min_value=0, max_value=n - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(sizes)
    return draw(st.integers(min_value=1, max_value=n)), n


@settings(max_examples=300, deadline=None)
@given(size_and_index())
def test_every_inclusion_proof_verifies(case: tuple[int, int]) -> None:
    n, i = case
    verify_inclusion(leaf_hash(LEAVES[i]), i, n, TREE.inclusion_proof(i, n), TREE.root(n))


@settings(max_examples=300, deadline=None)
@given(two_sizes())
def test_every_consistency_proof_verifies(case: tuple[int, int]) -> None:
    m, n = case
    verify_consistency(m, n, TREE.consistency_proof(m, n), TREE.root(m), TREE.root(n))


@settings(max_examples=300, deadline=None)
@given(size_and_index(), st.integers(min_value=0), st.sampled_from(["proof", "root", "leaf"]))
def test_flipping_a_bit_of_proof_root_or_leaf_breaks_inclusion(
    case: tuple[int, int], bit: int, where: str
) -> None:
    n, i = case
    leaf, proof, root = leaf_hash(LEAVES[i]), TREE.inclusion_proof(i, n), TREE.root(n)
    if where == "proof":
        if not proof:
            return
        j = bit % len(proof)
        proof[j] = flip(proof[j], bit // len(proof))
    elif where == "root":
        root = flip(root, bit)
    else:
        leaf = flip(leaf, bit)
    with pytest.raises(BadProof):
        verify_inclusion(leaf, i, n, proof, root)


@settings(max_examples=300, deadline=None)
@given(size_and_index(), st.integers(min_value=0, max_value=13), st.booleans())
def test_flipping_a_bit_of_index_or_size_breaks_inclusion_unless_the_shape_is_the_same(
    case: tuple[int, int], bit: int, on_size: bool
) -> None:
    # RFC 6962 proofs bind the leaf to the root, and the index and size only
    # through the proof's shape; hotline's checkpoints sign size with root.
    n, i = case
    leaf, proof, root = leaf_hash(LEAVES[i]), TREE.inclusion_proof(i, n), TREE.root(n)
    i2, n2 = (i, n ^ (1 << bit)) if on_size else (i ^ (1 << bit), n)
    same = 0 <= i2 < n2 and inclusion_shape(i2, n2) == inclusion_shape(i, n)
    if same:
        verify_inclusion(leaf, i2, n2, proof, root)
    else:
        with pytest.raises(BadProof):
            verify_inclusion(leaf, i2, n2, proof, root)


@settings(max_examples=300, deadline=None)
@given(two_sizes(), st.integers(min_value=0), st.sampled_from(["proof", "root1", "root2"]))
def test_flipping_a_bit_of_proof_or_roots_breaks_consistency(
    case: tuple[int, int], bit: int, where: str
) -> None:
    m, n = case
    proof, r1, r2 = TREE.consistency_proof(m, n), TREE.root(m), TREE.root(n)
    if where == "proof":
        if not proof:
            return
        j = bit % len(proof)
        proof[j] = flip(proof[j], bit // len(proof))
    elif where == "root1":
        r1 = flip(r1, bit)
    else:
        r2 = flip(r2, bit)
    with pytest.raises(BadProof):
        verify_consistency(m, n, proof, r1, r2)


@settings(max_examples=300, deadline=None)
@given(two_sizes(), st.integers(min_value=0, max_value=13), st.booleans())
def test_flipping_a_bit_of_a_size_breaks_consistency_unless_the_shape_is_the_same(
    case: tuple[int, int], bit: int, first: bool
) -> None:
    m, n = case
    proof, r1, r2 = TREE.consistency_proof(m, n), TREE.root(m), TREE.root(n)
    m2, n2 = (m ^ (1 << bit), n) if first else (m, n ^ (1 << bit))
    same = 0 < m2 < n2 and m < n and consistency_shape(m2, n2) == consistency_shape(m, n)
    if same:
        verify_consistency(m2, n2, proof, r1, r2)
    else:
        with pytest.raises(BadProof):
            verify_consistency(m2, n2, proof, r1, r2)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=300), st.integers(min_value=1, max_value=7))
def test_incremental_appends_equal_the_rfc_definition(leaves: list[bytes], chunk: int) -> None:
    tree = MerkleTree()
    for start in range(0, len(leaves), chunk):
        tree.append_many(leaves[start : start + chunk])
    assert tree.size == len(leaves)
    for n in range(len(leaves) + 1):
        assert tree.root(n) == root_of(leaves[:n])
    assert tree.root(0) == EMPTY_ROOT


def test_a_tree_reopened_on_its_store_continues_where_it_stopped() -> None:
    store = MemoryNodeStore()
    first = MerkleTree(store)
    first.append_many(LEAVES[:77])
    again = MerkleTree(store)
    again.append_many(LEAVES[77:200])
    assert again.root() == TREE.root(200)


class CountingStore(MemoryNodeStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, level: int, index: int) -> bytes:
        self.reads += 1
        return super().get(level, index)


def test_proofs_read_a_logarithmic_number_of_nodes() -> None:
    store = CountingStore()
    tree = MerkleTree(store)
    tree.append_many(LEAVES)
    tree.append_many(LEAVES[:1000])  # 5096 leaves: an uneven right edge
    n = tree.size
    worst = 0
    for i in (0, 1, 2047, 2048, 4095, 4096, 5000, n - 1):
        store.reads = 0
        tree.inclusion_proof(i, n)
        worst = max(worst, store.reads)
        store.reads = 0
        tree.consistency_proof(i + 1, n)
        worst = max(worst, store.reads)
    assert worst <= 3 * n.bit_length()
