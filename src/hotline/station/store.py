"""The station's durable state in SQLite (WAL, synchronous=FULL).

A message is in ``outbox`` (sealed, with its sequence number) before anything is
sent; ``entry`` and ``node`` mirror each channel's log as verified; ``alarm``
keeps evidence of every verification failure.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..sqlitedb import NODE_SCHEMA, SqlNodes, connect, transaction

SCHEMA = (
    NODE_SCHEMA
    + """
CREATE TABLE IF NOT EXISTS entry (
  channel TEXT NOT NULL, idx INTEGER NOT NULL, envelope BLOB NOT NULL, hash BLOB NOT NULL,
  sender TEXT NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL, relay_ms INTEGER NOT NULL,
  valid INTEGER NOT NULL, PRIMARY KEY (channel, idx));
CREATE TABLE IF NOT EXISTS chain (
  channel TEXT NOT NULL, sender TEXT NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL,
  PRIMARY KEY (channel, sender)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoint (
  channel TEXT NOT NULL, size INTEGER NOT NULL, note BLOB NOT NULL, verified_ms INTEGER NOT NULL,
  PRIMARY KEY (channel, size)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
  channel TEXT NOT NULL, seq INTEGER NOT NULL, envelope BLOB NOT NULL, hash BLOB NOT NULL,
  kind INTEGER NOT NULL, precedence INTEGER NOT NULL, created_ms INTEGER NOT NULL,
  state TEXT NOT NULL, idx INTEGER, relay_ms INTEGER, error TEXT,
  PRIMARY KEY (channel, seq));
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state, channel, seq);
CREATE TABLE IF NOT EXISTS message (
  channel TEXT NOT NULL, idx INTEGER NOT NULL, sender TEXT NOT NULL, party TEXT NOT NULL,
  seq INTEGER NOT NULL, kind INTEGER NOT NULL, precedence INTEGER NOT NULL,
  created_ms INTEGER NOT NULL, relay_ms INTEGER NOT NULL, hash BLOB NOT NULL, body TEXT NOT NULL,
  received_ms INTEGER NOT NULL, read_ms INTEGER, PRIMARY KEY (channel, idx));
CREATE TABLE IF NOT EXISTS receipt (
  channel TEXT NOT NULL, idx INTEGER NOT NULL, of_index INTEGER NOT NULL, party TEXT NOT NULL,
  station TEXT NOT NULL, status TEXT NOT NULL, operator TEXT, reply TEXT,
  created_ms INTEGER NOT NULL, relay_ms INTEGER NOT NULL, PRIMARY KEY (channel, idx));
CREATE INDEX IF NOT EXISTS receipt_of ON receipt (channel, of_index);
CREATE TABLE IF NOT EXISTS alarm (
  id INTEGER PRIMARY KEY, created_ms INTEGER NOT NULL, kind TEXT NOT NULL, level INTEGER NOT NULL,
  channel TEXT, idx INTEGER, message TEXT NOT NULL, evidence BLOB, cleared_ms INTEGER,
  cleared_by TEXT);
CREATE TABLE IF NOT EXISTS statement (
  kind TEXT NOT NULL, key BLOB NOT NULL, data BLOB NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS escalation (
  channel TEXT NOT NULL, idx INTEGER NOT NULL, party TEXT NOT NULL, level INTEGER NOT NULL,
  at_ms INTEGER NOT NULL, PRIMARY KEY (channel, idx, party)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending_ack (
  channel TEXT NOT NULL, idx INTEGER NOT NULL, party TEXT NOT NULL, precedence INTEGER NOT NULL,
  logged_ms INTEGER NOT NULL, deadline_s INTEGER NOT NULL, level INTEGER NOT NULL,
  next_ms INTEGER NOT NULL, PRIMARY KEY (channel, idx, party)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pending_next ON pending_ack (next_ms);
CREATE TABLE IF NOT EXISTS operator (
  name TEXT PRIMARY KEY, password TEXT NOT NULL, language TEXT NOT NULL,
  created_ms INTEGER NOT NULL, disabled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS session (
  token_hash BLOB PRIMARY KEY, operator TEXT NOT NULL, csrf TEXT NOT NULL,
  created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
)


@dataclass(frozen=True)
class OutboxItem:
    channel: str
    seq: int
    envelope: bytes
    hash: bytes
    kind: int
    precedence: int
    created_ms: int
    state: str
    index: int | None
    relay_ms: int | None
    error: str | None


class StationStore:
    def __init__(self, path: Path | str) -> None:
        self.conn = connect(path)
        self.conn.executescript(SCHEMA)
        self.conn.row_factory = sqlite3.Row

    def transaction(self) -> AbstractContextManager[None]:
        return transaction(self.conn)

    def q(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return self.conn.execute(sql, args).fetchall()

    def one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(sql, args).fetchone()
        return row

    def x(self, sql: str, *args: Any) -> int:
        cur = self.conn.execute(sql, args)
        return cur.lastrowid or 0

    def nodes(self, channel: str) -> SqlNodes:
        return SqlNodes(self.conn.execute, self.conn.executemany, channel)

    # --- outbox ----------------------------------------------------------------

    def last_sent(self, channel: str) -> tuple[int, bytes]:
        row = self.one(
            "SELECT seq, hash FROM outbox WHERE channel=? ORDER BY seq DESC LIMIT 1", channel
        )
        return (row["seq"], bytes(row["hash"])) if row else (0, bytes(32))

    def add_outbox(self, item: OutboxItem) -> None:
        self.x(
            "INSERT INTO outbox (channel, seq, envelope, hash, kind, precedence, created_ms, state)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'queued')",
            item.channel,
            item.seq,
            item.envelope,
            item.hash,
            item.kind,
            item.precedence,
            item.created_ms,
        )

    def outbox(self, state: str | None = None, channel: str | None = None) -> list[OutboxItem]:
        sql, args = "SELECT * FROM outbox WHERE 1=1", []
        if state:
            sql += " AND state=?"
            args.append(state)
        if channel:
            sql += " AND channel=?"
            args.append(channel)
        rows = self.q(sql + " ORDER BY channel, seq", *args)
        return [_outbox(r) for r in rows]

    def outbox_item(self, channel: str, seq: int) -> OutboxItem | None:
        row = self.one("SELECT * FROM outbox WHERE channel=? AND seq=?", channel, seq)
        return _outbox(row) if row else None

    def mark_accepted(self, channel: str, seq: int, index: int, relay_ms: int) -> None:
        self.x(
            "UPDATE outbox SET state='accepted', idx=?, relay_ms=?, error=NULL "
            "WHERE channel=? AND seq=?",
            index,
            relay_ms,
            channel,
            seq,
        )

    def mark_refused(self, channel: str, seq: int, error: str) -> None:
        self.x(
            "UPDATE outbox SET state='refused', error=? WHERE channel=? AND seq=?",
            error,
            channel,
            seq,
        )

    # --- log mirror --------------------------------------------------------------

    def chain(self, channel: str, sender: str) -> tuple[int, bytes]:
        row = self.one("SELECT seq, hash FROM chain WHERE channel=? AND sender=?", channel, sender)
        return (row["seq"], bytes(row["hash"])) if row else (0, bytes(32))

    def set_chain(self, channel: str, sender: str, seq: int, digest: bytes) -> None:
        self.x(
            "INSERT INTO chain (channel, sender, seq, hash) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (channel, sender) DO UPDATE SET seq=excluded.seq, hash=excluded.hash",
            channel,
            sender,
            seq,
            digest,
        )

    def verified_checkpoint(self, channel: str) -> bytes | None:
        row = self.one(
            "SELECT note FROM checkpoint WHERE channel=? ORDER BY size DESC LIMIT 1", channel
        )
        return bytes(row["note"]) if row else None

    def add_checkpoint(self, channel: str, size: int, note: bytes, now_ms: int) -> None:
        self.x(
            "INSERT INTO checkpoint (channel, size, note, verified_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (channel, size) DO NOTHING",
            channel,
            size,
            note,
            now_ms,
        )

    # --- alarms --------------------------------------------------------------------

    def add_alarm(
        self,
        kind: str,
        message: str,
        now_ms: int,
        *,
        level: int = 2,
        channel: str | None = None,
        index: int | None = None,
        evidence: bytes | None = None,
    ) -> int:
        return self.x(
            "INSERT INTO alarm (created_ms, kind, level, channel, idx, message, evidence) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            now_ms,
            kind,
            level,
            channel,
            index,
            message,
            evidence,
        )

    def statements(self, kind: str) -> list[bytes]:
        return [bytes(r["data"]) for r in self.q("SELECT data FROM statement WHERE kind=?", kind)]

    def put_statement(self, kind: str, key: bytes, data: bytes) -> None:
        self.x(
            "INSERT INTO statement (kind, key, data) VALUES (?, ?, ?) "
            "ON CONFLICT (kind, key) DO NOTHING",
            kind,
            key,
            data,
        )

    def close(self) -> None:
        self.conn.close()


def _outbox(r: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        r["channel"],
        r["seq"],
        bytes(r["envelope"]),
        bytes(r["hash"]),
        r["kind"],
        r["precedence"],
        r["created_ms"],
        r["state"],
        r["idx"],
        r["relay_ms"],
        r["error"],
    )
