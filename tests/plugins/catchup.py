"""A test plugin for catch-up after a restart: echoes with whether the envelope was replayed,
and records the gaps it is told about."""

from __future__ import annotations

import asyncio

from botkit import Bot, Context, Gap

bot = Bot("catchup")
gaps: list[tuple[str | None, Gap]] = []
gap_seen = asyncio.Event()


@bot.command("echo")
async def echo(ctx: Context, text: str) -> None:
    await ctx.reply(f"{text} {'replayed' if ctx.replayed else 'live'}")


@bot.on_gap
async def on_gap(ctx: Context, gap: Gap) -> None:
    gaps.append((ctx.room, gap))
    gap_seen.set()
