"""Running the hub on uvicorn: ``python -m botkit.dev.hub --port 3001``.

The token secret and API key is ``XSHATHRA_SERVER_API_KEY`` (the variable ``bots.yaml`` reads its
``server_api_key`` from); without it the hub makes one up and prints it. SIGTERM or Ctrl-C close
every connection with 3001 "shutdown" first, then uvicorn stops, so clients reconnect to whatever
comes next instead of seeing the connection drop.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import socket
import sys
from collections.abc import Sequence
from types import FrameType

import uvicorn
from starlette.routing import BaseRoute

from botkit.dev.hub.app import HubApp
from botkit.dev.hub.settings import API_KEY_ENV, HubSettings
from botkit.dev.hub.transport import NoDelayHttpProtocol, TolerantWebSocketProtocol
from botkit.dev.localserver import API_PREFIX, WS_PATH

__all__ = ["main", "serve", "uvicorn_config"]

log = logging.getLogger("botkit.dev.hub")


class _Server(uvicorn.Server):
    """uvicorn, with a first stop signal that closes the hub's connections gracefully."""

    def __init__(self, config: uvicorn.Config, hub_app: HubApp) -> None:
        super().__init__(config)
        self._hub_app = hub_app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Called from a signal handler: hand the work to the loop.
        if self._loop is None or self._stopping is not None or self.should_exit:
            super().handle_exit(sig, frame)  # a second signal: stop now
            return
        self._loop.call_soon_threadsafe(self._begin_stop)

    def _begin_stop(self) -> None:
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._stop(), name="hub stop")

    async def _stop(self) -> None:
        try:
            await self._hub_app.close_connections()
        finally:
            self.should_exit = True


def uvicorn_config(hub_app: HubApp, *, log_level: str | None = None) -> uvicorn.Config:
    """How uvicorn serves a hub (``python -m botkit.dev.hub`` and ``botkit dev`` alike). uvicorn
    logs through the root logger (``log_config=None``) at ``log_level`` (default: the hub's)."""
    config = hub_app.hub.config
    return uvicorn.Config(
        hub_app.app, host=config.host, port=config.port, http=NoDelayHttpProtocol,
        ws=TolerantWebSocketProtocol,
        # The protocol's own {} pings replace WebSocket pings, as on Centrifugo.
        ws_ping_interval=None, ws_ping_timeout=None, ws_per_message_deflate=False,
        ws_max_size=config.message_size_limit, lifespan="on", access_log=False,
        log_config=None, log_level=log_level or config.log_level, timeout_graceful_shutdown=3)


async def serve(settings: HubSettings, *, routes: Sequence[BaseRoute] = ()) -> None:
    """Serve the hub (and ``routes`` before its own) until stopped by a signal."""
    hub_app = HubApp(settings.config(), routes=routes)
    await _Server(uvicorn_config(hub_app), hub_app).serve()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m botkit.dev.hub",
        description="A development Xshathra Realtime (Centrifugo v6 protocol) in memory. "
                    f"The key comes from {API_KEY_ENV}; without it one is made up and printed.")
    HubSettings.add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    key = os.environ.get(API_KEY_ENV, "")
    settings = HubSettings.from_arguments(args, key or secrets.token_urlsafe(24))
    try:
        settings.config()
    except ValueError as exc:
        print(f"botkit hub: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = f"{settings.host}:{settings.port}"
    print(f"botkit hub on ws://{base}{WS_PATH} and http://{base}{API_PREFIX}", flush=True)
    if not key:
        print(f"server_api_key for this run: {settings.api_key}", flush=True)
    asyncio.run(serve(settings))
    return 0
