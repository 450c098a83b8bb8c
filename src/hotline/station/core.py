"""The station's rules, without any network: seal and queue, verify and ingest.

``StationCore`` is synchronous and owns the station's store; the network shell
(service.py) calls it from one database thread. Every check that fails raises
an alarm that keeps its evidence; nothing received is silently dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import body as body_mod
from .. import deadlines, forms
from .. import envelope as env_mod
from ..envelope import Kind, Precedence
from ..errors import (
    ForkDetected,
    HotlineError,
    Malformed,
    NotARecipient,
    Unavailable,
)
from ..keys import KeyRing, StationCertificate, StationKey
from ..link import LinkBoard
from ..merkle import TreeCache, leaf_hash, verify_inclusion
from ..notes import (
    SignedCheckpoint,
    check_extends,
    cosign,
    open_checkpoint,
    parse_note,
    unb64,
)
from ..roster import Roster
from .store import OutboxItem, StationStore

log = logging.getLogger("hotline.station")


@dataclass
class Ingested:
    """What the shell must do after a batch of entries."""

    need_sync_from: int | None = None
    cosign: tuple[str, int, bytes] | None = None
    new_messages: list[dict[str, Any]] = field(default_factory=list)
    queued: int = 0


class StationCore:
    def __init__(
        self,
        store: StationStore,
        key: StationKey,
        cert: StationCertificate,
        roster: Roster,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.key = key
        self.cert = cert
        self.roster = roster
        self.clock = clock
        self.keyring = KeyRing(roster.roots())
        self.keyring.add_certificate(cert.encode())
        for data in store.statements("certificate"):
            self.keyring.add_certificate(data)
        for data in store.statements("revocation"):
            self.keyring.add_revocation(data)
        self.witness = key.cosigner()
        self.tree = TreeCache(store.nodes)
        self._verified: dict[str, SignedCheckpoint | None] = {}
        self._deferred: list[tuple[str, str, int, str | None, int | None, bytes | None]] | None
        self._deferred = None
        self.channels = [c.name for c in roster.channels_of(key.party)]
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

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def size(self, channel: str) -> int:
        return self.tree(channel).size

    def alarm(
        self,
        kind: str,
        message: str,
        *,
        level: int = 2,
        channel: str | None = None,
        index: int | None = None,
        evidence: bytes | None = None,
    ) -> None:
        log.warning("ALARM %s: %s", kind, message)
        if self._deferred is not None:
            # Inside an ingest that may be rolled back: the alarm must survive that.
            self._deferred.append((kind, message, level, channel, index, evidence))
            return
        self.store.add_alarm(
            kind,
            message,
            self.now_ms(),
            level=level,
            channel=channel,
            index=index,
            evidence=evidence,
        )

    def clear_alarm(self, alarm_id: int, who: str) -> None:
        """An operator handled an alarm: it stays in the record with who and when."""
        with self.store.transaction():
            self.store.x(
                "UPDATE alarm SET cleared_ms=?, cleared_by=? WHERE id=? AND cleared_ms IS NULL",
                self.now_ms(),
                who,
                alarm_id,
            )

    # --- keys -------------------------------------------------------------------

    def add_statements(self, certificates: list[bytes], revocations: list[bytes]) -> int:
        """Learn other stations' certificates and revocations (checked against roots)."""
        added = 0
        with self.store.transaction():
            for data in certificates:
                try:
                    cert = self.keyring.add_certificate(data)
                except HotlineError as exc:
                    self.alarm(
                        "bad-certificate",
                        f"relay served a certificate that fails: {exc}",
                        evidence=data,
                    )
                    continue
                self.store.put_statement("certificate", cert.signing, data)
                added += 1
            for data in revocations:
                try:
                    rev = self.keyring.add_revocation(data)
                except HotlineError as exc:
                    self.alarm(
                        "bad-certificate",
                        f"relay served a revocation that fails: {exc}",
                        evidence=data,
                    )
                    continue
                self.store.put_statement("revocation", rev.signing, data)
        return added

    def recipients(self, channel: str) -> list[StationCertificate]:
        """Every usable station certificate of every member party, now."""
        now = int(self.clock())
        members = self.roster.channel(channel).members
        out: list[StationCertificate] = []
        missing = []
        for party in members:
            certs = []
            for cert in self.keyring.all_certificates():
                if cert.party != party:
                    continue
                try:
                    usable = self.keyring.station(cert.ident, now)
                except HotlineError:
                    continue
                if any(c.signing == cert.signing for c in usable):
                    certs.append(cert)
            if not certs:
                missing.append(party)
            out.extend(certs)
        if missing:
            raise Unavailable(
                f"no station of {', '.join(missing)} is known yet; the relay has not "
                "introduced it (is it connected?)",
                channel=channel,
            )
        return out

    # --- sending ----------------------------------------------------------------

    def queue(
        self,
        channel: str,
        body: dict[str, Any],
        *,
        kind: Kind = Kind.MESSAGE,
        precedence: Precedence = Precedence.ROUTINE,
    ) -> OutboxItem:
        """Seal a message and put it in the durable outbox (the caller's transaction)."""
        if channel not in self.channels:
            raise Malformed(f"{self.key.party} is not a member of {channel}", field="channel")
        if body.get("type") == "form":
            forms.validate(body)
        seq, prev = self.store.last_sent(channel)
        now = self.now_ms()
        raw = env_mod.seal(
            body_mod.encode(body),
            sender=self.key,
            channel=channel,
            seq=seq + 1,
            prev=prev,
            recipients=self.recipients(channel),
            created_ms=now,
            kind=kind,
            precedence=precedence,
        )
        item = OutboxItem(
            channel,
            seq + 1,
            raw,
            env_mod.envelope_hash(raw),
            int(kind),
            int(precedence),
            now,
            "queued",
            None,
            None,
            None,
        )
        self.store.add_outbox(item)
        return item

    def send(
        self,
        channel: str,
        body: dict[str, Any],
        *,
        kind: Kind = Kind.MESSAGE,
        precedence: Precedence = Precedence.ROUTINE,
    ) -> OutboxItem:
        with self.store.transaction():
            return self.queue(channel, body, kind=kind, precedence=precedence)

    def on_accepted(self, frame: dict[str, Any]) -> None:
        """The relay accepted one of ours: check its checkpoint and inclusion proof."""
        channel, seq = str(frame["channel"]), int(frame["seq"])
        item = self.store.outbox_item(channel, seq)
        if item is None:
            self.alarm(
                "unexpected-acceptance",
                f"relay accepted {channel} seq {seq} we never sent",
                channel=channel,
            )
            return
        try:
            signed = self._open_checkpoint(channel, str(frame["checkpoint"]).encode())
            proof = [unb64(p, "proof") for p in frame["proof"]]
            index = int(frame["index"])
            verify_inclusion(leaf_hash(item.envelope), index, signed.size, proof, signed.root)
        except HotlineError as exc:
            self.alarm(
                "bad-acceptance",
                f"relay's acceptance of {channel} seq {seq} fails: {exc}",
                channel=channel,
                evidence=str(frame.get("checkpoint", "")).encode(),
            )
            return
        if item.state != "accepted":
            with self.store.transaction():
                self.store.mark_accepted(channel, seq, index, int(frame["relay_ms"]))

    def on_refused(self, channel: str, seq: int, error: dict[str, Any]) -> None:
        code = str(error.get("code"))
        if code in ("unavailable", "rate_limited"):
            return  # stays queued; sent again
        if code == "chain_gap" and self.store.one(
            "SELECT 1 FROM outbox WHERE channel=? AND seq<? AND state='queued'", channel, seq
        ):
            return  # an earlier one of ours is still on its way; this follows it
        self.alarm(
            "refused",
            f"relay refused {channel} seq {seq}: {code}: {error.get('message')}",
            channel=channel,
        )
        with self.store.transaction():
            self.store.mark_refused(channel, seq, f"{code}: {error.get('message')}")

    # --- receiving -----------------------------------------------------------------

    def _open_checkpoint(self, channel: str, note: bytes) -> SignedCheckpoint:
        return open_checkpoint(note, self.roster.relay_key, self.roster.origin(channel))

    def verified(self, channel: str) -> SignedCheckpoint | None:
        """The latest checkpoint this station verified (and cosigned) for the channel."""
        if channel not in self._verified:
            note = self.store.verified_checkpoint(channel)
            self._verified[channel] = self._open_checkpoint(channel, note) if note else None
        return self._verified[channel]

    def on_entries(self, frame: dict[str, Any]) -> Ingested:
        """Verify and store a run of entries ending at a signed checkpoint."""
        channel = str(frame.get("channel"))
        if channel not in self.channels:
            self.alarm("unexpected-channel", f"relay sent entries of {channel!r}")
            return Ingested()
        note = str(frame.get("checkpoint", "")).encode()
        try:
            signed = self._open_checkpoint(channel, note)
        except HotlineError as exc:
            self.alarm(
                "bad-checkpoint",
                f"checkpoint of {channel} does not verify: {exc}",
                channel=channel,
                evidence=note,
            )
            return Ingested()
        start = int(frame.get("start", 0))
        entries = list(frame.get("entries", []))
        have = self.size(channel)
        if start > have:
            return Ingested(need_sync_from=have)
        # Entries we already hold must be the very same bytes.
        overlap = [e for e in entries if int(e["index"]) < have]
        for e in overlap:
            if self.tree(channel).leaf_hash_at(int(e["index"])) != leaf_hash(unb64(e["envelope"])):
                self.alarm(
                    "fork",
                    f"relay shows a different entry {e['index']} of {channel}",
                    channel=channel,
                    index=int(e["index"]),
                    evidence=unb64(e["envelope"]),
                )
                return Ingested()
        entries = [e for e in entries if int(e["index"]) >= have]
        if have + len(entries) != signed.size:
            if signed.size < have:
                return self._check_older(channel, signed)
            self.alarm(
                "bad-checkpoint",
                f"{channel}: {len(entries)} entries from {have} do not "
                f"reach checkpoint size {signed.size}",
                channel=channel,
                evidence=note,
            )
            return Ingested()
        last = self.verified(channel)
        if last is not None:
            proof = [unb64(p) for p in frame.get("consistency", [])]
            try:
                if signed.size < last.size or last.size == start:
                    check_extends(last.checkpoint, signed.checkpoint, proof)
            except ForkDetected as exc:
                self.alarm(
                    "fork",
                    f"{channel}: {exc}",
                    level=3,
                    channel=channel,
                    evidence=last.encode() + b"\n--\n" + note,
                )
                return Ingested()
        result = Ingested()
        self._deferred = []
        try:
            with self.store.transaction():
                for e in entries:
                    self._ingest(
                        channel, int(e["index"]), unb64(e["envelope"]), int(e["relay_ms"]), result
                    )
                root = self.tree(channel).root()
                if root != signed.root:
                    raise ForkDetected(
                        f"{channel}: entries up to {signed.size} do not give the signed root",
                        channel=channel,
                    )
                cosigned = cosign(signed, self.witness, int(self.clock()))
                self.store.add_checkpoint(channel, signed.size, cosigned.encode(), self.now_ms())
                result.cosign = (channel, signed.size, cosigned.encode())
                self._send_receipts(channel, result)
            self._verified[channel] = cosigned
        except ForkDetected as exc:
            self.tree.drop(channel)
            self._verified.pop(channel, None)
            self.alarm("fork", str(exc), level=3, channel=channel, evidence=note)
            return Ingested()
        except BaseException:
            self.tree.drop(channel)
            self._verified.pop(channel, None)
            raise
        finally:
            self._flush_alarms()
        return result

    def _flush_alarms(self) -> None:
        pending, self._deferred = self._deferred or [], None
        for kind, message, level, channel, index, evidence in pending:
            self.store.add_alarm(
                kind,
                message,
                self.now_ms(),
                level=level,
                channel=channel,
                index=index,
                evidence=evidence,
            )

    def check_sizes(self, sizes: dict[str, Any]) -> None:
        """The relay's log sizes at connection: smaller than what we verified is a rollback."""
        for channel in self.channels:
            mine = self.verified(channel)
            theirs = sizes.get(channel)
            if mine is not None and isinstance(theirs, int) and theirs < mine.size:
                self.alarm(
                    "fork",
                    f"{channel}: the relay's log has {theirs} entries but it "
                    f"signed a checkpoint of size {mine.size} before: a rollback",
                    level=3,
                    channel=channel,
                    evidence=mine.encode(),
                )

    def _check_older(self, channel: str, signed: SignedCheckpoint) -> Ingested:
        """A checkpoint smaller than our log: it must match our own history."""
        if self.tree(channel).root(signed.size) != signed.root:
            self.alarm(
                "fork",
                f"{channel}: relay signed a different root at size {signed.size}",
                level=3,
                channel=channel,
                evidence=signed.encode(),
            )
        return Ingested()

    def _ingest(
        self, channel: str, index: int, raw: bytes, relay_ms: int, result: Ingested
    ) -> None:
        self.tree(channel).append(raw)
        digest = env_mod.envelope_hash(raw)
        env: env_mod.Envelope | None = None
        valid = False
        try:
            env = env_mod.parse(raw)
            if env.channel != channel:
                raise Malformed(f"envelope for {env.channel} logged in {channel}", index=index)
            env_mod.verify(env, self.keyring, at=relay_ms // 1000)
            last_seq, last_hash = self.store.chain(channel, env.sender)
            env_mod.check_chain(last_seq, last_hash, env)
            self.store.set_chain(channel, env.sender, env.seq, digest)
            valid = True
        except HotlineError as exc:
            self.alarm(
                "verification",
                f"{channel} entry {index}: {exc}",
                level=3,
                channel=channel,
                index=index,
                evidence=raw,
            )
        self.store.x(
            "INSERT INTO entry (channel, idx, envelope, hash, sender, seq, kind, relay_ms, valid) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            channel,
            index,
            raw,
            digest,
            env.sender if env else "?",
            env.seq if env else 0,
            int(env.kind) if env else 0,
            relay_ms,
            int(valid),
        )
        if not valid or env is None:
            return
        if env.sender == self.ident:
            self.store.x(
                "UPDATE outbox SET state='accepted', idx=?, relay_ms=? "
                "WHERE channel=? AND seq=? AND state!='accepted'",
                index,
                relay_ms,
                channel,
                env.seq,
            )
        if env.kind == Kind.LINK_TEST:
            return
        try:
            content = body_mod.decode(env_mod.decrypt(env, self.key))
        except NotARecipient as exc:
            self.alarm(
                "not-a-recipient",
                f"{channel} entry {index}: {exc}",
                level=1,
                channel=channel,
                index=index,
            )
            return
        except HotlineError as exc:
            self.alarm(
                "verification",
                f"{channel} entry {index} body: {exc}",
                level=2,
                channel=channel,
                index=index,
                evidence=raw,
            )
            return
        if env.kind == Kind.RECEIPT:
            self._ingest_receipt(channel, index, env, content, relay_ms)
            return
        self.store.x(
            "INSERT INTO message (channel, idx, sender, party, seq, kind, precedence, created_ms, "
            "relay_ms, hash, body, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            channel,
            index,
            env.sender,
            env.party,
            env.seq,
            int(env.kind),
            int(env.precedence),
            env.created_ms,
            relay_ms,
            digest,
            body_mod.encode(content).decode(),
            self.now_ms(),
        )
        if env.kind == Kind.MESSAGE:
            self._await_acks(channel, index, env, relay_ms)
        if env.kind == Kind.MESSAGE and env.party != self.key.party:
            if env.precedence == Precedence.FLASH:
                self.alarm(
                    "flash",
                    f"FLASH from {env.sender} on {channel}",
                    level=3,
                    channel=channel,
                    index=index,
                )
            result.new_messages.append(
                {
                    "channel": channel,
                    "index": index,
                    "hash": digest,
                    "precedence": int(env.precedence),
                    "sender": env.sender,
                }
            )

    def _ingest_receipt(
        self,
        channel: str,
        index: int,
        env: env_mod.Envelope,
        content: dict[str, Any],
        relay_ms: int,
    ) -> None:
        try:
            of_index = int(content["of_index"])
            of_hash = bytes.fromhex(str(content["of_hash"]))
            status = str(content["status"])
            if status not in ("delivered", "acknowledged"):
                raise Malformed(f"unknown receipt status {status!r}")
        except (KeyError, ValueError, TypeError) as exc:
            self.alarm(
                "verification",
                f"{channel} entry {index}: malformed receipt: {exc}",
                channel=channel,
                index=index,
                evidence=env.raw,
            )
            return
        referenced = self._entry_bytes(channel, of_index) if of_index < index else b""
        if not referenced or env_mod.envelope_hash(referenced) != of_hash:
            self.alarm(
                "fork",
                f"{channel}: receipt {index} by {env.sender} is for a message "
                f"#{of_index} that differs from ours: the relay showed it another history",
                level=3,
                channel=channel,
                index=index,
                evidence=env.raw,
            )
            return
        self._check_carried_checkpoint(channel, index, env, content)
        self.store.x(
            "INSERT INTO receipt (channel, idx, of_index, party, station, status, operator, reply,"
            " created_ms, relay_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            channel,
            index,
            of_index,
            env.party,
            env.sender,
            status,
            content.get("operator"),
            content.get("reply"),
            env.created_ms,
            relay_ms,
        )
        if status == "acknowledged":
            self.store.x(
                "DELETE FROM pending_ack WHERE channel=? AND idx=? AND party=?",
                channel,
                of_index,
                env.party,
            )
            # An acknowledgment ends the FLASH and overdue alarms for that message, here
            # at the sender's and at every station of the acknowledging party.
            who = f"{content.get('operator')} ({env.sender})"
            self.store.x(
                "UPDATE alarm SET cleared_ms=?, cleared_by=? WHERE channel=? AND idx=? "
                "AND kind IN ('flash', 'overdue') AND cleared_ms IS NULL",
                self.now_ms(),
                who,
                channel,
                of_index,
            )

    def _entry_bytes(self, channel: str, index: int) -> bytes:
        row = self.store.one("SELECT envelope FROM entry WHERE channel=? AND idx=?", channel, index)
        return bytes(row["envelope"]) if row else b""

    def _check_carried_checkpoint(
        self, channel: str, index: int, env: env_mod.Envelope, content: dict[str, Any]
    ) -> None:
        """The receipt's sender saw a checkpoint: it must agree with our log."""
        note = str(content.get("checkpoint", "")).encode()
        try:
            theirs = self._open_checkpoint(channel, note)
        except HotlineError as exc:
            self.alarm(
                "verification",
                f"{channel} receipt {index}: carried checkpoint: {exc}",
                channel=channel,
                index=index,
                evidence=note,
            )
            return
        if theirs.size > self.size(channel) or self.tree(channel).root(theirs.size) != theirs.root:
            mine = self.store.verified_checkpoint(channel) or b""
            self.alarm(
                "fork",
                f"{channel}: {env.sender} verified a checkpoint of size "
                f"{theirs.size} that is not consistent with ours: the relay forked the log",
                level=3,
                channel=channel,
                index=index,
                evidence=note + b"\n--\n" + mine,
            )
            return
        self._keep_cosignatures(channel, theirs)

    def _keep_cosignatures(self, channel: str, theirs: SignedCheckpoint) -> None:
        """Keep another station's cosignature on a checkpoint that matches our log."""
        row = self.store.one(
            "SELECT note FROM checkpoint WHERE channel=? AND size=?", channel, theirs.size
        )
        if row is None:
            self.store.add_checkpoint(channel, theirs.size, theirs.encode(), self.now_ms())
            return
        ours = parse_note(bytes(row["note"]))
        if ours.text != theirs.note.text:
            return  # same size and root, signed at another time: both stay valid evidence
        names = {s.name for s in ours.signatures}
        merged = ours
        for sig in theirs.note.signatures:
            if sig.name not in names:
                merged = merged.with_signature(sig)
        if merged is not ours:
            self.store.x(
                "UPDATE checkpoint SET note=? WHERE channel=? AND size=?",
                merged.encode(),
                channel,
                theirs.size,
            )

    def _send_receipts(self, channel: str, result: Ingested) -> None:
        if not result.new_messages:
            return
        note = result.cosign[2].decode() if result.cosign else ""
        for m in result.new_messages:
            self.queue(
                channel,
                body_mod.receipt("delivered", m["index"], m["hash"], note),
                kind=Kind.RECEIPT,
                precedence=Precedence(m["precedence"]),
            )
            result.queued += 1

    # --- deadlines and escalation ------------------------------------------------------

    def _deadline_s(self, channel: str, precedence: int) -> int:
        return self.roster.channel(channel).deadlines[Precedence(precedence).name]

    def _await_acks(self, channel: str, index: int, env: env_mod.Envelope, relay_ms: int) -> None:
        """A message entered the log: note whose acknowledgment it waits for, and when.

        Messages of our party wait for every other member; others' wait for us."""
        me = self.key.party
        parties = (
            [p for p in self.roster.channel(channel).members if p != me]
            if env.party == me
            else [me]
        )
        deadline = self._deadline_s(channel, int(env.precedence))
        for party in parties:
            self.store.x(
                "INSERT INTO pending_ack (channel, idx, party, precedence, logged_ms, "
                "deadline_s, level, next_ms) VALUES (?, ?, ?, ?, ?, ?, 0, ?) "
                "ON CONFLICT (channel, idx, party) DO NOTHING",
                channel,
                index,
                party,
                int(env.precedence),
                relay_ms,
                deadline,
                deadlines.due_ms(relay_ms, deadline),
            )

    def pending_acks(self, now_ms: int) -> list[deadlines.Pending]:
        """Messages waiting for an acknowledgment whose next escalation is due."""
        return [
            deadlines.Pending(
                r["channel"],
                r["idx"],
                r["party"],
                Precedence(r["precedence"]).name,
                r["logged_ms"],
                r["deadline_s"],
                r["level"],
            )
            for r in self.store.q("SELECT * FROM pending_ack WHERE next_ms <= ?", now_ms)
        ]

    def check_deadlines(self) -> int:
        """Raise each newly reached escalation: alarm, and a notice in the log."""
        now = self.now_ms()
        due = deadlines.escalations(now, self.pending_acks(now))
        if not due:
            return 0
        with self.store.transaction():
            for e in due:
                p = e.pending
                side = "recipient" if p.party == self.key.party else "sender"
                late = (now - e.due_ms) // 1000
                who = "we have" if side == "recipient" else f"{p.party} has"
                self.alarm(
                    "overdue",
                    f"{p.precedence} {p.channel}#{p.index}: {who} not acknowledged, {late} s past "
                    f"the {p.deadline_s} s deadline (escalation level {e.level})",
                    level=3 if e.level > 1 or p.precedence == "FLASH" else 2,
                    channel=p.channel,
                    index=p.index,
                )
                following = deadlines.next_change_ms(
                    now,
                    [
                        deadlines.Pending(
                            p.channel,
                            p.index,
                            p.party,
                            p.precedence,
                            p.logged_ms,
                            p.deadline_s,
                            e.level,
                        )
                    ],
                )
                self.store.x(
                    "UPDATE pending_ack SET level=?, next_ms=? WHERE channel=? AND idx=? AND "
                    "party=?",
                    e.level,
                    following if following is not None else 2**62,
                    p.channel,
                    p.index,
                    p.party,
                )
                self.store.x(
                    "INSERT INTO escalation (channel, idx, party, level, at_ms) VALUES "
                    "(?, ?, ?, ?, ?) ON CONFLICT (channel, idx, party) DO UPDATE SET "
                    "level=excluded.level, at_ms=excluded.at_ms",
                    p.channel,
                    p.index,
                    p.party,
                    e.level,
                    now,
                )
                try:
                    self.queue(
                        p.channel,
                        {
                            "type": "notice",
                            "notice": "overdue",
                            "side": side,
                            "of_index": p.index,
                            "party": p.party,
                            "level": e.level,
                            "due_ms": e.due_ms,
                        },
                        kind=Kind.NOTICE,
                        precedence=Precedence[p.precedence],
                    )
                except HotlineError as exc:
                    log.warning("could not record escalation in the log: %s", exc)
        return len(due)

    # --- link state ------------------------------------------------------------------

    def link_changes(self) -> int:
        """Recompute link boards; alarm on a party going down, clear on return, log both."""
        now = self.now_ms()
        queued = 0
        for channel, board in self.boards.items():
            for party, old, new in board.update(now):
                if new == "down":
                    with self.store.transaction():
                        self.alarm(
                            "party-down",
                            f"{party} silent on {channel}: "
                            f"{board.missed(party, now)} link tests missed",
                            level=3,
                            channel=channel,
                        )
                        queued += self._link_notice(channel, party, old, new)
                elif new == "up" and old in ("down", "degraded", "unknown"):
                    with self.store.transaction():
                        self.store.x(
                            "UPDATE alarm SET cleared_ms=?, cleared_by='link restored' WHERE "
                            "kind='party-down' AND channel=? AND message LIKE ? AND "
                            "cleared_ms IS NULL",
                            now,
                            channel,
                            f"{party} silent%",
                        )
                        if old == "down":
                            queued += self._link_notice(channel, party, old, new)
        return queued

    def _link_notice(self, channel: str, party: str, old: str, new: str) -> int:
        try:
            self.queue(
                channel,
                {"type": "notice", "notice": "link", "party": party, "from": old, "to": new},
                kind=Kind.NOTICE,
                precedence=Precedence.PRIORITY,
            )
            return 1
        except HotlineError as exc:
            log.warning("could not record a link change in the log: %s", exc)
            return 0

    # --- views ---------------------------------------------------------------------

    def acknowledge(self, channel: str, index: int, operator: str, reply: str | None) -> OutboxItem:
        row = self.store.one("SELECT * FROM message WHERE channel=? AND idx=?", channel, index)
        if row is None:
            raise Malformed(f"no message {index} in {channel}", field="index")
        if not operator.strip():
            raise Malformed("an acknowledgment names the operator", field="operator")
        note = (self.store.verified_checkpoint(channel) or b"").decode()
        with self.store.transaction():
            item = self.queue(
                channel,
                body_mod.receipt("acknowledged", index, bytes(row["hash"]), note, operator, reply),
                kind=Kind.RECEIPT,
                precedence=Precedence(row["precedence"]),
            )
            self.store.x(
                "UPDATE message SET read_ms=COALESCE(read_ms, ?) WHERE channel=? AND idx=?",
                self.now_ms(),
                channel,
                index,
            )
        return item

    def message_state(self, channel: str, index: int) -> dict[str, dict[str, Any]]:
        """Per recipient party: delivered (station, when), acknowledged (by whom, when),
        the acknowledgment deadline and whether it has passed."""
        row = self.store.one(
            "SELECT party, precedence, relay_ms FROM message WHERE channel=? AND idx=?",
            channel,
            index,
        )
        if row is None:
            row = self.store.one(
                "SELECT ? AS party, precedence, relay_ms FROM outbox WHERE channel=? AND idx=?",
                self.key.party,
                channel,
                index,
            )
        sender_party = row["party"] if row else self.key.party
        due = None
        if row is not None and row["relay_ms"] is not None:
            due = deadlines.due_ms(row["relay_ms"], self._deadline_s(channel, row["precedence"]))
        levels = {
            r["party"]: r["level"]
            for r in self.store.q(
                "SELECT party, level FROM escalation WHERE channel=? AND idx=?", channel, index
            )
        }
        out: dict[str, dict[str, Any]] = {
            p: {"delivered": None, "acknowledged": None}
            for p in self.roster.channel(channel).members
            if p != sender_party
        }
        for r in self.store.q(
            "SELECT * FROM receipt WHERE channel=? AND of_index=? ORDER BY idx", channel, index
        ):
            slot = out.setdefault(r["party"], {"delivered": None, "acknowledged": None})
            if slot[r["status"]] is None:
                slot[r["status"]] = {
                    "station": r["station"],
                    "relay_ms": r["relay_ms"],
                    "created_ms": r["created_ms"],
                    "operator": r["operator"],
                    "reply": r["reply"],
                    "receipt_index": r["idx"],
                }
        now = self.now_ms()
        for party, slot in out.items():
            slot["due_ms"] = due
            slot["overdue"] = bool(due and slot["acknowledged"] is None and now >= due)
            slot["escalation"] = levels.get(party, 0)
        return out
