"""``catch_up:``: what a bot does with the envelopes it missed while it was not running.

At start each room is subscribed from the position stored when the bot last stopped, and what was
published meanwhile is handled before anything new, unless it is older than ``max_age`` (a command
bot should not answer a three-hour-old ``/roll``; an announcer may want ``max_age: 1h``). The
section is allowed at the top level of bots.yaml and per bot; a bot's own keys override the
top-level ones, key by key.
"""

from __future__ import annotations

from pydantic import Field, StrictBool

from botkit.config._durations import MaxAge
from botkit.config._section import Section

__all__ = ["DEFAULT_MAX_AGE", "CatchUpConfig", "resolve_catch_up"]

DEFAULT_MAX_AGE = 600.0


class CatchUpConfig(Section):
    """Catch-up after a restart: on (the default) or off, and the oldest envelope handled."""

    enabled: StrictBool = Field(default=True, description="true or false")
    max_age: MaxAge = Field(default=DEFAULT_MAX_AGE, description="a duration, e.g. 10m")


def resolve_catch_up(top: CatchUpConfig, own: CatchUpConfig | None) -> CatchUpConfig:
    """A bot's effective settings: its own keys where it wrote them, else the top level's."""
    if own is None:
        return top
    return top.model_copy(update={name: getattr(own, name) for name in own.model_fields_set})
