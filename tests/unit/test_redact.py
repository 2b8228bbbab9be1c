"""botkit.redact: URLs shown in logs and errors never carry credentials."""

from __future__ import annotations

import pytest

from botkit.redact import safe_url


@pytest.mark.parametrize(("url", "shown"), [
    ("ws://localhost:3001/realtime/connection/websocket",
     "ws://localhost:3001/realtime/connection/websocket"),
    ("wss://bot:hunter2@example.test/realtime", "wss://***@example.test/realtime"),
    ("http://user@example.test/api", "http://***@example.test/api"),
    ("http://h/api?api_key=hunter2&x=1", "http://h/api?api_key=***&x=1"),
    ("http://h/api?TOKEN=hunter2", "http://h/api?TOKEN=***"),
    ("http://h/api?x=1", "http://h/api?x=1"),
])
def test_safe_url_hides_credentials(url: str, shown: str) -> None:
    assert safe_url(url) == shown
    assert "hunter2" not in safe_url(url)


def test_unparseable_url_shows_nothing() -> None:
    assert safe_url("http://[::1") == "<unparseable URL>"
