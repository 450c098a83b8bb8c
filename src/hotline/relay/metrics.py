"""The relay's Prometheus metrics (``GET /metrics``), one registry per relay.

Events (entries accepted and refused, limits hit, commit time) are counters and a
histogram the shell moves as they happen; states (log sizes, connections) are read
at scrape time by a collector. Labels are channels, parties, error codes and limit
names: nothing about a station's keys, nothing of any envelope. docs/OPERATIONS.md
lists every metric.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .core import RelayCore

# What generate_latest writes: the classic text format, which every Prometheus reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Seconds; a commit is one fsync'd transaction, milliseconds on a healthy disk.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Limit(StrEnum):
    """Which of the relay's limits cut something off (relay/limits.py)."""

    SLOW_READER = "slow_reader"  # a connection dropped: too much queued for it
    FRAME_RATE = "frame_rate"  # a frame refused: over the station's frame rate
    FLOOD = "flood"  # a connection closed: it kept sending over its frame rate
    UNAUTHENTICATED = "unauthenticated"  # a connection refused: too many handshakes
    CONNECTIONS_PER_STATION = "connections_per_station"  # a session refused


@dataclass(frozen=True)
class Live:
    """What the event loop knows at a scrape (the collector runs on the database thread)."""

    connections: Mapping[str, int] = field(default_factory=dict)  # authenticated, by party
    unauthenticated: int = 0
    stations_online: int = 0
    writer_queue: int = 0
    uptime_s: float = 0.0


class RelayMetrics:
    """Counters the shell moves, and the collector of what stands at a scrape."""

    def __init__(self, core: RelayCore) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        channels = list(core.roster.channels)
        self.accepted = Counter(
            "hotline_relay_entries_accepted",
            "Envelopes accepted and logged, by channel.",
            ["channel"],
            registry=r,
        )
        self.duplicates = Counter(
            "hotline_relay_entries_duplicate",
            "Envelopes posted again that were logged before (answered as before).",
            ["channel"],
            registry=r,
        )
        self.refused = Counter(
            "hotline_relay_entries_refused",
            "Envelopes refused, by reason (the error code answered).",
            ["reason"],
            registry=r,
        )
        self.commit_seconds = Histogram(
            "hotline_relay_commit_seconds",
            "Time to check, log and commit one batch of posted envelopes.",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.limited = Counter(
            "hotline_relay_limited",
            "Frames, connections or sessions cut off by a limit, by limit.",
            ["limit"],
            registry=r,
        )
        self.http_rate_limited = Counter(
            "hotline_relay_http_rate_limited",
            "HTTP requests answered 429 (over the per-address rate).",
            registry=r,
        )
        for channel in channels:  # zero from the start, so rates need no first event
            self.accepted.labels(channel)
            self.duplicates.labels(channel)
        for limit in Limit:
            self.limited.labels(limit.value)
        self.state = RelayState(core)
        r.register(self.state)

    def limit(self, which: Limit) -> None:
        self.limited.labels(which.value).inc()

    def render(self, live: Live) -> bytes:
        """The text exposition; on the database thread (the collector reads the store)."""
        self.state.live = live
        return generate_latest(self.registry)


class RelayState:
    """A collector: log sizes and connections, read at each scrape."""

    def __init__(self, core: RelayCore) -> None:
        self.core = core
        self.live = Live()

    def collect(self) -> Iterable[Metric]:
        core, live = self.core, self.live
        sizes = GaugeMetricFamily(
            "hotline_relay_log_entries", "Entries in the channel's log.", labels=["channel"]
        )
        for channel in core.roster.channels:
            sizes.add_metric([channel], core.size(channel))
        connections = GaugeMetricFamily(
            "hotline_relay_connections",
            "Authenticated station connections, by party.",
            labels=["party"],
        )
        for party in sorted(set(core.roster.parties) | set(live.connections)):
            connections.add_metric([party], live.connections.get(party, 0))
        return [
            sizes,
            connections,
            GaugeMetricFamily(
                "hotline_relay_connections_unauthenticated",
                "Connections still in the handshake.",
                value=live.unauthenticated,
            ),
            GaugeMetricFamily(
                "hotline_relay_stations_online",
                "Stations with at least one authenticated connection.",
                value=live.stations_online,
            ),
            GaugeMetricFamily(
                "hotline_relay_writer_queue",
                "Posted envelopes waiting for the writer.",
                value=live.writer_queue,
            ),
            GaugeMetricFamily(
                "hotline_relay_uptime_seconds", "Seconds since the relay started.", live.uptime_s
            ),
        ]
