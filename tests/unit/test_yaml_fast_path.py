"""bots.yaml is parsed by libyaml when PyYAML has it (less memory held after a big file is
read: bench/ S4); what it yields must be what the pure-Python parser yields, lines included,
and whatever it refuses is reported by the Python parser, word for word as before."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from botkit.config import _source
from botkit.config._source import read_yaml
from botkit.errors import ConfigError

DOCUMENT = """\
xshathra:
  project_id: proj_x   # a comment
  realtime_url: "ws://127.0.0.1:8000/connection/websocket"
  token_ttl: 30m
defaults: &defaults {lane_queue_size: 100, room_rate: off}
bots:
  - name: greeter
    user_id: bot_greeter
    rooms: [lobby, 'side room', "third"]
    limits: *defaults
    settings:
      text: |
        hello
        there
      numbers: [1, 2.5, -3, 0x10, null, true, ~]
      when: 2026-12-03
  - name: second
    user_id: bot_second
    rooms:
      - lobby
"""


def _python_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)


def test_libyaml_and_python_read_the_same_values_and_lines(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("yaml._yaml")
    fast = yaml.CSafeLoader
    used: list[Any] = []
    real = _source._read_yaml

    def spy(text: str, path: str, loader_type: Any) -> Any:
        used.append(loader_type)
        return real(text, path, loader_type)

    monkeypatch.setattr(_source, "_read_yaml", spy)
    fast_value, fast_map = read_yaml(DOCUMENT, "bots.yaml")
    assert used == [fast]
    _python_only(monkeypatch)
    value, source_map = read_yaml(DOCUMENT, "bots.yaml")
    assert used == [fast, yaml.SafeLoader]
    assert fast_value == value
    assert fast_map.lines == source_map.lines
    assert fast_map.line_of(("bots", 0, "settings", "numbers", 3)) == 15


@pytest.mark.parametrize("text", [
    "bots: [a, b\nxshathra: {}\n",  # an unclosed flow sequence
    "bots:\n  - name: a\n    name: b\n",  # a duplicate key
    "a: \x07\n",  # a character YAML does not allow
    "[" * 5000 + "]" * 5000,  # deeper than libyaml's limit
])
def test_what_libyaml_refuses_is_reported_as_the_python_parser_reports_it(
        text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as fast:
        read_yaml(text, "bots.yaml")
    _python_only(monkeypatch)
    with pytest.raises(ConfigError) as python:
        read_yaml(text, "bots.yaml")
    assert str(fast.value) == str(python.value)
    assert (fast.value.line, fast.value.field) == (python.value.line, python.value.field)
