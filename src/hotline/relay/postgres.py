"""PostgreSQL storage for the relay: the same interface as sqlite.py, for scale.

Commits are durable with PostgreSQL's default ``synchronous_commit=on``. Any number of
relay processes may share one database (active-active): a transaction that appends to
a channel first takes the channel's advisory lock (``hold``), so the database, never a
process's memory, orders each log; and it ends with a ``NOTIFY`` (delivered on commit)
that tells the other processes the channel's new size or a new statement, which
fanout.py turns into pushes to their own stations.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg

from ..sqlitedb import SqlNodes
from .fanout import Event, Grown, Stated, notify_channel
from .sql import SqlRelayStore

LOCK_CLASS = 0x686F746C  # "hotl": the first key of hotline's advisory locks

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
    def __init__(self, dsn: str, origin: str = "") -> None:
        self.dsn = dsn
        self.origin = origin  # names this process in its notifications
        self.conn: psycopg.Connection[Any] = psycopg.connect(dsn, autocommit=True)
        self._events: dict[tuple[str, str], Event] = {}
        with self.conn.transaction():
            # Processes starting together must not race to create the same tables.
            self.conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))
            self.conn.execute(SCHEMA)
        row = self.conn.execute("SELECT current_schema()").fetchone()
        self.notify_channel = notify_channel(str(row[0]) if row else "")

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
        self._events.clear()
        with self.conn.pipeline(), self.conn.transaction():
            yield
            for event in self._events.values():
                payload = event.encode(self.origin)
                self.execute("SELECT pg_notify(?, ?)", (self.notify_channel, payload))
        self._events.clear()

    def hold(self, channel: str) -> int:
        # hashtext may collide: two channels then share a lock, which costs only waiting.
        self.execute("SELECT pg_advisory_xact_lock(?, hashtext(?))", (LOCK_CLASS, channel))
        return super().hold(channel)  # a statement after the lock: it sees every commit

    def nodes(self, channel: str) -> SqlNodes:
        return _Nodes(self, channel)

    def put_statement(self, kind: str, key: bytes, data: bytes) -> None:
        super().put_statement(kind, key, data)
        self._events[(kind, key.hex())] = Stated(kind, key)

    def grown(self, channel: str, size: int) -> None:
        self._events[("log", channel)] = Grown(channel, size)

    def close(self) -> None:
        self.conn.close()


class _Nodes(SqlNodes):
    """A channel's nodes that tell the store its new size (announced at commit)."""

    def __init__(self, store: PostgresRelayStore, channel: str) -> None:
        super().__init__(store.execute, store.executemany, channel)
        self._store = store

    def extend(self, new_size: int, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        super().extend(new_size, nodes)
        self._store.grown(self.channel, new_size)
