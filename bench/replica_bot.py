"""The bot of S11 and S12 (replicas): ``/echo WORD`` answers ``WORD REPLICA``, REPLICA being the
``BENCH_REPLICA`` of the process, so that the benchmark sees which replica answered."""

from __future__ import annotations

import os

from botkit import Bot, Context

bot = Bot("echo")
REPLICA = os.environ.get("BENCH_REPLICA", "?")


@bot.command("echo")
async def echo(ctx: Context, text: str) -> None:
    await ctx.reply(f"{text} {REPLICA}")
