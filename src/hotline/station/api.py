"""The station's local HTTP API (127.0.0.1 by default), used by the CLI and console.

Every request carries ``Authorization: Bearer <token>`` (the token file in the
station directory) or, for the console, a signed-in operator session.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
from collections.abc import Callable
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import body as body_mod
from .. import forms, stamps, transcript
from ..envelope import Kind, Precedence
from ..errors import HotlineError, Malformed, Unauthenticated, http_status
from ..forms.render import error_text as render_error
from ..i18n import LANGUAGES, t
from ..keys import StationCertificate, StationKey
from ..notes import b64
from ..translate import translate
from . import paging
from .core import StationCore
from .export import export
from .service import StationService
from .store import Message, OutboxItem, OutboxState

MAX_REQUEST = 128 * 1024
# Test only: the station exits right after a keyed send is committed, before it answers
# (how tests cut a send between its commit and its answer, every time).
CRASH_AFTER_SEND = "HOTLINE_TEST_CRASH_AFTER_SEND"
RECEIVED_WAIT_MAX_S = 25.0  # GET /api/received waits at most this long for a message


def precedence_of(name: str) -> Precedence:
    try:
        return Precedence[name.upper()]
    except KeyError as exc:
        raise Malformed(
            f"precedence must be one of {', '.join(p.name for p in Precedence)}", field="precedence"
        ) from exc


KeyLoader = Callable[[], tuple[StationKey, StationCertificate, list[StationKey]]]
"""Reads the station's key, certificate and retired keys from its directory."""


class StationAPI:
    def __init__(
        self,
        service: StationService,
        token: str,
        language: str = "en",
        reload_key: KeyLoader | None = None,
    ) -> None:
        self.service = service
        self.core = service.core
        self.token = token
        self.language = language
        self.reload_key = reload_key

    def check(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        given = header[7:] if header.startswith("Bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise Unauthenticated("missing or wrong API token")

    async def body(self, request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length") or "0"
        if not declared.isascii() or not declared.isdigit():
            raise Malformed("Content-Length is not a number", field="content-length")
        if int(declared) > MAX_REQUEST:
            raise Malformed(f"request over {MAX_REQUEST} bytes")
        raw = await request.body()
        if len(raw) > MAX_REQUEST:
            raise Malformed(f"request over {MAX_REQUEST} bytes")
        try:
            data = json.loads(raw or b"{}")
        except (ValueError, RecursionError) as exc:
            raise Malformed("request body is not JSON") from exc
        if not isinstance(data, dict):
            raise Malformed("request body must be a JSON object")
        return data

    def routes(self) -> list[Route]:
        return [
            Route("/api/status", self.status),
            Route("/api/send", self.send, methods=["POST"]),
            Route("/api/inbox", self.inbox),
            Route("/api/messages/{channel}/{index:int}", self.message),
            Route("/api/sent", self.sent),
            Route("/api/sent/{channel}/{seq:int}", self.sent_one),
            Route("/api/ack", self.ack, methods=["POST"]),
            Route("/api/rotate", self.rotate, methods=["POST"]),
            Route("/api/key-events", self.key_events, methods=["GET", "POST"]),
            Route("/api/alarms", self.alarms),
            Route("/api/alarms/{alarm_id:int}/clear", self.clear_alarm, methods=["POST"]),
            Route("/api/wait", self.wait),
            Route("/api/received", self.received),
            Route("/api/export/{channel}", self.export),
        ]

    # --- handlers ----------------------------------------------------------------------

    async def status(self, request: Request) -> Response:
        self.check(request)
        return JSONResponse(await self.service.run_db(self.status_view))

    def status_view(self) -> dict[str, Any]:
        core, store, link = self.core, self.core.store, self.service.link
        channels = {}
        for ch in core.channels:
            verified = core.verified(ch)
            channels[ch] = {
                "cursor": core.size(ch),
                "verified_size": verified.size if verified else 0,
                "verified_root": b64(verified.root) if verified else None,
                "members": list(core.roster.channel(ch).members),
            }
        counts = store.outbox_counts()
        return {
            "station": core.ident,
            "party": core.key.party,
            "roster": core.roster.name,
            "relay": {
                "url": self.service.relay_url,
                "urls": self.service.failover.urls,
                "connected": link.connected,
                "since_ms": link.since_ms,
                "last_contact_ms": link.last_contact_ms,
                "rtt_ms": link.rtt_ms,
                "last_error": link.last_error,
            },
            "relays": self._paths_view(),
            "outbox": {str(state): counts.get(state, 0) for state in OutboxState},
            "channels": channels,
            "links": core.link_view(),
            "open_alarms": store.open_alarm_count(),
        }

    def _paths_view(self) -> dict[str, dict[str, Any]]:
        """With several relays: each relay's link, log sizes and what it has not taken."""
        core, out = self.core, {}
        for name, path in self.service.paths.items():
            link = path.link
            out[name] = {
                "url": path.relay_url,
                "connected": link.connected,
                "last_contact_ms": link.last_contact_ms,
                "last_error": link.last_error,
                "cursors": {ch: core.size(ch, name) for ch in core.channels},
                "unsent": len(core.store.unsent(name)),
                "key_events_owed": len(core.store.key_submissions(name, pending=True)),
                "omissions": _omissions(core, name),
            }
        return out

    async def send(self, request: Request) -> Response:
        started_ns = stamps.now_ns() if stamps.enabled() else None
        self.check(request)
        data = await self.body(request)
        channel = str(data.get("channel", ""))
        prec = precedence_of(str(data.get("precedence", "ROUTINE")))
        content: body_mod.Body
        if "text" in data:
            lang = str(data.get("lang") or self.core.roster.parties[self.core.key.party].language)
            content = body_mod.text(str(data["text"]), lang)
        elif isinstance(data.get("body"), dict):
            if data["body"].get("type") == "form":
                forms.validate(data["body"])  # refused here, in the operator's language
            content = body_mod.body_from_dict(data["body"])
            if not isinstance(content, body_mod.Text | body_mod.Form):
                raise Malformed("operators send text or forms", field="body")
        else:
            raise Malformed("give text or a form body", field="text")
        key = request.headers.get("idempotency-key")
        online = self.service.link.connected

        def queue() -> tuple[OutboxItem, bool, list[OutboxItem] | None]:
            # The outbox's queue read in the same call, for the pump (one hop fewer).
            begun_ns = stamps.now_ns() if started_ns is not None else None
            if key is None:
                item = self.core.send(channel, content, kind=Kind.MESSAGE, precedence=prec)
                repeated = False
            else:
                done = self.core.send_once(channel, content, prec, key)
                item, repeated = done.item, done.repeated
            if begun_ns is not None and not repeated:
                stamps.stamp("send_started", self.core.ident, item.hash, begun_ns)
            return item, repeated, self.core.store.outbox(OutboxState.QUEUED) if online else None

        item, repeated, queued = await self.service.run_db(queue)
        if key is not None and os.environ.get(CRASH_AFTER_SEND) == "1":
            os._exit(70)
        if not repeated:
            if started_ns is not None:
                stamps.stamp("api_accepted", self.core.ident, item.hash, started_ns)
            self.service.kick(queued)
            await asyncio.sleep(0)  # the pump posts it before this answer is written
            await self.service.notify()
        answer = {
            "channel": item.channel,
            "seq": item.seq,
            "hash": item.hash.hex(),
            "state": item.state,
            "key": item.key,
        }
        if repeated:
            answer["repeated"] = True
        return JSONResponse(answer, status_code=200 if repeated else 202)

    async def inbox(self, request: Request) -> Response:
        self.check(request)
        q = request.query_params
        limit, after = paging.limit_of(q.get("limit")), q.get("after")
        lang = _lang(request)
        return JSONResponse(
            await self.service.run_db(self.inbox_page, q.get("channel"), limit, after, lang)
        )

    def inbox_page(
        self, channel: str | None, limit: int, after: str | None, lang: str | None = None
    ) -> dict[str, Any]:
        """A page of what was received (from other parties and from this party's other
        stations), by precedence then time; ``next`` when more remain."""
        key = cast("tuple[int, int, str, int] | None", paging.decode(after, (int, int, str, int)))
        rows = self.core.store.inbox(self.core.ident, channel, limit + 1, key)
        got = paging.page(rows, limit, lambda m: (m.precedence, m.relay_ms, m.channel, m.index))
        return {"items": [self._message(m, lang) for m in got.items], "next": got.next}

    async def received(self, request: Request) -> Response:
        """Long poll for new messages: those received after ``since``, in the order they
        were taken in, as soon as there is one (or after ``timeout`` seconds, at most 25,
        with none). Without ``since``: none, and the ``since`` to start from (now)."""
        self.check(request)
        q = request.query_params
        since = received_since(q.get("since"))
        timeout = received_timeout(q.get("timeout"))
        limit, channel, lang = paging.limit_of(q.get("limit")), q.get("channel"), _lang(request)
        if channel and channel not in self.core.channels:  # else nothing, at every poll
            raise Malformed(
                f"channel {channel}: {self.core.key.party} is no member", field="channel"
            )
        if since is None:
            last = await self.service.run_db(self.core.store.last_arrival)
            return JSONResponse({"items": [], "since": paging.encode((last,))})
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        while True:
            # The version is read before the query: whatever is committed after the query
            # changes it, so the wait below cannot sleep through a message.
            version = self.service.version
            page = await self.service.run_db(self.received_page, channel, since, limit, lang)
            left = until - loop.time()
            if page["items"] or left <= 0:
                return JSONResponse(page)
            await self.service.wait_change(version, left)

    def received_page(
        self, channel: str | None, since: int, limit: int, lang: str | None
    ) -> dict[str, Any]:
        # The last arrival is read first: every row up to it is committed (one writer at a
        # time, numbers rising), so a short page has looked at all of them, and the next
        # poll starts after them, not at the last match (skipped rows are scanned once).
        top = self.core.store.last_arrival()
        if since > top:  # another store's (restored from a backup, made anew): say so
            raise Malformed(
                "since is ahead of this station's store: start without it", field="since"
            )
        rows = self.core.store.received_after(self.core.ident, channel, since, limit, top)
        last = rows[-1][0] if len(rows) == limit else max(since, top)
        return {"items": [self._message(m, lang) for _, m in rows], "since": paging.encode((last,))}

    def inbox_view(
        self, channel: str | None, limit: int, lang: str | None = None
    ) -> list[dict[str, Any]]:
        """The first ``limit`` messages received (as the console lists them)."""
        items: list[dict[str, Any]] = self.inbox_page(channel, limit, None, lang)["items"]
        return items

    def _message(self, m: Message, lang: str | None = None) -> dict[str, Any]:
        content = body_mod.parse_body(m.body.encode())
        return {
            "view": view_body(content, lang or self.language),
            "channel": m.channel,
            "index": m.index,
            "sender": m.sender,
            "party": m.party,
            "seq": m.seq,
            "precedence": Precedence(m.precedence).name,
            "created_ms": m.created_ms,
            "relay_ms": m.relay_ms,
            "hash": m.hash.hex(),
            "body": content.to_dict(),
            "summary": body_mod.summary(content),
            "read_ms": m.read_ms,
            "state": self.core.message_state(m.channel, m.index),
            **self._logged(m.channel, m.hash),
        }

    def _logged(self, channel: str, digest: bytes) -> dict[str, Any]:
        """With several relays: which relays' logs hold the envelope, at which index."""
        if len(self.core.relays) < 2:
            return {}
        return {"logged": self.core.logged_by(channel, digest)}

    async def message(self, request: Request) -> Response:
        self.check(request)
        channel, index = request.path_params["channel"], request.path_params["index"]
        lang = _lang(request)

        def work() -> dict[str, Any]:
            m = self.core.store.message(channel, index)
            if m is None:
                raise Malformed(f"no message {index} in {channel}", field="index")
            return self._message(m, lang)

        return JSONResponse(await self.service.run_db(work))

    async def sent(self, request: Request) -> Response:
        """A page of what this station sent (of one ``channel``, or all), each with its
        key, excerpt and delivery and acknowledgment per party: the channel's bulk status."""
        self.check(request)
        q = request.query_params
        channel, limit = q.get("channel"), paging.limit_of(q.get("limit"))
        after = cast("tuple[str, int] | None", paging.decode(q.get("after"), (str, int)))

        def work() -> dict[str, Any]:
            rows = self.core.store.sent_page(channel, after, limit + 1)
            got = paging.page(rows, limit, lambda i: (i.channel, i.seq))
            states = self.core.sent_states(got.items)
            return {
                "items": [self._sent(i, s) for i, s in zip(got.items, states, strict=True)],
                "next": got.next,
            }

        return JSONResponse(await self.service.run_db(work))

    def sent_view(self, item: OutboxItem) -> dict[str, Any]:
        """One sent message with its state per party (``status CH:SEQ``, the console)."""
        state = {} if item.index is None else self.core.message_state(item.channel, item.index)
        return self._sent(item, state)

    def _sent(self, item: OutboxItem, recipients: dict[str, Any]) -> dict[str, Any]:
        return {
            "channel": item.channel,
            "seq": item.seq,
            "hash": item.hash.hex(),
            "kind": Kind(item.kind).name,
            "precedence": Precedence(item.precedence).name,
            "created_ms": item.created_ms,
            "state": item.state,
            "index": item.index,
            "relay_ms": item.relay_ms,
            "error": item.error,
            "key": item.key,
            "excerpt": item.excerpt,
            "recipients": recipients,
            **self._logged(item.channel, item.hash),
        }

    async def sent_one(self, request: Request) -> Response:
        self.check(request)
        channel, seq = request.path_params["channel"], request.path_params["seq"]

        def work() -> dict[str, Any]:
            item = self.core.store.outbox_item(channel, seq)
            if item is None:
                raise Malformed(f"no sent message {seq} in {channel}", field="seq")
            return self.sent_view(item)

        return JSONResponse(await self.service.run_db(work))

    async def rotate(self, request: Request) -> Response:
        """Switch to the key `hotline station rotate` installed in the directory."""
        self.check(request)
        if self.reload_key is None:
            raise Malformed("this station cannot reload its key", field="key")
        key, cert, retired = await self.service.run_db(self.reload_key)
        await self.service.switch_key(key, cert, retired)
        return JSONResponse({"station": key.ident, "signing": key.signing_public.hex()})

    async def key_events(self, request: Request) -> Response:
        """GET: every key event this station submitted, per relay, logged or pending.
        POST ``{"kind": "revocation", "data": NOTE}``: owe it to every relay (each link
        hands it over when it is up; `hotline station rotate` submits its revocation so)."""
        self.check(request)
        if request.method == "POST":
            data = await self.body(request)
            kind, note = data.get("kind"), data.get("data")
            if not isinstance(kind, str) or not isinstance(note, str):
                raise Malformed("a key event needs kind and data (the signed note)")
            try:
                statement = note.encode("utf-8")
            except UnicodeEncodeError as exc:  # JSON can carry lone surrogates
                raise Malformed("data is not valid Unicode", field="data") from exc
            digest = await self.service.run_db(self.core.submit_key_event, kind, statement)
            self.service.kick()
            return JSONResponse({"hash": digest.hex()})
        events = await self.service.run_db(self.core.key_events_view)
        return JSONResponse({"events": events})

    async def ack(self, request: Request) -> Response:
        self.check(request)
        data = await self.body(request)
        channel, index = str(data.get("channel", "")), data.get("index")
        if not isinstance(index, int):
            raise Malformed("index must be an integer", field="index")
        operator = str(data.get("operator", ""))
        reply = data.get("reply")
        item = await self.service.run_db(
            self.core.acknowledge, channel, index, operator, str(reply) if reply else None
        )
        self.service.kick()
        await self.service.notify()
        return JSONResponse(
            {"channel": item.channel, "seq": item.seq, "state": item.state}, status_code=202
        )

    async def alarms(self, request: Request) -> Response:
        self.check(request)
        q = request.query_params
        everything = q.get("all") == "1"
        limit = paging.limit_of(q.get("limit"))
        after = paging.decode(q.get("after"), (int,))
        # The message in the asker's language (English unless asked): the kind, the
        # text key and its parameters are beside it for scripts.
        lang = str(q.get("lang")) if q.get("lang") in LANGUAGES else "en"

        def work() -> dict[str, Any]:
            rows = self.core.store.alarms(
                cleared_too=everything,
                limit=limit + 1,
                before_id=int(after[0]) if after else None,
            )
            got = paging.page(rows, limit, lambda a: (a.id,))
            items = [
                {
                    "id": a.id,
                    "created_ms": a.created_ms,
                    "kind": a.kind,
                    "level": a.level,
                    "channel": a.channel,
                    "index": a.index,
                    "message": a.text_in(lang),
                    "text": a.text,
                    "params": dict(a.params),
                    "has_evidence": a.evidence is not None,
                    "cleared_ms": a.cleared_ms,
                    "cleared_by": a.cleared_by,
                    "count": a.count,
                    "last_ms": a.last_ms,
                }
                for a in got.items
            ]
            return {"items": items, "next": got.next}

        return JSONResponse(await self.service.run_db(work))

    async def clear_alarm(self, request: Request) -> Response:
        self.check(request)
        data = await self.body(request)
        operator = str(data.get("operator", "")).strip()
        if not operator:
            raise Malformed("clearing an alarm names the operator", field="operator")
        alarm_id = request.path_params["alarm_id"]

        await self.service.run_db(self.core.clear_alarm, alarm_id, operator)
        await self.service.notify()
        return JSONResponse({"id": alarm_id, "cleared_by": operator})

    async def export(self, request: Request) -> Response:
        """The channel's transcript (bodies disclosed with ``?bodies=1``)."""
        self.check(request)
        channel = request.path_params["channel"]
        bodies = request.query_params.get("bodies") == "1"
        doc = await self.service.run_db(export, self.core, channel, bodies)
        return Response(
            transcript.dumps(doc),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{channel}.hotline.json"'},
        )

    async def wait(self, request: Request) -> Response:
        """Long poll: returns when anything changed after ``version`` (or after 25 s)."""
        self.check(request)
        given = request.query_params.get("version", "-1")
        try:
            version = int(given)
        except ValueError as exc:
            raise Malformed("version is a whole number", field="version") from exc
        if version == self.service.version:
            version = await self.service.wait_change(version, 25.0)
        return JSONResponse({"version": self.service.version})


def _omissions(core: StationCore, relay: str) -> dict[str, int]:
    """The path audit's omissions of ``relay``: still open, and repaired since (the relay
    logged the entry after all; the alarm and its evidence stay)."""
    audit = core.state.audit
    found = audit.omissions(relay) if audit is not None else []
    repaired = sum(1 for r in found if r.repaired_ms is not None)
    return {"open": len(found) - repaired, "repaired": repaired}


def received_since(text: str | None) -> int | None:
    """``since`` of ``GET /api/received``: a cursor an earlier answer gave, or none."""
    if text is None:
        return None
    key = paging.decode(text, (int,), "since")
    if key is None:
        raise Malformed("since is not a cursor this API gave", field="since")
    return int(key[0])


def received_timeout(text: str | None) -> float:
    """``timeout`` of ``GET /api/received``: seconds from 0 to 25 (25 when not given)."""
    if text is None:
        return RECEIVED_WAIT_MAX_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= RECEIVED_WAIT_MAX_S:  # also refuses nan
        raise Malformed(f"timeout is seconds from 0 to {RECEIVED_WAIT_MAX_S:g}", field="timeout")
    return value


def _lang(request: Request) -> str | None:
    lang = request.query_params.get("lang")
    return lang if lang in LANGUAGES else None


def view_body(content: body_mod.Body, lang: str) -> dict[str, Any]:
    """How the reader sees a body: forms from catalogs; free text original first."""
    if isinstance(content, body_mod.Form):
        return {"kind": "form", **forms.render(content.to_dict(), lang)}
    if isinstance(content, body_mod.Text):
        source = content.lang
        machine = translate(content.text, source, lang)
        note = None
        if machine.get("same_language"):
            machine = {"text": None, "engine": None}
        elif machine["text"] is None:
            note = t(lang, "translation.none")
        else:
            note = t(lang, "translation.machine")
        return {
            "kind": "text",
            "original": content.text,
            "lang": source,
            "translation": machine["text"],
            "engine": machine["engine"],
            "note": note,
        }
    return {"kind": str(content.to_dict()["type"]), "summary": body_mod.summary(content)}


async def error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HotlineError)
    out = exc.to_dict()
    lang = request.headers.get("accept-language", "")[:2]
    if isinstance(exc, forms.FormError):
        out["localized"] = render_error(exc, lang if lang in LANGUAGES else "en")
    return JSONResponse({"error": out}, status_code=http_status(exc))
