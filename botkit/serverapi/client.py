"""Client of the Xshathra server API (Centrifugo's HTTP API): publish, broadcast, presence,
history and raw batches, over one keep-alive :class:`httpx.AsyncClient`.

Every request has a deadline and is retried with full-jitter backoff when the failure may pass
(transport errors, timeouts, HTTP 5xx, Centrifugo errors marked temporary: 100, 111, 113). A
refused key (401/403), any other 4xx and a permanent Centrifugo error are raised at once.

Publishes go through one bounded queue served by a single sender task, so their order is kept.
An idle client sends a publish at once as a plain ``publish`` request; while a request is in
flight the publishes that arrive meanwhile queue up and leave together as one sequential
``batch`` request. An HTTP request costs far more CPU than encoding one more command, so this
is what lets a bot answer a busy room. Every publish carries an idempotency key (one is made up
when the caller gives none), which makes resending it after an ambiguous failure harmless: the
server answers a repeated key with the first publish's position instead of publishing again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, cast

import httpx

from botkit.errors import (
    ApiAuthError,
    ApiError,
    ApiReplyError,
    ApiRequestError,
    ApiUnavailableError,
)
from botkit.protocol.backoff import Backoff
from botkit.protocol.types import (
    ClientInfo,
    HistoryResult,
    PresenceStats,
    Publication,
    StreamPosition,
)

__all__ = [
    "DEFAULT_BACKOFF",
    "TEMPORARY_CODES",
    "ApiStats",
    "PublishResult",
    "ServerApi",
]

log = logging.getLogger("botkit.serverapi.client")

#: Centrifugo error codes that say "try again later" rather than "this request is wrong".
TEMPORARY_CODES: Final = frozenset({100, 111, 113})

#: Short first retry, a few seconds at most: a reply that is late by more is as good as lost.
DEFAULT_BACKOFF: Final = Backoff(base=0.1, cap=2.0)

# Calls outside the publish queue (presence, history, broadcast, batch) in flight at once.
_MAX_DIRECT_CALLS: Final = 16
# Presence calls sent together in one batch request at most.
_MAX_PRESENCE_BATCH: Final = 500

# Compact separators and no ASCII escaping: fewer bytes to send, and the encoder object is
# built once instead of per json.dumps call.
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _encode(value: Any) -> bytes:
    return _encode_json(value).encode()


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Where a publication landed. A channel without history (or ``skip_history``) has no
    position: ``offset`` is 0 and ``epoch`` is empty."""

    offset: int
    epoch: str

    @property
    def position(self) -> StreamPosition:
        return StreamPosition(self.offset, self.epoch)


@dataclass(slots=True)
class ApiStats:
    """Counters of what went over the wire, for logs, benchmarks and tests."""

    requests: int = 0            # HTTP requests attempted, retries included
    retries: int = 0             # attempts that repeated an earlier one
    publish_requests: int = 0    # queued publishes sent alone as a plain ``publish``
    publish_batches: int = 0     # ``batch`` requests carrying queued publishes
    batched_publishes: int = 0   # publishes sent inside those batches


@dataclass(slots=True)
class _Pending:
    """A queued publish: its encoded ``publish`` params and the caller's future."""

    params: bytes
    future: asyncio.Future[PublishResult]


class ServerApi:
    """The server API of one Xshathra project.

    Use as ``async with ServerApi(url, key) as api:``, or call :meth:`start` and
    :meth:`aclose`. ``timeout`` bounds each HTTP attempt; ``retries`` is how many times a
    failure that may pass is tried again (so ``retries + 1`` attempts at most), with delays
    from ``backoff``. ``max_batch`` caps the publishes in one batch request; ``max_pending``
    caps the publishes queued or in flight, beyond which :meth:`publish` waits for room.
    :meth:`aclose` lets queued publishes go out for up to ``close_timeout`` seconds.
    ``key_setting`` is the name of the setting that holds the key, used in error messages
    (the key itself never appears in them).
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
        self._base_url = _checked_base_url(base_url)
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._max_batch = max_batch
        self._close_timeout = close_timeout
        self._key_setting = key_setting
        self._rng = rng
        self._headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
        self._injected = client
        self._client: httpx.AsyncClient | None = None
        self._urls: dict[str, httpx.URL] = {}
        # Made-up idempotency keys: random per client so they never meet another client's.
        self._key_prefix = f"botkit-{secrets.token_urlsafe(12)}-"
        self._key_counter = itertools.count(1)
        self._queue: deque[_Pending] = deque()
        self._in_flight: list[_Pending] = []
        self._slots = asyncio.Semaphore(max_pending)
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Event()  # set whenever the sender or a direct call finishes
        self._direct_calls = 0
        self._direct_slots = asyncio.Semaphore(_MAX_DIRECT_CALLS)
        self._presence_wanted: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self._presence_taken: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self._presence_sender: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._started = False
        self._closing = False
        self._closed = False
        self._broken: BaseException | None = None
        self.stats = ApiStats()

    def __repr__(self) -> str:
        return f"ServerApi({self._base_url!r})"

    @property
    def pending(self) -> int:
        """Publishes queued or in flight."""
        return len(self._queue) + len(self._in_flight)

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Open the HTTP client and start the publish sender. A client starts once."""
        if self._started:
            raise ApiError("this ServerApi was already started; a client starts only once")
        self._started = True
        self._client = self._injected or httpx.AsyncClient(
            timeout=self._timeout, headers=self._headers)
        # The client owns the sender: aclose() drains it, cancels it and waits for it, and the
        # sender never lets an exception escape unobserved (see _run_sender).
        self._sender = asyncio.create_task(self._run_sender(), name="serverapi publish sender")

    async def aclose(self) -> None:
        """Refuse new calls, give queued publishes up to ``close_timeout`` to go out, fail the
        rest with :class:`ApiUnavailableError`, stop the sender and close the HTTP client."""
        if self._closed or not self._started:
            self._closing = self._closed = True
            return
        self._closing = True
        try:
            await self._drain()
        finally:
            try:
                await self._stop_sender()
                presence = self._presence_sender
                if presence is not None and not presence.done():
                    presence.cancel()
                    await asyncio.wait([presence])
            finally:
                self._fail_queued(ApiUnavailableError(
                    "the server API client closed before this publish was sent"))
                self._closed = True
                if self._injected is None and self._client is not None:
                    await self._client.aclose()

    async def _drain(self) -> None:
        try:
            async with asyncio.timeout(self._close_timeout):
                while self._queue or self._in_flight or self._direct_calls:
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            log.warning("closing the server API client after %.1fs with %d publishes and %d "
                        "other calls unfinished", self._close_timeout, self.pending,
                        self._direct_calls)

    async def _stop_sender(self) -> None:
        sender = self._sender
        if sender is None or sender.done():
            return
        sender.cancel()
        # wait() rather than await: the sender's CancelledError is expected and must not be
        # mistaken for our own cancellation, which still propagates from here.
        await asyncio.wait([sender])

    def _fail_queued(self, error: ApiError) -> None:
        while self._queue:
            _fail(self._queue.popleft(), _copy_error(error))
            self._slots.release()

    def _check_open(self) -> None:
        if self._broken is not None:
            raise ApiError("the server API client stopped after an internal error; "
                           "create a new one") from self._broken
        if self._closing:
            raise ApiError("the server API client is closed")
        if not self._started:
            raise ApiError("the server API client is not started; use "
                           "'async with ServerApi(...)' or await start() first")

    # -- publish: queue and sender ------------------------------------------------------------

    async def publish(self, channel: str, data: Any, *, idempotency_key: str | None = None,
                      tags: Mapping[str, str] | None = None,
                      skip_history: bool = False) -> PublishResult:
        """Publish ``data`` (any JSON value) to ``channel``; in order with the other publishes
        of this client. Without ``idempotency_key`` a unique one is made up, so retries never
        publish twice; give your own to also absorb repeats of the same logical message within
        the server's 5-minute window. Cancelling the call before the publish is sent withdraws
        it; after that it may or may not be published."""
        params: dict[str, Any] = {"channel": channel, "data": data,
                                  "idempotency_key": idempotency_key or self._new_key()}
        if tags:
            params["tags"] = dict(tags)
        if skip_history:
            params["skip_history"] = True
        return await self._enqueue(_encode(params))

    def _new_key(self) -> str:
        return f"{self._key_prefix}{next(self._key_counter)}"

    async def _enqueue(self, params: bytes) -> PublishResult:
        self._check_open()
        await self._slots.acquire()
        try:
            self._check_open()  # it may have closed while we waited for room
        except ApiError:
            self._slots.release()
            raise
        future: asyncio.Future[PublishResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(params, future))
        self._wakeup.set()
        return await future

    async def _run_sender(self) -> None:
        try:
            while True:
                if not self._queue:
                    self._progress.set()
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                self._in_flight = self._take()
                try:
                    await self._send(self._in_flight)
                finally:
                    self._release_in_flight()
        except Exception as exc:
            # A bug, not a server failure (those are delivered to the callers): fail everyone
            # rather than leave them waiting on a sender that is gone.
            log.exception("the server API publish sender failed")
            self._broken = exc
            self._fail_queued(ApiError("the server API publish sender failed"))
        finally:
            self._progress.set()

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        while self._queue and len(taken) < self._max_batch:
            item = self._queue.popleft()
            if item.future.done():  # its caller gave up before it was sent: don't send it
                self._slots.release()
                continue
            taken.append(item)
        return taken

    def _release_in_flight(self) -> None:
        items, self._in_flight = self._in_flight, []
        for item in items:
            if not item.future.done():  # only when the sender is cancelled mid-request
                _fail(item, ApiUnavailableError(
                    "the server API client closed before this publish was confirmed; it may "
                    "or may not have been published"))
            self._slots.release()

    async def _send(self, items: list[_Pending]) -> None:
        if not items:
            return
        if len(items) > 1:
            await self._send_batch(items)
            return
        item = items[0]
        self.stats.publish_requests += 1
        try:
            payload = await self._call("publish", item.params)
        except ApiError as exc:
            _fail(item, exc)
        else:
            _resolve(item, _publish_result(payload.get("result")))

    async def _send_batch(self, items: list[_Pending]) -> None:
        todo = items
        for attempt in itertools.count():
            self.stats.publish_batches += 1
            self.stats.batched_publishes += len(todo)
            # Sequential batch: the server applies the commands in order, keeping each
            # channel's order. The params were encoded once, by publish().
            body = b'{"commands":[' + b",".join(
                b'{"publish":' + item.params + b"}" for item in todo) + b"]}"
            try:
                payload = await self._call("batch", body)
                todo = self._settle_batch(todo, payload, may_retry=attempt < self._retries)
            except ApiError as exc:
                for item in todo:
                    _fail(item, _copy_error(exc))
                return
            if not todo:
                return
            await self._pause_before_retry("batch", attempt, "a temporary error in the batch")

    def _settle_batch(self, items: list[_Pending], payload: dict[str, Any], *,
                      may_retry: bool) -> list[_Pending]:
        """Hand each caller its reply; return the items to send again.

        From the first temporary error on, everything is sent again: the items after it may
        have been applied, but their idempotency keys make the server answer those with the
        first result, and resending the whole tail keeps the order within each channel."""
        replies = _list_of_objects(payload.get("replies"), len(items), "batch")
        for index, (item, reply) in enumerate(zip(items, replies, strict=True)):
            error = reply.get("error")
            if error is None:
                _resolve(item, _publish_result(reply.get("publish")))
                continue
            exc = _reply_error("publish", error)
            if exc.temporary and may_retry:
                return items[index:]
            _fail(item, _gave_up("publish", exc) if exc.temporary else exc)
        return []

    # -- direct calls -------------------------------------------------------------------------

    async def broadcast(self, channels: Iterable[str], data: Any, *,
                        idempotency_key: str | None = None,
                        tags: Mapping[str, str] | None = None,
                        ) -> list[PublishResult | ApiReplyError]:
        """Publish ``data`` to several channels in one request; one entry per channel, in
        order: its position, or the error the server gave for that channel. Channels that
        fail temporarily are retried (deduplicated by the idempotency key, which the server
        keeps per channel). Not ordered with respect to :meth:`publish`."""
        names = list(channels)
        results: list[PublishResult | ApiReplyError | None] = [None] * len(names)
        todo = list(range(len(names)))
        key = idempotency_key or self._new_key()
        for attempt in itertools.count():
            if not todo:
                break
            params: dict[str, Any] = {"channels": [names[i] for i in todo], "data": data,
                                      "idempotency_key": key}
            if tags:
                params["tags"] = dict(tags)
            result = _result(await self._direct("broadcast", params))
            responses = _list_of_objects(result.get("responses"), len(todo), "broadcast")
            todo = _settle_broadcast(names, todo, responses, results,
                                     may_retry=attempt < self._retries)
            if todo:
                await self._pause_before_retry("broadcast", attempt, "a temporary error")
        return [outcome for outcome in results if outcome is not None]

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        """The connections subscribed to ``channel``, by client id.

        Calls made together share a request: one alone goes out as a plain ``presence``,
        several (500 bots resyncing their rooms after a reconnect) as one ``batch`` request
        instead of hundreds, which cost seconds of CPU in httpx (bench/ S6)."""
        self._check_open()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._presence_wanted.append((channel, future))
        if self._presence_sender is None:
            sender = asyncio.create_task(self._send_presence(), name="serverapi presence sender")
            sender.add_done_callback(self._presence_sender_done)
            self._presence_sender = sender
        result = await future
        clients = result.get("presence") or {}
        return {client_id: _client_info(info, client_id) for client_id, info in clients.items()}

    async def _send_presence(self) -> None:
        """Send the presence calls waiting, a request at a time, until there are none."""
        wanted = self._presence_wanted
        try:
            while wanted:
                taken = self._presence_taken = [item for item in wanted[:_MAX_PRESENCE_BATCH]
                                                if not item[1].done()]
                del wanted[:_MAX_PRESENCE_BATCH]
                if len(taken) == 1:
                    await self._presence_one(*taken[0])
                elif taken:
                    await self._presence_batch(taken)
            self._presence_taken = []
        finally:
            # At once, not in the done callback (which runs later): a call made meanwhile
            # must start a new sender rather than wait for this finished one.
            self._presence_sender = None

    def _presence_sender_done(self, sender: asyncio.Task[None]) -> None:
        if self._presence_sender is sender:
            self._presence_sender = None
        if sender.cancelled() or sender.exception() is not None:
            # Cancelled (aclose) or a bug: nobody may be left waiting.
            error = ApiError("the presence request was not completed: the server API client "
                             "closed or failed")
            for _channel, future in self._presence_taken + self._presence_wanted:
                if not future.done():
                    future.set_exception(_copy_error(error))
            self._presence_taken = []
            self._presence_wanted.clear()

    async def _presence_one(self, channel: str, future: asyncio.Future[dict[str, Any]]) -> None:
        try:
            result = _result(await self._direct("presence", {"channel": channel}))
        except ApiError as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)

    async def _presence_batch(self, taken: list[tuple[str, asyncio.Future[dict[str, Any]]]],
                              ) -> None:
        commands = [{"presence": {"channel": channel}} for channel, _future in taken]
        try:
            payload = await self._direct("batch", {"commands": commands, "parallel": True})
            replies = _list_of_objects(payload.get("replies"), len(taken), "batch")
        except ApiError as exc:
            for _channel, future in taken:
                if not future.done():
                    future.set_exception(_copy_error(exc))
            return
        for (channel, future), reply in zip(taken, replies, strict=True):
            error = reply.get("error")
            if error is None:
                result = reply.get("presence")
                if not future.done():
                    future.set_result(result if isinstance(result, dict) else {})
                continue
            refused = _reply_error("presence", error)
            if refused.temporary:
                await self._presence_one(channel, future)  # with the usual retries
            elif not future.done():
                future.set_exception(refused)

    async def presence_stats(self, channel: str) -> PresenceStats:
        result = _result(await self._direct("presence_stats", {"channel": channel}))
        return PresenceStats(num_clients=int(result.get("num_clients", 0)),
                             num_users=int(result.get("num_users", 0)))

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
        result = _result(await self._direct("history", params))
        publications = tuple(_publication(channel, item)
                             for item in result.get("publications") or ())
        position = StreamPosition(int(result.get("offset", 0)), str(result.get("epoch", "")))
        return HistoryResult(publications, position)

    async def batch(self, commands: Sequence[Mapping[str, Any]], *,
                    parallel: bool = False) -> list[dict[str, Any]]:
        """Send raw commands (``{"publish": {...}}``, ``{"presence_stats": {...}}``, ...) in one
        request and return the raw replies, one per command, errors included as
        ``{"error": {...}}``. The whole batch is resent after a transport failure, so give
        publishes an ``idempotency_key``."""
        params: dict[str, Any] = {"commands": list(commands)}
        if parallel:
            params["parallel"] = True
        payload = await self._direct("batch", params)
        if not commands:
            return []  # the server answers an empty batch with {}
        return _list_of_objects(payload.get("replies"), len(commands), "batch")

    async def _direct(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """A call outside the publish queue, counted so that aclose() can wait for it."""
        self._check_open()
        body = _encode(params)
        self._direct_calls += 1
        try:
            # Bounded: a runtime of 500 bots asks 500 rooms' presence at once on start and
            # after a reconnect; handed to httpx together they made its pool's bookkeeping
            # quadratic (seconds of CPU, bench/ S5); a few at a time they take milliseconds.
            async with self._direct_slots:
                return await self._call(method, body)
        finally:
            self._direct_calls -= 1
            self._progress.set()

    # -- one call: attempts, retries, error mapping ---------------------------------------------

    async def _call(self, method: str, body: bytes) -> dict[str, Any]:
        """POST ``body`` to ``method``, retrying what may pass; return the decoded reply."""
        attempt = 0
        while True:
            try:
                return await self._attempt(method, body)
            except (ApiUnavailableError, ApiReplyError) as exc:
                if isinstance(exc, ApiReplyError) and not exc.temporary:
                    raise
                if attempt >= self._retries:
                    raise _gave_up(method, exc, attempts=attempt + 1) from _root_cause(exc)
                await self._pause_before_retry(method, attempt, str(exc))
            attempt += 1

    async def _pause_before_retry(self, method: str, attempt: int, why: str) -> None:
        delay = self._backoff.delay(attempt, self._rng())
        self.stats.retries += 1
        log.warning("server API %s failed (%s); retry %d/%d in %.2fs",
                    method, why, attempt + 1, self._retries, delay)
        await asyncio.sleep(delay)

    async def _attempt(self, method: str, body: bytes) -> dict[str, Any]:
        client = self._client
        if client is None or self._closed:
            raise ApiError("the server API client is closed")
        self.stats.requests += 1
        url = self._url(method)
        try:
            # httpx times each phase (connect, read, ...) on its own; the outer deadline
            # bounds the whole attempt, a server trickling bytes included.
            async with asyncio.timeout(self._timeout):
                response = await client.post(
                    url, content=body, timeout=self._timeout,
                    headers=self._headers if self._injected is not None else None)
        except TimeoutError as exc:
            raise ApiUnavailableError(
                f"{method}: no answer from {url} within {self._timeout:g}s") from exc
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            raise ApiRequestError(f"{method}: cannot send to {url}: {exc}") from exc
        except httpx.TransportError as exc:
            raise ApiUnavailableError(
                f"{method}: {type(exc).__name__} talking to {url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise ApiError(f"{method}: {type(exc).__name__} from {url}: {exc}") from exc
        return self._decode(method, response)

    def _url(self, method: str) -> httpx.URL:
        url = self._urls.get(method)
        if url is None:
            url = self._urls[method] = httpx.URL(f"{self._base_url}/{method}")
        return url

    def _decode(self, method: str, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        if status == 200:
            payload = _json_object(method, response)
            error = payload.get("error")
            if error is not None:
                raise _reply_error(method, error)
            return payload
        if status in (401, 403):
            raise ApiAuthError(
                f"the server API refused the key in {self._key_setting} (HTTP {status}); "
                "check that it is the project's server_api_key")
        if status >= 500:
            raise ApiUnavailableError(f"{method}: the server API answered HTTP {status}")
        raise ApiRequestError(f"{method}: the server API answered HTTP {status}"
                              f"{_status_hint(status, response.url)}", status)


# -- pure helpers ---------------------------------------------------------------------------------

def _check_settings(timeout: float, retries: int, max_batch: int, max_pending: int,
                    close_timeout: float) -> None:
    if timeout <= 0 or close_timeout < 0:
        raise ValueError("timeout must be > 0 and close_timeout >= 0")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if max_batch < 1 or max_pending < 1:
        raise ValueError("max_batch and max_pending must be >= 1")


def _checked_base_url(base_url: str) -> str:
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ApiRequestError(f"the server API URL {base_url!r} is not valid: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ApiRequestError(f"the server API URL {base_url!r} must be an http(s) URL, "
                              "e.g. http://localhost:3001/api/realtime")
    return base_url.rstrip("/")


def _status_hint(status: int, url: httpx.URL) -> str:
    if status == 404:
        return (f": there is no such method at {url}; check that the API URL ends with the "
                "server API prefix, e.g. http://localhost:3001/api/realtime")
    if status == 400:
        return ": the server could not read the request body"
    return ""


def _json_object(method: str, response: httpx.Response) -> dict[str, Any]:
    try:
        payload = json.loads(response.content)
    except ValueError as exc:
        raise ApiError(f"{method}: the server API answered HTTP 200 with a body that is not "
                       f"JSON; check that {response.url} is the server API") from exc
    if not isinstance(payload, dict):
        raise ApiError(f"{method}: the server API answered with {type(payload).__name__}, "
                       "not a JSON object")
    return payload


def _list_of_objects(value: Any, expected: int, method: str) -> list[dict[str, Any]]:
    if (not isinstance(value, list) or len(value) != expected
            or not all(isinstance(item, dict) for item in value)):
        count = len(value) if isinstance(value, list) else "no"
        raise ApiError(f"{method}: the server API sent {count} replies for {expected} commands")
    return cast("list[dict[str, Any]]", value)


def _result(payload: dict[str, Any]) -> dict[str, Any]:
    result = payload.get("result")
    return result if isinstance(result, dict) else {}


def _reply_error(method: str, error: Any) -> ApiReplyError:
    if not isinstance(error, dict):
        return ApiReplyError(0, f"malformed error {error!r}", method=method)
    code = int(error.get("code", 0))
    return ApiReplyError(code, str(error.get("message", "")), code in TEMPORARY_CODES,
                         method=method)


def _gave_up(method: str, exc: ApiError, *, attempts: int | None = None) -> ApiUnavailableError:
    tries = f" after {attempts} attempts" if attempts is not None else ""
    error = ApiUnavailableError(f"{method}: the server API kept failing{tries}: {exc}")
    error.__cause__ = exc
    return error


def _root_cause(exc: ApiError) -> BaseException:
    """The httpx (or timeout) error under a transport failure; the reply error itself for a
    temporary Centrifugo error."""
    if isinstance(exc, ApiUnavailableError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def _copy_error(exc: ApiError) -> ApiError:
    """A fresh instance per waiting caller: one exception raised in many tasks would collect
    all their tracebacks."""
    copy: ApiError
    if isinstance(exc, ApiReplyError):
        copy = ApiReplyError(exc.code, exc.message, exc.temporary, method=exc.method)
    elif isinstance(exc, ApiRequestError):
        copy = ApiRequestError(str(exc), exc.status_code)
    else:
        copy = type(exc)(*exc.args)
    copy.__cause__ = exc.__cause__
    return copy


def _resolve(item: _Pending, result: PublishResult) -> None:
    if not item.future.done():
        item.future.set_result(result)


def _fail(item: _Pending, exc: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(exc)


def _publish_result(value: Any) -> PublishResult:
    if not isinstance(value, dict):
        return PublishResult(0, "")
    return PublishResult(int(value.get("offset", 0)), str(value.get("epoch", "")))


def _settle_broadcast(names: list[str], todo: list[int], responses: list[dict[str, Any]],
                      results: list[PublishResult | ApiReplyError | None], *,
                      may_retry: bool) -> list[int]:
    """Record each channel's outcome in ``results``; return the channels to broadcast to again
    (only those that failed temporarily: unlike queued publishes, a broadcast's channels have
    no order between them to keep)."""
    retry: list[int] = []
    for index, response in zip(todo, responses, strict=True):
        outcome = _broadcast_outcome(names[index], response)
        if isinstance(outcome, ApiReplyError) and outcome.temporary and may_retry:
            retry.append(index)
        else:
            results[index] = outcome
    return retry


def _broadcast_outcome(channel: str, response: dict[str, Any]) -> PublishResult | ApiReplyError:
    error = response.get("error")
    if error is not None:
        return _reply_error(f"broadcast {channel}", error)
    return _publish_result(response.get("result"))


def _client_info(value: Any, client_id: str = "") -> ClientInfo:
    info = value if isinstance(value, dict) else {}
    return ClientInfo(user=str(info.get("user", "")), client=str(info.get("client", client_id)),
                      conn_info=info.get("conn_info"), chan_info=info.get("chan_info"))


def _publication(channel: str, value: Any) -> Publication:
    item = value if isinstance(value, dict) else {}
    info = item.get("info")
    return Publication(channel=channel, data=item.get("data"), offset=int(item.get("offset", 0)),
                       info=_client_info(info) if isinstance(info, dict) else None,
                       tags=dict(item.get("tags") or {}))
