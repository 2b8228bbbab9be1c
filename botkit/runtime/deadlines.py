"""Handler deadlines that cost a dict insert and delete each, not a timer each.

``asyncio.timeout()`` arms a loop timer per use: a ``TimerHandle`` (holding a copy of the
context) pushed onto the loop's heap and cancelled microseconds later, when a handler returns
at once. At tens of thousands of envelopes a second that was the largest single cost of
dispatching one (about 5 µs of ~30, measured by ``bench/`` S1). Here every handler call
registers its deadline in an ordered dict, and one timer, armed for the earliest deadline,
cancels the tasks that overrun theirs and re-arms itself for the next one.

The semantics are those of ``asyncio.timeout()``: an overrun cancels the task, and the scope
turns that cancellation into :class:`TimeoutError` unless someone else also cancelled the
task; ``expired`` tells an overrun from a ``TimeoutError`` the handler raised itself.
"""

from __future__ import annotations

import asyncio
from asyncio import get_running_loop
from types import TracebackType
from typing import Any

__all__ = ["DeadlineScope", "Deadlines"]

# The running task, read once per handler call. On Python 3.11 asyncio.current_task() is a
# Python function costing about as much as the rest of a scope (bench/ S1); the dict it reads
# is asyncio's own, by the running loop. Later Pythons have current_task in C (and may not
# have the dict).
try:
    from _asyncio import current_task as _current_task_c  # type: ignore[attr-defined]
except ImportError:  # Python 3.11
    _current_task_c = None
_CURRENT_TASKS: dict[Any, asyncio.Task[Any]] | None = (
    getattr(asyncio.tasks, "_current_tasks", None) if _current_task_c is None else None)
_current_task = _current_task_c if _current_task_c is not None else asyncio.current_task
_new_scope = object.__new__


class DeadlineScope:
    """One call under a deadline: ``with scope:`` around the awaited call."""

    __slots__ = ("_cancelling", "_owner", "expired", "task", "when")

    def __init__(self, owner: Deadlines, task: asyncio.Task[object], when: float) -> None:
        self._owner = owner
        self.task = task
        self.when = when
        self.expired = False
        self._cancelling = 0

    def __enter__(self) -> DeadlineScope:
        self._cancelling = self.task.cancelling()
        owner = self._owner
        owner._active[self] = None  # Deadlines._add inline: one call less per handler call
        if owner._timer is None:
            owner._timer = self.task.get_loop().call_at(self.when, owner._fire)
        return self

    def suspend(self) -> None:
        """Stop the clock (a handler parked on ``ctx.ask``): no overrun while it waits."""
        self._owner._active.pop(self, None)

    def resume(self) -> None:
        """Start a full deadline again from now. At the end of the dict: every other active
        deadline is earlier, so the order the timer relies on holds."""
        if self.expired:
            return  # cancelled already: the scope turns it into TimeoutError on exit
        self.when = self.task.get_loop().time() + self._owner.seconds
        self._owner._active.pop(self, None)
        self._owner._add(self)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._owner._active.pop(self, None)
        if self.expired and self.task.uncancel() <= self._cancelling and (
                exc_type is asyncio.CancelledError):
            # Our cancellation, and nobody else's: the call overran its deadline.
            raise TimeoutError from exc


class Deadlines:
    """Deadlines of ``seconds`` for calls made from any task of the running loop.

    All scopes have the same length, so the dict of active scopes (insertion-ordered) is also
    ordered by deadline: the timer looks only at the oldest ones.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._active: dict[DeadlineScope, None] = {}
        self._timer: asyncio.TimerHandle | None = None

    def scope(self) -> DeadlineScope:
        """A scope for the current task, its deadline ``seconds`` from now."""
        loop = get_running_loop()
        task = (_CURRENT_TASKS.get(loop) if _CURRENT_TASKS is not None
                else _current_task(loop))
        if task is None:
            raise RuntimeError("a deadline scope needs a running task")
        # DeadlineScope(self, task, when) without its __init__'s frame (one per handler call).
        scope = _new_scope(DeadlineScope)
        scope._owner = self
        scope.task = task
        scope.when = loop.time() + self.seconds
        scope.expired = False
        scope._cancelling = 0
        return scope

    def _add(self, scope: DeadlineScope) -> None:
        self._active[scope] = None
        # An armed timer is never later than the earliest active deadline (every deadline is
        # "now + seconds", so a newer scope never needs an earlier timer).
        if self._timer is None:
            self._timer = scope.task.get_loop().call_at(scope.when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = None
        for scope in self._active:
            if scope.expired:
                continue  # cancelled already; it leaves when its task gets there
            if now is None:
                now = scope.task.get_loop().time()
            if scope.when > now:
                self._timer = scope.task.get_loop().call_at(scope.when, self._fire)
                return
            scope.expired = True
            scope.task.cancel()
