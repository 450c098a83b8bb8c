"""Every class of bad input gets its own error, and nothing stored changes."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from hotline import frames
from hotline.envelope import ZERO_HASH, Kind, Precedence, seal
from hotline.home import load_roster, load_station
from hotline.keys import KeyRing, PartyKey, StationCertificate, StationKey
from hotline.notes import b64, parse_note

from .netutil import PASSPHRASE, Cluster, login, wait_for

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, relay_database_module: str | None
) -> Iterator[Cluster]:
    c = Cluster(
        tmp_path_factory.mktemp("bad"), relay_args=("--rate", "200"), database=relay_database_module
    ).start()
    c.send("us/us-1", "us-ru", "a real message")
    wait_for(lambda: len(c.inbox("ru/ru-1")) == 1, what="baseline delivered")
    c.settle()
    yield c
    c.close()


def _snapshot(c: Cluster) -> str:
    """A digest of everything the relay has stored (cosignatures aside: stations add them)."""
    h = hashlib.sha256()
    with c.relay_db() as db:
        for table in ("entry", "node", "sender", "channel"):
            for row in db.execute(f"SELECT * FROM {table} ORDER BY 1, 2"):
                h.update(repr(row).encode())
        for channel, size, note in db.execute("SELECT * FROM checkpoint ORDER BY 1, 2"):
            h.update(repr((channel, size, parse_note(bytes(note)).text)).encode())
    return h.hexdigest()


def _station(c: Cluster, ident: str) -> StationKey:
    roster = load_roster(c.net.relay_dir / "roster.note")
    key, _ = load_station(c.net.stations[ident], PASSPHRASE, roster)
    return key


Reply = frames.Accepted | frames.Certificates | frames.Pong | frames.Ok | frames.ErrorReply


def _next(ws: ClientConnection, timeout: float = 10) -> frames.RelayFrame:
    return frames.decode_relay_frame(ws.recv(timeout=timeout))


def _reply(ws: ClientConnection, rid: frames.RequestId, timeout: float = 10) -> Reply:
    """The answer to request ``rid`` (pushes and other frames are skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = _next(ws, timeout)
        if isinstance(frame, Reply) and frame.id == rid:
            return frame
    raise AssertionError(f"no reply to {rid}")


def _code(frame: frames.RelayFrame) -> str:
    assert isinstance(frame, frames.ErrorReply), frame
    return frame.code


def _nonce(ws: ClientConnection) -> bytes:
    challenge = _next(ws)
    assert isinstance(challenge, frames.Challenge), challenge
    return challenge.nonce


def test_pre_auth_garbage_and_bad_signatures_are_refused(cluster: Cluster) -> None:
    before = _snapshot(cluster)
    with connect(cluster.net.relay_url) as ws:
        ws.recv()
        ws.send("this is not json")
        assert _code(_next(ws)) == "malformed"
        with pytest.raises(ConnectionClosed):
            ws.recv()
    roster = load_roster(cluster.net.relay_dir / "roster.note")
    _, cert = load_station(cluster.net.stations["us/us-1"], PASSPHRASE, roster)
    with connect(cluster.net.relay_url) as ws:
        ws.recv()
        ws.send(frames.encode_frame(frames.Hello("us/us-1", cert.encode(), bytes(64))))
        assert _code(_next(ws)) == "not_authorized"
    # A certificate not signed by the party's root (a self-made "us" station).
    fake_root = PartyKey.generate("us")
    fake = StationKey.generate("us", "us-9")
    fake_cert = fake_root.certify(fake, int(time.time()) - 10, int(time.time()) + 100)
    with connect(cluster.net.relay_url) as ws:
        nonce = _nonce(ws)
        rh = hashlib.sha256(roster.encode()).digest()
        signature = fake.signing.sign(frames.auth_message(nonce, "us/us-9", rh))
        ws.send(frames.encode_frame(frames.Hello("us/us-9", fake_cert.encode(), signature)))
        assert _code(_next(ws)) == "bad_signature"
    assert _snapshot(cluster) == before


def test_bad_frames_and_envelopes_get_specific_errors_and_change_nothing(cluster: Cluster) -> None:
    before = _snapshot(cluster)
    us = _station(cluster, "us/us-1")
    with login(cluster, "us/us-1") as ws:
        certs = _reply_certs(ws, cluster)
        now = int(time.time() * 1000)

        def post(rid: str, raw: bytes) -> Reply:
            ws.send(frames.encode_frame(frames.Post(raw, id=rid)))
            return _reply(ws, rid)

        # Deliberately malformed input, so written by hand.
        ws.send("{not json")
        assert _code(_next(ws)) == "malformed"
        ws.send(json.dumps({"op": "post", "id": "big", "envelope": "A" * (frames.MAX_FRAME + 10)}))
        assert _code(_next(ws)) == "too_large"  # refused before parsing: no id
        ws.send(json.dumps({"op": "nonsense", "id": "n"}))
        assert _code(_reply(ws, "n")) == "malformed"
        assert _code(post("garbage", b"HLEN\x01garbage")) == "malformed"
        # Signed by us, claiming to be ru's station: not authorized.
        ru_claim = StationKey("ru", "ru-1", us.signing, us.encryption)
        raw = seal(
            b"x",
            sender=ru_claim,
            channel="us-ru",
            seq=1,
            prev=ZERO_HASH,
            recipients=certs,
            created_ms=now,
        )
        assert _code(post("impostor", raw)) == "not_authorized"
        # A channel us is not in does not exist for it.
        raw = seal(
            b"x",
            sender=us,
            channel="ru-ua",
            seq=1,
            prev=ZERO_HASH,
            recipients=certs,
            created_ms=now,
        )
        assert _code(post("nochannel", raw)) == "malformed"
        # One flipped byte in the signature.
        raw = bytearray(
            seal(
                b"x",
                sender=us,
                channel="us-ru",
                seq=2,
                prev=hashlib.sha256(b"1").digest(),
                recipients=certs,
                created_ms=now,
                kind=Kind.MESSAGE,
                precedence=Precedence.ROUTINE,
            )
        )
        raw[-1] ^= 1
        assert _code(post("badsig", bytes(raw))) == "bad_signature"
        # Sequence 1 again with other content: a replay; sequence 9 after 1: a gap.
        raw = seal(
            b"again",
            sender=us,
            channel="us-ru",
            seq=1,
            prev=ZERO_HASH,
            recipients=certs,
            created_ms=now,
        )
        assert _code(post("replay", raw)) == "replay"
        raw = seal(
            b"gap",
            sender=us,
            channel="us-ru",
            seq=9,
            prev=hashlib.sha256(b"?").digest(),
            recipients=certs,
            created_ms=now,
        )
        assert _code(post("gap", raw)) == "chain_gap"
        # Reading a channel it is not in.
        with login(cluster, "ua/ua-1") as ws2:
            ws2.send(frames.encode_frame(frames.Sync("us-ru", 0, id="s")))
            assert _code(_reply(ws2, "s")) == "not_authorized"
    assert _snapshot(cluster) == before


def test_resending_an_accepted_envelope_returns_the_original_acceptance(cluster: Cluster) -> None:
    with cluster.station_store("us/us-1") as store:
        first = store.outbox_item("us-ru", 1)
    assert first is not None
    raw, idx = first.envelope, first.index
    before = _snapshot(cluster)
    with login(cluster, "us/us-1") as ws:
        for attempt in range(3):
            ws.send(frames.encode_frame(frames.Post(bytes(raw), id=f"dup{attempt}")))
            answer = _reply(ws, f"dup{attempt}")
            assert isinstance(answer, frames.Accepted) and answer.duplicate is True
            assert answer.index == idx
    assert _snapshot(cluster) == before


def test_a_flood_is_rate_limited_and_the_relay_stays_up(cluster: Cluster) -> None:
    before = _snapshot(cluster)
    with login(cluster, "ua/ua-1") as ws:
        for i in range(1500):
            ws.send(frames.encode_frame(frames.Ping(id=f"p{i}")))
        codes: list[str] = []
        deadline = time.monotonic() + 20
        while len(codes) < 1500 and time.monotonic() < deadline:
            frame = _next(ws)
            if isinstance(frame, Reply) and str(frame.id).startswith("p"):
                codes.append(frame.code if isinstance(frame, frames.ErrorReply) else frame.op)
    assert "rate_limited" in codes and "pong" in codes
    health = httpx.get(f"http://127.0.0.1:{cluster.net.relay_port}/health")
    assert health.json()["ok"] is True
    assert _snapshot(cluster) == before
    log = (cluster.net.root / "relay.log").read_text()
    assert "a real message" not in log  # no plaintext in the relay's log


def _reply_certs(ws: ClientConnection, c: Cluster) -> list[StationCertificate]:
    """Every station certificate the relay knows, checked against the roster's roots."""
    ring = KeyRing(load_roster(c.net.relay_dir / "roster.note").roots())
    ws.send(frames.encode_frame(frames.GetCertificates(id="c")))
    answer = _reply(ws, "c")
    assert isinstance(answer, frames.Certificates), answer
    return [ring.add_certificate(note) for note in answer.certificates]


def _signed_get(c: Cluster, ident: str, path: str, params: dict[str, str]) -> httpx.Response:
    from hotline.relay.core import http_auth_message

    key = _station(c, ident)
    stamp = int(time.time())
    query = str(httpx.QueryParams(params))
    sig = key.signing.sign(http_auth_message("GET", path, query, stamp))
    return httpx.get(
        f"http://127.0.0.1:{c.net.relay_port}{path}",
        params=params,
        headers={"Authorization": f"Hotline station={ident},time={stamp},signature={b64(sig)}"},
    )


def test_http_entries_need_a_member_station_signature(cluster: Cluster) -> None:
    path = "/channels/us-ru/entries"
    plain = httpx.get(f"http://127.0.0.1:{cluster.net.relay_port}{path}")
    assert plain.status_code == 401 and plain.json()["error"]["code"] == "unauthenticated"
    outsider = _signed_get(cluster, "ua/ua-1", path, {"after": "0"})
    assert outsider.status_code == 403
    member = _signed_get(cluster, "ru/ru-1", path, {"after": "0"})
    assert member.status_code == 200
    assert member.json()["entries"][0]["index"] == 0
    spec = httpx.get(f"http://127.0.0.1:{cluster.net.relay_port}/openapi.json").json()
    assert path.replace("us-ru", "{channel}") in spec["paths"]
