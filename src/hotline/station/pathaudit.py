"""The path audit: every relay of the roster must log every entry the station knows.

With two or more independent relays (issue 13 part 2) each relay keeps its own log of a
channel, and each log is verified on its own against its relay's key (sync.py). What no
single log can show is a relay that silently leaves an entry out, puts one sender's
envelopes in another order than the other relays, or stops answering: this audit
compares the logs. It is pure: the station reports what each relay logged and when it
last heard from each relay, and asks for the alarms due at a given time.

- **omission**: an entry logged by one relay is not in another relay's log ``bound_ms``
  after the station first saw it (default 60 s). Entries are envelopes and key events
  alike (certificates, revocations, roster versions, compared by hash): a relay that
  leaves a revocation out would keep the revoked key usable in its log;
- **order**: one sender's envelopes, by their sequence numbers, stand in a different
  order in one relay's log than in another's, or one sequence number names different
  envelopes (the sender's chain is the one consistent record across relays);
- **silent**: a relay the station has not heard from for ``bound_ms`` while another answered.

Each alarm names the relay and the entry (its hash and where it was logged) and keeps
the observations as its evidence. Each is raised once per relay and entry, also across
restarts: what was raised (``Raised``) is handed to the station to store
(``take_changes``) and given back to the next audit (``raised``); an omission the relay
repairs later (it logs the entry after all) is marked repaired, the alarm and its
evidence stay.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from ..errors import Malformed
from .alarms import Alarm, AlarmKind

DEFAULT_BOUND_MS = 60_000
MAX_BOUND_MS = 24 * 3600 * 1000
KEY_EVENT = ""  # a key event's sender (it has none: no station's ident is empty)


@dataclass(frozen=True)
class Logged:
    """One entry as one relay logged it (a key event: sender KEY_EVENT, seq 0)."""

    relay: str
    channel: str
    index: int
    hash: bytes
    sender: str
    seq: int


@dataclass(frozen=True)
class Raised:
    """An alarm the audit raised about one relay and entry (``what``: omits, order or
    chain), and when the relay repaired an omission (logged the entry after all)."""

    what: str
    relay: str
    hash: bytes
    channel: str
    index: int
    raised_ms: int
    repaired_ms: int | None = None


@dataclass
class _Known:
    first_ms: int
    channel: str
    sender: str
    seq: int
    where: dict[str, int] = field(default_factory=dict)  # relay -> index in its log


class PathAudit:
    def __init__(
        self,
        relays: Sequence[str],
        bound_ms: int = DEFAULT_BOUND_MS,
        raised: Iterable[Raised] = (),
    ) -> None:
        """``raised``: what an audit before this one raised (the station's store)."""
        if len(set(relays)) != len(relays) or not relays:
            raise Malformed("the audit needs distinct relay names", field="relays")
        if not 1 <= bound_ms <= MAX_BOUND_MS:
            raise Malformed(f"the audit bound must be 1..{MAX_BOUND_MS} ms", field="bound")
        self.relays = tuple(relays)
        self.bound_ms = bound_ms
        self._known: dict[bytes, _Known] = {}
        # (relay, channel, sender) -> {seq: index}: where each of a sender's envelopes stands
        self._order: dict[tuple[str, str, str], dict[int, int]] = {}
        self._by_seq: dict[tuple[str, str, int], bytes] = {}  # (channel, sender, seq) -> hash
        self._contact: dict[str, int] = {}
        self._raised: set[tuple[str, str, bytes]] = set()  # (what, relay, hash or b"")
        self._records: dict[tuple[str, str, bytes], Raised] = {}
        self._changes: list[Raised] = []  # raised or repaired since take_changes
        for record in raised:
            key = (record.what, record.relay, record.hash)
            self._raised.add(key)
            self._records[key] = record

    def contact(self, relay: str, now_ms: int) -> None:
        """The station heard from ``relay`` (a session opened, a frame arrived)."""
        self._check_relay(relay)
        self._contact[relay] = max(now_ms, self._contact.get(relay, now_ms))

    def logged(self, entry: Logged, now_ms: int) -> list[Alarm]:
        """``entry.relay`` logged this entry; alarms due at once (order, chain)."""
        self._check_relay(entry.relay)
        self.contact(entry.relay, now_ms)
        alarms: list[Alarm] = []
        known = self._known.get(entry.hash)
        if known is None:
            known = _Known(now_ms, entry.channel, entry.sender, entry.seq)
            self._known[entry.hash] = known
        known.where.setdefault(entry.relay, entry.index)
        omitted = self._records.get(("omits", entry.relay, entry.hash))
        if omitted is not None and omitted.repaired_ms is None:
            self._record(replace(omitted, repaired_ms=now_ms))
        if entry.sender == KEY_EVENT:  # no sender, no chain: compared by hash alone
            return alarms
        other = self._by_seq.setdefault((entry.channel, entry.sender, entry.seq), entry.hash)
        if other != entry.hash:
            alarms += self._once("chain", entry, "path-chain", {"seq": entry.seq}, now_ms)
        order = self._order.setdefault((entry.relay, entry.channel, entry.sender), {})
        order.setdefault(entry.seq, entry.index)
        for seq, index in order.items():  # a later seq logged before an earlier one
            if (seq < entry.seq) != (index < entry.index) and seq != entry.seq:
                alarms += self._once(
                    "order", entry, "path-order", {"seq": entry.seq, "other": seq}, now_ms
                )
                break
        return alarms

    def check(self, now_ms: int) -> list[Alarm]:
        """Omissions and silent relays due at ``now_ms``."""
        alarms: list[Alarm] = []
        for digest, known in self._known.items():
            if now_ms - known.first_ms < self.bound_ms:
                continue
            for relay in self.relays:
                if relay in known.where:
                    continue
                seen, index = next(iter(known.where.items()))
                entry = Logged(relay, known.channel, index, digest, known.sender, known.seq)
                key_event = known.sender == KEY_EVENT
                alarms += self._once(
                    "omits",
                    entry,
                    "path-omits-key" if key_event else "path-omits",
                    {"seen": seen, "seconds": self.bound_ms // 1000},
                    now_ms,
                    evidence=self._evidence(digest, known),
                )
        heard = [t for t in self._contact.values() if now_ms - t < self.bound_ms]
        for relay in self.relays:
            last = self._contact.get(relay)
            if heard and (last is None or now_ms - last >= self.bound_ms):
                key = ("silent", relay, (last or 0).to_bytes(8, "big"))
                if key not in self._raised:
                    self._raised.add(key)
                    alarms.append(
                        Alarm(
                            AlarmKind.PATH,
                            "path-silent",
                            level=2,
                            subject=relay,
                            params={"relay": relay, "seconds": self.bound_ms // 1000},
                        )
                    )
        return alarms

    def take_changes(self) -> list[Raised]:
        """What was raised or repaired since the last call: for the station to store."""
        changes, self._changes = self._changes, []
        return changes

    def omissions(self, relay: str | None = None) -> list[Raised]:
        """The omissions raised (of ``relay``, or of every relay), open and repaired."""
        return [
            r
            for (what, name, _), r in self._records.items()
            if what == "omits" and relay in (None, name)
        ]

    def missing(self, relay: str) -> list[bytes]:
        """The hashes known to the station that ``relay`` has not logged (yet)."""
        return [d for d, k in self._known.items() if relay not in k.where]

    def where(self, digest: bytes) -> dict[str, int]:
        """Which relays logged this entry, at which index of their log."""
        known = self._known.get(digest)
        return dict(known.where) if known is not None else {}

    def _check_relay(self, relay: str) -> None:
        if relay not in self.relays:
            raise Malformed(f"no relay {relay!r} in this audit", field="relay")

    def _record(self, record: Raised) -> None:
        self._records[(record.what, record.relay, record.hash)] = record
        self._changes.append(record)

    def _evidence(self, digest: bytes, known: _Known) -> bytes:
        return json.dumps(
            {
                "hash": digest.hex(),
                "channel": known.channel,
                "sender": known.sender,
                "seq": known.seq,
                "first_seen_ms": known.first_ms,
                "logged": known.where,
            },
            sort_keys=True,
        ).encode()

    def _once(
        self,
        what: str,
        entry: Logged,
        text: str,
        extra: dict[str, str | int],
        now_ms: int,
        evidence: bytes | None = None,
    ) -> list[Alarm]:
        key = (what, entry.relay, entry.hash)
        if key in self._raised:
            return []
        self._raised.add(key)
        self._record(Raised(what, entry.relay, entry.hash, entry.channel, entry.index, now_ms))
        known = self._known.get(entry.hash)
        return [
            Alarm(
                AlarmKind.PATH,
                text,
                level=3,
                channel=entry.channel,
                index=entry.index,
                subject=f"{entry.relay} {entry.hash.hex()}",
                evidence=evidence or (self._evidence(entry.hash, known) if known else None),
                params={
                    "relay": entry.relay,
                    "channel": entry.channel,
                    "index": entry.index,
                    "hash": entry.hash.hex()[:16],
                    "sender": entry.sender,
                    **extra,
                },
            )
        ]
