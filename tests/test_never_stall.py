"""One bad entry never stops a station: it is recorded, alarmed, and the channel flows.

Driven in-process: a test log signs checkpoints with the relay's key over whatever
envelopes a test puts in it (as a relay would, or a relay that checks nothing), and
hands each station the entries it has not seen. Orders are forced, never hoped for.
"""

from __future__ import annotations

import json
import sqlite3
import struct
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from hotline import body as body_mod
from hotline import envelope as env_mod
from hotline import frames, hybrid
from hotline import link as link_mod
from hotline.errors import Malformed, TooLarge
from hotline.keys import (
    MAX_CERTIFICATES_PER_STATION,
    MAX_STATIONS_PER_PARTY,
    KeyRing,
    StationCertificate,
    StationKey,
)
from hotline.leaf import LeafKind, leaf_data
from hotline.merkle import MerkleTree
from hotline.notes import Checkpoint, sign_checkpoint
from hotline.station import store as store_mod
from hotline.station.alarms import Alarm, AlarmKind, AlarmRecord
from hotline.station.core import StationCore
from hotline.station.store import OutboxState, StationStore
from hotline.wire import Writer

from .conftest import World, make_world

CHANNEL = "us-ru-ua"


class TestLog:
    """A channel's log as a relay keeps it: entries, and checkpoints signed over them."""

    __test__ = False

    def __init__(
        self, world: World, channel: str = CHANNEL, certify: tuple[str, ...] = ("us", "ru", "ua")
    ) -> None:
        self.world, self.channel = world, channel
        self.entries: list[bytes] = []
        self.times: list[int] = []  # the relay's time of each entry
        self.kinds: list[LeafKind] = []
        for party in certify:  # as the relay logs them, before their stations' envelopes
            self.add(world.certs[party].encode(), LeafKind.KEY_EVENT)

    def add(self, raw: bytes, kind: LeafKind = LeafKind.ENVELOPE) -> int:
        self.entries.append(raw)
        self.times.append(int(time.time() * 1000))
        self.kinds.append(kind)
        return len(self.entries) - 1

    def deliver(self, station: StationCore) -> None:
        """Give ``station`` every entry it does not have yet, as one frame."""
        station.on_entries(self.frame(station))

    def frame(self, station: StationCore) -> frames.Entries:
        """Every entry ``station`` does not have yet, as one frame (as decoded off the wire)."""
        start, size = station.size(self.channel), len(self.entries)
        tree = MerkleTree()
        tree.append_many(
            [
                leaf_data(t, raw, kind)
                for t, raw, kind in zip(self.times, self.entries, self.kinds, strict=True)
            ]
        )
        at = f"time {max(self.times, default=0)}"
        cp = Checkpoint(self.world.roster.origin(self.channel), size, tree.root(), (at,))
        frame = frames.Entries(
            None,
            self.channel,
            start,
            tuple(
                frames.Entry(i, raw, self.times[i], self.kinds[i])
                for i, raw in enumerate(self.entries)
                if i >= start
            ),
            sign_checkpoint(cp, self.world.relay).encode(),
            tuple(tree.consistency_proof(start, size) if 0 < start < size else []),
            False,
        )
        decoded = frames.decode_relay_frame(frames.encode_frame(frame))
        assert isinstance(decoded, frames.Entries)
        return decoded


def _station(world: World, path: Path, party: str, knows: tuple[str, ...] = ()) -> StationCore:
    st = StationCore(
        StationStore(path / f"{party}.db"), world.stations[party], world.certs[party], world.roster
    )
    st.add_statements([world.certs[p].encode() for p in knows], [])
    return st


def _everyone(world: World, path: Path, party: str) -> StationCore:
    return _station(world, path, party, ("us", "ru", "ua"))


def _hand_sealed(world: World, sender: str, body: bytes, *, seq: int = 1, created_ms: int) -> bytes:
    """An envelope sealed and signed by ``sender``'s station with whatever values it likes
    (as a hostile sender would; ``envelope.seal`` may refuse them)."""
    key = world.stations[sender]
    recipients = [world.certs[p] for p in ("us", "ru", "ua")]
    body_key = ChaCha20Poly1305.generate_key()
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes_raw()
    wrapped = env_mod._wrap_all(eph, eph_pub, body_key, recipients, env_mod.VERSION_V2)
    w = (
        Writer()
        .raw(env_mod.MAGIC)
        .u8(env_mod.VERSION_V2)
        .u8(env_mod.Kind.MESSAGE)
        .u8(env_mod.Precedence.ROUTINE)
        .str8(CHANNEL)
        .str8(key.party)
        .str8(key.station)
        .u64(seq)
        .raw(env_mod.ZERO_HASH)
        .raw(struct.pack(">Q", created_ms))  # raw: Writer.u64 refuses what a reader would
        .raw(eph_pub)
        .u16(len(wrapped))
    )
    for ident, kem_ciphertext, wrapped_key in wrapped:
        w.str8(ident).raw(kem_ciphertext).raw(wrapped_key)
    header = w.getvalue()
    ciphertext = ChaCha20Poly1305(body_key).encrypt(env_mod._NONCE, body, header)
    signed = Writer().raw(header).bytes32(ciphertext).getvalue()
    assert key.pq is not None
    return signed + hybrid.sign(key.signing, key.pq.signing, signed)


def _text(sender: StationCore, text: str) -> bytes:
    return sender.send(CHANNEL, body_mod.Text("en", text)).envelope


def _inbox(st: StationCore) -> list[str]:
    return [json.loads(m.body)["text"] for m in reversed(st.store.inbox(st.ident, CHANNEL, 100))]


def _open(st: StationCore, kind: AlarmKind) -> list[AlarmRecord]:
    return [a for a in st.store.alarms() if a.kind == kind]


# --- item 1: an entry that cannot be taken in is a fact, not a crash ---------------------


@pytest.mark.parametrize(
    ("what", "body", "created_ms"),
    [
        ("created 2**63", body_mod.encode(body_mod.Text("uk", "x")), 2**63),
        ("body nested 30,000 deep", b"[" * 30_000 + b"]" * 30_000, 1_700_000_000_000),
    ],
)
def test_an_unreadable_entry_is_recorded_and_the_channel_flows_on_after_a_restart(
    world: World, tmp_path: Path, what: str, body: bytes, created_ms: int
) -> None:
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    log = TestLog(world)
    bad = log.add(_hand_sealed(world, "ua", body, created_ms=created_ms))
    log.add(_text(us, "after the bad one"))
    log.deliver(ru)
    assert _inbox(ru) == ["after the bad one"]
    (alarm,) = [a for a in ru.store.alarms() if a.index == bad]
    assert alarm.kind in (AlarmKind.UNREADABLE, AlarmKind.VERIFICATION), alarm
    # Named by its sender when its header parses (a created time past 2^63-1 is refused
    # while parsing, before the sender is known).
    assert alarm.message.startswith(f"unreadable entry #{bad} of {CHANNEL} from ")
    assert alarm.evidence == log.entries[bad]
    assert [e.envelope for e in ru.store.entries(CHANNEL)] == log.entries  # the mirror is whole
    assert len(ru.store.outbox(OutboxState.QUEUED)) == 1  # the delivered receipt for us
    # A restart on the same store takes the channel on from there.
    ru.store.close()
    again = _station(world, tmp_path, "ru")
    log.add(_text(us, "after the restart"))
    log.deliver(again)
    assert len(_inbox(again)) == 2
    assert again.size(CHANNEL) == 3 + 3  # after the three certificates


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (OverflowError("Python int too large to convert to SQLite INTEGER"), AlarmKind.UNREADABLE),
        (RecursionError("maximum recursion depth exceeded"), AlarmKind.UNREADABLE),
        (ValueError("surprise"), AlarmKind.UNREADABLE),
        (Malformed("a check nobody turned into an alarm"), AlarmKind.VERIFICATION),
    ],
)
def test_an_error_storing_one_entry_undoes_it_alone(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    kind: AlarmKind,
) -> None:
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    log = TestLog(world)
    one = log.add(_text(us, "one"))
    two = log.add(_text(us, "two"))
    real = StationStore.add_message

    def flaky(store: StationStore, m: store_mod.Message) -> None:
        real(store, m)  # written, then the failure: the savepoint must undo it
        if m.index == one:
            raise error

    monkeypatch.setattr(StationStore, "add_message", flaky)
    log.deliver(ru)
    assert [m.index for m in ru.store.messages(CHANNEL)] == [two]
    (alarm,) = [a for a in ru.store.alarms() if a.index == one]
    assert alarm.kind == kind and alarm.message.startswith(f"unreadable entry #{one} of us-ru-ua")
    # Its envelope verified: the sender's chain goes on through it.
    assert [e.valid for e in ru.store.entries(CHANNEL)] == [True] * 5
    assert len(ru.store.outbox(OutboxState.QUEUED)) == 1  # a receipt for #1 only


def test_a_database_error_is_not_blamed_on_an_entry(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    log = TestLog(world)
    log.add(_text(us, "one"))

    def broken(store: StationStore, m: store_mod.Message) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(StationStore, "add_message", broken)
    with pytest.raises(sqlite3.OperationalError):
        log.deliver(ru)
    assert ru.size(CHANNEL) == 0 and ru.store.entries(CHANNEL) == []
    assert _open(ru, AlarmKind.UNREADABLE) == []


# --- item 4: receipts that cannot be sealed never undo ingest ----------------------------


def test_a_receipt_that_cannot_be_sealed_waits_and_the_ingest_stands(
    world: World, tmp_path: Path
) -> None:
    us = _everyone(world, tmp_path, "us")
    ru = _station(world, tmp_path, "ru", ("us",))  # ua's station not introduced yet
    log = TestLog(world, certify=("us", "ru"))  # nor logged
    one = log.add(_text(us, "one"))
    log.deliver(ru)
    assert ru.size(CHANNEL) == 3 and len(_inbox(ru)) == 1
    assert ru.store.outbox() == []
    (alarm,) = _open(ru, AlarmKind.RECEIPT_NOT_SENT)
    assert "no station of ua is known yet" in alarm.message
    # The channel keeps flowing; the alarm counts, it does not multiply.
    log.add(_text(us, "two"))
    log.deliver(ru)
    assert ru.size(CHANNEL) == 4 and len(_inbox(ru)) == 2
    (alarm,) = _open(ru, AlarmKind.RECEIPT_NOT_SENT)
    assert alarm.count == 2
    # ua's certificate arrives: both are receipted (in one receipt, in order), the alarm ends.
    ru.add_statements([world.certs["ua"].encode()], [])
    (receipt,) = [_receipt_of(ru, i.envelope) for i in ru.store.outbox(OutboxState.QUEUED)]
    assert receipt.status == body_mod.ReceiptStatus.DELIVERED
    assert [r.of_index for r in receipt.each()] == [one, one + 1]
    assert _open(ru, AlarmKind.RECEIPT_NOT_SENT) == []


def _receipt_of(st: StationCore, raw: bytes) -> body_mod.Receipt:
    content = body_mod.parse_body(env_mod.decrypt(env_mod.parse(raw), st.key))
    assert isinstance(content, body_mod.Receipt)
    return content


def _certify(world: World, party: str, station: str) -> StationCertificate:
    t = world.certs[party].not_before
    return world.parties[party].certify(StationKey.generate(party, station), t, t + 86400)


def test_a_party_certifies_at_most_16_stations() -> None:
    world = make_world()
    ring = KeyRing(world.roster.roots())
    certs = [_certify(world, "ua", f"ua-{i}").encode() for i in range(MAX_STATIONS_PER_PARTY)]
    for cert in certs:
        ring.add_certificate(cert)
    with pytest.raises(TooLarge, match="16 stations per party"):
        ring.add_certificate(_certify(world, "ua", "ua-extra").encode())
    # Another party is not affected, nor a certificate already known, learnt again.
    ring.add_certificate(world.certs["us"].encode())
    ring.add_certificate(certs[0])
    assert len([c for c in ring.all_certificates() if c.party == "ua"]) == MAX_STATIONS_PER_PARTY


def test_a_station_has_at_most_4_certificates() -> None:
    world = make_world()
    ring = KeyRing(world.roster.roots())
    t = world.certs["ua"].not_before
    for _ in range(MAX_CERTIFICATES_PER_STATION):
        key = StationKey.generate("ua", "ua-1")
        ring.add_certificate(world.parties["ua"].certify(key, t, t + 86400).encode())
    key = StationKey.generate("ua", "ua-1")
    with pytest.raises(TooLarge, match="per station"):
        ring.add_certificate(world.parties["ua"].certify(key, t, t + 86400).encode())


def test_rotations_that_revoke_the_old_key_never_reach_the_limit() -> None:
    world = make_world()
    ring = KeyRing(world.roster.roots())
    ua = world.parties["ua"]
    t = world.certs["ua"].not_before
    for i in range(3 * MAX_CERTIFICATES_PER_STATION):  # rotate twelve times
        old = ring.certificates_of("ua/ua-1")
        key = StationKey.generate("ua", "ua-1")
        ring.add_certificate(ua.certify(key, t + i, t + 86400).encode())
        for cert in old:
            if not ring.revoked(cert, t + i):
                ring.add_revocation(ua.revoke(cert, t + i, "rotated").encode())
    assert len(ring.station("ua/ua-1", t + 100)) == 1


def test_a_station_refuses_a_partys_17th_station_with_an_alarm(
    world: World, tmp_path: Path
) -> None:
    ru = _station(world, tmp_path, "ru")
    certs = [_certify(world, "ua", f"ua-{i}").encode() for i in range(MAX_STATIONS_PER_PARTY + 1)]
    assert ru.add_statements(certs, []) == MAX_STATIONS_PER_PARTY
    (alarm,) = _open(ru, AlarmKind.BAD_CERTIFICATE)
    assert "16 stations per party" in alarm.message and alarm.evidence == certs[-1]
    # Restarted, the station takes what it stored, and still seals to every member.
    ru.store.close()
    again = _station(world, tmp_path, "ru", ("us",))
    assert len(again.recipients(CHANNEL)) == 2 + MAX_STATIONS_PER_PARTY


# --- item 5: an entry before its sender's certificate in the log is refused, not held ----


def test_an_entry_before_its_senders_certificate_in_the_log_is_refused_not_held(
    world: World, tmp_path: Path
) -> None:
    # Certificates are key events of the log: an entry the relay logged before its
    # sender's certificate never becomes valid, whatever the station learns later.
    us = _everyone(world, tmp_path, "us")
    ru = _everyone(world, tmp_path, "ru")
    log = TestLog(world, certify=("ru", "ua"))  # us's certificate is not logged first
    one = log.add(_text(us, "one"))
    log.deliver(ru)
    assert _inbox(ru) == []
    assert [(e.valid, e.held) for e in ru.store.entries(CHANNEL)][one] == (False, False)
    (alarm,) = ru.store.alarms()
    assert alarm.kind == AlarmKind.VERIFICATION and alarm.index == one
    assert "no certificate of us/us-1 is logged before entry" in alarm.message
    ru.add_statements([world.certs["us"].encode()], [])
    assert ru.store.messages(CHANNEL) == [] and ru.store.held_entries(CHANNEL) == []


def test_a_link_test_before_its_senders_certificate_is_no_alarm(
    world: World, tmp_path: Path
) -> None:
    ru = _station(world, tmp_path, "ru", ("ua",))
    ping = link_mod.make("ping", world.stations["us"], CHANNEL, ru.now_ms())
    assert ru.on_link(frames.LinkTest.from_dict(ping)) == []
    assert ru.store.alarms(cleared_too=True) == []
    ru.add_statements([world.certs["us"].encode()], [])
    assert len(ru.on_link(frames.LinkTest.from_dict(ping))) == 1  # a pong, now it is known


# --- item 6: alarms aggregate ------------------------------------------------------------


def test_3000_bad_link_tests_are_one_alarm_with_a_count(world: World, tmp_path: Path) -> None:
    ru = _everyone(world, tmp_path, "ru")
    times = iter(range(1_000, 10_000_000, 1_000))
    ru.state.clock = lambda: next(times) / 1000 + world.certs["us"].not_before
    for i in range(3000):
        ping = link_mod.make("ping", world.stations["us"], CHANNEL, ru.now_ms(), nonce=f"n{i}")
        sig = ping["signature"]
        ping["signature"] = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
        assert ru.on_link(frames.LinkTest.from_dict(ping)) == []
    (alarm,) = ru.store.alarms()
    assert alarm.kind == AlarmKind.VERIFICATION and alarm.count == 3000
    assert alarm.last_ms > alarm.created_ms
    assert "bad link test" in alarm.message


def test_an_alarm_raised_again_after_clearing_is_a_new_one(world: World, tmp_path: Path) -> None:
    ru = _everyone(world, tmp_path, "ru")
    alarm = Alarm(AlarmKind.BAD_FRAME, "relay sent a bad frame: x", level=1)
    ru.alarm(alarm)
    ru.alarm(Alarm(AlarmKind.BAD_FRAME, "relay sent a bad frame: y", level=2))
    (first,) = ru.store.alarms()
    assert (first.count, first.level, first.message) == (2, 2, "relay sent a bad frame: y")
    ru.clear_alarm(first.id, "op")
    ru.alarm(alarm)
    (second,) = ru.store.alarms()
    assert second.id != first.id and second.count == 1


def test_a_store_made_before_aggregation_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """CREATE TABLE entry (
  channel TEXT NOT NULL, idx INTEGER NOT NULL, envelope BLOB NOT NULL, hash BLOB NOT NULL,
  sender TEXT NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL, relay_ms INTEGER NOT NULL,
  valid INTEGER NOT NULL, PRIMARY KEY (channel, idx));
CREATE TABLE alarm (
  id INTEGER PRIMARY KEY, created_ms INTEGER NOT NULL, kind TEXT NOT NULL, level INTEGER NOT NULL,
  channel TEXT, idx INTEGER, message TEXT NOT NULL, evidence BLOB, cleared_ms INTEGER,
  cleared_by TEXT);
INSERT INTO alarm (created_ms, kind, level, message) VALUES (5, 'bad-frame', 1, 'old');"""
    )
    conn.close()
    store = StationStore(path)
    (old,) = store.alarms()
    assert (old.message, old.count, old.last_ms) == ("old", 1, 5)
    store.add_alarm(Alarm(AlarmKind.BAD_FRAME, "new", level=1), 9)
    (again,) = store.alarms()
    assert (again.id, again.count, again.last_ms, again.message) == (old.id, 2, 9, "new")
    assert store.held_entries("c") == []
