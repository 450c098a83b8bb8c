"""The link board per relay path (issue 13 part 2), in process with fake clocks.

With two relays a station sends its link tests through each relay on its own: a ping
sent through relay X and the pong heard through relay X count for path X only. Here the
"relays" are the tests themselves, carrying each station's link messages to the other
through the path they were sent on; relay.ch stops carrying them part-way. The party
stays up (through relay.ae), is shown down through relay.ch, raises a lesser alarm
naming relay.ch (never the party-down alarm), and the history keeps each path apart.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from hotline.errors import HotlineError
from hotline.frames import LinkTest
from hotline.link import LinkState
from hotline.roster import Roster
from hotline.station import operators
from hotline.station.alarms import AlarmKind, AlarmRecord
from hotline.station.api import StationAPI, error_response
from hotline.station.console.app import Console
from hotline.station.core import StationCore
from hotline.station.linkhistory import LinkSample
from hotline.station.metrics import StationCollector
from hotline.station.service import RelayLink, StationService
from hotline.station.store import StationStore

from .conftest import World
from .test_console_edges import PASSWORD, TOKEN
from .test_relay_paths import _two_relay_roster
from .test_station_link import Clock

CH = "us-ru"
AE, CHR = "relay.ae", "relay.ch"
INTERVAL_S = 60  # the roster's default link_test_seconds
DOWN_AFTER = 3  # and its default link_down_after


def _station(
    roster: Roster, world: World, tmp: Path, party: str, wall: Clock, mono: Clock
) -> StationCore:
    core = StationCore(
        StationStore(tmp / f"{party}.db"),
        world.stations[party],
        world.certs[party],
        roster,
        clock=wall,
        monotonic=mono,
    )
    core.add_statements([c.encode() for c in world.certs.values()], [])
    return core


def _carry(to: StationCore, links: list[LinkTest], relay: str) -> list[LinkTest]:
    """What a relay does with link tests: hand each to the other station (through it)."""
    answers: list[LinkTest] = []
    for link in links:
        if link.channel == CH:
            answers += to.on_link(link, relay)
    return answers


def _round(us: StationCore, ru: StationCore, carrying: tuple[str, ...]) -> None:
    """One link-test interval: each station's pings through each relay, and the pongs
    back through the same relay, for the relays still ``carrying`` link tests."""
    for relay in (AE, CHR):
        to_ru = us.link_tick(relay).send
        to_us = ru.link_tick(relay).send
        if relay not in carrying:
            continue
        pongs_to_us = _carry(ru, to_ru, relay)
        pongs_to_ru = _carry(us, to_us, relay)
        _carry(us, pongs_to_us, relay)
        _carry(ru, pongs_to_ru, relay)


def _pair(world: World, tmp: Path) -> tuple[StationCore, StationCore, Clock, Clock]:
    roster, _, _ = _two_relay_roster(world)
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(roster, world, tmp, "us", wall, mono)
    ru = _station(roster, world, tmp, "ru", wall, mono)
    return us, ru, wall, mono


def _step(us: StationCore, ru: StationCore, wall: Clock, mono: Clock, *carrying: str) -> None:
    wall.t += INTERVAL_S
    mono.t += INTERVAL_S
    _round(us, ru, carrying)
    us.link_changes()
    ru.link_changes()


def _open(core: StationCore, kind: AlarmKind) -> list[AlarmRecord]:
    return [a for a in core.store.alarms(limit=100) if a.kind == kind and a.cleared_ms is None]


def test_a_relay_that_stops_carrying_link_tests_shows_the_party_down_via_it_only(
    world: World, tmp_path: Path
) -> None:
    us, ru, wall, mono = _pair(world, tmp_path)
    _step(us, ru, wall, mono, AE, CHR)
    view = us.link_view()[CH]["ru"]
    assert view["state"] == LinkState.UP
    assert {r: p["state"] for r, p in view["paths"].items()} == {
        AE: LinkState.UP,
        CHR: LinkState.UP,
    }
    assert view["paths"][AE]["rtt_ms"] is not None and view["paths"][CHR]["rtt_ms"] is not None
    # relay.ch stops carrying link tests (either way); relay.ae goes on.
    for _ in range(DOWN_AFTER + 1):
        _step(us, ru, wall, mono, AE)
    for me, other in ((us, "ru"), (ru, "us")):
        view = me.link_view()[CH][other]
        assert view["state"] == LinkState.UP  # up if any path is up
        assert view["paths"][AE]["state"] == LinkState.UP
        assert view["paths"][CHR]["state"] == LinkState.DOWN
        assert view["paths"][CHR]["missed"] >= DOWN_AFTER
        assert not _open(me, AlarmKind.PARTY_DOWN)  # the party is reachable
        (alarm,) = _open(me, AlarmKind.PARTY_PATH_DOWN)
        assert alarm.level < 3
        assert alarm.params["relay"] == CHR and alarm.params["party"] == other
        assert alarm.params["up"] == AE
        assert CHR in alarm.text_in("en") and CHR in alarm.text_in("ru")
    # The history keeps each path apart, beside the party's overall state.
    samples = us.store.link_samples(0)
    last: dict[str | None, LinkSample] = {}
    for s in samples:
        if s.channel == CH and s.party == "ru":
            last[s.relay] = s
    assert last[None].state == "up" and last[AE].state == "up" and last[CHR].state == "down"
    assert any(s.relay == AE and s.rtt_ms is not None for s in samples)
    # relay.ch carries them again: the path is up and its alarm cleared.
    _step(us, ru, wall, mono, AE, CHR)
    assert us.link_view()[CH]["ru"]["paths"][CHR]["state"] == LinkState.UP
    assert not _open(us, AlarmKind.PARTY_PATH_DOWN)


def test_a_party_silent_on_every_path_is_the_party_down_alarm_not_path_alarms(
    world: World, tmp_path: Path
) -> None:
    us, ru, wall, mono = _pair(world, tmp_path)
    _step(us, ru, wall, mono, AE, CHR)
    for _ in range(DOWN_AFTER + 1):
        _step(us, ru, wall, mono)  # neither relay carries link tests
    view = us.link_view()[CH]["ru"]
    assert view["state"] == LinkState.DOWN
    assert {p["state"] for p in view["paths"].values()} == {LinkState.DOWN}
    assert len(_open(us, AlarmKind.PARTY_DOWN)) == 1
    assert not _open(us, AlarmKind.PARTY_PATH_DOWN)
    # relay.ae comes back alone: the party is up, and now relay.ch is named.
    _step(us, ru, wall, mono, AE)
    assert us.link_view()[CH]["ru"]["state"] == LinkState.UP
    assert not _open(us, AlarmKind.PARTY_DOWN)
    (alarm,) = _open(us, AlarmKind.PARTY_PATH_DOWN)
    assert alarm.params["relay"] == CHR


def test_a_pong_counts_only_for_the_path_its_ping_went_through(
    world: World, tmp_path: Path
) -> None:
    us, ru, wall, _ = _pair(world, tmp_path)
    wall.t += INTERVAL_S
    ping = [p for p in us.link_tick(AE).send if p.channel == CH]
    us.link_tick(CHR)  # its own ping through relay.ch, never carried
    pongs = _carry(ru, ping, AE)
    assert pongs
    _carry(us, pongs, CHR)  # relay.ch hands on the pong to the ping sent through relay.ae
    us.link_changes()
    view = us.link_view()[CH]["ru"]
    assert view["paths"][CHR]["last_contact_ms"] is None
    _carry(us, pongs, AE)
    view = us.link_view()[CH]["ru"]
    assert view["paths"][AE]["last_contact_ms"] is not None
    assert view["paths"][AE]["rtt_ms"] is not None


def test_each_relay_gets_its_own_pings_on_the_schedule(world: World, tmp_path: Path) -> None:
    us, _, wall, _ = _pair(world, tmp_path)
    ae = [p for p in us.link_tick(AE).send if p.channel == CH]
    ch = [p for p in us.link_tick(CHR).send if p.channel == CH]
    assert len(ae) == len(ch) == 1 and ae[0].nonce != ch[0].nonce
    assert us.link_tick(AE).send == [] and us.link_tick(CHR).send == []
    wall.t += INTERVAL_S
    assert len(us.link_tick(CHR).send) == len(us.channels)


def test_one_relay_board_has_no_paths(world: World, tmp_path: Path) -> None:
    wall, mono = Clock(world.certs["us"].not_before + 60), Clock(100.0)
    us = _station(world.roster, world, tmp_path, "us", wall, mono)
    view = us.link_view()
    assert all("paths" not in party for parties in view.values() for party in parties.values())
    assert set(view[CH]["ru"]) == {"state", "last_contact_ms", "rtt_ms", "missed", "station"}


def test_the_console_and_the_api_show_each_party_per_path(world: World, tmp_path: Path) -> None:
    us, ru, wall, mono = _pair(world, tmp_path)
    _step(us, ru, wall, mono, AE, CHR)
    for _ in range(DOWN_AFTER + 1):
        _step(us, ru, wall, mono, AE)  # relay.ch carries no link tests any more
    wall.t += 1  # a moment later: the last samples are a band on the charts
    # The links never run: the console shows what the core knows.
    service = StationService(us, {AE: ["ws://127.0.0.1:9/ws"], CHR: ["ws://127.0.0.1:9/ws"]})
    api = StationAPI(service, TOKEN)
    app = Starlette(
        routes=[*api.routes(), *Console(api).routes()],
        exception_handlers={HotlineError: error_response},
    )
    operators.add_operator(us.store, "Lt. Col. Orlova", PASSWORD, "ru", us.now_ms())
    with TestClient(app, base_url="http://127.0.0.1") as client:
        status = client.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        ru_link = status["links"][CH]["ru"]
        assert ru_link["state"] == "up"
        assert {r: p["state"] for r, p in ru_link["paths"].items()} == {AE: "up", CHR: "down"}
        r = client.post(
            "/login", data={"name": "Lt. Col. Orlova", "password": PASSWORD}, follow_redirects=False
        )
        assert r.status_code == 303
        state = client.get("/console/state.json").json()
        board = state["links"][CH]["ru"]
        assert board["state"] == "up" and board["label"] == "на связи"
        assert board["paths"][CHR]["via"] == "через relay.ch"
        assert board["paths"][CHR]["state"] == "down"
        assert set(state["relays"]) == {AE, CHR}
        page = client.get("/links").text

    def last_band(figure_id: str) -> str:
        found = re.search(rf'<figure [^>]*id="{figure_id}".*?</figure>', page, re.S)
        assert found, figure_id
        return re.findall(r'data-state="(\w+)"', found.group(0))[-1]

    metrics = {
        (m.name, tuple(sorted(sample.labels.items()))): sample.value
        for m in StationCollector(us, RelayLink()).collect()
        for sample in m.samples
    }
    path_down = (("channel", CH), ("party", "ru"), ("relay", CHR), ("state", "down"))
    assert metrics[("hotline_station_link_path_state", path_down)] == 1
    party_up = (("channel", CH), ("party", "ru"), ("state", "up"))
    assert metrics[("hotline_station_link_state", party_up)] == 1
    assert last_band("history-us-ru-ru") == "up"
    assert last_band("history-us-ru-ru-via-relay.ae") == "up"
    assert last_band("history-us-ru-ru-via-relay.ch") == "down"
    assert "через relay.ch" in page


def test_a_station_database_from_before_paths_gets_the_relay_column(tmp_path: Path) -> None:
    path = tmp_path / "station.db"
    with sqlite3.connect(path) as conn:  # link_sample as a station before paths made it
        conn.execute(
            "CREATE TABLE link_sample (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, "
            "party TEXT NOT NULL, at_ms INTEGER NOT NULL, state TEXT NOT NULL, rtt_ms REAL, "
            "station TEXT)"
        )
        conn.execute(
            "INSERT INTO link_sample (channel, party, at_ms, state, rtt_ms, station) "
            "VALUES ('us-ru', 'ru', 1000, 'up', 12.5, 'ru/ru-1')"
        )
    conn.close()
    store = StationStore(path)
    with store.transaction():
        store.add_link_sample(LinkSample(CH, "ru", 2000, "down", relay=CHR))
    assert store.link_samples(0) == [
        LinkSample(CH, "ru", 1000, "up", 12.5, "ru/ru-1", None),
        LinkSample(CH, "ru", 2000, "down", None, None, CHR),
    ]
    # The state each path's window opens with: the last sample before it, per path.
    with store.transaction():
        store.add_link_sample(LinkSample(CH, "ru", 2500, "up", relay=AE))
    opening = store.link_samples(3000)
    assert {(s.relay, s.state) for s in opening} == {(None, "up"), (CHR, "down"), (AE, "up")}
    store.close()
