"""The relay never sends a station a frame over the stations' frame limit."""

from __future__ import annotations

import os

from hotline import frames
from hotline.relay.storage import StoredEntry


def test_entries_are_split_into_frames_under_the_limit() -> None:
    entries = [
        StoredEntry("c", i, os.urandom(60_000 + i), os.urandom(32), "s", i + 1, 0)
        for i in range(40)
    ]
    chunks = list(frames.fitting(entries))
    assert [e for c in chunks for e in c] == entries  # all of them, in order
    for chunk in chunks:
        body = frames.encode_frame(
            frames.Entries(
                None,
                "c",
                chunk[0].index,
                tuple(frames.Entry(e.index, e.envelope, 0) for e in chunk),
                b"x" * 400,
                (os.urandom(32),) * 40,
                False,
            )
        )
        assert len(body) <= frames.MAX_FRAME
        decoded = frames.decode_relay_frame(body)
        assert isinstance(decoded, frames.Entries)
        assert decoded.entries[-1].index == chunk[-1].index
