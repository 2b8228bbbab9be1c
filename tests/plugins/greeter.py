"""A test plugin with validated settings that greets joining users and sees leaving ones off."""

from __future__ import annotations

from pydantic import BaseModel, Field

from botkit import Bot, Context, UserJoined, UserLeft


class GreeterSettings(BaseModel):
    greeting: str = "hi {user}"
    farewell: str = "bye {user}"
    max_greetings: int = Field(default=100, ge=1)


bot = Bot("greeter", settings=GreeterSettings)


@bot.on("user.joined")
async def greet(ctx: Context, event: UserJoined) -> None:
    settings: GreeterSettings = ctx.settings
    await ctx.reply(settings.greeting.format(user=event.user_id))


@bot.on("user.left")
async def see_off(ctx: Context, event: UserLeft) -> None:
    settings: GreeterSettings = ctx.settings
    await ctx.reply(settings.farewell.format(user=event.user_id))
