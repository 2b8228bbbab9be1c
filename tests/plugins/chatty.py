"""A test plugin that answers every chat message: two of them in one room would loop forever
if bots answered each other."""

from __future__ import annotations

from botkit import Bot, ChatMessage, Context

bot = Bot("chatty")


@bot.on("chat.message")
async def answer(ctx: Context, event: ChatMessage) -> None:
    await ctx.reply(f"/echo {ctx.user_id} heard {event.text}")
