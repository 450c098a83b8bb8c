"""Sending: seal for every recipient station, queue durably, and settle with the relay.

A message is sealed and in the outbox (its sequence number taken) in one
transaction before anything is sent; the relay's acceptance must prove its
inclusion under a signed checkpoint; a refusal is final unless it is transient.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .. import body as body_mod
from .. import envelope as env_mod
from .. import forms, logcheck
from ..envelope import Kind, Precedence
from ..errors import HotlineError, IdempotencyConflict, Malformed, Unavailable
from ..frames import Accepted
from ..keys import StationCertificate
from . import paths
from .alarms import Alarm, AlarmKind
from .state import Station
from .store import DueReceipt, OutboxItem, OutboxState

# Refusals after which the envelope stays queued and is sent again.
TRANSIENT = ("unavailable", "rate_limited")
EXCERPT_CHARS = 80
MAX_KEY = 128


@dataclass(frozen=True)
class Queued:
    """The answer to a keyed send: the item, and whether the key had queued it already."""

    item: OutboxItem
    repeated: bool


def excerpt(body: body_mod.Body) -> str:
    """What the sender's list shows of a message: its text's start, or ``[form-name]``."""
    if isinstance(body, body_mod.Text):
        return body.text[:EXCERPT_CHARS]
    return body_mod.summary(body)[:EXCERPT_CHARS]


def check_key(key: str) -> str:
    """An idempotency key: 1 to 128 printable ASCII characters."""
    if not 1 <= len(key) <= MAX_KEY or not all(" " <= c <= "~" for c in key):
        raise Malformed(
            f"an Idempotency-Key is 1 to {MAX_KEY} printable ASCII characters",
            field="Idempotency-Key",
        )
    return key


def recipients(st: Station, channel: str) -> list[StationCertificate]:
    """Every usable station certificate of every member party, now."""
    now = int(st.clock())
    out: list[StationCertificate] = []
    missing = []
    for party in st.roster.channel(channel).members:
        certs = []
        for cert in st.keyring.all_certificates():
            if cert.party != party:
                continue
            try:
                usable = st.keyring.station(cert.ident, now)
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


def queue(
    st: Station,
    channel: str,
    body: body_mod.Body,
    *,
    kind: Kind = Kind.MESSAGE,
    precedence: Precedence = Precedence.ROUTINE,
    key: str | None = None,
    request_hash: bytes | None = None,
) -> OutboxItem:
    """Seal a message and put it in the durable outbox (the caller's transaction),
    with the client's idempotency ``key`` and what it asked, if any."""
    if channel not in st.channels:
        raise Malformed(f"{st.party} is not a member of {channel}", field="channel")
    if isinstance(body, body_mod.Form):
        forms.validate(body.to_dict())
    seq, prev = st.store.last_sent(channel)
    now = st.now_ms()
    raw = env_mod.seal(
        body_mod.encode(body),
        sender=st.key,
        channel=channel,
        seq=seq + 1,
        prev=prev,
        recipients=recipients(st, channel),
        created_ms=now,
        kind=kind,
        precedence=precedence,
        version=st.cert.version,
    )
    item = OutboxItem(
        channel,
        seq + 1,
        raw,
        env_mod.envelope_hash(raw),
        int(kind),
        int(precedence),
        now,
        OutboxState.QUEUED,
        None,
        None,
        None,
        key,
        request_hash,
        excerpt(body) if kind == Kind.MESSAGE else None,
    )
    st.store.add_outbox(item)
    return item


def send_once(
    st: Station, channel: str, body: body_mod.Body, precedence: Precedence, key: str
) -> Queued:
    """Queue a message under a client's idempotency key, in one transaction with the key.

    The same key with the same request answers the item it queued, however often and
    across restarts; with another request it is refused (the key names one send)."""
    check_key(key)
    asked = hashlib.sha256(
        b"\0".join([channel.encode(), precedence.name.encode(), body_mod.encode(body)])
    ).digest()
    with st.store.transaction():
        earlier = st.store.outbox_by_key(key)
        if earlier is not None:
            if earlier.request_hash != asked:
                raise IdempotencyConflict(
                    f"Idempotency-Key {key!r} was used for another request "
                    f"({earlier.channel}:{earlier.seq}); use a new key for a new message",
                    field="Idempotency-Key",
                )
            return Queued(earlier, repeated=True)
        item = queue(st, channel, body, precedence=precedence, key=key, request_hash=asked)
        return Queued(item, repeated=False)


def send_receipts(st: Station, limit: int | None = None) -> int:
    """Seal and queue the delivered receipts owed (at most ``limit`` receipts, in log
    order per channel, when given); returns how many were queued.

    Owed receipts next to each other in one channel's log (one relay's log, one
    precedence) go in one receipt naming up to MAX_RECEIPT_REFS entries: one signature
    and one log entry for a run of arrivals instead of one each (issue 15). One that
    cannot be sealed (no usable station of a member, too many recipients) stays owed with
    an alarm, and its channel's later ones wait behind it; they are retried on the next
    ingest, certificate or retry tick. A stuck channel does not count against ``limit``:
    the other channels' receipts are sealed past it."""
    owed = st.store.receipts_due()
    if not owed:
        return 0
    queued = 0
    stuck: set[str] = set()
    tried: set[str] = set()
    with st.store.transaction():
        for run in _runs(owed, st.roster.receipt_runs):
            channel = run[0].channel
            if channel in stuck:
                continue
            if limit is not None and queued >= limit:
                break
            tried.add(channel)
            refs = [(due.of_index, due.hash) for due in run]
            # The newest checkpoint verified among them: it holds every entry named.
            try:
                queue(
                    st,
                    channel,
                    body_mod.delivered(refs, run[-1].note),
                    kind=Kind.RECEIPT,
                    precedence=Precedence(run[0].precedence),
                )
            except HotlineError as exc:
                stuck.add(channel)
                st.alarm(
                    Alarm(
                        AlarmKind.RECEIPT_NOT_SENT,
                        "receipt-not-sent",
                        channel=channel,
                        params={"channel": channel, "index": run[0].of_index, "detail": str(exc)},
                    )
                )
                continue
            for due in run:
                st.store.receipt_sent(channel, due.of_index)
            queued += 1
        for channel in tried - stuck:
            st.store.clear_alarms(
                [AlarmKind.RECEIPT_NOT_SENT], "sent", st.now_ms(), channel=channel
            )
    return queued


def _runs(owed: list[DueReceipt], many: bool = True) -> list[list[DueReceipt]]:
    """Owed receipts (in channel, index order) cut into runs one receipt can name: the
    same channel, relay log and precedence, at most MAX_RECEIPT_REFS each, each envelope
    hash once (a run naming one twice does not parse: one logged twice goes in the next).
    ``many`` false (a roster without ``receipt_runs``): one entry each."""
    runs: list[list[DueReceipt]] = []
    for due in owed:
        last = runs[-1][-1] if runs else None
        if (
            many
            and last is not None
            and (last.channel, paths.split(last.of_index)[0], last.precedence)
            == (due.channel, paths.split(due.of_index)[0], due.precedence)
            and len(runs[-1]) < body_mod.MAX_RECEIPT_REFS
            and all(d.hash != due.hash for d in runs[-1])
        ):
            runs[-1].append(due)
        else:
            runs.append([due])
    return runs


def on_accepted(st: Station, frame: Accepted, relay: str | None = None) -> None:
    """The relay accepted one of ours: check its checkpoint (signed by THAT relay) and
    inclusion proof. With several relays the item is accepted at the first; each relay's
    acceptance is kept (``mark_path``) and the others are still sent it."""
    channel, seq, index = frame.channel, frame.seq, frame.index
    item = st.store.outbox_item(channel, seq)
    if item is None:
        st.alarm(
            Alarm(
                AlarmKind.UNEXPECTED_ACCEPTANCE,
                "unexpected-acceptance",
                channel=channel,
                params={"channel": channel, "seq": seq},
            )
        )
        return
    try:
        ctx = st.log(channel, relay)
        signed = logcheck.open_log_checkpoint(ctx, frame.checkpoint)
        logcheck.check_included(
            ctx,
            item.envelope,
            index=index,
            relay_ms=frame.relay_ms,
            signed=signed,
            proof=list(frame.proof),
        )
        logcheck.check_entry_time(ctx, frame.relay_ms, index=index, clock_ms=st.now_ms())
    except HotlineError as exc:
        st.alarm(
            Alarm(
                AlarmKind.BAD_ACCEPTANCE,
                "bad-acceptance",
                channel=channel,
                evidence=frame.checkpoint,
                subject=f"seq {seq}",
                params={"channel": channel, "seq": seq, "detail": str(exc)},
            )
        )
        return
    at = paths.qualify(st.position(relay), index)
    with st.store.transaction():
        if len(st.relays) > 1:
            st.store.mark_path(channel, seq, st.relays[st.position(relay)], at, frame.relay_ms)
        if item.state != OutboxState.ACCEPTED:
            st.store.mark_accepted(channel, seq, at, frame.relay_ms)


def on_refused(
    st: Station, channel: str, seq: int, error: HotlineError, relay: str | None = None
) -> None:
    """The relay refused one of ours: wait and resend, or record the refusal. With several
    relays, one relay's refusal of an envelope another relay took is not the envelope's
    fate: it stays to be sent to that relay again, and the path audit names the relay if
    its log never holds it."""
    code = error.code
    if code in TRANSIENT:
        return  # stays queued; sent again
    if len(st.relays) > 1:
        item = st.store.outbox_item(channel, seq)
        if item is not None and item.state == OutboxState.ACCEPTED:
            return
    if code == "chain_gap" and st.store.queued_before(channel, seq):
        return  # an earlier one of ours is still on its way; this follows it
    st.alarm(
        Alarm(
            AlarmKind.REFUSED,
            "refused",
            channel=channel,
            params={"channel": channel, "seq": seq, "code": code, "detail": error.message},
        )
    )
    with st.store.transaction():
        st.store.mark_refused(channel, seq, f"{code}: {error.message}")


def acknowledge(
    st: Station, channel: str, index: int, operator: str, reply: str | None
) -> OutboxItem:
    """An operator acknowledges a message: a signed receipt naming them goes in the log."""
    message = st.store.message(channel, index)
    if message is None:
        raise Malformed(f"no message {index} in {channel}", field="index")
    if not operator.strip():
        raise Malformed("an acknowledgment names the operator", field="operator")
    # The checkpoint of the log the message is numbered in (with several relays, maybe
    # not the first relay's): the receipt's readers check it against that log.
    note = st.note_of_log_at(channel, index)
    with st.store.transaction():
        item = queue(
            st,
            channel,
            body_mod.receipt(
                body_mod.ReceiptStatus.ACKNOWLEDGED, index, message.hash, note, operator, reply
            ),
            kind=Kind.RECEIPT,
            precedence=Precedence(message.precedence),
        )
        st.store.mark_read(channel, index, st.now_ms())
    return item
