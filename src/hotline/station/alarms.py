"""Alarms: what a station raises when a check fails, with the evidence that failed.

An alarm is stored at once, except inside an ingest that may be rolled back
(``Alarms.deferred``): those are held and stored after the transaction, so a
rolled-back batch never takes its alarms with it.

Alarms of one kind about one subject (channel, index and ``subject``: a party, a
station, a sequence number) aggregate: while one is open, raising it again counts
it there (first and last seen), so a flood of bad input is one alarm, not thousands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import StationStore

log = logging.getLogger("hotline.station")


class AlarmKind(StrEnum):
    """Every kind of alarm (the stored and shown value; catalogs key ``alarm.<kind>``)."""

    FLASH = "flash"
    OVERDUE = "overdue"
    PARTY_DOWN = "party-down"
    FORK = "fork"
    VERIFICATION = "verification"
    BAD_CHECKPOINT = "bad-checkpoint"
    BAD_ACCEPTANCE = "bad-acceptance"
    BAD_CERTIFICATE = "bad-certificate"
    BAD_FRAME = "bad-frame"
    REFUSED = "refused"
    UNEXPECTED_ACCEPTANCE = "unexpected-acceptance"
    UNEXPECTED_CHANNEL = "unexpected-channel"
    ROSTER_MISMATCH = "roster-mismatch"
    NOT_A_RECIPIENT = "not-a-recipient"
    UNREADABLE = "unreadable-entry"
    HELD = "held-entry"
    RECEIPT_NOT_SENT = "receipt-not-sent"


@dataclass(frozen=True)
class Alarm:
    """One alarm to raise: level 1 notice, 2 warning, 3 critical."""

    kind: AlarmKind
    message: str
    level: int = 2
    channel: str | None = None
    index: int | None = None
    evidence: bytes | None = None
    subject: str | None = None  # what else tells one alarm of a kind from another


@dataclass(frozen=True)
class AlarmRecord:
    """An alarm as stored, with who cleared it and when."""

    id: int
    created_ms: int
    kind: AlarmKind
    level: int
    channel: str | None
    index: int | None
    message: str
    evidence: bytes | None
    cleared_ms: int | None
    cleared_by: str | None
    subject: str | None = None
    count: int = 1  # times raised while open
    last_ms: int = 0  # when last raised (``created_ms`` is the first)


class Alarms:
    """Raises alarms into the store, now or after the current ingest."""

    def __init__(self, store: StationStore, now_ms: Callable[[], int]) -> None:
        self.store = store
        self.now_ms = now_ms
        self._held: list[Alarm] | None = None

    def raise_(self, alarm: Alarm) -> None:
        log.warning("ALARM %s: %s", alarm.kind, alarm.message)
        if self._held is not None:
            self._held.append(alarm)
            return
        self.store.add_alarm(alarm, self.now_ms())

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold alarms raised inside; store them on the way out, whatever happened."""
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            for alarm in held:
                self.store.add_alarm(alarm, self.now_ms())
