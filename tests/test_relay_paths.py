"""Several relays in-process: each relay's log is checked against ITS key, an envelope is
taken once from whichever log brings it first, and receipts name entries across logs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from hotline import body as body_mod
from hotline import envelope as env_mod
from hotline import frames
from hotline.envelope import Kind, Precedence
from hotline.errors import Malformed
from hotline.home import urls_per_relay
from hotline.keys import StationKey
from hotline.notes import NoteSigner
from hotline.relay.core import Acceptance, RelayCore
from hotline.relay.sqlite import SqliteRelayStore
from hotline.roster import Roster, open_roster, roster_text, sign_roster
from hotline.station import paths
from hotline.station.alarms import AlarmKind
from hotline.station.core import StationCore
from hotline.station.service import StationService
from hotline.station.store import OutboxState, StationStore

from .conftest import World

CH = "us-ru"


def _two_relay_roster(world: World) -> tuple[Roster, NoteSigner, NoteSigner]:
    ae = world.relay
    ch = NoteSigner("relay.ch", Ed25519PrivateKey.generate())
    text = roster_text(
        "abu-dhabi",
        {p: {**k.public_keys(), "language": "en"} for p, k in world.parties.items()},
        {CH: {"members": ["us", "ru"]}},
        [ae.verifier.encode(), ch.verifier.encode()],
    )
    note = sign_roster(text, world.parties["us"])
    for p in ("ru", "ua", "ae"):
        note = sign_roster(note, world.parties[p])
    return open_roster(note.encode()), ae, ch


def _relay(roster: Roster, key: NoteSigner, world: World, tmp: Path) -> RelayCore:
    core = RelayCore(SqliteRelayStore(tmp / f"{key.name}.db"), roster, key)
    for cert in world.certs.values():
        core.register_certificate(cert.encode())
    return core


def _station(roster: Roster, world: World, tmp: Path, party: str) -> StationCore:
    core = StationCore(
        StationStore(tmp / f"{party}.db"), world.stations[party], world.certs[party], roster
    )
    core.add_statements([c.encode() for c in world.certs.values()], [])
    return core


def _post(relay: RelayCore, station: StationCore, raw: bytes) -> None:
    assert isinstance(relay.accept([(station.ident, raw)])[0], Acceptance)


def _frame(relay: RelayCore, start: int) -> frames.Entries:
    frame = relay.entries_frame(CH, relay.entries(CH, start, relay.size(CH)), start, None)
    decoded = frames.decode_relay_frame(frames.encode_frame(frame))
    assert isinstance(decoded, frames.Entries)
    return decoded


def test_taken_once_from_whichever_relay_first_and_each_log_checked_by_its_key(
    world: World, tmp_path: Path
) -> None:
    roster, ae_key, ch_key = _two_relay_roster(world)
    ae, ch = _relay(roster, ae_key, world, tmp_path), _relay(roster, ch_key, world, tmp_path)
    us, ru = _station(roster, world, tmp_path, "us"), _station(roster, world, tmp_path, "ru")
    sent = us.send(CH, body_mod.Text("en", "through both"))
    _post(ch, us, sent.envelope)
    _post(ae, us, sent.envelope)
    # relay.ch's log reaches ru first: the message is taken from it...
    ru.on_entries(_frame(ch, 0), relay="relay.ch")
    (m,) = [m for m in ru.store.messages(CH) if m.kind == Kind.MESSAGE]
    assert paths.split(m.index)[0] == 1  # numbered in relay.ch's log
    # ...and relay.ae's log of the same envelope is mirrored and checked, not taken twice.
    ru.on_entries(_frame(ae, 0), relay="relay.ae")
    assert [m.hash for m in ru.store.messages(CH) if m.kind == Kind.MESSAGE] == [m.hash]
    assert ru.size(CH, "relay.ae") == ae.size(CH) and ru.size(CH, "relay.ch") == ch.size(CH)
    assert set(ru.logged_by(CH, m.hash)) == {"relay.ae", "relay.ch"}
    assert ru.logged_by(CH, m.hash)["relay.ch"] == paths.split(m.index)[1]
    assert ru.store.alarms() == []
    # One delivered receipt owed, naming the entry where ru took it (relay.ch's log).
    (receipt,) = ru.store.outbox(OutboxState.QUEUED)
    # A relay.ae checkpoint presented as relay.ch's log is refused: each log, its own key.
    _post(ae, ru, receipt.envelope)
    had = ru.size(CH, "relay.ch")
    ru.on_entries(_frame(ae, had), relay="relay.ch")
    (alarm,) = ru.store.alarms()
    assert alarm.kind == AlarmKind.BAD_CHECKPOINT and alarm.params["channel"] == f"{CH}@relay.ch"
    assert ru.size(CH, "relay.ch") == had  # nothing of it taken in
    # The receipt, logged by relay.ae only, is checked at us across the logs: no fork.
    us.on_entries(_frame(ae, 0), relay="relay.ae")
    us.on_entries(_frame(ch, 0), relay="relay.ch")
    assert [a.kind for a in us.store.alarms()] == []
    state = us.message_state(CH, us.store.outbox_item(CH, sent.seq).index)  # type: ignore[union-attr]
    assert state["ru"]["delivered"]


def test_station_relay_urls_per_relay(world: World, tmp_path: Path) -> None:
    grouped = urls_per_relay(
        ["ws://127.0.0.1:1/ws", "relay.ch=ws://127.0.0.1:2/ws", "ws://127.0.0.1:3/ws"], "relay.ae"
    )
    assert grouped == {
        "relay.ae": ["ws://127.0.0.1:1/ws", "ws://127.0.0.1:3/ws"],
        "relay.ch": ["ws://127.0.0.1:2/ws"],
    }
    roster, _, _ = _two_relay_roster(world)
    core = _station(roster, world, tmp_path, "us")
    with pytest.raises(Malformed, match=r"no relay 'relay\.zz'"):
        StationService(core, {"relay.ae": ["ws://127.0.0.1:1/ws"], "relay.zz": ["ws://x/ws"]})
    service = StationService(core, grouped)
    assert set(service.paths) == {"relay.ae", "relay.ch"}
    assert service.paths["relay.ch"].failover.urls == ["ws://127.0.0.1:2/ws"]
    assert service.failover.urls == grouped["relay.ae"]


@given(position=st.integers(0, 7), index=st.integers(0, paths.MAX_LOG_INDEX))
def test_property_qualified_indexes_name_one_place(position: int, index: int) -> None:
    q = paths.qualify(position, index)
    assert paths.split(q) == (position, index)
    assert (q == index) == (position == 0)  # the first relay's indexes are plain


def test_qualified_index_beyond_a_log_is_refused() -> None:
    with pytest.raises(Malformed):
        paths.qualify(1, paths.MAX_LOG_INDEX + 1)


def test_junk_a_relay_logs_cannot_make_the_audit_name_the_honest_relay(
    world: World, tmp_path: Path
) -> None:
    """relay.ch logs key events no party signed (any bytes, as many as it likes) and an
    envelope of a station no one certified: none of it is an entry the honest relay.ae
    owes, so no omission is named against relay.ae, and nothing is kept per junk entry
    in the audit's memory (a flood would grow the station's store without bound)."""
    now = [time.time()]
    roster, ae_key, ch_key = _two_relay_roster(world)
    ae, ch = _relay(roster, ae_key, world, tmp_path), _relay(roster, ch_key, world, tmp_path)
    stranger = StationKey.generate("us", "us-9")  # no root certified it
    junk = env_mod.seal(
        body_mod.encode(body_mod.Text("en", "made up")),
        sender=stranger,
        channel=CH,
        seq=1,
        prev=env_mod.ZERO_HASH,
        recipients=[world.certs["us"], world.certs["ru"]],
        created_ms=int(now[0] * 1000),
        kind=Kind.MESSAGE,
        precedence=Precedence.ROUTINE,
    )
    ch._check = lambda station, raw, now_s: env_mod.parse(raw)  # type: ignore[method-assign]
    assert isinstance(ch.accept([(stranger.ident, junk)])[0], Acceptance)
    ru = StationCore(
        StationStore(tmp_path / "ru.db"),
        world.stations["ru"],
        world.certs["ru"],
        roster,
        lambda: now[0],
    )
    ru.add_statements([c.encode() for c in world.certs.values()], [])
    for n in range(5):
        ch._log_statement(b"not a key event %d" % n, [CH])
    ru.on_entries(_frame(ch, 0), relay="relay.ch")
    ru.on_entries(_frame(ae, 0), relay="relay.ae")
    now[0] += 3600
    ru.audit_paths({"relay.ae": ru.now_ms(), "relay.ch": ru.now_ms()})
    omits = [a for a in ru.store.alarms() if a.kind == AlarmKind.PATH]
    assert omits == [], [(a.params["sender"], a.params["index"]) for a in omits]
    assert ru.store.path_alarms() == []


def test_a_revocation_a_relay_logs_where_it_counts_for_nothing_is_still_owed_to_it(
    world: World, tmp_path: Path
) -> None:
    """relay.ch logs us's revocation before the certificate it revokes (there it revokes
    nothing: the key is usable in relay.ch's log from the certificate on). The station
    must not take that for relay.ch having logged it: it stays owed (sent again at every
    session) and the audit names relay.ch for leaving it out."""
    now = [time.time()]
    roster, ae_key, ch_key = _two_relay_roster(world)
    ae = _relay(roster, ae_key, world, tmp_path)
    ch = RelayCore(SqliteRelayStore(tmp_path / "relay.ch.db"), roster, ch_key)
    ch.register_certificate(world.certs["ru"].encode())
    revocation = world.parties["us"].revoke(world.certs["us"], int(now[0]), "rotated").encode()
    us = StationCore(
        StationStore(tmp_path / "us.db"),
        world.stations["us"],
        world.certs["us"],
        roster,
        lambda: now[0],
    )
    us.add_statements([c.encode() for c in world.certs.values()], [])
    digest = us.submit_key_event("revocation", revocation)
    ch._log_statement(revocation, [CH])
    ch.register_certificate(world.certs["us"].encode())
    ae.register_revocation(revocation)
    us.on_entries(_frame(ch, 0), relay="relay.ch")
    us.on_entries(_frame(ae, 0), relay="relay.ae")
    assert us.key_events_owed("relay.ae") == []
    assert [o.hash for o in us.key_events_owed("relay.ch")] == [digest]
    now[0] += 3600
    us.audit_paths({"relay.ae": us.now_ms(), "relay.ch": us.now_ms()})
    named = [a.params for a in us.store.alarms() if a.kind == AlarmKind.PATH]
    assert [(p["relay"], p["hash"]) for p in named] == [("relay.ch", digest.hex()[:16])]
