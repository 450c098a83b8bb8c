"""Attacks on a delivered receipt naming a run of entries (``also``, PROTOCOL section 7).

A member party's station signs whatever receipt body it likes; a relay logs what it
likes. Whatever a run names, a station raises the alarm for the entry that is wrong,
records no delivery it does not show, and never stops on it (a database error escaping
ingest stops the channel at that entry for good). Driven in-process, orders forced."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hotline import body as body_mod
from hotline import envelope as env_mod
from hotline import frames
from hotline.envelope import Kind
from hotline.station import paths
from hotline.station import store as store_mod
from hotline.station.alarms import AlarmKind, AlarmRecord
from hotline.station.core import StationCore
from hotline.station.store import OutboxState, StationStore
from hotline.transcript import Report, verify

from .conftest import World, make_world
from .logbuild import T0, ChannelLog, RelayLogs
from .test_never_stall import CHANNEL, TestLog, _everyone
from .test_receipts_off_the_path import OLD_RECEIPT_TABLE
from .test_relay_paths import CH, _frame, _post, _relay, _station, _two_relay_roster

DELIVERED = body_mod.ReceiptStatus.DELIVERED


def _run(refs: list[tuple[int, bytes]], note: bytes) -> body_mod.Receipt:
    """A run as a hostile station writes it: whatever refs, no check on the way out."""
    (of_index, of_hash), *also = refs
    return body_mod.Receipt(DELIVERED, of_index, of_hash, note, also=tuple(also))


def _alarms(st: StationCore, text: str) -> list[AlarmRecord]:
    return [a for a in st.store.alarms() if a.text == text]


def _delivered_by(st: StationCore, channel: str, of_index: int, party: str) -> list[int]:
    """The receipt entries by which ``party`` is recorded to have had message ``of_index``."""
    return [r.index for r in st.store.receipts_of(channel, of_index) if r.party == party]


# --- one relay ------------------------------------------------------------------------


def test_a_run_naming_a_relays_duplicate_of_a_message_is_refused_not_a_crash(
    world: World, tmp_path: Path
) -> None:
    """A lying relay logs us's message twice; ru's run names both copies. One envelope
    is one entry: the receipt is malformed (alarm at it), nothing recorded, and us's
    station takes the channel on (before: the second row of the same receipt for the
    same message was a database error out of ingest)."""
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    log = TestLog(world)
    raw = us.send(CHANNEL, body_mod.text("once", "en")).envelope
    first, again = log.add(raw), log.add(raw)
    ru.on_entries(log.frame(ru), receipts=False)
    digest = env_mod.envelope_hash(raw)
    note = ru.store.verified_checkpoint(CHANNEL) or b""
    item = ru.send(CHANNEL, _run([(first, digest), (again, digest)], note), kind=Kind.RECEIPT)
    at = log.add(item.envelope)
    after = log.add(ru.send(CHANNEL, body_mod.text("after it", "en")).envelope)
    log.deliver(us)
    assert us.size(CHANNEL) == after + 1
    (alarm,) = [a for a in us.store.alarms() if a.index == at]
    assert (alarm.kind, alarm.text) == (AlarmKind.VERIFICATION, "unreadable-body"), alarm
    assert "names each envelope once" in str(alarm.params["detail"])
    assert _delivered_by(us, CHANNEL, first, "ru") == []


def test_a_run_naming_a_key_event_ones_own_message_and_a_receipt_records_no_delivery(
    world: World, tmp_path: Path
) -> None:
    """ru's run names a key event, ru's own message, a receipt and one message of us's:
    us records ru's delivery of its message only, once, and does not stop."""
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    log = TestLog(world)
    mine = log.add(us.send(CHANNEL, body_mod.text("from us", "en")).envelope)
    theirs = log.add(ru.send(CHANNEL, body_mod.text("from ru", "en")).envelope)
    log.deliver(us)
    ru.on_entries(log.frame(ru), receipts=False)
    us.send_receipts()
    (receipt,) = [i for i in us.store.outbox(OutboxState.QUEUED) if i.kind == Kind.RECEIPT]
    rcpt = log.add(receipt.envelope)
    ru.on_entries(log.frame(ru), receipts=False)
    note = ru.store.verified_checkpoint(CHANNEL) or b""
    named = sorted([0, mine, theirs, rcpt])
    refs = [(i, env_mod.envelope_hash(log.entries[i])) for i in named]
    at = log.add(ru.send(CHANNEL, _run(refs, note), kind=Kind.RECEIPT).envelope)
    log.deliver(us)
    assert us.size(CHANNEL) == at + 1
    assert _delivered_by(us, CHANNEL, mine, "ru") == [at]
    for other in (0, theirs, rcpt):
        assert _delivered_by(us, CHANNEL, other, "ru") == [], other


def test_a_run_whose_first_entry_is_bad_still_has_its_checkpoint_checked(
    world: World, tmp_path: Path
) -> None:
    """ru's run: first entry by another hash, the second right, the checkpoint a relay
    signature on another history. Both are named (fork-receipt for the entry, then fork-
    carried for the checkpoint, once: one fork alarm at the receipt, counted twice); the
    second message's delivery stands as a single receipt's would."""
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    log = TestLog(world)
    a = log.add(us.send(CHANNEL, body_mod.text("a", "en")).envelope)
    b = log.add(us.send(CHANNEL, body_mod.text("b", "en")).envelope)
    ru.on_entries(log.frame(ru), receipts=False)
    other = TestLog(world)  # another history of the same size, signed by the relay
    other.add(b"x" * 40)
    other.add(b"y" * 40)
    forged = other.frame(ru).checkpoint
    refs = [(a, bytes(32)), (b, env_mod.envelope_hash(log.entries[b]))]
    at = log.add(ru.send(CHANNEL, _run(refs, forged), kind=Kind.RECEIPT).envelope)
    log.deliver(us)
    # One fork alarm at the receipt (same kind, channel and index: counted again), raised
    # for the entry and again for the checkpoint: checked though the first entry failed.
    (fork,) = [a for a in us.store.alarms() if a.kind == AlarmKind.FORK]
    assert (fork.index, fork.count, fork.text) == (at, 2, "fork-carried")
    assert _delivered_by(us, CHANNEL, a, "ru") == []
    assert _delivered_by(us, CHANNEL, b, "ru") == [at]


def test_a_run_naming_another_channels_entry_or_an_unknown_relay_is_a_fork_per_entry(
    world: World, tmp_path: Path
) -> None:
    """ru's run names an entry of another channel (by its index and hash there), and two
    entries of a relay position the roster does not have (2**40 and up): an alarm for
    each, nothing recorded, the station goes on."""
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    log, side = TestLog(world), TestLog(world, "us-ru", certify=("us", "ru"))
    there = side.add(us.send("us-ru", body_mod.text("elsewhere", "en")).envelope)
    log.add(us.send(CHANNEL, body_mod.text("here", "en")).envelope)
    ru.on_entries(log.frame(ru), receipts=False)
    note = ru.store.verified_checkpoint(CHANNEL) or b""
    elsewhere = env_mod.envelope_hash(side.entries[there])
    first = log.add(ru.send(CHANNEL, _run([(there, elsewhere)], note), kind=Kind.RECEIPT).envelope)
    beyond = [(paths.qualify(3, 1), bytes(32)), (paths.qualify(3, 2), bytes(range(32)))]
    second = log.add(ru.send(CHANNEL, _run(beyond, note), kind=Kind.RECEIPT).envelope)
    log.deliver(us)
    forks = _alarms(us, "fork-receipt")
    assert sorted((a.index, a.count) for a in forks) == [(first, 1), (second, 2)]
    assert [r for r in us.store.receipts(CHANNEL) if r.party == "ru"] == []
    assert us.size(CHANNEL) == second + 1


# --- two relays -----------------------------------------------------------------------


def _accepted(relay: object, st: StationCore, raw: bytes, name: str) -> int:
    """``relay`` accepts ``raw`` from ``st``, which takes its signed acceptance: the
    entry's index in that relay's log."""
    result = relay.accept([(st.ident, raw)])[0]  # type: ignore[attr-defined]
    frame = frames.decode_relay_frame(frames.encode_frame(result.frame(None)))
    assert isinstance(frame, frames.Accepted)
    st.on_accepted(frame, relay=name)
    return frame.index


def test_a_run_naming_one_envelope_twice_in_another_relays_log_is_refused_not_a_crash(
    world: World, tmp_path: Path
) -> None:
    """ru's run, logged by relay.ae, names us's message at two places of relay.ch's log,
    which us has not mirrored yet (so neither can be compared). One envelope is one
    entry: a malformed-receipt alarm, no delivery recorded, and ingest goes on (before:
    both resolved to the same message, a database error out of ingest)."""
    roster, ae_key, ch_key = _two_relay_roster(world)
    ae, ch = _relay(roster, ae_key, world, tmp_path), _relay(roster, ch_key, world, tmp_path)
    us, ru = _station(roster, world, tmp_path, "us"), _station(roster, world, tmp_path, "ru")
    sent = us.send(CH, body_mod.Text("en", "through relay.ch"))
    k = _accepted(ch, us, sent.envelope, "relay.ch")
    ru.on_entries(_frame(ch, 0), receipts=False, relay="relay.ch")
    note = ru.store.verified_checkpoint(f"{CH}@relay.ch") or b""
    refs = [(paths.qualify(1, k), sent.hash), (paths.qualify(1, k + 1), sent.hash)]
    receipt = ru.send(CH, _run(refs, note), kind=Kind.RECEIPT)
    _post(ae, ru, receipt.envelope)
    us.on_entries(_frame(ae, 0), relay="relay.ae")
    assert us.size(CH, "relay.ae") == ae.size(CH)
    (alarm,) = [a for a in us.store.alarms() if a.kind == AlarmKind.VERIFICATION]
    assert alarm.text == "unreadable-body", alarm
    assert paths.split(alarm.index or 0) == (0, ae.size(CH) - 1)
    assert us.store.receipts(CH) == []


def test_a_run_naming_where_our_message_stands_by_another_hash_is_a_fork_not_a_delivery(
    world: World, tmp_path: Path
) -> None:
    """relay.ch accepted us's message at k (signed), us has not mirrored relay.ch's log
    yet. ru's run names a key event's envelope at k, and us's message at k + 1: both
    contradict what relay.ch signed to us. A fork alarm for each, no delivery recorded
    (before: the key event's entry was recorded as ru's delivery of us's message, and the
    second row for it was a database error out of ingest)."""
    roster, ae_key, ch_key = _two_relay_roster(world)
    ae, ch = _relay(roster, ae_key, world, tmp_path), _relay(roster, ch_key, world, tmp_path)
    us, ru = _station(roster, world, tmp_path, "us"), _station(roster, world, tmp_path, "ru")
    us.on_entries(_frame(ae, 0), relay="relay.ae")  # the key events only
    (event, *_) = [e for e in us.store.entries(CH) if e.kind == int(Kind.KEY_EVENT)]
    sent = us.send(CH, body_mod.Text("en", "through relay.ch"))
    k = _accepted(ch, us, sent.envelope, "relay.ch")
    ru.on_entries(_frame(ch, 0), receipts=False, relay="relay.ch")
    note = ru.store.verified_checkpoint(f"{CH}@relay.ch") or b""
    refs = [(paths.qualify(1, k), event.hash), (paths.qualify(1, k + 1), sent.hash)]
    _post(ae, ru, ru.send(CH, _run(refs, note), kind=Kind.RECEIPT).envelope)
    us.on_entries(_frame(ae, us.size(CH, "relay.ae")), relay="relay.ae")
    assert us.size(CH, "relay.ae") == ae.size(CH)
    (fork,) = _alarms(us, "fork-receipt")
    assert fork.count == 2
    assert us.store.receipts(CH) == []
    # relay.ch's log reaches us: it holds us's message at k, as signed; nothing changes.
    us.on_entries(_frame(ch, 0), relay="relay.ch")
    assert us.store.receipts(CH) == []


def test_an_honest_run_across_relays_is_recorded_once_per_message(
    world: World, tmp_path: Path
) -> None:
    """Guard: ru takes two messages from relay.ch, its one receipt (a run) goes through
    relay.ae only; us, holding relay.ch's log or not yet, records each delivery once and
    raises nothing; the same receipt logged by relay.ch too adds nothing."""
    roster, ae_key, ch_key = _two_relay_roster(world)
    ae, ch = _relay(roster, ae_key, world, tmp_path), _relay(roster, ch_key, world, tmp_path)
    us, ru = _station(roster, world, tmp_path, "us"), _station(roster, world, tmp_path, "ru")
    sent = [us.send(CH, body_mod.Text("en", f"m{i}")) for i in range(2)]
    at = [_accepted(ch, us, s.envelope, "relay.ch") for s in sent]
    ru.on_entries(_frame(ch, 0), receipts=False, relay="relay.ch")
    assert ru.send_receipts() == 1
    (receipt,) = [i for i in ru.store.outbox(OutboxState.QUEUED) if i.kind == Kind.RECEIPT]
    _post(ae, ru, receipt.envelope)
    us.on_entries(_frame(ae, 0), relay="relay.ae")
    _post(ch, ru, receipt.envelope)
    us.on_entries(_frame(ch, 0), relay="relay.ch")
    assert [a.text for a in us.store.alarms() if a.level >= 2] == []
    for k in at:
        assert len(_delivered_by(us, CH, paths.qualify(1, k), "ru")) == 1
    assert {r.of_index for r in us.store.receipts(CH)} == {paths.qualify(1, k) for k in at}


# --- hotline verify -------------------------------------------------------------------


def _failures(report: Report, index: int) -> list[tuple[str, str | None]]:
    return [(f.code, f.relay) for f in report.failures if f.index == index]


def test_verify_counts_a_run_only_for_messages_of_another_party_and_names_the_rest() -> None:
    """ru's run names a key event, its own message, us's receipt and one message of us's:
    one message delivered to ru, and the receipt named (malformed) for the other three
    (before: four 'messages of others delivered' to ru, nothing named)."""
    log = ChannelLog(make_world(T0))
    mine = log.message("us", "from us")
    theirs = log.message("ru", "from ru")
    log.checkpoint("us", "ru")
    rcpt = log.receipt("us", "delivered", theirs)
    log.checkpoint("us", "ru")
    refs = [(i, env_mod.envelope_hash(log.entries[i][0])) for i in (0, mine, theirs, rcpt)]
    at = log.send("ru", body_mod.delivered(refs, log.checkpoints[-1].encode()), Kind.RECEIPT)
    log.checkpoint("us", "ru")
    report = verify(log.transcript())
    assert report.parties["ru"].delivered == 1 and report.parties["us"].delivered == 1
    assert _failures(report, at) == [("malformed", None)] * 3
    assert {f.index for f in report.failures} == {at}


def test_verify_names_a_run_naming_one_envelope_twice() -> None:
    """A relay logs us's message twice; ru's run names both: malformed at the receipt,
    not counted (before: counted, and only the relay's replay was named)."""
    log = ChannelLog(make_world(T0))
    first = log.message("us", "once")
    again = log.log(log.entries[first][0])
    log.checkpoint("us", "ru")
    digest = env_mod.envelope_hash(log.entries[first][0]).hex()
    body = {
        "type": "receipt",
        "status": "delivered",
        "of_index": first,
        "of_hash": digest,
        "checkpoint": log.checkpoints[-1].encode().decode(),
        "also": [{"of_index": again, "of_hash": digest}],
    }
    at = log.send("ru", body, Kind.RECEIPT)
    log.checkpoint("us", "ru")
    report = verify(log.transcript())
    assert ("malformed", None) in _failures(report, at), [str(f) for f in report.failures]
    assert report.parties["ru"].delivered == 0


def test_verify_counts_a_message_once_across_runs_single_receipts_and_relays() -> None:
    """Guard: ru's run naming relay.ae's copies of two messages, a single receipt and a
    run naming relay.ch's copies, each logged by both relays: each message counted once."""
    logs = RelayLogs(make_world(T0, more_relays=("relay.ch",)))
    sent = [logs.message("us", f"m{i}") for i in range(2)]
    logs.checkpoint("us", "ru")
    for relay, how_many in (("relay.ae", 2), ("relay.ch", 1), ("relay.ch", 2)):
        log = logs.logs[relay]
        refs = [
            (logs.at(relay, s[relay]), env_mod.envelope_hash(log.entries[s[relay]][0]))
            for s in sent
        ]
        note = log.checkpoints[-1].encode()
        logs.send("ru", body_mod.delivered(refs[:how_many], note), Kind.RECEIPT)
    logs.checkpoint("us", "ru")
    report = verify(logs.transcript())
    assert report.ok, [str(f) for f in report.failures]
    assert report.parties["ru"].delivered == 2


def test_verify_names_a_run_at_an_unknown_relay_position_without_blaming_a_relay() -> None:
    """Guard: ru's run names entries of relay position 5 (the roster names two): named
    at the receipt, once per entry, no relay blamed, nothing counted."""
    logs = RelayLogs(make_world(T0, more_relays=("relay.ch",)))
    logs.message("us", "m0")
    logs.checkpoint("us", "ru")
    refs = [(paths.qualify(5, 3), bytes(32)), (paths.qualify(5, 4), bytes(range(32)))]
    note = logs.logs["relay.ae"].checkpoints[-1].encode()
    at = logs.send("ru", body_mod.delivered(refs, note), Kind.RECEIPT)
    logs.checkpoint("us", "ru")
    report = verify(logs.transcript())
    assert _failures(report, at["relay.ae"]) == [("fork", None)] * 2
    assert report.faulty == [] and report.parties["ru"].delivered == 0


def test_verify_names_a_run_placing_a_message_where_the_log_does_not_hold_it() -> None:
    """us's message stands in relay.ch's log at k; ru's run in relay.ae's log names it at
    k + 5, beyond relay.ch's log in the file: named at the receipt, no relay blamed, not
    counted (before: counted, since the file's copy stops short of k + 5)."""
    logs = RelayLogs(make_world(T0, more_relays=("relay.ch",)))
    sent = logs.message("us", "m0")
    logs.checkpoint("us", "ru")
    ch = logs.logs["relay.ch"]
    k = sent["relay.ch"]
    refs = [(logs.at("relay.ch", k + 5), env_mod.envelope_hash(ch.entries[k][0]))]
    note = ch.checkpoints[-1].encode()
    at = logs.send("ru", body_mod.delivered(refs, note), Kind.RECEIPT, ("relay.ae",))
    logs.checkpoint("us", "ru")
    report = verify(logs.transcript())
    assert _failures(report, at["relay.ae"]) == [("fork", None)], [str(f) for f in report.failures]
    assert report.parties["ru"].delivered == 0  # (relay.ch is named for leaving it out)


def test_an_acknowledgment_of_a_message_taken_from_relay_ch_carries_relay_chs_checkpoint(
    world: World, tmp_path: Path
) -> None:
    """ru took us's message from relay.ch's log; its operator acknowledges it. The
    acknowledgment names relay.ch's entry, so it carries relay.ch's checkpoint: us takes
    it without alarm (before: relay.ae's checkpoint, a false receipt-checkpoint alarm at
    every station, the honest acknowledgment looking like a bad one)."""
    roster, ae_key, ch_key = _two_relay_roster(world)
    ae, ch = _relay(roster, ae_key, world, tmp_path), _relay(roster, ch_key, world, tmp_path)
    us, ru = _station(roster, world, tmp_path, "us"), _station(roster, world, tmp_path, "ru")
    for st in (us, ru):
        st.on_entries(_frame(ae, 0), relay="relay.ae")
    sent = us.send(CH, body_mod.Text("en", "through relay.ch"))
    k = _accepted(ch, us, sent.envelope, "relay.ch")
    ru.on_entries(_frame(ch, 0), relay="relay.ch")
    ru.acknowledge(CH, paths.qualify(1, k), "Volkov", None)
    for item in ru.store.outbox(OutboxState.QUEUED):
        _post(ae, ru, item.envelope)
    us.on_entries(_frame(ae, us.size(CH, "relay.ae")), relay="relay.ae")
    assert [(a.text, a.params) for a in us.store.alarms()] == []
    state = us.message_state(CH, paths.qualify(1, k))
    assert state["ru"]["delivered"] and state["ru"]["acknowledged"]


def test_a_receipt_key_migration_interrupted_leaves_the_old_store_whole_then_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guard: the migration of a store whose receipt rows are keyed (channel, idx) fails
    half-way (after the table is renamed and the new one made): nothing of it stays, the
    rows are as they were; opened again, it completes with every row kept."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_RECEIPT_TABLE)
    conn.close()
    monkeypatch.setattr(store_mod, "RECEIPT_INDEX", "CREATE INDEX broken ON nowhere (x)")
    with pytest.raises(sqlite3.OperationalError):
        StationStore(path)
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "receipt_before" not in tables
    assert conn.execute("SELECT idx, of_index FROM receipt").fetchall() == [(5, 2)]
    conn.close()
    monkeypatch.undo()
    store = StationStore(path)
    assert [(r.index, r.of_index) for r in store.receipts("c")] == [(5, 2)]
    store.close()


def test_a_run_swapping_two_unmirrored_messages_is_no_database_error_when_they_arrive(
    world: World, tmp_path: Path
) -> None:
    """us sent m0, m1 through relay.ch and heard no acceptance (nor mirrored relay.ch's
    log). ru's run, logged by relay.ae, names them swapped: m1 at m0's place, m0 at
    m1's. Neither can be compared yet, so both are filed early. When relay.ch's log
    brings m0 at its place, its early row is refiled there, where the same receipt's
    row for m1 already stands: a UNIQUE error out of ingest (the channel stops there
    for good). It must be an alarm, and ingest go on."""
    roster, ae_key, ch_key = _two_relay_roster(world)
    ae, ch = _relay(roster, ae_key, world, tmp_path), _relay(roster, ch_key, world, tmp_path)
    us, ru = _station(roster, world, tmp_path, "us"), _station(roster, world, tmp_path, "ru")
    sent = [us.send(CH, body_mod.Text("en", f"m{i}")) for i in range(2)]
    at = []
    for s in sent:
        result = ch.accept([(us.ident, s.envelope)])[0]
        frame = frames.decode_relay_frame(frames.encode_frame(result.frame(None)))
        assert isinstance(frame, frames.Accepted)
        at.append(frame.index)  # us never hears it
    ru.on_entries(_frame(ch, 0), receipts=False, relay="relay.ch")
    note = ru.store.verified_checkpoint(f"{CH}@relay.ch") or b""
    refs = [(paths.qualify(1, at[0]), sent[1].hash), (paths.qualify(1, at[1]), sent[0].hash)]
    _post(ae, ru, ru.send(CH, _run(refs, note), kind=Kind.RECEIPT).envelope)
    us.on_entries(_frame(ae, 0), relay="relay.ae")
    assert us.size(CH, "relay.ae") == ae.size(CH)
    us.on_entries(_frame(ch, 0), relay="relay.ch")  # before: sqlite3.IntegrityError
    assert us.size(CH, "relay.ch") == ch.size(CH)
    # m1 named where m0 stands: a fork-receipt alarm at ru's receipt, that row dropped;
    # m0's row (named by its hash) is filed under m0's number, nothing left unfiled.
    (fork,) = _alarms(us, "fork-receipt")
    assert paths.split(fork.index or 0) == (0, ae.size(CH) - 1)
    (row,) = us.store.receipts(CH)
    m0 = us.store.message(CH, row.of_index)
    assert row.of_hash is None and m0 is not None and m0.hash == sent[0].hash
