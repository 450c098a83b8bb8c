"""One relay core over many channels: what one process and one database hold.

A roster of 45 parties and their 990 pairwise channels (a roster holds at most 1,000),
one station per party, envelopes spread over every channel, accepted in batches as the
relay's writer does (no network: this is the store's and the rules' share). Prints
accepted envelopes/s on SQLite and on PostgreSQL, the relay core's memory per channel,
and the database's bytes per entry. Nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hotline.envelope import ZERO_HASH, envelope_hash, seal
from hotline.keys import PartyKey, StationKey
from hotline.notes import NoteSigner
from hotline.relay.core import Acceptance, RelayCore
from hotline.relay.sqlite import SqliteRelayStore
from hotline.relay.storage import RelayStore
from hotline.roster import Roster, open_roster, roster_text, sign_roster


def build(parties: int) -> tuple[Roster, NoteSigner, dict[str, StationKey], dict[str, Any], int]:
    now = int(time.time())
    names = [f"p{i:02d}" for i in range(parties)]
    keys = {n: PartyKey.generate(n) for n in names}
    stations = {n: StationKey.generate(n, f"{n}-1") for n in names}
    certs = {n: keys[n].certify(stations[n], now - 3600, now + 86400) for n in names}
    relay = NoteSigner("relay.ae", Ed25519PrivateKey.generate())
    channels = {
        f"{a}-{b}": {"members": [a, b]} for i, a in enumerate(names) for b in names[i + 1 :]
    }
    text = roster_text(
        "scale",
        {n: {**k.public_keys(), "language": "en"} for n, k in keys.items()},
        channels,
        relay.verifier.encode(),
    )
    note = sign_roster(text, keys[names[0]])
    for n in names[1:]:
        note = sign_roster(note, keys[n])
    return open_roster(note.encode()), relay, stations, certs, now


Post = tuple[str, bytes, int]


def envelopes(
    stations: dict[str, StationKey],
    certs: dict[str, Any],
    channels: Any,
    per_channel: int,
    now: int,
) -> list[Post]:
    out = []
    for name in channels:
        a, b = name.split("-")
        prev = ZERO_HASH
        for seq in range(1, per_channel + 1):
            raw = seal(
                os.urandom(1024),
                sender=stations[a],
                channel=name,
                seq=seq,
                prev=prev,
                recipients=[certs[a], certs[b]],
                created_ms=now * 1000,
            )
            prev = envelope_hash(raw)
            out.append((stations[a].ident, raw, seq))
    return out


def run(
    store: RelayStore,
    roster: Roster,
    relay: NoteSigner,
    certs: dict[str, Any],
    posts: list[Post],
    batch: int,
) -> dict[str, float]:
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    core = RelayCore(store, roster, relay)
    for cert in certs.values():
        core.register_certificate(cert.encode())
    core.sign_unsigned()
    start_s = time.perf_counter() - t
    # Posts arrive interleaved over the channels, each sender's in its own order.
    order = sorted(posts, key=lambda p: (p[2], random.random()))
    t = time.perf_counter()
    for i in range(0, len(order), batch):
        for r in core.accept([(ident, raw) for ident, raw, _ in order[i : i + batch]]):
            assert isinstance(r, Acceptance), r
    elapsed = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "per_second": len(order) / elapsed,
        "start_s": start_s,
        "rss_growth_mib": (rss - rss0) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parties", type=int, default=45)
    parser.add_argument("--per-channel", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--postgres", metavar="URL", help="also on PostgreSQL (a fresh schema)")
    args = parser.parse_args()
    roster, relay, stations, certs, now = build(args.parties)
    posts = envelopes(stations, certs, roster.channels, args.per_channel, now)
    print(
        f"# {len(roster.channels)} channels, {len(posts)} envelopes of 1 KiB, batches of "
        f"{args.batch}; {time.strftime('%Y-%m-%d %H:%M')} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    print("| store | accepted/s | first checkpoints of every channel, s | RSS growth MiB |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "relay.db"
        r = run(SqliteRelayStore(db), roster, relay, certs, posts, args.batch)
        size = db.stat().st_size + sum(
            p.stat().st_size for p in Path(tmp).glob("relay.db-*") if p.exists()
        )
        print(
            f"| SQLite | {r['per_second']:,.0f} | {r['start_s']:.1f} | {r['rss_growth_mib']:.0f} |"
        )
    if args.postgres:
        import psycopg

        from hotline.relay.postgres import PostgresRelayStore

        schema = f"hotline_scale_{os.getpid()}"
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
            try:
                sep = "&" if "?" in args.postgres else "?"
                dsn = f"{args.postgres}{sep}options=-csearch_path%3D{schema}"
                r = run(PostgresRelayStore(dsn), roster, relay, certs, posts, args.batch)
                row = conn.execute(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relkind = 'r'",
                    (schema,),
                ).fetchone()
                pg_bytes = int(row[0]) if row and row[0] else 0
            finally:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
        print(
            f"| PostgreSQL | {r['per_second']:,.0f} | {r['start_s']:.1f} | "
            f"{r['rss_growth_mib']:.0f} |"
        )
        print(f"\nPostgreSQL bytes per entry (tables and indexes): {pg_bytes / len(posts):,.0f}")
    print(f"SQLite bytes per entry (file and WAL): {size / len(posts):,.0f}")


if __name__ == "__main__":
    main()
