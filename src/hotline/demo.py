"""`hotline demo`: relays and stations us, ru, ua on loopback, with real traffic.

Everything runs in this process but talks over real WebSockets and HTTP on
127.0.0.1, with the embedded SQLite stores in a (temporary or given) directory; with
``--database postgresql://...`` the relays keep their logs in PostgreSQL instead (a schema
each) and relay.ae runs as two relay instances sharing only that database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from .errors import HotlineError, Malformed, Unavailable
from .home import read_toml, write_private
from .provision import Network, provision
from .run import build_relay, build_station, is_postgres, serve_relay, serve_station
from .station import paths
from .station.api import StationAPI
from .station.client import StationClient
from .station.operators import add_operator
from .station.service import StationService
from .station.store import StationStore

log = logging.getLogger("hotline.demo")
T = TypeVar("T")


def say(text: str) -> None:
    print(text, flush=True)


# How long a step of the scenario may take before the demo gives up: a step takes well
# under a second on a quiet machine, but the demo also runs on busy ones (and in tests).
STEP_WAIT_S = 120.0


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(STEP_WAIT_S):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise Unavailable(f"demo: timed out waiting for {what}") from None


# The window of the scenario's deconfliction notice (UTC), as the situation page asks.
NOTICE_WINDOW = ("2026-11-26T06:00", "2026-11-26T18:00")


# With --database, relay.ae's second process listens this far above the first one's port.
AE_SECOND_OFFSET = 80


class DemoDatabase:
    """``--database postgresql://...``: a schema for relay.ae and one for relay.ch in that
    database (independent relays never share a store), made for this demo and dropped when
    it stops."""

    def __init__(self, url: str) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        if not is_postgres(url):
            raise Malformed("--database must be a postgresql:// URL", field="database")
        try:
            info = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise Malformed(f"--database: not a usable URL ({exc})", field="database") from None
        # Where, never the password: the URL may hold one.
        where = f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}"
        where += f"/{info.get('dbname') or ''}"
        self.url = url
        tag = secrets.token_hex(4)
        self.schemas = {"ae": f"hotline_demo_{tag}_ae", "ch": f"hotline_demo_{tag}_ch"}
        try:
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise Unavailable(f"demo: cannot reach PostgreSQL at {where}: {exc}") from None
        try:
            for schema in self.schemas.values():
                self.conn.execute(f"CREATE SCHEMA {schema}")
        except psycopg.Error as exc:
            self.drop()
            raise Unavailable(f"demo: cannot create a schema at {where}: {exc}") from None

    def dsn(self, host: str) -> str:
        """The URL of ``host``'s store: its schema first on the search path."""
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}options=-csearch_path%3D{self.schemas[host]}"

    def drop(self) -> None:
        try:
            for schema in self.schemas.values():
                self.conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            self.conn.close()


async def run_demo(
    directory: Path | None,
    base_port: int,
    stop: asyncio.Event,
    scenario_only: bool = False,
    database: str | None = None,
) -> None:
    db = DemoDatabase(database) if database is not None else None  # fail before any key
    try:
        await _run_demo(directory, base_port, stop, scenario_only, db)
    finally:
        if db is not None:
            db.drop()


async def _run_demo(
    directory: Path | None,
    base_port: int,
    stop: asyncio.Event,
    scenario_only: bool,
    db: DemoDatabase | None,
) -> None:
    root = Path(tempfile.mkdtemp(prefix="hotline-demo-")) if directory is None else directory
    if (root / "relay").exists():
        raise Malformed(f"{root} already holds a demo; give a new --dir", field="dir")
    passphrase = secrets.token_urlsafe(24)
    write_private(root / "demo-passphrase", passphrase.encode() + b"\n")
    say(f"hotline demo in {root}")
    if db is not None:
        say(f"relay stores in PostgreSQL: schemas {', '.join(db.schemas.values())}")
    say(
        "creating keys for us, ru, ua and the relay hosts ae and ch (Argon2id-encrypted at rest)..."
    )
    ch_port = base_port + 90
    ae2_port = base_port + AE_SECOND_OFFSET
    net = provision(
        root,
        passphrase,
        relay_port=base_port,
        extra_relays={"relay.ch": ch_port},
        more_ae_ports=(ae2_port,) if db is not None else (),
    )
    for sdir in net.stations.values():
        store = StationStore(sdir / "station.db")
        language = read_toml(sdir / "station.toml")["language"]
        add_operator(store, "duty officer", passphrase, language, int(time.time() * 1000))
        store.close()
    ae_db = db.dsn("ae") if db is not None else None
    relay = build_relay(net.relay_dir, passphrase, database=ae_db)
    # With PostgreSQL, relay.ae's second process: its own connections, the same database.
    relay_ae2 = build_relay(net.relay_dir, passphrase, database=ae_db) if db else None
    relay_ch = build_relay(
        net.more_relays["relay.ch"][0], passphrase, database=db.dsn("ch") if db else None
    )
    stations: dict[str, tuple[StationService, StationAPI]] = {
        ident: build_station(sdir, passphrase) for ident, sdir in net.stations.items()
    }
    inner_stop = asyncio.Event()
    ae_stop = asyncio.Event()  # relay.ae is stopped mid-way: traffic goes on through relay.ch
    ae2_stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as tg:
            ae = tg.create_task(serve_relay(relay, "127.0.0.1", base_port, stop=ae_stop))
            ae2 = None
            if relay_ae2 is not None:
                ae2 = tg.create_task(serve_relay(relay_ae2, "127.0.0.1", ae2_port, stop=ae2_stop))
            tg.create_task(serve_relay(relay_ch, "127.0.0.1", ch_port, stop=inner_stop))
            for ident, (service, api) in stations.items():
                tg.create_task(
                    serve_station(service, api, "127.0.0.1", net.api_ports[ident], inner_stop)
                )
            try:
                await scenario(net)

                async def stop_first() -> None:
                    ae_stop.set()
                    await ae

                last, last_stop = ae, ae_stop
                if ae2 is not None:
                    await failover(net, stop_first, f"ws://127.0.0.1:{ae2_port}/ws")
                    last, last_stop = ae2, ae2_stop

                async def stop_ae() -> None:
                    last_stop.set()
                    await last

                await redundancy(net, stop_ae)
                print_where(net, ae2_port if db is not None else None)
                if not scenario_only:
                    say("\nrunning; press Ctrl-C to stop")
                    await stop.wait()
            finally:
                say("stopping...")
                ae_stop.set()
                ae2_stop.set()
                inner_stop.set()
    finally:
        for r in (relay, relay_ae2, relay_ch):
            if r is not None:
                r.core.store.close()
    say("stopped cleanly")


async def failover(
    net: Network, stop_first: Callable[[], Awaitable[None]], second_url: str
) -> None:
    """Stop one of relay.ae's two processes: every station moves to the other (one database,
    one log) and messages keep flowing through relay.ae."""
    clients = {ident: StationClient.for_dir(sdir) for ident, sdir in net.stations.items()}
    us, ru = clients["us/us-1"], clients["ru/ru-1"]
    try:
        say(f"\nrelay.ae runs as two processes on one PostgreSQL database: {net.relay_url}, ")
        say(f"{second_url}; each station knows both URLs")
        say("stopping relay.ae's first process ...")
        await stop_first()

        async def moved() -> bool:
            for client in clients.values():
                ae = (await _call(client.status))["relays"]["relay.ae"]
                if not (ae["connected"] and ae["url"] == second_url):
                    return False
            return True

        await _until(moved, "stations on relay.ae's second process")
        say("every station moved to relay.ae's second process, from its own log position")
        await _three_delivered(us, ru, "one of relay.ae's processes is down", "")

        async def in_ae_log() -> bool:
            """relay.ae took all of us's envelopes, and ru took all of relay.ae's log."""
            mine = (await _call(us.status))["relays"]["relay.ae"]
            theirs = (await _call(ru.status))["relays"]["relay.ae"]
            size = int(mine["cursors"]["us-ru"])
            return mine["unsent"] == 0 and size > 0 and theirs["cursors"]["us-ru"] >= size

        await _until(in_ae_log, "relay.ae's log to hold them")
        say("relay.ae's log holds them all, taken by its second process; ru has all of it")
    finally:
        for client in clients.values():
            client.close()


async def scenario(net: Network) -> None:
    """Traffic through each station's local API, as an operator's tools would send it."""
    clients = {ident: StationClient.for_dir(sdir) for ident, sdir in net.stations.items()}
    try:
        await _scenario(clients["us/us-1"], clients["ru/ru-1"], clients["ua/ua-1"], clients)
    finally:
        for client in clients.values():
            client.close()


def _at(qualified: int) -> str:
    """A qualified index (station/paths.py) as a reader says it."""
    position, index = paths.split(qualified)
    return f"entry {index} of {('relay.ae', 'relay.ch')[position]}'s log"


async def redundancy(net: Network, stop_ae: Callable[[], Awaitable[None]]) -> None:
    """Stop relay.ae (host ae) and show messages still flowing through relay.ch."""
    us = StationClient.for_dir(net.stations["us/us-1"])
    ru = StationClient.for_dir(net.stations["ru/ru-1"])
    try:
        say("\ntwo independent relays carry every envelope: relay.ae (host ae), relay.ch (host ch)")
        say("stopping relay.ae (host ae) ...")
        await stop_ae()
        say("relay.ae is stopped; the stations keep their link to relay.ch")
        await _three_delivered(us, ru, "relay.ae is down", " through relay.ch")
        say("messages keep flowing with relay.ae down; each station's path audit names relay.ae")
    finally:
        us.close()
        ru.close()


async def _three_delivered(us: StationClient, ru: StationClient, down: str, via: str) -> None:
    """us sends ru three ROUTINE messages, each waited for until ru has it."""
    for n in range(1, 4):
        text = f"Message {n} while {down}."
        sent = await _send(us, "us-ru", {"type": "text", "lang": "en", "text": text}, "ROUTINE")
        await _index_at(ru, "us-ru", sent["hash"])
        say(f"us -> us-ru     ROUTINE    message {n}: delivered to ru{via}")


async def _send(
    client: StationClient, channel: str, body: dict[str, Any], prec: str
) -> dict[str, Any]:
    """Queue (once every recipient's station is known); the station's answer."""
    queued: dict[str, Any] = {}

    async def accepted_by_station() -> bool:
        try:
            queued.update(await _call(client.send, channel, body=body, precedence=prec))
        except Unavailable:  # recipients not introduced yet
            return False
        return True

    await _until(accepted_by_station, "recipients known")
    return queued


async def _index_at(client: StationClient, channel: str, digest: str) -> int:
    """Where a station took the message with this hash (with several relays each station
    numbers a message by the log it took it from first)."""
    found: list[int] = []

    async def there() -> bool:
        for m in await _call(client.inbox, channel):
            if m["hash"] == digest:
                found.append(m["index"])
                return True
        return False

    await _until(there, "message arrived")
    return found[0]


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A blocking API call, off the event loop that serves the API."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def _scenario(
    us: StationClient, ru: StationClient, ua: StationClient, every: dict[str, StationClient]
) -> None:
    async def connected() -> bool:
        for client in every.values():
            try:
                if not (await _call(client.status))["relay"]["connected"]:
                    return False
            except Unavailable:  # its API is not listening yet
                return False
        return True

    await _until(connected, "stations connected")
    say("relay and stations up; a station sends to another once it verified its certificate\n")

    # (channel, log index) -> (seq, hash), as the sender saw it: an index alone names a
    # different message in each channel
    seqs: dict[tuple[str, int], tuple[int, str]] = {}

    async def send(client: StationClient, channel: str, body: dict[str, Any], prec: str) -> int:
        """Queue (once every recipient's station is known), then wait for the log index."""
        queued = await _send(client, channel, body, prec)
        index: list[int] = []

        async def logged() -> bool:
            sent = await _call(client.sent_message, channel, queued["seq"])
            if sent["index"] is not None:
                index.append(sent["index"])
            return bool(index)

        await _until(logged, "accepted")
        seqs[channel, index[0]] = (queued["seq"], queued["hash"])
        return index[0]

    notice = {
        "type": "form",
        "form": "deconfliction-notice",
        "version": 1,
        "fields": {
            "activity": "repair-power-infrastructure",
            "area": {"point": {"lat": 47.5123, "lon": 34.5861}, "radius_km": 5},
            "altitude": {"min_m": 0, "max_m": 150},
            "window": {"start": NOTICE_WINDOW[0] + ":00Z", "end": NOTICE_WINDOW[1] + ":00Z"},
            "contact": "Energy repair coordination cell",
            "ack_requested": True,
        },
    }
    i1 = await send(us, "us-ru-ua", notice, "PRIORITY")
    say(f"us -> us-ru-ua  PRIORITY   deconfliction notice (repair work), {_at(i1)}")
    report = {
        "type": "form",
        "form": "incident-report",
        "version": 1,
        "fields": {
            "time": "2026-11-25T02:10:00Z",
            "location": {"point": {"lat": 50.45, "lon": 30.52}},
            "incident": "drone-strike",
            "counts": [
                {"means": "drones-launched", "count": 183, "source": "ua"},
                {"means": "ballistic-missiles", "count": 2, "source": "ua"},
                {"means": "drones-downed", "count": 95, "source": "ua"},
            ],
            "casualties": {"killed_civilian": 0, "injured_civilian": 4, "source": "ua"},
        },
    }
    i2 = await send(ua, "us-ru-ua", report, "IMMEDIATE")
    say(f"ua -> us-ru-ua  IMMEDIATE  incident report (183 drones, 2 ballistic missiles), {_at(i2)}")
    flash = {
        "type": "text",
        "lang": "en",
        "text": "Unannounced air activity near the line of contact. Confirm intent.",
    }
    i3 = await send(us, "us-ru", flash, "FLASH")
    say(f"us -> us-ru     FLASH      free text, {_at(i3)}")

    at_ru = await _index_at(ru, "us-ru", seqs["us-ru", i3][1])  # ru's number for it
    await _call(
        ru.ack, "us-ru", at_ru, "duty officer Petrov", "Received. Checking; reply within the hour."
    )
    say("ru acknowledges the FLASH as 'duty officer Petrov'")

    async def ru_state() -> dict[str, Any]:
        sent = await _call(us.sent_message, "us-ru", seqs["us-ru", i3][0])
        state: dict[str, Any] = sent["recipients"].get("ru", {})
        return state

    async def acked() -> bool:  # ru's delivered receipt may come after its acknowledgment
        state = await ru_state()
        return bool(state.get("acknowledged")) and bool(state.get("delivered"))

    await _until(acked, "ack at us")
    state = await ru_state()
    say(
        f"us sees: delivered to {state['delivered']['station']}, acknowledged by "
        f"{state['acknowledged']['operator']}: {state['acknowledged']['reply']!r}"
    )

    async def delivered_everywhere() -> bool:
        state = (await _call(us.sent_message, "us-ru-ua", seqs["us-ru-ua", i1][0]))["recipients"]
        return bool(state) and all(v.get("delivered") for v in state.values())

    await _until(delivered_everywhere, "notice delivered")
    say("us sees the deconfliction notice delivered to ru and ua (signed receipts in the log)")


def print_where(net: Network, ae2_port: int | None = None) -> None:
    say("\nwhere everything is:")
    say(f"  relay.ae   {net.relay_url}   (http://127.0.0.1:{net.relay_port}/health)")
    if ae2_port is not None:
        say(f"  relay.ae   ws://127.0.0.1:{ae2_port}/ws   (its second process)")
    for name, (_, port) in net.more_relays.items():
        say(f"  {name:<10} ws://127.0.0.1:{port}/ws   (http://127.0.0.1:{port}/health)")
    for ident, sdir in net.stations.items():
        say(f"  station {ident:<7} console http://127.0.0.1:{net.api_ports[ident]}/  dir {sdir}")
    say(
        "  consoles: sign in as 'duty officer' with the passphrase in "
        f"{net.root / 'demo-passphrase'}"
    )
    ru = net.api_ports["ru/ru-1"]
    say(
        f"  the map:   http://127.0.0.1:{ru}/situation?from={NOTICE_WINDOW[0]}"
        f"&to={NOTICE_WINDOW[1]}&hours=720  (the notice's window, ru's console)"
    )
    here = Path(sys.executable).parent / "hotline"
    cmd = str(here) if here.exists() and shutil.which("hotline") != str(here) else "hotline"
    say(f"  try: {cmd} status --dir {net.stations['us/us-1']}")
    say(f"       {cmd} inbox --dir {net.stations['ru/ru-1']}")
    if os.environ.get("HOTLINE_PASSPHRASE") is None:
        say(f"  (demo keys' passphrase is in {net.root / 'demo-passphrase'})")


def main() -> None:  # pragma: no cover - convenience
    try:
        asyncio.run(run_demo(None, 8700, asyncio.Event(), True))
    except HotlineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
