"""Post-quantum hybrid (issue 16): the wrap holds if either KEM holds, both signatures are
needed, old logs stay verifiable, and the roster's minimum version stops new v1 traffic.

Each test plays an attacker: one who holds a recipient's X25519 secret (as a quantum
computer would derive it from the public key), one who can forge Ed25519 alone, one who
strips or alters one half of a signature, and a relay that logs what it should refuse.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PublicKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given
from hypothesis import strategies as st

from hotline import body as body_mod
from hotline import envelope as env_mod
from hotline import hybrid, logcheck, transcript
from hotline.cli import main
from hotline.envelope import ZERO_HASH, Kind, seal
from hotline.errors import BadSignature, HotlineError, Malformed, NotARecipient, NotAuthorized
from hotline.keys import (
    KeyRing,
    PartyKey,
    StationCertificate,
    StationKey,
    StationPQ,
    parse_certificate,
)
from hotline.leaf import LeafKind
from hotline.notes import Note, NoteSignature, b64, make_note
from hotline.relay.core import RelayCore
from hotline.relay.sqlite import SqliteRelayStore
from hotline.roster import Roster, open_roster, roster_text, sign_roster

from .conftest import World, make_world
from .logbuild import T0, ChannelLog

ED = hybrid.ED25519_SIGNATURE_SIZE
WORLD = make_world(T0)
AT = T0  # inside every certificate of WORLD


def _v2(raw: bytes, recipients: list[StationCertificate] | None = None) -> bytes:
    return seal(
        raw,
        sender=WORLD.stations["us"],
        channel="us-ru",
        seq=1,
        prev=ZERO_HASH,
        recipients=recipients if recipients is not None else [WORLD.certs["ru"]],
        created_ms=AT * 1000,
    )


SMALL = _v2(b"hi")  # one recipient, a two-byte body: every byte of it can be tried


def _accepts(raw: bytes) -> bytes:
    """What ru's station does with envelope bytes: parse, verify both signatures, open."""
    return env_mod.open_envelope(raw, WORLD.stations["ru"], WORLD.keyring, AT).body


def test_world_keys_and_envelopes_are_version_2() -> None:
    env = env_mod.parse(SMALL)
    assert env.version == 2 and WORLD.certs["ru"].version == 2
    assert len(env.signature) == 64 + 3309
    assert [len(r.kem_ciphertext) for r in env.recipients] == [1088]
    assert _accepts(SMALL) == b"hi"


def test_every_single_byte_change_of_a_v2_envelope_is_detected() -> None:
    """Exhaustive over the small envelope: each position changed (two ways) is refused."""
    assert _accepts(SMALL) == b"hi"
    for pos in range(len(SMALL)):
        for flip in (0x01, 0x80):
            bad = bytearray(SMALL)
            bad[pos] ^= flip
            with pytest.raises(HotlineError):
                _accepts(bytes(bad))


@given(pos=st.integers(min_value=0), value=st.integers(min_value=1, max_value=255))
def test_any_byte_replaced_by_any_value_is_detected(pos: int, value: int) -> None:
    bad = bytearray(SMALL)
    pos %= len(bad)
    bad[pos] ^= value
    with pytest.raises(HotlineError):
        _accepts(bytes(bad))


# --- the wrap holds while ML-KEM holds ---------------------------------------------------


def test_an_attacker_with_the_x25519_secret_alone_cannot_unwrap() -> None:
    """The attacker holds ru's X25519 private key (all a quantum computer gets from its
    public key) and every public value; ru's ML-KEM-768 secret it does not have."""
    ru = WORLD.stations["ru"]
    raw = _v2(b"the crossing is at grid 38T LN 12345 67890")
    env = env_mod.parse(raw)
    stolen_x25519 = ru.encryption
    assert ru.pq is not None
    # 1. As a station: ru's X25519 key with any other ML-KEM key opens nothing.
    impostor = StationKey(
        "ru",
        "ru-1",
        ru.signing,
        stolen_x25519,
        StationPQ(ru.pq.signing, MLKEM768PrivateKey.generate()),
    )
    with pytest.raises(NotARecipient):
        env_mod.unwrap_key(env, impostor)
    # 2. By hand: the X25519 secret alone, under the v1 rule or the v2 combiner with any
    #    guess for the ML-KEM secret, does not give the key-encryption key.
    mine = env.recipients[0]
    ss_x = stolen_x25519.exchange(X25519PublicKey.from_public_bytes(env.ephemeral))
    x_pub = stolen_x25519.public_key().public_bytes_raw()
    assert WORLD.certs["ru"].kem is not None
    guesses = [
        env_mod._wrap_key(ss_x, env.ephemeral, x_pub),  # the v1 wrap: X25519 alone
        ChaCha20Poly1305(
            hybrid.combine(
                bytes(32), ss_x, env.ephemeral, x_pub, mine.kem_ciphertext, WORLD.certs["ru"].kem
            )
        ),
        ChaCha20Poly1305(
            hybrid.combine(
                ss_x, ss_x, env.ephemeral, x_pub, mine.kem_ciphertext, WORLD.certs["ru"].kem
            )
        ),
    ]
    for aead in guesses:
        with pytest.raises(InvalidTag):
            aead.decrypt(bytes(12), mine.wrapped, b"ru/ru-1")
    # Control: with the ML-KEM secret too, the same arithmetic opens it.
    kek = hybrid.decapsulate(stolen_x25519, ru.pq.kem, env.ephemeral, mine.kem_ciphertext)
    key = ChaCha20Poly1305(kek).decrypt(bytes(12), mine.wrapped, b"ru/ru-1")
    assert env_mod.decrypt_with_key(env, key).startswith(b"the crossing")


def test_in_version_1_the_x25519_secret_alone_was_enough() -> None:
    """Why v2 exists: the same attacker opens a version-1 envelope."""
    ru = WORLD.stations["ru"]
    raw = seal(
        b"recorded in 2025",
        sender=WORLD.stations["us"],
        channel="us-ru",
        seq=1,
        prev=ZERO_HASH,
        recipients=[WORLD.certs["ru"]],
        created_ms=AT * 1000,
        version=1,
    )
    env = env_mod.parse(raw)
    thief = StationKey("ru", "ru-1", ru.signing, ru.encryption)  # no ML-KEM key at all
    assert env_mod.decrypt(env, thief) == b"recorded in 2025"


def test_the_combiner_takes_every_input() -> None:
    """Change any one input (a secret, a ciphertext, a public key): another key."""
    parts = [bytes([i]) * n for i, n in enumerate((32, 32, 32, 32, 1088, 1184), start=1)]
    base = hybrid.combine(*parts)
    for i in range(len(parts)):
        changed = list(parts)
        changed[i] = bytes([0xEE]) + changed[i][1:]
        assert hybrid.combine(*changed) != base


# --- both signatures, or nothing ------------------------------------------------------------


def _halves(raw: bytes) -> tuple[bytes, bytes, bytes]:
    env = env_mod.parse(raw)
    return env.signed_part, env.signature[:ED], env.signature[ED:]


def _ed_holds(signed: bytes, ed_sig: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(WORLD.certs["us"].signing).verify(ed_sig, signed)
    except Exception:
        return False
    return True


def _pq_holds(signed: bytes, pq_sig: bytes) -> bool:
    assert WORLD.certs["us"].pq_signing is not None
    try:
        MLDSA65PublicKey.from_public_bytes(WORLD.certs["us"].pq_signing).verify(pq_sig, signed)
    except Exception:
        return False
    return True


def test_an_envelope_with_its_ml_dsa_signature_altered_is_refused_though_ed25519_holds() -> None:
    signed, ed_sig, pq_sig = _halves(SMALL)
    altered = bytearray(pq_sig)
    altered[100] ^= 0x04
    bad = signed + ed_sig + bytes(altered)
    assert _ed_holds(signed, ed_sig) and not _pq_holds(signed, bytes(altered))
    with pytest.raises(BadSignature):
        env_mod.verify(env_mod.parse(bad), WORLD.keyring, AT)


def test_an_envelope_with_its_ed25519_signature_altered_is_refused_though_ml_dsa_holds() -> None:
    signed, ed_sig, pq_sig = _halves(SMALL)
    altered = bytearray(ed_sig)
    altered[5] ^= 0x04
    bad = signed + bytes(altered) + pq_sig
    assert _pq_holds(signed, pq_sig) and not _ed_holds(signed, bytes(altered))
    with pytest.raises(BadSignature):
        env_mod.verify(env_mod.parse(bad), WORLD.keyring, AT)


def test_an_envelope_with_a_signature_stripped_is_refused() -> None:
    signed, ed_sig, pq_sig = _halves(SMALL)
    for stripped in (signed + ed_sig, signed + pq_sig):
        with pytest.raises(Malformed):
            env_mod.parse(stripped)


def test_a_forger_of_ed25519_alone_cannot_speak_for_a_v2_station() -> None:
    """The attacker signs with us-1's Ed25519 key and its own ML-DSA key (v2), or with
    Ed25519 alone in a version-1 envelope (a downgrade): both are refused."""
    us = WORLD.stations["us"]
    assert us.pq is not None
    forger = StationKey("us", "us-1", us.signing, us.encryption, StationPQ.generate())
    for version in (2, 1):
        raw = seal(
            b"stand down",
            sender=forger,
            channel="us-ru",
            seq=1,
            prev=ZERO_HASH,
            recipients=[WORLD.certs["ru"]],
            created_ms=AT * 1000,
            version=version,
        )
        with pytest.raises(BadSignature):
            env_mod.verify(env_mod.parse(raw), WORLD.keyring, AT)


def _cert_note(cert: StationCertificate, keep: str) -> bytes:
    """The certificate with only its Ed25519 (``keep="ed"``) or ML-DSA (``"pq"``) line."""
    sigs = cert.note.signatures
    ed = [s for s in sigs if len(s.signature) == 64]
    pq = [s for s in sigs if len(s.signature) != 64]
    return Note(cert.note.text, tuple(ed if keep == "ed" else pq)).encode()


def test_a_v2_certificate_needs_both_root_signatures() -> None:
    us_root = WORLD.parties["us"].verifier
    cert = WORLD.certs["us"]
    assert parse_certificate(cert.encode(), us_root).version == 2
    for keep in ("ed", "pq"):
        with pytest.raises(BadSignature):
            parse_certificate(_cert_note(cert, keep), us_root)
    ed, pq = cert.note.signatures
    altered = NoteSignature(pq.name, pq.key_hash, bytes([pq.signature[0] ^ 1]) + pq.signature[1:])
    with pytest.raises(BadSignature):
        parse_certificate(Note(cert.note.text, (ed, altered)).encode(), us_root)


def test_a_v2_revocation_needs_both_root_signatures() -> None:
    rev = WORLD.parties["us"].revoke(WORLD.certs["us"], AT + 10, "lost")
    ed = [s for s in rev.note.signatures if len(s.signature) == 64]
    ring = KeyRing(WORLD.roster.roots())
    ring.add_certificate(WORLD.certs["us"].encode())
    with pytest.raises(BadSignature):
        ring.add_revocation(Note(rev.note.text, tuple(ed)).encode())
    assert ring.add_revocation(rev.encode()).revoked_at == AT + 10


def test_a_v2_roster_missing_one_ml_dsa_signature_is_refused() -> None:
    note = WORLD.roster.note
    pq_ru = WORLD.parties["ru"].pq_signer
    assert pq_ru is not None
    without = tuple(s for s in note.signatures if s.key_hash != pq_ru.verifier.key_hash)
    with pytest.raises(BadSignature, match="ru"):
        open_roster(Note(note.text, without).encode())
    assert open_roster(note.encode()).note.text.startswith("hotline-roster/v2\n")


def test_key_files_keep_the_post_quantum_secrets() -> None:
    from hotline.keys import key_from_material, open_key_file, seal_key_file

    key = WORLD.stations["ru"]
    kdf = {"iterations": 1, "lanes": 1, "memory_kib": 8}
    back = key_from_material(open_key_file(seal_key_file(key.secret_material(), "pw", kdf), "pw"))
    assert isinstance(back, StationKey) and back.pq is not None and key.pq is not None
    assert (back.pq.kem_public, back.pq.signing_public) == (
        key.pq.kem_public,
        key.pq.signing_public,
    )
    assert _v2_opened_by(back) == b"hi"
    party = key_from_material(WORLD.parties["us"].secret_material())
    assert isinstance(party, PartyKey) and party.public_keys() == WORLD.parties["us"].public_keys()


def _v2_opened_by(station: StationKey) -> bytes:
    return env_mod.open_envelope(SMALL, station, WORLD.keyring, AT).body


# --- mixed logs and the roster's minimum ---------------------------------------------------


def _roster(world: World, min_version: int | None, from_ms: int | None) -> Roster:
    text = roster_text(
        "abu-dhabi",
        {p: k.public_keys() for p, k in world.parties.items()},
        {"us-ru": {"members": ["us", "ru"]}, "us-ru-ua": {"members": ["us", "ru", "ua"]}},
        world.relay.verifier.encode(),
        2,
        min_version,
        from_ms,
    )
    note = sign_roster(text, world.parties["us"])
    for p in ("ru", "ua", "ae"):
        note = sign_roster(note, world.parties[p])
    return open_roster(note.encode())


@dataclasses.dataclass
class Mixed:
    log: ChannelLog
    old_stations: dict[str, StationKey]
    old_certs: dict[str, StationCertificate]
    switch_ms: int


def _mixed(min_version: int | None = 2) -> Mixed:
    """us and ru talk in version 1 (stations from before issue 16, /v1 certificates
    signed by Ed25519 roots alone), then move to version-2 stations; the roster sets the
    minimum version 2 from the switch time."""
    world = make_world(T0)
    old_parties = {p: PartyKey(p, k.signer.private) for p, k in world.parties.items()}
    old_stations = {p: StationKey.generate(p, f"{p}-0", pq=False) for p in ("us", "ru")}
    old_certs = {
        p: old_parties[p].certify(s, T0 - 3600, T0 + 86400) for p, s in old_stations.items()
    }
    assert {c.version for c in old_certs.values()} == {1}
    log = ChannelLog(world, certify=False)
    v2_stations, v2_certs = dict(world.stations), dict(world.certs)
    world.stations.update(old_stations)
    world.certs.clear()
    world.certs.update(old_certs)
    for cert in old_certs.values():  # logged first, as the relay does
        log.key_event(cert.encode())
    one = log.message("us", "v1: one")
    log.message("ru", "v1: two")
    log.checkpoint("us", "ru")
    log.receipt("ru", "delivered", one)  # a message of another party's (not a key event)
    log.checkpoint("us", "ru")
    switch_ms = log.now_ms + 500
    world.roster = _roster(world, min_version, switch_ms if min_version else None)
    world.stations.update(v2_stations)
    world.certs.clear()
    world.certs.update({p: c for p, c in v2_certs.items() if p in ("us", "ru")})
    for cert in world.certs.values():
        log.key_event(cert.encode())
    log.chains.clear()  # new stations, new chains
    three = log.message("us", "v2: three")
    log.checkpoint("us", "ru")  # ru verified it before its receipt
    log.receipt("ru", "delivered", three)
    log.message("ru", "v2: four")
    log.checkpoint("us", "ru")
    return Mixed(log, old_stations, old_certs, switch_ms)


def _envelopes(log: ChannelLog) -> list[tuple[int, bytes]]:
    """The log's envelopes with their indices (its key events left out)."""
    return [
        (i, raw)
        for i, ((raw, _), kind) in enumerate(zip(log.entries, log.kinds, strict=True))
        if kind == LeafKind.ENVELOPE
    ]


def _transcript(m: Mixed) -> dict[str, Any]:
    """us's export: the log (its certificates among its entries), and the bodies it can
    open (with either key)."""
    doc = m.log.transcript(bodies=False)
    for i, raw in _envelopes(m.log):
        env = env_mod.parse(raw)
        reader = m.old_stations["us"] if env.version == 1 else m.log.world.stations["us"]
        key = env_mod.unwrap_key(env, reader)
        doc["bodies"].append(
            {
                "index": i,
                "hash": env.hash.hex(),
                "body_key": b64(key),
                "body": b64(env_mod.decrypt_with_key(env, key)),
            }
        )
    return doc


def _station_checks(m: Mixed) -> None:
    """Every entry through the station's checks (logcheck, as station/receive runs them)."""
    world = m.log.world
    ring = KeyRing(world.roster.roots())
    for c in [*m.old_certs.values(), *world.certs.values()]:
        ring.add_certificate(c.encode())
    ctx = logcheck.LogContext.of(world.roster, "us-ru", ring)
    chains: dict[str, logcheck.Chain] = {}
    for i, (raw, ms) in enumerate(m.log.entries):
        if m.log.kinds[i] == LeafKind.KEY_EVENT:
            logcheck.take_key_event(ctx, raw, index=i, relay_ms=ms)
            continue
        env = logcheck.check_entry(
            ctx, raw, index=i, relay_ms=ms, chain=lambda s: chains.get(s, logcheck.NO_CHAIN)
        )
        chains[env.sender] = (env.seq, env.hash)


def _cli_verify(doc: dict[str, Any], roster: Roster, tmp_path: Path) -> int:
    """`hotline verify` with the roster pinned, as an offline verifier would run it."""
    path, pinned = tmp_path / "t.json", tmp_path / "roster.note"
    path.write_text(json.dumps(doc))
    pinned.write_bytes(roster.encode())
    out = CliRunner().invoke(main, ["verify", str(path), "--roster", str(pinned)])
    assert out.exit_code == 0 or "FAIL" in out.output.upper(), out.output
    return out.exit_code


def test_a_log_of_version_1_then_version_2_envelopes_verifies(tmp_path: Path) -> None:
    m = _mixed()
    versions = [env_mod.parse(raw).version for _, raw in _envelopes(m.log)]
    assert versions == [1, 1, 1, 2, 2, 2]
    _station_checks(m)
    doc = _transcript(m)
    report = transcript.verify(doc)
    assert report.ok, [f.reason for f in report.failures]
    assert _cli_verify(doc, m.log.world.roster, tmp_path) == 0


def test_a_version_2_transcript_verifies_offline(tmp_path: Path) -> None:
    from .logbuild import exchange

    log = exchange()
    assert {env_mod.parse(raw).version for _, raw in _envelopes(log)} == {2}
    doc = log.transcript()
    assert transcript.verify(doc).ok
    assert _cli_verify(doc, log.world.roster, tmp_path) == 0
    # and a lie in it is still caught: one byte of an ML-DSA signature
    index, first = _envelopes(log)[0]
    raw = bytearray(first)
    raw[-10] ^= 1
    doc["entries"][index]["envelope"] = b64(bytes(raw))
    assert not transcript.verify(doc).ok


def _late_v1(m: Mixed) -> int:
    """A relay that logs one more version-1 envelope after the roster's switch."""
    world = m.log.world
    v2_stations, v2_certs = dict(world.stations), dict(world.certs)
    world.stations.update(m.old_stations)
    world.certs.update(m.old_certs)
    old_chain = (1, env_mod.envelope_hash(_envelopes(m.log)[0][1]))  # us-0's envelope 1
    raw = m.log.seal("us", body_mod.text("late v1", "en"), link=old_chain)
    world.stations.update(v2_stations)
    world.certs.update(v2_certs)
    index = m.log.log(raw)
    m.log.checkpoint("us", "ru")
    return index


def test_a_station_refuses_version_1_traffic_logged_after_the_roster_minimum() -> None:
    m = _mixed()
    index = _late_v1(m)
    with pytest.raises(NotAuthorized) as caught:
        _station_checks(m)
    assert (caught.value.index, caught.value.field) == (index, "version")
    report = transcript.verify(_transcript(m))
    assert report.failures[0].code == "not_authorized"
    assert {f.index for f in report.failures} == {index}, [f.reason for f in report.failures]


def test_without_a_minimum_the_same_late_version_1_entry_is_taken() -> None:
    """The control: the refusal above is the roster's rule, not something else."""
    m = _mixed(min_version=None)
    _late_v1(m)
    _station_checks(m)


def test_the_relay_refuses_new_version_1_traffic_once_the_roster_says_so(tmp_path: Path) -> None:
    world = make_world(T0)
    old = PartyKey("us", world.parties["us"].signer.private)
    us0 = StationKey.generate("us", "us-0", pq=False)
    cert0 = old.certify(us0, T0 - 3600, T0 + 86400)

    def post(roster: Roster, sender: StationKey, cert: StationCertificate, db: str) -> object:
        relay = RelayCore(SqliteRelayStore(tmp_path / db), roster, world.relay, lambda: T0)
        relay.register_certificate(cert.encode())
        relay.register_certificate(world.certs["ru"].encode())
        raw = seal(
            b"x",
            sender=sender,
            channel="us-ru",
            seq=1,
            prev=ZERO_HASH,
            recipients=[world.certs["ru"]],
            created_ms=T0 * 1000,
        )
        return relay.accept([(sender.ident, raw)])[0]

    later = _roster(world, 2, T0 * 1000 + 10**6)  # the minimum applies from later on
    now = _roster(world, 2, 0)
    assert not isinstance(post(later, us0, cert0, "a.db"), HotlineError)
    refused = post(now, us0, cert0, "b.db")
    assert isinstance(refused, NotAuthorized) and refused.field == "version"
    assert not isinstance(post(now, world.stations["us"], world.certs["us"], "c.db"), HotlineError)


def test_a_roster_names_only_known_minimum_versions() -> None:
    with pytest.raises(Malformed):
        _roster(make_world(T0), 3, 0)
    assert _roster(make_world(T0), None, None).min_envelope_version == 1


def test_a_v2_envelope_is_not_sealed_to_a_station_without_ml_kem() -> None:
    old = PartyKey("ru", WORLD.parties["ru"].signer.private)
    ru0 = StationKey.generate("ru", "ru-0", pq=False)
    cert0 = old.certify(ru0, T0 - 3600, T0 + 86400)
    env = env_mod.parse(_v2(b"x", [cert0, WORLD.certs["ru"]]))
    assert [r.ident for r in env.recipients] == ["ru/ru-1"]


def test_sizes_are_as_documented() -> None:
    env = env_mod.parse(SMALL)
    assert len(SMALL) == env.body_offset + 4 + len(env.ciphertext) + 64 + 3309
    assert len(WORLD.certs["ru"].kem or b"") == hybrid.MLKEM768_PUBLIC_SIZE
    assert env.kind is Kind.MESSAGE


def test_a_v1_roster_with_some_ml_dsa_roots_takes_those_parties_v2_certificates() -> None:
    """A network mid-way: ru has moved to post-quantum keys, us has not."""
    world = make_world(T0)
    us_old = PartyKey("us", world.parties["us"].signer.private)
    parties = {"us": us_old.public_keys(), "ru": world.parties["ru"].public_keys()}
    text = roster_text(
        "r", parties, {"c": {"members": ["us", "ru"]}}, world.relay.verifier.encode()
    )
    assert text.startswith("hotline-roster/v1\n")
    roster = open_roster(sign_roster(sign_roster(text, us_old), world.parties["ru"]).encode())
    ring = KeyRing(roster.roots())
    assert ring.add_certificate(world.certs["ru"].encode()).version == 2
    with pytest.raises(BadSignature):  # us has no ML-DSA root here: its /v2 certificate fails
        ring.add_certificate(world.certs["us"].encode())


def test_a_v2_roster_lists_at_most_50_parties() -> None:
    """Two signature lines per party, and a note carries at most 100: beyond 50 parties a
    /v2 roster could never be complete, so it is refused when read, naming the field."""
    world = make_world(T0)
    keys = world.parties["us"].public_keys()
    parties = {f"p{i}": {k: v.replace("us+", f"p{i}+") for k, v in keys.items()} for i in range(51)}
    text = roster_text(
        "r", parties, {"c": {"members": ["p0", "p1"]}}, world.relay.verifier.encode()
    )
    with pytest.raises(Malformed) as caught:
        open_roster(make_note(text, world.relay).encode())
    assert caught.value.field == "parties"


# --- a signature made here is not checked again (issue 15) ---------------------------------


def _pair() -> tuple[Any, Any, bytes, bytes]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

    ed, pq = Ed25519PrivateKey.generate(), MLDSA65PrivateKey.generate()
    return ed, pq, ed.public_key().public_bytes_raw(), pq.public_key().public_bytes_raw()


def test_a_signature_made_here_verifies_without_the_arithmetic_and_no_other_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ed, pq, ed_pub, pq_pub = _pair()
    other_ed, other_pq, other_ed_pub, other_pq_pub = _pair()
    message = b"an envelope's signed part"
    made = hybrid.sign(ed, pq, message)
    by_hand = other_ed.sign(message) + other_pq.sign(message)  # valid, not made by sign

    def no_arithmetic(public: bytes) -> Any:
        raise AssertionError("verified with the arithmetic")

    monkeypatch.setattr(hybrid.pubkeys, "mldsa65", no_arithmetic)
    assert hybrid.verify(ed_pub, pq_pub, message, made)  # remembered: no arithmetic
    with pytest.raises(AssertionError, match="arithmetic"):
        hybrid.verify(other_ed_pub, other_pq_pub, message, by_hand)
    monkeypatch.undo()
    assert hybrid.verify(other_ed_pub, other_pq_pub, message, by_hand)
    # Made under one key pair: never taken for another's, even with the same bytes.
    assert not hybrid.verify(other_ed_pub, other_pq_pub, message, made)
    assert not hybrid.verify(ed_pub, other_pq_pub, message, made)


_ED, _PQ, _ED_PUB, _PQ_PUB = _pair()
_MESSAGE = b"m" * 300
_MADE = hybrid.sign(_ED, _PQ, _MESSAGE)


@given(
    part=st.sampled_from(["ed_pub", "pq_pub", "message", "signature"]),
    bit=st.integers(0, 8 * 64 - 1),
)
def test_a_made_signature_changed_by_one_bit_anywhere_is_checked_in_full_and_fails(
    part: str, bit: int
) -> None:
    values = {"ed_pub": _ED_PUB, "pq_pub": _PQ_PUB, "message": _MESSAGE, "signature": _MADE}
    flipped = bytearray(values[part])
    flipped[(bit // 8) % len(flipped)] ^= 1 << (bit % 8)
    values[part] = bytes(flipped)
    assert hybrid.verify(_ED_PUB, _PQ_PUB, _MESSAGE, _MADE)
    assert not hybrid.verify(
        values["ed_pub"], values["pq_pub"], values["message"], values["signature"]
    )
