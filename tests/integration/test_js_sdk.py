"""The official JavaScript SDK (npm ``centrifuge`` 5.x) against our server.

Whatever botkit serves must work for the seed's web clients, which use that SDK. Node runs
``tests/js/conformance.mjs``; this side hands it tokens, publishes through the server API, and
breaks its connection with a real TCP proxy.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from botkit.dev.localserver import LocalCentrifugo
from botkit.serverapi.client import ServerApi
from botkit.tokens import TokenMinter, chat_channel
from tests.support.node import JS_DIR, NodeScript, ensure_node_modules
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.server

CONFORMANCE = JS_DIR / "conformance.mjs"
USER = "user_js"


@pytest.fixture(scope="session")
def js_sdk() -> Path:
    """tests/js/node_modules, installed with ``npm ci`` unless the lock file is unchanged."""
    return ensure_node_modules()


def new_channel() -> str:
    return chat_channel("proj_js", f"room_{secrets.token_hex(4)}")


def answer_tokens(node: NodeScript, minter: TokenMinter) -> None:
    """Be the SDK's getToken: mint a fresh token for every request."""
    async def answer(event: dict[str, object]) -> None:
        kind, channel = event["kind"], event.get("channel")
        token = minter.connection() if kind == "connection" else minter.subscription(str(channel))
        await node.send({"cmd": "token", "id": event["id"], "token": token})

    node.on("token_request", answer)


async def start(node: NodeScript, url: str, channel: str, minter: TokenMinter) -> None:
    await node.wait_for("ready", timeout=15)
    await node.send({"cmd": "start", "url": url, "channel": channel,
                     "token": minter.connection(),
                     "subscriptionToken": minter.subscription(channel)})
    await node.wait_for("subscribed", timeout=10)


def texts(node: NodeScript, *, after: int = 0) -> list[str]:
    return [e["data"]["text"] for e in node.named("publication", after=after)]


async def test_sdk_publishes_receives_and_recovers_after_a_cut(
        centrifugo: LocalCentrifugo, js_sdk: Path) -> None:
    channel = new_channel()
    minter = TokenMinter(centrifugo.api_key, USER, ttl=600, info={"name": "JS"})
    async with (TcpProxy("127.0.0.1", centrifugo.port) as proxy,
                ServerApi(centrifugo.api_url, centrifugo.api_key) as api,
                NodeScript(CONFORMANCE) as node):
        answer_tokens(node, minter)
        await start(node, proxy.rewrite(centrifugo.ws_url), channel, minter)

        # The handshake: the SDK's first frame carries connect and subscribe together, which a
        # server must read as two commands in order.
        first = [json.loads(line) for line in node.named("frame")[0]["data"].split("\n")]
        assert [next(k for k in c if k != "id") for c in first] == ["connect", "subscribe"], first
        subscribe = first[1]["subscribe"]
        assert subscribe["channel"] == channel
        assert subscribe["token"]  # the room is locked: a subscription token is required
        assert subscribe.get("recoverable") is True
        assert subscribe.get("positioned") is True

        # A client-side publish (allowed for subscribers) comes back with the publisher's info.
        await node.send({"cmd": "publish", "id": 1, "data": {"text": "from js"}})
        await node.wait_for("published", lambda e: e["id"] == 1, timeout=5)
        own = await node.wait_for("publication", timeout=5)
        assert own["data"] == {"text": "from js"}
        assert own["offset"] == 1
        assert own["info"]["user"] == USER
        assert own["info"]["connInfo"] == {"name": "JS"}
        # A server API publish has no publisher info.
        await api.publish(channel, {"text": "from api"})
        from_api = await node.wait_for("publication", lambda e: e["offset"] == 2, timeout=5)
        assert from_api["data"] == {"text": "from api"}
        assert from_api["info"] is None

        # Cut the connection and keep the server unreachable while three messages go out.
        mark = len(node.events)
        proxy.refuse(True)
        assert await proxy.cut() == 1
        await node.wait_for("subscribing", after=mark, timeout=5)
        missed = [f"missed {index}" for index in range(3)]
        for text in missed:
            await api.publish(channel, {"text": text})
        proxy.refuse(False)

        resubscribed = await node.wait_for("subscribed", after=mark, timeout=15)
        assert resubscribed["wasRecovering"] is True
        assert resubscribed["recovered"] is True
        await node.wait_for("publication", lambda e: e["offset"] == 5, after=mark, timeout=5)
        await api.publish(channel, {"text": "live again"})
        await node.wait_for("publication", lambda e: e["offset"] == 6, after=mark, timeout=5)

        # Everything exactly once, in order, across the cut.
        publications = node.named("publication")
        assert [e["offset"] for e in publications] == [1, 2, 3, 4, 5, 6], node.describe()
        assert texts(node) == ["from js", "from api", *missed, "live again"]
        assert len(node.named("connected")) == 2  # one reconnect: no storm
        # The refused reconnects are transport errors; nothing else went wrong.
        assert all(e["type"] == "transport" for e in node.named("client_error")), node.describe()
        assert node.named("fatal") == []


async def test_sdk_refreshes_short_lived_tokens_through_get_token(
        centrifugo: LocalCentrifugo, js_sdk: Path) -> None:
    # Tokens that expire after 3 s: the SDK must ask getToken before then and send refresh and
    # sub_refresh, or the server closes the connection (3005) and unsubscribes (2501) one
    # second after expiry (the test server's delays).
    channel = new_channel()
    minter = TokenMinter(centrifugo.api_key, USER, ttl=3)
    async with (ServerApi(centrifugo.api_url, centrifugo.api_key) as api,
                NodeScript(CONFORMANCE) as node):
        answer_tokens(node, minter)
        await start(node, centrifugo.ws_url, channel, minter)
        # Two refreshes of each: the second proves the refreshed tokens' ttl was honoured.
        for kind in ("connection", "subscription"):
            await node.wait_for("token_request", lambda e, k=kind: e["kind"] == k, timeout=8)
        second = len(node.events)
        for kind in ("connection", "subscription"):
            await node.wait_for("token_request", lambda e, k=kind: e["kind"] == k,
                                after=second, timeout=8)
        frames = [line for e in node.named("frame") for line in e["data"].split("\n")]
        assert any('"refresh"' in line for line in frames)
        assert any('"sub_refresh"' in line for line in frames)
        await api.publish(channel, {"text": "still here"})
        await node.wait_for("publication", lambda e: e["data"] == {"text": "still here"},
                            timeout=5)
        # Never dropped: one connection, one subscription, no errors.
        assert len(node.named("connected")) == 1, node.describe()
        assert len(node.named("subscribed")) == 1, node.describe()
        assert node.named("disconnected") == []
        assert node.named("subscription_error") == []
