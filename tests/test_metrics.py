"""What operators collect: Prometheus metrics of the relay and of a station, and JSON log
lines. Metrics parse with Prometheus's own parser and move with traffic."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from hotline import body
from hotline.deadlines import Pending
from hotline.envelope import Precedence
from hotline.frames import LinkTest
from hotline.link import make
from hotline.logs import JsonFormatter
from hotline.relay.app import Relay
from hotline.relay.core import RelayCore
from hotline.relay.limits import Limits
from hotline.relay.sqlite import SqliteRelayStore
from hotline.station.alarms import Alarm, AlarmKind
from hotline.station.core import StationCore
from hotline.station.metrics import StationMetrics
from hotline.station.service import RelayLink
from hotline.station.store import StationStore

from .conftest import World
from .netutil import Cluster, wait_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


# --- in process --------------------------------------------------------------------------


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_the_station_collector_shows_outbox_acks_alarms_and_links(
    world: World, tmp_path: Path
) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 600), Clock(100.0)
    core = StationCore(
        StationStore(tmp_path / "us.db"),
        world.stations["us"],
        world.certs["us"],
        world.roster,
        clock=wall,
        monotonic=mono,
    )
    core.add_statements([c.encode() for c in world.certs.values()], [])
    link = RelayLink()
    metrics = StationMetrics(core, link)
    before = parse(metrics.render().decode())
    assert value(before, "hotline_station_outbox", state="queued") == 0
    assert value(before, "hotline_station_acks_pending", precedence="FLASH") == 0
    assert value(before, "hotline_station_link_state", channel="us-ru", party="ru", state="unknown")
    assert value(before, "hotline_station_relay_connected") == 0

    core.send("us-ru", body.text("one", "en"), precedence=Precedence.FLASH)
    core.send("us-ru-ua", body.text("two", "en"))
    now = core.now_ms()
    with core.store.transaction():
        # A FLASH logged ten minutes ago is long overdue; a ROUTINE one just logged is not.
        core.store.await_ack(Pending("us-ru", 0, "ru", "FLASH", now - 600_000, 300, 0), now)
        core.store.await_ack(Pending("us-ru-ua", 0, "ua", "ROUTINE", now, 3600, 0), now + 1)
    core.alarm(Alarm(AlarmKind.FORK, "a fork", channel="us-ru"))
    ping = LinkTest.from_dict(make("ping", world.stations["ru"], "us-ru", core.now_ms()))
    core.on_link(ping)
    core.link_changes()
    link.connected, link.attempts, link.rtt_ms = True, 3, 12.0

    after = parse(metrics.render().decode())
    assert value(after, "hotline_station_outbox", state="queued") == 2
    assert value(after, "hotline_station_acks_pending", precedence="FLASH") == 1
    assert value(after, "hotline_station_acks_overdue", precedence="FLASH") == 1
    assert value(after, "hotline_station_acks_pending", precedence="ROUTINE") == 1
    assert value(after, "hotline_station_acks_overdue", precedence="ROUTINE") == 0
    assert value(after, "hotline_station_alarms_open", kind="fork") == 1
    assert value(after, "hotline_station_alarms_open", kind="flash") == 0
    assert value(after, "hotline_station_link_state", channel="us-ru", party="ru", state="up") == 1
    assert (
        value(after, "hotline_station_link_state", channel="us-ru", party="ru", state="down") == 0
    )
    assert value(after, "hotline_station_relay_connected") == 1
    assert value(after, "hotline_station_relay_connect_attempts_total") == 3
    assert value(after, "hotline_station_relay_rtt_seconds") == pytest.approx(0.012)
    core.store.close()


def test_two_relays_in_one_process_keep_their_own_metrics(world: World, tmp_path: Path) -> None:
    now = world.certs["us"].not_before + 3600
    relays = [
        Relay(
            RelayCore(
                SqliteRelayStore(tmp_path / f"{n}.db"), world.roster, world.relay, lambda: now
            ),
            limits=Limits(http_rate=20.0, http_burst=3.0),
        )
        for n in ("a", "b")
    ]
    with TestClient(relays[0].app()) as a, TestClient(relays[1].app()) as b:
        codes = [a.get("/health").status_code for _ in range(6)]
        assert 429 in codes
        time.sleep(0.2)  # the address's bucket refills
        seen_a = parse(a.get("/metrics").text)
        seen_b = parse(b.get("/metrics").text)
    assert value(seen_a, "hotline_relay_http_rate_limited_total") == codes.count(429)
    assert value(seen_b, "hotline_relay_http_rate_limited_total") == 0
    assert value(seen_a, "hotline_relay_log_entries", channel="us-ru") == 0
    assert value(seen_a, "hotline_relay_connections", party="us") == 0
    assert value(seen_a, "hotline_relay_entries_accepted_total", channel="us-ru") == 0


def test_a_json_log_line_has_time_level_logger_message_and_extra_fields() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("hotline.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("station %s is slow", "us/us-1", extra={"queued": 12})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "station us/us-1 is slow" and first["queued"] == 12
    assert first["level"] == "WARNING" and first["logger"] == "hotline.test.json"
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert "ValueError: boom" in second["exception"]


# --- real processes -------------------------------------------------------------------------


def _relay_metrics(c: Cluster) -> Samples:
    resp = httpx.get(f"http://127.0.0.1:{c.net.relay_port}/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    return parse(resp.text)


def _station_metrics(c: Cluster, ident: str) -> Samples:
    resp = c.api(ident).get("/metrics")
    assert resp.status_code == 200
    return parse(resp.text)


SECRET = "the convoy moves at dawn"


@pytest.mark.network
def test_metrics_of_a_real_relay_and_station_move_with_traffic(
    tmp_path: Path, relay_database: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = Cluster(
        tmp_path,
        stations={"us": ["us-1"], "ru": ["ru-1"]},
        relay_args=("--log-format", "json"),
        database=relay_database,
    )
    try:
        c.start_relay()
        monkeypatch.setenv("HOTLINE_LOG_FORMAT", "json")  # the stations: by environment
        for ident in c.stations:
            c.start_station(ident)
        c.wait_ready()
        _check_metrics(c)
    finally:
        c.close()
    _check_json_logs(c)


def _check_metrics(c: Cluster) -> None:
    us_url = f"http://127.0.0.1:{c.net.api_ports['us/us-1']}/metrics"
    assert httpx.get(us_url).status_code == 401  # the API token, as everywhere
    relay0, us0 = _relay_metrics(c), _station_metrics(c, "us/us-1")
    assert value(relay0, "hotline_relay_stations_online") == 2
    assert value(relay0, "hotline_relay_connections", party="us") == 1
    assert value(us0, "hotline_station_relay_connected") == 1
    assert value(us0, "hotline_station_relay_sessions_total") == 1
    accepted0 = value(relay0, "hotline_relay_entries_accepted_total", channel="us-ru")

    sent = 5
    for n in range(sent):
        c.send("us/us-1", "us-ru", f"{SECRET} {n}", "FLASH")
    wait_for(lambda: len(c.inbox("ru/ru-1", "us-ru")) == sent, what="ru inbox")
    c.settle(quiet=1.0)
    relay1, us1 = _relay_metrics(c), _station_metrics(c, "us/us-1")
    ru1 = _station_metrics(c, "ru/ru-1")
    assert value(relay1, "hotline_relay_entries_accepted_total", channel="us-ru") >= (
        accepted0 + sent
    )
    assert value(relay1, "hotline_relay_log_entries", channel="us-ru") >= sent
    assert value(relay1, "hotline_relay_commit_seconds_count") >= 1
    assert value(us1, "hotline_station_outbox", state="queued") == 0
    assert value(us1, "hotline_station_outbox", state="accepted") >= sent
    assert value(us1, "hotline_station_acks_pending", precedence="FLASH") == sent
    assert value(ru1, "hotline_station_entries_ingested_total", channel="us-ru") >= sent
    assert value(ru1, "hotline_station_ingest_seconds_count") >= 1
    assert value(ru1, "hotline_station_alarms_open", kind="flash") >= 1

    # One acknowledged: one fewer awaited at the sender.
    first = min(m["index"] for m in c.inbox("ru/ru-1", "us-ru"))
    c.client("ru/ru-1").ack("us-ru", first, "duty officer")
    wait_for(
        lambda: (
            value(
                _station_metrics(c, "us/us-1"), "hotline_station_acks_pending", precedence="FLASH"
            )
            == sent - 1
        ),
        what="acknowledgment seen at us",
    )
    wait_for(
        lambda: (
            value(
                _station_metrics(c, "us/us-1"),
                "hotline_station_link_state",
                channel="us-ru",
                party="ru",
                state="up",
            )
            == 1
        ),
        what="ru up at us",
    )

    # Relay down: queued messages and the link show it; back up: a reconnect is counted.
    c.relay.stop()
    wait_for(
        lambda: value(_station_metrics(c, "us/us-1"), "hotline_station_relay_connected") == 0,
        what="us sees the relay down",
    )
    for n in range(3):
        c.client("us/us-1").send("us-ru", text=f"queued {n}")
    assert value(_station_metrics(c, "us/us-1"), "hotline_station_outbox", state="queued") == 3
    c.start_relay()
    c.wait_ready()
    wait_for(
        lambda: (
            value(_station_metrics(c, "us/us-1"), "hotline_station_outbox", state="queued") == 0
        ),
        what="the queue drained",
    )
    assert value(_station_metrics(c, "us/us-1"), "hotline_station_relay_sessions_total") >= 2


def _check_json_logs(c: Cluster) -> None:
    for log in [c.relay.log, *(p.log for p in c.stations.values())]:
        text = Path(log).read_text()
        assert SECRET not in text  # never a body
        records: list[dict[str, Any]] = [
            json.loads(line) for line in text.splitlines() if line.startswith("{")
        ]
        assert records, f"no JSON lines in {log}"
        for record in records:
            assert {"time", "level", "logger", "message"} <= set(record)
    lines = Path(c.relay.log).read_text().splitlines()
    relay_messages = [json.loads(x)["message"] for x in lines if x.startswith("{")]
    assert "station us/us-1 authenticated" in relay_messages
