"""How a bot calls its handlers: under the bot's middleware, deadline, guards and error
isolation, inline in the room's lane, or (a handler that may ask) in a task of its own that the
lane waits on until it ends or parks on a question (botkit/conversations.py).

Errors are caught here, logged with the envelope's id and counted; a handler never takes its
bot down. An ``AskCancelled`` or ``AskTimeout`` the handler lets through ends its conversation
quietly: the person cancelled or went away, which is no failure of the bot.
"""

from __future__ import annotations

import asyncio
import logging
import math
from bisect import bisect_left
from collections.abc import Sequence
from time import perf_counter
from typing import Any

from botkit.bot import Bot, Invocation, Route, UsageError
from botkit.context import BotServices, Context
from botkit.conversations import ABANDONED_TEXT, CURRENT_RUN, Conversations, HandlerRun, Question
from botkit.errors import AskCancelled, AskTimeout
from botkit.guards import Guard, GuardState
from botkit.runtime.deadlines import Deadlines
from botkit.runtime.stats import BotStats
from botkit.timings import BUCKETS
from botkit.ulid import new_ulid

__all__ = ["HandlerCalls"]

log = logging.getLogger("botkit.runtime")


class HandlerCalls:
    """The handler calls of one running bot."""

    def __init__(self, name: str, bot: Bot, services: BotServices, stats: BotStats,
                 conversations: Conversations, handler_timeout: float) -> None:
        self.name = name
        self.bot = bot
        self.services = services
        self.stats = stats
        """Replaced with the previous run's when a bot restarts (BotCore.adopt)."""
        self.conversations = conversations
        self.handler_timeout = handler_timeout
        # One timer for all handler deadlines instead of one per call (see deadlines.py).
        self._deadlines = Deadlines(handler_timeout)
        self.guards = GuardState()
        self.runs: set[asyncio.Task[None]] | None = None
        """Handler calls running in tasks of their own (those that may ask): owned here, and
        cancelled when the bot stops. Made by the first such call (bench/ S4)."""

    async def end_conversations(self) -> None:
        """The bot stops: each person still asked is told once, then every handler task
        left (parked ones) is cancelled and awaited, within the handler timeout."""
        async def tell(question: Question) -> None:
            ctx = Context(self.services, room=question.room,
                          cause=f"ask-abandoned:{question.user}:{new_ulid()}")
            async with asyncio.timeout(self.handler_timeout):
                await ctx.reply(ABANDONED_TEXT.format(user=question.user))

        self.stats.asks_abandoned += await self.conversations.abandon(tell)
        runs = list(self.runs or ())
        for task in runs:
            task.cancel()
        if runs:
            # Bounded: a handler that ignores its cancellation is left behind, not waited for.
            await asyncio.wait(runs, timeout=self.handler_timeout)

    async def call_apart(self, ctx: Context, invocation: Invocation) -> None:
        """Run a handler that may ask in a task of its own, and wait until it ends or parks
        on a question (see botkit/conversations.py)."""
        loop = asyncio.get_running_loop()
        run = HandlerRun(invocation.route.name, loop)
        settled = run.settled
        task = loop.create_task(self.call(ctx, invocation, run),
                                name=f"bot {self.name}: {invocation.route.name}")
        runs = self.runs
        if runs is None:
            runs = self.runs = set()
        runs.add(task)

        def done(task: asyncio.Task[None]) -> None:
            runs.discard(task)
            run.settle()

        task.add_done_callback(done)
        try:
            await settled
        except asyncio.CancelledError:
            # The lane is cancelled while the handler still runs in it: the handler goes too.
            task.cancel()
            await asyncio.wait([task])
            raise

    async def call(self, ctx: Context, invocation: Invocation,
                   run: HandlerRun | None = None) -> None:
        middlewares = self.bot.middlewares
        deadline = self._deadlines.scope()
        if run is not None:
            run.deadline = deadline
            CURRENT_RUN.set(run)  # the task's own context: nothing to reset
        started = perf_counter()
        route = invocation.route
        guard = route.guard
        key: str | None = None
        try:
            with deadline:
                if guard is not None:
                    key = await self._admit(ctx, route, guard)
                    if key is None:
                        return
                if middlewares:
                    await _chain(middlewares, ctx, invocation)()
                elif invocation.command_line is None and route.signature.is_async:
                    # Invocation.__call__ inlined (one coroutine less per envelope, bench/
                    # S1): without a command line, binding the arguments cannot fail.
                    try:
                        result = await route.fn(*route.signature.bind(ctx, ctx.event,
                                                                      invocation.match))
                    except UsageError as exc:
                        await invocation.usage(ctx, str(exc))
                    else:
                        if isinstance(result, str) and result:
                            await ctx.reply(result)
                else:
                    await invocation(ctx)
        except (AskCancelled, AskTimeout) as exc:
            # A conversation the handler let end: the person cancelled or went quiet. Not a
            # failure of the bot (the question is counted: asks, ask_timeouts).
            log.info("bot %s: handler %s ended its conversation: %s", self.name,
                     invocation.route.name, exc)
        except TimeoutError:
            envelope_id = ctx.event.id if ctx.event is not None else "-"
            timeout = self.handler_timeout
            if not deadline.expired:
                # The handler's own TimeoutError (an upstream call of its): an error like others.
                self.stats.handler_errors += 1
                log.exception("bot %s: handler %s failed on envelope %s", self.name,
                              invocation.route.name, envelope_id)
                return
            self.stats.handler_timeouts += 1
            log.error("bot %s: handler %s timed out after %.1fs on envelope %s", self.name,
                      invocation.route.name, timeout, envelope_id)
        except Exception:
            self.stats.handler_errors += 1
            log.exception("bot %s: handler %s failed on envelope %s", self.name,
                          invocation.route.name, ctx.event.id if ctx.event is not None else "-")
        finally:
            if key is not None:
                assert guard is not None
                self.guards.leave(guard, invocation.route.name, key)
            # Timing.observe() inlined: two method calls were a third of its cost (bench/ S1).
            elapsed = perf_counter() - started
            if run is not None:
                elapsed -= run.parked_seconds  # waiting for an answer is not the handler's
            timing = self.stats.handler_seconds[route.signature.name]
            timing.counts[bisect_left(BUCKETS, elapsed)] += 1
            timing.total += elapsed


    async def _admit(self, ctx: Context, route: Route, guard: Guard) -> str | None:
        """The guard's key when the call may run (a concurrency slot taken), None when it is
        refused (counted; the person told as the guard says). See botkit/guards.py."""
        state, stats = self.guards, self.stats
        user = ctx.sender or "-"
        if guard.checks and not await state.passes_checks(guard, ctx):
            stats.refused_checks += 1
            if guard.denied_text:
                await ctx.reply(guard.denied_text.format(what=guard.what, user=user))
            return None
        key = guard.key(ctx)
        if not state.enter(guard, route.name, key):
            stats.refused_busy += 1
            if guard.busy_text:
                await ctx.reply(guard.busy_text.format(what=guard.what, user=user))
            return None
        if guard.rate is not None:
            try:
                allowed, retry = await state.hit(guard, guard.rate, route.name, key,
                                                 self.services.clock().timestamp(), ctx)
            except BaseException:
                state.leave(guard, route.name, key)
                raise
            if not allowed:
                state.leave(guard, route.name, key)
                stats.cooldowns += 1
                if retry is not None and guard.cooldown_text:
                    await ctx.reply(guard.cooldown_text.format(
                        what=guard.what, user=user, retry=max(1, math.ceil(retry))))
                return None
        return key


def _chain(middlewares: Sequence[Any], ctx: Context, invocation: Invocation) -> Any:
    """The handler call wrapped in the bot's middlewares, the first registered outermost."""
    async def call() -> None:
        await invocation(ctx)

    chain: Any = call
    for middleware in reversed(middlewares):
        chain = _wrap(middleware, ctx, chain)
    return chain


def _wrap(middleware: Any, ctx: Context, call_next: Any) -> Any:
    async def call() -> None:
        await middleware(ctx, call_next)
    return call
