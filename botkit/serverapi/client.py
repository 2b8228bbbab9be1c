"""Client of the Xshathra server API (Centrifugo's HTTP API): publish, broadcast, presence,
history and raw batches, over one keep-alive :class:`httpx.AsyncClient`.

:class:`ServerApi` is the facade; the work is done by its parts::

    ServerApi ─┬─ OrderedPublisher   publish(): bounded queue, opportunistic batching, order
               ├─ PresenceCoalescer  presence(): concurrent calls share a batch request
               └─ (direct calls)     broadcast, presence_stats, history, batch: a few at a time
                        │
                    Transport        one call: attempt, retries with backoff, error mapping
                        │
                    replies          the one parser of every reply (pure)

Every request has a deadline and is retried with full-jitter backoff when the failure may pass
(see :mod:`botkit.serverapi.transport`). Every publish carries an idempotency key (one is made
up when the caller gives none), which makes resending it after an ambiguous failure harmless:
the server answers a repeated key with the first publish's position instead of publishing again.
A failure, malformed replies and bugs included, fails the call it happened in and nothing else.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import httpx

from botkit.errors import ApiError, ApiMalformedReplyError, ApiReplyError, ApiUnavailableError
from botkit.protocol.backoff import Backoff
from botkit.protocol.types import ClientInfo, HistoryResult, PresenceStats, StreamPosition
from botkit.redact import safe_url
from botkit.serverapi import replies
from botkit.serverapi.presence import PresenceCoalescer
from botkit.serverapi.publisher import OrderedPublisher, send_publishes
from botkit.serverapi.replies import TEMPORARY_CODES, PublishResult
from botkit.serverapi.stats import ApiStats
from botkit.serverapi.transport import Parse, Transport

__all__ = [
    "DEFAULT_BACKOFF",
    "MAX_DIRECT_CALLS",
    "TEMPORARY_CODES",
    "ApiStats",
    "PublishResult",
    "ServerApi",
]

log = logging.getLogger("botkit.serverapi")

_T = TypeVar("_T")

#: Short first retry, a few seconds at most: a reply that is late by more is as good as lost.
DEFAULT_BACKOFF: Final = Backoff(base=0.1, cap=2.0)

#: Calls outside the publish queue (presence, history, broadcast, batch) in flight at once.
MAX_DIRECT_CALLS: Final = 16

# Compact separators and no ASCII escaping: fewer bytes to send, and the encoder object is
# built once instead of per json.dumps call.
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _encode(value: Any) -> bytes:
    return _encode_json(value).encode()


class ServerApi:
    """The server API of one Xshathra project.

    Use as ``async with ServerApi(url, key) as api:``, or call :meth:`start` and
    :meth:`aclose`. ``timeout`` bounds each HTTP attempt; ``retries`` is how many times a
    failure that may pass is tried again (so ``retries + 1`` attempts at most), with delays
    from ``backoff``. ``max_batch`` caps the publishes in one batch request; ``max_pending``
    caps the publishes queued or in flight, beyond which :meth:`publish` waits for room.
    :meth:`aclose` lets queued publishes go out for up to ``close_timeout`` seconds.
    ``key_setting`` is the name of the setting that holds the key, used in error messages
    (the key itself never appears in them, nor the URL's userinfo).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_batch: int = 100,
        max_pending: int = 10_000,
        close_timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
        key_setting: str = "xshathra.server_api_key",
        rng: Callable[[], float] = random.random,
    ) -> None:
        _check_settings(timeout, retries, max_batch, max_pending, close_timeout)
        self.stats = ApiStats()
        self._transport = Transport(base_url, api_key, timeout=timeout, retries=retries,
                                    backoff=backoff, stats=self.stats, client=client,
                                    key_setting=key_setting, rng=rng)
        self._publisher = OrderedPublisher(self._transport, max_batch=max_batch,
                                           max_pending=max_pending, check_open=self._check_open)
        self._presence = PresenceCoalescer(self._direct, self.stats)
        self._close_timeout = close_timeout
        # Made-up idempotency keys: random per client so they never meet another client's.
        self._key_prefix = f"botkit-{secrets.token_urlsafe(12)}-"
        self._key_counter = itertools.count(1)
        self._direct_calls = 0
        self._direct_done = asyncio.Event()
        self._direct_slots = asyncio.Semaphore(MAX_DIRECT_CALLS)
        self._started = False
        self._closing = False

    def __repr__(self) -> str:
        return f"ServerApi({safe_url(self._transport.base_url)!r})"

    @property
    def pending(self) -> int:
        """Publishes queued or in flight."""
        return self._publisher.pending

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Open the HTTP client. A client starts once."""
        if self._started:
            raise ApiError("this ServerApi was already started; a client starts only once")
        self._started = True
        self._transport.open()

    async def aclose(self) -> None:
        """Refuse new calls, give queued publishes up to ``close_timeout`` to go out, fail the
        rest with :class:`ApiUnavailableError`, stop the senders and close the HTTP client."""
        if self._closing:
            return
        self._closing = True
        if not self._started:
            return
        try:
            await self._drain()
        finally:
            try:
                await self._publisher.stop(ApiUnavailableError(
                    "the server API client closed before this publish was sent"))
                await self._presence.stop()
            finally:
                await self._transport.aclose()

    async def _drain(self) -> None:
        try:
            async with asyncio.timeout(self._close_timeout):
                await self._publisher.drain()
                while self._direct_calls:
                    self._direct_done.clear()
                    await self._direct_done.wait()
        except TimeoutError:
            log.warning("closing the server API client after %.1fs with %d publishes and %d "
                        "other calls unfinished", self._close_timeout, self.pending,
                        self._direct_calls)

    def _check_open(self) -> None:
        if self._closing:
            raise ApiError("the server API client is closed")
        if not self._started:
            raise ApiError("the server API client is not started; use "
                           "'async with ServerApi(...)' or await start() first")

    # -- the methods -------------------------------------------------------------------------

    async def publish(self, channel: str, data: Any, *, idempotency_key: str | None = None,
                      tags: Mapping[str, str] | None = None,
                      skip_history: bool = False) -> PublishResult:
        """Publish ``data`` (any JSON value) to ``channel``; in order with the other publishes
        of this client. Without ``idempotency_key`` a unique one is made up, so retries never
        publish twice; give your own to also absorb repeats of the same logical message within
        the server's 5-minute window. Cancelling the call before the publish is sent withdraws
        it; after that it may or may not be published."""
        return await self._publisher.publish(self.encode_publish(
            channel, data, idempotency_key=idempotency_key, tags=tags,
            skip_history=skip_history))

    def encode_publish(self, channel: str, data: Any, *, idempotency_key: str | None = None,
                       tags: Mapping[str, str] | None = None,
                       skip_history: bool = False) -> bytes:
        """The encoded params of a publish, for :meth:`publish_once` (the key is made up here
        when none is given, so that every resend of these bytes carries the same one)."""
        params: dict[str, Any] = {"channel": channel, "data": data,
                                  "idempotency_key": idempotency_key or self._new_key()}
        if tags:
            params["tags"] = dict(tags)
        if skip_history:
            params["skip_history"] = True
        return _encode(params)

    async def publish_once(self, params: Sequence[bytes]) -> list[PublishResult | ApiError]:
        """One attempt at the publishes ``params`` (from :meth:`encode_publish`), in one
        request (a sequential batch when there are several): an outcome per publish, in
        order. Nothing is retried: the caller (the runtime's outboxes) retries what failed
        temporarily, room by room. A failure of the whole request is raised; it is temporary
        when it is an :class:`ApiUnavailableError` or :class:`ApiMalformedReplyError`. Not
        ordered with :meth:`publish`."""
        self._check_open()
        outcomes: list[PublishResult | ApiError] = []
        outcomes += await send_publishes(self._transport, params, retries=0)
        return outcomes

    def _new_key(self) -> str:
        return f"{self._key_prefix}{next(self._key_counter)}"

    async def broadcast(self, channels: Iterable[str], data: Any, *,
                        idempotency_key: str | None = None,
                        tags: Mapping[str, str] | None = None,
                        ) -> list[PublishResult | ApiReplyError]:
        """Publish ``data`` to several channels in one request; one entry per channel, in
        order: its position, or the error the server gave for that channel. Channels that
        fail temporarily (or whose response was malformed) are retried, deduplicated by the
        idempotency key, which the server keeps per channel. Not ordered with respect to
        :meth:`publish`."""
        names = list(channels)
        results: list[PublishResult | ApiReplyError | None] = [None] * len(names)
        todo = list(range(len(names)))
        key = idempotency_key or self._new_key()
        for attempt in itertools.count():
            if not todo:
                break
            sent = [names[i] for i in todo]
            params: dict[str, Any] = {"channels": sent, "data": data, "idempotency_key": key}
            if tags:
                params["tags"] = dict(tags)
            outcomes = await self._direct("broadcast", _encode(params),
                                          partial(replies.broadcast_outcomes, channels=sent))
            may_retry = attempt < self._transport.retries
            retry: list[int] = []
            for index, outcome in zip(todo, outcomes, strict=True):
                if isinstance(outcome, ApiMalformedReplyError):
                    self.stats.malformed_replies += 1
                if isinstance(outcome, ApiReplyError) and outcome.temporary and may_retry:
                    retry.append(index)
                else:
                    results[index] = outcome
            todo = retry
            if todo:
                await self._transport.pause("broadcast", attempt, "a temporary error")
        return [outcome for outcome in results if outcome is not None]

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        """The connections subscribed to ``channel``, by client id. Calls made together share
        a request (see :mod:`botkit.serverapi.presence`)."""
        self._check_open()
        return await self._presence.presence(channel)

    async def presence_stats(self, channel: str) -> PresenceStats:
        return await self._direct("presence_stats", _encode({"channel": channel}),
                                  replies.presence_stats)

    async def history(self, channel: str, *, limit: int, since: StreamPosition | None = None,
                      reverse: bool = False) -> HistoryResult:
        """Publications kept in ``channel``, oldest first (newest first with ``reverse``),
        after ``since`` when given, at most ``limit`` of them.

        ``limit=0`` returns NO publications, only the stream's current position (that is the
        server's rule, handy to learn the top offset cheaply); a negative limit returns all
        that the server keeps. A ``since`` from another epoch raises :class:`ApiReplyError`
        code 112 (the stream was reset: reload from your own source of truth)."""
        params: dict[str, Any] = {"channel": channel, "limit": limit}
        if since is not None:
            params["since"] = {"offset": since.offset, "epoch": since.epoch}
        if reverse:
            params["reverse"] = True
        return await self._direct("history", _encode(params),
                                  partial(replies.history, channel))

    async def batch(self, commands: Sequence[Mapping[str, Any]], *,
                    parallel: bool = False) -> list[dict[str, Any]]:
        """Send raw commands (``{"publish": {...}}``, ``{"presence_stats": {...}}``, ...) in one
        request and return the raw replies, one per command, errors included as
        ``{"error": {...}}``. The whole batch is resent after a failure that may pass, so give
        publishes an ``idempotency_key``."""
        params: dict[str, Any] = {"commands": list(commands)}
        if parallel:
            params["parallel"] = True
        return await self._direct("batch", _encode(params),
                                  partial(replies.raw_replies, expected=len(commands)))

    async def _direct(self, method: str, body: bytes, parse: Parse[_T]) -> _T:
        """A call outside the publish queue, counted so that aclose() can wait for it."""
        self._check_open()
        self._direct_calls += 1
        try:
            # Bounded: a runtime of 500 bots asks 500 rooms' presence at once on start and
            # after a reconnect; handed to httpx together they made its pool's bookkeeping
            # quadratic (seconds of CPU, bench/ S5); a few at a time they take milliseconds.
            async with self._direct_slots:
                return await self._transport.call(method, body, parse)
        finally:
            self._direct_calls -= 1
            self._direct_done.set()


def _check_settings(timeout: float, retries: int, max_batch: int, max_pending: int,
                    close_timeout: float) -> None:
    if timeout <= 0 or close_timeout < 0:
        raise ValueError("timeout must be > 0 and close_timeout >= 0")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if max_batch < 1 or max_pending < 1:
        raise ValueError("max_batch and max_pending must be >= 1")
