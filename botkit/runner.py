"""One running bot: its realtime connection, its ordered lanes, its handlers and its jobs.

The path of an envelope: the realtime reader puts it in its room's lane (waiting when the lane
is full) → the lane's worker validates it, drops what is invalid, spoofed, the bot's own or
another bot's (each counted) → the bot's routes pick handlers → each runs under the bot's
middleware, timeout and error isolation, sharing one Context so replies are numbered in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.util import ref_to_obj
from pydantic import ValidationError

from botkit.api import ServerApi
from botkit.bot import Bot, Invocation
from botkit.config import BotConfig, BotsConfig
from botkit.context import BotServices, Context
from botkit.envelope import Envelope, UserJoined, UserLeft, parse_envelope, utc_now
from botkit.exceptions import (
    BotkitError,
    EnvelopeError,
    RealtimeTimeoutError,
    SubscriptionError,
)
from botkit.lanes import Lane
from botkit.presence import RoomPresence
from botkit.protocol.events import Joined, Left, StreamGap
from botkit.protocol.types import ClientInfo, Publication
from botkit.realtime import (
    ClientEvent,
    ConnectionState,
    ConnectionStateChanged,
    RealtimeClient,
    SubscriptionFailed,
)
from botkit.scheduler import BotScheduler, ScheduleSpec
from botkit.state import BotState, StateStore
from botkit.tokens import TokenMinter
from botkit.ulid import new_ulid

__all__ = ["BotRunner", "BotStats", "LoadedBot", "static_schedules"]

log = logging.getLogger("botkit.runtime")


@dataclass(slots=True)
class BotStats:
    """Counters of one running bot; every dropped envelope is counted under its reason."""

    received: int = 0
    handled: int = 0
    invalid: int = 0
    spoofed: int = 0
    own: int = 0
    from_bots: int = 0
    handler_errors: int = 0
    handler_timeouts: int = 0
    jobs_run: int = 0
    job_errors: int = 0
    gaps: int = 0
    subscription_failures: int = 0


@dataclass(frozen=True, slots=True)
class LoadedBot:
    config: BotConfig
    bot: Bot
    settings: Any


class _Resync:
    """Lane item: compare the room's presence with the server's after a (re)subscribe."""

    __slots__ = ("announce",)

    def __init__(self, announce: bool) -> None:
        self.announce = announce


_LaneItem = Publication | Joined | Left | _Resync


class BotRunner:
    """One bot: its connection, its lanes, its handlers."""

    def __init__(self, loaded: LoadedBot, config: BotsConfig, api: ServerApi, *,
                 bot_users: frozenset[str], state: StateStore | None = None,
                 scheduler: BotScheduler | None = None) -> None:
        self.name = loaded.config.name
        self.config = loaded.config
        self.bot = loaded.bot
        xshathra = config.xshathra
        self.stats = BotStats()
        self._bot_users = bot_users - {loaded.config.user_id}
        self._limits = loaded.config.limits
        self._rooms = {room.id: room.channel or "" for room in loaded.config.rooms}
        self.channels = loaded.config.channels(xshathra.project_id)
        self._room_of = {channel: room for room, channel in self.channels.items()}
        self.services = BotServices(
            name=loaded.config.name, user_id=loaded.config.user_id,
            project_id=xshathra.project_id, bot=loaded.bot, settings=loaded.settings, api=api,
            channels=dict(self.channels), max_text_length=self._limits.max_text_length,
            logger=logging.getLogger(f"botkit.bot.{loaded.config.name}"),
            state=BotState(state, loaded.config.name) if state is not None else None,
            scheduler=scheduler)
        minter = TokenMinter(xshathra.server_api_key.get_secret_value(), loaded.config.user_id,
                             ttl=xshathra.token_ttl)
        self.client = RealtimeClient(xshathra.realtime_url, minter.connection,
                                     minter.subscription, on_event=self._on_event)
        self._lanes: dict[str, Lane[_LaneItem]] = {
            channel: Lane(f"{self.config.name}/{room}", self._lane_handler(room),
                          maxsize=self._limits.lane_queue_size)
            for room, channel in self.channels.items()}
        self._presence = {room: RoomPresence() for room in self.channels}
        self._was_connected = False
        self.ready = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, grace: float) -> None:
        """Serve until ``stop`` is set; raise TerminalDisconnectError if the server refuses."""
        async with asyncio.TaskGroup() as group:
            for lane in self._lanes.values():
                lane.start(group)
            try:
                await self._serve(stop)
            finally:
                await self._shutdown(grace)

    async def _serve(self, stop: asyncio.Event) -> None:
        await self.client.start(wait=False)
        await self._wait_connected(stop)
        if stop.is_set():
            return
        for room, channel in self.channels.items():
            try:
                await self.client.subscribe(channel)
            except SubscriptionError as exc:
                self.stats.subscription_failures += 1
                log.error("bot %s: cannot subscribe room %s: %s", self.config.name, room, exc)
                continue
            except RealtimeTimeoutError:
                # The client keeps trying in the background; the bot serves its other rooms.
                log.warning("bot %s: room %s is not subscribed yet; still trying",
                            self.config.name, room)
            await self._lanes[channel].put(_Resync(announce=False))
        await self._run_hooks(self.bot.start_hooks, "on_start")
        self.ready.set()
        log.info("bot %s serving %d room(s) as %s", self.config.name, len(self.channels),
                 self.config.user_id)
        stopped = asyncio.ensure_future(stop.wait())
        closed = asyncio.ensure_future(self.client.wait_closed())
        try:
            await asyncio.wait([stopped, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            closed.cancel()
        if closed.done() and not closed.cancelled() and closed.exception() is not None:
            raise closed.exception()  # type: ignore[misc]

    async def _wait_connected(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.client.wait_connected(15.0)
                return
            except RealtimeTimeoutError:
                log.warning("bot %s: still connecting to %s", self.config.name, self.client.url)

    async def _shutdown(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        await self.client.aclose()
        for lane in self._lanes.values():
            if not await lane.drain(max(0.0, deadline - time.monotonic())):
                log.warning("bot %s: lane %s still held %d envelope(s) at the end of the "
                            "grace period", self.config.name, lane.name, lane.pending)
        for lane in self._lanes.values():
            await lane.stop()
        await self._run_hooks(self.bot.stop_hooks, "on_stop")

    async def _run_hooks(self, hooks: Sequence[Any], what: str) -> None:
        for hook in hooks:
            ctx = Context(self.services)
            try:
                async with asyncio.timeout(self._limits.handler_timeout):
                    if asyncio.iscoroutinefunction(hook):
                        await hook(ctx)
                    else:
                        await asyncio.to_thread(hook, ctx)
            except TimeoutError:
                log.error("bot %s: %s hook %s timed out", self.config.name, what,
                          getattr(hook, "__qualname__", hook))
            except Exception:
                log.exception("bot %s: %s hook %s failed", self.config.name, what,
                              getattr(hook, "__qualname__", hook))

    # -- scheduled jobs ----------------------------------------------------------------------

    async def run_job(self, job_id: str, run_time: datetime, target: str, room: str | None,
                      kwargs: Mapping[str, Any]) -> None:
        """One fire of a job. Its replies' idempotency keys name the job and the scheduled
        time, so a fire replayed after a restart is absorbed by the server."""
        stamp = run_time.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3]
        ctx = Context(self.services, room=room, cause=f"job:{job_id}@{stamp}")
        try:
            async with asyncio.timeout(self._limits.handler_timeout):
                await self._call_job(ctx, target, kwargs)
        except TimeoutError:
            self.stats.job_errors += 1
            log.error("bot %s: job %s timed out after %.1fs", self.name, job_id,
                      self._limits.handler_timeout)
        except Exception:
            self.stats.job_errors += 1
            log.exception("bot %s: job %s failed", self.name, job_id)
        else:
            self.stats.jobs_run += 1

    async def _call_job(self, ctx: Context, target: str, kwargs: Mapping[str, Any]) -> None:
        scheduler = self.services.scheduler
        spec = scheduler.static_spec(self.name, target) if scheduler is not None else None
        if spec is not None and spec.text is not None:
            await ctx.reply(spec.text)
            return
        fn = spec.fn if spec is not None else ref_to_obj(target)
        if fn is None:
            raise BotkitError(f"job target {target!r} is not known")
        if asyncio.iscoroutinefunction(fn):
            result = await fn(ctx, **kwargs)
        else:
            result = await asyncio.to_thread(fn, ctx, **kwargs)
        if isinstance(result, str) and result and ctx.room is not None:
            await ctx.reply(result)

    # -- from the connection -----------------------------------------------------------------

    async def _on_event(self, event: ClientEvent) -> None:
        """Called by the realtime reader: route to the room's lane (waiting when it is full)."""
        if isinstance(event, Publication | Joined | Left):
            lane = self._lanes.get(event.channel)
            if lane is not None:
                await lane.put(event)
        elif isinstance(event, StreamGap):
            self.stats.gaps += 1
            log.warning("bot %s: messages in %s may have been missed while disconnected "
                        "(history could not be recovered)", self.config.name, event.channel)
        elif isinstance(event, SubscriptionFailed):
            self.stats.subscription_failures += 1
        elif isinstance(event, ConnectionStateChanged):
            await self._on_state(event)

    async def _on_state(self, event: ConnectionStateChanged) -> None:
        if event.state is ConnectionState.CONNECTED:
            if self._was_connected:
                # Joins and leaves are not recovered like publications: compare instead.
                for lane in self._lanes.values():
                    await lane.put(_Resync(announce=True))
            self._was_connected = True
        elif event.state is ConnectionState.DISCONNECTED:
            log.warning("bot %s: connection lost (%s %s); reconnecting", self.config.name,
                        event.code, event.reason)

    # -- in a lane ---------------------------------------------------------------------------

    def _lane_handler(self, room: str) -> Any:
        async def handle(item: _LaneItem) -> None:
            if isinstance(item, Publication):
                await self._handle_publication(room, item)
            elif isinstance(item, Joined):
                if self._presence[room].join(item.info):
                    await self._handle_presence(room, item.info, joined=True)
            elif isinstance(item, Left):
                if self._presence[room].leave(item.info):
                    await self._handle_presence(room, item.info, joined=False)
            else:
                await self._resync(room, item.announce)
        return handle

    async def _handle_publication(self, room: str, publication: Publication) -> None:
        stats = self.stats
        stats.received += 1
        try:
            envelope = parse_envelope(publication.data,
                                      max_text_length=self._limits.max_text_length)
        except EnvelopeError as exc:
            stats.invalid += 1
            log.warning("bot %s: dropped an invalid envelope in %s (offset %d): %s",
                        self.config.name, room, publication.offset, exc)
            return
        info = publication.info
        if info is not None and envelope.sender_id != info.user:
            stats.spoofed += 1
            log.warning("bot %s: dropped envelope %s in %s: senderId %r but the server says "
                        "user %r published it", self.config.name, envelope.id, room,
                        envelope.sender_id, info.user)
            return
        await self._dispatch(room, envelope)

    async def _handle_presence(self, room: str, info: ClientInfo, *, joined: bool) -> None:
        if info.user == self.config.user_id:
            return
        name = info.conn_info.get("name") if isinstance(info.conn_info, dict) else None
        model = UserJoined if joined else UserLeft
        try:
            envelope = model(id=f"presence-{'join' if joined else 'leave'}-{info.client}"[:128],
                             room_id=room, sender_id=info.user, user_id=info.user,
                             name=name if isinstance(name, str) else None, sent_at=utc_now())
        except ValidationError:
            # A user id no envelope may carry (over 128 characters): dropped like any invalid
            # envelope. Raised here it would end the lane, and with it the bot.
            self.stats.invalid += 1
            log.warning("bot %s: ignored a presence %s in %s: the user id (%d characters) is "
                        "not a valid envelope id", self.config.name,
                        "join" if joined else "leave", room, len(info.user))
            return
        await self._dispatch(room, envelope)

    async def _resync(self, room: str, announce: bool) -> None:
        try:
            present = await self.services.api.presence(self.channels[room])
        except BotkitError as exc:
            log.warning("bot %s: could not read presence of %s: %s", self.config.name, room,
                        exc)
            return
        joined, left = self._presence[room].resync(present.values())
        if not announce:
            return
        for info in joined:
            await self._handle_presence(room, info, joined=True)
        for user in left:
            # The connection that left is unknown; a fresh id keeps each leave's envelope (and
            # so its replies' idempotency keys) apart from every other leave's.
            info = ClientInfo(user=user, client=f"resync-{new_ulid()}")
            await self._handle_presence(room, info, joined=False)

    async def _dispatch(self, room: str, envelope: Envelope) -> None:
        if envelope.sender_id == self.config.user_id:
            self.stats.own += 1
            return
        if envelope.sender_id in self._bot_users:
            # Bots of one runtime never answer each other: no reply loops.
            self.stats.from_bots += 1
            return
        invocations = self.bot.route(envelope, room)
        if not invocations:
            return
        self.stats.handled += 1
        # One context for all the handlers of an envelope: reply positions, and with them the
        # idempotency keys, run on across handlers. A context each would give two handlers'
        # first replies the same key, and the server would drop the second as a repeat.
        ctx = Context(self.services, envelope, room)
        for invocation in invocations:
            await self._invoke(ctx, invocation)

    async def _invoke(self, ctx: Context, invocation: Invocation) -> None:
        async def call() -> None:
            await invocation(ctx)

        chain = call
        for middleware in reversed(self.bot.middlewares):
            chain = _wrap(middleware, ctx, chain)
        envelope_id = ctx.event.id if ctx.event is not None else "-"
        deadline = asyncio.timeout(self._limits.handler_timeout)
        try:
            async with deadline:
                await chain()
        except TimeoutError:
            if not deadline.expired():
                # The handler's own TimeoutError (an upstream call of its): an error like others.
                self.stats.handler_errors += 1
                log.exception("bot %s: handler %s failed on envelope %s", self.config.name,
                              invocation.route.name, envelope_id)
                return
            self.stats.handler_timeouts += 1
            log.error("bot %s: handler %s timed out after %.1fs on envelope %s",
                      self.config.name, invocation.route.name, self._limits.handler_timeout,
                      envelope_id)
        except Exception:
            self.stats.handler_errors += 1
            log.exception("bot %s: handler %s failed on envelope %s", self.config.name,
                          invocation.route.name, envelope_id)


def static_schedules(loaded: LoadedBot) -> list[ScheduleSpec]:
    """A bot's static jobs: its ``@bot.every``/``@bot.cron`` handlers and the ``schedules:``
    of its configuration (fixed texts)."""
    rooms = [room.id for room in loaded.config.rooms]
    specs = [spec if spec.rooms else ScheduleSpec(spec.key, spec.trigger, tuple(rooms),
                                                  fn=spec.fn)
             for spec in loaded.bot.schedules]
    specs += [ScheduleSpec(f"schedules[{index}]", item.trigger(), item.target_rooms(rooms),
                           text=item.text)
              for index, item in enumerate(loaded.config.schedules)]
    return specs


def _wrap(middleware: Any, ctx: Context, call_next: Any) -> Any:
    async def call() -> None:
        await middleware(ctx, call_next)
    return call


