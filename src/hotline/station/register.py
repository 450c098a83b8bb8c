"""A certificate of a key this station held before its current one, logged at a relay
that lacks it (a key rotated twice while that relay was down).

A relay logs a certificate only in a session in which its key answers the challenge
(relay/core.py ``authenticate``: nobody registers a certificate for a key that is not
theirs), so the station opens a short session with the old key, from ``retired/``, and
closes it. The relay logs the certificate before it checks anything else of the key: a
certificate whose validity has ended is logged all the same (that session is then
refused, "not usable now"; the key signs nothing the log would take: keyhistory.py), so
the revocation of its key, which refers to it, can follow it into that relay's log.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl

import websockets

from .. import frames
from ..errors import HotlineError, Malformed
from ..keys import StationCertificate, StationKey
from ..roster import Roster

TIMEOUT_S = 10.0


async def register(
    url: str,
    roster: Roster,
    key: StationKey,
    cert: StationCertificate,
    ssl_context: ssl.SSLContext | None,
    timeout: float = TIMEOUT_S,
) -> None:
    """Meet the relay at ``url`` as ``key`` (certified by ``cert``) and leave at once.
    Raises the relay's refusal (HotlineError) or the connection's error; a refusal after
    the challenge was answered may still leave ``cert`` logged (the caller reads the log)."""
    roster_hash = hashlib.sha256(roster.encode()).digest()
    async with websockets.connect(
        url,
        ssl=ssl_context if url.startswith("wss://") else None,
        max_size=4 * frames.MAX_FRAME,
        open_timeout=timeout,
        close_timeout=5,
        compression=None,
    ) as ws:
        challenge = await _next(ws, timeout)
        if not isinstance(challenge, frames.Challenge):
            raise Malformed(f"expected a challenge, got {challenge.op}", field="op")
        if challenge.roster != roster_hash:
            raise HotlineError("relay roster differs from ours")
        message = frames.auth_message(challenge.nonce, key.ident, roster_hash)
        hello = frames.Hello(key.ident, cert.encode(), key.signing.sign(message))
        await ws.send(frames.encode_frame(hello))
        welcome = await _next(ws, timeout)
        if not isinstance(welcome, frames.Welcome):
            raise Malformed(f"expected a welcome, got {welcome.op}", field="op")


async def _next(ws: websockets.ClientConnection, timeout: float) -> frames.RelayFrame:
    async with asyncio.timeout(timeout):
        frame = frames.decode_relay_frame(await ws.recv())
    if isinstance(frame, frames.ErrorReply):
        raise frame.error()
    return frame
