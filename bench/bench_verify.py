"""Offline verification speed: a synthetic 100,000-message transcript, verified."""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hotline.cli import render
from hotline.envelope import ZERO_HASH, envelope_hash, seal
from hotline.frames import Entry
from hotline.leaf import LeafKind, leaf_data
from hotline.merkle import MerkleTree
from hotline.notes import Checkpoint, sign_checkpoint
from hotline.parallel_verify import default_workers
from hotline.transcript import FORMAT, verify
from tests.conftest import make_world


def build(n: int, every: int) -> dict[str, object]:
    world = make_world()
    t0 = world.certs["us"].not_before * 1000 + 3_600_000
    certs = [world.certs["us"], world.certs["ru"]]
    body = os.urandom(512)
    entries, checkpoints = [], []
    tree = MerkleTree()
    for cert in certs:  # the key events that open the log: the stations' certificates
        index = tree.append(leaf_data(t0 - 1, cert.encode(), LeafKind.KEY_EVENT))
        entries.append(Entry(index, cert.encode(), t0 - 1, LeafKind.KEY_EVENT).wire())
    prev = {"us": ZERO_HASH, "ru": ZERO_HASH}
    seq = {"us": 0, "ru": 0}
    for i in range(n):
        party = "us" if i % 3 else "ru"
        seq[party] += 1
        raw = seal(
            body,
            sender=world.stations[party],
            channel="us-ru",
            seq=seq[party],
            prev=prev[party],
            recipients=certs,
            created_ms=t0 + i,
        )
        prev[party] = envelope_hash(raw)
        index = tree.append(leaf_data(t0 + i, raw))
        entries.append(Entry(index, raw, t0 + i).wire())
        if (i + 1) % every == 0 or i == n - 1:
            at = f"time {t0 + i}"
            cp = Checkpoint(world.roster.origin("us-ru"), tree.size, tree.root(), (at,))
            checkpoints.append(sign_checkpoint(cp, world.relay).encode().decode())
    return {
        "format": FORMAT,
        "channel": "us-ru",
        "exported_by": "us/us-1",
        "exported_ms": 0,
        "roster": world.roster.encode().decode(),
        "entries": entries,
        "checkpoints": checkpoints,
        "consistency": [],
        "bodies": [],
    }


def cpu() -> tuple[float, float]:
    """CPU seconds used so far by this process and by its finished children."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument(
        "--workers", type=int, default=default_workers(), help="processes (default: every core)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="alternate 1 and N workers this often"
    )
    args = parser.parse_args()
    print(
        f"# verify benchmark, {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    t = time.perf_counter()
    doc = build(args.messages, 1000)
    built = time.perf_counter() - t
    print(f"built {args.messages:,} sealed messages in {built:.1f} s\n")
    print(
        "| workers | seconds | entries/s | speed-up | CPU s (main + workers) |\n"
        "|---:|---:|---:|---:|---:|"
    )
    serial = None
    runs = [1, *(w for w in sorted({2, args.workers}) if w > 1)]
    for workers in runs * args.repeat:
        before = cpu()
        t = time.perf_counter()
        report = verify(doc, workers=workers)
        took = time.perf_counter() - t
        used = [a - b for a, b in zip(cpu(), before, strict=True)]
        assert report.ok, report.failures[:3]
        if workers == 1:
            serial = took
            rendered = render.verify_report(report, True)
        else:
            assert render.verify_report(report, True) == rendered, "reports differ"
        print(
            f"| {workers} | {took:.1f} | {args.messages / took:,.0f} | "
            f"{(serial or took) / took:.2f}x | {used[0]:.1f} + {used[1]:.1f} |"
        )
    print(f"\n({report.checkpoints} checkpoints; the reports of every run are identical)")


if __name__ == "__main__":
    main()
