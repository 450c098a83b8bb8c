"""SQLite storage for the relay: WAL, synchronous=FULL, one writer connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ..sqlitedb import NODE_SCHEMA, SqliteNodes, connect, transaction
from .storage import StoredEntry

SCHEMA = (
    NODE_SCHEMA
    + """
CREATE TABLE IF NOT EXISTS entry (
  channel TEXT NOT NULL, idx INTEGER NOT NULL, envelope BLOB NOT NULL, hash BLOB NOT NULL,
  sender TEXT NOT NULL, seq INTEGER NOT NULL, relay_ms INTEGER NOT NULL,
  PRIMARY KEY (channel, idx));
CREATE UNIQUE INDEX IF NOT EXISTS entry_hash ON entry (channel, hash);
CREATE TABLE IF NOT EXISTS sender (
  channel TEXT NOT NULL, sender TEXT NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL,
  PRIMARY KEY (channel, sender)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoint (
  channel TEXT NOT NULL, size INTEGER NOT NULL, note BLOB NOT NULL,
  PRIMARY KEY (channel, size)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS statement (
  kind TEXT NOT NULL, key BLOB NOT NULL, data BLOB NOT NULL, PRIMARY KEY (kind, key));
"""
)


def _entry(channel: str, row: tuple[Any, ...]) -> StoredEntry:
    idx, env, digest, sender, seq, relay_ms = row
    return StoredEntry(channel, idx, bytes(env), bytes(digest), sender, seq, relay_ms)


class SqliteRelayStore:
    def __init__(self, path: Path | str) -> None:
        self.conn = connect(path)
        self.conn.executescript(SCHEMA)

    def transaction(self) -> AbstractContextManager[None]:
        return transaction(self.conn)

    def nodes(self, channel: str) -> SqliteNodes:
        return SqliteNodes(self.conn, channel)

    def sender_state(self, channel: str, sender: str) -> tuple[int, bytes]:
        row = self.conn.execute(
            "SELECT seq, hash FROM sender WHERE channel=? AND sender=?", (channel, sender)
        ).fetchone()
        return (int(row[0]), bytes(row[1])) if row else (0, bytes(32))

    def find_hash(self, channel: str, digest: bytes) -> StoredEntry | None:
        row = self.conn.execute(
            "SELECT idx, envelope, hash, sender, seq, relay_ms FROM entry "
            "WHERE channel=? AND hash=?",
            (channel, digest),
        ).fetchone()
        return _entry(channel, row) if row else None

    def add_entry(self, e: StoredEntry) -> None:
        self.conn.execute(
            "INSERT INTO entry (channel, idx, envelope, hash, sender, seq, relay_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (e.channel, e.index, e.envelope, e.hash, e.sender, e.seq, e.relay_ms),
        )
        self.conn.execute(
            "INSERT INTO sender (channel, sender, seq, hash) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (channel, sender) DO UPDATE SET seq=excluded.seq, hash=excluded.hash",
            (e.channel, e.sender, e.seq, e.hash),
        )

    def entries(self, channel: str, start: int, stop: int) -> list[StoredEntry]:
        rows = self.conn.execute(
            "SELECT idx, envelope, hash, sender, seq, relay_ms FROM entry "
            "WHERE channel=? AND idx>=? AND idx<? ORDER BY idx",
            (channel, start, stop),
        ).fetchall()
        return [_entry(channel, r) for r in rows]

    def add_checkpoint(self, channel: str, size: int, note: bytes) -> None:
        self.conn.execute(
            "INSERT INTO checkpoint (channel, size, note) VALUES (?, ?, ?) "
            "ON CONFLICT (channel, size) DO UPDATE SET note=excluded.note",
            (channel, size, note),
        )

    def checkpoint(self, channel: str, size: int | None = None) -> bytes | None:
        if size is None:
            row = self.conn.execute(
                "SELECT note FROM checkpoint WHERE channel=? ORDER BY size DESC LIMIT 1", (channel,)
            ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT note FROM checkpoint WHERE channel=? AND size=?", (channel, size)
            ).fetchone()
        return bytes(row[0]) if row else None

    def put_statement(self, kind: str, key: bytes, data: bytes) -> None:
        self.conn.execute(
            "INSERT INTO statement (kind, key, data) VALUES (?, ?, ?) "
            "ON CONFLICT (kind, key) DO NOTHING",
            (kind, key, data),
        )

    def statements(self, kind: str) -> Iterator[bytes]:
        for (data,) in self.conn.execute("SELECT data FROM statement WHERE kind=?", (kind,)):
            yield bytes(data)

    def close(self) -> None:
        self.conn.close()
