"""A test plugin for replicas (issue 12): each run of a handler counts itself in the shared
state (Redis), and says the count. The replies' idempotency keys would hide a second run from
the room; the counter does not: "tick 1, tick 3" means a fire ran on both replicas."""

from __future__ import annotations

from botkit import Bot, Context, UserJoined

bot = Bot("probe")


@bot.every(seconds=2, rooms=["room3"])
async def tick(ctx: Context) -> None:
    fires = await ctx.state.incr("tick-fires")
    await ctx.reply(f"tick {fires}")


@bot.every(seconds=2)  # in each of the bot's rooms
async def everywhere(ctx: Context) -> None:
    await ctx.state.incr("everywhere-fires")


@bot.on("user.joined")
async def greet(ctx: Context, event: UserJoined) -> None:
    runs = await ctx.state.incr(f"greeted:{ctx.room}:{event.user_id}")
    await ctx.reply(f"hello {event.user_id} #{runs}")
