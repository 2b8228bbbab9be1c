"""A test plugin for the reply outboxes: bursts of replies, confirmed replies, and a record of
the replies that failed (``on_reply_failed``)."""

from __future__ import annotations

import asyncio

from botkit import ApiError, Bot, Context, FailedReply, Typing

bot = Bot("outbox")
failures: list[FailedReply] = []
failed = asyncio.Event()


@bot.command("many")
async def many(ctx: Context, count: int, tag: str = "m") -> None:
    for n in range(count):
        await ctx.reply(f"{tag}{n}")


@bot.command("echo")
async def echo(ctx: Context, text: str) -> None:
    await ctx.reply(text)


@bot.command("ping")
async def ping(ctx: Context) -> None:
    await ctx.reply("pong")


@bot.command("confirmed")
async def confirmed(ctx: Context, text: str) -> None:
    try:
        await ctx.reply(text, wait=True)
    except ApiError as exc:
        await ctx.reply(f"not sent: {type(exc).__name__} {getattr(exc, 'code', '-')}")


@bot.command("typing")
async def typing(ctx: Context, count: int) -> None:
    """A confirmed reply, then ``count`` typing events (non-essential) and a closing reply."""
    room = ctx.room or "-"
    await ctx.reply("start", wait=True)
    for n in range(count):
        await ctx.send(room, Typing(id=f"typing-{n}", room_id=room, sender_id="-",
                                    sent_at=ctx.now()))
    await ctx.reply("end")


@bot.on_reply_failed
async def on_failed(ctx: Context, failure: FailedReply) -> None:
    assert ctx.room == failure.room
    failures.append(failure)
    failed.set()
