"""Certificates, revocation, rotation, the roster and encrypted key files."""

from __future__ import annotations

import pytest

from hotline.errors import (
    BadSignature,
    KeyNotValid,
    Malformed,
    RevokedKey,
    UnknownKey,
    WrongPassphrase,
)
from hotline.keys import (
    KeyRing,
    PartyKey,
    StationKey,
    key_from_material,
    open_key_file,
    parse_certificate,
    seal_key_file,
)
from hotline.roster import open_roster, roster_text, sign_roster, unsigned_parties

FAST_KDF = {"iterations": 1, "lanes": 1, "memory_kib": 8 * 1024}


def test_certificate_is_verified_against_its_party_root() -> None:
    us, ru = PartyKey.generate("us"), PartyKey.generate("ru")
    station = StationKey.generate("us", "us-1")
    cert = us.certify(station, 100, 200)
    assert parse_certificate(cert.encode(), us.verifier).signing == station.signing_public
    with pytest.raises(BadSignature):
        parse_certificate(cert.encode(), ru.verifier)


def test_keyring_applies_validity_revocation_and_rotation() -> None:
    us = PartyKey.generate("us")
    old, new = StationKey.generate("us", "us-1"), StationKey.generate("us", "us-1")
    ring = KeyRing({"us": us.verifier})
    with pytest.raises(UnknownKey):
        ring.station("us/us-1", 150)
    c_old = us.certify(old, 100, 1000)
    c_new = us.certify(new, 500, 2000)
    ring.add_certificate(c_old.encode())
    ring.add_certificate(c_new.encode())
    assert [c.signing for c in ring.station("us/us-1", 150)] == [old.signing_public]
    with pytest.raises(KeyNotValid):
        ring.station("us/us-1", 50)
    # A key ring holds the keys as they stand now: a revocation it took withdraws the key
    # at any time asked (its revoked_at moves nothing; a log's history is by position).
    ring.add_revocation(us.revoke(c_old, 600, "superseded", replaced_by=c_new).encode())
    assert [c.signing for c in ring.station("us/us-1", 550)] == [new.signing_public]
    with pytest.raises(RevokedKey):
        ring.station("us/us-1", 150)
    ring.add_revocation(us.revoke(c_new, 800, "compromised").encode())
    with pytest.raises(RevokedKey):
        ring.station("us/us-1", 700)


def test_a_party_cannot_certify_or_revoke_for_another() -> None:
    us, ru = PartyKey.generate("us"), PartyKey.generate("ru")
    ring = KeyRing({"us": us.verifier, "ru": ru.verifier})
    station = StationKey.generate("us", "us-1")
    cert = us.certify(station, 0, 10)
    # ru signs a certificate body claiming to be us's.
    forged = cert.note.text
    from hotline.notes import make_note

    with pytest.raises(BadSignature):
        ring.add_certificate(make_note(forged, ru.signer).encode())


def test_key_file_round_trip_and_wrong_passphrase() -> None:
    station = StationKey.generate("ru", "ru-1")
    blob = seal_key_file(station.secret_material(), "correct horse", FAST_KDF)
    assert b"correct" not in blob and station.signing_public not in blob
    again = key_from_material(open_key_file(blob, "correct horse"))
    assert isinstance(again, StationKey) and again.signing_public == station.signing_public
    with pytest.raises(WrongPassphrase):
        open_key_file(blob, "wrong horse")
    with pytest.raises(Malformed):
        open_key_file(b"{not json", "x")


def _roster_parts() -> tuple[dict[str, PartyKey], str]:
    parties = {p: PartyKey.generate(p) for p in ("us", "ru", "ae")}
    relay = PartyKey.generate("relay")
    text = roster_text(
        "talks",
        {
            p: {**k.public_keys(), "language": "ru" if p == "ru" else "en"}
            for p, k in parties.items()
        },
        {"us-ru": {"members": ["us", "ru"], "deadlines": {"FLASH": 60}}},
        relay.verifier.encode(),
    )
    return parties, text


def test_roster_needs_every_party_signature() -> None:
    parties, text = _roster_parts()
    note = sign_roster(text, parties["us"])
    note = sign_roster(note, parties["ru"])
    assert unsigned_parties(note.encode()) == ["ae"]
    with pytest.raises(BadSignature, match="ae"):
        open_roster(note.encode())
    roster = open_roster(sign_roster(note, parties["ae"]).encode())
    ch = roster.channel("us-ru")
    assert ch.members == ("us", "ru")
    assert ch.deadlines == {"FLASH": 60, "IMMEDIATE": 1800, "PRIORITY": 10800, "ROUTINE": 86400}
    assert roster.origin("us-ru") == "hotline/talks/us-ru"


def test_roster_with_unknown_member_is_malformed() -> None:
    parties, _ = _roster_parts()
    text = roster_text(
        "talks",
        {"us": parties["us"].public_keys()},
        {"x": {"members": ["us", "zz"]}},
        parties["ae"].verifier.encode(),
    )
    with pytest.raises(Malformed):
        open_roster(sign_roster(text, parties["us"]).encode())
