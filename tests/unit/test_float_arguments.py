"""Issue 16 #11: a ``float`` command argument refuses ``nan``, ``inf`` (and ``1e999``, which
reads as infinite) unless the handler opts in with ``Annotated[float, ALLOW_NON_FINITE]``."""

from __future__ import annotations

from typing import Annotated, Any

import pytest

from botkit import Bot, Context
from botkit.errors import PluginError
from botkit.routing import ALLOW_NON_FINITE, ArgumentError, read_signature
from botkit.testing import BotHarness

NON_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999"]


def arguments(fn: Any, rest: str) -> list[Any]:
    signature = read_signature(fn, command=True, what="bot t: command 'x' handler")
    return signature.bind(object(), None, None, rest)[1:]


async def plain(ctx: Context, ratio: float) -> None:
    pass


async def optional(ctx: Context, ratio: float | None = None) -> None:
    pass


async def opted_in(ctx: Context, ratio: Annotated[float, ALLOW_NON_FINITE]) -> None:
    pass


async def opted_in_optional(ctx: Context,
                            ratio: Annotated[float, ALLOW_NON_FINITE] | None = None) -> None:
    pass


@pytest.mark.parametrize("raw", NON_FINITE)
@pytest.mark.parametrize("handler", [plain, optional])
def test_non_finite_floats_are_refused_by_default(handler: Any, raw: str) -> None:
    with pytest.raises(ArgumentError, match=rf"^ratio should be a number, got '{raw}'$"):
        arguments(handler, raw)
    assert arguments(handler, "2.5") == [2.5]


@pytest.mark.parametrize("raw", NON_FINITE)
@pytest.mark.parametrize("handler", [opted_in, opted_in_optional])
def test_a_handler_may_opt_in(handler: Any, raw: str) -> None:
    (value,) = arguments(handler, raw)
    assert repr(value) == repr(float(raw))


def test_the_opt_in_is_for_floats_only() -> None:
    async def counted(ctx: Context, count: Annotated[int, ALLOW_NON_FINITE]) -> None:
        pass

    with pytest.raises(PluginError, match=r"parameter 'count': ALLOW_NON_FINITE applies to "
                                          "float parameters only"):
        read_signature(counted, command=True, what="bot t: command 'x' handler")


async def test_a_room_member_sending_nan_gets_the_usage_line() -> None:
    bot = Bot("calc")

    @bot.command("half")
    async def half(ctx: Context, value: float) -> None:
        await ctx.reply(f"{value / 2:g}")

    async with BotHarness(bot) as harness:
        await harness.say("/half nan")
        await harness.say("/half 1e999")
        await harness.say("/half 3")
    assert len(harness.texts) == 3
    assert harness.texts[-1] == "1.5"
    assert all(text.startswith("Usage: /half <value>") for text in harness.texts[:2])
