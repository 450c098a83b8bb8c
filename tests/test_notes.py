"""C2SP signed notes (public vectors), checkpoints and witness cosignatures."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.errors import BadSignature, ForkDetected, HotlineError, Malformed
from hotline.merkle import MerkleTree
from hotline.notes import (
    Checkpoint,
    Cosigner,
    NoteSigner,
    check_extends,
    cosign,
    cosigners,
    make_note,
    open_checkpoint,
    open_note,
    parse_checkpoint_text,
    parse_verifier_key,
    sign_checkpoint,
)

from .conftest import vectors_dir

VECTORS = json.loads((vectors_dir() / "signed-note" / "vectors.json").read_text())


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["desc"] for c in VECTORS["cases"]])
def test_signed_note_vector(case: dict[str, object]) -> None:
    verifiers = [parse_verifier_key(v) for v in case["verifiers"]]  # type: ignore[attr-defined]
    if case["want"] == "ok":
        _, names = open_note(case["note"].encode(), verifiers)  # type: ignore[attr-defined]
        assert names == case["verified"]
    else:
        with pytest.raises(HotlineError):
            open_note(case["note"].encode(), verifiers)  # type: ignore[attr-defined]


@pytest.mark.parametrize("vkey", VECTORS["bad_verifier_keys"])
def test_bad_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(Malformed):
        parse_verifier_key(vkey)


def test_signing_reproduces_the_vector_signature_and_keys() -> None:
    peter = VECTORS["keys"]["PeterNeumann"]
    signer = NoteSigner.parse(peter["signer"])
    assert signer.verifier.encode() == peter["verifier"]
    assert make_note(VECTORS["text"], signer).encode().decode() == VECTORS["signed_by_peter"]


def _key(name: str) -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.generate())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.text(
            st.characters(min_codepoint=32, exclude_characters="\x7f", exclude_categories=["Cs"]),
            min_size=1,
            max_size=30,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_notes_round_trip_and_any_text_change_breaks_them(lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    signer = _key("k")
    note = make_note(text, signer)
    _, names = open_note(note.encode(), [signer.verifier])
    assert names == ["k"]
    changed = note.encode().replace(lines[0].encode(), lines[0].encode() + b"x", 1)
    with pytest.raises(BadSignature):
        open_note(changed, [signer.verifier])


def test_checkpoint_text_is_origin_size_root() -> None:
    cp = Checkpoint("hotline/t/us-ru", 3, bytes(range(32)))
    assert cp.text() == "hotline/t/us-ru\n3\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    assert parse_checkpoint_text(cp.text()) == cp


@pytest.mark.parametrize(
    "text",
    [
        "o\n01\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "o\n1\nAAEC\n",
        "o\n1\n",
        "\n1\nx\n",
        "o\n-1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(Malformed):
        parse_checkpoint_text(text)


def test_checkpoint_from_another_log_key_or_origin_is_refused() -> None:
    log, other = _key("relay"), _key("relay")
    signed = sign_checkpoint(Checkpoint("hotline/t/c", 1, bytes(32)), log)
    assert open_checkpoint(signed.encode(), log.verifier, "hotline/t/c").size == 1
    with pytest.raises(BadSignature):
        open_checkpoint(signed.encode(), other.verifier)
    with pytest.raises(Malformed):
        open_checkpoint(signed.encode(), log.verifier, "hotline/t/other")


def test_cosignatures_follow_c2sp_and_bind_the_checkpoint() -> None:
    log = _key("relay")
    witness = Cosigner("us/us-1", Ed25519PrivateKey.generate())
    signed = sign_checkpoint(Checkpoint("hotline/t/c", 5, bytes(32)), log)
    both = cosign(signed, witness, 1_700_000_000)
    reopened = open_checkpoint(both.encode(), log.verifier)
    assert cosigners(reopened, [witness.verifier]) == {"us/us-1": 1_700_000_000}
    # The log's key alone does not accept the witness line, and vice versa.
    assert cosigners(reopened, []) == {}
    forged = both.encode().replace(b"\n5\n", b"\n6\n")
    with pytest.raises(BadSignature):
        open_checkpoint(forged, log.verifier)


def test_check_extends_accepts_growth_and_catches_forks() -> None:
    tree = MerkleTree()
    tree.append_many([b"a", b"b", b"c"])
    old = Checkpoint("o", 3, tree.root())
    tree.append_many([b"d", b"e"])
    new = Checkpoint("o", 5, tree.root())
    check_extends(old, new, tree.consistency_proof(3, 5))
    other = MerkleTree()
    other.append_many([b"a", b"b", b"X", b"d", b"e"])
    with pytest.raises(ForkDetected):
        check_extends(old, Checkpoint("o", 5, other.root()), other.consistency_proof(3, 5))
    with pytest.raises(ForkDetected):
        check_extends(new, old, [])
    with pytest.raises(ForkDetected):
        check_extends(old, Checkpoint("o", 3, other.root(3)), [])
