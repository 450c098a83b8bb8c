"""A channel's transcript, exported from this station's copy of the log.

The format (``hotline-transcript/v3``) and its offline verification are in
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
from ..transcript import FORMAT
from .core import StationCore


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def export(core: StationCore, channel: str, with_bodies: bool = False) -> dict[str, Any]:
    """Build a transcript; with ``with_bodies``, disclose the body key of every entry
    this station can open."""
    if channel not in core.channels:
        raise Malformed(f"{core.key.party} is not a member of {channel}", field="channel")
    entries = core.store.entries(channel)
    notes = core.store.checkpoints(channel)
    tree = core.tree(channel)
    ctx = core.state.log(channel)
    sizes = [logcheck.open_log_checkpoint(ctx, n).size for n in notes]
    consistency = [
        {"from": a, "to": b, "proof": [_b64(p) for p in tree.consistency_proof(a, b)]}
        for a, b in itertools.pairwise(sizes)
        if 0 < a < b
    ]
    doc: dict[str, Any] = {
        "format": FORMAT,
        "channel": channel,
        "exported_by": core.ident,
        "exported_ms": core.now_ms(),
        "roster": core.roster.encode().decode(),
        "entries": [
            frames.Entry(e.index, e.envelope, e.relay_ms, e.leaf_kind).wire() for e in entries
        ],
        "checkpoints": [n.decode() for n in notes],
        "consistency": consistency,
        "bodies": [],
    }
    if with_bodies:
        for e in entries:
            if e.leaf_kind != LeafKind.ENVELOPE:
                continue
            try:
                env = env_mod.parse(e.envelope)
                key = core.state.body_key(env)
                plain = env_mod.decrypt_with_key(env, key)
            except HotlineError:
                continue
            doc["bodies"].append(
                {
                    "index": e.index,
                    "hash": env.hash.hex(),
                    "body_key": _b64(key),
                    "body": _b64(plain),
                }
            )
    return doc
