"""The relay never sends a station a frame over the stations' frame limit."""

from __future__ import annotations

import os

from hotline import frames
from hotline.notes import b64
from hotline.relay.app import fitting
from hotline.relay.storage import StoredEntry


def test_entries_are_split_into_frames_under_the_limit() -> None:
    entries = [
        StoredEntry("c", i, os.urandom(60_000 + i), os.urandom(32), "s", i + 1, 0)
        for i in range(40)
    ]
    chunks = list(fitting(entries))
    assert [e for c in chunks for e in c] == entries  # all of them, in order
    for chunk in chunks:
        body = frames.encode(
            "entries",
            id=None,
            channel="c",
            start=chunk[0].index,
            entries=[{"index": e.index, "envelope": b64(e.envelope), "relay_ms": 0} for e in chunk],
            checkpoint="x" * 400,
            consistency=["y" * 44] * 40,
            more=False,
        )
        assert len(body) <= frames.MAX_FRAME
