"""TLS between stations and relay; plain text only on loopback; several stations per party."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hotline.home import read_toml, write_toml

from .netutil import PASSPHRASE, Cluster, wait_for

pytestmark = pytest.mark.network


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hotline test relay")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls-cert.pem", directory / "tls-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_stations_talk_to_the_relay_over_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    c = Cluster(
        tmp_path / "net",
        stations={"us": ["us-1"], "ru": ["ru-1"]},
        channels={"us-ru": {"members": ["us", "ru"]}},
        relay_args=("--tls-cert", str(cert), "--tls-key", str(key)),
    )
    for sdir in c.net.stations.values():
        cfg = read_toml(sdir / "station.toml")
        cfg["relay"] = f"wss://127.0.0.1:{c.net.relay_port}/ws"
        write_toml(sdir / "station.toml", cfg)
        (sdir / "relay-ca.pem").write_bytes(cert.read_bytes())
    c.relay.start()
    health = f"https://127.0.0.1:{c.net.relay_port}/health"
    wait_for(
        lambda: httpx.get(health, verify=ssl.create_default_context(cafile=str(cert))).is_success,
        what="TLS relay up",
    )
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{c.net.relay_port}/health", timeout=2)
    try:
        for ident in c.stations:
            c.start_station(ident)
        wait_for(
            lambda: (
                len(
                    httpx.get(health, verify=ssl.create_default_context(cafile=str(cert))).json()[
                        "stations_online"
                    ]
                )
                == 2
            ),
            what="stations online over TLS",
        )
        c.send("us/us-1", "us-ru", "over TLS")
        wait_for(lambda: len(c.inbox("ru/ru-1")) == 1, what="delivered over TLS")
    finally:
        c.close()


def test_plain_relay_off_loopback_is_refused(tmp_path: Path) -> None:
    c = Cluster(
        tmp_path,
        stations={"us": ["us-1"], "ru": ["ru-1"]},
        channels={"us-ru": {"members": ["us", "ru"]}},
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hotline",
            "relay",
            "serve",
            "--dir",
            str(c.net.relay_dir),
            "--host",
            "0.0.0.0",
        ],
        env={**os.environ, "HOTLINE_PASSPHRASE": PASSPHRASE},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 3
    assert "refusing to serve without TLS" in out.stderr


def test_several_stations_of_one_party_are_online_at_once(tmp_path: Path) -> None:
    c = Cluster(
        tmp_path,
        stations={"us": ["us-1"], "ru": ["ru-1", "ru-2"]},
        channels={"us-ru": {"members": ["us", "ru"]}},
    ).start()
    try:
        c.send("us/us-1", "us-ru", "to both ru stations")
        for ident in ("ru/ru-1", "ru/ru-2"):
            wait_for(lambda i=ident: len(c.inbox(i)) == 1, what=f"{ident} got it")
        c.send("ru/ru-2", "us-ru", "from the alternate site")
        wait_for(lambda: len(c.inbox("us/us-1")) == 1, what="us got ru-2's")

        # Each ru station verified and receipted independently.
        def receipts() -> set[str]:
            with c.station_store("us/us-1") as store:
                return {r.station for r in store.receipts("us-ru")}

        wait_for(lambda: {"ru/ru-1", "ru/ru-2"} <= receipts(), what="receipts from both")
    finally:
        c.close()
