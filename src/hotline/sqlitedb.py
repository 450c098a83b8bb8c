"""SQLite pieces shared by relay and station: durable connections and Merkle nodes."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

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


class SqliteNodes:
    """A channel's Merkle nodes in the relay database (a merkle.NodeStore)."""

    def __init__(self, conn: sqlite3.Connection, channel: str) -> None:
        self.conn = conn
        self.channel = channel

    def size(self) -> int:
        row = self.conn.execute("SELECT size FROM channel WHERE name=?", (self.channel,)).fetchone()
        return int(row[0]) if row else 0

    def get(self, level: int, index: int) -> bytes:
        row = self.conn.execute(
            "SELECT hash FROM node WHERE channel=? AND level=? AND idx=?",
            (self.channel, level, index),
        ).fetchone()
        if row is None:
            raise KeyError(f"node ({level}, {index}) of {self.channel} is missing")
        return bytes(row[0])

    def extend(self, new_size: int, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        self.conn.executemany(
            "INSERT INTO node (channel, level, idx, hash) VALUES (?, ?, ?, ?)",
            [(self.channel, lvl, idx, h) for lvl, idx, h in nodes],
        )
        self.conn.execute(
            "INSERT INTO channel (name, size) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET size=excluded.size",
            (self.channel, new_size),
        )
