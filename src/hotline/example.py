"""The worked examples of docs/PROTOCOL.md, rebuilt from fixed seeds.

A test re-derives every byte printed in the document from this module, so the
document cannot drift from the code. Version 2 (``example_v2``) has two kinds of bytes
that no seed fixes: ML-KEM-768 encapsulation and ML-DSA-65 signing are randomized in
the library (FIPS 204's hedged signing; no deterministic variant is offered). For those
the test checks what was printed instead: the ciphertexts decapsulate, with the
recipient's seeded keys, to the key that re-derives the printed wrap byte for byte,
and the ML-DSA-65 signatures verify. Every other byte is re-derived.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .envelope import ZERO_HASH, Kind, Precedence, seal
from .keys import PartyKey, StationCertificate, StationKey, StationPQ
from .leaf import HEADER_SIZE, LeafKind, entry_leaf_hash, leaf_data
from .merkle import MerkleTree
from .notes import Checkpoint, NoteSigner, cosign, sign_checkpoint

T0 = 1_764_000_000  # 2025-11-24T16:00:00Z
CERTIFIED_MS = T0 * 1000 + 3  # the relay logs us-1's certificate (entry 0, a key event)
LOGGED_MS = T0 * 1000 + 7  # the relay's time for the envelope (entry 1), inside its leaf


def _seed(label: str) -> bytes:
    return hashlib.sha256(b"hotline example " + label.encode()).digest()


def example() -> dict[str, str]:
    """Every value of the worked example, as printed in docs/PROTOCOL.md."""
    us_root = PartyKey("us", Ed25519PrivateKey.from_private_bytes(_seed("us root")))
    ru_root = PartyKey("ru", Ed25519PrivateKey.from_private_bytes(_seed("ru root")))
    us1 = StationKey(
        "us",
        "us-1",
        Ed25519PrivateKey.from_private_bytes(_seed("us-1 signing")),
        X25519PrivateKey.from_private_bytes(_seed("us-1 encryption")),
    )
    ru1 = StationKey(
        "ru",
        "ru-1",
        Ed25519PrivateKey.from_private_bytes(_seed("ru-1 signing")),
        X25519PrivateKey.from_private_bytes(_seed("ru-1 encryption")),
    )
    us_cert = us_root.certify(us1, T0, T0 + 365 * 86400)
    ru_cert = ru_root.certify(ru1, T0, T0 + 365 * 86400)
    body = b'{"lang":"en","text":"Test of the line.","type":"text"}'
    envelope = seal(
        body,
        sender=us1,
        channel="us-ru",
        seq=1,
        prev=ZERO_HASH,
        recipients=[us_cert, ru_cert],
        created_ms=T0 * 1000 + 5,
        kind=Kind.MESSAGE,
        precedence=Precedence.FLASH,
        ephemeral=X25519PrivateKey.from_private_bytes(_seed("ephemeral")),
        body_key=_seed("body key"),
    )
    relay = NoteSigner("relay.ae", Ed25519PrivateKey.from_private_bytes(_seed("relay")))
    tree = MerkleTree()
    tree.append(leaf_data(CERTIFIED_MS, us_cert.encode(), LeafKind.KEY_EVENT))
    tree.append(leaf_data(LOGGED_MS, envelope))
    checkpoint = sign_checkpoint(
        Checkpoint("hotline/example/us-ru", tree.size, tree.root(), (f"time {T0 * 1000 + 9}",)),
        relay,
    )
    witnessed = cosign(checkpoint, ru1.cosigner(), T0 + 1)
    return {
        "us_root_key": us_root.verifier.encode(),
        "relay_key": relay.verifier.encode(),
        "us_certificate": us_cert.encode().decode(),
        "key_event_leaf_hash": entry_leaf_hash(
            CERTIFIED_MS, us_cert.encode(), LeafKind.KEY_EVENT
        ).hex(),
        "body": body.decode(),
        "envelope_hex": envelope.hex(),
        "envelope_sha256": hashlib.sha256(envelope).hexdigest(),
        "leaf_header_hex": leaf_data(LOGGED_MS, envelope)[:HEADER_SIZE].hex(),
        "leaf_hash": entry_leaf_hash(LOGGED_MS, envelope).hex(),
        "checkpoint": witnessed.encode().decode(),
    }


def _seed64(label: str) -> bytes:
    return hashlib.sha512(b"hotline example " + label.encode()).digest()


def v2_keys() -> tuple[PartyKey, PartyKey, StationKey, StationKey]:
    """The version-2 parties and stations: the v1 example's keys, each with its
    ML-DSA-65 key (seed ``<name> ml-dsa``) and, for stations, its ML-KEM-768 key (64-byte
    seed ``SHA-512("hotline example " ‖ "<station> ml-kem")``)."""

    def party(name: str) -> PartyKey:
        return PartyKey(
            name,
            Ed25519PrivateKey.from_private_bytes(_seed(f"{name} root")),
            MLDSA65PrivateKey.from_seed_bytes(_seed(f"{name} root ml-dsa")),
        )

    def station(party: str, name: str) -> StationKey:
        return StationKey(
            party,
            name,
            Ed25519PrivateKey.from_private_bytes(_seed(f"{name} signing")),
            X25519PrivateKey.from_private_bytes(_seed(f"{name} encryption")),
            StationPQ(
                MLDSA65PrivateKey.from_seed_bytes(_seed(f"{name} ml-dsa")),
                MLKEM768PrivateKey.from_seed_bytes(_seed64(f"{name} ml-kem")),
            ),
        )

    return party("us"), party("ru"), station("us", "us-1"), station("ru", "ru-1")


V2_BODY = b'{"lang":"en","text":"Test of the line, version 2.","type":"text"}'


def v2_certificates() -> tuple[StationCertificate, StationCertificate]:
    us_root, ru_root, us1, ru1 = v2_keys()
    return (
        us_root.certify(us1, T0, T0 + 365 * 86400),
        ru_root.certify(ru1, T0, T0 + 365 * 86400),
    )


def example_v2() -> dict[str, str]:
    """One instance of the version-2 example (fresh ML-KEM ciphertexts and ML-DSA
    signatures each call; every other byte the same)."""
    us_root, _, us1, _ = v2_keys()
    us_cert, ru_cert = v2_certificates()
    envelope = seal(
        V2_BODY,
        sender=us1,
        channel="us-ru",
        seq=1,
        prev=ZERO_HASH,
        recipients=[ru_cert],
        created_ms=T0 * 1000 + 5,
        kind=Kind.MESSAGE,
        precedence=Precedence.FLASH,
        ephemeral=X25519PrivateKey.from_private_bytes(_seed("ephemeral")),
        body_key=_seed("body key"),
    )
    return {
        "v2_us_root_keys": "\n".join(us_root.public_keys().values()),
        "v2_us_certificate": us_cert.encode().decode(),
        "v2_body": V2_BODY.decode(),
        "v2_envelope_hex": envelope.hex(),
    }


def wrap_hex(hex_text: str, width: int = 64) -> str:
    return "\n".join(hex_text[i : i + width] for i in range(0, len(hex_text), width))


if __name__ == "__main__":
    for name, value in example().items():
        print(f"## {name}\n{value}\n")
    for name, value in example_v2().items():
        print(f"## {name}\n{wrap_hex(value) if name.endswith('_hex') else value}\n")
