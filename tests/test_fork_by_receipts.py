"""What others log is checked before a station takes it in (no network needed).

A relay that orders one station's log differently is caught by the next receipt's
carried checkpoint, even when every sender's chain stays intact; a relay that logs a
non-member's envelope, or a station whose receipt carries a forged cosignature, is
caught too, and the lie stays out of the station's store.
"""

from __future__ import annotations

from pathlib import Path

from hotline import body as body_mod
from hotline import envelope as env_mod
from hotline import frames
from hotline.envelope import Kind
from hotline.notes import NoteSignature
from hotline.relay.core import Acceptance, RelayCore
from hotline.relay.sqlite import SqliteRelayStore
from hotline.station.alarms import AlarmKind
from hotline.station.core import StationCore
from hotline.station.export import export
from hotline.station.store import OutboxState, StationStore
from hotline.transcript import verify

from .conftest import World


def _core(world: World, tmp: Path, name: str) -> RelayCore:
    core = RelayCore(SqliteRelayStore(tmp / f"{name}.db"), world.roster, world.relay)
    for cert in world.certs.values():
        core.register_certificate(cert.encode())
    return core


def _station(world: World, tmp: Path, party: str) -> StationCore:
    st = StationCore(
        StationStore(tmp / f"{party}.db"), world.stations[party], world.certs[party], world.roster
    )
    st.add_statements([c.encode() for c in world.certs.values()], [])
    return st


def _post(relay: RelayCore, station: StationCore, raw: bytes) -> Acceptance:
    result = relay.accept([(station.ident, raw)])[0]
    assert isinstance(result, Acceptance), result
    return result


def _deliver(relay: RelayCore, station: StationCore, channel: str) -> None:
    """Give ``station`` everything of ``relay``'s log it does not have yet."""
    start = station.size(channel)
    frame = relay.entries_frame(
        channel, relay.entries(channel, start, relay.size(channel)), start, None
    )
    station.on_entries(frames.decode_relay_frame(frames.encode_frame(frame)))


def test_two_orders_of_the_same_envelopes_are_caught_by_the_next_receipt(
    world: World, tmp_path: Path
) -> None:
    honest, forked = _core(world, tmp_path, "a"), _core(world, tmp_path, "b")
    us, ru = _station(world, tmp_path, "us"), _station(world, tmp_path, "ru")
    # Two messages, one from each side, sealed before anyone saw the other.
    m_us = us.send("us-ru", body_mod.Text("en", "from us"))
    m_ru = ru.send("us-ru", body_mod.Text("ru", "от ru"))
    # The relay logs them in one order for us and in the other order for ru.
    _post(honest, us, m_us.envelope)
    _post(honest, ru, m_ru.envelope)
    _post(forked, ru, m_ru.envelope)
    _post(forked, us, m_us.envelope)
    _deliver(honest, us, "us-ru")
    _deliver(forked, ru, "us-ru")
    # Each view on its own is valid: signatures, chains, roots all check out.
    assert us.store.alarms(cleared_too=True) == [] and ru.store.alarms(cleared_too=True) == []
    # ru's delivered receipt carries ru's checkpoint; the relay logs it for us too.
    receipt = ru.store.outbox(OutboxState.QUEUED)[0]
    _post(forked, ru, receipt.envelope)
    _post(honest, ru, receipt.envelope)
    _deliver(honest, us, "us-ru")
    alarms = us.store.alarms(cleared_too=True)
    assert any(a.kind == AlarmKind.FORK and a.evidence for a in alarms), alarms


class _OpenDoorRelay(RelayCore):
    """A relay that logs envelopes of any party in any channel."""

    def may_read(self, party: str, channel: str) -> None:
        pass


def test_an_envelope_of_a_party_outside_the_channel_is_not_taken_in(
    world: World, tmp_path: Path
) -> None:
    relay = _OpenDoorRelay(SqliteRelayStore(tmp_path / "relay.db"), world.roster, world.relay)
    for cert in world.certs.values():
        relay.register_certificate(cert.encode())
    us, ru = _station(world, tmp_path, "us"), _station(world, tmp_path, "ru")
    _post(relay, us, us.send("us-ru", body_mod.Text("en", "from us")).envelope)
    # ua is not a member of us-ru, yet its station's envelope is validly signed and sealed.
    ua = world.stations["ua"]
    raw = env_mod.seal(
        body_mod.encode(body_mod.Text("uk", "від ua")),
        sender=ua,
        channel="us-ru",
        seq=1,
        prev=env_mod.ZERO_HASH,
        recipients=[world.certs["us"], world.certs["ru"]],
        created_ms=ru.now_ms(),
    )
    (logged,) = relay.accept([(ua.ident, raw)])
    assert isinstance(logged, Acceptance)
    _deliver(relay, ru, "us-ru")
    (alarm,) = ru.store.alarms(cleared_too=True)
    assert alarm.kind == AlarmKind.VERIFICATION and alarm.index == logged.entry.index
    assert "not a member of us-ru" in alarm.message and alarm.evidence == raw
    assert [m.sender for m in ru.store.inbox(ru.ident, "us-ru", 10)] == ["us/us-1"]
    assert [(e.sender, e.valid) for e in ru.store.entries("us-ru") if e.sender] == [
        ("us/us-1", True),
        ("ua/ua-1", False),
    ]


def test_a_forged_cosignature_in_a_receipt_is_not_kept(world: World, tmp_path: Path) -> None:
    relay = _core(world, tmp_path, "relay")
    us, ru = _station(world, tmp_path, "us"), _station(world, tmp_path, "ru")
    message = us.send("us-ru", body_mod.Text("en", "from us"))
    at = _post(relay, us, message.envelope).entry.index
    _deliver(relay, us, "us-ru")
    _deliver(relay, ru, "us-ru")
    # ru's receipt carries the checkpoint it verified, with a cosignature it claims ua made.
    seen = ru.verified("us-ru")
    assert seen is not None
    witness = world.stations["ua"].cosigner()
    forged = NoteSignature(witness.name, witness.verifier.key_hash, bytes(8) + bytes(64))
    note = seen.note.with_signature(forged).encode().decode()
    (delivered,) = ru.store.outbox(OutboxState.QUEUED)
    _post(relay, ru, delivered.envelope)
    lie = ru.send(
        "us-ru",
        body_mod.receipt(body_mod.ReceiptStatus.DELIVERED, at, message.hash, note.encode()),
        kind=Kind.RECEIPT,
    )
    _post(relay, ru, lie.envelope)
    _deliver(relay, us, "us-ru")
    # ua is no member of us-ru, so no witness of its log: its "cosignature" counts for
    # nothing and is not kept (a member's forged one is a BadSignature: test_logcheck.py).
    assert not [a for a in us.store.alarms(cleared_too=True) if a.kind == AlarmKind.FORK]
    kept = b"".join(us.store.checkpoints("us-ru"))
    assert witness.name.encode() not in kept  # nothing of ua's was planted
    assert ru.ident.encode() in kept  # ru's true cosignature, from its first receipt, was
    report = verify(export(us, "us-ru", with_bodies=True))
    assert report.ok, report.failures


def test_a_certificate_learnt_after_the_first_check_is_used_by_the_next(
    world: World, tmp_path: Path
) -> None:
    relay = _core(world, tmp_path, "relay")
    ru = _station(world, tmp_path, "ru")
    us = StationCore(
        StationStore(tmp_path / "us.db"), world.stations["us"], world.certs["us"], world.roster
    )
    before = us.state.log("us-ru")  # the checks' view of us-ru, built before ru is known
    us.add_statements([world.certs["ru"].encode()], [])
    assert us.state.log("us-ru") is before
    _post(relay, ru, ru.send("us-ru", body_mod.Text("ru", "от ru")).envelope)
    _deliver(relay, us, "us-ru")
    assert us.store.alarms(cleared_too=True) == []
    assert [m.sender for m in us.store.inbox(us.ident, "us-ru", 10)] == ["ru/ru-1"]
