"""PostgreSQL storage for the relay: the same interface as sqlite.py, for scale.

Commits are durable with PostgreSQL's default ``synchronous_commit=on``. One relay
process per database for now: its in-memory tree edges and sender states assume it is
the only writer (several stateless relays in front of one database is future work).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg

from .storage import StoredEntry

SCHEMA = """
CREATE TABLE IF NOT EXISTS channel (name TEXT PRIMARY KEY, size BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS node (
  channel TEXT NOT NULL, level SMALLINT NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL,
  PRIMARY KEY (channel, level, idx));
CREATE TABLE IF NOT EXISTS entry (
  channel TEXT NOT NULL, idx BIGINT NOT NULL, envelope BYTEA NOT NULL, hash BYTEA NOT NULL,
  sender TEXT NOT NULL, seq BIGINT NOT NULL, relay_ms BIGINT NOT NULL,
  PRIMARY KEY (channel, idx));
CREATE UNIQUE INDEX IF NOT EXISTS entry_hash ON entry (channel, hash);
CREATE TABLE IF NOT EXISTS sender (
  channel TEXT NOT NULL, sender TEXT NOT NULL, seq BIGINT NOT NULL, hash BYTEA NOT NULL,
  PRIMARY KEY (channel, sender));
CREATE TABLE IF NOT EXISTS checkpoint (
  channel TEXT NOT NULL, size BIGINT NOT NULL, note BYTEA NOT NULL,
  PRIMARY KEY (channel, size));
CREATE TABLE IF NOT EXISTS statement (
  kind TEXT NOT NULL, key BYTEA NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (kind, key));
"""


class PostgresNodes:
    """A channel's Merkle nodes in PostgreSQL (a merkle.NodeStore), reads cached."""

    CACHE_LIMIT = 200_000

    def __init__(self, conn: psycopg.Connection[Any], channel: str) -> None:
        self.conn = conn
        self.channel = channel
        self._size: int | None = None
        self._cache: dict[tuple[int, int], bytes] = {}

    def size(self) -> int:
        if self._size is None:
            row = self.conn.execute(
                "SELECT size FROM channel WHERE name=%s", (self.channel,)
            ).fetchone()
            self._size = int(row[0]) if row else 0
        return self._size

    def get(self, level: int, index: int) -> bytes:
        digest = self._cache.get((level, index))
        if digest is not None:
            return digest
        row = self.conn.execute(
            "SELECT hash FROM node WHERE channel=%s AND level=%s AND idx=%s",
            (self.channel, level, index),
        ).fetchone()
        if row is None:
            raise KeyError(f"node ({level}, {index}) of {self.channel} is missing")
        digest = bytes(row[0])
        if len(self._cache) >= self.CACHE_LIMIT:
            self._cache.clear()
        self._cache[(level, index)] = digest
        return digest

    def extend(self, new_size: int, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO node (channel, level, idx, hash) VALUES (%s, %s, %s, %s)",
                [(self.channel, lvl, idx, h) for lvl, idx, h in nodes],
            )
            cur.execute(
                "INSERT INTO channel (name, size) VALUES (%s, %s) ON CONFLICT (name) "
                "DO UPDATE SET size=excluded.size",
                (self.channel, new_size),
            )
        for lvl, idx, h in nodes:
            if lvl > 0:
                self._cache[(lvl, idx)] = h
        self._size = new_size


def _entry(channel: str, row: Any) -> StoredEntry:
    idx, env, digest, sender, seq, relay_ms = row
    return StoredEntry(
        channel, int(idx), bytes(env), bytes(digest), sender, int(seq), int(relay_ms)
    )


class PostgresRelayStore:
    def __init__(self, dsn: str) -> None:
        self.conn: psycopg.Connection[Any] = psycopg.connect(dsn, autocommit=True)
        with self.conn.transaction():
            self.conn.execute(SCHEMA)

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # Pipeline mode: a batch's inserts go out without waiting for each reply.
        with self.conn.pipeline(), self.conn.transaction():
            yield

    def nodes(self, channel: str) -> PostgresNodes:
        return PostgresNodes(self.conn, channel)

    def sender_state(self, channel: str, sender: str) -> tuple[int, bytes]:
        row = self.conn.execute(
            "SELECT seq, hash FROM sender WHERE channel=%s AND sender=%s", (channel, sender)
        ).fetchone()
        return (int(row[0]), bytes(row[1])) if row else (0, bytes(32))

    def find_hash(self, channel: str, digest: bytes) -> StoredEntry | None:
        row = self.conn.execute(
            "SELECT idx, envelope, hash, sender, seq, relay_ms FROM entry WHERE channel=%s "
            "AND hash=%s",
            (channel, digest),
        ).fetchone()
        return _entry(channel, row) if row else None

    def add_entry(self, e: StoredEntry) -> None:
        self.conn.execute(
            "INSERT INTO entry (channel, idx, envelope, hash, sender, seq, relay_ms) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (e.channel, e.index, e.envelope, e.hash, e.sender, e.seq, e.relay_ms),
        )
        self.conn.execute(
            "INSERT INTO sender (channel, sender, seq, hash) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (channel, sender) DO UPDATE SET seq=excluded.seq, hash=excluded.hash",
            (e.channel, e.sender, e.seq, e.hash),
        )

    def entries(self, channel: str, start: int, stop: int) -> list[StoredEntry]:
        rows = self.conn.execute(
            "SELECT idx, envelope, hash, sender, seq, relay_ms FROM entry WHERE channel=%s "
            "AND idx>=%s AND idx<%s ORDER BY idx",
            (channel, start, stop),
        ).fetchall()
        return [_entry(channel, r) for r in rows]

    def add_checkpoint(self, channel: str, size: int, note: bytes) -> None:
        self.conn.execute(
            "INSERT INTO checkpoint (channel, size, note) VALUES (%s, %s, %s) "
            "ON CONFLICT (channel, size) DO UPDATE SET note=excluded.note",
            (channel, size, note),
        )

    def checkpoint(self, channel: str, size: int | None = None) -> bytes | None:
        if size is None:
            row = self.conn.execute(
                "SELECT note FROM checkpoint WHERE channel=%s ORDER BY size DESC LIMIT 1",
                (channel,),
            ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT note FROM checkpoint WHERE channel=%s AND size=%s", (channel, size)
            ).fetchone()
        return bytes(row[0]) if row else None

    def put_statement(self, kind: str, key: bytes, data: bytes) -> None:
        self.conn.execute(
            "INSERT INTO statement (kind, key, data) VALUES (%s, %s, %s) "
            "ON CONFLICT (kind, key) DO NOTHING",
            (kind, key, data),
        )

    def statements(self, kind: str) -> Iterator[bytes]:
        for (data,) in self.conn.execute(
            "SELECT data FROM statement WHERE kind=%s", (kind,)
        ).fetchall():
            yield bytes(data)

    def close(self) -> None:
        self.conn.close()
