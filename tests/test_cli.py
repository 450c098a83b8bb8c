"""The `hotline` command against real processes: output, --json, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from hotline.cli import main
from hotline.errors import Malformed, NotAuthorized, Unavailable
from hotline.keys import PartyKey
from hotline.station.client import StationClient

from .netutil import PASSPHRASE, Cluster, hotline, wait_for

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    c = Cluster(tmp_path_factory.mktemp("cli")).start()
    yield c
    c.close()


def test_send_inbox_ack_and_status_of_a_message(cluster: Cluster) -> None:
    us, ru = str(cluster.net.stations["us/us-1"]), str(cluster.net.stations["ru/ru-1"])

    def send() -> dict[str, Any] | None:
        out = hotline("send", "--dir", us, "us-ru", "-p", "FLASH", "-t", "cli test", "--json")
        return json.loads(out.stdout) if out.returncode == 0 else None

    # The station names the message it queued; other traffic (link tests, receipts)
    # may take any sequence number or log index before or after it.
    queued = wait_for(send, what="send")
    assert queued["channel"] == "us-ru" and queued["state"] == "queued"

    def received() -> dict[str, Any] | None:
        items = json.loads(hotline("inbox", "--dir", ru, "--all", "--json").stdout)["items"]
        return next((m for m in items if m["hash"] == queued["hash"]), None)

    item = wait_for(received, what="the message in ru's inbox")
    assert item["body"]["text"] == "cli test" and item["precedence"] == "FLASH"
    assert item["sender"] == "us/us-1" and item["seq"] == queued["seq"]
    line = f"us-ru#{item['index']}"
    assert any(
        line in row and "cli test" in row
        for row in hotline("inbox", "--dir", ru).stdout.splitlines()
    )
    out = hotline("ack", "--dir", ru, "us-ru", str(item["index"]), "--operator", "Maj. Ivanova")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"acknowledged us-ru#{item['index']} as Maj. Ivanova"

    message = f"us-ru:{queued['seq']}"

    def acked() -> bool:
        text = hotline("status", "--dir", us, message).stdout
        return "acknowledged by Maj. Ivanova" in text

    wait_for(acked, what="status shows the acknowledgment")
    sent = json.loads(hotline("status", "--dir", us, message, "--json").stdout)
    assert sent["index"] == item["index"] and sent["state"] == "accepted"
    assert sent["recipients"]["ru"]["acknowledged"]["operator"] == "Maj. Ivanova"
    shown = hotline("show", "--dir", ru, "us-ru", str(item["index"]), "--lang", "en")
    assert shown.returncode == 0 and "cli test" in shown.stdout

    def outbox_empty() -> dict[str, Any] | None:
        status = json.loads(hotline("status", "--dir", us, "--json").stdout)
        return status if status["outbox"]["queued"] == 0 else None

    status = wait_for(outbox_empty, what="us's outbox drained")
    assert status["relay"]["connected"]
    assert "relay" in hotline("status", "--dir", us).stdout


def test_exit_codes_scripts_can_rely_on(cluster: Cluster, tmp_path: Path) -> None:
    us = str(cluster.net.stations["us/us-1"])
    bad = hotline("send", "--dir", us, "no-such-channel", "-t", "x", "--json")
    assert bad.returncode == 3 and json.loads(bad.stdout)["error"]["code"] == "malformed"
    assert hotline("send", "--dir", us, "us-ru").returncode == 3  # neither --text nor --file
    assert hotline("status", "--dir", str(tmp_path)).returncode == 3  # no station here
    assert hotline("send", "--dir", us, "us-ru", "-p", "URGENT", "-t", "x").returncode == 2
    wrong = hotline("station", "serve", "--dir", us, env={"HOTLINE_PASSPHRASE": "wrong"})
    assert wrong.returncode == 5 and "wrong passphrase" in wrong.stderr
    # A station that is not running: unavailable.
    cfg = Path(us) / "station.toml"
    other = tmp_path / "copy"
    other.mkdir()
    for name in ("station.toml", "api-token"):
        (other / name).write_bytes((Path(us) / name).read_bytes())
    text = cfg.read_text().replace(f"api_port = {cluster.net.api_ports['us/us-1']}", "api_port = 1")
    (other / "station.toml").write_text(text)
    down = hotline("status", "--dir", str(other))
    assert down.returncode == 6 and "not answering" in down.stderr
    assert PASSPHRASE  # the fixture's stations run with it


def test_the_client_raises_the_stations_own_errors(cluster: Cluster, tmp_path: Path) -> None:
    station = cluster.client("us/us-1")
    with pytest.raises(Malformed) as bad:
        station.send("no-such-channel", text="x")
    assert bad.value.code == "malformed"
    with pytest.raises(Malformed):
        station.sent_message("us-ru", 10**9)
    with pytest.raises(Unavailable, match="not answering"):
        StationClient("http://127.0.0.1:1", "token").status()
    with StationClient(station.url, "wrong token") as intruder, pytest.raises(NotAuthorized):
        intruder.status()


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            found.extend(_commands(cmd, (*path, name)))
        else:
            found.append((*path, name))
    return found


def test_help_everywhere() -> None:
    every = _commands(main)
    assert ("roster", "create") in every and ("verify",) in every and len(every) > 20
    for cmd in every:
        out = CliRunner().invoke(main, [*cmd, "--help"])
        assert out.exit_code == 0 and "Usage:" in out.output, cmd
    assert "Usage:" in hotline("--help").stdout  # and as the installed command runs it


def test_roster_create_help_shows_the_form_it_accepts(tmp_path: Path) -> None:
    help_text = CliRunner().invoke(main, ["roster", "create", "--help"]).output
    assert "NAME[:LANG]=PUBKEY_OR_FILE" in help_text
    pub = tmp_path / "us.pub"
    pub.write_text(PartyKey.generate("us").verifier.encode())
    relay = tmp_path / "relay.pub"
    relay.write_text(PartyKey.generate("relay").verifier.encode())

    def create(party: str) -> Any:
        args = ["roster", "create", "--name", "n", "--party", party, "--channel", "c=us"]
        out = str(tmp_path / "r.note")
        return CliRunner().invoke(main, [*args, "--relay-key", str(relay), "--out", out])

    assert create(f"us:uk={pub}").exit_code == 0
    wrong = create(f"us={pub}:uk")  # the form the help once showed
    assert wrong.exit_code == 3 and "NAME[:LANG]=PUBKEY_OR_FILE" in wrong.output
    assert create("us").exit_code == 3


def test_setting_up_a_network_with_the_cli(tmp_path: Path) -> None:
    env = {"HOTLINE_PASSPHRASE": "a long passphrase"}

    def ok(*args: str) -> str:
        out = hotline(*args, env=env)
        assert out.returncode == 0, out.stderr
        return out.stdout

    for p in ("us", "ru"):
        ok("party", "init", "--dir", str(tmp_path / p), "--party", p)
    ok("relay", "init", "--dir", str(tmp_path / "relay"), "--name", "relay.ae")
    roster = tmp_path / "roster.note"
    ok(
        "roster",
        "create",
        "--name",
        "talks",
        "--party",
        f"us:en={tmp_path / 'us/party.pub'}",
        "--party",
        f"ru:ru={tmp_path / 'ru/party.pub'}",
        "--channel",
        "us-ru=us,ru:FLASH=300",
        "--relay-key",
        str(tmp_path / "relay/relay.pub"),
        "--out",
        str(roster),
    )
    assert hotline("roster", "show", str(roster)).returncode != 0  # nobody has signed yet
    assert "still needs ru" in ok(
        "roster", "sign", str(roster), "--party-dir", str(tmp_path / "us")
    )
    assert "complete" in ok("roster", "sign", str(roster), "--party-dir", str(tmp_path / "ru"))
    shown = json.loads(ok("roster", "show", str(roster), "--json"))
    assert shown["channels"]["us-ru"]["deadlines"]["FLASH"] == 300
    assert shown["parties"]["ru"]["language"] == "ru"
    out = ok(
        "station",
        "init",
        "--dir",
        str(tmp_path / "us-1"),
        "--party-dir",
        str(tmp_path / "us"),
        "--station",
        "us-1",
        "--roster",
        str(roster),
    )
    assert "station us/us-1 certified until" in out
    again = hotline("party", "init", "--dir", str(tmp_path / "us"), "--party", "us", env=env)
    assert again.returncode == 3 and "not overwriting" in again.stderr
    # post-quantum by default: both roots in the roster, a /v2 certificate, v2 envelopes
    assert all("pq_root" in p for p in shown["parties"].values())
    assert (tmp_path / "us-1/station.cert").read_text().startswith("hotline-certificate/v2\n")
    minimum = tmp_path / "min.note"
    ok(
        "roster",
        "create",
        "--name",
        "talks",
        "--party",
        f"us:en={tmp_path / 'us/party.pub'}",
        "--party",
        f"ru:ru={tmp_path / 'ru/party.pub'}",
        "--channel",
        "us-ru=us,ru",
        "--relay-key",
        str(tmp_path / "relay/relay.pub"),
        "--min-envelope-version",
        "2",
        "--min-envelope-version-from",
        "1764000000000",
        "--out",
        str(minimum),
    )
    for p in ("us", "ru"):
        ok("roster", "sign", str(minimum), "--party-dir", str(tmp_path / p))
    shown = json.loads(ok("roster", "show", str(minimum), "--json"))
    assert (shown["min_envelope_version"], shown["min_envelope_version_from"]) == (
        2,
        1764000000000,
    )
