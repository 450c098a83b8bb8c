"""The relay's network shell: a Starlette ASGI app with one WebSocket endpoint
for stations and a small HTTP API. All storage work runs on one database thread;
accepted envelopes are committed in batches (group commit) before any answer.

The rules (who may read, post, forward; what a sync answers; how frames are split)
are in core.py and frames.py; this module moves frames and bytes. With a ``Fanout``
(fanout.py), several relay processes share one PostgreSQL database: each pushes the
others' new entries to its own stations, forwards link tests across, and closes its
sessions of a key revoked at another.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar, assert_never

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import frames, stamps
from ..errors import (
    HotlineError,
    Malformed,
    NotAuthorized,
    RateLimited,
    TooLarge,
    Unavailable,
    http_status,
)
from ..frames import encode_frame
from ..keys import Revocation, StationCertificate
from ..notes import b64
from ..wire import MAX_U63
from .core import SYNC_CHUNK, Acceptance, RelayCore, Subscriptions, answer
from .fanout import Event, Fanout, Grown, Linked, Stated
from .limits import Limits, RateLimiter, TokenBucket
from .metrics import CONTENT_TYPE, Limit, Live, RelayMetrics
from .openapi import OPENAPI

log = logging.getLogger("hotline.relay")
T = TypeVar("T")

# What sending on a WebSocket the station has left raises (Starlette, uvicorn).
_GONE = (WebSocketDisconnect, RuntimeError, OSError)
CLOSE_TIMEOUT = 2.0  # seconds to close a WebSocket politely before giving up on it


@dataclass(eq=False)
class Connection:
    ws: WebSocket
    cert: StationCertificate
    channels: list[str]
    out: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    closed: bool = False
    # A seam for test doubles of a dishonest relay: may rewrite or drop what is sent.
    outgoing: Callable[[Connection, str], str | None] | None = None
    queue_limit: int = Limits.send_queue_bytes
    queued: int = 0  # characters of the frames in ``out`` (JSON text: ASCII, so bytes)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    posting: int = 0  # posts handed to the writer and not answered yet
    posting_bytes: int = 0
    room: asyncio.Event = field(default_factory=asyncio.Event)
    # Told when a limit cuts this connection off (the relay's metrics).
    limited: Callable[[Limit], None] = field(default=lambda _limit: None)

    def posted(self, size: int) -> None:
        """The writer answered one of this connection's posts."""
        self.posting -= 1
        self.posting_bytes -= size
        self.room.set()

    def send(self, frame: str) -> None:
        """Queue a frame; the writer never waits for a slow reader, it drops it."""
        if self.closed:
            return
        if self.outgoing is not None:
            shown = self.outgoing(self, frame)
            if shown is None:
                return
            frame = shown
        if self.queued + len(frame) > self.queue_limit:
            log.warning(
                "station %s is not reading (%d bytes queued); dropping its connection",
                self.cert.ident,
                self.queued,
            )
            self.limited(Limit.SLOW_READER)
            self.close()
            return
        self.queued += len(frame)
        self.out.put_nowait(frame)

    def close(self) -> None:
        """End the connection; what was queued for it is dropped at once (a station
        catches up with sync when it reconnects)."""
        if not self.closed:
            self.closed = True
            while not self.out.empty():
                self.out.get_nowait()
            self.queued = 0
            self.out.put_nowait(None)
            self.ended.set()


@dataclass
class _Post:
    conn: Connection
    request_id: frames.RequestId
    raw: bytes


class Relay:
    """The running relay: core + database thread + writer task + connections."""

    def __init__(
        self,
        core: RelayCore,
        *,
        rate: float = 2000.0,
        burst: float = 4000.0,
        batch_max: int = 512,
        limits: Limits | None = None,
        fanout: Fanout | None = None,
    ) -> None:
        self.core = core
        self.fanout = fanout
        self.pushed: dict[str, int] = {}  # per channel: entries pushed to our stations
        self.rate, self.burst, self.batch_max = rate, burst, batch_max
        self.limits = limits or Limits()
        self.http_limiter = RateLimiter(self.limits.http_rate, self.limits.http_burst)
        self.unauthenticated: Counter[str] = Counter()  # handshakes under way, by address
        self.by_station: dict[str, set[Connection]] = {}
        self.db = ThreadPoolExecutor(1, thread_name_prefix="relay-db")
        self.queue: asyncio.Queue[_Post | None] = asyncio.Queue()
        self.subscriptions: Subscriptions[Connection] = Subscriptions()
        self.buckets: dict[str, TokenBucket] = {}
        self.byte_buckets: dict[str, TokenBucket] = {}
        self.roster_hash = hashlib.sha256(core.roster.encode()).digest()
        self.started = core.clock()
        self.metrics = RelayMetrics(core)

    outgoing: Callable[[Connection, str], str | None] | None = None

    async def run_db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.db, fn, *args)

    # --- lifecycle -------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        signed = await self.run_db(self.core.sign_unsigned)
        if signed:
            log.info("signed the first checkpoint of %s", ", ".join(signed))
        self.pushed = await self.run_db(
            lambda: {c: self.core.size(c) for c in self.core.roster.channels}
        )
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._writer())
            listener = None
            if self.fanout is not None:
                listener = tg.create_task(self.fanout.run(self._on_event, self._on_listen))
            try:
                yield
            finally:
                self.queue.put_nowait(None)
                if listener is not None:
                    listener.cancel()
                for c in self.subscriptions.online():
                    c.close()
        if self.fanout is not None:
            await self.fanout.close()
        self.db.shutdown(wait=True)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/health", self._limited(self.health)),
                Route("/metrics", self._limited(self.metrics_text)),
                Route("/roster", self._limited(self.roster)),
                Route("/openapi.json", self._limited(self.openapi)),
                Route("/certificates", self._limited(self.certificates)),
                Route("/channels/{channel}/checkpoint", self._limited(self.checkpoint)),
                Route("/channels/{channel}/proof/inclusion", self._limited(self.inclusion)),
                Route("/channels/{channel}/proof/consistency", self._limited(self.consistency)),
                # Rate-limited too: checking a request's signature is work done for anyone.
                Route("/channels/{channel}/entries", self._limited(self.http_entries)),
                WebSocketRoute("/ws", self.websocket),
            ],
            lifespan=self.lifespan,
            exception_handlers={HotlineError: error_response},
        )

    # --- the writer: group commit ------------------------------------------------

    async def _writer(self) -> None:
        while True:
            first = await self.queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.batch_max and not self.queue.empty():
                item = self.queue.get_nowait()
                if item is None:
                    self.queue.put_nowait(None)
                    break
                batch.append(item)
            try:
                results, pushes = await self.run_db(self._commit, batch)
            except Exception:
                # Storage drivers raise their own errors (sqlite3, psycopg, OSError). Whatever
                # it is, the writer lives on: it alone answers posts, and its end stops the relay.
                log.exception("storage failed; %d envelopes not accepted", len(batch))
                failed = Unavailable("relay storage failed; resend")
                self.metrics.refused.labels(failed.code).inc(len(batch))
                for post in batch:
                    post.conn.posted(len(post.raw))
                    post.conn.send(encode_frame(frames.ErrorReply.of(post.request_id, failed)))
                continue
            # Pushed before the answers: a sender that takes its own entry in first (one
            # commit, which marks it accepted) has nothing left to write for the answer.
            self._push(pushes)
            for post, result in zip(batch, results, strict=True):
                post.conn.posted(len(post.raw))
                if isinstance(result, HotlineError):
                    log.info("refused envelope from %s: %s", post.conn.cert.ident, result.code)
                    self.metrics.refused.labels(result.code).inc()
                elif result.duplicate:
                    self.metrics.duplicates.labels(result.entry.channel).inc()
                else:
                    self.metrics.accepted.labels(result.entry.channel).inc()
                post.conn.send(encode_frame(answer(post.request_id, result)))

    def _commit(
        self, batch: list[_Post]
    ) -> tuple[list[Acceptance | HotlineError], list[frames.Entries]]:
        """On the database thread: accept the batch, then build the push frames."""
        started = time.perf_counter()
        if stamps.enabled():
            stamps.stamp_raw("relay_commit_started", "relay", (p.raw for p in batch))
        results = self.core.accept([(p.conn.cert.ident, p.raw) for p in batch])
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        if stamps.enabled():
            for r in results:
                if not isinstance(r, HotlineError):
                    stamps.stamp("relay_committed", "relay", r.entry.hash)
        return results, self._in_order(self.core.pushes(results))

    def _in_order(self, ours: list[frames.Entries]) -> list[frames.Entries]:
        """On the database thread: this process's new entries, each after any that another
        process appended just before them, and remembered as pushed."""
        pushes: list[frames.Entries] = []
        for push in ours:
            pushes += self._catch_up(push.channel, push.start)
            pushes.append(push)
            self.pushed[push.channel] = max(
                self.pushed.get(push.channel, 0), push.start + len(push.entries)
            )
        return pushes

    def _key_event_pushes(self) -> list[frames.Entries]:
        """On the database thread: the key events this process logged, in order."""
        return self._in_order(self.core.key_event_pushes())

    # --- other relay processes on the same database (fanout.py) -----------------------

    def _catch_up(self, channel: str, size: int) -> list[frames.Entries]:
        """On the database thread: the entries up to ``size`` not pushed yet (at most a
        sync chunk: a station missing more asks for them)."""
        if size > self.core.size(channel):
            self.core.refresh(channel)
            size = min(size, self.core.size(channel))
        start = max(self.pushed.get(channel, size), size - SYNC_CHUNK)
        if start >= size:
            return []
        self.pushed[channel] = size
        entries = self.core.entries(channel, start, size)
        return [
            self.core.entries_frame(channel, chunk, chunk[0].index, None)
            for chunk in frames.fitting(entries)
        ]

    def _fresh(self, channel: str) -> int:
        """On the database thread: the channel's size as stored (another process may
        have appended since this one last did), so nobody sees the log shrink."""
        stored = self.core.store.nodes(channel).size() if self.fanout is not None else None
        if stored is not None and stored != self.core.size(channel):
            self.core.refresh(channel)
        return self.core.size(channel)

    def _push(self, pushes: list[frames.Entries]) -> None:
        for push in pushes:
            text = encode_frame(push)
            for conn in self.subscriptions.of(push.channel):
                conn.send(text)
            stamps.stamp_raw("push_queued", "relay", (e.envelope for e in push.entries))

    async def _on_listen(self) -> None:
        """Listening (again): take the statements and push the entries that other
        processes stored meanwhile, and end the sessions of keys revoked meanwhile."""

        def work() -> list[frames.Entries]:
            out: list[frames.Entries] = []
            for channel in self.core.roster.channels:
                out += self._catch_up(channel, self._fresh(channel))
            return out

        for revocation in await self.run_db(self.core.learn_all):
            self.end_sessions(revocation)
        self._push(await self.run_db(work))

    async def _on_event(self, event: Event) -> None:
        """What another relay process did, for this one's stations."""
        match event:
            case Grown(channel=channel, size=size):
                if channel in self.core.roster.channels:
                    self._push(await self.run_db(self._catch_up, channel, size))
            case Stated(kind=kind, key=key):
                learned = await self.run_db(self.core.learn, kind, key)
                if isinstance(learned, Revocation):
                    self.end_sessions(learned)
                if learned is not None:
                    self._broadcast(await self.run_db(self.core.certificates_frame, None))
            case Linked(channel=channel, frame=text):
                frame = frames.decode_relay_frame(text)
                if not isinstance(frame, frames.Link) or frame.link.channel != channel:
                    raise Malformed("a forwarded link test must be a link frame of its channel")
                for conn in self.subscriptions.of(channel):
                    conn.send(text)
            case _:
                assert_never(event)

    # --- WebSocket ---------------------------------------------------------------

    async def websocket(self, ws: WebSocket) -> None:
        address = ws.client.host if ws.client else ""
        conn: Connection | None = None
        try:
            if self.unauthenticated[address] >= self.limits.unauthenticated_per_address:
                self.metrics.limit(Limit.UNAUTHENTICATED)
                await ws.accept()
                await _refuse(ws, RateLimited("too many unauthenticated connections"))
                return
            self.unauthenticated[address] += 1
            try:
                await ws.accept()
                conn = await self._handshake(ws)
            finally:
                self.unauthenticated[address] -= 1
                if not self.unauthenticated[address]:
                    del self.unauthenticated[address]
            if conn is None:
                return
            await self._serve(conn)
        except* WebSocketDisconnect:
            pass
        except* Exception:
            # One connection's failure, whatever it is, must not reach the server and take
            # the relay (and every other station's connection) down: log it, end this one.
            log.exception("connection handler failed")
        finally:
            if conn is not None:
                self.subscriptions.leave(conn, conn.channels)
                self.by_station.get(conn.cert.ident, set()).discard(conn)
                log.info("station %s disconnected", conn.cert.ident)

    async def _serve(self, conn: Connection) -> None:
        """Read and send until either side ends the connection, then close it."""
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(self._sender(conn)), tg.create_task(self._reader(conn))]
            await conn.ended.wait()
            # A reader that sends nothing or a sender stuck on a full socket must not
            # keep the connection (and what it holds) alive.
            for task in tasks:
                task.cancel()
        with contextlib.suppress(*_GONE, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await conn.ws.close()

    async def _handshake(self, ws: WebSocket) -> Connection | None:
        nonce = secrets.token_bytes(32)
        challenge = frames.Challenge(nonce, self.roster_hash, self.core.now_ms())
        try:
            async with asyncio.timeout(self.limits.handshake_timeout):
                await ws.send_text(encode_frame(challenge))
                msg = await ws.receive()
                hello = frames.decode_station_frame(_text_of(msg))
                if not isinstance(hello, frames.Hello):
                    raise Malformed("expected hello")
                message = frames.auth_message(nonce, hello.station, self.roster_hash)
                cert = await self.run_db(
                    self.core.authenticate, hello.certificate, message, hello.signature
                )
            if cert.ident != hello.station:
                raise NotAuthorized(f"certificate is for {cert.ident}, not {hello.station}")
            online = self.by_station.setdefault(cert.ident, set())
            if len(online) >= self.limits.connections_per_station:
                self.metrics.limit(Limit.CONNECTIONS_PER_STATION)
                raise RateLimited(
                    f"station {cert.ident} already has {len(online)} connections; close one first"
                )
        except (HotlineError, TimeoutError) as exc:
            err = exc if isinstance(exc, HotlineError) else Malformed("no hello in time")
            log.info("authentication refused: %s", err.code)
            await _refuse(ws, err)
            return None
        channels = self.core.channels_of(cert.party)
        conn = Connection(
            ws,
            cert,
            channels,
            outgoing=self.outgoing,
            queue_limit=self.limits.send_queue_bytes,
            limited=self.metrics.limit,
        )
        online.add(conn)
        sizes = await self.run_db(lambda: [(c, self._fresh(c)) for c in channels])
        self.subscriptions.join(conn, channels)
        self.buckets.setdefault(cert.ident, TokenBucket(self.rate, self.burst))
        self.byte_buckets.setdefault(
            cert.ident,
            TokenBucket(self.limits.station_bytes_per_second, self.limits.station_bytes_burst),
        )
        log.info("station %s authenticated", cert.ident)
        conn.send(
            encode_frame(
                frames.Welcome(cert.ident, tuple(channels), tuple(sizes), self.core.now_ms())
            )
        )
        # Introduce the newcomer's certificate to every station online (to seal to it),
        # and push its key events: stations accept its envelopes only after those.
        self._broadcast(await self.run_db(self.core.certificates_frame, None), skip=conn)
        self._push(await self.run_db(self._key_event_pushes))
        return conn

    def end_sessions(self, revocation: Revocation) -> None:
        """Close at once every session of the revoked station key: what it was let in
        with is withdrawn, and authenticate refuses the key from now on."""
        for conn in list(self.by_station.get(revocation.ident, ())):
            if conn.cert.signing == revocation.signing:
                log.info("station %s: key revoked; closing its session", revocation.ident)
                conn.close()

    def _broadcast(self, frame: frames.RelayFrame, skip: Connection | None = None) -> None:
        """Send a frame to every station online (each connection once)."""
        text = encode_frame(frame)
        for other in self.subscriptions.online():
            if other is not skip:
                other.send(text)

    async def _sender(self, conn: Connection) -> None:
        while True:
            frame = await conn.out.get()
            if frame is None:
                return
            conn.queued -= len(frame)
            try:
                await conn.ws.send_text(frame)
            except _GONE:
                conn.close()
                return

    async def _reader(self, conn: Connection) -> None:
        try:
            await self._read(conn)
        finally:
            conn.close()

    async def _read(self, conn: Connection) -> None:
        bucket = self.buckets[conn.cert.ident]
        byte_bucket = self.byte_buckets[conn.cert.ident]
        strikes = 0
        while not conn.closed:
            msg = await conn.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            request_id: frames.RequestId = None
            try:
                text = _text_of(msg)
                if (wait := byte_bucket.charge(len(text))) > 0:
                    await asyncio.sleep(wait)  # this station's bytes, at its rate
                data = frames.parse_object(text)  # size-checked before parsing
                request_id = frames.request_id_of(data)
                if not bucket.take():
                    strikes += 1
                    if strikes > 5000:
                        log.warning("station %s keeps flooding; closing", conn.cert.ident)
                        self.metrics.limit(Limit.FLOOD)
                        conn.close()
                        return
                    self.metrics.limit(Limit.FRAME_RATE)
                    raise RateLimited("too many frames; slow down")
                strikes = 0
                await self._dispatch(conn, frames.station_frame(data))
            except HotlineError as exc:
                log.info("bad frame from %s: %s", conn.cert.ident, exc.code)
                conn.send(encode_frame(frames.ErrorReply.of(request_id, exc)))

    async def _dispatch(self, conn: Connection, frame: frames.StationFrame) -> None:
        """Act on one frame of a station. Test doubles hook in here to watch what it sends."""
        party = conn.cert.party
        match frame:
            case frames.Post(envelope=raw, id=rid):
                stamps.stamp_raw("relay_received", "relay", (raw,))
                await self._admit(conn, len(raw))
                self.queue.put_nowait(_Post(conn, rid, raw))
            case frames.Sync(channel=channel, start=start, id=rid):
                self.core.may_read(party, channel)
                if self.fanout is not None:
                    await self.run_db(self._fresh, channel)
                conn.send(encode_frame(await self.run_db(self.core.sync, channel, start, rid)))
            case frames.Cosign(channel=channel, size=size, checkpoint=note, id=rid):
                self.core.may_read(party, channel)
                await self.run_db(self.core.add_cosignature, channel, size, note, conn.cert.ident)
                conn.send(encode_frame(frames.Ok(rid)))
            case frames.GetCertificates(id=rid):
                conn.send(encode_frame(await self.run_db(self.core.certificates_frame, rid)))
            case frames.Revoke(data=note, id=rid):
                revocation = await self.run_db(self.core.register_revocation, note)
                conn.send(encode_frame(frames.Ok(rid)))
                self.end_sessions(revocation)
                self._push(await self.run_db(self._key_event_pushes))
                # Every station online learns of it at once, before anything signed after it.
                self._broadcast(await self.run_db(self.core.certificates_frame, None))
            case frames.Link(link=link):
                # Link tests are forwarded, never logged; stations verify their signatures.
                text = encode_frame(frame)
                channel = self.core.link_channel(conn.cert, link)
                for other in self.subscriptions.link_recipients(channel, conn):
                    other.send(text)
                if self.fanout is not None:  # stations of the channel at other processes
                    await self.fanout.publish(Linked(channel, text))
            case frames.Ping(id=rid):
                conn.send(encode_frame(frames.Pong(rid, self.core.now_ms())))
            case frames.Hello():
                raise Malformed("unknown op 'hello' (the station is authenticated)", field="op")
            case _:
                assert_never(frame)

    async def _admit(self, conn: Connection, size: int) -> None:
        """Wait until the connection has room for one more post in flight: a flood then
        waits in its own socket (TCP backpressure), not in the relay's memory."""
        limits = self.limits
        while conn.posting and (
            conn.posting >= limits.posts_in_flight
            or conn.posting_bytes + size > limits.post_bytes_in_flight
        ):
            conn.room.clear()
            await conn.room.wait()
        conn.posting += 1
        conn.posting_bytes += size

    # --- HTTP ----------------------------------------------------------------------

    def _limited(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """The handler behind a per-address rate limit (429 ``rate_limited`` beyond it)."""

        async def limited(request: Request) -> Response:
            address = request.client.host if request.client else ""
            if not self.http_limiter.take(address):
                self.metrics.http_rate_limited.inc()
                raise RateLimited("too many requests from this address; slow down")
            return await handler(request)

        return limited

    async def health(self, request: Request) -> Response:
        sizes = await self.run_db(lambda: {c: self._fresh(c) for c in self.core.roster.channels})
        online = sorted({c.cert.ident for c in self.subscriptions.online()})
        return JSONResponse(
            {
                "ok": True,
                "roster": self.core.roster.name,
                "channels": sizes,
                "stations_online": online,
                "relay_ms": self.core.now_ms(),
                "uptime_s": int(self.core.clock() - self.started),
            }
        )

    async def metrics_text(self, request: Request) -> Response:
        """Prometheus metrics: unauthenticated (no secrets in them), rate-limited."""
        online = self.subscriptions.online()
        parties = Counter(c.cert.party for conns in self.by_station.values() for c in conns)
        live = Live(
            connections=dict(parties),
            unauthenticated=sum(self.unauthenticated.values()),
            stations_online=len({c.cert.ident for c in online}),
            writer_queue=self.queue.qsize(),
            uptime_s=self.core.clock() - self.started,
        )
        text = await self.run_db(self.metrics.render, live)
        return Response(text, media_type=CONTENT_TYPE)

    async def roster(self, request: Request) -> Response:
        return PlainTextResponse(self.core.roster.encode().decode())

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(OPENAPI)

    async def certificates(self, request: Request) -> Response:
        st = await self.run_db(self.core.statements)
        return JSONResponse({k: [v.decode() for v in vs] for k, vs in st.items()})

    async def checkpoint(self, request: Request) -> Response:
        channel = request.path_params["channel"]
        size = _query_int(request, "size", None)
        self.core.roster.channel(channel)
        await self.run_db(self._fresh, channel)
        note = await self.run_db(self.core.published_checkpoint, channel, size)
        return PlainTextResponse(note.decode())

    async def inclusion(self, request: Request) -> Response:
        channel = request.path_params["channel"]
        index = _query_int(request, "index", None)
        size = _query_int(request, "size", None)
        if index is None:
            raise Malformed("index is required", field="index")

        def work() -> dict[str, Any]:
            self.core.roster.channel(channel)
            self._fresh(channel)
            n = self.core.size(channel) if size is None else size
            entry = self.core.entries(channel, index, index + 1)
            if not entry:
                raise Malformed(f"no entry {index} in {channel}", field="index")
            return {
                "index": index,
                "size": n,
                "leaf_hash": b64(self.core.tree(channel).leaf_hash_at(index)),
                "proof": frames.hashes(self.core.tree(channel).inclusion_proof(index, n)),
            }

        return JSONResponse(await self.run_db(work))

    async def consistency(self, request: Request) -> Response:
        channel = request.path_params["channel"]
        first = _query_int(request, "from", None)
        second = _query_int(request, "to", None)
        if first is None:
            raise Malformed("from is required", field="from")

        def work() -> dict[str, Any]:
            self.core.roster.channel(channel)
            self._fresh(channel)
            n = self.core.size(channel) if second is None else second
            return {
                "from": first,
                "to": n,
                "proof": frames.hashes(self.core.tree(channel).consistency_proof(first, n)),
            }

        return JSONResponse(await self.run_db(work))

    async def http_entries(self, request: Request) -> Response:
        """Entries from a cursor, for a member station that signs the request."""
        channel = request.path_params["channel"]
        start = _query_int(request, "after", 0) or 0
        limit = min(_query_int(request, "limit", SYNC_CHUNK) or SYNC_CHUNK, SYNC_CHUNK)
        authorization = request.headers.get("authorization", "")
        url = request.url
        cert = await self.run_db(
            self.core.authenticate_request, authorization, request.method, url.path, url.query
        )
        self.core.may_read(cert.party, channel)

        def work() -> dict[str, Any]:
            size = self._fresh(channel)
            entries = self.core.entries(channel, start, start + limit)
            return {
                "channel": channel,
                "size": size,
                "entries": [
                    frames.Entry(e.index, e.envelope, e.relay_ms, e.kind).wire() for e in entries
                ],
            }

        return JSONResponse(await self.run_db(work))


def _text_of(msg: Any) -> str:
    if msg.get("type") == "websocket.disconnect":
        raise WebSocketDisconnect(msg.get("code", 1000))
    text = msg.get("text")
    if text is None:
        data = msg.get("bytes") or b""
        if len(data) > frames.MAX_FRAME:
            raise TooLarge(f"frame is {len(data)} bytes; the limit is {frames.MAX_FRAME}")
        raise Malformed("frames must be text (JSON)")
    return str(text)


def _query_int(request: Request, name: str, default: int | None) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return default
    # ASCII digits only ("²".isdigit() holds), and no more than a 63-bit count.
    if not (value.isascii() and value.isdigit() and len(value) <= 19):
        raise Malformed(f"{name} must be a non-negative integer", field=name)
    if int(value) > MAX_U63:
        raise Malformed(f"{name} must be a non-negative integer", field=name)
    return int(value)


async def _refuse(ws: WebSocket, err: HotlineError) -> None:
    """Tell a connection that did not get in why, and close it (it may not be reading)."""
    with contextlib.suppress(*_GONE, TimeoutError):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await ws.send_text(encode_frame(frames.ErrorReply.of(None, err)))
            await ws.close(code=1008)


async def error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HotlineError)
    headers = {"Retry-After": "1"} if isinstance(exc, RateLimited) else None
    return JSONResponse({"error": exc.to_dict()}, status_code=http_status(exc), headers=headers)
