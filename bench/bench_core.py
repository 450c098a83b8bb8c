"""Core figures: Merkle log, envelopes, checkpoints. Prints a Markdown table."""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hotline.envelope import ZERO_HASH, open_envelope, seal
from hotline.keys import KeyRing, PartyKey, StationKey
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


def merkle(sizes: list[int]) -> None:
    tree = MerkleTree()
    rng = random.Random(1)
    print("| leaves | appends/s | inclusion proof gen µs | verify µs | consistency gen µs | verify µs |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        todo = size - tree.size
        start = time.perf_counter()
        batch = 10_000
        for lo in range(0, todo, batch):
            tree.append_many(b"entry %d" % (tree.size + i) for i in range(min(batch, todo - lo)))
        rate = todo / (time.perf_counter() - start)
        root = tree.root()
        idx = [rng.randrange(size) for _ in range(200)]
        olds = [rng.randrange(1, size) for _ in range(200)]
        gen_inc = micro(lambda: tree.inclusion_proof(idx[0], size))
        proofs = {i: tree.inclusion_proof(i, size) for i in idx}
        i0 = idx[1]
        ver_inc = micro(
            lambda: verify_inclusion(leaf_hash(b"entry %d" % i0), i0, size, proofs[i0], root)
        )
        gen_con = micro(lambda: tree.consistency_proof(olds[0], size))
        m = olds[1]
        cproof, r1 = tree.consistency_proof(m, size), tree.root(m)
        ver_con = micro(lambda: verify_consistency(m, size, cproof, r1, root))
        print(f"| {size:,} | {rate:,.0f} | {gen_inc:.1f} | {ver_inc:.1f} | {gen_con:.1f} | {ver_con:.1f} |")


def envelopes() -> None:
    now = int(time.time())
    parties = {p: PartyKey.generate(p) for p in ("us", "ru", "ua")}
    stations = {p: StationKey.generate(p, f"{p}-1") for p in parties}
    certs = [parties[p].certify(s, now - 10, now + 3600) for p, s in stations.items()]
    ring = KeyRing({p: k.verifier for p, k in parties.items()})
    for c in certs:
        ring.add_certificate(c.encode())
    body = os.urandom(1024)

    def do_seal() -> bytes:
        return seal(body, sender=stations["us"], channel="c", seq=1, prev=ZERO_HASH,
                    recipients=certs, created_ms=now * 1000)

    sealed = do_seal()
    print(f"| envelope seal (3 recipients, 1 KiB) | {per_second(do_seal):,.0f} /s |")
    print(f"| envelope open (verify + unwrap + decrypt) | "
          f"{per_second(lambda: open_envelope(sealed, stations['ru'], ring)):,.0f} /s |")
    relay = NoteSigner("relay", Ed25519PrivateKey.generate())
    cp = Checkpoint("hotline/bench/c", 123456, os.urandom(32), ("time 1",))
    signed = sign_checkpoint(cp, relay).encode()
    print(f"| checkpoint sign | {per_second(lambda: sign_checkpoint(cp, relay)):,.0f} /s |")
    print(f"| checkpoint parse + verify | "
          f"{per_second(lambda: open_checkpoint(signed, relay.verifier)):,.0f} /s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="stop at 10^5 leaves")
    args = parser.parse_args()
    print(f"# core benchmark, {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}\n")
    merkle([1_000, 100_000] if args.quick else [1_000, 100_000, 1_000_000])
    print("\n| operation | rate |\n|---|---:|")
    envelopes()


if __name__ == "__main__":
    main()
