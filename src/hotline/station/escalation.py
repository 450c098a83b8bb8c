"""Deadlines and link changes: what the station raises as time passes.

A message waits for acknowledgments (ours for others' messages, every other
party's for ours); past its deadline each escalation level is an alarm here and
a notice in the log. A party going silent is an alarm and a notice too; its
return clears the alarm. The rules of timing live in ``deadlines`` and ``link``.

With several relays a party is up while any path to it is up. A path down while the
party is up through another relay is a lesser alarm naming the relay
(``party-path-down``), cleared when the path is up again; it is not a notice in the
log: the log records the party's state as the channel's members see it, and a path's
state is this station's view of one relay (which, being down, could not carry it).
A party silent on every path is the ``party-down`` alarm alone, as with one relay.
"""

from __future__ import annotations

import logging

from .. import deadlines
from .. import envelope as env_mod
from ..body import LinkNotice, OverdueNotice, Side
from ..envelope import Kind, Precedence
from ..errors import HotlineError
from ..link import LinkState
from . import linktests, outbox
from .alarms import Alarm, AlarmKind
from .state import Station

log = logging.getLogger("hotline.station")

NEVER_MS = 2**62  # next escalation of one at the highest level


def await_acks(st: Station, channel: str, index: int, env: env_mod.Envelope, relay_ms: int) -> None:
    """A message entered the log: note whose acknowledgment it waits for, and when.

    Messages of our party wait for every other member; others' wait for us. A party
    whose acknowledgment was read before the message (from another relay's log, filed
    under this number by then) is not awaited: nothing would ever end that wait."""
    me = st.party
    parties = (
        [p for p in st.roster.channel(channel).members if p != me] if env.party == me else [me]
    )
    done = st.store.acknowledged_by(channel, index)
    parties = [p for p in parties if p not in done]
    deadline = st.deadline_s(channel, int(env.precedence))
    for party in parties:
        st.store.await_ack(
            deadlines.Pending(
                channel, index, party, Precedence(env.precedence).name, relay_ms, deadline, 0
            ),
            deadlines.due_ms(relay_ms, deadline),
        )


def check_deadlines(st: Station) -> int:
    """Raise each newly reached escalation: alarm, and a notice in the log."""
    now = st.now_ms()
    due = deadlines.escalations(now, st.store.due_acks(now))
    if not due:
        return 0
    with st.store.transaction():
        for e in due:
            p = e.pending
            side = Side.RECIPIENT if p.party == st.party else Side.SENDER
            late = (now - e.due_ms) // 1000
            st.alarm(
                Alarm(
                    AlarmKind.OVERDUE,
                    "overdue-ours" if side == Side.RECIPIENT else "overdue-theirs",
                    level=3 if e.level > 1 or p.precedence == "FLASH" else 2,
                    channel=p.channel,
                    index=p.index,
                    subject=f"{p.party} level {e.level}",  # each level rises anew
                    params={
                        "precedence": p.precedence,
                        "channel": p.channel,
                        "index": p.index,
                        "party": p.party,
                        "late": late,
                        "deadline": p.deadline_s,
                        "level": e.level,
                    },
                )
            )
            raised = deadlines.Pending(
                p.channel, p.index, p.party, p.precedence, p.logged_ms, p.deadline_s, e.level
            )
            following = deadlines.next_change_ms(now, [raised])
            st.store.escalate(p, e.level, following if following is not None else NEVER_MS, now)
            try:
                outbox.queue(
                    st,
                    p.channel,
                    OverdueNotice(side, p.index, p.party, e.level, e.due_ms),
                    kind=Kind.NOTICE,
                    precedence=Precedence[p.precedence],
                )
            except HotlineError as exc:
                log.warning("could not record escalation in the log: %s", exc)
    return len(due)


def link_changes(st: Station) -> int:
    """Recompute link boards; alarm on a party going down, clear on return, log both;
    sample each change, and each state at least once a minute, into the link history."""
    now = st.now_ms()
    queued = 0
    for channel, board in st.boards.items():
        for party, old, new in board.update(now):
            linktests.sample(st, channel, party, new, now)
            if new == LinkState.DOWN:
                with st.store.transaction():
                    st.alarm(
                        Alarm(
                            AlarmKind.PARTY_DOWN,
                            "party-down",
                            level=3,
                            channel=channel,
                            subject=party,
                            params={
                                "party": party,
                                "channel": channel,
                                "missed": board.missed(party, now),
                            },
                        )
                    )
                    queued += _link_notice(st, channel, party, old, new)
            elif new == LinkState.UP and old != LinkState.UP:
                with st.store.transaction():
                    st.store.clear_alarms(
                        [AlarmKind.PARTY_DOWN],
                        "link restored",
                        now,
                        channel=channel,
                        subject=party,
                    )
                    if old == LinkState.DOWN:
                        queued += _link_notice(st, channel, party, old, new)
    if st.path_boards:
        _path_changes(st, now)
    linktests.heartbeat(st, now)
    return queued


def _path_changes(st: Station, now: int) -> None:
    """Each path's board: sample its changes; alarm on a path down while the party is
    reachable through another relay, clear that alarm when the path is up again."""
    for relay, by_channel in st.path_boards.items():
        for channel, board in by_channel.items():
            for party, old, new in board.update(now):
                linktests.sample(st, channel, party, new, now, relay=relay)
                if new == LinkState.UP and old != LinkState.UP:
                    st.paths_down.discard((channel, party, relay))
                    with st.store.transaction():
                        st.store.clear_alarms(
                            [AlarmKind.PARTY_PATH_DOWN],
                            f"link through {relay} restored",
                            now,
                            channel=channel,
                            subject=f"{party} via {relay}",
                        )
    for relay, by_channel in st.path_boards.items():
        for channel, board in by_channel.items():
            for party, link in board.links.items():
                key = (channel, party, relay)
                if link.state != LinkState.DOWN or key in st.paths_down:
                    continue
                if st.boards[channel].links[party].state == LinkState.DOWN:
                    continue  # silent on every path: the party-down alarm says it
                up = [
                    r
                    for r, boards in st.path_boards.items()
                    if boards[channel].links[party].state in (LinkState.UP, LinkState.DEGRADED)
                ]
                st.paths_down.add(key)
                with st.store.transaction():
                    st.alarm(
                        Alarm(
                            AlarmKind.PARTY_PATH_DOWN,
                            "party-down-via",
                            level=2,
                            channel=channel,
                            subject=f"{party} via {relay}",
                            params={
                                "party": party,
                                "channel": channel,
                                "relay": relay,
                                "missed": board.missed(party, now),
                                "up": ", ".join(up) or "-",
                            },
                        )
                    )


def _link_notice(st: Station, channel: str, party: str, old: LinkState, new: LinkState) -> int:
    try:
        outbox.queue(
            st,
            channel,
            LinkNotice(party, str(old), str(new)),
            kind=Kind.NOTICE,
            precedence=Precedence.PRIORITY,
        )
        return 1
    except HotlineError as exc:
        log.warning("could not record a link change in the log: %s", exc)
        return 0
