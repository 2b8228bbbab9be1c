"""Asking the event loop a question from another thread, with a deadline.

The ops endpoint answers from its own thread, so that a stuck loop can't stop it from answering;
what it reports is computed *on* the loop (``call_soon_threadsafe``), where nothing changes the
runtime's state meanwhile. A loop that does not run the question within the deadline is
reported as stuck: that is the health check itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

from botkit.errors import BotkitError

__all__ = ["LoopStuckError", "ask_loop"]

_T = TypeVar("_T")


class LoopStuckError(BotkitError):
    """The event loop did not run a callback within the deadline (or is closed)."""


def ask_loop(loop: asyncio.AbstractEventLoop, question: Callable[[], _T], timeout: float) -> _T:
    """``question()`` as run on ``loop``; LoopStuckError if it did not run within ``timeout``
    seconds. Call it from any thread but the loop's own."""
    answer: concurrent.futures.Future[_T] = concurrent.futures.Future()

    def run() -> None:
        if not answer.set_running_or_notify_cancel():
            return  # given up on meanwhile
        try:
            answer.set_result(question())
        except BaseException as exc:  # handed to the asking thread, which raises it
            answer.set_exception(exc)

    try:
        loop.call_soon_threadsafe(run)
    except RuntimeError as exc:  # the loop is closed
        raise LoopStuckError("the event loop is closed") from exc
    try:
        return answer.result(timeout)
    except concurrent.futures.TimeoutError:
        answer.cancel()
        raise LoopStuckError(f"the event loop did not answer within {timeout:g}s") from None
