"""`hotline demo`: a relay and stations us, ru, ua on loopback, with real traffic.

Everything runs in this process but talks over real WebSockets and HTTP on
127.0.0.1, with the embedded SQLite stores in a (temporary or given) directory.
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
from .run import build_relay, build_station, serve_relay, serve_station
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


async def run_demo(
    directory: Path | None, base_port: int, stop: asyncio.Event, scenario_only: bool = False
) -> None:
    root = Path(tempfile.mkdtemp(prefix="hotline-demo-")) if directory is None else directory
    if (root / "relay").exists():
        raise Malformed(f"{root} already holds a demo; give a new --dir", field="dir")
    passphrase = secrets.token_urlsafe(24)
    write_private(root / "demo-passphrase", passphrase.encode() + b"\n")
    say(f"hotline demo in {root}")
    say(
        "creating keys for us, ru, ua and the relay hosts ae and ch (Argon2id-encrypted at rest)..."
    )
    ch_port = base_port + 90
    net = provision(root, passphrase, relay_port=base_port, extra_relays={"relay.ch": ch_port})
    for sdir in net.stations.values():
        store = StationStore(sdir / "station.db")
        language = read_toml(sdir / "station.toml")["language"]
        add_operator(store, "duty officer", passphrase, language, int(time.time() * 1000))
        store.close()
    relay = build_relay(net.relay_dir, passphrase)
    relay_ch = build_relay(net.more_relays["relay.ch"][0], passphrase)
    stations: dict[str, tuple[StationService, StationAPI]] = {
        ident: build_station(sdir, passphrase) for ident, sdir in net.stations.items()
    }
    inner_stop = asyncio.Event()
    ae_stop = asyncio.Event()  # relay.ae is stopped mid-way: traffic goes on through relay.ch
    async with asyncio.TaskGroup() as tg:
        ae = tg.create_task(serve_relay(relay, "127.0.0.1", base_port, stop=ae_stop))
        tg.create_task(serve_relay(relay_ch, "127.0.0.1", ch_port, stop=inner_stop))
        for ident, (service, api) in stations.items():
            tg.create_task(
                serve_station(service, api, "127.0.0.1", net.api_ports[ident], inner_stop)
            )
        try:
            await scenario(net)

            async def stop_ae() -> None:
                ae_stop.set()
                await ae

            await redundancy(net, stop_ae)
            print_where(net)
            if not scenario_only:
                say("\nrunning; press Ctrl-C to stop")
                await stop.wait()
        finally:
            say("stopping...")
            ae_stop.set()
            inner_stop.set()
    say("stopped cleanly")


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
        for n in range(1, 4):
            text = f"Message {n} while relay.ae is down."
            sent = await _send(us, "us-ru", {"type": "text", "lang": "en", "text": text}, "ROUTINE")
            await _index_at(ru, "us-ru", sent["hash"])
            say(f"us -> us-ru     ROUTINE    message {n}: delivered to ru through relay.ch")
        say("messages keep flowing with relay.ae down; each station's path audit names relay.ae")
    finally:
        us.close()
        ru.close()


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

    seqs: dict[int, tuple[int, str]] = {}  # log index -> (seq, hash), as the sender saw it

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
        seqs[index[0]] = (queued["seq"], queued["hash"])
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

    at_ru = await _index_at(ru, "us-ru", seqs[i3][1])  # ru's number for it
    await _call(
        ru.ack, "us-ru", at_ru, "duty officer Petrov", "Received. Checking; reply within the hour."
    )
    say("ru acknowledges the FLASH as 'duty officer Petrov'")

    async def ru_state() -> dict[str, Any]:
        sent = await _call(us.sent_message, "us-ru", seqs[i3][0])
        state: dict[str, Any] = sent["recipients"].get("ru", {})
        return state

    async def acked() -> bool:
        return bool((await ru_state()).get("acknowledged"))

    await _until(acked, "ack at us")
    state = await ru_state()
    say(
        f"us sees: delivered to {state['delivered']['station']}, acknowledged by "
        f"{state['acknowledged']['operator']}: {state['acknowledged']['reply']!r}"
    )

    async def delivered_everywhere() -> bool:
        state = (await _call(us.sent_message, "us-ru-ua", seqs[i1][0]))["recipients"]
        return bool(state) and all(v.get("delivered") for v in state.values())

    await _until(delivered_everywhere, "notice delivered")
    say("us sees the deconfliction notice delivered to ru and ua (signed receipts in the log)")


def print_where(net: Network) -> None:
    say("\nwhere everything is:")
    say(f"  relay.ae   {net.relay_url}   (http://127.0.0.1:{net.relay_port}/health)")
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
