"""Which relay URL to try next: several processes of the same host's relay, one backoff each.

A station may be given several URLs of one relay (processes sharing one database, so
one log). It stays on the one that works; when it fails, it moves to the next whose own
backoff has run out, and waits only when every URL is backing off. A URL's backoff
doubles with each failure (with jitter) up to a limit and starts over once a session
with it was established. Pure: the clock and the randomness are passed in.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import Malformed

FIRST_S = 0.2  # the first wait after a URL fails


@dataclass
class _Url:
    url: str
    backoff: float = FIRST_S
    not_before: float = 0.0  # monotonic time before which it is not tried again
    before_open: float = FIRST_S  # its backoff before the last connection opened


class Failover:
    def __init__(
        self,
        urls: Sequence[str],
        most: float = 5.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not urls:
            raise Malformed("a station needs at least one relay URL", field="relay")
        if len(set(urls)) != len(urls):
            raise Malformed("a relay URL is given twice", field="relay")
        self._urls = [_Url(u) for u in urls]
        self._at = 0
        self._most = most
        self._rand = rand

    @property
    def urls(self) -> list[str]:
        return [u.url for u in self._urls]

    @property
    def current(self) -> str:
        """The URL in use (or tried next)."""
        return self._urls[self._at].url

    def next(self, now: float) -> tuple[str, float]:
        """The URL to try and how long to wait before trying it: the current one or the
        first after it that is not backing off, else the one whose wait ends first."""
        n = len(self._urls)
        for step in range(n):
            u = self._urls[(self._at + step) % n]
            if u.not_before <= now:
                self._at = (self._at + step) % n
                return u.url, 0.0
        self._at = min(range(n), key=lambda i: self._urls[i].not_before)
        u = self._urls[self._at]
        return u.url, u.not_before - now

    def opened(self, url: str) -> None:
        """A connection to ``url`` opened: its backoff starts over."""
        u = self._find(url)
        u.before_open, u.backoff = u.backoff, FIRST_S

    def failed(self, url: str, now: float, *, protocol: bool = False) -> None:
        """``url`` failed (``protocol``: it broke the protocol, so the backoff it had
        before the connection opened counts, not a fresh one); move on to the next."""
        u = self._find(url)
        if protocol:
            u.backoff = u.before_open
        u.not_before = now + u.backoff * (0.5 + self._rand())
        u.backoff = min(self._most, u.backoff * 2)
        if self._urls[self._at] is u:
            self._at = (self._at + 1) % len(self._urls)

    def _find(self, url: str) -> _Url:
        for u in self._urls:
            if u.url == url:
                return u
        raise KeyError(url)
