"""Running: the relay, a station, and the demo, each until Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import HotlineError
from ..home import read_toml, split_urls, station_config
from .base import (
    dir_option,
    fail,
    handled,
    log_format_option,
    main,
    pass_env_option,
    passphrase_for_load,
    run_until_signal,
    start_logging,
)
from .setup import relay, station


@relay.command("serve")
@dir_option("The relay's directory (relay.key, roster.note).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=None, type=int, help="Default: relay.toml's port.")
@click.option("--tls-cert", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--tls-key", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--allow-plain", is_flag=True, help="Serve without TLS off loopback (warned).")
@click.option("--rate", default=2000.0, show_default=True, help="Frames/s per station.")
@click.option(
    "--database",
    envvar="HOTLINE_RELAY_DATABASE",
    help="postgresql://... to keep the logs in PostgreSQL (default: SQLite in --dir; "
    "also relay.toml's database, or $HOTLINE_RELAY_DATABASE).",
)
@pass_env_option
@log_format_option
@handled
def relay_serve(
    directory: Path,
    host: str,
    port: int | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    allow_plain: bool,
    rate: float,
    database: str | None,
    passphrase_env: str,
    log_format: str,
) -> None:
    """Serve the relay until Ctrl-C."""
    from ..run import build_relay, serve_relay

    start_logging(log_format)
    cfg = read_toml(directory / "relay.toml")
    relay_obj = build_relay(
        directory,
        passphrase_for_load(passphrase_env),
        rate=rate,
        burst=2 * rate,
        database=database or cfg.get("database"),
    )
    port = port or int(cfg.get("port", 8700))
    click.echo(
        f"relay {relay_obj.core.roster.name} listening on "
        f"{'wss' if tls_cert else 'ws'}://{host}:{port}/ws",
        err=True,
    )
    run_until_signal(
        lambda stop: serve_relay(
            relay_obj,
            host,
            port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            allow_plain=allow_plain,
            stop=stop,
        )
    )


@station.command("serve")
@dir_option("The station's directory.")
@click.option(
    "--relay",
    "relays",
    multiple=True,
    help="The relay's URL (default: station.toml's relay); repeat it, or separate with "
    "commas, for several processes of the same relay: the station moves to the next "
    "when one fails.",
)
@pass_env_option
@log_format_option
@handled
def station_serve(
    directory: Path, relays: tuple[str, ...], passphrase_env: str, log_format: str
) -> None:
    """Run the station (link to the relay, local API) until Ctrl-C."""
    from ..run import build_station, serve_station

    start_logging(log_format)
    cfg = station_config(directory)
    urls = split_urls(relays)
    service, api = build_station(directory, passphrase_for_load(passphrase_env), urls)
    shown = ", ".join(service.failover.urls)
    click.echo(f"station {cfg.party}/{cfg.station}: API {cfg.api_url}, relay {shown}", err=True)
    run_until_signal(
        lambda stop: serve_station(
            service,
            api,
            cfg.api_host,
            cfg.api_port,
            stop,
            tls_cert=cfg.api_tls_cert,
            tls_key=cfg.api_tls_key,
        )
    )


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to keep the demo's files (default: a new temporary directory).",
)
@click.option(
    "--port",
    "base_port",
    default=8700,
    show_default=True,
    help="Relay port; stations' APIs use the next ports.",
)
@click.option("--scenario-only", is_flag=True, help="Run the scenario, then stop.")
@click.option(
    "--database",
    "--postgres",
    "database",
    metavar="URL",
    help="postgresql://... (as relay serve's --database) to keep the relays' logs in "
    "PostgreSQL (a new schema per relay, dropped when the demo stops) and run relay.ae as "
    "two processes on it, one stopped before the other (default: SQLite in --dir).",
)
@log_format_option
def demo(
    directory: Path | None,
    base_port: int,
    scenario_only: bool,
    database: str | None,
    log_format: str,
) -> None:
    """Two relays (hosts ae and ch) plus stations us, ru, ua on loopback, with a scripted
    scenario; relay.ae is stopped mid-way and messages keep flowing through relay.ch (with
    --database, first one of relay.ae's two processes: stations move to the other)."""
    from ..demo import run_demo

    start_logging(log_format)
    try:
        run_until_signal(lambda stop: run_demo(directory, base_port, stop, scenario_only, database))
    except HotlineError as exc:
        fail(exc)
