"""Issue 16 #11: text a room member controls (an envelope id, a command's text, an exception
message quoting them) can't forge a log record or drive the operator's terminal."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator

import pytest

from botkit.cli.logs import configure_logging, escape_controls

RECORD_START = re.compile(r"^\d\d:\d\d:\d\d (?:DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
FORGED_ID = "01HZX\n12:00:00 INFO    botkit.runtime: bot admin: granted operator to user_evil"
ANSI = "\x1b[2J\x1b[1;31mALERT\x1b[0m"


def refuse(envelope_id: str) -> None:
    raise ValueError(f"bad envelope {envelope_id}")


@pytest.fixture
def logged(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[str], list[str]]]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level

    def run(fmt: str) -> list[str]:
        configure_logging(fmt=fmt, level="info")
        log = logging.getLogger("botkit.runtime.core")
        log.warning("bot %s: dropped envelope %s in %s", "welcome", FORGED_ID, "lobby")
        log.info("text %s and separators %s", ANSI, "a\u2028b\u2029c\x85d\u202ee")
        try:
            refuse(FORGED_ID)
        except ValueError:
            log.exception("bot %s: handler %s failed on envelope %s", "welcome", "greet",
                          FORGED_ID)
        root.handlers[:] = saved_handlers
        return capsys.readouterr().err.splitlines()

    try:
        yield run
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_text_logs_escape_control_characters(logged: Callable[[str], list[str]]) -> None:
    lines = logged("text")
    records = [line for line in lines if RECORD_START.match(line)]
    assert len(records) == 3, lines
    assert records[0].endswith(
        "bot welcome: dropped envelope 01HZX\\n12:00:00 INFO    botkit.runtime: bot admin: "
        "granted operator to user_evil in lobby")
    assert "\\x1b[2J\\x1b[1;31mALERT\\x1b[0m" in records[1]
    assert "a\\u2028b\\u2029c\\x85d\\u202ee" in records[1]
    assert not any(char in "".join(lines) for char in "\x1b\u2028\u2029\x85\u202e")
    # The traceback follows its record, every line of it indented, the forged one included.
    traceback = lines[lines.index(records[2]) + 1:]
    assert traceback
    assert all(line.startswith(" ") for line in traceback)
    assert "  12:00:00 INFO    botkit.runtime: bot admin: granted operator to user_evil" in (
        traceback)


def test_json_logs_keep_one_record_per_line(logged: Callable[[str], list[str]]) -> None:
    text = "\n".join(logged("json"))
    lines = text.splitlines()  # splits at \u2028 and \x85 too, as many log tools do
    assert len(lines) == 3
    entries = [json.loads(line) for line in lines]
    assert FORGED_ID in entries[0]["message"]
    assert entries[1]["message"] == f"text {ANSI} and separators a\u2028b\u2029c\x85d\u202ee"
    assert not any(char in text for char in "\x1b\u2028\u2029\x85\u202e")


def test_escape_controls_leaves_ordinary_text_alone() -> None:
    assert escape_controls("héllo wörld 👋 \\n") == "héllo wörld 👋 \\n"
    assert escape_controls("a\tb\rc\x00") == "a\\tb\\rc\\x00"
