"""The station's network shell: the link to the relay and the local API server.

One database thread runs every StationCore call (link tests and boards too);
this shell only moves typed frames (frames.py). The link reconnects with backoff,
to the next of the relay's URLs when it has several (failover.py, a backoff per URL);
on every connection it resends the whole queued outbox (the relay deduplicates)
and catches up each channel from its cursor. A frame from the relay that does not
decode raises a bad-frame alarm and ends the connection, like any protocol error.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar, assert_never

import websockets
from websockets.asyncio.client import ClientConnection

from .. import frames, stamps
from ..errors import HotlineError, Malformed, TooLarge
from ..keys import StationCertificate, StationKey, parse_certificate
from . import keysubmit, register
from .alarms import Alarm, AlarmKind
from .core import Ingested, StationCore
from .failover import Failover
from .metrics import StationMetrics
from .store import KeySubmission, OutboxItem, OutboxState

log = logging.getLogger("hotline.station")
T = TypeVar("T")

WINDOW = 256  # posts in flight per connection
LINK_TICK_S = 0.2  # how often link tests are due-checked
KEYS_EVERY_S = 1.0  # how often a busy link looks for key events it may hand over
# Delivered receipts are sealed once arrivals pause this long (at most RECEIPTS_WAIT_MAX_S
# after the first one owed): a run of messages gets its receipts in a few transactions
# (RECEIPTS_CHUNK each), and their sealing, logging and taking in stay out of the way of
# the next message. Each chunk is one call on the database thread: work queued meanwhile
# (an arrival's ingest, a client's read) goes between two chunks. (A longer wait, 0.2 s,
# cost less CPU per message in bench_latency, but delays the proof of delivery the
# sender waits for: bench/RESULTS.md.)
RECEIPTS_SETTLE_S = 0.02
RECEIPTS_WAIT_MAX_S = 0.05
RECEIPTS_CHUNK = 4


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
        relay_url: str | list[str] | Mapping[str, Sequence[str]],
        *,
        ssl_context: ssl.SSLContext | None = None,
        backoff_max: float = 5.0,
        _hub: StationService | None = None,
        _relay: str | None = None,
    ) -> None:
        """``relay_url``: the URLs of the roster's relay (one relay), or, per relay name,
        its URLs (two or more independent relays: one link, log mirror and sync state
        each; this service is the first relay's and runs the others' beside it)."""
        self.core = core
        per_relay = _per_relay(core, relay_url)
        multi = len(core.relays) > 1
        first = core.relays[0]
        self.relay = _relay if _relay is not None else (first if multi else None)
        mine = per_relay.get(self.relay if self.relay is not None else first)
        if not mine:
            raise Malformed(f"no URL of relay {self.relay or first} is given", field="relay")
        self.failover = Failover(list(mine), backoff_max)
        self.ssl_context = ssl_context
        self.backoff_max = backoff_max
        self.hub = _hub or self  # the service of the first relay: one database thread
        self.db: ThreadPoolExecutor = (
            _hub.db if _hub is not None else ThreadPoolExecutor(1, thread_name_prefix="station-db")
        )
        self.link = RelayLink()
        self.metrics: StationMetrics = (
            _hub.metrics if _hub is not None else StationMetrics(core, self.link)
        )
        self.wake = asyncio.Event()
        self.changed: asyncio.Condition = _hub.changed if _hub is not None else asyncio.Condition()
        self.version = 0
        self.stopping: asyncio.Event = _hub.stopping if _hub is not None else asyncio.Event()
        self.roster_hash = hashlib.sha256(core.roster.encode()).digest()
        self._ws: ClientConnection | None = None
        self._handed: list[OutboxItem] | None = None
        # The other relays' links (independent hosts), keyed by relay name.
        self.paths: dict[str, StationService] = {}
        if _hub is None and multi:
            self.paths[first] = self
            for name in core.relays[1:]:
                if not per_relay.get(name):
                    log.warning("no URL for relay %s: its path is not watched", name)
                    continue
                self.paths[name] = StationService(
                    core,
                    {name: per_relay[name]},
                    ssl_context=ssl_context,
                    backoff_max=backoff_max,
                    _hub=self,
                    _relay=name,
                )
        self._receipts: asyncio.Task[None] | None = None
        self._receipts_arrival = asyncio.Event()
        self._sealing: set[asyncio.Task[None]] = set()
        self._receipts_quiet = self._receipts_until = 0.0

    async def switch_key(
        self, key: StationKey, cert: StationCertificate, retired: list[StationKey]
    ) -> None:
        """Sign with ``key`` from now on, and meet the relay again as it (a rotation: the
        relay has logged ``cert`` already, so whatever is posted meanwhile is taken)."""
        await self.run_db(self.core.switch_key, key, cert, retired)
        for path in [self, *(p for p in self.paths.values() if p is not self)]:
            if path._ws is not None:
                await path._ws.close()
        self.kick()

    async def shutdown(self) -> None:
        """Stop reconnecting and close the links to the relays."""
        self.stopping.set()
        self.kick()
        for path in [self, *(p for p in self.paths.values() if p is not self)]:
            if path._receipts is not None:
                path._receipts.cancel()  # what is owed stays owed (stored): sealed at next start
            if path._ws is not None:
                await path._ws.close()

    async def run_db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.db, fn, *args)

    async def notify(self) -> None:
        """Wake everything that shows live state (API watchers, console)."""
        if self.hub is not self:
            await self.hub.notify()
            return
        async with self.changed:
            self.version += 1
            self.changed.notify_all()

    async def wait_change(self, version: int, timeout: float) -> int:
        if self.hub is not self:
            return await self.hub.wait_change(version, timeout)
        async with self.changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.changed.wait_for(lambda: self.version != version)
            return self.version

    def kick(self, queued: list[OutboxItem] | None = None) -> None:
        """Wake the pump; ``queued``: the outbox's queued items, just read on the database
        thread after the last commit (the pump then sends them without reading again)."""
        if queued is not None and self.relay is None:
            self._handed = queued
        self.wake.set()
        for path in self.paths.values():
            if path is not self:
                path.wake.set()

    # --- the link ------------------------------------------------------------------

    @property
    def relay_url(self) -> str:
        """The relay URL in use (or tried next)."""
        return self.failover.current

    async def run_link(self) -> None:
        """Keep the link to the relay (and, with several relays, each other relay's)."""
        others = [p for p in self.paths.values() if p is not self]
        if not others:
            await self._run_one_link()
            return
        async with asyncio.TaskGroup() as tg:
            for path in others:
                tg.create_task(path._run_one_link())
            await self._run_one_link()

    async def _run_one_link(self) -> None:
        while not self.stopping.is_set():
            url, delay = self.failover.next(time.monotonic())
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.stopping.wait()
                if self.stopping.is_set():
                    return
            self.link.attempts += 1
            protocol = False
            try:
                async with websockets.connect(
                    url,
                    ssl=self.ssl_context if url.startswith("wss://") else None,
                    max_size=4 * frames.MAX_FRAME,
                    open_timeout=10,
                    compression=None,  # ciphertext does not compress
                    ping_interval=10,
                    ping_timeout=20,
                ) as ws:
                    self.failover.opened(url)
                    self._ws = ws
                    await self._session(ws)
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                self.link.last_error = f"{type(exc).__name__}: {exc}"
            except HotlineError as exc:
                self.link.last_error = f"{exc.code}: {exc}"
                log.warning("relay refused this station: %s", exc)
            except _BadFrame as exc:
                self.link.last_error = f"bad frame: {exc}"
                protocol = True  # a relay that breaks the protocol is not retried at once
            finally:
                self._ws = None
                if self.link.connected:
                    self.link.connected = False
                    await self.notify()
                self.link.in_flight.clear()
            if self.stopping.is_set():
                return
            self.failover.failed(url, time.monotonic(), protocol=protocol)
            if len(self.failover.urls) > 1:
                log.warning("relay %s failed (%s); trying the next", url, self.link.last_error)
            elif self.relay is not None:
                log.warning("relay %s (%s) failed: %s", self.relay, url, self.link.last_error)

    async def _session(self, ws: ClientConnection) -> None:
        match await self._receive(ws):
            case frames.Challenge(nonce=nonce, roster=roster):
                pass
            case frames.ErrorReply() as refusal:
                raise refusal.error()
            case other:
                raise await self._bad_frame(f"expected a challenge, got {other.op}", None)
        if roster != self.roster_hash:
            await self.run_db(
                self.core.alarm,
                Alarm(
                    AlarmKind.ROSTER_MISMATCH,
                    "roster-mismatch",
                    level=3,
                ),
            )
            raise HotlineError("relay roster differs from ours")
        message = frames.auth_message(nonce, self.core.ident, self.roster_hash)
        signature = self.core.key.signing.sign(message)
        await _send(ws, frames.Hello(self.core.ident, self.core.cert.encode(), signature))
        match await self._receive(ws):
            case frames.Welcome(sizes=sizes):
                pass
            case frames.ErrorReply() as refusal:
                raise refusal.error()
            case other:
                raise await self._bad_frame(f"expected a welcome, got {other.op}", None)
        await self.run_db(self.core.check_sizes, dict(sizes), self.relay)
        now = self.core.now_ms()
        self.link.connected, self.link.since_ms, self.link.last_contact_ms = True, now, now
        self.link.last_error = None
        self.metrics.sessions.inc()
        log.info("%s connected to relay", self.core.ident)
        await _send(ws, frames.GetCertificates(id="certs"))
        for channel in self.core.channels:
            await self._sync(ws, channel, await self.run_db(self.core.size, channel, self.relay))
        await self.notify()
        bad: _BadFrame | None = None
        async with asyncio.TaskGroup() as tg:
            pump = tg.create_task(_until_closed(self._pump(ws)))
            pinger = tg.create_task(_until_closed(self._pinger(ws)))
            links = tg.create_task(_until_closed(self._link_tests(ws)))
            try:
                await _until_closed(self._reader(ws))
            except _BadFrame as exc:
                bad = exc  # raised past the task group, which would wrap it in a group
            pump.cancel()
            pinger.cancel()
            links.cancel()
        if bad is not None:
            await ws.close(code=1002, reason="bad frame")
            raise bad

    async def _receive(self, ws: ClientConnection) -> frames.RelayFrame:
        """The next frame from the relay; one that does not decode ends the connection."""
        text = await ws.recv()
        self.link.last_contact_ms = self.core.now_ms()
        try:
            return frames.decode_relay_frame(text)
        except (Malformed, TooLarge) as exc:
            raw = text.encode() if isinstance(text, str) else text
            raise await self._bad_frame(str(exc), raw) from exc

    async def _bad_frame(self, why: str, raw: bytes | None) -> _BadFrame:
        """Alarm on a frame that breaks the protocol; the caller drops the connection."""
        log.warning("bad frame from relay, reconnecting: %s", why)
        await self.run_db(
            self.core.alarm,
            Alarm(AlarmKind.BAD_FRAME, "bad-frame", level=1, evidence=raw, params={"detail": why}),
        )
        return _BadFrame(why)

    async def _reader(self, ws: ClientConnection) -> None:
        while True:
            frame = await self._receive(ws)
            try:
                await self._dispatch(ws, frame)
            except HotlineError as exc:
                log.warning("relay frame not acted on: %s", exc)
                await self.run_db(
                    self.core.alarm,
                    Alarm(AlarmKind.BAD_FRAME, "bad-frame", level=1, params={"detail": str(exc)}),
                )

    async def _dispatch(self, ws: ClientConnection, frame: frames.RelayFrame) -> None:
        match frame:
            case frames.Accepted(channel=channel, seq=seq):
                self.link.in_flight.discard((channel, seq))
                await self.run_db(self.core.on_accepted, frame, self.relay)
                await self.notify()
            case frames.ErrorReply(id=rid):
                digest = keysubmit.of_request(rid)
                if digest is not None:  # a key event refused: owed still, sent next session
                    log.warning("relay %s refused a key event: %s", self.relay, frame.error())
                    await self.run_db(
                        self.core.key_event_refused, self.relay, digest, frame.error()
                    )
                    return
                post = _post_of(rid)
                if post is None:
                    log.warning("relay error: %s", frame.error())
                    return
                self.link.in_flight.discard(post)
                await self.run_db(self.core.on_refused, *post, frame.error(), self.relay)
                await self.notify()
            case frames.Entries(channel=channel, more=more):
                stamps.stamp_raw(
                    "station_received", self.core.ident, (e.envelope for e in frame.entries)
                )
                # Receipts are sealed after readers are told, once arrivals pause: what
                # arrived is visible (committed) first, and the receipts' work is off the path.
                result: Ingested = await self.run_db(self.metrics.ingest, frame, False, self.relay)
                await self.notify()  # committed: readers first, then the relay
                for arrived in result.arrived:
                    stamps.stamp("visible", self.core.ident, arrived.hash)
                if result.arrived:
                    self._receipts_soon()
                if result.need_sync_from is not None:
                    await self._sync(ws, channel, result.need_sync_from)
                elif more:
                    size = await self.run_db(self.core.size, channel, self.relay)
                    await self._sync(ws, channel, size)
                if result.cosign is not None:
                    await _send_cosign(ws, *result.cosign)
            case frames.Certificates(certificates=certificates, revocations=revocations):
                await self.run_db(self.core.add_statements, list(certificates), list(revocations))
                self.kick()  # held entries taken in may owe receipts, new stations be sealed to
            case frames.Link(link=link):
                for answer in await self.run_db(self.core.on_link, link, self.relay):
                    await _send(ws, frames.Link(answer))
            case frames.Pong(id=rid):  # the answer to our keepalive: the link's round trip
                sent = _ping_sent(rid)
                if sent is not None:
                    self.link.rtt_ms = (time.monotonic() - sent) * 1000
            case frames.Ok():  # a key event's: owed until taken from the log (keysubmit.py)
                pass
            case frames.Challenge() | frames.Welcome():
                log.info("ignoring relay op %s after the handshake", frame.op)
            case _:
                assert_never(frame)

    def _receipts_soon(self) -> None:
        """Seal the delivered receipts owed once arrivals pause (RECEIPTS_SETTLE_S), or
        RECEIPTS_WAIT_MAX_S after the first arrival, whichever comes first."""
        now = time.monotonic()
        self._receipts_quiet = now + RECEIPTS_SETTLE_S
        if self._receipts is None:
            self._receipts_until = now + RECEIPTS_WAIT_MAX_S
            self._receipts = task = asyncio.create_task(self._seal_receipts())
            self._sealing.add(task)  # held until done (the loop keeps only weak references)
            task.add_done_callback(self._sealing.discard)
        self._receipts_arrival.set()

    async def _seal_receipts(self) -> None:
        try:
            while (pause := min(self._receipts_quiet, self._receipts_until) - time.monotonic()) > 0:
                self._receipts_arrival.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._receipts_arrival.wait()
        finally:
            self._receipts = None  # an arrival from now on owes a later sealing
        try:
            while sealed := await self.run_db(self.core.send_receipts, RECEIPTS_CHUNK):
                self.hub.kick()  # through every relay; watchers hear with their acceptance
                if sealed < RECEIPTS_CHUNK:
                    break  # none owed left (or the rest is stuck, with its alarm)
        except Exception:  # the store failed: the receipts stay owed, retried on the link tick
            log.exception("delivered receipts not sealed")

    async def _sync(self, ws: ClientConnection, channel: str, start: int) -> None:
        await _send(ws, frames.Sync(channel, start, id=f"sync:{channel}"))

    async def _link_tests(self, ws: ClientConnection) -> None:
        """Send the link tests the core finds due through this relay (it keeps the
        schedule, one per relay path)."""
        while True:
            tick = await self.run_db(self.core.link_tick, self.relay)
            for link in tick.send:
                await _send(ws, frames.Link(link))
            if tick.queued:
                self.kick()
            await asyncio.sleep(LINK_TICK_S)

    async def run_ticker(self) -> None:
        """Deadlines, escalation and link state, evaluated every quarter second."""
        while not self.stopping.is_set():
            queued = await self.run_db(self.core.check_deadlines)
            queued += await self.run_db(self.core.link_changes)
            if self.paths:
                raised: int = await self.run_db(self.core.audit_paths, self._contacts())
                if raised:
                    await self.notify()
            if queued:
                self.kick()
                await self.notify()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.25):
                    await self.stopping.wait()

    def _contacts(self) -> dict[str, int | None]:
        """When each relay was last heard from (now, while its link is up)."""
        now = self.core.now_ms()
        contacts: dict[str, int | None] = {}
        for name in self.core.relays:
            path = self.paths.get(name)
            link = path.link if path is not None else None
            contacts[name] = (
                None if link is None else now if link.connected else link.last_contact_ms
            )
        return contacts

    async def _pinger(self, ws: ClientConnection) -> None:
        while True:
            await _send(ws, frames.Ping(id=f"ping:{time.monotonic()}"))
            for cosign in await self.run_db(self.core.due_cosigns, self.relay):
                await _send_cosign(ws, *cosign)
            await asyncio.sleep(5)

    async def _pump(self, ws: ClientConnection) -> None:
        """Send every queued outbox item, in sequence order, until accepted."""
        self._handed = None  # read before this session: read afresh
        keys_sent: set[bytes] = set()  # key events sent in this session
        keys_due = 0.0
        while True:
            self.wake.clear()
            queued, self._handed = self._handed, None
            if self.relay is not None:  # several relays: what this one has not taken
                queued = await self.run_db(self.core.store.unsent, self.relay)
            elif queued is None:
                queued = await self.run_db(self.core.store.outbox, OutboxState.QUEUED)
            for item in queued:
                key = (item.channel, item.seq)
                if key in self.link.in_flight:
                    continue
                while len(self.link.in_flight) >= WINDOW:
                    await asyncio.sleep(0.005)
                self.link.in_flight.add(key)
                await _send(ws, frames.Post(item.envelope, id=f"post:{item.channel}:{item.seq}"))
                stamps.stamp("frame_sent", self.core.ident, item.hash)
            # Key events when the link is idle, and at most every KEYS_EVERY_S while it is
            # busy (off the hot path): each revocation once its watermark passed.
            if not self.link.in_flight or time.monotonic() >= keys_due:
                keys_due = time.monotonic() + KEYS_EVERY_S
                await self._send_key_events(ws, keys_sent)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self.wake.wait()

    async def _send_key_events(self, ws: ClientConnection, sent: set[bytes]) -> None:
        """Hand the relay the key events it has not logged yet (keysubmit.py), each once
        per session (owed until the station takes it from that relay's log): first the
        certificates of earlier keys it lacks (register.py), then each revocation whose
        certificate it logged and whose watermark passed (keysubmit.due)."""
        registered = False
        for key, cert in await self.run_db(self.core.certificates_owed, self.relay):
            if cert.hash not in sent:
                sent.add(cert.hash)
                registered = True
                await self._register(key, cert)
        if registered:  # read the log again: the certificates are taken from it, not assumed
            for channel in self.core.channels:
                await self._sync(
                    ws, channel, await self.run_db(self.core.size, channel, self.relay)
                )
        for owed in await self.run_db(self.core.key_events_due, self.relay):
            if owed.hash not in sent:
                sent.add(owed.hash)
                await _send(ws, frames.Revoke(owed.data, id=keysubmit.request_id(owed.hash)))

    async def _register(self, key: StationKey, owed: KeySubmission) -> None:
        """A short session at this relay as the earlier ``key``: the relay logs its
        certificate (register.py); a refusal is kept with the certificate, owed still."""
        cert = parse_certificate(owed.data, self.core.roster.parties[key.party].root)
        try:
            await register.register(self.relay_url, self.core.roster, key, cert, self.ssl_context)
        except HotlineError as exc:  # an ended validity is refused after the logging
            log.info("relay %s: certificate of an earlier key: %s", self.relay, exc)
            await self.run_db(self.core.key_event_refused, self.relay, owed.hash, exc)
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            log.warning(
                "relay %s: certificate of an earlier key not handed over: %s", self.relay, exc
            )


class _BadFrame(Exception):
    """The relay broke the protocol (a frame that does not decode, or one out of place)."""


async def _send(ws: ClientConnection, frame: frames.StationFrame) -> None:
    await ws.send(frames.encode_frame(frame))


async def _send_cosign(ws: ClientConnection, channel: str, size: int, note: bytes) -> None:
    await _send(ws, frames.Cosign(channel, size, note))


async def _until_closed(work: Coroutine[Any, Any, None]) -> None:
    """Run one side of a session; the relay closing the connection ends it quietly."""
    with contextlib.suppress(websockets.exceptions.ConnectionClosed):
        await work


def _post_of(request_id: frames.RequestId) -> tuple[str, int] | None:
    """The outbox item (channel, seq) a request id "post:CHANNEL:SEQ" names, if any."""
    if not isinstance(request_id, str) or not request_id.startswith("post:"):
        return None
    channel, _, seq = request_id[len("post:") :].rpartition(":")
    return (channel, int(seq)) if channel and seq.isdigit() else None


def _ping_sent(request_id: frames.RequestId) -> float | None:
    """When our keepalive "ping:MONOTONIC" went out, from the pong's id."""
    if not isinstance(request_id, str) or not request_id.startswith("ping:"):
        return None
    try:
        return float(request_id[len("ping:") :])
    except ValueError:
        return None


def _per_relay(
    core: StationCore, given: str | list[str] | Mapping[str, Sequence[str]]
) -> dict[str, Sequence[str]]:
    """The URLs of each relay of the roster: a plain list is the first relay's."""
    relays = core.relays
    if isinstance(given, str):
        return {relays[0]: [given]}
    if not isinstance(given, Mapping):
        return {relays[0]: given}
    unknown = sorted(set(given) - set(relays))
    if unknown:
        raise Malformed(f"no relay {unknown[0]!r} in the roster", field="relay")
    return dict(given)
