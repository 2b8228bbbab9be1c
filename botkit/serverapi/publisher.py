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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from botkit.errors import ApiError, ApiMalformedReplyError, ApiReplyError, ApiUnavailableError
from botkit.serverapi.replies import PublishResult, publish_outcomes, publish_result
from botkit.serverapi.transport import Transport, copy_error, gave_up

__all__ = ["OrderedPublisher", "send_publishes"]

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
        # One publish or a batch (see send_publishes); a lone publish's error is raised by
        # the transport after its retries, a batch's are settled one by one.
        todo = items
        for attempt in itertools.count():
            try:
                outcomes = await send_publishes(self._transport, [item.params for item in todo])
            except ApiError as exc:
                for item in todo:
                    _fail(item, exc if len(todo) == 1 else copy_error(exc))
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


async def send_publishes(transport: Transport, params: Sequence[bytes], *,
                         retries: int | None = None) -> list[PublishResult | ApiReplyError]:
    """One request carrying the encoded publishes ``params`` (``ServerApi.encode_publish``):
    ``publish`` for one, a sequential ``batch`` for several (the server applies its commands in
    order, keeping each channel's order), counted in the transport's stats. An outcome per
    publish, in order; a failure of the whole request (or of a lone publish) is raised."""
    stats = transport.stats
    if len(params) == 1:
        stats.publish_requests += 1
        return [await transport.call("publish", params[0], publish_result, retries=retries)]
    stats.publish_batches += 1
    stats.batched_publishes += len(params)
    body = b'{"commands":[' + b",".join(b'{"publish":' + item + b"}" for item in params) + b"]}"
    return await transport.call("batch", body, partial(publish_outcomes, expected=len(params)),
                                retries=retries)


def _resolve(item: _Pending, result: PublishResult) -> None:
    if not item.future.done():
        item.future.set_result(result)


def _fail(item: _Pending, exc: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(exc)
