"""Sequential latency as a client sees it, beside the floor and (optionally) Synapse.

One message at a time: the sender's client posts through its station's local API
(``POST /api/send``), the recipient's client long-polls its own station
(``GET /api/wait`` then ``GET /api/inbox``) until the message is there. Measured
- with the relay and two stations as separate processes, as in production;
- on ``hotline demo`` (everything in one process);
- on Matrix Synapse, when ``--synapse-venv`` (or ``HOTLINE_SYNAPSE_VENV``) names a
  virtual environment where ``matrix-synapse`` is installed: SQLite, loopback only, rate
  limits raised, two users in one room, ``PUT /rooms/{room}/send`` and ``/sync`` long-poll.
The floor (one durable SQLite commit, one Ed25519 sign and verify, one loopback WebSocket
round trip) is measured in the same run, and every latency is also given as a ratio.
With stamps on (``HOTLINE_STAMPS``, see ``hotline/stamps.py``), the median time of each
stage of the path is printed too. Nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_relay import floor, pct
from hotline.station.client import StationClient
from tests.netutil import Cluster, free_ports, wait_for

# The stages stamped along the path, in order, and where each happens.
STAGES = [
    ("api_accepted", "sender"),
    ("outbox_committed", "sender"),
    ("frame_sent", "sender"),
    ("relay_received", "relay"),
    ("relay_committed", "relay"),
    ("push_queued", "relay"),
    ("station_received", "recipient"),
    ("verified", "recipient"),
    ("committed", "recipient"),
    ("visible", "recipient"),
    ("client_saw", "client"),
]


class Clients(Protocol):
    def one(self, text: str) -> tuple[float, str]: ...


class HotlineClients:
    """The two clients of one measurement: the sender's and the recipient's."""

    def __init__(self, sender: StationClient, recipient: StationClient, channel: str) -> None:
        self.sender, self.recipient, self.channel = sender, recipient, channel

    def one(self, text: str) -> tuple[float, str]:
        """Send one message and long-poll until the recipient sees it: (seconds, hash)."""
        version = self.recipient.wait(-1)  # answers at once: the current version
        t = time.perf_counter()
        r = self.sender.http.post("/api/send", json={"channel": self.channel, "text": text})
        assert r.status_code == 202, r.text
        digest = r.json()["hash"]
        while True:
            # Newest first within a precedence; the demo's FLASH stays ahead of ours.
            page = self.recipient.inbox_page(channel=self.channel, limit=3)
            if any(item["hash"] == digest for item in page["items"]):
                return time.perf_counter() - t, digest
            version = self.recipient.wait(version)


def run_sequence(clients: Clients, n: int, warmup: int = 20) -> tuple[list[float], dict[str, int]]:
    """``n`` sequential sends after ``warmup``; latencies in ms and when each was seen."""
    for i in range(warmup):
        clients.one(f"warm-up {i}")
    lat, seen = [], {}
    for i in range(n):
        elapsed, digest = clients.one(f"m{i} " + "x" * 200)
        seen[digest[:16]] = time.time_ns()
        lat.append(elapsed * 1000)
    return lat, seen


def stage_breakdown(
    stamp_dir: Path, seen: dict[str, int], sender: str, recipient: str
) -> dict[str, float]:
    """Median ms from each stage to the next, over the measured messages."""
    at: dict[str, dict[str, int]] = defaultdict(dict)
    for f in stamp_dir.glob("stamps-*.txt"):
        for line in f.read_text().splitlines():
            stage, where, digest, ns = line.split()
            if digest not in seen:
                continue
            want = {"sender": sender, "recipient": recipient, "relay": "relay"}
            role = dict(STAGES).get(stage)
            if role is not None and want.get(role) == where:
                at[digest].setdefault(stage, int(ns))  # the first time (resends are later)
    for digest, ns in seen.items():
        at[digest]["client_saw"] = ns
    out: dict[str, float] = {}
    for (prev, _), (stage, _) in itertools.pairwise(STAGES):
        deltas = [
            (stamps[stage] - stamps[prev]) / 1e6
            for stamps in at.values()
            if stage in stamps and prev in stamps
        ]
        if deltas:
            out[f"{prev} -> {stage}"] = statistics.median(deltas)
    return out


# --- hotline: separate processes, and the demo ---------------------------------------------


def hotline_processes(root: Path, n: int, profile: Path | None = None) -> dict[str, Any]:
    stamp_dir = root / "stamps"
    stamp_dir.mkdir(parents=True)
    os.environ["HOTLINE_STAMPS"] = str(stamp_dir)
    try:
        c = Cluster(
            root,
            stations={"us": ["us-1"], "ru": ["ru-1"]},
            channels={"us-ru": {"members": ["us", "ru"]}},
            relay_args=("--rate", "100000"),
        )
        c.start()
    finally:
        del os.environ["HOTLINE_STAMPS"]
    try:
        c.send("us/us-1", "us-ru", "hello")  # waits until us-1 knows ru's stations
        wait_for(lambda: len(c.inbox("ru/ru-1")) == 1, what="first message")
        clients = HotlineClients(c.client("us/us-1"), c.client("ru/ru-1"), "us-ru")
        pids = {"relay": c.relay.p.pid if c.relay.p else 0}
        pids.update({i: p.p.pid for i, p in c.stations.items() if p.p})
        spies = []
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            for name, pid in pids.items():
                out = profile / f"{name.replace('/', '_')}.txt"
                spies.append(
                    subprocess.Popen(
                        [
                            "py-spy",
                            "record",
                            "-p",
                            str(pid),
                            "-f",
                            "raw",
                            "-r",
                            "250",
                            "-o",
                            str(out),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(2)  # py-spy attached
        lat, seen = run_sequence(clients, n)
        for spy in spies:
            spy.send_signal(2)
            spy.wait(60)
    finally:
        c.close()
    return {
        "lat": lat,
        "stages": stage_breakdown(stamp_dir, seen, "us/us-1", "ru/ru-1"),
        "pids": pids,
    }


def hotline_demo(root: Path, n: int) -> dict[str, Any]:
    stamp_dir = root / "stamps"
    stamp_dir.mkdir(parents=True)
    port = free_ports(1)[0]
    log = (root / "demo.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotline", "demo", "--dir", str(root / "demo"), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "HOTLINE_STAMPS": str(stamp_dir)},
    )

    def running() -> bool:
        if proc.poll() is not None:  # e.g. its port taken meanwhile by another process
            raise RuntimeError(f"the demo exited ({proc.returncode}): see {root / 'demo.log'}")
        return "press Ctrl-C" in (root / "demo.log").read_text()

    try:
        wait_for(running, timeout=300, what="demo running")
        dirs = {p.parent.name: p.parent for p in (root / "demo").rglob("api-token")}
        us = StationClient.for_dir(dirs["us-1"])
        ru = StationClient.for_dir(dirs["ru-1"])
        lat, seen = run_sequence(HotlineClients(us, ru, "us-ru"), n)
        us.close()
        ru.close()
    finally:
        proc.send_signal(2)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return {"lat": lat, "stages": stage_breakdown(stamp_dir, seen, "us/us-1", "ru/ru-1")}


# --- Synapse -------------------------------------------------------------------------------

SYNAPSE_LIMITS = """
rc_message: {per_second: 100000, burst_count: 100000}
rc_registration: {per_second: 100000, burst_count: 100000}
rc_login:
  address: {per_second: 100000, burst_count: 100000}
  account: {per_second: 100000, burst_count: 100000}
  failed_attempts: {per_second: 100000, burst_count: 100000}
rc_joins:
  local: {per_second: 100000, burst_count: 100000}
  remote: {per_second: 100000, burst_count: 100000}
rc_invites:
  per_room: {per_second: 100000, burst_count: 100000}
  per_user: {per_second: 100000, burst_count: 100000}
"""


class SynapseClients:
    def __init__(self, base: str, a_token: str, b_token: str, room: str) -> None:
        self.a = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {a_token}"})
        self.b = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {b_token}"}, timeout=60
        )
        self.room = room
        self.txn = 0
        r = self.b.get("/_matrix/client/v3/sync", params={"timeout": 0})
        self.since = r.json()["next_batch"]

    def one(self, text: str) -> tuple[float, str]:
        self.txn += 1
        body = f"{text} #{self.txn}"
        t = time.perf_counter()
        r = self.a.put(
            f"/_matrix/client/v3/rooms/{self.room}/send/m.room.message/t{self.txn}",
            json={"msgtype": "m.text", "body": body},
        )
        assert r.status_code == 200, r.text
        while True:
            r = self.b.get(
                "/_matrix/client/v3/sync", params={"since": self.since, "timeout": 30000}
            )
            data = r.json()
            self.since = data["next_batch"]
            room = data.get("rooms", {}).get("join", {}).get(self.room, {})
            for event in room.get("timeline", {}).get("events", []):
                if event.get("content", {}).get("body") == body:
                    return time.perf_counter() - t, ""

    def close(self) -> None:
        self.a.close()
        self.b.close()


def synapse(venv: Path, root: Path, n: int) -> dict[str, Any]:
    python = str(venv / "bin" / "python")
    root.mkdir(parents=True)
    config = root / "homeserver.yaml"
    subprocess.run(
        [
            python,
            "-m",
            "synapse.app.homeserver",
            "--server-name",
            "localhost",
            "--config-path",
            str(config),
            "--data-directory",
            str(root),
            "--generate-config",
            "--report-stats=no",
        ],
        check=True,
        capture_output=True,
        cwd=root,
    )
    port = free_ports(1)[0]
    text = config.read_text()
    text = re.sub(r"port: 8008", f"port: {port}", text)
    text = re.sub(r"bind_addresses: \[.*?\]", "bind_addresses: ['127.0.0.1']", text)
    text += SYNAPSE_LIMITS + "enable_registration: false\npresence: {enabled: false}\n"
    config.write_text(text)
    log = (root / "synapse.out").open("wb")
    proc = subprocess.Popen(
        [python, "-m", "synapse.app.homeserver", "--config-path", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=root,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{base}/health").is_success, timeout=180, what="synapse up")
        tokens = []
        for user in ("alice", "bob"):
            subprocess.run(
                [
                    str(venv / "bin" / "register_new_matrix_user"),
                    "-c",
                    str(config),
                    "-u",
                    user,
                    "-p",
                    "bench-password",
                    "--no-admin",
                    base,
                ],
                check=True,
                capture_output=True,
            )
            r = httpx.post(
                f"{base}/_matrix/client/v3/login",
                json={
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": user},
                    "password": "bench-password",
                },
            )
            tokens.append(r.json()["access_token"])
        a = {"Authorization": f"Bearer {tokens[0]}"}
        b = {"Authorization": f"Bearer {tokens[1]}"}
        room = httpx.post(
            f"{base}/_matrix/client/v3/createRoom",
            headers=a,
            json={"invite": ["@bob:localhost"], "preset": "private_chat"},
        ).json()["room_id"]
        httpx.post(f"{base}/_matrix/client/v3/join/{room}", headers=b, json={})
        clients = SynapseClients(base, tokens[0], tokens[1], room)
        lat, _ = run_sequence(clients, n)
        clients.close()
    finally:
        proc.send_signal(2)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return {"lat": lat}


# --- report --------------------------------------------------------------------------------


def line(name: str, lat: list[float], floor_ms: float) -> str:
    p50, p99 = pct(lat, 50), pct(lat, 99)
    return (
        f"| {name} | {len(lat)} | {p50:.2f} | {pct(lat, 90):.2f} | {p99:.2f} | "
        f"{p50 / floor_ms:.1f}x | {p99 / p50:.1f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument(
        "--synapse-venv",
        type=Path,
        default=os.environ.get("HOTLINE_SYNAPSE_VENV"),
        help="a virtual environment with matrix-synapse installed (outside this repository)",
    )
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record py-spy profiles (collapsed stacks) of relay and stations into this folder",
    )
    args = parser.parse_args()
    print(
        f"# sequential client-view latency, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    results: dict[str, dict[str, Any]] = {}
    runs: list[tuple[str, Callable[[Path], dict[str, Any]]]] = [
        (
            "hotline, separate processes",
            lambda p: hotline_processes(p, args.messages, args.profile),
        )
    ]
    if not args.skip_demo:
        runs.append(("hotline demo (one process)", lambda p: hotline_demo(p, args.messages)))
    if args.synapse_venv:
        runs.append(
            ("Synapse (SQLite)", lambda p: synapse(Path(args.synapse_venv), p, args.messages))
        )
    with tempfile.TemporaryDirectory() as tmp:
        f = floor(Path(tmp))
        for i, (name, run) in enumerate(runs):
            results[name] = run(Path(tmp) / f"run{i}")
        (Path(tmp) / "again").mkdir()
        after = floor(Path(tmp) / "again")
    floor_ms = min(f["floor_ms"], after["floor_ms"])
    print("| floor part | median ms (before / after the runs) |\n|---|---:|")
    print(
        f"| durable SQLite commit (WAL, synchronous=FULL) | "
        f"{f['commit_ms']:.3f} / {after['commit_ms']:.3f} |"
    )
    print(f"| Ed25519 sign + verify | {f['sign_verify_ms']:.3f} / {after['sign_verify_ms']:.3f} |")
    print(f"| loopback WebSocket round trip | {f['ws_rtt_ms']:.3f} / {after['ws_rtt_ms']:.3f} |")
    print(f"| **floor** | **{f['floor_ms']:.3f} / {after['floor_ms']:.3f}** |\n")
    print(f"ratios against the lower floor, {floor_ms:.3f} ms\n")
    print("| system | messages | p50 ms | p90 ms | p99 ms | p50 / floor | p99 / p50 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(line(name, r["lat"], floor_ms))
    syn = results.get("Synapse (SQLite)")
    if syn is not None:
        s50 = pct(syn["lat"], 50)
        for name, r in results.items():
            if r is not syn:
                print(f"\nSynapse p50 / {name} p50 = {s50 / pct(r['lat'], 50):.1f}x", end="")
        print()
    for name, r in results.items():
        if r.get("stages"):
            print(f"\n{name}: median ms per stage\n\n| stage | ms |\n|---|---:|")
            for stage, ms in r["stages"].items():
                print(f"| {stage} | {ms:.3f} |")
            print(f"| sum of the medians | {sum(r['stages'].values()):.3f} |")


if __name__ == "__main__":
    main()
