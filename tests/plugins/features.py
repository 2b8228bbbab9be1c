"""A test plugin exercising the handler API end to end: sending to other rooms, history, a plain
function handler, room and sender filters, a middleware, slow handlers and several handlers
replying to one message."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from botkit import Bot, ChatMessage, Context

bot = Bot("features")
middleware_saw: list[str] = []
blocked_ran: list[str] = []


@bot.middleware
async def gatekeeper(ctx: Context, call_next: Callable[[], Awaitable[None]]) -> None:
    middleware_saw.append(f"{ctx.room}:{ctx.text}")
    if ctx.text is not None and ctx.text.startswith("/blocked"):
        await ctx.reply("stopped by the middleware")
        return
    await call_next()


@bot.command("blocked")
async def blocked(ctx: Context) -> str:
    blocked_ran.append(ctx.text or "")
    return "the blocked handler ran"


@bot.command("relay")
async def relay(ctx: Context, room: str, text: str) -> str:
    await ctx.send(room, text)
    return f"relayed to {room}"


@bot.command("history")
async def history(ctx: Context, limit: int = 5) -> str:
    envelopes = await ctx.history(limit)
    return " | ".join(e.text if isinstance(e, ChatMessage) else e.type for e in envelopes)


@bot.command("sync")
def sync(ctx: Context, text: str) -> str:
    # A plain function: it runs in a worker thread, so blocking here is allowed.
    in_loop = threading.current_thread() is threading.main_thread()
    return f"sync {text} ({'loop' if in_loop else 'thread'})"


@bot.command("secret", senders=["user_vip"])
async def secret(ctx: Context) -> str:
    return f"secret for {ctx.sender}"


@bot.match(r"\bops-only\b", rooms="ops")
async def ops_only(ctx: Context) -> str:
    return f"ops matched in {ctx.room}"


@bot.command("sleep")
async def sleep(ctx: Context, seconds: float) -> str:
    await asyncio.sleep(seconds)
    return f"woke after {seconds}"


@bot.command("inner-timeout")
async def inner_timeout(ctx: Context) -> None:
    # A TimeoutError of the handler's own making, long before the handler's deadline.
    raise TimeoutError("an upstream call of the handler timed out")


@bot.match(r"^double$")
async def first_answer(ctx: Context) -> str:
    return "first answer"


@bot.on("chat.message")
async def second_answer(ctx: Context, event: ChatMessage) -> None:
    if event.text == "double":
        await ctx.reply("second answer")
        await ctx.reply("third answer")
