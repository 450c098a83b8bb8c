"""The station's durable state in SQLite (WAL, synchronous=FULL).

A message is in ``outbox`` (sealed, with its sequence number) before anything is
sent; ``entry`` and ``node`` mirror each channel's log as verified; ``alarm``
keeps evidence of every verification failure.

Every query the station runs is a named method here, returning frozen values;
no other module writes SQL against this database.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..deadlines import Pending
from ..envelope import Kind, Precedence
from ..leaf import LeafKind
from ..sqlitedb import NODE_SCHEMA, SqlNodes, connect, transaction
from .alarms import Alarm, AlarmKind, AlarmRecord, Param
from .linkhistory import LinkSample
from .pathaudit import Raised

# A receipt entry names one message, or a delivered run of them: a row for each.
RECEIPT_TABLE = """CREATE TABLE IF NOT EXISTS receipt (
  channel TEXT NOT NULL, idx INTEGER NOT NULL, of_index INTEGER NOT NULL, party TEXT NOT NULL,
  station TEXT NOT NULL, status TEXT NOT NULL, operator TEXT, reply TEXT,
  created_ms INTEGER NOT NULL, relay_ms INTEGER NOT NULL, of_hash BLOB,
  PRIMARY KEY (channel, idx, of_index))"""
RECEIPT_INDEX = "CREATE INDEX IF NOT EXISTS receipt_of ON receipt (channel, of_index)"

SCHEMA = (
    NODE_SCHEMA
    + """
CREATE TABLE IF NOT EXISTS entry (
  channel TEXT NOT NULL, idx INTEGER NOT NULL, envelope BLOB NOT NULL, hash BLOB NOT NULL,
  sender TEXT NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL, relay_ms INTEGER NOT NULL,
  valid INTEGER NOT NULL, held INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (channel, idx));
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
  send_key TEXT, request_hash BLOB, excerpt TEXT, PRIMARY KEY (channel, seq));
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state, channel, seq);
CREATE TABLE IF NOT EXISTS message (
  channel TEXT NOT NULL, idx INTEGER NOT NULL, sender TEXT NOT NULL, party TEXT NOT NULL,
  seq INTEGER NOT NULL, kind INTEGER NOT NULL, precedence INTEGER NOT NULL,
  created_ms INTEGER NOT NULL, relay_ms INTEGER NOT NULL, hash BLOB NOT NULL, body TEXT NOT NULL,
  received_ms INTEGER NOT NULL, read_ms INTEGER, PRIMARY KEY (channel, idx));
"""
    + RECEIPT_TABLE
    + ";\n"
    + RECEIPT_INDEX
    + """;
CREATE TABLE IF NOT EXISTS alarm (
  id INTEGER PRIMARY KEY, created_ms INTEGER NOT NULL, kind TEXT NOT NULL, level INTEGER NOT NULL,
  channel TEXT, idx INTEGER, message TEXT NOT NULL, evidence BLOB, cleared_ms INTEGER,
  cleared_by TEXT, subject TEXT, count INTEGER NOT NULL DEFAULT 1, last_ms INTEGER,
  params TEXT);
CREATE TABLE IF NOT EXISTS receipt_due (
  channel TEXT NOT NULL, of_index INTEGER NOT NULL, hash BLOB NOT NULL,
  precedence INTEGER NOT NULL, note BLOB NOT NULL, PRIMARY KEY (channel, of_index))
  WITHOUT ROWID;
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
CREATE TABLE IF NOT EXISTS outbox_path (
  channel TEXT NOT NULL, seq INTEGER NOT NULL, relay TEXT NOT NULL, idx INTEGER NOT NULL,
  relay_ms INTEGER NOT NULL, PRIMARY KEY (channel, seq, relay)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS link_sample (
  id INTEGER PRIMARY KEY, channel TEXT NOT NULL, party TEXT NOT NULL, at_ms INTEGER NOT NULL,
  state TEXT NOT NULL, rtt_ms REAL, station TEXT, relay TEXT);
CREATE INDEX IF NOT EXISTS link_sample_at ON link_sample (at_ms);
CREATE TABLE IF NOT EXISTS key_submission (
  relay TEXT NOT NULL, hash BLOB NOT NULL, kind TEXT NOT NULL, data BLOB NOT NULL,
  queued_ms INTEGER NOT NULL, done_ms INTEGER, error TEXT, PRIMARY KEY (relay, hash))
  WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS path_alarm (
  what TEXT NOT NULL, relay TEXT NOT NULL, hash BLOB NOT NULL, channel TEXT NOT NULL,
  idx INTEGER NOT NULL, raised_ms INTEGER NOT NULL, repaired_ms INTEGER,
  PRIMARY KEY (what, relay, hash)) WITHOUT ROWID;
"""
)

# Columns added since the first schema: (table, column, definition). A database made
# before them gets them on open; the tables above already have them.
MIGRATIONS = (
    ("entry", "held", "INTEGER NOT NULL DEFAULT 0"),
    ("alarm", "subject", "TEXT"),
    ("alarm", "count", "INTEGER NOT NULL DEFAULT 1"),
    ("alarm", "last_ms", "INTEGER"),
    ("alarm", "params", "TEXT"),
    ("outbox", "send_key", "TEXT"),
    ("outbox", "request_hash", "BLOB"),
    ("outbox", "excerpt", "TEXT"),
    ("link_sample", "relay", "TEXT"),  # NULL: the party's link through any relay
    ("receipt", "of_hash", "BLOB"),  # kept only while the message is not taken in yet
)

# Indexes over migrated columns: created once the columns surely exist.
INDEXES = """
CREATE INDEX IF NOT EXISTS alarm_open ON alarm (kind, channel, idx) WHERE cleared_ms IS NULL;
CREATE INDEX IF NOT EXISTS entry_held ON entry (channel, idx) WHERE held=1;
CREATE INDEX IF NOT EXISTS entry_hash ON entry (channel, hash);
CREATE INDEX IF NOT EXISTS message_hash ON message (channel, hash);
CREATE INDEX IF NOT EXISTS entry_key_event ON entry (channel, idx) WHERE sender='';
CREATE UNIQUE INDEX IF NOT EXISTS outbox_send_key ON outbox (send_key) WHERE send_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS receipt_early ON receipt (channel, of_hash) WHERE of_hash IS NOT NULL;
"""


class OutboxState(StrEnum):
    """Where one of our envelopes stands with the relay."""

    QUEUED = "queued"
    ACCEPTED = "accepted"
    REFUSED = "refused"


@dataclass(frozen=True)
class OutboxItem:
    channel: str
    seq: int
    envelope: bytes
    hash: bytes
    kind: int
    precedence: int
    created_ms: int
    state: OutboxState
    index: int | None
    relay_ms: int | None
    error: str | None
    key: str | None = None  # the client's Idempotency-Key, if it gave one
    request_hash: bytes | None = None  # what was asked under that key (to refuse a reuse)
    excerpt: str | None = None  # what was sent, for the sender's list (first 80 characters)


KEY_EVENT_SENDER = ""
"""A key event's sender column (it has none; no station's ident is empty)."""


@dataclass(frozen=True)
class Entry:
    """An entry of a channel's log as this station verified it (``valid`` 0: it failed).
    A key event has sender KEY_EVENT_SENDER, seq 0 and kind 4 (envelope.Kind.KEY_EVENT)."""

    channel: str
    index: int
    envelope: bytes
    hash: bytes
    sender: str
    seq: int
    kind: int
    relay_ms: int
    valid: bool
    held: bool = False  # waiting for its sender's certificate: neither valid nor refused yet

    @property
    def leaf_kind(self) -> LeafKind:
        return LeafKind.KEY_EVENT if self.sender == KEY_EVENT_SENDER else LeafKind.ENVELOPE


@dataclass(frozen=True)
class KeySubmission:
    """A key event this station submits (a certificate, a revocation), as one relay
    stands with it: ``done_ms`` None while that relay has not logged it (pending)."""

    relay: str
    hash: bytes
    kind: str
    data: bytes
    queued_ms: int
    done_ms: int | None
    error: str | None  # the relay's last refusal, while pending


@dataclass(frozen=True)
class DueReceipt:
    """A delivered receipt owed for a message: sealed and queued as soon as it can be."""

    channel: str
    of_index: int
    hash: bytes
    precedence: int
    note: bytes


@dataclass(frozen=True)
class Message:
    """A decrypted message, notice or form in the log (ours or received)."""

    channel: str
    index: int
    sender: str
    party: str
    seq: int
    kind: int
    precedence: int
    created_ms: int
    relay_ms: int
    hash: bytes
    body: str
    received_ms: int
    read_ms: int | None


@dataclass(frozen=True)
class Receipt:
    """A delivered or acknowledged receipt in the log, for the message ``of_index``."""

    channel: str
    index: int
    of_index: int
    party: str
    station: str
    status: str
    operator: str | None
    reply: str | None
    created_ms: int
    relay_ms: int
    # The message's envelope hash (the same in every log), kept only for a receipt read
    # before its message was taken in: it is filed again under the message's number then.
    of_hash: bytes | None = None


@dataclass(frozen=True)
class Operator:
    name: str
    password: str
    language: str
    created_ms: int
    disabled: bool


@dataclass(frozen=True)
class Session:
    """A signed-in operator's console session."""

    operator: str
    language: str
    csrf: str
    expires_ms: int


class StationStore:
    def __init__(self, path: Path | str) -> None:
        self._conn = connect(path)
        self._conn.executescript(SCHEMA)
        self._migrate()
        self._conn.executescript(INDEXES)
        self._conn.row_factory = sqlite3.Row

    def _migrate(self) -> None:
        for table, column, definition in MIGRATIONS:
            have = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        self._migrate_receipt_key()

    def _migrate_receipt_key(self) -> None:
        """A receipt entry may name several messages (a delivered run, issue 15): its rows
        are keyed by (channel, idx, of_index). A store made before keyed them by (channel,
        idx); its table is copied into the new shape, every row kept, in one transaction."""
        key = {r[1] for r in self._conn.execute("PRAGMA table_info(receipt)") if r[5]}
        if "of_index" in key:
            return
        columns = (
            "channel, idx, of_index, party, station, status, operator, reply, created_ms,"
            " relay_ms, of_hash"
        )
        with transaction(self._conn):
            self._conn.execute("ALTER TABLE receipt RENAME TO receipt_before")
            self._conn.execute("DROP INDEX IF EXISTS receipt_of")
            self._conn.execute(RECEIPT_TABLE)
            self._conn.execute(RECEIPT_INDEX)
            self._conn.execute(
                f"INSERT INTO receipt ({columns}) SELECT {columns} FROM receipt_before"
            )
            self._conn.execute("DROP TABLE receipt_before")

    def transaction(self) -> AbstractContextManager[None]:
        return transaction(self._conn)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested step inside the current transaction: undone alone if it raises.

        The rest of the transaction stays as it was before the step, so the caller
        can record the failure and go on."""
        self._conn.execute("SAVEPOINT step")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK TO step")
            self._conn.execute("RELEASE step")
            raise
        self._conn.execute("RELEASE step")

    def _q(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return self._conn.execute(sql, args).fetchall()

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._conn.execute(sql, args).fetchone()
        return row

    def _x(self, sql: str, *args: Any) -> int:
        cur = self._conn.execute(sql, args)
        return cur.lastrowid or 0

    def nodes(self, channel: str) -> SqlNodes:
        return SqlNodes(self._conn.execute, self._conn.executemany, channel)

    def close(self) -> None:
        self._conn.close()

    # --- outbox ----------------------------------------------------------------

    def last_sent(self, channel: str) -> tuple[int, bytes]:
        row = self._one(
            "SELECT seq, hash FROM outbox WHERE channel=? ORDER BY seq DESC LIMIT 1", channel
        )
        return (row["seq"], bytes(row["hash"])) if row else (0, bytes(32))

    def add_outbox(self, item: OutboxItem) -> None:
        self._x(
            "INSERT INTO outbox (channel, seq, envelope, hash, kind, precedence, created_ms, state,"
            " send_key, request_hash, excerpt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            item.channel,
            item.seq,
            item.envelope,
            item.hash,
            item.kind,
            item.precedence,
            item.created_ms,
            OutboxState.QUEUED,
            item.key,
            item.request_hash,
            item.excerpt,
        )

    def outbox_by_key(self, key: str) -> OutboxItem | None:
        """The envelope queued under a client's idempotency key."""
        row = self._one("SELECT * FROM outbox WHERE send_key=?", key)
        return _outbox(row) if row else None

    def sent_page(
        self, channel: str | None, after: tuple[str, int] | None, limit: int
    ) -> list[OutboxItem]:
        """Our messages (not receipts or link tests) by channel then seq, after a cursor."""
        sql, args = "SELECT * FROM outbox WHERE kind=?", list[Any]([int(Kind.MESSAGE)])
        if channel:
            sql += " AND channel=?"
            args.append(channel)
        if after is not None:
            sql += " AND (channel > ? OR (channel = ? AND seq > ?))"
            args += [after[0], after[0], after[1]]
        rows = self._q(sql + " ORDER BY channel, seq LIMIT ?", *args, limit)
        return [_outbox(r) for r in rows]

    def outbox(
        self, state: OutboxState | None = None, channel: str | None = None
    ) -> list[OutboxItem]:
        sql, args = "SELECT * FROM outbox WHERE 1=1", list[str]()
        if state:
            sql += " AND state=?"
            args.append(state)
        if channel:
            sql += " AND channel=?"
            args.append(channel)
        rows = self._q(sql + " ORDER BY channel, seq", *args)
        return [_outbox(r) for r in rows]

    def outbox_item(self, channel: str, seq: int) -> OutboxItem | None:
        row = self._one("SELECT * FROM outbox WHERE channel=? AND seq=?", channel, seq)
        return _outbox(row) if row else None

    def outbox_at(self, channel: str, index: int) -> OutboxItem | None:
        """Our envelope logged at ``index``, if it is ours."""
        row = self._one("SELECT * FROM outbox WHERE channel=? AND idx=?", channel, index)
        return _outbox(row) if row else None

    def outbox_counts(self) -> dict[OutboxState, int]:
        rows = self._q("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")
        return {OutboxState(r["state"]): r["n"] for r in rows}

    def queued_before(self, channel: str, seq: int) -> bool:
        """Whether an earlier envelope of ours in the channel is still queued."""
        row = self._one(
            "SELECT 1 FROM outbox WHERE channel=? AND seq<? AND state=?",
            channel,
            seq,
            OutboxState.QUEUED,
        )
        return row is not None

    def mark_accepted(self, channel: str, seq: int, index: int, relay_ms: int) -> None:
        self._x(
            "UPDATE outbox SET state=?, idx=?, relay_ms=?, error=NULL WHERE channel=? AND seq=?",
            OutboxState.ACCEPTED,
            index,
            relay_ms,
            channel,
            seq,
        )

    def mark_logged(self, channel: str, seq: int, index: int, relay_ms: int) -> None:
        """Our envelope showed up in the log: accepted, even if the acceptance was lost."""
        self._x(
            "UPDATE outbox SET state=?, idx=?, relay_ms=? WHERE channel=? AND seq=? AND state!=?",
            OutboxState.ACCEPTED,
            index,
            relay_ms,
            channel,
            seq,
            OutboxState.ACCEPTED,
        )

    # --- redundant relays: one outbox, each envelope through every relay ---------------

    def mark_path(self, channel: str, seq: int, relay: str, index: int, relay_ms: int) -> None:
        """``relay`` accepted (or logged) our envelope ``seq`` at qualified ``index``."""
        self._x(
            "INSERT INTO outbox_path (channel, seq, relay, idx, relay_ms) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (channel, seq, relay) DO NOTHING",
            channel,
            seq,
            relay,
            index,
            relay_ms,
        )

    def set_outbox_index(self, channel: str, seq: int, index: int) -> None:
        """Our envelope ``seq`` is known by the qualified ``index`` it was first taken at."""
        self._x("UPDATE outbox SET idx=? WHERE channel=? AND seq=?", index, channel, seq)

    def paths_of(self, channel: str, seq: int) -> dict[str, int]:
        """Which relays took our envelope ``seq``, at which qualified index."""
        rows = self._q("SELECT relay, idx FROM outbox_path WHERE channel=? AND seq=?", channel, seq)
        return {r["relay"]: r["idx"] for r in rows}

    def unsent(self, relay: str) -> list[OutboxItem]:
        """Our envelopes ``relay`` has not taken yet (queued, or accepted by another relay)."""
        rows = self._q(
            "SELECT * FROM outbox o WHERE state IN (?, ?) AND NOT EXISTS (SELECT 1 FROM"
            " outbox_path p WHERE p.channel=o.channel AND p.seq=o.seq AND p.relay=?)"
            " ORDER BY channel, seq",
            OutboxState.QUEUED,
            OutboxState.ACCEPTED,
            relay,
        )
        return [_outbox(r) for r in rows]

    def untaken_before(self, relay: str | None, ms: int) -> int:
        """How many of our envelopes made at or before ``ms`` ``relay`` has not taken yet
        (None: the only relay, which has not accepted them yet)."""
        if relay is None:
            row = self._one(
                "SELECT count(*) AS n FROM outbox WHERE state=? AND created_ms<=?",
                OutboxState.QUEUED,
                ms,
            )
        else:
            row = self._one(
                "SELECT count(*) AS n FROM outbox o WHERE state IN (?, ?) AND created_ms<=?"
                " AND NOT EXISTS (SELECT 1 FROM outbox_path p WHERE p.channel=o.channel"
                " AND p.seq=o.seq AND p.relay=?)",
                OutboxState.QUEUED,
                OutboxState.ACCEPTED,
                ms,
                relay,
            )
        return int(row["n"]) if row is not None else 0

    def taken_elsewhere(self, channel: str, digest: bytes, index: int) -> bool:
        """Whether the envelope ``digest`` was taken (valid) from another log's entry."""
        row = self._one(
            "SELECT 1 FROM entry WHERE channel=? AND hash=? AND idx!=? AND valid=1 AND held=0"
            " LIMIT 1",
            channel,
            digest,
            index,
        )
        return row is not None

    def knows(self, channel: str, digest: bytes) -> bool:
        """Whether any log of the channel or our outbox holds the envelope ``digest``."""
        return (
            self._one("SELECT 1 FROM entry WHERE channel=? AND hash=? LIMIT 1", channel, digest)
            or self._one("SELECT 1 FROM outbox WHERE channel=? AND hash=?", channel, digest)
        ) is not None

    def message_index(self, channel: str, digest: bytes, default: int) -> int:
        """This station's index of the message ``digest`` (where it was taken first)."""
        row = self._one("SELECT idx FROM message WHERE channel=? AND hash=?", channel, digest)
        if row is not None:
            return int(row["idx"])
        row = self._one(
            "SELECT idx FROM outbox WHERE channel=? AND hash=? AND idx IS NOT NULL", channel, digest
        )
        return int(row["idx"]) if row is not None else default

    def logged_at(self, channel: str, digest: bytes) -> list[int]:
        """Every qualified index at which a relay's log holds the envelope ``digest``."""
        rows = self._q(
            "SELECT idx FROM entry WHERE channel=? AND hash=? ORDER BY idx", channel, digest
        )
        return [r["idx"] for r in rows]

    def ours_at(self, channel: str, index: int) -> bytes | None:
        """The hash of our envelope a relay signed it took at qualified ``index`` (its
        acceptance, or where we saw it logged), if one of ours is there."""
        row = self._one(
            "SELECT hash FROM outbox WHERE channel=? AND idx=? UNION ALL SELECT o.hash FROM"
            " outbox_path p JOIN outbox o ON o.channel=p.channel AND o.seq=p.seq"
            " WHERE p.channel=? AND p.idx=? LIMIT 1",
            channel,
            index,
            channel,
            index,
        )
        return bytes(row["hash"]) if row else None

    def placed_at(self, channel: str, digest: bytes) -> list[int]:
        """Every qualified index at which we know a relay's log holds the envelope
        ``digest``: entries we mirror, and where relays accepted it if it is ours."""
        rows = self._q(
            "SELECT idx FROM entry WHERE channel=? AND hash=? UNION SELECT idx FROM outbox"
            " WHERE channel=? AND hash=? AND idx IS NOT NULL UNION SELECT p.idx FROM outbox_path"
            " p JOIN outbox o ON o.channel=p.channel AND o.seq=p.seq WHERE o.channel=? AND"
            " o.hash=?",
            channel,
            digest,
            channel,
            digest,
            channel,
            digest,
        )
        return sorted(r["idx"] for r in rows)

    def envelope_of(self, channel: str, digest: bytes) -> tuple[int, str | None] | None:
        """(kind, sending station: '' for a key event, None for one of ours no log brought
        us yet) of the envelope ``digest`` of the channel; None if we know none."""
        row = self._one(
            "SELECT kind, sender FROM entry WHERE channel=? AND hash=? LIMIT 1", channel, digest
        )
        if row is not None:
            return int(row["kind"]), str(row["sender"])
        row = self._one("SELECT kind FROM outbox WHERE channel=? AND hash=?", channel, digest)
        return (int(row["kind"]), None) if row is not None else None

    def mark_refused(self, channel: str, seq: int, error: str) -> None:
        self._x(
            "UPDATE outbox SET state=?, error=? WHERE channel=? AND seq=?",
            OutboxState.REFUSED,
            error,
            channel,
            seq,
        )

    # --- log mirror --------------------------------------------------------------

    def chain(self, channel: str, sender: str) -> tuple[int, bytes]:
        row = self._one("SELECT seq, hash FROM chain WHERE channel=? AND sender=?", channel, sender)
        return (row["seq"], bytes(row["hash"])) if row else (0, bytes(32))

    def set_chain(self, channel: str, sender: str, seq: int, digest: bytes) -> None:
        self._x(
            "INSERT INTO chain (channel, sender, seq, hash) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (channel, sender) DO UPDATE SET seq=excluded.seq, hash=excluded.hash",
            channel,
            sender,
            seq,
            digest,
        )

    def add_entry(self, entry: Entry) -> None:
        """Store an entry, or its new standing (a held entry retried)."""
        self._x(
            "INSERT INTO entry (channel, idx, envelope, hash, sender, seq, kind, relay_ms, valid,"
            " held) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel, idx) DO UPDATE"
            " SET sender=excluded.sender, seq=excluded.seq, kind=excluded.kind,"
            " valid=excluded.valid, held=excluded.held",
            entry.channel,
            entry.index,
            entry.envelope,
            entry.hash,
            entry.sender,
            entry.seq,
            entry.kind,
            entry.relay_ms,
            int(entry.valid),
            int(entry.held),
        )

    def held_entries(self, channel: str) -> list[Entry]:
        """Entries waiting for their sender's certificate, in log order."""
        rows = self._q("SELECT * FROM entry WHERE channel=? AND held=1 ORDER BY idx", channel)
        return [_entry(r) for r in rows]

    def held_before(self, channel: str, sender: str, index: int) -> bool:
        """Whether an earlier entry of ``sender`` waits (this one waits behind it)."""
        row = self._one(
            "SELECT 1 FROM entry WHERE channel=? AND held=1 AND sender=? AND idx<? LIMIT 1",
            channel,
            sender,
            index,
        )
        return row is not None

    def is_held(self, channel: str, sender: str) -> bool:
        """Whether an entry of ``sender`` waits in the channel (its later ones wait behind)."""
        row = self._one(
            "SELECT 1 FROM entry WHERE channel=? AND held=1 AND sender=? LIMIT 1", channel, sender
        )
        return row is not None

    def entry_hash(self, channel: str, index: int) -> bytes | None:
        """The envelope hash of the entry at ``index`` of our copy of the log (None if we
        have none, or it is empty): stored with its bytes when it was taken in (receive.py)."""
        row = self._one(
            "SELECT hash FROM entry WHERE channel=? AND idx=? AND length(envelope) > 0",
            channel,
            index,
        )
        return bytes(row["hash"]) if row else None

    def entry_bytes(self, channel: str, index: int) -> bytes:
        """The envelope at ``index`` of our copy of the log (empty if we have none)."""
        row = self._one("SELECT envelope FROM entry WHERE channel=? AND idx=?", channel, index)
        return bytes(row["envelope"]) if row else b""

    def key_events(self, channel: str, position: int = 0) -> list[Entry]:
        """The key events of the log of the relay at roster ``position`` (the first by
        default) this station took (valid), in log order; indexes qualified (paths.py)."""
        rows = self._q(
            "SELECT * FROM entry WHERE channel=? AND sender='' AND valid=1 AND idx>=? AND idx<?"
            " ORDER BY idx",
            channel,
            position << 40,
            (position + 1) << 40,
        )
        return [_entry(r) for r in rows]

    def entries(self, channel: str, position: int = 0) -> list[Entry]:
        """Our copy of the channel's log kept by the relay at roster ``position`` (the
        first by default), in order; indexes are qualified (paths.py)."""
        rows = self._q(
            "SELECT * FROM entry WHERE channel=? AND idx>=? AND idx<? ORDER BY idx",
            channel,
            position << 40,
            (position + 1) << 40,
        )
        return [_entry(r) for r in rows]

    def verified_checkpoint(self, channel: str) -> bytes | None:
        row = self._one(
            "SELECT note FROM checkpoint WHERE channel=? ORDER BY size DESC LIMIT 1", channel
        )
        return bytes(row["note"]) if row else None

    def checkpoint_at(self, channel: str, size: int) -> bytes | None:
        row = self._one("SELECT note FROM checkpoint WHERE channel=? AND size=?", channel, size)
        return bytes(row["note"]) if row else None

    def checkpoints(self, channel: str) -> list[bytes]:
        """Every checkpoint verified for the channel, smallest first."""
        rows = self._q("SELECT note FROM checkpoint WHERE channel=? ORDER BY size", channel)
        return [bytes(r["note"]) for r in rows]

    def add_checkpoint(self, channel: str, size: int, note: bytes, now_ms: int) -> None:
        self._x(
            "INSERT INTO checkpoint (channel, size, note, verified_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (channel, size) DO NOTHING",
            channel,
            size,
            note,
            now_ms,
        )

    def replace_checkpoint(self, channel: str, size: int, note: bytes) -> None:
        """The same checkpoint with more cosignatures."""
        self._x("UPDATE checkpoint SET note=? WHERE channel=? AND size=?", note, channel, size)

    # --- messages and receipts -------------------------------------------------------

    def add_message(self, m: Message) -> None:
        self._x(
            "INSERT INTO message (channel, idx, sender, party, seq, kind, precedence, created_ms, "
            "relay_ms, hash, body, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            m.channel,
            m.index,
            m.sender,
            m.party,
            m.seq,
            m.kind,
            m.precedence,
            m.created_ms,
            m.relay_ms,
            m.hash,
            m.body,
            m.received_ms,
        )

    def has_message(self, channel: str, index: int) -> bool:
        """Whether message ``index`` is taken in (without reading its body)."""
        row = self._one("SELECT 1 FROM message WHERE channel=? AND idx=?", channel, index)
        return row is not None

    def message(self, channel: str, index: int) -> Message | None:
        row = self._one("SELECT * FROM message WHERE channel=? AND idx=?", channel, index)
        return _message(row) if row else None

    def messages(self, channel: str | None = None) -> list[Message]:
        """Every message, notice and form in the log (ours too), in log order."""
        if channel is None:
            rows = self._q("SELECT * FROM message ORDER BY channel, idx")
        else:
            rows = self._q("SELECT * FROM message WHERE channel=? ORDER BY idx", channel)
        return [_message(r) for r in rows]

    def messages_since(self, since_ms: int, limit: int = 5000) -> list[Message]:
        """Messages (ours too, no receipts or notices) logged since ``since_ms``, newest
        first, at most ``limit``: what the situation map looks through."""
        rows = self._q(
            "SELECT * FROM message WHERE kind=? AND relay_ms>=? ORDER BY relay_ms DESC LIMIT ?",
            int(Kind.MESSAGE),
            since_ms,
            limit,
        )
        return [_message(r) for r in rows]

    # --- link history -------------------------------------------------------------------

    def add_link_sample(self, s: LinkSample) -> None:
        self._x(
            "INSERT INTO link_sample (channel, party, at_ms, state, rtt_ms, station, relay) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            s.channel,
            s.party,
            s.at_ms,
            s.state,
            s.rtt_ms,
            s.station,
            s.relay,
        )

    def link_samples(self, since_ms: int) -> list[LinkSample]:
        """Link samples since ``since_ms``, oldest first, with the last one before it
        of each channel, party and path (the state the window opens with)."""
        rows = self._q(
            "SELECT * FROM link_sample WHERE at_ms >= ? OR id IN (SELECT MAX(id) FROM "
            "link_sample WHERE at_ms < ? GROUP BY channel, party, relay) ORDER BY at_ms, id",
            since_ms,
            since_ms,
        )
        return [
            LinkSample(
                r["channel"],
                r["party"],
                r["at_ms"],
                r["state"],
                r["rtt_ms"],
                r["station"],
                r["relay"],
            )
            for r in rows
        ]

    def prune_link_samples(self, before_ms: int) -> None:
        self._x("DELETE FROM link_sample WHERE at_ms < ?", before_ms)

    def inbox(
        self,
        not_from: str,
        channel: str | None,
        limit: int,
        after: tuple[int, int, str, int] | None = None,
    ) -> list[Message]:
        """Messages received (not sent by station ``not_from``), most urgent and newest first.

        The order is total (precedence, relay time newest first, channel, index newest
        first), so ``after`` (that key of the last message of a page) starts the next."""
        sql = "SELECT * FROM message WHERE kind=? AND sender!=?"
        args: list[Any] = [int(Kind.MESSAGE), not_from]
        if channel:
            sql += " AND channel=?"
            args.append(channel)
        if after is not None:
            p, r, c, i = after
            sql += (
                " AND (precedence > ? OR (precedence = ? AND (relay_ms < ? OR (relay_ms = ?"
                " AND (channel > ? OR (channel = ? AND idx < ?))))))"
            )
            args += [p, p, r, r, c, c, i]
        sql += " ORDER BY precedence ASC, relay_ms DESC, channel ASC, idx DESC LIMIT ?"
        args.append(limit)
        return [_message(r) for r in self._q(sql, *args)]

    def received_after(
        self, not_from: str, channel: str | None, after: int, limit: int, upto: int
    ) -> list[tuple[int, Message]]:
        """Messages received (not sent by station ``not_from``) after arrival number
        ``after`` up to ``upto``, in the order this station took them in, each with its
        arrival number.

        The arrival number is the row's id: message rows are only ever added (never
        replaced or deleted), so it grows with every commit."""
        sql = (
            "SELECT rowid AS arrival, * FROM message"
            " WHERE rowid>? AND rowid<=? AND kind=? AND sender!=?"
        )
        args: list[Any] = [after, upto, int(Kind.MESSAGE), not_from]
        if channel:
            sql += " AND channel=?"
            args.append(channel)
        sql += " ORDER BY rowid LIMIT ?"
        args.append(limit)
        return [(r["arrival"], _message(r)) for r in self._q(sql, *args)]

    def last_arrival(self) -> int:
        """The arrival number of the last message row (0 before any)."""
        row = self._one("SELECT COALESCE(MAX(rowid), 0) AS n FROM message")
        return int(row["n"]) if row is not None else 0

    def mark_read(self, channel: str, index: int, now_ms: int) -> None:
        self._x(
            "UPDATE message SET read_ms=COALESCE(read_ms, ?) WHERE channel=? AND idx=?",
            now_ms,
            channel,
            index,
        )

    def add_receipt(self, r: Receipt) -> None:
        self._x(
            "INSERT INTO receipt (channel, idx, of_index, party, station, status, operator, reply,"
            " created_ms, relay_ms, of_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            r.channel,
            r.index,
            r.of_index,
            r.party,
            r.station,
            r.status,
            r.operator,
            r.reply,
            r.created_ms,
            r.relay_ms,
            r.of_hash,
        )

    def refile_receipts(self, channel: str, digest: bytes, index: int) -> list[Receipt]:
        """The message ``digest`` is now taken in at ``index``: the receipts read before it
        (from another relay's log, filed under the acceptance's number or the one their
        sender gave it) are filed under this one, the number everything else uses.

        A receipt read early that placed another envelope at ``index`` named a place
        falsely (it could not be compared then): that row is removed and returned, for
        the caller's alarm. Left, it would be counted as a delivery of this message, and
        the same receipt's row for this message could not be filed here (one row per
        message per receipt: a database error out of ingest)."""
        where = "channel=? AND of_index=? AND of_hash IS NOT NULL AND of_hash!=?"
        false = [
            _receipt(r)
            for r in self._q(f"SELECT * FROM receipt WHERE {where}", channel, index, digest)
        ]
        if false:  # almost never: one statement fewer for every message taken in
            self._x(f"DELETE FROM receipt WHERE {where}", channel, index, digest)
        self._x(
            "UPDATE receipt SET of_index=?, of_hash=NULL WHERE channel=? AND of_hash=?",
            index,
            channel,
            digest,
        )
        return false

    def acknowledged_by(self, channel: str, index: int) -> set[str]:
        """The parties whose acknowledgment of message ``index`` is filed already."""
        rows = self._q(
            "SELECT party FROM receipt WHERE channel=? AND of_index=? AND status='acknowledged'",
            channel,
            index,
        )
        return {r["party"] for r in rows}

    def receipts_of(self, channel: str, of_index: int) -> list[Receipt]:
        """Receipts for one message, in log order."""
        rows = self._q(
            "SELECT * FROM receipt WHERE channel=? AND of_index=? ORDER BY idx", channel, of_index
        )
        return [_receipt(r) for r in rows]

    def receipts(self, channel: str) -> list[Receipt]:
        """Every receipt in the channel, in log order."""
        rows = self._q("SELECT * FROM receipt WHERE channel=? ORDER BY idx", channel)
        return [_receipt(r) for r in rows]

    def owe_receipt(self, due: DueReceipt) -> None:
        self._x(
            "INSERT INTO receipt_due (channel, of_index, hash, precedence, note) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel, of_index) DO NOTHING",
            due.channel,
            due.of_index,
            due.hash,
            due.precedence,
            due.note,
        )

    def receipts_due(self) -> list[DueReceipt]:
        """Delivered receipts owed and not sealed yet, in log order per channel."""
        rows = self._q("SELECT * FROM receipt_due ORDER BY channel, of_index")
        return [
            DueReceipt(
                r["channel"], r["of_index"], bytes(r["hash"]), r["precedence"], bytes(r["note"])
            )
            for r in rows
        ]

    def receipt_sent(self, channel: str, of_index: int) -> None:
        self._x("DELETE FROM receipt_due WHERE channel=? AND of_index=?", channel, of_index)

    # --- acknowledgment deadlines ----------------------------------------------------------

    def await_ack(self, pending: Pending, next_ms: int) -> None:
        """Note that a message waits for a party's acknowledgment (once)."""
        self._x(
            "INSERT INTO pending_ack (channel, idx, party, precedence, logged_ms, "
            "deadline_s, level, next_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (channel, idx, party) DO NOTHING",
            pending.channel,
            pending.index,
            pending.party,
            int(Precedence[pending.precedence]),
            pending.logged_ms,
            pending.deadline_s,
            pending.level_done,
            next_ms,
        )

    def due_acks(self, now_ms: int) -> list[Pending]:
        """Awaited acknowledgments whose next escalation is due."""
        return [
            Pending(
                r["channel"],
                r["idx"],
                r["party"],
                Precedence(r["precedence"]).name,
                r["logged_ms"],
                r["deadline_s"],
                r["level"],
            )
            for r in self._q("SELECT * FROM pending_ack WHERE next_ms <= ?", now_ms)
        ]

    def escalate(self, pending: Pending, level: int, next_ms: int, now_ms: int) -> None:
        """Record an escalation level reached, and when the next one is due."""
        self._x(
            "UPDATE pending_ack SET level=?, next_ms=? WHERE channel=? AND idx=? AND party=?",
            level,
            next_ms,
            pending.channel,
            pending.index,
            pending.party,
        )
        self._x(
            "INSERT INTO escalation (channel, idx, party, level, at_ms) VALUES "
            "(?, ?, ?, ?, ?) ON CONFLICT (channel, idx, party) DO UPDATE SET "
            "level=excluded.level, at_ms=excluded.at_ms",
            pending.channel,
            pending.index,
            pending.party,
            level,
            now_ms,
        )

    def acknowledged(self, channel: str, index: int, party: str) -> None:
        """A party acknowledged: nothing more to await from it."""
        self._x(
            "DELETE FROM pending_ack WHERE channel=? AND idx=? AND party=?", channel, index, party
        )

    def receipts_of_many(self, channel: str, indexes: list[int]) -> list[Receipt]:
        """Receipts for several messages of a channel, in log order (one query)."""
        if not indexes:
            return []
        marks = ", ".join("?" * len(indexes))
        rows = self._q(
            f"SELECT * FROM receipt WHERE channel=? AND of_index IN ({marks}) ORDER BY idx",
            channel,
            *indexes,
        )
        return [_receipt(r) for r in rows]

    def escalation_levels_many(self, channel: str, indexes: list[int]) -> dict[int, dict[str, int]]:
        """Escalation levels reached per message and party (one query)."""
        out: dict[int, dict[str, int]] = {}
        if not indexes:
            return out
        rows = self._q(
            f"SELECT idx, party, level FROM escalation WHERE channel=? AND idx IN "
            f"({', '.join('?' * len(indexes))})",
            channel,
            *indexes,
        )
        for r in rows:
            out.setdefault(r["idx"], {})[r["party"]] = r["level"]
        return out

    def escalation_levels(self, channel: str, index: int) -> dict[str, int]:
        rows = self._q(
            "SELECT party, level FROM escalation WHERE channel=? AND idx=?", channel, index
        )
        return {r["party"]: r["level"] for r in rows}

    # --- alarms --------------------------------------------------------------------

    def add_alarm(self, alarm: Alarm, now_ms: int) -> int:
        """Open an alarm, or count it again on the open one of the same kind and subject.

        The open alarm keeps its first evidence; it shows the latest message and the
        highest level, how many times it was raised, and when first and last."""
        row = self._one(
            "SELECT id FROM alarm WHERE cleared_ms IS NULL AND kind=? AND channel IS ? "
            "AND idx IS ? AND subject IS ? ORDER BY id DESC LIMIT 1",
            alarm.kind,
            alarm.channel,
            alarm.index,
            alarm.subject,
        )
        if row is not None:
            self._x(
                "UPDATE alarm SET count=count+1, last_ms=?, message=?, params=?, "
                "level=MAX(level, ?), evidence=COALESCE(evidence, ?) WHERE id=?",
                now_ms,
                alarm.text,
                _params_json(alarm.params),
                alarm.level,
                alarm.evidence,
                row["id"],
            )
            return int(row["id"])
        return self._x(
            "INSERT INTO alarm (created_ms, kind, level, channel, idx, subject, message, params,"
            " evidence, count, last_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
            now_ms,
            alarm.kind,
            alarm.level,
            alarm.channel,
            alarm.index,
            alarm.subject,
            alarm.text,
            _params_json(alarm.params),
            alarm.evidence,
            now_ms,
        )

    def alarms(
        self, *, cleared_too: bool = False, limit: int = 500, before_id: int | None = None
    ) -> list[AlarmRecord]:
        """Alarms, newest first (open ones only unless ``cleared_too``), older than
        ``before_id`` if given (the last id of the previous page)."""
        where = " WHERE 1=1" if cleared_too else " WHERE cleared_ms IS NULL"
        args: list[Any] = []
        if before_id is not None:
            where += " AND id < ?"
            args.append(before_id)
        rows = self._q(f"SELECT * FROM alarm{where} ORDER BY id DESC LIMIT ?", *args, limit)
        return [
            AlarmRecord(
                r["id"],
                r["created_ms"],
                AlarmKind(r["kind"]),
                r["level"],
                r["channel"],
                r["idx"],
                r["message"],
                bytes(r["evidence"]) if r["evidence"] is not None else None,
                r["cleared_ms"],
                r["cleared_by"],
                r["subject"],
                r["count"],
                r["last_ms"] if r["last_ms"] is not None else r["created_ms"],
                _params_of(r["params"]),
            )
            for r in rows
        ]

    def open_alarm_count(self) -> int:
        row = self._one("SELECT COUNT(*) AS n FROM alarm WHERE cleared_ms IS NULL")
        return int(row["n"]) if row else 0

    def clear_alarm(self, alarm_id: int, who: str, now_ms: int) -> None:
        self._x(
            "UPDATE alarm SET cleared_ms=?, cleared_by=? WHERE id=? AND cleared_ms IS NULL",
            now_ms,
            who,
            alarm_id,
        )

    def clear_alarms(
        self,
        kinds: Iterable[AlarmKind],
        who: str,
        now_ms: int,
        *,
        channel: str,
        index: int | None = None,
        subject: str | None = None,
        subject_prefix: str | None = None,
    ) -> None:
        """Clear the open alarms of these kinds about a channel (a message, a party).

        ``subject_prefix``: only those whose subject begins so (compared as text, not
        LIKE: identifiers may hold '_')."""
        kinds = list(kinds)
        sql = (
            "UPDATE alarm SET cleared_ms=?, cleared_by=? WHERE channel=? AND cleared_ms IS NULL "
            f"AND kind IN ({', '.join('?' * len(kinds))})"
        )
        args: list[Any] = [now_ms, who, channel, *kinds]
        if index is not None:
            sql += " AND idx=?"
            args.append(index)
        if subject is not None:
            sql += " AND subject=?"
            args.append(subject)
        if subject_prefix is not None:
            sql += " AND substr(subject, 1, ?)=?"
            args += [len(subject_prefix), subject_prefix]
        self._x(sql, *args)

    # --- statements (certificates, revocations) ----------------------------------------

    def statements(self, kind: str) -> list[bytes]:
        return [bytes(r["data"]) for r in self._q("SELECT data FROM statement WHERE kind=?", kind)]

    def put_statement(self, kind: str, key: bytes, data: bytes) -> None:
        self._x(
            "INSERT INTO statement (kind, key, data) VALUES (?, ?, ?) "
            "ON CONFLICT (kind, key) DO NOTHING",
            kind,
            key,
            data,
        )

    # --- key events this station submits, per relay ---------------------------------------

    def submit_key_event(
        self, relays: Iterable[str], kind: str, data: bytes, digest: bytes, now_ms: int
    ) -> None:
        """Owe ``data`` to each of ``relays`` (once: submitting it again changes nothing)."""
        for relay in relays:
            self._x(
                "INSERT INTO key_submission (relay, hash, kind, data, queued_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (relay, hash) DO NOTHING",
                relay,
                digest,
                kind,
                data,
                now_ms,
            )

    def key_submissions(
        self, relay: str | None = None, *, pending: bool = False
    ) -> list[KeySubmission]:
        """The key events submitted (to ``relay``; only those it has not logged)."""
        sql, args = "SELECT * FROM key_submission WHERE 1=1", []
        if relay is not None:
            sql += " AND relay=?"
            args.append(relay)
        if pending:
            sql += " AND done_ms IS NULL"
        rows = self._q(sql + " ORDER BY queued_ms, relay, hash", *args)
        return [
            KeySubmission(
                r["relay"],
                bytes(r["hash"]),
                r["kind"],
                bytes(r["data"]),
                r["queued_ms"],
                r["done_ms"],
                r["error"],
            )
            for r in rows
        ]

    def key_event_logged(self, relay: str, digest: bytes, now_ms: int) -> bool:
        """``relay`` logged the key event ``digest``; whether it was pending there."""
        before = self._conn.total_changes
        self._x(
            "UPDATE key_submission SET done_ms=?, error=NULL "
            "WHERE relay=? AND hash=? AND done_ms IS NULL",
            now_ms,
            relay,
            digest,
        )
        return self._conn.total_changes != before

    def key_event_refused(self, relay: str, digest: bytes, error: str) -> None:
        """``relay`` refused the key event (it stays pending, retried at the next link)."""
        self._x(
            "UPDATE key_submission SET error=? WHERE relay=? AND hash=? AND done_ms IS NULL",
            error,
            relay,
            digest,
        )

    # --- the path audit's memory: what it raised, per relay and entry ----------------------

    def path_alarms(self) -> list[Raised]:
        rows = self._q("SELECT * FROM path_alarm ORDER BY raised_ms, relay, hash")
        return [
            Raised(
                r["what"],
                r["relay"],
                bytes(r["hash"]),
                r["channel"],
                r["idx"],
                r["raised_ms"],
                r["repaired_ms"],
            )
            for r in rows
        ]

    def put_path_alarm(self, raised: Raised) -> None:
        """Keep what the audit raised (or that the relay repaired it) across restarts."""
        self._x(
            "INSERT INTO path_alarm (what, relay, hash, channel, idx, raised_ms, repaired_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (what, relay, hash)"
            " DO UPDATE SET repaired_ms=COALESCE(path_alarm.repaired_ms, excluded.repaired_ms)",
            raised.what,
            raised.relay,
            raised.hash,
            raised.channel,
            raised.index,
            raised.raised_ms,
            raised.repaired_ms,
        )

    # --- meta: small named values that outlive a restart ---------------------------------

    def meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key=?", key)
        return str(row["value"]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._x(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            key,
            value,
        )

    # --- operators and console sessions --------------------------------------------------

    def operator(self, name: str) -> Operator | None:
        row = self._one("SELECT * FROM operator WHERE name=?", name)
        if row is None:
            return None
        return Operator(
            row["name"], row["password"], row["language"], row["created_ms"], bool(row["disabled"])
        )

    def add_operator(self, name: str, password: str, language: str, now_ms: int) -> None:
        self._x(
            "INSERT INTO operator (name, password, language, created_ms) VALUES (?, ?, ?, ?)",
            name,
            password,
            language,
            now_ms,
        )

    def add_session(self, token_hash: bytes, session: Session, now_ms: int) -> None:
        """Open a session, and forget every session that has expired."""
        self._x("DELETE FROM session WHERE expires_ms < ?", now_ms)
        self._x(
            "INSERT INTO session (token_hash, operator, csrf, created_ms, expires_ms) "
            "VALUES (?, ?, ?, ?, ?)",
            token_hash,
            session.operator,
            session.csrf,
            now_ms,
            session.expires_ms,
        )

    def session(self, token_hash: bytes) -> Session | None:
        """The session of an operator still enabled (expired or not)."""
        row = self._one(
            "SELECT s.operator, s.csrf, s.expires_ms, o.language FROM session s JOIN operator o "
            "ON o.name = s.operator WHERE s.token_hash=? AND o.disabled=0",
            token_hash,
        )
        if row is None:
            return None
        return Session(row["operator"], row["language"], row["csrf"], row["expires_ms"])

    def drop_session(self, token_hash: bytes) -> None:
        self._x("DELETE FROM session WHERE token_hash=?", token_hash)

    # --- counts for metrics -------------------------------------------------------------

    def open_alarm_counts(self) -> dict[AlarmKind, int]:
        """Open alarms, by kind."""
        rows = self._q(
            "SELECT kind, COUNT(*) AS n FROM alarm WHERE cleared_ms IS NULL GROUP BY kind"
        )
        return {AlarmKind(r["kind"]): r["n"] for r in rows}

    def ack_counts(self, now_ms: int) -> dict[Precedence, AckCounts]:
        """Acknowledgments awaited (one per message and party), by precedence; overdue:
        past their deadline at ``now_ms``."""
        rows = self._q(
            "SELECT precedence, COUNT(*) AS n, "
            "SUM(CASE WHEN logged_ms + deadline_s * 1000 <= ? THEN 1 ELSE 0 END) AS late "
            "FROM pending_ack GROUP BY precedence",
            now_ms,
        )
        return {Precedence(r["precedence"]): AckCounts(r["n"], r["late"]) for r in rows}


def _entry(r: sqlite3.Row) -> Entry:
    return Entry(
        r["channel"],
        r["idx"],
        bytes(r["envelope"]),
        bytes(r["hash"]),
        r["sender"],
        r["seq"],
        r["kind"],
        r["relay_ms"],
        bool(r["valid"]),
        bool(r["held"]),
    )


def _outbox(r: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        r["channel"],
        r["seq"],
        bytes(r["envelope"]),
        bytes(r["hash"]),
        r["kind"],
        r["precedence"],
        r["created_ms"],
        OutboxState(r["state"]),
        r["idx"],
        r["relay_ms"],
        r["error"],
        r["send_key"],
        bytes(r["request_hash"]) if r["request_hash"] is not None else None,
        r["excerpt"],
    )


def _message(r: sqlite3.Row) -> Message:
    return Message(
        r["channel"],
        r["idx"],
        r["sender"],
        r["party"],
        r["seq"],
        r["kind"],
        r["precedence"],
        r["created_ms"],
        r["relay_ms"],
        bytes(r["hash"]),
        r["body"],
        r["received_ms"],
        r["read_ms"],
    )


def _receipt(r: sqlite3.Row) -> Receipt:
    return Receipt(
        r["channel"],
        r["idx"],
        r["of_index"],
        r["party"],
        r["station"],
        r["status"],
        r["operator"],
        r["reply"],
        r["created_ms"],
        r["relay_ms"],
        bytes(r["of_hash"]) if r["of_hash"] is not None else None,
    )


@dataclass(frozen=True)
class AckCounts:
    """Acknowledgments awaited, and how many of them are past their deadline."""

    pending: int
    overdue: int


def _params_json(params: Mapping[str, Param]) -> str | None:
    return json.dumps(dict(params), sort_keys=True) if params else None


def _params_of(text: str | None) -> dict[str, Param]:
    """An alarm's stored parameters (only str and int values survive: they are shown)."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(k): v
        for k, v in data.items()
        if isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
    }
