"""The relay's rules without a server: signed HTTP reads, who hears a link test,
what a sync answers, and which HTTP status an error gets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from hotline import frames
from hotline.envelope import ZERO_HASH, decrypt_with_key, envelope_hash, parse, seal
from hotline.errors import (
    BadInput,
    BadSignature,
    DecryptionFailed,
    ForkDetected,
    HotlineError,
    Malformed,
    NotAuthorized,
    RateLimited,
    Unauthenticated,
    Unavailable,
    UnknownKey,
    VerificationFailed,
    http_status,
)
from hotline.frames import LinkKind, LinkTest
from hotline.leaf import LeafKind
from hotline.notes import b64
from hotline.relay.core import (
    HTTP_AUTH_SKEW,
    Acceptance,
    RelayCore,
    Subscriptions,
    http_auth_message,
)
from hotline.relay.sqlite import SqliteRelayStore

from .conftest import World


def _now(world: World) -> int:
    """A time at which every certificate of the world is valid (on the relay's clock)."""
    return world.certs["us"].not_before + 3600


@pytest.fixture
def core(world: World, tmp_path: Path) -> RelayCore:
    now = _now(world)
    relay = RelayCore(SqliteRelayStore(tmp_path / "r.db"), world.roster, world.relay, lambda: now)
    for cert in world.certs.values():
        relay.register_certificate(cert.encode())
    return relay


def _header(world: World, party: str, query: str, stamp: int, path: str = "/c") -> str:
    key = world.stations[party]
    sig = key.signing.sign(http_auth_message("GET", path, query, stamp))
    return f"Hotline station={key.ident},time={stamp},signature={b64(sig)}"


def test_a_signed_http_read_names_its_station_and_nothing_else_passes(
    world: World, core: RelayCore
) -> None:
    now = _now(world)
    good = _header(world, "ru", "after=0", now)
    assert core.authenticate_request(good, "GET", "/c", "after=0").ident == "ru/ru-1"
    refused = [
        "",
        "Bearer x",
        good.replace(f"time={now}", "time=١٢"),  # digits, but not ASCII ones
        good.replace(f"time={now}", f"time={now}{'9' * 40}"),
        _header(world, "ru", "after=0", now - HTTP_AUTH_SKEW - 1),
        _header(world, "ru", "after=0", now + HTTP_AUTH_SKEW + 1),
    ]
    for header in refused:
        with pytest.raises(NotAuthorized):
            core.authenticate_request(header, "GET", "/c", "after=0")
    # Signed for another query, another path, or as another station.
    for method, path, query in [("GET", "/c", "after=5"), ("GET", "/d", "after=0")]:
        with pytest.raises(NotAuthorized, match="does not verify"):
            core.authenticate_request(good, method, path, query)
    with pytest.raises(NotAuthorized, match="does not verify"):
        core.authenticate_request(good.replace("ru/ru-1", "us/us-1"), "GET", "/c", "after=0")
    with pytest.raises(Malformed):
        core.authenticate_request(good.split("signature=")[0] + "signature=!!", "GET", "/c", "")


def _link(world: World, sender: str, channel: str) -> LinkTest:
    return LinkTest(LinkKind.PING, channel, world.stations[sender].ident, 1, "n", bytes(64))


def test_a_link_test_is_forwarded_only_from_its_own_station_to_its_channel(
    world: World, core: RelayCore
) -> None:
    us, ua = world.certs["us"], world.certs["ua"]
    assert core.link_channel(us, _link(world, "us", "us-ru")) == "us-ru"
    with pytest.raises(NotAuthorized, match="connected station"):
        core.link_channel(us, _link(world, "ru", "us-ru"))  # as someone else
    with pytest.raises(NotAuthorized):
        core.link_channel(ua, _link(world, "ua", "us-ru"))  # a channel ua is not in
    with pytest.raises(Malformed):
        core.link_channel(us, _link(world, "us", "nowhere"))

    subs: Subscriptions[str] = Subscriptions()
    subs.join("us-1", ["us-ru", "us-ru-ua"])
    subs.join("ru-1", ["us-ru", "us-ru-ua"])
    subs.join("ua-1", ["us-ru-ua"])
    assert sorted(subs.link_recipients("us-ru", "us-1")) == ["ru-1"]
    assert sorted(subs.link_recipients("us-ru-ua", "us-1")) == ["ru-1", "ua-1"]
    subs.leave("ru-1", ["us-ru", "us-ru-ua"])
    assert subs.link_recipients("us-ru", "us-1") == []
    assert subs.online() == {"us-1", "ua-1"}


def _chain(world: World, count: int, body: bytes = b"x") -> list[bytes]:
    """us's first ``count`` envelopes in us-ru, each linked to the one before."""
    recipients = [world.certs["us"], world.certs["ru"]]
    prev, out = ZERO_HASH, []
    for seq in range(1, count + 1):
        raw = seal(
            body,
            sender=world.stations["us"],
            channel="us-ru",
            seq=seq,
            prev=prev,
            recipients=recipients,
            created_ms=_now(world) * 1000,
        )
        prev = envelope_hash(raw)
        out.append(raw)
    return out


def _post(world: World, core: RelayCore, count: int) -> list[Acceptance]:
    out = []
    for raw in _chain(world, count):
        (result,) = core.accept([("us/us-1", raw)])
        assert isinstance(result, Acceptance), result
        out.append(result)
    return out


def test_a_sync_answers_entries_from_its_start_with_a_proof_to_a_checkpoint(
    world: World, core: RelayCore
) -> None:
    accepted = _post(world, core, 3)  # at 2, 3, 4: after the certificates of us and ru
    assert [a.entry.index for a in accepted] == [2, 3, 4]
    assert [e.kind for e in core.sync("us-ru", 0, None).entries[:3]] == [
        LeafKind.KEY_EVENT,
        LeafKind.KEY_EVENT,
        LeafKind.ENVELOPE,
    ]
    frame = core.sync("us-ru", 3, "s")
    assert frame.id == "s" and frame.start == 3 and not frame.more
    assert [e.index for e in frame.entries] == [3, 4]
    assert frame.entries[0].envelope == accepted[1].entry.envelope
    assert frame.consistency == tuple(core.tree("us-ru").consistency_proof(3, 5))
    assert frames.decode_relay_frame(frames.encode_frame(frame)) == frame
    assert core.sync("us-ru", 5, None).entries == ()
    with pytest.raises(Malformed) as info:
        core.sync("us-ru", 6, None)
    assert info.value.field == "from"
    # A batch's new entries are pushed once per channel; an answer carries its proof.
    pushes = core.pushes(list(accepted))
    assert [(p.channel, p.start, len(p.entries)) for p in pushes] == [("us-ru", 2, 3)]
    reply = accepted[2].frame("post:us-ru:3")
    assert reply.index == 4 and reply.proof == tuple(accepted[2].proof)


def test_errors_get_the_http_status_of_their_family() -> None:
    cases: list[tuple[HotlineError, int]] = [
        (Malformed("x"), 400),
        (BadInput("x"), 400),
        (BadSignature("x"), 400),
        (ForkDetected("x"), 400),
        (HotlineError("x"), 400),
        (NotAuthorized("token is wrong, and the message says so"), 403),
        (UnknownKey("x"), 403),
        (Unauthenticated("x"), 401),
        (RateLimited("x"), 429),
        (Unavailable("x"), 503),
    ]
    for exc, status in cases:
        assert http_status(exc) == status, exc


def test_a_body_that_does_not_decrypt_is_a_decryption_failure(world: World) -> None:
    raw = seal(
        b"secret",
        sender=world.stations["us"],
        channel="us-ru",
        seq=1,
        prev=ZERO_HASH,
        recipients=[world.certs["ru"]],
        created_ms=0,
    )
    with pytest.raises(DecryptionFailed) as info:
        decrypt_with_key(parse(raw), os.urandom(32))
    assert isinstance(info.value, VerificationFailed)
    assert not isinstance(info.value, BadSignature)
    assert info.value.code == "decryption_failed" and info.value.channel == "us-ru"


def test_a_batch_larger_than_one_push_frame_is_logged_signed_and_pushed_in_one_transaction(
    world: World, core: RelayCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each piece of the push of a large batch ends at a checkpoint signed with the
    batch, not on demand afterwards (one more transaction and durable commit a piece)."""
    batch = [("us/us-1", raw) for raw in _chain(world, 120, os.urandom(8 * 1024))]
    transactions = 0
    opened = core.store.transaction

    def counted() -> Any:
        nonlocal transactions
        transactions += 1
        return opened()

    monkeypatch.setattr(core.store, "transaction", counted)
    results = core.accept(batch)
    pushes = core.pushes(results)
    assert all(isinstance(r, Acceptance) for r in results)
    assert len(pushes) > 1  # the batch does not fit one frame
    assert transactions == 1
    # Every piece still ends at the relay's signed checkpoint of its size, with a proof.
    for push in pushes:
        size = push.start + len(push.entries)
        assert push.checkpoint == core.store.checkpoint("us-ru", size)
        assert push.entries[-1].index == size - 1
