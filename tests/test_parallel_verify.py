"""`hotline verify` on several processes says exactly what it says on one.

The pool only checks signatures ahead (hotline/parallel_verify.py); the serial pass
still decides everything. So the report must be byte for byte the same with 1 and N
workers, and a lie in any chunk must still be named at its index.
"""

from __future__ import annotations

import base64
import copy
import functools
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline import parallel_verify
from hotline.cli import render
from hotline.keys import proven_signatures
from hotline.transcript import verify

from .logbuild import exchange, two_relays


@functools.cache
def honest() -> dict[str, Any]:
    return exchange().transcript()


def rendered(doc: dict[str, Any], workers: int, chunk: int | None = None) -> str:
    if workers == 1:
        return render.verify_report(verify(doc), True)
    with parallel_verify.proven_for(doc, workers, chunk):
        return render.verify_report(verify(doc), True)


def test_the_report_is_byte_identical_with_one_and_several_workers() -> None:
    doc = copy.deepcopy(honest())
    serial = rendered(doc, 1)
    assert '"ok": true' in serial
    for workers, chunk in ((2, 1), (2, 3), (3, 4), (2, None)):
        assert rendered(doc, workers, chunk) == serial
    # The same through transcript.verify's own hook.
    assert render.verify_report(verify(doc, workers=2), True) == serial


def test_the_pool_proves_every_honest_signature_and_nothing_else() -> None:
    doc = copy.deepcopy(honest())
    with parallel_verify.proven_for(doc, 2, 3) as proofs:
        proven = proofs.drain()
    envelopes = [e for e in doc["entries"] if e["kind"] == "envelope"]  # not key events
    assert len(proven) == len(envelopes)  # one per envelope, each under its sender's key
    signing, signature, digest = next(iter(proven))
    assert not proofs.holds(signing, bytes(64), digest)
    assert not proofs.holds(signing, signature, bytes(32))


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_a_tampered_entry_in_any_chunk_is_named_at_its_index(data: st.DataObject) -> None:
    doc = copy.deepcopy(honest())
    index = data.draw(st.integers(0, len(doc["entries"]) - 1), label="index")
    raw = bytearray(base64.b64decode(doc["entries"][index]["envelope"]))
    # Anywhere in the signed bytes or the signature at the end.
    at = data.draw(st.integers(0, len(raw) - 1), label="byte")
    raw[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    doc["entries"][index]["envelope"] = base64.b64encode(bytes(raw)).decode()
    serial = verify(doc)
    assert index in {f.index for f in serial.failures}
    chunk = data.draw(st.integers(1, 4), label="chunk")
    assert rendered(doc, 2, chunk) == render.verify_report(serial, True)


def test_a_proof_never_makes_a_bad_signature_good() -> None:
    """A lookup that says yes only for what it was told: a forged signature is still
    checked by the arithmetic and refused (the cache is an answer, not a verdict)."""
    doc = copy.deepcopy(honest())
    raw = bytearray(base64.b64decode(doc["entries"][2]["envelope"]))
    raw[-1] ^= 1
    doc["entries"][2]["envelope"] = base64.b64encode(bytes(raw)).decode()

    class SaysNo:
        def holds(self, signing: bytes, signature: bytes, digest: bytes) -> bool:
            return False

    with proven_signatures(SaysNo()):
        report = verify(doc)
    assert 2 in {f.index for f in report.failures}
    assert render.verify_report(report, True) == render.verify_report(verify(doc), True)


def test_workers_for_keeps_short_transcripts_on_one_process() -> None:
    doc = honest()
    assert parallel_verify.workers_for(doc, 0) == 1
    long = {"entries": [{}] * parallel_verify.MIN_ENTRIES}
    assert parallel_verify.workers_for(long, 3) == 3
    assert parallel_verify.workers_for(long, 0) == parallel_verify.default_workers()


def test_a_broken_pool_leaves_every_check_to_this_process() -> None:
    doc = copy.deepcopy(honest())

    def broken() -> Iterator[list[parallel_verify.Triple]]:
        yield []
        raise RuntimeError("a worker died")

    with proven_signatures(parallel_verify.Proofs(broken())):
        report = verify(doc)
    assert render.verify_report(report, True) == rendered(doc, 1)


def _envelopes(entries: list[dict[str, Any]]) -> set[str]:
    return {e["envelope"] for e in entries if e["kind"] == "envelope"}


def test_every_relays_log_is_checked_ahead_and_the_report_stays_the_same() -> None:
    """With two relays, relay.ae never logs envelope #1 (relay.ch does): the pool proves
    every envelope of every relay's section, relay.ch's included, each once, and the
    report (which names relay.ae) is byte for byte the one a single worker gives."""
    doc = two_relays(skip=("relay.ae", 1)).transcript()
    (ch,) = doc["relays"]
    assert _envelopes(ch["entries"]) - _envelopes(doc["entries"])  # only relay.ch has it
    with parallel_verify.proven_for(doc, 2, 2) as proofs:
        proven = proofs.drain()
    every = _envelopes(doc["entries"]) | _envelopes(ch["entries"])
    assert len(proven) == len(every)
    serial = rendered(doc, 1)
    assert '"relay.ae"' in serial
    for workers, chunk in ((2, 1), (2, 3), (3, None)):
        assert rendered(doc, workers, chunk) == serial
    long = {"format": doc["format"], "entries": [], "relays": [{"entries": [{}] * 2000}]}
    assert parallel_verify.workers_for(long, 3) == 3
