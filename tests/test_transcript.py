"""Export and offline verify on a real exchange: a clean record verifies; lies are named.

The same lies, and more, on a log built in-process: tests/test_verify_tamper.py.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from hotline.envelope import parse
from hotline.frames import Entry
from hotline.home import load_party, load_relay_key
from hotline.keys import KeyRing
from hotline.leaf import leaf_data
from hotline.merkle import MerkleTree
from hotline.notes import Checkpoint, sign_checkpoint
from hotline.transcript import verify

from .netutil import PASSPHRASE, Cluster, hotline, wait_for

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real exchange on us-ru (with an acknowledgment), exported by us with bodies."""
    root = tmp_path_factory.mktemp("transcript")
    c = Cluster(root).start()
    try:
        for i in range(4):
            c.send("us/us-1", "us-ru", f"message {i}", "PRIORITY")
        c.send("ru/ru-1", "us-ru", "reply from ru", "ROUTINE")
        wait_for(lambda: len(c.inbox("ru/ru-1", "us-ru")) == 4, what="ru inbox")
        first = min(m["index"] for m in c.inbox("ru/ru-1", "us-ru") if m["party"] == "us")
        c.api("ru/ru-1").post(
            "/api/ack", json={"channel": "us-ru", "index": first, "operator": "Capt. Volkov"}
        )

        def settled() -> bool:
            sent = c.sent("us/us-1", "us-ru")
            return all(s["recipients"]["ru"]["delivered"] for s in sent) and any(
                s["recipients"]["ru"]["acknowledged"] for s in sent
            )

        wait_for(settled, what="receipts at us")
        out = root / "us-ru.json"
        env = {**os.environ, "HOTLINE_PASSPHRASE": PASSPHRASE}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "hotline",
                "export",
                "--dir",
                str(c.net.stations["us/us-1"]),
                "us-ru",
                "--out",
                str(out),
                "--with-bodies",
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        yield c, out, json.loads(out.read_bytes())
    finally:
        c.close()


def codes(doc: dict[str, Any]) -> set[str]:
    return {f.code for f in verify(doc).failures}


def test_a_clean_export_verifies_offline_with_a_full_report(recorded: Any) -> None:
    c, path, doc = recorded
    roster = c.net.relay_dir / "roster.note"  # as distributed to the parties
    out = hotline("verify", str(path), "--roster", str(roster), "--json")
    assert out.returncode == 0, out.stdout
    report = json.loads(out.stdout)
    assert report["ok"] and report["verdict"] == "verified"
    assert report["entries"] == len(doc["entries"])
    assert report["parties"]["us"]["sent"] == 4 and report["parties"]["ru"]["sent"] == 1
    assert report["parties"]["ru"]["delivered"] == 4
    assert report["parties"]["ru"]["acknowledged"] == 1
    assert report["parties"]["us"]["delivered"] == 1
    assert {"us/us-1", "ru/ru-1"} <= set(report["cosigned"])
    assert report["bodies_checked"] == len(doc["bodies"]) > 0
    text = subprocess.run(
        [sys.executable, "-m", "hotline", "verify", str(path), "--roster", str(roster)],
        capture_output=True,
        text=True,
    ).stdout
    assert "VERIFIED" in text and "party ru: sent 1" in text
    assert "key history (key events in the log): 2" in text
    assert "  #0 certificate of " in text and "  #1 certificate of " in text
    assert len(report["key_history"]) == 2
    unpinned = subprocess.run(
        [sys.executable, "-m", "hotline", "verify", str(path)], capture_output=True, text=True
    )
    assert unpinned.returncode == 7 and "consistency only: no trust anchor" in unpinned.stdout


def _raw(doc: dict[str, Any], i: int) -> bytearray:
    return bytearray(base64.b64decode(doc["entries"][i]["envelope"]))


def _set(doc: dict[str, Any], i: int, raw: bytes) -> None:
    doc["entries"][i]["envelope"] = base64.b64encode(raw).decode()


def _envelopes(doc: dict[str, Any]) -> list[int]:
    """The indices of the envelopes (the rest are key events: certificates first)."""
    return [e["index"] for e in doc["entries"] if e["kind"] == "envelope"]


def test_a_dropped_message_is_named(recorded: Any) -> None:
    doc = copy.deepcopy(recorded[2])
    del doc["entries"][2]
    for i, e in enumerate(doc["entries"]):
        e["index"] = i
    assert {"chain_gap", "bad_proof"} <= codes(doc) or "chain_gap" in codes(doc)
    assert "bad_proof" in codes(doc)


def test_two_reordered_messages_are_named(recorded: Any) -> None:
    doc = copy.deepcopy(recorded[2])
    e = doc["entries"]
    i, j = [k for k in _envelopes(doc) if _raw(doc, k)[5] == 1][:2]
    e[i]["envelope"], e[j]["envelope"] = e[j]["envelope"], e[i]["envelope"]
    assert {"chain_gap", "replay"} & codes(doc) and "bad_proof" in codes(doc)


def test_an_altered_byte_is_named(recorded: Any) -> None:
    doc = copy.deepcopy(recorded[2])
    i = _envelopes(doc)[1]
    raw = _raw(doc, i)
    raw[-10] ^= 1
    _set(doc, i, bytes(raw))
    report = verify(doc)
    assert any(f.index == i and f.code == "bad_signature" for f in report.failures)
    assert "bad_proof" in codes(doc)


def test_a_replayed_envelope_is_named(recorded: Any) -> None:
    doc = copy.deepcopy(recorded[2])
    doc["entries"].append({**doc["entries"][_envelopes(doc)[0]], "index": len(doc["entries"])})
    assert "replay" in codes(doc)


def test_a_revocation_beside_the_log_counts_for_nothing(recorded: Any) -> None:
    """us backdates a revocation before its own messages and hands it over beside the
    log (as transcript v2 carried them): only the log's key events count."""
    c, _, original = recorded
    doc = copy.deepcopy(original)
    us = load_party(c.net.root / "parties" / "us", PASSPHRASE)
    ring = KeyRing({"us": us.verifier})
    cert = ring.add_certificate(
        next(
            _raw(doc, e["index"])
            for e in doc["entries"]
            if e["kind"] == "key_event" and b'"party":"us"' in _raw(doc, e["index"])
        )
    )
    first_us = min(
        e["relay_ms"]
        for e in doc["entries"]
        if e["kind"] == "envelope" and parse(bytes(_raw(doc, e["index"]))).party == "us"
    )
    rev = us.revoke(cert, first_us // 1000 - 60, "compromised").encode().decode()
    doc["revocations"] = [rev]
    report = verify(doc)
    assert report.ok, [str(f) for f in report.failures]
    assert not any("revocation" in line for line in report.key_history)


def _resign(c: Cluster, doc: dict[str, Any], size: int, root: bytes, at: int = 1) -> str:
    key = load_relay_key(c.net.relay_dir, PASSPHRASE)
    cp = Checkpoint(f"hotline/abu-dhabi/{doc['channel']}", size, root, (f"time {at}",))
    return sign_checkpoint(cp, key).encode().decode()


def test_a_forked_history_is_named(recorded: Any) -> None:
    c, _, original = recorded
    doc = copy.deepcopy(original)
    # The relay signed, for someone else, a different history of the same size.
    other = MerkleTree()
    other.append_many([b"another history %d" % i for i in range(len(doc["entries"]))])
    doc["checkpoints"].append(_resign(c, doc, other.size, other.root()))
    assert "bad_proof" in codes(doc)


def test_a_rollback_is_named(recorded: Any) -> None:
    c, _, original = recorded
    doc = copy.deepcopy(original)
    tree = MerkleTree()
    first = [Entry.read(e) for e in doc["entries"][:2]]
    tree.append_many([leaf_data(e.relay_ms, e.envelope, e.kind) for e in first])
    at = first[-1].relay_ms
    doc["checkpoints"].append(_resign(c, doc, 2, tree.root(), at))  # after larger ones
    assert "fork" in codes(doc)


def test_an_edited_entry_time_is_named_at_that_entry(recorded: Any) -> None:
    doc = copy.deepcopy(recorded[2])
    last = doc["entries"][-1]
    last["relay_ms"] = doc["entries"][0]["relay_ms"] - 1  # "it was answered at once"
    failures = verify(doc).failures
    assert "bad_time" in {f.code for f in failures if f.index == last["index"]}
    assert "bad_proof" in {f.code for f in failures}  # the signed root covers the time


def test_a_checkpoint_whose_root_does_not_match_is_named(recorded: Any) -> None:
    c, _, original = recorded
    doc = copy.deepcopy(original)
    doc["checkpoints"].append(_resign(c, doc, len(doc["entries"]), os.urandom(32)))
    assert "bad_proof" in codes(doc)


def test_a_disclosed_body_that_lies_is_named(recorded: Any) -> None:
    doc = copy.deepcopy(recorded[2])
    fake = json.dumps({"type": "text", "lang": "en", "text": "we never warned you"}).encode()
    doc["bodies"][0]["body"] = base64.b64encode(fake).decode()
    assert "malformed" in codes(doc)


def test_a_roster_missing_a_signature_fails_everything(recorded: Any) -> None:
    doc = copy.deepcopy(recorded[2])
    lines = doc["roster"].rstrip("\n").split("\n")
    doc["roster"] = "\n".join(lines[:-1]) + "\n"
    assert codes(doc) == {"bad_signature"}
