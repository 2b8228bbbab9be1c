"""Greets each user who joins a room, at most once per user and room within a cooldown.

Whom it greeted lives in the bot's state store, so a restart does not greet everyone again.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from botkit import Bot, Context, UserJoined


class WelcomeSettings(BaseModel):
    greeting: str = "Welcome, {user}!"
    """``{user}`` is the user id; ``{name}`` the display name when the user's token carries one
    (``info.name``), else the user id too."""
    cooldown_seconds: float = Field(default=3600.0, ge=0)


bot = Bot("welcome", settings=WelcomeSettings)


@bot.on("user.joined")
async def greet(ctx: Context, event: UserJoined) -> None:
    settings: WelcomeSettings = ctx.settings
    key = f"greeted:{ctx.room}:{event.user_id}"
    if settings.cooldown_seconds > 0:
        if await ctx.state.get(key):
            return
        await ctx.state.set(key, True, ttl=settings.cooldown_seconds)
    await ctx.reply(settings.greeting.format(name=event.name or event.user_id,
                                             user=event.user_id))
