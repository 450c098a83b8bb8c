"""What every station rule reads: its keys, roster, store, log trees and clock.

One ``Station`` is shared by the rule modules (sync, receive, outbox, escalation,
views, linktests); the facade ``StationCore`` builds it. Everything here runs on
the one database thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .. import logcheck
from ..envelope import Precedence
from ..errors import HotlineError
from ..keys import KeyRing, StationCertificate, StationKey
from ..leaf import check_not_v1
from ..link import LinkBoard
from ..merkle import TreeCache
from ..notes import SignedCheckpoint
from ..roster import Roster
from . import paths
from .alarms import Alarm, Alarms
from .pathaudit import Logged, PathAudit
from .store import StationStore

log = logging.getLogger("hotline.station")


class Station:
    """The shared state of one station's rules (not a value: caches change)."""

    def __init__(
        self,
        store: StationStore,
        key: StationKey,
        cert: StationCertificate,
        roster: Roster,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self.store = store
        self.key = key
        self.cert = cert
        self.roster = roster
        self.clock = clock
        self.monotonic = monotonic
        self.keyring = KeyRing(roster.roots())
        self.keyring.add_certificate(cert.encode())
        for kind, add in (
            ("certificate", self.keyring.add_certificate),
            ("revocation", self.keyring.add_revocation),
        ):
            for data in store.statements(kind):
                try:
                    add(data)
                except HotlineError as exc:  # stored before a limit existed: not fatal
                    log.warning("a stored %s is no longer taken: %s", kind, exc)
        self.witness = key.cosigner()
        self.tree = TreeCache(store.nodes)
        self.alarms = Alarms(store, self.now_ms)
        self.channels = [c.name for c in roster.channels_of(key.party)]
        for channel in self.channels:
            tree = self.tree(channel)
            if tree.size:
                check_not_v1(tree.leaf_hash_at(0), store.entry_bytes(channel, 0), "station store")
        # Link history: when each (channel, party) was last sampled, and last pruned.
        self.sampled_ms: dict[tuple[str, str], int] = {}
        self.pruned_ms = 0
        self._verified: dict[str, SignedCheckpoint | None] = {}  # by log key
        self._logs: dict[str, logcheck.LogContext] = {}  # by log key
        self.relays = roster.relay_names()  # each its own log of every channel
        # With several relays: every envelope must show up in every relay's log.
        self.audit = PathAudit(self.relays) if len(self.relays) > 1 else None
        if self.audit is not None:
            started_ms = self.now_ms()
            for channel in self.channels:
                for position in range(len(self.relays)):
                    for e in store.entries(channel, position):
                        self.audit_logged(channel, e.index, e.hash, e.sender, e.seq, started_ms)
        started = self.now_ms()
        self.boards = {
            c.name: LinkBoard(
                c.name,
                [p for p in c.members if p != key.party],
                c.link_test_seconds,
                c.link_down_after,
                started,
            )
            for c in roster.channels_of(key.party)
        }

    @property
    def ident(self) -> str:
        return self.key.ident

    @property
    def party(self) -> str:
        return self.key.party

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def alarm(self, alarm: Alarm) -> None:
        self.alarms.raise_(alarm)

    def audit_logged(
        self, channel: str, at: int, digest: bytes, sender: str, seq: int, now_ms: int
    ) -> None:
        """Tell the path audit that a relay's log holds this envelope (qualified ``at``)."""
        if self.audit is None:
            return
        entry = Logged(self.relay_at(at), channel, paths.split(at)[1], digest, sender, seq)
        for alarm in self.audit.logged(entry, now_ms):
            self.alarm(alarm)

    def position(self, relay: str | None) -> int:
        """The roster position of ``relay`` (None: the first relay)."""
        return 0 if relay is None else self.relays.index(relay)

    def relay_at(self, qualified: int) -> str:
        """The relay whose log a qualified index names (paths.py)."""
        position = paths.split(qualified)[0]
        if position >= len(self.relays):
            raise LookupError(f"no relay at position {position}")
        return self.relays[position]

    def log_key(self, channel: str, relay: str | None = None) -> str:
        """Where ``relay``'s log mirror of ``channel`` is kept (the channel for the first)."""
        position = self.position(relay)
        return paths.log_key(channel, self.relays[position], position)

    def size(self, channel: str, relay: str | None = None) -> int:
        return self.tree(self.log_key(channel, relay)).size

    def log(self, channel: str, relay: str | None = None) -> logcheck.LogContext:
        """What logcheck needs of the channel as ``relay`` logs it (checkpoints signed by
        that relay's key), built once. It holds ``self.keyring`` itself, so certificates and
        revocations learnt later are seen by every check."""
        key = self.log_key(channel, relay)
        ctx = self._logs.get(key)
        if ctx is None:
            ctx = self._logs[key] = logcheck.LogContext.of(
                self.roster, channel, self.keyring, None if relay is None else relay
            )
        return ctx

    def verified(self, channel: str, relay: str | None = None) -> SignedCheckpoint | None:
        """The latest checkpoint this station verified (and cosigned) of ``relay``'s log."""
        key = self.log_key(channel, relay)
        if key not in self._verified:
            note = self.store.verified_checkpoint(key)
            self._verified[key] = (
                logcheck.open_log_checkpoint(self.log(channel, relay), note) if note else None
            )
        return self._verified[key]

    def set_verified(
        self, channel: str, signed: SignedCheckpoint, relay: str | None = None
    ) -> None:
        self._verified[self.log_key(channel, relay)] = signed

    def forget(self, channel: str, relay: str | None = None) -> None:
        """A transaction that extended the log rolled back: reload from the store."""
        key = self.log_key(channel, relay)
        self.tree.drop(key)
        self._verified.pop(key, None)

    def deadline_s(self, channel: str, precedence: int) -> int:
        return self.roster.channel(channel).deadlines[Precedence(precedence).name]
