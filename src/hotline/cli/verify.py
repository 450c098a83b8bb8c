"""`hotline verify`: check a transcript offline, with no network and no keys."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import Malformed
from . import render
from .base import fail, json_option, main


@main.command()
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@json_option
def verify(path: Path, as_json: bool) -> None:
    """Verify a transcript offline (no network, no keys). Exit 4 on any failure."""
    from .. import transcript

    try:
        doc = json.loads(path.read_bytes())
    except ValueError as exc:
        fail(Malformed(f"{path} is not a transcript: {exc}"), as_json)
    report = transcript.verify(doc)
    click.echo(render.verify_report(report, as_json))
    sys.exit(0 if report.ok else 4)
