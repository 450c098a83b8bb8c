"""A relay that orders one station's log differently is caught by the next receipt's
carried checkpoint, even when every sender's chain stays intact (no network needed)."""

from __future__ import annotations

from pathlib import Path

from hotline import frames
from hotline.relay.core import Acceptance, RelayCore
from hotline.relay.sqlite import SqliteRelayStore
from hotline.station.alarms import AlarmKind
from hotline.station.core import StationCore
from hotline.station.store import OutboxState, StationStore

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
    m_us = us.send("us-ru", {"type": "text", "lang": "en", "text": "from us"})
    m_ru = ru.send("us-ru", {"type": "text", "lang": "ru", "text": "от ru"})
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
