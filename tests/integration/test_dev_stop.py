"""``botkit dev`` stops within its grace period (issue 16, item 11).

It took 12.3 s to stop with a 10 s grace: the bots' shutdown is bounded step by step (each
step gets the grace), and the hub's own stop came on top. Now the whole stop, bots and hub
together, fits in ``--grace``: the bots get what the hub does not need, and what is still
running when it runs out is cancelled.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path

import httpx
import websockets

from tests.support.dev import dev_process

KEY = "stop-test-key-" + secrets.token_urlsafe(32)
GRACE = 2.0
SLACK = 1.5
"""Seconds beyond the grace for the signal to arrive and the process to exit."""

YAML = """\
xshathra:
  project_id: proj_stop
  realtime_url: ws://127.0.0.1:1/realtime/connection/websocket
  api_url: http://127.0.0.1:1/api/realtime
  server_api_key: ${TEST_KEY}
  token_ttl: 10m
state: {backend: memory}
bots:
  - name: slow
    plugin: tests.plugins.slow_stop
    user_id: bot_slow
    rooms: [lobby]
"""


async def test_botkit_dev_stops_within_its_grace(tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(YAML)
    env = {n: v for n, v in os.environ.items()
           if n not in ("XSHATHRA_SERVER_API_KEY", "TEST_KEY")} | {"TEST_KEY": KEY}
    async with dev_process(config, env=env, log=tmp_path / "dev.log",
                           args=("--grace", f"{GRACE}s")) as dev:
        async with httpx.AsyncClient(base_url=dev.page_url, timeout=5) as http:
            login = (await http.post("/api/realtime/token", json={"name": "Stopper"})).json()
            sent = await http.post("/api/chat/send", json={"roomId": "lobby", "text": "/hang"},
                                   headers={"Authorization": f"Bearer {login['token']}"})
            assert sent.status_code == 200, sent.text
            # A page that stays open, and a keep-alive connection that stays idle.
            async with websockets.connect(dev.ws_url, open_timeout=5):
                await asyncio.sleep(0.5)  # the bot has the command by now: its handler hangs
                started = time.monotonic()
                code = await dev.stop()
                took = time.monotonic() - started
    assert code == 0, dev.log()
    assert took < GRACE + SLACK, f"botkit dev took {took:.1f} s to stop with a {GRACE} s grace"
