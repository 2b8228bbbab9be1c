"""The channels a client wants subscribed, kept subscribed across reconnects.

:class:`Subscriptions` remembers what the user asked for (and who waits for the first outcome),
queues one subscribe per channel that is wanted but neither subscribed nor on its way, all at
once, so that they go out in one message and are answered in one round trip; settles the
replies; retries transient refusals after a backoff (a deadline in the protocol's timers); and
gives up on a channel the server refuses for good, telling the consumer with
:class:`~botkit.realtime.events.SubscriptionFailed`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from botkit.errors import BotkitError, ProtocolError, ReplyError, SubscriptionError
from botkit.protocol import (
    ClientProtocol,
    ErrorAction,
    ErrorReply,
    ReplyEvent,
    Subscribed,
    Unsubscribed,
    error_action,
)
from botkit.protocol.codes import LIMIT_EXCEEDED
from botkit.realtime.delivery import Delivery
from botkit.realtime.events import SubscriptionEnded, SubscriptionFailed, SubscriptionStarted
from botkit.realtime.options import ClientOptions, SubscriptionTokenProvider, mint

__all__ = ["Subscriptions"]

log = logging.getLogger("botkit.realtime")


@dataclass(slots=True)
class _Wanted:
    channel: str
    first_result: asyncio.Future[None]
    attempts: int = 0


class Subscriptions:
    """Wanted channels and their state on the current connection."""

    def __init__(self, protocol: ClientProtocol, options: ClientOptions,
                 token_provider: SubscriptionTokenProvider | None, delivery: Delivery,
                 rng: random.Random, clock: Callable[[], float]) -> None:
        self._protocol = protocol
        self._options = options
        self._token_provider = token_provider
        self._delivery = delivery
        self._rng = rng
        self._clock = clock
        self._wanted: dict[str, _Wanted] = {}
        self._in_flight: dict[int, str] = {}  # subscribe command id → channel, this socket
        # Channels in their retry delay; None while none is (an empty set is 216 bytes).
        self._waiting: set[str] | None = None

    def __contains__(self, channel: str) -> bool:
        return channel in self._wanted

    def want(self, channel: str) -> tuple[asyncio.Future[None], bool]:
        """The future of ``channel``'s first outcome, and whether it is newly wanted."""
        wanted = self._wanted.get(channel)
        if wanted is not None:
            return wanted.first_result, False
        future = asyncio.get_running_loop().create_future()
        self._wanted[channel] = _Wanted(channel, future)
        return future, True

    def unwant(self, channel: str, error: BotkitError) -> None:
        wanted = self._wanted.pop(channel, None)
        if self._waiting is not None:
            self._waiting.discard(channel)
        if wanted is not None:
            _settle_future(wanted.first_result, error)

    def connection_lost(self) -> None:
        self._in_flight.clear()
        self._waiting = None  # the next connection subscribes every wanted channel anyway

    def fail_all(self, error: BotkitError) -> None:
        for wanted in self._wanted.values():
            _settle_future(wanted.first_result, error)

    # -- subscribing ---------------------------------------------------------------------------

    async def send(self, channels: Iterable[str] | None = None) -> list[int]:
        """Queue a subscribe for each wanted channel (of ``channels``, default all) that is not
        subscribed, on its way or waiting to retry. Returns the command ids queued."""
        subscribed = self._protocol.subscriptions
        busy = set(self._in_flight.values())
        if self._waiting:
            busy |= self._waiting
        todo = [channel for channel in (self._wanted if channels is None else channels)
                if channel in self._wanted and channel not in busy
                and not ((sub := subscribed.get(channel)) is not None and sub.subscribed)]
        queued: list[int] = []
        options = self._options
        now = self._clock()  # one deadline for the batch: its subscribes time out together
        for channel in todo:
            token = ""
            if self._token_provider is not None:
                try:
                    token = await mint(self._token_provider, channel)
                except BotkitError as exc:
                    log.warning("no subscription token for %s: %s", channel, exc)
                    self._retry(self._wanted[channel])
                    continue
                if channel not in self._wanted:
                    continue  # unsubscribed while its token was minted
            command_id = self._protocol.subscribe(
                channel, token, recoverable=options.recoverable, positioned=options.recoverable,
                join_leave=options.join_leave, now=now)
            self._in_flight[command_id] = channel
            queued.append(command_id)
        return queued

    def _retry(self, wanted: _Wanted) -> None:
        delay = self._options.min_reconnect_delay + self._options.backoff.delay(
            wanted.attempts, self._rng.random())
        wanted.attempts += 1
        if self._waiting is None:
            self._waiting = set()
        self._waiting.add(wanted.channel)
        self._protocol.timers.resubscribe_at(wanted.channel, self._clock() + delay)

    def retry_due(self, channels: Iterable[str]) -> None:
        if self._waiting is not None:
            self._waiting.difference_update(channels)

    def timed_out(self, channels: Iterable[str]) -> None:
        for channel in channels:
            log.warning("no reply to subscribe %s in time", channel)

    async def settle(self, reply: ReplyEvent) -> None:
        """The reply to one of our subscribes."""
        channel = self._in_flight.pop(reply.id, None)
        wanted = self._wanted.get(channel) if channel is not None else None
        if wanted is None:
            return  # unsubscribed meanwhile
        if isinstance(reply, Subscribed):
            wanted.attempts = 0
            _settle_future(wanted.first_result, None)
            if self._options.subscription_events:
                # The protocol has read the whole message: its position is past what the
                # subscribe recovered (the reply's own offset is not, on every server).
                await self._delivery.emit(SubscriptionStarted(
                    wanted.channel, self._protocol.position(wanted.channel),
                    reply.was_recovering))
            return
        if isinstance(reply, ErrorReply):
            if error_action(reply.code, reply.temporary) is not ErrorAction.FAIL:
                # Retried with a fresh token and the stream position kept for recovery.
                log.info("subscribe %s refused for now (%s); retrying", wanted.channel,
                         reply.code)
                self._retry(wanted)
                return
            error: BotkitError = SubscriptionError(wanted.channel, reply.code, reply.message)
        else:
            error = ProtocolError(f"malformed subscribe reply for {wanted.channel}")
        del self._wanted[wanted.channel]
        self._protocol.forget(wanted.channel)
        _settle_future(wanted.first_result, error)
        if isinstance(error, ReplyError) and error.code == LIMIT_EXCEEDED:
            # The connection's channel limit: the consumer moves the channel to another
            # connection (the runtime does, and says so once), not one line per channel here.
            log.debug("subscription to %s refused: %s", wanted.channel, error)
        else:
            log.error("subscription to %s refused: %s", wanted.channel, error)
        await self._delivery.emit(SubscriptionFailed(wanted.channel, error))

    async def on_unsubscribed(self, event: Unsubscribed) -> bool:
        """The server ended a subscription. True when it must be subscribed again now (every
        subscribe mints a fresh token, which 2501 (expired) and 2502 need)."""
        wanted = self._wanted.get(event.channel)
        if wanted is None:
            return False
        if event.resubscribe:
            return True
        del self._wanted[event.channel]
        await self._delivery.emit(SubscriptionEnded(event.channel, event.code, event.reason))
        return False


def _settle_future(future: asyncio.Future[None], error: BotkitError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
        future.exception()  # retrieved: nobody may be waiting
