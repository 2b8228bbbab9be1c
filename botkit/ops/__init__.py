"""The operators' HTTP endpoint of ``botkit run`` (and ``botkit dev``): off by default, on with
``ops:`` in bots.yaml or ``--ops-port``.

Modules, one concept each::

    server      the listener, in a thread of its own (so that a stuck loop is seen)
    loop        asking the event loop a question with a deadline: the health check itself
    readiness   /readyz: every bot connected and subscribed to all its rooms, or what is not
    metrics     /metrics: the runtime's own counters, read at scrape time

Nothing below the CLI imports this package; the runtime only keeps the counters it reads.
"""

from __future__ import annotations

from botkit.ops.loop import LoopStuckError, ask_loop
from botkit.ops.readiness import readiness
from botkit.ops.server import HEALTH_TIMEOUT, OpsServer, serve_ops

__all__ = ["HEALTH_TIMEOUT", "LoopStuckError", "OpsServer", "ask_loop", "readiness",
           "serve_ops"]
