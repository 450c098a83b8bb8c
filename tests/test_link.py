"""Link tests: signed pings, and the link board's states with a fake clock."""

from __future__ import annotations

import pytest

from hotline.errors import BadSignature, UnknownKey
from hotline.link import LinkBoard, check, make

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
