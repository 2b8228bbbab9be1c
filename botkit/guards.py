"""Checks, cooldowns and concurrency limits on a handler: ``@bot.command("roll",
cooldown="3/10s", per="user", max_concurrency=1, checks=[is_admin])``.

Before a guarded handler runs, in this order (a refusal by one skips the rest, so a failing
check spends no cooldown):

* **checks**: each ``check(ctx)`` (sync or async) must return true; a refusal answers
  ``denied_text`` (default: silence, so an admin command does not advertise itself);
* **max_concurrency**: at most that many calls of the handler run at once per key; one more is
  *refused*, not queued (a queue would hold the room's lane behind it, and the calls that run
  long are the conversations, which can wait minutes), with ``busy_text`` (or silence);
* **cooldown** ``"N/duration"``: at most N calls per window per key. A window opens with the
  first call and lasts ``duration``; the first refusal of a window answers ``cooldown_text``
  (``{retry}``: whole seconds until the window ends; ``None``: silence), later ones are silent,
  so a person who hammers a command gets one notice per window, never one per attempt.

The key is ``per``: ``"user"`` (the sender), ``"room"`` or ``"bot"`` (one key for all).
Every refusal is counted in the bot's stats (``cooldowns``, ``refused_checks``,
``refused_busy``). Cooldown windows live in memory (pruned as they end), or with
``persist=True`` in the bot's state store (``cooldown:<handler>:<key>``, expiring with the
window), so they outlive a restart and are shared by replicas on Redis.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from botkit.errors import BotkitError, PluginError

if TYPE_CHECKING:
    from botkit.context import Context

__all__ = ["DEFAULT_BUSY_TEXT", "DEFAULT_COOLDOWN_TEXT", "Check", "Guard", "GuardOptions",
           "GuardState", "Per", "Rate", "parse_rate"]

Per = Literal["user", "room", "bot"]
Check = Callable[["Context"], bool | Awaitable[bool]]
DEFAULT_COOLDOWN_TEXT = "Please wait {retry}s before using {what} again."
DEFAULT_BUSY_TEXT = "{what} is busy; try again in a moment."
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d*)?|\.\d+)?\s*(ms|s|m|h)?\s*")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_PRUNE_EVERY = 1024
"""In-memory windows: expired ones are swept once this many were opened since the last sweep,
so a bot that meets many people keeps only the windows still running."""


class GuardOptions(TypedDict, total=False):
    """The guard keywords of ``@bot.command``, ``@bot.on`` and ``@bot.match``."""

    cooldown: str | None
    per: str
    max_concurrency: int | None
    checks: Sequence[Check]
    persist: bool
    cooldown_text: str | None
    busy_text: str | None
    denied_text: str | None


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds:g}s"


def parse_rate(value: str, *, what: str) -> Rate:
    """``"3/10s"`` → Rate(3, 10.0); also ``"1/m"``, ``"5/1.5s"``, ``"2/500ms"``."""
    found = _RATE.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise PluginError(f"{what}: cooldown {value!r} should look like '3/10s' (3 calls per "
                          "10 seconds; units ms, s, m, h)")
    count = int(found.group(1))
    seconds = float(found.group(2) or 1) * _UNIT[found.group(3)]
    if count < 1 or not (math.isfinite(seconds) and 0.01 <= seconds <= 7 * 24 * 3600):
        raise PluginError(f"{what}: cooldown {value!r} needs at least 1 call per a window "
                          "between 10ms and 7 days")
    return Rate(count, seconds)


@dataclass(frozen=True, slots=True)
class Guard:
    """What a handler's decorator asked for (see the module's docstring)."""

    what: str
    """How replies name the handler: ``/roll``, or the handler's name."""
    rate: Rate | None = None
    per: Per = "user"
    max_concurrency: int | None = None
    checks: tuple[Check, ...] = ()
    persist: bool = False
    cooldown_text: str | None = DEFAULT_COOLDOWN_TEXT
    busy_text: str | None = DEFAULT_BUSY_TEXT
    denied_text: str | None = None

    @staticmethod
    def build(what: str, where: str, *, cooldown: str | None = None, per: str = "user",
              max_concurrency: int | None = None, checks: Sequence[Check] = (),
              persist: bool = False, cooldown_text: str | None = DEFAULT_COOLDOWN_TEXT,
              busy_text: str | None = DEFAULT_BUSY_TEXT,
              denied_text: str | None = None) -> Guard | None:
        if per not in ("user", "room", "bot"):
            raise PluginError(f"{where}: per must be 'user', 'room' or 'bot', not {per!r}")
        if max_concurrency is not None and (isinstance(max_concurrency, bool)
                                            or not isinstance(max_concurrency, int)
                                            or max_concurrency < 1):
            raise PluginError(f"{where}: max_concurrency must be a whole number >= 1")
        checks = tuple(checks)
        for check in checks:
            if not callable(check):
                raise PluginError(f"{where}: checks must be functions of ctx, got {check!r}")
        for name, text in (("cooldown_text", cooldown_text), ("busy_text", busy_text),
                           ("denied_text", denied_text)):
            try:
                if text is not None:
                    text.format(what="/x", user="u", retry=1)
            except (KeyError, IndexError, ValueError, AttributeError) as exc:
                raise PluginError(f"{where}: {name} {text!r} can't be filled in ({exc!r}); "
                                  "it may use {what}, {user} and {retry}") from None
        if persist and cooldown is None:
            raise PluginError(f"{where}: persist=True keeps cooldowns; give a cooldown")
        if cooldown is None and max_concurrency is None and not checks:
            return None
        rate = parse_rate(cooldown, what=where) if cooldown is not None else None
        return Guard(what, rate, per, max_concurrency, checks,  # type: ignore[arg-type]
                     persist, cooldown_text, busy_text, denied_text)

    def key(self, ctx: Context) -> str:
        if self.per == "user":
            return ctx.sender or "-"
        if self.per == "room":
            return ctx.room or "-"
        return "*"


@dataclass(slots=True)
class _Window:
    ends: float
    count: int
    told: bool


@dataclass(slots=True)
class GuardState:
    """The guards' counters of one running bot: cooldown windows and running calls."""

    windows: dict[tuple[str, str], _Window] = field(default_factory=dict)
    running: dict[tuple[str, str], int] = field(default_factory=dict)
    _opened: int = 0

    async def passes_checks(self, guard: Guard, ctx: Context) -> bool:
        for check in guard.checks:
            result: Any = check(ctx)
            if inspect.isawaitable(result):
                result = await result
            if not result:
                return False
        return True

    def enter(self, guard: Guard, name: str, key: str) -> bool:
        """Take a running slot; False when ``max_concurrency`` calls run already."""
        if guard.max_concurrency is None:
            return True
        slot = (name, key)
        running = self.running.get(slot, 0)
        if running >= guard.max_concurrency:
            return False
        self.running[slot] = running + 1
        return True

    def leave(self, guard: Guard, name: str, key: str) -> None:
        if guard.max_concurrency is None:
            return
        slot = (name, key)
        left = self.running.get(slot, 1) - 1
        if left > 0:
            self.running[slot] = left
        else:
            self.running.pop(slot, None)

    async def hit(self, guard: Guard, rate: Rate, name: str, key: str, now: float,
                  ctx: Context) -> tuple[bool, float | None]:
        """Count one call; (allowed, seconds until the window ends when this refusal is the
        window's first, so the caller tells the person, else None)."""
        if guard.persist:
            return await self._hit_stored(rate, name, key, now, ctx)
        slot = (name, key)
        window = self.windows.get(slot)
        if window is None or window.ends <= now:
            self.windows[slot] = _Window(now + rate.seconds, 1, False)
            self._opened += 1
            if self._opened >= _PRUNE_EVERY:
                self._prune(now)
            return True, None
        if window.count < rate.count:
            window.count += 1
            return True, None
        if window.told:
            return False, None
        window.told = True
        return False, window.ends - now

    async def _hit_stored(self, rate: Rate, name: str, key: str, now: float,
                          ctx: Context) -> tuple[bool, float | None]:
        # One read and one write: good enough across replicas, where a lost race lets one
        # call too many through, never locks a person out.
        state = ctx.services.state
        if state is None:
            raise BotkitError(f"cooldown of {name} has persist=True but the bot has no state "
                              "store")
        stored_key = f"cooldown:{name}:{key}"[:200]
        raw = await state.get(stored_key)
        if (isinstance(raw, list) and len(raw) == 3
                and isinstance(raw[0], int | float) and raw[0] > now):
            ends, count, told = float(raw[0]), int(raw[1]), bool(raw[2])
        else:
            ends, count, told = now + rate.seconds, 0, False
        retry: float | None = None
        allowed = count < rate.count
        if allowed:
            count += 1
        elif told:
            return False, None
        else:
            told, retry = True, ends - now
        await state.set(stored_key, [ends, count, told], ttl=max(ends - now, 0.001))
        return allowed, retry

    def _prune(self, now: float) -> None:
        self._opened = 0
        for slot in [slot for slot, window in self.windows.items() if window.ends <= now]:
            del self.windows[slot]
