"""bots.yaml: the schema, ``${VAR}`` and ``*_file`` expansion, and errors with locations.

::

    config = load_config("bots.yaml")  # ConfigError: "bots.yaml:12: bots[0].rooms: ..."
    for bot in config.enabled_bots():
        channels = bot.channels(config.xshathra.project_id)
        settings = validate_settings(config, bot, plugin.Settings)

The pipeline is ``_source`` (YAML -> values + line of every path) -> ``_expand`` (variables and
files) -> ``_models`` (pydantic; a module per section, the rules of all in ``_section``) ->
``_errors`` (pydantic errors -> located ConfigErrors).
"""

from __future__ import annotations

from botkit.config._catch_up import CatchUpConfig, resolve_catch_up
from botkit.config._cluster import ClusterConfig
from botkit.config._dev import DevConfig, RateLimitConfig
from botkit.config._durations import Bounds, parse_duration
from botkit.config._limits import (
    DEFAULT_HANDLER_TIMEOUT,
    DEFAULT_LANE_QUEUE_SIZE,
    DEFAULT_MAX_TEXT_LENGTH,
    LimitsConfig,
)
from botkit.config._loader import load_config, parse_config, validate_settings
from botkit.config._models import BotConfig, BotsConfig, RoomConfig
from botkit.config._ops import OpsConfig
from botkit.config._schedules import ScheduleConfig
from botkit.config._source import SourceMap
from botkit.config._state import DEFAULT_STATE_PATH, StateConfig
from botkit.config._xshathra import XshathraConfig

__all__ = [
    "DEFAULT_HANDLER_TIMEOUT",
    "DEFAULT_LANE_QUEUE_SIZE",
    "DEFAULT_MAX_TEXT_LENGTH",
    "DEFAULT_STATE_PATH",
    "BotConfig",
    "BotsConfig",
    "Bounds",
    "CatchUpConfig",
    "ClusterConfig",
    "DevConfig",
    "LimitsConfig",
    "OpsConfig",
    "RateLimitConfig",
    "RoomConfig",
    "ScheduleConfig",
    "SourceMap",
    "StateConfig",
    "XshathraConfig",
    "load_config",
    "parse_config",
    "parse_duration",
    "resolve_catch_up",
    "validate_settings",
]
