"""Envelopes: sealed once for many, tamper-evident, refused by non-recipients."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.envelope import (
    MAX_ENVELOPE,
    ZERO_HASH,
    Kind,
    Precedence,
    check_chain,
    envelope_hash,
    open_envelope,
    parse,
    seal,
)
from hotline.errors import ChainGap, HotlineError, NotARecipient, Replay, RevokedKey, TooLarge
from hotline.keys import KeyRing, StationKey

from .conftest import World, make_world

WORLD = make_world()


def _seal(
    world: World,
    body: bytes = b"hello",
    seq: int = 1,
    prev: bytes = ZERO_HASH,
    to: tuple[str, ...] = ("us", "ru"),
) -> bytes:
    return seal(
        body,
        sender=world.stations["us"],
        channel="us-ru",
        seq=seq,
        prev=prev,
        recipients=[world.certs[p] for p in to],
        created_ms=world.certs["us"].not_before * 1000 + 7_200_000,
        kind=Kind.MESSAGE,
        precedence=Precedence.FLASH,
    )


def test_every_recipient_opens_the_same_body(world: World) -> None:
    raw = _seal(world, b"deconfliction notice")
    for p in ("us", "ru"):
        opened = open_envelope(raw, world.stations[p], world.keyring)
        assert opened.body == b"deconfliction notice"
        assert opened.envelope.precedence is Precedence.FLASH
        assert opened.envelope.sender == "us/us-1"


def test_a_non_recipient_cannot_open_it(world: World) -> None:
    raw = _seal(world)
    with pytest.raises(NotARecipient):
        open_envelope(raw, world.stations["ua"], world.keyring)
    # Even a station that renames itself to a recipient holds the wrong key.
    impostor = StationKey(
        "ru", "ru-1", world.stations["ua"].signing, world.stations["ua"].encryption
    )
    with pytest.raises(NotARecipient):
        open_envelope(raw, impostor, world.keyring)


def test_the_body_is_not_in_the_clear(world: World) -> None:
    assert b"secret plan" not in _seal(world, b"secret plan")


def test_changing_any_single_byte_is_detected(world: World) -> None:
    raw = _seal(world, b"x" * 40)
    for i in range(len(raw)):
        for delta in (1, 0x80):
            tampered = bytearray(raw)
            tampered[i] ^= delta
            with pytest.raises(HotlineError):
                open_envelope(bytes(tampered), world.stations["ru"], world.keyring)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=2000), st.data())
def test_any_truncation_or_extension_is_refused(body: bytes, data: st.DataObject) -> None:
    world = WORLD
    raw = _seal(world, body)
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    with pytest.raises(HotlineError):
        open_envelope(raw[:cut], world.stations["ru"], world.keyring)
    with pytest.raises(HotlineError):
        open_envelope(
            raw + data.draw(st.binary(min_size=1, max_size=8)), world.stations["ru"], world.keyring
        )


def test_size_limit_is_enforced_before_parsing() -> None:
    with pytest.raises(TooLarge):
        parse(b"\xff" * (MAX_ENVELOPE + 1))
    with pytest.raises(TooLarge):
        parse(b"HLEN" + bytes(1000), max_size=100)


def test_oversized_body_is_refused_at_seal(world: World) -> None:
    with pytest.raises(TooLarge):
        _seal(world, b"x" * (64 * 1024 + 1))


def test_sender_chain_detects_gaps_and_replays(world: World) -> None:
    e1 = parse(_seal(world, b"1"))
    e2 = parse(_seal(world, b"2", seq=2, prev=e1.hash))
    check_chain(0, ZERO_HASH, e1)
    check_chain(1, e1.hash, e2)
    with pytest.raises(Replay):
        check_chain(1, e1.hash, e1)
    e3_gap = parse(_seal(world, b"3", seq=3, prev=e2.hash))
    with pytest.raises(ChainGap):
        check_chain(1, e1.hash, e3_gap)
    e2_forked = parse(_seal(world, b"2'", seq=2, prev=envelope_hash(b"other")))
    with pytest.raises(ChainGap):
        check_chain(1, e1.hash, e2_forked)


def test_a_revoked_key_is_refused_whatever_its_revoked_at(world: World) -> None:
    # A key ring holds the keys as they stand now; in a log, a revocation takes effect at
    # its position (keyhistory.py, tests/test_key_events.py), never at its revoked_at.
    ring = KeyRing(world.roster.roots())
    for c in world.certs.values():
        ring.add_certificate(c.encode())
    raw = _seal(world)
    created = parse(raw).created_ms // 1000
    ring.add_revocation(
        world.parties["us"].revoke(world.certs["us"], created - 1, "stolen").encode()
    )
    with pytest.raises(RevokedKey):
        open_envelope(raw, world.stations["ru"], ring)
    with pytest.raises(RevokedKey):
        open_envelope(raw, world.stations["ru"], ring, at=created - 2)
