"""The ``schedules:`` list of a bot: announcements that need no code.

::

    schedules:
      - cron: "0 18 * * *"          # or every: 30m
        timezone: Europe/Berlin     # for cron; default UTC
        room: lobby                 # or rooms: [...]; default: every room of the bot
        text: "Daily tournament in 1 hour"
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import astimezone
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from botkit.config._durations import DURATION_JSON_SCHEMA, EVERY, parse_duration
from botkit.tokens import validate_room_id

__all__ = ["ScheduleConfig"]


class ScheduleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    cron: str | None = Field(default=None,
                             description='a crontab expression, e.g. "0 18 * * *"')
    every: Annotated[float, WithJsonSchema(DURATION_JSON_SCHEMA)] | None = Field(
        default=None, gt=0, description="a duration of at least 1s, e.g. 30s, 15m or 1h")
    timezone: str = Field(default="UTC", description="a timezone name, e.g. Europe/Berlin")
    room: str | None = Field(default=None, description="a room id of the bot, e.g. lobby")
    rooms: list[str] | None = Field(default=None, description="a list of room ids")
    text: str = Field(min_length=1, description="the text to announce")

    @field_validator("every", mode="before")
    @classmethod
    def _parse_every(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("every")
    @classmethod
    def _bound_every(cls, value: float | None) -> float | None:
        return None if value is None else EVERY.check(value)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        # Read as the triggers read it. Checked here, not only by trigger(): an interval's
        # trigger raised a bare ZoneInfoNotFoundError (a KeyError, which pydantic doesn't
        # turn into a validation error), and an empty name silently meant the local zone.
        try:
            astimezone(value)
        except (ValueError, LookupError):
            raise ValueError(f"unknown timezone {value!r}; write a name like Europe/Berlin "
                             "or UTC") from None
        return value

    @field_validator("room")
    @classmethod
    def _check_room(cls, value: str | None) -> str | None:
        return None if value is None else validate_room_id(value)

    @field_validator("rooms")
    @classmethod
    def _check_rooms(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [validate_room_id(room) for room in value]

    @model_validator(mode="after")
    def _check_trigger(self) -> Self:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of cron: (a crontab expression) or every: "
                             "(a duration)")
        if self.room is not None and self.rooms is not None:
            raise ValueError("give room: or rooms:, not both")
        self.trigger()  # refuses a bad cron expression or timezone while loading
        return self

    def trigger(self) -> BaseTrigger:
        if self.cron is not None:
            try:
                return CronTrigger.from_crontab(self.cron, timezone=self.timezone)
            except (ValueError, LookupError) as exc:
                raise ValueError(f"invalid cron expression {self.cron!r} or timezone "
                                 f"{self.timezone!r}: {exc}") from None
        return IntervalTrigger(seconds=self.every, timezone=self.timezone)

    def target_rooms(self, bot_rooms: list[str]) -> tuple[str, ...]:
        if self.room is not None:
            return (self.room,)
        return tuple(self.rooms if self.rooms is not None else bot_rooms)
