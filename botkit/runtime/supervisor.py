"""The runtime: every enabled bot of ``bots.yaml`` connected with its own token, its rooms
subscribed, its envelopes handled in ordered lanes, its jobs fired by one scheduler, its replies
published through the server API — and a shutdown that loses nothing.

Start order: state store → API client → bots (connect, subscribe, on_start) → scheduler.
Shutdown order (fixed, each step bounded by the grace period): stop firing jobs (fires under way
finish) → stop taking envelopes (close the realtime connections) → finish what the lanes hold →
on_stop hooks → drain the bots' reply outboxes (runtime/outbox.py) → close the job store and the
state store → (replicas) close the Redis client.

Failures are per bot. A bot that cannot start (the server refuses its token, say) is a mistake
in the configuration, and ends the runtime with its error before anything is served. Once a
bot has served, its end is its own: the server closing it for good (``disconnect`` through the
server API, 3500-3999 codes) or a bug of ours stops that bot alone; it is logged once, its
status says why (:meth:`Runtime.status`), and it starts again after a growing delay, while the
other bots, and in ``botkit dev`` the hub, go on.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botkit.bot import Bot
from botkit.config import BotConfig, BotsConfig, validate_settings
from botkit.errors import BotkitError, TerminalDisconnectError
from botkit.jobs.scheduler import BotScheduler
from botkit.realtime.flag import Flag, wait_any
from botkit.runtime.gcpolicy import GcPolicy
from botkit.runtime.outbox import Outboxes
from botkit.runtime.plugins import load_configured_plugin
from botkit.runtime.replicas import Replicas
from botkit.runtime.runner import BotRunner, BotStats, LoadedBot, static_schedules
from botkit.runtime.startgate import StartGate
from botkit.serverapi.client import ServerApi

if TYPE_CHECKING:  # redis is the cluster extra: imported only when cluster: is set
    from redis.asyncio import Redis
from botkit.runtime.storage import Storage, open_storage

__all__ = ["BotPhase", "BotRunner", "BotStats", "BotStatus", "LoadedBot", "Runtime", "load_bot",
           "load_bots"]

log = logging.getLogger("botkit.runtime")


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


class BotPhase(StrEnum):
    STARTING = "starting"
    """Connecting, subscribing, running its on_start hooks."""
    SERVING = "serving"
    RESTARTING = "restarting"
    """Stopped by a failure of its own; starts again after a delay."""
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class BotStatus:
    """Where one bot of a runtime is, and why."""

    phase: BotPhase
    restarts: int = 0
    """How often it was started again after a failure."""
    reason: str | None = None
    """Why it last stopped on its own (None while it never did)."""


class _JobHost:
    """The scheduler's handle on a bot that outlives the bot's runners: each fire goes to the
    runner of the moment. Jobs publish through the server API, so they fire while the bot's
    connection is down too, and a restart loses none."""

    def __init__(self, name: str, runners: Mapping[str, BotRunner],
                 replicas: Replicas | None = None) -> None:
        self.name = name
        self._runners = runners
        self._replicas = replicas

    async def run_job(self, job_id: str, run_time: datetime, target: str, room: str | None,
                      kwargs: Mapping[str, Any]) -> None:
        if self._replicas is not None and not await self._replicas.fires(self.name, room):
            return  # with replicas a job fires on the owner of its room only
        await self._runners[self.name].run_job(job_id, run_time, target, room, kwargs)


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
    the cyclic GC until the runtime stops (see _freeze_startup_objects); with the bots loaded,
    raise its young-generation threshold until then (gcpolicy.py)."""
    restart_delay: float = 30.0
    """Seconds before a bot that stopped on its own starts again; doubled on each failure in a
    row, up to ``max_restart_delay`` (a bot that served that long starts over at this)."""
    max_restart_delay: float = 600.0
    runners: dict[str, BotRunner] = field(default_factory=dict, init=False)
    """Each bot's current runner (a restart replaces it; its stats carry over)."""
    scheduler: BotScheduler | None = field(default=None, init=False)
    stop_event: Flag = field(default_factory=Flag, init=False)
    _bots_stop: Flag = field(default_factory=Flag, init=False)
    _started: Flag = field(default_factory=Flag, init=False)
    _failures: list[BaseException] = field(default_factory=list, init=False)
    _statuses: dict[str, BotStatus] = field(default_factory=dict, init=False)
    _new_runner: Callable[[LoadedBot], BotRunner] | None = field(default=None, init=False)
    replicas: Replicas | None = field(default=None, init=False)
    """With ``cluster:``: this replica's leases (which rooms it serves)."""
    redis: Redis | None = field(default=None, init=False)
    """With ``cluster:``: the process's ``redis.asyncio.Redis`` client while :meth:`run` runs
    (closed after the stores), for what else replicas share; None otherwise."""

    def status(self, name: str) -> BotStatus:
        """Where bot ``name`` is: starting, serving, restarting (and why) or stopped."""
        status = self._statuses.get(name, BotStatus(BotPhase.STARTING))
        runner = self.runners.get(name)
        # Serving is the runner's to say: it sets ready once subscribed and started.
        if status.phase is BotPhase.STARTING and runner is not None and runner.ready.is_set():
            return BotStatus(BotPhase.SERVING, status.restarts, status.reason)
        return status

    def stop(self) -> None:
        """Ask for a graceful shutdown (safe to call from a signal handler on the loop)."""
        self.stop_event.set()

    async def wait_ready(self) -> None:
        """Return once every bot is connected, subscribed and past its on_start hooks, and the
        scheduler runs."""
        await self._started.wait()

    async def run(self) -> None:
        """Serve until :meth:`stop`; after shutting down, raise the error of a bot that could
        not start (the only failure that ends the runtime; later ones are each bot's own)."""
        async with open_storage(self.config) as storage:
            self.redis = storage.redis
            try:
                await self._run_with(storage)
            finally:
                self.redis = None
        if self._failures:
            raise self._failures[0]

    async def _run_with(self, storage: Storage) -> None:
        xshathra = self.config.xshathra
        store = storage.state
        self.scheduler = BotScheduler(store_path=storage.jobs_path, job_store=storage.job_store,
                                      misfire_grace=self.misfire_grace)
        bot_users = frozenset(loaded.config.user_id for loaded in self.bots)
        api = ServerApi(xshathra.api_url, xshathra.server_api_key.get_secret_value(),
                        close_timeout=self.grace)
        replicas = (Replicas(self.config.cluster, xshathra.project_id, self.runners,
                             {loaded.config.name: [room.id for room in loaded.config.rooms]
                              for loaded in self.bots})
                    if self.config.cluster is not None else None)
        self.replicas = replicas
        early_freeze = False
        gc_policy = GcPolicy()
        try:
            await self.scheduler.open()
            async with api:
                outboxes = Outboxes(api)
                start_gate = StartGate()  # restarts go through it too

                def new_runner(loaded: LoadedBot) -> BotRunner:
                    return BotRunner(loaded, self.config, api, bot_users=bot_users,
                                     state=store, scheduler=self.scheduler,
                                     holds=replicas.holds if replicas is not None else None,
                                     outboxes=outboxes, start_gate=start_gate)

                self._new_runner = new_runner
                self.runners.update({loaded.config.name: new_runner(loaded)
                                     for loaded in self.bots})
                for loaded in self.bots:
                    self.scheduler.add_host(_JobHost(loaded.config.name, self.runners, replicas),
                                            static_schedules(loaded))
                # Frozen once before connecting as well: the collection made when every bot is
                # ready then walks only what connecting made, not the whole start-up heap (a
                # 20-50 ms pause while a busy room's first messages arrive; bench/ S1).
                early_freeze = early_freeze or (self.freeze_gc and _freeze_startup_objects())
                if self.freeze_gc:
                    # Before connecting: a busy room's first messages come in at once.
                    gc_policy.apply()  # a higher young-generation threshold (gcpolicy.py)
                async with asyncio.TaskGroup() as outer:
                    cluster_stop = asyncio.Event()
                    # Its own task, before the bots: they drain their outboxes as they stop.
                    outer.create_task(outboxes.run(), name="reply outboxes")
                    if replicas is not None:
                        outer.create_task(replicas.run(cluster_stop), name="replicas")
                    try:
                        async with asyncio.TaskGroup() as group:
                            for loaded in self.bots:
                                group.create_task(self._run_one(loaded),
                                                  name=f"bot {loaded.config.name}")
                            group.create_task(self._coordinate(), name="runtime coordinator")
                    finally:
                        # The bots stopped and drained their outboxes: what is left is given
                        # up (counted); the leases go back now.
                        outboxes.close()
                        cluster_stop.set()
        finally:
            gc_policy.restore()
            if early_freeze:
                gc.unfreeze()  # (again, if the bots were ready: unfreezing twice is harmless)
            # Only now: the bots' last handlers and on_stop hooks may still store jobs.
            await self.scheduler.shutdown(0)

    async def _coordinate(self) -> None:
        """Start firing jobs once every bot is ready; on stop, stop firing before the bots
        stop (their job store stays open until they have)."""
        assert self.scheduler is not None
        frozen = False
        try:
            if await self._all_ready():
                self.scheduler.start()
                frozen = self.freeze_gc and _freeze_startup_objects()
                self._started.set()
                await self.stop_event.wait()
        finally:
            if self.replicas is not None:
                self.replicas.coordinator.stop_taking()  # the bots are about to close
            if frozen:
                gc.unfreeze()
            try:
                await self.scheduler.stop_firing(self.grace)
            finally:
                self._bots_stop.set()

    async def _all_ready(self) -> bool:
        """Wait until every bot is ready (True) or the runtime is asked to stop (False): one
        bot at a time, so one future in all rather than a task per bot that a gather would
        keep for the runtime's life (bench/ S4)."""
        for runner in list(self.runners.values()):
            await wait_any(runner.ready, self.stop_event)
            if self.stop_event.is_set():
                return False
        return True

    async def _run_one(self, loaded: LoadedBot) -> None:
        """One bot, from its start to the runtime's stop, through its restarts."""
        name = loaded.config.name
        served_once = False
        failures_in_a_row = 0
        status = BotStatus(BotPhase.STARTING)
        while True:
            self._statuses[name] = status
            runner = self.runners[name]
            began = time.monotonic()
            # Inline, not a coroutine of its own: the chain of frames every idle bot keeps
            # suspended is one shorter (bench/ S4).
            error: Exception | None
            try:
                await runner.run(self._bots_stop, self.grace)
            except Exception as exc:  # an ExceptionGroup from the runner's TaskGroup, mostly
                error = exc
            else:
                # The connection ended without an error and unasked: still a failure.
                error = (None if self._bots_stop.is_set()
                         else BotkitError("its realtime connection closed"))
            served_once = served_once or runner.ready.is_set()
            if error is None:  # asked to stop
                self._statuses[name] = BotStatus(BotPhase.STOPPED, status.restarts,
                                                 status.reason)
                return
            reason = _describe(error)
            stopped = BotStatus(BotPhase.STOPPED, status.restarts, reason)
            if not served_once:
                # It never served: a refused token or user is a configuration mistake, to be
                # told at once, not retried behind a process that looks alive.
                if _unexpected(error) is not None:
                    log.error("bot %s failed to start", name, exc_info=error)
                self._statuses[name] = stopped
                self._fail(BotkitError(f"bot {name}: {reason}"), error)
                return
            if self._bots_stop.is_set():
                log.error("bot %s stopped while the runtime stopped: %s", name, reason,
                          exc_info=_unexpected(error))
                self._statuses[name] = stopped
                return
            if time.monotonic() - began >= self.max_restart_delay:
                failures_in_a_row = 0  # it served a good while: not a failure in a row
            delay = min(self.restart_delay * 2 ** failures_in_a_row, self.max_restart_delay)
            failures_in_a_row += 1
            self._statuses[name] = BotStatus(BotPhase.RESTARTING, status.restarts, reason)
            log.error("bot %s stopped: %s; the other bots go on, and it starts again in "
                      "%.0fs", name, reason, delay, exc_info=_unexpected(error))
            if await self._stops_within(delay):
                self._statuses[name] = stopped
                return
            assert self._new_runner is not None
            fresh = self._new_runner(loaded)
            fresh.core.adopt(runner.core)  # one bot, one set of counters across its runs
            self.runners[name] = fresh
            if self.replicas is not None:
                self.replicas.coordinator.reset(name)  # its rooms are taken again
            status = BotStatus(BotPhase.STARTING, status.restarts + 1, reason)

    async def _stops_within(self, delay: float) -> bool:
        """Whether the runtime is asked to stop within ``delay`` seconds."""
        try:
            async with asyncio.timeout(delay):
                await self._bots_stop.wait()
        except TimeoutError:
            return False
        return True

    def _fail(self, error: BotkitError, cause: BaseException) -> None:
        error.__cause__ = cause
        self._failures.append(error)
        self.stop_event.set()


def _terminal(error: BaseException | None) -> TerminalDisconnectError | None:
    """The server's refusal in ``error``, if that is what it is (the runner's TaskGroup wraps
    what its body raised in an ExceptionGroup)."""
    if isinstance(error, TerminalDisconnectError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _terminal(inner)
            if found is not None:
                return found
    return None


def _describe(error: BaseException | None) -> str:
    terminal = _terminal(error)
    if terminal is not None:
        return f"the server closed its connection for good: {terminal}"
    if isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        return _describe(error.exceptions[0])
    if isinstance(error, BotkitError):
        return str(error)
    return f"unexpected error {error!r}"


def _unexpected(error: BaseException | None) -> BaseException | None:
    """``error`` if it is a bug of ours (worth its traceback in the log), else None."""
    if error is None or _terminal(error) is not None or isinstance(error, BotkitError):
        return None
    return error


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

