"""The ``dev:`` section of bots.yaml (the local hub of ``botkit dev``). Pure tests: no server.

``HEADER`` plus one bot is lines 1-9, so ``dev:`` is always written on line 10.
"""

from __future__ import annotations

import textwrap

import pytest
from pydantic import ValidationError

import botkit.config
from botkit.config import BotsConfig, DevConfig, RateLimitConfig, parse_config
from botkit.errors import ConfigError

ENV = {"XSHATHRA_SERVER_API_KEY": "s3cr3t-Value-123"}

HEADER = """\
xshathra:
  project_id: proj_1
  realtime_url: ws://localhost:3001/realtime/connection/websocket
  api_url: http://localhost:3001/api/realtime
  server_api_key: ${XSHATHRA_SERVER_API_KEY}
bots:
- name: welcome
  plugin: bots.welcome
  user_id: bot_welcome
"""


def parse(dev: str | None) -> BotsConfig:
    text = HEADER if dev is None else HEADER + textwrap.dedent(dev)
    return parse_config(text, source="bots.yaml", environ=ENV)


def error_of(dev: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(dev)
    return info.value


def test_defaults_when_the_section_is_absent() -> None:
    dev = parse(None).dev
    assert dev == DevConfig()
    assert dev.port == 3001
    assert dev.rate_limit == RateLimitConfig(messages=5, per=10.0)
    assert dev.blocked_words == []
    assert dev.max_text_length == 1000


def test_empty_mapping_means_defaults() -> None:
    assert parse("dev: {}\n").dev == DevConfig()


def test_full_section() -> None:
    dev = parse("""\
        dev:
          port: 4010
          rate_limit: {messages: 3, per: 1m30s}
          blocked_words: [spam, "  buy now  ", Scam]
          max_text_length: 280
        """).dev
    assert dev.port == 4010
    assert dev.rate_limit.messages == 3
    assert dev.rate_limit.per == 90.0
    # Trimmed, but the letter case is kept as written (matching ignores it anyway).
    assert dev.blocked_words == ["spam", "buy now", "Scam"]
    assert dev.max_text_length == 280


@pytest.mark.parametrize(("per", "seconds"), [("500ms", 0.5), ("10", 10.0), ("2.5", 2.5),
                                              ("1h", 3600.0)])
def test_rate_limit_window_accepts_durations(per: str, seconds: float) -> None:
    assert parse(f"dev: {{rate_limit: {{per: {per}}}}}\n").dev.rate_limit.per == seconds


def test_partial_rate_limit_keeps_the_other_default() -> None:
    assert parse("dev: {rate_limit: {messages: 20}}\n").dev.rate_limit == RateLimitConfig(
        messages=20, per=10.0)


@pytest.mark.parametrize(("dev", "message"), [
    ("dev: {port: 0}", "dev.port: must be at least 1"),
    ("dev: {port: 70000}", "dev.port: must be at most 65535"),
    ("dev: {port: '3001'}", "dev.port: expected a TCP port number, e.g. 3001, got a string"),
    ("dev: {prot: 3001}", "dev.prot: unknown key 'prot'; did you mean 'port'?"),
    ("dev: {rate_limit: {messages: 0}}", "dev.rate_limit.messages: must be at least 1"),
    ("dev: {rate_limit: {messages: 2.5}}",
     "dev.rate_limit.messages: expected a whole number of messages, e.g. 5, got a number"),
    ("dev: {rate_limit: {per: soon}}",
     "dev.rate_limit.per: invalid duration 'soon'; write a number of seconds (30) or a number "
     "with a unit: 500ms, 30s, 15m, 1h, 1h30m"),
    ("dev: {rate_limit: {per: 0s}}", "dev.rate_limit.per: must be greater than 0"),
    ("dev: {rate_limit: {window: 10s}}",
     "dev.rate_limit.window: unknown key 'window'; expected one of: messages, per"),
    ("dev: {rate_limit: 5}",
     "dev.rate_limit: expected a mapping like {messages: 5, per: 10s}, got a number"),
    ("dev: {blocked_words: spam}",
     "dev.blocked_words: expected a list of words or phrases to refuse, e.g. [spam, scam], "
     "got a string"),
    ("dev: {blocked_words: [spam, '  ']}",
     "dev.blocked_words[1]: expected a word or phrase, got an empty string"),
    ("dev: {blocked_words: [spam, 42]}",
     "dev.blocked_words[1]: expected a string, got a number; YAML reads unquoted digits as a "
     "number, so put the value in quotes"),
    ("dev: {blocked_words: [Spam, scam, SPAM]}",
     "dev.blocked_words[2]: 'SPAM' is already listed as blocked_words[0]; matching ignores "
     "letter case, so remove one"),
    ("dev: {max_text_length: 0}", "dev.max_text_length: must be at least 1"),
    # Bots drop longer texts by default: the chat must not accept what they would never see.
    ("dev: {max_text_length: 5000}", "dev.max_text_length: must be at most 4000"),
    ("dev: [port]", "dev: expected a mapping like {port: 3001, rate_limit: {messages: 5, "
                    "per: 10s}}, got a list"),
])
def test_bad_dev_section_is_located(dev: str, message: str) -> None:
    error = error_of(dev + "\n")
    assert str(error) == f"bots.yaml:10: {message}"


def test_error_points_at_the_line_of_the_bad_key() -> None:
    error = error_of("""\
        dev:
          port: 3001
          rate_limit:
            messages: 5
            per: forever
        """)
    assert (error.line, error.field) == (14, "dev.rate_limit.per")


def test_long_blocked_word_is_refused() -> None:
    error = error_of(f"dev: {{blocked_words: [ok, {'x' * 101}]}}\n")
    assert str(error) == ("bots.yaml:10: dev.blocked_words[1]: is 101 characters long; the "
                          "limit is 100")


def test_dev_config_in_code_is_validated_and_frozen() -> None:
    dev = DevConfig(port=4000, rate_limit={"messages": 2, "per": "2s"})  # type: ignore[arg-type]
    assert dev.rate_limit.per == 2.0
    with pytest.raises(ValidationError):
        DevConfig(blocked_words=["a\x00b"])
    with pytest.raises(ValidationError):
        dev.port = 1  # type: ignore[misc]


def test_exported() -> None:
    assert {"DevConfig", "RateLimitConfig"} <= set(botkit.config.__all__)
    assert botkit.config.DevConfig is DevConfig
