"""Log output for the daemon: readable lines for people, one JSON object per line for machines.

Logged text often comes from room members (an envelope id, a command's arguments, an exception
message quoting them). Neither format lets it forge a record: in text, control characters of the
message are escaped (``\\n``, ``\\x1b``) and every line after a record's first starts with a space,
so a line that starts with a time is always a record of its own; in JSON, line breaks of every
kind and terminal controls are ``\\u`` escapes.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from botkit.runtime.logfields import log_fields

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging", "escape_controls"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 and DEL, C1 (0x9b is a CSI on some terminals, 0x85 a line break for str.splitlines), the
# Unicode line and paragraph separators, and the bidirectional controls that reorder text.
_CONTROLS = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, 0x200E, 0x200F,
             *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = {code: _SHORT.get(chr(code), f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
            for code in _CONTROLS}
_KEEP_NEWLINES = {code: text for code, text in _ESCAPES.items() if code != ord("\n")}
# What json.dumps leaves raw (it escapes only C0): as JSON's own \u escapes.
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in _CONTROLS if code >= 0x7F}


def escape_controls(text: str) -> str:
    """``text`` on one line, its control characters written as escapes (``\\n``, ``\\x1b``)."""
    return text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """``HH:MM:SS LEVEL logger: message``; a traceback follows on lines that start with space."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        details = []
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            details.append(record.exc_text)
        if record.stack_info:
            details.append(self.formatStack(record.stack_info))
        for block in details:
            for line in block.translate(_KEEP_NEWLINES).split("\n"):
                # An exception message may hold a room member's text and its newlines.
                text += "\n" + (line if line[:1] == " " else f"  {line}")
        return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        # What the runtime is working for (bot, room, envelope_id or job_id; see
        # botkit/runtime/logfields.py), then what was passed with extra=, which wins.
        fields = log_fields()
        if fields is not None:
            entry.update(fields)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False).translate(_JSON_ESCAPES)


def configure_logging(*, fmt: str = "text", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # websockets and httpx are chatty at INFO (every request), APScheduler too (every job it
    # adds, "Scheduler started"): the runtime says what matters itself. Warnings still show.
    for noisy in ("websockets", "httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
