"""Relay and stations on loopback: latency, throughput, the floor, relay memory.

Real processes: `hotline relay serve` and `hotline station serve`, as in production.
Prints a Markdown report; nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hotline import frames
from hotline.envelope import ZERO_HASH, envelope_hash, seal
from hotline.home import load_roster, load_station
from hotline.keys import StationCertificate, StationKey
from tests.netutil import PASSPHRASE, Cluster, wait_for


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# --- the floor ---------------------------------------------------------------------------------


async def ws_rtt(samples: int) -> float:
    async def echo(ws: websockets.asyncio.server.ServerConnection) -> None:
        async for m in ws:
            await ws.send(m)

    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with websockets.connect(f"ws://127.0.0.1:{port}") as ws:
            times = []
            for _ in range(samples):
                t = time.perf_counter()
                await ws.send("x" * 1400)
                await ws.recv()
                times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def floor(tmp: Path, samples: int = 300) -> dict[str, float]:
    db = sqlite3.connect(tmp / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
    commits = []
    for i in range(samples):
        t = time.perf_counter()
        db.execute("BEGIN")
        db.execute("INSERT INTO t VALUES (?, ?)", (i, os.urandom(1400)))
        db.execute("COMMIT")
        commits.append(time.perf_counter() - t)
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    sigs = []
    for _ in range(samples):
        t = time.perf_counter()
        s = key.sign(b"m" * 1400)
        pub.verify(s, b"m" * 1400)
        sigs.append(time.perf_counter() - t)
    rtt = asyncio.run(ws_rtt(samples))
    commit_ms = statistics.median(commits) * 1000
    sig_ms = statistics.median(sigs) * 1000
    return {
        "commit_ms": commit_ms,
        "sign_verify_ms": sig_ms,
        "ws_rtt_ms": rtt,
        "floor_ms": commit_ms + sig_ms + rtt,
    }


# --- send-to-delivered latency ---


def latency(
    root: Path, n: int, database: str | None = None, post_quantum: bool = True
) -> dict[str, float]:
    c = Cluster(
        root,
        database=database,
        stations={"us": ["us-1"], "ru": ["ru-1"]},
        channels={"us-ru": {"members": ["us", "ru"]}},
        relay_args=("--rate", "100000"),
        post_quantum=post_quantum,
    )
    c.start()
    try:
        c.send("us/us-1", "us-ru", "warm-up")
        wait_for(lambda: len(c.inbox("ru/ru-1")) == 1, what="warm-up")
        api = c.api("us/us-1")
        for i in range(n):
            r = api.post("/api/send", json={"channel": "us-ru", "text": f"m{i} " + "x" * 1000})
            assert r.status_code == 202
            time.sleep(0.004)

        def delivered() -> int:
            with c.station_store("ru/ru-1") as store:
                return len(store.messages())

        wait_for(lambda: delivered() == n + 1, timeout=300, what="all delivered")
        with c.station_store("ru/ru-1") as store:
            lat = [float(m.received_ms - m.created_ms) for m in store.messages()][1:]
    finally:
        c.close()
    return {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99), "n": len(lat)}


# --- throughput: 16 concurrent senders straight to the relay ---


async def _sender(
    url: str,
    ident: str,
    key: StationKey,
    cert: StationCertificate,
    roster_hash: bytes,
    envelopes: list[bytes],
    window: int,
) -> int:
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        challenge = frames.decode_relay_frame(await ws.recv())
        assert isinstance(challenge, frames.Challenge), challenge
        signature = key.signing.sign(frames.auth_message(challenge.nonce, ident, roster_hash))
        await ws.send(frames.encode_frame(frames.Hello(ident, cert.encode(), signature)))
        assert isinstance(frames.decode_relay_frame(await ws.recv()), frames.Welcome)
        accepted = 0
        sent = 0
        while accepted < len(envelopes):
            while sent < len(envelopes) and sent - accepted < window:
                await ws.send(frames.encode_frame(frames.Post(envelopes[sent], id=sent)))
                sent += 1
            match frames.decode_relay_frame(await ws.recv()):
                case frames.Accepted():
                    accepted += 1
                case frames.ErrorReply() as refusal:
                    raise refusal.error()
        return accepted


def throughput(
    root: Path,
    senders: int,
    per_sender: int,
    database: str | None = None,
    post_quantum: bool = True,
) -> dict[str, float]:
    names = [f"us-{i}" for i in range(1, senders + 1)]
    c = Cluster(
        root,
        database=database,
        stations={"us": names, "ru": ["ru-1"]},
        channels={"us-ru": {"members": ["us", "ru"]}},
        relay_args=("--rate", "1000000"),
        post_quantum=post_quantum,
    )
    c.start_relay()
    roster = load_roster(c.net.relay_dir / "roster.note")
    roster_hash = hashlib.sha256(roster.encode()).digest()
    keys = {n: load_station(c.net.stations[f"us/{n}"], PASSPHRASE, roster) for n in names}
    _, ru_cert = load_station(c.net.stations["ru/ru-1"], PASSPHRASE, roster)
    body = os.urandom(1024)
    batches: dict[str, list[bytes]] = {}
    now = int(time.time() * 1000)
    for n, (key, cert) in keys.items():
        prev, out = ZERO_HASH, []
        for seq in range(1, per_sender + 1):
            raw = seal(
                body,
                sender=key,
                channel="us-ru",
                seq=seq,
                prev=prev,
                recipients=[cert, ru_cert],
                created_ms=now,
            )
            out.append(raw)
            prev = envelope_hash(raw)
        batches[n] = out

    async def run() -> float:
        t = time.perf_counter()
        results = await asyncio.gather(
            *[
                _sender(
                    c.net.relay_url, f"us/{n}", keys[n][0], keys[n][1], roster_hash, batches[n], 64
                )
                for n in names
            ]
        )
        elapsed = time.perf_counter() - t
        assert sum(results) == senders * per_sender
        return elapsed

    try:
        elapsed = asyncio.run(run())
        pid = c.relay.p.pid if c.relay.p else 0
        status = Path(f"/proc/{pid}/status").read_text()
        hwm = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
        health = httpx.get(f"http://127.0.0.1:{c.net.relay_port}/health").json()
    finally:
        c.close()
    total = senders * per_sender
    assert health["channels"]["us-ru"] == total
    return {
        "messages": total,
        "seconds": elapsed,
        "per_second": total / elapsed,
        "relay_peak_rss_mib": int(hwm) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--per-sender", type=int, default=500)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also measure the relay on PostgreSQL (a fresh schema in URL)",
    )
    args = parser.parse_args()
    print(
        f"# relay benchmark, {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        f = floor(Path(tmp))
        print("| floor part | median ms |\n|---|---:|")
        print(f"| durable SQLite commit (WAL, synchronous=FULL) | {f['commit_ms']:.3f} |")
        print(f"| Ed25519 sign + verify | {f['sign_verify_ms']:.3f} |")
        print(f"| loopback WebSocket round trip | {f['ws_rtt_ms']:.3f} |")
        print(f"| **floor** | **{f['floor_ms']:.3f}** |\n")
        lat = latency(Path(tmp) / "lat", args.messages)
        print(
            f"send-to-delivered over {lat['n']:.0f} messages (1 KiB, paced): "
            f"p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, p99 {lat['p99']:.1f} ms; "
            f"p50 / floor = {lat['p50'] / f['floor_ms']:.1f}x\n"
        )
        tp = throughput(Path(tmp) / "tp", args.senders, args.per_sender)
        print(
            f"{args.senders} concurrent senders, {tp['messages']:.0f} envelopes: "
            f"{tp['per_second']:,.0f} durable accepted messages/s "
            f"({tp['seconds']:.1f} s); relay peak RSS {tp['relay_peak_rss_mib']:.0f} MiB"
        )
        if args.postgres:
            import psycopg

            schema = "hotline_bench_" + str(os.getpid())
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
                try:
                    dsn = (
                        args.postgres
                        + ("&" if "?" in args.postgres else "?")
                        + f"options=-csearch_path%3D{schema}"
                    )
                    lat = latency(Path(tmp) / "pg-lat", args.messages, dsn)
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
                    conn.execute(f"CREATE SCHEMA {schema}")
                    tp = throughput(Path(tmp) / "pg-tp", args.senders, args.per_sender, dsn)
                finally:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
            print(
                f"\nPostgreSQL relay store: send-to-delivered p50 {lat['p50']:.1f} ms, "
                f"p90 {lat['p90']:.1f} ms, p99 {lat['p99']:.1f} ms; "
                f"{tp['per_second']:,.0f} durable accepted messages/s with {args.senders} "
                f"senders; relay peak RSS {tp['relay_peak_rss_mib']:.0f} MiB"
            )


if __name__ == "__main__":
    main()
