"""The station's rules, without any network: the facade the shells call.

``StationCore`` is synchronous and owns the station's store; the network shell
(service.py) calls it from one database thread. The rules live by concept:

    sync.py        entries up to a signed checkpoint, consistency, rollback, cosigning
    receive.py     verifying and opening each entry; receipts and carried checkpoints
    outbox.py      sealing, queuing, acceptance and refusal; acknowledging
    escalation.py  acknowledgment deadlines and link changes as alarms and notices
    linktests.py   pings, pongs, round trips, the hourly logged link test
    statements.py  other stations' certificates and revocations
    views.py       where a message stands with each party
    alarms.py      alarm kinds and values, raised now or after a rollback-able ingest

Every check that fails raises an alarm that keeps its evidence; nothing received
is silently dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import stamps
from ..body import Body
from ..deadlines import Pending
from ..envelope import Kind, Precedence
from ..errors import HotlineError
from ..frames import Accepted, Entries, LinkTest
from ..keys import KeyRing, StationCertificate, StationKey
from ..link import LinkBoard
from ..merkle import TreeCache
from ..notes import SignedCheckpoint
from ..roster import Roster
from . import escalation, keysubmit, linktests, outbox, paths, statements, sync, views
from .alarms import Alarm
from .state import Station
from .store import KeySubmission, OutboxItem, StationStore
from .sync import Ingested

__all__ = ["Ingested", "StationCore"]

RETRY_RECEIPTS_MS = 5000  # how often owed receipts that could not be sealed are retried
# At most this many a retry: the service seals a run's receipts in chunks once arrivals
# pause, and a retry tick falling in that window must not seal the whole run in one go.
RETRY_RECEIPTS_LIMIT = 8


class StationCore:
    def __init__(
        self,
        store: StationStore,
        key: StationKey,
        cert: StationCertificate,
        roster: Roster,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = Station(store, key, cert, roster, clock, monotonic)
        self._links = linktests.LinkTests(self.state)
        self._cosigns = {r: sync.CosignThrottle(self.state) for r in self.state.relays}
        self._receipts_tried_ms = 0

    # --- what the shells read ------------------------------------------------------------

    @property
    def store(self) -> StationStore:
        return self.state.store

    @property
    def key(self) -> StationKey:
        return self.state.key

    @property
    def cert(self) -> StationCertificate:
        return self.state.cert

    @property
    def roster(self) -> Roster:
        return self.state.roster

    @property
    def clock(self) -> Callable[[], float]:
        return self.state.clock

    @property
    def keyring(self) -> KeyRing:
        return self.state.keyring

    @property
    def tree(self) -> TreeCache:
        return self.state.tree

    @property
    def channels(self) -> list[str]:
        return self.state.channels

    @property
    def boards(self) -> dict[str, LinkBoard]:
        return self.state.boards

    @property
    def path_boards(self) -> dict[str, dict[str, LinkBoard]]:
        """With several relays, each party's link through each: relay -> channel -> board."""
        return self.state.path_boards

    @property
    def ident(self) -> str:
        return self.state.ident

    def now_ms(self) -> int:
        return self.state.now_ms()

    def size(self, channel: str, relay: str | None = None) -> int:
        return self.state.size(channel, relay)

    def verified(self, channel: str, relay: str | None = None) -> SignedCheckpoint | None:
        """The latest checkpoint this station verified (and cosigned) of ``relay``'s log of
        the channel (None: the roster's first relay)."""
        return self.state.verified(channel, relay)

    @property
    def relays(self) -> list[str]:
        """The roster's relays, each with its own log of every channel."""
        return self.state.relays

    # --- alarms and keys -------------------------------------------------------------------

    def alarm(self, alarm: Alarm) -> None:
        self.state.alarm(alarm)

    def clear_alarm(self, alarm_id: int, who: str) -> None:
        """An operator handled an alarm: it stays in the record with who and when."""
        with self.store.transaction():
            self.store.clear_alarm(alarm_id, who, self.now_ms())

    def switch_key(
        self, key: StationKey, cert: StationCertificate, retired: Sequence[StationKey] = ()
    ) -> None:
        """Use ``key`` from now on (``hotline station rotate``); ``retired``: keys held
        before it, kept to open what was sealed to them."""
        self.state.switch_key(key, cert)
        self.state.retired.extend(k for k in retired if k not in self.state.retired)
        with self.store.transaction():  # owed to every relay until seen in its log
            keysubmit.submit_certificate(self.state, cert)

    # --- key events this station submits, owed to every relay (keysubmit.py) ----------------

    def submit_key_event(self, kind: str, data: bytes) -> bytes:
        """Owe a key event of this station's party (a revocation) to every relay; its hash."""
        with self.store.transaction():
            return keysubmit.submit(self.state, kind, data)

    def key_events_owed(self, relay: str | None = None) -> list[KeySubmission]:
        """The revocations ``relay`` (None: the first) has not logged yet."""
        return keysubmit.owed(self.state, self.state.relays[self.state.position(relay)])

    def key_events_due(self, relay: str | None = None) -> list[KeySubmission]:
        """The revocations that may go to ``relay`` (None: the first) now: their keys'
        certificates logged there, what was posted before them taken there."""
        return keysubmit.due(self.state, self.state.relays[self.state.position(relay)])

    def certificates_owed(self, relay: str | None = None) -> list[tuple[StationKey, KeySubmission]]:
        """Certificates of keys held before the current one that ``relay`` lacks, with
        their keys (each logged by a session in which its key answers the challenge)."""
        return keysubmit.certificates_owed(
            self.state, self.state.relays[self.state.position(relay)]
        )

    def key_event_refused(self, relay: str | None, digest: bytes, error: HotlineError) -> None:
        """``relay`` refused the key event: owed still (sent again next session)."""
        name = self.state.relays[self.state.position(relay)]
        with self.store.transaction():
            self.store.key_event_refused(name, digest, f"{error.code}: {error}")
            if error.code == "unknown_key":  # it lacks the revoked key's certificate
                keysubmit.certificate_missing(self.state, name, digest)

    def key_events_view(self) -> list[dict[str, Any]]:
        return keysubmit.view(self.state)

    def add_statements(self, certificates: list[bytes], revocations: list[bytes]) -> int:
        """Learn other stations' certificates and revocations (checked against roots)."""
        return statements.add_statements(self.state, certificates, revocations)

    def recipients(self, channel: str) -> list[StationCertificate]:
        """Every usable station certificate of every member party, now."""
        return outbox.recipients(self.state, channel)

    # --- sending ---------------------------------------------------------------------------

    def queue(
        self,
        channel: str,
        body: Body,
        *,
        kind: Kind = Kind.MESSAGE,
        precedence: Precedence = Precedence.ROUTINE,
    ) -> OutboxItem:
        """Seal a message and put it in the durable outbox (the caller's transaction)."""
        return outbox.queue(self.state, channel, body, kind=kind, precedence=precedence)

    def send(
        self,
        channel: str,
        body: Body,
        *,
        kind: Kind = Kind.MESSAGE,
        precedence: Precedence = Precedence.ROUTINE,
    ) -> OutboxItem:
        """Seal and queue a message in its own transaction."""
        with self.store.transaction():
            item = self.queue(channel, body, kind=kind, precedence=precedence)
        stamps.stamp("outbox_committed", self.ident, item.hash)
        return item

    def send_once(
        self, channel: str, body: Body, precedence: Precedence, key: str
    ) -> outbox.Queued:
        """Seal and queue a message under a client's idempotency key, once per key."""
        done = outbox.send_once(self.state, channel, body, precedence, key)
        if not done.repeated:
            stamps.stamp("outbox_committed", self.ident, done.item.hash)
        return done

    def on_accepted(self, frame: Accepted, relay: str | None = None) -> None:
        """The relay accepted one of ours: check its checkpoint and inclusion proof."""
        outbox.on_accepted(self.state, frame, relay)

    def on_refused(
        self, channel: str, seq: int, error: HotlineError, relay: str | None = None
    ) -> None:
        """The relay refused one of ours with ``error``."""
        outbox.on_refused(self.state, channel, seq, error, relay)

    def acknowledge(self, channel: str, index: int, operator: str, reply: str | None) -> OutboxItem:
        return outbox.acknowledge(self.state, channel, index, operator, reply)

    # --- receiving -------------------------------------------------------------------------

    def on_entries(
        self, frame: Entries, receipts: bool = True, relay: str | None = None
    ) -> Ingested:
        """Verify and store a run of entries of ``relay``'s log; ``cosign`` is what to send
        now (throttled). ``receipts`` False: leave the delivered receipts owed to
        ``send_receipts``."""
        result = sync.on_entries(self.state, frame, receipts, relay)
        if result.cosign is not None:
            result.cosign = self._throttle(relay).offer(*result.cosign)
        return result

    def send_receipts(self, limit: int | None = None) -> int:
        """Seal the delivered receipts owed (at most ``limit`` of them, in log order; a
        stuck channel's are skipped), in one transaction; how many were queued."""
        return outbox.send_receipts(self.state, limit)

    def due_cosigns(self, relay: str | None = None) -> list[tuple[str, int, bytes]]:
        """Cosignatures held back by the throttle that may go to the relay now."""
        return self._throttle(relay).due()

    def _throttle(self, relay: str | None) -> sync.CosignThrottle:
        return self._cosigns[self.state.relays[self.state.position(relay)]]

    def logged_by(self, channel: str, digest: bytes) -> dict[str, int]:
        """Which relays' logs (as mirrored here) hold the envelope, at which log index."""
        out: dict[str, int] = {}
        for at in self.store.logged_at(channel, digest):
            out.setdefault(self.state.relay_at(at), paths.split(at)[1])
        return out

    def audit_paths(self, contact_ms: Mapping[str, int | None]) -> int:
        """With several relays: raise the path audit's alarms due now (omissions past the
        bound, silent relays); ``contact_ms``: when each relay was last heard from."""
        audit = self.state.audit
        if audit is None:
            return 0
        for relay, at in contact_ms.items():
            if at is not None:
                audit.contact(relay, at)
        alarms = audit.check(self.now_ms())
        with self.store.transaction():
            for alarm in alarms:
                self.alarm(alarm)
            self.state.keep_audit()
        return len(alarms)

    def check_sizes(self, sizes: Mapping[str, int], relay: str | None = None) -> None:
        """The relay's log sizes at connection: smaller than what we verified is a rollback."""
        sync.check_sizes(self.state, sizes, relay)

    # --- time: deadlines, link tests and link state -------------------------------------------

    def pending_acks(self, now_ms: int) -> list[Pending]:
        """Messages waiting for an acknowledgment whose next escalation is due."""
        return self.store.due_acks(now_ms)

    def check_deadlines(self) -> int:
        """Raise each newly reached escalation: alarm, and a notice in the log."""
        return escalation.check_deadlines(self.state)

    def link_changes(self) -> int:
        """Recompute link boards; alarm on a party going down, clear on return, log both."""
        return escalation.link_changes(self.state)

    def link_tick(self, relay: str | None = None) -> linktests.Tick:
        """Link tests due now: pings to send (through ``relay``, with several relays: each
        relay's link asks for its own), and the hourly one logged; and every
        ``RETRY_RECEIPTS_MS`` the delivered receipts that could not be sealed before
        (``RETRY_RECEIPTS_LIMIT`` of them)."""
        tick = self._links.tick(relay)
        now = self.now_ms()
        if now - self._receipts_tried_ms < RETRY_RECEIPTS_MS:
            return tick
        self._receipts_tried_ms = now
        retried = outbox.send_receipts(self.state, RETRY_RECEIPTS_LIMIT)
        return linktests.Tick(tick.send, tick.queued + retried)

    def on_link(self, link: LinkTest, relay: str | None = None) -> list[LinkTest]:
        """A link message ``relay`` forwarded: check it, update the board (and, with
        several relays, that relay's path board); return pongs to send back through it."""
        return self._links.on_link(link, relay)

    def link_view(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The link board: per channel and party its state, and with several relays its
        state through each relay (``paths``)."""
        return linktests.board_view(self.state, self.now_ms())

    # --- views -------------------------------------------------------------------------------

    def message_state(self, channel: str, index: int) -> dict[str, dict[str, Any]]:
        """Per recipient party: delivered, acknowledged, deadline and escalation."""
        return views.message_state(self.state, channel, index)

    def sent_states(self, items: list[OutboxItem]) -> list[dict[str, dict[str, Any]]]:
        """``message_state`` of each of our messages, batched (empty if not logged yet)."""
        return views.sent_states(self.state, items)
