"""Log output: JsonFormatter writes one JSON object per line, with the context as fields."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from botkit import Bot
from botkit.cli.logs import JsonFormatter, configure_logging
from botkit.context import BotServices, Context
from botkit.envelope import chat_message

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def json_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("botkit.test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def entries(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = stream.getvalue().splitlines()
    return [json.loads(line) for line in lines]


def test_one_object_per_line_with_level_logger_and_message(
        json_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_logger
    logger.info("bot %s serving %d room(s)", "welcome", 2)
    logger.warning("two\nlines and ünïcode")
    logger.debug("details")
    first, second, third = entries(stream)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "info"
    assert first["logger"] == "botkit.test.json"
    assert first["message"] == "bot welcome serving 2 room(s)"
    assert TIME.fullmatch(first["time"])
    assert (second["level"], second["message"]) == ("warning", "two\nlines and ünïcode")
    assert "ünïcode" in stream.getvalue()  # not escaped to \\u sequences
    assert third["level"] == "debug"
    assert len(stream.getvalue().splitlines()) == 3


def test_extra_fields_become_fields_of_their_own(
        json_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_logger

    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    logger.error("handler failed", extra={"bot": "welcome", "room": "lobby",
                                          "envelope_id": "01HZX", "count": 3, "ratio": 0.5,
                                          "ok": False, "thing": Thing()})
    (entry,) = entries(stream)
    assert entry["bot"] == "welcome"
    assert entry["room"] == "lobby"
    assert entry["envelope_id"] == "01HZX"
    assert (entry["count"], entry["ratio"], entry["ok"]) == (3, 0.5, False)
    assert entry["thing"] == "<thing>"
    assert entry["level"] == "error"


def test_exceptions_stay_on_one_line(json_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_logger
    try:
        int("bad value")
    except ValueError:
        logger.exception("handler %s failed", "greet")
    assert len(stream.getvalue().splitlines()) == 1
    (entry,) = entries(stream)
    assert entry["message"] == "handler greet failed"
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: invalid literal for int() with base 10: 'bad value'" in entry[
        "exception"]


def test_a_context_logs_with_bot_room_and_envelope_id(
        json_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_logger
    services = BotServices(name="welcome", user_id="bot_welcome", project_id="proj_x",
                           bot=Bot("welcome"), settings=None, api=None,  # type: ignore[arg-type]
                           channels={}, logger=logger)
    event = chat_message(room_id="lobby", sender_id="user_a", text="hi")
    Context(services, event, "lobby").log.info("greeted %s", "user_a")
    Context(services).log.info("starting")
    first, second = entries(stream)
    assert (first["bot"], first["room"], first["envelope_id"], first["message"]) == (
        "welcome", "lobby", event.id, "greeted user_a")
    assert (second["bot"], second["room"], second["envelope_id"]) == ("welcome", "-", "-")


def test_configure_logging_json_on_the_root_logger(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in ("websockets", "httpx", "httpcore")}
    try:
        configure_logging(fmt="json", level="warning")
        (handler,) = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        assert root.level == logging.WARNING
        assert logging.getLogger("httpx").level == logging.WARNING
        logging.getLogger("botkit.test.root").warning("visible", extra={"bot": "b"})
        logging.getLogger("botkit.test.root").info("hidden")
        configure_logging(fmt="text", level="debug")
        assert not isinstance(root.handlers[0].formatter, JsonFormatter)
        assert logging.getLogger("httpx").level == logging.WARNING  # still quiet at debug
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, level in noisy.items():
            logging.getLogger(name).setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["visible"]
    assert json.loads(lines[0])["bot"] == "b"
