"""Redundant paths (issue 13 part 2): one relay against two independent relays.

Two independent relays, ``relay.ae`` and ``relay.ch`` (each its own key, process and
database), every station linked to both. Measured, with one relay and with two, on
SQLite relay stores and (``--postgres URL``) on PostgreSQL ones, each relay its own
database (two hosts):

- throughput: 16 senders straight to the relays, every envelope posted through every
  relay as a station does; an envelope counts once every relay has accepted it (durable
  at each);
- send-to-delivered p50/p99: sequential messages through the stations' API (us-1 to
  ru-1), as bench_relay.latency;
- failover: relay.ae killed (SIGKILL) in the middle of a paced burst; how long after the
  kill the first message sent after it is delivered, the worst send-to-delivered of the
  messages sent in the second after the kill, and how many were lost (none expected).

Prints Markdown; nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_relay import _sender, pct, sealed_chain
from hotline.envelope import Kind
from hotline.home import load_roster, load_station
from tests.netutil import PASSPHRASE, Cluster, wait_for

CHANNEL = "us-ru"


def cluster(root: Path, relays: int, dbs: list[str | None], senders: int = 0) -> Cluster:
    """us-1 and ru-1 (and ``senders`` more us stations) on relay.ae, and relay.ch if 2."""
    names = ["us-1"] + [f"us-s{i}" for i in range(1, senders + 1)]
    return Cluster(
        root,
        database=dbs[0],
        more_databases={"relay.ch": dbs[1]} if relays == 2 and dbs[1] else None,
        stations={"us": names, "ru": ["ru-1"]},
        channels={CHANNEL: {"members": ["us", "ru"]}},
        relay_args=("--rate", "1000000"),
        extra_relays=("relay.ch",) if relays == 2 else (),
    )


def start(c: Cluster, idents: list[str]) -> None:
    c.start_relay()
    for ident in idents:
        c.start_station(ident)
    for ident in idents:
        wait_for(
            lambda i=ident: all(p["connected"] for p in c.status(i)["relays"].values()),
            what=f"{ident} linked to every relay",
        )


def relay_urls(c: Cluster) -> list[str]:
    return [c.net.relay_url] + [
        f"ws://127.0.0.1:{port}/ws" for _d, port in c.net.more_relays.values()
    ]


def throughput(root: Path, relays: int, dbs: list[str | None], senders: int, per: int) -> float:
    """Envelopes/s accepted by every relay (each posted through each)."""
    c = cluster(root, relays, dbs, senders)
    c.start_relay()
    try:
        roster = load_roster(c.net.relay_dir / "roster.note")
        roster_hash = hashlib.sha256(roster.encode()).digest()
        names = [f"us/us-s{i}" for i in range(1, senders + 1)]
        keys = {n: load_station(c.net.stations[n], PASSPHRASE, roster) for n in names}
        _, ru_cert = load_station(c.net.stations["ru/ru-1"], PASSPHRASE, roster)
        body, now = os.urandom(1024), int(time.time() * 1000)
        chains: dict[str, list[bytes]] = {}
        for n, (key, cert) in keys.items():
            chains[n] = sealed_chain(body, key, [cert, ru_cert], CHANNEL, per, now)

        async def run() -> float:
            t = time.perf_counter()
            done = await asyncio.gather(
                *[
                    _sender(url, n, keys[n][0], keys[n][1], roster_hash, chains[n], 64)
                    for n in names
                    for url in relay_urls(c)
                ]
            )
            elapsed = time.perf_counter() - t
            assert sum(done) == senders * per * relays
            return elapsed

        return senders * per / asyncio.run(run())
    finally:
        c.close()


def _delivered(c: Cluster) -> list[tuple[int, int, int]]:
    """(seq, created_ms, received_ms) of us-1's messages at ru-1."""
    with c.station_store("ru/ru-1") as store:
        return [
            (m.seq, m.created_ms, m.received_ms)
            for m in store.messages(CHANNEL)
            if m.sender == "us/us-1" and m.kind == Kind.MESSAGE
        ]


def latency(root: Path, relays: int, dbs: list[str | None], n: int) -> dict[str, float]:
    c = cluster(root, relays, dbs)
    start(c, ["us/us-1", "ru/ru-1"])
    try:
        c.send("us/us-1", CHANNEL, "warm-up")
        wait_for(lambda: len(_delivered(c)) == 1, what="warm-up")
        api = c.api("us/us-1")
        for i in range(n):
            r = api.post("/api/send", json={"channel": CHANNEL, "text": f"m{i} " + "x" * 1000})
            assert r.status_code == 202, r.text
            time.sleep(0.004)
        wait_for(lambda: len(_delivered(c)) == n + 1, timeout=300, what="all delivered")
        lat = [float(r - s) for _q, s, r in sorted(_delivered(c))[1:]]
    finally:
        c.close()
    return {"p50": pct(lat, 50), "p99": pct(lat, 99), "n": len(lat)}


def failover(root: Path, dbs: list[str | None], n: int, gap_s: float) -> dict[str, float]:
    """relay.ae killed after a third of a paced burst of ``n`` messages."""
    c = cluster(root, 2, dbs)
    start(c, ["us/us-1", "ru/ru-1"])
    try:
        c.send("us/us-1", CHANNEL, "warm-up")
        wait_for(lambda: len(_delivered(c)) == 1, what="warm-up")
        api = c.api("us/us-1")
        sent: dict[int, float] = {}
        killed_ms = 0.0
        for i in range(n):
            if i == n // 3:
                killed_ms = time.time() * 1000
                c.relay.kill9()
            r = api.post("/api/send", json={"channel": CHANNEL, "text": f"m{i}"})
            assert r.status_code == 202, r.text
            sent[int(r.json()["seq"])] = time.time() * 1000
            time.sleep(gap_s)
        wait_for(lambda: len(_delivered(c)) >= n + 1, timeout=300, what="all delivered")
        got = _delivered(c)
    finally:
        c.close()
    after = [(created, received) for _q, created, received in got if created >= killed_ms]
    first_after = min(received for _c, received in after) - killed_ms
    window = [received - created for created, received in after if created < killed_ms + 1000]
    lost = len(set(sent) - {q for q, _c, _r in got})
    return {"first_after_ms": first_after, "worst_ms": max(window), "lost": lost}


@contextlib.contextmanager
def databases(url: str | None) -> Iterator[list[str | None]]:
    """Two relay stores: None, None for SQLite; two fresh PostgreSQL databases (as two
    hosts would have: per-channel advisory locks are database-wide) for ``url``."""
    if url is None:
        yield [None, None]
        return
    import psycopg

    names = [f"hotline_paths_{os.getpid()}_{i}" for i in (1, 2)]
    with psycopg.connect(url, autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        try:
            yield [url.rsplit("/", 1)[0] + "/" + name for name in names]
        finally:
            for name in names:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200, help="sequential latency")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--per-sender", type=int, default=200)
    parser.add_argument("--failover-messages", type=int, default=150)
    parser.add_argument("--postgres", metavar="URL", help="also with PostgreSQL relay stores")
    parser.add_argument("--postgres-only", action="store_true")
    args = parser.parse_args()
    print(
        f"# redundant paths, {time.strftime('%Y-%m-%d %H:%M')} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| relay stores | relays | accepted msg/s by every relay | p50 ms | p99 ms "
        "| first delivery after the kill, ms | worst latency in the second after, ms | lost |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    stores = ([] if args.postgres_only else [None]) + ([args.postgres] if args.postgres else [])
    for url in stores:
        kind = "SQLite" if url is None else "PostgreSQL"
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            rows = {}
            for relays in (1, 2):
                with databases(url) as dbs:
                    tp = throughput(
                        root / f"tp{relays}", relays, dbs, args.senders, args.per_sender
                    )
                with databases(url) as dbs:
                    lat = latency(root / f"lat{relays}", relays, dbs, args.messages)
                rows[relays] = (tp, lat)
            with databases(url) as dbs:
                fo = failover(root / "fo", dbs, args.failover_messages, 0.02)
        for relays, (tp, lat) in rows.items():
            tail = (
                f"{fo['first_after_ms']:.0f} | {fo['worst_ms']:.0f} | {fo['lost']:.0f}"
                if relays == 2
                else "- | - | -"
            )
            print(
                f"| {kind} | {relays} | {tp:,.0f} | {lat['p50']:.1f} | {lat['p99']:.1f} | {tail} |"
            )
        print(
            f"\n{kind}: two relays / one: throughput {rows[2][0] / rows[1][0]:.2f}x, "
            f"p50 {rows[2][1]['p50'] / rows[1][1]['p50']:.2f}x, "
            f"p99 {rows[2][1]['p99'] / rows[1][1]['p99']:.2f}x "
            f"(load {os.getloadavg()[0]:.1f})\n"
        )


if __name__ == "__main__":
    main()
