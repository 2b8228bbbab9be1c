"""The runtime: every enabled bot of ``bots.yaml`` connected with its own token, its rooms
subscribed, its envelopes handled in ordered lanes, its jobs fired by one scheduler, its replies
published through the server API — and a shutdown that loses nothing.

Start order: state store → API client → bots (connect, subscribe, on_start) → scheduler.
Shutdown order (fixed, each step bounded by the grace period): stop firing jobs (fires under way
finish) → stop taking envelopes (close the realtime connections) → finish what the lanes hold →
on_stop hooks → flush pending replies through the API → close the job store and the state store.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botkit.bot import Bot
from botkit.config import BotConfig, BotsConfig, validate_settings
from botkit.errors import BotkitError, TerminalDisconnectError
from botkit.jobs.scheduler import BotScheduler
from botkit.runtime.plugins import load_configured_plugin
from botkit.runtime.runner import BotRunner, BotStats, LoadedBot, static_schedules
from botkit.serverapi.client import ServerApi
from botkit.state.store import StateStore, open_state_store

__all__ = ["BotRunner", "BotStats", "LoadedBot", "Runtime", "load_bot", "load_bots"]

log = logging.getLogger("botkit.runtime.supervisor")


def load_bots(config: BotsConfig, *, search_path: Path | None = None) -> list[LoadedBot]:
    """Import each enabled bot's plugin and validate its settings (ConfigError/PluginError)."""
    return [load_bot(config, bot_config, search_path=search_path)
            for bot_config in config.enabled_bots()]


def load_bot(config: BotsConfig, bot_config: BotConfig, *, bot: Bot | None = None,
             search_path: Path | None = None) -> LoadedBot:
    """One bot of ``config``: its plugin imported (unless ``bot`` is given; a bot without a
    plugin is an empty ``Bot``) and its settings validated (ConfigError/PluginError)."""
    if bot is None:
        bot = (load_configured_plugin(config, bot_config, search_path=search_path)
               if bot_config.plugin is not None else Bot(bot_config.name))
    if bot.settings is not None:
        settings: Any = validate_settings(config, bot_config, bot.settings)
    else:
        settings = dict(bot_config.settings)
    return LoadedBot(bot_config, bot, settings)


@dataclass
class Runtime:
    """All bots of one configuration, run until stopped."""

    config: BotsConfig
    bots: list[LoadedBot]
    grace: float = 10.0
    misfire_grace: float = 300.0
    """A job missed while the daemon was down still runs at start if at most this late."""
    freeze_gc: bool = True
    """Once every bot is ready, exempt what start-up made (modules, models, configuration) from
    the cyclic GC until the runtime stops (see _freeze_startup_objects)."""
    runners: dict[str, BotRunner] = field(default_factory=dict, init=False)
    scheduler: BotScheduler | None = field(default=None, init=False)
    stop_event: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _bots_stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _started: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _failures: list[BaseException] = field(default_factory=list, init=False)

    def stop(self) -> None:
        """Ask for a graceful shutdown (safe to call from a signal handler on the loop)."""
        self.stop_event.set()

    async def wait_ready(self) -> None:
        """Return once every bot is connected, subscribed and past its on_start hooks, and the
        scheduler runs."""
        await self._started.wait()

    async def run(self) -> None:
        """Serve until :meth:`stop`; raise the first terminal error after shutting down."""
        async with open_state_store(self.config) as store:
            await self._run_with(store)
        if self._failures:
            raise self._failures[0]

    async def _run_with(self, store: StateStore) -> None:
        xshathra = self.config.xshathra
        state = self.config.state
        self.scheduler = BotScheduler(
            store_path=state.path if state.backend == "sqlite" else None,
            misfire_grace=self.misfire_grace)
        bot_users = frozenset(loaded.config.user_id for loaded in self.bots)
        api = ServerApi(xshathra.api_url, xshathra.server_api_key.get_secret_value(),
                        close_timeout=self.grace)
        try:
            async with api:
                self.runners = {
                    loaded.config.name: BotRunner(loaded, self.config, api,
                                                  bot_users=bot_users, state=store,
                                                  scheduler=self.scheduler)
                    for loaded in self.bots}
                for loaded in self.bots:
                    self.scheduler.add_host(self.runners[loaded.config.name],
                                            static_schedules(loaded))
                async with asyncio.TaskGroup() as group:
                    for runner in self.runners.values():
                        group.create_task(self._run_one(runner), name=f"bot {runner.name}")
                    group.create_task(self._coordinate(), name="runtime coordinator")
        finally:
            # Only now: the bots' last handlers and on_stop hooks may still store jobs.
            await self.scheduler.shutdown(0)

    async def _coordinate(self) -> None:
        """Start firing jobs once every bot is ready; on stop, stop firing before the bots
        stop (their job store stays open until they have)."""
        assert self.scheduler is not None
        frozen = False
        ready: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(
            *(runner.ready.wait() for runner in self.runners.values())))
        stopped: asyncio.Future[Any] = asyncio.ensure_future(self.stop_event.wait())
        try:
            await asyncio.wait([ready, stopped], return_when=asyncio.FIRST_COMPLETED)
            if ready.done() and not stopped.done():
                self.scheduler.start()
                frozen = self.freeze_gc and _freeze_startup_objects()
                self._started.set()
                await stopped
        finally:
            ready.cancel()
            # A cancelled gather ends with CancelledError as its *exception*; unread, asyncio
            # logged "exception was never retrieved" after a bot failed before it was ready.
            ready.add_done_callback(_retrieve)
            stopped.cancel()
            if frozen:
                gc.unfreeze()
            try:
                await self.scheduler.stop_firing(self.grace)
            finally:
                self._bots_stop.set()

    async def _run_one(self, runner: BotRunner) -> None:
        try:
            await runner.run(self._bots_stop, self.grace)
        except Exception as exc:
            # The runner's TaskGroup wraps it in an ExceptionGroup, which was logged as an
            # unexpected 34-line traceback.
            terminal = _terminal_in(exc)
            if terminal is not None:
                # One bot refused for good (wrong key, banned): stop the rest cleanly and report.
                self._fail(BotkitError(f"bot {runner.name}: {terminal}"), terminal)
                return
            log.exception("bot %s stopped on an unexpected error", runner.name)
            self._fail(BotkitError(f"bot {runner.name} failed: {exc!r}"), exc)

    def _fail(self, error: BotkitError, cause: BaseException) -> None:
        error.__cause__ = cause
        self._failures.append(error)
        self.stop_event.set()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _terminal_in(exc: BaseException) -> TerminalDisconnectError | None:
    """``exc`` if it is a terminal disconnect, or the first one inside an ExceptionGroup."""
    if isinstance(exc, TerminalDisconnectError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        found = (_terminal_in(inner) for inner in exc.exceptions)
        return next((each for each in found if each is not None), None)
    return None


def _freeze_startup_objects() -> bool:
    """Collect once, then move every object alive now to the GC's permanent generation.

    A bot's process holds a large, long-lived heap (pydantic's schemas, the configuration, the
    imported modules), and each full collection walked all of it: 15-25 ms pauses, now and then,
    while the replies made (httpx leaves a few reference cycles per request) kept triggering
    collections. Frozen, a full collection only walks what came after start-up; the pause
    drops below a millisecond (bench/ S2, p99 of an echo at 100/s: 6 ms -> 2 ms). The runtime
    unfreezes when it stops, so nothing frozen is kept from collection for good."""
    gc.collect()
    gc.freeze()
    return True

