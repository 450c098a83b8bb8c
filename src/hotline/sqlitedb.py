"""SQLite pieces shared by relay and station: durable connections and Merkle nodes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

NODE_SCHEMA = """
CREATE TABLE IF NOT EXISTS channel (name TEXT PRIMARY KEY, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS node (
  channel TEXT NOT NULL, level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
  PRIMARY KEY (channel, level, idx)) WITHOUT ROWID;
"""


def connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: committed (durably) on exit, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


Execute = Callable[[str, Sequence[Any]], Any]


class SqlNodes:
    """A channel's Merkle nodes in an SQL table (a merkle.NodeStore).

    Works over any DB-API ``execute``/``executemany`` taking ``?`` placeholders.
    Nodes never change once written, so reads are cached; the size is cached
    too. An instance belongs to one writer: whoever rolls back a transaction
    that extended it must drop it (the cores rebuild their trees then).
    """

    CACHE_LIMIT = 200_000

    def __init__(self, execute: Execute, executemany: Execute, channel: str) -> None:
        self._execute = execute
        self._executemany = executemany
        self.channel = channel
        self._size: int | None = None
        self._cache: dict[tuple[int, int], bytes] = {}

    def size(self) -> int:
        if self._size is None:
            row = self._execute("SELECT size FROM channel WHERE name=?", (self.channel,)).fetchone()
            self._size = int(row[0]) if row else 0
        return self._size

    def get(self, level: int, index: int) -> bytes:
        digest = self._cache.get((level, index))
        if digest is not None:
            return digest
        row = self._execute(
            "SELECT hash FROM node WHERE channel=? AND level=? AND idx=?",
            (self.channel, level, index),
        ).fetchone()
        if row is None:
            raise KeyError(f"node ({level}, {index}) of {self.channel} is missing")
        digest = bytes(row[0])
        self._remember(level, index, digest)
        return digest

    def _remember(self, level: int, index: int, digest: bytes) -> None:
        if len(self._cache) >= self.CACHE_LIMIT:
            self._cache.clear()
        self._cache[(level, index)] = digest

    def extend(self, new_size: int, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        self._executemany(
            "INSERT INTO node (channel, level, idx, hash) VALUES (?, ?, ?, ?)",
            [(self.channel, lvl, idx, h) for lvl, idx, h in nodes],
        )
        self._execute(
            "INSERT INTO channel (name, size) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET size=excluded.size",
            (self.channel, new_size),
        )
        for lvl, idx, h in nodes:
            if lvl > 0:
                self._remember(lvl, idx, h)
        self._size = new_size
