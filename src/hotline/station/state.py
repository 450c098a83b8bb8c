"""What every station rule reads: its keys, roster, store, log trees and clock.

One ``Station`` is shared by the rule modules (sync, receive, outbox, escalation,
views, linktests); the facade ``StationCore`` builds it. Everything here runs on
the one database thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .. import envelope as env_mod
from .. import logcheck
from ..envelope import Precedence
from ..errors import HotlineError, Malformed, NotARecipient
from ..keys import KeyRing, StationCertificate, StationKey
from ..leaf import check_not_v1
from ..link import LinkBoard
from ..merkle import TreeCache
from ..notes import SignedCheckpoint
from ..roster import Channel, Roster
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
        self.retired: list[StationKey] = []  # keys it held before a rotation: to open with
        self.tree = TreeCache(store.nodes)
        self.alarms = Alarms(store, self.now_ms)
        self.channels = [c.name for c in roster.channels_of(key.party)]
        for channel in self.channels:
            tree = self.tree(channel)
            if tree.size:
                check_not_v1(tree.leaf_hash_at(0), store.entry_bytes(channel, 0), "station store")
        # Link history: when each (channel, party, relay path or None) was last sampled,
        # and last pruned.
        self.sampled_ms: dict[tuple[str, str, str | None], int] = {}
        self.pruned_ms = 0
        self._verified: dict[str, SignedCheckpoint | None] = {}  # by log key
        self._logs: dict[str, logcheck.LogContext] = {}  # by log key
        self.relays = roster.relay_names()  # each its own log of every channel
        # With several relays: every entry (envelope or key event) must show up in every
        # relay's log; what the audit raised before is in the store, not raised again.
        self.audit = (
            PathAudit(self.relays, raised=store.path_alarms()) if len(self.relays) > 1 else None
        )
        if self.audit is not None:
            started_ms = self.now_ms()
            with store.transaction():
                for channel in self.channels:
                    for position in range(len(self.relays)):
                        for e in store.entries(channel, position):
                            if e.valid:  # as when it was taken (receive.py)
                                self.audit_logged(
                                    channel, e.index, e.hash, e.sender, e.seq, started_ms
                                )
        started = self.now_ms()

        def board(c: Channel) -> LinkBoard:
            others = [p for p in c.members if p != key.party]
            return LinkBoard(c.name, others, c.link_test_seconds, c.link_down_after, started)

        # Each party's link per channel (heard through any relay: up if any path is up),
        # and with several relays its link through each (relay -> channel -> board).
        self.boards = {c.name: board(c) for c in roster.channels_of(key.party)}
        self.path_boards: dict[str, dict[str, LinkBoard]] = (
            {r: {c.name: board(c) for c in roster.channels_of(key.party)} for r in self.relays}
            if len(self.relays) > 1
            else {}
        )
        # (channel, party, relay) of each path-down alarm raised and not yet cleared.
        self.paths_down: set[tuple[str, str, str]] = set()

    @property
    def ident(self) -> str:
        return self.key.ident

    def switch_key(self, key: StationKey, cert: StationCertificate) -> None:
        """Sign, cosign and link-test with ``key`` from now on (a rotation); the key
        before it is kept to open what was sealed to it."""
        if key.ident != self.ident:
            raise Malformed(f"a new key for {key.ident} is not one for {self.ident}", field="key")
        if cert.signing != key.signing_public or cert.encryption != key.encryption_public:
            raise Malformed("the certificate is not the new key's", field="certificate")
        self.keyring.add_certificate(cert.encode())
        if key.signing_public != self.key.signing_public:
            self.retired.append(self.key)
        self.key, self.cert, self.witness = key, cert, key.cosigner()

    def body_key(self, env: env_mod.Envelope) -> bytes:
        """The body key of an envelope sealed to this station, with its key or one it
        held before; NotARecipient if none opens it."""
        problem: NotARecipient | None = None
        for key in (self.key, *self.retired):
            try:
                return env_mod.unwrap_key(env, key)
            except NotARecipient as exc:
                problem = problem or exc
        raise problem or NotARecipient(f"{self.ident} holds no key", field="key")

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
        self.keep_audit()

    def keep_audit(self) -> None:
        """Store what the path audit raised or saw repaired since the last call."""
        if self.audit is not None:
            for raised in self.audit.take_changes():
                self.store.put_path_alarm(raised)

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

    def note_of_log_at(self, channel: str, qualified: int) -> bytes:
        """The latest verified checkpoint note of the log that qualified index names (the
        one a receipt for that entry carries; b"" before any)."""
        return (
            self.store.verified_checkpoint(self.log_key(channel, self.relay_at(qualified))) or b""
        )

    def size(self, channel: str, relay: str | None = None) -> int:
        return self.tree(self.log_key(channel, relay)).size

    def log(self, channel: str, relay: str | None = None) -> logcheck.LogContext:
        """What logcheck needs of the channel as ``relay`` logs it (checkpoints signed by
        that relay's key), built once: ``self.keyring`` (the keys to seal to), and that
        log's key history, replayed from the key events taken before."""
        key = self.log_key(channel, relay)
        ctx = self._logs.get(key)
        if ctx is None:
            ctx = logcheck.LogContext.of(self.roster, channel, self.keyring, relay)
            for e in self.store.key_events(channel, self.position(relay)):
                at = paths.split(e.index)[1]
                try:
                    ctx.history.take(e.envelope, index=at, relay_ms=e.relay_ms)
                except HotlineError as exc:  # signed by a root an installed roster replaced
                    log.warning("key event #%d of %s no longer taken: %s", at, key, exc)
            self._logs[key] = ctx
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
        self._logs.pop(key, None)  # its key history may hold rolled-back events

    def deadline_s(self, channel: str, precedence: int) -> int:
        return self.roster.channel(channel).deadlines[Precedence(precedence).name]
