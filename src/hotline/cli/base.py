"""The `hotline` group, exit codes, and what every command shares.

Exit codes: 0 success; 1 unexpected failure; 2 usage error; 3 bad input;
4 verification failed; 5 not authorized (also a wrong passphrase);
6 unavailable (the station or relay is not reachable);
7 consistent but not anchored (`hotline verify` given no --roster, --roster-hash or --root).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from .. import __version__, logs
from ..errors import BadInput, HotlineError, NotAuthorized, Unavailable, VerificationFailed
from ..home import passphrase_from_env
from ..logs import LogFormat
from ..station.client import StationClient

F = TypeVar("F", bound=Callable[..., Any])

EXIT = {BadInput: 3, VerificationFailed: 4, NotAuthorized: 5, Unavailable: 6}
EXIT_VERIFICATION_FAILED = 4
EXIT_NOT_ANCHORED = 7


def exit_code(exc: HotlineError) -> int:
    for cls, code in EXIT.items():
        if isinstance(exc, cls):
            return code
    return 1


def fail(exc: HotlineError, as_json: bool = False) -> NoReturn:
    """Report ``exc`` (as JSON on stdout with ``--json``) and exit with its code."""
    if as_json:
        click.echo(json.dumps({"error": exc.to_dict()}))
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(exit_code(exc))


def handled(fn: F) -> F:
    """Turn hotline errors into a message and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HotlineError as exc:
            fail(exc, bool(kwargs.get("as_json")))
        except OSError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

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
    """None when the whole key comes from $HOTLINE_KEY (no passphrase needed)."""
    if os.environ.get("HOTLINE_KEY"):
        return None
    return get_passphrase(env_name)


def secret_from_env(env_name: str, what: str) -> str:
    """A password from ``env_name``, else asked twice at a terminal."""
    value = os.environ.get(env_name)
    if value:
        return value
    if not sys.stdin.isatty():
        raise NotAuthorized(f"no {what}: set {env_name} or run interactively")
    return str(click.prompt(what.capitalize(), hide_input=True, confirmation_prompt=True))


def station_client(directory: Path) -> StationClient:
    return StationClient.for_dir(directory)


log_format_option = click.option(
    "--log-format",
    type=click.Choice([f.value for f in LogFormat]),
    default=LogFormat.TEXT.value,
    envvar="HOTLINE_LOG_FORMAT",
    show_default=True,
    help="Log lines as text or as JSON objects (also $HOTLINE_LOG_FORMAT).",
)


def start_logging(log_format: str = LogFormat.TEXT) -> None:
    logs.start(LogFormat(log_format))


def run_until_signal(make: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``make(stop)`` until it returns; SIGINT and SIGTERM set ``stop``."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await make(stop)

    asyncio.run(runner())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hotline")
def main() -> None:
    """hotline: a verifiable military-to-military channel.

    A relay (run by the host) logs signed, end-to-end encrypted envelopes in
    per-channel Merkle logs; a station per party keeps keys, outbox and inbox,
    verifies everything, and answers with signed receipts.
    """
