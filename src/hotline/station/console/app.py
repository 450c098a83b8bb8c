"""Console routes, served by the station next to its local API.

Protected like a bank page: operator sign-in with Argon2id hashes, HttpOnly and
SameSite=Strict session cookies (Secure over TLS), a CSRF token on every change,
a strict content security policy (no inline script or style), and autoescaped
templates: message text is an adversary's input and is only ever shown as text.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ... import body as body_mod
from ... import transcript
from ...envelope import Kind, Precedence
from ...errors import HotlineError, Malformed, NotAuthorized, http_status
from ...forms import FORMS, FormError, form_body
from ...forms.render import error_text
from ...forms.schema import CASUALTY_FIELDS
from ...forms.validate import field_errors
from ...i18n import EARLIEST, LATEST, moment, t, when
from .. import linkhistory
from ..api import StationAPI
from ..export import export
from ..operators import (
    Session,
    credentials,
    open_session,
    session_for,
    sign_out,
    verify,
)
from ..situation import places_of, situation
from . import pdf, record
from .places import place_view

HERE = Path(__file__).parent
COOKIE = "hotline_session"
HOUR_MS = 3_600_000
# How far back the situation page looks for forms whose window or time falls in view.
LOOKBACK_MS = 30 * 24 * HOUR_MS
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class Console:
    def __init__(self, api: StationAPI) -> None:
        self.api = api
        self.service = api.service
        self.core = api.core
        # Two at a time: each check takes 32 MiB and a core for a moment.
        self.kdf = ThreadPoolExecutor(2, thread_name_prefix="station-kdf")
        # PDFs are drawn one at a time, apart from sign-in and the database thread.
        self.pdfs = ThreadPoolExecutor(1, thread_name_prefix="console-pdf")
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
        )

    # --- plumbing ---------------------------------------------------------------------

    def routes(self) -> list[Route | Mount]:
        page = self.page
        return [
            Route("/", page(self.inbox)),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", page(self.logout), methods=["POST"]),
            Route("/message/{channel}/{index:int}", page(self.message)),
            Route("/message/{channel}/{index:int}/ack", page(self.ack), methods=["POST"]),
            Route("/message/{channel}/{index:int}/print", page(self.print_view)),
            Route("/message/{channel}/{index:int}/record.pdf", page(self.record_pdf)),
            Route("/compose", page(self.compose), methods=["GET", "POST"]),
            Route("/sent/{channel}/{seq:int}", page(self.sent)),
            Route("/links", page(self.links)),
            Route("/situation", page(self.situation)),
            Route("/alarms/{alarm_id:int}/clear", page(self.clear), methods=["POST"]),
            Route("/export/{channel}", page(self.export)),
            Route("/console/state.json", page(self.state)),
            Route("/console/events", page(self.events)),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]

    def page(
        self, handler: Callable[[Request, Session], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = await self.service.run_db(
                session_for, self.core.store, request.cookies.get(COOKIE), self.core.now_ms()
            )
            if session is None:
                if request.url.path.startswith("/console/"):
                    return self.secure(JSONResponse({"error": "signed out"}, status_code=401))
                return self.secure(RedirectResponse("/login", status_code=303))
            if request.method == "POST":
                form = await request.form()
                given = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
                if not secrets.compare_digest(given.encode(), session.csrf.encode()):
                    return self.secure(HTMLResponse("CSRF token missing or wrong", 403))
            try:
                return self.secure(await handler(request, session))
            except HotlineError as exc:
                message = (
                    error_text(exc, session.language) if isinstance(exc, FormError) else str(exc)
                )
                return self.secure(
                    self.render("error.html", session, error=message, status=http_status(exc))
                )

        return endpoint

    def secure(self, response: Response) -> Response:
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    def render(
        self, name: str, session: Session | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        lang = session.language if session else self.api.language
        html = self.env.get_template(name).render(
            t=lambda key, **kw: t(lang, key, **kw),
            lang=lang,
            session=session,
            station=self.core.ident,
            channels=self.core.channels,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    # --- sign in / out ---------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self.secure(self.render("login.html", None))
        form = await request.form()
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        try:
            creds = await self.service.run_db(credentials, self.core.store, name)
            # Argon2id runs in its own small pool: a sign-in flood queues there and
            # never holds the database thread that ingest needs.
            loop = asyncio.get_running_loop()
            who = await loop.run_in_executor(self.kdf, verify, creds, password)
            token, session = await self.service.run_db(
                open_session, self.core.store, who, self.core.now_ms()
            )
        except NotAuthorized:
            return self.secure(self.render("login.html", None, failed=True, status=401))
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
            max_age=int((session.expires_ms - self.core.now_ms()) / 1000),
        )
        return self.secure(response)

    async def logout(self, request: Request, session: Session) -> Response:
        token = request.cookies.get(COOKIE, "")
        await self.service.run_db(sign_out, self.core.store, token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # --- pages -------------------------------------------------------------------------------

    async def inbox(self, request: Request, session: Session) -> Response:
        channel = request.query_params.get("channel") or ""
        return self.render("inbox.html", session, channel=channel, page="inbox")

    async def message(self, request: Request, session: Session) -> Response:
        channel, index = request.path_params["channel"], request.path_params["index"]

        def work() -> dict[str, Any]:
            row = self.core.store.message(channel, index)
            if row is None:
                raise Malformed(f"no message {index} in {channel}", field="index")
            with self.core.store.transaction():
                self.core.store.mark_read(channel, index, self.core.now_ms())
            m = self.api._message(row, session.language)
            verified = self.core.verified(channel)
            m["verified_size"] = verified.size if verified and verified.size > index else None
            m["cosigners"] = (
                sorted(s.name for s in verified.note.signatures if "/" in s.name)
                if verified
                else []
            )
            state = m["state"]
            m["places"] = [place_view(p, state, session.language) for p in places_of(row)]
            return m

        m = await self.service.run_db(work)
        return self.render(
            "message.html",
            session,
            m=m,
            page="message",
            channel=channel,
            index=index,
            moment=lambda ms: moment(ms, session.language),
            places_json=json.dumps(m["places"]),
            map=bool(m["places"]),
        )

    async def print_view(self, request: Request, session: Session) -> Response:
        channel, index = request.path_params["channel"], request.path_params["index"]
        rec = await self.service.run_db(
            record.build, self.core, channel, index, session.language, session.operator
        )
        return self.render(
            "record.html", session, rec=rec, page="record", channel=channel, index=index
        )

    async def record_pdf(self, request: Request, session: Session) -> Response:
        channel, index = request.path_params["channel"], request.path_params["index"]
        rec = await self.service.run_db(
            record.build, self.core, channel, index, session.language, session.operator
        )
        # reportlab takes a core for a moment on a long message: not on the event loop.
        data = await asyncio.get_running_loop().run_in_executor(self.pdfs, pdf.render, rec)
        name = f"{channel}-{index}.pdf"
        return Response(
            data,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{name}"'},
        )

    async def ack(self, request: Request, session: Session) -> Response:
        channel, index = request.path_params["channel"], request.path_params["index"]
        form = await request.form()
        reply = str(form.get("reply") or "").strip()[:500] or None
        await self.service.run_db(self.core.acknowledge, channel, index, session.operator, reply)
        self.service.kick()
        await self.service.notify()
        return RedirectResponse(f"/message/{channel}/{index}", status_code=303)

    async def compose(self, request: Request, session: Session) -> Response:
        chosen = request.query_params.get("form") or ""
        if chosen and chosen not in FORMS:
            raise Malformed(f"no form {chosen!r}", field="form")
        lang = session.language

        def page(values: dict[str, str], errors: dict[str, str], status: int = 200) -> Response:
            form = FORMS.get(chosen)
            return self.render(
                "compose.html",
                session,
                status=status,
                forms=FORMS,
                chosen=chosen,
                form=form,
                page="compose",
                casualty_fields=CASUALTY_FIELDS,
                values=values,
                errors=errors,
                map=form is not None and any(f.kind == "area" for f in form.fields),
            )

        if request.method == "GET":
            return page({}, {})
        data = await request.form()
        values = {k: v for k, v in data.items() if isinstance(v, str) and k != "csrf"}
        channel = str(data.get("channel", ""))
        try:
            precedence = Precedence[str(data.get("precedence", "ROUTINE"))]
        except KeyError as exc:
            raise Malformed("unknown precedence", field="precedence") from exc
        content: body_mod.Text | body_mod.Form
        if chosen:
            fields = parse_form(chosen, data)
            # Every field's error at once, beside the field, in the operator's language;
            # what was typed stays in the form.
            wrong = field_errors(chosen, fields)
            if wrong:
                errors = {k: t(lang, e.key, **e.params) for k, e in wrong.items()}
                return page(values, errors, 422)
            content = body_mod.form_of(form_body(chosen, fields))
        else:
            text = str(data.get("text", ""))
            if not text.strip():
                return page(values, {"text": t(lang, "error.text")}, 422)
            content = body_mod.text(text, lang)
        # Attributed: the operator's name is signed inside the envelope.
        content = replace(content, operator=session.operator)
        item = await self.service.run_db(
            lambda: self.core.send(channel, content, kind=Kind.MESSAGE, precedence=precedence)
        )
        self.service.kick()
        await self.service.notify()
        return RedirectResponse(f"/sent/{item.channel}/{item.seq}", status_code=303)

    async def sent(self, request: Request, session: Session) -> Response:
        channel, seq = request.path_params["channel"], request.path_params["seq"]
        item = await self.service.run_db(self.core.store.outbox_item, channel, seq)
        if item is None:
            raise Malformed(f"no sent message {seq} in {channel}", field="seq")
        return self.render("sent.html", session, page="sent", channel=channel, seq=seq)

    async def situation(self, request: Request, session: Session) -> Response:
        """Deconfliction notices whose window overlaps the one asked (from now for 24 h
        unless given), and incidents of the last hours, on one map and in one list."""
        q, lang, now = request.query_params, session.language, self.core.now_ms()
        errors: dict[str, str] = {}
        start = _utc_ms(q.get("from"), now, "from", errors, lang)
        end = _utc_ms(q.get("to"), now + 24 * HOUR_MS, "to", errors, lang)
        if end < start:
            errors["to"] = t(lang, "error.end_before_start")
            end = start + 24 * HOUR_MS
        hours = _int_param(q.get("hours"), 48, 1, 24 * 30, "hours", errors, lang)
        since = end - hours * HOUR_MS

        def work() -> dict[str, Any]:
            messages = self.core.store.messages_since(min(start, since) - LOOKBACK_MS)
            found = situation(messages, start, end, since)
            states: dict[tuple[str, int], dict[str, Any]] = {}

            def view(p: Any) -> dict[str, Any]:
                key = (p.channel, p.index)
                if key not in states:
                    states[key] = self.core.message_state(p.channel, p.index)
                return place_view(p, states[key], lang)

            return {
                "notices": [view(p) for p in found.notices],
                "incidents": [view(p) for p in found.incidents],
            }

        found = await self.service.run_db(work)
        return self.render(
            "situation.html",
            session,
            page="situation",
            map=True,
            notices=found["notices"],
            incidents=found["incidents"],
            places_json=json.dumps(found["notices"] + found["incidents"]),
            start=_local_input(start),
            end=_local_input(end),
            start_text=when(start, lang),
            end_text=when(end, lang),
            hours=hours,
            errors=errors,
        )

    async def links(self, request: Request, session: Session) -> Response:
        lang, now = session.language, self.core.now_ms()

        def work() -> list[dict[str, Any]]:
            samples = self.core.store.link_samples(now - linkhistory.SPAN_MS)
            # The party's link, then (several relays) its path through each relay.
            relays: list[str | None] = [None, *self.core.path_boards]
            out = []
            for channel, board in self.core.boards.items():
                for party, relay in itertools.product(board.links, relays):
                    mine = [
                        s
                        for s in samples
                        if s.channel == channel and s.party == party and s.relay == relay
                    ]
                    drawn = linkhistory.chart(mine, now)
                    out.append(
                        {
                            "channel": channel,
                            "party": party,
                            "relay": relay,
                            "via": t(lang, "ui.via", relay=relay) if relay else "",
                            "chart": drawn,
                            "labels": {
                                b.state: t(lang, "state." + b.state) for _, _, b in drawn.bands
                            },
                            "max_rtt": f"{drawn.max_rtt_ms:.0f} ms",
                            "tick_labels": {
                                h: t(lang, "ui.hours_ago", hours=h) if h else t(lang, "ui.now")
                                for _, h in drawn.ticks
                            },
                            "when": lambda ms: when(ms, lang),
                        }
                    )
            return out

        histories = await self.service.run_db(work)
        return self.render(
            "links.html",
            session,
            page="links",
            histories=histories,
            geometry=linkhistory,
        )

    async def clear(self, request: Request, session: Session) -> Response:
        alarm_id = request.path_params["alarm_id"]

        await self.service.run_db(self.core.clear_alarm, alarm_id, session.operator)
        await self.service.notify()
        return RedirectResponse("/links", status_code=303)

    async def export(self, request: Request, session: Session) -> Response:
        channel = request.path_params["channel"]
        doc = await self.service.run_db(export, self.core, channel, True)
        return Response(
            transcript.dumps(doc),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{channel}.hotline.json"'},
        )

    # --- live data ------------------------------------------------------------------------

    async def state(self, request: Request, session: Session) -> Response:
        q = request.query_params
        lang = session.language

        def work() -> dict[str, Any]:
            inbox = self.api.inbox_view(q.get("channel") or None, 500, lang)
            for m in inbox:
                m["relay_time"] = when(m["relay_ms"], lang)
                m["precedence_label"] = t(lang, "precedence." + m["precedence"])
                m["overdue"] = bool(m["state"].get(self.core.key.party, {}).get("overdue"))
                m["acknowledged"] = bool(
                    m["state"].get(self.core.key.party, {}).get("acknowledged")
                )
            status = self.api.status_view()
            alarms = [
                {
                    "id": a.id,
                    "kind": a.kind,
                    "level": a.level,
                    "message": a.text_in(lang),
                    "title": t(lang, "alarm." + a.kind),
                    "time": when(a.created_ms, lang),
                    "count": a.count,
                    "last": when(a.last_ms, lang),
                    "channel": a.channel,
                    "index": a.index,
                }
                for a in self.core.store.alarms(limit=200)
            ]
            links = {
                ch: {p: _label_link(v, lang) for p, v in parties.items()}
                for ch, parties in status["links"].items()
            }
            out: dict[str, Any] = {
                "version": self.service.version,
                "inbox": inbox,
                "alarms": alarms,
                "links": links,
                "relay": status["relay"],
                "relays": {
                    name: {"url": r["url"], "connected": r["connected"]}
                    for name, r in status["relays"].items()
                },
            }
            if q.get("sent_channel") and q.get("sent_seq", "").isdigit():
                item = self.core.store.outbox_item(q["sent_channel"], int(q["sent_seq"]))
                if item is not None:
                    sent = self.api.sent_view(item)
                    sent["state_label"] = t(lang, "state." + item.state)
                    out["sent"] = _label_parties(sent, lang)
            if q.get("msg_channel") and q.get("msg_index", "").isdigit():
                st = self.core.message_state(q["msg_channel"], int(q["msg_index"]))
                out["message"] = _label_parties({"recipients": st}, lang)
            return out

        return JSONResponse(await self.service.run_db(work))

    async def events(self, request: Request, session: Session) -> Response:
        async def stream() -> AsyncIterator[str]:
            version = -1
            yield "retry: 1000\n\n"
            while not await request.is_disconnected():
                if version != self.service.version:
                    version = self.service.version
                    yield f"event: change\ndata: {json.dumps({'version': version})}\n\n"
                else:
                    yield ": keep-alive\n\n"
                with contextlib.suppress(asyncio.CancelledError):
                    await self.service.wait_change(version, 2.0)

        return StreamingResponse(stream(), media_type="text/event-stream")


def _label_link(view: dict[str, Any], lang: str) -> dict[str, Any]:
    """A party's link (and each of its paths through a relay) with its texts."""
    out = {
        **view,
        "label": t(lang, "state." + view["state"]),
        "contact": when(view["last_contact_ms"], lang) if view["last_contact_ms"] else "-",
    }
    if "paths" in view:
        out["paths"] = {
            relay: {**_label_link(path, lang), "via": t(lang, "ui.via", relay=relay)}
            for relay, path in view["paths"].items()
        }
    return out


def _label_parties(data: dict[str, Any], lang: str) -> dict[str, Any]:
    for party, st in data.get("recipients", {}).items():
        d, a = st.get("delivered"), st.get("acknowledged")
        st["delivered_label"] = (
            t(lang, "ui.delivered_to", who=d["station"]) + f", {when(d['relay_ms'], lang)}"
            if d
            else "-"
        )
        st["acknowledged_label"] = (
            (
                t(lang, "ui.acknowledged_by", who=a["operator"] or a["station"])
                + f", {when(a['relay_ms'], lang)}"
                + (f": {a['reply']}" if a.get("reply") else "")
            )
            if a
            else ("-" if not st.get("overdue") else t(lang, "state.overdue"))
        )
        del party
    return data


def _utc_ms(value: str | None, default: int, name: str, errors: dict[str, str], lang: str) -> int:
    """A time from a page's query (``2026-11-26T06:00`` as a datetime-local input sends
    it, or with seconds and ``Z``), always UTC; a bad one is reported and defaulted."""
    if not value:
        return default
    text = value.strip().removesuffix("Z")
    try:
        at = datetime.fromisoformat(text)
        if at.tzinfo is not None:
            raise ValueError("a zone other than UTC")
        ms = int(at.replace(tzinfo=UTC).timestamp() * 1000)
    except (ValueError, OverflowError):
        errors[name] = t(lang, "error.datetime")
        return default
    if not EARLIEST <= datetime.fromtimestamp(ms / 1000, UTC) < LATEST:
        errors[name] = t(lang, "error.datetime")
        return default
    return ms


def _int_param(
    value: str | None,
    default: int,
    low: int,
    high: int,
    name: str,
    errors: dict[str, str],
    lang: str,
) -> int:
    if not value:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        errors[name] = t(lang, "error.integer")
        return default
    return int(value)


def _local_input(ms: int) -> str:
    """A UTC time as a datetime-local input shows it."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M")


def _num(data: FormData, key: str) -> float | None:
    value = str(data.get(key) or "").strip()
    if not value:
        return None
    try:
        return float(value.replace(",", "."))
    except ValueError:
        return float("nan")


def _int(data: FormData, key: str) -> int | None:
    value = _num(data, key)
    if value is None:
        return None
    return int(value) if value == value and value.is_integer() else -1


def parse_form(name: str, data: FormData) -> dict[str, Any]:
    """The compose page's inputs back into form fields (validated by the caller)."""
    out: dict[str, Any] = {}
    for f in FORMS[name].fields:
        k = f.name
        if f.kind in ("text", "enum", "datetime"):
            v = str(data.get(k) or "").strip()
            if v:
                out[k] = v
        elif f.kind == "int":
            if (n := _int(data, k)) is not None:
                out[k] = n
        elif f.kind == "bool":
            out[k] = data.get(k) == "on"
        elif f.kind == "area":
            lat, lon = _num(data, f"{k}.lat"), _num(data, f"{k}.lon")
            if lat is not None or lon is not None:
                area: dict[str, Any] = {"point": {"lat": lat, "lon": lon}}
                if (r := _num(data, f"{k}.radius_km")) is not None:
                    area["radius_km"] = r
                out[k] = area
        elif f.kind == "band":
            lo, hi = _num(data, f"{k}.min_m"), _num(data, f"{k}.max_m")
            if lo is not None or hi is not None:
                out[k] = {"min_m": lo, "max_m": hi}
        elif f.kind == "window":
            out[k] = {
                "start": str(data.get(f"{k}.start") or ""),
                "end": str(data.get(f"{k}.end") or ""),
            }
        elif f.kind == "counts":
            counts = []
            for v in f.values:
                n = _int(data, f"{k}.{v}.count")
                if n:
                    counts.append(
                        {"means": v, "count": n, "source": str(data.get(f"{k}.{v}.source") or "")}
                    )
            if counts:
                out[k] = counts
        elif f.kind == "casualties":
            cas: dict[str, Any] = {}
            for c in CASUALTY_FIELDS:
                if (n := _int(data, f"{k}.{c}")) is not None:
                    cas[c] = n
            if cas:
                cas["source"] = str(data.get(f"{k}.source") or "")
                out[k] = cas
        elif f.kind == "list":
            items = [s.strip() for s in str(data.get(k) or "").splitlines() if s.strip()]
            if items:
                out[k] = items
        elif f.kind == "ref":
            idx = _int(data, f"{k}.index")
            if idx is not None:
                out[k] = {"index": idx, "hash": str(data.get(f"{k}.hash") or "").strip()}
    return out
