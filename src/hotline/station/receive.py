"""Receiving: verify each logged envelope, open what is for us, and check receipts.

An entry that fails verification is kept (``valid`` false) with an alarm; a receipt
must name the very message we hold at its index, and the checkpoint it carries
must agree with our copy of the log, or the relay showed its sender another history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import body as body_mod
from .. import envelope as env_mod
from ..envelope import Kind, Precedence
from ..errors import HotlineError, Malformed, NotARecipient
from ..notes import SignedCheckpoint, parse_note
from . import escalation
from .alarms import Alarm, AlarmKind
from .state import Station
from .store import Entry, Message, Receipt

RECEIPT_STATUSES = ("delivered", "acknowledged")
# Alarms an acknowledgment ends, at the sender's and at the acknowledging party's.
ENDED_BY_ACK = (AlarmKind.FLASH, AlarmKind.OVERDUE)


@dataclass(frozen=True)
class Arrived:
    """A message from another party, newly in the log: it gets a delivered receipt."""

    channel: str
    index: int
    hash: bytes
    precedence: Precedence
    sender: str


def ingest(st: Station, channel: str, index: int, raw: bytes, relay_ms: int) -> Arrived | None:
    """Append one entry to our copy of the log (inside the caller's transaction)."""
    st.tree(channel).append(raw)
    digest = env_mod.envelope_hash(raw)
    env: env_mod.Envelope | None = None
    valid = False
    try:
        env = env_mod.parse(raw)
        if env.channel != channel:
            raise Malformed(f"envelope for {env.channel} logged in {channel}", index=index)
        env_mod.verify(env, st.keyring, at=relay_ms // 1000)
        last_seq, last_hash = st.store.chain(channel, env.sender)
        env_mod.check_chain(last_seq, last_hash, env)
        st.store.set_chain(channel, env.sender, env.seq, digest)
        valid = True
    except HotlineError as exc:
        st.alarm(
            Alarm(
                AlarmKind.VERIFICATION,
                f"{channel} entry {index}: {exc}",
                level=3,
                channel=channel,
                index=index,
                evidence=raw,
            )
        )
    st.store.add_entry(
        Entry(
            channel,
            index,
            raw,
            digest,
            env.sender if env else "?",
            env.seq if env else 0,
            int(env.kind) if env else 0,
            relay_ms,
            valid,
        )
    )
    if not valid or env is None:
        return None
    if env.sender == st.ident:
        st.store.mark_logged(channel, env.seq, index, relay_ms)
    if env.kind == Kind.LINK_TEST:
        return None
    try:
        content = body_mod.decode(env_mod.decrypt(env, st.key))
    except NotARecipient as exc:
        st.alarm(
            Alarm(
                AlarmKind.NOT_A_RECIPIENT,
                f"{channel} entry {index}: {exc}",
                level=1,
                channel=channel,
                index=index,
            )
        )
        return None
    except HotlineError as exc:
        st.alarm(
            Alarm(
                AlarmKind.VERIFICATION,
                f"{channel} entry {index} body: {exc}",
                level=2,
                channel=channel,
                index=index,
                evidence=raw,
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
    if env.kind != Kind.MESSAGE:
        return None
    escalation.await_acks(st, channel, index, env, relay_ms)
    if env.party == st.party:
        return None
    if env.precedence == Precedence.FLASH:
        st.alarm(
            Alarm(
                AlarmKind.FLASH,
                f"FLASH from {env.sender} on {channel}",
                level=3,
                channel=channel,
                index=index,
            )
        )
    return Arrived(channel, index, digest, env.precedence, env.sender)


def _receipt(
    st: Station,
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
        if status not in RECEIPT_STATUSES:
            raise Malformed(f"unknown receipt status {status!r}")
    except (KeyError, ValueError, TypeError) as exc:
        st.alarm(
            Alarm(
                AlarmKind.VERIFICATION,
                f"{channel} entry {index}: malformed receipt: {exc}",
                channel=channel,
                index=index,
                evidence=env.raw,
            )
        )
        return
    referenced = st.store.entry_bytes(channel, of_index) if of_index < index else b""
    if not referenced or env_mod.envelope_hash(referenced) != of_hash:
        st.alarm(
            Alarm(
                AlarmKind.FORK,
                f"{channel}: receipt {index} by {env.sender} is for a message "
                f"#{of_index} that differs from ours: the relay showed it another history",
                level=3,
                channel=channel,
                index=index,
                evidence=env.raw,
            )
        )
        return
    _check_carried_checkpoint(st, channel, index, env, content)
    operator = content.get("operator")
    st.store.add_receipt(
        Receipt(
            channel,
            index,
            of_index,
            env.party,
            env.sender,
            status,
            operator,
            content.get("reply"),
            env.created_ms,
            relay_ms,
        )
    )
    if status == "acknowledged":
        st.store.acknowledged(channel, of_index, env.party)
        # An acknowledgment ends the FLASH and overdue alarms for that message, here
        # at the sender's and at every station of the acknowledging party.
        st.store.clear_alarms(
            ENDED_BY_ACK,
            f"{operator} ({env.sender})",
            st.now_ms(),
            channel=channel,
            index=of_index,
        )


def _check_carried_checkpoint(
    st: Station, channel: str, index: int, env: env_mod.Envelope, content: dict[str, Any]
) -> None:
    """The receipt's sender saw a checkpoint: it must agree with our log."""
    note = str(content.get("checkpoint", "")).encode()
    try:
        theirs = st.open_checkpoint(channel, note)
    except HotlineError as exc:
        st.alarm(
            Alarm(
                AlarmKind.VERIFICATION,
                f"{channel} receipt {index}: carried checkpoint: {exc}",
                channel=channel,
                index=index,
                evidence=note,
            )
        )
        return
    if theirs.size > st.size(channel) or st.tree(channel).root(theirs.size) != theirs.root:
        mine = st.store.verified_checkpoint(channel) or b""
        st.alarm(
            Alarm(
                AlarmKind.FORK,
                f"{channel}: {env.sender} verified a checkpoint of size "
                f"{theirs.size} that is not consistent with ours: the relay forked the log",
                level=3,
                channel=channel,
                index=index,
                evidence=note + b"\n--\n" + mine,
            )
        )
        return
    _keep_cosignatures(st, channel, theirs)


def _keep_cosignatures(st: Station, channel: str, theirs: SignedCheckpoint) -> None:
    """Keep another station's cosignature on a checkpoint that matches our log."""
    stored = st.store.checkpoint_at(channel, theirs.size)
    if stored is None:
        st.store.add_checkpoint(channel, theirs.size, theirs.encode(), st.now_ms())
        return
    ours = parse_note(stored)
    if ours.text != theirs.note.text:
        return  # same size and root, signed at another time: both stay valid evidence
    names = {s.name for s in ours.signatures}
    merged = ours
    for sig in theirs.note.signatures:
        if sig.name not in names:
            merged = merged.with_signature(sig)
    if merged is not ours:
        st.store.replace_checkpoint(channel, theirs.size, merged.encode())
