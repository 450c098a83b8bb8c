"""Coverage-guided fuzzing of every decoder of outside bytes (atheris / libFuzzer).

    .venv/bin/pip install atheris          # not a test requirement
    .venv/bin/python fuzz/atheris_decoders.py -max_total_time=600

Each input picks a decoder (first byte) and either feeds it the rest as is, or (second
byte odd) reads the rest as edits to that decoder's valid seed, so the search starts deep
inside every format. A typed value or a HotlineError is fine; any other exception is a
crash: libFuzzer stops, prints the traceback and writes the input to crash-<sha1>.
The targets and seeds are tests/fuzz_targets.py, the same the test suite fuzzes.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.setrecursionlimit(1000)  # the default: a decoder must not depend on more

with atheris.instrument_imports():
    import hotline  # noqa: F401  (instrumented for coverage)
    from hotline import body, envelope, frames, keys, notes, roster, transcript, wire  # noqa: F401
    from hotline.errors import HotlineError
    from hotline.forms import validate  # noqa: F401

from tests.fuzz_targets import mutate, seed_for, targets  # noqa: E402

TARGETS = targets()
NAMES = sorted(TARGETS)
SEEDS = {name: seed_for(name) for name in NAMES}


def edits(data: bytes) -> list[tuple[int, int, int]]:
    """Every 4 bytes: op, a 16-bit position, a byte."""
    return [
        (data[i] % 4, int.from_bytes(data[i + 1 : i + 3], "big"), data[i + 3])
        for i in range(0, len(data) - 3, 4)
    ]


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    name = NAMES[data[0] % len(NAMES)]
    payload = mutate(SEEDS[name], edits(data[2:])) if data[1] % 2 else data[2:]
    with contextlib.suppress(HotlineError):
        TARGETS[name](payload)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
