"""Frames between stations and the relay: one JSON object per WebSocket text message.

Binary values (envelopes, hashes, proofs, nonces) travel as standard base64.
Sizes are checked before JSON parsing; see docs/PROTOCOL.md §6 for every op.

Every frame is a frozen value. ``decode_station_frame`` (what a station sends) and
``decode_relay_frame`` (what the relay sends) check every field and return one, or
raise ``TooLarge`` / ``Malformed``, never anything else; ``encode_frame`` writes one.
Notes (certificates, checkpoints, revocations) are held as the note's bytes.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from .errors import HotlineError, Malformed, TooLarge, from_dict
from .leaf import LeafKind
from .notes import b64, unb64
from .wire import MAX_U63

# Above the base64 of the largest version-2 envelope (envelope.MAX_ENVELOPE, ~369 KiB raw:
# an ML-KEM-768 ciphertext per recipient and an ML-DSA-65 signature), with room to spare.
MAX_FRAME = 1024 * 1024
AUTH_CONTEXT = b"hotline-auth/v1\n"
MAX_ITEMS = 10_000  # entries, notes or channels in one frame
MAX_HASHES = 128  # hashes in one proof
HASH_SIZE = 32

RequestId = str | int | None
"""A request's ``id``, echoed in its answer (the relay's pushes carry none)."""


# --- reading fields -------------------------------------------------------------------


class _Fields:
    """Typed reads of one JSON object; any other value is Malformed, naming the field."""

    def __init__(self, data: dict[str, Any], what: str) -> None:
        self.data, self.what = data, what

    def _get(self, key: str) -> Any:
        if key not in self.data:
            raise Malformed(f"{self.what} lacks {key}", field=key)
        return self.data[key]

    def _bad(self, key: str, kind: str) -> Malformed:
        return Malformed(f"{self.what} field {key} must be {kind}", field=key)

    def text(self, key: str) -> str:
        return _text(self._get(key), lambda: self._bad(key, "a string"))

    def optional_text(self, key: str) -> str | None:
        return None if self.data.get(key) is None else self.text(key)

    def count(self, key: str) -> int:
        return _count(self._get(key), lambda: self._bad(key, "an integer in 0..2^63-1"))

    def optional_count(self, key: str) -> int | None:
        return None if self.data.get(key) is None else self.count(key)

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def blob(self, key: str) -> bytes:
        return unb64(self.text(key), key)

    def digest(self, key: str) -> bytes:
        return _digest(self.text(key), key)

    def note(self, key: str) -> bytes:
        return self.text(key).encode()

    def items(self, key: str, limit: int = MAX_ITEMS) -> list[Any]:
        value = self._get(key)
        if not isinstance(value, list) or len(value) > limit:
            raise self._bad(key, f"a list of at most {limit} items")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        bad = lambda: self._bad(key, "a list of strings")  # noqa: E731
        return tuple(_text(v, bad) for v in self.items(key))

    def notes(self, key: str) -> tuple[bytes, ...]:
        return tuple(t.encode() for t in self.texts(key))

    def digests(self, key: str) -> tuple[bytes, ...]:
        bad = lambda: self._bad(key, "a list of base64 hashes")  # noqa: E731
        return tuple(_digest(_text(v, bad), key) for v in self.items(key, MAX_HASHES))

    def object(self, key: str) -> dict[str, Any]:
        value = self._get(key)
        if not isinstance(value, dict):
            raise self._bad(key, "an object")
        return value

    def request_id(self) -> RequestId:
        value = self.data.get("id")
        if value is None:
            return None
        bad = lambda: self._bad("id", "a string or an integer")  # noqa: E731
        return _text(value, bad) if isinstance(value, str) else _count(value, bad)


def _text(value: Any, bad: Callable[[], Malformed]) -> str:
    if not isinstance(value, str):
        raise bad()
    try:
        value.encode()  # JSON may carry lone surrogates, which no UTF-8 text holds
    except UnicodeEncodeError as exc:
        raise bad() from exc
    return value


def _count(value: Any, bad: Callable[[], Malformed]) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_U63:
        raise bad()
    return value


def _digest(text: str, key: str) -> bytes:
    data = unb64(text, key)
    if len(data) != HASH_SIZE:
        raise Malformed(f"{key} must be a {HASH_SIZE}-byte hash", field=key)
    return data


def _with_id(request_id: RequestId, fields: dict[str, Any]) -> dict[str, Any]:
    """A station's request carries its id only when it has one."""
    return fields if request_id is None else {"id": request_id, **fields}


# --- values inside frames -----------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One log entry as a frame carries it: ``envelope`` holds its bytes, an envelope or
    (``kind`` key_event) a key event's statement."""

    index: int
    envelope: bytes
    relay_ms: int
    kind: LeafKind = LeafKind.ENVELOPE

    @classmethod
    def read(cls, data: Any) -> Entry:
        if not isinstance(data, dict):
            raise Malformed("each entry must be an object", field="entries")
        f = _Fields(data, "entry")
        kind = _ENTRY_KINDS.get(f.text("kind"))
        if kind is None:
            raise Malformed("entry kind must be envelope or key_event", field="kind")
        return cls(f.count("index"), f.blob("envelope"), f.count("relay_ms"), kind)

    def wire(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": ENTRY_KIND_NAMES[self.kind],
            "envelope": b64(self.envelope),
            "relay_ms": self.relay_ms,
        }


ENTRY_KIND_NAMES = {LeafKind.ENVELOPE: "envelope", LeafKind.KEY_EVENT: "key_event"}
_ENTRY_KINDS = {name: kind for kind, name in ENTRY_KIND_NAMES.items()}


class LinkKind(enum.StrEnum):
    PING = "ping"
    PONG = "pong"


_LINK_KEYS = frozenset({"kind", "channel", "from", "sent_ms", "nonce", "to", "signature"})


@dataclass(frozen=True)
class LinkTest:
    """A signed link test (see link.py); the relay forwards it and never logs it."""

    kind: LinkKind
    channel: str
    sender: str  # "from" on the wire
    sent_ms: int
    nonce: str
    signature: bytes
    to: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> LinkTest:
        """Parse a link message. Its signature covers every field, so none may be unknown."""
        if not isinstance(data, dict):
            raise Malformed("link frame without a link message", field="link")
        unknown = set(data) - _LINK_KEYS
        if unknown:
            raise Malformed(f"link message has unknown fields {sorted(unknown)}", field="link")
        f = _Fields(data, "link message")
        try:
            kind = LinkKind(f.text("kind"))
        except ValueError as exc:
            raise Malformed("unknown link message kind", field="kind") from exc
        return cls(
            kind,
            f.text("channel"),
            f.text("from"),
            f.count("sent_ms"),
            f.text("nonce"),
            f.blob("signature"),
            f.optional_text("to"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The message as link.make builds it (the form link.check verifies)."""
        out: dict[str, Any] = {
            "kind": self.kind.value,
            "channel": self.channel,
            "from": self.sender,
            "sent_ms": self.sent_ms,
            "nonce": self.nonce,
        }
        if self.to is not None:
            out["to"] = self.to
        out["signature"] = b64(self.signature)
        return out


# --- station → relay ----------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    """The answer to the relay's challenge: who the station is, and proof it holds its key."""

    op: ClassVar[str] = "hello"
    station: str
    certificate: bytes
    signature: bytes

    @classmethod
    def read(cls, f: _Fields) -> Hello:
        return cls(f.text("station"), f.blob("certificate"), f.blob("signature"))

    def wire(self) -> dict[str, Any]:
        return {
            "station": self.station,
            "certificate": b64(self.certificate),
            "signature": b64(self.signature),
        }


@dataclass(frozen=True)
class Post:
    op: ClassVar[str] = "post"
    envelope: bytes
    id: RequestId = None

    @classmethod
    def read(cls, f: _Fields) -> Post:
        return cls(f.blob("envelope"), f.request_id())

    def wire(self) -> dict[str, Any]:
        return _with_id(self.id, {"envelope": b64(self.envelope)})


@dataclass(frozen=True)
class Sync:
    """Entries of ``channel`` from index ``start`` ("from" on the wire)."""

    op: ClassVar[str] = "sync"
    channel: str
    start: int
    id: RequestId = None

    @classmethod
    def read(cls, f: _Fields) -> Sync:
        return cls(f.text("channel"), f.count("from"), f.request_id())

    def wire(self) -> dict[str, Any]:
        return _with_id(self.id, {"channel": self.channel, "from": self.start})


@dataclass(frozen=True)
class Cosign:
    op: ClassVar[str] = "cosign"
    channel: str
    size: int
    checkpoint: bytes
    id: RequestId = None

    @classmethod
    def read(cls, f: _Fields) -> Cosign:
        return cls(f.text("channel"), f.count("size"), f.note("checkpoint"), f.request_id())

    def wire(self) -> dict[str, Any]:
        return _with_id(
            self.id,
            {"channel": self.channel, "size": self.size, "checkpoint": self.checkpoint.decode()},
        )


@dataclass(frozen=True)
class GetCertificates:
    op: ClassVar[str] = "certificates"
    id: RequestId = None

    @classmethod
    def read(cls, f: _Fields) -> GetCertificates:
        return cls(f.request_id())

    def wire(self) -> dict[str, Any]:
        return _with_id(self.id, {})


@dataclass(frozen=True)
class Revoke:
    """A revocation note signed by a party root, for the relay to register."""

    op: ClassVar[str] = "revocation"
    data: bytes
    id: RequestId = None

    @classmethod
    def read(cls, f: _Fields) -> Revoke:
        return cls(f.note("data"), f.request_id())

    def wire(self) -> dict[str, Any]:
        return _with_id(self.id, {"data": self.data.decode()})


@dataclass(frozen=True)
class Ping:
    op: ClassVar[str] = "ping"
    id: RequestId = None

    @classmethod
    def read(cls, f: _Fields) -> Ping:
        return cls(f.request_id())

    def wire(self) -> dict[str, Any]:
        return _with_id(self.id, {})


@dataclass(frozen=True)
class Link:
    """A link test, from a station to the relay and forwarded to the channel's others."""

    op: ClassVar[str] = "link"
    link: LinkTest

    @classmethod
    def read(cls, f: _Fields) -> Link:
        return cls(LinkTest.from_dict(f.data.get("link")))

    def wire(self) -> dict[str, Any]:
        return {"link": self.link.to_dict()}


# --- relay → station ----------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    op: ClassVar[str] = "challenge"
    nonce: bytes
    roster: bytes  # SHA-256 of the roster note
    relay_ms: int

    @classmethod
    def read(cls, f: _Fields) -> Challenge:
        return cls(f.digest("nonce"), f.digest("roster"), f.count("relay_ms"))

    def wire(self) -> dict[str, Any]:
        return {"nonce": b64(self.nonce), "roster": b64(self.roster), "relay_ms": self.relay_ms}


@dataclass(frozen=True)
class Welcome:
    op: ClassVar[str] = "welcome"
    station: str
    channels: tuple[str, ...]
    sizes: tuple[tuple[str, int], ...]  # (channel, log size), in the relay's order
    relay_ms: int

    @classmethod
    def read(cls, f: _Fields) -> Welcome:
        sizes = f.object("sizes")
        if len(sizes) > MAX_ITEMS:
            raise Malformed("welcome names too many channels", field="sizes")
        sized = _Fields(sizes, "welcome sizes")
        bad = lambda: Malformed("welcome sizes must name channels", field="sizes")  # noqa: E731
        return cls(
            f.text("station"),
            f.texts("channels"),
            tuple((_text(channel, bad), sized.count(channel)) for channel in sizes),
            f.count("relay_ms"),
        )

    def wire(self) -> dict[str, Any]:
        return {
            "station": self.station,
            "channels": list(self.channels),
            "sizes": dict(self.sizes),
            "relay_ms": self.relay_ms,
        }


@dataclass(frozen=True)
class Accepted:
    """An envelope is in the log: its place, and the proof at a signed checkpoint."""

    op: ClassVar[str] = "accepted"
    id: RequestId
    channel: str
    index: int
    hash: bytes
    seq: int
    relay_ms: int
    duplicate: bool
    checkpoint: bytes
    proof: tuple[bytes, ...]

    @classmethod
    def read(cls, f: _Fields) -> Accepted:
        return cls(
            f.request_id(),
            f.text("channel"),
            f.count("index"),
            f.digest("hash"),
            f.count("seq"),
            f.count("relay_ms"),
            f.flag("duplicate"),
            f.note("checkpoint"),
            f.digests("proof"),
        )

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "index": self.index,
            "hash": b64(self.hash),
            "seq": self.seq,
            "relay_ms": self.relay_ms,
            "duplicate": self.duplicate,
            "checkpoint": self.checkpoint.decode(),
            "proof": hashes(self.proof),
        }


@dataclass(frozen=True)
class Entries:
    """Entries from ``start``, the checkpoint after them, and the consistency proof to it."""

    op: ClassVar[str] = "entries"
    id: RequestId
    channel: str
    start: int
    entries: tuple[Entry, ...]
    checkpoint: bytes
    consistency: tuple[bytes, ...]
    more: bool

    @classmethod
    def read(cls, f: _Fields) -> Entries:
        return cls(
            f.request_id(),
            f.text("channel"),
            f.count("start"),
            tuple(Entry.read(e) for e in f.items("entries")),
            f.note("checkpoint"),
            f.digests("consistency"),
            f.flag("more"),
        )

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "start": self.start,
            "entries": [e.wire() for e in self.entries],
            "checkpoint": self.checkpoint.decode(),
            "consistency": hashes(self.consistency),
            "more": self.more,
        }


@dataclass(frozen=True)
class Certificates:
    """Every station certificate and revocation the relay holds (notes)."""

    op: ClassVar[str] = "certificates"
    id: RequestId
    certificates: tuple[bytes, ...]
    revocations: tuple[bytes, ...]

    @classmethod
    def read(cls, f: _Fields) -> Certificates:
        return cls(f.request_id(), f.notes("certificates"), f.notes("revocations"))

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "certificates": [c.decode() for c in self.certificates],
            "revocations": [r.decode() for r in self.revocations],
        }


@dataclass(frozen=True)
class Pong:
    op: ClassVar[str] = "pong"
    id: RequestId
    relay_ms: int

    @classmethod
    def read(cls, f: _Fields) -> Pong:
        return cls(f.request_id(), f.count("relay_ms"))

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "relay_ms": self.relay_ms}


@dataclass(frozen=True)
class Ok:
    op: ClassVar[str] = "ok"
    id: RequestId

    @classmethod
    def read(cls, f: _Fields) -> Ok:
        return cls(f.request_id())

    def wire(self) -> dict[str, Any]:
        return {"id": self.id}


@dataclass(frozen=True)
class ErrorReply:
    """A refused request (or a failed one): the error as ``HotlineError.to_dict`` gives it."""

    op: ClassVar[str] = "error"
    id: RequestId
    code: str
    message: str
    channel: str | None = None
    index: int | None = None
    field: str | None = None

    @classmethod
    def of(cls, request_id: RequestId, exc: HotlineError) -> ErrorReply:
        return cls(request_id, exc.code, exc.message, exc.channel, exc.index, exc.field)

    def error(self) -> HotlineError:
        """The error, rebuilt as its class (unknown codes become HotlineError)."""
        return from_dict(self.wire()["error"])

    @classmethod
    def read(cls, f: _Fields) -> ErrorReply:
        e = _Fields(f.object("error"), "error")
        return cls(
            f.request_id(),
            e.text("code"),
            e.text("message"),
            e.optional_text("channel"),
            e.optional_count("index"),
            e.optional_text("field"),
        )

    def wire(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        for name in ("channel", "index", "field"):
            value = getattr(self, name)
            if value is not None:
                error[name] = value
        return {"id": self.id, "error": error}


StationFrame = Hello | Post | Sync | Cosign | GetCertificates | Revoke | Ping | Link
"""What a station sends the relay."""

RelayFrame = Challenge | Welcome | Accepted | Entries | Certificates | Pong | Ok | ErrorReply | Link
"""What the relay sends a station."""

Frame = StationFrame | RelayFrame

_STATION_OPS: dict[str, Callable[[_Fields], StationFrame]] = {
    Hello.op: Hello.read,
    Post.op: Post.read,
    Sync.op: Sync.read,
    Cosign.op: Cosign.read,
    GetCertificates.op: GetCertificates.read,
    Revoke.op: Revoke.read,
    Ping.op: Ping.read,
    Link.op: Link.read,
}
_RELAY_OPS: dict[str, Callable[[_Fields], RelayFrame]] = {
    Challenge.op: Challenge.read,
    Welcome.op: Welcome.read,
    Accepted.op: Accepted.read,
    Entries.op: Entries.read,
    Certificates.op: Certificates.read,
    Pong.op: Pong.read,
    Ok.op: Ok.read,
    ErrorReply.op: ErrorReply.read,
    Link.op: Link.read,
}


# --- decoding and encoding ----------------------------------------------------------


def parse_object(raw: str | bytes, max_size: int = MAX_FRAME) -> dict[str, Any]:
    """The JSON object of one frame: TooLarge before parsing, Malformed if it is no frame."""
    if len(raw) > max_size:
        raise TooLarge(f"frame is {len(raw)} bytes; the limit is {max_size}")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise Malformed("frame is not JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("op"), str):
        raise Malformed("frame must be an object with an op")
    return data


def request_id_of(data: dict[str, Any]) -> RequestId:
    """The id to echo in an answer to ``data``, if it has a valid one (else None)."""
    try:
        return _Fields(data, "frame").request_id()
    except Malformed:
        return None


def station_frame(data: dict[str, Any]) -> StationFrame:
    """The typed frame a station sent, from its parsed JSON object."""
    return _typed(data, _STATION_OPS)


def relay_frame(data: dict[str, Any]) -> RelayFrame:
    """The typed frame the relay sent, from its parsed JSON object."""
    return _typed(data, _RELAY_OPS)


T = TypeVar("T")


def _typed(data: dict[str, Any], ops: dict[str, Callable[[_Fields], T]]) -> T:
    op = data.get("op")
    read = ops.get(op) if isinstance(op, str) else None
    if read is None:
        raise Malformed(f"unknown op {op!r}", field="op")
    return read(_Fields(data, f"{op} frame"))


def decode_station_frame(raw: str | bytes, max_size: int = MAX_FRAME) -> StationFrame:
    """Parse and check one frame a station sent (what the relay reads)."""
    return station_frame(parse_object(raw, max_size))


def decode_relay_frame(raw: str | bytes, max_size: int = MAX_FRAME) -> RelayFrame:
    """Parse and check one frame the relay sent (what a station reads)."""
    return relay_frame(parse_object(raw, max_size))


def encode_frame(frame: Frame) -> str:
    """The frame's JSON text, as it goes on the wire."""
    return json.dumps({"op": frame.op, **frame.wire()}, separators=(",", ":"))


# --- frame sizes --------------------------------------------------------------------

FRAME_BUDGET = MAX_FRAME * 3 // 4  # room for the checkpoint and proof


class _HasEnvelope(Protocol):
    @property
    def envelope(self) -> bytes: ...


E = TypeVar("E", bound=_HasEnvelope)


def fitting(entries: Sequence[E]) -> Iterator[list[E]]:
    """Consecutive runs of entries whose ``entries`` frame stays under MAX_FRAME."""
    chunk: list[E] = []
    used = 0
    for e in entries:
        cost = len(e.envelope) * 4 // 3 + 100  # base64 and the JSON around it
        if chunk and used + cost > FRAME_BUDGET:
            yield chunk
            chunk, used = [], 0
        chunk.append(e)
        used += cost
    if chunk:
        yield chunk


def auth_message(nonce: bytes, station: str, roster_hash: bytes) -> bytes:
    """What a station signs to prove it holds its key (fresh nonce from the relay)."""
    return AUTH_CONTEXT + station.encode() + b"\n" + roster_hash + nonce


def hashes(values: Sequence[bytes]) -> list[str]:
    """Hashes (a proof) as the wire carries them: a list of base64 strings."""
    return [b64(v) for v in values]
