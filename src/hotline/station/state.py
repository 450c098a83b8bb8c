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
from ..roster import Roster
from .alarms import Alarm, Alarms
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
        # Link history: when each (channel, party) was last sampled, and last pruned.
        self.sampled_ms: dict[tuple[str, str], int] = {}
        self.pruned_ms = 0
        self._verified: dict[str, SignedCheckpoint | None] = {}
        self._logs: dict[str, logcheck.LogContext] = {}
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

    def size(self, channel: str) -> int:
        return self.tree(channel).size

    def log(self, channel: str) -> logcheck.LogContext:
        """What logcheck needs of the channel, built once: ``self.keyring`` (the keys to
        seal to), and the log's key history, replayed from the key events taken before."""
        ctx = self._logs.get(channel)
        if ctx is None:
            ctx = logcheck.LogContext.of(self.roster, channel, self.keyring)
            for e in self.store.key_events(channel):
                try:
                    ctx.history.take(e.envelope, index=e.index, relay_ms=e.relay_ms)
                except HotlineError as exc:  # signed by a root an installed roster replaced
                    log.warning("key event #%d of %s no longer taken: %s", e.index, channel, exc)
            self._logs[channel] = ctx
        return ctx

    def verified(self, channel: str) -> SignedCheckpoint | None:
        """The latest checkpoint this station verified (and cosigned) for the channel."""
        if channel not in self._verified:
            note = self.store.verified_checkpoint(channel)
            self._verified[channel] = (
                logcheck.open_log_checkpoint(self.log(channel), note) if note else None
            )
        return self._verified[channel]

    def set_verified(self, channel: str, signed: SignedCheckpoint) -> None:
        self._verified[channel] = signed

    def forget(self, channel: str) -> None:
        """A transaction that extended the channel rolled back: reload from the store."""
        self.tree.drop(channel)
        self._verified.pop(channel, None)
        self._logs.pop(channel, None)  # its key history may hold rolled-back events

    def deadline_s(self, channel: str, precedence: int) -> int:
        return self.roster.channel(channel).deadlines[Precedence(precedence).name]
