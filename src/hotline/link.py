"""Link tests: signed pings between stations, and the link board (pure).

A station sends a ping per channel every ``link_test_seconds``; the relay
forwards it to the channel's connected stations, which answer with a pong. Both
are signed by the station key and are *not* logged: only link state changes and
one link test per hour go into the channel's log (as notice / link-test envelopes),
so the log grows by at most a few entries per hour per station, not by every ping.

Per party and channel the board keeps state (up / degraded / down), last contact,
last round trip and missed tests: degraded after one missed interval, down after
``down_after`` intervals of silence.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import BadSignature, Malformed
from .keys import KeyRing, StationKey, canonical_json
from .notes import b64, unb64

CONTEXT = b"hotline-link/v1\n"


def _signed_part(msg: dict[str, Any]) -> bytes:
    return CONTEXT + canonical_json({k: v for k, v in msg.items() if k != "signature"}).encode()


def make(
    kind: str,
    key: StationKey,
    channel: str,
    now_ms: int,
    nonce: str | None = None,
    to: str | None = None,
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "kind": kind,
        "channel": channel,
        "from": key.ident,
        "sent_ms": now_ms,
        "nonce": nonce or secrets.token_hex(8),
    }
    if to:
        msg["to"] = to
    msg["signature"] = b64(key.signing.sign(_signed_part(msg)))
    return msg


def check(msg: dict[str, Any], keyring: KeyRing, now_s: int) -> str:
    """Verify a link message's signature; return the sender station."""
    try:
        sender = str(msg["from"])
        if msg["kind"] not in ("ping", "pong"):
            raise Malformed("unknown link message kind", field="kind")
        signature = unb64(str(msg["signature"]), "signature")
        json.dumps(msg)
    except (KeyError, TypeError) as exc:
        raise Malformed(f"link message lacks {exc}", field="link") from exc
    for cert in keyring.station(sender, now_s):
        try:
            Ed25519PublicKey.from_public_bytes(cert.signing).verify(signature, _signed_part(msg))
            return sender
        except InvalidSignature:
            continue
    raise BadSignature(f"link message from {sender} does not verify")


class LinkState(StrEnum):
    """A party's link as this station sees it (stored and shown by these values)."""

    UNKNOWN = "unknown"
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass
class PartyLink:
    last_contact_ms: int | None = None
    rtt_ms: float | None = None
    station: str | None = None
    state: LinkState = LinkState.UNKNOWN


@dataclass
class LinkBoard:
    """Link state of every other party in one channel."""

    channel: str
    parties: list[str]
    interval_s: int
    down_after: int
    started_ms: int
    links: dict[str, PartyLink] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for p in self.parties:
            self.links.setdefault(p, PartyLink())

    def heard(self, party: str, station: str, now_ms: int, rtt_ms: float | None = None) -> None:
        link = self.links.setdefault(party, PartyLink())
        link.last_contact_ms = now_ms
        link.station = station
        if rtt_ms is not None:
            link.rtt_ms = rtt_ms

    def missed(self, party: str, now_ms: int) -> int:
        """Link tests missed: one per interval of silence beyond the first half-interval."""
        since = self.links[party].last_contact_ms or self.started_ms
        interval = self.interval_s * 1000
        return max(0, (now_ms - since - interval // 2) // interval)

    def state_of(self, party: str, now_ms: int) -> LinkState:
        missed = self.missed(party, now_ms)
        if self.links[party].last_contact_ms is None and missed < self.down_after:
            return LinkState.UNKNOWN
        if missed >= self.down_after:
            return LinkState.DOWN
        if missed >= 1:
            return LinkState.DEGRADED
        return LinkState.UP

    def update(self, now_ms: int) -> list[tuple[str, LinkState, LinkState]]:
        """Recompute states; return (party, old, new) for each change."""
        changes = []
        for party, link in self.links.items():
            new = self.state_of(party, now_ms)
            if new != link.state:
                changes.append((party, link.state, new))
                link.state = new
        return changes

    def view(self, now_ms: int) -> dict[str, dict[str, Any]]:
        out = {}
        for party, link in self.links.items():
            out[party] = {
                "state": link.state,
                "last_contact_ms": link.last_contact_ms,
                "rtt_ms": link.rtt_ms,
                "missed": self.missed(party, now_ms),
                "station": link.station,
            }
        return out
