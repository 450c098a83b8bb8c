"""Alarms: what a station raises when a check fails, with the evidence that failed.

An alarm is stored at once, except inside an ingest that may be rolled back
(``Alarms.deferred``): those are held and stored after the transaction, so a
rolled-back batch never takes its alarms with it.

Alarms of one kind about one subject (channel, index and ``subject``: a party, a
station, a sequence number) aggregate: while one is open, raising it again counts
it there (first and last seen), so a flood of bad input is one alarm, not thousands.

An alarm's text is stored as a catalog key and its parameters, never as a sentence:
each console and the CLI render it in their reader's language (``alarm_text``). The
parameters are names, numbers and the technical detail of a failed check (which stays
as the check wrote it: it is evidence, and it is what an engineer searches for).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from ..i18n import catalog

if TYPE_CHECKING:
    from .store import StationStore

log = logging.getLogger("hotline.station")


class AlarmKind(StrEnum):
    """Every kind of alarm (the stored and shown value; catalogs key ``alarm.<kind>``)."""

    FLASH = "flash"
    OVERDUE = "overdue"
    PARTY_DOWN = "party-down"
    PARTY_PATH_DOWN = "party-path-down"  # silent through one relay, heard through another
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
    PATH = "path"  # one relay's log disagrees with the others' (pathaudit.py)


Param = str | int

#: Alarm text keys live under this prefix in the catalogs (``alarmtext.fork-rollback``).
TEXT_PREFIX = "alarmtext."


@dataclass(frozen=True)
class Alarm:
    """One alarm to raise: level 1 notice, 2 warning, 3 critical.

    ``text`` is a catalog key under ``alarmtext.`` and ``params`` fill its blanks; a
    text that is no key (an older stored alarm) is shown as it is.
    """

    kind: AlarmKind
    text: str
    level: int = 2
    channel: str | None = None
    index: int | None = None
    evidence: bytes | None = None
    subject: str | None = None  # what else tells one alarm of a kind from another
    params: Mapping[str, Param] = field(default_factory=dict)

    @property
    def message(self) -> str:
        """The text in English (logs, and the ``message`` of the local API)."""
        return alarm_text(self.text, self.params, "en")


@dataclass(frozen=True)
class AlarmRecord:
    """An alarm as stored, with who cleared it and when."""

    id: int
    created_ms: int
    kind: AlarmKind
    level: int
    channel: str | None
    index: int | None
    text: str  # a catalog key under ``alarmtext.`` (see ``Alarm``)
    evidence: bytes | None
    cleared_ms: int | None
    cleared_by: str | None
    subject: str | None = None
    count: int = 1  # times raised while open
    last_ms: int = 0  # when last raised (``created_ms`` is the first)
    params: Mapping[str, Param] = field(default_factory=dict)

    def text_in(self, lang: str) -> str:
        """The alarm's text in ``lang`` (English where that catalog lacks it)."""
        return alarm_text(self.text, self.params, lang)

    @property
    def message(self) -> str:
        return self.text_in("en")


def alarm_text(text: str, params: Mapping[str, Param], lang: str) -> str:
    """Render a stored alarm text (catalog key + parameters) in ``lang``.

    Falls back to English, then to the text itself: a missing translation, a
    parameter a catalog does not know, or an alarm stored before texts were keys
    never hides an alarm.
    """
    for candidate in (lang, "en"):
        try:
            entry = catalog(candidate).get(TEXT_PREFIX + text)
        except KeyError:
            continue
        if entry is None or not entry.string:
            continue
        try:
            return str(entry.string).format(**params)
        except (KeyError, IndexError, ValueError):
            continue
    return text


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
