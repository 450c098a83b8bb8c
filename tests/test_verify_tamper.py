"""`hotline verify` names every lie in a transcript, on a log built in-process.

Each test starts from an honest exchange (tests/logbuild.py) and lies once: in the
file (as a forger would) or in the log itself (as a lying relay or station would). The
lie must be named by a failure line ``channel#index: code: reason`` at the right place
(``channel (checkpoint of size N)`` for a checkpoint, ``channel (channel)`` for the rest).
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hotline import body as body_mod
from hotline import envelope as env_mod
from hotline.cli import render
from hotline.envelope import Kind
from hotline.leaf import leaf_data
from hotline.merkle import MerkleTree
from hotline.notes import Note, NoteSignature, parse_note
from hotline.transcript import Failure, verify

from .conftest import make_world
from .logbuild import T0, ChannelLog, exchange


@functools.cache
def honest() -> dict[str, Any]:
    return exchange().transcript()


def doc() -> dict[str, Any]:
    return copy.deepcopy(honest())


def failures(d: dict[str, Any]) -> list[Failure]:
    return verify(d).failures


def codes(d: dict[str, Any]) -> set[str]:
    return {f.code for f in failures(d)}


def at(d: dict[str, Any], index: int | None) -> set[str]:
    return {f.code for f in failures(d) if f.index == index}


def on_checkpoint(d: dict[str, Any], size: int) -> set[str]:
    return {f.code for f in failures(d) if f.index is None and f.checkpoint == size}


def raw(d: dict[str, Any], i: int) -> bytearray:
    return bytearray(base64.b64decode(d["entries"][i]["envelope"]))


def put(d: dict[str, Any], i: int, data: bytes) -> None:
    d["entries"][i]["envelope"] = base64.b64encode(data).decode()


def test_an_honest_exchange_verifies_with_a_full_report() -> None:
    report = verify(doc())
    assert report.ok, [str(f) for f in report.failures]
    assert report.entries == 12 and report.checkpoints == 3 and report.largest_checkpoint == 12
    assert report.cosigned == {"us/us-1": 12, "ru/ru-1": 12}
    assert report.bodies_checked == 10
    assert [line.split(" key ")[0] for line in report.key_history] == [
        "#0 certificate of us/us-1",
        "#1 certificate of ru/ru-1",
    ]
    us, ru = report.parties["us"], report.parties["ru"]
    assert (us.sent, us.delivered, us.acknowledged, us.overdue) == (3, 1, 0, 0)
    assert (ru.sent, ru.delivered, ru.acknowledged, ru.overdue) == (1, 3, 1, 1)


def test_a_failure_line_names_channel_index_code_and_reason() -> None:
    d = doc()
    d["bodies"][0]["hash"] = "00" * 32
    (line,) = [str(f) for f in failures(d)]
    assert line == "us-ru#2: malformed: disclosed body is bound to another envelope hash"


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_altered_byte_of_any_entry_is_named_at_that_entry(data: st.DataObject) -> None:
    d = doc()
    i = data.draw(st.integers(0, len(d["entries"]) - 1), label="entry")
    envelope = raw(d, i)
    pos = data.draw(st.integers(0, len(envelope) - 1), label="byte")
    envelope[pos] ^= data.draw(st.integers(1, 255), label="xor")
    put(d, i, bytes(envelope))
    found = failures(d)
    assert any(f.index == i and str(f).startswith(f"us-ru#{i}: ") for f in found)
    assert "bad_proof" in {f.code for f in found}  # no signed checkpoint matches any more


def test_an_altered_signature_byte_is_a_bad_signature_at_that_entry() -> None:
    d = doc()
    envelope = raw(d, 3)
    envelope[-10] ^= 1
    put(d, 3, bytes(envelope))
    assert "bad_signature" in at(d, 3)
    assert "bad_proof" in codes(d)


def test_a_dropped_entry_is_named() -> None:
    d = doc()
    del d["entries"][3]
    for i, e in enumerate(d["entries"]):
        e["index"] = i
    assert "chain_gap" in at(d, 3)  # us's message 2 no longer follows message 0
    assert "bad_proof" in codes(d)


def test_a_gap_in_the_indices_is_named() -> None:
    d = doc()
    del d["entries"][6]
    assert "chain_gap" in at(d, 6)
    assert verify(d).entries == 6  # reading stops at the gap


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_any_two_reordered_entries_of_one_sender_are_named(data: st.DataObject) -> None:
    d = doc()
    senders = [
        env_mod.parse(bytes(raw(d, k))).sender if e["kind"] == "envelope" else None
        for k, e in enumerate(d["entries"])
    ]
    i = data.draw(st.sampled_from([k for k, s in enumerate(senders) if s]), label="first")
    same = [k for k in range(len(senders)) if senders[k] == senders[i] and k != i]
    j = data.draw(st.sampled_from(same), label="second")
    e = d["entries"]
    e[i]["envelope"], e[j]["envelope"] = e[j]["envelope"], e[i]["envelope"]
    assert {"chain_gap", "replay"} & at(d, min(i, j))
    assert "bad_proof" in codes(d)


def test_a_replayed_entry_is_named() -> None:
    log = exchange()
    log.log(log.entries[3][0])
    log.checkpoint("us")
    assert at(log.transcript(bodies=False), 12) == {"replay"}


def test_a_chain_gap_in_a_senders_sequence_is_named() -> None:
    log = exchange()
    seq, prev = log.chains["us"]
    log.log(log.seal("us", body_mod.text("skipped one", "en"), link=(seq + 1, prev)))
    log.checkpoint("us")
    (failure,) = failures(log.transcript(bodies=False))
    assert (failure.index, failure.code) == (12, "chain_gap")
    assert "jumps" in failure.reason


def test_an_envelope_that_does_not_chain_to_its_senders_last_is_named() -> None:
    log = exchange()
    seq, _ = log.chains["us"]
    log.log(log.seal("us", body_mod.text("another past", "en"), link=(seq, bytes(range(32)))))
    log.checkpoint("us")
    assert at(log.transcript(bodies=False), 12) == {"chain_gap"}


def test_an_envelope_of_another_channel_is_named() -> None:
    log = exchange()
    log.log(log.seal("us", body_mod.text("elsewhere", "en"), channel="us-ru-ua"))
    log.checkpoint("us")
    assert at(log.transcript(bodies=False), 12) == {"malformed"}


def test_an_envelope_from_a_party_that_is_not_a_member_is_named() -> None:
    log = exchange()
    index = log.send("ua", body_mod.text("ua is not in us-ru", "en"))
    log.checkpoint("us")
    report = verify(log.transcript(bodies=False))
    (failure,) = report.failures
    assert (failure.index, failure.code) == (index, "not_authorized")
    assert "ua/ua-1" in failure.reason and "not a member of us-ru" in failure.reason
    assert "ua" not in report.parties


def test_an_envelope_signed_after_its_key_was_revoked_is_named() -> None:
    log = exchange()
    at_ = log.revoke("us", T0)  # says "from T0": before all of us's logged messages
    index = log.message("us", "after the revocation")
    log.checkpoint("ru")
    report = verify(log.transcript(bodies=False))
    assert {(f.index, f.code) for f in report.failures} == {(index, "revoked_key")}
    assert at_.revoked_at == T0  # shown, but the revocation takes effect at its position
    assert "revocation of us/us-1" in report.key_history[-1]


def test_a_certificate_that_does_not_verify_is_named() -> None:
    d = doc()
    cert = base64.b64decode(d["entries"][0]["envelope"]).decode()
    forged = cert.replace('"not_after":', '"not_after":1').encode()
    d["entries"][0]["envelope"] = base64.b64encode(forged).decode()
    assert "bad_signature" in at(d, 0)
    assert "unknown_key" in at(d, 2)  # us's messages have no certificate before them


def test_a_checkpoint_with_a_bad_relay_signature_is_named() -> None:
    d = doc()
    note = parse_note(d["checkpoints"][1].encode())
    relay = note.signatures[0]
    forged = NoteSignature(relay.name, relay.key_hash, bytes(64))
    d["checkpoints"][1] = Note(note.text, (forged, *note.signatures[1:])).encode().decode()
    (failure,) = failures(d)
    assert (failure.index, failure.checkpoint, failure.code) == (None, 9, "bad_signature")
    assert failure.reason.startswith("checkpoint does not verify")
    assert str(failure).startswith("us-ru (checkpoint of size 9): bad_signature: ")


def test_a_forged_cosignature_is_named() -> None:
    d = doc()
    note = parse_note(d["checkpoints"][2].encode())
    ru = note.signatures[-1]
    assert ru.name == "ru/ru-1"
    forged = NoteSignature(ru.name, ru.key_hash, ru.signature[:8] + bytes(64))
    d["checkpoints"][2] = Note(note.text, (*note.signatures[:-1], forged)).encode().decode()
    report = verify(d)
    (failure,) = report.failures
    # Named by the checkpoint's size, not as an entry #12 past the end of the log.
    assert (failure.index, failure.checkpoint, failure.code) == (None, 12, "bad_signature")
    assert failure.reason.startswith("cosignature does not verify")
    assert str(failure).startswith("us-ru (checkpoint of size 12): bad_signature: cosignature")


def test_checkpoints_whose_consistency_proof_fails_are_named() -> None:
    d = doc()
    proof = d["consistency"][0]["proof"]
    proof[0] = base64.b64encode(bytes(32)).decode()
    (failure,) = failures(d)
    assert (failure.checkpoint, failure.code) == (d["consistency"][0]["to"], "fork")
    assert failure.index is None and "not consistent" in failure.reason


def test_a_checkpoint_of_another_history_is_named() -> None:
    log = exchange()
    other = MerkleTree()
    other.append_many([b"another history %d" % i for i in range(6)])
    log.checkpoints.append(log.checkpoint(tree=other))
    assert on_checkpoint(log.transcript(), 6) == {"bad_proof"}


def test_a_checkpoint_beyond_the_entries_is_named() -> None:
    log = exchange()
    longer = MerkleTree()
    longer.append_many([raw for raw, _ in log.entries] + [b"hidden"])
    log.checkpoints.append(log.checkpoint(tree=longer))
    d = log.transcript()
    assert on_checkpoint(d, 13) == {"bad_proof"}
    assert all(f.index is None or f.index < 12 for f in failures(d))  # no entry #13 named


def test_a_rollback_is_named() -> None:
    d = doc()
    d["checkpoints"].append(d["checkpoints"][0])  # a smaller one after larger ones
    (failure,) = failures(d)
    assert (failure.index, failure.checkpoint, failure.code) == (None, 5, "fork")
    assert "rollback" in failure.reason


def test_a_receipt_for_a_different_hash_is_named() -> None:
    log = exchange()
    index = log.receipt("ru", "delivered", 3, of_hash=bytes(32))
    log.checkpoint("us")
    (failure,) = failures(log.transcript())
    assert (failure.index, failure.code) == (index, "fork")
    assert failure.reason == "receipt references no message #3 of this log"


def test_a_receipt_for_a_later_entry_is_named() -> None:
    log = exchange()
    replayed = log.entries[2][0]
    index = log.receipt("ru", "delivered", 13, of_hash=env_mod.envelope_hash(replayed))
    log.log(replayed)  # entry 13 has that hash, but it came after the receipt
    log.checkpoint("us")
    assert at(log.transcript(), index) == {"fork"}


def test_a_receipt_carrying_a_checkpoint_of_another_history_is_named() -> None:
    log = exchange()
    other = MerkleTree()
    other.append_many([b"what ru was shown %d" % i for i in range(4)])
    index = log.receipt("ru", "delivered", 8, checkpoint=log.checkpoint(tree=other))
    log.checkpoint("us")
    (failure,) = failures(log.transcript())
    assert (failure.index, failure.code) == (index, "fork")
    assert "carries a checkpoint of size 4" in failure.reason


def test_a_receipt_with_an_unknown_status_is_named() -> None:
    log = exchange()
    receipt = body_mod.receipt(
        body_mod.ReceiptStatus.DELIVERED,
        2,
        env_mod.envelope_hash(log.entries[2][0]),
        log.checkpoints[-1].encode(),
    )
    body = {**receipt.to_dict(), "status": "read"}
    index = log.send("ru", body, Kind.RECEIPT)
    log.checkpoint("us")
    (failure,) = failures(log.transcript())
    assert (failure.index, failure.code) == (index, "malformed")
    assert failure.reason.startswith("unknown receipt status")


def test_a_disclosed_body_that_lies_is_named() -> None:
    d = doc()
    fake = json.dumps({"type": "text", "lang": "en", "text": "we never warned you"}).encode()
    d["bodies"][1]["body"] = base64.b64encode(fake).decode()
    (failure,) = failures(d)
    assert (failure.index, failure.code) == (3, "malformed")
    assert "decrypts to something else" in failure.reason


def test_a_disclosed_body_key_that_does_not_open_its_envelope_is_named() -> None:
    d = doc()
    d["bodies"][2]["body_key"] = d["bodies"][1]["body_key"]
    assert at(d, 4) == {"decryption_failed"}


def test_a_disclosed_body_of_no_valid_entry_is_named() -> None:
    d = doc()
    d["bodies"].append({**d["bodies"][0], "index": 99})
    (failure,) = failures(d)
    assert (failure.index, failure.checkpoint, failure.code) == (None, None, "malformed")
    assert str(failure).startswith("us-ru (channel): malformed: ") and "#99" in failure.reason


def test_an_unreadable_entry_is_named_not_raised() -> None:
    d = doc()
    d["entries"][5]["envelope"] = "not base64!"
    assert at(d, 5) == {"malformed"}


def test_a_roster_missing_a_signature_fails_everything() -> None:
    d = doc()
    lines = d["roster"].rstrip("\n").split("\n")
    d["roster"] = "\n".join(lines[:-1]) + "\n"
    assert codes(d) == {"bad_signature"}


def test_a_file_of_another_format_is_named() -> None:
    assert codes({"format": "something/v1"}) == {"malformed"}
    assert codes([]) == {"malformed"}
    (failure,) = failures({"format": "something/v1"})
    assert "'something/v1'" in failure.reason and "'hotline-transcript/v3'" in failure.reason


def test_a_transcript_of_an_old_format_is_refused_by_name() -> None:
    for old in ("v1", "v2"):  # v1: leaves without their time; v2: keys beside the log
        d = doc()
        d["format"] = f"hotline-transcript/{old}"
        (failure,) = failures(d)
        assert failure.code == "malformed"
        assert failure.reason.startswith(f"old format hotline-transcript/{old}: ")
        assert "hotline-transcript/v3" in failure.reason


def test_the_builder_lies_only_when_told() -> None:
    """The honest log of a longer exchange verifies: the tests above fail for their lie."""
    log = ChannelLog(exchange().world)
    for n in range(20):
        sender = "us" if n % 3 else "ru"
        at = log.message(sender, f"m{n}")
        if n % 4 == 3:  # the other party's delivered receipt (for its message, as honest)
            log.checkpoint("us", "ru")
            log.receipt("ru" if sender == "us" else "us", "delivered", at)
    log.checkpoint("ru")
    assert verify(log.transcript()).ok


# --- overdue notices speak only for their author ---------------------------------------------


def _three_party_log() -> tuple[ChannelLog, int]:
    """us-ru-ua: us sends a message (index 3, after three certificates); checkpoints."""
    log = ChannelLog(exchange().world, channel="us-ru-ua")
    index = log.message("us", "Confirm intent of the flight at 0400Z.")
    log.checkpoint("us", "ru", "ua")
    return log, index


def _overdue(log: ChannelLog, author: str, side: body_mod.Side, late: str, of: int) -> int:
    notice = body_mod.OverdueNotice(side, of, late, 1, log.now_ms)
    index = log.send(author, notice, Kind.NOTICE)
    log.checkpoint("us", "ru", "ua")
    return index


def test_an_overdue_notice_counts_from_the_sender_or_the_late_party_once_per_message() -> None:
    log, m = _three_party_log()
    _overdue(log, "us", body_mod.Side.SENDER, "ru", m)  # the sender says ru is late
    _overdue(log, "ru", body_mod.Side.RECIPIENT, "ru", m)  # ru says it is late itself
    _overdue(log, "ua", body_mod.Side.RECIPIENT, "ua", m)
    report = verify(log.transcript())
    assert report.ok, [str(f) for f in report.failures]
    overdue = {p: r.overdue for p, r in report.parties.items()}
    assert overdue == {"us": 0, "ru": 1, "ua": 1}


def test_a_third_partys_overdue_notice_about_another_is_named_and_not_counted() -> None:
    log, m = _three_party_log()
    index = _overdue(log, "ua", body_mod.Side.SENDER, "ru", m)  # ua did not send it
    report = verify(log.transcript())
    (failure,) = report.failures
    assert (failure.index, failure.code) == (index, "not_authorized")
    assert str(failure).startswith(f"us-ru-ua#{index}: not_authorized: overdue notice by ua")
    assert report.parties["ru"].overdue == 0


def test_a_recipient_cannot_say_another_recipient_is_late() -> None:
    log, m = _three_party_log()
    index = _overdue(log, "ua", body_mod.Side.RECIPIENT, "ru", m)
    report = verify(log.transcript())
    assert at(log.transcript(), index) == {"not_authorized"}
    assert report.parties["ru"].overdue == 0


def test_a_sender_cannot_be_late_on_its_own_message() -> None:
    log, m = _three_party_log()
    index = _overdue(log, "us", body_mod.Side.SENDER, "us", m)
    assert at(log.transcript(), index) == {"not_authorized"}


def test_an_overdue_notice_naming_no_earlier_message_is_named() -> None:
    log, _ = _three_party_log()
    receipt = log.receipt("ru", "delivered", 3)
    index = _overdue(log, "ru", body_mod.Side.SENDER, "us", receipt)  # a receipt, no message
    later = _overdue(log, "us", body_mod.Side.SENDER, "ru", 50)
    d = log.transcript()
    assert at(d, index) == {"malformed"} and at(d, later) == {"malformed"}
    assert verify(d).parties["us"].overdue == 0


# --- report hygiene -----------------------------------------------------------------------


LOCATION = re.compile(r"^us-ru(#(?P<index>\d+)| \(checkpoint of size \d+\)| \(channel\)): \w+: ")


def _lies() -> list[dict[str, Any]]:
    """Transcripts each with one lie of a different kind."""
    out = []
    d = doc()
    d["entries"][1]["kind"] = "envelope"  # a key event passed off as an envelope
    out.append(d)
    d = doc()
    d["checkpoints"].append(d["checkpoints"][0])
    out.append(d)
    d = doc()
    d["bodies"].append({**d["bodies"][0], "index": 99})
    out.append(d)
    d = doc()
    note = parse_note(d["checkpoints"][2].encode())
    ru = note.signatures[-1]
    forged = NoteSignature(ru.name, ru.key_hash, ru.signature[:8] + bytes(64))
    d["checkpoints"][2] = Note(note.text, (*note.signatures[:-1], forged)).encode().decode()
    out.append(d)
    log = exchange()
    longer = MerkleTree()
    longer.append_many([raw for raw, _ in log.entries] + [b"hidden"])
    log.checkpoints.append(log.checkpoint(tree=longer))
    out.append(log.transcript())
    d = doc()
    envelope = raw(d, 4)
    envelope[-3] ^= 1
    put(d, 4, bytes(envelope))
    out.append(d)
    return out


def test_every_failure_line_names_an_entry_in_the_log_a_checkpoint_or_the_channel() -> None:
    for d in _lies():
        report = verify(d)
        assert report.failures
        for f in report.failures:
            found = LOCATION.match(str(f))
            assert found, str(f)
            if found["index"] is not None:
                assert int(found["index"]) < report.entries, str(f)


def test_entries_appended_after_the_last_checkpoint_fail() -> None:
    # A holder appends envelopes its own station signed, chained and timed correctly:
    # nothing signed by the relay says they were ever logged.
    log = exchange()
    log.message("us", "after the last checkpoint")
    log.message("ru", "and another")
    report = verify(log.transcript())
    assert report.uncovered == (12, 13)
    (failure,) = report.failures
    assert (failure.index, failure.code) == (12, "not_covered")
    assert failure.reason.startswith("entries 12..13 are not covered by any checkpoint")
    assert json.loads(render.verify_report(report, True))["uncovered"] == [12, 13]
    assert verify(doc()).uncovered is None and verify(doc()).ok


def test_a_log_with_no_valid_checkpoint_is_uncovered_throughout() -> None:
    d = doc()
    d["checkpoints"] = []
    report = verify(d)
    assert report.uncovered == (0, 11)
    assert [(f.index, f.code) for f in report.failures] == [(0, "not_covered")]


def test_without_disclosed_bodies_receipts_are_said_to_be_uncounted_not_zero() -> None:
    report = verify(exchange().transcript(bodies=False))
    assert report.ok and not report.receipts_counted
    text = render.verify_report(report, False)
    assert "party ru: sent 1, receipts could not be counted (no bodies disclosed)" in text
    assert "delivered 0" not in text and "overdue 0" not in text
    ru = json.loads(render.verify_report(report, True))["parties"]["ru"]
    assert ru == {"sent": 1, "delivered": None, "acknowledged": None, "overdue": None}
    assert verify(doc()).receipts_counted


def test_one_uncovered_entry_is_named_alone() -> None:
    log = exchange()
    log.message("us", "after the last checkpoint")
    (failure,) = verify(log.transcript()).failures
    assert failure.reason.startswith("entry 12 is not covered by any checkpoint")


# --- time: inside the leaf, between the checkpoints' signed times -----------------------------


def test_a_late_acknowledgments_time_edited_earlier_is_named_at_that_entry() -> None:
    d = doc()
    message_ms = d["entries"][2]["relay_ms"]
    d["entries"][10]["relay_ms"] = message_ms + 1  # ru's acknowledgment of 2, made "prompt"
    found = failures(d)
    assert "bad_time" in at(d, 10), [str(f) for f in found]
    assert "goes backwards" in next(f.reason for f in found if f.index == 10)
    assert "bad_proof" in on_checkpoint(d, 12)  # the signed root covers the time


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_any_edited_entry_time_breaks_the_signed_root_and_names_the_entry(
    data: st.DataObject,
) -> None:
    log = ChannelLog(exchange().world, certify=False)
    for party in ("us", "ru"):
        log.key_event(log.world.certs[party].encode())
        log.checkpoint()
    for n in range(6):
        log.message("us" if n % 2 else "ru", f"m{n}")
        log.checkpoint("us", "ru")  # one checkpoint per entry: each is bound alone
    d = log.transcript()
    assert verify(d).ok
    i = data.draw(st.integers(0, 7), label="entry")
    delta = data.draw(st.integers(-5000, 5000).filter(bool), label="ms")
    d["entries"][i]["relay_ms"] += delta
    found = failures(d)
    assert any(f.index == i and f.code in ("bad_time", "bad_proof") for f in found), found
    assert "bad_proof" in on_checkpoint(d, i + 1)


def test_an_entry_time_beyond_its_checkpoints_signed_time_is_named() -> None:
    log = exchange()
    raw, ms = log.entries[11]
    log.entries[11] = (raw, ms + 60_000)  # logged "later" than the relay signed for it
    log.tree = MerkleTree()
    log.tree.append_many(
        [leaf_data(t, r, k) for (r, t), k in zip(log.entries, log.kinds, strict=True)]
    )
    log.checkpoints.pop()
    log.checkpoint("us", "ru")  # signed over the new time, at a time before it
    found = verify(log.transcript()).failures
    assert [f.code for f in found if f.index == 11] == ["bad_time"], found
    assert "after the signed time" in next(f.reason for f in found if f.index == 11)


# --- a delivered receipt naming a run of messages (issue 15) -------------------------------


def _run_exchange(refs: list[tuple[int, bytes]] | None = None) -> tuple[ChannelLog, int]:
    """us sends three messages; ru answers with ONE delivered receipt naming all three
    (or ``refs``); its index."""
    log = ChannelLog(make_world(T0))
    sent = [log.message("us", f"message {i}") for i in range(3)]
    log.checkpoint("us", "ru")
    named = refs or [(i, env_mod.envelope_hash(log.entries[i][0])) for i in sent]
    note = log.checkpoints[-1].encode()
    index = log.send("ru", body_mod.delivered(named, note), Kind.RECEIPT)
    log.checkpoint("us", "ru")
    return log, index


def test_one_receipt_naming_a_run_counts_each_message_delivered_once() -> None:
    log, _ = _run_exchange()
    report = verify(log.transcript())
    assert report.ok, [str(f) for f in report.failures]
    assert report.parties["ru"].delivered == 3  # one signed statement, three messages
    assert report.parties["us"].delivered == 0


def test_a_run_naming_one_entry_by_another_hash_is_named_and_the_rest_still_count() -> None:
    log = ChannelLog(make_world(T0))
    sent = [log.message("us", f"message {i}") for i in range(3)]
    log.checkpoint("us", "ru")
    refs = [(i, env_mod.envelope_hash(log.entries[i][0])) for i in sent]
    refs[1] = (refs[1][0], bytes(32))  # ru claims another envelope at entry 3
    index = log.send("ru", body_mod.delivered(refs, log.checkpoints[-1].encode()), Kind.RECEIPT)
    log.checkpoint("us", "ru")
    report = verify(log.transcript())
    (failure,) = report.failures
    assert (failure.index, failure.code) == (index, "fork")
    assert failure.reason == f"receipt references no message #{sent[1]} of this log"
    assert report.parties["ru"].delivered == 2


def test_a_run_naming_a_later_entry_is_named() -> None:
    log = ChannelLog(make_world(T0))
    first = log.message("us", "message 0")
    log.checkpoint("us", "ru")
    later = len(log.entries) + 1  # the message sent after the receipt
    refs = [(first, env_mod.envelope_hash(log.entries[first][0])), (later, bytes(range(32)))]
    index = log.send("ru", body_mod.delivered(refs, log.checkpoints[-1].encode()), Kind.RECEIPT)
    log.message("us", "message 1")
    log.checkpoint("us", "ru")
    assert at(log.transcript(), index) == {"fork"}


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_a_run_edited_in_the_file_is_refused_or_named(data: st.DataObject) -> None:
    """A transcript holder who edits a run's disclosed body cannot make it count for
    anything the signed envelope does not say: the body no longer opens to its hash."""
    log, index = _run_exchange()
    d = log.transcript()
    bodies = {b["index"]: b for b in d["bodies"]}
    body = json.loads(base64.b64decode(bodies[index]["body"]))
    body["also"] = data.draw(st.permutations(body["also"]))[: data.draw(st.integers(0, 2))]
    if not body["also"]:
        del body["also"]
    edited = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    if edited == base64.b64decode(bodies[index]["body"]):
        return  # the same body: nothing edited
    bodies[index]["body"] = base64.b64encode(edited).decode()
    assert not verify(d).ok
