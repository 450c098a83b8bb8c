"""A station cut off from one relay but not the other keeps working: a REAL partition.

Each relay and each station runs in its own Linux network namespace, linked by veth
pairs that carry the only addresses (10.201.x.y, inside the namespaces; the test's own
namespace gets none). us-1 is then cut from relay.ae by taking its veth link down: what
it sends goes on reaching ru-1 through relay.ch, once; relay.ae is named silent by us-1's
path audit, and once the link is back relay.ae is sent what it missed. The namespaces
are created and removed by the test; without root or ``ip netns`` it is skipped.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hotline.envelope import Kind
from hotline.station.client import StationClient
from hotline.station.store import StationStore

from .netutil import Cluster, Proc, wait_for

pytestmark = pytest.mark.network

T = TypeVar("T")
CHANNEL = "us-ru"
LIES = {"fork", "verification", "bad-checkpoint", "bad-acceptance", "bad-frame", "roster-mismatch"}


CLONE_NEWNET = 0x40000000


def _setns(path: str) -> None:
    """Move the calling thread into the network namespace at ``path`` (setns(2))."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
    finally:
        os.close(fd)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Namespaces:
    """Namespaces for relays ae, ch and stations us, ru; a veth pair per station-relay link."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.ns = {n: f"hl{tag}{n}" for n in ("ae", "ch", "us", "ru")}
        self.addr: dict[tuple[str, str], str] = {}  # (station, relay) -> relay's address
        self.dev: dict[tuple[str, str], str] = {}  # (station, relay) -> station-side device
        self.made: list[str] = []
        try:
            for ns in self.ns.values():
                _ip("netns", "add", ns)
                self.made.append(ns)
                _ip("-n", ns, "link", "set", "lo", "up")
            for i, (st, relay) in enumerate(
                [("us", "ae"), ("us", "ch"), ("ru", "ae"), ("ru", "ch")], start=1
            ):
                a, b = f"hl{tag}{i}a", f"hl{tag}{i}b"
                _ip("link", "add", a, "type", "veth", "peer", "name", b)
                _ip("link", "set", a, "netns", self.ns[st])
                _ip("link", "set", b, "netns", self.ns[relay])
                _ip("-n", self.ns[st], "addr", "add", f"10.201.{i}.2/30", "dev", a)
                _ip("-n", self.ns[relay], "addr", "add", f"10.201.{i}.1/30", "dev", b)
                _ip("-n", self.ns[st], "link", "set", a, "up")
                _ip("-n", self.ns[relay], "link", "set", b, "up")
                self.addr[(st, relay)] = f"10.201.{i}.1"
                self.dev[(st, relay)] = a
        except (subprocess.CalledProcessError, OSError) as exc:
            self.remove()
            pytest.skip(f"network namespaces cannot be made here: {exc}")

    def exec(self, name: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns[name]]

    def cut(self, station: str, relay: str, up: bool = False) -> None:
        _ip(
            "-n",
            self.ns[station],
            "link",
            "set",
            self.dev[(station, relay)],
            "up" if up else "down",
        )

    def run_in(self, name: str, fn: Callable[[], T]) -> T:
        """Call ``fn`` on a thread that has entered namespace ``name`` (its own sockets)."""
        out: list[Any] = []

        def body() -> None:
            try:
                _setns(f"/var/run/netns/{self.ns[name]}")
                out.append(fn())
            except BaseException as exc:
                out.append(exc)

        t = threading.Thread(target=body)
        t.start()
        t.join(120)
        if out and isinstance(out[0], BaseException):
            raise out[0]
        return out[0] if out else None  # type: ignore[no-any-return]

    def remove(self) -> None:
        for ns in self.made:  # deleting a namespace deletes its veth ends (and their peers)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.made.clear()


@pytest.fixture
def nets() -> Iterator[Namespaces]:
    if sys.platform != "linux" or shutil.which("ip") is None:
        pytest.skip("network namespaces need Linux and iproute2 (ip)")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns add)")
    n = Namespaces()
    yield n
    n.remove()


def _received(c: Cluster, ident: str) -> list[int]:
    store = StationStore(c.net.stations[ident] / "station.db")
    try:
        return [
            m.seq
            for m in store.messages(CHANNEL)
            if m.sender == "us/us-1" and m.kind == Kind.MESSAGE
        ]
    finally:
        store.close()


def test_a_station_cut_from_one_relay_keeps_working_through_the_other(
    tmp_path: Path, nets: Namespaces
) -> None:
    c = Cluster(
        tmp_path,
        stations={"us": ["us-1"], "ru": ["ru-1"]},
        channels={CHANNEL: {"members": ["us", "ru"], "link_test_seconds": 2}},
        relay_args=("--rate", "100000"),
        extra_relays=("relay.ch",),
    )
    ports = {"ae": c.net.relay_port, "ch": c.net.more_relays["relay.ch"][1]}
    dirs = {"ae": c.net.relay_dir, "ch": c.net.more_relays["relay.ch"][0]}
    relays = {
        r: Proc(
            [
                "relay",
                "serve",
                "--dir",
                str(dirs[r]),
                "--host",
                "0.0.0.0",
                "--port",
                str(ports[r]),
                "--allow-plain",
                "--rate",
                "100000",
            ],
            tmp_path / f"relay-{r}.log",
            prefix=nets.exec(r),
        )
        for r in ("ae", "ch")
    }
    stations: dict[str, Proc] = {}
    for party, ident in (("us", "us/us-1"), ("ru", "ru/ru-1")):
        d = c.net.stations[ident]
        urls = [
            f"ws://{nets.addr[(party, 'ae')]}:{ports['ae']}/ws",
            f"relay.ch=ws://{nets.addr[(party, 'ch')]}:{ports['ch']}/ws",
        ]
        text = (d / "station.toml").read_text()
        text = "\n".join(line for line in text.splitlines() if not line.startswith("relay"))
        urls_toml = ", ".join(f'"{u}"' for u in urls)
        text += f"\nrelay = [{urls_toml}]\nallow_plain_relay = true\naudit_seconds = 3\n"
        (d / "station.toml").write_text(text)
        stations[ident] = Proc(
            ["station", "serve", "--dir", str(d)],
            tmp_path / f"{party}.log",
            prefix=nets.exec(party),
        )
    clients: dict[str, StationClient] = {}

    def status(ident: str) -> dict[str, Any]:
        party = ident.split("/")[0]

        def call() -> dict[str, Any]:
            client = StationClient.for_dir(c.net.stations[ident])
            try:
                return client.status()
            finally:
                client.close()

        return nets.run_in(party, call)

    def send(text: str) -> None:
        def call() -> None:
            client = StationClient.for_dir(c.net.stations["us/us-1"])
            try:
                client.send(CHANNEL, text=text, precedence="ROUTINE")
            finally:
                client.close()

        wait_for(lambda: nets.run_in("us", call) or True, what=f"{text} queued")

    try:
        for p in relays.values():
            p.start()
        for p in stations.values():
            p.start()
        for ident in stations:
            wait_for(
                lambda i=ident: all(r["connected"] for r in status(i)["relays"].values()),
                timeout=60,
                what=f"{ident} linked to both relays across the namespaces",
            )
        send("before the cut")
        wait_for(lambda: len(_received(c, "ru/ru-1")) == 1, timeout=60, what="first delivered")
        nets.cut("us", "ae")  # us-1 can no longer reach relay.ae; ru-1 still can
        for i in range(10):
            send(f"cut {i}")
        wait_for(lambda: len(_received(c, "ru/ru-1")) == 11, timeout=90, what="sent through ch")
        got = _received(c, "ru/ru-1")
        assert len(set(got)) == len(got) == 11  # nothing lost, nothing twice
        wait_for(
            lambda: not status("us/us-1")["relays"]["relay.ae"]["connected"],
            timeout=60,
            what="us-1 sees relay.ae gone",
        )

        def silent() -> bool:
            def call() -> list[dict[str, Any]]:
                client = StationClient.for_dir(c.net.stations["us/us-1"])
                try:
                    return client.alarms()
                finally:
                    client.close()

            return any(
                a["text"] == "path-silent" and a["params"]["relay"] == "relay.ae"
                for a in nets.run_in("us", call)
            )

        wait_for(silent, timeout=60, what="us-1 names relay.ae silent")
        nets.cut("us", "ae", up=True)  # the path is back: relay.ae is sent what it missed
        wait_for(
            lambda: status("us/us-1")["relays"]["relay.ae"]["unsent"] == 0,
            timeout=90,
            what="relay.ae took what it missed",
        )
        assert len(_received(c, "ru/ru-1")) == 11
    finally:
        for cl in clients.values():
            cl.close()
        for p in stations.values():
            p.stop()
        for p in relays.values():
            p.stop()
