"""A station makes what arrived visible first and seals the delivered receipts it owes
once arrivals pause (issue 15): a run of messages gets its receipts in a few transactions,
out of the way of the next message. Nothing is visible, or owes a receipt, before the
commit that takes it in. Driven in-process through the service's frame dispatch; the
settling times are set by the test, never hoped for."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hotline import body as body_mod
from hotline import envelope as env_mod
from hotline.envelope import Kind
from hotline.errors import Malformed, Unavailable
from hotline.keys import PartyKey
from hotline.notes import NoteSigner, make_note
from hotline.roster import open_roster, roster_text, sign_roster
from hotline.station import core as core_mod
from hotline.station import outbox as outbox_mod
from hotline.station import service as service_mod
from hotline.station.core import StationCore
from hotline.station.service import StationService
from hotline.station.store import DueReceipt, OutboxState, StationStore
from hotline.station.store import Receipt as StoredReceipt

from .conftest import make_world
from .test_never_stall import CHANNEL, TestLog, _everyone


class _Wire:
    """Stands for the relay connection: keeps what the station sends."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, text: Any) -> None:
        self.sent.append(text)


def _failing_commit(real: Any) -> type:
    """A stand-in for the station's connection ``real`` whose COMMIT fails (a full disk,
    say); everything else goes to ``real``."""

    class FailingCommit:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def execute(self, sql: str, *args: Any) -> Any:
            if sql == "COMMIT":
                raise OSError("disk full")
            return real.execute(sql, *args)

    return FailingCommit


def _receipts(st: StationCore) -> list[int]:
    return [i.seq for i in st.store.outbox(OutboxState.QUEUED) if i.kind == Kind.RECEIPT]


def _counted(st: StationCore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each call of the core's ``send_receipts``: how many receipts it sealed."""
    sealings: list[int] = []
    real = st.send_receipts

    def send_receipts(limit: int | None = None) -> int:
        sealings.append(real(limit))
        return sealings[-1]

    monkeypatch.setattr(st, "send_receipts", send_receipts)
    return sealings


def test_a_run_of_arrivals_is_visible_at_once_and_receipted_in_one_sealing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world()
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    log = TestLog(world)
    monkeypatch.setattr(service_mod, "RECEIPTS_SETTLE_S", 3600.0)
    monkeypatch.setattr(service_mod, "RECEIPTS_WAIT_MAX_S", 3600.0)
    sealings = _counted(ru, monkeypatch)

    async def run() -> None:
        svc = StationService(ru, "ws://127.0.0.1:9/ws")
        wire = _Wire()
        for i in range(3):
            log.add(us.send(CHANNEL, body_mod.text(f"m{i}", "en")).envelope)
            before = svc.version
            await svc._dispatch(wire, log.frame(ru))  # type: ignore[arg-type]
            assert svc.version > before  # readers told as soon as it is committed
            assert len(ru.store.inbox(ru.ident, CHANNEL, 10)) == i + 1
        assert sealings == [] and _receipts(ru) == []  # arrivals have not paused yet
        assert len(ru.store.receipts_due()) == 3  # owed, durably
        waiting = svc._receipts
        assert waiting is not None
        monkeypatch.setattr(service_mod, "RECEIPTS_SETTLE_S", 0.0)
        svc._receipts_soon()  # the pause is over
        await waiting
        assert sealings == [1]  # one receipt naming the three, in one sealing
        assert len(_receipts(ru)) == 1 and ru.store.receipts_due() == []
        svc.db.shutdown()

    asyncio.run(run())


def test_a_lone_arrival_is_receipted_without_waiting_for_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world()
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    log = TestLog(world)
    sealings = _counted(ru, monkeypatch)

    async def run() -> None:
        svc = StationService(ru, "ws://127.0.0.1:9/ws")
        log.add(us.send(CHANNEL, body_mod.text("alone", "en")).envelope)
        await svc._dispatch(_Wire(), log.frame(ru))  # type: ignore[arg-type]
        async with asyncio.timeout(60):  # settles in RECEIPTS_SETTLE_S; generous for a busy box
            while not sealings:  # the sealing returned (its receipt is committed before that)
                await asyncio.sleep(0.02)
        assert sealings == [1] and len(_receipts(ru)) == 1
        svc.db.shutdown()

    asyncio.run(run())


def test_a_failed_commit_shows_nothing_and_owes_no_receipt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world()
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    log = TestLog(world)
    log.add(us.send(CHANNEL, body_mod.text("lost", "en")).envelope)
    real = ru.store._conn
    FailingCommit = _failing_commit(real)

    async def run() -> None:
        svc = StationService(ru, "ws://127.0.0.1:9/ws")
        before = svc.version
        monkeypatch.setattr(ru.store, "_conn", FailingCommit())
        with pytest.raises(OSError, match="disk full"):
            await svc._dispatch(_Wire(), log.frame(ru))  # type: ignore[arg-type]
        monkeypatch.setattr(ru.store, "_conn", real)
        real.execute("ROLLBACK")  # what the failed COMMIT left open
        assert svc.version == before  # no reader was told
        assert svc._receipts is None  # no sealing scheduled
        assert ru.store.inbox(ru.ident, CHANNEL, 10) == []
        assert ru.store.receipts_due() == [] and _receipts(ru) == []
        svc.db.shutdown()

    asyncio.run(run())


def test_a_long_run_is_receipted_in_chunks_none_lost_in_log_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More owed than one chunk: sealed a chunk per database call (other work goes between
    two), until none is owed; every arrival gets its receipt, in log order."""
    world = make_world()
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    log = TestLog(world)
    monkeypatch.setattr(service_mod, "RECEIPTS_SETTLE_S", 3600.0)
    monkeypatch.setattr(service_mod, "RECEIPTS_WAIT_MAX_S", 3600.0)
    monkeypatch.setattr(service_mod, "RECEIPTS_CHUNK", 2)
    monkeypatch.setattr(body_mod, "MAX_RECEIPT_REFS", 1)  # a receipt each: chunks of them
    sealings = _counted(ru, monkeypatch)

    async def run() -> None:
        svc = StationService(ru, "ws://127.0.0.1:9/ws")
        wire = _Wire()
        for i in range(5):
            log.add(us.send(CHANNEL, body_mod.text(f"m{i}", "en")).envelope)
            await svc._dispatch(wire, log.frame(ru))  # type: ignore[arg-type]
        arrived = [m.index for m in ru.store.inbox(ru.ident, CHANNEL, 10)]
        assert len(arrived) == 5 and len(ru.store.receipts_due()) == 5
        waiting = svc._receipts
        assert waiting is not None
        monkeypatch.setattr(service_mod, "RECEIPTS_SETTLE_S", 0.0)
        svc._receipts_soon()
        await waiting
        assert sealings == [2, 2, 1]  # three calls: no chunk holds the thread for all five
        assert ru.store.receipts_due() == []
        receipts = [i for i in ru.store.outbox(OutboxState.QUEUED) if i.kind == Kind.RECEIPT]
        of = [_receipt_of(ru, i.envelope) for i in receipts]
        assert of == sorted(arrived)  # each arrival's receipt, once, in log order
        svc.db.shutdown()

    asyncio.run(run())


def _receipt_of(st: StationCore, raw: bytes) -> int:
    """The log index a sealed receipt of ``st`` names (opened with its own key)."""
    content = body_mod.parse_body(env_mod.decrypt(env_mod.parse(raw), st.key))
    assert isinstance(content, body_mod.Receipt)
    return content.of_index


def test_the_retry_tick_seals_no_more_than_its_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link tick's retry, falling while a run's receipts wait for a pause, seals a
    few of them, not the whole run in one call; the rest stay owed, none lost."""
    world = make_world()
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    log = TestLog(world)
    monkeypatch.setattr(core_mod, "RETRY_RECEIPTS_LIMIT", 2)
    monkeypatch.setattr(body_mod, "MAX_RECEIPT_REFS", 1)
    for i in range(5):
        log.add(us.send(CHANNEL, body_mod.text(f"m{i}", "en")).envelope)
    ru.on_entries(log.frame(ru), receipts=False)
    assert len(ru.store.receipts_due()) == 5
    ru.link_tick()  # the first tick retries (none was tried yet)
    assert len(_receipts(ru)) == 2 and len(ru.store.receipts_due()) == 3
    assert ru.send_receipts() == 3 and ru.store.receipts_due() == []


def test_a_chunk_that_fails_to_commit_leaves_its_receipts_owed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second chunk's commit fails: the first chunk's receipts stand, the second's
    and the rest stay owed (nothing half-sealed), and a later sealing takes them all."""
    world = make_world()
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    log = TestLog(world)
    monkeypatch.setattr(service_mod, "RECEIPTS_SETTLE_S", 3600.0)
    monkeypatch.setattr(service_mod, "RECEIPTS_WAIT_MAX_S", 3600.0)
    monkeypatch.setattr(service_mod, "RECEIPTS_CHUNK", 2)
    monkeypatch.setattr(body_mod, "MAX_RECEIPT_REFS", 1)
    real_conn, real_send = ru.store._conn, ru.send_receipts
    calls: list[int | None] = []
    FailingCommit = _failing_commit(real_conn)

    def send_receipts(limit: int | None = None) -> int:
        calls.append(limit)
        if len(calls) != 2:
            return real_send(limit)
        ru.store._conn = FailingCommit()  # type: ignore[assignment]
        try:
            return real_send(limit)
        finally:
            ru.store._conn = real_conn
            real_conn.execute("ROLLBACK")  # what the failed COMMIT left open

    monkeypatch.setattr(ru, "send_receipts", send_receipts)

    async def run() -> None:
        svc = StationService(ru, "ws://127.0.0.1:9/ws")
        wire = _Wire()
        for i in range(5):
            log.add(us.send(CHANNEL, body_mod.text(f"m{i}", "en")).envelope)
            await svc._dispatch(wire, log.frame(ru))  # type: ignore[arg-type]
        waiting = svc._receipts
        assert waiting is not None
        monkeypatch.setattr(service_mod, "RECEIPTS_SETTLE_S", 0.0)
        svc._receipts_soon()
        await waiting  # the failure is logged, not raised: the link tick retries
        assert calls == [2, 2]
        assert len(_receipts(ru)) == 2 and len(ru.store.receipts_due()) == 3
        assert real_send() == 3 and ru.store.receipts_due() == []
        of = [_receipt_of(ru, i.envelope) for i in ru.store.outbox(OutboxState.QUEUED)]
        assert of == sorted(m.index for m in ru.store.inbox(ru.ident, CHANNEL, 10))
        svc.db.shutdown()

    asyncio.run(run())


def test_a_stuck_channel_does_not_hold_back_another_channels_receipts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Receipts owed in a channel that cannot be sealed to (first in the order owed) take
    none of a chunk: the other channel's are sealed, a chunk at a time, all of them."""
    world = make_world()
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    monkeypatch.setattr(body_mod, "MAX_RECEIPT_REFS", 1)  # a receipt each: chunks of them
    logs = {ch: TestLog(world, ch) for ch in ("us-ru", CHANNEL)}
    for ch, log in logs.items():
        for i in range(3):
            log.add(us.send(ch, body_mod.text(f"{ch} {i}", "en")).envelope)
        ru.on_entries(log.frame(ru), receipts=False)
    assert sorted({d.channel for d in ru.store.receipts_due()}) == ["us-ru", CHANNEL]
    real = outbox_mod.recipients

    def recipients(st: Any, channel: str) -> Any:
        if channel == "us-ru":
            raise Unavailable("no station of us is known yet", channel=channel)
        return real(st, channel)

    monkeypatch.setattr(outbox_mod, "recipients", recipients)
    assert ru.send_receipts(2) == 2 and ru.send_receipts(2) == 1 and ru.send_receipts(2) == 0
    assert [d.channel for d in ru.store.receipts_due()] == ["us-ru"] * 3  # still owed
    monkeypatch.setattr(outbox_mod, "recipients", real)
    assert ru.send_receipts(2) == 2 and ru.send_receipts(2) == 1
    assert ru.store.receipts_due() == []


def test_a_run_is_named_by_few_receipts_each_entry_once_and_the_sender_sees_every_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five arrivals owed at once: receipts of at most MAX_RECEIPT_REFS entries each (here
    2), naming every arrival once by its index and envelope hash, in log order; the
    sender takes them in and shows each of its five messages delivered to ru, once."""
    world = make_world()
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    log = TestLog(world)
    monkeypatch.setattr(body_mod, "MAX_RECEIPT_REFS", 2)
    sent = []
    for i in range(5):
        item = us.send(CHANNEL, body_mod.text(f"m{i}", "en"))
        sent.append((log.add(item.envelope), item.hash))
    ru.on_entries(log.frame(ru), receipts=False)
    log.deliver(us)
    assert ru.send_receipts() == 3 and ru.store.receipts_due() == []
    named = []
    for item in _queued_receipts(ru):
        content = body_mod.parse_body(env_mod.decrypt(env_mod.parse(item.envelope), ru.key))
        assert isinstance(content, body_mod.Receipt)
        named.append([(r.of_index, r.of_hash) for r in content.each()])
        log.add(item.envelope)
    assert named == [sent[0:2], sent[2:4], sent[4:5]]
    log.deliver(us)
    for index, _ in sent:
        got = us.store.receipts_of(CHANNEL, index)
        assert [(r.party, r.status) for r in got] == [("ru", "delivered")], index
    assert [a for a in us.store.alarms() if a.level >= 2] == []


def _queued_receipts(st: StationCore) -> list[Any]:
    return [i for i in st.store.outbox(OutboxState.QUEUED) if i.kind == Kind.RECEIPT]


# A station store's receipt table before receipts named runs (rows keyed by channel and
# index), with one row.
OLD_RECEIPT_TABLE = """CREATE TABLE receipt (
  channel TEXT NOT NULL, idx INTEGER NOT NULL, of_index INTEGER NOT NULL, party TEXT NOT NULL,
  station TEXT NOT NULL, status TEXT NOT NULL, operator TEXT, reply TEXT,
  created_ms INTEGER NOT NULL, relay_ms INTEGER NOT NULL, PRIMARY KEY (channel, idx));
CREATE INDEX receipt_of ON receipt (channel, of_index);
INSERT INTO receipt VALUES ('c', 5, 2, 'ru', 'ru/ru-1', 'delivered', NULL, NULL, 1, 2);
"""


def test_a_store_keyed_one_receipt_per_entry_is_migrated_every_row_kept(tmp_path: Path) -> None:
    """A station store made before receipts named runs (receipt rows keyed by channel and
    index): opened, its rows are all there, and a run's rows (one entry, several messages)
    now fit; opening it again changes nothing."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        OLD_RECEIPT_TABLE
        + "INSERT INTO receipt VALUES ('c', 6, 2, 'ru', 'ru/ru-1', 'acknowledged', 'Volkov',"
        " 'ok', 3, 4);"
    )
    conn.close()
    for _ in range(2):
        store = StationStore(path)
        got = [(r.index, r.status, r.operator) for r in store.receipts_of("c", 2)]
        assert got == [(5, "delivered", None), (6, "acknowledged", "Volkov")]
        store.close()
    store = StationStore(path)
    with store.transaction():
        for of in (3, 4):
            store.add_receipt(
                StoredReceipt("c", 7, of, "ru", "ru/ru-1", "delivered", None, None, 5, 6)
            )
    assert [r.index for r in store.receipts("c")] == [5, 6, 7, 7]
    store.close()


def test_owed_receipts_naming_one_envelope_twice_go_in_two_receipts_none_stuck() -> None:
    """Should a station ever owe receipts for one envelope at two places of a log (a relay
    that logged it twice), the run is cut there: every receipt sealed parses, none is
    stuck behind a body that cannot be made."""
    digest, other = bytes([1]) * 32, bytes([2]) * 32
    owed = [
        DueReceipt("c", 3, digest, 4, b"n"),
        DueReceipt("c", 4, other, 4, b"n"),
        DueReceipt("c", 5, digest, 4, b"n"),
    ]
    runs = outbox_mod._runs(owed)
    assert [[d.of_index for d in run] for run in runs] == [[3, 4], [5]]
    for run in runs:
        made = body_mod.delivered([(d.of_index, d.hash) for d in run], b"n")
        assert body_mod.parse_body(body_mod.encode(made)) == made


def test_under_a_roster_without_receipt_runs_each_message_gets_its_own_receipt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A network whose roster does not say ``receipt_runs`` may still run stations that
    read a run as a receipt for its first message only: its stations send one receipt
    per message, as before issue 15."""
    world = make_world()
    us, ru = _everyone(world, tmp_path, "us"), _everyone(world, tmp_path, "ru")
    assert ru.state.roster.receipt_runs  # a new roster says it
    monkeypatch.setattr(ru.state, "roster", replace(ru.state.roster, receipt_runs=False))
    log = TestLog(world)
    for i in range(3):
        log.add(us.send(CHANNEL, body_mod.text(f"m{i}", "en")).envelope)
    ru.on_entries(log.frame(ru), receipts=False)
    assert ru.send_receipts() == 3 and ru.store.receipts_due() == []
    named = [
        body_mod.parse_body(env_mod.decrypt(env_mod.parse(i.envelope), ru.key))
        for i in _queued_receipts(ru)
    ]
    assert len(named) == 3
    assert all(isinstance(r, body_mod.Receipt) and not r.also for r in named)


def _signed_roster(runs: object) -> bytes:
    parties = {p: PartyKey.generate(p) for p in ("us", "ru")}
    relay = NoteSigner("relay.ae", Ed25519PrivateKey.generate())
    text = roster_text(
        "talks",
        {p: k.public_keys() for p, k in parties.items()},
        {"us-ru": {"members": ["us", "ru"]}},
        relay.verifier.encode(),
        receipt_runs=False,
    )
    kind, body = text.split("\n", 1)
    value = json.loads(body)
    if runs is not None:
        value["receipt_runs"] = runs
    note = make_note(kind + "\n" + json.dumps(value, separators=(",", ":")) + "\n")
    for p in ("us", "ru"):
        note = sign_roster(note, parties[p])
    return note.encode()


def test_receipt_runs_is_a_choice_every_party_signs_true_or_false() -> None:
    assert open_roster(_signed_roster(None)).receipt_runs is False  # absent: an older roster
    assert open_roster(_signed_roster(True)).receipt_runs is True
    assert open_roster(_signed_roster(False)).receipt_runs is False
    for bad in ("yes", 1, [], {}):
        with pytest.raises(Malformed) as caught:
            open_roster(_signed_roster(bad))
        assert caught.value.field == "receipt_runs"
