"""Link tests: signed pings between stations, and the link board (pure).

A station sends a ping per channel every ``link_test_seconds``; the relay
forwards it to the channel's connected stations, which answer with a pong. Both
are signed by the station key and are *not* logged: only link state changes and
one link test per hour go into the channel's log (as notice / link-test envelopes),
so the log grows by at most a few entries per hour per station, not by every ping.

Per party and channel the board keeps state (up / degraded / down), last contact,
last round trip and missed tests: degraded after one missed interval, down after
``down_after`` intervals of silence. With several relays a station keeps one board
per channel (a party heard through any relay) and one per relay path (heard through
that relay; a challenge answers only through the relay its ping went out on).

A signature proves who made a link test, not when: the relay could replay a day-old
ping to show a silent party as up. So a party is heard only from a *fresh* test
(``Challenges`` and ``SeenPings``): a pong answering a nonce this station issued
recently, once per responder, or a ping whose signed ``sent_ms`` is within
``MAX_CLOCK_SKEW_MS`` of our clock and whose nonce that sender has not used before.
Anything else counts as missed.
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
MAX_CLOCK_SKEW_MS = 60_000  # how far a ping's signed time may be off our clock
CHALLENGE_INTERVALS = 2  # a ping's nonce is open for this many link-test intervals
MAX_OPEN_CHALLENGES = 1000  # our pings awaiting pongs; beyond that the oldest close
MAX_SEEN_PER_SENDER = 4096  # ping nonces remembered per station within the skew bound


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


class Freshness(StrEnum):
    """Whether a link test proves its sender is there now; only ``FRESH`` is heard."""

    FRESH = "fresh"
    STALE = "stale"  # signed time too far from our clock
    REPLAYED = "replayed"  # a nonce already used (a ping) or already answered (a pong)
    UNASKED = "unasked"  # a pong to no open challenge of ours (never issued, or expired)
    FLOOD = "flood"  # more pings from one station within the bound than we remember


@dataclass
class _Challenge:
    channel: str
    sent_ms: float  # monotonic
    expires_ms: float  # monotonic
    answered: set[str] = field(default_factory=set)
    relay: str | None = None  # the relay the ping went through (with several relays)


@dataclass
class Challenges:
    """The nonces of our own pings, each open for a while; one answer per responder.

    Times are the station's monotonic clock in ms, so a wall-clock step cannot open or
    close a challenge, and round trips are measured on it. With several relays each
    ping goes through one relay, and only a pong through that relay answers it (a round
    trip is one path's)."""

    limit: int = MAX_OPEN_CHALLENGES
    _open: dict[str, _Challenge] = field(default_factory=dict)

    def issue(
        self, nonce: str, channel: str, now_ms: float, open_ms: float, relay: str | None = None
    ) -> None:
        """Open a challenge: the nonce of a ping we are sending now (through ``relay``)."""
        self.expire(now_ms)
        self._open[nonce] = _Challenge(channel, now_ms, now_ms + open_ms, relay=relay)
        while len(self._open) > self.limit:
            del self._open[next(iter(self._open))]  # insertion order: the oldest

    def answer(
        self,
        nonce: str,
        channel: str,
        responder: str,
        now_ms: float,
        relay: str | None = None,
    ) -> tuple[Freshness, float | None]:
        """Take a pong from ``responder`` (heard through ``relay``): its verdict, and the
        round trip if fresh."""
        self.expire(now_ms)
        challenge = self._open.get(nonce)
        if challenge is None or challenge.channel != channel or challenge.relay != relay:
            return Freshness.UNASKED, None
        if responder in challenge.answered:
            return Freshness.REPLAYED, None
        challenge.answered.add(responder)
        return Freshness.FRESH, now_ms - challenge.sent_ms

    def expire(self, now_ms: float) -> None:
        for nonce in [n for n, c in self._open.items() if c.expires_ms < now_ms]:
            del self._open[nonce]

    def __len__(self) -> int:
        return len(self._open)


@dataclass
class SeenPings:
    """A bounded replay cache: the nonces of pings heard per station, for as long as
    their signed time is within the bound (older ones fail the time check anyway)."""

    max_skew_ms: int = MAX_CLOCK_SKEW_MS
    per_sender: int = MAX_SEEN_PER_SENDER
    _seen: dict[str, dict[str, int]] = field(default_factory=dict)

    def admit(self, sender: str, nonce: str, sent_ms: int, now_ms: int) -> Freshness:
        """Whether a ping (its signature already checked) proves ``sender`` is there now."""
        if not self.fresh_time(sent_ms, now_ms):
            return Freshness.STALE
        seen = self._seen.setdefault(sender, {})
        for old in [n for n, t in seen.items() if now_ms - t > self.max_skew_ms]:
            del seen[old]
        if nonce in seen:
            return Freshness.REPLAYED
        if len(seen) >= self.per_sender:
            # Only the sender can make this many fresh pings; refusing hurts only it.
            return Freshness.FLOOD
        seen[nonce] = sent_ms
        return Freshness.FRESH

    def fresh_time(self, sent_ms: int, now_ms: int) -> bool:
        """Whether a signed time is within the bound of our clock."""
        return abs(sent_ms - now_ms) <= self.max_skew_ms


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
        return {party: self.party_view(party, now_ms) for party in self.links}

    def party_view(self, party: str, now_ms: int) -> dict[str, Any]:
        link = self.links[party]
        return {
            "state": link.state,
            "last_contact_ms": link.last_contact_ms,
            "rtt_ms": link.rtt_ms,
            "missed": self.missed(party, now_ms),
            "station": link.station,
        }
