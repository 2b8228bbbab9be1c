"""``ctx.ask``: a question to one person in one room, and the wait for their answer.

How a handler waits without holding its room
--------------------------------------------
A room's envelopes are handled one after another by its lane, inline: no task per message
(that is most of the dispatch cost the benchmarks pin). A handler that *may ask* (its code names
``ask``, or its decorator says ``asks=True``) runs instead in a task of its own, which the
lane awaits until the handler either ends or **parks** on a question. Parked, it no longer
counts for the lane: the room's next envelopes are handled, in order, by other handlers.

The answer goes back through the lane, in order: the next chat message of the same person in
the same room (``/cancel`` included, which raises :class:`~botkit.errors.AskCancelled`) is
handed to the question instead of being routed, and the lane then waits for the handler again,
until it ends or parks on its next question. So a conversation's replies keep their place in
the room, and only a timeout (:class:`~botkit.errors.AskTimeout`) resumes a handler outside its
lane.

The handler's deadline (``limits.handler_timeout``) is suspended while it is parked, and runs
again in full once it resumes: the time to answer is the question's ``timeout``, the time to
act on an answer the handler's own.

Bounds and the end
------------------
At most ``Bot.max_questions`` questions are pending per bot, one per person and room; one more
raises :class:`~botkit.errors.AskError` before anything is sent. A pending question survives
nothing: when the bot stops, each person still being asked is told once (:data:`ABANDONED_TEXT`)
and the handler is cancelled. The running handler tasks belong to the bot's core, which awaits
them when it stops.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from botkit.envelope import ChatMessage
from botkit.errors import AskCancelled, AskError, AskInvalidAnswer, AskTimeout

if TYPE_CHECKING:
    from botkit.context import Context

__all__ = ["ABANDONED_TEXT", "CURRENT_RUN", "DEFAULT_MAX_QUESTIONS", "REASK_TEXT",
           "Conversations", "Counts", "HandlerRun", "Question", "may_ask"]

log = logging.getLogger("botkit.runtime")
DEFAULT_MAX_QUESTIONS = 1000
ABANDONED_TEXT = "{user}: sorry, I have to stop; I won't read an answer to my question."
REASK_TEXT = "Please answer one of: {choices}"


class Suspendable(Protocol):
    """A handler's deadline (runtime/deadlines.py's scope)."""

    def suspend(self) -> None: ...

    def resume(self) -> None: ...


class Counts(Protocol):
    """Where the questions are counted (the runtime's BotStats)."""

    asks: int
    ask_timeouts: int


class HandlerRun:
    """A handler call in its own task (one that may ask). ``settled`` is what its lane waits
    for: done when the handler ends or parks on a question."""

    __slots__ = ("_parked_at", "deadline", "name", "parked_seconds", "settled")

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self.name = name
        self.settled: asyncio.Future[None] = loop.create_future()
        self.deadline: Suspendable | None = None
        self.parked_seconds = 0.0
        """Time spent waiting for answers: left out of the handler's timing."""
        self._parked_at = 0.0

    def settle(self) -> None:
        if not self.settled.done():
            self.settled.set_result(None)

    def rearm(self) -> asyncio.Future[None]:
        """The future to wait on for the handler's next stop (end or park)."""
        if self.settled.done():
            self.settled = asyncio.get_running_loop().create_future()
        return self.settled

    def park(self) -> None:
        if self.deadline is not None:
            self.deadline.suspend()
        self._parked_at = time.perf_counter()
        self.settle()

    def unpark(self) -> None:
        self.parked_seconds += time.perf_counter() - self._parked_at
        self.rearm()
        if self.deadline is not None:
            self.deadline.resume()


CURRENT_RUN: ContextVar[HandlerRun | None] = ContextVar("botkit_handler_run", default=None)
"""The handler call running in the current task, when it runs as a task of its own."""


@dataclass(eq=False, slots=True)
class Question:
    id: int
    room: str
    user: str
    run: HandlerRun
    answer: asyncio.Future[ChatMessage]
    deadline: datetime
    timer: asyncio.TimerHandle | None = None

    def expire(self) -> None:
        if not self.answer.done():
            self.answer.set_exception(AskTimeout(
                f"{self.user} did not answer in room {self.room} in time"))


class Conversations:
    """The pending questions of one bot, keyed by (room, user)."""

    def __init__(self, *, bot: str, clock: Callable[[], datetime], limit: int,
                 counts: Counts, real_timers: bool = True) -> None:
        self.bot = bot
        self.counts = counts
        self._clock = clock
        self.limit = limit
        self._real_timers = real_timers
        """The runtime's: a loop timer per wait. The test harness moves its virtual clock
        and calls :meth:`expire_due` instead."""
        self.pending: dict[tuple[str, str], Question] = {}
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self.pending)

    def __iter__(self) -> Iterator[Question]:
        return iter(list(self.pending.values()))

    def waiting(self, room: str, user: str) -> Question | None:
        """The question ``user`` has to answer in ``room``, if one waits for an answer now."""
        question = self.pending.get((room, user))
        if question is None or question.answer.done():
            return None
        return question

    def deliver(self, question: Question, message: ChatMessage,
                cancel: bool) -> asyncio.Future[None]:
        """Hand ``message`` to the question (``cancel``: it was /cancel); the future is done
        when the handler has acted on it (ended, or parked on its next question)."""
        settled = question.run.rearm()
        if cancel:
            question.answer.set_exception(AskCancelled(
                f"{question.user} cancelled the question in room {question.room}"))
        else:
            question.answer.set_result(message)
        return settled

    async def expire_due(self) -> None:
        """Time out every question whose deadline has passed (by the bot's clock), each
        handler acting on it before the next: the harness's timers."""
        now = self._clock()
        for question in sorted(self, key=lambda q: (q.deadline, q.id)):
            if question.deadline <= now and not question.answer.done():
                settled = question.run.rearm()
                question.expire()
                await settled

    async def ask(self, ctx: Context, prompt: str, *, timeout: float,
                  choices: Iterable[str] | None) -> ChatMessage:
        run = CURRENT_RUN.get()
        event, room = ctx.event, ctx.room
        if not isinstance(event, ChatMessage) or room is None:
            raise AskError("ctx.ask asks the sender of a chat message; this handler has none")
        if run is None:
            raise AskError(
                "ctx.ask was called from a handler that was not run as a conversation (its "
                "code does not name 'ask', e.g. it asks from a helper): give its decorator "
                "asks=True")
        if not (0 < timeout <= 24 * 3600):  # also NaN
            raise AskError(f"ask timeout must be between 0 and 1 day, got {timeout!r}")
        options = [str(choice) for choice in choices] if choices is not None else None
        if options is not None and not options:
            raise AskError("ask choices must not be empty")
        key = (room, event.sender_id)
        if key in self.pending:
            raise AskError(f"{event.sender_id} already has a question to answer in {room}")
        if len(self.pending) >= self.limit:
            raise AskError(f"bot {self.bot} has {self.limit} pending questions already "
                           "(Bot.max_questions)")
        loop = asyncio.get_running_loop()
        question = Question(next(self._ids), room, event.sender_id, run,
                            loop.create_future(), self._clock())
        self.pending[key] = question
        self.counts.asks += 1
        try:
            await ctx.reply(prompt)
            answer = await self._wait(question, timeout)
            if options is None or _fits(answer, options):
                return answer
            await ctx.reply(REASK_TEXT.format(choices=", ".join(options)))
            answer = await self._wait(question, timeout)
            if not _fits(answer, options):
                raise AskInvalidAnswer(f"{question.user} answered {answer.text!r:.40}, not "
                                       f"one of {', '.join(options)}", answer)
            return answer
        finally:
            if self.pending.get(key) is question:
                del self.pending[key]

    async def _wait(self, question: Question, timeout: float) -> ChatMessage:
        loop = asyncio.get_running_loop()
        if question.answer.done():
            question.answer = loop.create_future()
        question.deadline = self._clock() + timedelta(seconds=timeout)
        if self._real_timers:
            question.timer = loop.call_later(timeout, question.expire)
        question.run.park()
        try:
            return await question.answer
        except AskTimeout:
            self.counts.ask_timeouts += 1
            raise
        finally:
            if question.timer is not None:
                question.timer.cancel()
                question.timer = None
            question.run.unpark()

    async def abandon(self, tell: Callable[[Question], Awaitable[None]]) -> int:
        """The bot stops: each person still being asked is told once; the number told."""
        told = 0
        for question in self:
            del self.pending[(question.room, question.user)]
            if question.answer.done():
                continue
            told += 1
            try:
                await tell(question)
            except Exception as exc:
                log.warning("bot %s: could not tell %s in %s that the question is abandoned: "
                            "%s", self.bot, question.user, question.room, exc)
        return told


def _fits(answer: ChatMessage, options: list[str]) -> bool:
    text = answer.text.strip().casefold()
    return any(text == option.strip().casefold() for option in options)


def may_ask(fn: Callable[..., object]) -> bool:
    """Whether ``fn``'s code names ``ask`` (``ctx.ask(...)``, in nested functions too): such a
    handler runs in its own task, so that its lane can go on while it waits."""
    code = getattr(inspect.unwrap(fn), "__code__", None)
    stack = [code] if code is not None else []
    while stack:
        current = stack.pop()
        if "ask" in current.co_names:
            return True
        stack.extend(const for const in current.co_consts if hasattr(const, "co_names"))
    return False
