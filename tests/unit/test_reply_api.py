"""The reply API a plugin author sees: ``wait=``, ``essential=`` and ``@bot.on_reply_failed``
(the outboxes themselves are tested against the servers, tests/integration/test_outbox.py)."""

from __future__ import annotations

from typing import Any

import pytest

from botkit import Bot, Context, FailedReply, PluginError, Typing
from botkit.testing import BotHarness


def test_on_reply_failed_takes_ctx_and_the_failure() -> None:
    bot = Bot("b")

    async def hook(ctx: Context, failed: FailedReply) -> None: ...

    assert bot.on_reply_failed(hook) is hook
    assert bot.reply_failed_hooks == [hook]
    with pytest.raises(PluginError, match=r"on_reply_failed hook .* must take \(ctx, failed\)"):
        bot.on_reply_failed(lambda ctx: None)


async def test_the_harness_publishes_at_once_whatever_the_flags() -> None:
    # No outbox in the harness: every reply is published, and confirmed, before reply()
    # returns, so wait= and essential= change nothing a bot test sees.
    bot = Bot("b")

    @bot.command("go")
    async def go(ctx: Context) -> None:
        sent = await ctx.reply("one", wait=True)
        assert sent.text == "one"
        await ctx.reply("two", essential=False)
        await ctx.send(ctx.room or "-", Typing(id="t1", room_id="x", sender_id="y",
                                                 sent_at=ctx.now()))

    h = BotHarness(bot)
    await h.say("/go")
    published: list[Any] = h.published
    assert [p.data["type"] for p in published] == ["chat.message", "chat.message", "typing"]
    assert h.texts == ["one", "two"]
