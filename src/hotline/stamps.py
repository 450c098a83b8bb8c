"""Stage timestamps along a message's path, for bench/bench_latency.py.

Off unless the environment variable ``HOTLINE_STAMPS`` names a directory when the
process starts; then every stage a message passes (API accepted, outbox committed,
frame sent, relay received, ...) appends one line ``STAGE WHERE HASH WALL_NS`` to
``DIR/stamps-PID.txt`` (``WHERE``: the station's name, or ``relay``). A message is
named by the first 16 hex digits of its envelope hash, which the relay sees anyway: no
body, key or plaintext is ever written. Wall-clock nanoseconds, so stamps of the relay
and stations (processes on one machine) line up.
When off, ``stamp`` is one attribute test.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import threading
import time
from collections.abc import Iterable
from typing import TextIO

ENV = "HOTLINE_STAMPS"


class _Stamps:
    """The lines are kept in memory and written out every ``FLUSH_S`` by a daemon thread
    and when the process ends (a write per stamp cost the measured processes a system
    call each, a few per cent of their CPU: the bench measured its own pen)."""

    FLUSH_S = 0.2

    def __init__(self) -> None:
        self.on = bool(os.environ.get(ENV))
        self._out: TextIO | None = None
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def _file(self) -> TextIO:
        if self._out is None:
            directory = os.environ[ENV]
            self._out = open(  # noqa: SIM115 - kept open for the process's life
                os.path.join(directory, f"stamps-{os.getpid()}.txt"), "a"
            )
            atexit.register(self.flush)
            threading.Thread(target=self._flush_often, name="stamps", daemon=True).start()
        return self._out

    def write(self, stage: str, where: str, digests: Iterable[bytes], at_ns: int | None) -> None:
        t = time.time_ns() if at_ns is None else at_ns
        lines = [f"{stage} {where} {d.hex()[:16]} {t}\n" for d in digests]
        with self._lock:
            self._file()
            self._lines += lines

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            if self._out is not None and lines:
                self._out.write("".join(lines))
                self._out.flush()

    def _flush_often(self) -> None:
        while True:
            time.sleep(self.FLUSH_S)
            self.flush()


_STAMPS = _Stamps()


def enabled() -> bool:
    return _STAMPS.on


def stamp(stage: str, where: str, digest: bytes, at_ns: int | None = None) -> None:
    """Record that the envelope with hash ``digest`` reached ``stage`` at ``where``
    (now, or at ``at_ns``)."""
    if _STAMPS.on:
        _STAMPS.write(stage, where, (digest,), at_ns)


def stamp_raw(stage: str, where: str, envelopes: Iterable[bytes]) -> None:
    """``stamp`` for envelopes given as bytes (hashed only when stamping is on)."""
    if _STAMPS.on:
        _STAMPS.write(stage, where, (hashlib.sha256(raw).digest() for raw in envelopes), None)


def now_ns() -> int:
    return time.time_ns()
