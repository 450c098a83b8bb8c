"""The relay's rules, without any network: authenticate stations (on the WebSocket and
for signed HTTP reads), accept, log, prove, answer syncs, and decide who hears what.

``RelayCore`` is synchronous and owns one store; the ASGI shell (app.py) calls it
from a single database thread, so its methods never run concurrently. Several relay
processes may share one store (PostgreSQL): every write to a channel holds the
channel's lock in the store, and what a process caches of a channel is refreshed
whenever another process appended to it (``hold``, ``refresh``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .. import envelope as env_mod
from .. import frames
from ..errors import (
    HotlineError,
    Malformed,
    NotAuthorized,
    RevokedKey,
    Unauthenticated,
    UnknownKey,
)
from ..keys import KeyRing, Revocation, StationCertificate
from ..leaf import LeafKind, check_not_v1, leaf_data
from ..merkle import TreeCache
from ..notes import (
    Checkpoint,
    CosignatureVerifier,
    Note,
    NoteSigner,
    parse_checkpoint_text,
    parse_note,
    sign_checkpoint,
    unb64,
    verify_note,
)
from ..roster import Roster, open_roster
from .storage import KEY_EVENT_SENDER, RelayStore, StoredEntry

log = logging.getLogger("hotline.relay")

OLD_LOG = (
    "this log opens with an envelope: it was written before key events were logged "
    "(certificates and revocations as entries) and is not migrated: start from a new database"
)
SYNC_CHUNK = 1000  # entries read for one sync answer (then split to fit a frame)
HTTP_AUTH_SKEW = 120  # seconds a signed HTTP request's time may be off the relay's clock


@dataclass(frozen=True)
class Acceptance:
    """The relay's answer to an accepted envelope (``duplicate``: accepted before)."""

    entry: StoredEntry
    checkpoint: bytes
    checkpoint_size: int
    proof: list[bytes]
    duplicate: bool

    def frame(self, request_id: frames.RequestId) -> frames.Accepted:
        e = self.entry
        return frames.Accepted(
            request_id,
            e.channel,
            e.index,
            e.hash,
            e.seq,
            e.relay_ms,
            self.duplicate,
            self.checkpoint,
            tuple(self.proof),
        )


def _new_entries(
    outcome: Iterable[tuple[StoredEntry, bool] | HotlineError],
) -> dict[str, list[StoredEntry]]:
    """A batch's new entries (not refused, not duplicates) by channel, in log order."""
    new: dict[str, list[StoredEntry]] = {}
    for item in outcome:
        if not isinstance(item, HotlineError) and not item[1]:
            new.setdefault(item[0].channel, []).append(item[0])
    return new


def answer(request_id: frames.RequestId, result: Acceptance | HotlineError) -> frames.RelayFrame:
    """The answer to one posted envelope."""
    if isinstance(result, HotlineError):
        return frames.ErrorReply.of(request_id, result)
    return result.frame(request_id)


C = TypeVar("C", bound=Hashable)


class Subscriptions(Generic[C]):
    """Which connections hear what: a channel's pushes and link tests go to the
    stations online whose party is a member (each connection joins its party's channels)."""

    def __init__(self) -> None:
        self._by_channel: dict[str, set[C]] = {}

    def join(self, conn: C, channels: Iterable[str]) -> None:
        for channel in channels:
            self._by_channel.setdefault(channel, set()).add(conn)

    def leave(self, conn: C, channels: Iterable[str]) -> None:
        for channel in channels:
            self._by_channel.get(channel, set()).discard(conn)

    def of(self, channel: str) -> list[C]:
        """The connections that receive the channel's new entries."""
        return list(self._by_channel.get(channel, ()))

    def link_recipients(self, channel: str, sender: C) -> list[C]:
        """A link test goes to the channel's other connections, never back to its sender."""
        return [c for c in self.of(channel) if c is not sender]

    def online(self) -> set[C]:
        """Every connection, once (for what every station online must learn)."""
        return {c for conns in self._by_channel.values() for c in conns}


@dataclass(frozen=True)
class HttpAuth:
    """An ``Authorization: Hotline station=..,time=..,signature=..`` header, split."""

    station: str
    time: int
    signature: str  # base64, decoded only once the time is checked

    @classmethod
    def parse(cls, header: str) -> HttpAuth:
        if not header.startswith("Hotline "):
            # No credentials at all: 401 at the HTTP edge (a bad signature is 403).
            raise Unauthenticated(
                "sign the request: Authorization: Hotline station=..,time=..,signature=.."
            )
        parts = dict(p.strip().split("=", 1) for p in header[8:].split(",") if "=" in p)
        stamp = parts.get("time", "")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 18):
            raise NotAuthorized(_BAD_TIME)
        return cls(parts.get("station", ""), int(stamp), parts.get("signature", ""))


_BAD_TIME = "request time is missing or too far from the relay's clock"


def http_auth_message(method: str, path: str, query: str, stamp: int) -> bytes:
    """What a station signs to read over HTTP (docs/PROTOCOL.md §6)."""
    return f"hotline-http/v1\n{method}\n{path}?{query}\n{stamp}".encode()


class RelayCore:
    def __init__(
        self,
        store: RelayStore,
        roster: Roster,
        log_key: NoteSigner,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if log_key.verifier not in roster.relays:
            raise NotAuthorized("this relay key is not one the roster names")
        self.store = store
        self.roster = roster
        self.log_key = log_key
        self.clock = clock
        self.keyring = KeyRing(roster.roots())
        for data in store.statements("certificate"):
            try:
                self.keyring.add_certificate(data)
            except HotlineError as exc:  # signed by a root a newer roster replaced
                log.warning("a stored certificate is no longer taken: %s", exc)
        for data in store.statements("revocation"):
            try:
                self.keyring.add_revocation(data)
            except HotlineError as exc:  # taken before the rule held (another party's)
                log.warning("a stored revocation is no longer taken: %s", exc)
        self.tree = TreeCache(store.nodes)
        self._senders: dict[tuple[str, str], tuple[int, bytes]] = {}
        self._key_events: list[StoredEntry] = []  # logged, not yet pushed
        self._parsed: dict[bytes, env_mod.Envelope] = {}  # the batch being accepted
        self._last_ms = 0
        for channel in roster.channels:
            self._last_ms = max(self._last_ms, self._latest_time(channel))
        # Every statement taken is a key event of each channel of its party: log those a
        # crash or a new roster (a party in a new channel) left out, in the order taken.
        for cert in self.keyring.all_certificates():
            self._log_statement(cert.encode(), self.channels_of(cert.party))
        for rev in self.keyring.revocations.values():
            self._log_statement(rev.encode(), self.channels_of(rev.party))
        self._adopt_roster()

    def _adopt_roster(self) -> None:
        """Remember the first roster this relay ran with; log a newer version (party root
        rotation) as a key event in every channel that has a log; refuse an older one,
        or another of the same version."""
        held = [open_roster(data) for data in self.store.statements("roster")]
        latest = max(held, key=lambda r: r.version, default=None)
        mine = self.roster
        if latest is not None and mine.version < latest.version:
            raise Malformed(
                f"roster v{mine.version} is older than v{latest.version}, which this relay "
                "already ran with",
                field="roster",
            )
        if latest is not None and mine.version == latest.version:
            if mine.encode() != latest.encode():
                raise Malformed(
                    f"another roster of version {mine.version} than the one this relay ran "
                    "with: a changed roster needs a new version",
                    field="roster",
                )
            return
        logged = [c for c in mine.channels if latest is not None and self.size(c)]
        version = mine.version.to_bytes(8, "big")
        self._log_statement(mine.encode(), logged, ("roster", version))

    def _latest_time(self, channel: str) -> int:
        """The last time the relay gave in this channel (its last entry's, or the latest
        checkpoint's); refuses a log written before leaf format v2."""
        if self.size(channel):
            first = self.store.entries(channel, 0, 1)[0]
            check_not_v1(self.tree(channel).leaf_hash_at(0), first.envelope, "relay store")
            if first.kind != LeafKind.KEY_EVENT:  # a log always opens with a certificate
                raise Malformed(f"relay store: {OLD_LOG}", field="database")
        return self._time_of(channel)

    def _time_of(self, channel: str) -> int:
        size = self.size(channel)
        last = self.store.entries(channel, size - 1, size) if size else []
        note = self.store.checkpoint(channel, size)
        signed = parse_checkpoint_text(parse_note(note).text).time_ms if note else None
        return max(last[-1].relay_ms if last else 0, signed or 0)

    def now_ms(self) -> int:
        """The relay's time: its clock, but never before a time it gave already, so that
        entry times (signed in their leaves) never go back, even if the clock does."""
        self._last_ms = max(int(self.clock() * 1000), self._last_ms)
        return self._last_ms

    def size(self, channel: str) -> int:
        return self.tree(channel).size

    # --- keys and authentication -------------------------------------------

    def register_certificate(self, data: bytes) -> StationCertificate:
        """Take a certificate and log it (once) in every channel of its party."""
        cert = self.keyring.add_certificate(data)
        self._log_statement(data, self.channels_of(cert.party), ("certificate", cert.signing))
        return cert

    def learn(self, kind: str, key: bytes) -> StationCertificate | Revocation | None:
        """Take a statement another relay process stored (told by the fan-out)."""
        data = self.store.statement(kind, key)
        if data is None:
            return None
        if kind == "certificate":
            return self.keyring.add_certificate(data)
        if kind == "revocation":
            try:
                return self.keyring.add_revocation(data)
            except UnknownKey:  # its certificate's notification was missed: read them all
                self.learn_all()
                return self.keyring.add_revocation(data)
        return None

    def learn_all(self) -> list[Revocation]:
        """Take every statement in the store (after the fan-out missed some); returns
        the revocations, whose sessions must end wherever they are."""
        for data in self.store.statements("certificate"):
            with contextlib.suppress(HotlineError):
                self.keyring.add_certificate(data)
        revocations = []
        for data in self.store.statements("revocation"):
            with contextlib.suppress(HotlineError):
                revocations.append(self.keyring.add_revocation(data))
        return revocations

    def register_revocation(self, data: bytes) -> Revocation:
        """Take a party's revocation of one of its own stations' keys (KeyRing's rule:
        signed by the root of the party it names, for a key that party certified) and
        log it (once) in every channel of that party: it takes effect there."""
        rev = self.keyring.add_revocation(data)
        self._log_statement(data, self.channels_of(rev.party), ("revocation", rev.signing))
        return rev

    def _log_statement(
        self, data: bytes, channels: list[str], keep: tuple[str, bytes] | None = None
    ) -> None:
        """Append a key event to each of ``channels`` that does not hold it yet, and sign
        those channels, in one transaction (with the statement, if ``keep``)."""
        digest = hashlib.sha256(data).digest()
        missing = [c for c in channels if self.store.find_hash(c, digest) is None]
        if not missing and keep is None:
            return  # logged everywhere already (a restart): no write at all
        new: list[StoredEntry] = []
        try:
            with self.store.transaction():
                # As in accept: the database serializes appends of every relay process,
                # and whether a channel holds the event is asked again under its lock.
                self.hold(sorted(missing))
                missing = [c for c in missing if self.store.find_hash(c, digest) is None]
                now_ms = self.now_ms()
                if keep is not None:
                    self.store.put_statement(keep[0], keep[1], data)
                for channel in missing:
                    leaf = leaf_data(now_ms, data, LeafKind.KEY_EVENT)
                    index = self.tree(channel).append(leaf)
                    entry = StoredEntry(channel, index, data, digest, KEY_EVENT_SENDER, 0, now_ms)
                    self.store.add_entry(entry)
                    new.append(entry)
                for entry in new:
                    self._sign(entry.channel, now_ms)
        except BaseException:
            self.tree.drop()
            self._senders.clear()
            raise
        self._key_events.extend(new)

    def key_event_pushes(self) -> list[frames.Entries]:
        """The key events logged since the last call, as pushes to the channels' stations."""
        new, self._key_events = self._key_events, []
        return self._pushes(new)

    def statements(self) -> dict[str, list[bytes]]:
        return {
            "certificates": [c.encode() for c in self.keyring.all_certificates()],
            "revocations": [r.encode() for r in self.keyring.revocations.values()],
        }

    def authenticate(
        self, certificate: bytes, message: bytes, signature: bytes
    ) -> StationCertificate:
        """Check a station's certificate and its signature over a fresh challenge.

        The certificate is registered (and so shown to every station) only once the
        station proved it holds the key: nobody registers a certificate for a key that
        is not theirs."""
        cert = self.keyring.check_certificate(certificate)
        if not cert.verify(message, signature):
            raise NotAuthorized(f"challenge signature of {cert.ident} does not verify")
        cert = self.register_certificate(certificate)
        if self.keyring.revoked(cert, int(self.clock())):
            raise RevokedKey(f"the key of {cert.ident} is revoked", field="station")
        usable = self.keyring.station(cert.ident, int(self.clock()))
        if not any(c.signing == cert.signing for c in usable):
            raise UnknownKey(f"the presented key of {cert.ident} is not usable now")
        if not self.roster.channels_of(cert.party):
            raise NotAuthorized(f"party {cert.party} is in no channel")
        return cert

    def channels_of(self, party: str) -> list[str]:
        return [c.name for c in self.roster.channels_of(party)]

    def authenticate_request(
        self, authorization: str, method: str, path: str, query: str
    ) -> StationCertificate:
        """The station that signed an HTTP request, with a time close to the relay's clock."""
        auth = HttpAuth.parse(authorization)
        now = self.clock()
        if abs(auth.time - now) > HTTP_AUTH_SKEW:
            raise NotAuthorized(_BAD_TIME)
        message = http_auth_message(method, path, query, auth.time)
        certs = self.keyring.station(auth.station, int(now))
        signature = unb64(auth.signature, "signature")
        for cert in certs:
            if cert.verify(message, signature):
                return cert
        raise NotAuthorized(f"request signature of {auth.station} does not verify")

    def link_channel(self, cert: StationCertificate, link: frames.LinkTest) -> str:
        """The channel a link test is forwarded in: only a member's own tests are."""
        if link.sender != cert.ident:
            raise NotAuthorized("a link test must come from the connected station")
        self.may_read(cert.party, link.channel)
        return link.channel

    def may_read(self, party: str, channel: str) -> None:
        ch = self.roster.channels.get(channel)
        if ch is None:
            raise Malformed(f"no channel {channel!r}", field="channel")
        if party not in ch.members:
            raise NotAuthorized(f"party {party} is not a member of {channel}", channel=channel)

    # --- the log -------------------------------------------------------------

    def _check(self, station: str, raw: bytes, now_s: int) -> env_mod.Envelope:
        env = self._parsed.get(raw) or env_mod.parse(raw)
        if env.sender != station:
            raise NotAuthorized(
                f"station {station} may not post as {env.sender}", channel=env.channel
            )
        self.may_read(env.party, env.channel)
        env_mod.verify(env, self.keyring, at=now_s)
        return env

    def _check_version(self, env: env_mod.Envelope, now_ms: int) -> None:
        """The roster's minimum envelope version, at the time the entry's leaf will hold."""
        self.roster.check_envelope_version(env.version, now_ms, env.channel)

    def accept(self, batch: list[tuple[str, bytes]]) -> list[Acceptance | HotlineError]:
        """Check, log and make durable a batch of posted envelopes, in order.

        One transaction for the batch, one checkpoint per channel it touched.
        Each envelope gets its acceptance or its own error; a refused envelope
        changes nothing stored.
        """
        # Each envelope is parsed once (for the locks and for its checks); what does not
        # parse is refused in _check. The signatures are checked under the channels'
        # locks: checked before them, two relay processes on one channel measured slower
        # (both busy at once on shared cores, and the lock changing hands more often).
        self._parsed = {}
        for _station, raw in batch:
            with contextlib.suppress(HotlineError):
                self._parsed[raw] = env_mod.parse(raw)
        try:
            return self._accept(batch)
        finally:
            self._parsed = {}

    def _accept(self, batch: list[tuple[str, bytes]]) -> list[Acceptance | HotlineError]:
        outcome: list[tuple[StoredEntry, bool] | HotlineError] = []
        touched: set[str] = set()
        notes: dict[str, bytes] = {}  # one checkpoint per channel answers the whole batch
        try:
            with self.store.transaction():
                # Several relay processes may share the store: the database serializes
                # each channel's appends (locks taken in one order: no deadlock), and the
                # time is read once they are held, so entry times never go back.
                channels = {env.channel for env in self._parsed.values()}
                self.hold(sorted(channels & self.roster.channels.keys()))
                # The senders' states this process does not know (or forgot: another
                # process appended), read at once rather than one query each.
                missing = {(e.channel, e.sender) for e in self._parsed.values()}
                missing -= self._senders.keys()
                self._senders.update(self.store.sender_states(sorted(missing)))
                now_ms = self.now_ms()
                for station, raw in batch:
                    try:
                        outcome.append(self._accept_one(station, raw, now_ms, touched))
                    except HotlineError as exc:
                        outcome.append(exc)
                # The push of a batch larger than one frame is cut (frames.fitting); each
                # piece ends at a checkpoint, signed here in this transaction (else each
                # was signed on demand, one more transaction and durable commit each).
                for channel, new in _new_entries(outcome).items():
                    for piece in list(frames.fitting(new))[:-1]:
                        self._sign(channel, now_ms, piece[-1].index + 1)
                for channel in touched:
                    notes[channel] = self._sign(channel, now_ms)
        except BaseException:
            # In-memory frontiers and sender states may hold rolled-back writes.
            self.tree.drop()
            self._senders.clear()
            raise
        results: list[Acceptance | HotlineError] = []
        for item in outcome:
            if isinstance(item, HotlineError):
                results.append(item)
                continue
            entry, duplicate = item
            size = self.size(entry.channel)
            if entry.channel not in notes:
                notes[entry.channel] = self.checkpoint(entry.channel, size)
            note = notes[entry.channel]
            proof = self.tree(entry.channel).inclusion_proof(entry.index, size)
            results.append(Acceptance(entry, note, size, proof, duplicate))
        return results

    def _accept_one(
        self, station: str, raw: bytes, now_ms: int, touched: set[str]
    ) -> tuple[StoredEntry, bool]:
        env = self._check(station, raw, now_ms // 1000)
        self._check_version(env, now_ms)
        digest = env.hash
        last_seq, last_hash = self._sender_state(env.channel, env.sender)
        if env.seq <= last_seq:
            # Only an envelope we already logged may come again: answer as before.
            earlier = self.store.find_hash(env.channel, digest)
            if earlier is not None:
                return earlier, True
        env_mod.check_chain(last_seq, last_hash, env)
        index = self.tree(env.channel).append(leaf_data(now_ms, raw))
        entry = StoredEntry(env.channel, index, raw, digest, env.sender, env.seq, now_ms)
        self.store.add_entry(entry)
        self._senders[(env.channel, env.sender)] = (env.seq, digest)
        touched.add(env.channel)
        return entry, False

    def hold(self, channels: list[str]) -> None:
        """Inside a transaction: take the channels' append locks, and forget what this
        process remembers of a channel if another process appended since."""
        for channel, size in self.store.hold(channels).items():
            if size != self.size(channel):
                self.refresh(channel)

    def refresh(self, channel: str) -> None:
        """Forget the cached tree and sender states of a channel that another relay
        process appended to; the next use reads them from the store."""
        self.tree.drop(channel)
        for key in [k for k in self._senders if k[0] == channel]:
            del self._senders[key]
        self._last_ms = max(self._last_ms, self._time_of(channel))

    def _sender_state(self, channel: str, sender: str) -> tuple[int, bytes]:
        state = self._senders.get((channel, sender))
        if state is None:
            state = self._senders[(channel, sender)] = self.store.sender_state(channel, sender)
        return state

    def _sign(self, channel: str, now_ms: int, size: int | None = None) -> bytes:
        """Sign the channel at ``size`` (default: all of it), at ``now_ms``: the time of
        the batch, so of every entry it appended."""
        tree = self.tree(channel)
        n = tree.size if size is None else size
        cp = Checkpoint(self.roster.origin(channel), n, tree.root(n), (f"time {now_ms}",))
        note = sign_checkpoint(cp, self.log_key).encode()
        self.store.add_checkpoint(channel, n, note)
        return note

    def _sign_now(self, channel: str, size: int) -> bytes:
        """A checkpoint for an exact size (signed on demand for catch-up chunks).

        Its time is now for the latest size; for an earlier one, the time of its last
        entry (of the first entry for size 0): a signed time says the tree had this size
        then, so it lies at or after every entry in it and at or before every one after."""
        with self.store.transaction():
            self.hold([channel])  # another process may have appended, or signed this one
            if (signed := self.store.checkpoint(channel, size)) is not None:
                return signed
            tree = self.tree(channel)
            if size < tree.size:
                at = self.store.entries(channel, max(size - 1, 0), max(size, 1))[0].relay_ms
            else:
                at = self.now_ms()
            cp = Checkpoint(self.roster.origin(channel), size, tree.root(size), (f"time {at}",))
            note = sign_checkpoint(cp, self.log_key).encode()
            self.store.add_checkpoint(channel, size, note)
        return note

    def checkpoint(self, channel: str, size: int | None = None) -> bytes:
        """The signed checkpoint at ``size`` (default: the latest), with cosignatures."""
        self.roster.channel(channel)
        n = self.size(channel) if size is None else size
        if n > self.size(channel):
            raise Malformed(f"{channel} has only {self.size(channel)} entries", field="size")
        return self.store.checkpoint(channel, n) or self._sign_now(channel, n)

    def published_checkpoint(self, channel: str, size: int | None = None) -> bytes:
        """A checkpoint the relay has already signed (default: the latest), for anyone
        who asks: a reader's request never makes the relay sign and store a new one."""
        self.roster.channel(channel)
        n = self.size(channel) if size is None else size
        if n > self.size(channel):
            raise Malformed(f"{channel} has only {self.size(channel)} entries", field="size")
        note = self.store.checkpoint(channel, n)
        if note is None:
            raise Malformed(
                f"no checkpoint of {channel} was signed at size {n}; ask for the latest",
                field="size",
            )
        return note

    def sign_unsigned(self) -> list[str]:
        """Sign each channel whose latest size has no checkpoint yet (a new, empty log):
        the relay's own act at start, so that the latest is always published."""
        signed = [c for c in self.roster.channels if self.store.checkpoint(c, self.size(c)) is None]
        for channel in signed:
            self._sign_now(channel, self.size(channel))
        return signed

    def entries(self, channel: str, start: int, stop: int) -> list[StoredEntry]:
        return self.store.entries(channel, start, min(stop, self.size(channel)))

    def add_cosignature(self, channel: str, size: int, cosigned: bytes, witness: str) -> None:
        """Merge a station's verified cosignature into the stored checkpoint."""
        stored = self.store.checkpoint(channel, size)
        if stored is None:
            raise Malformed(f"no checkpoint of {channel} at size {size}", field="size")
        ours, theirs = parse_note(stored), parse_note(cosigned)
        if theirs.text != ours.text:
            raise Malformed("cosigned checkpoint differs from the relay's", field="checkpoint")
        certs = self.keyring.station(witness, int(self.clock()))
        names = {s.name for s in ours.signatures}
        added = [s for s in theirs.signatures if s.name == witness and s.name not in names]
        checked = [CosignatureVerifier(witness, c.signing) for c in certs]
        merged = ours
        for sig in added:
            verify_note(Note(ours.text, (sig,)), checked)
            merged = merged.with_signature(sig)
        if merged is not ours:
            with self.store.transaction():
                self.hold([channel])  # a merge by another process is not overwritten
                latest = parse_note(self.store.checkpoint(channel, size) or stored)
                names = {s.name for s in latest.signatures}
                for sig in merged.signatures:
                    if sig.name not in names:
                        latest = latest.with_signature(sig)
                self.store.add_checkpoint(channel, size, latest.encode())

    # --- frames ----------------------------------------------------------------

    def entries_frame(
        self,
        channel: str,
        entries: list[StoredEntry],
        start: int,
        request_id: frames.RequestId,
        more: bool = False,
    ) -> frames.Entries:
        """Entries from ``start``, with the checkpoint after them and the proof to it."""
        size = entries[-1].index + 1 if entries else start
        note = self.checkpoint(channel, size)
        proof = self.tree(channel).consistency_proof(start, size) if 0 < start < size else []
        return frames.Entries(
            request_id,
            channel,
            start,
            tuple(frames.Entry(e.index, e.envelope, e.relay_ms, e.kind) for e in entries),
            note,
            tuple(proof),
            more,
        )

    def sync(self, channel: str, start: int, request_id: frames.RequestId) -> frames.Entries:
        """The answer to a sync: entries from ``start``, as many as fit one frame."""
        size = self.size(channel)
        if start > size:
            raise Malformed(
                f"{channel} has only {size} entries; cannot sync from {start}",
                channel=channel,
                field="from",
            )
        entries = self.entries(channel, start, min(size, start + SYNC_CHUNK))
        if entries:
            entries = next(frames.fitting(entries))
        end = entries[-1].index + 1 if entries else start
        return self.entries_frame(channel, entries, start, request_id, more=end < size)

    def pushes(self, results: list[Acceptance | HotlineError]) -> list[frames.Entries]:
        """What the channels' stations online are sent after a batch: its new entries."""
        return self._pushes(
            [r.entry for r in results if isinstance(r, Acceptance) and not r.duplicate]
        )

    def _pushes(self, logged: list[StoredEntry]) -> list[frames.Entries]:
        new: dict[str, list[StoredEntry]] = {}
        for e in logged:
            new.setdefault(e.channel, []).append(e)
        out = []
        for channel, entries in new.items():
            entries.sort(key=lambda e: e.index)
            for chunk in frames.fitting(entries):
                out.append(self.entries_frame(channel, chunk, chunk[0].index, None))
        return out

    def certificates_frame(self, request_id: frames.RequestId) -> frames.Certificates:
        st = self.statements()
        return frames.Certificates(request_id, tuple(st["certificates"]), tuple(st["revocations"]))
