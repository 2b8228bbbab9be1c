"""uvicorn's protocols as the hub needs them: ``TCP_NODELAY`` on every connection, and the
WebSocket handshake as real SDKs make it (an empty ``Sec-WebSocket-Protocol`` is no protocol at
all).

h11 writes a response's head and body in two ``send`` calls; with Nagle's algorithm on, the
second waits for the peer's (delayed) ACK of the first, ~40 ms, on every request but the first
of a keep-alive connection. asyncio sets ``TCP_NODELAY`` only on sockets whose ``proto`` says
TCP, which a socket made with ``socket.socket(AF_INET, SOCK_STREAM)`` and handed to uvicorn
does not; so each connection sets it itself, as Go's net package (and so Centrifugo) does.

centrifuge-python up to 0.5 opens JSON connections with ``subprotocols=[]``, which makes the
``websockets`` client send ``Sec-WebSocket-Protocol:`` with nothing after it (reference §11).
Centrifugo (Go) ignores that; uvicorn's default WebSocket implementation parses it strictly and
answers HTTP 400. This subclass drops empty entries before the handshake is parsed, so the hub
accepts what Centrifugo accepts. Which subprotocol to answer is still decided by the app, which
only ever echoes one the client offered.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

__all__ = [
    "SUBPROTOCOL_HEADER",
    "NoDelayHttpProtocol",
    "TolerantWebSocketProtocol",
    "clean_subprotocols",
    "set_nodelay",
]

SUBPROTOCOL_HEADER = "Sec-WebSocket-Protocol"


def clean_subprotocols(values: list[str]) -> list[str]:
    """The offered subprotocols, without the empty entries Go's parser skips."""
    return [token.strip() for value in values for token in value.split(",") if token.strip()]


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off for a TCP transport (nothing for other transports)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # the peer may be gone already
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHttpProtocol(H11Protocol):
    """uvicorn's h11 HTTP protocol with ``TCP_NODELAY``. A WebSocket upgrade keeps the
    transport, so this covers the realtime endpoint too."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)


class TolerantWebSocketProtocol(WebSocketsSansIOProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        set_nodelay(transport)  # already set by the HTTP protocol; cheap, and keeps it so
        super().connection_made(transport)

    def handle_connect(self, event: Request) -> None:
        values = event.headers.get_all(SUBPROTOCOL_HEADER)
        if values:
            offered = clean_subprotocols(values)
            del event.headers[SUBPROTOCOL_HEADER]
            if offered:
                event.headers[SUBPROTOCOL_HEADER] = ", ".join(offered)
        super().handle_connect(event)
