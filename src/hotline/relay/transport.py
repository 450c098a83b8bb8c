"""uvicorn's WebSocket protocol, made to let go of peers that do not read.

A closed connection whose peer stops reading keeps its unsent bytes (and the socket)
until TCP gives up, which with a zero window is never. The relay aborts such a
connection instead, and asks the kernel to time out data left unacknowledged.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

UNACKED_TIMEOUT_MS = 30_000  # TCP_USER_TIMEOUT: sent data unacknowledged this long ends it


class RelayWebSocketProtocol(WebSocketsSansIOProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        option = getattr(socket, "TCP_USER_TIMEOUT", None)
        if sock is not None and option is not None and sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, option, UNACKED_TIMEOUT_MS)

    def _stuck(self) -> bool:
        """The peer has stopped reading: our buffer is over its high-water mark."""
        return not self.writable.is_set() and not self.transport.is_closing()

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.close" and self.handshake_complete and self._stuck():
            # No polite close can reach a peer that does not read; drop what it holds.
            self.transport.abort()
            return
        await super().send(message)

    async def run_asgi(self) -> None:
        await super().run_asgi()
        if not self.writable.is_set():
            self.transport.abort()

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        self.transport.abort()  # no answer to a ping: a dead peer does not need its bytes
