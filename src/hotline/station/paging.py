"""Pages of the local API's lists: a limit, an opaque cursor, and whether more remain.

Every list (inbox, sent, alarms) answers ``{"items": [...], "next": CURSOR | null}``.
``next`` is null on the last page; otherwise pass it back as ``after`` for the next
page. A cursor is the sort key of the page's last item (base64url of a JSON array),
so a page never repeats or skips an item that was there when paging began.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import Malformed
from ..wire import MAX_U63

T = TypeVar("T")

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
Key = tuple[int | str, ...]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next: str | None


def limit_of(text: str | None) -> int:
    """The page size asked for: 1 or more (above ``MAX_LIMIT``, ``MAX_LIMIT``)."""
    if text is None:
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if limit < 1:
        raise Malformed("limit is a whole number, 1 or more", field="limit")
    return min(limit, MAX_LIMIT)


def encode(key: Key) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode(text: str | None, kinds: Sequence[type], field: str = "after") -> Key | None:
    """The key in a cursor this API gave, shaped as ``kinds`` (None: the first page);
    ``field``: the parameter it came in, named in the error."""
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise Malformed(f"{field} is not a cursor this API gave", field=field) from exc
    if (
        not isinstance(value, list)
        or len(value) != len(kinds)
        or not all(type(v) is k for v, k in zip(value, kinds, strict=True))
        or any(type(v) is int and not 0 <= v <= MAX_U63 for v in value)
    ):
        raise Malformed(f"{field} is not a cursor this API gave", field=field)
    return tuple(value)


def page(rows: list[T], limit: int, key: Callable[[T], Key]) -> Page[T]:
    """A page from up to ``limit + 1`` rows: the extra one only says that more remain."""
    if len(rows) <= limit:
        return Page(rows, None)
    rows = rows[:limit]
    return Page(rows, encode(key(rows[-1])))
