"""Which relay's log an index names, when a roster names two or more relays.

Each relay keeps its own log of a channel, so "entry 5" must say whose log. A station
and the receipts it seals name an entry by a *qualified index*: the relay's position in
the roster times 2**40, plus the entry's index in that relay's log. The roster's first
relay has position 0, so with one relay a qualified index is the plain log index (stores,
receipts and transcripts of one-relay channels are unchanged). 2**40 entries (over a
trillion) per log is far beyond what any channel logs.
"""

from __future__ import annotations

from ..errors import Malformed

SHIFT = 40
MAX_LOG_INDEX = (1 << SHIFT) - 1


def qualify(position: int, index: int) -> int:
    """The qualified index of entry ``index`` of the log of the relay at ``position``."""
    if not 0 <= index <= MAX_LOG_INDEX:
        raise Malformed(f"log index {index} is beyond {MAX_LOG_INDEX}", field="index")
    return (position << SHIFT) | index


def split(qualified: int) -> tuple[int, int]:
    """(relay position, index in that relay's log) of a qualified index."""
    return qualified >> SHIFT, qualified & MAX_LOG_INDEX


def log_key(channel: str, relay: str, position: int) -> str:
    """Where a relay's log mirror of a channel is stored (its tree, checkpoints, chains):
    the channel itself for the first relay (as with one relay), else channel@relay (a
    channel name cannot hold '@')."""
    return channel if position == 0 else f"{channel}@{relay}"
