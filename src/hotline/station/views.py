"""Views: where a message stands with each recipient party (read-only)."""

from __future__ import annotations

from typing import Any

from .. import deadlines
from .state import Station


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
    due = None
    if precedence is not None and relay_ms is not None:
        due = deadlines.due_ms(relay_ms, st.deadline_s(channel, precedence))
    levels = st.store.escalation_levels(channel, index)
    out: dict[str, dict[str, Any]] = {
        p: {"delivered": None, "acknowledged": None}
        for p in st.roster.channel(channel).members
        if p != sender_party
    }
    for r in st.store.receipts_of(channel, index):
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
    now = st.now_ms()
    for party, slot in out.items():
        slot["due_ms"] = due
        slot["overdue"] = bool(due and slot["acknowledged"] is None and now >= due)
        slot["escalation"] = levels.get(party, 0)
    return out
