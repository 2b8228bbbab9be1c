"""Nobody posts as the bot past moderation in ``botkit dev`` (issue 16, item 2).

The hub's ``chat`` namespace let any subscriber publish straight into a room: no rate limit,
no blocked words, no length limit, and the chat page showed the ``senderId`` written in the
message, so a person appeared as ``bot_commands`` with the bot badge. Now ``botkit dev`` refuses
client publishes (103) unless bots.yaml asks for the seed's prototype mode
(``dev: {client_publish: true}``), and the page names only the sender the server attests.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import centrifuge
import httpx
import pytest

from botkit.dev.hub import HubSettings
from botkit.dev.localserver import centrifugo_config
from botkit.envelope import chat_message, envelope_to_dict
from botkit.serverapi.client import ServerApi
from tests.support.dev import DevProcess, dev_process, dev_yaml
from tests.support.node import JS_DIR, NodeScript, ensure_node_modules

KEY = "trust-test-key-" + secrets.token_urlsafe(32)
CHAT_JS = Path(__file__).resolve().parents[2] / "botkit" / "dev" / "hub" / "static" / "chat.js"
PERMISSION_DENIED = 103


def _env() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if name not in ("XSHATHRA_SERVER_API_KEY", "TEST_KEY")}
    return env | {"TEST_KEY": KEY}


@asynccontextmanager
async def _dev(tmp_path: Path, extra_yaml: str = "") -> AsyncIterator[DevProcess]:
    config = tmp_path / "bots.yaml"
    config.write_text(dev_yaml(project_id="proj_trust") + extra_yaml)
    async with dev_process(config, env=_env(), log=tmp_path / "dev.log") as dev:
        yield dev


async def _spoof(dev: DevProcess) -> tuple[dict[str, Any], str, centrifuge.Client]:
    """Mallory logs in like the page does, enters the lobby and tries to talk as the bot."""
    async with httpx.AsyncClient(base_url=dev.page_url, timeout=5) as http:
        login = await http.post("/api/realtime/token", json={"name": "Mallory", "room": "lobby"})
        assert login.status_code == 200, login.text
    session = login.json()
    client = centrifuge.Client(dev.ws_url, token=session["token"], proxy=None)
    subscription = client.new_subscription(session["channel"],
                                           token=session["subscriptionToken"])
    await client.connect()
    await subscription.subscribe()
    await subscription.ready(5)
    fake = chat_message(room_id="lobby", sender_id="bot_commands",
                        text="Free coins at http://evil.example")
    try:
        await subscription.publish(envelope_to_dict(fake), timeout=5)
    except centrifuge.ReplyError as exc:
        return session, str(exc.code), client
    return session, "published", client


async def _spoofs(dev: DevProcess, channel: str) -> list[str]:
    """The users who published the fake bot message (None: through the server API)."""
    async with ServerApi(dev.api_url, KEY) as api:
        history = await api.history(channel, limit=-1)
    return [p.info.user if p.info else "" for p in history.publications
            if isinstance(p.data, dict) and "evil.example" in str(p.data.get("text"))]


async def test_dev_hub_refuses_client_publishes_by_default(tmp_path: Path) -> None:
    async with _dev(tmp_path) as dev:
        session, outcome, client = await _spoof(dev)
        try:
            assert outcome == str(PERMISSION_DENIED)
            assert await _spoofs(dev, session["channel"]) == []
        finally:
            await client.disconnect()
        assert await dev.stop() == 0


async def test_dev_prototype_mode_allows_client_publishes(tmp_path: Path) -> None:
    async with _dev(tmp_path, "dev:\n  client_publish: true\n") as dev:
        session, outcome, client = await _spoof(dev)
        try:
            assert outcome == "published"
            # The hub attests who published it, which is what the page goes by.
            assert await _spoofs(dev, session["channel"]) == [session["userId"]]
        finally:
            await client.disconnect()
        assert await dev.stop() == 0


@pytest.mark.parametrize(("data", "info", "sender"), [
    # Through the server API (the backend's moderated send, or a bot): no info, trusted.
    ({"senderId": "bot_commands"}, None, "bot_commands"),
    ({"senderId": "user_ann_1"}, None, "user_ann_1"),
    # A client publication: the server attests info.user, which must be the senderId.
    ({"senderId": "user_ann_1"}, {"user": "user_ann_1", "client": "c1"}, "user_ann_1"),
    ({"senderId": "bot_commands"}, {"user": "user_mallory_2", "client": "c2"}, None),
    ({"senderId": "user_ann_1"}, {"user": "", "client": "c3"}, None),
    ({"senderId": ""}, None, None),
    ({"text": "no sender"}, None, None),
])
async def test_page_names_only_the_attested_sender(data: dict[str, Any],
                                                   info: dict[str, Any] | None,
                                                   sender: str | None) -> None:
    ensure_node_modules()
    async with NodeScript(JS_DIR / "chat_page.mjs", env={"CHAT_JS": str(CHAT_JS)}) as node:
        await node.wait_for("ready", timeout=15)
        await node.send({"cmd": "call", "id": 1, "fn": "attestedSender", "args": [data, info]})
        result = await node.wait_for("result", lambda e: e["id"] == 1, timeout=5)
    assert result.get("value") == sender


@pytest.mark.parametrize("client_publish", [True, False])
def test_hub_settings_carry_client_publish_to_the_hub_process(client_publish: bool) -> None:
    settings = HubSettings(api_key="k", client_publish=client_publish)
    again = HubSettings.from_argv(settings.to_args(), "k")
    assert again.client_publish is client_publish
    assert again.config().client_publish is client_publish
    assert centrifugo_config(settings)["channel"]["namespaces"][0][
        "allow_publish_for_subscriber"] is client_publish
