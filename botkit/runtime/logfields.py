"""Which bot, room and envelope (or job) the code running now works for, for log lines.

The runtime sets :data:`LOG_FIELDS` around each envelope's handlers and each job fire; every
line logged meanwhile — by botkit, by the plugin's own loggers, by a sync handler in its thread
(``asyncio.to_thread`` copies the context) — can then name them without being passed them.
The JSON log format of ``botkit run`` writes them as fields of their own (see botkit/cli/logs.py).
A context variable costs one ``set`` and one ``reset`` per envelope; nothing is formatted unless
a line is logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar

__all__ = ["LOG_FIELDS"]

LOG_FIELDS: ContextVar[Mapping[str, str] | None] = ContextVar("botkit_log_fields", default=None)
