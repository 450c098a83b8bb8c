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
from hotline.station.linktests import LinkTests
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


DAY = 86_400 - 3_700  # a day later, while the world's certificates are still valid


def _stale_alarms(us: StationCore) -> list[int]:
    """The counts of the open stale-link-test alarms (one per channel)."""
    return [a.count for a in us.store.alarms() if a.subject == "stale link test"]


def test_a_ping_replayed_a_day_later_does_not_show_a_silent_party_up(
    world: World, tmp_path: Path
) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    ping = _link("ping", world, "ru", "us-ru", us.now_ms())
    assert len(us.on_link(ping)) == 1
    us.link_changes()
    wall.t += DAY
    mono.t += DAY
    for _ in range(3):  # the relay replays it, again and again
        assert us.on_link(ping) == []  # not answered either
    us.link_changes()
    ru = us.boards["us-ru"].links["ru"]
    assert ru.state == LinkState.DOWN and ru.last_contact_ms == ping.sent_ms
    assert _stale_alarms(us) == [3]  # one alarm, counted


def test_a_ping_never_heard_before_but_signed_long_ago_is_not_heard(
    world: World, tmp_path: Path
) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    old = _link("ping", world, "ru", "us-ru", us.now_ms() - 61_000)
    assert us.on_link(old) == []
    assert us.boards["us-ru"].links["ru"].last_contact_ms is None
    assert _stale_alarms(us) == [1]


def test_a_fresh_ping_is_heard_within_the_clock_bound(world: World, tmp_path: Path) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    behind = _link("ping", world, "ru", "us-ru", us.now_ms() - 59_000)
    ahead = _link("ping", world, "ru", "us-ru-ua", us.now_ms() + 59_000)
    assert len(us.on_link(behind)) == 1 and len(us.on_link(ahead)) == 1
    assert us.boards["us-ru"].links["ru"].last_contact_ms == us.now_ms()
    assert us.boards["us-ru-ua"].links["ru"].last_contact_ms == us.now_ms()
    assert us.boards["us-ru"].links["ru"].rtt_ms is None  # a ping measures no round trip
    assert _stale_alarms(us) == []


def test_the_same_ping_twice_counts_once(world: World, tmp_path: Path) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    ping = _link("ping", world, "ru", "us-ru", us.now_ms())
    assert len(us.on_link(ping)) == 1
    heard = us.boards["us-ru"].links["ru"].last_contact_ms
    wall.t += 30
    assert us.on_link(ping) == []
    assert us.boards["us-ru"].links["ru"].last_contact_ms == heard
    assert _stale_alarms(us) == [1]


def test_the_clock_bound_is_configurable(world: World, tmp_path: Path) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    strict = LinkTests(us.state, max_skew_ms=5_000)
    assert strict.on_link(_link("ping", world, "ru", "us-ru", us.now_ms() - 6_000)) == []
    assert len(strict.on_link(_link("ping", world, "ru", "us-ru", us.now_ms() - 4_000))) == 1


def test_the_same_pong_delivered_twice_counts_once(world: World, tmp_path: Path) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    ping = next(m for m in us.link_tick().send if m.channel == "us-ru")
    mono.t += 0.25
    pong = _link("pong", world, "ru", "us-ru", us.now_ms(), ping.nonce, "us/us-1")
    us.on_link(pong)
    heard = us.boards["us-ru"].links["ru"].last_contact_ms
    wall.t += 50
    mono.t += 50
    assert us.on_link(pong) == []
    ru = us.boards["us-ru"].links["ru"]
    assert ru.last_contact_ms == heard and ru.rtt_ms == 250.0
    assert _stale_alarms(us) == [1]


def test_each_party_answers_one_ping_once(world: World, tmp_path: Path) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    ping = next(m for m in us.link_tick().send if m.channel == "us-ru-ua")
    mono.t += 0.25
    for party in ("ru", "ua"):
        us.on_link(_link("pong", world, party, "us-ru-ua", us.now_ms(), ping.nonce, "us/us-1"))
    board = us.boards["us-ru-ua"].links
    assert board["ru"].rtt_ms == board["ua"].rtt_ms == 250.0
    assert _stale_alarms(us) == []


def test_a_pong_to_a_challenge_we_never_issued_is_not_heard(world: World, tmp_path: Path) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    us.link_tick()
    pong = _link("pong", world, "ru", "us-ru", us.now_ms(), "0123456789abcdef", "us/us-1")
    assert us.on_link(pong) == []
    ru = us.boards["us-ru"].links["ru"]
    assert ru.last_contact_ms is None and ru.rtt_ms is None
    assert _stale_alarms(us) == []  # fresh but unasked (a restart): only logged


def test_a_pong_to_a_challenge_issued_too_long_ago_is_not_heard(
    world: World, tmp_path: Path
) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    ping = next(m for m in us.link_tick().send if m.channel == "us-ru")
    mono.t += 2 * DEFAULT_LINK_TEST_SECONDS + 1  # the challenge closed
    pong = _link("pong", world, "ru", "us-ru", us.now_ms(), ping.nonce, "us/us-1")
    assert us.on_link(pong) == []
    ru = us.boards["us-ru"].links["ru"]
    assert ru.last_contact_ms is None and ru.rtt_ms is None


def test_a_pong_replayed_a_day_later_is_an_alarm(world: World, tmp_path: Path) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    ping = next(m for m in us.link_tick().send if m.channel == "us-ru")
    pong = _link("pong", world, "ru", "us-ru", us.now_ms(), ping.nonce, "us/us-1")
    us.on_link(pong)
    wall.t += DAY
    mono.t += DAY
    us.link_tick()
    assert us.on_link(pong) == []
    us.link_changes()
    assert us.boards["us-ru"].links["ru"].state == LinkState.DOWN
    assert _stale_alarms(us) == [1]


def test_the_round_trip_comes_only_from_our_own_challenge(world: World, tmp_path: Path) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world, tmp_path, "us", wall, mono)
    ours = next(m for m in us.link_tick().send if m.channel == "us-ru-ua")
    theirs = _link("ping", world, "ua", "us-ru-ua", us.now_ms())
    mono.t += 5.0
    # ru answers ua's ping, and a pong to ua carrying our nonce: neither is ours to time
    for to, nonce in (("ua/ua-1", theirs.nonce), ("ua/ua-1", ours.nonce)):
        assert us.on_link(_link("pong", world, "ru", "us-ru-ua", us.now_ms(), nonce, to)) == []
    # and a pong to us answering ua's nonce is no challenge of ours
    assert (
        us.on_link(_link("pong", world, "ru", "us-ru-ua", us.now_ms(), theirs.nonce, "us/us-1"))
        == []
    )
    ru = us.boards["us-ru-ua"].links["ru"]
    assert ru.last_contact_ms is None and ru.rtt_ms is None
    mono.t += 1.0
    us.on_link(_link("pong", world, "ru", "us-ru-ua", us.now_ms(), ours.nonce, "us/us-1"))
    assert us.boards["us-ru-ua"].links["ru"].rtt_ms == 6000.0


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


def test_restarts_within_the_hour_log_no_more_link_tests(world: World, tmp_path: Path) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)

    def logged() -> int:
        store = StationStore(tmp_path / "us.db")
        try:
            return sum(1 for i in store.outbox() if i.kind == Kind.LINK_TEST)
        finally:
            store.close()

    for restart in range(3):  # the station's core started again on the same store
        us = _station(world, tmp_path, "us", wall, mono)
        assert us.link_tick().queued == (2 if restart == 0 else 0)
        us.store.close()
        wall.t += 600
    assert logged() == 2  # one per channel
    wall.t += 3600
    us = _station(world, tmp_path, "us", wall, mono)
    assert us.link_tick().queued == 2  # the hour is up: logged again, once
    assert us.link_tick().queued == 0


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
