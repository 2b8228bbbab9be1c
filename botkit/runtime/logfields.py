"""Which bot, room and envelope (or job) the code running now works for, for log lines.

The runtime sets :data:`LOG_CONTEXT` around each envelope's handlers (to the handlers'
:class:`~botkit.context.Context`) and each job fire (to its fields); every line logged meanwhile
— by botkit, by the plugin's own loggers, by a sync handler in its thread (``asyncio.to_thread``
copies the context) — can then name them without being passed them: :func:`log_fields`. The
JSON log format of ``botkit run`` writes them as fields of their own (see botkit/cli/logs.py).

The per-envelope cost is one ``set`` and one ``reset`` of a context variable (~0.1 µs): the
fields are only made when a line is logged. A dict made per envelope cost as much again
(bench/ S1).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar

from botkit.context import Context

__all__ = ["LOG_CONTEXT", "log_fields"]

LOG_CONTEXT: ContextVar[Context | Mapping[str, str] | None] = ContextVar(
    "botkit_log_context", default=None)


def log_fields() -> Mapping[str, str] | None:
    """``bot``, ``room`` and ``envelope_id`` (or ``job_id``) of the work under way, if any."""
    current = LOG_CONTEXT.get()
    if not isinstance(current, Context):
        return current
    event = current.event
    return {"bot": current.services.name, "room": current.room or "-",
            "envelope_id": event.id if event is not None else "-"}
