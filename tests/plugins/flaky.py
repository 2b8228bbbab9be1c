"""A test plugin: raises on 'boom', echoes otherwise, and records what it handled."""

from __future__ import annotations

import asyncio

from botkit import Bot, ChatMessage, Context

bot = Bot("flaky")
seen: list[str] = []


@bot.command("boom")
async def boom(ctx: Context) -> None:
    raise RuntimeError("handler failure on purpose")


@bot.command("slow")
async def slow(ctx: Context, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await ctx.reply(f"slept {seconds}")


@bot.command("echo")
async def echo(ctx: Context, text: str) -> None:
    await ctx.reply(text)


@bot.on("chat.message")
async def record(ctx: Context, event: ChatMessage) -> None:
    seen.append(event.text)
