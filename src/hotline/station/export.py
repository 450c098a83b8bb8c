"""A channel's transcript, exported from this station's copy of the log.

The format (``hotline-transcript/v3``; with several relays ``hotline-transcript/v3+relays``,
each other relay's log under ``relays``) and its offline verification are in
``hotline.transcript``; this module only reads the station's store to build one.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

from .. import envelope as env_mod
from .. import frames, logcheck
from ..errors import HotlineError, Malformed
from ..leaf import LeafKind
from ..transcript import FORMAT, MULTI_FORMAT
from . import paths
from .core import StationCore


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _log(core: StationCore, channel: str, position: int) -> dict[str, Any]:
    """One relay's log of the channel: its entries (indexes in that log), the checkpoints
    this station verified of it, and the consistency proofs between them."""
    relay = core.relays[position]
    key = core.state.log_key(channel, relay)
    notes = core.store.checkpoints(key)
    tree = core.tree(key)
    ctx = core.state.log(channel, relay if position else None)
    sizes = [logcheck.open_log_checkpoint(ctx, n).size for n in notes]
    return {
        "entries": [
            frames.Entry(paths.split(e.index)[1], e.envelope, e.relay_ms, e.leaf_kind).wire()
            for e in core.store.entries(channel, position)
        ],
        "checkpoints": [n.decode() for n in notes],
        "consistency": [
            {"from": a, "to": b, "proof": [_b64(p) for p in tree.consistency_proof(a, b)]}
            for a, b in itertools.pairwise(sizes)
            if 0 < a < b
        ],
    }


def export(core: StationCore, channel: str, with_bodies: bool = False) -> dict[str, Any]:
    """Build a transcript; with ``with_bodies``, disclose the body key of every entry
    this station can open."""
    if channel not in core.channels:
        raise Malformed(f"{core.key.party} is not a member of {channel}", field="channel")
    first = _log(core, channel, 0)
    doc: dict[str, Any] = {
        "format": FORMAT if len(core.relays) == 1 else MULTI_FORMAT,
        "channel": channel,
        "exported_by": core.ident,
        "exported_ms": core.now_ms(),
        "roster": core.roster.encode().decode(),
        **first,
        "bodies": [],
    }
    if len(core.relays) > 1:  # every other relay's own log of the channel, as mirrored here
        doc["relays"] = [
            {"relay": name, **_log(core, channel, position)}
            for position, name in enumerate(core.relays)
            if position > 0
        ]
    if with_bodies:
        doc["bodies"] = _bodies(core, channel)
    return doc


def _bodies(core: StationCore, channel: str) -> list[dict[str, Any]]:
    """Each envelope of the channel this station can open, disclosed once: at its
    (qualified, paths.py) index in the first relay's log, in roster order, that holds it
    valid; an envelope only one relay logged is disclosed in that relay's log."""
    out: list[dict[str, Any]] = []
    seen: set[bytes] = set()
    for position in range(len(core.relays)):
        for e in core.store.entries(channel, position):
            if e.leaf_kind != LeafKind.ENVELOPE or not e.valid or e.hash in seen:
                continue
            try:
                env = env_mod.parse(e.envelope)
                key = core.state.body_key(env)
                plain = env_mod.decrypt_with_key(env, key)
            except HotlineError:
                continue
            seen.add(e.hash)
            out.append(
                {
                    "index": e.index,
                    "hash": env.hash.hex(),
                    "body_key": _b64(key),
                    "body": _b64(plain),
                }
            )
    return out
