"""The `hotline` command: set up parties, stations and a relay; run them; use them.

Exit codes: 0 success; 1 unexpected failure; 2 usage error; 3 bad input;
4 verification failed; 5 not authorized (also a wrong passphrase);
6 unavailable (the station or relay is not reachable).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from . import __version__
from .errors import (
    BadInput,
    HotlineError,
    Malformed,
    NotAuthorized,
    Unavailable,
    VerificationFailed,
    from_dict,
)
from .forms import FORMS, FormError, form_body
from .forms import validate as validate_form
from .forms.prompt import prompt_form
from .forms.render import error_text as form_error_text
from .forms.render import schema_lines
from .home import (
    load_party,
    party_init,
    passphrase_from_env,
    relay_init,
    station_config,
    station_init,
)
from .i18n import t, when
from .notes import parse_note, parse_verifier_key
from .roster import LANGUAGES, PRECEDENCES, open_roster, roster_text, sign_roster, unsigned_parties

F = TypeVar("F", bound=Callable[..., Any])

EXIT = {BadInput: 3, VerificationFailed: 4, NotAuthorized: 5, Unavailable: 6}


def exit_code(exc: HotlineError) -> int:
    for cls, code in EXIT.items():
        if isinstance(exc, cls):
            return code
    return 1


def fail(exc: HotlineError, as_json: bool = False) -> None:
    if as_json:
        click.echo(json.dumps({"error": exc.to_dict()}))
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(exit_code(exc))


def handled(fn: F) -> F:
    """Turn hotline errors into a message and an exit code."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HotlineError as exc:
            fail(exc, bool(kwargs.get("as_json")))
        except OSError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper  # type: ignore[return-value]


def dir_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--dir",
        "directory",
        type=click.Path(path_type=Path, file_okay=False),
        default=lambda: os.environ.get("HOTLINE_DIR", "."),
        show_default="$HOTLINE_DIR or .",
        help=help_text,
    )


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
pass_env_option = click.option(
    "--passphrase-env",
    default="HOTLINE_PASSPHRASE",
    show_default=True,
    help="Environment variable holding the key passphrase (else you are asked).",
)


def get_passphrase(env_name: str, confirm: bool = False) -> str:
    value = passphrase_from_env(env_name)
    if value:
        return value
    if not sys.stdin.isatty():
        raise NotAuthorized(f"no passphrase: set {env_name} or run interactively")
    return str(click.prompt("Key passphrase", hide_input=True, confirmation_prompt=confirm))


def passphrase_for_load(env_name: str) -> str | None:
    if os.environ.get("HOTLINE_KEY"):
        return None
    return get_passphrase(env_name)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hotline")
def main() -> None:
    """hotline: a verifiable military-to-military channel.

    A relay (run by the host) logs signed, end-to-end encrypted envelopes in
    per-channel Merkle logs; a station per party keeps keys, outbox and inbox,
    verifies everything, and answers with signed receipts.
    """


# --- party ------------------------------------------------------------------------------


@main.group()
def party() -> None:
    """A party's root key: certifies stations, signs the roster."""


@party.command("init")
@dir_option("Directory for the party's key.")
@click.option("--party", "name", required=True, help="Party identifier, e.g. us.")
@pass_env_option
@handled
def party_init_cmd(directory: Path, name: str, passphrase_env: str) -> None:
    """Create a party root key (encrypted at rest) and print its public key."""
    key = party_init(directory, name, get_passphrase(passphrase_env, confirm=True))
    click.echo(key.verifier.encode())


# --- roster -----------------------------------------------------------------------------


@main.group()
def roster() -> None:
    """Create, sign and inspect the roster every party must sign."""


def _read_vkey(value: str) -> str:
    path = Path(value)
    text = path.read_text().strip() if path.exists() else value
    parse_verifier_key(text)
    return text


@roster.command("create")
@click.option("--name", required=True, help="Roster (network) name, e.g. abu-dhabi.")
@click.option(
    "--party",
    "parties",
    multiple=True,
    required=True,
    help="NAME=PUBKEY_OR_FILE[:LANG], once per party (LANG: en, ru, uk).",
)
@click.option(
    "--channel",
    "channels",
    multiple=True,
    required=True,
    help="NAME=MEMBER,MEMBER[:FLASH=600,...][:link=60], once per channel.",
)
@click.option("--relay-key", required=True, help="The relay's public key or relay.pub file.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@handled
def roster_create(
    name: str, parties: tuple[str, ...], channels: tuple[str, ...], relay_key: str, out: Path
) -> None:
    """Write an unsigned roster; then each party runs `hotline roster sign`."""
    party_map: dict[str, dict[str, str]] = {}
    for spec in parties:
        who, _, key_part = spec.partition("=")
        pname, _, lang = who.partition(":")
        if lang and lang not in LANGUAGES:
            raise Malformed(f"language of {pname} must be one of {', '.join(LANGUAGES)}")
        party_map[pname] = {"root": _read_vkey(key_part), "language": lang or "en"}
    chan_map: dict[str, dict[str, Any]] = {}
    for spec in channels:
        cname, _, rest = spec.partition("=")
        members, *opts = rest.split(":")
        entry: dict[str, Any] = {"members": members.split(",")}
        for opt in opts:
            for pair in opt.split(","):
                k, _, v = pair.partition("=")
                if k.upper() in PRECEDENCES:
                    entry.setdefault("deadlines", {})[k.upper()] = int(v)
                elif k == "link":
                    entry["link_test_seconds"] = int(v)
                else:
                    raise Malformed(f"unknown channel option {k!r}", field="channel")
        chan_map[cname] = entry
    text = roster_text(name, party_map, chan_map, _read_vkey(relay_key))
    out.write_text(text)
    click.echo(f"wrote {out}; to be signed by {', '.join(sorted(party_map))}")


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
    signed = sign_roster(note, key)
    path.write_bytes(signed.encode())
    missing = unsigned_parties(signed.encode())
    click.echo(
        f"signed by {key.party}; "
        + (f"still needs {', '.join(missing)}" if missing else "complete: every party has signed")
    )


@roster.command("show")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@json_option
@handled
def roster_show(path: Path, as_json: bool) -> None:
    """Check a roster's signatures and print it."""
    r = open_roster(path.read_bytes())
    data = {
        "name": r.name,
        "version": r.version,
        "relay_key": r.relay_key.encode(),
        "parties": {
            p.name: {"language": p.language, "root": p.root.encode()} for p in r.parties.values()
        },
        "channels": {
            c.name: {
                "members": list(c.members),
                "deadlines": c.deadlines,
                "link_test_seconds": c.link_test_seconds,
            }
            for c in r.channels.values()
        },
    }
    click.echo(json.dumps(data, indent=1) if as_json else _roster_text(data))


def _roster_text(data: dict[str, Any]) -> str:
    lines = [f"roster {data['name']} v{data['version']}: signed by every party"]
    for name, p in data["parties"].items():
        lines.append(f"  party {name} ({p['language']})")
    for name, c in data["channels"].items():
        lines.append(
            f"  channel {name}: {', '.join(c['members'])}; deadlines "
            + ", ".join(f"{k} {v}s" for k, v in c["deadlines"].items())
        )
    return "\n".join(lines)


# --- relay ------------------------------------------------------------------------------


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
) -> None:
    """Serve the relay until Ctrl-C."""
    from .home import read_toml
    from .run import build_relay, serve_relay

    _logging()
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
    _run_until_signal(
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


def _logging() -> None:
    import logging

    logging.basicConfig(
        level=os.environ.get("HOTLINE_LOG", "INFO"),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


def _run_until_signal(make: Callable[[asyncio.Event], Any]) -> None:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await make(stop)

    asyncio.run(runner())


# --- station ----------------------------------------------------------------------------


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
@click.option("--relay", "relay_url", default="ws://127.0.0.1:8700/ws", show_default=True)
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
    relay_url: str,
    api_port: int,
    language: str,
    roster_path: Path | None,
    valid_days: int,
    passphrase_env: str,
) -> None:
    """Create station keys and have the party root certify them."""
    passphrase = get_passphrase(passphrase_env)
    key = load_party(party_dir, passphrase)
    cert = station_init(
        directory,
        key,
        name,
        passphrase,
        relay=relay_url,
        api_port=api_port,
        language=language,
        valid_days=valid_days,
    )
    if roster_path is not None:
        open_roster(roster_path.read_bytes())
        (directory / "roster.note").write_bytes(roster_path.read_bytes())
    click.echo(
        f"station {cert.ident} certified until "
        f"{datetime.fromtimestamp(cert.not_after, UTC):%Y-%m-%d}"
    )


@station.command("serve")
@dir_option("The station's directory.")
@pass_env_option
@handled
def station_serve(directory: Path, passphrase_env: str) -> None:
    """Run the station (link to the relay, local API) until Ctrl-C."""
    from .run import build_station, serve_station

    _logging()
    cfg = station_config(directory)
    service, api = build_station(directory, passphrase_for_load(passphrase_env))
    click.echo(f"station {cfg.party}/{cfg.station}: API {cfg.api_url}, relay {cfg.relay}", err=True)
    _run_until_signal(lambda stop: serve_station(service, api, cfg.api_host, cfg.api_port, stop))


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
    from .station.operators import add_operator
    from .station.store import StationStore

    cfg = station_config(directory)
    password = os.environ.get(password_env)
    if not password:
        if not sys.stdin.isatty():
            raise NotAuthorized(f"no password: set {password_env} or run interactively")
        password = str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    store = StationStore(directory / "station.db")
    try:
        import time as _time

        add_operator(store, name, password, language or cfg.language, int(_time.time() * 1000))
    finally:
        store.close()
    click.echo(f"operator {name!r} can sign in at {cfg.api_url}/login")


# --- using a running station ------------------------------------------------------------------


def _request(
    directory: Path, method: str, path: str, timeout: float = 30, **kwargs: Any
) -> httpx.Response:
    """A call to the station's local API; its errors raised as hotline errors."""
    cfg = station_config(directory)
    try:
        with httpx.Client(base_url=cfg.api_url, timeout=timeout) as client:
            headers = {"Authorization": f"Bearer {cfg.token()}", **kwargs.pop("headers", {})}
            resp = client.request(method, path, headers=headers, **kwargs)
    except httpx.HTTPError as exc:
        raise Unavailable(
            f"station at {cfg.api_url} is not answering ({exc}); is it running?"
        ) from exc
    if resp.status_code >= 400:
        raise from_dict(resp.json().get("error", {"message": resp.text}))
    return resp


def _api(directory: Path, method: str, path: str, **kwargs: Any) -> Any:
    return _request(directory, method, path, **kwargs).json()


def _ts(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@main.command()
@dir_option("The station's directory.")
@click.argument("channel")
@click.option(
    "--precedence",
    "-p",
    type=click.Choice(PRECEDENCES, case_sensitive=False),
    default="ROUTINE",
    show_default=True,
)
@click.option("--text", "-t", help="Free text.")
@click.option(
    "--form",
    "form_name",
    type=click.Choice(sorted(FORMS)),
    help="Send a structured form (fields from --file, or asked interactively).",
)
@click.option(
    "--file",
    "body_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The form's fields as TOML or JSON (or, without --form, a whole body).",
)
@click.option("--interactive", "-i", is_flag=True, help="Walk through the form's fields.")
@click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    help="Language of the text, and of prompts and errors (default: the station's).",
)
@json_option
@handled
def send(
    directory: Path,
    channel: str,
    precedence: str,
    text: str | None,
    form_name: str | None,
    body_file: Path | None,
    interactive: bool,
    lang: str | None,
    as_json: bool,
) -> None:
    """Queue a message on CHANNEL (the station sends it until the relay accepts)."""
    lang = lang or station_config(directory).language
    payload: dict[str, Any] = {"channel": channel, "precedence": precedence.upper()}
    if text is not None:
        payload["text"] = text
        payload["lang"] = lang
    elif form_name is not None:
        fields = (
            _read_fields(body_file)
            if body_file
            else (prompt_form(form_name, lang) if interactive else None)
        )
        if fields is None:
            raise Malformed(
                "give the form's fields with --file, or use --interactive", field="file"
            )
        payload["body"] = form_body(form_name, fields)
        try:
            validate_form(payload["body"])
        except FormError as exc:
            click.echo(f"error: {form_error_text(exc, lang)}", err=True)
            sys.exit(3)
    elif body_file is not None:
        payload["body"] = _read_fields(body_file)
    else:
        raise Malformed("give --text, or --form with --file or --interactive", field="text")
    out = _api(directory, "POST", "/api/send", json=payload, headers={"Accept-Language": lang})
    click.echo(
        json.dumps(out)
        if as_json
        else f"queued {out['channel']}:{out['seq']} ({precedence.upper()})"
    )


def _read_fields(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise Malformed(f"{path} is not valid {path.suffix[1:] or 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise Malformed(f"{path} must hold a table/object of fields")
    fields: dict[str, Any] = _times_to_text(data)
    return fields


def _times_to_text(value: Any) -> Any:
    """TOML reads 2026-11-25T06:00:00Z as a datetime; forms carry it as text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        return {k: _times_to_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_times_to_text(v) for v in value]
    return value


@main.group()
def forms() -> None:
    """The structured forms and their labels in each language."""


@forms.command("list")
@click.option("--lang", type=click.Choice(LANGUAGES), default="en", show_default=True)
def forms_list(lang: str) -> None:
    """Every form, with its name in LANG."""
    for name, form in sorted(FORMS.items()):
        click.echo(f"{name:<26} v{form.version}  {t(lang, 'form.' + name)}")


@forms.command("show")
@click.argument("name", type=click.Choice(sorted(FORMS)))
@click.option("--lang", type=click.Choice(LANGUAGES), default="en", show_default=True)
def forms_show(name: str, lang: str) -> None:
    """A form's fields, types and allowed values, labelled in LANG."""
    click.echo("\n".join(schema_lines(name, lang)))


@main.command()
@dir_option("The station's directory.")
@click.argument("channel")
@click.argument("index", type=int)
@click.option("--lang", type=click.Choice(LANGUAGES), help="Default: the station's language.")
@json_option
@handled
def show(directory: Path, channel: str, index: int, lang: str | None, as_json: bool) -> None:
    """One received message, rendered in the reader's language."""
    lang = lang or station_config(directory).language
    m = _api(directory, "GET", f"/api/messages/{channel}/{index}", params={"lang": lang})
    if as_json:
        click.echo(json.dumps(m))
        return
    view = m["view"]
    click.echo(
        f"{t(lang, 'precedence.' + m['precedence'])} {channel}#{index} from {m['sender']}"
        f", {when(m['relay_ms'], lang)}"
    )
    if view["kind"] == "form":
        click.echo(view["title"])
        for label, value in view["fields"]:
            click.echo(f"  {label}: {value}")
        if view.get("note"):
            click.echo(f"  ({view['note']})")
    elif view["kind"] == "text":
        click.echo(f"{t(lang, 'label.original')} [{view['lang']}]: {view['original']}")
        if view.get("translation"):
            click.echo(f"[{view['note']}] {view['translation']}")
        elif view.get("note"):
            click.echo(f"({view['note']})")
    else:
        click.echo(view.get("summary", ""))


@main.command()
@dir_option("The station's directory.")
@click.option("--channel")
@click.option("--watch", is_flag=True, help="Keep watching; FLASH and overdue ring the bell.")
@json_option
@handled
def inbox(directory: Path, channel: str | None, watch: bool, as_json: bool) -> None:
    """Messages received, by precedence then time."""
    params = {"channel": channel} if channel else {}
    seen_alarms: set[int] = set()
    version = -1
    while True:
        items = _api(directory, "GET", "/api/inbox", params=params)
        if as_json:
            click.echo(json.dumps(items))
        else:
            if watch:
                click.clear()
            for m in items:
                click.echo(_inbox_line(m))
        if not watch:
            return
        for alarm in _api(directory, "GET", "/api/alarms"):
            if alarm["id"] not in seen_alarms and alarm["kind"] in ("flash", "overdue"):
                click.echo(f"\a*** {alarm['kind'].upper()}: {alarm['message']} ***")
            seen_alarms.add(alarm["id"])
        version = _api(directory, "GET", "/api/wait", params={"version": version})["version"]


def _inbox_line(m: dict[str, Any]) -> str:
    state = m["state"].values()
    mark = (
        "ACK "
        if any(v.get("acknowledged") for v in state)
        else ("OVERDUE " if any(v.get("overdue") for v in state) else "")
    )
    return (
        f"{m['precedence']:<9} {m['channel']}#{m['index']:<5} {_ts(m['relay_ms'])} "
        f"{m['sender']:<10} {mark}{m['summary']}"
    )


@main.command()
@dir_option("The station's directory.")
@click.argument("channel")
@click.argument("index", type=int)
@click.option("--operator", required=True, help="Who acknowledges (recorded, signed).")
@click.option("--reply", help="A short reply.")
@json_option
@handled
def ack(
    directory: Path, channel: str, index: int, operator: str, reply: str | None, as_json: bool
) -> None:
    """Acknowledge message INDEX of CHANNEL as OPERATOR."""
    out = _api(
        directory,
        "POST",
        "/api/ack",
        json={"channel": channel, "index": index, "operator": operator, "reply": reply},
    )
    click.echo(json.dumps(out) if as_json else f"acknowledged {channel}#{index} as {operator}")


@main.command()
@dir_option("The station's directory.")
@click.argument("message", required=False)
@json_option
@handled
def status(directory: Path, message: str | None, as_json: bool) -> None:
    """Link, outbox, cursors and verification; or one sent MESSAGE (CHANNEL:SEQ)."""
    if message:
        channel, _, seq = message.partition(":")
        if not seq.isdigit():
            raise Malformed("MESSAGE is CHANNEL:SEQ, as `send` printed it", field="message")
        out = _api(directory, "GET", f"/api/sent/{channel}/{seq}")
        if as_json:
            click.echo(json.dumps(out))
            return
        click.echo(
            f"{channel}:{seq} {out['precedence']} {out['state']}"
            + (f" as #{out['index']} at {_ts(out['relay_ms'])}" if out["index"] is not None else "")
        )
        for party_name, st in out["recipients"].items():
            d, a = st.get("delivered"), st.get("acknowledged")
            line = f"  {party_name}: delivered " + (
                f"to {d['station']} at {_ts(d['relay_ms'])}" if d else "-"
            )
            line += "; acknowledged " + (
                f"by {a['operator']} at {_ts(a['relay_ms'])}" if a else "-"
            )
            if st.get("overdue"):
                line += f"; OVERDUE since {_ts(st['due_ms'])} (escalation {st['escalation']})"
            elif st.get("due_ms") and not a:
                line += f"; due {_ts(st['due_ms'])}"
            click.echo(line)
        return
    out = _api(directory, "GET", "/api/status")
    if as_json:
        click.echo(json.dumps(out))
        return
    link = out["relay"]
    click.echo(f"station {out['station']} (roster {out['roster']})")
    click.echo(
        f"relay {link['url']}: {'UP' if link['connected'] else 'DOWN'}"
        f", last contact {_ts(link['last_contact_ms'])}"
        + (f", rtt {link['rtt_ms']:.1f} ms" if link["rtt_ms"] else "")
        + (f", last error {link['last_error']}" if link["last_error"] else "")
    )
    ob = out["outbox"]
    click.echo(f"outbox: {ob['queued']} queued, {ob['accepted']} accepted, {ob['refused']} refused")
    for ch, c in out["channels"].items():
        click.echo(f"channel {ch}: cursor {c['cursor']}, verified checkpoint {c['verified_size']}")
    for ch, parties in out.get("links", {}).items():
        for party_name, link in parties.items():
            rtt = f", rtt {link['rtt_ms']:.0f} ms" if link["rtt_ms"] is not None else ""
            click.echo(
                f"link {ch} {party_name}: {link['state'].upper()}, last contact "
                f"{_ts(link['last_contact_ms'])}{rtt}, missed {link['missed']}"
            )
    click.echo(f"open alarms: {out['open_alarms']}")


@main.command()
@dir_option("The station's directory.")
@json_option
@handled
def alarms(directory: Path, as_json: bool) -> None:
    """Open alarms (verification failures, forks, overdue, link down)."""
    items = _api(directory, "GET", "/api/alarms")
    if as_json:
        click.echo(json.dumps(items))
        return
    for a in items:
        where = f" {a['channel']}#{a['index']}" if a["channel"] else ""
        click.echo(
            f"[{a['id']}] L{a['level']} {a['kind']}{where} {_ts(a['created_ms'])}: {a['message']}"
        )


@main.command()
@dir_option("The station's directory.")
@click.argument("channel")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option(
    "--with-bodies",
    is_flag=True,
    help="Disclose the bodies this party can read (each bound to its envelope).",
)
@handled
def export(directory: Path, channel: str, out: Path, with_bodies: bool) -> None:
    """Write CHANNEL's transcript: everything `hotline verify` needs, offline."""
    resp = _request(
        directory,
        "GET",
        f"/api/export/{channel}",
        timeout=300,
        params={"bodies": "1"} if with_bodies else {},
    )
    out.write_bytes(resp.content)
    doc = json.loads(resp.content)
    click.echo(
        f"wrote {out}: {len(doc['entries'])} entries, {len(doc['checkpoints'])} "
        f"checkpoints, {len(doc['bodies'])} disclosed bodies"
    )


@main.command()
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@json_option
def verify(path: Path, as_json: bool) -> None:
    """Verify a transcript offline (no network, no keys). Exit 4 on any failure."""
    from . import transcript

    try:
        doc = json.loads(path.read_bytes())
    except ValueError as exc:
        fail(Malformed(f"{path} is not a transcript: {exc}"), as_json)
    report = transcript.verify(doc)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=1))
    else:
        click.echo(_verify_text(report))
    sys.exit(0 if report.ok else 4)


def _verify_text(report: Any) -> str:
    lines = [
        f"channel {report.channel}: {report.entries} entries, "
        f"{_ts(report.first_ms)} .. {_ts(report.last_ms)}",
        f"checkpoints: {report.checkpoints} signed by the relay, largest "
        f"{report.largest_checkpoint}",
    ]
    for witness, size in sorted(report.cosigned.items()):
        lines.append(f"  cosigned by {witness} up to size {size}")
    for party_name, r in report.parties.items():
        lines.append(
            f"party {party_name}: sent {r.sent}, delivered {r.delivered}, "
            f"acknowledged {r.acknowledged}, overdue {r.overdue}"
        )
    if report.bodies_checked:
        lines.append(f"disclosed bodies checked: {report.bodies_checked}")
    if report.ok:
        lines.append("VERIFIED: every signature, chain, checkpoint and proof holds")
    else:
        lines.append(f"FAILED: {len(report.failures)} problem(s)")
        lines.extend(f"  {f}" for f in report.failures)
    return "\n".join(lines)


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
def demo(directory: Path | None, base_port: int, scenario_only: bool) -> None:
    """Relay plus stations us, ru, ua (host ae) on loopback, with a scripted scenario."""
    from .demo import run_demo

    _logging()
    try:
        _run_until_signal(lambda stop: run_demo(directory, base_port, stop, scenario_only))
    except HotlineError as exc:
        fail(exc)
