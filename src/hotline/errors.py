"""The exception tree of hotline.

Every failure that hotline reports is one of these, so a caller can act on the
family without parsing messages::

    HotlineError
    ├── BadInput                 the bytes or values given are not acceptable
    │   ├── Malformed            syntax: cannot be parsed as what it claims to be
    │   ├── TooLarge             over a size limit (checked before parsing)
    │   └── IdempotencyConflict  a request's idempotency key was used for another request
    ├── VerificationFailed       well-formed, but a cryptographic check failed
    │   ├── BadSignature         a signature does not verify with the expected key
    │   ├── DecryptionFailed     a body or key does not decrypt (wrong key, altered bytes)
    │   ├── BadProof             a Merkle inclusion/consistency proof does not verify
    │   ├── ChainGap             a sender's sequence skips a number or its hash chain breaks
    │   ├── Replay               a sender's sequence number or envelope was already seen
    │   ├── ForkDetected         two signed checkpoints of one log are not consistent
    │   └── BadTime              an entry's signed time goes back or lies outside its bounds
    ├── NotAuthorized            the actor or key may not do this
    │   ├── Unauthenticated      no credentials, or wrong ones (an API token, a password)
    │   ├── UnknownKey           no certificate or roster entry for this key
    │   ├── RevokedKey           the key was revoked before the time of use
    │   ├── KeyNotValid          used outside its certificate's validity period
    │   ├── NotARecipient        this station holds no wrapped key in the envelope
    │   └── WrongPassphrase      a key file could not be decrypted with this passphrase
    └── Unavailable              a peer or store cannot be reached now; retry later
        └── RateLimited          too many requests from this station; slow down

Each error has a stable ``code`` (used on the wire and in ``--json`` output) and
may name where it happened: ``channel``, ``index`` and ``field``. At an HTTP
edge, ``http_status`` gives the status of an error by its family.
"""

from __future__ import annotations


class HotlineError(Exception):
    """Base of every hotline error."""

    code = "error"

    def __init__(
        self,
        message: str,
        *,
        channel: str | None = None,
        index: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.channel = channel
        self.index = index
        self.field = field

    def __str__(self) -> str:
        where = []
        if self.channel is not None:
            where.append(f"channel {self.channel}")
        if self.index is not None:
            where.append(f"index {self.index}")
        if self.field is not None:
            where.append(f"field {self.field}")
        return f"{self.message} ({', '.join(where)})" if where else self.message

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description, without secrets (messages never carry any)."""
        out: dict[str, object] = {"code": self.code, "message": self.message}
        for name in ("channel", "index", "field"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


class BadInput(HotlineError):
    code = "bad_input"


class Malformed(BadInput):
    code = "malformed"


class TooLarge(BadInput):
    code = "too_large"


class IdempotencyConflict(BadInput):
    code = "idempotency_conflict"


class VerificationFailed(HotlineError):
    code = "verification_failed"


class BadSignature(VerificationFailed):
    code = "bad_signature"


class DecryptionFailed(VerificationFailed):
    code = "decryption_failed"


class BadProof(VerificationFailed):
    code = "bad_proof"


class ChainGap(VerificationFailed):
    code = "chain_gap"


class Replay(VerificationFailed):
    code = "replay"


class ForkDetected(VerificationFailed):
    code = "fork"


class BadTime(VerificationFailed):
    code = "bad_time"


class NotAuthorized(HotlineError):
    code = "not_authorized"


class Unauthenticated(NotAuthorized):
    code = "unauthenticated"


class UnknownKey(NotAuthorized):
    code = "unknown_key"


class RevokedKey(NotAuthorized):
    code = "revoked_key"


class KeyNotValid(NotAuthorized):
    code = "key_not_valid"


class NotARecipient(NotAuthorized):
    code = "not_a_recipient"


class WrongPassphrase(NotAuthorized):
    code = "wrong_passphrase"


class Unavailable(HotlineError):
    code = "unavailable"


class RateLimited(Unavailable):
    code = "rate_limited"


_BY_CODE: dict[str, type[HotlineError]] = {}


def _collect(cls: type[HotlineError]) -> None:
    _BY_CODE[cls.code] = cls
    for sub in cls.__subclasses__():
        _collect(sub)


_collect(HotlineError)


def from_dict(data: dict[str, object]) -> HotlineError:
    """Rebuild an error received on the wire (unknown codes become HotlineError)."""
    cls = _BY_CODE.get(str(data.get("code")), HotlineError)
    index = data.get("index")
    return cls(
        str(data.get("message", "")),
        channel=str(data["channel"]) if data.get("channel") is not None else None,
        index=index if isinstance(index, int) else None,
        field=str(data["field"]) if data.get("field") is not None else None,
    )


def http_status(exc: HotlineError) -> int:
    """The HTTP status that answers a request refused with ``exc`` (by its class)."""
    if isinstance(exc, Unauthenticated):
        return 401
    if isinstance(exc, IdempotencyConflict):
        return 409
    if isinstance(exc, NotAuthorized):
        return 403
    if isinstance(exc, RateLimited):
        return 429
    if isinstance(exc, Unavailable):
        return 503
    return 400  # bad input, a failed verification: the request itself is at fault
