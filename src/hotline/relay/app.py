"""The relay's network shell: a Starlette ASGI app with one WebSocket endpoint
for stations and a small HTTP API. All storage work runs on one database thread;
accepted envelopes are committed in batches (group commit) before any answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import frames
from ..errors import HotlineError, Malformed, NotAuthorized, RateLimited, TooLarge
from ..keys import StationCertificate
from ..notes import b64, unb64
from .core import Acceptance, RelayCore
from .openapi import OPENAPI
from .storage import StoredEntry

log = logging.getLogger("hotline.relay")
T = TypeVar("T")

SYNC_CHUNK = 1000
OUT_QUEUE_LIMIT = 20_000
HTTP_AUTH_SKEW = 120


class TokenBucket:
    """Per-station rate limit: ``rate`` frames per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.stamp = burst, clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass(eq=False)
class Connection:
    ws: WebSocket
    cert: StationCertificate
    channels: list[str]
    out: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    closed: bool = False
    # A seam for test doubles of a dishonest relay: may rewrite or drop what is sent.
    outgoing: Callable[[Connection, str], str | None] | None = None

    def send(self, frame: str) -> None:
        if self.closed:
            return
        if self.outgoing is not None:
            shown = self.outgoing(self, frame)
            if shown is None:
                return
            frame = shown
        if self.out.qsize() > OUT_QUEUE_LIMIT:
            log.warning("station %s is not reading; dropping its connection", self.cert.ident)
            self.close()
            return
        self.out.put_nowait(frame)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.out.put_nowait(None)


@dataclass
class _Post:
    conn: Connection
    request_id: Any
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
    ) -> None:
        self.core = core
        self.rate, self.burst, self.batch_max = rate, burst, batch_max
        self.db = ThreadPoolExecutor(1, thread_name_prefix="relay-db")
        self.queue: asyncio.Queue[_Post | None] = asyncio.Queue()
        self.subscribers: dict[str, set[Connection]] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self.roster_hash = hashlib.sha256(core.roster.encode()).digest()
        self.started = time.time()

    outgoing: Callable[[Connection, str], str | None] | None = None

    async def run_db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.db, fn, *args)

    # --- lifecycle -------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._writer())
            try:
                yield
            finally:
                self.queue.put_nowait(None)
                for conns in self.subscribers.values():
                    for c in conns:
                        c.close()
        self.db.shutdown(wait=True)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/health", self.health),
                Route("/roster", self.roster),
                Route("/openapi.json", self.openapi),
                Route("/certificates", self.certificates),
                Route("/channels/{channel}/checkpoint", self.checkpoint),
                Route("/channels/{channel}/proof/inclusion", self.inclusion),
                Route("/channels/{channel}/proof/consistency", self.consistency),
                Route("/channels/{channel}/entries", self.http_entries),
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
                log.exception("storage failed; %d envelopes not accepted", len(batch))
                for post in batch:
                    post.conn.send(
                        frames.encode(
                            "error",
                            id=post.request_id,
                            error={
                                "code": "unavailable",
                                "message": "relay storage failed; resend",
                            },
                        )
                    )
                continue
            for post, result in zip(batch, results, strict=True):
                post.conn.send(self._answer(post, result))
            for channel, frame in pushes:
                for conn in list(self.subscribers.get(channel, ())):
                    conn.send(frame)

    def _commit(
        self, batch: list[_Post]
    ) -> tuple[list[Acceptance | HotlineError], list[tuple[str, str]]]:
        """On the database thread: accept the batch, then build the push frames."""
        results = self.core.accept([(p.conn.cert.ident, p.raw) for p in batch])
        new: dict[str, list[StoredEntry]] = {}
        for r in results:
            if isinstance(r, Acceptance) and not r.duplicate:
                new.setdefault(r.entry.channel, []).append(r.entry)
        pushes = []
        for channel, entries in new.items():
            entries.sort(key=lambda e: e.index)
            for chunk in fitting(entries):
                pushes.append((channel, self._entries_frame(channel, chunk, chunk[0].index, None)))
        return results, pushes

    def _entries_frame(
        self,
        channel: str,
        entries: list[StoredEntry],
        start: int,
        request_id: Any,
        more: bool = False,
    ) -> str:
        size = entries[-1].index + 1 if entries else start
        note = self.core.checkpoint(channel, size)
        proof = self.core.tree(channel).consistency_proof(start, size) if 0 < start < size else []
        return frames.encode(
            "entries",
            id=request_id,
            channel=channel,
            start=start,
            entries=[
                {"index": e.index, "envelope": b64(e.envelope), "relay_ms": e.relay_ms}
                for e in entries
            ],
            checkpoint=note.decode(),
            consistency=frames.hashes(proof),
            more=more,
        )

    def _answer(self, post: _Post, result: Acceptance | HotlineError) -> str:
        if isinstance(result, HotlineError):
            log.info("refused envelope from %s: %s", post.conn.cert.ident, result.code)
            return frames.encode("error", id=post.request_id, error=result.to_dict())
        e = result.entry
        return frames.encode(
            "accepted",
            id=post.request_id,
            channel=e.channel,
            index=e.index,
            hash=b64(e.hash),
            seq=e.seq,
            relay_ms=e.relay_ms,
            duplicate=result.duplicate,
            checkpoint=result.checkpoint.decode(),
            proof=frames.hashes(result.proof),
        )

    # --- WebSocket ---------------------------------------------------------------

    async def websocket(self, ws: WebSocket) -> None:
        await ws.accept()
        conn: Connection | None = None
        try:
            conn = await self._handshake(ws)
            if conn is None:
                return
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._sender(conn))
                try:
                    await self._reader(conn)
                finally:
                    conn.close()
        except WebSocketDisconnect:
            pass
        except Exception:
            log.exception("connection handler failed")
        finally:
            if conn is not None:
                for ch in conn.channels:
                    self.subscribers.get(ch, set()).discard(conn)
                log.info("station %s disconnected", conn.cert.ident)

    async def _handshake(self, ws: WebSocket) -> Connection | None:
        nonce = secrets.token_bytes(32)
        await ws.send_text(
            frames.encode(
                "challenge",
                nonce=b64(nonce),
                roster=b64(self.roster_hash),
                relay_ms=self.core.now_ms(),
            )
        )
        try:
            async with asyncio.timeout(15):
                msg = await ws.receive()
            text = _text_of(msg)
            hello = frames.decode(text)
            if hello["op"] != "hello":
                raise Malformed("expected hello")
            station = frames.field_str(hello, "station")
            cert_data = frames.field_bytes(hello, "certificate")
            signature = frames.field_bytes(hello, "signature")
            message = frames.auth_message(nonce, station, self.roster_hash)
            cert = await self.run_db(self.core.authenticate, cert_data, message, signature)
            if cert.ident != station:
                raise NotAuthorized(f"certificate is for {cert.ident}, not {station}")
        except (HotlineError, TimeoutError) as exc:
            err = exc if isinstance(exc, HotlineError) else Malformed("no hello in time")
            log.info("authentication refused: %s", err.code)
            await ws.send_text(frames.encode("error", id=None, error=err.to_dict()))
            await ws.close(code=1008)
            return None
        channels = self.core.channels_of(cert.party)
        conn = Connection(ws, cert, channels, outgoing=self.outgoing)
        sizes = await self.run_db(lambda: {c: self.core.size(c) for c in channels})
        for ch in channels:
            self.subscribers.setdefault(ch, set()).add(conn)
        self.buckets.setdefault(cert.ident, TokenBucket(self.rate, self.burst))
        log.info("station %s authenticated", cert.ident)
        conn.send(
            frames.encode(
                "welcome",
                station=cert.ident,
                channels=channels,
                sizes=sizes,
                relay_ms=self.core.now_ms(),
            )
        )
        # Introduce the newcomer's certificate to every station online.
        self._broadcast(await self.run_db(self._certificates_frame, None), skip=conn)
        return conn

    def _broadcast(self, frame: str, skip: Connection | None = None) -> None:
        """Send a frame to every station online (each connection once)."""
        for other in {c for conns in self.subscribers.values() for c in conns}:
            if other is not skip:
                other.send(frame)

    def _certificates_frame(self, request_id: Any) -> str:
        st = self.core.statements()
        return frames.encode(
            "certificates",
            id=request_id,
            certificates=[c.decode() for c in st["certificates"]],
            revocations=[r.decode() for r in st["revocations"]],
        )

    async def _sender(self, conn: Connection) -> None:
        while True:
            frame = await conn.out.get()
            if frame is None:
                with contextlib.suppress(Exception):
                    await conn.ws.close()
                return
            try:
                await conn.ws.send_text(frame)
            except Exception:
                conn.close()
                return

    async def _reader(self, conn: Connection) -> None:
        bucket = self.buckets[conn.cert.ident]
        strikes = 0
        while not conn.closed:
            msg = await conn.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            request_id = None
            try:
                frame = frames.decode(_text_of(msg))  # size-checked before parsing
                request_id = frame.get("id")
                if not bucket.take():
                    strikes += 1
                    if strikes > 5000:
                        log.warning("station %s keeps flooding; closing", conn.cert.ident)
                        conn.close()
                        return
                    raise RateLimited("too many frames; slow down")
                strikes = 0
                await self._handle(conn, frame, request_id)
            except HotlineError as exc:
                log.info("bad frame from %s: %s", conn.cert.ident, exc.code)
                conn.send(frames.encode("error", id=request_id, error=exc.to_dict()))

    async def _handle(self, conn: Connection, frame: dict[str, Any], request_id: Any) -> None:
        op = frame["op"]
        if op == "post":
            raw = frames.field_bytes(frame, "envelope")
            self.queue.put_nowait(_Post(conn, request_id, raw))
        elif op == "sync":
            channel = frames.field_str(frame, "channel")
            self.core.may_read(conn.cert.party, channel)
            start = frames.field_int(frame, "from")
            conn.send(await self.run_db(self._sync, channel, start, request_id))
        elif op == "cosign":
            channel = frames.field_str(frame, "channel")
            self.core.may_read(conn.cert.party, channel)
            size = frames.field_int(frame, "size")
            note = frames.field_str(frame, "checkpoint").encode()
            await self.run_db(self.core.add_cosignature, channel, size, note, conn.cert.ident)
            conn.send(frames.encode("ok", id=request_id))
        elif op == "certificates":
            conn.send(await self.run_db(self._certificates_frame, request_id))
        elif op == "revocation":
            await self.run_db(
                self.core.register_revocation, frames.field_str(frame, "data").encode()
            )
            conn.send(frames.encode("ok", id=request_id))
            # Every station online learns of it at once, before anything signed after it.
            self._broadcast(await self.run_db(self._certificates_frame, None))
        elif op == "link":
            # Link tests are forwarded, never logged; stations verify their signatures.
            msg = frame.get("link")
            if not isinstance(msg, dict) or msg.get("from") != conn.cert.ident:
                raise NotAuthorized("a link test must come from the connected station")
            channel = str(msg.get("channel"))
            self.core.may_read(conn.cert.party, channel)
            out = frames.encode("link", link=msg)
            for other in list(self.subscribers.get(channel, ())):
                if other is not conn:
                    other.send(out)
        elif op == "ping":
            conn.send(frames.encode("pong", id=request_id, relay_ms=self.core.now_ms()))
        else:
            raise Malformed(f"unknown op {op!r}", field="op")

    def _sync(self, channel: str, start: int, request_id: Any) -> str:
        size = self.core.size(channel)
        if start > size:
            raise Malformed(
                f"{channel} has only {size} entries; cannot sync from {start}",
                channel=channel,
                field="from",
            )
        stop = min(size, start + SYNC_CHUNK)
        entries = self.core.entries(channel, start, stop)
        if entries:
            entries = next(fitting(entries))
        end = entries[-1].index + 1 if entries else start
        return self._entries_frame(channel, entries, start, request_id, more=end < size)

    # --- HTTP ----------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        sizes = await self.run_db(lambda: {c: self.core.size(c) for c in self.core.roster.channels})
        online = sorted({c.cert.ident for conns in self.subscribers.values() for c in conns})
        return JSONResponse(
            {
                "ok": True,
                "roster": self.core.roster.name,
                "channels": sizes,
                "stations_online": online,
                "relay_ms": self.core.now_ms(),
                "uptime_s": int(time.time() - self.started),
            }
        )

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
        note = await self.run_db(self.core.checkpoint, channel, size)
        return PlainTextResponse(note.decode())

    async def inclusion(self, request: Request) -> Response:
        channel = request.path_params["channel"]
        index = _query_int(request, "index", None)
        size = _query_int(request, "size", None)
        if index is None:
            raise Malformed("index is required", field="index")

        def work() -> dict[str, Any]:
            self.core.roster.channel(channel)
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
        cert = await self._http_station(request)
        self.core.may_read(cert.party, channel)

        def work() -> dict[str, Any]:
            size = self.core.size(channel)
            entries = self.core.entries(channel, start, start + limit)
            return {
                "channel": channel,
                "size": size,
                "entries": [
                    {"index": e.index, "envelope": b64(e.envelope), "relay_ms": e.relay_ms}
                    for e in entries
                ],
            }

        return JSONResponse(await self.run_db(work))

    async def _http_station(self, request: Request) -> StationCertificate:
        header = request.headers.get("authorization", "")
        if not header.startswith("Hotline "):
            raise NotAuthorized(
                "sign the request: Authorization: Hotline station=..,time=..,signature=.."
            )
        parts = dict(p.strip().split("=", 1) for p in header[8:].split(",") if "=" in p)
        station, stamp, sig = (
            parts.get("station", ""),
            parts.get("time", ""),
            parts.get("signature", ""),
        )
        if not stamp.isdigit() or abs(int(stamp) - time.time()) > HTTP_AUTH_SKEW:
            raise NotAuthorized("request time is missing or too far from the relay's clock")
        message = http_auth_message(request.method, request.url.path, request.url.query, int(stamp))
        certs = await self.run_db(self.core.keyring.station, station, int(time.time()))
        signature = unb64(sig, "signature")
        for cert in certs:
            if cert.verify(message, signature):
                return cert
        raise NotAuthorized(f"request signature of {station} does not verify")


FRAME_BUDGET = frames.MAX_FRAME * 3 // 4  # room for the checkpoint and proof


def fitting(entries: list[StoredEntry]) -> Iterator[list[StoredEntry]]:
    """Consecutive runs of entries whose frame stays under the stations' frame limit."""
    chunk: list[StoredEntry] = []
    used = 0
    for e in entries:
        cost = len(e.envelope) * 4 // 3 + 80  # base64 and the JSON around it
        if chunk and used + cost > FRAME_BUDGET:
            yield chunk
            chunk, used = [], 0
        chunk.append(e)
        used += cost
    if chunk:
        yield chunk


def http_auth_message(method: str, path: str, query: str, stamp: int) -> bytes:
    return f"hotline-http/v1\n{method}\n{path}?{query}\n{stamp}".encode()


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
    if not value.isdigit():
        raise Malformed(f"{name} must be a non-negative integer", field=name)
    return int(value)


async def error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HotlineError)
    status = 400 if exc.code in ("malformed", "bad_input", "too_large") else 403
    if isinstance(exc, RateLimited):
        status = 429
    return JSONResponse({"error": exc.to_dict()}, status_code=status)
