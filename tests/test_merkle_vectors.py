"""The transparency-dev/merkle vectors: every file is a case; happy paths are regenerated."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from hotline.errors import BadProof
from hotline.merkle import MerkleTree, root_of, verify_consistency, verify_inclusion

from .conftest import vectors_dir

BASE = vectors_dir() / "transparency-dev-merkle"
FILES = sorted(BASE.rglob("*.json"))
REFERENCE_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]


def _b(s: str) -> bytes:
    return base64.b64decode(s) if s else b""


def _check(case: dict[str, object]) -> None:
    proof = [_b(p) for p in (case["proof"] or [])]  # type: ignore[union-attr]
    if "leafIdx" in case:
        verify_inclusion(
            _b(case["leafHash"]),
            case["leafIdx"],
            case["treeSize"],
            proof,  # type: ignore[arg-type]
            _b(case["root"]),
        )  # type: ignore[arg-type]
    else:
        verify_consistency(
            case["size1"],
            case["size2"],
            proof,
            _b(case["root1"]),  # type: ignore[arg-type]
            _b(case["root2"]),
        )  # type: ignore[arg-type]


def test_all_196_vector_files_are_present() -> None:
    assert len(FILES) == 196


@pytest.mark.parametrize("path", FILES, ids=[str(f.relative_to(BASE)) for f in FILES])
def test_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    if case["wantErr"]:
        with pytest.raises(BadProof):
            _check(case)
    else:
        _check(case)


def test_reference_roots_match_the_readme_table() -> None:
    tree = MerkleTree()
    tree.append_many(REFERENCE_LEAVES)
    table = (vectors_dir() / "README.md").read_text()
    for n in range(1, 9):
        root = base64.b64encode(tree.root(n)).decode()
        assert f"| {n} | {root} |" in table
        assert tree.root(n) == root_of(REFERENCE_LEAVES[:n])


HAPPY = sorted(BASE.glob("*/*/happy-path.json"))


@pytest.mark.parametrize("path", HAPPY, ids=[str(f.relative_to(BASE)) for f in HAPPY])
def test_generated_proofs_match_happy_paths_node_for_node(path: Path) -> None:
    case = json.loads(path.read_text())
    tree = MerkleTree()
    tree.append_many(REFERENCE_LEAVES)
    if "leafIdx" in case:
        assert tree.leaf_hash_at(case["leafIdx"]) == _b(case["leafHash"])
        assert tree.root(case["treeSize"]) == _b(case["root"])
        got = tree.inclusion_proof(case["leafIdx"], case["treeSize"])
    else:
        assert tree.root(case["size1"]) == _b(case["root1"])
        got = tree.consistency_proof(case["size1"], case["size2"])
    assert [base64.b64encode(p).decode() for p in got] == (case["proof"] or [])
