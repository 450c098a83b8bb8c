"""Key events in the log: a key is usable from its certificate's position to its
revocation's position, the same rule at the relay, at every station and in `hotline verify`.

A party that backdates a revocation cannot disown what it signed and had logged; an
exporter cannot leave a revocation out; an envelope after its key's revocation, or before
its key's certificate, is refused everywhere. In-process (relay and station cores) and on
logs built by tests/logbuild.py; the property test checks keyhistory against a model.
"""

from __future__ import annotations

import copy
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline import body as body_mod
from hotline import frames
from hotline.envelope import ZERO_HASH, parse, seal
from hotline.errors import HotlineError, KeyNotValid, Malformed, RevokedKey, UnknownKey
from hotline.keyhistory import KeyHistory
from hotline.keys import PartyKey, StationKey
from hotline.leaf import LeafKind
from hotline.relay.core import Acceptance, RelayCore
from hotline.relay.sqlite import SqliteRelayStore
from hotline.roster import open_roster, roster_text, sign_roster
from hotline.station.alarms import AlarmKind
from hotline.station.core import StationCore
from hotline.station.export import export
from hotline.station.store import StationStore
from hotline.transcript import verify

from .conftest import World
from .logbuild import T0, ChannelLog, exchange

CHANNEL = "us-ru"


def _relay(world: World, tmp: Path) -> RelayCore:
    core = RelayCore(SqliteRelayStore(tmp / "relay.db"), world.roster, world.relay)
    for cert in world.certs.values():
        core.register_certificate(cert.encode())
    return core


def _station(world: World, tmp: Path, party: str, name: str | None = None) -> StationCore:
    st = StationCore(
        StationStore(tmp / f"{name or party}.db"),
        world.stations[party],
        world.certs[party],
        world.roster,
        time.time,
    )
    # The relay's certificates frame: known to seal to, never enough to accept an entry.
    st.add_statements([c.encode() for c in world.certs.values()], [])
    return st


def _post(relay: RelayCore, st: StationCore, text: str) -> Acceptance:
    item = st.send(CHANNEL, body_mod.Text("en", text))
    result = relay.accept([(st.ident, item.envelope)])[0]
    assert isinstance(result, Acceptance), result
    st.on_accepted(frames.decode_relay_frame(frames.encode_frame(result.frame(None))))
    return result


def _deliver(relay: RelayCore, st: StationCore) -> None:
    start = st.size(CHANNEL)
    frame = relay.entries_frame(
        CHANNEL, relay.entries(CHANNEL, start, relay.size(CHANNEL)), start, None
    )
    st.on_entries(frames.decode_relay_frame(frames.encode_frame(frame)))


def _valid(st: StationCore) -> dict[int, bool]:
    return {e.index: e.valid for e in st.store.entries(CHANNEL)}


# --- item 2: a revocation takes effect at its position, never earlier ------------------------


def test_a_backdated_revocation_leaves_what_was_logged_before_it_valid(
    world: World, tmp_path: Path
) -> None:
    relay = _relay(world, tmp_path)
    us, ru = _station(world, tmp_path, "us"), _station(world, tmp_path, "ru")
    said = [_post(relay, us, f"order {i}").entry.index for i in range(2)]
    _deliver(relay, ru)
    _deliver(relay, us)
    # us now wishes it had not said it: it revokes its key "from a day ago".
    backdated = world.parties["us"].revoke(world.certs["us"], int(time.time()) - 86400, "lost")
    relay.register_revocation(backdated.encode())
    (logged,) = [
        e
        for e in relay.entries(CHANNEL, 0, relay.size(CHANNEL))
        if e.envelope == backdated.encode()
    ]
    assert logged.index > max(said)
    _deliver(relay, ru)
    assert all(_valid(ru)[i] for i in said)
    # A station that joins later reads the whole log and takes them too.
    late = _station(world, tmp_path, "ru", "ru-late")
    _deliver(relay, late)
    assert all(_valid(late)[i] for i in said) and _valid(late)[logged.index]
    assert [m.index for m in late.store.messages(CHANNEL) if m.party == "us"] == said
    # (its receipts wait: us has no usable key left to seal them to)
    assert {a.kind for a in late.store.alarms()} <= {AlarmKind.RECEIPT_NOT_SENT}
    # And ru's export verifies, the revocation in its key history at its position.
    report = verify(export(ru, CHANNEL, with_bodies=True))
    assert report.ok, [str(f) for f in report.failures]
    assert report.parties["us"].sent == 2
    assert report.key_history[-1].startswith(f"#{logged.index} revocation of us/us-1")
    # The relay refuses us-1's key from that position on.
    after = us.send(CHANNEL, body_mod.Text("en", "after")).envelope
    assert isinstance(relay.accept([(us.ident, after)])[0], RevokedKey)


def test_a_backdated_revocation_makes_nothing_before_it_unverifiable_offline() -> None:
    log = exchange()
    log.revoke("us", T0 - 3600)  # "revoked" before anything of the exchange was logged
    log.checkpoint("us", "ru")
    report = verify(log.transcript())
    assert report.ok, [str(f) for f in report.failures]
    assert report.parties["us"].sent == 3


# --- item 10: an exporter cannot leave a revocation out ---------------------------------------


def _revoked_then_spoken() -> tuple[ChannelLog, int, int]:
    """us's key is revoked (logged at ``rev``), then a thief signs with it (at ``stolen``)."""
    log = exchange()
    log.revoke("us", log.now_ms // 1000)
    rev = len(log.entries) - 1
    stolen = log.log(log.seal("us", body_mod.text("the thief speaks", "en")))
    log.checkpoint("ru")
    return log, rev, stolen


def test_an_envelope_after_its_keys_revocation_is_named_by_verify() -> None:
    log, rev, stolen = _revoked_then_spoken()
    report = verify(log.transcript(bodies=False))
    assert [(f.index, f.code) for f in report.failures] == [(stolen, "revoked_key")]
    assert f"revoked by entry #{rev}" in report.failures[0].reason


def test_a_transcript_with_its_revocation_removed_fails_verify() -> None:
    log, rev, _ = _revoked_then_spoken()
    doc = log.transcript(bodies=False)
    cut = copy.deepcopy(doc)
    del cut["entries"][rev]
    for i, e in enumerate(cut["entries"]):
        e["index"] = i
    report = verify(cut)
    assert not report.ok and "bad_proof" in {f.code for f in report.failures}
    # Passing it off as an envelope (or anything but a key event) changes its leaf too.
    relabelled = copy.deepcopy(doc)
    relabelled["entries"][rev]["kind"] = "envelope"
    assert "bad_proof" in {f.code for f in verify(relabelled).failures}


# --- an envelope outside its key's span is refused by relay, stations and verify -------------


def test_an_envelope_after_its_keys_revocation_is_refused_by_relay_and_stations(
    world: World, tmp_path: Path
) -> None:
    relay = _relay(world, tmp_path)
    us, ru = _station(world, tmp_path, "us"), _station(world, tmp_path, "ru")
    _post(relay, us, "before")
    revocation = world.parties["us"].revoke(world.certs["us"], int(time.time()) + 3600, "stolen")
    relay.register_revocation(revocation.encode())
    stolen = us.send(CHANNEL, body_mod.Text("en", "after")).envelope
    # revoked_at is an hour ahead: it counts for nothing, the log position does.
    (refused,) = relay.accept([(us.ident, stolen)])
    assert isinstance(refused, RevokedKey)
    # A relay that ignores the revocation logs it anyway: ru refuses it, with evidence.
    relay.keyring.revocations.clear()
    (logged,) = relay.accept([(us.ident, stolen)])
    assert isinstance(logged, Acceptance)
    _deliver(relay, ru)
    assert _valid(ru)[logged.entry.index] is False
    (alarm,) = [a for a in ru.store.alarms() if a.index == logged.entry.index]
    assert alarm.kind == AlarmKind.VERIFICATION and alarm.evidence == stolen
    assert "revoked by entry" in alarm.message
    assert [m.index for m in ru.store.messages(CHANNEL)] == [2]  # "before" alone


def test_an_envelope_before_its_keys_certificate_is_refused_by_stations_and_verify(
    world: World, tmp_path: Path
) -> None:
    # A relay that knows us-1's certificate but logs us-1's envelope before it.
    relay = RelayCore(SqliteRelayStore(tmp_path / "relay.db"), world.roster, world.relay)
    relay.register_certificate(world.certs["ru"].encode())
    relay.keyring.add_certificate(world.certs["us"].encode())  # known, not logged
    us, ru = _station(world, tmp_path, "us"), _station(world, tmp_path, "ru")
    early = _post(relay, us, "too early").entry.index
    relay.register_certificate(world.certs["us"].encode())  # logged only now
    later = _post(relay, us, "in time").entry.index
    _deliver(relay, ru)
    assert _valid(ru)[early] is False
    (alarm,) = [a for a in ru.store.alarms() if a.index == early]
    assert "no certificate of us/us-1 is logged before entry" in alarm.message
    # Its chain link never stood, so the next one does not follow: it fails as well.
    assert _valid(ru)[later] is False
    log = ChannelLog(exchange().world, certify=False)
    first = log.message("us", "uncertified")
    log.key_event(log.world.certs["us"].encode())
    log.key_event(log.world.certs["ru"].encode())
    log.message("ru", "certified")
    log.checkpoint("ru")
    report = verify(log.transcript(bodies=False))
    assert [(f.index, f.code) for f in report.failures] == [(first, "unknown_key")]


# --- key events that fail are alarms with evidence ------------------------------------------


def test_a_key_event_of_another_partys_root_is_an_alarm_and_counts_for_nothing(
    world: World, tmp_path: Path
) -> None:
    relay = _relay(world, tmp_path)
    us, ru = _station(world, tmp_path, "us"), _station(world, tmp_path, "ru")
    _post(relay, us, "from us")
    # A lying relay logs ru's revocation of us-1 (item 1's lie) as a key event.
    lie = world.parties["ru"].revoke(world.certs["us"], 0, "ru says so").encode()
    relay._log_statement(lie, ["us-ru"])  # the lie no honest path makes
    after = _post(relay, us, "still us").entry.index
    _deliver(relay, ru)
    (alarm,) = [a for a in ru.store.alarms() if a.kind == AlarmKind.BAD_CERTIFICATE]
    assert alarm.evidence == lie and alarm.level == 3
    assert _valid(ru)[after] is True


# --- the rule itself, against a model ---------------------------------------------------------


_KEYS = 3
_US = PartyKey.generate("us")
_STATIONS = [StationKey.generate("us", f"us-{k}") for k in range(_KEYS)]
_CERTS = [_US.certify(s, T0, T0 + 1000) for s in _STATIONS]
_REVOKES = [_US.revoke(c, T0 - 10_000, "backdated") for c in _CERTS]
_ENVELOPES = [
    seal(
        b"x",
        sender=s,
        channel=CHANNEL,
        seq=1,
        prev=ZERO_HASH,
        recipients=[_CERTS[0]],
        created_ms=T0 * 1000,
    )
    for s in _STATIONS
]

_STEP = st.tuples(st.sampled_from(["cert", "revoke", "envelope"]), st.integers(0, _KEYS - 1))


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(_STEP, max_size=25), late=st.booleans())
def test_key_history_follows_log_positions_as_the_model_does(
    steps: list[tuple[str, int]], late: bool
) -> None:
    """Model: an envelope of key k at position i holds iff a certificate of k is before i,
    no revocation of k is before i, and its time is within the certificate's validity; a
    revocation of a key not certified before it is refused and changes nothing."""
    history = KeyHistory({"us": _US.verifier}, frozenset({"us", "ru"}))
    certified: set[int] = set()
    revoked: set[int] = set()
    relay_ms = (T0 + (2000 if late else 10)) * 1000
    for index, (what, k) in enumerate(steps):
        if what == "cert":
            history.take(_CERTS[k].encode(), index=index, relay_ms=relay_ms)
            certified.add(k)
        elif what == "revoke":
            if k in certified:
                history.take(_REVOKES[k].encode(), index=index, relay_ms=relay_ms)
                revoked.add(k)
            else:
                with pytest.raises(UnknownKey):
                    history.take(_REVOKES[k].encode(), index=index, relay_ms=relay_ms)
        else:
            env = parse(_ENVELOPES[k])
            expected: type[HotlineError] | None = (
                UnknownKey
                if k not in certified
                else KeyNotValid
                if late
                else RevokedKey
                if k in revoked
                else None
            )
            if expected is None:
                cert = history.verify(env, index=index, relay_ms=relay_ms)
                assert cert.signing == _STATIONS[k].signing_public
            else:
                with pytest.raises(expected):
                    history.verify(env, index=index, relay_ms=relay_ms)
    assert [e.index for e in history.events] == sorted(e.index for e in history.events)


# --- party root rotation: a new roster version, logged as a key event ------------------------


def _roster_v2(world: World, *, old_us_signs: bool = True) -> tuple[bytes, PartyKey]:
    """Roster v2: us has a new root. Signed by every party's root in v2 and, for the
    rotation to count, by every party's current (v1) root: us signs with both."""
    new_us = PartyKey.generate("us")
    roots = {**world.parties, "us": new_us}
    langs = {"us": "en", "ru": "ru", "ua": "uk", "ae": "en"}
    text = roster_text(
        "abu-dhabi",
        {p: {**k.public_keys(), "language": langs[p]} for p, k in roots.items()},
        {"us-ru": {"members": ["us", "ru"]}, "us-ru-ua": {"members": ["us", "ru", "ua"]}},
        world.relay.verifier.encode(),
        version=2,
    )
    note = sign_roster(text, new_us)
    for p in ("ru", "ua", "ae"):
        note = sign_roster(note, world.parties[p])
    if old_us_signs:  # `roster sign` with the current root too: both keep their lines
        note = sign_roster(note, world.parties["us"])
        assert len([sig for sig in note.signatures if sig.name == "us"]) == 4
    return note.encode(), new_us


def test_a_new_roster_version_rotates_a_party_root_from_its_position() -> None:
    log = exchange()
    v2, new_us = _roster_v2(log.world)
    early = log.key_event(new_us.certify(StationKey.generate("us", "us-2"), T0, T0 + 9999).encode())
    at = log.key_event(v2)
    station = StationKey.generate("us", "us-1")  # us-1's new key, under the new root
    cert = new_us.certify(station, T0, T0 + 9999)
    log.key_event(cert.encode())
    log.world.stations["us"], log.world.certs["us"] = station, cert
    spoken = log.message("us", "under the new root")
    log.checkpoint("us", "ru")
    report = verify(log.transcript(bodies=False))
    # The new root's certificate counts from the roster's position, not before it.
    assert [(f.index, f.code) for f in report.failures] == [(early, "bad_signature")]
    assert spoken not in {f.index for f in report.failures}
    assert report.key_history[-2] == f"#{at} roster abu-dhabi v2 (party roots from here on)"


def test_a_roster_version_not_signed_by_a_current_root_is_refused() -> None:
    log = exchange()
    v2, _ = _roster_v2(log.world, old_us_signs=False)  # us's old root never agreed
    at = log.key_event(v2)
    log.checkpoint("ru")
    report = verify(log.transcript(bodies=False))
    assert [(f.index, f.code) for f in report.failures] == [(at, "bad_signature")]
    assert "current root of us" in report.failures[0].reason
    older = exchange()
    older.key_event(older.world.roster.encode())  # the one in force: no change, no error
    older.checkpoint("ru")
    assert verify(older.transcript(bodies=False)).ok


def test_a_relay_given_a_new_roster_version_logs_it_once_in_every_channel(
    world: World, tmp_path: Path
) -> None:
    relay = _relay(world, tmp_path)
    us = _station(world, tmp_path, "us")
    _post(relay, us, "under v1")
    sizes = {c: relay.size(c) for c in world.roster.channels}
    relay.store.close()
    v2, _ = _roster_v2(world)
    roster2 = open_roster(v2)
    for _ in range(2):  # a second start logs nothing again
        again = RelayCore(SqliteRelayStore(tmp_path / "relay.db"), roster2, world.relay)
        for channel, size in sizes.items():
            assert again.size(channel) == size + 1
            (last,) = again.entries(channel, size, size + 1)
            assert last.envelope == v2 and last.kind == LeafKind.KEY_EVENT
        again.store.close()
    with pytest.raises(Malformed, match="older than v2"):
        RelayCore(SqliteRelayStore(tmp_path / "relay.db"), world.roster, world.relay)


def test_a_relay_log_from_before_key_events_refuses_to_start(world: World, tmp_path: Path) -> None:
    relay = _relay(world, tmp_path)
    _post(relay, _station(world, tmp_path, "us"), "one")
    relay.store.close()
    with sqlite3.connect(tmp_path / "relay.db") as db:  # its first entry, as an envelope
        db.execute("UPDATE entry SET sender='us/us-1' WHERE idx=0")
    with pytest.raises(Malformed, match="written before key events"):
        _relay(world, tmp_path)


def test_a_revocation_handed_over_again_is_logged_once(world: World, tmp_path: Path) -> None:
    """A station hands its revocation to a relay until it sees it in that relay's log
    (station/keysubmit.py): handing it over again must change nothing there."""
    relay = _relay(world, tmp_path)
    us = _station(world, tmp_path, "us")
    _post(relay, us, "before")
    revocation = world.parties["us"].revoke(world.certs["us"], int(time.time()), "rotated")
    size = relay.size(CHANNEL)
    for _ in range(3):
        relay.register_revocation(revocation.encode())
    assert relay.size(CHANNEL) == size + 1


def test_a_station_owes_its_revocation_until_it_takes_it_from_the_log(
    world: World, tmp_path: Path
) -> None:
    """The relay's ``ok`` is not taken for the log: a revocation a station submitted stays
    owed (kept in its store, across a restart) until the relay's log shows it."""
    relay = _relay(world, tmp_path)
    us = _station(world, tmp_path, "us")
    _post(relay, us, "before")
    revocation = world.parties["us"].revoke(world.certs["us"], int(time.time()), "rotated")
    digest = us.submit_key_event("revocation", revocation.encode())
    assert us.submit_key_event("revocation", revocation.encode()) == digest  # once
    (owed,) = us.key_events_owed()
    assert owed.hash == digest and owed.data == revocation.encode()
    relay.register_revocation(revocation.encode())  # "ok": still owed until seen
    assert [o.hash for o in us.key_events_owed()] == [digest]
    us.store.close()
    us = _station(world, tmp_path, "us")  # a restart: still owed
    assert [o.hash for o in us.key_events_owed()] == [digest]
    _deliver(relay, us)
    assert us.key_events_owed() == []
    (event,) = [e for e in us.key_events_view() if e["kind"] == "revocation"]
    assert not event["pending"] and event["logged_ms"] is not None
    # Only its own party's key events: another party's revocation is not a station's to give.
    other = world.parties["ru"].revoke(world.certs["ru"], int(time.time()), "not yours")
    with pytest.raises(HotlineError):
        us.submit_key_event("revocation", other.encode())
