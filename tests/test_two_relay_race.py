"""Two relays, every order: the sender sees its message delivered and acknowledged once,
under one number, and no overdue escalation for an acknowledgment it holds.

With two relays the sender's outbox item is numbered by the first acceptance, then by the
log it first takes its own entry's echo from; the receiving party's receipts may stand in
either log, even before the message in a log the sender had not reached yet. Each test
builds both relays' logs first, then delivers the sender's events (each relay's
acceptance, each relay's entries one by one, in that log's order) in a chosen order:
deterministic, no network, no sleeps.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hotline import body as body_mod
from hotline import frames
from hotline.envelope import Kind, Precedence
from hotline.relay.core import Acceptance, RelayCore
from hotline.station.alarms import AlarmKind
from hotline.station.core import StationCore
from hotline.station.store import OutboxState, StationStore

from .conftest import World, make_world
from .test_relay_paths import CH, _relay, _two_relay_roster

AE, RCH = "relay.ae", "relay.ch"
HOUR_S = 3600  # past every escalation level of a FLASH message (600 s, then every 300 s)


@dataclass(frozen=True)
class Plan:
    """The relays' side: where the message goes first, whether the second relay logs it
    before ru's receipts, and which relays ru's delivered and acknowledged receipts reach."""

    first: str
    second_before_receipts: bool
    receipts_to: tuple[str, ...]


@dataclass
class Scene:
    us: StationCore
    now: list[float]
    relays: dict[str, RelayCore]
    accepted: dict[str, Acceptance]
    base: dict[str, int]  # each log's size before the message (its key events)
    hash: bytes
    seq: int


def _build(world: World, tmp: Path, plan: Plan) -> Scene:
    now = [time.time()]
    roster, ae_key, ch_key = _two_relay_roster(world)
    relays = {AE: _relay(roster, ae_key, world, tmp), RCH: _relay(roster, ch_key, world, tmp)}

    def station(party: str) -> StationCore:
        core = StationCore(
            StationStore(tmp / f"{party}.db"),
            world.stations[party],
            world.certs[party],
            roster,
            lambda: now[0],
        )
        core.add_statements([c.encode() for c in world.certs.values()], [])
        return core

    us, ru = station("us"), station("ru")
    base = {name: r.size(CH) for name, r in relays.items()}
    sent = us.send(CH, body_mod.Text("en", "stand down"), precedence=Precedence.FLASH)
    second = RCH if plan.first == AE else AE
    accepted: dict[str, Acceptance] = {}

    def post_message(name: str) -> None:
        (got,) = relays[name].accept([(us.ident, sent.envelope)])
        assert isinstance(got, Acceptance)
        accepted[name] = got

    post_message(plan.first)
    if plan.second_before_receipts:
        post_message(second)
    ru.on_entries(_frame(relays[plan.first], 0, None), relay=plan.first)
    if plan.second_before_receipts:  # ru reads both logs (taking the message once)
        ru.on_entries(_frame(relays[second], 0, None), relay=second)
    (m,) = [m for m in ru.store.messages(CH) if m.kind == Kind.MESSAGE]
    ru.acknowledge(CH, m.index, "duty officer", None)
    receipts = ru.store.outbox(OutboxState.QUEUED)
    assert [i.kind for i in receipts] == [Kind.RECEIPT, Kind.RECEIPT]  # delivered, ack
    for name in plan.receipts_to:
        for item in receipts:
            assert isinstance(relays[name].accept([(ru.ident, item.envelope)])[0], Acceptance)
    if not plan.second_before_receipts:
        post_message(second)
    for name, relay in relays.items():  # us starts holding each log's key events
        us.on_entries(_frame(relay, 0, base[name]), relay=name)
    return Scene(us, now, relays, accepted, base, sent.hash, sent.seq)


def _frame(relay: RelayCore, start: int, end: int | None) -> frames.Entries:
    """Entries ``start`` to ``end`` (None: the log's end) at the checkpoint of that size."""
    stop = relay.size(CH) if end is None else end
    frame = relay.entries_frame(CH, relay.entries(CH, start, stop), start, None)
    decoded = frames.decode_relay_frame(frames.encode_frame(frame))
    assert isinstance(decoded, frames.Entries)
    return decoded


def _tokens(scene: Scene, lost: tuple[str, ...] = ()) -> list[str]:
    """One token per event at the sender: ``acc:R`` (R's acceptance), ``R`` (R's next
    entry) and ``tick`` (an hour passes, deadlines checked)."""
    out = [f"acc:{r}" for r in scene.accepted if r not in lost]
    for name, relay in scene.relays.items():
        out += [name] * (relay.size(CH) - scene.base[name])
    return [*out, "tick"]


def _play(scene: Scene, order: list[str]) -> None:
    us, at = scene.us, dict(scene.base)
    for token in order:
        if token == "tick":
            scene.now[0] += HOUR_S
            us.check_deadlines()
        elif token.startswith("acc:"):
            name = token[4:]
            raw = frames.encode_frame(scene.accepted[name].frame(None))
            accepted = frames.decode_relay_frame(raw)
            assert isinstance(accepted, frames.Accepted)
            us.on_accepted(accepted, relay=name)
        else:
            us.on_entries(_frame(scene.relays[token], at[token], at[token] + 1), relay=token)
            at[token] += 1


def _assert_seen_once(scene: Scene) -> None:
    """What the sender's operator must see once every event arrived."""
    us = scene.us
    (m,) = [m for m in us.store.messages(CH) if m.hash == scene.hash]  # taken once
    item = us.store.outbox_item(CH, scene.seq)
    assert item is not None and item.state == OutboxState.ACCEPTED
    assert item.index == m.index  # one number: the sent list's and the message's
    receipts = us.store.receipts(CH)
    assert sorted(r.status for r in receipts) == ["acknowledged", "delivered"]  # once each
    assert {r.of_index for r in receipts} == {m.index}, (m.index, receipts)
    assert [r.of_hash for r in receipts] == [None, None]  # none left waiting for its message
    for state in (us.message_state(CH, m.index), us.sent_states([item])[0]):
        ru = state["ru"]
        assert ru["delivered"] is not None and ru["acknowledged"] is not None, state
        assert ru["acknowledged"]["operator"] == "duty officer"
        assert not ru["overdue"]
    # Deadlines: nothing left awaited, nothing escalated from here on.
    scene.now[0] += HOUR_S
    assert us.check_deadlines() == 0
    assert us.store.due_acks(us.now_ms() + 10 * HOUR_S * 1000) == []
    assert us.store.alarms() == []  # none open: no overdue, no fork, nothing misfiled
    # An escalation raised while the acknowledgment was not yet seen names that number.
    for alarm in us.store.alarms(cleared_too=True):
        assert alarm.kind == AlarmKind.OVERDUE and alarm.index == m.index
    assert set(us.store.escalation_levels(CH, m.index)) <= {"ru"}


BOTH = (AE, RCH)


def test_receipts_in_the_other_log_before_the_message_then_echo_from_there(
    tmp_path: Path,
) -> None:
    """Accepted by relay.ae; ru's receipts reach relay.ch before us's message does; us
    reads relay.ch first: the receipts come before any echo (filed under relay.ae's
    number), then the echo from relay.ch numbers the message anew."""
    scene = _build(make_world(), tmp_path, Plan(AE, False, (RCH,)))
    _play(scene, ["acc:relay.ae", RCH, RCH, RCH, AE, "acc:relay.ch"])
    _assert_seen_once(scene)


def test_ack_before_any_echo_then_echo_from_the_accepting_relay(tmp_path: Path) -> None:
    """The acknowledgment is read (from relay.ch) before the message's echo, which then
    comes from relay.ae, where it was accepted: same number, but the deadline is noted
    after the acknowledgment that ends it."""
    scene = _build(make_world(), tmp_path, Plan(AE, False, (RCH,)))
    _play(scene, ["acc:relay.ae", RCH, RCH, AE, RCH, "acc:relay.ch"])
    _assert_seen_once(scene)


def test_receipts_before_echo_with_no_acceptance_heard(tmp_path: Path) -> None:
    """Both acceptances lost: the receipts are filed by the number ru gave the message
    (relay.ae's), then the echo comes first from relay.ch."""
    scene = _build(make_world(), tmp_path, Plan(AE, False, (RCH,)))
    _play(scene, [RCH, RCH, RCH, AE])
    _assert_seen_once(scene)


def test_echo_first_from_the_other_relay_then_receipts(tmp_path: Path) -> None:
    """Accepted by relay.ae, echo first from relay.ch (renumbered), receipts after it
    from both logs: each receipt names relay.ae's entry, found by its hash."""
    scene = _build(make_world(), tmp_path, Plan(AE, True, BOTH))
    _play(scene, ["acc:relay.ae", RCH, RCH, RCH, AE, AE, AE, "acc:relay.ch", "tick"])
    _assert_seen_once(scene)


def test_overdue_before_the_ack_is_cleared_by_it_under_one_number(tmp_path: Path) -> None:
    """The deadline passes after the echo and before the acknowledgment is read: the
    escalation is true then, names the message's one number, and the acknowledgment
    (from the other log) ends it."""
    scene = _build(make_world(), tmp_path, Plan(RCH, True, (AE,)))
    _play(scene, [RCH, "acc:relay.ch", "tick", AE, AE, AE, "acc:relay.ae"])
    _assert_seen_once(scene)
    assert [a.kind for a in scene.us.store.alarms(cleared_too=True)] == [AlarmKind.OVERDUE]


PLANS = st.builds(
    Plan,
    st.sampled_from(BOTH),
    st.booleans(),
    st.sampled_from([(AE,), (RCH,), BOTH]),
)


@settings(max_examples=60)
@given(
    plan=PLANS,
    lost=st.sampled_from([(), (AE,), (RCH,), BOTH]),
    data=st.data(),
)
def test_property_every_order_of_acceptances_echoes_and_receipts(
    plan: Plan, lost: tuple[str, ...], data: st.DataObject
) -> None:
    """Any interleaving of the two acceptances (some lost), each log's entries (in its
    order) and one hour passing: the sender sees the message delivered and acknowledged
    once under one number, and nothing stays overdue or alarmed."""
    with tempfile.TemporaryDirectory() as tmp:
        scene = _build(make_world(), Path(tmp), plan)
        order = data.draw(st.permutations(_tokens(scene, lost)))
        _play(scene, order)
        _assert_seen_once(scene)
