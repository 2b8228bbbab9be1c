"""Big messages are delivered and the connection moves on (issue 16, item 3).

One 1 MiB publication locked the bots out of the hub for minutes: the frame alone passed the
hub's 1 MiB client queue, so the hub closed the connection with 3008 "slow", the bot reconnected,
recovered the same message, was closed again, and so on; 25 posts of 60 KB did the same to every
new chat-page visitor loading the history. Centrifugo delivers such messages and goes on. The
hub now counts its queue bound only against what piles up behind a write in progress, so one
accepted message always fits (see ``botkit.dev.hub.outbox``).

These run against the hub only. Centrifugo 6.9.1 delivers a frame larger than its client queue
only when its writer takes the frame off the queue in time: run against it, the same tests pass
or end in 3008 depending on timing (measured while writing them), on the big frame or on the one
after it. What the hub promises is that it delivers every message it accepted.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from botkit.dev.hub import LocalHub
from botkit.serverapi.client import ServerApi
from botkit.tokens import TokenMinter, chat_channel
from tests.conftest import Server, new_server
from tests.support.dev import dev_process, dev_yaml

pytestmark = pytest.mark.server

BIG = 1_500_000
"""Characters of one publication: more than the client queue's 1 MiB."""


class _Raw:
    """A client on the bare protocol, reading every frame it is sent."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.next_id = 1

    async def call(self, **command: Any) -> dict[str, Any]:
        command_id = self.next_id
        self.next_id += 1
        await self.ws.send(json.dumps({"id": command_id, **command}))
        return await self.until(lambda frame: frame.get("id") == command_id)

    async def until(self, predicate: Callable[[dict[str, Any]], bool],
                    timeout: float = 15.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.ws.recv()
                for line in str(message).splitlines():
                    frame = json.loads(line)
                    if frame == {}:
                        await self.ws.send("{}")
                    elif predicate(frame):
                        return frame


@asynccontextmanager
async def _client(server: Server, user: str, channel: str,
                  **subscribe: Any) -> AsyncIterator[_Raw]:
    minter = TokenMinter(server.api_key, user)
    async with websockets.connect(server.ws_url, max_size=None, open_timeout=10) as ws:
        raw = _Raw(ws)
        assert "error" not in await raw.call(connect={"token": minter.connection()})
        reply = await raw.call(subscribe={"channel": channel,
                                          "token": minter.subscription(channel), **subscribe})
        assert "error" not in reply, reply
        raw.subscribed = reply["subscribe"]  # type: ignore[attr-defined]
        yield raw


async def _publish(api: ServerApi, channel: str, text: str) -> Any:
    return await api.publish(channel, {"text": text})


def _pub_text(frame: dict[str, Any]) -> str:
    return str(frame.get("push", {}).get("pub", {}).get("data", {}).get("text", ""))


async def _goes_on(api: ServerApi, raw: _Raw, channel: str) -> None:
    """The next message reaches the client on the same connection."""
    await _publish(api, channel, "after")
    await raw.until(lambda f: _pub_text(f) == "after")


@pytest.fixture(scope="module")
def hub() -> Iterator[LocalHub]:
    server = new_server("hub")
    assert isinstance(server, LocalHub)
    server.start()
    try:
        yield server
    finally:
        server.close()


async def test_a_big_publication_is_delivered_and_the_connection_goes_on(hub: LocalHub) -> None:
    channel = chat_channel("proj_big", f"r{secrets.token_hex(4)}")
    async with ServerApi(hub.api_url, hub.api_key) as api:
        async with _client(hub, "user_reader", channel) as reader:
            await _publish(api, channel, "x" * BIG)
            got = await reader.until(lambda f: len(_pub_text(f)) == BIG)
            assert got["push"]["channel"] == channel
            await _goes_on(api, reader, channel)


async def test_recovering_a_big_publication_does_not_loop(hub: LocalHub) -> None:
    channel = chat_channel("proj_big", f"r{secrets.token_hex(4)}")
    async with ServerApi(hub.api_url, hub.api_key) as api:
        first = await _publish(api, channel, "before")
        await _publish(api, channel, "y" * BIG)
        # A client coming back from offset 1 recovers the big one in its subscribe reply.
        async with _client(hub, "user_back", channel, recover=True, epoch=first.epoch,
                           offset=first.offset) as back:
            subscribed = back.subscribed  # type: ignore[attr-defined]
            assert subscribed.get("recovered") is True
            assert [len(p["data"]["text"]) for p in subscribed["publications"]] == [BIG]
            await _goes_on(api, back, channel)


async def test_a_new_visitor_loads_a_big_history_and_stays(hub: LocalHub) -> None:
    channel = chat_channel("proj_big", f"r{secrets.token_hex(4)}")
    async with ServerApi(hub.api_url, hub.api_key) as api:
        for index in range(25):
            await _publish(api, channel, f"{index:02d}" + "z" * 60_000)
        async with _client(hub, "user_visitor", channel, recoverable=True,
                           positioned=True) as visitor:
            history = await visitor.call(history={"channel": channel, "limit": 50})
            assert len(history["history"]["publications"]) == 25
            await _goes_on(api, visitor, channel)


async def test_botkit_dev_bots_answer_after_a_1_mib_message(tmp_path: Path) -> None:
    key = "big-test-key-" + secrets.token_urlsafe(32)
    config = tmp_path / "bots.yaml"
    config.write_text(dev_yaml(project_id="proj_bigdev"))
    env = {**{n: v for n, v in os.environ.items()
              if n not in ("XSHATHRA_SERVER_API_KEY", "TEST_KEY")}, "TEST_KEY": key}
    async with dev_process(config, env=env, log=tmp_path / "dev.log") as dev:
        channel = chat_channel("proj_bigdev", "lobby")
        async with ServerApi(dev.api_url, key) as api, httpx.AsyncClient(
                base_url=dev.page_url, timeout=5) as http:
            session = (await http.post("/api/realtime/token", json={"name": "Big"})).json()
            await api.publish(channel, {"type": "chat.message", "text": "w" * (1 << 20)})
            sent = await http.post("/api/chat/send", json={"roomId": "lobby", "text": "/ping"},
                                   headers={"Authorization": f"Bearer {session['token']}"})
            assert sent.status_code == 200, sent.text
            cause = sent.json()["id"]
            async with asyncio.timeout(15):
                while True:
                    history = await api.history(channel, limit=-1)
                    if any(isinstance(p.data, dict) and p.data.get("replyTo") == cause
                           for p in history.publications):
                        break
                    await asyncio.sleep(0.1)
        assert await dev.stop() == 0
        assert "3008" not in dev.log()
