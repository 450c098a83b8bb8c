"""Every integer from the wire is range-checked where it is parsed: just inside the range
it is read, just outside it is Malformed naming the field (never an OverflowError in a store
later), and every count is checked before anything is allocated for it."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from hotline import envelope as env_mod
from hotline import transcript
from hotline.errors import BadSignature, Malformed, WrongPassphrase
from hotline.forms import FormError, form_body, validate
from hotline.keys import (
    CERT_TYPE,
    KDF_LIMITS,
    open_key_file,
    parse_certificate,
    seal_key_file,
    statement_text,
)
from hotline.notes import (
    Checkpoint,
    Cosigner,
    SignedCheckpoint,
    cosigners,
    make_note,
    parse_checkpoint_text,
    parse_note,
)
from hotline.roster import (
    MAX_DEADLINE_SECONDS,
    MAX_LINK_DOWN_AFTER,
    MAX_LINK_TEST_SECONDS,
    MAX_PARTIES,
    open_roster,
    roster_text,
    sign_roster,
)
from hotline.wire import MAX_U63, Reader, Writer

from .conftest import World
from .fuzz_targets import FAST_KDF, PASSPHRASE, seed_for, seeds
from .logbuild import exchange

TOO_BIG = MAX_U63 + 1


@pytest.fixture(scope="module")
def world() -> World:
    return seeds().world


# --- the binary reader and writer ------------------------------------------------------------


def test_a_u64_above_2_63_minus_1_is_refused_by_reader_and_writer() -> None:
    assert Reader(struct.pack(">Q", MAX_U63), "x").u64("n") == MAX_U63
    with pytest.raises(Malformed) as caught:
        Reader(struct.pack(">Q", TOO_BIG), "x").u64("n")
    assert caught.value.field == "n"
    assert Writer().u64(MAX_U63).getvalue() == struct.pack(">Q", MAX_U63)
    for bad in (TOO_BIG, -1):
        with pytest.raises(Malformed):
            Writer().u64(bad)
    with pytest.raises(Malformed):
        Writer().u16(1 << 16)


# --- envelopes -------------------------------------------------------------------------------


def _patched(raw: bytes, **fields: int) -> bytes:
    """``raw`` with its seq / created replaced (the signature no longer matters to parse)."""
    env = env_mod.parse(raw)
    seq_at = 7 + sum(1 + len(s.encode()) for s in (env.channel, env.party, env.station))
    out = bytearray(raw)
    if "seq" in fields:
        out[seq_at : seq_at + 8] = struct.pack(">Q", fields["seq"])
        out[seq_at + 8 : seq_at + 40] = b"\x01" * 32  # a later envelope has a previous one
    if "created" in fields:
        out[seq_at + 40 : seq_at + 48] = struct.pack(">Q", fields["created"])
    return bytes(out)


@pytest.mark.parametrize("name", ["created", "seq"])
def test_an_envelope_integer_is_read_up_to_2_63_minus_1(name: str) -> None:
    raw = seed_for("envelope")
    env = env_mod.parse(_patched(raw, **{name: MAX_U63}))
    assert (env.created_ms if name == "created" else env.seq) == MAX_U63
    with pytest.raises(Malformed) as caught:
        env_mod.parse(_patched(raw, **{name: TOO_BIG}))
    assert caught.value.field == name


def test_an_envelope_with_a_created_time_beyond_range_cannot_be_sealed(world: World) -> None:
    station = world.stations["us"]
    with pytest.raises(Malformed) as caught:
        env_mod.seal(
            b"x",
            sender=station,
            channel="us-ru",
            seq=1,
            prev=bytes(32),
            recipients=[world.certs["ru"]],
            created_ms=TOO_BIG,
        )
    assert caught.value.field == "created"


def test_a_low_order_ephemeral_key_is_not_a_recipient_error(world: World) -> None:
    raw = bytearray(seed_for("envelope"))
    env = env_mod.parse(bytes(raw))
    at = (
        env.body_offset
        - sum(1 + len(r.ident) + len(r.kem_ciphertext) + 48 for r in env.recipients)
        - 2
        - 32
    )
    raw[at : at + 32] = bytes(32)
    hostile = env_mod.parse(bytes(raw))
    assert hostile.ephemeral == bytes(32)
    with pytest.raises(env_mod.NotARecipient, match="low-order"):
        env_mod.unwrap_key(hostile, world.stations["us"])


# --- checkpoints and cosignatures ------------------------------------------------------------

ROOT = "A" * 43 + "="


@pytest.mark.parametrize("line", ["size", "time"])
def test_a_checkpoint_number_is_read_up_to_2_63_minus_1(line: str) -> None:
    def text(n: str) -> str:
        size, time = (n, "1") if line == "size" else ("1", n)
        return f"hotline/x/y\n{size}\n{ROOT}\ntime {time}\n"

    cp = parse_checkpoint_text(text(str(MAX_U63)))
    assert cp.size == MAX_U63 or cp.extensions == (f"time {MAX_U63}",)
    for bad in (str(TOO_BIG), "9" * 5000, "-1", "01", "+1", "1_0", "١"):
        with pytest.raises(Malformed) as caught:
            parse_checkpoint_text(text(bad))
        assert caught.value.field == line


def test_a_cosignature_time_is_bounded_when_made_and_when_read(world: World) -> None:
    witness: Cosigner = world.stations["us"].cosigner()
    cp = Checkpoint("hotline/x/y", 1, bytes(32))
    note = make_note(cp.text())
    sig = witness.cosign(cp.text(), MAX_U63)
    signed = SignedCheckpoint(cp, note.with_signature(sig))
    assert cosigners(signed, [witness.verifier]) == {witness.name: MAX_U63}
    with pytest.raises(Malformed):
        witness.cosign(cp.text(), TOO_BIG)
    forged = type(sig)(sig.name, sig.key_hash, struct.pack(">Q", TOO_BIG) + sig.signature[8:])
    with pytest.raises(BadSignature):
        cosigners(SignedCheckpoint(cp, note.with_signature(forged)), [witness.verifier])


# --- certificates and revocations ------------------------------------------------------------


@pytest.mark.parametrize("name", ["not_before", "not_after"])
def test_a_certificate_time_is_read_up_to_2_63_minus_1(world: World, name: str) -> None:
    us, station = world.parties["us"], world.stations["us"]
    inside = (0, MAX_U63) if name == "not_after" else (MAX_U63 - 1, MAX_U63)
    assert us.certify(station, *inside).not_after == MAX_U63
    outside = (0, TOO_BIG) if name == "not_after" else (TOO_BIG, TOO_BIG + 1)
    with pytest.raises(Malformed) as caught:
        us.certify(station, *outside)
    assert caught.value.field == name


def test_a_revocation_time_is_read_up_to_2_63_minus_1(world: World) -> None:
    us = world.parties["us"]
    assert us.revoke(world.certs["us"], MAX_U63, "lost").revoked_at == MAX_U63
    with pytest.raises(Malformed) as caught:
        us.revoke(world.certs["us"], TOO_BIG, "lost")
    assert caught.value.field == "revoked_at"


def test_a_deeply_nested_statement_is_malformed_not_a_recursion_error(world: World) -> None:
    us = world.parties["us"]
    note = make_note(f"{CERT_TYPE}\n{'[' * 100_000}\n", us.signer)
    with pytest.raises(Malformed):
        parse_certificate(note.encode(), us.verifier)
    fine = make_note(statement_text(CERT_TYPE, {"party": "us"}), us.signer)
    with pytest.raises(Malformed) as caught:
        parse_certificate(fine.encode(), us.verifier)
    assert caught.value.field == "station"


# --- rosters ---------------------------------------------------------------------------------


def _roster(world: World, channel: dict[str, Any], version: int = 1, extra: int = 0) -> bytes:
    parties = {p: {"root": k.verifier.encode()} for p, k in world.parties.items()}
    for i in range(extra):  # parties that never sign: the count is refused before that matters
        parties[f"p{i}"] = {"root": world.parties["us"].verifier.encode().replace("us+", f"p{i}+")}
    text = roster_text(
        "r",
        parties,
        {"us-ru": {"members": ["us", "ru"], **channel}},
        world.relay.verifier.encode(),
        version,
    )
    note = sign_roster(text, world.parties["us"])
    for p in ("ru", "ua", "ae"):
        note = sign_roster(note, world.parties[p])
    return note.encode()


@pytest.mark.parametrize(
    ("field", "inside", "outside"),
    [
        (
            "deadlines",
            {"deadlines": {"FLASH": MAX_DEADLINE_SECONDS}},
            {"deadlines": {"FLASH": MAX_DEADLINE_SECONDS + 1}},
        ),
        ("deadlines", {"deadlines": {"FLASH": 1}}, {"deadlines": {"FLASH": 0}}),
        ("deadlines", {"deadlines": {"FLASH": 1}}, {"deadlines": {"FLASH": 1e400}}),
        (
            "link_test_seconds",
            {"link_test_seconds": MAX_LINK_TEST_SECONDS},
            {"link_test_seconds": MAX_LINK_TEST_SECONDS + 1},
        ),
        (
            "link_down_after",
            {"link_down_after": MAX_LINK_DOWN_AFTER},
            {"link_down_after": MAX_LINK_DOWN_AFTER + 1},
        ),
        ("link_down_after", {"link_down_after": 1}, {"link_down_after": 0}),
    ],
)
def test_a_roster_number_is_read_within_its_limit(
    world: World, field: str, inside: dict[str, Any], outside: dict[str, Any]
) -> None:
    assert open_roster(_roster(world, inside)).channel("us-ru") is not None
    with pytest.raises(Malformed) as caught:
        open_roster(_roster(world, outside))
    assert caught.value.field == field


def test_a_roster_version_and_party_count_are_bounded(world: World) -> None:
    assert open_roster(_roster(world, {}, version=MAX_U63)).version == MAX_U63
    with pytest.raises(Malformed) as caught:
        open_roster(_roster(world, {}, version=TOO_BIG))
    assert caught.value.field == "version"
    with pytest.raises(Malformed) as caught:
        open_roster(_roster(world, {}, extra=MAX_PARTIES + 1 - len(world.parties)))
    assert caught.value.field == "parties"


# --- key files -------------------------------------------------------------------------------


def _key_file(world: World, **kdf: int) -> bytes:
    doc = json.loads(seal_key_file(world.stations["us"].secret_material(), PASSPHRASE, FAST_KDF))
    doc["kdf"].update(kdf)
    return json.dumps(doc).encode()


@pytest.mark.parametrize("name", sorted(KDF_LIMITS))
def test_a_key_file_asking_for_kdf_parameters_beyond_limits_is_malformed(
    world: World, name: str
) -> None:
    lo, hi = KDF_LIMITS[name]
    for bad in (lo - 1, hi + 1, 10**400):
        blob = _key_file(world, **{name: bad}).replace(b"1" + b"0" * 400, b"1e400")
        with pytest.raises(Malformed):
            open_key_file(blob, PASSPHRASE)


def test_a_key_file_at_the_kdf_limits_that_memory_allows_opens_or_is_wrong(world: World) -> None:
    assert open_key_file(_key_file(world), PASSPHRASE)["kind"] == "station"
    # within the limits but not what sealed it: the key differs, so the tag fails
    with pytest.raises(WrongPassphrase):
        open_key_file(_key_file(world, iterations=KDF_LIMITS["iterations"][1]), PASSPHRASE)
    with pytest.raises(Malformed):  # Argon2 needs 8 KiB per lane
        open_key_file(_key_file(world, lanes=2, memory_kib=8), PASSPHRASE)


# --- forms and transcripts -------------------------------------------------------------------


def test_a_form_number_too_large_for_a_float_is_a_form_error() -> None:
    report = form_body(
        "incident-report",
        {
            "time": "2026-11-25T02:10:00Z",
            "location": {"point": {"lat": 10**400, "lon": 0}},
            "incident": "other",
        },
    )
    with pytest.raises(FormError):
        validate(report)


def test_a_form_reference_index_is_read_up_to_2_63_minus_1() -> None:
    def reply(index: int) -> dict[str, Any]:
        return form_body(
            "rfi-reply", {"in_reply_to": {"index": index, "hash": "0" * 64}, "answer": "yes"}
        )

    validate(reply(MAX_U63))
    for bad in (TOO_BIG, -1):
        with pytest.raises(FormError):
            validate(reply(bad))
    with pytest.raises(FormError):
        validate(
            form_body(
                "rfi-reply", {"in_reply_to": {"index": 1, "hash": "0" * 64 + "\n"}, "answer": "yes"}
            )
        )


def test_a_transcript_relay_time_is_read_up_to_2_63_minus_1() -> None:
    doc = exchange().transcript()
    doc["entries"][-1]["relay_ms"] = MAX_U63
    assert not [f for f in transcript.verify(doc).failures if "relay_ms" in f.reason]
    doc["entries"][-1]["relay_ms"] = TOO_BIG
    (failure,) = [f for f in transcript.verify(doc).failures if "relay_ms" in f.reason]
    assert failure.code == "malformed" and failure.index == len(doc["entries"]) - 1


@pytest.mark.parametrize(
    "data", [b"[" * 100_000, b"\xff", b"{", b'{"format": "hotline-transcript/v1", "roster": 1}']
)
def test_a_transcript_that_is_not_one_is_malformed_or_a_failed_report(data: bytes) -> None:
    try:
        report = transcript.verify(transcript.loads(data))
    except Malformed:
        return
    assert not report.ok


def test_a_transcript_of_the_wrong_shapes_gives_failures_not_exceptions() -> None:
    doc = exchange().transcript()
    doc.update(
        certificates=7,
        checkpoints={"a": 1},
        consistency=[[1], {"from": [], "to": 2}],
        bodies=["x", {"index": True}],
        entries=[None],
    )
    report = transcript.verify(doc)
    assert {f.code for f in report.failures} >= {"malformed"}
    assert parse_note(seed_for("checkpoint"))  # the seeds are untouched
