"""The station's link-test rules run in its core: pings on schedule, pongs, round trips,
the hourly logged test and cosign throttling, with fake clocks (no network)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hotline.envelope import Kind
from hotline.frames import LinkKind, LinkTest
from hotline.link import LinkState, make
from hotline.roster import DEFAULT_LINK_TEST_SECONDS
from hotline.station.alarms import AlarmKind
from hotline.station.core import StationCore
from hotline.station.store import OutboxState, StationStore
from hotline.station.sync import CosignThrottle

from .conftest import World


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _link(kind: str, world: World, party: str, channel: str, now_ms: int, *a: str) -> LinkTest:
    """A link message signed by ``party``'s station, as a frame carries it."""
    return LinkTest.from_dict(make(kind, world.stations[party], channel, now_ms, *a))


def _station(world: World, tmp: Path, party: str, wall: Clock, mono: Clock) -> StationCore:
    core = StationCore(
        StationStore(tmp / f"{party}.db"),
        world.stations[party],
        world.certs[party],
        world.roster,
        clock=wall,
        monotonic=mono,
    )
    core.add_statements([c.encode() for c in world.certs.values()], [])
    return core


def test_a_ping_is_answered_and_its_sender_heard(world: World, tmp_path: Path) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    ping = _link("ping", world, "ru", "us-ru", us.now_ms())
    [pong] = us.on_link(ping)
    assert pong.kind == LinkKind.PONG and pong.to == "ru/ru-1" and pong.nonce == ping.nonce
    us.link_changes()
    assert us.boards["us-ru"].links["ru"].state == LinkState.UP


def test_the_pong_to_our_ping_measures_the_round_trip(world: World, tmp_path: Path) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    ping = next(m for m in us.link_tick().send if m.channel == "us-ru")
    mono.t += 0.25
    pong = _link("pong", world, "ru", "us-ru", us.now_ms(), ping.nonce, "us/us-1")
    assert us.on_link(pong) == []
    assert us.boards["us-ru"].links["ru"].rtt_ms == 250.0


def test_a_forged_link_message_is_an_alarm_and_changes_nothing(
    world: World, tmp_path: Path
) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    ping = _link("ping", world, "ru", "us-ru", us.now_ms())
    assert us.on_link(replace(ping, sent_ms=ping.sent_ms + 1)) == []
    assert [a.kind for a in us.store.alarms()] == [AlarmKind.VERIFICATION]
    assert us.boards["us-ru"].links["ru"].last_contact_ms is None


def test_pings_follow_the_schedule_and_one_test_an_hour_is_logged(
    world: World, tmp_path: Path
) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    first = us.link_tick()
    assert {m.channel for m in first.send} == set(us.channels) and first.queued == 2
    assert us.link_tick().send == []
    wall.t += DEFAULT_LINK_TEST_SECONDS
    assert len(us.link_tick().send) == 2
    logged = [i for i in us.store.outbox(OutboxState.QUEUED) if i.kind == Kind.LINK_TEST]
    assert len(logged) == 2  # not again before the hour is up
    wall.t += 3600
    assert us.link_tick().queued == 2


def test_cosignatures_go_at_most_once_a_second_per_channel(world: World, tmp_path: Path) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    throttle = CosignThrottle(us.state)
    assert throttle.offer("us-ru", 1, b"one") == ("us-ru", 1, b"one")
    assert throttle.offer("us-ru", 2, b"two") is None
    assert throttle.offer("us-ru-ua", 1, b"other") is not None
    assert throttle.due() == []
    mono.t += 1.0
    assert throttle.due() == [("us-ru", 2, b"two")]
    assert throttle.due() == []
