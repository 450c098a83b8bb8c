"""Setting up: party and relay keys, the roster, stations, console operators."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..home import load_party, party_init, relay_init, station_config, station_init
from ..notes import parse_note
from ..roster import LANGUAGES, open_roster, roster_text, sign_roster, unsigned_parties
from ..rotate import rotate_station
from . import render
from .base import (
    dir_option,
    get_passphrase,
    handled,
    json_option,
    main,
    pass_env_option,
    passphrase_for_load,
    secret_from_env,
)
from .specs import CHANNEL_FORM, PARTY_FORM, channel_spec, party_spec, verifier_key


@main.group()
def party() -> None:
    """A party's root key: certifies stations, signs the roster."""


@party.command("init")
@dir_option("Directory for the party's key.")
@click.option("--party", "name", required=True, help="Party identifier, e.g. us.")
@pass_env_option
@handled
def party_init_cmd(directory: Path, name: str, passphrase_env: str) -> None:
    """Create a party root key pair, Ed25519 and ML-DSA-65 (encrypted at rest), and print
    the public keys (as party.pub holds them)."""
    key = party_init(directory, name, get_passphrase(passphrase_env, confirm=True))
    click.echo("\n".join(key.public_keys().values()))


@main.group()
def roster() -> None:
    """Create, sign and inspect the roster every party must sign."""


@roster.command("create")
@click.option("--name", required=True, help="Roster (network) name, e.g. abu-dhabi.")
@click.option(
    "--party",
    "parties",
    multiple=True,
    required=True,
    metavar=PARTY_FORM,
    help=f"Once per party (LANG: {', '.join(LANGUAGES)}; default en), e.g. us:en=us/party.pub",
)
@click.option(
    "--channel",
    "channels",
    multiple=True,
    required=True,
    metavar=CHANNEL_FORM,
    help="Once per channel; deadlines in seconds, e.g. us-ru=us,ru:FLASH=300",
)
@click.option(
    "--relay-key",
    "relay_keys",
    required=True,
    multiple=True,
    help="A relay's public key or relay.pub file; repeat it for independent relays "
    "(each host its own log of every channel).",
)
@click.option(
    "--min-envelope-version",
    type=click.IntRange(1, 2),
    help="Refuse envelopes older than this version (2: post-quantum only) ...",
)
@click.option(
    "--min-envelope-version-from",
    type=click.IntRange(0),
    help="... from this relay time on (Unix ms; entries logged before stay valid).",
)
@click.option(
    "--receipt-runs/--no-receipt-runs",
    default=True,
    show_default=True,
    help="Stations may send one delivered receipt for a run of messages (every station "
    "must read them: no for a network still running stations from before issue 15).",
)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@handled
def roster_create(
    name: str,
    parties: tuple[str, ...],
    channels: tuple[str, ...],
    relay_keys: tuple[str, ...],
    min_envelope_version: int | None,
    min_envelope_version_from: int | None,
    receipt_runs: bool,
    out: Path,
) -> None:
    """Write an unsigned roster; then each party runs `hotline roster sign`."""
    party_map = dict(party_spec(spec) for spec in parties)
    chan_map = dict(channel_spec(spec) for spec in channels)
    text = roster_text(
        name,
        party_map,
        chan_map,
        [verifier_key(k) for k in relay_keys],
        min_envelope_version=min_envelope_version,
        min_envelope_from_ms=min_envelope_version_from,
        receipt_runs=receipt_runs,
    )
    out.write_text(text)
    click.echo(render.roster_written(out, list(party_map)))


@roster.command("sign")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--party-dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@pass_env_option
@handled
def roster_sign(path: Path, party_dir: Path, passphrase_env: str) -> None:
    """Add this party's signature to the roster file (in place)."""
    data = path.read_bytes()
    note = parse_note(data) if b"\n\n" in data else data.decode()
    key = load_party(party_dir, passphrase_for_load(passphrase_env))
    signed = sign_roster(note, key).encode()
    path.write_bytes(signed)
    click.echo(render.roster_signed(key.party, unsigned_parties(signed)))


@roster.command("show")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@json_option
@handled
def roster_show(path: Path, as_json: bool) -> None:
    """Check a roster's signatures and print it."""
    click.echo(render.roster(open_roster(path.read_bytes()), as_json))


@main.group()
def relay() -> None:
    """The relay run by the host."""


@relay.command("init")
@dir_option("Directory for the relay.")
@click.option("--name", default="relay", show_default=True, help="Relay key name.")
@click.option("--port", default=8700, show_default=True)
@pass_env_option
@handled
def relay_init_cmd(directory: Path, name: str, port: int, passphrase_env: str) -> None:
    """Create the relay's checkpoint key; print its public key for the roster."""
    signer = relay_init(directory, name, get_passphrase(passphrase_env, confirm=True), port=port)
    click.echo(signer.verifier.encode())


@main.group()
def station() -> None:
    """A party's station: keys, outbox, inbox, verification."""


@station.command("init")
@dir_option("Directory for the new station.")
@click.option(
    "--party-dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="The party directory whose root key certifies this station.",
)
@click.option("--station", "name", required=True, help="Station identifier, e.g. us-1.")
@click.option(
    "--relay",
    "relay_urls",
    multiple=True,
    default=("ws://127.0.0.1:8700/ws",),
    show_default=True,
    help="The relay's URL; repeat it (or separate with commas) for several processes "
    "of the same relay: the station moves to the next when one fails.",
)
@click.option("--api-port", default=8711, show_default=True)
@click.option("--language", type=click.Choice(LANGUAGES), default="en", show_default=True)
@click.option(
    "--roster",
    "roster_path",
    type=click.Path(path_type=Path, exists=True),
    help="The signed roster to install.",
)
@click.option("--valid-days", default=365, show_default=True)
@pass_env_option
@handled
def station_init_cmd(
    directory: Path,
    party_dir: Path,
    name: str,
    relay_urls: tuple[str, ...],
    api_port: int,
    language: str,
    roster_path: Path | None,
    valid_days: int,
    passphrase_env: str,
) -> None:
    """Create station keys and have the party root certify them."""
    passphrase = get_passphrase(passphrase_env)
    cert = station_init(
        directory,
        load_party(party_dir, passphrase),
        name,
        passphrase,
        relay=relay_urls,
        api_port=api_port,
        language=language,
        valid_days=valid_days,
    )
    if roster_path is not None:
        signed = roster_path.read_bytes()
        open_roster(signed)  # install only a roster every party has signed
        (directory / "roster.note").write_bytes(signed)
    click.echo(render.certified(cert))


@station.command("rotate")
@dir_option("The station's directory; the station must be serving.")
@click.option(
    "--party-dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="The party directory whose root key certifies the new key and revokes the old.",
)
@click.option("--valid-days", default=365, show_default=True)
@click.option(
    "--drain-timeout",
    default=300.0,
    show_default=True,
    help="Seconds to wait at most for the outbox to drain before the old key is revoked.",
)
@click.option(
    "--confirm-timeout",
    default=30.0,
    show_default=True,
    help="Seconds to wait for every relay to log the revocation before reporting what is "
    "still pending (the station keeps handing it over until each relay has logged it).",
)
@pass_env_option
@handled
def station_rotate_cmd(
    directory: Path,
    party_dir: Path,
    valid_days: int,
    drain_timeout: float,
    confirm_timeout: float,
    passphrase_env: str,
) -> None:
    """Give a serving station a new key without losing a message.

    The new key is certified by the party root and registered at every relay (each logs
    its certificate), the station switches to it, and once its outbox has drained (or
    the drain timeout passed) the old key is revoked: the station hands the revocation
    to every relay once that relay took everything posted before it (logged after
    everything the old key signed), one down now when it next links to it, and this
    command reports per relay what is logged and what is pending. The old key stays in
    DIR/retired/ to open what was sealed to it."""
    passphrase = get_passphrase(passphrase_env)
    rotation = rotate_station(
        directory,
        load_party(party_dir, passphrase),
        passphrase,
        valid_days=valid_days,
        drain_timeout=drain_timeout,
        confirm_timeout=confirm_timeout,
        say=click.echo,
    )
    click.echo(render.rotated(rotation.old, rotation.new))


@main.group()
def operator() -> None:
    """Operator accounts for the station's web console."""


@operator.command("add")
@dir_option("The station's directory.")
@click.option("--name", required=True, help="The operator's name, as recorded in receipts.")
@click.option("--language", type=click.Choice(LANGUAGES), help="Default: the station's.")
@click.option(
    "--password-env",
    default="HOTLINE_OPERATOR_PASSWORD",
    show_default=True,
    help="Environment variable holding the password (else you are asked).",
)
@handled
def operator_add(directory: Path, name: str, language: str | None, password_env: str) -> None:
    """Create a console account (password hashed with Argon2id)."""
    from ..station.operators import add_operator
    from ..station.store import StationStore

    cfg = station_config(directory)
    password = secret_from_env(password_env, "password")
    store = StationStore(directory / "station.db")
    try:
        add_operator(store, name, password, language or cfg.language, int(time.time() * 1000))
    finally:
        store.close()
    click.echo(render.operator_added(name, cfg.api_url))
