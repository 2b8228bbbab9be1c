"""Greets each user who joins a room by display name (by id when their connection carries
none), at most once per user and room within a cooldown.

Whom it greeted lives in the bot's state store, so a restart does not greet everyone again.
The greeting repeats the user's id (and display name) into the room, so neither is echoed
unless it looks like one: the runtime already refuses ``user.joined`` published by room members
(docs/security.md), and this keeps a mistaken ``trusted_senders`` or a careless backend from
turning the bot into a megaphone ("Welcome, everyone! Claim free coins at http://…!").
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from botkit import Bot, Context, UserJoined

# The ids botkit itself accepts for users (botkit.tokens): ASCII letters, digits, '_', '-', '.'.
_PLAUSIBLE_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_MAX_NAME_LENGTH = 64
_LINK = re.compile(r"://|www\.", re.IGNORECASE)


class WelcomeSettings(BaseModel):
    greeting: str = "Welcome, {name}!"
    """``{name}`` is the display name when the user's connection carries one (``info.name`` of
    the connection token, or of the room's subscription token), else the user id; ``{user}``
    is always the user id."""
    cooldown_seconds: float = Field(default=3600.0, ge=0)


bot = Bot("welcome", settings=WelcomeSettings)


def plausible_user_id(user_id: str) -> bool:
    """Whether ``user_id`` looks like an id rather than a sentence or a link."""
    return _PLAUSIBLE_ID.fullmatch(user_id) is not None


def plausible_name(name: str) -> bool:
    """Whether ``name`` looks like a display name: short, one printable line, no link."""
    return (0 < len(name) <= _MAX_NAME_LENGTH and name.isprintable() and name.strip() == name
            and _LINK.search(name) is None)


@bot.on("user.joined")
async def greet(ctx: Context, event: UserJoined) -> None:
    settings: WelcomeSettings = ctx.settings
    if not plausible_user_id(event.user_id):
        ctx.log.warning("not greeting a user whose id is not a plausible id (%d characters)",
                        len(event.user_id))
        return
    key = f"greeted:{ctx.room}:{event.user_id}"
    if settings.cooldown_seconds > 0:
        if await ctx.state.get(key):
            return
        await ctx.state.set(key, True, ttl=settings.cooldown_seconds)
    name = event.name if event.name is not None and plausible_name(event.name) else None
    await ctx.reply(settings.greeting.format(name=name or event.user_id, user=event.user_id))
