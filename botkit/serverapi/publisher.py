"""The ordered publisher: one bounded queue of publishes served by one sender task, so the
publishes of a client leave, and are applied, in the order they were made.

An idle publisher sends a publish at once as a plain ``publish`` request; while a request is in
flight the publishes that arrive meanwhile queue up and leave together as one sequential
``batch`` request. An HTTP request costs far more CPU than encoding one more command, so this is
what lets a bot answer a busy room.

Whatever goes wrong with one request fails (or retries) the publishes in it and nothing else:
server failures reach their callers as :class:`ApiError`, and a bug in the sender fails the
publishes it was sending, is logged, and the sender carries on with the next ones. There is no
state a later publish could inherit.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from botkit.errors import ApiError, ApiMalformedReplyError, ApiReplyError, ApiUnavailableError
from botkit.serverapi.replies import PublishResult, publish_outcomes, publish_result
from botkit.serverapi.transport import Transport, copy_error, gave_up

__all__ = ["OrderedPublisher"]

log = logging.getLogger("botkit.serverapi")


@dataclass(slots=True)
class _Pending:
    """A queued publish: its encoded ``publish`` params and the caller's future."""

    params: bytes
    future: asyncio.Future[PublishResult]


class OrderedPublisher:
    """Sends encoded ``publish`` params through ``transport``, in order. ``max_batch`` caps the
    publishes in one request; ``max_pending`` the publishes queued or in flight, beyond which
    :meth:`publish` waits for room. ``check_open`` raises when no publish may be queued."""

    def __init__(self, transport: Transport, *, max_batch: int, max_pending: int,
                 check_open: Callable[[], None]) -> None:
        self._transport = transport
        self._stats = transport.stats
        self._max_batch = max_batch
        self._check_open = check_open
        self._queue: deque[_Pending] = deque()
        self._in_flight: list[_Pending] = []
        self._slots = asyncio.Semaphore(max_pending)
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._sender: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pending(self) -> int:
        """Publishes queued or in flight."""
        return len(self._queue) + len(self._in_flight)

    async def publish(self, params: bytes) -> PublishResult:
        self._check_open()
        await self._slots.acquire()
        try:
            self._check_open()  # it may have closed while we waited for room
        except ApiError:
            self._slots.release()
            raise
        future: asyncio.Future[PublishResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(params, future))
        self._idle.clear()
        self._wakeup.set()
        self._ensure_sender()
        return await future

    async def drain(self) -> None:
        """Until nothing is queued or in flight (bound it with a timeout)."""
        await self._idle.wait()

    async def stop(self, error: ApiError) -> None:
        """Stop the sender (a publish in flight may or may not have been published) and fail
        what is still queued with copies of ``error``."""
        self._stopping = True
        sender = self._sender
        if sender is not None and not sender.done():
            sender.cancel()
            # wait() rather than await: the sender's CancelledError is expected and must not
            # be mistaken for our own cancellation, which still propagates from here.
            await asyncio.wait([sender])
        self._fail_queued(error)

    # -- the sender ---------------------------------------------------------------------------

    def _ensure_sender(self) -> None:
        # Started with the first publish, and again should it ever have ended: publishes are
        # never left queued behind a sender that is gone.
        if (self._sender is None or self._sender.done()) and not self._stopping:
            self._sender = asyncio.create_task(self._run(), name="serverapi publish sender")
            self._sender.add_done_callback(self._sender_done)

    def _sender_done(self, sender: asyncio.Task[None]) -> None:
        if sender.cancelled() or sender.exception() is None:
            return
        log.error("the server API publish sender ended", exc_info=sender.exception())
        self._fail_queued(ApiError("the server API publish sender failed (a bug; see the "
                                   "log); this publish was not sent"))

    async def _run(self) -> None:
        try:
            while True:
                if not self._queue:
                    self._idle.set()
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                self._in_flight = self._take()
                try:
                    await self._send(self._in_flight)
                except Exception:
                    # A bug, not a server failure (those reach the callers as ApiError): fail
                    # the publishes of this request only, and go on with the next ones.
                    log.exception("the server API publish sender failed on %d publishes",
                                  len(self._in_flight))
                    for item in self._in_flight:
                        _fail(item, ApiError("the server API publish sender failed (a bug; "
                                             "see the log); this publish may or may not have "
                                             "been published"))
                finally:
                    self._release_in_flight()
        finally:
            self._idle.set()

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
            # Only when the sender is cancelled mid-request.
            _fail(item, ApiUnavailableError(
                "the server API client closed before this publish was confirmed; it may or "
                "may not have been published"))
            self._slots.release()

    def _fail_queued(self, error: ApiError) -> None:
        while self._queue:
            _fail(self._queue.popleft(), copy_error(error))
            self._slots.release()

    async def _send(self, items: list[_Pending]) -> None:
        if len(items) > 1:
            await self._send_batch(items)
        elif items:
            await self._send_one(items[0])

    async def _send_one(self, item: _Pending) -> None:
        self._stats.publish_requests += 1
        try:
            result = await self._transport.call("publish", item.params, publish_result)
        except ApiError as exc:
            _fail(item, exc)
        else:
            _resolve(item, result)

    async def _send_batch(self, items: list[_Pending]) -> None:
        todo = items
        for attempt in itertools.count():
            self._stats.publish_batches += 1
            self._stats.batched_publishes += len(todo)
            # Sequential batch: the server applies the commands in order, keeping each
            # channel's order. The params were encoded once, by ServerApi.publish().
            body = b'{"commands":[' + b",".join(
                b'{"publish":' + item.params + b"}" for item in todo) + b"]}"
            try:
                outcomes = await self._transport.call(
                    "batch", body, partial(publish_outcomes, expected=len(todo)))
            except ApiError as exc:
                for item in todo:
                    _fail(item, copy_error(exc))
                return
            todo = self._settle(todo, outcomes, may_retry=attempt < self._transport.retries)
            if not todo:
                return
            await self._transport.pause("batch", attempt, "a temporary error in the batch")

    def _settle(self, items: list[_Pending], outcomes: list[PublishResult | ApiReplyError], *,
                may_retry: bool) -> list[_Pending]:
        """Hand each caller its outcome; return the publishes to send again.

        From the first temporary error (or malformed reply) on, everything is sent again: the
        publishes after it may have been applied, but their idempotency keys make the server
        answer those with the first result, and resending the whole tail keeps the order
        within each channel."""
        for index, (item, outcome) in enumerate(zip(items, outcomes, strict=True)):
            if isinstance(outcome, PublishResult):
                _resolve(item, outcome)
                continue
            if isinstance(outcome, ApiMalformedReplyError):
                self._stats.malformed_replies += 1
            if outcome.temporary and may_retry:
                return items[index:]
            _fail(item, gave_up("publish", outcome) if outcome.temporary else outcome)
        return []


def _resolve(item: _Pending, result: PublishResult) -> None:
    if not item.future.done():
        item.future.set_result(result)


def _fail(item: _Pending, exc: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(exc)
