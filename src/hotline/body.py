"""Message bodies: what is inside an envelope's encryption (UTF-8 JSON objects).

* ``{"type": "text", "lang": "en", "text": "..."}`` free text; the original is authoritative.
* ``{"type": "form", "form": NAME, "version": N, "fields": {...}}`` a structured form.
* ``{"type": "receipt", "status": "delivered"|"acknowledged", "of_index": I,
  "of_hash": HEX, "checkpoint": NOTE, ...}`` proof of delivery or acknowledgment.
* ``{"type": "notice", "notice": "overdue"|..., ...}`` escalation steps and other records.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import Malformed
from .roster import LANGUAGES

MAX_TEXT = 32 * 1024


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def decode(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Malformed("body is not UTF-8 JSON", field="body") from exc
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise Malformed("body must be an object with a type", field="body")
    return body


def text(message: str, lang: str) -> dict[str, Any]:
    if not message.strip():
        raise Malformed("the message is empty", field="text")
    if len(message.encode()) > MAX_TEXT:
        raise Malformed(f"the message is over {MAX_TEXT} bytes", field="text")
    if lang not in LANGUAGES:
        raise Malformed(f"unknown language {lang!r}", field="lang")
    return {"type": "text", "lang": lang, "text": message}


def receipt(
    status: str,
    of_index: int,
    of_hash: bytes,
    checkpoint: str,
    operator: str | None = None,
    reply: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "receipt",
        "status": status,
        "of_index": of_index,
        "of_hash": of_hash.hex(),
        "checkpoint": checkpoint,
    }
    if operator:
        body["operator"] = operator
    if reply:
        body["reply"] = reply
    return body


def summary(body: dict[str, Any]) -> str:
    """One line for lists (never used on the relay: bodies never reach it in clear)."""
    kind = body.get("type")
    if kind == "text":
        return str(body.get("text", ""))[:200]
    if kind == "form":
        return f"[{body.get('form')}]"
    if kind == "receipt":
        return f"[{body.get('status')} #{body.get('of_index')}]"
    return f"[{kind}]"
