"""Greets each user who joins a room, at most once per user and room within a cooldown."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from botkit import Bot, Context, UserJoined


class WelcomeSettings(BaseModel):
    greeting: str = "Welcome, {name}!"
    cooldown_seconds: float = Field(default=3600.0, ge=0)


bot = Bot("welcome", settings=WelcomeSettings)
_last_greeted: dict[tuple[str, str], float] = {}


@bot.on("user.joined")
async def greet(ctx: Context, event: UserJoined) -> None:
    settings: WelcomeSettings = ctx.settings
    key = (ctx.room or "", event.user_id)
    now = time.monotonic()
    last = _last_greeted.get(key)
    if last is not None and now - last < settings.cooldown_seconds:
        return
    _last_greeted[key] = now
    await ctx.reply(settings.greeting.format(name=event.name or event.user_id,
                                             user=event.user_id))
