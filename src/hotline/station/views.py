"""Views: where a message stands with each recipient party (read-only)."""

from __future__ import annotations

from typing import Any

from .. import deadlines
from .state import Station
from .store import OutboxItem, Receipt


def message_state(st: Station, channel: str, index: int) -> dict[str, dict[str, Any]]:
    """Per recipient party: delivered (station, when), acknowledged (by whom, when),
    the acknowledgment deadline and whether it has passed."""
    sender_party, precedence, relay_ms = st.party, None, None
    message = st.store.message(channel, index)
    if message is not None:
        sender_party, precedence, relay_ms = message.party, message.precedence, message.relay_ms
    else:
        ours = st.store.outbox_at(channel, index)
        if ours is not None:
            precedence, relay_ms = ours.precedence, ours.relay_ms
    return _state(
        st,
        channel,
        sender_party,
        precedence,
        relay_ms,
        st.store.receipts_of(channel, index),
        st.store.escalation_levels(channel, index),
        st.now_ms(),
    )


def sent_states(st: Station, items: list[OutboxItem]) -> list[dict[str, dict[str, Any]]]:
    """``message_state`` of each of our logged messages (empty for one not logged yet),
    with one query per channel for receipts and one for escalations, not one per message."""
    now = st.now_ms()
    receipts: dict[tuple[str, int], list[Receipt]] = {}
    levels: dict[tuple[str, int], dict[str, int]] = {}
    for channel in {i.channel for i in items}:
        indexes = [i.index for i in items if i.channel == channel and i.index is not None]
        for r in st.store.receipts_of_many(channel, indexes):
            receipts.setdefault((channel, r.of_index), []).append(r)
        for index, by_party in st.store.escalation_levels_many(channel, indexes).items():
            levels[(channel, index)] = by_party
    return [
        {}
        if i.index is None
        else _state(
            st,
            i.channel,
            st.party,
            i.precedence,
            i.relay_ms,
            receipts.get((i.channel, i.index), []),
            levels.get((i.channel, i.index), {}),
            now,
        )
        for i in items
    ]


def _state(
    st: Station,
    channel: str,
    sender_party: str,
    precedence: int | None,
    relay_ms: int | None,
    receipts: list[Receipt],
    levels: dict[str, int],
    now: int,
) -> dict[str, dict[str, Any]]:
    due = None
    if precedence is not None and relay_ms is not None:
        due = deadlines.due_ms(relay_ms, st.deadline_s(channel, precedence))
    out: dict[str, dict[str, Any]] = {
        p: {"delivered": None, "acknowledged": None}
        for p in st.roster.channel(channel).members
        if p != sender_party
    }
    for r in receipts:
        slot = out.setdefault(r.party, {"delivered": None, "acknowledged": None})
        if slot[r.status] is None:
            slot[r.status] = {
                "station": r.station,
                "relay_ms": r.relay_ms,
                "created_ms": r.created_ms,
                "operator": r.operator,
                "reply": r.reply,
                "receipt_index": r.index,
            }
    for party, slot in out.items():
        slot["due_ms"] = due
        slot["overdue"] = bool(due and slot["acknowledged"] is None and now >= due)
        slot["escalation"] = levels.get(party, 0)
    return out
