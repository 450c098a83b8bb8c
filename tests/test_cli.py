"""The `hotline` command against real processes: output, --json, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .netutil import PASSPHRASE, Cluster, hotline, wait_for

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    c = Cluster(tmp_path_factory.mktemp("cli")).start()
    yield c
    c.close()


def test_send_inbox_ack_and_status_of_a_message(cluster: Cluster) -> None:
    us, ru = str(cluster.net.stations["us/us-1"]), str(cluster.net.stations["ru/ru-1"])
    wait_for(
        lambda: (
            hotline(
                "send", "--dir", us, "us-ru", "-p", "FLASH", "-t", "cli test", "--json"
            ).returncode
            == 0
        ),
        what="send",
    )
    wait_for(lambda: json.loads(hotline("inbox", "--dir", ru, "--json").stdout), what="inbox")
    item = json.loads(hotline("inbox", "--dir", ru, "--json").stdout)[0]
    assert item["body"]["text"] == "cli test" and item["precedence"] == "FLASH"
    assert "cli test" in hotline("inbox", "--dir", ru).stdout
    out = hotline("ack", "--dir", ru, "us-ru", str(item["index"]), "--operator", "Maj. Ivanova")
    assert out.returncode == 0, out.stderr

    def acked() -> bool:
        text = hotline("status", "--dir", us, "us-ru:1").stdout
        return "acknowledged by Maj. Ivanova" in text

    wait_for(acked, what="status shows the acknowledgment")
    status = json.loads(hotline("status", "--dir", us, "--json").stdout)
    assert status["relay"]["connected"] and status["outbox"]["queued"] == 0
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


def test_help_everywhere() -> None:
    for cmd in (
        [],
        ["party", "init"],
        ["station", "serve"],
        ["relay", "serve"],
        ["send"],
        ["inbox"],
        ["ack"],
        ["status"],
        ["roster", "create"],
        ["demo"],
    ):
        out = hotline(*cmd, "--help")
        assert out.returncode == 0 and "Usage:" in out.stdout


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
