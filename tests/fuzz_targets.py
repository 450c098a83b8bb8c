"""Every decoder of outside bytes, with a valid input to mutate: what the fuzzers feed.

Each target takes bytes and either returns (a typed value was made) or raises a
HotlineError; anything else is a bug. tests/test_fuzz_decoders.py drives them with
hypothesis within the suite's budget; fuzz/atheris_decoders.py drives them for hours.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from hotline import body, envelope, frames, transcript
from hotline.errors import Malformed
from hotline.forms import form_body, validate
from hotline.keys import (
    KeyRing,
    PartyKey,
    key_from_material,
    open_key_file,
    parse_certificate,
    parse_revocation,
    seal_key_file,
)
from hotline.notes import (
    ALG_ED25519,
    NoteSigner,
    SignedCheckpoint,
    b64,
    cosigners,
    make_note,
    open_checkpoint,
    parse_checkpoint_text,
    parse_note,
    parse_verifier_key,
)
from hotline.roster import open_roster, unsigned_parties

from .conftest import World
from .logbuild import T0, exchange

FAST_KDF = {"iterations": 1, "lanes": 1, "memory_kib": 8}  # the least Argon2id allows
PASSPHRASE = "correct horse"

Target = Callable[[bytes], object]


def _text(data: bytes) -> str:
    """Bytes as text the way a file or a form field could hold them (lone surrogates too)."""
    return data.decode("utf-8", errors="surrogateescape")


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise Malformed("not JSON") from exc


@dataclass(frozen=True)
class Seeds:
    """A small honest world and one valid encoding per decoder."""

    world: World
    inputs: dict[str, bytes]


@cache
def seeds() -> Seeds:
    log = exchange()
    world = log.world
    us = world.parties["us"]
    cert = world.certs["us"]
    revocation = us.revoke(cert, T0 + 60, "lost", replaced_by=world.certs["us"])
    checkpoint = log.checkpoints[-1]
    material = world.stations["us"].secret_material()
    form = form_body(
        "incident-report",
        {
            "time": "2026-11-25T02:10:00Z",
            "location": {"point": {"lat": 50.45, "lon": 30.52}, "radius_km": 3},
            "incident": "drone-strike",
            "counts": [{"means": "drones-launched", "count": 183, "source": "ПС ЗСУ"}],
            "casualties": {"killed_civilian": 0, "injured_civilian": 4, "source": "ДСНС"},
        },
    )
    inputs = {
        "envelope": log.entries[2][0],  # the first envelope, after two certificates
        "note": checkpoint.encode(),
        "checkpoint": checkpoint.encode(),
        "cosignatures": checkpoint.encode(),
        "verifier_key": world.relay.verifier.encode().encode(),
        "signer_key": _signer_key(world.relay).encode(),
        "certificate": cert.encode(),
        "revocation": revocation.encode(),
        "roster": world.roster.encode(),
        "key_file": seal_key_file(material, PASSPHRASE, FAST_KDF),
        "key_material": json.dumps(material).encode(),
        "form": json.dumps(form).encode(),
        "transcript": transcript.dumps(log.transcript()),
        "body": body.encode(body.Text("en", "hello")),
        "relay_frame": _encoded(
            frames.Accepted(
                1,
                "us-ru",
                0,
                envelope.envelope_hash(log.entries[2][0]),
                1,
                log.entries[2][1],
                False,
                checkpoint.encode(),
                (),
            )
        ),
        "station_frame": b'{"op":"sync","id":2,"channel":"us-ru","from":0}',
    }
    return Seeds(world, inputs)


def _encoded(frame: frames.RelayFrame) -> bytes:
    return frames.encode_frame(frame).encode()


def _signer_key(signer: NoteSigner) -> str:
    seed = bytes([ALG_ED25519]) + signer.private.private_bytes_raw()
    return f"PRIVATE+KEY+{signer.name}+{signer.verifier.key_hash:08x}+{b64(seed)}"


def _checkpoint_parts(data: bytes) -> SignedCheckpoint:
    note = parse_note(data)
    return SignedCheckpoint(parse_checkpoint_text(note.text), note)


def targets() -> dict[str, Target]:
    """Name -> decoder. Decoders of this branch's modules, then frames and bodies."""
    world = seeds().world
    station = world.stations["us"]
    witnesses = [s.cosigner().verifier for s in world.stations.values()]

    def open_env(data: bytes) -> object:
        return envelope.open_envelope(data, station, world.keyring)

    def ring(add: str) -> Target:
        def go(data: bytes) -> object:
            keyring = KeyRing(world.roster.roots())
            if add == "add_revocation":  # a revocation counts only for a certified key
                for cert in world.certs.values():
                    keyring.add_certificate(cert.encode())
            return getattr(keyring, add)(data)

        return go

    def roster(data: bytes) -> object:
        unsigned_parties(data)
        return open_roster(data)

    def signed(by: list[PartyKey | NoteSigner], decode: Target) -> Target:
        """Signs the input as note text first: what a hostile party or relay could send
        (with both root keys of each party, as /v2 statements are signed)."""

        def go(data: bytes) -> object:
            note = make_note(_text(data), *(p.signer if isinstance(p, PartyKey) else p for p in by))
            for p in by:
                if isinstance(p, PartyKey) and p.pq_signer is not None:
                    note = note.with_signature(p.pq_signer.sign(note.text.encode()))
            return decode(note.encode())

        return go

    us = world.parties["us"]
    everyone = list(world.parties.values())
    return {
        "envelope": lambda d: envelope.parse(d),
        "envelope_open": open_env,
        "note": parse_note,
        "checkpoint": lambda d: open_checkpoint(d, world.relay.verifier),
        "checkpoint_text": lambda d: parse_checkpoint_text(_text(d)),
        "cosignatures": lambda d: cosigners(_checkpoint_parts(d), witnesses),
        "verifier_key": lambda d: parse_verifier_key(_text(d)),
        "signer_key": lambda d: NoteSigner.parse(_text(d)),
        "certificate": lambda d: parse_certificate(d, world.parties["us"].verifier),
        "certificate_ring": ring("add_certificate"),
        "revocation": lambda d: parse_revocation(d, world.parties["us"].verifier),
        "revocation_ring": ring("add_revocation"),
        "roster": roster,
        "certificate_signed": signed([us], lambda d: parse_certificate(d, us.verifier)),
        "revocation_signed": signed([us], lambda d: parse_revocation(d, us.verifier)),
        "roster_signed": signed(everyone, open_roster),
        "checkpoint_signed": signed(
            [world.relay], lambda d: open_checkpoint(d, world.relay.verifier)
        ),
        "key_file": lambda d: open_key_file(d, PASSPHRASE),
        "key_file_wrong": lambda d: open_key_file(d, "wrong horse"),
        "key_material": lambda d: key_from_material(_json(d)),
        "form": lambda d: validate(_json(d)),
        "transcript": lambda d: transcript.verify(transcript.loads(d)),
        # owned elsewhere, fuzzed here only as part of the long run
        "body": body.parse_body,
        "relay_frame": frames.decode_relay_frame,
        "station_frame": frames.decode_station_frame,
    }


SEED_OF = {
    "envelope_open": "envelope",
    "checkpoint_text": "checkpoint",
    "certificate_ring": "certificate",
    "revocation_ring": "revocation",
    "key_file_wrong": "key_file",
}


def seed_for(target: str) -> bytes:
    inputs = seeds().inputs
    if target == "checkpoint_text" or target.endswith("_signed"):
        return parse_note(inputs[target.removesuffix("_signed").replace("_text", "")]).text.encode()
    return inputs[SEED_OF.get(target, target)]


def mutate(seed: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply edits (op, position, byte): 0 flip bits, 1 insert, 2 delete, 3 overwrite."""
    data = bytearray(seed)
    for op, pos, byte in edits:
        at = pos % (len(data) + 1)
        if op == 1:
            data.insert(at, byte)
        elif not data:
            continue
        elif op == 0:
            data[at % len(data)] ^= byte or 1
        elif op == 2:
            del data[at : at + 1 + byte % 8]
        else:
            data[at % len(data)] = byte
    return bytes(data)
