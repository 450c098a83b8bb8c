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
from tests.netutil import PASSPHRASE, Cluster, Proc, free_ports, wait_for


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


def extra_relays(c: Cluster, database: str | None, n: int) -> list[Proc]:
    """``n`` more relay processes on the cluster's database (PostgreSQL), started."""
    procs = []
    for port in free_ports(n):
        args = ["relay", "serve", "--dir", str(c.net.relay_dir), "--port", str(port)]
        procs.append(
            Proc(
                [*args, "--rate", "1000000", "--database", str(database)],
                c.net.root / f"{port}.log",
            )
        )
        procs[-1].start()
        wait_for(
            lambda p=port: httpx.get(f"http://127.0.0.1:{p}/health").is_success, what="relay up"
        )
    return procs


def _url(proc: Proc) -> str:
    return f"ws://127.0.0.1:{proc.args[proc.args.index('--port') + 1]}/ws"


def latency(
    root: Path,
    n: int,
    database: str | None = None,
    processes: int = 1,
    post_quantum: bool = True,
) -> dict[str, float]:
    """Send-to-delivered; with 2 processes the sender and the recipient are linked to
    different ones (the entry crosses by NOTIFY)."""
    c = Cluster(
        root,
        database=database,
        stations={"us": ["us-1"], "ru": ["ru-1"]},
        channels={"us-ru": {"members": ["us", "ru"]}},
        relay_args=("--rate", "100000"),
        post_quantum=post_quantum,
    )
    c.start_relay()
    extra = extra_relays(c, database, processes - 1)
    if extra:
        c.stations["ru/ru-1"].args += ["--relay", _url(extra[0])]
    for ident in c.stations:
        c.start_station(ident)
    for ident in c.stations:
        wait_for(lambda i=ident: c.status(i)["relay"]["connected"], what=f"{ident} linked")
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
        for proc in extra:
            proc.stop()
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


def sealed_chain(
    body: bytes,
    key: StationKey,
    recipients: list[StationCertificate],
    channel: str,
    count: int,
    now_ms: int,
) -> list[bytes]:
    """``count`` envelopes of one sender in ``channel``, each chained to the one before."""
    prev, out = ZERO_HASH, []
    for seq in range(1, count + 1):
        raw = seal(
            body,
            sender=key,
            channel=channel,
            seq=seq,
            prev=prev,
            recipients=recipients,
            created_ms=now_ms,
        )
        out.append(raw)
        prev = envelope_hash(raw)
    return out


def throughput(
    root: Path,
    senders: int,
    per_sender: int,
    database: str | None = None,
    processes: int = 1,
    channels: int = 1,
    post_quantum: bool = True,
) -> dict[str, float]:
    """Senders straight to the relay; with several processes (PostgreSQL), spread over
    them; with several channels (all us-ru), sender i posts to channel i mod channels."""
    names = [f"us-{i}" for i in range(1, senders + 1)]
    chans = ["us-ru"] + [f"us-ru-{j}" for j in range(2, channels + 1)]
    c = Cluster(
        root,
        database=database,
        stations={"us": names, "ru": ["ru-1"]},
        channels={ch: {"members": ["us", "ru"]} for ch in chans},
        relay_args=("--rate", "1000000"),
        post_quantum=post_quantum,
    )
    c.start_relay()
    extra = extra_relays(c, database, processes - 1)
    urls = [c.net.relay_url] + [_url(p) for p in extra]
    roster = load_roster(c.net.relay_dir / "roster.note")
    roster_hash = hashlib.sha256(roster.encode()).digest()
    keys = {n: load_station(c.net.stations[f"us/{n}"], PASSPHRASE, roster) for n in names}
    _, ru_cert = load_station(c.net.stations["ru/ru-1"], PASSPHRASE, roster)
    body = os.urandom(1024)
    batches: dict[str, list[bytes]] = {}
    now = int(time.time() * 1000)
    for i, (n, (key, cert)) in enumerate(keys.items()):
        batches[n] = sealed_chain(
            body, key, [cert, ru_cert], chans[i % len(chans)], per_sender, now
        )

    async def run() -> float:
        t = time.perf_counter()
        results = await asyncio.gather(
            *[
                _sender(
                    urls[i % len(urls)],
                    f"us/{n}",
                    keys[n][0],
                    keys[n][1],
                    roster_hash,
                    batches[n],
                    64,
                )
                for i, n in enumerate(names)
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
        for proc in extra:
            proc.stop()
    total = senders * per_sender
    # The logs also hold the stations' certificates (key events), logged when they connect.
    assert sum(health["channels"].values()) >= total
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
    parser.add_argument("--repeat", type=int, default=3, help="PostgreSQL throughput runs")
    parser.add_argument("--postgres-only", action="store_true", help="skip the SQLite part")
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
        if args.postgres_only and args.postgres:
            postgres(Path(tmp), args)
            return
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
            postgres(Path(tmp), args)


def postgres(tmp: Path, args: argparse.Namespace) -> None:
    """The relay on PostgreSQL, with one and with two processes on the same database."""
    import psycopg

    schema = "hotline_bench_" + str(os.getpid())
    dsn = (
        args.postgres + ("&" if "?" in args.postgres else "?") + f"options=-csearch_path%3D{schema}"
    )
    print(
        "\n| PostgreSQL relay store | processes | p50 ms | p99 ms "
        "| accepted msg/s, 1 channel (median) | accepted msg/s, 8 channels (median) | RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    rates: dict[tuple[int, int], list[float]] = {}
    lats: dict[int, dict[str, float]] = {}
    rss: dict[int, float] = {}
    with psycopg.connect(args.postgres, autocommit=True) as conn:

        def fresh() -> None:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")

        try:
            for processes in (1, 2):
                fresh()
                lats[processes] = latency(
                    tmp / f"pg-lat-{processes}", args.messages, dsn, processes
                )
            # Interleaved repeats: the machine's load drifts; medians of each setting.
            for rep in range(args.repeat):
                for processes in (1, 2):
                    for channels in (1, 8):
                        fresh()
                        tp = throughput(
                            tmp / f"pg-tp-{processes}-{channels}-{rep}",
                            args.senders,
                            args.per_sender,
                            dsn,
                            processes,
                            channels,
                        )
                        rates.setdefault((processes, channels), []).append(tp["per_second"])
                        rss[processes] = tp["relay_peak_rss_mib"]
        finally:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    for processes in (1, 2):
        lat = lats[processes]
        one = statistics.median(rates[(processes, 1)])
        eight = statistics.median(rates[(processes, 8)])
        print(
            f"| {args.senders} senders; send-to-delivered over {lat['n']:.0f} | {processes} "
            f"| {lat['p50']:.1f} | {lat['p99']:.1f} | {one:,.0f} | {eight:,.0f} "
            f"| {rss[processes]:.0f} |"
        )
    print(
        "\nevery run (msg/s): "
        + "; ".join(
            f"{p} process(es), {ch} channel(s): " + ", ".join(f"{r:,.0f}" for r in rs)
            for (p, ch), rs in sorted(rates.items())
        )
    )


if __name__ == "__main__":
    main()
