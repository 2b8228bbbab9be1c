"""One bot's realtime connections: its rooms spread over as many as the server's channel limit
needs, each room on exactly one of them.

Xshathra (like Centrifugo, whose ``client.channel_limit`` is 128 by default) refuses a subscribe
past a per-connection cap with error 106 ("limit exceeded"). :class:`ShardedClient` holds N
:class:`~botkit.realtime.RealtimeClient` s of the same user and token provider and offers the
part of their interface the runner uses, so the runner sees one connection:

- rooms go to the lowest connection with room left (see shardplan.py), at most
  ``limits.rooms_per_connection`` each; new connections open with bounded concurrency and a
  random delay (:data:`OPEN_CONCURRENCY`, :data:`OPEN_JITTER`), so a restart of a bot in
  thousands of rooms does not open them all in the same millisecond;
- a 106 refusal teaches the pool the server's real cap (what that connection did accept): the
  refused rooms move to a connection with room (a new one if needed), from the position the
  room's lane stands at; said once in the log;
- each connection recovers, refreshes its tokens and resubscribes on its own: a cut of one
  leaves the rooms of the others alone (the runner resyncs presence only in the cut one's
  rooms, see ``on_state``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping

from botkit.errors import BotkitError, ConnectionClosedError, SubscriptionError
from botkit.protocol.codes import LIMIT_EXCEEDED
from botkit.protocol.types import StreamPosition
from botkit.realtime import (
    ClientEvent,
    ClientOptions,
    ConnectionState,
    ConnectionStateChanged,
    RealtimeClient,
    SubscriptionFailed,
    SubscriptionTokenProvider,
    TokenProvider,
)
from botkit.realtime.delivery import EventOffer
from botkit.realtime.flag import Flag
from botkit.runtime.shardplan import plan

__all__ = ["OPEN_CONCURRENCY", "OPEN_JITTER", "Shard", "ShardedClient"]

log = logging.getLogger("botkit.runtime")

OPEN_CONCURRENCY = 4
"""Connections of one bot opening (connect and first subscribe) at the same time."""
OPEN_JITTER = 0.05
"""Each new connection waits a random 0 to this many seconds before it opens."""

_JITTER = random.Random()
_MAX_ROUNDS = 8
"""Placements of one subscribe_all before the rooms the server still refuses are reported
(each round lowers the capacity or moves the refused rooms to a new connection)."""
_GATHER_REFUSALS = 0.05
"""Seconds a background move waits for the other refusals of the same resubscribe."""

StateSink = Callable[[int, ConnectionStateChanged], Awaitable[None]]
"""Told of each connection's state changes, with the connection's index."""


def _limit_exceeded(error: BotkitError | None) -> bool:
    return isinstance(error, SubscriptionError) and error.code == LIMIT_EXCEEDED


class Shard:
    """One of the bot's connections and the channels placed on it."""

    __slots__ = ("channels", "client", "index", "started")

    def __init__(self, index: int, client: RealtimeClient) -> None:
        self.index = index
        self.client = client
        self.channels: set[str] = set()
        self.started = False

    @property
    def state(self) -> ConnectionState:
        # Not opened yet: on its way, as far as readiness is concerned.
        return self.client.state if self.started else ConnectionState.CONNECTING


class ShardedClient:
    """The realtime connections of one bot, used as one (see the module's docstring)."""

    def __init__(self, url: str, token_provider: TokenProvider,
                 subscription_token_provider: SubscriptionTokenProvider, *,
                 options: ClientOptions, per_connection: int,
                 on_event: Callable[[ClientEvent], Awaitable[None]], offer_event: EventOffer,
                 on_state: StateSink,
                 position_of: Callable[[str], StreamPosition | None],
                 on_moved: Callable[[list[str]], None], name: str,
                 rng: random.Random | None = None) -> None:
        if per_connection < 1:
            raise ValueError("per_connection must be at least 1")
        self.url = url
        self.name = name
        self.capacity = per_connection
        """Rooms per connection: the setting, or less once the server refused more (106)."""
        self._connect = (token_provider, subscription_token_provider, options)
        self._on_event = on_event
        self._offer_event = offer_event
        self._on_state = on_state
        self._position_of = position_of
        self._on_moved = on_moved
        self._rng = rng or _JITTER
        self.shards: list[Shard] = []
        self._where: dict[str, Shard] = {}
        self._placing: dict[str, None] = {}  # a set: an empty set is 216 bytes, a dict 64
        """Channels a :meth:`subscribe_all` is placing: their refusals are its to handle."""
        self._gate = asyncio.Semaphore(OPEN_CONCURRENCY)
        self._watchers: list[asyncio.Future[None]] = []
        """wait_closed()'s futures: each is linked to every started connection's end."""
        self._refused: list[str] = []
        self._mover: asyncio.Task[None] | None = None
        self._split_said = False
        self._closing = False

    def __repr__(self) -> str:
        return f"<ShardedClient {self.name}: {len(self.shards)} connection(s)>"

    # -- what it holds -------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """CONNECTED when every connection is; else the worst of them."""
        states = {shard.state for shard in self.shards}
        for state in (ConnectionState.CLOSED, ConnectionState.DISCONNECTED,
                      ConnectionState.CONNECTING):
            if state in states:
                return state
        return ConnectionState.CONNECTED if states else ConnectionState.CLOSED

    @property
    def connected(self) -> int:
        """How many of the connections are connected now."""
        return sum(shard.state is ConnectionState.CONNECTED for shard in self.shards)

    @property
    def reconnects(self) -> int:
        return sum(shard.client.reconnects for shard in self.shards)

    def shard_of(self, channel: str) -> Shard | None:
        return self._where.get(channel)

    def channels_on(self, index: int) -> list[str]:
        return list(self.shards[index].channels) if index < len(self.shards) else []

    def is_subscribed(self, channel: str) -> bool:
        shard = self._where.get(channel)
        return shard is not None and shard.client.is_subscribed(channel)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, *, wait: bool = True) -> None:
        """Open the first connection (the others open as rooms need them)."""
        shard = self._shard(0)
        if not shard.started:
            self._started(shard)
            await shard.client.start(wait=False)
        if wait:
            await self.wait_connected(shard.client.options.connect_timeout * 3)

    async def wait_connected(self, timeout: float) -> None:
        """Return once every open connection is connected (RealtimeTimeoutError if not within
        ``timeout``; the terminal error if one was refused for good)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for shard in list(self.shards):
            if shard.started:
                await shard.client.wait_connected(max(0.0, deadline - loop.time()))

    async def wait_closed(self, until: Flag | None = None) -> None:
        """Wait until one connection ends for good, and raise why (a connection ends only
        when closed, or refused by the server for good: the bot cannot go on either way); or
        return once ``until`` is set.

        One future linked to each connection's end (and to each one opened meanwhile), not a
        task per connection: every idle bot waits here (bench/ S4)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.append(waiter)
        if until is not None:
            until.link(waiter)
        for shard in self.shards:
            if shard.started:
                shard.client.ended.link(waiter)
        try:
            await waiter
        finally:
            self._watchers.remove(waiter)
            if until is not None:
                until.unlink(waiter)
            for shard in self.shards:
                shard.client.ended.unlink(waiter)
        for shard in self.shards:
            if shard.started and shard.client.ended.is_set():
                await shard.client.wait_closed()  # raises the terminal error, if any
                return

    def _started(self, shard: Shard) -> None:
        shard.started = True
        for waiter in self._watchers:
            shard.client.ended.link(waiter)

    async def aclose(self, *, flush_timeout: float = 5.0) -> None:
        """Close every connection (together: each closes cleanly, within its own bound)."""
        self._closing = True
        mover = self._mover
        if mover is not None and not mover.done():
            mover.cancel()
            await asyncio.wait([mover])
        async with asyncio.TaskGroup() as group:
            for shard in self.shards:
                group.create_task(shard.client.aclose(flush_timeout=flush_timeout))

    # -- rooms -----------------------------------------------------------------------------------

    async def subscribe_all(self, channels: Iterable[str], *,
                            since: Mapping[str, StreamPosition] | None = None,
                            timeout: float | None = None) -> dict[str, BotkitError | None]:
        """Subscribe each channel on one connection (see RealtimeClient.subscribe_all): a
        channel already placed stays where it is; new ones go where ``shardplan.plan`` puts them,
        and those the server refuses for its channel limit move on until one holds them."""
        wanted = list(dict.fromkeys(channels))
        fresh = [channel for channel in wanted if channel not in self._where]
        self._placing.update(dict.fromkeys(fresh))
        outcomes: dict[str, BotkitError | None] = {}
        try:
            groups: dict[Shard, list[str]] = {}
            for channel in wanted:
                if channel in self._where:
                    groups.setdefault(self._where[channel], []).append(channel)
            batch = fresh
            for _ in range(_MAX_ROUNDS):
                if not (groups or batch):
                    break
                self._place(batch, groups)
                results = await self._subscribe_groups(groups, since, timeout)
                groups = {}
                batch = []
                refused: dict[Shard, list[str]] = {}
                for channel, error in results.items():
                    shard = self._where.get(channel)
                    if _limit_exceeded(error) and shard is not None:
                        refused.setdefault(shard, []).append(channel)
                    else:
                        outcomes[channel] = error
                for shard, lost in refused.items():
                    if not self._learn(shard, lost):
                        for channel in lost:
                            outcomes[channel] = results[channel]
                    else:
                        batch.extend(lost)
            for channel in batch:  # still refused after every round: a server gone strange
                outcomes[channel] = SubscriptionError(channel, LIMIT_EXCEEDED,
                                                      "limit exceeded on every connection")
        finally:
            for channel in fresh:
                self._placing.pop(channel, None)
        return outcomes

    async def unsubscribe(self, channel: str) -> None:
        shard = self._where.pop(channel, None)
        if shard is not None:
            shard.channels.discard(channel)
            await shard.client.unsubscribe(channel)

    # -- inside ------------------------------------------------------------------------------

    def _shard(self, index: int) -> Shard:
        while len(self.shards) <= index:
            self.shards.append(Shard(len(self.shards), self._new_client(len(self.shards))))
        return self.shards[index]

    def _new_client(self, index: int) -> RealtimeClient:
        token_provider, subscription_token_provider, options = self._connect
        on_event, on_state = self._on_event, self._on_state

        async def deliver(event: ClientEvent) -> None:
            if isinstance(event, ConnectionStateChanged):
                await on_state(index, event)
            elif isinstance(event, SubscriptionFailed) and _limit_exceeded(event.error):
                self._refused_later(index, event.channel)  # never the runner's: a move
            else:
                await on_event(event)

        return RealtimeClient(self.url, token_provider, subscription_token_provider,
                              options=options, on_event=deliver, offer_event=self._offer_event)

    def _place(self, channels: list[str], groups: dict[Shard, list[str]]) -> None:
        counts = plan([len(shard.channels) for shard in self.shards], self.capacity,
                      len(channels))
        start = 0
        for index, count in enumerate(counts):
            if not count:
                continue
            shard = self._shard(index)
            placed = channels[start:start + count]
            start += count
            shard.channels.update(placed)
            for channel in placed:
                self._where[channel] = shard
            groups.setdefault(shard, []).extend(placed)

    async def _subscribe_groups(self, groups: dict[Shard, list[str]],
                                since: Mapping[str, StreamPosition] | None,
                                timeout: float | None) -> dict[str, BotkitError | None]:
        results: dict[str, BotkitError | None] = {}

        async def one(shard: Shard, channels: list[str]) -> None:
            positions = {channel: since[channel] for channel in channels
                         if since is not None and channel in since}
            if shard.started:
                results.update(await shard.client.subscribe_all(
                    channels, since=positions, timeout=timeout))
                return
            async with self._gate:
                await asyncio.sleep(OPEN_JITTER * self._rng.random())
                if self._closing:  # stopped while waiting its turn: open nothing more
                    closed = ConnectionClosedError("the bot's connections are closing")
                    results.update(dict.fromkeys(channels, closed))
                    return
                if not shard.started:
                    self._started(shard)
                    # Wanted before the socket opens: the rooms go out with the connect.
                    await shard.client.start(wait=False)
                results.update(await shard.client.subscribe_all(
                    channels, since=positions, timeout=timeout))

        try:
            async with asyncio.TaskGroup() as group:
                for shard, channels in groups.items():
                    group.create_task(one(shard, channels))
        except BaseExceptionGroup as failed:
            # The runner expects what one client raises (its terminal error), not a group.
            raise failed.exceptions[0] from None
        return results

    def _learn(self, shard: Shard, refused: list[str]) -> bool:
        """``shard`` refused ``refused`` for the server's channel limit: lower the capacity to
        what it holds, and say so once. False when it held nothing (the server takes no room
        on a connection of this user at all: nowhere to move them)."""
        for channel in refused:
            shard.channels.discard(channel)
            self._where.pop(channel, None)
        # What the server took: the subscribed ones (its replies come in order, so those it
        # accepted are known before its first refusal), unless the connection dropped since.
        held = (sum(1 for channel in shard.channels if shard.client.is_subscribed(channel))
                or len(shard.channels))
        if held < 1:
            return False
        if held < self.capacity:
            if not self._split_said:
                self._split_said = True
                log.warning("bot %s: the server holds at most %d rooms per connection (it "
                            "refused more: 106 limit exceeded); the bot splits its rooms over "
                            "more connections. Set limits.rooms_per_connection: %d to plan "
                            "for it", self.name, held, held)
            self.capacity = held
        return True

    def _refused_later(self, index: int, channel: str) -> None:
        """A 106 outside :meth:`subscribe_all` (a resubscribe after a reconnect to a server
        whose limit went down): move the room, in the background, with the others refused."""
        shard = self.shards[index] if index < len(self.shards) else None
        if (self._closing or shard is None or channel in self._placing
                or self._where.get(channel) is not shard):
            return  # placed elsewhere meanwhile, or being placed by subscribe_all
        self._refused.append(channel)
        if self._mover is None or self._mover.done():
            # Owned here: aclose() cancels it and waits for it.
            self._mover = asyncio.create_task(self._move(), name=f"bot {self.name}: split")

    async def _move(self) -> None:
        await asyncio.sleep(_GATHER_REFUSALS)  # the other refusals of the reply come first
        while self._refused:
            refused, self._refused = self._refused, []
            by_shard: dict[Shard, list[str]] = {}
            for channel in refused:
                shard = self._where.get(channel)
                if shard is not None:
                    by_shard.setdefault(shard, []).append(channel)
            moving: list[str] = []
            for shard, lost in by_shard.items():
                if self._learn(shard, lost):
                    moving.extend(lost)
                else:
                    log.error("bot %s: the server refused %d room(s) on a connection that "
                              "held no other (106 limit exceeded): not subscribed", self.name,
                              len(lost))
            if not moving:
                continue
            # A moved room goes on from where its lane stands, as after a reconnect.
            positions = {channel: position for channel in moving
                         if (position := self._position_of(channel)) is not None}
            try:
                outcomes = await self.subscribe_all(moving, since=positions)
            except BotkitError as exc:
                # Closing, or a connection refused for good: the runner hears of that from
                # wait_closed(); these rooms are then moot.
                log.info("bot %s: moving %d room(s) stopped: %s", self.name, len(moving), exc)
                return
            for channel, error in outcomes.items():
                if error is not None:
                    log.error("bot %s: cannot move %s to another connection: %s", self.name,
                              channel, error)
            self._on_moved([channel for channel in moving if outcomes.get(channel) is None])
