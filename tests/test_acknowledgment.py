"""Promises 4-6 over real processes: acknowledgment, deadlines with escalation, link state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .netutil import Cluster, wait_for

pytestmark = pytest.mark.network

FAST = {
    "us-ru": {
        "members": ["us", "ru"],
        "deadlines": {"FLASH": 2},
        "link_test_seconds": 1,
        "link_down_after": 3,
    },
    "us-ru-ua": {"members": ["us", "ru", "ua"], "link_test_seconds": 1, "link_down_after": 3},
}


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    c = Cluster(tmp_path, channels=FAST).start()
    yield c
    c.close()


def _open(c: Cluster, ident: str, kind: str) -> list[dict[str, Any]]:
    return [a for a in c.alarms(ident) if a["kind"] == kind]


def _all(c: Cluster, ident: str, kind: str) -> list[dict[str, Any]]:
    return [a for a in c.client(ident).alarms(everything=True) if a["kind"] == kind]


def test_unacknowledged_flash_escalates_at_both_ends_until_acknowledged(cluster: Cluster) -> None:
    sent = cluster.send("us/us-1", "us-ru", "Confirm intent.", "FLASH")
    path = f"/api/sent/us-ru/{sent['seq']}"
    wait_for(lambda: cluster.api("us/us-1").get(path).json()["index"] is not None, what="accepted")
    index = cluster.api("us/us-1").get(path).json()["index"]
    wait_for(lambda: _open(cluster, "ru/ru-1", "flash"), what="FLASH alarm at ru")
    # Past the 2 s deadline: overdue on both sides, and it keeps rising.
    wait_for(
        lambda: cluster.api("us/us-1").get(path).json()["recipients"]["ru"]["overdue"],
        what="overdue at us",
    )
    wait_for(lambda: _open(cluster, "us/us-1", "overdue"), what="overdue alarm at us")
    wait_for(lambda: _open(cluster, "ru/ru-1", "overdue"), what="overdue alarm at ru")
    wait_for(
        lambda: cluster.api("us/us-1").get(path).json()["recipients"]["ru"]["escalation"] >= 2,
        timeout=20,
        what="second escalation level",
    )
    wait_for(lambda: len(_open(cluster, "ru/ru-1", "overdue")) >= 2, what="ru alarmed again")
    # The escalation steps are in the record: notices in the channel's log.
    with cluster.relay_db() as db:
        notices = db.execute(
            "SELECT COUNT(*) FROM entry WHERE channel='us-ru' AND substr(envelope, 6, 1)=?",
            (bytes([5]),),  # envelope kind 5: notice
        ).fetchone()[0]
    assert notices >= 2
    # A human acknowledges: everything clears, and who and when is recorded.
    r = cluster.api("ru/ru-1").post(
        "/api/ack",
        json={"channel": "us-ru", "index": index, "operator": "Lt. Col. Orlov", "reply": "Seen."},
    )
    assert r.status_code == 202

    def acked() -> dict[str, Any] | None:
        state = cluster.api("us/us-1").get(path).json()["recipients"]["ru"]
        return state if state["acknowledged"] else None

    state = wait_for(acked, what="acknowledged at us")
    assert state["acknowledged"]["operator"] == "Lt. Col. Orlov"
    assert state["acknowledged"]["reply"] == "Seen."
    assert state["acknowledged"]["relay_ms"] > 0 and state["overdue"] is False
    wait_for(lambda: not _open(cluster, "us/us-1", "overdue"), what="us alarms cleared")
    wait_for(
        lambda: not _open(cluster, "ru/ru-1", "overdue") and not _open(cluster, "ru/ru-1", "flash"),
        what="ru alarms cleared",
    )
    cleared = _all(cluster, "us/us-1", "overdue")
    assert cleared and all("Lt. Col. Orlov" in a["cleared_by"] for a in cleared)


def test_a_silent_party_is_shown_down_and_back_up(cluster: Cluster) -> None:
    def state(ident: str, channel: str, party: str) -> str:
        return str(cluster.status(ident)["links"][channel][party]["state"])

    for ident, party in (("us/us-1", "ua"), ("ru/ru-1", "ua"), ("us/us-1", "ru")):
        wait_for(lambda i=ident, p=party: state(i, "us-ru-ua", p) == "up", what=f"{party} up")

    def measured() -> dict[str, Any] | None:
        link = cluster.status("us/us-1")["links"]["us-ru-ua"]["ru"]
        return link if link["rtt_ms"] is not None else None

    link = wait_for(measured, what="a round trip measured")
    assert link["last_contact_ms"] is not None and link["missed"] == 0
    cluster.stations["ua/ua-1"].kill9()
    # Down after 3 missed 1 s link tests (plus half an interval of grace).
    wait_for(lambda: state("us/us-1", "us-ru-ua", "ua") == "down", timeout=10, what="ua down at us")
    wait_for(lambda: state("ru/ru-1", "us-ru-ua", "ua") == "down", timeout=10, what="ua down at ru")
    assert _open(cluster, "us/us-1", "party-down")
    assert state("us/us-1", "us-ru-ua", "ru") == "up"  # the others are unaffected
    assert cluster.status("us/us-1")["relay"]["connected"]  # shown apart from each party
    cluster.clients.pop("ua/ua-1").close()
    cluster.start_station("ua/ua-1")
    wait_for(lambda: state("us/us-1", "us-ru-ua", "ua") == "up", timeout=15, what="ua up again")
    wait_for(lambda: not _open(cluster, "us/us-1", "party-down"), what="alarm cleared")
