"""A test plugin for the ops endpoint: /ping logs and answers, /fail raises, /block stalls the
event loop, and an hourly job gives APScheduler something to talk about."""

from __future__ import annotations

import logging
import time

from botkit import Bot, Context

bot = Bot("ops_probe")
log = logging.getLogger(__name__)


@bot.command("ping")
async def ping(ctx: Context) -> None:
    log.info("ping from %s", ctx.sender)
    await ctx.reply("pong")


@bot.command("fail")
async def fail(ctx: Context) -> None:
    raise RuntimeError("a handler failing on purpose")


@bot.command("block")
async def block(ctx: Context, seconds: float) -> None:
    # The mistake /healthz is there to catch: a blocking call in an async handler.
    time.sleep(seconds)  # noqa: ASYNC251
    await ctx.reply("unblocked")


@bot.every(seconds=3600)
async def hourly(ctx: Context) -> None:
    await ctx.reply("an hour went by")
