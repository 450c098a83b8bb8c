"""Receiving: verify each logged envelope, open what is for us, and check receipts.

An entry that fails verification is kept (``valid`` false) with an alarm; a key event
(certificate, revocation, roster version) is taken into the log's key history in log
order, and judges the envelopes after it (keyhistory.py); a receipt must name the very
message we hold at its index, and the checkpoint it carries
must agree with our copy of the log, or the relay showed its sender another history.
The checks are logcheck's, the same ``hotline verify`` runs; here they become alarms.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from .. import body as body_mod
from .. import envelope as env_mod
from .. import logcheck
from ..envelope import Kind, Precedence
from ..errors import ForkDetected, HotlineError, Malformed, NotARecipient, UnknownKey
from ..keyhistory import KeyEvent
from ..keys import StationCertificate
from ..leaf import LeafKind, leaf_data
from ..notes import SignedCheckpoint, parse_note
from ..roster import Roster
from . import escalation, keysubmit, paths
from .alarms import Alarm, AlarmKind
from .state import Station
from .store import KEY_EVENT_SENDER, Entry, Message, Receipt

log = logging.getLogger("hotline.station")


@dataclass(frozen=True)
class Arrived:
    """A message from another party, newly in the log: it gets a delivered receipt."""

    channel: str
    index: int
    hash: bytes
    precedence: Precedence
    sender: str


# What one entry can raise besides a HotlineError, on a value no parser range-checked:
# OverflowError storing a number too large for SQLite, RecursionError on a body nested
# too deep, ValueError, TypeError or LookupError on a shape nobody anticipated. Such an
# entry is a fact to record ("unreadable entry"), never a reason to stop the station:
# one sender must not be able to silence a channel, again at every restart. This is a
# guard around ONE entry, undone alone (a savepoint) and recorded, not a blanket catch
# turned into a verdict on the log. Deliberately not caught: sqlite3.Error (a broken
# disk or database stops the station, it is not the entry's fault), MemoryError,
# KeyboardInterrupt and SystemExit.
UNEXPECTED = (ArithmeticError, RecursionError, ValueError, TypeError, LookupError)

SQL_INT_MAX = 2**63 - 1


class Standing(StrEnum):
    """Where an entry stands once its envelope was checked."""

    VALID = "valid"
    INVALID = "invalid"
    HELD = "held"  # its sender's certificate is not known yet: retried when it is


def ingest(
    st: Station,
    channel: str,
    index: int,
    raw: bytes,
    relay_ms: int,
    kind: LeafKind = LeafKind.ENVELOPE,
) -> Arrived | None:
    """Append one entry to our copy of the log (inside the caller's transaction).

    ``index`` is qualified (paths.py): it names the relay whose log this is. The entry's
    bytes always join that log's mirror (the Merkle tree and the export stay complete),
    whatever its content; nothing it holds raises out of here but a database error."""
    st.tree(st.log_key(channel, st.relay_at(index))).append(leaf_data(relay_ms, raw, kind))
    if kind == LeafKind.KEY_EVENT:
        _key_event(st, channel, index, raw, relay_ms)
        return None
    return _take(st, channel, index, raw, relay_ms)


def _key_event(st: Station, channel: str, index: int, raw: bytes, relay_ms: int) -> None:
    """A key event, taken into the log's key history in log order (so the envelopes
    after it are judged by it), and learnt by the key ring (to seal to, or to stop
    sealing to); one that fails is kept invalid, with an alarm and its bytes."""
    ctx = st.log(channel, st.relay_at(index))  # each relay's log has its own key history
    event: KeyEvent | None = None
    try:
        with st.store.savepoint():
            event = logcheck.take_key_event(
                ctx, raw, index=paths.split(index)[1], relay_ms=relay_ms
            )
    except HotlineError as exc:
        st.alarm(
            Alarm(
                AlarmKind.BAD_CERTIFICATE,
                f"key event #{index} of {channel} fails: {exc.message}",
                level=3,
                channel=channel,
                index=index,
                evidence=raw,
            )
        )
    except UNEXPECTED as exc:
        _unreadable(st, channel, index, raw, "a key event", f"{type(exc).__name__}: {exc}")
    valid = event is not None
    digest = env_mod.envelope_hash(raw)
    if valid:  # what fails counts for nothing in that log: neither audited nor delivered
        st.audit_logged(channel, index, digest, KEY_EVENT_SENDER, 0, st.now_ms())
        keysubmit.seen(st, index, digest)  # if this station owed it to that relay: no more
    st.store.add_entry(
        Entry(
            channel,
            index,
            raw,
            digest,
            KEY_EVENT_SENDER,
            0,
            int(Kind.KEY_EVENT),
            relay_ms,
            valid,
        )
    )
    if event is None or isinstance(event.statement, Roster):
        # A new roster version counts for this log's key history from here; the station
        # seals to new roots' stations once its operator installs that roster.
        return
    statement = event.statement
    kind = "certificate" if isinstance(statement, StationCertificate) else "revocation"
    try:
        with st.store.savepoint():
            if isinstance(statement, StationCertificate):
                st.keyring.add_certificate(raw)
            else:
                st.keyring.add_revocation(raw)
            st.store.put_statement(kind, statement.signing, raw)
    except HotlineError as exc:  # beyond the key ring's limits: not sealed to
        log.warning("key event #%d of %s not learnt by the key ring: %s", index, channel, exc)


def release_held(st: Station, channel: str) -> list[Arrived]:
    """Retry the entries held for want of a certificate (the caller's transaction).

    In log order; one still held keeps its sender's later entries waiting behind it."""
    arrived = []
    held = st.store.held_entries(channel)
    for e in held:
        got = _take(st, channel, e.index, e.envelope, e.relay_ms)
        if got is not None:
            arrived.append(got)
    for sender in {e.sender for e in held}:
        if not st.store.is_held(channel, sender):
            st.store.clear_alarms(
                [AlarmKind.HELD], "taken in", st.now_ms(), channel=channel, subject=sender
            )
    return arrived


def _take(st: Station, channel: str, index: int, raw: bytes, relay_ms: int) -> Arrived | None:
    env, standing = _check(st, channel, index, raw, relay_ms)
    if standing != Standing.VALID or env is None:
        return None
    if len(st.relays) > 1:
        if env.sender == st.ident:
            st.store.mark_path(channel, env.seq, st.relay_at(index), index, relay_ms)
        if st.store.taken_elsewhere(channel, env.hash, index):
            return None  # another relay's log brought it first: taken once
        if env.sender == st.ident:  # ours, numbered where it was first taken in
            st.store.set_outbox_index(channel, env.seq, index)
    try:
        with st.store.savepoint():
            return _open(st, channel, index, env, relay_ms)
    except HotlineError as exc:  # a check _open does not turn into its own alarm
        _unreadable(st, channel, index, raw, env.sender, str(exc), AlarmKind.VERIFICATION)
        return None
    except UNEXPECTED as exc:
        # The envelope is valid (its chain link stands); what it carries is not readable.
        _unreadable(st, channel, index, raw, env.sender, f"{type(exc).__name__}: {exc}")
        return None


def _check(
    st: Station, channel: str, index: int, raw: bytes, relay_ms: int
) -> tuple[env_mod.Envelope | None, Standing]:
    """Parse and verify one envelope, store the entry with its standing."""
    digest = env_mod.envelope_hash(raw)
    env: env_mod.Envelope | None = None
    relay = st.relay_at(index)
    ctx = st.log(channel, relay)
    chain_key = st.log_key(channel, relay)  # each relay's log holds every sender's chain
    try:
        with st.store.savepoint():
            # Two steps, so that a refused entry still has its sender, seq and kind stored.
            at = paths.split(index)[1]  # the place in that relay's log, as logcheck counts
            env = logcheck.parse_entry(ctx, raw, index=at)
            if st.store.held_before(channel, env.sender, index):
                standing = Standing.HELD  # behind an earlier entry of its sender
            else:
                try:
                    logcheck.check_envelope(
                        ctx,
                        env,
                        index=at,
                        relay_ms=relay_ms,
                        last=st.store.chain(chain_key, env.sender),
                    )
                    standing = Standing.VALID
                except UnknownKey as exc:
                    if exc.field != "station":
                        raise
                    standing = Standing.HELD
                    _held(st, channel, index, env.sender, exc)
            if standing == Standing.VALID:
                st.store.set_chain(chain_key, env.sender, env.seq, digest)
            _store_entry(st, channel, index, raw, digest, relay_ms, env, standing)
            if standing == Standing.VALID:  # a held one is audited when taken in
                st.audit_logged(channel, index, digest, env.sender, env.seq, st.now_ms())
    except HotlineError as exc:
        st.alarm(
            Alarm(
                AlarmKind.VERIFICATION,
                "unreadable-entry",
                level=3,
                channel=channel,
                index=index,
                evidence=raw,
                params=_unreadable_params(channel, index, env, exc.message),
            )
        )
        _store_entry(st, channel, index, raw, digest, relay_ms, env, Standing.INVALID)
        return env, Standing.INVALID
    except UNEXPECTED as exc:
        sender = env.sender if env is not None else "?"
        _unreadable(st, channel, index, raw, sender, f"{type(exc).__name__}: {exc}")
        _store_entry(st, channel, index, raw, digest, relay_ms, env, Standing.INVALID)
        return env, Standing.INVALID
    return env, standing


def _store_entry(
    st: Station,
    channel: str,
    index: int,
    raw: bytes,
    digest: bytes,
    relay_ms: int,
    env: env_mod.Envelope | None,
    standing: Standing,
) -> None:
    """The entry as this station took it; values that do not fit are stored as unknown."""
    seq = env.seq if env is not None and 0 <= env.seq <= SQL_INT_MAX else 0
    st.store.add_entry(
        Entry(
            channel,
            index,
            raw,
            digest,
            env.sender if env else "?",
            seq,
            int(env.kind) if env else 0,
            relay_ms,
            standing == Standing.VALID,
            standing == Standing.HELD,
        )
    )


def _unreadable_params(
    channel: str, index: int, env: env_mod.Envelope | None, reason: str
) -> dict[str, str | int]:
    sender = env.sender if env is not None else "?"
    return {"channel": channel, "index": index, "sender": sender, "detail": reason}


def _unreadable(
    st: Station,
    channel: str,
    index: int,
    raw: bytes,
    sender: str,
    reason: str,
    kind: AlarmKind = AlarmKind.UNREADABLE,
) -> None:
    log.warning("unreadable entry #%d of %s from %s: %s", index, channel, sender, reason)
    st.alarm(
        Alarm(
            kind,
            "unreadable-entry",
            level=3,
            channel=channel,
            index=index,
            evidence=raw,
            params={"channel": channel, "index": index, "sender": sender, "detail": reason},
        )
    )


def _held(st: Station, channel: str, index: int, sender: str, exc: HotlineError) -> None:
    st.alarm(
        Alarm(
            AlarmKind.HELD,
            "held-entry",
            level=1,
            channel=channel,
            subject=sender,
            params={"channel": channel, "index": index, "sender": sender, "detail": exc.message},
        )
    )


def _open(
    st: Station, channel: str, index: int, env: env_mod.Envelope, relay_ms: int
) -> Arrived | None:
    """A valid entry: open what is for us, store the message or check the receipt."""
    digest = env.hash
    if env.sender == st.ident:
        st.store.mark_logged(channel, env.seq, index, relay_ms)
    if env.kind == Kind.LINK_TEST:
        return None
    try:
        content = body_mod.parse_body(env_mod.decrypt_with_key(env, st.body_key(env)))
    except NotARecipient as exc:
        st.alarm(
            Alarm(
                AlarmKind.NOT_A_RECIPIENT,
                "not-a-recipient",
                level=1,
                channel=channel,
                index=index,
                params={"channel": channel, "index": index, "detail": str(exc)},
            )
        )
        return None
    except HotlineError as exc:
        st.alarm(
            Alarm(
                AlarmKind.VERIFICATION,
                "unreadable-body",
                level=2,
                channel=channel,
                index=index,
                evidence=env.raw,
                params={
                    "channel": channel,
                    "index": index,
                    "sender": env.sender,
                    "detail": str(exc),
                },
            )
        )
        return None
    if env.kind == Kind.RECEIPT:
        _receipt(st, channel, index, env, content, relay_ms)
        return None
    st.store.add_message(
        Message(
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
            st.now_ms(),
            None,
        )
    )
    # With several relays a receipt can be read before the message it names (it stands
    # earlier in another relay's log): it was filed under a number the message does not
    # keep (our acceptance's, or its sender's); this is the message's number from now on.
    for false in st.store.refile_receipts(channel, digest, index):
        evidence = st.store.entry_bytes(channel, false.index) or None
        _fork_receipt(st, channel, false.index, evidence, false.station, index)
    if env.kind != Kind.MESSAGE:
        return None
    escalation.await_acks(st, channel, index, env, relay_ms)
    if env.party == st.party:
        return None
    if env.precedence == Precedence.FLASH:
        st.alarm(
            Alarm(
                AlarmKind.FLASH,
                "flash",
                level=3,
                channel=channel,
                index=index,
                params={"sender": env.sender, "channel": channel},
            )
        )
    return Arrived(channel, index, digest, env.precedence, env.sender)


def _receipt(
    st: Station,
    channel: str,
    index: int,
    env: env_mod.Envelope,
    content: body_mod.Body,
    relay_ms: int,
) -> None:
    """A receipt: each entry it names (one, or a delivered run) is checked and recorded."""
    try:
        receipt = logcheck.receipt_of(content)
    except Malformed as exc:
        _malformed_receipt(st, channel, index, env, str(exc))
        return
    refs = receipt.each()
    if len({paths.split(one.of_index)[0] for one in refs}) > 1:
        detail = "a receipt names entries of more than one relay's log"
        _malformed_receipt(st, channel, index, env, detail)
        return
    checked: set[int] = set()  # the one checkpoint a receipt carries is checked once
    recorded: set[int] = set()  # each message once per receipt (one row per message)
    for one in refs:
        _one_receipt(st, channel, index, env, one, relay_ms, checked, recorded)


def _fork_receipt(
    st: Station, channel: str, index: int, evidence: bytes | None, sender: str, of_index: int
) -> None:
    """The receipt at ``index`` names entry ``of_index`` in another history than ours."""
    st.alarm(
        Alarm(
            AlarmKind.FORK,
            "fork-receipt",
            level=3,
            channel=channel,
            index=index,
            evidence=evidence,
            params={"channel": channel, "index": index, "sender": sender, "of_index": of_index},
        )
    )


def _malformed_receipt(
    st: Station, channel: str, index: int, env: env_mod.Envelope, detail: str
) -> None:
    """The receipt at ``index`` (or one entry it names) says nothing that can be recorded."""
    st.alarm(
        Alarm(
            AlarmKind.VERIFICATION,
            "malformed-receipt",
            channel=channel,
            index=index,
            evidence=env.raw,
            params={"channel": channel, "index": index, "detail": detail},
        )
    )


def _one_receipt(
    st: Station,
    channel: str,
    index: int,
    env: env_mod.Envelope,
    receipt: body_mod.Receipt,
    relay_ms: int,
    checked: set[int],
    recorded: set[int],
) -> None:
    """One entry a receipt names: the reference checked against the log it names, the
    carried checkpoint (once per receipt), and the receipt recorded for that message: a
    delivery only of a message of another party, and each message once."""
    ctx = st.log(channel)
    of_index = receipt.of_index
    try:
        of_relay = st.relay_at(of_index)
        if of_relay == st.relay_at(index):
            logcheck.check_receipt_reference(
                ctx, receipt, index=index, entry_hash_at=lambda i: _entry_hash(st, channel, i)
            )
        else:  # it names an entry of another relay's log, which may still be on its way
            _check_other_log_reference(st, ctx, channel, index, receipt)
        ctx = st.log(channel, of_relay)  # its checkpoint is of the log it names
    except (ForkDetected, LookupError):
        _fork_receipt(st, channel, index, env.raw, env.sender, of_index)
        return
    cross = of_relay != st.relay_at(index)
    position = paths.split(of_index)[0]
    if position not in checked:
        checked.add(position)
        key = st.log_key(channel, of_relay)
        _check_carried_checkpoint(st, ctx, index, env, receipt, key, cross)
    # The message it answers, as this station numbers it (taken from whichever log first).
    of_index = st.store.message_index(channel, receipt.of_hash, of_index)
    detail = _not_delivered(st, channel, env, receipt)
    if detail is None and of_index in recorded:
        detail = f"a receipt names message #{of_index} twice"
    if detail is not None:
        _malformed_receipt(st, channel, index, env, detail)
        return
    recorded.add(of_index)
    # Read before the message itself (it stands earlier in another relay's log than the
    # message): keep the hash, to file it under the number the message is taken in at.
    early = not st.store.has_message(channel, of_index)
    operator = receipt.operator
    st.store.add_receipt(
        Receipt(
            channel,
            index,
            of_index,
            env.party,
            env.sender,
            receipt.status.value,
            operator,
            receipt.reply,
            env.created_ms,
            relay_ms,
            receipt.of_hash if early else None,
        )
    )
    if receipt.status == body_mod.ReceiptStatus.ACKNOWLEDGED:
        _acknowledged(st, channel, of_index, env, f"{operator} ({env.sender})")


def _not_delivered(
    st: Station, channel: str, env: env_mod.Envelope, receipt: body_mod.Receipt
) -> str | None:
    """Why a delivered receipt's entry names no delivery (None if it does): a station owes
    one only for a message of another party (a key event, a receipt, a notice or the
    party's own message delivered to it says nothing, and must not show as delivered)."""
    if receipt.status != body_mod.ReceiptStatus.DELIVERED:
        return None  # an acknowledgment names what its operator chose (outbox.acknowledge)
    named = st.store.envelope_of(channel, receipt.of_hash)
    if named is None:
        return None
    kind, sender = named
    party = st.party if sender is None else sender.partition("/")[0]
    if kind != Kind.MESSAGE or party == env.party:
        return f"a delivered receipt names entry #{receipt.of_index}, no message of another party"
    return None


def _acknowledged(
    st: Station, channel: str, of_index: int, env: env_mod.Envelope, who: str
) -> None:
    """Party P acknowledged message ``of_index``: it speaks for P alone. It ends the
    alarms about P's acknowledgment (overdue for P, at the sender's stations and at P's
    own) and, at P's own stations, the FLASH alarm; another party's stay open."""
    party = env.party
    st.store.acknowledged(channel, of_index, party)
    now = st.now_ms()
    # Overdue alarms name the party awaited and the level: "P level N".
    st.store.clear_alarms(
        [AlarmKind.OVERDUE],
        who,
        now,
        channel=channel,
        index=of_index,
        subject_prefix=f"{party} level ",
    )
    if party == st.party:
        st.store.clear_alarms([AlarmKind.FLASH], who, now, channel=channel, index=of_index)


def _check_other_log_reference(
    st: Station, ctx: logcheck.LogContext, channel: str, index: int, receipt: body_mod.Receipt
) -> None:
    """A receipt in one relay's log naming an entry of another relay's log (redundant
    relays): that entry, if we hold it yet, must have the receipt's hash; if we do not, the
    hash must be of an envelope we know in the channel. Either way the receipt refers to
    the envelope by its hash, which is the same in every relay's log."""
    of = receipt.of_index
    # What we know stands there: the entry, or one of ours its relay signed it took there.
    held = _entry_hash(st, channel, of) or st.store.ours_at(channel, of)
    if held == receipt.of_hash:
        return
    # Not there yet: an envelope of the channel we know, not known at another place of
    # that log (an envelope is logged once per log).
    position = paths.split(of)[0]
    elsewhere = [
        i for i in st.store.placed_at(channel, receipt.of_hash) if paths.split(i)[0] == position
    ]
    if held is None and not elsewhere and st.store.knows(channel, receipt.of_hash):
        return
    raise ForkDetected(
        f"receipt references no message #{receipt.of_index} we know",
        channel=ctx.channel,
        index=index,
        field="of_hash",
    )


def _entry_hash(st: Station, channel: str, index: int) -> bytes | None:
    """The envelope hash of our entry ``index`` (None if we hold none), as stored beside
    its bytes when we took it in: not the bytes read back and hashed again (issue 15)."""
    return st.store.entry_hash(channel, index)


def _check_carried_checkpoint(
    st: Station,
    ctx: logcheck.LogContext,
    index: int,
    env: env_mod.Envelope,
    receipt: body_mod.Receipt,
    key: str,
    cross: bool = False,
) -> None:
    """The receipt's sender saw a checkpoint: it must agree with our mirror of that log
    (``key``: where it is kept). ``cross``: the receipt stands in another relay's log than
    the one it names, so our mirror of that one may be behind (or its relay gone): a
    checkpoint beyond it cannot be compared yet, and the path audit watches that log."""
    channel, note = ctx.channel, receipt.checkpoint
    tree = st.tree(key)
    if cross:
        try:
            if logcheck.open_log_checkpoint(ctx, note).size > tree.size:
                return
        except HotlineError:
            pass  # the check below raises its alarm
    try:
        theirs = logcheck.check_carried_checkpoint(
            ctx, receipt, index=index, root_at=tree.root, size_now=tree.size
        )
    except ForkDetected as exc:
        mine = st.store.verified_checkpoint(key) or b""
        st.alarm(
            Alarm(
                AlarmKind.FORK,
                "fork-carried",
                level=3,
                channel=channel,
                index=index,
                evidence=note + b"\n--\n" + mine,
                params={"channel": channel, "sender": env.sender, "detail": exc.message},
            )
        )
        return
    except HotlineError as exc:
        st.alarm(
            Alarm(
                AlarmKind.VERIFICATION,
                "receipt-checkpoint",
                channel=channel,
                index=index,
                evidence=note,
                params={"channel": channel, "index": index, "detail": exc.message},
            )
        )
        return
    _keep_cosignatures(st, ctx, index, theirs, key)


def _keep_cosignatures(
    st: Station, ctx: logcheck.LogContext, index: int, theirs: SignedCheckpoint, key: str
) -> None:
    """Keep another station's verified cosignatures on a checkpoint that matches our log."""
    channel = ctx.channel
    stored = st.store.checkpoint_at(key, theirs.size)
    try:
        merged = logcheck.merge_cosignatures(
            ctx, parse_note(stored) if stored is not None else None, theirs
        )
    except HotlineError as exc:
        st.alarm(
            Alarm(
                AlarmKind.VERIFICATION,
                "receipt-cosignature",
                channel=channel,
                index=index,
                evidence=theirs.encode(),
                params={"channel": channel, "index": index, "detail": exc.message},
            )
        )
        return
    if merged is None:
        return  # nothing new (same size and root, signed at another time: both stay evidence)
    if stored is None:
        st.store.add_checkpoint(key, theirs.size, merged.encode(), st.now_ms())
    else:
        st.store.replace_checkpoint(key, theirs.size, merged.encode())
