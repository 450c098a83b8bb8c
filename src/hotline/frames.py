"""Frames between stations and the relay: one JSON object per WebSocket text message.

Binary values (envelopes, hashes, proofs, nonces) travel as standard base64.
Sizes are checked before JSON parsing; see docs/PROTOCOL.md §6 for every op.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import Malformed, TooLarge
from .notes import b64, unb64

MAX_FRAME = 256 * 1024
AUTH_CONTEXT = b"hotline-auth/v1\n"


def encode(op: str, **fields: Any) -> str:
    return json.dumps({"op": op, **fields}, separators=(",", ":"))


def decode(text: str | bytes, max_size: int = MAX_FRAME) -> dict[str, Any]:
    """Parse one frame; TooLarge before parsing, Malformed for anything not a frame."""
    if len(text) > max_size:
        raise TooLarge(f"frame is {len(text)} bytes; the limit is {max_size}")
    try:
        frame = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed("frame is not JSON") from exc
    if not isinstance(frame, dict) or not isinstance(frame.get("op"), str):
        raise Malformed("frame must be an object with an op")
    return frame


def field_str(frame: dict[str, Any], key: str) -> str:
    value = frame.get(key)
    if not isinstance(value, str):
        raise Malformed(f"frame field {key} must be a string", field=key)
    return value


def field_int(frame: dict[str, Any], key: str) -> int:
    value = frame.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Malformed(f"frame field {key} must be a non-negative integer", field=key)
    return value


def field_bytes(frame: dict[str, Any], key: str) -> bytes:
    return unb64(field_str(frame, key), key)


def field_hashes(frame: dict[str, Any], key: str) -> list[bytes]:
    value = frame.get(key)
    if not isinstance(value, list) or len(value) > 128:
        raise Malformed(f"frame field {key} must be a list of hashes", field=key)
    return [unb64(v, key) if isinstance(v, str) else b"" for v in value]


def hashes(values: list[bytes]) -> list[str]:
    return [b64(v) for v in values]


def auth_message(nonce: bytes, station: str, roster_hash: bytes) -> bytes:
    """What a station signs to prove it holds its key (fresh nonce from the relay)."""
    return AUTH_CONTEXT + station.encode() + b"\n" + roster_hash + nonce
