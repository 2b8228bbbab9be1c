"""A route: one handler a :class:`~botkit.bot.Bot` registered (its kind, room and sender
filters, guard) and :class:`Invocation`, its call for one envelope with what routing found.
``botkit.bot`` re-exports the public names."""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botkit.errors import PluginError
from botkit.guards import Guard
from botkit.routing import ArgumentError, CommandLine, HandlerSignature

if TYPE_CHECKING:
    from botkit.context import Context

__all__ = ["CommandInfo", "Filters", "Invocation", "Route", "RouteKind", "UsageError"]


class UsageError(Exception):
    """Raise it from a command to answer with the command's usage line."""


class RouteKind(enum.Enum):
    EVENT = "event"
    COMMAND = "command"
    MATCH = "match"


@dataclass(frozen=True, slots=True)
class CommandInfo:
    name: str
    aliases: tuple[str, ...]
    help: str
    usage: str


@dataclass(frozen=True, slots=True)
class Filters:
    rooms: frozenset[str] | None = None
    senders: frozenset[str] | None = None

    def accept(self, room_id: str, sender_id: str) -> bool:
        return ((self.rooms is None or room_id in self.rooms)
                and (self.senders is None or sender_id in self.senders))


@dataclass(frozen=True, slots=True)
class Route:
    kind: RouteKind
    fn: Callable[..., Any]
    signature: HandlerSignature
    filters: Filters
    event_type: str = ""
    pattern: re.Pattern[str] | None = None
    command: CommandInfo | None = None
    guard: Guard | None = None
    """Checks, cooldown and concurrency limit (botkit/guards.py), if any."""
    asks: bool = False
    """Runs in a task of its own, so that it may park on ``ctx.ask`` (conversations.py)."""
    plain: Invocation = field(init=False, repr=False, compare=False)
    """The call of this route with no match and no command line: one for every envelope
    (an Invocation is immutable), rather than one made per envelope."""
    open_filters: bool = field(init=False, repr=False, compare=False)
    """No room and no sender filter: every envelope passes."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "plain", Invocation(self))
        object.__setattr__(self, "open_filters",
                           self.filters.rooms is None and self.filters.senders is None)

    @property
    def name(self) -> str:
        return self.signature.name


@dataclass(frozen=True, slots=True)
class Invocation:
    """One handler to call for one envelope, with what routing found (match, arguments)."""

    route: Route
    match: re.Match[str] | None = None
    command_line: CommandLine | None = None

    async def __call__(self, ctx: Context) -> None:
        # HandlerCalls.call inlines this for an async handler without command arguments,
        # with the same steps (bench/ S1): keep the two alike.
        route = self.route
        rest = self.command_line.rest if self.command_line is not None else None
        try:
            arguments = route.signature.bind(ctx, ctx.event, self.match, rest)
        except ArgumentError as exc:
            await self.usage(ctx, str(exc))
            return
        try:
            if route.signature.is_async:
                result = await route.fn(*arguments)
            else:
                # Plain functions may block: they run in a worker thread, off the event loop.
                result = await asyncio.to_thread(route.fn, *arguments)
        except UsageError as exc:
            await self.usage(ctx, str(exc))
            return
        if isinstance(result, str) and result:
            await ctx.reply(result)

    async def usage(self, ctx: Context, reason: str) -> None:
        """Answer with the command's usage line (a handler raised UsageError, or its
        arguments did not fit); PluginError for a handler that is not a command."""
        command = self.route.command
        if command is None:
            raise PluginError(f"{self.route.name} raised UsageError but is not a command")
        text = f"Usage: {command.usage}"
        if reason:
            text += f" ({reason})"
        await ctx.reply(text)
