"""``Bot``: the handler registry a plugin builds with decorators, and the rules that pick the
handlers for an envelope.

Routing rules, in one place:

* a ``chat.message`` whose text is ``{prefix}{command}`` for a registered command goes to that
  command only (plus ``"*"`` observers); a command of another bot is just text here;
* any other message goes to every ``@bot.match`` whose pattern it contains and to the
  ``@bot.on(type)`` handlers of its type;
* ``@bot.on("*")`` handlers see every envelope;
* room and sender filters apply to all of them, and the chosen handlers run one after another
  in the order they were registered.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import BaseModel

from botkit._routes import (
    CommandInfo,
    Filters,
    Invocation,
    Route,
    RouteKind,
    UsageError,
)
from botkit.conversations import DEFAULT_MAX_QUESTIONS, may_ask
from botkit.envelope import ChatMessage, Envelope
from botkit.errors import PluginError
from botkit.guards import Guard, GuardOptions
from botkit.jobs.scheduler import ScheduleSpec
from botkit.routing import parse_command_line, read_signature

if TYPE_CHECKING:
    from botkit.context import Context

__all__ = ["Bot", "CommandInfo", "Invocation", "Middleware", "Route", "UsageError"]

_F = TypeVar("_F", bound=Callable[..., Any])
_COMMAND_NAME = re.compile(r"[a-z0-9_][a-z0-9_\-]{0,31}")
MIN_EVERY, MAX_EVERY = 1.0, 365 * 24 * 3600.0
Middleware = Callable[["Context", Callable[[], Awaitable[None]]], Awaitable[None]]
"""``async def mw(ctx, call_next)``: runs around every handler call; ``await call_next()``."""


def _guard(what: str, where: str, guards: GuardOptions) -> Guard | None:
    unknown = sorted(set(guards) - set(GuardOptions.__annotations__))
    if unknown:
        raise PluginError(f"{where}: unknown option(s) {', '.join(unknown)}; the guards are "
                          f"{', '.join(GuardOptions.__annotations__)}")
    return Guard.build(what, where, **guards)


def _asks(fn: Callable[..., Any], is_async: bool, asks: bool | None, where: str) -> bool:
    if asks and not is_async:
        raise PluginError(f"{where} {getattr(fn, '__qualname__', fn)}: asks=True needs an "
                          "async handler (ctx.ask is awaited)")
    if asks is not None:
        return asks
    return is_async and may_ask(fn)


def _frozen(values: Iterable[str] | str | None) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        return frozenset([values])
    return frozenset(values)


@dataclass(eq=False)
class Bot:
    """A bot plugin: create one at module level, decorate handlers, and name the module in
    ``bots.yaml``. ``settings`` is the pydantic model the bot's settings are validated with."""

    name: str
    settings: type[BaseModel] | None = None
    prefix: str = "/"
    description: str = ""
    max_questions: int = DEFAULT_MAX_QUESTIONS
    """Questions (``ctx.ask``) pending at once, over all rooms; one more raises AskError."""
    routes: list[Route] = field(default_factory=list, init=False)
    start_hooks: list[Callable[..., Any]] = field(default_factory=list, init=False)
    stop_hooks: list[Callable[..., Any]] = field(default_factory=list, init=False)
    gap_hooks: list[Callable[..., Any]] = field(default_factory=list, init=False)
    reply_failed_hooks: list[Callable[..., Any]] = field(default_factory=list, init=False)
    middlewares: list[Middleware] = field(default_factory=list, init=False)
    schedules: list[ScheduleSpec] = field(default_factory=list, init=False)
    _commands: dict[str, Route] = field(default_factory=dict, init=False)

    # -- decorators --------------------------------------------------------------------------

    def on(self, event_type: str = "*", *, rooms: Iterable[str] | str | None = None,
           senders: Iterable[str] | str | None = None, asks: bool | None = None,
           **guards: Unpack[GuardOptions]) -> Callable[[_F], _F]:
        """Handle envelopes of ``event_type`` (``"*"``: every envelope). ``cooldown``,
        ``per``, ``max_concurrency``, ``checks`` and the texts: see botkit/guards.py;
        ``asks``: see :meth:`command`."""
        if not isinstance(event_type, str) or not event_type:
            raise PluginError(f"bot {self.name}: @bot.on needs an event type such as "
                              "'chat.message' or '*'")

        def register(fn: _F) -> _F:
            what = f"bot {self.name}: handler"
            signature = read_signature(fn, command=False, what=what)
            self.routes.append(Route(RouteKind.EVENT, fn, signature,
                                     Filters(_frozen(rooms), _frozen(senders)),
                                     event_type=event_type,
                                     guard=_guard(signature.name, f"{what} {signature.name}",
                                                  guards),
                                     asks=_asks(fn, signature.is_async, asks, what)))
            return fn

        return register

    def command(self, name: str, *, aliases: Iterable[str] = (), help: str = "",
                rooms: Iterable[str] | str | None = None,
                senders: Iterable[str] | str | None = None, asks: bool | None = None,
                **guards: Unpack[GuardOptions]) -> Callable[[_F], _F]:
        """Handle ``{prefix}name args``; arguments are converted from the handler's hints.

        ``cooldown="3/10s"`` (``per`` "user", "room" or "bot"), ``max_concurrency``,
        ``checks=[...]``, ``persist`` and the refusal texts: see botkit/guards.py.
        ``asks``: whether the handler may call ``ctx.ask`` (default: whether its code names
        ``ask``); say ``asks=True`` for a handler that asks from a helper function."""
        # A lone string is one alias, not a sequence of one-letter aliases.
        alias_list = [aliases] if isinstance(aliases, str) else list(aliases)
        names = [name, *alias_list]
        if len(set(names)) != len(names):
            raise PluginError(f"bot {self.name}: command {name!r} lists a name twice")
        for each in names:
            if not isinstance(each, str) or not _COMMAND_NAME.fullmatch(each):
                raise PluginError(
                    f"bot {self.name}: command name {each!r} must be 1-32 lowercase letters, "
                    "digits, '_' or '-'")
            if each in self._commands:
                raise PluginError(f"bot {self.name}: command {each!r} is registered twice "
                                  f"(by {self._commands[each].name})")

        def register(fn: _F) -> _F:
            what = f"bot {self.name}: command {name!r} handler"
            signature = read_signature(fn, command=True, what=what)
            info = CommandInfo(name, tuple(alias_list), help,
                               signature.usage(f"{self.prefix}{name}"))
            route = Route(RouteKind.COMMAND, fn, signature,
                          Filters(_frozen(rooms), _frozen(senders)), command=info,
                          guard=_guard(f"{self.prefix}{name}", what, guards),
                          asks=_asks(fn, signature.is_async, asks, what))
            self.routes.append(route)
            for each in names:
                self._commands[each] = route
            return fn

        return register

    def match(self, pattern: str | re.Pattern[str], *, flags: int = 0,
              rooms: Iterable[str] | str | None = None,
              senders: Iterable[str] | str | None = None, asks: bool | None = None,
              **guards: Unpack[GuardOptions]) -> Callable[[_F], _F]:
        """Handle chat messages whose text contains ``pattern`` (``re.search``); the guards
        and ``asks`` as for :meth:`command`."""
        try:
            compiled = re.compile(pattern, flags) if isinstance(pattern, str) else pattern
        except re.error as exc:
            raise PluginError(f"bot {self.name}: invalid pattern {pattern!r}: {exc}") from exc

        def register(fn: _F) -> _F:
            what = f"bot {self.name}: handler"
            signature = read_signature(fn, command=False, what=what)
            self.routes.append(Route(RouteKind.MATCH, fn, signature,
                                     Filters(_frozen(rooms), _frozen(senders)),
                                     event_type="chat.message", pattern=compiled,
                                     guard=_guard(signature.name, f"{what} {signature.name}",
                                                  guards),
                                     asks=_asks(fn, signature.is_async, asks, what)))
            return fn

        return register

    def every(self, *, seconds: float = 0, minutes: float = 0, hours: float = 0,
              rooms: Iterable[str] | str | None = None) -> Callable[[_F], _F]:
        """Run ``fn(ctx)`` at a fixed interval, once per listed room (``ctx.room``), or once
        with no room when ``rooms`` is not given."""
        total = seconds + 60 * minutes + 3600 * hours
        if not total > 0:  # also NaN
            raise PluginError(f"bot {self.name}: @bot.every needs a positive interval, e.g. "
                              "@bot.every(minutes=5)")
        if not MIN_EVERY <= total <= MAX_EVERY:
            # Each fire usually posts: a sub-second interval floods the room (thousands of
            # messages a minute), and bots.yaml's every: has the same bounds.
            raise PluginError(f"bot {self.name}: @bot.every needs an interval between 1 second "
                              f"and 365 days, got {total:g}s; for calendar times use "
                              "@bot.cron")
        return self._scheduled(IntervalTrigger(seconds=total, timezone=UTC), rooms,
                               f"every {total:g}s")

    def cron(self, expression: str, *, rooms: Iterable[str] | str | None = None,
             timezone: str = "UTC") -> Callable[[_F], _F]:
        """Run ``fn(ctx)`` on a crontab schedule (``"*/5 * * * *"``), in ``timezone``."""
        try:
            trigger = CronTrigger.from_crontab(expression, timezone=timezone)
        except (ValueError, LookupError) as exc:
            raise PluginError(f"bot {self.name}: invalid cron expression {expression!r} or "
                              f"timezone {timezone!r}: {exc}") from exc
        return self._scheduled(trigger, rooms, f"cron {expression}")

    def _scheduled(self, trigger: BaseTrigger, rooms: Iterable[str] | str | None,
                   what: str) -> Callable[[_F], _F]:
        room_list = tuple(sorted(_frozen(rooms) or ()))

        def register(fn: _F) -> _F:
            signature = read_signature(fn, command=False, what=f"bot {self.name}: {what} job")
            key = signature.name
            if any(spec.key == key for spec in self.schedules):
                raise PluginError(f"bot {self.name}: {key} is scheduled twice")
            self.schedules.append(ScheduleSpec(key, trigger, room_list, fn=fn))
            return fn

        return register

    def on_start(self, fn: _F) -> _F:
        """Run ``fn(ctx)`` once the bot is connected and subscribed."""
        read_signature(fn, command=False, what=f"bot {self.name}: on_start hook")
        self.start_hooks.append(fn)
        return fn

    def on_stop(self, fn: _F) -> _F:
        """Run ``fn(ctx)`` while the bot shuts down, before its connection closes."""
        read_signature(fn, command=False, what=f"bot {self.name}: on_stop hook")
        self.stop_hooks.append(fn)
        return fn

    def on_gap(self, fn: _F) -> _F:
        """Run ``fn(ctx, gap)`` when envelopes of a room may have been lost for good (see
        :class:`botkit.Gap`): ``ctx.room`` is the room; the bot then carries on live."""
        try:
            inspect.signature(fn).bind(None, None)
        except (TypeError, ValueError) as exc:
            raise PluginError(f"bot {self.name}: on_gap hook "
                              f"{getattr(fn, '__qualname__', fn)!r} must take (ctx, gap): "
                              f"{exc}") from None
        self.gap_hooks.append(fn)
        return fn

    def on_reply_failed(self, fn: _F) -> _F:
        """Run ``fn(ctx, failed)`` when a reply (or send) of this bot that nobody awaited with
        ``wait=True`` was never published (see :class:`botkit.FailedReply`): ``ctx.room`` is
        its room. Called once per failed reply; the room's later replies go out meanwhile."""
        try:
            inspect.signature(fn).bind(None, None)
        except (TypeError, ValueError) as exc:
            raise PluginError(f"bot {self.name}: on_reply_failed hook "
                              f"{getattr(fn, '__qualname__', fn)!r} must take (ctx, failed): "
                              f"{exc}") from None
        self.reply_failed_hooks.append(fn)
        return fn

    def middleware(self, fn: Middleware) -> Middleware:
        """Wrap every handler call: ``async def mw(ctx, call_next): ...; await call_next()``."""
        self.middlewares.append(fn)
        return fn

    # -- routing -----------------------------------------------------------------------------

    @property
    def commands(self) -> list[CommandInfo]:
        return [r.command for r in self.routes if r.command is not None]

    def help_text(self) -> str:
        lines = [f"{self.description}" if self.description else f"Commands of {self.name}:"]
        for info in self.commands:
            line = f"{info.usage}"
            if info.help:
                line += f" — {info.help}"
            lines.append(line)
        return "\n".join(lines)

    def route(self, envelope: Envelope, room_id: str) -> list[Invocation]:
        """The handlers to call for ``envelope`` in ``room_id``, in registration order."""
        sender = envelope.sender_id
        text = envelope.text if isinstance(envelope, ChatMessage) else None
        # A bot without commands has no command line to read (this runs for every message).
        command_line = (parse_command_line(text, self.prefix)
                        if text is not None and self._commands else None)
        command = self._commands.get(command_line.name) if command_line else None
        invocations: list[Invocation] = []
        for route in self.routes:
            if not route.open_filters and not route.filters.accept(room_id, sender):
                continue
            if route.kind is RouteKind.EVENT:
                if route.event_type == "*" or (command is None
                                               and route.event_type == envelope.type):
                    invocations.append(route.plain)
            elif route.kind is RouteKind.COMMAND:
                if route is command:
                    invocations.append(Invocation(route, command_line=command_line))
            elif command is None and text is not None and route.pattern is not None:
                found = route.pattern.search(text)
                if found is not None:
                    invocations.append(Invocation(route, match=found))
        return invocations
