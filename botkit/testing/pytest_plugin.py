"""pytest fixtures for bot authors; pytest loads this plugin wherever botkit is installed
(entry point ``pytest11``).

::

    async def test_ping(bot_harness) -> None:
        h = await bot_harness("bots.commands")
        assert (await h.say("/ping")).text == "pong"

``bot_harness`` is a factory: ``await bot_harness(plugin_or_bot, **options)`` makes a started
:class:`botkit.testing.BotHarness` (options as for the harness; an already made harness is
accepted too) and closes every harness it made when the test ends, running their on_stop hooks.
It needs pytest-asyncio (any mode; in strict mode mark the tests ``@pytest.mark.asyncio``).

The plugin imports nothing of botkit until a test asks for the fixture, so merely having botkit
installed costs other test suites nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from botkit.bot import Bot
    from botkit.testing import BotHarness

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - pytest-asyncio is a dev dependency of botkit
    pytest_asyncio = None  # type: ignore[assignment]

__all__ = ["HarnessFactory", "bot_harness"]


class HarnessFactory(Protocol):
    """The ``bot_harness`` fixture: ``await bot_harness("bots.commands", rooms=[...])``."""

    def __call__(self, plugin: str | Bot | BotHarness, /,
                 **options: Any) -> Awaitable[BotHarness]: ...


async def _harnesses() -> AsyncIterator[HarnessFactory]:
    from botkit.testing import BotHarness

    made: list[BotHarness] = []

    async def make(plugin: str | Bot | BotHarness, /, **options: Any) -> BotHarness:
        if isinstance(plugin, BotHarness):
            if options:
                raise TypeError("options are for a plugin or a Bot; this harness is made")
            harness = plugin
        else:
            harness = BotHarness(plugin, **options)
        made.append(harness)
        await harness.start()
        return harness

    try:
        yield make
    finally:
        for harness in reversed(made):
            await harness.aclose()


if pytest_asyncio is not None:
    bot_harness = pytest_asyncio.fixture(_harnesses, name="bot_harness")
else:  # pragma: no cover

    @pytest.fixture(name="bot_harness")
    def bot_harness() -> None:
        pytest.fail("the bot_harness fixture needs pytest-asyncio: pip install pytest-asyncio",
                    pytrace=False)
