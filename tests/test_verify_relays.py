"""`hotline verify` of a channel logged by several independent relays (issue 13), as an
adversary holding the transcript would try it.

Each relay (relay.ae, relay.ch) keeps its own log, signed with its own key; stations name
an entry by its qualified index (station/paths.py). Verify must check every relay's log,
resolve every reference (receipt, overdue notice) in the log it names, check each
disclosed body in every log that holds its envelope, name each relay that leaves out or
reorders an envelope, and say whether the channel's record is intact (every envelope
proven in at least one signed log) while a relay is faulty. Logs are built in-process
(tests/logbuild.py); the lies are a relay's (logging what an honest relay would not, or
signing another history) or the exporter's (editing the file).
"""

from __future__ import annotations

import base64
import copy
import functools
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline import body as body_mod
from hotline import envelope as env_mod
from hotline.cli import main, render
from hotline.leaf import leaf_data
from hotline.merkle import MerkleTree
from hotline.transcript import FORMAT, Report, Verdict, verify

from .conftest import make_world
from .logbuild import T0, RelayLogs, two_relays


@functools.cache
def _honest() -> tuple[dict[str, Any], list[bytes]]:
    logs = two_relays()
    return logs.transcript(), [raw for raw, _ in logs.logs["relay.ae"].entries]


def honest() -> dict[str, Any]:
    return copy.deepcopy(_honest()[0])


def world_of_two() -> RelayLogs:
    return RelayLogs(make_world(T0, more_relays=("relay.ch",)))


def lines(report: Report) -> list[str]:
    return [str(f) for f in report.failures]


def test_an_honest_exchange_through_two_relays_verifies_with_a_report_per_relay() -> None:
    # us's overdue notice names the message as us took it, from relay.ch: a qualified
    # index (position 1); ru's receipts name relay.ae's and relay.ch's entries.
    report = verify(honest())
    assert report.ok, lines(report)
    assert report.verdict == Verdict.CONSISTENT_ONLY and report.record_intact
    us, ru = report.parties["us"], report.parties["ru"]
    assert (us.sent, us.delivered, us.acknowledged, us.overdue) == (3, 1, 0, 0)
    assert (ru.sent, ru.delivered, ru.acknowledged, ru.overdue) == (1, 3, 1, 1)
    assert report.bodies_checked == 10
    for name in ("relay.ae", "relay.ch"):
        relay = report.relays[name]
        assert relay["entries"] == 12 and relay["envelopes"] == 12
        assert relay["checkpoints"] == 3 and relay["largest_checkpoint"] == 12
        assert relay["omits"] == [] and relay["out_of_order"] == []
        assert relay["checkpoints_consistent"] and not relay["faulty"]


def test_a_transcript_that_declares_one_relay_cannot_hide_the_other() -> None:
    # The roster names two relays; the file claims the one-relay format and leaves
    # relay.ch's log out (it might disagree): verify names the missing log.
    doc = two_relays().transcript(bodies=False)
    doc["format"] = FORMAT
    del doc["relays"]
    report = verify(doc)
    assert not report.ok
    assert any(f.code == "path_omits" and "relay.ch" in f.reason for f in report.failures)
    assert report.verdict == Verdict.FAILED  # the file, not a relay, is at fault


def test_a_receipt_carrying_another_history_of_the_relay_it_names_is_a_fork_of_that_relay() -> None:
    logs = world_of_two()
    sent = logs.message("us", "m0")
    logs.checkpoint("us", "ru")
    ch = logs.logs["relay.ch"]
    # relay.ch showed ru another log of the same size (the message at another time).
    raw, ms = ch.entries[-1]
    fork = MerkleTree()
    fork.append_many(
        leaf_data(m, r, k) for (r, m), k in zip(ch.entries[:-1], ch.kinds[:-1], strict=True)
    )
    fork.append(leaf_data(ms + 7, raw, ch.kinds[-1]))
    forked = ch.checkpoint(tree=fork)
    logs.receipt("ru", "delivered", ("relay.ch", sent["relay.ch"]), checkpoint=forked)
    logs.checkpoint("us", "ru")
    report = verify(logs.transcript())
    forks = [f for f in report.failures if f.code == "fork"]
    assert forks and all(f.relay == "relay.ch" for f in forks), lines(report)
    assert report.record_intact and report.faulty == ["relay.ch"]
    assert report.verdict == Verdict.RELAY_FAULTY


def test_a_receipt_logged_before_the_entry_it_names_in_the_same_log_is_named() -> None:
    # ru took the message from relay.ch at #j; relay.ch's log holds ru's receipt at
    # #j-1, before it (relay.ch showed ru another history there).
    logs = world_of_two()
    ch = logs.logs["relay.ch"]
    logs.checkpoint()
    message = logs.seal("us", body_mod.text("m0", "en"))
    logs.post(message, ("relay.ae",))
    j = len(ch.entries) + 1
    seen = MerkleTree()
    seen.append_many(leaf_data(m, r, k) for (r, m), k in zip(ch.entries, ch.kinds, strict=True))
    seen.append(leaf_data(ch.now_ms + 1000, b"something else", ch.kinds[-1]))
    seen.append(leaf_data(ch.now_ms + 2000, message, ch.kinds[-1]))
    shown = ch.checkpoint(tree=seen)
    receipt = logs.seal(
        "ru",
        body_mod.receipt(
            body_mod.ReceiptStatus.DELIVERED,
            logs.at("relay.ch", j),
            env_mod.envelope_hash(message),
            shown.encode(),
            None,
        ),
        env_mod.Kind.RECEIPT,
    )
    at = logs.post(receipt)
    assert logs.post(message, ("relay.ch",)) == {"relay.ch": j}
    logs.checkpoint("us", "ru")
    report = verify(logs.transcript())
    named = [f for f in report.failures if f.index == at["relay.ch"] and f.code == "fork"]
    assert named and named[0].channel == "us-ru@relay.ch", lines(report)
    assert report.faulty == ["relay.ch"] and report.verdict == Verdict.RELAY_FAULTY


def test_two_receipts_naming_one_message_in_two_logs_count_once() -> None:
    logs = world_of_two()
    sent = logs.message("us", "m0")
    logs.checkpoint("us", "ru")
    logs.receipt("ru", "delivered", ("relay.ae", sent["relay.ae"]))
    logs.receipt("ru", "delivered", ("relay.ch", sent["relay.ch"]))
    logs.checkpoint("us", "ru")
    report = verify(logs.transcript())
    assert report.ok, lines(report)
    assert report.parties["ru"].delivered == 1


def test_a_body_is_checked_in_every_log_that_holds_its_envelope() -> None:
    # A receipt only relay.ch logged (relay.ae missed it): its body is disclosed at its
    # relay.ch index, and its reference checked there.
    logs = world_of_two()
    sent = logs.message("us", "m0")
    logs.checkpoint("us", "ru")
    logs.receipt("ru", "delivered", ("relay.ch", sent["relay.ch"]), into=("relay.ch",))
    logs.checkpoint("us", "ru")
    report = verify(logs.transcript())
    assert report.parties["ru"].delivered == 1 and report.bodies_checked == 2
    assert {f.code for f in report.failures} == {"path_omits"}
    assert report.faulty == ["relay.ae"] and report.verdict == Verdict.RELAY_FAULTY
    # The same receipt naming a hash relay.ch's entry does not hold: a fork of relay.ch.
    logs = world_of_two()
    sent = logs.message("us", "m0")
    logs.checkpoint("us", "ru")
    bad = b"\x01" * 32
    at = logs.receipt(
        "ru", "delivered", ("relay.ch", sent["relay.ch"]), into=("relay.ch",), of_hash=bad
    )
    logs.checkpoint("us", "ru")
    report = verify(logs.transcript())
    assert any(
        f.code == "fork" and f.index == at["relay.ch"] and f.channel == "us-ru@relay.ch"
        for f in report.failures
    ), lines(report)


def test_an_overdue_notice_must_name_a_message_in_the_log_it_names() -> None:
    logs = world_of_two()
    sent = logs.message("us", "m0")
    logs.checkpoint("us", "ru")
    # Entry 0 of relay.ch's log is a certificate, not a message; the next is beyond it.
    bad = [logs.overdue("us", ("relay.ch", 0), "ru")]
    bad.append(logs.overdue("us", ("relay.ch", 99), "ru"))
    good = logs.overdue("us", ("relay.ch", sent["relay.ch"]), "ru")
    logs.checkpoint("us", "ru")
    report = verify(logs.transcript())
    named = {(f.channel, f.index) for f in report.failures if f.code == "malformed"}
    # Each is named where the log it names holds it (relay.ch's, beside its reference).
    assert named == {("us-ru@relay.ch", at["relay.ch"]) for at in bad}, lines(report)
    assert ("us-ru@relay.ch", good["relay.ch"]) not in named
    assert report.parties["ru"].overdue == 1
    assert report.verdict == Verdict.FAILED  # a station said it, not a relay


def test_a_relay_that_logs_a_senders_envelopes_in_another_order_is_named() -> None:
    logs = world_of_two()
    first = logs.seal("us", body_mod.text("m0", "en"))
    second = logs.seal("us", body_mod.text("m1", "en"))
    logs.post(first, ("relay.ae",))
    logs.post(second, ("relay.ae",))
    logs.post(second, ("relay.ch",))
    logs.post(first, ("relay.ch",))
    logs.checkpoint("us", "ru")
    report = verify(logs.transcript())
    order = [f for f in report.failures if f.code == "path_order"]
    assert len(order) == 1 and order[0].relay == "relay.ch", lines(report)
    assert "us/us-1" in order[0].reason
    assert (
        report.relays["relay.ch"]["out_of_order"] and not report.relays["relay.ae"]["out_of_order"]
    )
    assert report.record_intact and report.faulty == ["relay.ch"]


def test_two_envelopes_at_one_chain_position_in_two_logs_are_a_fork_of_the_sender() -> None:
    logs = world_of_two()
    ae = logs.logs["relay.ae"]
    one = ae.seal("us", body_mod.text("to relay.ae", "en"), link=(0, env_mod.ZERO_HASH))
    two = ae.seal("us", body_mod.text("to relay.ch", "en"), link=(0, env_mod.ZERO_HASH))
    logs.post(one, ("relay.ae",))
    logs.post(two, ("relay.ch",))
    logs.checkpoint("us", "ru")
    report = verify(logs.transcript())
    assert any(f.code == "path_chain" and "us/us-1" in f.reason for f in report.failures)
    assert not report.record_intact and report.verdict == Verdict.FAILED


def test_an_envelope_no_signed_log_covers_leaves_the_record_not_intact() -> None:
    # Only relay.ch logged the last message, and no checkpoint of relay.ch covers it.
    logs = world_of_two()
    logs.message("us", "m0")
    logs.checkpoint("us", "ru")
    logs.message("us", "m1", into=("relay.ch",))
    report = verify(logs.transcript())
    assert {f.code for f in report.failures} >= {"not_covered", "path_omits"}
    assert not report.record_intact and report.verdict == Verdict.FAILED


@settings(max_examples=20)
@given(st.sampled_from(["relay.ae", "relay.ch"]), st.integers(0, 9))
def test_any_one_envelope_a_relay_leaves_out_is_named_and_only_it(relay: str, n: int) -> None:
    logs = two_relays(skip=(relay, n))
    other = next(r for r in logs.names if r != relay)
    left_out = [
        raw
        for raw, _ in logs.logs[other].entries
        if raw not in {r for r, _ in logs.logs[relay].entries}
    ]
    assert len(left_out) == 1
    digest = env_mod.envelope_hash(left_out[0]).hex()
    report = verify(logs.transcript())
    omits = [f for f in report.failures if f.code == "path_omits"]
    assert len(omits) == 1 and omits[0].relay == relay and digest[:16] in omits[0].reason
    assert report.relays[relay]["omits"] == [digest]
    assert report.relays[other]["omits"] == []
    assert all(f.relay == relay for f in report.failures), lines(report)
    assert report.record_intact and report.faulty == [relay]
    assert report.verdict == Verdict.RELAY_FAULTY


def test_the_cli_says_which_relay_is_faulty_and_that_the_record_is_intact(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(two_relays(skip=("relay.ch", 1)).transcript()))
    result = CliRunner().invoke(main, ["verify", str(path), "--workers", "1"])
    assert result.exit_code == 4, result.output
    assert "RELAY FAULTY: relay.ch" in result.output
    assert "the channel's record is intact" in result.output
    result = CliRunner().invoke(main, ["verify", str(path), "--workers", "1", "--json"])
    out = json.loads(result.output)
    assert out["verdict"] == "relay_faulty" and out["faulty_relays"] == ["relay.ch"]
    assert out["record_intact"] is True


def test_the_report_is_byte_identical_with_one_and_several_workers() -> None:
    doc = two_relays(skip=("relay.ch", 4)).transcript()
    serial = render.verify_report(verify(doc), True)
    assert render.verify_report(verify(doc, workers=2), True) == serial
    assert render.verify_report(verify(doc, workers=2), False) == render.verify_report(
        verify(doc), False
    )


def test_a_relay_the_roster_does_not_name_is_refused() -> None:
    from .logbuild import exchange

    doc = exchange().transcript()
    doc["format"] = doc["format"] + "+relays"
    doc["relays"] = [{"relay": "relay.ch", "entries": [], "checkpoints": [], "consistency": []}]
    report = verify(doc)
    assert [f.code for f in report.failures] == ["malformed"]
    assert "relay.ch" in report.failures[0].reason and report.verdict == Verdict.FAILED


@settings(max_examples=20)
@given(st.sampled_from(["relay.ae", "relay.ch"]), st.integers(2, 11))
def test_any_one_entry_cut_from_a_relays_section_of_the_file_is_named_and_only_it(
    relay: str, index: int
) -> None:
    # Whoever holds the file cuts one entry (a certificate, a message, a receipt, a
    # notice) out of one relay's section and renumbers the rest.
    doc = honest()
    section = doc if relay == "relay.ae" else doc["relays"][0]
    cut = section["entries"].pop(index)
    for i, entry in enumerate(section["entries"]):
        entry["index"] = i
    digest = env_mod.envelope_hash(base64.b64decode(cut["envelope"])).hex()
    report = verify(doc)
    omits = [f for f in report.failures if f.code == "path_omits"]
    assert len(omits) == 1 and omits[0].relay == relay and digest[:16] in omits[0].reason
    assert report.relays[relay]["omits"] == [digest]
    assert not report.relays[relay]["checkpoints_consistent"]
    others = [f for f in report.failures if f.relay != relay]
    # Bodies name the first relay's entries: cut from it, one is disclosed at a shifted
    # index (the file's own fault); otherwise every failure is the cut relay's.
    assert all(f.relay is None and f.code == "malformed" for f in others), lines(report)
    assert report.record_intact


@settings(max_examples=30)
@given(st.permutations(range(4)))
def test_a_relay_that_logs_a_senders_envelopes_out_of_order_is_named_iff_it_does(
    order: list[int],
) -> None:
    logs = world_of_two()
    sealed = [logs.seal("us", body_mod.text(f"m{i}", "en")) for i in range(4)]
    for raw in sealed:
        logs.post(raw, ("relay.ae",))
    for i in order:
        logs.post(sealed[i], ("relay.ch",))
    logs.checkpoint("us", "ru")
    report = verify(logs.transcript())
    found = [f for f in report.failures if f.code == "path_order"]
    if list(order) == sorted(order):
        assert report.ok, lines(report)
    else:
        assert len(found) == 1 and found[0].relay == "relay.ch", lines(report)
        assert report.relays["relay.ch"]["out_of_order"]
        assert report.record_intact and report.faulty == ["relay.ch"]
    assert not report.relays["relay.ae"]["out_of_order"]


def test_a_second_envelope_at_one_chain_position_is_a_fork_even_where_it_is_not_valid() -> None:
    # relay.ch logs us's #1, then another #1 that us also signed (a replay there, so not
    # valid in relay.ch's log): us signed two, which no relay's fault explains away.
    logs = world_of_two()
    ae = logs.logs["relay.ae"]
    one = ae.seal("us", body_mod.text("one", "en"), link=(0, env_mod.ZERO_HASH))
    two = ae.seal("us", body_mod.text("two", "en"), link=(0, env_mod.ZERO_HASH))
    logs.post(one)
    at = logs.post(two, ("relay.ch",))["relay.ch"]
    logs.checkpoint("us", "ru")
    report = verify(logs.transcript())
    forks = [f for f in report.failures if f.code == "path_chain"]
    assert [(f.channel, f.index) for f in forks] == [("us-ru@relay.ch", at)], lines(report)
    assert not report.record_intact and report.verdict == Verdict.FAILED
    # One the relay made up (not signed by us) is that relay's failure only.
    logs = world_of_two()
    ae = logs.logs["relay.ae"]
    one = ae.seal("us", body_mod.text("one", "en"), link=(0, env_mod.ZERO_HASH))
    forged = bytearray(ae.seal("us", body_mod.text("two", "en"), link=(0, env_mod.ZERO_HASH)))
    forged[-1] ^= 1  # in its signature
    logs.post(one)
    logs.post(bytes(forged), ("relay.ch",))
    logs.checkpoint("us", "ru")
    report = verify(logs.transcript())
    assert not [f for f in report.failures if f.code == "path_chain"], lines(report)
    assert report.record_intact and report.faulty == ["relay.ch"]
    assert "bad_signature" in {f.code for f in report.failures}
