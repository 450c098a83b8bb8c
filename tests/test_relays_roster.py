"""A roster naming two or more independent relays (issue 13 part 2): each its own key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hotline.errors import Malformed, NotAuthorized
from hotline.keys import PartyKey
from hotline.logcheck import LogContext
from hotline.notes import NoteSigner
from hotline.relay.core import RelayCore
from hotline.relay.sqlite import SqliteRelayStore
from hotline.roster import Roster, open_roster, roster_text, sign_roster


def _signer(name: str) -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.generate())


def _roster(relay_keys: list[str] | str) -> tuple[Roster, dict[str, PartyKey]]:
    parties = {p: PartyKey.generate(p) for p in ("us", "ru")}
    text = roster_text(
        "talks",
        {p: k.public_keys() for p, k in parties.items()},
        {"us-ru": {"members": ["us", "ru"]}},
        relay_keys,
    )
    note = sign_roster(text, parties["us"])
    note = sign_roster(note, parties["ru"])
    return open_roster(note.encode()), parties


def test_two_relays_each_with_its_key() -> None:
    ae, ch = _signer("relay.ae"), _signer("relay.ch")
    roster, _ = _roster([ae.verifier.encode(), ch.verifier.encode()])
    assert roster.relay_names() == ["relay.ae", "relay.ch"]
    assert roster.relay_key == ae.verifier  # what a one-relay reader takes
    assert roster.relay("relay.ch") == ch.verifier
    with pytest.raises(Malformed, match="no relay"):
        roster.relay("relay.zz")
    # Each relay's log of a channel is checked against that relay's key alone.
    ctx = LogContext.of(roster, "us-ru", None, "relay.ch")  # type: ignore[arg-type]
    assert ctx.relay_key == ch.verifier and ctx.origin == "hotline/talks/us-ru"


def test_one_relay_roster_reads_as_one_relay() -> None:
    ae = _signer("relay.ae")
    roster, _ = _roster(ae.verifier.encode())
    assert roster.relays == (ae.verifier,) and roster.relay_names() == ["relay.ae"]
    assert "relays" not in json.loads(roster.note.text.split("\n", 1)[1])


@pytest.mark.parametrize(
    "bad",
    [
        lambda a, c: [c, a],  # the first listed must be relay_key
        lambda a, c: [a, a],  # one name twice
        lambda a, c: [a] * 9,  # too many
        lambda a, c: "not a list",
    ],
)
def test_bad_relay_lists_are_refused(bad: object) -> None:
    ae, ch = _signer("relay.ae"), _signer("relay.ch")
    parties = {p: PartyKey.generate(p) for p in ("us", "ru")}
    text = roster_text(
        "talks",
        {p: k.public_keys() for p, k in parties.items()},
        {"us-ru": {"members": ["us", "ru"]}},
        ae.verifier.encode(),
    )
    head, body = text.split("\n", 1)
    data = json.loads(body)
    data["relays"] = bad(ae.verifier.encode(), ch.verifier.encode())  # type: ignore[operator]
    note = sign_roster(head + "\n" + json.dumps(data, separators=(",", ":")) + "\n", parties["us"])
    note = sign_roster(note, parties["ru"])
    with pytest.raises(Malformed, match="relay"):
        open_roster(note.encode())


def test_each_relay_serves_with_its_own_key(tmp_path: Path) -> None:
    ae, ch, other = _signer("relay.ae"), _signer("relay.ch"), _signer("relay.xx")
    roster, _ = _roster([ae.verifier.encode(), ch.verifier.encode()])
    for key in (ae, ch):
        RelayCore(SqliteRelayStore(tmp_path / f"{key.name}.db"), roster, key)
    with pytest.raises(NotAuthorized):
        RelayCore(SqliteRelayStore(tmp_path / "other.db"), roster, other)
