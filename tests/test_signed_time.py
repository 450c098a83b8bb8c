"""Time is signed: the relay's time of each entry is inside its Merkle leaf (leaf format
v2), so the checkpoint covers it, and a station refuses times that go back, leave the
signed times of its checkpoints, or run far ahead of its own clock.

Driven in-process: a relay core (honest, or told to lie about time) hands its frames to
station cores. Offline, `hotline verify` names an edited time: see test_verify_tamper.py.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from hotline import body as body_mod
from hotline import envelope as env_mod
from hotline import frames
from hotline.envelope import Precedence
from hotline.errors import Malformed
from hotline.merkle import leaf_hash
from hotline.relay.core import Acceptance, RelayCore
from hotline.relay.sqlite import SqliteRelayStore
from hotline.relay.storage import StoredEntry
from hotline.station.alarms import AlarmKind, AlarmRecord
from hotline.station.core import StationCore
from hotline.station.store import OutboxState, StationStore

from .conftest import World

CHANNEL = "us-ru"
MONTH_S = 30 * 86400


class Clock:
    """One time for the relay and the stations, moved on by the test."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class LyingClockCore(RelayCore):
    """A relay that stamps entries with ``forged_ms`` when set (checking the envelope's key
    at that time if it is past, so a revoked key passes), or signs its checkpoints
    ``sign_early_ms`` before the time it gives the entries."""

    forged_ms: int | None = None
    sign_early_ms = 0

    def _check(self, station: str, raw: bytes, now_s: int) -> env_mod.Envelope:
        return super()._check(station, raw, min(now_s, int(self.clock())))

    def _accept_one(
        self, station: str, raw: bytes, now_ms: int, touched: set[str]
    ) -> tuple[StoredEntry, bool]:
        return super()._accept_one(station, raw, self.forged_ms or now_ms, touched)

    def _sign(self, channel: str, now_ms: int) -> bytes:
        return super()._sign(channel, max(now_ms, self.forged_ms or 0) - self.sign_early_ms)


def _relay(world: World, tmp: Path, clock: Clock) -> LyingClockCore:
    core = LyingClockCore(SqliteRelayStore(tmp / "relay.db"), world.roster, world.relay, clock)
    for cert in world.certs.values():
        core.register_certificate(cert.encode())
    return core


def _station(world: World, tmp: Path, party: str, clock: Clock) -> StationCore:
    st = StationCore(
        StationStore(tmp / f"{party}.db"),
        world.stations[party],
        world.certs[party],
        world.roster,
        clock,
    )
    st.add_statements([c.encode() for c in world.certs.values()], [])
    return st


def _post(relay: RelayCore, st: StationCore, raw: bytes) -> Acceptance:
    result = relay.accept([(st.ident, raw)])[0]
    assert isinstance(result, Acceptance), result
    st.on_accepted(frames.decode_relay_frame(frames.encode_frame(result.frame(None))))
    return result


def _send(
    relay: RelayCore,
    st: StationCore,
    text: str,
    precedence: Precedence = Precedence.ROUTINE,
) -> Acceptance:
    """Send a message, after whatever the station queued before it (its receipts)."""
    st.send(CHANNEL, body_mod.Text("en", text), precedence=precedence)
    return [_post(relay, st, i.envelope) for i in st.store.outbox(OutboxState.QUEUED)][-1]


def _deliver(relay: RelayCore, st: StationCore) -> None:
    start = st.size(CHANNEL)
    frame = relay.entries_frame(
        CHANNEL, relay.entries(CHANNEL, start, relay.size(CHANNEL)), start, None
    )
    st.on_entries(frames.decode_relay_frame(frames.encode_frame(frame)))


def _alarms(st: StationCore, kind: AlarmKind) -> list[AlarmRecord]:
    return [a for a in st.store.alarms() if a.kind == kind]


def _texts(st: StationCore) -> list[str]:
    """The texts of the channel's messages this station holds, in log order."""
    held = sorted(st.store.messages(CHANNEL), key=lambda m: m.index)
    return [json.loads(m.body).get("text", "") for m in held]


def test_an_honest_relays_times_never_go_back_even_when_its_clock_does(
    world: World, tmp_path: Path
) -> None:
    clock, relay_clock = Clock(), Clock()
    relay, us, ru = (
        _relay(world, tmp_path, relay_clock),
        _station(world, tmp_path, "us", clock),
        _station(world, tmp_path, "ru", clock),
    )
    first = _send(relay, us, "before the clock steps back")
    relay_clock.offset -= 3600  # the relay's wall clock steps back an hour
    second = _send(relay, us, "after it")
    assert second.entry.relay_ms >= first.entry.relay_ms
    _deliver(relay, ru)
    assert _texts(ru) == ["before the clock steps back", "after it"]
    assert ru.store.alarms() == [] and _alarms(us, AlarmKind.BAD_ACCEPTANCE) == []


def test_a_message_of_a_revoked_key_backdated_before_its_revocation_is_refused(
    world: World, tmp_path: Path
) -> None:
    clock = Clock()
    relay, us, ru = (
        _relay(world, tmp_path, clock),
        _station(world, tmp_path, "us", clock),
        _station(world, tmp_path, "ru", clock),
    )
    _send(relay, us, "before the theft")
    _deliver(relay, ru)
    revoked_at = int(clock())
    revocation = world.parties["us"].revoke(world.certs["us"], revoked_at, "key stolen")
    relay.register_revocation(revocation.encode())  # logged: a key event
    relay.keyring.revocations.clear()  # and then ignored by this relay
    clock.offset += 60
    _send(relay, ru, "ru speaks after the revocation")
    _deliver(relay, ru)  # ru's verified checkpoint is signed after the revocation
    ru.add_statements([], [revocation.encode()])
    # The thief holds us-1's key; the relay logs its message as if before the revocation,
    # the forged time inside the leaf and the checkpoint signed over it.
    relay.forged_ms = revoked_at * 1000 - 1000
    stolen = us.send(CHANNEL, body_mod.Text("en", "stolen"), precedence=Precedence.FLASH)
    logged = relay.accept([(us.ident, stolen.envelope)])[0]
    assert isinstance(logged, Acceptance) and logged.entry.relay_ms == relay.forged_ms
    _deliver(relay, ru)
    (alarm,) = _alarms(ru, AlarmKind.BAD_CHECKPOINT)
    # 0, 1 certificates, 2 us, 3 ru's receipt, 4 the revocation, 5 ru, 6 the thief
    assert alarm.level == 3 and alarm.index == 6
    assert "before the signed time" in alarm.message  # of ru's last checkpoint: time went back
    assert _texts(ru) == ["before the theft", "ru speaks after the revocation"]
    assert ru.size(CHANNEL) == 6  # nothing of the run was taken in
    assert _alarms(ru, AlarmKind.FLASH) == []


def test_a_flash_logged_a_month_ahead_is_refused_and_its_deadline_never_starts(
    world: World, tmp_path: Path
) -> None:
    clock = Clock()
    relay = _relay(world, tmp_path, clock)
    us, ru = _station(world, tmp_path, "us", clock), _station(world, tmp_path, "ru", clock)
    _send(relay, us, "routine")
    _deliver(relay, ru)
    relay.forged_ms = int((clock() + MONTH_S) * 1000)  # the deadline would be a month out
    flash = us.send(CHANNEL, body_mod.Text("en", "launch detected"), precedence=Precedence.FLASH)
    result = relay.accept([(us.ident, flash.envelope)])[0]
    assert isinstance(result, Acceptance)
    # Signed consistently (checkpoint at that time too), yet a month ahead of ru's clock.
    cp_time = relay.checkpoint(CHANNEL, 4).decode().split("\n")[3]
    assert cp_time == f"time {relay.forged_ms}"
    _deliver(relay, ru)
    (alarm,) = _alarms(ru, AlarmKind.BAD_CHECKPOINT)
    assert alarm.level == 3 and "ahead of this station's clock" in alarm.message
    assert ru.size(CHANNEL) == 3 and _alarms(ru, AlarmKind.FLASH) == []
    assert [p.index for p in ru.pending_acks(ru.state.now_ms() + MONTH_S * 2000)] == [2]
    # The sender's own acceptance of it is refused too.
    us.on_accepted(frames.decode_relay_frame(frames.encode_frame(result.frame(None))))
    assert [a.subject for a in _alarms(us, AlarmKind.BAD_ACCEPTANCE)] == ["seq 2"]


def test_an_entry_time_beyond_its_checkpoints_signed_time_is_refused(
    world: World, tmp_path: Path
) -> None:
    clock = Clock()
    relay = _relay(world, tmp_path, clock)
    us, ru = _station(world, tmp_path, "us", clock), _station(world, tmp_path, "ru", clock)
    relay.sign_early_ms = 60_000  # the relay signs as if before the entries it holds
    _send(relay, us, "logged after the checkpoint's time")
    (refused,) = _alarms(us, AlarmKind.BAD_ACCEPTANCE)
    assert "after the signed time" in refused.message
    _deliver(relay, ru)
    (alarm,) = _alarms(ru, AlarmKind.BAD_CHECKPOINT)
    assert "after the signed time" in alarm.message and ru.size(CHANNEL) == 0


def test_an_entry_served_again_at_another_time_is_a_fork(world: World, tmp_path: Path) -> None:
    clock = Clock()
    relay = _relay(world, tmp_path, clock)
    us, ru = _station(world, tmp_path, "us", clock), _station(world, tmp_path, "ru", clock)
    _send(relay, us, "once")
    _deliver(relay, ru)
    frame = relay.entries_frame(CHANNEL, relay.entries(CHANNEL, 0, 1), 0, None)
    (entry,) = frame.entries
    moved = frames.Entry(entry.index, entry.envelope, entry.relay_ms - 3_600_000)
    lie = frames.Entries(None, CHANNEL, 0, (moved,), frame.checkpoint, (), False)
    ru.on_entries(frames.decode_relay_frame(frames.encode_frame(lie)))
    (alarm,) = _alarms(ru, AlarmKind.FORK)
    assert alarm.index == 0


def test_a_relay_store_from_before_the_time_was_in_the_leaf_refuses_to_start(
    world: World, tmp_path: Path
) -> None:
    clock = Clock()
    relay = _relay(world, tmp_path, clock)
    us = _station(world, tmp_path, "us", clock)
    _send(relay, us, "v1")
    raw = relay.store.entries(CHANNEL, 0, 1)[0].envelope  # the first entry: a certificate
    relay.store.close()
    with sqlite3.connect(tmp_path / "relay.db") as db:  # its leaf as leaf format v1 had it
        db.execute("UPDATE node SET hash=? WHERE level=0 AND idx=0", (leaf_hash(raw),))
    with pytest.raises(Malformed, match="before leaf format v2"):
        _relay(world, tmp_path, clock)
