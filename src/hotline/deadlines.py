"""Acknowledgment deadlines and escalation: pure rules, driven by a clock value.

A message of precedence P in a channel whose deadline for P is D seconds is due D
after the relay logged it. Unacknowledged, it escalates: level 1 at the deadline,
then one level more every D/2 (at least 5 s), up to ``MAX_LEVEL``. Each level is
an alarm at both ends and a notice in the log; an acknowledgment ends it.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LEVEL = 5
MIN_STEP_MS = 5_000


@dataclass(frozen=True)
class Pending:
    """A message still waiting for one party's acknowledgment."""

    channel: str
    index: int
    party: str  # the party that must acknowledge
    precedence: str
    logged_ms: int
    deadline_s: int
    level_done: int  # highest escalation level already raised


@dataclass(frozen=True)
class Escalation:
    pending: Pending
    level: int
    due_ms: int


def due_ms(logged_ms: int, deadline_s: int) -> int:
    return logged_ms + deadline_s * 1000


def step_ms(deadline_s: int) -> int:
    return max(MIN_STEP_MS, deadline_s * 500)


def level_at(now_ms: int, logged_ms: int, deadline_s: int) -> int:
    """Escalation level reached at ``now_ms`` (0: not yet due)."""
    due = due_ms(logged_ms, deadline_s)
    if now_ms < due:
        return 0
    return min(MAX_LEVEL, 1 + (now_ms - due) // step_ms(deadline_s))


def escalations(now_ms: int, pending: list[Pending]) -> list[Escalation]:
    """The pending messages that reached a level not yet raised (the highest one)."""
    out = []
    for p in pending:
        level = level_at(now_ms, p.logged_ms, p.deadline_s)
        if level > p.level_done:
            out.append(Escalation(p, level, due_ms(p.logged_ms, p.deadline_s)))
    return out


def next_change_ms(now_ms: int, pending: list[Pending]) -> int | None:
    """When the next escalation of any pending message happens (for schedulers)."""
    times = []
    for p in pending:
        level = level_at(now_ms, p.logged_ms, p.deadline_s)
        if level >= MAX_LEVEL:
            continue
        due = due_ms(p.logged_ms, p.deadline_s)
        times.append(due if level == 0 else due + level * step_ms(p.deadline_s))
    return min(times) if times else None
