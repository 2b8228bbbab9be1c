"""Match announcer: a game server publishes match events into a match room, and the announcer
tells the players.

* ``match.scheduled {matchId, title, startsAt}`` → announcements at each offset before the start
  (default 5 minutes and 1 minute) and at the start. Sent again with a new time, it replaces the
  match's pending announcements; ``match.cancelled {matchId}`` removes them. They are stored, so
  they survive a restart.
* ``match.started``, ``match.score {scores}``, ``match.ended {winner, scores}`` are announced as
  they come.

Invalid match events never reach these handlers: the runtime drops them with a logged warning.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

from botkit import Bot, Context, Envelope, register_envelope
from botkit.config import parse_duration

Scores = dict[str, Annotated[int, Field(ge=0)]]


class AnnouncerSettings(BaseModel):
    offsets: list[Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]] = Field(
        default_factory=lambda: [300.0, 60.0])
    """How long before the start to announce: seconds or durations like 5m."""
    before: str = "⏰ {title} starts in {when}"
    start: str = "▶️ {title} is starting now!"


@register_envelope
class MatchScheduled(Envelope):
    type: Literal["match.scheduled"] = "match.scheduled"
    match_id: str = Field(min_length=1, max_length=128)
    title: str = Field(min_length=1, max_length=200)
    starts_at: datetime


@register_envelope
class MatchCancelled(Envelope):
    type: Literal["match.cancelled"] = "match.cancelled"
    match_id: str = Field(min_length=1, max_length=128)


@register_envelope
class MatchStarted(Envelope):
    type: Literal["match.started"] = "match.started"
    match_id: str = Field(min_length=1, max_length=128)
    title: str | None = Field(default=None, max_length=200)


@register_envelope
class MatchScore(Envelope):
    type: Literal["match.score"] = "match.score"
    match_id: str = Field(min_length=1, max_length=128)
    scores: Scores


@register_envelope
class MatchEnded(Envelope):
    type: Literal["match.ended"] = "match.ended"
    match_id: str = Field(min_length=1, max_length=128)
    winner: str | None = Field(default=None, max_length=100)
    scores: Scores = Field(default_factory=dict)


bot = Bot("announcer", settings=AnnouncerSettings)


def _job_prefix(ctx: Context, match_id: str) -> str:
    return f"match:{ctx.room}:{match_id}:"


def _describe(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return f"{hours} hour" + ("s" if hours != 1 else "")
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute" + ("s" if minutes != 1 else "")
    return f"{seconds:g} second" + ("s" if seconds != 1 else "")


def _score_line(scores: dict[str, int]) -> str:
    return " · ".join(f"{team} {points}" for team, points in scores.items())


async def announce(ctx: Context, text: str) -> None:
    """The stored job: say ``text`` in the job's room."""
    await ctx.reply(text)


def _cancel_pending(ctx: Context, match_id: str) -> int:
    pending = ctx.jobs(_job_prefix(ctx, match_id))
    for job in pending:
        ctx.cancel(job.id)
    return len(pending)


@bot.on("match.scheduled")
async def scheduled(ctx: Context, event: MatchScheduled) -> None:
    settings: AnnouncerSettings = ctx.settings
    _cancel_pending(ctx, event.match_id)  # a re-sent schedule replaces the old one
    now = ctx.now()
    prefix = _job_prefix(ctx, event.match_id)
    planned = 0
    for offset in sorted(set(settings.offsets), reverse=True):
        at = event.starts_at - timedelta(seconds=offset)
        if at <= now:
            continue
        text = settings.before.format(title=event.title, when=_describe(offset))
        ctx.schedule(announce, at=at, id=f"{prefix}{offset:g}", text=text)
        planned += 1
    if event.starts_at > now:
        ctx.schedule(announce, at=event.starts_at, id=f"{prefix}start",
                     text=settings.start.format(title=event.title))
        planned += 1
    ctx.log.info("match %s: %d announcement(s) planned", event.match_id, planned)


@bot.on("match.cancelled")
async def cancelled(ctx: Context, event: MatchCancelled) -> None:
    if _cancel_pending(ctx, event.match_id):
        await ctx.reply(f"❌ Match {event.match_id} is cancelled.")


@bot.on("match.started")
async def started(ctx: Context, event: MatchStarted) -> None:
    await ctx.reply(f"🏁 {event.title or event.match_id} has started!")


@bot.on("match.score")
async def score(ctx: Context, event: MatchScore) -> None:
    await ctx.reply(f"📊 {_score_line(event.scores)}")


@bot.on("match.ended")
async def ended(ctx: Context, event: MatchEnded) -> None:
    result = "-".join(str(points) for points in sorted(event.scores.values(), reverse=True))
    if event.winner:
        await ctx.reply(f"🏆 {event.winner} wins {result}".rstrip())
    else:
        await ctx.reply(f"🤝 Match {event.match_id} ended in a draw {result}".rstrip())
