"""docs/PROTOCOL.md's worked example is re-derived byte for byte from the code."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from hotline.envelope import MAX_ENVELOPE, ZERO_HASH, Kind, Precedence, open_envelope, parse, verify
from hotline.errors import NotARecipient
from hotline.example import CERTIFIED_MS, LOGGED_MS, T0, example
from hotline.keys import KeyRing, StationKey
from hotline.leaf import parse_leaf
from hotline.notes import open_checkpoint, parse_verifier_key

DOC = (Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md").read_text()
BLOCKS = dict(re.findall(r"<!-- example:(\w+) -->\n```\w*\n(.*?)\n```", DOC, re.S))
EXAMPLE = example()


def test_every_example_value_is_in_the_document() -> None:
    assert set(BLOCKS) == set(EXAMPLE)


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
