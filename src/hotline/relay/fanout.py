"""Several relay processes on one PostgreSQL database: what one does, the others hear.

A process tells the others three things through PostgreSQL ``NOTIFY`` (on a channel
named for the database schema, ``notify_channel``): a channel's log grew to a size
(sent by the appending transaction, so delivered exactly when it commits), a statement
was stored (a certificate or a revocation: every process must take it, and a
revocation closes the key's sessions wherever they are), and a link test to forward
(never logged, and the stations it is for may be connected to another process).

Each notification is ``<origin> <kind> <fields>``, where origin names the process that
sent it (a process ignores its own). The events are values (``Grown``, ``Stated``,
``Linked``) parsed here; ``Fanout`` is the shell that listens and publishes. It keeps
no state a lost notification could corrupt: a size is a size (the receiving process
reads the entries from the store), and on every (re)connection the relay catches up
from the store before listening on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from ..errors import Malformed

log = logging.getLogger("hotline.relay")

MAX_PAYLOAD = 7999  # PostgreSQL refuses a NOTIFY payload of 8000 bytes or more
RETRY_S = (0.2, 5.0)  # first and longest wait before listening again after a failure


@dataclass(frozen=True)
class Grown:
    """A channel's log has ``size`` entries now (committed)."""

    channel: str
    size: int

    def encode(self, origin: str) -> str:
        return f"{origin} log {self.channel} {self.size}"


@dataclass(frozen=True)
class Stated:
    """A statement (``certificate`` or ``revocation``) was stored under ``key``."""

    kind: str
    key: bytes

    def encode(self, origin: str) -> str:
        return f"{origin} statement {self.kind} {self.key.hex()}"


@dataclass(frozen=True)
class Linked:
    """A link test (its frame, as sent to stations) to forward in a channel."""

    channel: str
    frame: str

    def encode(self, origin: str) -> str:
        return f"{origin} link {self.channel} {self.frame}"


Event = Grown | Stated | Linked
STATEMENT_KINDS = ("certificate", "revocation")


def notify_channel(schema: str) -> str:
    """The NOTIFY channel of the relays whose store is in ``schema``: notifications are
    database-wide, and relays of other rosters may keep theirs in other schemas."""
    return "hotline_" + hashlib.sha256(schema.encode()).hexdigest()[:16]


def new_origin() -> str:
    """A name for this process in its notifications."""
    return secrets.token_hex(8)


def parse_event(payload: str) -> tuple[str, Event]:
    """A notification's origin and event; Malformed for anything else."""
    if len(payload.encode()) > MAX_PAYLOAD:
        raise Malformed("notification is too long", field="payload")
    parts = payload.split(" ", 3)
    if len(parts) != 4 or not parts[0]:
        raise Malformed("notification is not '<origin> <kind> <a> <b>'", field="payload")
    origin, kind, a, b = parts
    if kind == "log":
        if not (b.isascii() and b.isdigit() and len(b) <= 18):
            raise Malformed("log size must be a decimal count", field="size")
        return origin, Grown(a, int(b))
    if kind == "statement":
        if a not in STATEMENT_KINDS:
            raise Malformed(f"unknown statement kind {a!r}", field="kind")
        try:
            key = bytes.fromhex(b)
        except ValueError as exc:
            raise Malformed("statement key must be hex", field="key") from exc
        return origin, Stated(a, key)
    if kind == "link":
        return origin, Linked(a, b)
    raise Malformed(f"unknown notification kind {kind!r}", field="kind")


class Fanout:
    """Listens for the other processes' events and publishes this one's link tests.

    Log growth and statements are announced by the store's own transactions
    (postgres.py); only link tests, which are never stored, are published here.
    """

    def __init__(self, dsn: str, origin: str) -> None:
        self.dsn = dsn
        self.origin = origin
        self._publisher: psycopg.AsyncConnection[Any] | None = None
        self._publish_lock = asyncio.Lock()
        self._channel: str | None = None
        self.listening = asyncio.Event()

    async def run(
        self,
        on_event: Callable[[Event], Awaitable[None]],
        on_listen: Callable[[], Awaitable[None]],
    ) -> None:
        """Listen until cancelled; after each (re)connection, ``on_listen`` catches up
        on what may have been missed while not listening."""
        wait = RETRY_S[0]
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
                async with conn:
                    self._channel = await _channel_of(conn)
                    await conn.execute(f"LISTEN {self._channel}")
                    await on_listen()
                    self.listening.set()
                    wait = RETRY_S[0]
                    async for note in conn.notifies():
                        await self._take(note.payload, on_event)
            except (psycopg.Error, OSError) as exc:
                log.warning("not hearing the other relay processes (%s); retrying", exc)
            except Exception:
                # Whatever failed, the relay goes on serving its own stations, and listens
                # again (catching up from the store) after the wait.
                log.exception("listening to the other relay processes failed; retrying")
            self.listening.clear()
            await asyncio.sleep(wait)
            wait = min(RETRY_S[1], wait * 2)

    async def _take(self, payload: str, on_event: Callable[[Event], Awaitable[None]]) -> None:
        try:
            origin, event = parse_event(payload)
        except Malformed as exc:
            log.warning("ignoring a notification that does not parse: %s", exc)
            return
        if origin == self.origin:
            return
        try:
            await on_event(event)
        except Exception:
            # One event that cannot be acted on must not end the listening.
            log.exception("could not act on %s", type(event).__name__)

    async def publish(self, event: Linked) -> bool:
        """Tell the other processes; False if it could not be (too long, no database):
        a link test is then not forwarded beyond this process, which stations see as a
        missed test, as on any lossy link."""
        payload = event.encode(self.origin)
        if len(payload.encode()) > MAX_PAYLOAD:
            log.warning("link test too long to forward to other relay processes")
            return False
        async with self._publish_lock:
            try:
                if self._publisher is None or self._publisher.closed:
                    self._publisher = await psycopg.AsyncConnection.connect(
                        self.dsn, autocommit=True
                    )
                    self._channel = await _channel_of(self._publisher)
                await self._publisher.execute("SELECT pg_notify(%s, %s)", (self._channel, payload))
            except (psycopg.Error, OSError) as exc:
                log.warning("could not forward a link test to other relay processes: %s", exc)
                if self._publisher is not None:
                    with contextlib.suppress(psycopg.Error, OSError):
                        await self._publisher.close()
                self._publisher = None
                return False
        return True

    async def close(self) -> None:
        if self._publisher is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await self._publisher.close()
            self._publisher = None


async def _channel_of(conn: psycopg.AsyncConnection[Any]) -> str:
    row = await (await conn.execute("SELECT current_schema()")).fetchone()
    return notify_channel(str(row[0]) if row else "")
