"""A station key nobody can seal to is refused, and never stops a message to the others."""

from __future__ import annotations

import dataclasses

import pytest

from hotline.envelope import ZERO_HASH, open_envelope, parse, seal
from hotline.errors import Malformed
from hotline.keys import (
    CERT_TYPE,
    KeyRing,
    PartyKey,
    StationKey,
    canonical_json,
    check_x25519,
)
from hotline.notes import b64, make_note

from .conftest import World

P = 2**255 - 19


def _le(n: int) -> bytes:
    return n.to_bytes(32, "little")


# The points of small order on Curve25519 (as u-coordinates), canonical and not.
_SMALL = [
    0,
    1,
    0x00B8495F16056286FDB1329CEB8D09DA6AC49FF1FAE35616AEB8413B7C7AEBE0,
    0x57119FD0DD4E22D8868E1C58C45C44045BEF839C55B1D0B1248C50A3BC959C5F,
    P - 1,
    P,
    P + 1,
]
LOW_ORDER = [_le(u) for u in _SMALL] + [_le(u | 1 << 255) for u in _SMALL]


@pytest.mark.parametrize("raw", LOW_ORDER, ids=[f"point{i}" for i in range(len(LOW_ORDER))])
def test_every_low_order_point_is_refused(raw: bytes) -> None:
    with pytest.raises(Malformed) as exc:
        check_x25519(raw)
    assert exc.value.field == "encryption"


def test_an_ordinary_key_is_accepted() -> None:
    key = StationKey.generate("us", "us-1")
    assert check_x25519(key.encryption_public) == key.encryption_public


def test_a_party_cannot_certify_an_all_zero_encryption_key() -> None:
    us = PartyKey.generate("us")
    station = StationKey.generate("us", "us-1")
    station.encryption_public = bytes(32)
    with pytest.raises(Malformed, match="low-order") as exc:
        us.certify(station, 0, 100)
    assert exc.value.field == "encryption"


def test_a_signed_certificate_with_a_low_order_key_is_refused_by_the_keyring() -> None:
    us = PartyKey.generate("us")
    station = StationKey.generate("us", "us-1")
    body = {
        "party": "us",
        "station": "us-1",
        "signing": b64(station.signing_public),
        "encryption": b64(bytes(32)),
        "not_before": 0,
        "not_after": 100,
    }
    note = make_note(f"{CERT_TYPE}\n{canonical_json(body)}\n", us.signer)
    ring = KeyRing({"us": us.verifier})
    with pytest.raises(Malformed) as exc:
        ring.add_certificate(note.encode())
    assert exc.value.field == "encryption"
    assert ring.certificates_of("us/us-1") == []


def test_a_bad_recipient_does_not_stop_the_message_to_the_good_one(world: World) -> None:
    good = world.certs["ru"]
    bad = dataclasses.replace(world.certs["ua"], encryption=bytes(32))
    raw = seal(
        b"still delivered",
        sender=world.stations["us"],
        channel="us-ru-ua",
        seq=1,
        prev=ZERO_HASH,
        recipients=[bad, good],
        created_ms=world.certs["us"].not_before * 1000 + 7_200_000,
    )
    assert [r.ident for r in parse(raw).recipients] == ["ru/ru-1"]
    assert open_envelope(raw, world.stations["ru"], world.keyring).body == b"still delivered"
