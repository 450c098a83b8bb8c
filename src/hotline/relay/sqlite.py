"""SQLite storage for the relay: WAL, synchronous=FULL, one writer connection."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ..sqlitedb import NODE_SCHEMA, connect, transaction
from .sql import SqlRelayStore

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


class SqliteRelayStore(SqlRelayStore):
    def __init__(self, path: Path | str) -> None:
        self.conn = connect(path)
        self.conn.executescript(SCHEMA)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Any]) -> Any:
        return self.conn.executemany(sql, rows)

    def transaction(self) -> AbstractContextManager[None]:
        return transaction(self.conn)

    def close(self) -> None:
        self.conn.close()
