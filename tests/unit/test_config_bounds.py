"""Issue 16 #8: every duration of bots.yaml has a floor and a ceiling, and schedules only post
into the bot's own rooms; each mistake is a located error naming the accepted range."""

from __future__ import annotations

import pytest

from botkit.config import parse_config
from botkit.errors import ConfigError

HEADER = """\
xshathra:
  project_id: proj_1
  realtime_url: ws://localhost:3001/realtime/connection/websocket
  api_url: http://localhost:3001/api/realtime
  server_api_key: k3y-k3y-k3y-k3y
{xshathra}bots:
  - name: announcer
    user_id: bot_announcer
    rooms: [lobby, hall]
{bot}"""


def config_error(*, xshathra: str = "", bot: str = "") -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(HEADER.format(xshathra=xshathra, bot=bot), source="bots.yaml")
    return str(caught.value)


@pytest.mark.parametrize(("xshathra", "bot", "expected"), [
    ("", "    schedules:\n      - {every: 1ms, text: spam}\n",
     "bots.yaml:11: bots[0].schedules[0].every: must be between 1s and 8760h"),
    ("", "    schedules:\n      - {every: 99999999h, text: spam}\n",
     "bots.yaml:11: bots[0].schedules[0].every: must be between 1s and 8760h"),
    ("  token_ttl: 999999999h\n", "",
     "bots.yaml:6: xshathra.token_ttl: must be between 1m and 24h"),
    ("  token_ttl: 10s\n", "",
     "bots.yaml:6: xshathra.token_ttl: must be between 1m and 24h"),
    ("", "    limits: {handler_timeout: 99999999999h}\n",
     "bots.yaml:10: bots[0].limits.handler_timeout: must be between 10ms and 1h"),
    ("", "    limits: {handler_timeout: 1ms}\n",
     "bots.yaml:10: bots[0].limits.handler_timeout: must be between 10ms and 1h"),
    ("", "dev: {rate_limit: {per: 1ms}}\n",
     "bots.yaml:10: dev.rate_limit.per: must be between 100ms and 24h"),
])
def test_durations_out_of_bounds_are_located_errors(xshathra: str, bot: str,
                                                    expected: str) -> None:
    message = config_error(xshathra=xshathra, bot=bot)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_the_bounds_themselves_are_accepted() -> None:
    text = HEADER.format(xshathra="  token_ttl: 24h\n", bot=(
        "    limits: {handler_timeout: 1h}\n"
        "    schedules:\n      - {every: 1s, room: lobby, text: tick}\n"))
    config = parse_config(text, source="bots.yaml")
    bot = config.bots[0]
    assert (config.xshathra.token_ttl, bot.limits.handler_timeout,
            bot.schedules[0].every) == (86400.0, 3600.0, 1.0)


@pytest.mark.parametrize(("schedule", "expected"), [
    ("{every: 1h, room: elsewhere, text: hi}",
     "bots.yaml:11: bots[0].schedules[0].room: room 'elsewhere' is not one of this bot's rooms "
     "(lobby, hall)"),
    ("{every: 1h, rooms: [hall, vip], text: hi}",
     "bots.yaml:11: bots[0].schedules[0].rooms[1]: room 'vip' is not one of this bot's rooms "
     "(lobby, hall)"),
])
def test_schedules_post_only_into_the_bots_rooms(schedule: str, expected: str) -> None:
    message = config_error(bot=f"    schedules:\n      - {schedule}\n")
    assert message.startswith(expected), message


def test_a_schedule_of_a_bot_without_rooms_is_refused() -> None:
    text = HEADER.format(xshathra="", bot="    schedules:\n      - {every: 1h, text: hi}\n")
    text = text.replace("    rooms: [lobby, hall]\n", "")
    with pytest.raises(ConfigError, match=r"^bots.yaml:10: bots\[0\].schedules\[0\]: the bot "
                                          "has no rooms"):
        parse_config(text, source="bots.yaml")
