"""One running bot: its realtime connection, its ordered lanes, its handlers and its jobs.

The path of an envelope: the realtime reader puts it in its room's lane (when the lane is full,
a bot with several rooms drops it to read it back from history later, see overflow.py; a bot
with one room waits) → the lane's worker hands it to the bot's ``BotCore``, which validates
it, drops what is invalid, spoofed, the bot's own or another bot's (each counted), and runs the
handlers it routes to, then moves the room's cursor (positions.py). This module is the transport
around that core: connecting, subscribing from the stored positions (catchup.py), lanes,
reconnects and shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from botkit.bot import Bot
from botkit.config import BotsConfig, resolve_catch_up
from botkit.context import BotServices, JobScheduler
from botkit.errors import RealtimeTimeoutError, SubscriptionError
from botkit.protocol.codes import DisconnectAction, disconnect_action
from botkit.protocol.events import Joined, Left, StreamGap
from botkit.protocol.types import Publication, StreamPosition
from botkit.realtime import (
    ClientEvent,
    ClientOptions,
    ConnectionState,
    ConnectionStateChanged,
    SubscriptionFailed,
    SubscriptionStarted,
)
from botkit.realtime.flag import Flag
from botkit.redact import safe_url
from botkit.runtime.core import BotCore, BotStats, LoadedBot, static_schedules
from botkit.runtime.lanes import Lane
from botkit.runtime.outbox import Outboxes, RoomLimits
from botkit.runtime.overflow import RoomFlow
from botkit.runtime.positions import Positions
from botkit.runtime.roomlane import Resync, RoomHandler
from botkit.runtime.shards import ShardedClient
from botkit.runtime.startgate import StartGate
from botkit.serverapi.client import ServerApi
from botkit.state.store import StateStore
from botkit.tokens import TokenMinter

__all__ = ["BotRunner", "BotStats", "LoadedBot", "static_schedules"]

log = logging.getLogger("botkit.runtime")


# Every bot's connections alike: one (frozen) instance, not a copy per bot (bench/ S4).
_CLIENT_OPTIONS = ClientOptions(subscription_events=True)

# How long the start waits for every room's first presence check (and so for what catch-up
# handles before it) before it calls the bot ready anyway.
_FIRST_RESYNC_WAIT = 10.0


_ROOM_EVENTS = (Publication, Joined, Left)  # a tuple: isinstance() is slower with a union


class BotRunner:
    """One bot: its connection, its lanes, and the core that handles what they deliver."""

    def __init__(self, loaded: LoadedBot, config: BotsConfig, api: ServerApi, *,
                 bot_users: frozenset[str], state: StateStore | None = None,
                 scheduler: JobScheduler | None = None,
                 holds: Callable[[str, str], bool] | None = None,
                 outboxes: Outboxes | None = None,
                 start_gate: StartGate | None = None) -> None:
        self.name = loaded.config.name
        self._start_gate = start_gate
        """Shared by the runtime's bots: how many start at once (runtime/startgate.py)."""
        self.config = loaded.config
        xshathra = config.xshathra
        self.catch_up = resolve_catch_up(config.catch_up, loaded.config.catch_up)
        self.core = BotCore(loaded, project_id=xshathra.project_id, api=api,
                            bot_users=bot_users, state=state, scheduler=scheduler,
                            catch_up=self.catch_up)
        self._limits = limits = loaded.config.limits
        self._outboxes = outboxes
        """The runtime's reply outboxes; None: each reply is published and waited for."""
        if outboxes is not None:
            self.core.services.outbox = outboxes.for_bot(
                self.core.services,
                RoomLimits(limits.room_rate, limits.room_burst, limits.outbox_size,
                           limits.reply_deadline),
                self.core.run_reply_failed_hooks if self.bot.reply_failed_hooks else None)
        self.channels = self.core.channels
        minter = TokenMinter(xshathra.server_api_key.get_secret_value(), loaded.config.user_id,
                             ttl=xshathra.token_ttl)
        self.positions = Positions(state, self.name, list(self.channels), self.core.presence)
        # As many connections as the rooms need (limits.rooms_per_connection each, or what
        # the server allows): one to the runner, see shards.py.
        self.client = ShardedClient(
            xshathra.realtime_url, minter.connection, minter.subscription,
            options=_CLIENT_OPTIONS,
            per_connection=self._limits.rooms_per_connection, on_event=self._on_event,
            offer_event=self._offer_event, on_state=self._on_state,
            position_of=self._position_of, on_moved=self._on_moved, name=self.name)
        if outboxes is not None:
            # A stored position never runs ahead of the replies still in the outbox.
            channels, name = self.channels, self.name
            self.positions.progress = lambda room: outboxes.progress(name, channels[room])
        self._holds = holds
        """With replicas: whether this replica holds (bot, room) now. The bot then subscribes
        only the rooms the cluster hands it (:meth:`take`, :meth:`drop`), and its lanes handle
        nothing of a room whose lease ran out."""
        if holds is not None:
            self.positions.owned = set()
        # One dict of the rooms' flows (each holds its lane and cursor), by channel: no
        # per-room dicts beside it (bench/ S4).
        self._flows: dict[str, RoomFlow] = {}
        for room, channel in self.channels.items():
            flow = RoomFlow(f"bot {self.name}: room {room}", self.positions.cursors[room],
                            self.stats, isolate=len(self.channels) > 1)
            handler = RoomHandler(self.name, room, self.core, self.positions, flow, holds)
            flow.lane = Lane(f"{self.config.name}/{room}", handler.handle,
                             maxsize=self._limits.lane_queue_size)
            self._flows[channel] = flow
        self._was_connected = 0  # connections (by index) once connected, as bits: no set
        self._closing = False  # our own close: its disconnect is no loss to warn about
        self.ready = Flag()  # not an asyncio.Event: its deque is ~630 B per bot (S4)

    @property
    def bot(self) -> Bot:
        return self.core.bot

    @property
    def stats(self) -> BotStats:
        return self.core.stats

    @property
    def services(self) -> BotServices:
        return self.core.services

    @property
    def lane_depth(self) -> int:
        """Room events queued in the bot's lanes, not yet handled."""
        return sum(flow.lane.pending for flow in self._flows.values())

    @property
    def outbox_depth(self) -> int:
        """The bot's replies in its outboxes, queued or in flight (not yet confirmed)."""
        return self._outboxes.pending(self.name) if self._outboxes is not None else 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, stop: Flag, grace: float) -> None:
        """Serve until ``stop`` is set; raise TerminalDisconnectError if the server refuses."""
        async with asyncio.TaskGroup() as group:
            for flow in self._flows.values():
                flow.lane.start(group)
            try:
                leave = await self._start_gate.enter() if self._start_gate else None
                try:
                    started = await self._start(stop)
                finally:
                    if leave is not None:
                        leave()
                if started:
                    # Until stopped, or a connection ended (its terminal error raised): one
                    # future, no task, and no frame of its own while the bot idles (bench/ S4).
                    await self.client.wait_closed(until=stop)
            finally:
                await self._shutdown(grace)

    async def _start(self, stop: Flag) -> bool:
        """Connect and subscribe; False: stopped before connected."""
        await self.client.start(wait=False)
        await self._wait_connected(stop)
        if stop.is_set():
            return False
        if self._holds is not None:
            await self.core.start()  # the rooms come one by one, as their leases do
            self.ready.set()
            log.info("bot %s connected as %s; its rooms come with their leases",
                     self.config.name, self.config.user_id)
        else:
            await self._subscribe_every_room()
        return True

    async def _subscribe_every_room(self) -> None:
        stored = await self.positions.load()
        since = {}
        for room, row in stored.items():
            if row.present is not None:
                # Who was here when the bot stopped: the start's resync greets only who came
                # meanwhile (and sees off who went), and nobody twice.
                self.core.presence[room].restore(row.present)
            if row.position is not None and self.catch_up.enabled:
                since[self.channels[room]] = row.position
        # Every room at once: one message out, one round trip, however many rooms.
        outcomes = await self.client.subscribe_all(self.channels.values(), since=since)
        first_resyncs: list[asyncio.Future[None]] = []
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
            first = asyncio.get_running_loop().create_future()
            first_resyncs.append(first)
            await self._flows[channel].lane.put(
                Resync(announce=stored[room].present is not None, done=first))
        # Ready once each room knows who is in it: a person joining from then on is greeted.
        if first_resyncs:
            await asyncio.wait(first_resyncs, timeout=_FIRST_RESYNC_WAIT)
        await self.core.start()
        self.ready.set()
        log.info("bot %s serving %d room(s) as %s", self.config.name, len(self.channels),
                 self.config.user_id)

    # -- replicas: rooms come and go with their leases ---------------------------------------

    async def take(self, room: str, *, settle: float = 0.5) -> None:
        """This replica now holds ``room``'s lease: subscribe it from the position its last
        owner stored, with the users it saw present (so the resync greets only newcomers).
        Returns once the room's first presence check is over (at most ``settle`` seconds: the
        caller renews leases in the same loop), so a person who joins after it is greeted."""
        channel = self.channels[room]
        lane = self._flows[channel].lane
        lane.clear()
        stored = await self.positions.take(room)
        presence = self.core.presence[room]
        presence.clients = {}
        if stored.present is not None:
            presence.restore(stored.present)
        since = ({channel: stored.position}
                 if stored.position is not None and self.catch_up.enabled else None)
        error = (await self.client.subscribe_all([channel], since=since))[channel]
        if isinstance(error, SubscriptionError):
            self.stats.subscription_failures += 1
            raise error
        if error is not None and not isinstance(error, RealtimeTimeoutError):
            raise error
        first = asyncio.get_running_loop().create_future()
        lane.push(Resync(announce=stored.present is not None, done=first))
        await asyncio.wait([first], timeout=settle)

    async def drop(self, room: str, hand_over: bool) -> None:
        """``room`` goes to another replica: stop taking its envelopes and drop what its lane
        holds (the next owner recovers them from the stored position). With ``hand_over`` the
        lease is still ours, so the room's position is written first."""
        channel = self.channels[room]
        lane = self._flows[channel].lane
        if hand_over:
            await self.client.unsubscribe(channel)
        dropped = lane.clear()
        if hand_over:
            # What the lane is handling now finishes and moves the cursor: the next owner
            # starts after it (bounded: a stuck handler's envelope is then handled again,
            # and its replies absorbed by their idempotency keys).
            await lane.drain(1.0)
            await self.positions.flush_room(room)
        self.positions.release(room)
        if dropped:
            log.info("bot %s: room %s left %d envelope(s) to its next owner", self.config.name,
                     room, dropped)
        if not hand_over:
            await self.client.unsubscribe(channel)

    async def _wait_connected(self, stop: Flag) -> None:
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
        lanes = [flow.lane for flow in self._flows.values()]
        for lane in lanes:
            if not await lane.drain(max(0.0, deadline - time.monotonic())):
                log.warning("bot %s: lane %s still held %d envelope(s) at the end of the "
                            "grace period", self.config.name, lane.name, lane.pending)
        for lane in lanes:
            await lane.stop()
        # The lanes' replies, then the last positions: those of envelopes whose handling
        # finished and whose replies are out (see positions.py).
        await self._drain_outbox(deadline)
        await self.positions.aclose()
        await self.core.stop()
        await self._drain_outbox(deadline)  # the on_stop hooks' replies

    async def _drain_outbox(self, deadline: float) -> None:
        outboxes = self._outboxes
        if outboxes is None:
            return
        if not await outboxes.drain(self.name, max(0.0, deadline - time.monotonic())):
            left = outboxes.abandon(self.name)
            if left:
                log.warning("bot %s: %d replies were still unsent at the end of the grace "
                            "period; given up (counted as failed)", self.config.name, left)

    # -- scheduled jobs ----------------------------------------------------------------------

    async def run_job(self, job_id: str, run_time: datetime, target: str, room: str | None,
                      kwargs: Mapping[str, Any]) -> None:
        """One fire of a job (the scheduler calls it): see :meth:`BotCore.run_job`."""
        await self.core.run_job(job_id, run_time, target, room, kwargs)

    # -- from the connection -----------------------------------------------------------------

    def _offer_event(self, event: ClientEvent) -> bool:
        """The reader's fast path: a room's event goes into its lane if the lane has room, or
        is dropped to be read back from history when the room overflows (overflow.py).
        Declined (a full lane that may not overflow, any other event), it reaches _on_event
        in order, from the client's read-ahead, while the reader goes on reading."""
        if isinstance(event, _ROOM_EVENTS):
            flow = self._flows.get(event.channel)
            return flow is None or flow.offer(event)
        return False

    async def _on_event(self, event: ClientEvent) -> None:
        """Called by the realtime reader: route to the room's lane (waiting when it is full and
        may not overflow)."""
        if isinstance(event, _ROOM_EVENTS):
            flow = self._flows.get(event.channel)
            # offer() first: a lane with room (or an overflowing room) takes it without waiting.
            if flow is not None and not flow.offer(event):
                await flow.lane.put(event)
        elif isinstance(event, SubscriptionStarted | StreamGap):
            flow = self._flows.get(event.channel)
            if flow is not None:
                flow.lane.push(event)  # never waits: a full room must not hold up the others
        elif isinstance(event, SubscriptionFailed):
            self.stats.subscription_failures += 1

    async def _on_state(self, index: int, event: ConnectionStateChanged) -> None:
        """A change of the bot's connection ``index`` (of several when its rooms need them)."""
        if event.state is ConnectionState.CONNECTED:
            if self._was_connected >> index & 1:
                self.stats.reconnects += 1
                # Joins and leaves are not recovered like publications: compare instead, in
                # this connection's rooms only (the others never left).
                for channel in self.client.channels_on(index):
                    self._flows[channel].lane.push(Resync(announce=True))
            self._was_connected |= 1 << index
        elif (event.state is ConnectionState.DISCONNECTED and not self._closing
              and disconnect_action(event.code) is DisconnectAction.RECONNECT):
            # A terminal close is the supervisor's to report (it stops the bot alone).
            shards = len(self.client.shards)
            which = f" {index + 1} of {shards}" if shards > 1 else ""
            log.warning("bot %s: connection%s lost (%s %s); reconnecting", self.config.name,
                        which, event.code, event.reason)

    def _position_of(self, channel: str) -> StreamPosition | None:
        """Where ``channel``'s lane stands: a room moved to another connection goes on from
        there."""
        return self._flows[channel].cursor.position()

    def _on_moved(self, channels: list[str]) -> None:
        """Rooms moved to another connection (the server refused them on theirs): compare
        presence, as after a reconnect."""
        for channel in channels:
            self._flows[channel].lane.push(Resync(announce=True))
