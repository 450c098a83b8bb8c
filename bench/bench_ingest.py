"""CPU per ingested entry at a station (issue 15): messages and delivered receipts (v2
envelopes) fed to a StationCore in-process one entry per frame, as the service takes them
in when messages go one at a time. Prints CPU µs (process time, not wall time) per
ingested entry, split into messages and receipts.

    PYTHONPATH=src python -m bench.bench_ingest --messages 60 [--profile out.prof]

The log, checkpoints and frames are built before the clock starts; only
``StationCore.on_entries`` at the recipient (ru) is timed. Needs tests/ importable (run
from the repository root)."""

from __future__ import annotations

import argparse
import cProfile
import statistics
import tempfile
import time
from pathlib import Path

from hotline import body as body_mod
from hotline import hybrid
from hotline.envelope import Kind
from hotline.frames import Entries
from hotline.station.core import StationCore
from hotline.station.store import OutboxState
from tests.conftest import make_world
from tests.test_never_stall import CHANNEL, TestLog, _everyone


def _queued_receipts(st: StationCore) -> list[bytes]:
    items = [i for i in st.store.outbox(OutboxState.QUEUED) if i.kind == Kind.RECEIPT]
    for i in items:  # as if the relay accepted them
        st.store.mark_accepted(i.channel, i.seq, 0, 0)
    return [i.envelope for i in items]


def run(messages: int, profile: str | None) -> dict[str, float]:
    world = make_world()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        us, ru, ua = (_everyone(world, path, p) for p in ("us", "ru", "ua"))
        log = TestLog(world)
        for st in (us, ru, ua):
            st.on_entries(log.frame(st))
        prof = cProfile.Profile(time.process_time) if profile else None
        cpu: dict[str, list[float]] = {"message": [], "receipt": []}

        def ingest(st: StationCore, frame: Entries, what: str) -> None:
            if st is ru:  # ru stands for another process: it verifies what us and ua signed
                hybrid.forget_made()
            t = time.process_time_ns()
            if prof is not None and st is ru:
                prof.enable()
            st.on_entries(frame, receipts=False)  # as the service does
            if prof is not None and st is ru:
                prof.disable()
            if st is ru:
                cpu[what].append((time.process_time_ns() - t) / 1000 / len(frame.entries))

        for i in range(messages):
            log.add(us.send(CHANNEL, body_mod.text(f"message {i} " + "x" * 80, "en")).envelope)
            for st in (ru, ua, us):
                ingest(st, log.frame(st), "message")
            for st in (ru, ua):
                st.send_receipts()
            for raw in _queued_receipts(ru) + _queued_receipts(ua):
                log.add(raw)
                for st in (ru, ua, us):
                    ingest(st, log.frame(st), "receipt")
        for st in (us, ru, ua):
            st.store.close()
        if prof is not None and profile:
            prof.dump_stats(profile)
    every = cpu["message"] + cpu["receipt"]
    return {
        "entries": len(every),
        "message_us": statistics.median(cpu["message"]),
        "receipt_us": statistics.median(cpu["receipt"]),
        "entry_us": statistics.fmean(every),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=60)
    ap.add_argument("--profile", help="write the recipient's cProfile stats here")
    args = ap.parse_args()
    r = run(args.messages, args.profile)
    print(
        f"entries {r['entries']:.0f}  CPU µs per ingested entry: mean {r['entry_us']:.0f}"
        f"  message (median) {r['message_us']:.0f}  receipt (median) {r['receipt_us']:.0f}"
    )


if __name__ == "__main__":
    main()
