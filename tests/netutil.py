"""Real processes on 127.0.0.1 for network tests: relay and stations via the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from hotline import frames
from hotline.errors import Unavailable
from hotline.home import load_roster, load_station
from hotline.provision import Network, provision
from hotline.station.client import StationClient
from hotline.station.store import StationStore

FAST_KDF = {"iterations": 1, "lanes": 1, "memory_kib": 8 * 1024}
# Alarms that say a log or a relay lied (link alarms may come from a failover itself).
LIES = {
    "fork",
    "verification",
    "bad-checkpoint",
    "bad-acceptance",
    "bad-certificate",
    "bad-frame",
    "unexpected-acceptance",
    "unexpected-channel",
    "roster-mismatch",
}

PASSPHRASE = "test passphrase"


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def hotline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `hotline` command as an operator would, with no input."""
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (httpx.HTTPError, OSError, KeyError, sqlite3.Error, Unavailable) as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(
        f"timed out waiting for {what}" + (f" (last error: {last})" if last else "")
    )


class Proc:
    """A hotline process (relay or station serve) we can start, kill -9 and restart."""

    def __init__(
        self, args: list[str], log: Path, module: str = "hotline", prefix: list[str] | None = None
    ) -> None:
        self.args = args
        self.module = module
        self.prefix = prefix or []  # e.g. ["ip", "netns", "exec", NS]: run it in a namespace
        self.log = log
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        root = str(Path(__file__).resolve().parents[1])
        env = {
            **os.environ,
            "HOTLINE_PASSPHRASE": PASSPHRASE,
            "HOTLINE_LOG": "INFO",
            "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        out = self.log.open("ab")
        self.p = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", self.module, *self.args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    def kill9(self) -> None:
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
            self.p.wait(10)

    def stop(self) -> int | None:
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                return self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        return self.p.returncode if self.p else None


class Cluster:
    """A provisioned network with its relay and station processes."""

    def __init__(
        self,
        root: Path,
        stations: dict[str, list[str]] | None = None,
        channels: dict[str, dict[str, Any]] | None = None,
        relay_args: tuple[str, ...] = (),
        database: str | None = None,
        post_quantum: bool = True,
        extra_relays: tuple[str, ...] = (),
        more_databases: dict[str, str] | None = None,
    ) -> None:
        """``more_databases``: an independent relay's own PostgreSQL (by name; the others
        keep their own SQLite)."""
        ports = free_ports(8 + len(extra_relays))
        own_args = relay_args  # an independent relay keeps its own (SQLite) database
        idents = [
            f"{p}/{s}"
            for p, names in (stations or {"us": ["us-1"], "ru": ["ru-1"], "ua": ["ua-1"]}).items()
            for s in names
        ]
        self.net: Network = provision(
            root,
            PASSPHRASE,
            relay_port=ports[0],
            stations=stations,
            channels=channels,
            api_ports=dict(zip(idents, ports[1:], strict=False)),
            kdf=FAST_KDF,
            post_quantum=post_quantum,
            extra_relays=dict(zip(extra_relays, ports[8:], strict=True)),
        )
        if database:
            relay_args = (*relay_args, "--database", database)
        self.database = database
        self.relay = Proc(
            ["relay", "serve", "--dir", str(self.net.relay_dir), *relay_args], root / "relay.log"
        )
        self.stations = {
            ident: Proc(
                ["station", "serve", "--dir", str(d)], root / f"{ident.replace('/', '_')}.log"
            )
            for ident, d in self.net.stations.items()
        }
        self.clients: dict[str, StationClient] = {}
        # Independent relays beside relay.ae: each its own process, key and database.
        self.more_relays: dict[str, Proc] = {}
        dbs = more_databases or {}
        for name, (d, port) in self.net.more_relays.items():
            own_db = ("--database", dbs[name]) if name in dbs else ()
            self.more_relays[name] = Proc(
                ["relay", "serve", "--dir", str(d), "--port", str(port), *own_args, *own_db],
                root / f"{name}.log",
            )

    def start(self) -> Cluster:
        self.start_relay()
        for ident in self.stations:
            self.start_station(ident)
        self.wait_ready()
        return self

    def start_relay(self) -> None:
        for name, proc in self.more_relays.items():
            if proc.p is None or proc.p.poll() is not None:
                self.start_more_relay(name)
        self.relay.start()
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{self.net.relay_port}/health").is_success,
            what="relay up",
        )

    def start_more_relay(self, name: str) -> None:
        port = self.net.more_relays[name][1]
        self.more_relays[name].start()
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/health").is_success,
            what=f"{name} up",
        )

    def start_station(self, ident: str) -> None:
        self.stations[ident].start()
        wait_for(lambda: self.status(ident), what=f"{ident} API up")

    def wait_ready(self, idents: list[str] | None = None) -> None:
        """Every station connected and knowing a station of every party it talks to."""
        for ident in idents or list(self.stations):
            wait_for(lambda i=ident: self.status(i)["relay"]["connected"], what=f"{ident} linked")
        health = f"http://127.0.0.1:{self.net.relay_port}/health"
        want = set(idents or self.stations)
        wait_for(
            lambda: want <= set(httpx.get(health).json()["stations_online"]), what="all online"
        )

    def settle(self, quiet: float = 3.0, timeout: float = 30.0) -> None:
        """Wait until every outbox is empty and the relay's logs stop growing
        (receipts, startup link tests), so that a snapshot taken now stays valid."""
        health = f"http://127.0.0.1:{self.net.relay_port}/health"
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            sizes = httpx.get(health).json()["channels"]
            queued = sum(self.status(i)["outbox"]["queued"] for i in self.stations)
            if sizes != last or queued:
                last, since = sizes, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.1)
        raise AssertionError("the relay's logs did not settle")

    def client(self, ident: str) -> StationClient:
        """The station's local API, as the CLI calls it."""
        if ident not in self.clients:
            self.clients[ident] = StationClient.for_dir(self.net.stations[ident])
        return self.clients[ident]

    def api(self, ident: str) -> httpx.Client:
        """Raw HTTP to the station's API (with its token), for tests of the API itself."""
        return self.client(ident).http

    def status(self, ident: str) -> dict[str, Any]:
        return self.client(ident).status()

    def send(
        self, ident: str, channel: str, text: str, precedence: str = "ROUTINE"
    ) -> dict[str, Any]:
        """Queue a message once the station knows its recipients; the station's answer."""

        def attempt() -> dict[str, Any] | None:
            try:
                return self.client(ident).send(channel, text=text, precedence=precedence)
            except Unavailable:  # recipients not introduced yet
                return None

        return dict(wait_for(attempt, what="send accepted by station"))

    def inbox(self, ident: str, channel: str | None = None) -> list[dict[str, Any]]:
        return self.client(ident).inbox(channel)

    def sent(self, ident: str, channel: str | None = None) -> list[dict[str, Any]]:
        return self.client(ident).sent(channel)

    def alarms(self, ident: str) -> list[dict[str, Any]]:
        return self.client(ident).alarms()

    def relay_db(self) -> Any:
        """The relay's store, SQLite or PostgreSQL, as a DB-API connection for reading."""
        if self.database:
            import psycopg

            return _QmarkConnection(psycopg.connect(self.database, autocommit=True))
        return sqlite3.connect(self.net.relay_dir / "relay.db")

    @contextmanager
    def station_store(self, ident: str) -> Iterator[StationStore]:
        """A station's store, opened beside the running station (SQLite WAL), for reading."""
        store = StationStore(self.net.stations[ident] / "station.db")
        try:
            yield store
        finally:
            store.close()

    def close(self) -> None:
        for c in self.clients.values():
            c.close()
        for p in self.stations.values():
            p.stop()
        self.relay.stop()
        for r in self.more_relays.values():
            r.stop()


@contextmanager
def login(c: Cluster, ident: str) -> Iterator[ClientConnection]:
    """A raw WebSocket session authenticated as station ``ident``."""
    with connect(c.net.relay_url, max_size=None) as ws:
        yield _hello(c, ws, ident)


def answer_challenge(c: Cluster, ws: ClientConnection, ident: str) -> dict[str, Any]:
    """Answer the relay's challenge as station ``ident``; the relay's first answer."""
    roster = load_roster(c.net.relay_dir / "roster.note")
    key, cert = load_station(c.net.stations[ident], PASSPHRASE, roster)
    challenge = frames.decode_relay_frame(ws.recv(timeout=10))
    assert isinstance(challenge, frames.Challenge), challenge
    rh = hashlib.sha256(roster.encode()).digest()
    signature = key.signing.sign(frames.auth_message(challenge.nonce, ident, rh))
    ws.send(frames.encode_frame(frames.Hello(ident, cert.encode(), signature)))
    return dict(json.loads(ws.recv(timeout=10)))


def _hello(c: Cluster, ws: ClientConnection, ident: str) -> ClientConnection:
    answer = answer_challenge(c, ws, ident)
    assert answer["op"] == "welcome", answer
    return ws


class _QmarkConnection:
    """Lets tests read PostgreSQL with the same ``?`` queries they use on SQLite."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s"), params)

    def __enter__(self) -> _QmarkConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()
