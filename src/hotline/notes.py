"""C2SP signed notes, note keys, checkpoints and witness cosignatures.

Formats (C2SP ``signed-note``, ``tlog-checkpoint``, ``tlog-cosignature``):

* verifier key: ``name+hex8(keyhash)+base64(alg || public key)``;
  keyhash = SHA-256(name || 0x0A || alg || public key)[:4], big-endian.
* note: text (UTF-8, no control characters but newline, ends in newline), a
  blank line, then 1..100 lines ``U+2014 SP name SP base64(keyhash || sig) LF``.
* checkpoint: a note whose text is origin, decimal size, base64 root (one
  line each), then optional extension lines.
* Ed25519 cosignature (alg 0x04): sig = u64 timestamp || Ed25519 signature over
  ``cosignature/v1\\ntime <t>\\n`` followed by the checkpoint text.
* ML-DSA-65 (hotline's, for /v2 statements): alg 0xff, which C2SP leaves to signature
  types outside its registry, followed by the 9 ASCII bytes ``ML-DSA-65``; the key is
  the 1952-byte FIPS 204 verification key, the signature (3309 bytes) is ML-DSA-65 over
  the note text with an empty context. The key hash is computed as for any type, over
  name || 0x0A || 0xff || "ML-DSA-65" || key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey, MLDSA65PublicKey

from . import merkle, pubkeys
from .errors import BadSignature, ForkDetected, Malformed, TooLarge
from .wire import MAX_U63

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
ALG_MLDSA65 = b"\xffML-DSA-65"  # 0xff then an identifier: not a C2SP-registered type
MLDSA65_PUBLIC_SIZE = 1952
MLDSA65_SIGNATURE_SIZE = 3309
MAX_SIGNATURES = 100
MAX_NOTE_SIZE = 1 << 20
_DASH = "\u2014 "
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f]")
_HASH_HEX = re.compile("[0-9a-fA-F]{8}")
_DECIMAL = re.compile("0|[1-9][0-9]{0,18}")  # at most 19 digits: then range-checked


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, what: str = "base64") -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise Malformed(f"{what} is not valid base64", field=what) from exc


@lru_cache(maxsize=1024)  # a pure function of its arguments, asked for on every note checked
def key_hash(name: str, alg: int | bytes, public: bytes) -> int:
    tag = bytes([alg]) if isinstance(alg, int) else alg
    digest = hashlib.sha256(name.encode() + b"\n" + tag + public).digest()
    return int.from_bytes(digest[:4], "big")


_VERIFIED_MAX = 1024
_verified: OrderedDict[tuple[bytes, bytes, bytes], None] = OrderedDict()
_verified_lock = threading.Lock()
"""Ed25519 signatures that verified, keyed by the exact public key, signature and message
bytes (issue 15: a station checks the same checkpoint signature again when a receipt
carries a checkpoint it took in from a frame). Only a verification that succeeded is kept,
and only the identical three byte strings hit it, so nothing another party controls can
make a different signature, key or message pass unchecked."""


def ed25519_valid(public: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``public``'s Ed25519 signature of ``message``."""
    key = (public, signature, message)
    with _verified_lock:  # stations check notes on more than one thread
        if key in _verified:
            _verified.move_to_end(key)
            return True
    try:
        pubkeys.ed25519(public).verify(signature, message)
    except InvalidSignature:
        return False
    with _verified_lock:
        _verified[key] = None
        if len(_verified) > _VERIFIED_MAX:
            _verified.popitem(last=False)
    return True


def _check_name(name: str) -> None:
    # A printable string's only white space is " " (str.isprintable counts every other
    # separator and control character out): test_notes checks that over every code point.
    if not name or not name.isprintable() or " " in name or "+" in name:
        raise Malformed(f"invalid key name {name!r}", field="name")


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_hash: int
    signature: bytes

    def line(self) -> str:
        return f"{_DASH}{self.name} {b64(self.key_hash.to_bytes(4, 'big') + self.signature)}\n"


class Verifier(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def key_hash(self) -> int: ...

    def verify(self, text: bytes, signature: bytes) -> bool: ...


@dataclass(frozen=True)
class NoteVerifier:
    """An Ed25519 signed-note verifier key (alg 0x01)."""

    name: str
    public: bytes

    @property
    def key_hash(self) -> int:
        return key_hash(self.name, ALG_ED25519, self.public)

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        return ed25519_valid(self.public, signature, text)

    def encode(self) -> str:
        return f"{self.name}+{self.key_hash:08x}+{b64(bytes([ALG_ED25519]) + self.public)}"


@dataclass(frozen=True)
class MLDSAVerifier:
    """An ML-DSA-65 signed-note verifier key (alg 0xff "ML-DSA-65", hotline's)."""

    name: str
    public: bytes

    @property
    def key_hash(self) -> int:
        return key_hash(self.name, ALG_MLDSA65, self.public)

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != MLDSA65_SIGNATURE_SIZE:
            return False
        try:
            pubkeys.mldsa65(self.public).verify(signature, text)
        except (InvalidSignature, ValueError):
            return False
        return True

    def encode(self) -> str:
        return f"{self.name}+{self.key_hash:08x}+{b64(ALG_MLDSA65 + self.public)}"


class MLDSASigner:
    """An ML-DSA-65 signed-note signer (signatures are randomized, as FIPS 204 hedges)."""

    def __init__(self, name: str, private: MLDSA65PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self.private = private
        self.verifier = MLDSAVerifier(name, private.public_key().public_bytes_raw())

    def sign(self, text: bytes) -> NoteSignature:
        return NoteSignature(self.name, self.verifier.key_hash, self.private.sign(text))


def parse_mldsa_verifier_key(vkey: str) -> MLDSAVerifier:
    """Parse ``name+hash+base64(0xff "ML-DSA-65" || key)``; raise Malformed if wrong."""
    parts = vkey.split("+", 2)
    if len(parts) != 3 or not _HASH_HEX.fullmatch(parts[1]):
        raise Malformed("verifier key must be name+hash+key", field="pq_root")
    name, hash_hex, key_b64 = parts
    _check_name(name)
    raw = unb64(key_b64, "pq_root")
    tag = len(ALG_MLDSA65)
    if len(raw) != tag + MLDSA65_PUBLIC_SIZE or raw[:tag] != ALG_MLDSA65:
        raise Malformed("verifier key is not an ML-DSA-65 note key", field="pq_root")
    try:
        MLDSA65PublicKey.from_public_bytes(raw[tag:])
    except ValueError as exc:
        raise Malformed("ML-DSA-65 key does not load", field="pq_root") from exc
    verifier = MLDSAVerifier(name, raw[tag:])
    if verifier.key_hash != int(hash_hex, 16):
        raise Malformed("verifier key hash does not match the key", field="pq_root")
    return verifier


def parse_verifier_key(vkey: str) -> NoteVerifier:
    """Parse ``name+hash+base64key`` (Ed25519 only); raise Malformed if wrong."""
    parts = vkey.split("+", 2)
    if len(parts) != 3 or len(parts[1]) != 8:
        raise Malformed("verifier key must be name+hash+key", field="verifier_key")
    name, hash_hex, key_b64 = parts
    _check_name(name)
    if not _HASH_HEX.fullmatch(hash_hex):
        raise Malformed("verifier key hash is not 8 hex digits", field="verifier_key")
    claimed = int(hash_hex, 16)
    raw = unb64(key_b64, "verifier_key")
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise Malformed("verifier key is not an Ed25519 note key", field="verifier_key")
    verifier = NoteVerifier(name, raw[1:])
    if verifier.key_hash != claimed:
        raise Malformed("verifier key hash does not match the key", field="verifier_key")
    return verifier


class NoteSigner:
    """An Ed25519 signed-note signer: a name and a private key."""

    def __init__(self, name: str, private: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self.private = private
        self.verifier = NoteVerifier(name, private.public_key().public_bytes_raw())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> NoteSigner:
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def parse(cls, skey: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+name+hash+base64(0x01 || seed)``."""
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise Malformed("signer key must be PRIVATE+KEY+name+hash+key", field="signer_key")
        raw = unb64(parts[4], "signer_key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise Malformed("signer key is not an Ed25519 note key", field="signer_key")
        signer = cls.from_seed(parts[2], raw[1:])
        if f"{signer.verifier.key_hash:08x}" != parts[3]:
            raise Malformed("signer key hash does not match the key", field="signer_key")
        return signer

    def sign(self, text: bytes) -> NoteSignature:
        return NoteSignature(self.name, self.verifier.key_hash, self.private.sign(text))


@dataclass(frozen=True)
class Note:
    """A signed note: text and signature lines, exactly as they were on the wire."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()

    def with_signature(self, sig: NoteSignature) -> Note:
        return Note(self.text, (*self.signatures, sig))


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise Malformed("note text must end with a newline", field="text")
    if _CONTROL.search(text):
        raise Malformed("note text contains a control character", field="text")
    if "\n\n" in text:
        raise Malformed("note text contains a blank line", field="text")
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise Malformed("note text is not valid Unicode", field="text") from exc


def make_note(text: str, *signers: NoteSigner) -> Note:
    _check_text(text)
    raw = text.encode()
    return Note(text, tuple(s.sign(raw) for s in signers))


def parse_note(data: bytes) -> Note:
    """Parse a signed note strictly; raise Malformed or TooLarge."""
    if len(data) > MAX_NOTE_SIZE:
        raise TooLarge(f"note is {len(data)} bytes; the limit is {MAX_NOTE_SIZE}")
    try:
        msg = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed("note is not UTF-8") from exc
    split = msg.rfind("\n\n")
    if split < 0:
        raise Malformed("note has no signature block")
    text, block = msg[: split + 1], msg[split + 2 :]
    _check_text(text)
    if not block:
        raise Malformed("note has no signatures")
    if not block.endswith("\n"):
        raise Malformed("signature block must end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise Malformed(f"note has {len(lines)} signatures; at most {MAX_SIGNATURES} allowed")
    sigs = []
    for line in lines:
        if not line.startswith(_DASH):
            raise Malformed("unexpected line in signature block")
        parts = line[len(_DASH) :].split(" ")
        if len(parts) != 2:
            raise Malformed("signature line must be name and signature")
        name, sig_b64 = parts
        _check_name(name)
        raw = unb64(sig_b64, "signature")
        if len(raw) < 5:
            raise Malformed("signature is too short", field="signature")
        sigs.append(NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
    return Note(text, tuple(sigs))


def verify_note(note: Note, verifiers: Sequence[Verifier]) -> list[str]:
    """Check the note's signatures; return the names of known keys that verified.

    Signatures from unknown keys are ignored. A known key's bad signature, the
    same key signing twice, or no known signature at all is an error.
    """
    known = {(v.name, v.key_hash): v for v in verifiers}
    raw = note.text.encode()
    seen: set[tuple[str, int]] = set()
    names: list[str] = []
    for sig in note.signatures:
        ident = (sig.name, sig.key_hash)
        verifier = known.get(ident)
        if verifier is None:
            continue
        if ident in seen:
            raise Malformed(f"key {sig.name} signed the note twice")
        seen.add(ident)
        if not verifier.verify(raw, sig.signature):
            raise BadSignature(f"signature by {sig.name} does not verify")
        names.append(sig.name)
    if not names:
        raise BadSignature("note has no signature from a known key")
    return names


def open_note(data: bytes, verifiers: Sequence[Verifier]) -> tuple[Note, list[str]]:
    note = parse_note(data)
    return note, verify_note(note, verifiers)


# --- checkpoints -----------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @property
    def time_ms(self) -> int | None:
        """The relay's signed time (its ``time`` extension line), or None without one."""
        for line in self.extensions:
            if line.startswith("time "):
                return parse_decimal(line[len("time ") :], "time")
        return None


def parse_decimal(text: str, field: str) -> int:
    """A canonical decimal in 0..2^63-1 (no sign, no leading zeros); Malformed otherwise."""
    if not _DECIMAL.fullmatch(text) or int(text) > MAX_U63:
        raise Malformed(f"{field} is not a decimal number in 0..2^63-1", field=field)
    return int(text)


def parse_checkpoint_text(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise Malformed("checkpoint needs origin, size and root lines", field="checkpoint")
    origin, size_s, root_s, *ext = lines[:-1]
    if not origin:
        raise Malformed("checkpoint origin is empty", field="origin")
    size = parse_decimal(size_s, "size")
    root = unb64(root_s, "root")
    if len(root) != merkle.HASH_SIZE:
        raise Malformed("checkpoint root is not 32 bytes", field="root")
    if any(not line for line in ext):
        raise Malformed("empty checkpoint extension line", field="checkpoint")
    for line in ext:
        if line.startswith("time "):  # the relay's clock when it signed (docs/PROTOCOL.md §4)
            parse_decimal(line[len("time ") :], "time")
    return Checkpoint(origin, size, root, tuple(ext))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with its note (log signature and any cosignatures)."""

    checkpoint: Checkpoint
    note: Note

    def encode(self) -> bytes:
        return self.note.encode()

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root

    @property
    def time_ms(self) -> int | None:
        return self.checkpoint.time_ms


def sign_checkpoint(cp: Checkpoint, log_key: NoteSigner) -> SignedCheckpoint:
    return SignedCheckpoint(cp, make_note(cp.text(), log_key))


def open_checkpoint(
    data: bytes, log_key: NoteVerifier, origin: str | None = None
) -> SignedCheckpoint:
    """Parse a checkpoint note and require the log's signature (and origin)."""
    note = parse_note(data)
    verify_note(note, [log_key])
    cp = parse_checkpoint_text(note.text)
    if origin is not None and cp.origin != origin:
        raise Malformed(f"checkpoint is for {cp.origin!r}, expected {origin!r}", field="origin")
    return SignedCheckpoint(cp, note)


def check_extends(old: Checkpoint, new: Checkpoint, proof: list[bytes] | tuple[bytes, ...]) -> None:
    """Check that ``new`` is an append-only extension of ``old``.

    Raises ForkDetected when the two cannot both be true (the proof fails, or
    equal sizes carry different roots), Malformed when they are for different logs.
    """
    if old.origin != new.origin:
        raise Malformed("checkpoints are for different logs", field="origin")
    if new.size < old.size:
        raise ForkDetected(f"log went back from size {old.size} to {new.size}", channel=old.origin)
    if old.size == 0:
        if new.size == 0 and new.root != merkle.EMPTY_ROOT:
            raise ForkDetected("empty log with a non-empty root", channel=old.origin)
        return
    try:
        merkle.verify_consistency(old.size, new.size, proof, old.root, new.root)
    except Exception as exc:
        raise ForkDetected(
            f"checkpoint of size {new.size} is not consistent with size {old.size}: {exc}",
            channel=old.origin,
        ) from exc


# --- witness cosignatures (C2SP tlog-cosignature, Ed25519 form) -------------


def _cosigned_message(timestamp: int, checkpoint_text: str) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint_text.encode()


@dataclass(frozen=True)
class CosignatureVerifier:
    """Verifies a witness's cosignatures (alg 0x04)."""

    name: str
    public: bytes

    @property
    def key_hash(self) -> int:
        return key_hash(self.name, ALG_COSIGNATURE_V1, self.public)

    def timestamp(self, signature: bytes) -> int:
        return struct.unpack(">Q", signature[:8])[0] if len(signature) == 72 else -1

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != 72:
            return False
        ts = self.timestamp(signature)
        if ts > MAX_U63:
            return False
        message = _cosigned_message(ts, text.decode())
        return ed25519_valid(self.public, signature[8:], message)


class Cosigner:
    """A witness: cosigns checkpoints it has checked."""

    def __init__(self, name: str, private: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self.private = private
        self.verifier = CosignatureVerifier(name, private.public_key().public_bytes_raw())

    def cosign(self, checkpoint_text: str, timestamp: int) -> NoteSignature:
        if not 0 <= timestamp <= MAX_U63:
            raise Malformed(f"cosignature time {timestamp} is outside 0..2^63-1", field="time")
        sig = self.private.sign(_cosigned_message(timestamp, checkpoint_text))
        return NoteSignature(self.name, self.verifier.key_hash, struct.pack(">Q", timestamp) + sig)


def cosign(signed: SignedCheckpoint, witness: Cosigner, timestamp: int) -> SignedCheckpoint:
    sig = witness.cosign(signed.note.text, timestamp)
    return SignedCheckpoint(signed.checkpoint, signed.note.with_signature(sig))


def cosigners(signed: SignedCheckpoint, witnesses: list[CosignatureVerifier]) -> dict[str, int]:
    """Names of the given witnesses whose cosignature verifies, with their timestamps.

    A witness's bad cosignature is an error (BadSignature); unknown ones are ignored.
    """
    out: dict[str, int] = {}
    raw = signed.note.text.encode()
    by_id = {(w.name, w.key_hash): w for w in witnesses}
    for sig in signed.note.signatures:
        w = by_id.get((sig.name, sig.key_hash))
        if w is None:
            continue
        if not w.verify(raw, sig.signature):
            raise BadSignature(f"cosignature by {sig.name} does not verify")
        out[sig.name] = w.timestamp(sig.signature)
    return out
