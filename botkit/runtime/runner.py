"""One running bot: its realtime connection, its ordered lanes, its handlers and its jobs.

The path of an envelope: the realtime reader puts it in its room's lane (waiting when the lane
is full) → the lane's worker hands it to the bot's ``BotCore``, which validates
it, drops what is invalid, spoofed, the bot's own or another bot's (each counted), and runs the
handlers it routes to. This module is the transport around that core: connecting, subscribing,
lanes, reconnects and shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from botkit.bot import Bot
from botkit.config import BotsConfig
from botkit.context import BotServices, JobScheduler
from botkit.errors import RealtimeTimeoutError, SubscriptionError
from botkit.protocol.codes import DisconnectAction, disconnect_action
from botkit.protocol.events import Joined, Left, StreamGap
from botkit.protocol.types import Publication
from botkit.realtime import (
    ClientEvent,
    ConnectionState,
    ConnectionStateChanged,
    RealtimeClient,
    SubscriptionFailed,
)
from botkit.redact import safe_url
from botkit.runtime.core import BotCore, BotStats, LoadedBot, static_schedules
from botkit.runtime.lanes import Lane
from botkit.serverapi.client import ServerApi
from botkit.state.store import StateStore
from botkit.tokens import TokenMinter

__all__ = ["BotRunner", "BotStats", "LoadedBot", "static_schedules"]

log = logging.getLogger("botkit.runtime")


class _Resync:
    """Lane item: compare the room's presence with the server's after a (re)subscribe."""

    __slots__ = ("announce",)

    def __init__(self, announce: bool) -> None:
        self.announce = announce


_LaneItem = Publication | Joined | Left | _Resync
_ROOM_EVENTS = (Publication, Joined, Left)  # a tuple: isinstance() is slower with a union


class BotRunner:
    """One bot: its connection, its lanes, and the core that handles what they deliver."""

    def __init__(self, loaded: LoadedBot, config: BotsConfig, api: ServerApi, *,
                 bot_users: frozenset[str], state: StateStore | None = None,
                 scheduler: JobScheduler | None = None) -> None:
        self.name = loaded.config.name
        self.config = loaded.config
        xshathra = config.xshathra
        self.core = BotCore(loaded, project_id=xshathra.project_id, api=api,
                            bot_users=bot_users, state=state, scheduler=scheduler)
        self._limits = loaded.config.limits
        self.channels = self.core.channels
        minter = TokenMinter(xshathra.server_api_key.get_secret_value(), loaded.config.user_id,
                             ttl=xshathra.token_ttl)
        self.client = RealtimeClient(xshathra.realtime_url, minter.connection,
                                     minter.subscription, on_event=self._on_event,
                                     offer_event=self._offer_event)
        self._lanes: dict[str, Lane[_LaneItem]] = {
            channel: Lane(f"{self.config.name}/{room}", self._lane_handler(room),
                          maxsize=self._limits.lane_queue_size)
            for room, channel in self.channels.items()}
        self._was_connected = False
        self._closing = False  # our own close: its disconnect is no loss to warn about
        self.ready = asyncio.Event()

    @property
    def bot(self) -> Bot:
        return self.core.bot

    @property
    def stats(self) -> BotStats:
        return self.core.stats

    @property
    def services(self) -> BotServices:
        return self.core.services

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
        # Every room at once: one message out, one round trip, however many rooms.
        outcomes = await self.client.subscribe_all(self.channels.values())
        for room, channel in self.channels.items():
            error = outcomes[channel]
            if isinstance(error, RealtimeTimeoutError):
                # The client keeps trying in the background; the bot serves its other rooms.
                log.warning("bot %s: room %s is not subscribed yet; still trying",
                            self.config.name, room)
            elif isinstance(error, SubscriptionError):
                self.stats.subscription_failures += 1
                log.error("bot %s: cannot subscribe room %s: %s", self.config.name, room, error)
                continue
            elif error is not None:
                raise error  # the client ended (closed, or refused for good)
            await self._lanes[channel].put(_Resync(announce=False))
        await self.core.start()
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
                log.warning("bot %s: still connecting to %s", self.config.name,
                            safe_url(self.client.url))

    async def _shutdown(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        self._closing = True
        # What the connection received but the lanes had no room for yet goes in first.
        await self.client.aclose(flush_timeout=grace)
        for lane in self._lanes.values():
            if not await lane.drain(max(0.0, deadline - time.monotonic())):
                log.warning("bot %s: lane %s still held %d envelope(s) at the end of the "
                            "grace period", self.config.name, lane.name, lane.pending)
        for lane in self._lanes.values():
            await lane.stop()
        await self.core.stop()

    # -- scheduled jobs ----------------------------------------------------------------------

    async def run_job(self, job_id: str, run_time: datetime, target: str, room: str | None,
                      kwargs: Mapping[str, Any]) -> None:
        """One fire of a job (the scheduler calls it): see :meth:`BotCore.run_job`."""
        await self.core.run_job(job_id, run_time, target, room, kwargs)

    # -- from the connection -----------------------------------------------------------------

    def _offer_event(self, event: ClientEvent) -> bool:
        """The reader's fast path: a room's event goes into its lane if the lane has room.
        Declined (a full lane, any other event), it reaches _on_event in order, from the
        client's read-ahead, while the reader goes on reading."""
        if isinstance(event, _ROOM_EVENTS):
            lane = self._lanes.get(event.channel)
            return lane is None or lane.offer(event)
        return False

    async def _on_event(self, event: ClientEvent) -> None:
        """Called by the realtime reader: route to the room's lane (waiting when it is full)."""
        if isinstance(event, _ROOM_EVENTS):
            lane = self._lanes.get(event.channel)
            # offer() first: a lane with room takes the event without an await.
            if lane is not None and not lane.offer(event):
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
        elif (event.state is ConnectionState.DISCONNECTED and not self._closing
              and disconnect_action(event.code) is DisconnectAction.RECONNECT):
            # A terminal close is the supervisor's to report (it stops the bot alone).
            log.warning("bot %s: connection lost (%s %s); reconnecting", self.config.name,
                        event.code, event.reason)

    # -- in a lane ---------------------------------------------------------------------------

    def _lane_handler(self, room: str) -> Any:
        core = self.core

        async def handle(item: _LaneItem) -> None:
            if isinstance(item, Publication):
                await core.handle_publication(room, item)
            elif isinstance(item, Joined):
                await core.handle_join(room, item.info)
            elif isinstance(item, Left):
                await core.handle_leave(room, item.info)
            else:
                await core.resync(room, announce=item.announce)
        return handle
