"""Core figures: Merkle log, envelopes, checkpoints. Prints a Markdown table."""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hotline.envelope import ZERO_HASH, open_envelope, seal
from hotline.keys import KeyRing, PartyKey, StationCertificate, StationKey
from hotline.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from hotline.notes import Checkpoint, NoteSigner, open_checkpoint, sign_checkpoint


def per_second(fn: Callable[[], object], seconds: float = 1.0) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def micro(fn: Callable[[], object], repeat: int = 2000) -> float:
    """Median microseconds per call."""
    samples = []
    for _ in range(repeat):
        t = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t)
    return statistics.median(samples) / 1000


def proof_times(tree: MerkleTree, size: int, rng: random.Random) -> tuple[float, ...]:
    """Median µs: inclusion proof make and check, consistency proof make and check."""
    root = tree.root(size)
    i, m = rng.randrange(size), rng.randrange(1, size)
    proof = tree.inclusion_proof(i, size)
    leaf = leaf_hash(b"entry %d" % i)
    cproof, r1 = tree.consistency_proof(m, size), tree.root(m)
    return (
        micro(lambda: tree.inclusion_proof(i, size)),
        micro(lambda: verify_inclusion(leaf, i, size, proof, root)),
        micro(lambda: tree.consistency_proof(m, size)),
        micro(lambda: verify_consistency(m, size, cproof, r1, root)),
    )


def merkle(sizes: list[int]) -> None:
    tree = MerkleTree()
    rng = random.Random(1)
    print("| leaves | appends/s | inclusion make µs | check µs | consistency make µs | check µs |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        todo = size - tree.size
        start = time.perf_counter()
        while tree.size < size:
            n = min(10_000, size - tree.size)
            tree.append_many([b"entry %d" % (tree.size + k) for k in range(n)])
        rate = todo / (time.perf_counter() - start)
        times = proof_times(tree, size, rng)
        print(f"| {size:,} | {rate:,.0f} | " + " | ".join(f"{t:.1f}" for t in times) + " |")


@dataclass
class EnvelopeWorld:
    """Three parties with one station each, and a 1 KiB envelope us-1 seals to all three."""

    parties: dict[str, PartyKey]
    stations: dict[str, StationKey]
    certs: list[StationCertificate]
    ring: KeyRing
    seal: Callable[[], bytes]
    sealed: bytes


def envelope_world(pq: bool = True) -> EnvelopeWorld:
    now = int(time.time())
    parties = {p: PartyKey.generate(p, pq=pq) for p in ("us", "ru", "ua")}
    stations = {p: StationKey.generate(p, f"{p}-1", pq=pq) for p in parties}
    certs = [parties[p].certify(s, now - 10, now + 3600) for p, s in stations.items()]
    ring = KeyRing({p: k.verifier for p, k in parties.items()})
    for c in certs:
        ring.add_certificate(c.encode())
    body = os.urandom(1024)

    def do_seal() -> bytes:
        return seal(
            body,
            sender=stations["us"],
            channel="c",
            seq=1,
            prev=ZERO_HASH,
            recipients=certs,
            created_ms=now * 1000,
        )

    return EnvelopeWorld(parties, stations, certs, ring, do_seal, do_seal())


def envelopes() -> None:
    w = envelope_world()
    do_seal, sealed, stations, ring = w.seal, w.sealed, w.stations, w.ring
    print(f"| envelope v2 seal (3 recipients, 1 KiB) | {per_second(do_seal):,.0f} /s |")
    print(
        f"| envelope v2 open (verify + unwrap + decrypt) | "
        f"{per_second(lambda: open_envelope(sealed, stations['ru'], ring)):,.0f} /s |"
    )
    relay = NoteSigner("relay", Ed25519PrivateKey.generate())
    cp = Checkpoint("hotline/bench/c", 123456, os.urandom(32), ("time 1",))
    signed = sign_checkpoint(cp, relay).encode()
    print(f"| checkpoint sign | {per_second(lambda: sign_checkpoint(cp, relay)):,.0f} /s |")
    print(
        f"| checkpoint parse + verify | "
        f"{per_second(lambda: open_checkpoint(signed, relay.verifier)):,.0f} /s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="stop at 10^5 leaves")
    args = parser.parse_args()
    print(
        f"# core benchmark, {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    merkle([1_000, 100_000] if args.quick else [1_000, 100_000, 1_000_000])
    print("\n| operation | rate |\n|---|---:|")
    envelopes()


if __name__ == "__main__":
    main()
