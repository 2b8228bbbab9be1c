"""The chat page's protocol client (``botkit/dev/hub/static/chat.js``) against the real server.

The page's WebSocket logic lives in a DOM-free ``ChatClient``; Node runs it (with the ``ws``
package as its WebSocket) through ``tests/js/chat_page.mjs``, while uvicorn serves the dev
backend (login and send) on loopback, as the hub does for the page. A browser test of the page
itself belongs with the hub that serves it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from botkit.config import DevConfig
from botkit.dev.hub.backend import SEND_PATH, DevSettings, backend_routes
from botkit.dev.localserver import LocalCentrifugo, free_port
from botkit.serverapi.client import ServerApi
from tests.support.node import JS_DIR, NodeScript, ensure_node_modules
from tests.support.tcp_proxy import TcpProxy

CHAT_JS = Path(__file__).resolve().parents[2] / "botkit" / "dev" / "hub" / "static" / "chat.js"
DRIVER = JS_DIR / "chat_page.mjs"
PROJECT = "proj_page"


@pytest.fixture(scope="session")
def js_modules() -> Path:
    return ensure_node_modules()


@asynccontextmanager
async def backend(server: LocalCentrifugo, *, token_ttl: float = 600.0,
                  dev: DevConfig | None = None) -> AsyncIterator[str]:
    """The dev backend on a loopback port, publishing through the server's API."""
    settings = DevSettings(project_id=PROJECT, secret=server.api_key, token_ttl=token_ttl,
                           dev=dev or DevConfig())
    async with ServerApi(server.api_url, server.api_key) as api:
        app = Starlette(routes=backend_routes(settings, api))
        config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                lifespan="off", ws="none")
        web = uvicorn.Server(config)
        task = asyncio.create_task(web.serve())
        try:
            async with asyncio.timeout(10):
                while not web.started:
                    if task.done():
                        task.result()
                    await asyncio.sleep(0.01)
            yield f"http://127.0.0.1:{config.port}"
        finally:
            web.should_exit = True
            async with asyncio.timeout(10):
                await task


@asynccontextmanager
async def page_driver() -> AsyncIterator[NodeScript]:
    async with NodeScript(DRIVER, env={"CHAT_JS": str(CHAT_JS)}) as node:
        await node.wait_for("ready", timeout=15)
        yield node


async def join(node: NodeScript, who: str, name: str, room: str, base_url: str, ws_url: str,
               **options: Any) -> dict[str, Any]:
    mark = len(node.events)
    await node.send({"cmd": "start", "who": who, "name": name, "room": room,
                     "baseUrl": base_url, "wsUrl": ws_url, "minReconnectDelay": 50,
                     "maxReconnectDelay": 500, **options})
    await node.wait_for("subscribed", lambda e: e["who"] == who, after=mark, timeout=10)
    return await node.wait_for("session", lambda e: e["who"] == who, after=mark, timeout=1)


def by(who: str, extra: Callable[[dict[str, Any]], bool] = lambda e: True,
       ) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event.get("who") == who and extra(event)


def texts_of(node: NodeScript, who: str, source: str | None = None) -> list[str]:
    return [e["data"]["text"] for e in node.named("publication")
            if e["who"] == who and (source is None or e["source"] == source)]


async def api_call(server: LocalCentrifugo, method: str, params: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.api_url}/{method}", json=params,
                                   headers={"X-API-Key": server.api_key})
        assert response.status_code == 200, response.text
        assert "error" not in response.json(), response.text


@pytest.mark.server
async def test_page_client_chats_recovers_and_reports_gaps(
        centrifugo: LocalCentrifugo, js_modules: Path) -> None:
    room = f"room_{secrets.token_hex(4)}"
    channel = f"chat:{PROJECT}:{room}"
    ws_url = centrifugo.ws_url
    async with (backend(centrifugo, dev=DevConfig(blocked_words=["spam"])) as base,
                TcpProxy("127.0.0.1", centrifugo.port) as proxy, page_driver() as node,
                httpx.AsyncClient(base_url=base) as http):
        # Earlier messages: the page loads them as history when it joins.
        carol = (await http.post("/api/realtime/token", json={"name": "Carol"})).json()
        for text in ("old 1", "old 2"):
            sent = await http.post(SEND_PATH, json={"roomId": room, "text": text},
                                   headers={"Authorization": f"Bearer {carol['token']}"})
            assert sent.status_code == 200, sent.text

        alice = await join(node, "alice", "Alice", room, base, proxy.rewrite(ws_url))
        await node.wait_for("publication", by("alice", lambda e: e["offset"] == 2), timeout=5)
        assert texts_of(node, "alice", "history") == ["old 1", "old 2"]
        bob = await join(node, "bob", "Bob", room, base, ws_url)
        await join(node, "bob2", "Bob", room, base, ws_url)  # Bob's second tab

        # One entry per user, however many connections.
        def everyone_online(event: dict[str, Any]) -> bool:
            return {(u["name"], u["connections"]) for u in event["online"]} == {
                ("Alice", 1), ("Bob", 2)}
        await node.wait_for("presence", by("alice", everyone_online), timeout=5)

        await node.send({"cmd": "send", "who": "alice", "id": 1, "text": "hi Bob"})
        sent = await node.wait_for("sent", by("alice"), timeout=5)
        got = await node.wait_for("publication", by("bob", lambda e: e["source"] == "live"),
                                  timeout=5)
        assert got["data"] == sent["answer"]["message"]
        assert got["data"]["senderId"] == alice["userId"]
        await node.send({"cmd": "send", "who": "alice", "id": 2, "text": "buy SPAM"})
        refused = await node.wait_for("send_failed", by("alice"), timeout=5)
        assert (refused["status"], refused["code"]) == (422, "blocked_word")

        # A cut while Bob talks on: Alice recovers exactly what she missed.
        mark = len(node.events)
        proxy.refuse(True)
        await proxy.cut()
        await node.wait_for("state", by("alice", lambda e: e["state"] == "reconnecting"),
                            after=mark, timeout=5)
        for index in range(3):
            await node.send({"cmd": "send", "who": "bob", "id": 10 + index,
                             "text": f"missed {index}"})
            await node.wait_for("sent", by("bob", lambda e, i=index: e["id"] == 10 + i),
                                timeout=5)
        proxy.refuse(False)
        back = await node.wait_for("subscribed", by("alice"), after=mark, timeout=10)
        assert (back["wasRecovering"], back["recovered"]) == (True, True)
        await node.wait_for("publication", by("alice", lambda e: e["offset"] == 6),
                            after=mark, timeout=5)
        assert texts_of(node, "alice", "recovered") == ["missed 0", "missed 1", "missed 2"]
        offsets = [e["offset"] for e in node.named("publication") if e["who"] == "alice"]
        assert offsets == [1, 2, 3, 4, 5, 6], node.describe()

        # History gone while Alice is away: she can't recover, and she is told.
        mark = len(node.events)
        proxy.refuse(True)
        await proxy.cut()
        await node.send({"cmd": "send", "who": "bob", "id": 20, "text": "lost"})
        await node.wait_for("sent", by("bob", lambda e: e["id"] == 20), timeout=5)
        await api_call(centrifugo, "history_remove", {"channel": channel})
        proxy.refuse(False)
        gap = await node.wait_for("gap", by("alice"), after=mark, timeout=10)
        assert "no longer" in gap["reason"]
        back = await node.wait_for("subscribed", by("alice"), after=mark, timeout=5)
        assert (back["wasRecovering"], back["recovered"]) == (True, False)
        assert "lost" not in texts_of(node, "alice")

        # A terminal close (the server API's force disconnect, 3503) is shown, not retried.
        mark = len(node.events)
        await api_call(centrifugo, "disconnect", {"user": bob["userId"]})
        closed = await node.wait_for("state", by("bob", lambda e: e["state"] == "closed"),
                                     after=mark, timeout=5)
        assert (closed["code"], closed["terminal"]) == (3503, True)
        await asyncio.sleep(0.6)  # longer than the reconnect delays: nothing may follow
        assert [e for e in node.events[mark:] if e.get("who") == "bob"
                and e["event"] == "state" and e["state"] != "closed"] == []
        assert node.named("fatal") == []


@pytest.mark.server
async def test_page_client_answers_pings_refreshes_and_notices_a_silent_server(
        make_centrifugo: Callable[..., LocalCentrifugo], js_modules: Path) -> None:
    # Pings every second: a page that didn't answer would be closed (3012) within 1.5 s. The
    # tokens live 3 s: a page that didn't refresh would be closed (3005) a second after that.
    server = make_centrifugo(ping_interval="1s", pong_timeout="500ms")
    room = f"room_{secrets.token_hex(4)}"
    async with (backend(server, token_ttl=3) as base,
                TcpProxy("127.0.0.1", server.port) as proxy, page_driver() as node):
        await join(node, "alice", "Alice", room, base, proxy.rewrite(server.ws_url),
                   pingGrace=700)
        await node.wait_for("refreshed", by("alice"), timeout=6)
        await asyncio.sleep(2.0)  # past the first token's expiry and its close delay
        states = [e["state"] for e in node.named("state") if e["who"] == "alice"]
        assert states == ["connecting", "connected"], node.describe()

        # A silent server (half-open link): no ping within ping + grace means dead.
        mark = len(node.events)
        proxy.blackhole(True)
        lost = await node.wait_for("state", by("alice", lambda e: e["state"] == "reconnecting"),
                                   after=mark, timeout=5)
        assert lost["reason"] == "no ping"
        proxy.blackhole(False)
        await proxy.cut()  # the abandoned link, if the proxy still holds it
        back = await node.wait_for("subscribed", by("alice"), after=mark, timeout=15)
        assert back["wasRecovering"] is True


async def test_page_protocol_helpers(js_modules: Path) -> None:
    async with page_driver() as node:
        async def call(fn: str, *args: Any) -> Any:
            call_id = len(node.events)
            await node.send({"cmd": "call", "id": call_id, "fn": fn, "args": list(args)})
            return (await node.wait_for("result", lambda e: e["id"] == call_id,
                                        timeout=5))["value"]

        assert await call("encodeCommands", [{"id": 1, "connect": {}}, {}]) == (
            '{"id":1,"connect":{}}\n{}')
        assert await call("decodeFrame", '{"id":1,"connect":{}}\n{}\n') == [
            {"id": 1, "connect": {}}, {}]
        assert await call("decodeFrame", "  ") == []
        for code, terminal in [(1006, False), (3000, False), (3012, False), (3500, True),
                               (3999, True), (4001, False), (4500, True), (4999, True),
                               (5000, False)]:
            assert await call("isTerminalClose", code) is terminal, code
        for error, retry in [({"code": 109}, True), ({"code": 100, "temporary": True}, True),
                             ({"code": 103}, False), ({"code": 3}, True)]:
            assert await call("isRetryableError", error) is retry, error
        # Full jitter: min + U(0, min(max, min * 2^n)), capped at max.
        assert await call("backoffDelay", 0, 300, 20000) >= 300
        assert await call("backoffDelay", 3, 100, 20000) <= 100 + 800
        assert await call("backoffDelay", 40, 100, 20000) <= 20000
        assert await call("refreshDelayMs", 600) == 570_000
        assert await call("refreshDelayMs", 3) == pytest.approx(2400)
        assert await call("subscribeRequest", "chat:p:r", "t", None) == {
            "channel": "chat:p:r", "token": "t", "recoverable": True, "positioned": True}
        assert await call("subscribeRequest", "chat:p:r", "t", {"epoch": "e", "offset": 7}) == {
            "channel": "chat:p:r", "token": "t", "recoverable": True, "positioned": True,
            "recover": True, "epoch": "e", "offset": 7}
        # Stream order and de-duplication by epoch + offset; a new epoch sorts after the old.
        assert await call("MessageLog", ["a", 2], ["a", 1], ["a", 2], ["b", 1], ["a", 3],
                          ["b", 1]) == [0, 0, -1, 2, 2, -1]
        online = await call("PresenceBook",
                            ["join", {"client": "c1", "user": "u1", "conn_info": {"name": "Ann"}}],
                            ["join", {"client": "c2", "user": "u1", "conn_info": {"name": "Ann"}}],
                            ["join", {"client": "c3", "user": "bot_x"}],
                            ["leave", {"client": "c2", "user": "u1"}])
        assert online == [{"user": "u1", "name": "Ann", "connections": 1},
                          {"user": "bot_x", "name": "bot_x", "connections": 1}]
