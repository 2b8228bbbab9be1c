"""Testing bots without a server: the harness bot authors write their tests with.

::

    from botkit.testing import BotHarness

    async def test_ping() -> None:
        async with BotHarness.load("bots.commands") as h:
            assert (await h.say("/ping")).text == "pong"

:class:`BotHarness` runs the runtime's own handling of envelopes, presence and jobs on an
in-memory server, a memory state store and a virtual clock. With pytest, the ``bot_harness``
fixture (``botkit.testing.pytest_plugin``, installed with botkit) makes and closes harnesses.
See docs/testing.md.
"""

from __future__ import annotations

from botkit.testing._clock import VirtualClock
from botkit.testing._harness import BotHarness
from botkit.testing._server import HarnessServer, Published, Replies

__all__ = ["BotHarness", "HarnessServer", "Published", "Replies", "VirtualClock"]
