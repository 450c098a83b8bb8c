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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_relay import floor, pct
from hotline import hybrid
from hotline.station.client import StationClient
from tests.netutil import Cluster, free_ports, wait_for

# The stages stamped along the path, in order, and where each happens.
STAGES = [
    ("client_sent", "client"),
    ("api_accepted", "sender"),
    ("send_started", "sender"),
    ("outbox_committed", "sender"),
    ("frame_sent", "sender"),
    ("relay_received", "relay"),
    ("relay_commit_started", "relay"),
    ("relay_committed", "relay"),
    ("push_queued", "relay"),
    ("station_received", "recipient"),
    ("ingest_started", "recipient"),
    ("verified", "recipient"),
    ("committed", "recipient"),
    ("visible", "recipient"),
    ("client_saw", "client"),
]


def py_spy() -> str:
    """The py-spy beside this Python (a virtual environment's), or on the PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else "py-spy"


class Clients(Protocol):
    def one(self, text: str) -> tuple[float, str]: ...


def sent_now() -> int:
    """Wall-clock ns just before a client posts (the ``client_sent`` stage)."""
    global LAST_SENT_NS
    LAST_SENT_NS = time.time_ns()
    return LAST_SENT_NS


LAST_SENT_NS = 0


class HotlineClients:
    """The two clients of one measurement: the sender's and the recipient's.

    The recipient's client follows new messages with ``GET /api/received`` (one long
    poll answers with the message itself); against a checkout without it (``--against``
    an older one), with ``GET /api/wait`` then ``GET /api/inbox``."""

    def __init__(self, sender: StationClient, recipient: StationClient, channel: str) -> None:
        self.sender, self.recipient, self.channel = sender, recipient, channel
        start = recipient.http.get("/api/received")
        self.legacy = start.status_code == 404
        self.since: str | None = None if self.legacy else start.json()["since"]

    def one(self, text: str) -> tuple[float, str]:
        """Send one message and long-poll until the recipient sees it: (seconds, hash)."""
        if self.legacy:
            return self._one_legacy(text)
        t, digest = self._send(text)
        while True:
            page = self.recipient.received(self.since, channel=self.channel)
            self.since = page["since"]
            if any(item["hash"] == digest for item in page["items"]):
                return time.perf_counter() - t, digest

    def _send(self, text: str) -> tuple[float, str]:
        """Post one message at the sender: (when the clock started, its hash)."""
        sent_now()
        t = time.perf_counter()
        r = self.sender.http.post("/api/send", json={"channel": self.channel, "text": text})
        assert r.status_code == 202, r.text
        return t, r.json()["hash"]

    def _one_legacy(self, text: str) -> tuple[float, str]:
        version = self.recipient.wait(-1)  # answers at once: the current version
        t, digest = self._send(text)
        while True:
            # Anything after ``version`` (read before the send) answers the wait at once, so
            # the inbox is read only once something changed: a read while the message is
            # still on its way would only compete with the recipient's taking it in.
            version = self.recipient.wait(version)
            # Newest first within a precedence; the demo's FLASH stays ahead of ours.
            page = self.recipient.inbox_page(channel=self.channel, limit=3)
            if any(item["hash"] == digest for item in page["items"]):
                return time.perf_counter() - t, digest


def run_sequence(
    clients: Clients, n: int, warmup: int = 20
) -> tuple[list[float], dict[str, tuple[int, int]]]:
    """``n`` sequential sends after ``warmup``; latencies in ms, and for each message
    when its client posted it and when the recipient's client saw it (wall ns)."""
    for i in range(warmup):
        clients.one(f"warm-up {i}")
    lat, seen = [], {}
    for i in range(n):
        elapsed, digest = clients.one(f"m{i} " + "x" * 200)
        seen[digest[:16]] = (LAST_SENT_NS, time.time_ns())
        lat.append(elapsed * 1000)
    return lat, seen


def stage_breakdown(
    stamp_dir: Path, seen: dict[str, tuple[int, int]], sender: str, recipient: str
) -> dict[str, tuple[float, float]]:
    """Median and p90 ms from each stage to the next, over the measured messages."""
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
    for digest, (sent_ns, saw_ns) in seen.items():
        at[digest]["client_sent"] = sent_ns
        at[digest]["client_saw"] = saw_ns
    # From each stage a message was stamped at to the next one it was stamped at (code
    # without some of the stamps, e.g. an older checkout, still gets a breakdown).
    deltas: dict[str, list[float]] = defaultdict(list)
    for stamps in at.values():
        present = [stage for stage, _ in STAGES if stage in stamps]
        for prev, stage in itertools.pairwise(present):
            deltas[f"{prev} -> {stage}"].append((stamps[stage] - stamps[prev]) / 1e6)
    order = {f"{a} -> {b}": i for i, ((a, _), (b, _)) in enumerate(itertools.pairwise(STAGES))}
    out: dict[str, tuple[float, float]] = {}
    for name in sorted(deltas, key=lambda n: (order.get(n, len(order)), n)):
        if len(deltas[name]) * 2 >= len(seen):  # a stage most messages were stamped at
            out[name] = (statistics.median(deltas[name]), pct(deltas[name], 90))
    return out


# --- hotline: separate processes, and the demo ---------------------------------------------


def hotline_processes(
    root: Path, n: int, profile: Path | None = None, gil: bool = False, post_quantum: bool = True
) -> dict[str, Any]:
    stamp_dir = root / "stamps"
    stamp_dir.mkdir(parents=True)
    os.environ["HOTLINE_STAMPS"] = str(stamp_dir)
    try:
        c = Cluster(
            root,
            stations={"us": ["us-1"], "ru": ["ru-1"]},
            channels={"us-ru": {"members": ["us", "ru"]}},
            relay_args=("--rate", "100000"),
            post_quantum=post_quantum,
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
                            py_spy(),
                            "record",
                            "-p",
                            str(pid),
                            "-f",
                            "raw",
                            "-r",
                            os.environ.get("HOTLINE_SPY_RATE", "250"),
                            "-o",
                            str(out),
                            *(["--gil"] if gil else []),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(2)  # py-spy attached
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        lat, seen = run_sequence(clients, n)
        cpu = {}
        for name, pid in pids.items():
            (user, system), (user0, system0) = cpu_seconds(pid), before[name]
            cpu[name] = ((user - user0) * 1000 / n, (system - system0) * 1000 / n)
        for spy in spies:
            spy.send_signal(2)
            spy.wait(60)
    finally:
        c.close()
    return {
        "lat": lat,
        "stages": stage_breakdown(stamp_dir, seen, "us/us-1", "ru/ru-1"),
        "pids": pids,
        "cpu": cpu,
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
        sent_now()
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


def in_tree(
    tree: Path | None, run: Callable[[Path], dict[str, Any]]
) -> Callable[[Path], dict[str, Any]]:
    """``run`` with the hotline processes it starts importing ``tree``'s src (None: ours)."""
    if tree is None:
        return run

    def wrapped(root: Path) -> dict[str, Any]:
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(tree.resolve() / "src"), saved) if p
        )
        try:
            return run(root)
        finally:
            if saved is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = saved

    return wrapped


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time (user, system) a process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def path_floor(base: dict[str, float], samples: int = 300) -> dict[str, float]:
    """What one message's path cannot do without, in series, at no cost for Python, thread
    hops or frames: the sender's hybrid signature (Ed25519 + ML-DSA-65) and one ML-KEM-768
    + X25519 encapsulation per recipient station (two here), three durable commits
    (sender's outbox, relay, recipient), the relay's and the recipient's hybrid
    verifications, the recipient's decapsulation, the relay's checkpoint signature and the
    recipient's check of it (an Ed25519 sign + verify), and the two loopback hops (sender
    to relay, relay to recipient: one round trip). ``base``: the floor's own parts."""
    ed, pq = Ed25519PrivateKey.generate(), MLDSA65PrivateKey.generate()
    ed_pub, pq_pub = ed.public_key().public_bytes_raw(), pq.public_key().public_bytes_raw()
    x_key, kem_key = X25519PrivateKey.generate(), MLKEM768PrivateKey.generate()
    x_pub, kem_pub = x_key.public_key().public_bytes_raw(), kem_key.public_key().public_bytes_raw()
    envelope = os.urandom(4096)  # about a version-2 envelope's signed bytes

    def median_ms(step: Callable[[], object]) -> float:
        times = []
        for _ in range(samples):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1000

    signature = hybrid.sign(ed, pq, envelope)
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes_raw()
    _, ct = hybrid.encapsulate(eph, eph_pub, x_pub, kem_pub)
    parts = {
        "hybrid sign (sender)": median_ms(lambda: hybrid.sign(ed, pq, envelope)),
        "2 encapsulations (sender)": 2
        * median_ms(lambda: hybrid.encapsulate(eph, eph_pub, x_pub, kem_pub)),
        "2 hybrid verifications (relay, recipient)": 2
        * median_ms(lambda: hybrid.verify(ed_pub, pq_pub, envelope, signature)),
        "decapsulation (recipient)": median_ms(
            lambda: hybrid.decapsulate(x_key, kem_key, eph_pub, ct)
        ),
        "3 durable commits (sender, relay, recipient)": 3 * base["commit_ms"],
        "checkpoint sign + verify (relay, recipient)": base["sign_verify_ms"],
        "2 loopback hops (one round trip)": base["ws_rtt_ms"],
    }
    parts["path floor"] = sum(parts.values())
    return parts


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
    parser.add_argument("--skip-processes", action="store_true")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record py-spy profiles (collapsed stacks) of relay and stations into this folder",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="profile only samples holding the GIL (Python's CPU), not waits and disk syncs",
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="another checkout of hotline (e.g. main): its src runs the relay, stations and "
        "demo too, alternating with this one's, under the same floor",
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternations with --against")
    parser.add_argument(
        "--v1",
        action="store_true",
        help="version-1 envelopes (no post-quantum) for the separate processes; the demo is v2",
    )
    args = parser.parse_args()
    print(
        f"# sequential client-view latency, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    results: dict[str, dict[str, Any]] = {}
    runs: list[tuple[str, Callable[[Path], dict[str, Any]]]] = []
    trees: list[tuple[str, Path | None]] = [("", None)]
    if args.against is not None:
        trees = [(" (this tree)", None), (f" ({args.against})", args.against)]
    for _ in range(args.rounds if args.against is not None else 1):
        for label, tree in trees:
            if not args.skip_processes:
                runs.append(
                    (
                        f"hotline{label}, separate processes",
                        in_tree(
                            tree,
                            lambda p: hotline_processes(
                                p, args.messages, args.profile, args.profile_gil, not args.v1
                            ),
                        ),
                    )
                )
            if not args.skip_demo:
                runs.append(
                    (
                        f"hotline{label} demo (one process)",
                        in_tree(tree, lambda p: hotline_demo(p, args.messages)),
                    )
                )
    if args.synapse_venv:
        runs.append(
            ("Synapse (SQLite)", lambda p: synapse(Path(args.synapse_venv), p, args.messages))
        )
    with tempfile.TemporaryDirectory() as tmp:
        f = floor(Path(tmp))
        for i, (name, run) in enumerate(runs):
            load = os.getloadavg()[0]
            got = run(Path(tmp) / f"run{i}")
            got["load"] = (load, os.getloadavg()[0])
            print(f"run {i}: {name}: p50 {pct(got['lat'], 50):.2f} ms, load {load:.1f}")
            if name in results:  # another round: pooled
                old = results[name]
                old["lat"] += got["lat"]
                old["load"] = (min(old["load"][0], load), max(old["load"][1], got["load"][1]))
                old.setdefault("rounds", [pct(old["lat"][: len(got["lat"])], 50)])
                old["rounds"].append(pct(got["lat"], 50))
            else:
                results[name] = got
        (Path(tmp) / "again").mkdir()
        after = floor(Path(tmp) / "again")
    print()
    floor_ms = min(f["floor_ms"], after["floor_ms"])
    print("| floor part | median ms (before / after the runs) |\n|---|---:|")
    print(
        f"| durable SQLite commit (WAL, synchronous=FULL) | "
        f"{f['commit_ms']:.3f} / {after['commit_ms']:.3f} |"
    )
    print(f"| Ed25519 sign + verify | {f['sign_verify_ms']:.3f} / {after['sign_verify_ms']:.3f} |")
    print(f"| loopback WebSocket round trip | {f['ws_rtt_ms']:.3f} / {after['ws_rtt_ms']:.3f} |")
    print(f"| **floor** | **{f['floor_ms']:.3f} / {after['floor_ms']:.3f}** |\n")
    path = path_floor(min((f, after), key=lambda x: x["floor_ms"]))
    print("| the path's own floor (version-2 envelopes), in series | median ms |\n|---|---:|")
    for part, ms in path.items():
        bold = "**" if part == "path floor" else ""
        print(f"| {bold}{part}{bold} | {bold}{ms:.3f}{bold} |")
    print(
        f"\nthe path floor is {path['path floor'] / floor_ms:.1f}x the floor: no implementation"
        f" of this path gets a p50 under it\n"
    )
    print(f"ratios against the lower floor, {floor_ms:.3f} ms\n")
    print(
        "| system | messages | p50 ms | p90 ms | p99 ms | p50 / floor | p99 / p50 | load"
        " | p50 / path floor |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for name, r in results.items():
        low, high = r["load"]
        over_path = pct(r["lat"], 50) / path["path floor"]
        print(line(name, r["lat"], floor_ms) + f" {low:.1f} to {high:.1f} | {over_path:.1f}x |")
    for name, r in results.items():
        if "rounds" in r:
            print(f"\n{name}: p50 per round " + ", ".join(f"{ms:.2f}" for ms in r["rounds"]))
    syn = results.get("Synapse (SQLite)")
    if syn is not None:
        s50 = pct(syn["lat"], 50)
        for name, r in results.items():
            if r is not syn:
                print(f"\nSynapse p50 / {name} p50 = {s50 / pct(r['lat'], 50):.1f}x", end="")
        print()
    for name, r in results.items():
        if r.get("cpu"):
            parts = ", ".join(
                f"{who} {user + system:.2f} ({system:.2f} system)"
                for who, (user, system) in r["cpu"].items()
            )
            total = sum(user + system for user, system in r["cpu"].values())
            print(f"\n{name}: CPU ms per message (receipts included): {parts}; all {total:.2f}")
    for name, r in results.items():
        if r.get("stages"):
            print(f"\n{name}: ms per stage\n\n| stage | median | p90 |\n|---|---:|---:|")
            for stage, (ms, p90) in r["stages"].items():
                print(f"| {stage} | {ms:.3f} | {p90:.3f} |")
            total = sum(ms for ms, _ in r["stages"].values())
            print(f"| sum of the medians | {total:.3f} | |")


if __name__ == "__main__":
    main()
