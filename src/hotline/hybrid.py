"""Hybrid post-quantum constructions: one function each, so nothing else combines keys.

* **Key wrap** (envelope v2): X25519 + ML-KEM-768 (FIPS 203), combined in the style of
  X-Wing: the key-encryption key is SHA3-256 over a label, both shared secrets, both
  ciphertexts and both public keys (see ``combine``), so a wrap stays closed while
  either primitive holds.
* **Signatures** (envelope v2, statements /v2): Ed25519 and ML-DSA-65 (FIPS 204) over the
  same bytes; a hybrid signature verifies only when both do.
* **Party roots**: a party's Ed25519 note key with its ML-DSA-65 note key beside it
  (``HybridRoot``); a /v2 statement needs a good signature line from each.

Checkpoints and witness cosignatures stay Ed25519 (C2SP); docs/PROTOCOL.md §8 says why.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from . import pubkeys
from .errors import BadSignature, Malformed
from .notes import (
    MLDSA65_PUBLIC_SIZE,
    MLDSA65_SIGNATURE_SIZE,
    MLDSAVerifier,
    Note,
    NoteVerifier,
)

ED25519_SIGNATURE_SIZE = 64
SIGNATURE_SIZE = ED25519_SIGNATURE_SIZE + MLDSA65_SIGNATURE_SIZE  # Ed25519 then ML-DSA-65
MLKEM768_PUBLIC_SIZE = 1184
MLKEM768_CIPHERTEXT_SIZE = 1088
MLKEM768_SEED_SIZE = 64
MLDSA65_SEED_SIZE = 32
WRAP_LABEL = b"hotline/wrap/v2"


# --- key wrap -----------------------------------------------------------------------


def combine(
    ss_mlkem: bytes,
    ss_x25519: bytes,
    ct_x25519: bytes,
    pk_x25519: bytes,
    ct_mlkem: bytes,
    pk_mlkem: bytes,
) -> bytes:
    """The 32-byte key-encryption key: SHA3-256(label || ss_M || ss_X || ct_X || pk_X ||
    ct_M || pk_M). As X-Wing, with ML-KEM's ciphertext and key added (the issue's rule:
    everything both exchanges saw goes into the KDF). Every part has a fixed length."""
    return hashlib.sha3_256(
        WRAP_LABEL + ss_mlkem + ss_x25519 + ct_x25519 + pk_x25519 + ct_mlkem + pk_mlkem
    ).digest()


def check_mlkem(raw: bytes, what: str = "kem") -> bytes:
    """An ML-KEM-768 encapsulation key that loads (FIPS 203 modulus check included)."""
    if len(raw) != MLKEM768_PUBLIC_SIZE:
        raise Malformed(f"{what} must be a {MLKEM768_PUBLIC_SIZE}-byte ML-KEM-768 key", field=what)
    try:
        MLKEM768PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise Malformed(f"{what} is not a valid ML-KEM-768 key", field=what) from exc
    return raw


def encapsulate(
    ephemeral: X25519PrivateKey, ephemeral_public: bytes, x25519: bytes, mlkem: bytes
) -> tuple[bytes, bytes]:
    """(key-encryption key, ML-KEM ciphertext) for one recipient's pair of public keys.

    Raises ValueError when the X25519 key is a low-order point (the caller skips it)."""
    ss_x = ephemeral.exchange(pubkeys.x25519(x25519))
    ss_m, ct_m = pubkeys.mlkem768(mlkem).encapsulate()
    return combine(ss_m, ss_x, ephemeral_public, x25519, ct_m, mlkem), ct_m


def decapsulate(
    x25519: X25519PrivateKey,
    mlkem: MLKEM768PrivateKey,
    ephemeral_public: bytes,
    ct_mlkem: bytes,
    *,
    publics: tuple[bytes, bytes] | None = None,
) -> bytes:
    """The key-encryption key for a recipient holding both secrets.

    ``publics``: the recipient's X25519 and ML-KEM-768 public keys, as its key holder
    derived them from these very secrets once (issue 15: deriving them again cost a
    station some 30 µs per envelope opened); None derives them here.

    Raises ValueError for a low-order ephemeral key or a ciphertext of the wrong size.
    (ML-KEM decapsulation of a wrong ciphertext yields a pseudorandom secret, so a
    tampered ciphertext surfaces as a wrap that does not open.)"""
    ss_x = x25519.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    ss_m = mlkem.decapsulate(ct_mlkem)
    if publics is None:
        publics = (x25519.public_key().public_bytes_raw(), mlkem.public_key().public_bytes_raw())
    return combine(ss_m, ss_x, ephemeral_public, publics[0], ct_mlkem, publics[1])


# --- signatures -----------------------------------------------------------------------


def sign(ed25519: Ed25519PrivateKey, mldsa: MLDSA65PrivateKey, message: bytes) -> bytes:
    """Ed25519 signature (64) then ML-DSA-65 signature (3309), both over ``message``.

    Remembered as one that verifies, under the public keys of these very private keys
    (``verify`` then takes it without the arithmetic: a station's own envelope comes back
    to it in the log; deriving the public keys costs some 8 µs, a verification ~200)."""
    signature = ed25519.sign(message) + mldsa.sign(message)
    publics = ed25519.public_key().public_bytes_raw() + mldsa.public_key().public_bytes_raw()
    _made.remember((publics, signature, hashlib.sha256(message).digest()))
    return signature


class _Made:
    """Hybrid signatures this process made, by the exact public keys, signature and
    SHA-256 of the message (issue 15: the sender's station verified its own envelope
    again when the relay logged it, an ML-DSA-65 and an Ed25519 verification for bytes it
    had signed itself). Only ``sign`` adds, with the public keys it derives from the
    private keys that signed; a key, signature or message differing in one bit is checked
    in full."""

    MAX = 256

    def __init__(self) -> None:
        self._seen: OrderedDict[tuple[bytes, bytes, bytes], None] = OrderedDict()
        self._lock = threading.Lock()  # stations seal and verify on more than one thread

    def remember(self, key: tuple[bytes, bytes, bytes]) -> None:
        with self._lock:
            self._seen[key] = None
            if len(self._seen) > self.MAX:
                self._seen.popitem(last=False)

    def holds(self, key: tuple[bytes, bytes, bytes]) -> bool:
        with self._lock:
            return key in self._seen


_made = _Made()


def forget_made() -> None:
    """Forget every signature remembered as made here (a bench or test that stands for
    several processes in one: the recipient must check what another process signed)."""
    global _made
    _made = _Made()


def verify(ed25519: bytes, mldsa: bytes, message: bytes, signature: bytes) -> bool:
    """Whether both halves of a hybrid signature verify (either failing is a failure)."""
    if len(signature) != SIGNATURE_SIZE or len(mldsa) != MLDSA65_PUBLIC_SIZE:
        return False
    if _made.holds((ed25519 + mldsa, signature, hashlib.sha256(message).digest())):
        return True
    ed_sig, pq_sig = signature[:ED25519_SIGNATURE_SIZE], signature[ED25519_SIGNATURE_SIZE:]
    try:
        pubkeys.ed25519(ed25519).verify(ed_sig, message)
        pubkeys.mldsa65(mldsa).verify(pq_sig, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# --- party roots and /v2 statements -----------------------------------------------------


@dataclass(frozen=True)
class HybridRoot(NoteVerifier):
    """A party root: its Ed25519 note key (what checkpoints, v1 statements and roster
    signatures of old know) with its ML-DSA-65 note key beside it, for /v2 statements."""

    pq: MLDSAVerifier | None = None


def pq_of(root: NoteVerifier) -> MLDSAVerifier | None:
    return root.pq if isinstance(root, HybridRoot) else None


def verify_both(note: Note, root: NoteVerifier) -> None:
    """A /v2 statement: a good signature line by the root's Ed25519 key AND by its
    ML-DSA-65 key; BadSignature naming which is missing or wrong otherwise."""
    pq = pq_of(root)
    if pq is None:
        raise BadSignature(f"{root.name} has no ML-DSA-65 root key for a /v2 statement")
    raw = note.text.encode()
    for kind, key in (("Ed25519", root), ("ML-DSA-65", pq)):
        lines = [s for s in note.signatures if (s.name, s.key_hash) == (key.name, key.key_hash)]
        if len(lines) != 1:
            raise BadSignature(f"statement needs one {kind} signature by {root.name}")
        if not key.verify(raw, lines[0].signature):
            raise BadSignature(f"{kind} signature by {root.name} does not verify")
