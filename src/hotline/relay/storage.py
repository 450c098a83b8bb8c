"""The relay's storage interface. SQLite (sqlite.py) is the embedded default."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from ..leaf import LeafKind
from ..merkle import NodeStore

KEY_EVENT_SENDER = ""
"""A key event's sender column: no station's ident is empty (the stores keep their
schema; a key event has no sender and no sequence, its hash is SHA-256 of its bytes)."""


@dataclass(frozen=True)
class StoredEntry:
    channel: str
    index: int
    envelope: bytes  # an envelope, or a key event's statement
    hash: bytes
    sender: str
    seq: int
    relay_ms: int

    @property
    def kind(self) -> LeafKind:
        return LeafKind.KEY_EVENT if self.sender == KEY_EVENT_SENDER else LeafKind.ENVELOPE


class RelayStore(Protocol):
    """Everything the relay keeps. Writes happen inside ``transaction()``;
    leaving it normally makes them durable (committed and synced), an
    exception rolls all of them back."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def nodes(self, channel: str) -> NodeStore: ...

    def hold(self, channels: list[str]) -> dict[str, int]:
        """Inside a transaction: lock the channels' appends until it ends (other relay
        processes on the same database wait) and return their stored sizes."""
        ...

    def sender_state(self, channel: str, sender: str) -> tuple[int, bytes]: ...

    def sender_states(
        self, pairs: list[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bytes]]: ...

    def find_hash(self, channel: str, digest: bytes) -> StoredEntry | None: ...

    def add_entry(self, entry: StoredEntry) -> None: ...

    def entries(self, channel: str, start: int, stop: int) -> list[StoredEntry]: ...

    def add_checkpoint(self, channel: str, size: int, note: bytes) -> None: ...

    def checkpoint(self, channel: str, size: int | None = None) -> bytes | None: ...

    def put_statement(self, kind: str, key: bytes, data: bytes) -> None: ...

    def statements(self, kind: str) -> Iterator[bytes]: ...

    def statement(self, kind: str, key: bytes) -> bytes | None: ...

    def close(self) -> None: ...
