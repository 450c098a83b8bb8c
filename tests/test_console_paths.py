"""The link board per relay path with real relays and stations, and in real Chromium.

us-1 and ru-1 link to relay.ae and relay.ch (issue 13 part 2); relay.ch is tests/liar.py's
``nolink``: it carries everything honestly except link tests to and from ru-1. Each
station then shows the other party up (through relay.ae) and down through relay.ch,
raises the lesser path alarm naming relay.ch (never party-down), charts each path's
history, and `hotline status` and the console's board say so, per path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .netutil import Cluster, hotline, wait_for
from .test_console import ARTIFACTS, add_operator, browser, sign_in, url
from .test_redundant_relays import CHANNEL, _cluster, _start

pytestmark = pytest.mark.network

__all__ = ["browser"]  # the Chromium fixture, shared with test_console

from playwright.sync_api import Browser, expect  # noqa: E402

AE, CH = "relay.ae", "relay.ch"


@pytest.fixture(scope="module")
def cut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = _start(_cluster(tmp_path_factory.mktemp("paths"), ch_mode="nolink"))
    add_operator(c, "ru/ru-1", "Lt. Col. Orlova")
    yield c
    c.close()


def _paths(c: Cluster, ident: str, party: str) -> dict[str, Any] | None:
    """The party's link on the board of ``ident`` once relay.ch shows it down."""
    link: dict[str, Any] = c.status(ident)["links"][CHANNEL][party]
    paths = link.get("paths", {})
    if paths.get(CH, {}).get("state") == "down" and paths.get(AE, {}).get("state") == "up":
        return link
    return None


def test_a_relay_that_carries_no_link_tests_shows_the_party_down_through_it_only(
    cut: Cluster,
) -> None:
    c = cut
    for ident, party in (("ru/ru-1", "us"), ("us/us-1", "ru")):
        link = wait_for(
            lambda i=ident, p=party: _paths(c, i, p),
            timeout=60,
            what=f"{ident} sees {party} down through relay.ch only",
        )
        assert link["state"] == "up"  # reachable through relay.ae
        assert link["paths"][AE]["rtt_ms"] is not None  # round trips through relay.ae
        assert link["paths"][CH]["last_contact_ms"] is None  # none ever through relay.ch
        path_alarms = wait_for(
            lambda i=ident: [a for a in c.alarms(i) if a["kind"] == "party-path-down"],
            what=f"{ident} names relay.ch",
        )
        assert {a["params"]["relay"] for a in path_alarms} == {CH}
        assert {a["params"]["party"] for a in path_alarms} == {party}
        assert not [a for a in c.alarms(ident) if a["kind"] == "party-down"]
    # Messages still go both ways through both relays: only link tests are cut.
    c.send("us/us-1", CHANNEL, "through both")
    wait_for(
        lambda: any(m["body"].get("text") == "through both" for m in c.inbox("ru/ru-1", CHANNEL)),
        what="delivered",
    )
    # The history keeps each path: relay.ch down, relay.ae up with round trips.
    with c.station_store("ru/ru-1") as store:
        samples = [s for s in store.link_samples(0) if s.channel == CHANNEL and s.party == "us"]
    assert any(s.relay == CH and s.state == "down" for s in samples)
    assert any(s.relay == AE and s.state == "up" and s.rtt_ms is not None for s in samples)
    assert not [s for s in samples if s.relay is None and s.state == "down"]
    text = hotline("status", "--dir", str(c.net.stations["ru/ru-1"])).stdout
    assert f"link {CHANNEL} us: UP" in text
    assert f"link {CHANNEL} us via {CH}: DOWN" in text
    assert f"link {CHANNEL} us via {AE}: UP" in text


def test_the_console_board_shows_each_party_per_path(cut: Cluster, browser: Browser) -> None:
    c = cut
    wait_for(lambda: _paths(c, "ru/ru-1", "us"), timeout=60, what="relay.ch shown down")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = sign_in(browser, c, "ru/ru-1", "Lt. Col. Orlova")
    page.goto(url(c, "ru/ru-1", "/links"))
    party = page.locator("#links tr[data-party=us]:not([data-relay])")
    expect(party).to_have_count(1)
    expect(party).to_have_class("link-up")
    through_ch = page.locator(f'#links tr.path[data-party=us][data-relay="{CH}"]')
    through_ae = page.locator(f'#links tr.path[data-party=us][data-relay="{AE}"]')
    expect(through_ch).to_have_class("link-down path")
    expect(through_ae).to_have_class("link-up path")
    expect(through_ch.locator("td.via")).to_have_text(f"через {CH}")  # the operator's language
    expect(through_ch.locator("td.state")).to_have_text("нет связи")
    expect(page.locator("#relay-line")).to_contain_text(CH)
    # Each path has its chart; relay.ch's ends down, relay.ae's up.
    ch_chart = page.locator(f'figure[data-party=us][data-relay="{CH}"]')
    expect(ch_chart.locator("rect.band-down").first).to_be_attached()
    ae_chart = page.locator(f'figure[data-party=us][data-relay="{AE}"]')
    expect(ae_chart.locator("rect.band-up").first).to_be_attached()
    through_ch.locator("a.history-link").click()
    assert page.evaluate("() => location.hash") == f"#history-{CHANNEL}-us-via-{CH}"
    page.screenshot(path=str(ARTIFACTS / "links-per-path.png"), full_page=True)


def test_one_relay_shows_no_paths(tmp_path: Path) -> None:
    """A one-relay station's status has no paths (its board is as before)."""
    c = Cluster(
        tmp_path,
        stations={"us": ["us-1"], "ru": ["ru-1"]},
        channels={CHANNEL: {"members": ["us", "ru"], "link_test_seconds": 2}},
    ).start()
    try:
        link = wait_for(
            lambda: (lambda v: v if v["state"] == "up" else None)(
                c.status("ru/ru-1")["links"][CHANNEL]["us"]
            ),
            what="us up",
        )
        assert "paths" not in link and c.status("ru/ru-1")["relays"] == {}
        assert " via " not in hotline("status", "--dir", str(c.net.stations["ru/ru-1"])).stdout
    finally:
        c.close()
