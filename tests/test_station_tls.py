"""A station speaks plain text only on loopback: to its relay, and to its operators."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from hotline.errors import Malformed
from hotline.home import check_relay_url, read_toml, write_toml
from hotline.run import build_station

from .netutil import PASSPHRASE, Cluster, hotline, wait_for
from .test_tls import _self_signed

pytestmark = pytest.mark.network

OPERATOR_PASSWORD = "correct horse battery staple"


@pytest.mark.parametrize(
    "url", ["ws://127.0.0.1:8700/ws", "ws://localhost:8700/ws", "ws://[::1]:8700/ws", "wss://a/ws"]
)
def test_loopback_or_tls_relay_urls_are_accepted(url: str) -> None:
    assert check_relay_url(url) == url


@pytest.mark.parametrize(
    "url", ["ws://relay.example:8700/ws", "ws://10.0.0.5/ws", "http://127.0.0.1/ws", "relay"]
)
def test_plain_or_odd_relay_urls_off_loopback_are_refused(url: str) -> None:
    with pytest.raises(Malformed) as exc:
        check_relay_url(url)
    assert exc.value.field == "relay"


def _station(tmp_path: Path, **settings: object) -> tuple[Cluster, Path]:
    c = Cluster(
        tmp_path,
        stations={"us": ["us-1"], "ru": ["ru-1"]},
        channels={"us-ru": {"members": ["us", "ru"]}},
    )
    sdir = c.net.stations["us/us-1"]
    cfg = read_toml(sdir / "station.toml")
    write_toml(sdir / "station.toml", {**cfg, **settings})
    return c, sdir


def test_a_station_refuses_a_plain_relay_off_loopback(tmp_path: Path) -> None:
    _, sdir = _station(tmp_path, relay="ws://relay.example:8700/ws")
    out = hotline("station", "serve", "--dir", str(sdir), env={"HOTLINE_PASSPHRASE": PASSPHRASE})
    assert out.returncode == 3, out.stderr
    assert "refusing plain ws://" in out.stderr


def test_a_trusted_network_can_allow_a_plain_relay(tmp_path: Path) -> None:
    _, sdir = _station(tmp_path, relay="ws://10.0.0.5:8700/ws", allow_plain_relay=True)
    service, _ = build_station(sdir, PASSPHRASE)
    assert service.relay_url == "ws://10.0.0.5:8700/ws"
    service.db.shutdown()


def test_the_console_off_loopback_without_tls_refuses_to_start(tmp_path: Path) -> None:
    _, sdir = _station(tmp_path, api_host="0.0.0.0")
    out = hotline("station", "serve", "--dir", str(sdir), env={"HOTLINE_PASSPHRASE": PASSPHRASE})
    assert out.returncode == 3, out.stderr
    assert "without TLS on 0.0.0.0" in out.stderr


def test_the_console_over_tls_sets_a_secure_session_cookie(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    c, sdir = _station(
        tmp_path / "net", api_host="0.0.0.0", api_tls_cert=str(cert), api_tls_key=str(key)
    )
    added = hotline(
        "operator",
        "add",
        "--dir",
        str(sdir),
        "--name",
        "Maj. Carter",
        env={"HOTLINE_OPERATOR_PASSWORD": OPERATOR_PASSWORD},
    )
    assert added.returncode == 0, added.stderr
    base = f"https://127.0.0.1:{c.net.api_ports['us/us-1']}"
    tls = ssl.create_default_context(cafile=str(cert))
    c.stations["us/us-1"].start()
    try:
        wait_for(lambda: httpx.get(base + "/login", verify=tls).is_success, what="console up")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{c.net.api_ports['us/us-1']}/login", timeout=2)
        answer = httpx.post(
            base + "/login",
            data={"name": "Maj. Carter", "password": OPERATOR_PASSWORD},
            verify=tls,
        )
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"].lower()
        assert "hotline_session=" in cookie
        assert "; secure" in cookie and "; httponly" in cookie and "samesite=strict" in cookie
    finally:
        c.close()
