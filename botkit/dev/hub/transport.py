"""The WebSocket handshake as real SDKs make it: an empty ``Sec-WebSocket-Protocol`` is no
protocol at all.

centrifuge-python up to 0.5 opens JSON connections with ``subprotocols=[]``, which makes the
``websockets`` client send ``Sec-WebSocket-Protocol:`` with nothing after it (reference §11).
Centrifugo (Go) ignores that; uvicorn's default WebSocket implementation parses it strictly and
answers HTTP 400. This subclass drops empty entries before the handshake is parsed, so the hub
accepts what Centrifugo accepts. Which subprotocol to answer is still decided by the app, which
only ever echoes one the client offered.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

__all__ = ["SUBPROTOCOL_HEADER", "TolerantWebSocketProtocol", "clean_subprotocols"]

SUBPROTOCOL_HEADER = "Sec-WebSocket-Protocol"


def clean_subprotocols(values: list[str]) -> list[str]:
    """The offered subprotocols, without the empty entries Go's parser skips."""
    return [token.strip() for value in values for token in value.split(",") if token.strip()]


class TolerantWebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Request) -> None:
        values = event.headers.get_all(SUBPROTOCOL_HEADER)
        if values:
            offered = clean_subprotocols(values)
            del event.headers[SUBPROTOCOL_HEADER]
            if offered:
                event.headers[SUBPROTOCOL_HEADER] = ", ".join(offered)
        super().handle_connect(event)
