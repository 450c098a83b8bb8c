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

from .sql import SqlRelayStore

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


class PostgresRelayStore(SqlRelayStore):
    def __init__(self, dsn: str) -> None:
        self.conn: psycopg.Connection[Any] = psycopg.connect(dsn, autocommit=True)
        with self.conn.transaction():
            self.conn.execute(SCHEMA)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s"), args)

    def executemany(self, sql: str, rows: Sequence[Any]) -> Any:
        with self.conn.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), rows)

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # Pipeline mode: a batch's inserts go out without waiting for each reply.
        with self.conn.pipeline(), self.conn.transaction():
            yield

    def close(self) -> None:
        self.conn.close()
