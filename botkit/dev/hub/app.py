"""The hub as a Starlette app: the realtime endpoint, the server API and the health check, at
the paths of Xshathra Realtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from botkit.dev.hub.api import ServerApiHandler, api_endpoint
from botkit.dev.hub.connection import serve_websocket
from botkit.dev.hub.core import Hub
from botkit.dev.hub.settings import HubConfig
from botkit.dev.localserver import API_PREFIX, WS_PATH

__all__ = ["HubApp"]

log = logging.getLogger("botkit.dev.hub")

_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_SWEEP_INTERVAL = 30.0
"""Seconds between frees of expired history (reads and writes expire it on their own too)."""


class HubApp:
    """One hub and the ASGI app serving it. ``close_connections`` is the graceful stop.

    ``routes`` are served first, next to the hub's (``botkit dev`` adds its chat backend, whose
    ``/api/realtime/token`` must win over the server API's ``/api/realtime/{method}``);
    ``fallback`` routes are served last (``botkit dev`` mounts the chat page at ``/``, which
    would otherwise swallow every path of the hub)."""

    def __init__(self, config: HubConfig, *, routes: Sequence[BaseRoute] = (),
                 fallback: Sequence[BaseRoute] = ()) -> None:
        self.hub = Hub(config)  # clock: time.monotonic, which is also the event loop's clock
        self.api = ServerApiHandler(self.hub)
        self._connections: set[asyncio.Task[object]] = set()
        self.app = Starlette(
            routes=[
                *routes,
                WebSocketRoute(WS_PATH, self._websocket),
                # Every method reaches the endpoint, which answers 405 itself after 404 and
                # before 401, in Centrifugo's order.
                Route(API_PREFIX + "/{method}", api_endpoint(self.api), methods=_ALL_METHODS),
                Route("/health", self._health, methods=["GET"]),
                *fallback,
            ],
            lifespan=self._lifespan)

    async def _websocket(self, websocket: WebSocket) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await serve_websocket(websocket, self.hub)
        finally:
            self._connections.discard(task)

    async def _health(self, request: Request) -> JSONResponse:
        return JSONResponse({})

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(self._sweep(), name="hub sweeper")
        try:
            yield
        finally:
            sweeper.cancel()
            await asyncio.wait([sweeper])

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL)
            self.hub.streams.sweep()

    async def close_connections(self, timeout: float = 2.0) -> None:
        """Close every connection with 3001 "shutdown" and wait (bounded) for the close frames
        to be written, as Centrifugo does before it exits."""
        self.hub.shutdown()
        pending = set(self._connections)
        if pending:
            await asyncio.wait(pending, timeout=timeout)
