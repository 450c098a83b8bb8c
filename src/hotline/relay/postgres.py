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
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ..sqlitedb import SqlNodes
from .fanout import Event, Grown, Stated, notify_channel
from .sql import SqlRelayStore
from .storage import StoredEntry

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


# A batch's appends, one statement a table: each column is one array parameter, so
# the statement's text is the same for any number of rows (psycopg converts it once and
# PostgreSQL can keep it prepared), unlike a multi-row VALUES list.
_NODES = (
    "INSERT INTO node (channel, level, idx, hash) "
    "SELECT * FROM unnest(%b::text[], %b::smallint[], %b::bigint[], %b::bytea[])"
)
_ENTRIES = (
    "INSERT INTO entry (channel, idx, envelope, hash, sender, seq, relay_ms) "
    "SELECT * FROM unnest(%b::text[], %b::bigint[], %b::bytea[], %b::bytea[], %b::text[], "
    "%b::bigint[], %b::bigint[])"
)
_SIZES = (
    "INSERT INTO channel (name, size) SELECT * FROM unnest(%b::text[], %b::bigint[]) "
    "ON CONFLICT (name) DO UPDATE SET size=excluded.size"
)
_SENDERS = (
    "INSERT INTO sender (channel, sender, seq, hash) "
    "SELECT * FROM unnest(%b::text[], %b::text[], %b::bigint[], %b::bytea[]) "
    "ON CONFLICT (channel, sender) DO UPDATE SET seq=excluded.seq, hash=excluded.hash"
)


@dataclass
class _Pending:
    """A transaction's appends, written in one statement a table (before any read, and
    at commit) instead of four statements per envelope."""

    nodes: list[tuple[str, int, int, bytes]] = field(default_factory=list)
    entries: list[tuple[str, int, bytes, bytes, str, int, int]] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    senders: dict[tuple[str, str], tuple[int, bytes]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.nodes or self.entries or self.sizes or self.senders)


class PostgresRelayStore(SqlRelayStore):
    def __init__(self, dsn: str, origin: str = "") -> None:
        self.dsn = dsn
        self.origin = origin  # names this process in its notifications
        self.conn: psycopg.Connection[Any] = psycopg.connect(dsn, autocommit=True)
        self._events: dict[tuple[str, str], Event] = {}
        self._pending = _Pending()
        with self.conn.transaction():
            # Processes starting together must not race to create the same tables.
            self.conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))
            self.conn.execute(SCHEMA)
        row = self.conn.execute("SELECT current_schema()").fetchone()
        self.notify_channel = notify_channel(str(row[0]) if row else "")

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        if self._pending:
            self._flush()  # every statement sees the appends before it
        return self.conn.execute(sql.replace("?", "%s"), args)

    def executemany(self, sql: str, rows: Sequence[Any]) -> Any:
        if self._pending:
            self._flush()
        with self.conn.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), rows)

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # Pipeline mode: a batch's statements go out without waiting for each reply.
        self._events.clear()
        self._pending = _Pending()
        try:
            with self.conn.pipeline(), self.conn.transaction():
                yield
                self._flush()
                for event in self._events.values():
                    payload = event.encode(self.origin)
                    self.execute("SELECT pg_notify(?, ?)", (self.notify_channel, payload))
        finally:
            self._pending = _Pending()
            self._events.clear()

    def _flush(self) -> None:
        p, self._pending = self._pending, _Pending()
        _insert(self.conn, _NODES, p.nodes)
        _insert(self.conn, _ENTRIES, p.entries)
        _insert(self.conn, _SIZES, list(p.sizes.items()))
        _insert(self.conn, _SENDERS, [(c, s, seq, h) for (c, s), (seq, h) in p.senders.items()])

    def add_entry(self, e: StoredEntry) -> None:
        p = self._pending
        p.entries.append((e.channel, e.index, e.envelope, e.hash, e.sender, e.seq, e.relay_ms))
        p.senders[(e.channel, e.sender)] = (e.seq, e.hash)

    def appended(self, channel: str, size: int, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        self._pending.nodes.extend((channel, lvl, idx, h) for lvl, idx, h in nodes)
        self._pending.sizes[channel] = size
        self._events[("log", channel)] = Grown(channel, size)

    def hold(self, channels: list[str]) -> dict[str, int]:
        if not channels:
            return {}
        # One statement takes every lock, in one order (of the keys) in every process, so
        # two batches never wait for each other crosswise. hashtext may collide: two
        # channels then share a lock, which costs only waiting.
        self.execute(
            "SELECT pg_advisory_xact_lock(?, h) FROM "
            "(SELECT DISTINCT hashtext(c) AS h FROM unnest(?::text[]) AS c ORDER BY h) AS k",
            (LOCK_CLASS, channels),
        )
        # A statement after the locks: it sees every commit before them.
        rows = self.execute(
            "SELECT name, size FROM channel WHERE name = ANY(?::text[])", (channels,)
        ).fetchall()
        sizes = dict.fromkeys(channels, 0)
        sizes.update((str(name), int(size)) for name, size in rows)
        return sizes

    def nodes(self, channel: str) -> SqlNodes:
        return _Nodes(self, channel)

    def sender_states(
        self, pairs: list[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bytes]]:
        """In one round trip (a process re-reads them each time another appended)."""
        states = dict.fromkeys(pairs, (0, bytes(32)))
        if pairs:
            rows = self.execute(
                "SELECT s.channel, s.sender, s.seq, s.hash FROM sender s JOIN "
                "unnest(?::text[], ?::text[]) AS k(channel, sender) "
                "ON s.channel = k.channel AND s.sender = k.sender",
                ([c for c, _ in pairs], [s for _, s in pairs]),
            ).fetchall()
            states.update(((str(c), str(s)), (int(q), bytes(h))) for c, s, q, h in rows)
        return states

    def put_statement(self, kind: str, key: bytes, data: bytes) -> None:
        super().put_statement(kind, key, data)
        self._events[(kind, key.hex())] = Stated(kind, key)

    def close(self) -> None:
        self.conn.close()


def _insert(conn: psycopg.Connection[Any], sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """One of the statements above, with ``rows`` given column by column."""
    if rows:
        conn.execute(sql, [list(column) for column in zip(*rows, strict=True)])


class _Nodes(SqlNodes):
    """A channel's nodes whose appends the store writes in bulk (and announces at commit).
    Its new nodes, leaves too, stay cached: the answers' proofs read them."""

    def __init__(self, store: PostgresRelayStore, channel: str) -> None:
        super().__init__(store.execute, store.executemany, channel)
        self._store = store
        self._edge_read = False

    def get(self, level: int, index: int) -> bytes:
        if not self._edge_read:
            self._edge_read = True
            self._read_edge(self.size())
        return super().get(level, index)

    def _read_edge(self, size: int) -> None:
        """The tree's right edge (one node per set bit of the size) in one round trip:
        a process rebuilds it each time another process appended to the channel."""
        levels, indexes, start = [], [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                levels.append(level)
                indexes.append(start >> level)
                start += 1 << level
        if not levels:
            return
        rows = self._store.execute(
            "SELECT level, idx, hash FROM node WHERE channel = ? AND (level, idx) IN "
            "(SELECT * FROM unnest(?::smallint[], ?::bigint[]))",
            (self.channel, levels, indexes),
        ).fetchall()
        for level, index, digest in rows:
            self._remember(int(level), int(index), bytes(digest))

    def extend(self, new_size: int, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        self._store.appended(self.channel, new_size, nodes)
        for level, index, digest in nodes:
            self._remember(level, index, digest)
        self._size = new_size
