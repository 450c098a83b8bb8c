"""Any bytes into any decoder give a typed value or a HotlineError, never another exception.

Each decoder gets random bytes and mutations of a valid encoding (flipped, inserted,
deleted and overwritten bytes), so the fuzzing reaches past the first checks. The budget
is sized for about a minute of the suite on a busy 2-core machine; fuzz/ runs the same
targets for as long as one likes (bench/README.md).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline import transcript
from hotline.errors import HotlineError, WrongPassphrase

from .fuzz_targets import mutate, seed_for, targets

# HOTLINE_FUZZ_SCALE=10 runs ten times as many examples (a longer run outside CI).
SCALE = float(os.environ.get("HOTLINE_FUZZ_SCALE", "1"))
OWNED = [name for name in targets() if name not in ("body", "relay_frame", "station_frame")]
SLOW = {"transcript": 4, "roster": 2, "envelope_open": 2}  # examples cost that many times more

edits = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 1 << 20), st.integers(0, 255)),
    min_size=1,
    max_size=6,
)


def _decode(name: str, data: bytes) -> None:
    with contextlib.suppress(HotlineError):
        targets()[name](data)


@pytest.mark.parametrize("name", [n for n in OWNED if n != "key_file_wrong"])
def test_the_valid_seed_decodes(name: str) -> None:
    targets()[name](seed_for(name))


def test_a_key_file_with_the_wrong_passphrase_is_wrong_passphrase() -> None:
    with pytest.raises(WrongPassphrase):
        targets()["key_file_wrong"](seed_for("key_file"))


@pytest.mark.parametrize("name", OWNED)
def test_any_bytes_give_a_value_or_a_hotline_error(name: str) -> None:
    @settings(max_examples=int(SCALE * 400) // SLOW.get(name, 1))
    @given(st.binary(max_size=400))
    def run(data: bytes) -> None:
        _decode(name, data)

    run()


@pytest.mark.parametrize("name", OWNED)
def test_a_mutated_valid_input_gives_a_value_or_a_hotline_error(name: str) -> None:
    seed = seed_for(name)

    @settings(max_examples=int(SCALE * 800) // SLOW.get(name, 1))
    @given(edits)
    def run(changes: list[tuple[int, int, int]]) -> None:
        _decode(name, mutate(seed, changes))

    run()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["", "AAAA", "\ud800", "us-ru", "00" * 32]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


TRANSCRIPT = json.loads(seed_for("transcript"))
TRANSCRIPT_PATHS = _paths(TRANSCRIPT)[1:]


@settings(max_examples=int(SCALE * 300))
@given(st.lists(st.tuples(st.sampled_from(TRANSCRIPT_PATHS), json_values), max_size=3))
def test_a_transcript_with_any_value_anywhere_gives_a_report(
    changes: list[tuple[tuple[Any, ...], Any]],
) -> None:
    doc = copy.deepcopy(TRANSCRIPT)
    for path, value in changes:
        node = doc
        with contextlib.suppress(KeyError, IndexError, TypeError):
            for step in path[:-1]:
                node = node[step]
            node[path[-1]] = value
    with contextlib.suppress(HotlineError):
        report = transcript.verify(doc)
        assert isinstance(report, transcript.Report)
