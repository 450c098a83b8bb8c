"""Using a running station through its local API: send, read, acknowledge, watch."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import Malformed
from ..forms import FORMS, FormError, form_body
from ..forms import validate as validate_form
from ..forms.prompt import prompt_form
from ..forms.render import error_text as form_error_text
from ..forms.render import schema_lines
from ..home import station_config
from ..roster import LANGUAGES, PRECEDENCES
from ..station.client import Json, new_key
from . import render
from .base import dir_option, handled, json_option, main, station_client
from .specs import read_fields

SEND_RETRY_S = 30.0


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
@click.option(
    "--key",
    help="Idempotency key: the station queues one message per key, however often it is "
    "sent (default: a new random key; a cut send is retried with it).",
)
@click.option(
    "--retry-for",
    type=click.FloatRange(min=0),
    default=SEND_RETRY_S,
    show_default=True,
    help="Seconds to retry a send cut before its answer (the station restarting).",
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
    key: str | None,
    retry_for: float,
    as_json: bool,
) -> None:
    """Queue a message on CHANNEL (the station sends it until the relay accepts)."""
    lang = lang or station_config(directory).language
    body = None if text is not None else _body(form_name, body_file, interactive, lang)
    with station_client(directory) as station:
        out = station.send(
            channel,
            text=text,
            body=body,
            precedence=precedence,
            lang=lang,
            key=key or new_key(),
            retry_for=retry_for,
        )
    click.echo(render.queued(out, precedence.upper(), as_json))


def _body(
    form_name: str | None, body_file: Path | None, interactive: bool, lang: str
) -> dict[str, Any]:
    """The body to send: a form (from a file or asked for), or a whole body from a file."""
    if form_name is None:
        if body_file is None:
            raise Malformed("give --text, or --form with --file or --interactive", field="text")
        return read_fields(body_file)
    if body_file is not None:
        fields = read_fields(body_file)
    elif interactive:
        fields = prompt_form(form_name, lang)
    else:
        raise Malformed("give the form's fields with --file, or use --interactive", field="file")
    body = form_body(form_name, fields)
    try:
        validate_form(body)
    except FormError as exc:
        click.echo(f"error: {form_error_text(exc, lang)}", err=True)
        sys.exit(3)
    return body


def paged(fn: Any) -> Any:
    """The paging options of a list command: --limit, --after, --all."""
    fn = click.option("--all", "every", is_flag=True, help="Every page, to the end.")(fn)
    fn = click.option("--after", help="The cursor a previous page gave as `next`.")(fn)
    return click.option(
        "--limit", type=click.IntRange(min=1), help="Items per page (default 200, at most 1000)."
    )(fn)


def _pages(fetch: Any, limit: int | None, after: str | None, every: bool) -> Json:
    """One page from ``fetch(limit=, after=)``; with ``every``, all of them merged."""
    page: Json = fetch(limit=limit, after=after)
    if not every:
        return page
    items = list(page["items"])
    while page["next"] is not None:
        page = fetch(limit=limit, after=page["next"])
        items.extend(page["items"])
    return {"items": items, "next": None}


@main.group()
def forms() -> None:
    """The structured forms and their labels in each language."""


@forms.command("list")
@click.option("--lang", type=click.Choice(LANGUAGES), default="en", show_default=True)
def forms_list(lang: str) -> None:
    """Every form, with its name in LANG."""
    click.echo(render.forms_list(lang))


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
    with station_client(directory) as station:
        m = station.message(channel, index, lang)
    click.echo(json.dumps(m) if as_json else render.message(m, channel, index, lang))


@main.command()
@dir_option("The station's directory.")
@click.option("--channel")
@click.option("--watch", is_flag=True, help="Keep watching; FLASH and overdue ring the bell.")
@paged
@json_option
@handled
def inbox(
    directory: Path,
    channel: str | None,
    watch: bool,
    limit: int | None,
    after: str | None,
    every: bool,
    as_json: bool,
) -> None:
    """Messages received, by precedence then time (a page; `next` says if more remain)."""
    seen_alarms: set[int] = set()
    version = -1
    with station_client(directory) as station:
        while True:
            page = _pages(lambda **kw: station.inbox_page(channel, **kw), limit, after, every)
            if as_json:
                click.echo(json.dumps(page))
            else:
                if watch:
                    click.clear()
                for m in page["items"]:
                    click.echo(render.inbox_line(m))
                if page["next"]:
                    click.echo(render.more(page["next"]))
            if not watch:
                return
            for alarm in station.alarms():
                if alarm["id"] not in seen_alarms and alarm["kind"] in ("flash", "overdue"):
                    click.echo(render.bell(alarm))
                seen_alarms.add(alarm["id"])
            version = station.wait(version)


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
    with station_client(directory) as station:
        out = station.ack(channel, index, operator, reply)
    click.echo(render.acknowledged(out, channel, index, operator, as_json))


@main.command()
@dir_option("The station's directory.")
@click.argument("message", required=False)
@paged
@json_option
@handled
def status(
    directory: Path,
    message: str | None,
    limit: int | None,
    after: str | None,
    every: bool,
    as_json: bool,
) -> None:
    """Link, outbox, cursors and verification; or one sent MESSAGE (CHANNEL:SEQ); or
    every sent message of a CHANNEL with its delivery and acknowledgment per party."""
    if message and ":" not in message:
        with station_client(directory) as station:
            page = _pages(lambda **kw: station.sent_page(message, **kw), limit, after, every)
        click.echo(json.dumps(page) if as_json else render.sent_list(page))
        return
    if message:
        channel, _, seq = message.partition(":")
        if not seq.isdigit():
            raise Malformed("MESSAGE is CHANNEL:SEQ, as `send` printed it", field="message")
        with station_client(directory) as station:
            out = station.sent_message(channel, int(seq))
        click.echo(json.dumps(out) if as_json else render.sent_message(out, channel, int(seq)))
        return
    with station_client(directory) as station:
        out = station.status()
    click.echo(json.dumps(out) if as_json else render.status(out))


@main.command()
@dir_option("The station's directory.")
@click.option("--cleared", is_flag=True, help="Cleared alarms too.")
@click.option("--lang", type=click.Choice(LANGUAGES), default="en", show_default=True)
@paged
@json_option
@handled
def alarms(
    directory: Path,
    cleared: bool,
    lang: str,
    limit: int | None,
    after: str | None,
    every: bool,
    as_json: bool,
) -> None:
    """Open alarms, newest first (verification failures, forks, overdue, link down),
    each in LANG (the kind, text key and parameters are in --json too)."""
    with station_client(directory) as station:
        page = _pages(
            lambda **kw: station.alarms_page(cleared, lang=lang, **kw), limit, after, every
        )
    if as_json:
        click.echo(json.dumps(page))
    else:
        for a in page["items"]:
            click.echo(render.alarm_line(a))
        if page["next"]:
            click.echo(render.more(page["next"]))


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
    with station_client(directory) as station:
        content = station.export(channel, bodies=with_bodies)
    out.write_bytes(content)
    click.echo(render.exported(out, json.loads(content)))
