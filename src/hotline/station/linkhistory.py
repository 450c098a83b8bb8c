"""Link history: the last 24 hours of each party's link, per channel, as samples.

With several relays each party has samples of its link (through any relay, ``relay``
None) and of its path through each relay (``relay`` that relay's name).

A sample is written when a party's state changes, when one of its stations answers a
link test (with the round-trip time), and at least every ``HEARTBEAT_MS`` otherwise,
so that a stretch with no sample (this station was stopped) shows as no data rather
than as the last state known. ``bands`` and ``chart`` are pure: samples in, shapes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HOUR_MS = 3_600_000
SPAN_MS = 24 * HOUR_MS
HEARTBEAT_MS = 60_000
# A state holds from its sample until the next one, or this long at most (no data after).
HOLD_MS = 3 * HEARTBEAT_MS
KEEP_MS = SPAN_MS + HOUR_MS  # older samples are deleted


@dataclass(frozen=True)
class LinkSample:
    channel: str
    party: str
    at_ms: int
    state: str  # a LinkState value
    rtt_ms: float | None = None
    station: str | None = None  # the party's station that answered, if one did
    relay: str | None = None  # the path through this relay (None: the party, any path)


@dataclass(frozen=True)
class Band:
    start_ms: int
    end_ms: int
    state: str


def bands(samples: Sequence[LinkSample], start_ms: int, end_ms: int) -> list[Band]:
    """The state over [start, end] as bands (samples in time order); gaps are no data."""
    out: list[Band] = []
    ordered = sorted(samples, key=lambda s: s.at_ms)
    for i, s in enumerate(ordered):
        until = s.at_ms + HOLD_MS
        if i + 1 < len(ordered):
            until = min(until, ordered[i + 1].at_ms)
        lo, hi = max(s.at_ms, start_ms), min(until, end_ms)
        if hi <= lo:
            continue
        if out and out[-1].state == s.state and out[-1].end_ms == lo:
            out[-1] = Band(out[-1].start_ms, hi, s.state)
        else:
            out.append(Band(lo, hi, s.state))
    return out


@dataclass(frozen=True)
class Chart:
    """A chart's shapes in its own units: x in 0..WIDTH across the 24 hours."""

    bands: list[tuple[float, float, Band]]  # x, width, band
    points: list[tuple[float, float, LinkSample]]  # x, y, sample with a round-trip time
    max_rtt_ms: float
    ticks: list[tuple[float, int]]  # x, hours before the end


WIDTH = 720.0
BAND_H = 16.0
PLOT_TOP, PLOT_H = 24.0, 48.0
MIN_BAND = 1.0


def chart(samples: Sequence[LinkSample], end_ms: int) -> Chart:
    start_ms = end_ms - SPAN_MS

    def x(ms: int) -> float:
        return round((ms - start_ms) / SPAN_MS * WIDTH, 2)

    # A band is drawn at least one unit wide: a minute of "down" stays visible.
    shown = [
        (x(b.start_ms), max(MIN_BAND, round(x(b.end_ms) - x(b.start_ms), 2)), b)
        for b in bands(samples, start_ms, end_ms)
    ]
    timed = [s for s in samples if s.rtt_ms is not None and start_ms <= s.at_ms <= end_ms]
    top = max((s.rtt_ms or 0.0 for s in timed), default=0.0)
    scale = top if top > 0 else 1.0
    points = [
        (x(s.at_ms), round(PLOT_TOP + PLOT_H - (s.rtt_ms or 0.0) / scale * PLOT_H, 2), s)
        for s in timed
    ]
    ticks = [(x(end_ms - h * HOUR_MS), h) for h in (24, 18, 12, 6, 0)]
    return Chart(shown, points, top, ticks)
