"""A station with several relay URLs: it stays on the one that works, moves to the next
when it fails, and backs off per URL (waiting only when every URL is backing off)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.errors import Malformed
from hotline.home import split_urls, station_config, toml_line
from hotline.station.failover import FIRST_S, Failover

A, B, C = "ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws", "ws://127.0.0.1:3/ws"


def test_a_failed_url_hands_over_to_the_next_at_once() -> None:
    f = Failover([A, B, C], rand=lambda: 0.5)
    assert f.next(0.0) == (A, 0.0)
    f.opened(A)
    f.failed(A, 10.0)
    assert f.next(10.0) == (B, 0.0)  # no wait: B is not backing off
    f.failed(B, 10.0)
    assert f.next(10.0) == (C, 0.0)
    f.opened(C)  # C works: the station stays on it
    assert f.next(11.0) == (C, 0.0)
    assert f.current == C


def test_each_url_backs_off_on_its_own_and_the_station_waits_only_when_all_do() -> None:
    f = Failover([A, B], most=5.0, rand=lambda: 0.5)
    for _ in range(6):  # A keeps failing: its backoff doubles up to the limit
        f.failed(A, 0.0)
    f.failed(B, 0.0)  # B failed once: its own backoff is the first one
    url, wait = f.next(0.0)
    assert url == B and wait == pytest.approx(FIRST_S)
    # A session with B resets B's backoff, not A's.
    f.opened(B)
    f.failed(B, 100.0)
    url, wait = f.next(100.0)
    assert url == A and wait == 0.0  # A's wait ended long ago
    f.failed(A, 100.0)  # A is at the limit (5 s): B's short wait ends first
    url, wait = f.next(100.0)
    assert url == B and wait == pytest.approx(FIRST_S)


def test_a_relay_that_breaks_the_protocol_is_not_retried_at_once() -> None:
    f = Failover([A], rand=lambda: 0.5)
    for _ in range(3):
        f.failed(A, 0.0)
    f.opened(A)
    f.failed(A, 0.0, protocol=True)  # its backoff before that connection counts
    assert f.next(0.0)[1] == pytest.approx(8 * FIRST_S)


def test_relay_urls_come_from_a_list_or_commas_and_none_twice(tmp_path: Path) -> None:
    assert split_urls(f"{A}, {B}") == [A, B]
    assert split_urls([A, f"{B},{C}"]) == [A, B, C]
    with pytest.raises(Malformed):
        Failover([A, A])
    with pytest.raises(Malformed):
        Failover([])
    (tmp_path / "station.toml").write_text(
        'party = "us"\nstation = "us-1"\n' + toml_line("relay", [A, B]) + "\n"
    )
    assert station_config(tmp_path).relays == (A, B)
    (tmp_path / "station.toml").write_text('party = "us"\nstation = "us-1"\nrelay = 3\n')
    with pytest.raises(Malformed):
        station_config(tmp_path)
