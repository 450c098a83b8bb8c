"""Every `hotline` command line in README.md and docs/OPERATIONS.md runs as documented.

The commands are read from the documents themselves, so a doc and the CLI cannot drift
apart: set-up commands must succeed, `serve` commands must start and stop cleanly, and
commands that talk to a running station must be accepted as typed and then report that
the station is not answering (exit 6), since none runs here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hotline.home import read_toml, station_config, write_toml

from .conftest import _database
from .netutil import free_ports, wait_for
from .test_tls import _self_signed

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    "HOTLINE_PASSPHRASE": "a long passphrase for the docs",
    "HOTLINE_OPERATOR_PASSWORD": "an operator password",
}
# Commands that need the station's local API (not running in this test).
NEEDS_STATION = {"send", "inbox", "show", "ack", "status", "alarms", "export"}
# Answers to `send --form deconfliction-notice --interactive`, field by field.
NOTICE_ANSWERS = "1\nn\n47.5, 34.6\n5\nn\n2026-11-26T06:00:00Z\n2026-11-26T18:00:00Z\nCell\ny\n"


def readme_setup_block() -> list[list[str]]:
    """The lines of README's "Setting up a real network" block, continuations joined."""
    text = (ROOT / "README.md").read_text()
    after = text[text.index("Setting up a real network") :]
    block = after.split("```")[1]
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = [shlex.split(line, comments=True) for line in joined.splitlines()]
    return [line for line in lines if line]


def operations_commands() -> list[list[str]]:
    """`hotline ...` examples in OPERATIONS.md, placeholders filled, optional parts kept."""
    text = (ROOT / "docs" / "OPERATIONS.md").read_text()
    out = []
    for span in re.findall(r"`(hotline [^`]+)`", text):
        filled = span.replace("STATION", "us-1").replace("NAME", "'Capt. Ops'")
        args = shlex.split(re.sub(r"\[([^\]]*)\]", r"\1", filled))
        if any(a.startswith("-") for a in args):  # an example, not just a command's name
            out.append(args)
    return out


def fresh_postgres(request: pytest.FixtureRequest) -> str | None:
    """A PostgreSQL URL on a new schema (dropped after the test), or None without a server."""
    databases = _database("postgresql")
    try:
        url = next(databases)
    except pytest.skip.Exception:
        return None
    request.addfinalizer(databases.close)
    return url


def hotline(
    cwd: Path, args: list[str], env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        env={**os.environ, **ENV, **env},
    )


def serve_briefly(cwd: Path, args: list[str], env: dict[str, str], health: str) -> None:
    """Start a documented `serve` command, wait until it answers, stop it with Ctrl-C."""
    log = (cwd / f"{args[0]}-serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotline", *args],
        cwd=cwd,
        env={**os.environ, **ENV, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: proc.poll() is None and httpx.get(health, verify=False).status_code < 500,
            what=f"`hotline {shlex.join(args)}` up",
        )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0, (cwd / f"{args[0]}-serve.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()


def test_the_readme_and_operations_examples_run_as_documented(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    relay_port, api_port = free_ports(2)
    cert, key = _self_signed(tmp_path)
    shutil.move(cert, tmp_path / "cert.pem")
    shutil.move(key, tmp_path / "key.pem")
    ran: list[str] = []

    def other_parties_sign() -> None:
        """Each other party signs in turn, as the README says, on its own machine."""
        for p in ("ru", "ua", "ae"):
            args = ["roster", "sign", "roster.note", "--party-dir", f"others/{p}"]
            assert hotline(tmp_path, args, {}).returncode == 0

    # The other parties' public keys, which the README's roster line reads from files.
    for p in ("ru", "ua", "ae"):
        args = ["party", "init", "--dir", f"others/{p}", "--party", p]
        assert hotline(tmp_path, args, {}).returncode == 0
        shutil.copy(tmp_path / "others" / p / "party.pub", tmp_path / f"{p}.pub")

    for line in [*readme_setup_block(), *operations_commands()]:
        if line[0] == "cp":  # a plain shell step of the README
            shutil.copy(tmp_path / line[1], tmp_path / line[2])
            continue
        assert line[0] == "hotline", line
        args, command = line[1:], line[1]
        ran.append(shlex.join(line))
        if args[:2] == ["relay", "serve"]:
            database = next((a for a in args if a.startswith("postgresql://")), None)
            if database:
                fresh = fresh_postgres(request)
                if fresh is None:
                    continue  # documented for a server this test does not have
                args = [fresh if a == database else a for a in args]
            cfg = read_toml(tmp_path / "relay" / "relay.toml")
            write_toml(tmp_path / "relay" / "relay.toml", {**cfg, "port": relay_port})
            scheme = "https" if "--tls-cert" in args else "http"
            health = f"{scheme}://127.0.0.1:{relay_port}/health"
            serve_briefly(tmp_path, args, {"HOTLINE_DIR": "relay"}, health)
        elif args[:2] == ["station", "serve"]:
            env = {"HOTLINE_API_PORT": str(api_port)}
            serve_briefly(tmp_path, args, env, f"http://127.0.0.1:{api_port}/login")
        elif command in NEEDS_STATION or args[:2] == ["station", "rotate"]:
            stdin = NOTICE_ANSWERS if "--interactive" in args else ""
            out = hotline(tmp_path, args, {"HOTLINE_API_PORT": str(api_port)}, stdin)
            assert out.returncode == 6 and "not answering" in out.stderr, (line, out.stderr)
        elif command == "verify":
            # No station ran to export a transcript: a made-up one must fail with exit 4.
            (tmp_path / args[1]).write_text('{"type": "hotline-transcript/v1"}')
            out = hotline(tmp_path, args, {})
            assert out.returncode == 4 and "FAILED" in out.stdout, (line, out.stdout)
        else:
            out = hotline(tmp_path, args, {})
            assert out.returncode == 0, (line, out.stderr)
            if args[:2] == ["roster", "sign"]:
                other_parties_sign()

    assert station_config(tmp_path / "us-1").relay == "wss://relay.example:8700/ws"
    documented = {" ".join(r.split()[1:3]) for r in ran}
    assert {"party init", "roster create", "station init", "relay serve", "verify us-ru.json"} <= (
        documented
    )
