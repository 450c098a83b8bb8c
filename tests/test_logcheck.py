"""logcheck: each check of an entry, a receipt and a checkpoint, with the error it raises.

The station and `hotline verify` both call these; the errors name channel, index, field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest

from hotline import body as body_mod
from hotline import envelope as env_mod
from hotline import logcheck
from hotline.envelope import Kind
from hotline.errors import (
    BadProof,
    BadSignature,
    BadTime,
    ChainGap,
    DecryptionFailed,
    ForkDetected,
    HotlineError,
    Malformed,
    NotAuthorized,
    Replay,
    RevokedKey,
    UnknownKey,
)
from hotline.keys import KeyRing
from hotline.leaf import LeafKind
from hotline.merkle import MerkleTree
from hotline.notes import Note, NoteSignature, parse_note

from .logbuild import ChannelLog, exchange


@pytest.fixture
def log() -> ChannelLog:
    return exchange()


def context(log: ChannelLog, keyring: KeyRing | None = None) -> logcheck.LogContext:
    """The channel's context, its key history fed with the log's key events."""
    ctx = logcheck.LogContext.of(log.world.roster, log.channel, keyring or log.world.keyring)
    for i, ((raw, ms), kind) in enumerate(zip(log.entries, log.kinds, strict=True)):
        if kind == LeafKind.KEY_EVENT:
            logcheck.take_key_event(ctx, raw, index=i, relay_ms=ms)
    return ctx


def chains_of(log: ChannelLog, upto: int) -> dict[str, logcheck.Chain]:
    """Each sender's last link before entry ``upto``."""
    chains: dict[str, logcheck.Chain] = {}
    for (raw, _), kind in zip(log.entries[:upto], log.kinds, strict=False):
        if kind == LeafKind.ENVELOPE:
            env = env_mod.parse(raw)
            chains[env.sender] = (env.seq, env.hash)
    return chains


def entry(log: ChannelLog, index: int, ctx: logcheck.LogContext | None = None) -> env_mod.Envelope:
    raw, relay_ms = log.entries[index]
    chains = chains_of(log, index)
    return logcheck.check_entry(
        ctx or context(log),
        raw,
        index=index,
        relay_ms=relay_ms,
        chain=lambda sender: chains.get(sender, logcheck.NO_CHAIN),
    )


@contextmanager
def raises(kind: type[HotlineError], index: int | None, field: str | None = None) -> Iterator[None]:
    """Expect ``kind`` naming channel us-ru, ``index`` and (when given) ``field``."""
    with pytest.raises(kind) as info:
        yield
    err = info.value
    assert (err.channel, err.index) == ("us-ru", index), str(err)
    assert field is None or err.field == field, str(err)


# --- entries -----------------------------------------------------------------------------------


def test_every_entry_of_an_honest_log_holds_and_is_returned_parsed(log: ChannelLog) -> None:
    for i, (raw, _) in enumerate(log.entries):
        if log.kinds[i] == LeafKind.ENVELOPE:
            env = entry(log, i)
            assert env.raw == raw and env.channel == "us-ru"


def test_an_entry_that_does_not_parse_names_its_index(log: ChannelLog) -> None:
    with raises(Malformed, 6, "magic"):
        logcheck.parse_entry(context(log), b"XXXX" + log.entries[6][0][4:], index=6)


def test_an_entry_of_another_channel_is_malformed_here(log: ChannelLog) -> None:
    env = env_mod.parse(log.seal("us", body_mod.text("x", "en"), channel="us-ru-ua"))
    with raises(Malformed, 12, "channel"):
        logcheck.check_envelope(
            context(log), env, index=12, relay_ms=log.now_ms, last=logcheck.NO_CHAIN
        )


def test_an_entry_by_a_non_member_is_not_authorized(log: ChannelLog) -> None:
    env = env_mod.parse(log.seal("ua", body_mod.text("x", "en")))
    with raises(NotAuthorized, 12, "party"):
        logcheck.check_envelope(
            context(log), env, index=12, relay_ms=log.now_ms, last=logcheck.NO_CHAIN
        )


def test_an_entry_whose_signature_fails_is_a_bad_signature_at_its_index(log: ChannelLog) -> None:
    raw = bytearray(log.entries[4][0])
    raw[-1] ^= 1
    env = env_mod.parse(bytes(raw))
    with raises(BadSignature, 4):
        logcheck.check_envelope(
            context(log),
            env,
            index=4,
            relay_ms=log.entries[4][1],
            last=chains_of(log, 4)["us/us-1"],
        )


def test_an_entry_of_a_station_certified_nowhere_before_it_is_named(log: ChannelLog) -> None:
    # The key ring knows the certificate (as the relay's certificates frame would tell):
    # only a certificate logged before the entry counts.
    bare = logcheck.LogContext.of(log.world.roster, log.channel, log.world.keyring)
    with raises(UnknownKey, 2, "key"):
        entry(log, 2, bare)


def test_an_entry_after_its_keys_revocation_is_named(log: ChannelLog) -> None:
    rev = log.world.parties["us"].revoke(log.world.certs["us"], log.entries[2][1] // 1000, "lost")
    ctx = context(log)
    logcheck.take_key_event(ctx, rev.encode(), index=len(log.entries), relay_ms=log.now_ms)
    entry(log, 4, ctx)  # before the revocation's position: good, whatever its revoked_at
    late = log.message("us", "after the revocation")
    env = env_mod.parse(log.entries[late][0])
    with raises(RevokedKey, late + 1):
        logcheck.check_envelope(
            ctx, env, index=late + 1, relay_ms=log.now_ms, last=chains_of(log, late)["us/us-1"]
        )


def test_an_entry_is_the_next_link_of_its_senders_chain(log: ChannelLog) -> None:
    env = env_mod.parse(log.entries[4][0])  # us's third message
    ctx = context(log)
    with raises(ChainGap, 4, "seq"):
        logcheck.check_envelope(ctx, env, index=4, relay_ms=log.now_ms, last=logcheck.NO_CHAIN)
    with raises(Replay, 4, "seq"):
        logcheck.check_envelope(ctx, env, index=4, relay_ms=log.now_ms, last=(3, env.prev))
    with raises(ChainGap, 4, "prev"):
        logcheck.check_envelope(ctx, env, index=4, relay_ms=log.now_ms, last=(2, bytes(32)))


def test_an_entry_served_again_must_be_the_same_bytes_at_the_same_time(log: ChannelLog) -> None:
    ctx = context(log)
    held = log.tree.leaf_hash_at(3)
    raw, ms = log.entries[3]
    logcheck.check_held_entry(ctx, raw, held, index=3, relay_ms=ms)
    with raises(ForkDetected, 3):
        logcheck.check_held_entry(ctx, log.entries[4][0], held, index=3, relay_ms=ms)
    with raises(ForkDetected, 3):  # the same bytes, served again at another time
        logcheck.check_held_entry(ctx, raw, held, index=3, relay_ms=ms - 1)


def test_an_accepted_entry_is_included_in_the_signed_log_at_its_time(log: ChannelLog) -> None:
    ctx = context(log)
    signed = log.checkpoints[-1]
    proof = log.tree.inclusion_proof(5, signed.size)
    raw, ms = log.entries[5]
    logcheck.check_included(ctx, raw, index=5, relay_ms=ms, signed=signed, proof=proof)
    with raises(BadProof, 5):
        logcheck.check_included(
            ctx, log.entries[6][0], index=5, relay_ms=ms, signed=signed, proof=proof
        )
    with raises(BadProof, 5):  # the time is inside the leaf: another one is another leaf
        logcheck.check_included(
            ctx, raw, index=5, relay_ms=ms - 3600_000, signed=signed, proof=proof
        )


# --- time ---------------------------------------------------------------------------------------


def test_an_entry_time_never_goes_back_nor_leaves_its_checkpoints_times(log: ChannelLog) -> None:
    ctx = context(log)
    first, second = log.checkpoints[0], log.checkpoints[1]  # sizes 5 and 9
    assert first.time_ms is not None and second.time_ms is not None
    ms = log.entries[5][1]
    logcheck.check_entry_time(
        ctx, ms, index=5, previous_ms=log.entries[4][1], since=first, until=second
    )
    with raises(BadTime, 5, "relay_ms"):  # before the entry before it
        logcheck.check_entry_time(ctx, ms, index=5, previous_ms=ms + 1)
    with raises(BadTime, 5, "relay_ms"):  # before a checkpoint signed without it
        logcheck.check_entry_time(ctx, first.time_ms - 1, index=5, since=first)
    with raises(BadTime, 5, "relay_ms"):  # after the checkpoint that holds it
        logcheck.check_entry_time(ctx, second.time_ms + 1, index=5, until=second)


def test_an_entry_or_checkpoint_time_far_ahead_of_the_stations_clock_is_refused(
    log: ChannelLog,
) -> None:
    ctx = context(log)
    now = log.entries[3][1]
    logcheck.check_entry_time(ctx, now + logcheck.MAX_AHEAD_MS, index=3, clock_ms=now)
    month = 30 * 86400 * 1000
    with raises(BadTime, 3, "relay_ms"):
        logcheck.check_entry_time(ctx, now + month, index=3, clock_ms=now)
    signed = log.checkpoints[0]
    assert signed.time_ms is not None
    logcheck.check_checkpoint_time(ctx, signed, clock_ms=signed.time_ms)
    with raises(BadTime, None, "time"):
        logcheck.check_checkpoint_time(ctx, signed, clock_ms=signed.time_ms - month)


def test_a_disclosed_body_is_bound_to_its_envelope(log: ChannelLog) -> None:
    ctx = context(log)
    env = env_mod.parse(log.entries[2][0])
    key = env_mod.unwrap_key(env, log.world.stations["us"])
    plain = env_mod.decrypt_with_key(env, key)
    args = {"index": 2, "envelope_hash": env.hash.hex(), "body_key": key, "body": plain}
    assert logcheck.check_disclosed_body(ctx, env, **args) == body_mod.Text("en", "message 0")
    with raises(Malformed, 2, "hash"):
        logcheck.check_disclosed_body(ctx, env, **{**args, "envelope_hash": "00"})
    with raises(Malformed, 2, "body"):
        logcheck.check_disclosed_body(ctx, env, **{**args, "body": plain + b" "})
    with raises(DecryptionFailed, 2):
        logcheck.check_disclosed_body(ctx, env, **{**args, "body_key": bytes(32)})


# --- receipts -----------------------------------------------------------------------------------


def test_a_receipt_body_parses_into_a_typed_value() -> None:
    receipt = body_mod.Receipt(
        body_mod.ReceiptStatus.ACKNOWLEDGED, 3, bytes(range(32)), b"NOTE\n", "Capt. Volkov", "yes"
    )
    assert logcheck.receipt_of(body_mod.parse_body(body_mod.encode(receipt))) == receipt
    with pytest.raises(Malformed):
        logcheck.receipt_of(body_mod.Text("en", "not a receipt"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "read"}, "status"),
        ({"of_index": -1}, "of_index"),
        ({"of_index": "3"}, "of_index"),
        ({"of_index": True}, "of_index"),
        ({"of_hash": "zz"}, "of_hash"),
        ({"of_hash": "00"}, "of_hash"),
        ({"checkpoint": 7}, "checkpoint"),
        ({"operator": ["x"]}, "operator"),
    ],
)
def test_a_malformed_receipt_names_its_field(change: dict[str, object], field: str) -> None:
    receipt = body_mod.receipt(body_mod.ReceiptStatus.DELIVERED, 3, bytes(32), b"NOTE\n")
    with pytest.raises(Malformed) as info:
        body_mod.body_from_dict({**receipt.to_dict(), **change})
    assert info.value.field == field


def receipt_at(log: ChannelLog, index: int) -> body_mod.Receipt:
    env = env_mod.parse(log.entries[index][0])
    assert env.kind == Kind.RECEIPT
    plain = env_mod.decrypt(env, log.world.stations["us"])
    return logcheck.receipt_of(body_mod.parse_body(plain))


def hash_at(log: ChannelLog) -> Callable[[int], bytes | None]:
    return lambda i: env_mod.envelope_hash(log.entries[i][0]) if i < len(log.entries) else None


def test_a_receipt_references_an_earlier_entry_by_its_exact_hash(log: ChannelLog) -> None:
    ctx = context(log)
    receipt = receipt_at(log, 5)  # ru's delivered receipt of entry 2
    logcheck.check_receipt_reference(ctx, receipt, index=5, entry_hash_at=hash_at(log))
    with raises(ForkDetected, 5, "of_hash"):
        logcheck.check_receipt_reference(ctx, receipt, index=5, entry_hash_at=lambda i: bytes(32))
    with raises(ForkDetected, 2, "of_hash"):  # at or before the entry it claims to follow
        logcheck.check_receipt_reference(ctx, receipt, index=2, entry_hash_at=hash_at(log))
    with raises(ForkDetected, 5, "of_hash"):
        logcheck.check_receipt_reference(ctx, receipt, index=5, entry_hash_at=lambda i: None)


def test_a_receipts_checkpoint_must_be_the_relays_and_match_the_log(log: ChannelLog) -> None:
    ctx = context(log)
    receipt = receipt_at(log, 5)
    kept = logcheck.check_carried_checkpoint(
        ctx, receipt, index=5, root_at=log.tree.root, size_now=6
    )
    assert kept.size == 5
    with raises(ForkDetected, 5, "checkpoint"):  # beyond what the log held then
        logcheck.check_carried_checkpoint(ctx, receipt, index=5, root_at=log.tree.root, size_now=4)
    with raises(ForkDetected, 5, "checkpoint"):  # another root at that size
        logcheck.check_carried_checkpoint(
            ctx, receipt, index=5, root_at=lambda n: bytes(32), size_now=6
        )
    unsigned = body_mod.Receipt(receipt.status, 2, receipt.of_hash, b"")
    with raises(Malformed, 5):
        logcheck.check_carried_checkpoint(ctx, unsigned, index=5, root_at=log.tree.root, size_now=6)


def test_check_receipt_is_both_checks(log: ChannelLog) -> None:
    ctx = context(log)
    receipt = receipt_at(log, 10)  # ru's acknowledgment of entry 2
    assert receipt.status == body_mod.ReceiptStatus.ACKNOWLEDGED
    assert receipt.operator == "Capt. Volkov"
    signed = logcheck.check_receipt(
        ctx, receipt, index=10, entry_hash_at=hash_at(log), root_at=log.tree.root, size_now=11
    )
    assert signed.size == 9


# --- checkpoints --------------------------------------------------------------------------------


def test_a_checkpoint_opens_only_with_the_relays_signature_and_this_logs_origin(
    log: ChannelLog,
) -> None:
    ctx = context(log)
    note = log.checkpoints[0].encode()
    assert logcheck.open_log_checkpoint(ctx, note).size == 5
    other = logcheck.LogContext.of(log.world.roster, "us-ru-ua", log.world.keyring)
    with pytest.raises(Malformed):
        logcheck.open_log_checkpoint(other, note)
    text, sigs = parse_note(note).text, parse_note(note).signatures
    forged = Note(text, (NoteSignature(sigs[0].name, sigs[0].key_hash, bytes(64)),))
    with pytest.raises(BadSignature):
        logcheck.open_log_checkpoint(ctx, forged.encode())


def test_a_checkpoint_commits_to_the_entries_held(log: ChannelLog) -> None:
    ctx = context(log)
    signed = log.checkpoints[1]
    logcheck.check_root(ctx, signed, root_at=log.tree.root, size_now=log.tree.size)
    with raises(BadProof, 9, "size"):
        logcheck.check_root(ctx, signed, root_at=log.tree.root, size_now=8)
    with raises(BadProof, 8, "root"):
        logcheck.check_root(ctx, signed, root_at=lambda n: bytes(32), size_now=12)


def test_successive_checkpoints_must_be_consistent(log: ChannelLog) -> None:
    ctx = context(log)
    a, b = log.checkpoints[0], log.checkpoints[2]
    logcheck.check_consistent(ctx, a, b, log.tree.consistency_proof(a.size, b.size))
    with raises(ForkDetected, 12):
        logcheck.check_consistent(ctx, a, b, [bytes(32)])
    other = MerkleTree()
    other.append_many([b"x%d" % i for i in range(12)])
    with raises(ForkDetected, 12):
        logcheck.check_consistent(ctx, a, log.checkpoint(tree=other), [])
    with raises(ForkDetected, 5):
        logcheck.check_consistent(ctx, b, a, [])


def test_a_log_never_goes_back_in_size(log: ChannelLog) -> None:
    ctx = context(log)
    logcheck.check_no_rollback(ctx, 3, 3)
    logcheck.check_no_rollback(ctx, 3, 7)
    with raises(ForkDetected, None):
        logcheck.check_no_rollback(ctx, 7, 3)


# --- cosignatures -------------------------------------------------------------------------------


def test_cosignatures_of_known_witnesses_are_named_and_forgeries_refused(log: ChannelLog) -> None:
    ctx = context(log)
    signed = log.checkpoints[2]
    assert set(logcheck.check_cosignatures(ctx, signed)) == {"us/us-1", "ru/ru-1"}
    relay, us, ru = signed.note.signatures
    forged = NoteSignature(ru.name, ru.key_hash, ru.signature[:8] + bytes(64))
    bad = type(signed)(signed.checkpoint, Note(signed.note.text, (relay, us, forged)))
    with raises(BadSignature, 12):
        logcheck.check_cosignatures(ctx, bad)


def test_a_key_revoked_before_a_checkpoint_is_no_witness_of_it(log: ChannelLog) -> None:
    ru = log.world.certs["ru"]
    signed = log.checkpoints[2]
    log.key_event(log.world.parties["ru"].revoke(ru, 0, "x").encode())
    after = log.checkpoint("us", "ru")
    ctx = context(log)
    assert set(logcheck.check_cosignatures(ctx, signed)) == {"us/us-1", "ru/ru-1"}
    assert set(logcheck.check_cosignatures(ctx, after)) == {"us/us-1"}


def test_cosignatures_carried_by_another_station_are_merged_when_they_verify(
    log: ChannelLog,
) -> None:
    ctx = context(log)
    base = log.checkpoint()  # the relay's signature only
    mine = log.checkpoint("us")
    theirs = log.checkpoint("ru")
    stranger = NoteSignature("stranger", 1, bytes(72))
    theirs_and_stranger = type(theirs)(theirs.checkpoint, theirs.note.with_signature(stranger))
    merged = logcheck.merge_cosignatures(ctx, mine.note, theirs_and_stranger)
    assert merged is not None
    assert [s.name for s in merged.signatures] == ["relay.ae", "us/us-1", "ru/ru-1"]
    assert logcheck.merge_cosignatures(ctx, merged, theirs) is None  # nothing new
    kept = logcheck.merge_cosignatures(ctx, None, theirs_and_stranger)
    assert kept is not None and [s.name for s in kept.signatures] == ["relay.ae", "ru/ru-1"]
    assert logcheck.merge_cosignatures(ctx, base.note, log.checkpoints[0]) is None  # other text
    relay, ru = theirs.note.signatures
    forged = type(theirs)(
        theirs.checkpoint,
        Note(theirs.note.text, (relay, NoteSignature(ru.name, ru.key_hash, bytes(72)))),
    )
    with raises(BadSignature, forged.size):
        logcheck.merge_cosignatures(ctx, mine.note, forged)


# --- notices ------------------------------------------------------------------------------------


def test_an_overdue_notice_speaks_only_for_the_sender_or_the_late_party(log: ChannelLog) -> None:
    ctx = context(log)
    sent_by = {2: "us", 8: "ru"}  # messages of the exchange

    def said(author: str, notice: body_mod.Body, index: int = 20) -> tuple[int, str] | None:
        return logcheck.overdue_of(
            ctx, notice, index=index, author=author, message_party=sent_by.get
        )

    notice = body_mod.OverdueNotice(body_mod.Side.SENDER, 2, "ru", 1, 0)
    assert said("us", notice) == (2, "ru")
    assert said("us", replace(notice, level=2)) == (2, "ru")
    assert said("ru", replace(notice, side=body_mod.Side.RECIPIENT)) == (2, "ru")
    assert said("us", body_mod.LinkNotice("ru", "up", "down")) is None
    with raises(NotAuthorized, 20, "party"):
        said("ru", notice)  # ru did not send #2
    with raises(NotAuthorized, 20, "party"):
        said("us", replace(notice, side=body_mod.Side.RECIPIENT))  # us is not ru
    with raises(NotAuthorized, 20, "party"):
        said("us", replace(notice, party="us"))  # late on its own message
    with raises(NotAuthorized, 20, "party"):
        said("us", replace(notice, party="ua"))  # not a member of us-ru
    with raises(Malformed, 20, "of_index"):
        said("us", replace(notice, of_index=5))  # a receipt, not a message
    with raises(Malformed, 7, "of_index"):
        said("ru", replace(notice, of_index=8, party="us"), index=7)  # not before the notice
