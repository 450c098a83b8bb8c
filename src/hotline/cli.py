"""The `hotline` command."""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hotline")
def main() -> None:
    """hotline: a verifiable military-to-military channel."""
