"""Public key objects, made once per key (issue 15): a station checks signatures by the
same few station and relay keys on every entry, and turning the key bytes into an
OpenSSL key each time showed in its profile. Keyed by the exact key bytes; a key object
holds nothing but those bytes, so a hit is the very key a fresh one would be."""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PublicKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

KEYS_KEPT = 512


@lru_cache(maxsize=KEYS_KEPT)
def ed25519(public: bytes) -> Ed25519PublicKey:
    """The Ed25519 key of these 32 bytes (ValueError if they are not one)."""
    return Ed25519PublicKey.from_public_bytes(public)


@lru_cache(maxsize=KEYS_KEPT)
def mldsa65(public: bytes) -> MLDSA65PublicKey:
    """The ML-DSA-65 key of these 1952 bytes (ValueError if they are not one)."""
    return MLDSA65PublicKey.from_public_bytes(public)


@lru_cache(maxsize=KEYS_KEPT)
def mlkem768(public: bytes) -> MLKEM768PublicKey:
    """The ML-KEM-768 encapsulation key of these 1184 bytes (ValueError if not one): a
    sender encapsulates to the same recipient stations' keys for every envelope."""
    return MLKEM768PublicKey.from_public_bytes(public)


@lru_cache(maxsize=KEYS_KEPT)
def x25519(public: bytes) -> X25519PublicKey:
    """The X25519 key of these 32 bytes (ValueError if they are not one)."""
    return X25519PublicKey.from_public_bytes(public)
