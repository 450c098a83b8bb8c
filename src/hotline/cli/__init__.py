"""The `hotline` command: a package of thin commands over the library.

base.py    the `main` group, exit codes, `handled`, shared options
setup.py   party / relay / station init, roster create / sign / show, operator add
serve.py   relay serve, station serve, demo
use.py     send, inbox, show, ack, status, alarms, export, forms (via station.client)
verify.py  offline transcript verification
render.py  every line printed, text and --json
specs.py   what operators type (--party, --channel, field files) read into values
"""

from __future__ import annotations

from . import serve, setup, use, verify
from .base import EXIT, exit_code, handled, main

__all__ = ["EXIT", "exit_code", "handled", "main", "serve", "setup", "use", "verify"]
