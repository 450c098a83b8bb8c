"""Link tests: the station's signed pings on the roster's schedule, pongs, and round trips.

Every ``link_test_seconds`` a ping per channel goes to the relay, which forwards it
to the channel's stations; each answers with a pong. What a station hears updates
its link boards (the escalation rules turn board changes into alarms and notices).
Once an hour a link test goes into the log as well, as a record of the line's upkeep;
when the last one was logged is kept in the store, so a restart does not log another
before the hour is up.

With several relays every relay's link sends its own pings (``tick(relay)``), and
what is heard through a relay counts for that relay's path as well as for the party:
a pong answers only a ping sent through the relay it came back through, so a round
trip is one path's. A party is up if any path is up (the channel's board hears it
through any relay); each path's board says which relay carries its link tests. The
hourly logged test stays one per channel: like every envelope it is posted through
every relay, so each relay's log records it (and the path audit names one that does
not); one per path would only repeat it in every log.

Only a fresh test is heard (see link.py): a pong to one of our open challenges, or a
ping within the clock bound with a nonce new from its sender. A stale or replayed one
is not answered, changes no board and no round trip, and counts on one alarm per
channel; a pong to no challenge of ours (one sent before a restart, or a late one) is
only logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .. import link as link_mod
from ..body import LinkTestRecord
from ..envelope import Kind, Precedence
from ..errors import HotlineError, UnknownKey
from ..frames import LinkKind, LinkTest
from ..keys import StationKey
from ..link import Challenges, Freshness, LinkBoard, LinkState, SeenPings
from . import outbox
from .alarms import Alarm, AlarmKind
from .linkhistory import HEARTBEAT_MS, HOUR_MS, KEEP_MS, LinkSample
from .state import Station

log = logging.getLogger("hotline.station")

LOGGED_EVERY_MS = 3600 * 1000
RETRY_LOGGED_MS = 2000  # a logged test that could not be sealed yet (a party not introduced)
_LOGGED_META = "linktest.logged_ms."  # + channel: when its last hourly test was logged


@dataclass(frozen=True)
class Tick:
    """What the shell does after a tick: send these link messages, wake the outbox."""

    send: list[LinkTest] = field(default_factory=list)
    queued: int = 0


class LinkTests:
    def __init__(self, st: Station, max_skew_ms: int = link_mod.MAX_CLOCK_SKEW_MS) -> None:
        self.st = st
        self._last_ping: dict[tuple[str, str | None], int] = {}  # (channel, relay)
        self._last_logged: dict[str, int] = {}
        self._challenges = Challenges()
        self._seen = SeenPings(max_skew_ms)

    def tick(self, relay: str | None = None) -> Tick:
        """Pings due now through ``relay`` (each relay's link asks for its own), and the
        hourly logged link test of each channel (once, whichever link asks first)."""
        st = self.st
        now = st.now_ms()
        send: list[LinkTest] = []
        queued = 0
        for channel in st.channels:
            interval_ms = st.roster.channel(channel).link_test_seconds * 1000
            if now - self._last_ping.get((channel, relay), 0) >= interval_ms:
                self._last_ping[(channel, relay)] = now
                ping = _make(LinkKind.PING, st.key, channel, now)
                open_ms = link_mod.CHALLENGE_INTERVALS * interval_ms
                self._challenges.issue(ping.nonce, channel, self._mono_ms(), open_ms, relay)
                send.append(ping)
            if self._logged_due(channel, now):
                logged = self._log_link_test(channel, now)
                self._last_logged[channel] = (
                    now if logged else now - LOGGED_EVERY_MS + RETRY_LOGGED_MS
                )
                queued += int(logged)
        return Tick(send, queued)

    def _mono_ms(self) -> float:
        return self.st.monotonic() * 1000

    def _logged_due(self, channel: str, now: int) -> bool:
        """Whether the channel's hourly logged test is due (the last one's time outlives
        restarts; one "in the future" after the clock was set back counts as due)."""
        if channel not in self._last_logged:
            stored = self.st.store.meta(_LOGGED_META + channel)
            self._last_logged[channel] = int(stored) if stored else now - LOGGED_EVERY_MS
        return not 0 <= now - self._last_logged[channel] < LOGGED_EVERY_MS

    def _log_link_test(self, channel: str, now: int) -> bool:
        try:
            with self.st.store.transaction():
                outbox.queue(
                    self.st,
                    channel,
                    LinkTestRecord(now),
                    kind=Kind.LINK_TEST,
                    precedence=Precedence.ROUTINE,
                )
                self.st.store.set_meta(_LOGGED_META + channel, str(now))
        except HotlineError as exc:
            log.info("hourly link test not logged yet: %s", exc)
            return False
        return True

    def on_link(self, link: LinkTest, relay: str | None = None) -> list[LinkTest]:
        """A link message ``relay`` forwarded: check it, note who we heard (and through
        which relay), answer pings (the answer goes back through the same relay)."""
        st = self.st
        channel = link.channel
        if channel not in st.channels:
            return []
        now = st.now_ms()
        try:
            sender = link_mod.check(link.to_dict(), st.keyring, now // 1000)
        except UnknownKey as exc:
            # A station the relay has not introduced yet (its certificate follows): not
            # a bad link test, only one heard too early. The next one will count.
            log.info("link test on %s from a station not known yet: %s", channel, exc)
            return []
        except HotlineError as exc:
            # One open alarm per channel however many arrive (it counts them).
            st.alarm(
                Alarm(
                    AlarmKind.VERIFICATION,
                    "bad-link-test",
                    level=2,
                    channel=channel,
                    subject="link test",
                    params={"channel": channel, "detail": str(exc)},
                )
            )
            return []
        party = sender.split("/", 1)[0]
        answer: list[LinkTest] = []
        rtt = None
        if link.kind == LinkKind.PING:
            if sender == st.ident:
                return []
            verdict = self._seen.admit(sender, link.nonce, link.sent_ms, now)
            if verdict == Freshness.FRESH:
                answer.append(_make(LinkKind.PONG, st.key, channel, now, link.nonce, sender))
        elif link.to == st.ident:
            verdict, rtt = self._challenges.answer(
                link.nonce, channel, sender, self._mono_ms(), relay
            )
            if verdict == Freshness.UNASKED and not self._seen.fresh_time(link.sent_ms, now):
                verdict = Freshness.STALE  # an old pong replayed: not merely a late one
        else:
            return []  # another station's answer: it proves nothing to us
        if verdict != Freshness.FRESH:
            self._not_heard(link, sender, verdict)
            return []
        board = st.boards[channel]
        if party != st.party and party in board.links:
            board.heard(party, sender, now, rtt)
            if rtt is not None:
                sample(st, channel, party, board.state_of(party, now), now, rtt, sender)
            path = st.path_boards.get(relay or "", {}).get(channel)
            if path is not None:
                path.heard(party, sender, now, rtt)
                if rtt is not None:
                    state = path.state_of(party, now)
                    sample(st, channel, party, state, now, rtt, sender, relay)
        return answer

    def _not_heard(self, link: LinkTest, sender: str, verdict: Freshness) -> None:
        """A link test that proves nothing now: it counts as missed, never as heard."""
        what = f"{link.kind.value} from {sender} on {link.channel} ({verdict.value})"
        if verdict == Freshness.UNASKED:
            log.info("link test %s: answers no open challenge of ours", what)
            return
        # One open alarm per channel however many arrive (it counts them).
        self.st.alarm(
            Alarm(
                AlarmKind.VERIFICATION,
                "stale-link-test",
                level=2,
                channel=link.channel,
                subject="stale link test",
                params={
                    "link": link.kind.value,
                    "sender": sender,
                    "channel": link.channel,
                    "verdict": verdict.value,
                    "sent_ms": link.sent_ms,
                },
            )
        )


def _make(
    kind: LinkKind,
    key: StationKey,
    channel: str,
    now_ms: int,
    nonce: str | None = None,
    to: str | None = None,
) -> LinkTest:
    """A signed link message of ours, as the frame carries it."""
    return LinkTest.from_dict(link_mod.make(kind.value, key, channel, now_ms, nonce, to))


def sample(
    st: Station,
    channel: str,
    party: str,
    state: LinkState,
    now_ms: int,
    rtt_ms: float | None = None,
    station: str | None = None,
    relay: str | None = None,
) -> None:
    """Keep one link-history sample (a change of state, or an answered link test), of
    the party or (``relay``) of its path through one relay."""
    with st.store.transaction():
        st.store.add_link_sample(
            LinkSample(channel, party, now_ms, str(state), rtt_ms, station, relay)
        )
    st.sampled_ms[(channel, party, relay)] = now_ms


def heartbeat(st: Station, now_ms: int) -> None:
    """A sample of each party's state (and each path's) once a minute (so a gap in
    samples means this station was not running), and old samples deleted once an hour."""
    boards: list[tuple[str | None, dict[str, LinkBoard]]] = [(None, st.boards)]
    boards += list(st.path_boards.items())
    for relay, by_channel in boards:
        for channel, board in by_channel.items():
            for party, link in board.links.items():
                if now_ms - st.sampled_ms.get((channel, party, relay), 0) >= HEARTBEAT_MS:
                    sample(st, channel, party, link.state, now_ms, relay=relay)
    if now_ms - st.pruned_ms >= HOUR_MS:
        with st.store.transaction():
            st.store.prune_link_samples(now_ms - KEEP_MS)
        st.pruned_ms = now_ms


def board_view(st: Station, now_ms: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Per channel and party: its link (heard through any relay) and, with several
    relays, ``paths``: its link through each relay, by relay name."""
    out = {channel: board.view(now_ms) for channel, board in st.boards.items()}
    for relay, by_channel in st.path_boards.items():
        for channel, board in by_channel.items():
            for party in board.links:
                paths = out[channel][party].setdefault("paths", {})
                paths[relay] = board.party_view(party, now_ms)
    return out
