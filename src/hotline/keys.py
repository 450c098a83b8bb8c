"""Party, station keys; certificates and revocations; encrypted key files.

A party's root key (Ed25519) signs *statements*: signed notes whose text is a
type line and one line of compact JSON. A station certificate binds a station's
Ed25519 signing key and X25519 encryption key to ``party/station`` for a period;
a revocation withdraws one station's signing key (a rotation is a new certificate plus a
revocation of the old key with ``replaced_by``). Both are logged as key events, and a
revocation takes effect at its position in each log (keyhistory.py); its ``revoked_at``
is shown, never used to move that earlier.

Statements /v2 (issue 16) are signed by the party's Ed25519 root AND its ML-DSA-65
root (hybrid.verify_both); a /v2 certificate also carries the station's ML-KEM-768
encapsulation key and ML-DSA-65 verification key. /v1 statements stay readable so that
logs written before stay verifiable; which envelopes each certifies is envelope.verify's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from . import hybrid, pubkeys
from .errors import (
    BadSignature,
    KeyNotValid,
    Malformed,
    RevokedKey,
    TooLarge,
    UnknownKey,
    WrongPassphrase,
)
from .notes import (
    MLDSA65_PUBLIC_SIZE,
    Cosigner,
    MLDSASigner,
    Note,
    NoteSigner,
    NoteVerifier,
    b64,
    make_note,
    parse_note,
    unb64,
)
from .notes import verify_note as _verify_note
from .wire import MAX_U63

CERT_TYPE = "hotline-certificate/v1"
REVOCATION_TYPE = "hotline-revocation/v1"
CERT_TYPE_V2 = "hotline-certificate/v2"
REVOCATION_TYPE_V2 = "hotline-revocation/v2"
KEYFILE_FORMAT = "hotline-keyfile/v1"

# A party's stations, and one station's certificates (renewals), that a key ring takes.
# Every message is sealed to each usable certificate of every member party, at most
# envelope.MAX_RECIPIENTS (256): without a bound, one party certifying too many stations
# would stop every message and receipt of its channels. Relay, stations and ``hotline
# verify`` all learn certificates through KeyRing, so the bound holds everywhere.
MAX_STATIONS_PER_PARTY = 16
MAX_CERTIFICATES_PER_STATION = 4  # usable at any one time
MAX_CERTIFICATES_KEPT = 64  # per station, ever (rotations and renewals)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def statement_text(kind: str, body: dict[str, Any]) -> str:
    return f"{kind}\n{canonical_json(body)}\n"


def statement_type(note: Note) -> str:
    """The type line of a statement (its first line)."""
    return note.text.split("\n", 1)[0]


def parse_statement(note: Note, kind: str) -> dict[str, Any]:
    lines = note.text.split("\n")
    if len(lines) != 3 or lines[0] != kind:
        raise Malformed(f"not a {kind} statement", field="statement")
    try:
        body = json.loads(lines[1])
    except (ValueError, RecursionError) as exc:  # RecursionError: hostile nesting
        raise Malformed(f"{kind} body is not JSON", field="statement") from exc
    if not isinstance(body, dict):
        raise Malformed(f"{kind} body is not an object", field="statement")
    return body


def _str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise Malformed(f"{key} must be a non-empty string", field=key)
    return value


def _int(body: dict[str, Any], key: str) -> int:
    """A time or count in a statement: an integer in 0..2^63-1, as every wire integer."""
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_U63:
        raise Malformed(f"{key} must be an integer in 0..2^63-1", field=key)
    return value


def _key_b64(body: dict[str, Any], key: str, size: int) -> bytes:
    raw = unb64(_str(body, key), key)
    if len(raw) != size:
        raise Malformed(f"{key} must be a {size}-byte key", field=key)
    return raw


def _key32(body: dict[str, Any], key: str) -> bytes:
    raw = unb64(_str(body, key), key)
    if len(raw) != 32:
        raise Malformed(f"{key} must be a 32-byte key", field=key)
    return raw


# Any fixed scalar will do: X25519 clamps scalars to multiples of 8, so a point of small
# order (0, 1, the order-8 points, p-1, p, p+1 and their high-bit twins) always maps to zero.
_PROBE = X25519PrivateKey.from_private_bytes(bytes(32))


def check_x25519(raw: bytes, what: str = "encryption") -> bytes:
    """An X25519 public key that is not a low-order point (sealing to one fails).

    Raises Malformed naming ``what``.
    """
    if len(raw) != 32:
        raise Malformed(f"{what} must be a 32-byte key", field=what)
    try:
        _PROBE.exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError as exc:  # the shared secret is all zeros
        raise Malformed(
            f"{what} is a low-order X25519 point: nothing can be sealed to it", field=what
        ) from exc
    return raw


def check_id(value: str, what: str) -> str:
    """Party, station and channel identifiers: short lowercase ASCII names."""
    ok = 0 < len(value) <= 32 and all(c.isascii() and (c.isalnum() or c in "-_.") for c in value)
    if not ok or value != value.lower():
        raise Malformed(f"{what} {value!r} must be 1-32 of a-z, 0-9, '-', '_', '.'", field=what)
    return value


class ProvenSignatures(Protocol):
    """Station signatures already checked elsewhere (``parallel_verify``, on other cores)."""

    def holds(self, signing: bytes, signature: bytes, digest: bytes) -> bool:
        """Whether ``signature`` by key ``signing`` (a hybrid one: the Ed25519 key then
        the ML-DSA-65 key) over bytes of SHA-256 ``digest`` was checked and verifies
        (False: not known to; check it yourself)."""
        ...


_PROVEN: ContextVar[ProvenSignatures | None] = ContextVar("proven_signatures", default=None)


@contextlib.contextmanager
def proven_signatures(proven: ProvenSignatures) -> Iterator[None]:
    """Within this block, ``StationCertificate.verify`` takes a signature ``proven`` holds
    as valid without redoing the arithmetic: the answer is the same, only sooner."""
    token = _PROVEN.set(proven)
    try:
        yield
    finally:
        _PROVEN.reset(token)


@dataclass(frozen=True)
class StationCertificate:
    """A party's statement that a station holds these keys for this period."""

    party: str
    station: str
    signing: bytes
    encryption: bytes
    not_before: int
    not_after: int
    note: Note = field(repr=False, compare=False)
    kem: bytes | None = None  # ML-KEM-768 encapsulation key (/v2 certificates)
    pq_signing: bytes | None = None  # ML-DSA-65 verification key (/v2 certificates)

    @property
    def ident(self) -> str:
        return f"{self.party}/{self.station}"

    @property
    def version(self) -> int:
        """2 for a hybrid (/v2) certificate, 1 for an Ed25519/X25519-only one."""
        return 1 if self.pq_signing is None else 2

    def encode(self) -> bytes:
        return self.note.encode()

    def verify_hybrid(self, message: bytes, signature: bytes) -> bool:
        """Ed25519 and ML-DSA-65 over ``message`` (only a /v2 certificate can)."""
        if self.pq_signing is None:
            return False
        proven = _PROVEN.get()
        if proven is not None and proven.holds(
            self.signing + self.pq_signing, signature, hashlib.sha256(message).digest()
        ):
            return True
        return hybrid.verify(self.signing, self.pq_signing, message, signature)

    def verify(self, message: bytes, signature: bytes) -> bool:
        proven = _PROVEN.get()
        if proven is not None and proven.holds(
            self.signing, signature, hashlib.sha256(message).digest()
        ):
            return True
        try:
            pubkeys.ed25519(self.signing).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Revocation:
    party: str
    station: str
    signing: bytes
    revoked_at: int
    reason: str
    replaced_by: bytes | None
    note: Note = field(repr=False, compare=False)

    @property
    def ident(self) -> str:
        return f"{self.party}/{self.station}"

    def encode(self) -> bytes:
        return self.note.encode()


def parse_certificate(data: bytes, party_root: NoteVerifier) -> StationCertificate:
    """Parse and verify a station certificate against its party's root key."""
    note = parse_note(data)
    v2 = statement_type(note) == CERT_TYPE_V2
    if v2:
        hybrid.verify_both(note, party_root)
    else:
        _verify_note(note, [party_root])
    body = parse_statement(note, CERT_TYPE_V2 if v2 else CERT_TYPE)
    cert = StationCertificate(
        party=check_id(_str(body, "party"), "party"),
        station=check_id(_str(body, "station"), "station"),
        signing=_key32(body, "signing"),
        encryption=check_x25519(_key32(body, "encryption"), "encryption"),
        not_before=_int(body, "not_before"),
        not_after=_int(body, "not_after"),
        note=note,
        kem=hybrid.check_mlkem(_key_b64(body, "kem", hybrid.MLKEM768_PUBLIC_SIZE)) if v2 else None,
        pq_signing=_key_b64(body, "pq_signing", MLDSA65_PUBLIC_SIZE) if v2 else None,
    )
    if cert.party != party_root.name:
        raise BadSignature(f"certificate for {cert.party} signed by {party_root.name}")
    if cert.not_after <= cert.not_before:
        raise Malformed("certificate ends before it starts", field="not_after")
    return cert


def parse_revocation(data: bytes, party_root: NoteVerifier) -> Revocation:
    note = parse_note(data)
    v2 = statement_type(note) == REVOCATION_TYPE_V2
    if v2:
        hybrid.verify_both(note, party_root)
    else:
        _verify_note(note, [party_root])
    body = parse_statement(note, REVOCATION_TYPE_V2 if v2 else REVOCATION_TYPE)
    replaced = body.get("replaced_by")
    rev = Revocation(
        party=check_id(_str(body, "party"), "party"),
        station=check_id(_str(body, "station"), "station"),
        signing=_key32(body, "signing"),
        revoked_at=_int(body, "revoked_at"),
        reason=_str(body, "reason"),
        replaced_by=_key32(body, "replaced_by") if replaced is not None else None,
        note=note,
    )
    if rev.party != party_root.name:
        raise BadSignature(f"revocation for {rev.party} signed by {party_root.name}")
    return rev


class PartyKey:
    """A party's root key: signs certificates, revocations and the roster.

    With ``pq`` (an ML-DSA-65 key, as every new party has) it signs /v2 statements with
    both keys; without it, it is a party key from before issue 16 (/v1 statements)."""

    def __init__(
        self, party: str, private: Ed25519PrivateKey, pq: MLDSA65PrivateKey | None = None
    ) -> None:
        self.party = check_id(party, "party")
        self.signer = NoteSigner(party, private)
        self.pq_signer = MLDSASigner(party, pq) if pq is not None else None

    @classmethod
    def generate(cls, party: str, pq: bool = True) -> PartyKey:
        return cls(
            party, Ed25519PrivateKey.generate(), MLDSA65PrivateKey.generate() if pq else None
        )

    @property
    def verifier(self) -> NoteVerifier:
        """The root as a roster names it (a HybridRoot when it has an ML-DSA-65 key)."""
        ed = self.signer.verifier
        if self.pq_signer is None:
            return ed
        return hybrid.HybridRoot(ed.name, ed.public, self.pq_signer.verifier)

    def public_keys(self) -> dict[str, str]:
        """The roster's entry for this party's keys: ``root`` (and ``pq_root``)."""
        keys = {"root": self.signer.verifier.encode()}
        if self.pq_signer is not None:
            keys["pq_root"] = self.pq_signer.verifier.encode()
        return keys

    def _statement(self, kind: str, body: dict[str, Any]) -> Note:
        note = make_note(statement_text(kind, body), self.signer)
        if self.pq_signer is not None:
            note = note.with_signature(self.pq_signer.sign(note.text.encode()))
        return note

    def certify(self, station: StationKey, not_before: int, not_after: int) -> StationCertificate:
        """Sign a certificate for ``station``; Malformed for a key nobody could seal to.

        /v2 (hybrid) when both the party and the station have post-quantum keys."""
        check_x25519(station.encryption_public, "encryption")
        body: dict[str, Any] = {
            "party": self.party,
            "station": check_id(station.station, "station"),
            "signing": b64(station.signing_public),
            "encryption": b64(station.encryption_public),
            "not_before": not_before,
            "not_after": not_after,
        }
        v2 = self.pq_signer is not None and station.pq is not None
        if v2 and station.pq is not None:
            body["kem"] = b64(station.pq.kem_public)
            body["pq_signing"] = b64(station.pq.signing_public)
        note = self._statement(CERT_TYPE_V2 if v2 else CERT_TYPE, body)
        return parse_certificate(note.encode(), self.verifier)

    def revoke(
        self,
        cert: StationCertificate,
        revoked_at: int,
        reason: str,
        replaced_by: StationCertificate | None = None,
    ) -> Revocation:
        body: dict[str, Any] = {
            "party": self.party,
            "station": cert.station,
            "signing": b64(cert.signing),
            "revoked_at": revoked_at,
            "reason": reason,
        }
        if replaced_by is not None:
            body["replaced_by"] = b64(replaced_by.signing)
        kind = REVOCATION_TYPE if self.pq_signer is None else REVOCATION_TYPE_V2
        return parse_revocation(self._statement(kind, body).encode(), self.verifier)

    def secret_material(self) -> dict[str, str]:
        material = {
            "kind": "party",
            "party": self.party,
            "signing": b64(self.signer.private.private_bytes_raw()),
        }
        if self.pq_signer is not None:
            material["pq_signing"] = b64(self.pq_signer.private.private_bytes_raw())
        return material


class StationPQ:
    """A station's post-quantum keys: ML-DSA-65 to sign, ML-KEM-768 to receive."""

    def __init__(self, signing: MLDSA65PrivateKey, kem: MLKEM768PrivateKey) -> None:
        self.signing = signing
        self.kem = kem
        self.signing_public = signing.public_key().public_bytes_raw()
        self.kem_public = kem.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> StationPQ:
        return cls(MLDSA65PrivateKey.generate(), MLKEM768PrivateKey.generate())


class StationKey:
    """A station's private keys: Ed25519 for signing, X25519 for receiving, and (for a
    station made since issue 16) ML-DSA-65 and ML-KEM-768 beside them (``pq``)."""

    def __init__(
        self,
        party: str,
        station: str,
        signing: Ed25519PrivateKey,
        encryption: X25519PrivateKey,
        pq: StationPQ | None = None,
    ) -> None:
        self.party = check_id(party, "party")
        self.station = check_id(station, "station")
        self.signing = signing
        self.encryption = encryption
        self.pq = pq
        self.signing_public = signing.public_key().public_bytes_raw()
        self.encryption_public = encryption.public_key().public_bytes_raw()

    @classmethod
    def generate(cls, party: str, station: str, pq: bool = True) -> StationKey:
        return cls(
            party,
            station,
            Ed25519PrivateKey.generate(),
            X25519PrivateKey.generate(),
            StationPQ.generate() if pq else None,
        )

    @property
    def ident(self) -> str:
        return f"{self.party}/{self.station}"

    def cosigner(self) -> Cosigner:
        """The station as a witness of checkpoints (C2SP cosignature, alg 0x04)."""
        return Cosigner(self.ident, self.signing)

    def secret_material(self) -> dict[str, str]:
        material = {
            "kind": "station",
            "party": self.party,
            "station": self.station,
            "signing": b64(self.signing.private_bytes_raw()),
            "encryption": b64(self.encryption.private_bytes_raw()),
        }
        if self.pq is not None:
            material["pq_signing"] = b64(self.pq.signing.private_bytes_raw())
            material["kem"] = b64(self.pq.kem.private_bytes_raw())
        return material


def _seed(material: dict[str, Any], key: str, size: int = 32) -> bytes:
    raw = unb64(_str(material, key), key)
    if len(raw) != size:
        raise Malformed(f"{key} must be a {size}-byte private key", field=key)
    return raw


def _pq_signing(material: dict[str, Any]) -> MLDSA65PrivateKey | None:
    if material.get("pq_signing") is None:
        return None
    return MLDSA65PrivateKey.from_seed_bytes(_seed(material, "pq_signing"))


def key_from_material(material: Any) -> PartyKey | StationKey:
    """A party or station key from its JSON material; Malformed if it is not one."""
    if not isinstance(material, dict):
        raise Malformed("key material is not an object", field="kind")
    kind = material.get("kind")
    if kind == "party":
        seed = _seed(material, "signing")
        return PartyKey(
            _str(material, "party"),
            Ed25519PrivateKey.from_private_bytes(seed),
            _pq_signing(material),
        )
    if kind == "station":
        pq_signing = _pq_signing(material)
        pq = None
        if pq_signing is not None:
            kem_seed = _seed(material, "kem", hybrid.MLKEM768_SEED_SIZE)
            pq = StationPQ(pq_signing, MLKEM768PrivateKey.from_seed_bytes(kem_seed))
        return StationKey(
            _str(material, "party"),
            _str(material, "station"),
            Ed25519PrivateKey.from_private_bytes(_seed(material, "signing")),
            X25519PrivateKey.from_private_bytes(_seed(material, "encryption")),
            pq,
        )
    raise Malformed("key material of unknown kind", field="kind")


# --- key files at rest -------------------------------------------------------

DEFAULT_KDF = {"iterations": 3, "lanes": 4, "memory_kib": 64 * 1024}
# What a key file may ask of Argon2id: enough for any honest file, too little to stall the
# machine that opens a hostile one (memory is also at least 8 KiB per lane, as Argon2 needs).
KDF_LIMITS = {"iterations": (1, 64), "lanes": (1, 64), "memory_kib": (8, 4 * 1024 * 1024)}


def argon2id(passphrase: str, salt: bytes, params: dict[str, int]) -> bytes:
    """A 32-byte key from a passphrase (Argon2id: iterations, lanes, memory_kib)."""
    return Argon2id(
        salt=salt,
        length=32,
        iterations=params["iterations"],
        lanes=params["lanes"],
        memory_cost=params["memory_kib"],
    ).derive(passphrase.encode())


def seal_key_file(
    material: dict[str, str], passphrase: str, kdf: dict[str, int] | None = None
) -> bytes:
    """Encrypt key material with a passphrase (Argon2id, then ChaCha20-Poly1305)."""
    if not passphrase:
        raise Malformed("a key file needs a non-empty passphrase", field="passphrase")
    params = dict(DEFAULT_KDF if kdf is None else kdf)
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    key = argon2id(passphrase, salt, params)
    ciphertext = ChaCha20Poly1305(key).encrypt(
        nonce, canonical_json(material).encode(), KEYFILE_FORMAT.encode()
    )
    doc = {
        "format": KEYFILE_FORMAT,
        "kdf": {"name": "argon2id", "salt": b64(salt), **params},
        "nonce": b64(nonce),
        "ciphertext": b64(ciphertext),
    }
    return (json.dumps(doc, indent=1) + "\n").encode()


def open_key_file(data: bytes, passphrase: str) -> dict[str, Any]:
    """Decrypt a key file; WrongPassphrase if the passphrase does not open it."""
    try:
        doc = json.loads(data)
        if doc.get("format") != KEYFILE_FORMAT or doc["kdf"]["name"] != "argon2id":
            raise Malformed("not a hotline key file", field="format")
        kdf = doc["kdf"]
        params = {k: int(kdf[k]) for k in KDF_LIMITS}
        salt, nonce = unb64(kdf["salt"], "salt"), unb64(doc["nonce"], "nonce")
        ciphertext = unb64(doc["ciphertext"], "ciphertext")
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        raise Malformed("not a hotline key file", field="format") from exc
    if any(not lo <= params[k] <= hi for k, (lo, hi) in KDF_LIMITS.items()):
        raise Malformed("key file asks for unreasonable KDF parameters", field="kdf")
    if params["memory_kib"] < 8 * params["lanes"] or not 8 <= len(salt) <= 64 or len(nonce) != 12:
        raise Malformed("key file has unusable KDF parameters, salt or nonce", field="kdf")
    try:
        key = argon2id(passphrase, salt, params)
    except UnicodeEncodeError as exc:  # a passphrase with lone surrogates cannot be typed
        raise WrongPassphrase("the passphrase is not valid Unicode") from exc
    try:
        plain = ChaCha20Poly1305(key).decrypt(nonce, ciphertext, KEYFILE_FORMAT.encode())
    except InvalidTag as exc:
        raise WrongPassphrase(
            "wrong passphrase for this key file (or the file was altered)"
        ) from exc
    try:
        material = json.loads(plain)
    except (ValueError, RecursionError) as exc:
        raise Malformed("key file content is not JSON", field="format") from exc
    if not isinstance(material, dict):
        raise Malformed("key file content is not an object", field="format")
    return material


def load_key(
    path: Path, passphrase: str | None, env_var: str | None = None
) -> PartyKey | StationKey:
    """Load a key from ``env_var`` (base64 of the key material JSON) or a key file."""
    if env_var and os.environ.get(env_var):
        try:
            material = json.loads(unb64(os.environ[env_var], env_var))
        except (ValueError, RecursionError) as exc:
            raise Malformed(f"{env_var} is not base64 of key material JSON", field=env_var) from exc
        return key_from_material(material)
    if passphrase is None:
        raise WrongPassphrase(f"{path} is encrypted: give a passphrase")
    return key_from_material(open_key_file(path.read_bytes(), passphrase))


def _claimed_party(data: bytes, kind: str) -> str:
    """The party a statement names, read before its signature is checked: only to pick
    the root to check it with (parse_* then refuse a party other than that root's).
    ``kind`` is the /v1 type; its /v2 form is read the same way."""
    note = parse_note(data)
    v2 = kind.removesuffix("/v1") + "/v2"
    return _str(parse_statement(note, v2 if statement_type(note) == v2 else kind), "party")


# --- the key ring: which key may sign for a station at a given time -------------


class KeyRing:
    """Station certificates and revocations, checked against the parties' roots.

    A station is its party, name and key together: a certificate counts only when signed
    by the root of the party it names, and a revocation only when signed by that root and
    naming a station and key the same party certified. So one party can never withdraw
    another's key, even by certifying that key under a station of its own.
    """

    def __init__(self, roots: dict[str, NoteVerifier]) -> None:
        self.roots = dict(roots)
        self.certificates: dict[str, list[StationCertificate]] = {}
        # By station ident and key: a revocation withdraws one station's key, no other's.
        self.revocations: dict[tuple[str, bytes], Revocation] = {}

    def _root(self, party: str) -> NoteVerifier:
        root = self.roots.get(party)
        if root is None:
            raise UnknownKey(f"party {party!r} is not in the roster", field="party")
        return root

    def check_certificate(self, data: bytes) -> StationCertificate:
        """A certificate signed by the root of the party it names (not taken in)."""
        return parse_certificate(data, self._root(_claimed_party(data, CERT_TYPE)))

    def add_certificate(self, data: bytes) -> StationCertificate:
        """Take a certificate signed by its party's root (TooLarge beyond the limits)."""
        cert = self.check_certificate(data)
        known = self.certificates.get(cert.ident, [])
        if any(c.signing == cert.signing for c in known):
            return cert
        if not known:
            stations = sum(1 for c in self.certificates.values() if c[0].party == cert.party)
            if stations >= MAX_STATIONS_PER_PARTY:
                raise TooLarge(
                    f"{cert.party} already has {stations} stations certified; the limit is "
                    f"{MAX_STATIONS_PER_PARTY} stations per party",
                    field="station",
                )
        elif len(known) >= MAX_CERTIFICATES_KEPT:
            raise TooLarge(
                f"{cert.ident} already has {len(known)} certificates; the limit is "
                f"{MAX_CERTIFICATES_KEPT} per station (certify a new station name)",
                field="station",
            )
        elif (overlap := self._most_usable_at_once(known, cert)) >= MAX_CERTIFICATES_PER_STATION:
            raise TooLarge(
                f"{cert.ident} would have {overlap + 1} certificates usable at once; the limit "
                f"is {MAX_CERTIFICATES_PER_STATION} per station (revoke an old key first)",
                field="station",
            )
        self.certificates.setdefault(cert.ident, []).append(cert)
        return cert

    def _most_usable_at_once(
        self, known: list[StationCertificate], cert: StationCertificate
    ) -> int:
        """The most of ``known`` usable at any one moment of ``cert``'s validity (each
        from its not_before to its not_after or its revocation, whichever is first)."""

        def end(c: StationCertificate) -> int:
            rev = self.revocations.get((c.ident, c.signing))
            return min(c.not_after, rev.revoked_at) if rev is not None else c.not_after

        spans = [(max(c.not_before, cert.not_before), min(end(c), cert.not_after)) for c in known]
        # Sweep the start and end of every span that meets the new one; an end before a
        # start at the same instant, since a span covers [start, end).
        events = sorted([(a, 1) for a, b in spans if a < b] + [(b, -1) for a, b in spans if a < b])
        most = live = 0
        for _, step in events:
            live += step
            most = max(most, live)
        return most

    def add_revocation(self, data: bytes) -> Revocation:
        """Take a revocation signed by its party's root, of a key that party certified
        for the station it names; UnknownKey for any other key (another party's)."""
        rev = parse_revocation(data, self._root(_claimed_party(data, REVOCATION_TYPE)))
        ident = rev.ident
        if not any(c.signing == rev.signing for c in self.certificates.get(ident, [])):
            raise UnknownKey(
                f"revocation by {rev.party} names a key it never certified for {ident}",
                field="signing",
            )
        current = self.revocations.get((ident, rev.signing))
        if current is None or rev.revoked_at < current.revoked_at:
            self.revocations[(ident, rev.signing)] = rev
        return rev

    def certificates_of(self, ident: str) -> list[StationCertificate]:
        return list(self.certificates.get(ident, []))

    def all_certificates(self) -> list[StationCertificate]:
        return [c for certs in self.certificates.values() for c in certs]

    def revoked(self, cert: StationCertificate, at: int) -> bool:
        """Whether this station's key is revoked (``at`` is not used: a revocation takes
        effect where it is logged, never at its ``revoked_at``; a key ring holds the keys
        as they stand now, and a log's history by position is keyhistory.py's)."""
        return (cert.ident, cert.signing) in self.revocations

    def station(self, ident: str, at: int) -> list[StationCertificate]:
        """Certificates of ``party/station`` usable at time ``at`` (unix seconds).

        Raises UnknownKey, KeyNotValid or RevokedKey naming why none is usable.
        """
        certs = self.certificates.get(ident)
        if not certs:
            raise UnknownKey(f"no certificate for station {ident}", field="station")
        valid = [c for c in certs if c.not_before <= at < c.not_after]
        if not valid:
            raise KeyNotValid(f"no certificate of {ident} is valid at {at}", field="station")
        live = [c for c in valid if not self.revoked(c, at)]
        if not live:
            raise RevokedKey(f"the key of {ident} is revoked", field="station")
        return live
