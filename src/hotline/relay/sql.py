"""The relay's storage in SQL, shared by the SQLite and PostgreSQL stores.

Queries are written once with ``?`` placeholders; a store supplies ``execute`` and
``executemany`` (PostgreSQL's translate the placeholders) and its own transactions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from ..sqlitedb import SqlNodes
from .storage import StoredEntry

_ENTRY = "SELECT idx, envelope, hash, sender, seq, relay_ms FROM entry"


def _entry(channel: str, row: Sequence[Any]) -> StoredEntry:
    idx, env, digest, sender, seq, relay_ms = row
    return StoredEntry(
        channel, int(idx), bytes(env), bytes(digest), str(sender), int(seq), int(relay_ms)
    )


class SqlRelayStore:
    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Sequence[Any]) -> Any:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def nodes(self, channel: str) -> SqlNodes:
        return SqlNodes(self.execute, self.executemany, channel)

    def hold(self, channels: list[str]) -> dict[str, int]:
        # SQLite's write transaction already holds the whole database.
        sizes = {}
        for channel in channels:
            row = self.execute("SELECT size FROM channel WHERE name=?", (channel,)).fetchone()
            sizes[channel] = int(row[0]) if row else 0
        return sizes

    def sender_state(self, channel: str, sender: str) -> tuple[int, bytes]:
        row = self.execute(
            "SELECT seq, hash FROM sender WHERE channel=? AND sender=?", (channel, sender)
        ).fetchone()
        return (int(row[0]), bytes(row[1])) if row else (0, bytes(32))

    def sender_states(
        self, pairs: list[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bytes]]:
        """``sender_state`` of each (channel, sender)."""
        return {(c, s): self.sender_state(c, s) for c, s in pairs}

    def find_hash(self, channel: str, digest: bytes) -> StoredEntry | None:
        row = self.execute(f"{_ENTRY} WHERE channel=? AND hash=?", (channel, digest)).fetchone()
        return _entry(channel, row) if row else None

    def add_entry(self, e: StoredEntry) -> None:
        self.execute(
            "INSERT INTO entry (channel, idx, envelope, hash, sender, seq, relay_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (e.channel, e.index, e.envelope, e.hash, e.sender, e.seq, e.relay_ms),
        )
        self.execute(
            "INSERT INTO sender (channel, sender, seq, hash) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (channel, sender) DO UPDATE SET seq=excluded.seq, hash=excluded.hash",
            (e.channel, e.sender, e.seq, e.hash),
        )

    def entries(self, channel: str, start: int, stop: int) -> list[StoredEntry]:
        rows = self.execute(
            f"{_ENTRY} WHERE channel=? AND idx>=? AND idx<? ORDER BY idx", (channel, start, stop)
        ).fetchall()
        return [_entry(channel, r) for r in rows]

    def add_checkpoint(self, channel: str, size: int, note: bytes) -> None:
        self.execute(
            "INSERT INTO checkpoint (channel, size, note) VALUES (?, ?, ?) "
            "ON CONFLICT (channel, size) DO UPDATE SET note=excluded.note",
            (channel, size, note),
        )

    def checkpoint(self, channel: str, size: int | None = None) -> bytes | None:
        if size is None:
            row = self.execute(
                "SELECT note FROM checkpoint WHERE channel=? ORDER BY size DESC LIMIT 1", (channel,)
            ).fetchone()
        else:
            row = self.execute(
                "SELECT note FROM checkpoint WHERE channel=? AND size=?", (channel, size)
            ).fetchone()
        return bytes(row[0]) if row else None

    def put_statement(self, kind: str, key: bytes, data: bytes) -> None:
        self.execute(
            "INSERT INTO statement (kind, key, data) VALUES (?, ?, ?) "
            "ON CONFLICT (kind, key) DO NOTHING",
            (kind, key, data),
        )

    def statements(self, kind: str) -> Iterator[bytes]:
        for (data,) in self.execute("SELECT data FROM statement WHERE kind=?", (kind,)).fetchall():
            yield bytes(data)

    def statement(self, kind: str, key: bytes) -> bytes | None:
        row = self.execute(
            "SELECT data FROM statement WHERE kind=? AND key=?", (kind, key)
        ).fetchone()
        return bytes(row[0]) if row else None
