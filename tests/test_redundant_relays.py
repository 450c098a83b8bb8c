"""Independent relays at different hosts (issue 13 part 2), as real processes.

Two relays, ``relay.ae`` and ``relay.ch``, each with its own key and its own log of every
channel; every station posts each envelope through both and takes each envelope from
whichever relay brings it first, once. One relay is killed in the middle of a burst:
traffic goes on through the other, nothing lost and nothing twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.envelope import Kind

from .netutil import Cluster, wait_for
from .test_network import _burst

pytestmark = pytest.mark.network

CHANNEL = "us-ru"
LIES = {
    "fork",
    "verification",
    "bad-checkpoint",
    "bad-acceptance",
    "bad-certificate",
    "bad-frame",
    "unexpected-acceptance",
    "unexpected-channel",
    "roster-mismatch",
}


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(
        tmp_path,
        stations={"us": ["us-1"], "ru": ["ru-1"]},
        channels={CHANNEL: {"members": ["us", "ru"], "link_test_seconds": 2}},
        relay_args=("--rate", "100000"),
        extra_relays=("relay.ch",),
    )
    c.start_relay()
    for ident in c.stations:
        c.start_station(ident)
    for ident in c.stations:
        wait_for(
            lambda i=ident: all(p["connected"] for p in c.status(i)["relays"].values()),
            what=f"{ident} linked to both relays",
        )
    yield c
    c.close()


def _received(c: Cluster, ident: str, sender: str) -> list[int]:
    with c.station_store(ident) as store:
        return [
            m.seq for m in store.messages(CHANNEL) if m.sender == sender and m.kind == Kind.MESSAGE
        ]


def _lies(c: Cluster, ident: str) -> list[dict[str, object]]:
    return [a for a in c.alarms(ident) if a["kind"] in LIES]


def test_one_relay_killed_mid_burst_traffic_goes_on_through_the_other(two: Cluster) -> None:
    c = two
    c.send("us/us-1", CHANNEL, "warm-up")
    wait_for(lambda: len(_received(c, "ru/ru-1", "us/us-1")) == 1, what="warm-up delivered")
    sent: list[int] = []
    errors: list[Exception] = []
    burst = _burst(c, "us/us-1", CHANNEL, 200, sent, errors)
    wait_for(lambda: len(_received(c, "ru/ru-1", "us/us-1")) >= 40, what="part delivered")
    c.relay.kill9()  # relay.ae (the roster's first relay) is gone for good
    print("relay.ae killed with", len(_received(c, "ru/ru-1", "us/us-1")), "delivered")
    burst.join(120)
    assert not errors and len(sent) == 200
    wait_for(
        lambda: len(_received(c, "ru/ru-1", "us/us-1")) == 201,
        timeout=120,
        what="every message delivered through relay.ch",
    )
    got = _received(c, "ru/ru-1", "us/us-1")
    assert not [s for s, n in Counter(got).items() if n > 1]  # nothing twice
    assert set(got) >= set(sent)  # nothing lost
    # relay.ch logged every one: the sender's outbox shows each taken by relay.ch.
    wait_for(
        lambda: c.status("us/us-1")["relays"]["relay.ch"]["unsent"] == 0,
        what="relay.ch took every envelope of us-1",
    )
    assert not c.status("us/us-1")["relays"]["relay.ae"]["connected"]
    assert not _lies(c, "us/us-1") and not _lies(c, "ru/ru-1")
