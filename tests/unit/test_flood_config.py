"""bots.yaml's flood control and outbox settings (``limits: {room_rate: 5/s, room_burst: 10}``):
the forms accepted, the defaults, located errors, and the JSON schema editors check against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from botkit.config import parse_config
from botkit.config._rate import format_rate, parse_rate
from botkit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

HEADER = """\
xshathra:
  project_id: proj_01HZZZZZZZZZZZZZZZZZZZZZZ
  realtime_url: ws://localhost:3001/realtime/connection/websocket
  api_url: http://localhost:3001/api/realtime
  server_api_key: k
bots:
  - name: welcome
    plugin: bots.welcome
    user_id: bot_welcome
"""


def _limits(line: str) -> Any:
    config = parse_config(HEADER + f"    limits: {line}\n", source="bots.yaml", environ={})
    return config.bots[0].limits


def _error(line: str) -> str:
    with pytest.raises(ConfigError) as info:
        _limits(line)
    return str(info.value)


def test_the_issue_s_syntax_works() -> None:
    limits = _limits("{room_rate: 5/s, room_burst: 10}")
    assert (limits.room_rate, limits.room_burst) == (5.0, 10)


def test_the_defaults_are_generous() -> None:
    limits = _limits("{}")
    assert (limits.room_rate, limits.room_burst, limits.outbox_size, limits.reply_deadline) == (
        100.0, 200, 1000, 30.0)


@pytest.mark.parametrize(("text", "rate"), [
    ("off", None), ("OFF", None), ("false", None), ("'off'", None),
    ("5/s", 5.0), ("30/m", 0.5), ("600/h", 600 / 3600), ("2.5/s", 2.5), ("7", 7.0),
    ("0.5", 0.5), ("'12'", 12.0), ("' 5 / s '", 5.0),
])
def test_a_rate_is_a_count_per_unit_a_number_or_off(text: str, rate: float | None) -> None:
    assert _limits(f"{{room_rate: {text}}}").room_rate == rate


@pytest.mark.parametrize("text", ["0", "0/s", "-1", "fast", "5/d", "true", "[5]", "1000000/s"])
def test_a_bad_rate_is_refused_where_it_is_written(text: str) -> None:
    message = _error(f"{{room_rate: {text}}}")
    assert message.startswith("bots.yaml:10: bots[0].limits.room_rate:"), message
    assert "5/s" in message  # the forms that would do


@pytest.mark.parametrize(("line", "field"), [
    ("{room_burst: 0}", "room_burst"), ("{room_burst: '10'}", "room_burst"),
    ("{outbox_size: 0}", "outbox_size"), ("{reply_deadline: 10ms}", "reply_deadline"),
    ("{reply_deadline: 2h}", "reply_deadline"),
])
def test_bad_bounds_are_refused(line: str, field: str) -> None:
    assert f"bots[0].limits.{field}:" in _error(line)


def test_a_rate_reads_back_as_written() -> None:
    assert [format_rate(parse_rate(text)) for text in ["5/s", "30/m", "6/h", "off"]] == [
        "5/s", "30/m", "6/h", "off"]


@pytest.mark.parametrize(("value", "valid"), [
    ("5/s", True), ("30/m", True), (5, True), ("off", True), (False, True), ("${RATE}", True),
    ("fast", False), (0, False), (True, False), ("5/d", False),
])
def test_the_schema_knows_rates(value: object, valid: bool) -> None:
    schema = json.loads((ROOT / "docs" / "bots.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    document = {"xshathra": {"project_id": "p", "realtime_url": "ws://x/", "api_url": "http://x/",
                             "server_api_key": "k"},
                "bots": [{"name": "a", "user_id": "u",
                          "limits": {"room_rate": value, "room_burst": 10}}]}
    assert (list(validator.iter_errors(document)) == []) is valid
