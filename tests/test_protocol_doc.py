"""docs/PROTOCOL.md's worked example is re-derived byte for byte from the code."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from hotline import hybrid
from hotline.envelope import MAX_ENVELOPE, ZERO_HASH, Kind, Precedence, open_envelope, parse, verify
from hotline.errors import NotARecipient
from hotline.example import (
    CERTIFIED_MS,
    LOGGED_MS,
    T0,
    V2_BODY,
    _seed,
    example,
    example_v2,
    v2_keys,
)
from hotline.keys import KeyRing, StationKey, parse_certificate
from hotline.leaf import parse_leaf
from hotline.notes import open_checkpoint, parse_note, parse_verifier_key

DOC = (Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md").read_text()
BLOCKS = dict(re.findall(r"<!-- example:(\w+) -->\n```\w*\n(.*?)\n```", DOC, re.S))
EXAMPLE = example()
FRESH_V2 = example_v2()  # a new instance: new ML-KEM ciphertexts and ML-DSA signatures


def test_every_example_value_is_in_the_document() -> None:
    assert set(BLOCKS) == set(EXAMPLE) | set(FRESH_V2)


@pytest.mark.parametrize("name", sorted(EXAMPLE))
def test_document_bytes_equal_the_code(name: str) -> None:
    printed = BLOCKS[name]
    if name == "envelope_hex":
        printed = "".join(printed.split())
    assert printed == EXAMPLE[name].rstrip("\n")


def test_the_example_envelope_reads_as_documented() -> None:
    env = parse(bytes.fromhex(EXAMPLE["envelope_hex"]))
    assert (env.kind, env.precedence, env.channel, env.sender, env.seq, env.prev) == (
        Kind.MESSAGE,
        Precedence.FLASH,
        "us-ru",
        "us/us-1",
        1,
        ZERO_HASH,
    )
    assert env.created_ms == T0 * 1000 + 5
    assert [r.ident for r in env.recipients] == ["us/us-1", "ru/ru-1"]
    us_root = parse_verifier_key(EXAMPLE["us_root_key"])
    ring = KeyRing({"us": us_root})
    ring.add_certificate(EXAMPLE["us_certificate"].encode())
    assert verify(env, ring).station == "us-1"
    with pytest.raises(NotARecipient):
        open_envelope(env, StationKey.generate("ua", "ua-1"), ring)
    cp = open_checkpoint(EXAMPLE["checkpoint"].encode(), parse_verifier_key(EXAMPLE["relay_key"]))
    leaves = [bytes.fromhex(EXAMPLE["key_event_leaf_hash"]), bytes.fromhex(EXAMPLE["leaf_hash"])]
    assert cp.size == 2 and cp.root == hashlib.sha256(b"\x01" + b"".join(leaves)).digest()
    cert_leaf = b"\x03" + CERTIFIED_MS.to_bytes(8, "big") + EXAMPLE["us_certificate"].encode()
    assert hashlib.sha256(b"\x00" + cert_leaf).hexdigest() == EXAMPLE["key_event_leaf_hash"]


def test_the_example_leaf_holds_the_relay_time_then_the_envelope() -> None:
    header = bytes.fromhex(EXAMPLE["leaf_header_hex"])
    assert header == b"\x02" + LOGGED_MS.to_bytes(8, "big")
    data = header + bytes.fromhex(EXAMPLE["envelope_hex"])
    assert hashlib.sha256(b"\x00" + data).hexdigest() == EXAMPLE["leaf_hash"]
    leaf = parse_leaf(data)
    assert (leaf.kind, leaf.relay_ms, leaf.payload.hex()) == (2, LOGGED_MS, EXAMPLE["envelope_hex"])
    cp_time = int(EXAMPLE["checkpoint"].split("\n")[3].removeprefix("time "))
    assert T0 * 1000 + 5 < leaf.relay_ms <= cp_time


def test_documented_size_limit_is_the_code_limit() -> None:
    assert f"{MAX_ENVELOPE:,} bytes" in DOC


# --- version 2 -----------------------------------------------------------------------------
# Every byte is re-derived but the ML-KEM ciphertext and the ML-DSA-65 signatures, which
# the library randomizes; those are checked by decapsulating and verifying (hotline.example).


def _v2_printed() -> bytes:
    return bytes.fromhex("".join(BLOCKS["v2_envelope_hex"].split()))


def test_v2_fixed_values_equal_the_code() -> None:
    assert BLOCKS["v2_us_root_keys"] == FRESH_V2["v2_us_root_keys"]
    assert BLOCKS["v2_body"] == FRESH_V2["v2_body"] == V2_BODY.decode()


def test_v2_certificate_text_and_ed25519_line_are_re_derived_and_ml_dsa_verifies() -> None:
    printed, fresh = (
        parse_note(BLOCKS["v2_us_certificate"].encode() + b"\n"),
        parse_note(FRESH_V2["v2_us_certificate"].encode()),
    )
    assert printed.text == fresh.text
    assert printed.signatures[0] == fresh.signatures[0]  # Ed25519: deterministic
    us_root = v2_keys()[0].verifier
    cert = parse_certificate(BLOCKS["v2_us_certificate"].encode() + b"\n", us_root)
    assert cert.version == 2 and cert.ident == "us/us-1"  # both lines verified


def test_v2_envelope_is_re_derived_byte_for_byte_where_seeds_fix_it() -> None:
    _, _, us1, ru1 = v2_keys()
    assert us1.pq is not None and ru1.pq is not None
    printed = _v2_printed()
    env, fresh = parse(printed), parse(bytes.fromhex(FRESH_V2["v2_envelope_hex"]))
    assert env.version == 2 and len(printed) == len(fresh.raw)
    # header up to the recipients: identical to a fresh seal from the same seeds
    assert (env.kind, env.precedence, env.channel, env.sender) == (
        Kind.MESSAGE,
        Precedence.FLASH,
        "us-ru",
        "us/us-1",
    )
    first = env.body_offset - sum(
        1 + len(r.ident) + len(r.kem_ciphertext) + 48 for r in env.recipients
    )
    assert printed[:first] == fresh.raw[:first]
    # each wrap: the printed ML-KEM ciphertext decapsulates with ru-1's seeded keys to the
    # key that re-derives the printed wrapped key
    [mine] = env.recipients
    assert mine.ident == "ru/ru-1" and len(mine.kem_ciphertext) == hybrid.MLKEM768_CIPHERTEXT_SIZE
    kek = hybrid.decapsulate(ru1.encryption, ru1.pq.kem, env.ephemeral, mine.kem_ciphertext)
    body_key = _seed("body key")
    assert ChaCha20Poly1305(kek).encrypt(bytes(12), body_key, b"ru/ru-1") == mine.wrapped
    # the body ciphertext, from the body key and the printed header
    assert ChaCha20Poly1305(body_key).encrypt(bytes(12), V2_BODY, env.header_part) == env.ciphertext
    # Ed25519 is deterministic: re-derived; ML-DSA-65 verifies
    ed = Ed25519PrivateKey.from_private_bytes(_seed("us-1 signing")).sign(env.signed_part)
    assert env.signature[:64] == ed
    us1.pq.signing.public_key().verify(env.signature[64:], env.signed_part)
    ring = KeyRing({"us": v2_keys()[0].verifier, "ru": v2_keys()[1].verifier})
    ring.add_certificate(BLOCKS["v2_us_certificate"].encode() + b"\n")
    assert verify(env, ring).version == 2
    assert open_envelope(env, ru1, ring).body == V2_BODY
