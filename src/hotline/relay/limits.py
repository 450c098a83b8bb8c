"""The relay's resource limits: what one station or one address may cost it.

Each limit is a setting with a default; ``[limits]`` in relay.toml and
``HOTLINE_RELAY_<NAME>`` environment variables change them (docs/OPERATIONS.md).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import Malformed

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Defaults fit a relay of a few dozen stations on a small machine."""

    # Frames (JSON text) waiting to be sent on one connection; a reader that lets more
    # pile up is dropped and catches up with sync when it reconnects.
    send_queue_bytes: int = 8 * MIB
    # Posts of one connection accepted for the writer and not answered yet (count and
    # bytes); beyond either the relay stops reading that connection until it answers.
    posts_in_flight: int = 16
    post_bytes_in_flight: int = 2 * MIB
    # Authenticated connections of one station at once (a restart may briefly need two).
    connections_per_station: int = 4
    # Connections of one client address that have not finished the handshake yet.
    unauthenticated_per_address: int = 32
    # Seconds from the WebSocket opening to a verified hello.
    handshake_timeout: float = 10.0
    # Bytes of frames one station may send per second (all its connections together),
    # and their burst: beyond it the relay reads that station's frames no faster than
    # the rate (TCP backpressure; nothing parsed, nothing refused), so a flood of large
    # posts cannot take the relay's CPU from the others.
    station_bytes_per_second: int = 1 * MIB
    station_bytes_burst: int = 8 * MIB
    # Unauthenticated HTTP requests per second per client address, and their burst.
    http_rate: float = 50.0
    http_burst: float = 200.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if not getattr(self, f.name) > 0:
                raise Malformed(f"relay limit {f.name} must be positive", field=f.name)

    @classmethod
    def from_settings(
        cls, table: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> Limits:
        """Limits from relay.toml's ``[limits]`` table, then ``HOTLINE_RELAY_<NAME>``."""
        env = os.environ if env is None else env
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise Malformed(f"relay.toml [limits]: unknown setting {unknown[0]!r}", field="limits")
        values: dict[str, Any] = {}
        for name, f in known.items():
            raw = env.get(f"HOTLINE_RELAY_{name.upper()}", table.get(name))
            if raw is None:
                continue
            kind = int if f.type in ("int", int) else float
            try:
                if isinstance(raw, bool):
                    raise ValueError(raw)
                values[name] = kind(raw)
            except (TypeError, ValueError) as exc:
                raise Malformed(f"relay limit {name} must be a number", field=name) from exc
        return cls(**values)


class TokenBucket:
    """A rate limit: ``rate`` tokens per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.stamp = burst, clock()

    def refill(self) -> float:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens

    def take(self, amount: float = 1) -> bool:
        if self.refill() >= amount:
            self.tokens -= amount
            return True
        return False

    def charge(self, amount: float) -> float:
        """Spend ``amount`` now, going into debt if need be: the seconds to wait before
        the debt is paid (0 when within the burst)."""
        self.tokens = self.refill() - amount
        return max(0.0, -self.tokens / self.rate)


class RateLimiter:
    """One token bucket per key (a client address), remembering at most ``max_keys``:
    beyond that, idle (full) buckets are forgotten first, then the oldest."""

    def __init__(
        self,
        rate: float,
        burst: float,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.max_keys, self.clock = rate, burst, max_keys, clock
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget()
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self.clock)
        return bucket.take()

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget(self) -> None:
        idle = [k for k, b in self._buckets.items() if b.refill() >= self.burst]
        for key in idle:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            for key in list(self._buckets)[: self.max_keys // 2]:
                del self._buckets[key]
