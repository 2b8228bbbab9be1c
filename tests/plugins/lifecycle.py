"""A test plugin with on_start and on_stop hooks that speak in the room."""

from __future__ import annotations

import threading

from botkit import Bot, Context

bot = Bot("lifecycle")
events: list[str] = []


@bot.on_start
async def hello(ctx: Context) -> None:
    events.append(f"start room={ctx.room} event={ctx.event}")
    await ctx.send("lobby", "hello from on_start")


@bot.on_start
def count_in_a_thread(ctx: Context) -> None:
    where = "loop" if threading.current_thread() is threading.main_thread() else "thread"
    events.append(f"sync start in {where}")


@bot.on_stop
async def goodbye(ctx: Context) -> None:
    events.append("stop")
    await ctx.send("lobby", "goodbye from on_stop")


@bot.command("ping")
async def ping(ctx: Context) -> str:
    return "pong"
