"""Envelopes: the signed, end-to-end encrypted unit that the relay logs.

Wire format (integers big-endian; see docs/PROTOCOL.md for a worked example)::

    magic      4   "HLEN"
    version    u8  1 or 2 (2: post-quantum hybrid, marked [v2] below)
    kind       u8  1 message, 2 receipt, 3 link test, 4 key event, 5 notice
    precedence u8  1 FLASH, 2 IMMEDIATE, 3 PRIORITY, 4 ROUTINE
    channel    u8 length + UTF-8
    party      u8 length + UTF-8       sender party
    station    u8 length + UTF-8       sender station
    seq        u64                     sender's sequence number, from 1 (at most 2^63-1)
    prev       32                      SHA-256 of the sender's previous envelope (zeros for seq 1)
    created    u64                     sender's clock, ms since the Unix epoch (UTC),
                                       at most 2^63-1 (every u64 is; larger is Malformed)
    ephemeral  32                      X25519 public key, fresh per envelope
    count      u16                     number of recipients
    count x:   recipient u8 length + "party/station",
               [v2] ML-KEM-768 ciphertext 1088,
               wrapped body key 48
    body       u32 length + ChaCha20-Poly1305 ciphertext (key fresh, nonce zero,
               associated data = every byte above)
    signature  64                      Ed25519 by the sender station over every byte above
               [v2] then 3309: ML-DSA-65 by the sender station over the same bytes

v1: the body key is wrapped per recipient with ChaCha20-Poly1305 under
HKDF-SHA256(X25519(ephemeral, recipient), info = "hotline/wrap/v1" ||
ephemeral || recipient key), nonce zero, associated data = recipient name.
v2: the same, under hybrid.combine's key (X25519 and ML-KEM-768 secrets, both
ciphertexts, both public keys). A v2 envelope verifies only with a /v2 certificate and
both signatures; a v1 envelope only with a /v1 certificate (no downgrade of a v2
station). Which versions a channel still takes is the roster's (roster.min_envelope).
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import hybrid
from .errors import (
    BadSignature,
    ChainGap,
    DecryptionFailed,
    Malformed,
    NotARecipient,
    Replay,
    TooLarge,
)
from .keys import KeyRing, StationCertificate, StationKey
from .wire import MAX_U63, Reader, Writer

MAGIC = b"HLEN"
VERSION = 1  # the version of the earliest format still read
VERSION_V2 = 2
VERSIONS = (VERSION, VERSION_V2)
MAX_BODY = 64 * 1024
MAX_RECIPIENTS = 256
MAX_ENVELOPE = (
    MAX_BODY
    + 16
    + MAX_RECIPIENTS * (1 + 65 + hybrid.MLKEM768_CIPHERTEXT_SIZE + 48)
    + hybrid.SIGNATURE_SIZE
    + 1024
)
_SIGNATURE_SIZE = {VERSION: 64, VERSION_V2: hybrid.SIGNATURE_SIZE}
ZERO_HASH = bytes(32)
_NONCE = bytes(12)
_WRAP_INFO = b"hotline/wrap/v1"

log = logging.getLogger("hotline")


class Kind(enum.IntEnum):
    MESSAGE = 1
    RECEIPT = 2
    LINK_TEST = 3
    KEY_EVENT = 4
    NOTICE = 5


class Precedence(enum.IntEnum):
    FLASH = 1
    IMMEDIATE = 2
    PRIORITY = 3
    ROUTINE = 4


@dataclass(frozen=True)
class Recipient:
    ident: str
    wrapped: bytes
    kem_ciphertext: bytes = b""  # v2 only: the ML-KEM-768 ciphertext for this recipient


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope. ``raw`` is exactly the bytes that were signed and logged."""

    version: int
    kind: Kind
    precedence: Precedence
    channel: str
    party: str
    station: str
    seq: int
    prev: bytes
    created_ms: int
    ephemeral: bytes
    recipients: tuple[Recipient, ...]
    ciphertext: bytes
    signature: bytes
    raw: bytes
    body_offset: int

    @property
    def sender(self) -> str:
        return f"{self.party}/{self.station}"

    @property
    def hash(self) -> bytes:
        return envelope_hash(self.raw)

    @property
    def signed_part(self) -> bytes:
        return self.raw[: -_SIGNATURE_SIZE[self.version]]

    @property
    def header_part(self) -> bytes:
        """The bytes bound to the body as AEAD associated data."""
        return self.raw[: self.body_offset]


@dataclass(frozen=True)
class Opened:
    """An envelope whose signature was checked and whose body was decrypted."""

    envelope: Envelope
    certificate: StationCertificate
    body: bytes


def envelope_hash(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def _wrap_key(shared: bytes, ephemeral: bytes, recipient_pub: bytes) -> ChaCha20Poly1305:
    kek = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=_WRAP_INFO + ephemeral + recipient_pub,
    ).derive(shared)
    return ChaCha20Poly1305(kek)


def seal(
    body: bytes,
    *,
    sender: StationKey,
    channel: str,
    seq: int,
    prev: bytes,
    recipients: Sequence[StationCertificate],
    created_ms: int,
    kind: Kind = Kind.MESSAGE,
    precedence: Precedence = Precedence.ROUTINE,
    ephemeral: X25519PrivateKey | None = None,
    body_key: bytes | None = None,
    version: int | None = None,
) -> bytes:
    """Encrypt ``body`` once, wrap its key for every recipient, sign the bytes.

    ``version`` is 2 (hybrid) by default for a sender with post-quantum keys, else 1; a
    station passes its certificate's version. A recipient with an unusable key is
    skipped with a warning (see ``_wrap_all``); so, in a v2 envelope, is one whose
    certificate has no ML-KEM-768 key (a /v1 certificate).

    ``ephemeral`` and ``body_key`` are fresh random values unless given; give
    them only to reproduce a documented example, never in operation.
    """
    if len(body) > MAX_BODY:
        raise TooLarge(f"body is {len(body)} bytes; the limit is {MAX_BODY}", field="body")
    if seq < 1 or len(prev) != 32 or (seq == 1) != (prev == ZERO_HASH):
        raise Malformed("seq starts at 1 with a zero previous hash", field="seq")
    if len(recipients) > MAX_RECIPIENTS:
        raise TooLarge(f"{len(recipients)} recipients; the limit is {MAX_RECIPIENTS}")
    for name, value in (("seq", seq), ("created", created_ms)):
        if not 0 <= value <= MAX_U63:
            raise Malformed(f"{name} {value} is outside 0..2^63-1", field=name)
    if version is None:
        version = VERSION if sender.pq is None else VERSION_V2
    if version not in VERSIONS or (version == VERSION_V2 and sender.pq is None):
        raise Malformed(f"{sender.ident} cannot seal envelope version {version}", field="version")
    body_key = ChaCha20Poly1305.generate_key() if body_key is None else body_key
    eph = X25519PrivateKey.generate() if ephemeral is None else ephemeral
    eph_pub = eph.public_key().public_bytes_raw()
    wrapped = _wrap_all(eph, eph_pub, body_key, recipients, version)
    w = (
        Writer()
        .raw(MAGIC)
        .u8(version)
        .u8(kind)
        .u8(precedence)
        .str8(channel)
        .str8(sender.party)
        .str8(sender.station)
        .u64(seq)
        .raw(prev)
        .u64(created_ms)
        .raw(eph_pub)
        .u16(len(wrapped))
    )
    for ident, kem_ct, key in wrapped:
        w.str8(ident).raw(kem_ct).raw(key)
    header = w.getvalue()
    ciphertext = ChaCha20Poly1305(body_key).encrypt(_NONCE, body, header)
    signed = Writer().raw(header).bytes32(ciphertext).getvalue()
    if version == VERSION_V2 and sender.pq is not None:
        return signed + hybrid.sign(sender.signing, sender.pq.signing, signed)
    return signed + sender.signing.sign(signed)


def _wrap_all(
    eph: X25519PrivateKey,
    eph_pub: bytes,
    body_key: bytes,
    recipients: Sequence[StationCertificate],
    version: int,
) -> list[tuple[str, bytes, bytes]]:
    """(recipient, ML-KEM ciphertext or b"", wrapped key) for each that can take it.

    A recipient whose key cannot be used (a low-order point, say, or no ML-KEM key in a
    v2 envelope) is left out and logged, never allowed to stop the message to the
    others; the envelope's own recipient list says who was reached.
    """
    out = []
    for cert in recipients:
        if version == VERSION_V2 and cert.kem is None:
            log.warning("not sealing to %s: its certificate has no ML-KEM-768 key", cert.ident)
            continue
        try:
            if version == VERSION_V2 and cert.kem is not None:
                kek, kem_ct = hybrid.encapsulate(eph, eph_pub, cert.encryption, cert.kem)
                aead = ChaCha20Poly1305(kek)
            else:
                shared = eph.exchange(X25519PublicKey.from_public_bytes(cert.encryption))
                aead, kem_ct = _wrap_key(shared, eph_pub, cert.encryption), b""
        except ValueError:
            log.warning("not sealing to %s: its encryption key is unusable", cert.ident)
            continue
        out.append((cert.ident, kem_ct, aead.encrypt(_NONCE, body_key, cert.ident.encode())))
    return out


def parse(data: bytes, max_size: int = MAX_ENVELOPE) -> Envelope:
    """Parse envelope bytes strictly (size is checked before anything else)."""
    if len(data) > max_size:
        raise TooLarge(f"envelope is {len(data)} bytes; the limit is {max_size}")
    r = Reader(data, "envelope")
    if r.raw(4, "magic") != MAGIC:
        raise Malformed("not a hotline envelope (bad magic)", field="magic")
    version = r.u8("version")
    if version not in VERSIONS:
        raise Malformed(f"envelope version {version} is not supported", field="version")
    try:
        kind = Kind(r.u8("kind"))
        precedence = Precedence(r.u8("precedence"))
    except ValueError as exc:
        raise Malformed("unknown kind or precedence", field="kind") from exc
    channel, party, station = r.str8("channel"), r.str8("party"), r.str8("station")
    seq, prev, created = r.u64("seq"), r.raw(32, "prev"), r.u64("created")
    ephemeral = r.raw(32, "ephemeral")
    count = r.u16("recipients")
    if count > MAX_RECIPIENTS:
        raise Malformed(f"{count} recipients is over the limit", field="recipients")
    kem_size = hybrid.MLKEM768_CIPHERTEXT_SIZE if version == VERSION_V2 else 0
    recipients = tuple(
        _recipient(r.str8("recipient"), r.raw(kem_size, "kem"), r.raw(48, "wrapped"))
        for _ in range(count)
    )
    body_offset = r.pos
    ciphertext = r.bytes32("body", MAX_BODY + 16)
    signature = r.raw(_SIGNATURE_SIZE[version], "signature")
    r.end()
    if seq < 1 or (seq == 1) != (prev == ZERO_HASH):
        raise Malformed("seq starts at 1 with a zero previous hash", field="seq")
    if not channel or not party or not station:
        raise Malformed("channel, party and station must be named", field="header")
    return Envelope(
        version,
        kind,
        precedence,
        channel,
        party,
        station,
        seq,
        prev,
        created,
        ephemeral,
        recipients,
        ciphertext,
        signature,
        data,
        body_offset,
    )


def _recipient(ident: str, kem_ciphertext: bytes, wrapped: bytes) -> Recipient:
    return Recipient(ident, wrapped, kem_ciphertext)


def verify(env: Envelope, keyring: KeyRing, at: int | None = None) -> StationCertificate:
    """Check the sender's signature with a certificate usable at ``at`` (unix s).

    A v2 envelope needs a /v2 certificate and both its Ed25519 and ML-DSA-65 signatures;
    a v1 envelope a /v1 certificate (a station certified for v2 cannot be spoken for
    in v1, where only Ed25519 would stand between a forger and its name).
    ``at`` defaults to the envelope's own creation time; the relay passes its
    clock. Raises UnknownKey, KeyNotValid, RevokedKey or BadSignature.
    """
    when = env.created_ms // 1000 if at is None else at
    return signed_by(env, keyring.station(env.sender, when), f"usable at {when}")


def signed_by(env: Envelope, usable: list[StationCertificate], when: str) -> StationCertificate:
    """The certificate among ``usable`` (the sender's, usable ``when``) whose key signed
    ``env``: a v2 envelope needs a /v2 certificate and both signatures, a v1 envelope a
    /v1 certificate. Raises BadSignature."""
    certs = [c for c in usable if c.version == env.version]
    for cert in certs:
        if env.version == VERSION_V2:
            if cert.verify_hybrid(env.signed_part, env.signature):
                return cert
        elif cert.verify(env.signed_part, env.signature):
            return cert
    if not certs:
        raise BadSignature(
            f"{env.sender} has no version-{env.version} certificate {when}: "
            f"a version-{env.version} envelope cannot be signed for it",
            channel=env.channel,
            field="version",
        )
    raise BadSignature(f"envelope signature by {env.sender} does not verify", channel=env.channel)


def open_envelope(
    data: bytes | Envelope, station: StationKey, keyring: KeyRing, at: int | None = None
) -> Opened:
    """Verify signature and certificate first, then unwrap and decrypt."""
    env = data if isinstance(data, Envelope) else parse(data)
    cert = verify(env, keyring, at)
    return Opened(env, cert, decrypt(env, station))


def decrypt(env: Envelope, station: StationKey) -> bytes:
    """Unwrap and decrypt for ``station``. Call only after ``verify`` succeeded."""
    return decrypt_with_key(env, unwrap_key(env, station))


def unwrap_key(env: Envelope, station: StationKey) -> bytes:
    """The envelope's body key, unwrapped with ``station``'s X25519 key (v1) or its
    X25519 and ML-KEM-768 keys together (v2)."""
    mine = [r for r in env.recipients if r.ident == station.ident]
    if not mine:
        raise NotARecipient(f"{station.ident} is not a recipient", channel=env.channel)
    if env.version == VERSION_V2 and station.pq is None:
        raise NotARecipient(
            f"{station.ident} has no ML-KEM-768 key for a version-2 envelope",
            channel=env.channel,
        )
    # A station being rotated has two certificates (old and new key) under one name: the
    # body key is wrapped once for each, and only one entry opens with a given key.
    for entry in mine:
        try:
            if env.version == VERSION_V2 and station.pq is not None:
                kek = hybrid.decapsulate(
                    station.encryption,
                    station.pq.kem,
                    env.ephemeral,
                    entry.kem_ciphertext,
                    publics=(station.encryption_public, station.pq.kem_public),
                )
                aead = ChaCha20Poly1305(kek)
            else:
                shared = station.encryption.exchange(
                    X25519PublicKey.from_public_bytes(env.ephemeral)
                )
                aead = _wrap_key(shared, env.ephemeral, station.encryption_public)
        except ValueError as exc:  # a low-order ephemeral key: the sender sealed to nobody
            raise NotARecipient(
                "the envelope's ephemeral key is a low-order point", channel=env.channel
            ) from exc
        try:
            return aead.decrypt(_NONCE, entry.wrapped, station.ident.encode())
        except InvalidTag:
            continue
    raise NotARecipient(
        f"the body key for {station.ident} does not open this envelope", channel=env.channel
    )


def decrypt_with_key(env: Envelope, body_key: bytes) -> bytes:
    """Decrypt the body with its key (as disclosed in a transcript, for example)."""
    try:
        return ChaCha20Poly1305(body_key).decrypt(_NONCE, env.ciphertext, env.header_part)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionFailed(
            "the body key does not decrypt this envelope", channel=env.channel
        ) from exc


def check_chain(last_seq: int, last_hash: bytes, env: Envelope) -> None:
    """Check that ``env`` directly follows the sender's last envelope.

    ``last_seq`` is 0 (and ``last_hash`` zeros) before the first envelope.
    """
    if env.seq <= last_seq:
        raise Replay(
            f"{env.sender} sequence {env.seq} was already used (last {last_seq})",
            channel=env.channel,
            field="seq",
        )
    if env.seq != last_seq + 1:
        raise ChainGap(
            f"{env.sender} sequence jumps from {last_seq} to {env.seq}",
            channel=env.channel,
            field="seq",
        )
    if env.prev != last_hash:
        raise ChainGap(
            f"{env.sender} envelope {env.seq} does not chain to envelope {last_seq}",
            channel=env.channel,
            field="prev",
        )
