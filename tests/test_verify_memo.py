"""What issue 15's CPU work keeps off the hot path may not let anything skip a check.

A signature that verified once is not checked again for the very same key, signature and
message bytes; everything else still goes to Ed25519, so a forged signature, a genuine
signature moved onto other text, or another key's claim fails right after the genuine one
passed. Public keys are made once per key bytes. A key name is checked with one
expression the tests hold equal to the old one over every code point. A receipt's
reference is compared with the hash stored beside the entry's bytes. A station opens a
v2 envelope with the public keys it derived once from its secrets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hotline import envelope as env_mod
from hotline import hybrid, notes, pubkeys
from hotline.errors import BadSignature, Malformed
from hotline.keys import StationKey
from hotline.notes import (
    Checkpoint,
    Cosigner,
    NoteSigner,
    cosign,
    cosigners,
    open_checkpoint,
    sign_checkpoint,
)
from hotline.station.store import Entry, StationStore

ROOT = b"\x07" * 32


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_a_forged_relay_signature_fails_after_the_genuine_one_passed() -> None:
    relay = NoteSigner("relay.test", Ed25519PrivateKey.generate())
    cp = Checkpoint("origin.test", 5, ROOT)
    genuine = sign_checkpoint(cp, relay).encode()
    assert open_checkpoint(genuine, relay.verifier, "origin.test").size == 5
    assert open_checkpoint(genuine, relay.verifier, "origin.test").size == 5  # remembered
    sig = sign_checkpoint(cp, relay).note.signatures[0]
    forged = genuine.replace(
        notes.b64(sig.key_hash.to_bytes(4, "big") + sig.signature).encode(),
        notes.b64(sig.key_hash.to_bytes(4, "big") + _flip(sig.signature, 10)).encode(),
    )
    assert forged != genuine
    with pytest.raises(BadSignature):
        open_checkpoint(forged, relay.verifier, "origin.test")
    # The genuine signature, carried onto another checkpoint's text, is no signature of it.
    other = Checkpoint("origin.test", 6, ROOT).text().encode()
    assert not relay.verifier.verify(other, sig.signature)
    # Another key of the same name does not inherit what the first key proved.
    impostor = NoteSigner("relay.test", Ed25519PrivateKey.generate())
    assert not impostor.verifier.verify(cp.text().encode(), sig.signature)


def test_a_forged_cosignature_fails_after_the_genuine_one_passed() -> None:
    relay = NoteSigner("relay.test", Ed25519PrivateKey.generate())
    witness = Cosigner("ru/ru-1", Ed25519PrivateKey.generate())
    signed = cosign(sign_checkpoint(Checkpoint("origin.test", 5, ROOT), relay), witness, 1000)
    assert cosigners(signed, [witness.verifier]) == {"ru/ru-1": 1000}
    assert cosigners(signed, [witness.verifier]) == {"ru/ru-1": 1000}
    raw = signed.note.text.encode()
    good = signed.note.signatures[-1].signature
    assert witness.verifier.verify(raw, good)
    assert not witness.verifier.verify(raw, _flip(good, 20))  # the signature forged
    assert not witness.verifier.verify(raw, _flip(good, 3))  # the time it claims changed


def test_the_verified_signatures_kept_are_bounded() -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    for i in range(notes._VERIFIED_MAX + 10):
        message = b"m%d" % i
        assert notes.ed25519_valid(public, key.sign(message), message)
    assert len(notes._verified) <= notes._VERIFIED_MAX


def test_public_keys_are_made_once_and_bad_bytes_still_refused() -> None:
    public = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    assert pubkeys.ed25519(public) is pubkeys.ed25519(public)
    with pytest.raises(ValueError):
        pubkeys.ed25519(b"\x01" * 31)
    with pytest.raises(ValueError):
        pubkeys.mldsa65(b"\x01" * 100)


def _old_name_refused(name: str) -> bool:
    """The check as it was written before issue 15."""
    return not name or any(c.isspace() or c == "+" for c in name) or not name.isprintable()


def _new_name_refused(name: str) -> bool:
    try:
        notes._check_name(name)
    except Malformed:
        return True
    return False


def test_key_name_check_is_the_old_one_over_every_code_point() -> None:
    for cp in range(sys.maxunicode + 1):
        c = chr(cp)
        for name in (c, "a" + c + "b"):
            assert _new_name_refused(name) == _old_name_refused(name), hex(cp)
    assert _new_name_refused("") and not _new_name_refused("relay.ae")


def test_the_stored_entry_hash_is_the_hash_of_the_stored_bytes(tmp_path: Path) -> None:
    store = StationStore(tmp_path / "s.db")
    raw = b"an envelope, whatever its bytes"
    with store.transaction():
        store.add_entry(Entry("c", 0, raw, env_mod.envelope_hash(raw), "us/us-1", 1, 1, 0, True))
        store.add_entry(Entry("c", 1, b"", env_mod.envelope_hash(b""), "?", 0, 0, 0, False))
    assert store.entry_hash("c", 0) == env_mod.envelope_hash(store.entry_bytes("c", 0))
    assert store.entry_hash("c", 1) is None  # an empty entry names nothing, as before
    assert store.entry_hash("c", 2) is None and store.entry_hash("d", 0) is None
    store.close()


def test_a_station_opens_with_the_publics_it_holds_as_with_publics_derived_again() -> None:
    station = StationKey.generate("ru", "ru-1")
    assert station.pq is not None
    recipient = station.encryption.public_key().public_bytes_raw()
    eph = X25519PrivateKey.generate()
    eph_public = eph.public_key().public_bytes_raw()
    kek, ct = hybrid.encapsulate(eph, eph_public, recipient, station.pq.kem_public)
    held = (station.encryption_public, station.pq.kem_public)
    assert hybrid.decapsulate(station.encryption, station.pq.kem, eph_public, ct) == kek
    assert (
        hybrid.decapsulate(station.encryption, station.pq.kem, eph_public, ct, publics=held) == kek
    )
    # The publics are bound into the key: another station's do not give the same one.
    other = StationKey.generate("ua", "ua-1")
    assert other.pq is not None
    wrong = (other.encryption_public, other.pq.kem_public)
    assert (
        hybrid.decapsulate(station.encryption, station.pq.kem, eph_public, ct, publics=wrong) != kek
    )
