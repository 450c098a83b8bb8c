"""Who may say what: a party speaks for itself alone, and a station's log is its own.

A party's root revokes only its own stations' keys, ones it certified; an acknowledgment
ends only the acknowledging party's alarms; a relay's numbering of entries is checked
against the station's own copy of the log; a revoked station key loses its session.
Driven in-process (a relay core handing frames to station cores), except the session,
which needs a real relay.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from hotline import body as body_mod
from hotline import frames
from hotline.envelope import Precedence
from hotline.errors import RevokedKey, UnknownKey
from hotline.home import load_party, load_roster, load_station
from hotline.keys import KeyRing, StationKey
from hotline.relay.core import Acceptance, RelayCore
from hotline.relay.sqlite import SqliteRelayStore
from hotline.station.alarms import AlarmKind, AlarmRecord
from hotline.station.core import StationCore
from hotline.station.export import export
from hotline.station.store import OutboxState, StationStore
from hotline.transcript import verify

from .conftest import World
from .netutil import PASSPHRASE, Cluster, answer_challenge, login

TRIO = "us-ru-ua"


class Clock:
    """One time for the relay and every station, moved on by the test."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def _core(world: World, tmp: Path, clock: Clock | None = None) -> RelayCore:
    core = RelayCore(
        SqliteRelayStore(tmp / "relay.db"), world.roster, world.relay, clock or time.time
    )
    for cert in world.certs.values():
        core.register_certificate(cert.encode())
    return core


def _station(world: World, tmp: Path, party: str, clock: Clock | None = None) -> StationCore:
    st = StationCore(
        StationStore(tmp / f"{party}.db"),
        world.stations[party],
        world.certs[party],
        world.roster,
        clock or time.time,
    )
    st.add_statements([c.encode() for c in world.certs.values()], [])
    return st


def _post(relay: RelayCore, station: StationCore, raw: bytes) -> Acceptance:
    result = relay.accept([(station.ident, raw)])[0]
    assert isinstance(result, Acceptance), result
    return result


def _flush(relay: RelayCore, station: StationCore) -> None:
    """Post everything the station has queued, in order, and hand it the answers."""
    for item in station.store.outbox(OutboxState.QUEUED):
        accepted = _post(relay, station, item.envelope).frame(None)
        station.on_accepted(frames.decode_relay_frame(frames.encode_frame(accepted)))


def _frame(relay: RelayCore, station: StationCore, channel: str) -> frames.Entries:
    start = station.size(channel)
    return relay.entries_frame(
        channel, relay.entries(channel, start, relay.size(channel)), start, None
    )


def _deliver(relay: RelayCore, station: StationCore, channel: str) -> None:
    frame = _frame(relay, station, channel)
    station.on_entries(frames.decode_relay_frame(frames.encode_frame(frame)))


def _open(st: StationCore, kind: AlarmKind) -> list[AlarmRecord]:
    return [a for a in st.store.alarms() if a.kind == kind]


# --- item 1: a party revokes only its own stations' keys -------------------------------------


def test_one_party_cannot_revoke_another_partys_station(world: World, tmp_path: Path) -> None:
    relay = _core(world, tmp_path)
    us, ru = _station(world, tmp_path, "us"), _station(world, tmp_path, "ru")
    message = us.send("us-ru", body_mod.Text("en", "from us"))
    _post(relay, us, message.envelope)
    now = int(time.time())
    # ru's root signs a revocation naming its own party, station "us-1" and us-1's key.
    lie = world.parties["ru"].revoke(world.certs["us"], now - 3600, "ru says so")
    # The relay refuses it: us-1 keeps its key, and its next message is logged.
    with pytest.raises(UnknownKey, match="never certified"):
        relay.register_revocation(lie.encode())
    assert relay.keyring.station("us/us-1", now) == [world.certs["us"]]
    assert relay.statements()["revocations"] == []
    _post(relay, us, us.send("us-ru", body_mod.Text("en", "still us")).envelope)
    # A station served it refuses it with an alarm, and takes us's messages in.
    ru.add_statements([], [lie.encode()])
    (alarm,) = ru.store.alarms()
    assert alarm.kind == AlarmKind.BAD_CERTIFICATE and alarm.evidence == lie.encode()
    _deliver(relay, ru, "us-ru")
    assert [m.sender for m in ru.store.inbox(ru.ident, "us-ru", 10)] == ["us/us-1"] * 2
    assert _open(ru, AlarmKind.VERIFICATION) == []
    # ru's export holds no trace of it (key events come from the log), and verifies.
    doc = export(ru, "us-ru", with_bodies=True)
    report = verify(doc)
    assert report.ok, report.failures
    assert report.parties["us"].sent == 2


def test_a_revocation_withdraws_one_stations_key_and_no_other(world: World) -> None:
    ring = KeyRing(world.roster.roots())
    for cert in world.certs.values():
        ring.add_certificate(cert.encode())
    now = int(time.time())
    ru = world.parties["ru"]
    # ru certifies us-1's public key as a station of its own ("ru/us-1"), then revokes it.
    copied = ru.certify(world.stations["us"], now - 3600, now + 3600)
    ring.add_certificate(copied.encode())
    ring.add_revocation(ru.revoke(copied, now - 60, "ours to revoke").encode())
    with pytest.raises(RevokedKey):
        ring.station("ru/us-1", now)
    assert ring.station("us/us-1", now) == [world.certs["us"]]


def test_a_revocation_of_a_key_its_party_never_certified_is_refused(
    world: World, tmp_path: Path
) -> None:
    relay = _core(world, tmp_path)
    us = world.parties["us"]
    now = int(time.time())
    # us signs a certificate for another key of us-1, but nobody was ever shown it.
    unseen = us.certify(StationKey.generate("us", "us-1"), now - 3600, now + 3600)
    revocation = us.revoke(unseen, now - 60, "lost")
    with pytest.raises(UnknownKey, match="never certified"):
        relay.register_revocation(revocation.encode())
    assert relay.keyring.station("us/us-1", now) == [world.certs["us"]]
    st = _station(world, tmp_path, "ru")
    st.add_statements([], [revocation.encode()])
    assert [a.kind for a in st.store.alarms()] == [AlarmKind.BAD_CERTIFICATE]


# --- item 4: an acknowledgment ends its own party's alarms only ----------------------------


def test_an_acknowledgment_clears_only_its_own_partys_alarms(world: World, tmp_path: Path) -> None:
    clock = Clock()
    relay = _core(world, tmp_path, clock)
    us, ru, ua = (_station(world, tmp_path, p, clock) for p in ("us", "ru", "ua"))
    flash = us.send(TRIO, body_mod.Text("en", "to ru: stand down"), precedence=Precedence.FLASH)
    m = _post(relay, us, flash.envelope).entry.index  # after the three certificates
    for st in (us, ru, ua):
        _deliver(relay, st, TRIO)
    assert [a.index for a in _open(ru, AlarmKind.FLASH)] == [m]
    assert [a.index for a in _open(ua, AlarmKind.FLASH)] == [m]
    clock.offset += 700  # past the 600 s FLASH deadline: overdue everywhere
    for st in (us, ru, ua):
        st.check_deadlines()
    assert sorted(a.subject or "" for a in _open(us, AlarmKind.OVERDUE)) == [
        "ru level 1",
        "ua level 1",
    ]
    # ua acknowledges: it speaks for ua alone.
    ua.acknowledge(TRIO, m, "olena", None)
    _flush(relay, ua)
    for st in (us, ru, ua):
        _deliver(relay, st, TRIO)
    assert [a.index for a in _open(ru, AlarmKind.FLASH)] == [m]  # ru's FLASH stays open
    assert [a.subject for a in _open(ru, AlarmKind.OVERDUE)] == ["ru level 1"]
    assert [a.subject for a in _open(us, AlarmKind.OVERDUE)] == ["ru level 1"]
    assert _open(ua, AlarmKind.FLASH) == [] and _open(ua, AlarmKind.OVERDUE) == []
    # ru's own acknowledgment ends ru's alarms, here and at the sender's.
    ru.acknowledge(TRIO, m, "ivan", None)
    _flush(relay, ru)
    for st in (us, ru, ua):
        _deliver(relay, st, TRIO)
    assert _open(ru, AlarmKind.FLASH) == [] and _open(ru, AlarmKind.OVERDUE) == []
    assert _open(us, AlarmKind.OVERDUE) == []


# --- item 9: indices are the station's own ---------------------------------------------------


def _renumber(frame: frames.Entries, how: str) -> frames.Entries:
    entries = list(frame.entries)
    if how == "shifted":  # every entry one place on
        entries = [replace(e, index=e.index + 1) for e in entries]
    elif how == "repeated":  # the second entry named as the first again
        entries[1] = replace(entries[1], index=entries[0].index)
    elif how == "gap":  # the second entry named one place on
        entries[1] = replace(entries[1], index=entries[1].index + 1)
    return replace(frame, entries=tuple(entries))


@pytest.mark.parametrize("how", ["shifted", "repeated", "gap"])
def test_entries_a_relay_numbers_otherwise_are_refused(
    world: World, tmp_path: Path, how: str
) -> None:
    relay = _core(world, tmp_path)
    us, ru = _station(world, tmp_path, "us"), _station(world, tmp_path, "ru")
    for text in ("one", "two", "three"):
        _post(relay, us, us.send("us-ru", body_mod.Text("en", text)).envelope)
    lie = _renumber(_frame(relay, ru, "us-ru"), how)
    ru.on_entries(frames.decode_relay_frame(frames.encode_frame(lie)))
    (alarm,) = ru.store.alarms()
    assert alarm.kind == AlarmKind.BAD_FRAME and alarm.channel == "us-ru", alarm
    assert "numbered entry" in alarm.message and alarm.evidence
    # Nothing of the frame was taken in; the true run is then taken as usual.
    assert ru.size("us-ru") == 0 and ru.store.entries("us-ru") == []
    assert ru.store.messages("us-ru") == []
    _deliver(relay, ru, "us-ru")
    assert [m.index for m in ru.store.messages("us-ru")] == [2, 3, 4]  # after 2 certificates


def test_a_run_overlapping_what_the_station_holds_is_no_lie(world: World, tmp_path: Path) -> None:
    relay = _core(world, tmp_path)
    us, ru = _station(world, tmp_path, "us"), _station(world, tmp_path, "ru")
    _post(relay, us, us.send("us-ru", body_mod.Text("en", "one")).envelope)
    _deliver(relay, ru, "us-ru")
    _post(relay, us, us.send("us-ru", body_mod.Text("en", "two")).envelope)
    # A push from 0 crossing a sync: the held entries are compared, the new one taken.
    frame = relay.entries_frame("us-ru", relay.entries("us-ru", 0, 4), 0, None)
    ru.on_entries(frames.decode_relay_frame(frames.encode_frame(frame)))
    assert ru.store.alarms() == []
    assert [m.index for m in ru.store.messages("us-ru")] == [2, 3]


# --- item 10: a revoked station key loses its session at once --------------------------------


def _closed_within(ws: ClientConnection, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    except ConnectionClosed:
        return True
    except TimeoutError:
        return False
    return False


@pytest.mark.network
def test_a_revoked_station_key_loses_its_session_at_once(tmp_path: Path) -> None:
    c = Cluster(tmp_path, stations={"us": ["us-1", "us-2"], "ru": ["ru-1"]})
    c.start_relay()  # no station processes: the test connects as the stations
    try:
        roster = load_roster(c.net.relay_dir / "roster.note")
        _, cert = load_station(c.net.stations["us/us-1"], PASSPHRASE, roster)
        us = load_party(c.net.root / "parties" / "us", PASSPHRASE)
        revocation = us.revoke(cert, int(time.time()), "key compromised")
        with (
            login(c, "us/us-1") as revoked,
            login(c, "us/us-2") as other,
            login(c, "ru/ru-1") as bystander,
        ):
            other.send(frames.encode_frame(frames.Revoke(revocation.encode(), id="r")))
            assert _closed_within(revoked, 5), "the revoked key's session stayed open"
            # Others keep their sessions.
            for ws in (other, bystander):
                ws.send(frames.encode_frame(frames.Ping(id="p")))
                while getattr(frames.decode_relay_frame(ws.recv(timeout=10)), "id", None) != "p":
                    pass
        with connect(c.net.relay_url) as again:
            answer = answer_challenge(c, again, "us/us-1")
            assert answer["op"] == "error" and answer["error"]["code"] == "revoked_key", answer
    finally:
        c.close()


def test_a_relay_that_stored_another_partys_revocation_starts_without_it(
    world: World, tmp_path: Path
) -> None:
    relay = _core(world, tmp_path)
    lie = world.parties["ru"].revoke(world.certs["us"], int(time.time()) - 3600, "ru says so")
    relay.store.put_statement("revocation", lie.signing, lie.encode())  # as an old relay did
    again = RelayCore(SqliteRelayStore(tmp_path / "relay.db"), world.roster, world.relay)
    assert again.keyring.station("us/us-1", int(time.time())) == [world.certs["us"]]
