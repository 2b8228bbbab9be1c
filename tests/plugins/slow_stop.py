"""A test plugin that never finishes on its own: a command and an on_stop hook that hang, so
that only a bounded shutdown ends it."""

from __future__ import annotations

import asyncio

from botkit import Bot, Context

bot = Bot("slow_stop")


@bot.command("hang")
async def hang(ctx: Context) -> None:
    await asyncio.sleep(3600)


@bot.on_stop
async def hang_on_stop(ctx: Context) -> None:
    await asyncio.sleep(3600)
