"""``botkit dev``: the chat page, the embedded hub and the bots of bots.yaml, in one process.

One event loop runs everything on one port (``dev.port`` of bots.yaml, 3001 by default)::

    /realtime/connection/websocket   the hub's realtime endpoint (bots and the page connect)
    /api/realtime/token              the dev login      } the chat backend (botkit.dev.hub.backend),
    /api/chat/send                   the moderated send } served before the server API
    /api/realtime/<method>           the hub's server API (the bots publish their replies here)
    /health                          the hub's health check
    /                                the chat page (botkit/dev/hub/static), served last

The hub's token secret and API key is ``xshathra.server_api_key`` of bots.yaml, so the backend's
tokens, the bots' tokens and the bots' API calls all agree. The bots keep their project id but
connect to this hub whatever ``realtime_url`` and ``api_url`` say. Start order: hub, then bots;
stop order: bots (gracefully, while the hub still takes their last replies), then the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import uvicorn
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from botkit.config import BotsConfig
from botkit.dev.hub.app import HubApp
from botkit.dev.hub.backend import DevSettings, backend_routes
from botkit.dev.hub.server import uvicorn_config
from botkit.dev.hub.settings import API_KEY_ENV, HubSettings
from botkit.dev.localserver import API_PREFIX, WS_PATH
from botkit.errors import LocalServerError
from botkit.runtime.runner import LoadedBot
from botkit.runtime.supervisor import Runtime
from botkit.serverapi.client import ServerApi

__all__ = ["DEFAULT_HOST", "STATIC_DIR", "DevServer", "dev_environment"]

log = logging.getLogger("botkit.dev.command")

DEFAULT_HOST = "127.0.0.1"
STATIC_DIR = Path(__file__).resolve().parent / "hub" / "static"
_START_TIMEOUT = 30.0
"""Seconds the hub may take to listen; it has nothing to build, so this only bounds a bug."""
_READY_TIMEOUT = 30.0
"""Seconds to wait for the bots before showing the page anyway (they go on trying)."""
_HUB_STOP_TIMEOUT = 15.0
"""Seconds for closing the page's connections and uvicorn's graceful stop (3 s) together, when
the hub stops on its own (a failed start); a requested stop fits in the grace period."""
_HUB_RESERVE = 1.0
"""Seconds of the grace period kept for the hub's own stop (a quarter of it when shorter)."""


def dev_environment(environ: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """The environment to load bots.yaml with, and the key made up for this run (or None).

    bots.yaml reads its key from ``XSHATHRA_SERVER_API_KEY``; for a local hub any key will do,
    so when the variable is unset or empty one is made up instead of failing on the missing
    variable. It is passed to the loader only: this process's environment stays as it was."""
    if environ.get(API_KEY_ENV):
        return dict(environ), None
    key = secrets.token_urlsafe(32)  # 43 characters: long enough for HS256 without warnings
    return {**environ, API_KEY_ENV: key}, key


class _ChatPage(StaticFiles):
    """The page's files, revalidated on every load: people edit chat.js while ``botkit dev``
    runs, and a heuristically cached old copy would hide their change (ETags keep it cheap)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without signal handlers of its own: a stop signal must stop the bots first,
    while the hub still takes their last replies, and only then the hub."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class DevServer:
    """The hub with the chat backend and page on ``host:port``, and ``bots`` against it.

    ``await run()`` serves until :meth:`stop` (safe from a signal handler on the loop), then
    stops the bots and the hub; it raises the error of a bot that could not start (a
    configuration mistake) after stopping, and :class:`LocalServerError` when the port can't
    be had. A bot the hub disconnects later stops alone and starts again by itself (see
    botkit.runtime.supervisor): the hub and the page stay. Port 0 picks a free port; ``port``
    holds the real one once listening."""

    def __init__(self, config: BotsConfig, bots: list[LoadedBot], *, port: int,
                 host: str = DEFAULT_HOST, grace: float = 10.0, log_level: str = "info") -> None:
        self.config = config
        self.bots = bots
        self.host = host
        self.port = port
        self.grace = grace
        self.log_level = log_level
        self.runtime: Runtime | None = None
        self._stop = asyncio.Event()
        self._deadline: float | None = None
        """When the whole stop must be over (monotonic seconds): set by the first stop."""

    @property
    def page_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    def stop(self) -> None:
        if self._deadline is None:
            self._deadline = time.monotonic() + self.grace
        self._stop.set()
        if self.runtime is not None:
            self.runtime.stop()

    async def run(self, *, on_ready: Callable[[DevServer], None] | None = None) -> None:
        sock = self._listen()
        key = self.config.xshathra.server_api_key.get_secret_value()
        try:
            # Both names of this machine: the page may be opened as localhost or 127.0.0.1.
            origins = (f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}")
            # Client publishes off unless bots.yaml asks for the prototype mode: the page sends
            # through the moderated backend, and nobody can post past it as someone else.
            hub_config = HubSettings(port=self.port, host=self.host, api_key=key,
                                     allowed_origins=origins, log_level=self.log_level,
                                     client_publish=self.config.dev.client_publish).config()
        except ValueError as exc:  # the defaults are valid: only a bug gets here
            sock.close()
            raise LocalServerError(f"the hub's settings are invalid: {exc}") from exc
        # The backend publishes through the hub's own server API, as the seed's backend does
        # through Xshathra's: the same HTTP path, idempotency keys included, as in production.
        async with ServerApi(self.api_url, key) as publisher:
            try:
                hub_app = HubApp(
                    hub_config,
                    routes=backend_routes(DevSettings.from_config(self.config), publisher),
                    fallback=[Mount("/", _ChatPage(directory=STATIC_DIR, html=True),
                                    name="chat_page")])
                # uvicorn's startup lines would repeat what we print; its warnings still show.
                quiet = self.log_level if self.log_level == "debug" else "warning"
                server = _EmbeddedServer(uvicorn_config(hub_app, log_level=quiet))
            except BaseException:
                sock.close()  # uvicorn closes it from here on
                raise
            serving = asyncio.create_task(server.serve(sockets=[sock]), name="dev hub")
            try:
                await self._wait_listening(server, serving)
                if not self._stop.is_set():
                    await self._run_bots(serving, on_ready)
            finally:
                await self._stop_hub(hub_app, server, serving)

    def _listen(self) -> socket.socket:
        # Bound here rather than by uvicorn, which exits the process when the port is taken;
        # this way the port in use is a clear error, and port 0 gives a free port.
        # proto TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise LocalServerError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}; stop what "
                "uses it, or pick another port with --port or dev.port in bots.yaml") from None
        self.port = sock.getsockname()[1]
        return sock

    async def _wait_listening(self, server: uvicorn.Server,
                              serving: asyncio.Task[None]) -> None:
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                while not server.started:
                    if serving.done():
                        raise LocalServerError("the hub stopped while starting") from (
                            serving.exception())
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise LocalServerError(
                f"the hub did not start within {_START_TIMEOUT:.0f} s") from None

    def _bots_config(self) -> BotsConfig:
        xshathra = self.config.xshathra
        local = xshathra.model_copy(update={"realtime_url": self.ws_url,
                                            "api_url": self.api_url})
        if (xshathra.realtime_url, xshathra.api_url) != (local.realtime_url, local.api_url):
            log.info("the bots connect to this hub (%s), not to bots.yaml's realtime_url and "
                     "api_url", self.ws_url)
        # A shallow copy: the bots' BotConfig objects stay the ones the plugins were loaded for.
        return self.config.model_copy(update={"xshathra": local})

    async def _run_bots(self, serving: asyncio.Task[None],
                        on_ready: Callable[[DevServer], None] | None) -> None:
        runtime = Runtime(self._bots_config(), self.bots, grace=self.grace)
        self.runtime = runtime  # from now on stop() stops it
        if not self.bots:
            log.warning("bots.yaml has no enabled bots: serving the chat page alone")
        running = asyncio.create_task(runtime.run(), name="dev bots")
        try:
            ready = asyncio.ensure_future(runtime.wait_ready())
            try:
                done, _ = await asyncio.wait([ready, running, serving], timeout=_READY_TIMEOUT,
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                ready.cancel()
            if not done:
                log.warning("the bots are not ready after %.0f s (see the log above); the chat "
                            "page works meanwhile and the bots keep trying", _READY_TIMEOUT)
            if not running.done() and not serving.done() and on_ready is not None:
                on_ready(self)
            stopped = asyncio.ensure_future(self._stop.wait())
            try:
                await asyncio.wait([stopped, running, serving],
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
            if serving.done() and not running.done():
                log.error("the hub stopped unexpectedly; stopping the bots")
        finally:
            await self._stop_bots(runtime, running)
        if serving.done():
            raise LocalServerError("the hub stopped unexpectedly") from serving.exception()

    def _hub_reserve(self) -> float:
        return min(_HUB_RESERVE, self.grace / 4)

    def _left(self) -> float:
        """Seconds left of the grace period (all of it when no stop was asked for yet)."""
        if self._deadline is None:
            self._deadline = time.monotonic() + self.grace
        return max(0.0, self._deadline - time.monotonic())

    async def _stop_bots(self, runtime: Runtime, running: asyncio.Task[None]) -> None:
        """Stop the bots within the grace period, less the hub's reserve. The runtime bounds
        each step of its shutdown by the grace, so its steps together may take longer: what
        still runs when the time is up is cancelled."""
        runtime.stop()
        await asyncio.wait([running], timeout=max(0.0, self._left() - self._hub_reserve()))
        if not running.done():
            log.warning("the bots did not stop within the grace period (%g s); cancelling "
                        "what they still do", self.grace)
            running.cancel()
            # Cancelled, they only run their cleanup; bounded all the same.
            await asyncio.wait([running], timeout=self._hub_reserve())
            if not running.done():
                log.error("the bots did not finish cancelling; stopping the hub anyway")
            return
        if not running.cancelled():
            running.result()  # raises a start failure, if any, once the bots have stopped

    async def _stop_hub(self, hub_app: HubApp, server: uvicorn.Server,
                        serving: asyncio.Task[None]) -> None:
        failed_before = serving.done()  # then its error is what run() raises
        requested = self._deadline is not None
        timeout = max(self._left(), 0.2) if requested else _HUB_STOP_TIMEOUT
        try:
            async with asyncio.timeout(timeout):
                # 3001 "shutdown" first, as Centrifugo does: open pages reconnect to whatever
                # comes next instead of showing a dropped connection.
                await hub_app.close_connections(timeout=min(2.0, timeout / 2))
                server.should_exit = True
                await asyncio.wait([serving])
        except TimeoutError:
            log.warning("the hub did not stop within %.1f s; closing it", timeout)
            server.force_exit = True
            serving.cancel()
            await asyncio.wait([serving])
        if not failed_before and not serving.cancelled() and serving.exception() is not None:
            log.error("the hub failed while stopping: %r", serving.exception())
