"""URLs the realtime client shows (log lines, errors, its repr) never carry credentials."""

from __future__ import annotations

import logging

import pytest

from botkit.dev.localserver import free_port
from botkit.errors import RealtimeTimeoutError
from botkit.realtime import ClientOptions, RealtimeClient

SECRET = "hunter2-realtime"


async def test_a_url_with_credentials_is_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "botkit")
    url = f"ws://bot:{SECRET}@127.0.0.1:{free_port()}/connection/websocket?token={SECRET}"
    client = RealtimeClient(url, lambda: "jwt",
                            options=ClientOptions(connect_timeout=0.2, min_reconnect_delay=0.01))
    try:
        with pytest.raises(RealtimeTimeoutError) as refused:
            await client.start()  # nothing listens there: it retries until the wait ends
    finally:
        await client.aclose()
    assert "127.0.0.1" in str(refused.value)
    assert "cannot connect to ws://***@127.0.0.1" in caplog.text
    for shown in (str(refused.value), caplog.text, repr(client)):
        assert SECRET not in shown
