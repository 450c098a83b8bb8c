"""Deadline and escalation rules, with a fake clock (no sleeping)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hotline.deadlines import (
    MAX_LEVEL,
    Pending,
    escalations,
    level_at,
    next_change_ms,
    step_ms,
)

T0 = 1_800_000_000_000


def _p(deadline_s: int = 600, level_done: int = 0, logged: int = T0) -> Pending:
    return Pending("us-ru", 7, "ru", "FLASH", logged, deadline_s, level_done)


def test_nothing_is_due_before_the_deadline() -> None:
    assert level_at(T0 + 599_999, T0, 600) == 0
    assert escalations(T0 + 599_999, [_p()]) == []


def test_level_one_at_the_deadline_then_one_more_every_half_deadline() -> None:
    assert level_at(T0 + 600_000, T0, 600) == 1
    assert level_at(T0 + 600_000 + 299_999, T0, 600) == 1
    assert level_at(T0 + 900_000, T0, 600) == 2
    assert level_at(T0 + 1_200_000, T0, 600) == 3
    assert level_at(T0 + 10**9, T0, 600) == MAX_LEVEL


def test_each_level_is_raised_once() -> None:
    now = T0 + 600_000
    assert [e.level for e in escalations(now, [_p()])] == [1]
    assert escalations(now, [_p(level_done=1)]) == []
    assert [e.level for e in escalations(T0 + 900_000, [_p(level_done=1)])] == [2]


def test_short_deadlines_escalate_no_faster_than_every_five_seconds() -> None:
    assert step_ms(2) == 5_000
    assert level_at(T0 + 2_000, T0, 2) == 1
    assert level_at(T0 + 6_999, T0, 2) == 1
    assert level_at(T0 + 7_000, T0, 2) == 2


def test_next_change_is_the_next_deadline_or_level() -> None:
    assert next_change_ms(T0, [_p(), _p(deadline_s=1800)]) == T0 + 600_000
    assert next_change_ms(T0 + 600_000, [_p(level_done=1)]) == T0 + 900_000
    assert next_change_ms(T0 + 10**10, [_p(level_done=MAX_LEVEL)]) is None


@given(
    st.integers(min_value=1, max_value=86_400),
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=10**9),
)
def test_levels_never_go_down_as_time_passes(deadline: int, a: int, b: int) -> None:
    early, late = sorted((a, b))
    assert level_at(T0 + early, T0, deadline) <= level_at(T0 + late, T0, deadline)
    assert 0 <= level_at(T0 + late, T0, deadline) <= MAX_LEVEL
