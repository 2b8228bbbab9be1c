"""A test plugin for restarts (issue 11): ``/echo WORD`` answers the word, ``/probe WORD`` the
word with what the handler knows of the envelope: whether it was replayed on start
(``ctx.replayed``) and how old it was (``ctx.age``)."""

from __future__ import annotations

from datetime import timedelta

from botkit import Bot, Context

bot = Bot("replays")


def _seconds(age: object) -> str:
    if age is None:
        return "none"
    if isinstance(age, timedelta):
        return f"{age.total_seconds():.3f}"
    return f"{float(age):.3f}"  # type: ignore[arg-type]


@bot.command("echo")
async def echo(ctx: Context, text: str) -> None:
    await ctx.reply(text)


@bot.command("probe")
async def probe(ctx: Context, text: str) -> None:
    # getattr: without ctx.replayed the answer still comes, saying so, and a test fails on
    # what it checks rather than on a handler error.
    replayed = getattr(ctx, "replayed", "(no-ctx.replayed)")
    await ctx.reply(f"{text} replayed={replayed} age={_seconds(getattr(ctx, 'age', None))}")
