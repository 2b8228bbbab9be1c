"""Issue 16 #9: a YAML alias bomb ("billion laughs") and absurd nesting are refused quickly, with
a located error, in bounded time and memory (before: 60 s, 2.6 GB, no output)."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from botkit.config import parse_config
from botkit.errors import ConfigError

# The classic document: ten laughs, each level ten aliases of the one before: 10^9 values.
BILLION_LAUGHS = "\n".join([
    'lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
    *(f"lol{level}: &lol{level} [{', '.join([f'*lol{level - 1}'] * 10)}]"
      for level in range(1, 9)),
    "xshathra: *lol8",
]) + "\n"


def test_billion_laughs_is_refused_quickly_in_bounded_memory() -> None:
    assert len(BILLION_LAUGHS) < 1200
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ConfigError) as caught:
            parse_config(BILLION_LAUGHS, source="bots.yaml")
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 5.0
    assert peak < 100 * 1024 * 1024
    message = str(caught.value)
    assert message.startswith("bots.yaml:")
    assert "expands to more than 100000 values through its aliases" in message
    assert "\n" not in message


def test_aliases_within_the_budget_still_work() -> None:
    text = """\
xshathra:
  project_id: proj_1
  realtime_url: ws://localhost:3001/ws
  api_url: http://localhost:3001/api
  server_api_key: k3y-k3y-k3y
bots:
  - &first {name: a, user_id: bot_a, rooms: &rooms [lobby, hall]}
  - <<: *first
    name: b
    user_id: bot_b
    rooms: *rooms
"""
    config = parse_config(text, source="bots.yaml")
    assert [(bot.name, [room.id for room in bot.rooms]) for bot in config.bots] == [
        ("a", ["lobby", "hall"]), ("b", ["lobby", "hall"])]


@pytest.mark.parametrize("depth", [100, 5000])
def test_deep_nesting_is_a_config_error_not_a_recursion_error(depth: int) -> None:
    text = "xshathra: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(ConfigError, match="nested"):
        parse_config(text, source="bots.yaml")
