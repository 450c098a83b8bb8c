"""Message bodies: what is inside an envelope's encryption, as typed values.

On the wire a body is one UTF-8 JSON object (compact, keys sorted)::

    {"type": "text", "lang": "en", "text": "..."}      free text; the original rules
    {"type": "form", "form": NAME, "version": N, "fields": {...}}   a structured form
    (both may carry "operator": NAME, the console operator who wrote it)
    {"type": "receipt", "status": "delivered"|"acknowledged", "of_index": I,
     "of_hash": HEX, "checkpoint": NOTE[, "operator": ..., "reply": ...]
     [, "also": [{"of_index": I, "of_hash": HEX}, ...]]}   delivered only: a run of them
    {"type": "notice", "notice": "overdue", "side", "of_index", "party", "level", "due_ms"}
    {"type": "notice", "notice": "link", "party", "from", "to"}
    {"type": "link-test", "sent_ms": MS}                        the hourly logged link test

``parse_body`` turns bytes into exactly one of the value classes below or raises
``Malformed`` naming the field; nothing half-parsed escapes. A form's ``fields`` stay
a JSON object: their schema lives in ``forms/`` and is checked there.
"""

from __future__ import annotations

import enum
import itertools
import json
from dataclasses import dataclass, replace
from typing import Any

from .errors import Malformed
from .roster import LANGUAGES
from .wire import MAX_U63

MAX_TEXT = 32 * 1024
MAX_BODY = 1024 * 1024
MAX_DEPTH = 16  # forms nest a point in a list at most; anything deeper is hostile
# One delivered receipt names at most this many entries (its own and ``also``'s).
MAX_RECEIPT_REFS = 64


class ReceiptStatus(enum.StrEnum):
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"


class Side(enum.StrEnum):
    """Which end of a message an overdue notice was recorded at."""

    SENDER = "sender"
    RECIPIENT = "recipient"


@dataclass(frozen=True)
class Text:
    lang: str
    text: str
    operator: str | None = None  # who wrote it, signed inside the envelope

    def to_dict(self) -> dict[str, Any]:
        return _signed_by({"type": "text", "lang": self.lang, "text": self.text}, self.operator)


@dataclass(frozen=True)
class Form:
    form: str
    version: int
    fields: dict[str, Any]
    operator: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"type": "form", "form": self.form, "version": self.version, "fields": self.fields}
        return _signed_by(out, self.operator)


@dataclass(frozen=True)
class Receipt:
    """Which entry (by index and envelope hash) was delivered or acknowledged, and the
    checkpoint note its sender had verified when it wrote the receipt.

    A delivered receipt may name a run of entries of one log: ``also`` holds the ones
    after the first, each (index, envelope hash), indexes rising. It is the same signed
    statement for each, made once (one signature, one log entry, instead of one each)."""

    status: ReceiptStatus
    of_index: int
    of_hash: bytes
    checkpoint: bytes
    operator: str | None = None
    reply: str | None = None
    also: tuple[tuple[int, bytes], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "receipt",
            "status": str(self.status),
            "of_index": self.of_index,
            "of_hash": self.of_hash.hex(),
            "checkpoint": self.checkpoint.decode(),
        }
        if self.operator:
            out["operator"] = self.operator
        if self.reply:
            out["reply"] = self.reply
        if self.also:  # absent when it names one entry: such receipts are as they always were
            out["also"] = [{"of_index": i, "of_hash": h.hex()} for i, h in self.also]
        return out

    def each(self) -> list[Receipt]:
        """One receipt per entry named, each as if sent alone (same status, checkpoint)."""
        first = replace(self, also=())
        return [first, *(replace(first, of_index=i, of_hash=h) for i, h in self.also)]


@dataclass(frozen=True)
class OverdueNotice:
    """An escalation step, recorded in the log by the station that saw it."""

    side: Side
    of_index: int
    party: str
    level: int
    due_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "notice",
            "notice": "overdue",
            "side": str(self.side),
            "of_index": self.of_index,
            "party": self.party,
            "level": self.level,
            "due_ms": self.due_ms,
        }


@dataclass(frozen=True)
class LinkNotice:
    """A party's link went from one state to another (as seen by the author)."""

    party: str
    before: str
    after: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "notice",
            "notice": "link",
            "party": self.party,
            "from": self.before,
            "to": self.after,
        }


@dataclass(frozen=True)
class LinkTestRecord:
    """The hourly link test written into the log as a record of the line's upkeep."""

    sent_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"type": "link-test", "sent_ms": self.sent_ms}


Body = Text | Form | Receipt | OverdueNotice | LinkNotice | LinkTestRecord


def encode(body: Body) -> bytes:
    """The exact bytes that are encrypted: compact JSON with sorted keys."""
    return json.dumps(
        body.to_dict(), ensure_ascii=False, separators=(",", ":"), sort_keys=True
    ).encode()


def parse_body(data: bytes) -> Body:
    """Bytes from inside an envelope (or the store) to one typed body, or Malformed."""
    if len(data) > MAX_BODY:
        raise Malformed(f"body is {len(data)} bytes; the limit is {MAX_BODY}", field="body")
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError as exc:
        raise Malformed("body nests too deeply", field="body") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise Malformed("body is not UTF-8 JSON", field="body") from exc
    return body_from_dict(value)


def body_from_dict(value: Any) -> Body:
    """A decoded JSON value (e.g. from the local API) to one typed body, or Malformed."""
    if not isinstance(value, dict):
        raise Malformed("body must be a JSON object", field="body")
    _check_depth(value, 0)
    kind = value.get("type")
    operator = _opt_str(value, "operator") or None
    if kind == "text":
        return replace(text(_str(value, "text"), _str(value, "lang")), operator=operator)
    if kind == "form":
        fields = value.get("fields")
        if not isinstance(fields, dict):
            raise Malformed("form fields must be an object", field="fields")
        return Form(_str(value, "form"), _int(value, "version"), fields, operator)
    if kind == "receipt":
        return _receipt(value)
    if kind == "notice":
        notice = value.get("notice")
        if notice == "overdue":
            side = value.get("side")
            if side not in tuple(Side):
                raise Malformed(f"unknown notice side {side!r}", field="side")
            return OverdueNotice(
                Side(side),
                _int(value, "of_index"),
                _str(value, "party"),
                _int(value, "level"),
                _int(value, "due_ms"),
            )
        if notice == "link":
            return LinkNotice(_str(value, "party"), _str(value, "from"), _str(value, "to"))
        raise Malformed(f"unknown notice {str(notice)[:40]!r}", field="notice")
    if kind == "link-test":
        return LinkTestRecord(_int(value, "sent_ms"))
    raise Malformed(f"unknown body type {str(kind)[:40]!r}", field="type")


def form_of(value: dict[str, Any]) -> Form:
    """A form body built by forms.form_body (or sent by a client) as a typed value."""
    form = body_from_dict(value)
    if not isinstance(form, Form):
        raise Malformed("not a form body", field="type")
    return form


def text(message: str, lang: str) -> Text:
    if not message.strip():
        raise Malformed("the message is empty", field="text")
    try:
        size = len(message.encode())
    except UnicodeEncodeError as exc:  # JSON can carry lone surrogates
        raise Malformed("the message is not valid Unicode", field="text") from exc
    if size > MAX_TEXT:
        raise Malformed(f"the message is over {MAX_TEXT} bytes", field="text")
    if lang not in LANGUAGES:
        raise Malformed(f"unknown language {lang!r}", field="lang")
    return Text(lang, message)


def receipt(
    status: ReceiptStatus,
    of_index: int,
    of_hash: bytes,
    checkpoint: bytes,
    operator: str | None = None,
    reply: str | None = None,
) -> Receipt:
    return Receipt(status, of_index, of_hash, checkpoint, operator or None, reply or None)


def delivered(refs: list[tuple[int, bytes]], checkpoint: bytes) -> Receipt:
    """One delivered receipt for the entries ``refs`` ((index, hash), indexes rising; 1
    to MAX_RECEIPT_REFS of them), with the checkpoint note its sender verified."""
    if not 1 <= len(refs) <= MAX_RECEIPT_REFS:
        raise Malformed(
            f"a receipt names 1 to {MAX_RECEIPT_REFS} entries, not {len(refs)}", field="also"
        )
    (of_index, of_hash), *also = refs
    made = Receipt(ReceiptStatus.DELIVERED, of_index, of_hash, checkpoint, also=tuple(also))
    _check_refs(made)
    return made


def summary(body: Body) -> str:
    """One line for lists (never used on the relay: bodies never reach it in clear)."""
    match body:
        case Text():
            return body.text[:200]
        case Form():
            return f"[{body.form}]"
        case Receipt():
            more = f" +{len(body.also)}" if body.also else ""
            return f"[{body.status} #{body.of_index}{more}]"
        case OverdueNotice() | LinkNotice():
            return "[notice]"
        case LinkTestRecord():
            return "[link-test]"


def _receipt(value: dict[str, Any]) -> Receipt:
    status = value.get("status")
    if status not in tuple(ReceiptStatus):
        raise Malformed(f"unknown receipt status {str(status)[:40]!r}", field="status")
    made = Receipt(
        ReceiptStatus(status),
        _int(value, "of_index"),
        _hash(value, "of_hash"),
        (_opt_str(value, "checkpoint") or "").encode(),
        _opt_str(value, "operator") or None,
        _opt_str(value, "reply") or None,
        _also(value),
    )
    _check_refs(made)
    return made


def _hash(value: dict[str, Any], key: str) -> bytes:
    try:
        digest = bytes.fromhex(_str(value, key))
    except ValueError as exc:
        raise Malformed(f"receipt {key} is not hex", field=key) from exc
    if len(digest) != 32:
        raise Malformed(f"receipt {key} is not a SHA-256 hash", field=key)
    return digest


def _also(value: dict[str, Any]) -> tuple[tuple[int, bytes], ...]:
    """A receipt's ``also``: absent, or a list of 1 to MAX_RECEIPT_REFS - 1 references."""
    if "also" not in value:
        return ()
    got = value["also"]
    if not isinstance(got, list) or not 1 <= len(got) < MAX_RECEIPT_REFS:
        raise Malformed(f"receipt also must list 1 to {MAX_RECEIPT_REFS - 1} entries", field="also")
    refs = []
    for item in got:
        if not isinstance(item, dict) or set(item) != {"of_index", "of_hash"}:
            raise Malformed("each of receipt also is {of_index, of_hash}", field="also")
        refs.append((_int(item, "of_index"), _hash(item, "of_hash")))
    return tuple(refs)


def _check_refs(receipt: Receipt) -> None:
    """Only a delivered receipt names a run; its indexes rise (each entry once)."""
    if not receipt.also:
        return
    if receipt.status != ReceiptStatus.DELIVERED:
        raise Malformed("only a delivered receipt names several entries", field="also")
    indexes = [receipt.of_index, *(i for i, _ in receipt.also)]
    if any(b <= a for a, b in itertools.pairwise(indexes)):
        raise Malformed("a receipt's entries are named once each, indexes rising", field="also")
    # One envelope is one entry of a log: a run naming it twice names a log no relay may
    # keep (else a station would take one message as delivered twice by one receipt).
    if len({receipt.of_hash, *(h for _, h in receipt.also)}) != len(indexes):
        raise Malformed("a receipt names each envelope once", field="also")


def _signed_by(out: dict[str, Any], operator: str | None) -> dict[str, Any]:
    if operator:
        out["operator"] = operator
    return out


def _str(value: dict[str, Any], key: str) -> str:
    got = value.get(key)
    if not isinstance(got, str):
        raise Malformed(f"body field {key} must be a string", field=key)
    return got


def _opt_str(value: dict[str, Any], key: str) -> str | None:
    got = value.get(key)
    if got is None:
        return None
    if not isinstance(got, str):
        raise Malformed(f"body field {key} must be a string", field=key)
    return got


def _int(value: dict[str, Any], key: str) -> int:
    got = value.get(key)
    if not isinstance(got, int) or isinstance(got, bool) or not 0 <= got <= MAX_U63:
        raise Malformed(f"body field {key} must be an integer from 0 to 2^63-1", field=key)
    return got


def _check_depth(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Malformed(f"body nests deeper than {MAX_DEPTH} levels", field="body")
    if isinstance(value, dict):
        for item in value.values():
            _check_depth(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_depth(item, depth + 1)
