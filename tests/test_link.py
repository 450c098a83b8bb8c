"""Link tests: signed pings, and the link board's states with a fake clock."""

from __future__ import annotations

import pytest

from hotline.errors import BadSignature, UnknownKey
from hotline.link import Challenges, Freshness, LinkBoard, SeenPings, check, make

from .conftest import World

T0 = 1_800_000_000_000


def test_link_messages_are_signed_and_checked(world: World) -> None:
    now = world.certs["us"].not_before + 60
    msg = make("ping", world.stations["us"], "us-ru", now * 1000)
    assert check(msg, world.keyring, now) == "us/us-1"
    forged = {**msg, "sent_ms": now * 1000 + 1}
    with pytest.raises(BadSignature):
        check(forged, world.keyring, now)
    impostor = {**msg, "from": "ru/ru-1"}
    with pytest.raises(BadSignature):
        check(impostor, world.keyring, now)
    with pytest.raises(UnknownKey):
        check({**msg, "from": "zz/zz-1"}, world.keyring, now)


def test_board_goes_degraded_then_down_then_up() -> None:
    board = LinkBoard("us-ru", ["ru"], interval_s=60, down_after=3, started_ms=T0)
    assert board.update(T0) == []
    board.heard("ru", "ru/ru-1", T0 + 1_000, rtt_ms=12.5)
    assert board.update(T0 + 1_000) == [("ru", "unknown", "up")]
    assert board.update(T0 + 60_000) == []  # within one interval and a half: still up
    assert board.update(T0 + 92_000) == [("ru", "up", "degraded")]
    assert board.missed("ru", T0 + 92_000) == 1
    assert board.update(T0 + 1_000 + 210_000) == [("ru", "degraded", "down")]
    board.heard("ru", "ru/ru-1", T0 + 300_000)
    assert board.update(T0 + 300_000) == [("ru", "down", "up")]
    view = board.view(T0 + 300_000)["ru"]
    assert view["state"] == "up" and view["rtt_ms"] == 12.5 and view["missed"] == 0


def test_a_party_never_heard_from_goes_down() -> None:
    board = LinkBoard("us-ru", ["ru"], interval_s=1, down_after=3, started_ms=T0)
    assert board.update(T0 + 2_000) == []
    assert board.update(T0 + 3_500) == [("ru", "unknown", "down")]


def test_a_challenge_is_answered_once_per_responder_while_open() -> None:
    challenges = Challenges()
    challenges.issue("n1", "us-ru-ua", now_ms=1_000.0, open_ms=120_000)
    assert challenges.answer("n1", "us-ru-ua", "ru/ru-1", 1_250.0) == (Freshness.FRESH, 250.0)
    assert challenges.answer("n1", "us-ru-ua", "ru/ru-1", 1_300.0) == (Freshness.REPLAYED, None)
    assert challenges.answer("n1", "us-ru-ua", "ua/ua-1", 1_400.0) == (Freshness.FRESH, 400.0)
    assert challenges.answer("n1", "us-ru", "us/us-2", 1_400.0) == (Freshness.UNASKED, None)
    assert challenges.answer("n2", "us-ru-ua", "ru/ru-1", 1_400.0) == (Freshness.UNASKED, None)
    assert challenges.answer("n1", "us-ru-ua", "us/us-2", 121_001.0) == (Freshness.UNASKED, None)
    assert len(challenges) == 0


def test_open_challenges_are_bounded_oldest_first() -> None:
    challenges = Challenges(limit=2)
    for i in range(3):
        challenges.issue(f"n{i}", "us-ru", now_ms=float(i), open_ms=60_000)
    assert len(challenges) == 2
    assert challenges.answer("n0", "us-ru", "ru/ru-1", 3.0)[0] == Freshness.UNASKED
    assert challenges.answer("n2", "us-ru", "ru/ru-1", 3.0)[0] == Freshness.FRESH


def test_a_ping_is_fresh_once_and_only_near_our_clock() -> None:
    seen = SeenPings(max_skew_ms=60_000, per_sender=2)
    assert seen.admit("ru/ru-1", "a", T0 - 60_000, T0) == Freshness.FRESH
    assert seen.admit("ru/ru-1", "a", T0 - 60_000, T0) == Freshness.REPLAYED
    assert seen.admit("ua/ua-1", "a", T0, T0) == Freshness.FRESH  # per sender
    assert seen.admit("ru/ru-1", "b", T0 - 60_001, T0) == Freshness.STALE
    assert seen.admit("ru/ru-1", "b", T0 + 60_001, T0) == Freshness.STALE
    assert seen.admit("ru/ru-1", "b", T0 + 60_000, T0) == Freshness.FRESH
    assert seen.admit("ru/ru-1", "c", T0, T0) == Freshness.FLOOD  # the cache is bounded
    # "a" ages out of the bound, making room; its replay is stale by then anyway
    assert seen.admit("ru/ru-1", "c", T0 + 1, T0 + 1) == Freshness.FRESH
    assert seen.admit("ru/ru-1", "a", T0 - 60_000, T0 + 1) == Freshness.STALE
