"""The bots.yaml schema as a whole: the file (``BotsConfig``), its bots and their rooms. The
other sections are models of their own (``_xshathra``, ``_limits``, ``_state``, ``_catch_up``,
``_cluster``, ``_dev``, ``_ops``, ``_schedules``); ``_section`` states the rules they all follow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Self

from pydantic import Field, PrivateAttr, StrictBool, field_validator, model_validator

from botkit.config._catch_up import CatchUpConfig
from botkit.config._cluster import ClusterConfig
from botkit.config._dev import DevConfig
from botkit.config._errors import describe, located
from botkit.config._limits import LimitsConfig
from botkit.config._ops import OpsConfig
from botkit.config._schedules import ScheduleConfig
from botkit.config._section import Section
from botkit.config._source import SourceMap
from botkit.config._state import DEFAULT_STATE_PATH, StateConfig
from botkit.config._xshathra import XshathraConfig
from botkit.errors import InvalidChannelError
from botkit.tokens import chat_channel, validate_channel, validate_room_id

__all__ = ["BotConfig", "BotsConfig", "RoomConfig"]

_BOT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_PLUGIN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*")


class RoomConfig(Section):
    """A room a bot joins; ``channel`` overrides the default ``chat:{project}:{room}``."""

    id: str = Field(description="a room id, e.g. room_abc123")
    channel: str | None = Field(default=None,
                                description="a full channel name, e.g. chat:other_project:vip")

    @model_validator(mode="before")
    @classmethod
    def _from_room_id(cls, value: Any) -> Any:
        # A bare string is the short form of {id: ...}. It is checked here, so that an error
        # points at the list item the user wrote, not at an 'id' key they never wrote.
        if isinstance(value, str):
            return {"id": validate_room_id(value)}
        if isinstance(value, Mapping | RoomConfig):
            return value
        hint = ("; YAML reads unquoted digits as a number, so put the room id in quotes"
                if isinstance(value, int | float) and not isinstance(value, bool) else "")
        raise ValueError("expected a room id, or a mapping like {id: vip, channel: "
                         f"'chat:other_project:vip'}}, got {describe(value)}{hint}")

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        return validate_room_id(value)

    @field_validator("channel")
    @classmethod
    def _check_channel(cls, value: str | None) -> str | None:
        return None if value is None else validate_channel(value)

    def channel_for(self, project_id: str) -> str:
        """The channel to subscribe to for this room."""
        return self.channel or chat_channel(project_id, self.id)


class BotConfig(Section):
    """One bot: which plugin runs it, as which user, in which rooms, with which settings."""

    name: str = Field(description="a bot name, e.g. welcome")
    # No plugin: a bot without code, for example one that only posts its schedules.
    plugin: str | None = Field(default=None,
                               description="a plugin: a module path like bots.welcome, or an "
                                    "entry point name")
    user_id: str = Field(description="the bot's user id, e.g. bot_welcome")
    rooms: list[RoomConfig] = Field(default_factory=list,
                                    description="a list of room ids, e.g. [lobby, room_abc123]")
    settings: dict[str, Any] = Field(default_factory=dict,
                                     description="a mapping of the plugin's settings, "
                                                 "e.g. {greeting: 'Hi {name}!'}")
    enabled: StrictBool = Field(default=True, description="true or false")
    limits: LimitsConfig = Field(default_factory=LimitsConfig,
                                 description="a mapping like {handler_timeout: 10s}")
    schedules: list[ScheduleConfig] = Field(
        default_factory=list,
        description='a list like [{cron: "0 18 * * *", room: lobby, text: "..."}]')
    # Users whose own connections may publish any envelope type to this bot, as if through the
    # server API (a game server that connects as a user, say); see docs/security.md.
    trusted_senders: list[str] = Field(
        default_factory=list,
        description="a list of user ids, e.g. [game_server]")
    # None: the top level's catch_up (each key written here overrides the top level's).
    catch_up: CatchUpConfig | None = Field(
        default=None, description="a mapping like {max_age: 10m, enabled: true}")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _BOT_NAME.fullmatch(value):
            raise ValueError(f"bot name {value!r} must start with a letter and contain only "
                             "letters, digits, '_' and '-' (at most 64 characters)")
        return value

    @field_validator("plugin")
    @classmethod
    def _check_plugin(cls, value: str | None) -> str | None:
        if value is not None and not _PLUGIN.fullmatch(value):
            raise ValueError(f"plugin {value!r} is neither a module path like bots.welcome nor "
                             "an entry point name")
        return value

    @field_validator("user_id")
    @classmethod
    def _check_user_id(cls, value: str) -> str:
        return validate_room_id(value, what="user id")

    @field_validator("trusted_senders")
    @classmethod
    def _check_trusted_senders(cls, users: list[str]) -> list[str]:
        first: dict[str, int] = {}
        for index, user in enumerate(users):
            try:
                validate_room_id(user, what="user id")
            except InvalidChannelError as exc:
                raise located(str(exc), index) from exc
            if user in first:
                raise located(f"user {user!r} is listed twice (first as "
                              f"trusted_senders[{first[user]}]); remove one", index)
            first[user] = index
        return users

    @field_validator("rooms")
    @classmethod
    def _unique_rooms(cls, rooms: list[RoomConfig]) -> list[RoomConfig]:
        first: dict[str, int] = {}
        for index, room in enumerate(rooms):
            if room.id in first:
                raise located(f"room {room.id!r} is listed twice (first as "
                              f"rooms[{first[room.id]}]); remove one", index)
            first[room.id] = index
        return rooms

    @model_validator(mode="after")
    def _schedules_in_own_rooms(self) -> Self:
        # A schedule posts as this bot: into a room it is not in it would speak where nobody
        # invited it (and where it never reads the answers).
        own = [room.id for room in self.rooms]
        listed = ", ".join(own)
        for index, schedule in enumerate(self.schedules):
            if schedule.room is None and schedule.rooms is None and not own:
                raise located("the bot has no rooms, so this schedule would post nowhere; add "
                              "rooms: to the bot", "schedules", index)
            targets = ([("room", schedule.room)] if schedule.room is not None
                       else [(position, room) for position, room
                             in enumerate(schedule.rooms or ())])
            for where, room in targets:
                if room not in own:
                    sub_loc = ("room",) if where == "room" else ("rooms", where)
                    raise located(f"room {room!r} is not one of this bot's rooms "
                                  f"({listed or 'it has none'}); a schedule may only post "
                                  "into the bot's own rooms", "schedules", index, *sub_loc)
        return self

    def channels(self, project_id: str) -> dict[str, str]:
        """Room id -> channel to subscribe to, in the order the rooms are listed."""
        return {room.id: room.channel_for(project_id) for room in self.rooms}


class BotsConfig(Section):
    """A whole bots.yaml. ``source`` remembers where each value was written."""

    xshathra: XshathraConfig = Field(
        description="a mapping with project_id, realtime_url, api_url and server_api_key")
    bots: list[BotConfig] = Field(description="a list of bots, each item starting with "
                                              "'- name: ...'")
    # validate_default: the default section must see the context too, to resolve its path.
    state: StateConfig = Field(default_factory=dict, validate_default=True,
                               description="a mapping like {backend: sqlite, path: "
                                           f"{DEFAULT_STATE_PATH}}}")
    catch_up: CatchUpConfig = Field(default_factory=CatchUpConfig,
                                    description="a mapping like {max_age: 10m, enabled: true}")
    cluster: ClusterConfig | None = Field(
        default=None, description="a mapping like {redis_url: ${REDIS_URL}, lease_ttl: 5s}")
    dev: DevConfig = Field(default_factory=DevConfig,
                           description="a mapping like {port: 3001, rate_limit: {messages: 5, "
                                       "per: 10s}}")
    ops: OpsConfig | None = Field(default=None,
                                  description="a mapping like {host: 127.0.0.1, port: 9180}")
    """The ops endpoint (/healthz, /readyz, /metrics); None: off."""
    _source: SourceMap = PrivateAttr(default_factory=lambda: SourceMap("<config>"))

    @field_validator("bots")
    @classmethod
    def _unique_bots(cls, bots: list[BotConfig]) -> list[BotConfig]:
        # Names key logs, state and the CLI; user ids key the server's view of who spoke (and
        # each bot ignores its own user): two bots sharing either would be confused.
        for key in ("name", "user_id"):
            first: dict[str, int] = {}
            for index, bot in enumerate(bots):
                value = getattr(bot, key)
                if value in first:
                    raise located(f"{key} {value!r} is already used by bots[{first[value]}]; "
                                  f"each bot needs its own", index, key)
                first[value] = index
        return bots

    @model_validator(mode="after")
    def _unique_channels(self) -> Self:
        # Two rooms of one bot may name the same channel (an override equal to a default); the
        # server refuses a second subscription to a channel on one connection.
        for bot_index, bot in enumerate(self.bots):
            first: dict[str, int] = {}
            for room_index, room in enumerate(bot.rooms):
                try:
                    channel = room.channel_for(self.xshathra.project_id)
                except InvalidChannelError as exc:
                    raise located(str(exc), "bots", bot_index, "rooms", room_index) from exc
                if channel in first:
                    raise located(f"channel {channel!r} is already used by rooms"
                                  f"[{first[channel]}]", "bots", bot_index, "rooms", room_index)
                first[channel] = room_index
        return self

    @model_validator(mode="after")
    def _share_equal_sections(self) -> Self:
        # Bots written alike have equal (frozen) limits: one instance for all of them rather
        # than a copy each (~700 bytes a bot, with 500 bots in a process; bench/ S4).
        shared: dict[LimitsConfig, LimitsConfig] = {}
        for bot in self.bots:
            limits = shared.setdefault(bot.limits, bot.limits)
            if limits is not bot.limits:
                bot.__dict__["limits"] = limits
        return self

    @property
    def source(self) -> SourceMap:
        """Where the values were written (file and lines), for errors found after loading."""
        return self._source

    def enabled_bots(self) -> list[BotConfig]:
        return [bot for bot in self.bots if bot.enabled]

    def __eq__(self, other: object) -> bool:
        # pydantic compares private attributes too; two configs with the same values are equal
        # however (and wherever) they were written.
        if not isinstance(other, BotsConfig):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable lists inside: not hashable
