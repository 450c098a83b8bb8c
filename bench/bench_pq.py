"""What post-quantum costs: envelope version 1 against version 2, in one run.

Seal and open per second (3 recipients, 1 KiB body), envelope and statement sizes, the
primitives' costs, then send-to-delivered latency and sustained throughput over real
relay and station processes on loopback, once with a network of version-1 keys and once
with version-2 keys. Prints a Markdown report; nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_core import envelope_world, per_second
from bench.bench_relay import floor, latency, pct, throughput
from hotline.envelope import open_envelope
from hotline.roster import roster_text, sign_roster
from tests.netutil import Cluster, wait_for


def envelope_rates(pq: bool) -> dict[str, float]:
    w = envelope_world(pq)
    parties, stations, certs, ring = w.parties, w.stations, w.certs, w.ring
    do_seal, sealed = w.seal, w.sealed
    text = roster_text(
        "r",
        {p: k.public_keys() for p, k in parties.items()},
        {"c": {"members": list(parties)}},
        parties["us"].verifier.encode(),
    )
    roster = sign_roster(text, parties["us"])
    for p in ("ru", "ua"):
        roster = sign_roster(roster, parties[p])
    return {
        "seal": per_second(do_seal),
        "open": per_second(lambda: open_envelope(sealed, stations["ru"], ring)),
        "envelope_bytes": len(sealed),
        "certificate_bytes": len(certs[0].encode()),
        "roster_bytes": len(roster.encode()),
    }


def primitives() -> dict[str, float]:
    dsa, kem = MLDSA65PrivateKey.generate(), MLKEM768PrivateKey.generate()
    msg = os.urandom(1400)
    sig = dsa.sign(msg)
    pub, kem_pub = dsa.public_key(), kem.public_key()
    _, ct = kem_pub.encapsulate()
    return {
        "ML-DSA-65 sign": per_second(lambda: dsa.sign(msg)),
        "ML-DSA-65 verify": per_second(lambda: pub.verify(sig, msg)),
        "ML-KEM-768 encapsulate": per_second(kem_pub.encapsulate),
        "ML-KEM-768 decapsulate": per_second(lambda: kem.decapsulate(ct)),
    }


def sequential(root: Path, n: int, post_quantum: bool) -> dict[str, float]:
    """One message at a time (the next only once the last is delivered), so no queue
    forms: each figure is one message's own path, from the sender's seal to the
    recipient's commit (the times both stations recorded)."""
    c = Cluster(
        root,
        stations={"us": ["us-1"], "ru": ["ru-1"]},
        channels={"us-ru": {"members": ["us", "ru"]}},
        relay_args=("--rate", "100000"),
        post_quantum=post_quantum,
    )
    c.start()
    try:
        api = c.api("us/us-1")

        def delivered() -> int:
            with c.station_store("ru/ru-1") as store:
                return len(store.messages())

        for i in range(n + 1):  # the first is a warm-up
            r = api.post("/api/send", json={"channel": "us-ru", "text": f"m{i} " + "x" * 1000})
            assert r.status_code == 202
            wait_for(lambda i=i: delivered() == i + 1, timeout=120, what="delivered")
        with c.station_store("ru/ru-1") as store:
            lat = [float(m.received_ms - m.created_ms) for m in store.messages()][1:]
    finally:
        c.close()
    return {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99), "n": len(lat)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300, help="paced sends per version")
    parser.add_argument("--sequential", type=int, default=100, help="one-at-a-time sends")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--per-sender", type=int, default=200)
    args = parser.parse_args()
    print(
        f"# post-quantum cost, {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    rates = {v: envelope_rates(pq=v == 2) for v in (1, 2)}
    print("| (3 recipients, 1 KiB body) | version 1 | version 2 | v2 / v1 |\n|---|---:|---:|---:|")
    for name, unit in (("seal", "/s"), ("open", "/s")):
        a, b = rates[1][name], rates[2][name]
        print(f"| envelope {name} | {a:,.0f} {unit} | {b:,.0f} {unit} | {b / a:.2f} |")
    for name in ("envelope_bytes", "certificate_bytes", "roster_bytes"):
        a, b = rates[1][name], rates[2][name]
        label = name.replace("_", " ").replace("roster", "roster (3 parties)")
        print(f"| {label} | {a:,.0f} | {b:,.0f} | {b / a:.1f} |")
    print("\n| primitive | per second |\n|---|---:|")
    for name, rate in primitives().items():
        print(f"| {name} | {rate:,.0f} |")
    with tempfile.TemporaryDirectory() as tmp:
        f = floor(Path(tmp))
        print(
            f"\nfloor (durable commit, Ed25519 sign+verify, WS round trip): {f['floor_ms']:.2f} ms"
        )
        dsa = MLDSA65PrivateKey.generate()
        msg = os.urandom(1400)
        sig = dsa.sign(msg)
        pq_ms = 1000 / per_second(lambda: dsa.sign(msg)) + 1000 / per_second(
            lambda: dsa.public_key().verify(sig, msg)
        )
        print(f"version 2 adds to it one ML-DSA-65 sign + verify: {pq_ms:.2f} ms")
        print(
            "\n| version | sequential p50 / p90 / p99 | p50 / floor | paced (4 ms) p50 / p99 | "
            f"throughput ({args.senders} senders) |\n|---|---:|---:|---:|---:|"
        )
        for v in (1, 2):
            pq = v == 2
            seq = sequential(Path(tmp) / f"seq{v}", args.sequential, pq)
            lat = latency(Path(tmp) / f"lat{v}", args.messages, post_quantum=pq)
            tp = throughput(Path(tmp) / f"tp{v}", args.senders, args.per_sender, post_quantum=pq)
            print(
                f"| {v} | {seq['p50']:.1f} / {seq['p90']:.1f} / {seq['p99']:.1f} ms | "
                f"{seq['p50'] / f['floor_ms']:.1f}x | {lat['p50']:.1f} / {lat['p99']:.1f} ms | "
                f"{tp['per_second']:,.0f} msg/s |",
                flush=True,
            )


if __name__ == "__main__":
    main()
