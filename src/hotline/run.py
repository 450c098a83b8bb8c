"""Running a relay or a station: load its directory, serve until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from .errors import HotlineError, Malformed
from .frames import MAX_FRAME
from .home import (
    check_relay_url,
    is_loopback,
    load_relay_key,
    load_retired,
    load_roster,
    load_station,
    read_toml,
    station_config,
)
from .keys import StationCertificate, StationKey
from .relay.app import Relay
from .relay.core import RelayCore
from .relay.limits import Limits
from .relay.sqlite import SqliteRelayStore
from .relay.storage import RelayStore
from .relay.transport import RelayWebSocketProtocol
from .station.api import StationAPI, error_response
from .station.console.app import Console
from .station.core import StationCore
from .station.metrics import metrics_route
from .station.service import StationService
from .station.store import StationStore

log = logging.getLogger("hotline")


class Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def is_postgres(database: str | None) -> bool:
    return bool(database) and str(database).startswith(("postgresql://", "postgres://"))


def open_store(directory: Path, database: str | None, origin: str = "") -> RelayStore:
    """SQLite in the relay's directory by default; ``postgresql://...`` for PostgreSQL."""
    if database and is_postgres(database):
        from .relay.postgres import PostgresRelayStore

        return PostgresRelayStore(database, origin)
    if database:
        raise Malformed(
            "the database must be a postgresql:// URL (or absent for SQLite)", field="database"
        )
    return SqliteRelayStore(directory / "relay.db")


def build_relay(
    directory: Path,
    passphrase: str | None,
    rate: float = 2000.0,
    burst: float = 4000.0,
    database: str | None = None,
) -> Relay:
    roster = load_roster(directory / "roster.note")
    fanout = None
    if database and is_postgres(database):
        # Other relay processes may share the database: hear what they append.
        from .relay.fanout import Fanout, new_origin

        fanout = Fanout(database, new_origin())
    store = open_store(directory, database, fanout.origin if fanout else "")
    core = RelayCore(store, roster, load_relay_key(directory, passphrase))
    return Relay(core, rate=rate, burst=burst, limits=relay_limits(directory), fanout=fanout)


def relay_limits(directory: Path) -> Limits:
    """relay.toml's ``[limits]``, then ``HOTLINE_RELAY_<NAME>`` variables, then defaults."""
    config = directory / "relay.toml"
    table = read_toml(config).get("limits", {}) if config.exists() else {}
    if not isinstance(table, dict):
        raise Malformed("relay.toml: limits must be a table ([limits])", field="limits")
    return Limits.from_settings(table)


async def serve_relay(
    relay: Relay,
    host: str,
    port: int,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    allow_plain: bool = False,
    stop: asyncio.Event | None = None,
) -> None:
    if tls_cert is None and not is_loopback(host):
        if not allow_plain:
            raise Malformed(
                f"refusing to serve without TLS on {host}: give --tls-cert and --tls-key "
                "(or --allow-plain on a network you trust)",
                field="host",
            )
        log.warning("serving WITHOUT TLS on %s: traffic metadata is exposed", host)
    config = uvicorn.Config(
        relay.app(),
        host=host,
        port=port,
        log_level="warning",
        log_config=None,  # uvicorn's few lines go through our handler (text or JSON)
        ws_max_size=4 * MAX_FRAME,
        ws=RelayWebSocketProtocol,  # lets go of peers that stop reading
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        lifespan="on",
        ws_ping_interval=20,
        ws_per_message_deflate=False,  # ciphertext does not compress; deflate only costs CPU
    )
    await _serve(Server(config), stop)


async def _serve(server: Server, stop: asyncio.Event | None) -> None:
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(server.serve())
        if stop is not None:
            waiter = tg.create_task(stop.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            server.should_exit = True
            waiter.cancel()


def build_station(
    directory: Path, passphrase: str | None, relays: Sequence[str] = ()
) -> tuple[StationService, StationAPI]:
    """The station in ``directory``; ``relays`` (URLs) replace station.toml's."""
    cfg = station_config(directory)
    urls = list(relays) or list(cfg.relays)
    for url in urls:
        # Plain text off loopback would show who talks when to anyone on the path.
        check_relay_url(url, cfg.allow_plain_relay)
        if cfg.allow_plain_relay and url.startswith("ws://"):
            log.warning("linking to the relay WITHOUT TLS (%s): traffic metadata is exposed", url)
    roster = load_roster(directory / "roster.note")
    key, cert = load_station(directory, passphrase, roster)
    core = StationCore(StationStore(directory / "station.db"), key, cert, roster)
    core.switch_key(key, cert, load_retired(directory, passphrase))  # keys before a rotation

    def reload_key() -> tuple[StationKey, StationCertificate, list[StationKey]]:
        return (*load_station(directory, passphrase, roster), load_retired(directory, passphrase))

    ssl_context = None
    if any(url.startswith("wss://") for url in urls):
        ssl_context = ssl.create_default_context()
        ca = directory / "relay-ca.pem"
        if ca.exists():
            ssl_context.load_verify_locations(str(ca))
    service = StationService(core, urls, ssl_context=ssl_context)
    return service, StationAPI(service, cfg.token(), cfg.language, reload_key)


async def serve_station(
    service: StationService,
    api: StationAPI,
    host: str,
    port: int,
    stop: asyncio.Event | None = None,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> None:
    """Serve the local API and console; off loopback only over TLS (Secure cookies)."""
    if not is_loopback(host):
        if tls_cert is None or tls_key is None:
            raise Malformed(
                f"refusing to serve the station API and console without TLS on {host}: "
                "set api_tls_cert and api_tls_key in station.toml (or listen on 127.0.0.1)",
                field="api_host",
            )
        log.warning("station API and console listen on %s (not loopback)", host)
    app = Starlette(
        routes=[*api.routes(), metrics_route(api), *Console(api).routes()],
        exception_handlers={HotlineError: error_response},
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,
        lifespan="off",
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )
    server = Server(config)
    stop = stop or asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(service.run_link())
        tg.create_task(service.run_ticker())
        tg.create_task(_serve(server, stop))
        await stop.wait()
        await service.shutdown()
    service.db.shutdown(wait=True)
