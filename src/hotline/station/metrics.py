"""The station's Prometheus metrics (``GET /metrics`` on the local API), one registry
per station.

What stands (outbox, acknowledgments awaited, alarms, link boards, the relay link)
is read at scrape time by ``StationCollector`` from the core, on the database thread
that owns it; what happens (sessions, ingests) is counted by the shell. The endpoint
takes the API token like every other route of the local API. Labels are channels,
parties, states and kinds: nothing of any message. docs/OPERATIONS.md lists them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import stamps
from ..envelope import Precedence
from ..frames import Entries
from ..link import LinkState
from .alarms import AlarmKind
from .core import Ingested, StationCore
from .store import AckCounts, OutboxState

if TYPE_CHECKING:
    from .api import StationAPI
    from .service import RelayLink

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Seconds to verify and store one frame of entries (up to a thousand, with proofs).
INGEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class StationMetrics:
    """The registry: counters the shell moves, and the collector of what stands."""

    def __init__(self, core: StationCore, link: RelayLink) -> None:
        self.core = core
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions = Counter(
            "hotline_station_relay_sessions",
            "Sessions with the relay begun (welcomed); every one after the first is a reconnect.",
            registry=r,
        )
        self.ingest_seconds = Histogram(
            "hotline_station_ingest_seconds",
            "Time to verify and commit one frame of entries from the relay.",
            buckets=INGEST_BUCKETS,
            registry=r,
        )
        self.ingested = Counter(
            "hotline_station_entries_ingested",
            "Entries verified and taken into the channel's log copy.",
            ["channel"],
            registry=r,
        )
        self.refused = Counter(
            "hotline_station_entries_refused",
            "Entries past our cursor that a frame carried and the station did not take "
            "(a check failed: see the alarms).",
            ["channel"],
            registry=r,
        )
        for channel in core.channels:
            self.ingested.labels(channel)
            self.refused.labels(channel)
        r.register(StationCollector(core, link))

    def ingest(self, frame: Entries, receipts: bool = True, relay: str | None = None) -> Ingested:
        """``core.on_entries``, timed and counted (on the database thread)."""
        channel = frame.channel
        known = channel in self.core.channels
        before = self.core.size(channel, relay) if known else 0
        started = time.perf_counter()
        stamps.stamp_raw("ingest_started", self.core.ident, (e.envelope for e in frame.entries))
        result = self.core.on_entries(frame, receipts, relay)
        self.ingest_seconds.observe(time.perf_counter() - started)
        if not known:
            return result
        taken = max(0, self.core.size(channel, relay) - before)
        offered = max(0, frame.start + len(frame.entries) - before)
        self.ingested.labels(channel).inc(taken)
        if result.need_sync_from is None and offered > taken:
            self.refused.labels(channel).inc(offered - taken)
        return result

    def render(self) -> bytes:
        """The text exposition; on the database thread (the collector reads the store)."""
        return generate_latest(self.registry)


class StationCollector:
    """Gauges read from the core at each scrape. Call only where the core may be used
    (the station's database thread)."""

    def __init__(self, core: StationCore, link: RelayLink) -> None:
        self.core = core
        self.link = link

    def collect(self) -> Iterable[Metric]:
        core, store, now_ms = self.core, self.core.store, self.core.now_ms()
        log = GaugeMetricFamily(
            "hotline_station_log_entries",
            "Entries of the channel's log this station holds (its cursor).",
            labels=["channel"],
        )
        for channel in core.channels:
            log.add_metric([channel], core.size(channel))
        outbox = GaugeMetricFamily(
            "hotline_station_outbox", "Outbox items, by state.", labels=["state"]
        )
        counts = store.outbox_counts()
        for state in OutboxState:
            outbox.add_metric([state.value], counts.get(state, 0))
        pending = GaugeMetricFamily(
            "hotline_station_acks_pending",
            "Acknowledgments awaited from other parties (one per message and party), "
            "by precedence.",
            labels=["precedence"],
        )
        overdue = GaugeMetricFamily(
            "hotline_station_acks_overdue",
            "Acknowledgments awaited past their deadline, by precedence.",
            labels=["precedence"],
        )
        acks = store.ack_counts(now_ms)
        for precedence in Precedence:
            count = acks.get(precedence, AckCounts(0, 0))
            pending.add_metric([precedence.name], count.pending)
            overdue.add_metric([precedence.name], count.overdue)
        alarms = GaugeMetricFamily(
            "hotline_station_alarms_open", "Alarms not cleared, by kind.", labels=["kind"]
        )
        open_alarms = store.open_alarm_counts()
        for kind in AlarmKind:
            alarms.add_metric([kind.value], open_alarms.get(kind, 0))
        states = GaugeMetricFamily(
            "hotline_station_link_state",
            "1 for the state each other party's link is in, per channel; 0 for the others.",
            labels=["channel", "party", "state"],
        )
        rtt = GaugeMetricFamily(
            "hotline_station_link_rtt_seconds",
            "Last link-test round trip to the party, per channel (once measured).",
            labels=["channel", "party"],
        )
        for channel, board in sorted(core.boards.items()):
            for party, link in sorted(board.links.items()):
                for value in LinkState:
                    states.add_metric([channel, party, value.value], int(link.state == value))
                if link.rtt_ms is not None:
                    rtt.add_metric([channel, party], link.rtt_ms / 1000)
        yield from (log, outbox, pending, overdue, alarms, states, rtt)
        if core.path_boards:
            yield self._paths()
        yield from self._relay()

    def _paths(self) -> Metric:
        """With several relays: each party's link through each relay."""
        paths = GaugeMetricFamily(
            "hotline_station_link_path_state",
            "1 for the state each other party's link through one relay is in, per channel; "
            "0 for the others.",
            labels=["channel", "party", "relay", "state"],
        )
        for relay, by_channel in sorted(self.core.path_boards.items()):
            for channel, board in sorted(by_channel.items()):
                for party, link in sorted(board.links.items()):
                    for value in LinkState:
                        paths.add_metric(
                            [channel, party, relay, value.value], int(link.state == value)
                        )
        return paths

    def _relay(self) -> Iterable[Metric]:
        link = self.link
        yield GaugeMetricFamily(
            "hotline_station_relay_connected",
            "1 while the station is connected to the relay (handshake done), else 0.",
            value=int(link.connected),
        )
        yield CounterMetricFamily(
            "hotline_station_relay_connect_attempts",
            "Connections to the relay tried since the station started.",
            value=link.attempts,
        )
        if link.rtt_ms is not None:
            yield GaugeMetricFamily(
                "hotline_station_relay_rtt_seconds",
                "Last keepalive round trip to the relay.",
                value=link.rtt_ms / 1000,
            )


def metrics_route(api: StationAPI) -> Route:
    """``GET /metrics``, behind the API token like every route of the local API."""

    async def endpoint(request: Request) -> Response:
        api.check(request)
        text = await api.service.run_db(api.service.metrics.render)
        return Response(text, media_type=CONTENT_TYPE)

    return Route("/metrics", endpoint)
