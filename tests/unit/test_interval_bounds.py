"""Issue 16 #8 in code: ``@bot.every`` refuses sub-second (and absurd) intervals, and
``ctx.schedule`` refuses delays that are not a sane number of seconds, each with a clear error."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from botkit import Bot, Context, PluginError
from botkit.jobs.scheduler import plan_job


async def job(ctx: Context) -> None:
    """A module-level job, as ctx.schedule requires."""


@pytest.mark.parametrize("interval", [{"seconds": 0.001}, {"seconds": 0.999},
                                      {"hours": 24 * 366}, {"seconds": math.inf},
                                      {"seconds": math.nan}])
def test_every_refuses_intervals_outside_one_second_to_a_year(
        interval: dict[str, float]) -> None:
    bot = Bot("clock")
    with pytest.raises(PluginError, match=r"^bot clock: @bot.every needs a"):
        bot.every(**interval)  # type: ignore[arg-type]
    assert bot.schedules == []


def test_every_accepts_one_second() -> None:
    bot = Bot("clock")
    bot.every(seconds=1)(job)
    assert [spec.key for spec in bot.schedules] == ["job"]


@pytest.mark.parametrize("delay", [math.nan, math.inf, -1.0, 1e300])
def test_schedule_refuses_delays_that_are_not_a_sane_number_of_seconds(delay: float) -> None:
    with pytest.raises(ValueError, match=r"^delay= must be a number of seconds from 0 to 10 "
                                         "years"):
        plan_job(job, at=None, delay=delay, kwargs={}, now=datetime.now(UTC))


def test_schedule_still_accepts_a_zero_or_short_delay() -> None:
    now = datetime.now(UTC)
    when, _, _ = plan_job(job, at=None, delay=0.05, kwargs={}, now=now)
    assert (when - now).total_seconds() == pytest.approx(0.05)
