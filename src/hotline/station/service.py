"""The station's network shell: the link to the relay and the local API server.

One database thread runs every StationCore call (link tests and boards too);
this shell only moves frames. The link reconnects with backoff; on every
connection it resends the whole queued outbox (the relay deduplicates) and
catches up each channel from its cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import ssl
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import websockets
from websockets.asyncio.client import ClientConnection

from .. import frames
from ..errors import HotlineError
from ..notes import b64
from .alarms import Alarm, AlarmKind
from .core import Ingested, StationCore
from .store import OutboxState

log = logging.getLogger("hotline.station")
T = TypeVar("T")

WINDOW = 256  # posts in flight per connection
LINK_TICK_S = 0.2  # how often link tests are due-checked


@dataclass
class RelayLink:
    """What the station knows of its link to the relay."""

    connected: bool = False
    since_ms: int | None = None
    last_contact_ms: int | None = None
    rtt_ms: float | None = None
    attempts: int = 0
    last_error: str | None = None
    in_flight: set[tuple[str, int]] = field(default_factory=set)


class StationService:
    def __init__(
        self,
        core: StationCore,
        relay_url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        backoff_max: float = 5.0,
    ) -> None:
        self.core = core
        self.relay_url = relay_url
        self.ssl_context = ssl_context
        self.backoff_max = backoff_max
        self.db = ThreadPoolExecutor(1, thread_name_prefix="station-db")
        self.link = RelayLink()
        self.wake = asyncio.Event()
        self.changed = asyncio.Condition()
        self.version = 0
        self.stopping = asyncio.Event()
        self.roster_hash = hashlib.sha256(core.roster.encode()).digest()
        self._ws: ClientConnection | None = None

    async def shutdown(self) -> None:
        """Stop reconnecting and close the link to the relay."""
        self.stopping.set()
        self.kick()
        if self._ws is not None:
            await self._ws.close()

    async def run_db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.db, fn, *args)

    async def notify(self) -> None:
        """Wake everything that shows live state (API watchers, console)."""
        async with self.changed:
            self.version += 1
            self.changed.notify_all()

    async def wait_change(self, version: int, timeout: float) -> int:
        async with self.changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.changed.wait_for(lambda: self.version != version)
            return self.version

    def kick(self) -> None:
        self.wake.set()

    # --- the link ------------------------------------------------------------------

    async def run_link(self) -> None:
        backoff = 0.2
        while not self.stopping.is_set():
            self.link.attempts += 1
            try:
                async with websockets.connect(
                    self.relay_url,
                    ssl=self.ssl_context,
                    max_size=4 * frames.MAX_FRAME,
                    open_timeout=10,
                    compression=None,  # ciphertext does not compress
                    ping_interval=10,
                    ping_timeout=20,
                ) as ws:
                    backoff = 0.2
                    self._ws = ws
                    await self._session(ws)
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                self.link.last_error = f"{type(exc).__name__}: {exc}"
            except HotlineError as exc:
                self.link.last_error = f"{exc.code}: {exc}"
                log.warning("relay refused this station: %s", exc)
            finally:
                self._ws = None
                if self.link.connected:
                    self.link.connected = False
                    await self.notify()
                self.link.in_flight.clear()
            if self.stopping.is_set():
                return
            delay = backoff * (0.5 + random.random())
            backoff = min(self.backoff_max, backoff * 2)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.stopping.wait()

    async def _session(self, ws: ClientConnection) -> None:
        challenge = frames.decode(await ws.recv())
        if challenge["op"] == "error":
            raise _error(challenge)
        nonce = frames.field_bytes(challenge, "nonce")
        if frames.field_bytes(challenge, "roster") != self.roster_hash:
            await self.run_db(
                self.core.alarm,
                Alarm(
                    AlarmKind.ROSTER_MISMATCH,
                    "the relay serves a different roster; not connecting",
                    level=3,
                ),
            )
            raise HotlineError("relay roster differs from ours")
        message = frames.auth_message(nonce, self.core.ident, self.roster_hash)
        await ws.send(
            frames.encode(
                "hello",
                station=self.core.ident,
                certificate=b64(self.core.cert.encode()),
                signature=b64(self.core.key.signing.sign(message)),
            )
        )
        welcome = frames.decode(await ws.recv())
        if welcome["op"] == "error":
            raise _error(welcome)
        await self.run_db(self.core.check_sizes, welcome.get("sizes", {}))
        now = self.core.now_ms()
        self.link.connected, self.link.since_ms, self.link.last_contact_ms = True, now, now
        self.link.last_error = None
        log.info("%s connected to relay", self.core.ident)
        await ws.send(frames.encode("certificates", id="certs"))
        for channel in self.core.channels:
            size = await self.run_db(self.core.size, channel)
            await ws.send(
                frames.encode("sync", id=f"sync:{channel}", channel=channel, **{"from": size})
            )
        await self.notify()
        async with asyncio.TaskGroup() as tg:
            pump = tg.create_task(_until_closed(self._pump(ws)))
            pinger = tg.create_task(_until_closed(self._pinger(ws)))
            links = tg.create_task(_until_closed(self._link_tests(ws)))
            await _until_closed(self._reader(ws))
            pump.cancel()
            pinger.cancel()
            links.cancel()

    async def _reader(self, ws: ClientConnection) -> None:
        async for text in ws:
            self.link.last_contact_ms = self.core.now_ms()
            try:
                frame = frames.decode(text)
                await self._dispatch(ws, frame)
            except HotlineError as exc:
                log.warning("bad frame from relay: %s", exc)
                await self.run_db(
                    self.core.alarm,
                    Alarm(AlarmKind.BAD_FRAME, f"relay sent a bad frame: {exc}", level=1),
                )

    async def _dispatch(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        op = frame["op"]
        if op == "accepted":
            self.link.in_flight.discard((str(frame["channel"]), int(frame["seq"])))
            await self.run_db(self.core.on_accepted, frame)
            await self.notify()
        elif op == "error":
            rid = str(frame.get("id") or "")
            if rid.startswith("post:"):
                _, channel, seq = rid.split(":", 2)
                self.link.in_flight.discard((channel, int(seq)))
                await self.run_db(self.core.on_refused, channel, int(seq), frame.get("error", {}))
                await self.notify()
            else:
                log.warning("relay error: %s", frame.get("error"))
        elif op == "entries":
            result: Ingested = await self.run_db(self.core.on_entries, frame)
            channel = str(frame["channel"])
            if result.need_sync_from is not None:
                await ws.send(
                    frames.encode(
                        "sync",
                        id=f"sync:{channel}",
                        channel=channel,
                        **{"from": result.need_sync_from},
                    )
                )
            elif frame.get("more"):
                size = await self.run_db(self.core.size, channel)
                await ws.send(
                    frames.encode("sync", id=f"sync:{channel}", channel=channel, **{"from": size})
                )
            if result.cosign is not None:
                await _send_cosign(ws, *result.cosign)
            if result.queued:
                self.kick()
            await self.notify()
        elif op == "certificates":
            added = await self.run_db(
                self.core.add_statements,
                [c.encode() for c in frame.get("certificates", [])],
                [r.encode() for r in frame.get("revocations", [])],
            )
            if added:
                self.kick()
        elif op == "link":
            for answer in await self.run_db(self.core.on_link, frame.get("link")):
                await ws.send(frames.encode("link", link=answer))
        elif op == "pong":  # the relay's answer to our keepalive: the relay link's round trip
            sent = float(str(frame.get("id", "ping:0")).split(":", 1)[1])
            self.link.rtt_ms = (time.monotonic() - sent) * 1000
        elif op == "ok":
            pass
        else:
            log.info("ignoring relay op %s", op)

    async def _link_tests(self, ws: ClientConnection) -> None:
        """Send the link tests the core finds due (it keeps the schedule)."""
        while True:
            tick = await self.run_db(self.core.link_tick)
            for msg in tick.send:
                await ws.send(frames.encode("link", link=msg))
            if tick.queued:
                self.kick()
            await asyncio.sleep(LINK_TICK_S)

    async def run_ticker(self) -> None:
        """Deadlines, escalation and link state, evaluated every quarter second."""
        while not self.stopping.is_set():
            queued = await self.run_db(self.core.check_deadlines)
            queued += await self.run_db(self.core.link_changes)
            if queued:
                self.kick()
                await self.notify()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.25):
                    await self.stopping.wait()

    async def _pinger(self, ws: ClientConnection) -> None:
        while True:
            await ws.send(frames.encode("ping", id=f"ping:{time.monotonic()}"))
            for cosign in await self.run_db(self.core.due_cosigns):
                await _send_cosign(ws, *cosign)
            await asyncio.sleep(5)

    async def _pump(self, ws: ClientConnection) -> None:
        """Send every queued outbox item, in sequence order, until accepted."""
        while True:
            self.wake.clear()
            queued = await self.run_db(self.core.store.outbox, OutboxState.QUEUED)
            for item in queued:
                key = (item.channel, item.seq)
                if key in self.link.in_flight:
                    continue
                while len(self.link.in_flight) >= WINDOW:
                    await asyncio.sleep(0.005)
                self.link.in_flight.add(key)
                await ws.send(
                    frames.encode(
                        "post", id=f"post:{item.channel}:{item.seq}", envelope=b64(item.envelope)
                    )
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self.wake.wait()


async def _send_cosign(ws: ClientConnection, channel: str, size: int, note: bytes) -> None:
    await ws.send(frames.encode("cosign", channel=channel, size=size, checkpoint=note.decode()))


async def _until_closed(work: Coroutine[Any, Any, None]) -> None:
    """Run one side of a session; the relay closing the connection ends it quietly."""
    with contextlib.suppress(websockets.exceptions.ConnectionClosed):
        await work


def _error(frame: dict[str, Any]) -> HotlineError:
    from ..errors import from_dict

    err = frame.get("error")
    return from_dict(err if isinstance(err, dict) else {"message": str(err)})
