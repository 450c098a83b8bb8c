"""One station or one address cannot exhaust the relay: every queue, connection count,
handshake and unauthenticated request is bounded, and the others keep being served."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from hotline import body, frames
from hotline.envelope import ZERO_HASH, envelope_hash, seal
from hotline.errors import Malformed
from hotline.home import load_roster, load_station
from hotline.relay.limits import Limits, RateLimiter

from .netutil import PASSPHRASE, Cluster, answer_challenge, login, wait_for

MIB = 1024 * 1024


def with_limits(c: Cluster, **limits: Any) -> Cluster:
    """Set the relay's ``[limits]`` in relay.toml, as an operator would."""
    lines = "".join(f"{k} = {v}\n" for k, v in limits.items())
    with (c.net.relay_dir / "relay.toml").open("a") as f:
        f.write("\n[limits]\n" + lines)
    return c


def relay_rss_mib(c: Cluster, field: str = "VmRSS") -> float:
    assert c.relay.p is not None
    status = Path(f"/proc/{c.relay.p.pid}/status").read_text()
    return int(next(x.split()[1] for x in status.splitlines() if x.startswith(field))) / 1024


def online(c: Cluster) -> set[str]:
    return set(httpx.get(f"http://127.0.0.1:{c.net.relay_port}/health").json()["stations_online"])


def error_code(frame: dict[str, Any]) -> str:
    assert frame["op"] == "error", frame
    return str(frame["error"]["code"])


# --- pure parts -------------------------------------------------------------------------------


def test_limits_come_from_settings_then_environment() -> None:
    limits = Limits.from_settings(
        {"send_queue_bytes": 1024, "handshake_timeout": 2},
        {"HOTLINE_RELAY_CONNECTIONS_PER_STATION": "7"},
    )
    assert limits == Limits(send_queue_bytes=1024, handshake_timeout=2.0, connections_per_station=7)
    assert Limits.from_settings({}, {}) == Limits()
    with pytest.raises(Malformed, match="unknown setting"):
        Limits.from_settings({"send_queue": 1}, {})
    with pytest.raises(Malformed, match="must be a number"):
        Limits.from_settings({"http_rate": "fast"}, {})
    with pytest.raises(Malformed, match="must be positive"):
        Limits.from_settings({"connections_per_station": 0}, {})


def test_rate_limiter_refuses_beyond_the_burst_and_remembers_few_addresses() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=3.0, max_keys=4, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.take("b")  # another address has its own bucket
    now[0] += 1.0
    assert limiter.take("a") and not limiter.take("a")
    for i in range(100):
        limiter.take(f"10.0.0.{i}")
    assert len(limiter) <= 4


# --- a station that never reads ----------------------------------------------------------------


def _fill(c: Cluster, ident: str, n: int) -> None:
    """``n`` envelopes of ~32 KiB from ``ident``, so that each sync answer is a full frame."""
    roster = load_roster(c.net.relay_dir / "roster.note")
    key, _ = load_station(c.net.stations[ident], PASSPHRASE, roster)
    certs = [load_station(d, PASSPHRASE, roster)[1] for d in c.net.stations.values()]
    text = body.encode(body.text("x" * (body.MAX_TEXT - 100), "ru"))
    with login(c, ident) as ws:
        prev = ZERO_HASH
        for seq in range(1, n + 1):
            raw = seal(
                text,
                sender=key,
                channel="us-ru",
                seq=seq,
                prev=prev,
                recipients=certs,
                created_ms=int(time.time() * 1000),
            )
            prev = envelope_hash(raw)
            ws.send(frames.encode_frame(frames.Post(raw, seq)))
            while True:
                frame = json.loads(ws.recv(timeout=10))
                if frame.get("id") == seq:
                    assert frame["op"] == "accepted", frame
                    break


@pytest.mark.network
def test_a_station_that_never_reads_is_dropped_and_others_keep_receiving(
    tmp_path: Path, relay_database: str | None
) -> None:
    c = Cluster(
        tmp_path,
        stations={"us": ["us-1"], "ru": ["ru-1", "ru-2"]},
        channels={"us-ru": {"members": ["us", "ru"]}},
        database=relay_database,
    )
    with_limits(c, send_queue_bytes=1 * MIB)
    try:
        c.start_relay()
        for ident in ("us/us-1", "ru/ru-1"):
            c.start_station(ident)
        c.wait_ready(["us/us-1", "ru/ru-1"])
        _fill(c, "ru/ru-2", 40)
        wait_for(lambda: len(c.inbox("us/us-1")) == 40, timeout=60, what="filler delivered")
        before = relay_rss_mib(c)

        # Ask for ~100 MiB of sync answers and never read one (the client stops reading
        # its socket once one frame is waiting).
        with connect(c.net.relay_url, max_size=None, max_queue=1) as ws:
            assert answer_challenge(c, ws, "ru/ru-2")["op"] == "welcome"
            try:
                for i in range(400):
                    ws.send(frames.encode_frame(frames.Sync("us-ru", 0, i)))
            except ConnectionClosed:
                pass  # dropped while still asking: as it should be
            wait_for(lambda: "ru/ru-2" not in online(c), timeout=20, what="slow reader dropped")
            assert relay_rss_mib(c, "VmHWM") - before < 40

            # The honest stations never noticed.
            c.send("us/us-1", "us-ru", "still here")
            wait_for(
                lambda: any(m["body"].get("text") == "still here" for m in c.inbox("ru/ru-1")),
                timeout=30,
                what="honest delivery beside a stalled station",
            )
    finally:
        c.close()


# --- connections, handshakes, HTTP -------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(
    tmp_path_factory: pytest.TempPathFactory, relay_database_module: str | None
) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("limits"), database=relay_database_module)
    with_limits(
        c,
        connections_per_station=2,
        unauthenticated_per_address=3,
        handshake_timeout=1.5,
        http_rate=5,
        http_burst=10,
        station_bytes_per_second=100_000,
        station_bytes_burst=300_000,
    )
    c.start_relay()  # no station processes: the tests connect as stations themselves
    yield c
    c.close()


@pytest.mark.network
def test_a_station_gets_a_bounded_number_of_connections(limited: Cluster) -> None:
    with login(limited, "us/us-1"), login(limited, "us/us-1"):
        with connect(limited.net.relay_url) as third:
            assert error_code(answer_challenge(limited, third, "us/us-1")) == "rate_limited"
            with pytest.raises(ConnectionClosed):
                third.recv(timeout=5)
        with login(limited, "ru/ru-1"):  # another station is not affected
            pass
    with login(limited, "us/us-1"):  # closed connections free their place
        pass


@pytest.mark.network
def test_unauthenticated_connections_per_address_are_bounded(limited: Cluster) -> None:
    with contextlib.ExitStack() as stack:
        for _ in range(3):
            ws = stack.enter_context(connect(limited.net.relay_url))
            assert json.loads(ws.recv(timeout=5))["op"] == "challenge"
        with connect(limited.net.relay_url) as fourth:
            assert error_code(json.loads(fourth.recv(timeout=5))) == "rate_limited"
    with login(limited, "us/us-1"):  # the places are free again
        pass


@pytest.mark.network
def test_a_handshake_that_does_not_finish_times_out(limited: Cluster) -> None:
    with connect(limited.net.relay_url) as ws:
        assert json.loads(ws.recv(timeout=5))["op"] == "challenge"
        started = time.monotonic()
        refused = json.loads(ws.recv(timeout=10))
        assert error_code(refused) == "malformed" and "in time" in refused["error"]["message"]
        assert time.monotonic() - started < 5
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)


@pytest.mark.network
def test_unauthenticated_http_is_rate_limited_per_address(limited: Cluster) -> None:
    base = f"http://127.0.0.1:{limited.net.relay_port}"
    answers = [httpx.get(f"{base}/roster") for _ in range(30)]
    refused = [r for r in answers if r.status_code == 429]
    assert refused and all(r.status_code in (200, 429) for r in answers)
    assert refused[0].json()["error"]["code"] == "rate_limited"
    assert refused[0].headers["retry-after"] == "1"
    time.sleep(1.0)  # the bucket refills
    assert httpx.get(f"{base}/roster").status_code == 200


@pytest.mark.network
def test_reading_checkpoints_never_makes_the_relay_sign(limited: Cluster) -> None:
    def stored() -> int:
        with limited.relay_db() as db:
            return int(db.execute("SELECT COUNT(*) FROM checkpoint").fetchone()[0])

    time.sleep(2.5)  # the HTTP bucket of earlier tests refills
    base = f"http://127.0.0.1:{limited.net.relay_port}/channels/us-ru"
    before = stored()
    latest = httpx.get(f"{base}/checkpoint")
    assert latest.status_code == 200, latest.text  # signed by the relay itself at start
    unsigned = httpx.get(f"{base}/checkpoint", params={"size": 5})
    assert unsigned.status_code == 400 and unsigned.json()["error"]["field"] == "size"
    assert httpx.get(f"{base}/checkpoint", params={"size": 0}).status_code == 200
    assert stored() == before


@pytest.mark.network
def test_a_station_sending_more_bytes_than_its_rate_is_read_no_faster_than_the_rate(
    limited: Cluster,
) -> None:
    # 20 posts of 32 KiB at once (655 KB) against a burst of 300 KB at 100 KB/s: the relay
    # reads the rest no faster than the rate, so answering all takes at least 3.5 s,
    # however fast the machine; every post is still answered on its merits.
    junk = bytes(32 * 1024)
    with login(limited, "ru/ru-1") as ws:
        started = time.monotonic()
        for i in range(20):
            ws.send(frames.encode_frame(frames.Post(junk, f"junk:{i}")))
        codes = {}
        while len(codes) < 20:
            frame = json.loads(ws.recv(timeout=30))
            if str(frame.get("id", "")).startswith("junk:"):
                codes[frame["id"]] = error_code(frame)
        assert time.monotonic() - started >= 3.0
        assert set(codes.values()) == {"malformed"}
