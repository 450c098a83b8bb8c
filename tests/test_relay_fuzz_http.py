"""The relay's HTTP API, fuzzed from its own OpenAPI document (schemathesis) on a real
relay process: every answer is one the document describes, never a 5xx, never a crash."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from hotline import body, frames
from hotline.envelope import ZERO_HASH, envelope_hash, seal
from hotline.home import load_roster, load_station
from hotline.relay.openapi import OPENAPI

from .netutil import PASSPHRASE, Cluster, login

pytestmark = pytest.mark.network

schema = schemathesis.openapi.from_dict(OPENAPI)
EXAMPLES = 40  # per operation, twice (as generated, then in a real channel): well under a minute
# A request the document allows may still name no channel of the roster, or a size beyond
# the log: the relay refuses it with 400 (``malformed``), which that check would call wrong.
EXCLUDED = [positive_data_acceptance]


def _post_some(c: Cluster, ident: str, channel: str, n: int) -> None:
    """A few entries, so that proofs and entries have something to answer with."""
    roster = load_roster(c.net.relay_dir / "roster.note")
    key, _ = load_station(c.net.stations[ident], PASSPHRASE, roster)
    certs = [load_station(d, PASSPHRASE, roster)[1] for d in c.net.stations.values()]
    members = roster.channel(channel).members
    prev = ZERO_HASH
    with login(c, ident) as ws:
        for seq in range(1, n + 1):
            raw = seal(
                body.encode(body.text(f"fuzz {seq}", "en")),
                sender=key,
                channel=channel,
                seq=seq,
                prev=prev,
                recipients=[cert for cert in certs if cert.party in members],
                created_ms=int(time.time() * 1000),
            )
            prev = envelope_hash(raw)
            ws.send(frames.encode_frame(frames.Post(raw, seq)))
            while (frame := json.loads(ws.recv(timeout=10))).get("id") != seq:
                pass
            assert frame["op"] == "accepted", frame


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("fuzz"))
    with (c.net.relay_dir / "relay.toml").open("a") as f:
        # Generous, so that the fuzzer reaches the handlers (the limit has its own test).
        f.write("\n[limits]\nhttp_rate = 10000\nhttp_burst = 10000\n")
    c.start_relay()
    _post_some(c, "us/us-1", "us-ru", 5)
    yield c
    c.close()
    log = Path(c.relay.log).read_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]


@schema.parametrize()
@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
def test_relay_http_api_answers_as_documented(case: schemathesis.Case, relay: Cluster) -> None:
    base = f"http://127.0.0.1:{relay.net.relay_port}"
    case.call_and_validate(base_url=base, excluded_checks=EXCLUDED)
    if "channel" in (case.path_parameters or {}):
        case.path_parameters = {**(case.path_parameters or {}), "channel": "us-ru"}
        case.call_and_validate(base_url=base, excluded_checks=EXCLUDED)


def test_the_relay_is_still_up_after_fuzzing(relay: Cluster) -> None:
    health = httpx.get(f"http://127.0.0.1:{relay.net.relay_port}/health")
    # 5 envelopes after us-1's certificate (a key event the relay logged when it connected)
    assert health.status_code == 200 and health.json()["channels"]["us-ru"] == 1 + 5
