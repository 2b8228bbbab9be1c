"""bots.yaml: schema, loading, ${VAR} and *_file expansion, and located error messages.

Pure tests: no server. Most configs are written inline so that the expected line numbers can be
read off the text; ``HEADER`` is always lines 1-6, so the first bot starts on line 7.
"""

from __future__ import annotations

import logging
import os
import textwrap
import traceback
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

import botkit.config
from botkit.config import (
    DEFAULT_HANDLER_TIMEOUT,
    DEFAULT_LANE_QUEUE_SIZE,
    DEFAULT_MAX_TEXT_LENGTH,
    DEFAULT_STATE_PATH,
    BotConfig,
    BotsConfig,
    RoomConfig,
    SourceMap,
    StateConfig,
    load_config,
    parse_config,
    parse_duration,
    validate_settings,
)
from botkit.errors import ConfigError
from botkit.tokens import DEFAULT_TOKEN_TTL

DATA = Path(__file__).resolve().parents[1] / "data" / "config"
SECRET = "s3cr3t-Value-123"
ENV = {"XSHATHRA_SERVER_API_KEY": SECRET}
PROJECT = "proj_1"

HEADER = """\
xshathra:
  project_id: proj_1
  realtime_url: ws://localhost:3001/realtime/connection/websocket
  api_url: http://localhost:3001/api/realtime
  server_api_key: ${XSHATHRA_SERVER_API_KEY}
bots:
"""

ONE_BOT = """\
- name: welcome
  plugin: bots.welcome
  user_id: bot_welcome
"""


def with_bots(text: str) -> str:
    return HEADER + textwrap.dedent(text)


def parse(text: str, *, env: dict[str, str] | None = None,
          base_dir: Path | None = None) -> BotsConfig:
    return parse_config(text, source="bots.yaml", environ=ENV if env is None else env,
                        base_dir=base_dir)


def error_of(text: str, *, env: dict[str, str] | None = None,
             base_dir: Path | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, env=env, base_dir=base_dir)
    return info.value


# --- a valid config ---------------------------------------------------------------------------


def test_full_config_file_loads_with_every_field(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # the *_file path must resolve against the file, not the cwd
    config = load_config(DATA / "bots.yaml", environ={})

    assert config.xshathra.project_id == "proj_01HZZZZZZZZZZZZZZZZZZZZZZ"
    assert config.xshathra.realtime_url == "ws://localhost:3001/realtime/connection/websocket"
    assert config.xshathra.api_url == "http://localhost:3001/api/realtime"  # slash dropped
    assert config.xshathra.server_api_key.get_secret_value() == "not-a-real-server-api-key"
    assert config.xshathra.token_ttl == 300.0

    welcome, reminders = config.bots
    assert (welcome.name, welcome.plugin, welcome.user_id) == (
        "welcome", "bots.welcome", "bot_welcome")
    assert welcome.rooms == [RoomConfig(id="lobby"), RoomConfig(id="room_abc123"),
                             RoomConfig(id="vip", channel="chat:other_project:vip")]
    assert welcome.channels(config.xshathra.project_id) == {
        "lobby": "chat:proj_01HZZZZZZZZZZZZZZZZZZZZZZ:lobby",
        "room_abc123": "chat:proj_01HZZZZZZZZZZZZZZZZZZZZZZ:room_abc123",
        "vip": "chat:other_project:vip",
    }
    assert welcome.settings == {"greeting": "Welcome, {name}!", "max_rolls": 3}
    assert welcome.enabled is True
    assert (welcome.limits.handler_timeout, welcome.limits.lane_queue_size,
            welcome.limits.max_text_length) == (2.5, 50, 2000)

    assert reminders.plugin == "reminder-bot"
    assert reminders.rooms == []
    assert reminders.settings == {}
    assert reminders.enabled is False
    assert config.enabled_bots() == [welcome]

    assert config.source.path == str(DATA / "bots.yaml")
    assert config.source.line_of(("bots", 0, "rooms", 2, "channel")) == 17
    assert config.source.line_of(("xshathra", "server_api_key")) == 6  # the *_file line


def test_defaults_fill_in_optional_keys() -> None:
    config = parse(with_bots(ONE_BOT))
    bot = config.bots[0]
    assert config.xshathra.token_ttl == DEFAULT_TOKEN_TTL
    assert bot.rooms == []
    assert bot.settings == {}
    assert bot.enabled is True
    assert bot.limits.handler_timeout == DEFAULT_HANDLER_TIMEOUT == 10.0
    assert bot.limits.lane_queue_size == DEFAULT_LANE_QUEUE_SIZE == 1000
    assert bot.limits.max_text_length == DEFAULT_MAX_TEXT_LENGTH == 4000
    assert bot.limits.rooms_per_connection == 128  # Centrifugo's default channel limit


def test_public_api_is_pinned() -> None:
    assert sorted(botkit.config.__all__) == [
        "BotConfig", "BotsConfig", "Bounds", "CatchUpConfig", "ClusterConfig",
        "DEFAULT_HANDLER_TIMEOUT",
        "DEFAULT_LANE_QUEUE_SIZE", "DEFAULT_MAX_TEXT_LENGTH", "DEFAULT_STATE_PATH", "DevConfig",
        "LimitsConfig", "OpsConfig", "RateLimitConfig", "RoomConfig",
        "ScheduleConfig", "SourceMap", "StateConfig", "XshathraConfig", "load_config",
        "parse_config", "parse_duration", "resolve_catch_up", "validate_settings",
    ]
    for name in botkit.config.__all__:
        assert hasattr(botkit.config, name), name


def test_equality_ignores_layout_and_source_stays_out_of_dumps() -> None:
    flow = parse(HEADER.replace(
        "bots:\n", "bots: [{name: welcome, plugin: bots.welcome, user_id: bot_welcome}]\n"))
    block = parse("# comment\n\n" + with_bots(ONE_BOT))
    assert flow.source.lines != block.source.lines
    assert flow == block
    assert flow != parse(with_bots(ONE_BOT.replace("bots.welcome", "bots.other")))
    assert "source" not in flow.model_dump()
    assert "source" not in repr(flow)


def test_config_is_immutable() -> None:
    config = parse(with_bots(ONE_BOT))
    with pytest.raises(ValidationError):
        config.bots[0].name = "other"


def test_merge_keys_work_and_keep_lines() -> None:
    text = with_bots("""\
        - &base
          name: one
          plugin: bots.welcome
          user_id: bot_one
          limits: {lane_queue_size: 5}
        - <<: *base
          name: two
          user_id: bot_two
        """)
    config = parse(text)
    assert config.bots[1].plugin == "bots.welcome"
    assert config.bots[1].limits.lane_queue_size == 5
    assert config.source.line_of(("bots", 1, "name")) == 13
    assert config.source.line_of(("bots", 1, "plugin")) == 9  # where the merged value was written


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds"), [
    (30, 30.0), (1.5, 1.5), ("45", 45.0), ("500ms", 0.5), ("30s", 30.0), ("2.5s", 2.5),
    ("15m", 900.0), ("1h", 3600.0), ("1h30m", 5400.0), (" 10s ", 10.0), (0, 0.0),
])
def test_parse_duration_accepts_seconds_and_units(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["15x", "", "s", "-5s", "1h 30m", "inf", -1, True, None, [1]])
def test_parse_duration_refuses_everything_else(value: object) -> None:
    with pytest.raises(ValueError, match="500ms, 30s, 15m, 1h"):
        parse_duration(value)


def test_bad_duration_is_located() -> None:
    text = with_bots(ONE_BOT + "  limits:\n    handler_timeout: 10 sec\n")
    assert str(error_of(text)) == (
        "bots.yaml:11: bots[0].limits.handler_timeout: invalid duration '10 sec'; write a "
        "number of seconds (30) or a number with a unit: 500ms, 30s, 15m, 1h, 1h30m")


def test_zero_duration_is_refused() -> None:
    text = HEADER.replace("bots:\n", "  token_ttl: 0s\nbots:\n") + textwrap.dedent(ONE_BOT)
    assert str(error_of(text)) == "bots.yaml:6: xshathra.token_ttl: must be greater than 0"


# --- schema errors ----------------------------------------------------------------------------


def test_unknown_key_suggests_the_closest_valid_one() -> None:
    error = error_of(with_bots(ONE_BOT + "  romos: [lobby]\n"))
    assert str(error) == "bots.yaml:10: bots[0].romos: unknown key 'romos'; did you mean 'rooms'?"
    assert (error.path, error.line, error.field) == ("bots.yaml", 10, "bots[0].romos")


def test_unknown_top_level_key_suggests_too() -> None:
    error = error_of(with_bots(ONE_BOT).replace("xshathra:", "xshatra:"))
    assert "bots.yaml:1: xshatra: unknown key 'xshatra'; did you mean 'xshathra'?" in str(error)


def test_unknown_key_without_a_close_match_lists_the_valid_keys() -> None:
    error = error_of(with_bots(ONE_BOT + "  limits: {colour: blue}\n"))
    assert str(error) == (
        "bots.yaml:10: bots[0].limits.colour: unknown key 'colour'; expected one of: "
        "handler_timeout, lane_queue_size, max_text_length, rooms_per_connection, room_rate, "
        "room_burst, outbox_size, reply_deadline")


def test_missing_key_points_at_its_parent() -> None:
    error = error_of(with_bots("- name: welcome\n  plugin: bots.welcome\n"))
    assert str(error) == (
        "bots.yaml:7: bots[0].user_id: required key 'user_id' is missing; "
        "expected the bot's user id, e.g. bot_welcome")


def test_missing_section_at_the_top_level() -> None:
    error = error_of("bots: []\n")
    assert str(error).startswith("bots.yaml:1: xshathra: required key 'xshathra' is missing")


def test_rooms_must_be_a_list() -> None:
    error = error_of(with_bots(ONE_BOT + "  rooms: lobby\n"))
    assert str(error) == (
        "bots.yaml:10: bots[0].rooms: expected a list of room ids, e.g. [lobby, room_abc123], "
        "got a string")


def test_empty_rooms_key_suggests_an_empty_list() -> None:
    error = error_of(with_bots(ONE_BOT + "  rooms:\n"))
    assert str(error) == (
        "bots.yaml:10: bots[0].rooms: expected a list of room ids, e.g. [lobby, room_abc123], "
        "got nothing (the key has no value); write [] for an empty list")


def test_bad_room_id_points_at_the_item() -> None:
    error = error_of(with_bots(ONE_BOT + "  rooms:\n    - lobby\n    - room abc\n"))
    assert error.line == 12
    assert error.field == "bots[0].rooms[1]"
    assert "room id 'room abc' may contain only ASCII letters" in str(error)


def test_numeric_room_id_asks_for_quotes() -> None:
    error = error_of(with_bots(ONE_BOT + "  rooms: [lobby, 1234]\n"))
    assert error.field == "bots[0].rooms[1]"
    assert str(error).endswith("got a number; YAML reads unquoted digits as a number, "
                               "so put the room id in quotes")


def test_bad_channel_override_points_at_the_channel_key() -> None:
    text = with_bots(ONE_BOT + "  rooms:\n    - id: vip\n      channel: chat vip\n")
    error = error_of(text)
    assert (error.line, error.field) == (12, "bots[0].rooms[0].channel")
    assert "must be printable ASCII without whitespace" in str(error)


def test_duplicate_room_points_at_the_second_one() -> None:
    error = error_of(with_bots(ONE_BOT + "  rooms:\n    - lobby\n    - vip\n    - lobby\n"))
    assert str(error) == (
        "bots.yaml:13: bots[0].rooms[2]: room 'lobby' is listed twice (first as rooms[0]); "
        "remove one")


def test_two_rooms_on_one_channel_are_refused() -> None:
    text = with_bots(ONE_BOT + "  rooms:\n    - lobby\n"
                               "    - {id: hall, channel: 'chat:proj_1:lobby'}\n")
    assert str(error_of(text)) == (
        "bots.yaml:12: bots[0].rooms[1]: channel 'chat:proj_1:lobby' is already used by rooms[0]")


def test_bot_names_and_user_ids_must_be_unique() -> None:
    names = error_of(with_bots(ONE_BOT + ONE_BOT.replace("bot_welcome", "bot_2")))
    assert str(names) == (
        "bots.yaml:10: bots[1].name: name 'welcome' is already used by bots[0]; "
        "each bot needs its own")
    user_ids = error_of(with_bots(ONE_BOT + ONE_BOT.replace("name: welcome", "name: second")))
    assert str(user_ids) == (
        "bots.yaml:12: bots[1].user_id: user_id 'bot_welcome' is already used by bots[0]; "
        "each bot needs its own")


@pytest.mark.parametrize(("field", "old", "new", "message"), [
    ("name", "name: welcome", "name: my bot", "bot name 'my bot' must start with a letter"),
    ("plugin", "plugin: bots.welcome", "plugin: bots/welcome.py",
     "plugin 'bots/welcome.py' is neither a module path"),
    ("user_id", "user_id: bot_welcome", "user_id: bot:welcome",
     "user id 'bot:welcome' may contain only"),
    ("user_id", "user_id: bot_welcome", "user_id: 42",
     "got a number; YAML reads unquoted digits as a number, so put the value in quotes"),
    ("user_id", "user_id: bot_welcome", "user_id: no",
     "got true/false; YAML reads yes/no/on/off/true/false as booleans"),
    ("enabled", "user_id: bot_welcome", "user_id: bot_welcome\n  enabled: 'yes'",
     "expected true or false, got a string"),
    ("settings", "user_id: bot_welcome", "user_id: bot_welcome\n  settings: [a, b]",
     "expected a mapping of the plugin's settings, e.g. {greeting: 'Hi {name}!'}, got a list"),
])
def test_bot_field_errors(field: str, old: str, new: str, message: str) -> None:
    error = error_of(with_bots(ONE_BOT.replace(old, new)))
    assert error.field == f"bots[0].{field}"
    assert message in str(error)


@pytest.mark.parametrize(("value", "message"), [
    ("0", "must be at least 1"),
    ("'10'", "expected a whole number of messages, e.g. 1000, got a string"),
    ("1.5", "expected a whole number of messages, e.g. 1000, got a number"),
])
def test_limits_are_checked(value: str, message: str) -> None:
    error = error_of(with_bots(ONE_BOT + f"  limits:\n    lane_queue_size: {value}\n"))
    assert (error.line, error.field) == (11, "bots[0].limits.lane_queue_size")
    assert str(error).endswith(message)


@pytest.mark.parametrize(("value", "message"), [
    ("0", "must be at least 1"),
    ("-5", "must be at least 1"),
    ("'128'", "expected a whole number of rooms, e.g. 128, got a string"),
    ("2.5", "expected a whole number of rooms, e.g. 128, got a number"),
])
def test_rooms_per_connection_is_checked(value: str, message: str) -> None:
    error = error_of(with_bots(ONE_BOT + f"  limits:\n    rooms_per_connection: {value}\n"))
    assert (error.line, error.field) == (11, "bots[0].limits.rooms_per_connection")
    assert str(error).endswith(message)


def test_rooms_per_connection_is_read() -> None:
    config = parse(with_bots(ONE_BOT + "  limits: {rooms_per_connection: 1}\n"))
    assert config.bots[0].limits.rooms_per_connection == 1


@pytest.mark.parametrize(("key", "url", "message"), [
    ("realtime_url", "http://localhost:3001/x",
     "expected a URL starting with ws:// or wss://, got one starting with http://"),
    ("realtime_url", "localhost:3001/x", "expected a URL starting with ws:// or wss://, got no"),
    ("api_url", "ws://localhost:3001/api", "expected a URL starting with http:// or https://"),
    ("api_url", "http:///api", "the URL has no host"),
    ("api_url", "http://localhost:port/api", "the URL has an invalid port"),
])
def test_urls_are_checked(key: str, url: str, message: str) -> None:
    line = {"realtime_url": 3, "api_url": 4}[key]
    text = HEADER.replace(HEADER.splitlines()[line - 1], f"  {key}: {url}") + ONE_BOT
    error = error_of(text)
    assert (error.line, error.field) == (line, f"xshathra.{key}")
    assert message in str(error)


def test_bad_project_id() -> None:
    error = error_of(with_bots(ONE_BOT).replace("project_id: proj_1", "project_id: 'proj 1'"))
    assert str(error).startswith("bots.yaml:2: xshathra.project_id: project id 'proj 1' may")


def test_several_errors_are_all_reported_in_file_order() -> None:
    text = with_bots("""\
        - name: welcome
          plugin: bots.welcome
          user_id: bot_welcome
          rooms: lobby
          limits: {lane_queue_size: 0}
        - name: second
          plugin: bots.second
        """).replace("  api_url: http:", "  api_url: ws:")
    error = error_of(text)
    lines = str(error).splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("bots.yaml:4: xshathra.api_url: expected a URL starting with")
    assert lines[1].startswith("bots.yaml:10: bots[0].rooms: expected a list of room ids")
    assert lines[2] == "bots.yaml:11: bots[0].limits.lane_queue_size: must be at least 1"
    assert lines[3].startswith("bots.yaml:12: bots[1].user_id: required key 'user_id'")
    assert (error.line, error.field) == (4, "xshathra.api_url")


def test_validation_errors_are_chained_to_pydantic() -> None:
    error = error_of(with_bots(ONE_BOT + "  rooms: lobby\n"))
    assert isinstance(error.__cause__, pydantic.ValidationError)


# --- YAML problems ----------------------------------------------------------------------------


def test_broken_yaml_is_located_without_a_traceback() -> None:
    error = error_of(with_bots(ONE_BOT + "  rooms: [lobby, vip\n  enabled: true\n"))
    assert error.line == 11
    assert str(error).startswith("bots.yaml:11: invalid YAML: while parsing a flow sequence: ")
    assert "\n" not in str(error)
    assert "Traceback" not in str(error)


def test_unclosed_quote_says_where_it_started() -> None:
    text = HEADER.replace("${XSHATHRA_SERVER_API_KEY}", f'"{SECRET}') + ONE_BOT
    error = error_of(text)
    assert error.line == 10  # the end of the file, where the scanner gave up
    assert str(error).startswith("bots.yaml:10: invalid YAML: while scanning a quoted scalar: "
                                 "found unexpected end of stream")
    assert str(error).endswith("; a quoted scalar started on line 5)")
    # The YAML error is chained, but without its excerpt of the file: that line has a secret.
    assert isinstance(error.__cause__, yaml.YAMLError)
    assert 'in "bots.yaml", line 5' in full_text(error)
    assert SECRET not in full_text(error)


def test_tab_indentation_gets_a_hint() -> None:
    error = error_of("xshathra:\n\tproject_id: x\n")
    assert error.line == 2
    assert "YAML indents with spaces; replace the tab" in str(error)


@pytest.mark.parametrize(("text", "line", "field", "first"), [
    (HEADER + ONE_BOT + "  plugin: bots.other\n", 10, "bots[0].plugin", 8),
    (HEADER.replace("bots:\n", "  project_id: proj_2\nbots:\n") + ONE_BOT, 6,
     "xshathra.project_id", 2),
    (HEADER + ONE_BOT + "  settings:\n    greeting: hi\n    greeting: hello\n", 12,
     "bots[0].settings.greeting", 11),
])
def test_duplicate_keys_are_refused(text: str, line: int, field: str, first: int) -> None:
    error = error_of(text)
    key = field.rsplit(".", 1)[-1]
    assert str(error) == (
        f"bots.yaml:{line}: {field}: duplicate key {key!r} (first given on line {first}); "
        "YAML would silently keep only the last one, so remove one of them")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(text: str) -> None:
    assert str(error_of(text)) == (
        "bots.yaml: the file is empty; it needs an 'xshathra:' mapping and a 'bots:' list")


@pytest.mark.parametrize(("text", "got"), [("- a\n- b\n", "a list"), ("hello\n", "a string")])
def test_top_level_must_be_a_mapping(text: str, got: str) -> None:
    assert str(error_of(text)) == (
        f"bots.yaml:1: the top level must be a mapping with 'xshathra:' and 'bots:' keys, "
        f"got {got}")


def test_several_documents_are_refused() -> None:
    error = error_of(with_bots(ONE_BOT) + "---\nbots: []\n")
    assert "expected a single document in the stream" in str(error)
    assert error.line == 10


def test_loading_is_safe(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"xshathra: !!python/object/apply:os.system ['touch {marker}']\nbots: []\n"
    error = error_of(text)
    assert error.line == 1
    assert "could not determine a constructor" in str(error)
    assert not marker.exists()


def test_recursive_alias_is_refused_not_looped() -> None:
    error = error_of(with_bots(ONE_BOT + "  settings: &s {self: *s}\n"))
    assert error.field == "bots[0].settings.self"
    assert "recursive values are not supported" in str(error)


# --- ${VAR} interpolation ---------------------------------------------------------------------


def test_env_variables_and_defaults() -> None:
    text = with_bots(ONE_BOT + textwrap.indent(textwrap.dedent("""\
        settings:
          plain: ${A}
          middle: "x-${A}-y"
          several: "${A}/${B}/${A}"
          unset: ${MISSING:-fallback}
          empty: ${EMPTY:-fallback}
          empty_no_default: "[${EMPTY}]"
          default_empty: "[${MISSING:-}]"
          escaped: "$${A} and ${A}"
          not_a_reference: "$A $$ costs $5 {A}"
          list: ["${B}", "${B:-x}"]
          nested: {deeper: "${A}"}
          number: 5
        """), "  "))
    env = {**ENV, "A": "alpha", "B": "beta", "EMPTY": ""}
    settings = parse(text, env=env).bots[0].settings
    assert settings == {
        "plain": "alpha",
        "middle": "x-alpha-y",
        "several": "alpha/beta/alpha",
        "unset": "fallback",
        "empty": "fallback",
        "empty_no_default": "[]",
        "default_empty": "[]",
        "escaped": "${A} and alpha",
        "not_a_reference": "$A $$ costs $5 {A}",
        "list": ["beta", "beta"],
        "nested": {"deeper": "alpha"},
        "number": 5,
    }


def test_values_from_the_environment_are_not_expanded_again() -> None:
    config = parse(with_bots(ONE_BOT + "  settings: {x: '${A}'}\n"), env={**ENV, "A": "${B}"})
    assert config.bots[0].settings == {"x": "${B}"}


def test_missing_variable_is_located_and_suggests_a_default() -> None:
    error = error_of(with_bots(ONE_BOT), env={})
    assert str(error) == (
        "bots.yaml:5: xshathra.server_api_key: environment variable XSHATHRA_SERVER_API_KEY is "
        "not set (set it, or write ${XSHATHRA_SERVER_API_KEY:-default})")


def test_every_missing_variable_is_reported() -> None:
    error = error_of(with_bots(ONE_BOT + "  settings: {a: '${ONE}', b: '${TWO}'}\n"), env={})
    lines = str(error).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "xshathra.server_api_key", "bots[0].settings.a", "bots[0].settings.b"]
    assert "environment variable TWO is not set" in lines[2]


@pytest.mark.parametrize("value", ["${ A}", "${A", "${1A}", "${A-x}"])
def test_malformed_reference_is_refused(value: str) -> None:
    error = error_of(with_bots(ONE_BOT + f"  settings: {{a: '{value}'}}\n"), env=ENV)
    assert (error.line, error.field) == (10, "bots[0].settings.a")
    assert "malformed variable reference" in str(error)
    assert "or $${ for a literal ${" in str(error)


def test_nested_default_is_refused() -> None:
    error = error_of(with_bots(ONE_BOT + "  settings: {a: '${A:-${B}}'}\n"))
    assert "nested references" in str(error)


@pytest.mark.parametrize(("text", "line", "field"), [
    (with_bots(ONE_BOT + "  settings: {1: one}\n"), 10, "bots[0].settings[1]"),
    (with_bots(ONE_BOT) + "on: true\n", 10, "[1]"),  # pydantic reports True as 1
])
def test_non_string_keys_are_refused(text: str, line: int, field: str) -> None:
    assert str(error_of(text)) == (
        f"bots.yaml:{line}: {field}: keys must be strings; YAML reads unquoted digits and "
        "yes/no/on/off as other types, so put the key in quotes")


def test_os_environ_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XSHATHRA_SERVER_API_KEY", "from-os-environ")
    config = parse_config(with_bots(ONE_BOT))
    assert config.xshathra.server_api_key.get_secret_value() == "from-os-environ"
    assert config.source.path == "<string>"


# --- *_file -----------------------------------------------------------------------------------


def write_config(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "bots.yaml"
    path.write_text(text, encoding="utf-8")
    return path


FILE_HEADER = HEADER.replace("server_api_key: ${XSHATHRA_SERVER_API_KEY}",
                             "server_api_key_file: {path}")


def test_file_secret_relative_to_the_config_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf" / "secrets").mkdir(parents=True)
    (tmp_path / "conf" / "secrets" / "key").write_text("from-a-file\n\n", encoding="utf-8")
    path = write_config(tmp_path / "conf", FILE_HEADER.format(path="secrets/key") + ONE_BOT)
    monkeypatch.chdir(tmp_path)
    config = load_config(path, environ={})
    assert config.xshathra.server_api_key.get_secret_value() == "from-a-file"


def test_file_secret_absolute_path_built_from_a_variable(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("abs-key", encoding="utf-8")
    text = FILE_HEADER.format(path="${SECRETS}/key") + ONE_BOT
    config = parse(text, env={"SECRETS": str(tmp_path)})
    assert config.xshathra.server_api_key.get_secret_value() == "abs-key"


def test_file_indirection_works_in_settings_too(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("tok\n", encoding="utf-8")
    config = parse(with_bots(ONE_BOT + "  settings: {token_file: token}\n"), base_dir=tmp_path)
    assert config.bots[0].settings == {"token": "tok"}


def test_missing_file_names_the_key_and_the_path(tmp_path: Path) -> None:
    path = write_config(tmp_path, FILE_HEADER.format(path="nope/key") + ONE_BOT)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == (
        f"{path}:5: xshathra.server_api_key_file: cannot read {str(tmp_path / 'nope/key')!r} "
        "(written as 'nope/key', relative to the config file's directory): "
        "No such file or directory")


def test_unreadable_file_contents_are_never_quoted(tmp_path: Path) -> None:
    (tmp_path / "key").write_bytes(b"\xff\xfe" + SECRET.encode())
    error = error_of(FILE_HEADER.format(path="key") + ONE_BOT, base_dir=tmp_path)
    assert str(error).endswith("the file is not UTF-8 text")
    assert SECRET not in str(error)
    assert "xff" not in str(error)


def test_both_value_and_file_is_an_error(tmp_path: Path) -> None:
    text = HEADER.replace("bots:\n", "  server_api_key_file: key\nbots:\n") + ONE_BOT
    error = error_of(text, base_dir=tmp_path)
    assert str(error) == ("bots.yaml:6: xshathra.server_api_key_file: give either "
                          "'server_api_key' or 'server_api_key_file', not both")


def test_file_key_needs_a_path() -> None:
    error = error_of(FILE_HEADER.format(path="") + ONE_BOT)
    assert str(error) == ("bots.yaml:5: xshathra.server_api_key_file: expected the path of a "
                          "file to read the value from")


# --- state: ---------------------------------------------------------------------------------


def test_state_defaults_to_sqlite_next_to_the_config_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path / "conf", with_bots(ONE_BOT))
    monkeypatch.chdir(tmp_path)  # the default path must resolve against the file, not the cwd
    config = load_config(path, environ=ENV)
    assert config.state == StateConfig(backend="sqlite",
                                       path=tmp_path / "conf" / ".botkit" / "state.sqlite")
    assert DEFAULT_STATE_PATH == ".botkit/state.sqlite"


def test_state_section_with_a_relative_path(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path / "conf", with_bots(ONE_BOT) + textwrap.dedent("""\
        state:
          backend: sqlite
          path: data/bots.sqlite
        """))
    monkeypatch.chdir(tmp_path)
    state = load_config(path, environ=ENV).state
    assert state.backend == "sqlite"
    assert state.path == tmp_path / "conf" / "data" / "bots.sqlite"
    assert state.path.is_absolute()


def test_state_section_with_an_absolute_path_from_a_variable(tmp_path: Path) -> None:
    text = with_bots(ONE_BOT) + "state: {backend: memory, path: '${STATE_DIR}/s.sqlite'}\n"
    state = parse(text, env={**ENV, "STATE_DIR": str(tmp_path)},
                  base_dir=tmp_path / "elsewhere").state
    assert (state.backend, state.path) == ("memory", tmp_path / "s.sqlite")


def test_state_section_built_in_code_resolves_against_the_cwd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert StateConfig().path == tmp_path / DEFAULT_STATE_PATH
    assert StateConfig(path=Path("/abs/s.sqlite")).path == Path("/abs/s.sqlite")


@pytest.mark.parametrize(("state", "message"), [
    ("{backend: redis}", "state.backend: expected sqlite (a file that survives restarts) or "
                         "memory (lost at exit, for tests), got 'redis'"),
    ("{backend: [sqlite]}", "state.backend: expected sqlite (a file that survives restarts) or "
                            "memory (lost at exit, for tests), got a list"),
    ("{pth: x.sqlite}", "state.pth: unknown key 'pth'; did you mean 'path'?"),
    ("{path: ''}", "state.path: expected a file path, e.g. .botkit/state.sqlite, got an empty "
                   "string"),
    ("{path: 3}", "state.path: expected a file path, e.g. .botkit/state.sqlite, got a number"),
    ("", "state: expected a mapping like {backend: sqlite, path: .botkit/state.sqlite}, got "
         "nothing (the key has no value); write {} for an empty one"),
])
def test_bad_state_section_is_located(state: str, message: str) -> None:
    error = error_of(with_bots(ONE_BOT) + f"state: {state}\n")
    assert str(error) == f"bots.yaml:10: {message}"
    assert error.line == 10


def test_bad_state_backend_points_at_its_line() -> None:
    error = error_of(with_bots(ONE_BOT) + "state:\n  path: s.sqlite\n  backend: SQLite\n")
    assert (error.line, error.field) == (12, "state.backend")
    assert str(error).endswith("got 'SQLite'")


# --- secrets ----------------------------------------------------------------------------------


def full_text(error: BaseException) -> str:
    """Everything a log of the error would show: message, traceback and chained causes."""
    return "".join(traceback.format_exception(error))


def test_secret_is_not_in_repr_str_or_dumps() -> None:
    config = parse(with_bots(ONE_BOT))
    assert config.xshathra.server_api_key.get_secret_value() == SECRET
    for text in (repr(config), str(config), repr(config.xshathra), config.model_dump_json(),
                 str(config.model_dump())):
        assert SECRET not in text


@pytest.mark.parametrize(("value", "message"), [
    (f"' {SECRET}'", "has leading or trailing whitespace; remove it"),
    ("''", "is empty; set it to the project's server API key"),
    ("12345678", "got a number"),
    (f"[{SECRET}]", "got a list"),
])
def test_errors_about_the_secret_never_show_it(value: str, message: str) -> None:
    text = with_bots(ONE_BOT).replace("${XSHATHRA_SERVER_API_KEY}", value)
    error = error_of(text)
    assert (error.line, error.field) == (5, "xshathra.server_api_key")
    assert message in str(error)
    for secret in (SECRET, "12345678"):
        assert secret not in full_text(error)


def test_secret_from_the_environment_is_hidden_even_in_other_fields() -> None:
    # A secret that ends up in the wrong field is quoted by no message and no chained cause.
    text = with_bots(ONE_BOT).replace("project_id: proj_1",
                                      "project_id: ${XSHATHRA_SERVER_API_KEY}")
    error = error_of(text, env={"XSHATHRA_SERVER_API_KEY": "bad secret!"})
    assert str(error).startswith("bots.yaml:2: xshathra.project_id: project id '***' may")
    assert "bad secret!" not in full_text(error)


def test_secret_from_a_file_is_hidden_in_errors(tmp_path: Path) -> None:
    (tmp_path / "id").write_text("not a valid id, and secret\n", encoding="utf-8")
    text = HEADER.replace("project_id: proj_1", "project_id_file: id") + ONE_BOT
    error = error_of(text, base_dir=tmp_path)
    assert (error.line, error.field) == (2, "xshathra.project_id")
    assert "and secret" not in full_text(error)


def test_loading_logs_nothing_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    parse(with_bots(ONE_BOT))
    with pytest.raises(ConfigError):
        parse(with_bots(ONE_BOT).replace("project_id: proj_1",
                                         "project_id: ${XSHATHRA_SERVER_API_KEY}"),
              env={"XSHATHRA_SERVER_API_KEY": "bad secret!"})
    assert SECRET not in caplog.text
    assert "bad secret!" not in caplog.text


# --- plugin settings --------------------------------------------------------------------------


class Dice(BaseModel):
    sides: int = Field(default=6, ge=2)


class Settings(BaseModel):
    greeting: str
    max_rolls: int = 3
    dice: Dice = Dice()
    token: SecretStr | None = None


SETTINGS_BOTS = """\
- name: first
  plugin: bots.first
  user_id: bot_first
- name: welcome
  plugin: bots.welcome
  user_id: bot_welcome
  settings:
    greeting: "Hi {name}"
    max_rolls: many
    dice:
      sides: 1
"""


def test_settings_validate_into_the_plugin_model() -> None:
    config = parse(with_bots(ONE_BOT + "  settings: {greeting: hi, dice: {sides: 20}}\n"))
    settings = validate_settings(config, config.bots[0], Settings)
    assert isinstance(settings, Settings)
    assert (settings.greeting, settings.max_rolls, settings.dice.sides) == ("hi", 3, 20)


def test_settings_errors_are_located_inside_the_settings_mapping() -> None:
    config = parse(with_bots(SETTINGS_BOTS))
    with pytest.raises(ConfigError) as info:
        validate_settings(config, config.bots[1], Settings)
    assert str(info.value).splitlines() == [
        "bots.yaml:15: bots[1].settings.max_rolls: expected a whole number, got a string",
        "bots.yaml:17: bots[1].settings.dice.sides: must be at least 2",
    ]
    assert isinstance(info.value.__cause__, ValidationError)


def test_missing_setting_points_at_the_settings_key() -> None:
    config = parse(with_bots(ONE_BOT + "  settings:\n    max_rolls: 2\n"))
    with pytest.raises(ConfigError) as info:
        validate_settings(config, config.bots[0], Settings)
    assert str(info.value) == (
        "bots.yaml:10: bots[0].settings.greeting: required key 'greeting' is missing")


def test_unknown_setting_is_refused_with_a_suggestion() -> None:
    config = parse(with_bots(ONE_BOT + "  settings:\n    greting: hi\n    greeting: hi\n"))
    with pytest.raises(ConfigError) as info:
        validate_settings(config, config.bots[0], Settings)
    assert str(info.value) == (
        "bots.yaml:11: bots[0].settings.greting: unknown key 'greting'; "
        "did you mean 'greeting'?")


def test_unknown_settings_pass_when_the_model_allows_extras() -> None:
    class Open(BaseModel):
        model_config = ConfigDict(extra="allow")
        greeting: str

    config = parse(with_bots(ONE_BOT + "  settings: {greeting: hi, colour: blue}\n"))
    settings = validate_settings(config, config.bots[0], Open)
    assert settings.model_extra == {"colour": "blue"}


def test_settings_union_errors_name_the_key_the_user_wrote() -> None:
    class Either(BaseModel):
        limit: int | str
        dice: Dice | int

    config = parse(with_bots(ONE_BOT + "  settings:\n    limit: [1]\n    dice: {sides: x}\n"))
    with pytest.raises(ConfigError) as info:
        validate_settings(config, config.bots[0], Either)
    assert str(info.value).splitlines() == [
        "bots.yaml:11: bots[0].settings.limit: expected a whole number or a string, got a list",
        "bots.yaml:12: bots[0].settings.dice.sides: expected a whole number, got a string",
        "bots.yaml:12: bots[0].settings.dice: expected a whole number, got a mapping",
    ]


def test_setting_from_the_environment_is_not_quoted() -> None:
    class Strict(BaseModel):
        code: int

        @pydantic.field_validator("code", mode="before")
        @classmethod
        def check(cls, value: Any) -> Any:
            raise ValueError(f"bad code {value!r}")

    text = with_bots(ONE_BOT + "  settings: {code: '${CODE}'}\n")
    config = parse(text, env={**ENV, "CODE": "hidden-code"})
    with pytest.raises(ConfigError) as info:
        validate_settings(config, config.bots[0], Strict)
    assert str(info.value) == "bots.yaml:10: bots[0].settings.code: bad code '***'"
    assert "hidden-code" not in full_text(info.value)


def test_settings_of_a_bot_from_another_config_are_refused() -> None:
    config = parse(with_bots(ONE_BOT))
    stranger = BotConfig(name="stranger", plugin="x", user_id="u")
    with pytest.raises(ValueError, match="not part of this config"):
        validate_settings(config, stranger, Settings)


def test_config_built_in_code_has_an_unlocated_source() -> None:
    config = BotsConfig.model_validate({
        "xshathra": {"project_id": PROJECT, "realtime_url": "ws://h/ws", "api_url": "http://h",
                     "server_api_key": "k"},
        "bots": [{"name": "b", "plugin": "p", "user_id": "u", "settings": {"max_rolls": 1}}],
    })
    with pytest.raises(ConfigError) as info:
        validate_settings(config, config.bots[0], Settings)
    assert str(info.value) == (
        "<config>: bots[0].settings.greeting: required key 'greeting' is missing")


# --- source map and file loading --------------------------------------------------------------


def test_source_map_falls_back_to_the_nearest_parent() -> None:
    source = SourceMap("bots.yaml", {(): 1, ("bots",): 6, ("bots", 0): 7})
    assert source.line_of(("bots", 0, "settings", "deep", 3)) == 7
    assert source.line_of(("other",)) == 1
    error = source.error(("bots", 0, "plugin"), "cannot import bots.welcome")
    assert str(error) == "bots.yaml:7: bots[0].plugin: cannot import bots.welcome"


def test_a_loaded_config_keeps_its_lines_packed_until_an_error_needs_them() -> None:
    # Hundreds of bots in one process: the line of every path, as tuples in a dict, was
    # ~1.5 KiB per bot for the process's life (bench/ S4). Packed, then unpacked on demand.
    config = parse(with_bots(ONE_BOT + "  rooms:\n  - lobby\n  - id: vip\n"))
    source = config.source
    assert source._lines is None  # packed
    assert source.line_of(("bots", 0, "user_id")) == 9
    assert source.line_of(("bots", 0, "rooms", 1, "id")) == 12
    assert source.line_of(("xshathra", "server_api_key")) == 5
    assert source.is_hidden(("xshathra", "server_api_key"))
    assert str(source.error(("bots", 0, "plugin"), "no such plugin")) == (
        "bots.yaml:8: bots[0].plugin: no such plugin")


def test_packed_lines_keep_keys_of_every_kind() -> None:
    source = SourceMap("bots.yaml", {(): 1, ("bots", 0, "settings", "odd key"): 4,
                                     ("bots", 0, "settings", True): 5, ("x", 7): 6})
    source.pack()
    assert source.line_of(("bots", 0, "settings", "odd key", "deeper")) == 4
    assert source.line_of(("bots", 0, "settings", True)) == 5
    assert source.line_of(("x", 7)) == 6
    assert source.line_of(("y",)) == 1


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: cannot read the config file: No such file or directory"


def test_config_file_with_bom_and_str_path(tmp_path: Path) -> None:
    path = tmp_path / "bots.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + with_bots(ONE_BOT).encode())
    config = load_config(os.fspath(path), environ=ENV)
    assert config.bots[0].name == "welcome"
    assert config.source.path == str(path)


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bots.yaml"
    path.write_bytes(b"xshathra: \xff\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=ENV)
    assert str(info.value) == f"{path}: the file is not UTF-8 text"


# --- schedules: -------------------------------------------------------------------------------

SCHEDULES = ONE_BOT + "  rooms: [lobby, hall, vip]\n  schedules:\n"
"""Line 10 is rooms:, line 11 schedules:, so the first schedule starts on line 12."""


def test_valid_schedules_load_with_their_triggers_and_rooms() -> None:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    text = with_bots(SCHEDULES + textwrap.indent(textwrap.dedent("""\
        - cron: "0 18 * * mon-fri"
          timezone: Europe/Berlin
          room: hall
          text: Daily tournament in 1 hour
        - {every: 30m, rooms: [lobby, vip], text: Half-hourly}
        - {every: 90, text: Everywhere}
        """), "    "))
    daily, half, everywhere = parse(text).bots[0].schedules
    assert (daily.cron, daily.every, daily.timezone, daily.room, daily.rooms, daily.text) == (
        "0 18 * * mon-fri", None, "Europe/Berlin", "hall", None, "Daily tournament in 1 hour")
    assert (half.every, half.timezone, half.rooms) == (1800.0, "UTC", ["lobby", "vip"])
    assert everywhere.every == 90.0
    cron = daily.trigger()
    assert isinstance(cron, CronTrigger)
    assert str(cron.timezone) == "Europe/Berlin"
    interval = half.trigger()
    assert isinstance(interval, IntervalTrigger)
    assert interval.interval.total_seconds() == 1800
    bot_rooms = ["lobby", "hall", "vip"]
    assert daily.target_rooms(bot_rooms) == ("hall",)
    assert half.target_rooms(bot_rooms) == ("lobby", "vip")
    assert everywhere.target_rooms(bot_rooms) == ("lobby", "hall", "vip")


def test_schedules_default_to_an_empty_list() -> None:
    assert parse(with_bots(ONE_BOT)).bots[0].schedules == []


@pytest.mark.parametrize(("schedule", "line", "field", "message"), [
    pytest.param("- cron: '0 18 * * *'\n  every: 1h\n  text: x\n", 12, "bots[0].schedules[0]",
                 "give exactly one of cron: (a crontab expression) or every: (a duration)",
                 id="both-triggers"),
    pytest.param("- text: x\n", 12, "bots[0].schedules[0]",
                 "give exactly one of cron: (a crontab expression) or every: (a duration)",
                 id="no-trigger"),
    pytest.param("- every: 1h\n  room: lobby\n  rooms: [hall]\n  text: x\n", 12,
                 "bots[0].schedules[0]", "give room: or rooms:, not both", id="room-and-rooms"),
    pytest.param("- {every: 1h, text: fine}\n- cron: '61 * * * *'\n  text: x\n", 13,
                 "bots[0].schedules[1]",
                 "invalid cron expression '61 * * * *' or timezone 'UTC': Error validating "
                 "expression '61': the last value (61) is higher than the maximum value (59)",
                 id="bad-cron"),
    pytest.param("- {cron: '0 18 * *', text: x}\n", 12, "bots[0].schedules[0]",
                 "invalid cron expression '0 18 * *' or timezone 'UTC': Wrong number of "
                 "fields; got 4, expected 5", id="short-cron"),
    pytest.param("- cron: '0 18 * * *'\n  timezone: Mars/Olympus\n  text: x\n", 13,
                 "bots[0].schedules[0].timezone",
                 "unknown timezone 'Mars/Olympus'; write a name like Europe/Berlin or UTC",
                 id="bad-timezone"),
    # An interval's bad timezone escaped as a bare ZoneInfoNotFoundError (not a ConfigError).
    pytest.param("- every: 1h\n  timezone: Mars/Olympus\n  text: x\n", 13,
                 "bots[0].schedules[0].timezone",
                 "unknown timezone 'Mars/Olympus'; write a name like Europe/Berlin or UTC",
                 id="bad-timezone-of-an-interval"),
    # An empty name silently meant the machine's local timezone.
    pytest.param("- cron: '0 18 * * *'\n  timezone: ''\n  text: x\n", 13,
                 "bots[0].schedules[0].timezone",
                 "unknown timezone ''; write a name like Europe/Berlin or UTC",
                 id="empty-timezone"),
    pytest.param("- every: 1h\n  text: x\n  tmezone: UTC\n", 14,
                 "bots[0].schedules[0].tmezone",
                 "unknown key 'tmezone'; did you mean 'timezone'?", id="unknown-key"),
    pytest.param("- every: soon\n  text: x\n", 12, "bots[0].schedules[0].every",
                 "invalid duration 'soon'; write a number of seconds (30) or a number with a "
                 "unit: 500ms, 30s, 15m, 1h, 1h30m", id="bad-duration"),
    pytest.param("- every: 1h\n  room: 'the hall'\n  text: x\n", 13,
                 "bots[0].schedules[0].room",
                 "room id 'the hall' may contain only ASCII letters, digits, '_', '-' and '.' "
                 "(no whitespace, ':' or other punctuation)", id="bad-room"),
    pytest.param("- every: 1h\n  text: ''\n", 13, "bots[0].schedules[0].text",
                 "String should have at least 1 character", id="empty-text"),
])
def test_bad_schedules_are_located(schedule: str, line: int, field: str,
                                   message: str) -> None:
    error = error_of(with_bots(SCHEDULES + textwrap.indent(schedule, "    ")))
    assert str(error) == f"bots.yaml:{line}: {field}: {message}"
    assert (error.path, error.line, error.field) == ("bots.yaml", line, field)


def test_schedules_must_be_a_list() -> None:
    error = error_of(with_bots(ONE_BOT + "  schedules: {every: 1h, text: x}\n"))
    assert str(error) == (
        'bots.yaml:10: bots[0].schedules: expected a list like [{cron: "0 18 * * *", '
        'room: lobby, text: "..."}], got a mapping')
