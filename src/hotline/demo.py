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
from pathlib import Path
from typing import Any

from .envelope import Kind, Precedence
from .errors import HotlineError, Malformed, Unavailable
from .home import read_toml, write_private
from .provision import Network, provision
from .run import build_relay, build_station, serve_relay, serve_station
from .station.api import StationAPI
from .station.operators import add_operator
from .station.service import StationService
from .station.store import StationStore

log = logging.getLogger("hotline.demo")


def say(text: str) -> None:
    print(text, flush=True)


async def _until(check: Any, timeout: float, what: str) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)
    del what


async def run_demo(
    directory: Path | None, base_port: int, stop: asyncio.Event, scenario_only: bool = False
) -> None:
    root = Path(tempfile.mkdtemp(prefix="hotline-demo-")) if directory is None else directory
    if (root / "relay").exists():
        raise Malformed(f"{root} already holds a demo; give a new --dir", field="dir")
    passphrase = secrets.token_urlsafe(24)
    write_private(root / "demo-passphrase", passphrase.encode() + b"\n")
    say(f"hotline demo in {root}")
    say("creating keys for us, ru, ua and the host ae (Argon2id-encrypted at rest)...")
    net = provision(root, passphrase, relay_port=base_port)
    for sdir in net.stations.values():
        store = StationStore(sdir / "station.db")
        language = read_toml(sdir / "station.toml")["language"]
        add_operator(store, "duty officer", passphrase, language, int(time.time() * 1000))
        store.close()
    relay = build_relay(net.relay_dir, passphrase)
    stations: dict[str, tuple[StationService, StationAPI]] = {
        ident: build_station(sdir, passphrase) for ident, sdir in net.stations.items()
    }
    inner_stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(serve_relay(relay, "127.0.0.1", base_port, stop=inner_stop))
        for ident, (service, api) in stations.items():
            tg.create_task(
                serve_station(service, api, "127.0.0.1", net.api_ports[ident], inner_stop)
            )
        try:
            await scenario(net, {k: v[0] for k, v in stations.items()})
            print_where(net)
            if not scenario_only:
                say("\nrunning; press Ctrl-C to stop")
                await stop.wait()
        finally:
            say("stopping...")
            inner_stop.set()
    say("stopped cleanly")


async def scenario(net: Network, st: dict[str, StationService]) -> None:
    us, ru, ua = st["us/us-1"], st["ru/ru-1"], st["ua/ua-1"]

    async def ready() -> bool:
        for service in st.values():
            if not service.link.connected:
                return False
            for ch in service.core.channels:
                try:
                    await service.run_db(service.core.recipients, ch)
                except Unavailable:
                    return False
        return True

    await _until(ready, 30, "stations connected")
    say("relay and stations up; every station verified every other's certificate\n")

    async def send(
        service: StationService, channel: str, body: dict[str, Any], precedence: Precedence
    ) -> int:
        item = await service.run_db(
            lambda: service.core.send(channel, body, kind=Kind.MESSAGE, precedence=precedence)
        )
        service.kick()

        async def accepted() -> bool:
            row = await service.run_db(service.core.store.outbox_item, channel, item.seq)
            return row is not None and row.index is not None

        await _until(accepted, 20, "accepted")
        row = await service.run_db(service.core.store.outbox_item, channel, item.seq)
        assert row is not None and row.index is not None
        return row.index

    notice = {
        "type": "form",
        "form": "deconfliction-notice",
        "version": 1,
        "fields": {
            "activity": "repair-power-infrastructure",
            "area": {"point": {"lat": 47.5123, "lon": 34.5861}, "radius_km": 5},
            "altitude": {"min_m": 0, "max_m": 150},
            "window": {"start": "2026-11-26T06:00:00Z", "end": "2026-11-26T18:00:00Z"},
            "contact": "Energy repair coordination cell",
            "ack_requested": True,
        },
    }
    i1 = await send(us, "us-ru-ua", notice, Precedence.PRIORITY)
    say(f"us -> us-ru-ua  PRIORITY   deconfliction notice (repair work), log index {i1}")
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
    i2 = await send(ua, "us-ru-ua", report, Precedence.IMMEDIATE)
    say(
        f"ua -> us-ru-ua  IMMEDIATE  incident report (183 drones, 2 ballistic missiles), "
        f"log index {i2}"
    )
    flash = {
        "type": "text",
        "lang": "en",
        "text": "Unannounced air activity near the line of contact. Confirm intent.",
    }
    i3 = await send(us, "us-ru", flash, Precedence.FLASH)
    say(f"us -> us-ru     FLASH      free text, log index {i3}")

    async def arrived() -> bool:
        return await ru.run_db(ru.core.store.message, "us-ru", i3) is not None

    await _until(arrived, 20, "FLASH at ru")
    await ru.run_db(
        ru.core.acknowledge,
        "us-ru",
        i3,
        "duty officer Petrov",
        "Received. Checking; reply within the hour.",
    )
    ru.kick()
    say("ru acknowledges the FLASH as 'duty officer Petrov'")

    async def acked() -> bool:
        state = await us.run_db(us.core.message_state, "us-ru", i3)
        return bool(state.get("ru", {}).get("acknowledged"))

    await _until(acked, 20, "ack at us")
    state = await us.run_db(us.core.message_state, "us-ru", i3)
    ru_state = state["ru"]
    say(
        f"us sees: delivered to {ru_state['delivered']['station']}, acknowledged by "
        f"{ru_state['acknowledged']['operator']}: {ru_state['acknowledged']['reply']!r}"
    )

    async def delivered_everywhere() -> bool:
        state = await us.run_db(us.core.message_state, "us-ru-ua", i1)
        return all(v.get("delivered") for v in state.values())

    await _until(delivered_everywhere, 20, "notice delivered")
    say("us sees the deconfliction notice delivered to ru and ua (signed receipts in the log)")
    del ua


def print_where(net: Network) -> None:
    say("\nwhere everything is:")
    say(f"  relay      {net.relay_url}   (http://127.0.0.1:{net.relay_port}/health)")
    for ident, sdir in net.stations.items():
        say(f"  station {ident:<7} console http://127.0.0.1:{net.api_ports[ident]}/  dir {sdir}")
    say(
        "  consoles: sign in as 'duty officer' with the passphrase in "
        f"{net.root / 'demo-passphrase'}"
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
