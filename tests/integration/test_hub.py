"""Protocol edges of the development hub, driven with raw WebSocket frames and HTTP calls.

Most tests run against both servers (``[centrifugo]`` and ``[hub]``): the real server shows
what the right answer is, and the hub must give the same one. A few need a knob only the hub
has (a short stale delay, a small outgoing queue) or check where the hub deliberately follows a
fix made after Centrifugo 6.9.1; those run against the hub only.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from botkit.dev.hub import HubSettings, LocalHub
from botkit.dev.localserver import free_port
from tests.conftest import Server

pytestmark = pytest.mark.server


# -- helpers ------------------------------------------------------------------------------------

def room() -> str:
    return f"chat:proj_hub:{secrets.token_hex(6)}"


def token(server: Server, user: str = "user_raw", *, ttl: float = 600, **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": user, "iat": now, "exp": now + int(ttl), **claims}
    return jwt.encode(body, server.api_key, algorithm="HS256")


def sub_token(server: Server, channel: str, user: str = "user_raw", *, ttl: float = 600,
              **claims: Any) -> str:
    return token(server, user, ttl=ttl, channel=channel, **claims)


class Raw:
    """A WebSocket speaking raw protocol frames; pushes and pings are kept aside."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 1
        self.pushes: list[dict[str, Any]] = []
        self.seen: list[dict[str, Any]] = []  # every frame read by closed()
        self.pings = 0

    async def send(self, *frames: dict[str, Any] | str) -> None:
        await self.ws.send("\n".join(f if isinstance(f, str) else json.dumps(f) for f in frames))

    async def frames(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            message = await self.ws.recv()
        assert isinstance(message, str)
        return [json.loads(line) for line in message.split("\n")]

    async def call(self, method: str, body: dict[str, Any], *,
                   timeout: float = 5.0) -> dict[str, Any]:
        """Send one command; return its whole reply frame (result or error)."""
        command_id, self.next_id = self.next_id, self.next_id + 1
        await self.send({"id": command_id, method: body})
        reply: dict[str, Any] | None = None
        async with asyncio.timeout(timeout):
            while reply is None:
                for frame in await self.frames(timeout):  # pushes after the reply count too
                    if frame.get("id") == command_id:
                        reply = frame
                    elif "push" in frame:
                        self.pushes.append(frame["push"])
                    elif frame == {}:
                        self.pings += 1
        return reply

    async def connect(self, server: Server, **claims: Any) -> dict[str, Any]:
        reply = await self.call("connect", {"token": token(server, **claims)})
        assert "connect" in reply, reply
        return dict(reply["connect"])

    async def alive(self) -> None:
        """A command every connection may send: unsubscribing from nothing."""
        reply = await self.call("unsubscribe", {"channel": room()})
        assert reply.get("unsubscribe") == {}, reply

    async def _read_forever(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while True:
                for frame in await self.frames(timeout):
                    self.seen.append(frame)
                    if "push" in frame:
                        self.pushes.append(frame["push"])

    async def closed(self, timeout: float = 5.0) -> tuple[int, str]:
        """Read until the server closes; its close code and reason."""
        with pytest.raises(websockets.ConnectionClosed):
            await self._read_forever(timeout)
        received = self.ws.protocol.close_rcvd
        assert received is not None, "closed without a close frame"
        return received.code, received.reason


@asynccontextmanager
async def raw(server: Server, **options: Any) -> AsyncIterator[Raw]:
    options.setdefault("proxy", None)
    async with websockets.connect(server.ws_url, compression=None, ping_interval=None,
                                  open_timeout=5, close_timeout=1, **options) as ws:
        yield Raw(ws)


async def api(server: Server, method: str, body: Any = None, *,
              headers: dict[str, str] | None = None, http_method: str = "POST",
              content: bytes | None = None) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.request(
            http_method, f"{server.api_url}/{method}",
            headers={"X-API-Key": server.api_key} if headers is None else headers,
            content=content if content is not None else json.dumps(body or {}).encode())


async def subscribe(conn: Raw, server: Server, channel: str, **fields: Any) -> dict[str, Any]:
    reply = await conn.call("subscribe", {"channel": channel,
                                          "token": sub_token(server, channel), **fields})
    assert "subscribe" in reply, reply
    return dict(reply["subscribe"])


@pytest.fixture
def make_hub() -> Iterator[Callable[..., LocalHub]]:
    """Hub-only servers, for knobs Centrifugo's test config does not expose."""
    hubs: list[LocalHub] = []

    def make(**overrides: Any) -> LocalHub:
        values: dict[str, Any] = {"port": free_port(), "expired_close_delay": "1s",
                                  "expired_sub_close_delay": "1s",
                                  "presence_update_interval": "2s", **overrides}
        hub = LocalHub(HubSettings(**values))
        hubs.append(hub)
        hub.start()
        return hub

    try:
        yield make
    finally:
        for hub in hubs:
            hub.close()


# -- handshake and framing -------------------------------------------------------------------

async def test_empty_subprotocol_header_is_accepted_and_nothing_is_echoed(
        centrifugo: Server) -> None:
    # subprotocols=[] makes websockets send "Sec-WebSocket-Protocol:" with no value, as
    # centrifuge-python <= 0.5 does in JSON mode.
    async with raw(centrifugo, subprotocols=[]) as conn:
        assert conn.ws.response is not None
        assert "Sec-WebSocket-Protocol" not in conn.ws.response.headers
        await conn.connect(centrifugo)
    async with raw(centrifugo, subprotocols=["centrifuge-json"]) as conn:
        assert conn.ws.subprotocol == "centrifuge-json"
        await conn.connect(centrifugo)
    async with raw(centrifugo, subprotocols=["x-not-offered-by-the-server"]) as conn:
        assert conn.ws.subprotocol is None
        await conn.connect(centrifugo)


async def test_an_origin_header_is_refused_without_allowed_origins(centrifugo: Server) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with raw(centrifugo, origin="http://localhost:3000"):
            pass
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("message", [
    "not json",
    "",  # a message with no command at all
    '{"id":2,"presence":{"channel":"chat:a:b"}}\n\n',  # an empty line after a command
    "[]",
    '{"id":"2","presence":{"channel":"chat:a:b"}}',  # a string id
    '{"id":2.5,"presence":{"channel":"chat:a:b"}}',
    '{"id":2,"presence":5}',
    '{"id":2,"ping":{}}',  # client pings are not part of protocol v2
    '{"id":2}',  # no method
    '{"id":2,"subscribe":{"channel":""}}',
    '{"id":2,"history":{"channel":"chat:a:b","limit":NaN}}',
], ids=["text", "empty", "empty-line", "array", "string-id", "float-id", "bad-body", "ping",
        "no-method", "empty-channel", "nan"])
async def test_malformed_frames_close_with_3501(centrifugo: Server, message: str) -> None:
    async with raw(centrifugo) as conn:
        await conn.connect(centrifugo)
        await conn.send(message)
        assert await conn.closed() == (3501, "bad request")


async def test_first_command_must_be_connect(centrifugo: Server) -> None:
    async with raw(centrifugo) as conn:
        await conn.send({"id": 1, "presence": {"channel": room()}})
        assert await conn.closed() == (3501, "bad request")
    async with raw(centrifugo) as conn:
        await conn.send("{}")  # a pong before connect
        assert await conn.closed() == (3501, "bad request")


async def test_commands_in_one_message_run_in_order_until_a_bad_line(
        centrifugo: Server) -> None:
    channel = room()
    async with raw(centrifugo) as conn:
        await conn.send({"id": 1, "connect": {"token": token(centrifugo)}},
                        {"id": 2, "subscribe": {"channel": channel,
                                                "token": sub_token(centrifugo, channel)}},
                        "garbage")
        assert await conn.closed() == (3501, "bad request")
        replies = [(frame["id"], sorted(frame)) for frame in conn.seen if "id" in frame]
        # Centrifugo may close before its writer flushed the second reply; never out of order.
        assert replies in ([(1, ["connect", "id"])],
                           [(1, ["connect", "id"]), (2, ["id", "subscribe"])])


async def test_connect_refusals(centrifugo: Server) -> None:
    async with raw(centrifugo) as conn:  # no token, and anonymous connections are off
        await conn.send({"id": 1, "connect": {}})
        assert await conn.closed() == (3501, "bad request")
    async with raw(centrifugo) as conn:  # signed with another key
        bad = jwt.encode({"sub": "u"}, "another-key-" + "x" * 32, algorithm="HS256")
        await conn.send({"id": 1, "connect": {"token": bad}})
        assert await conn.closed() == (3500, "invalid token")
    async with raw(centrifugo) as conn:  # connect twice
        await conn.connect(centrifugo)
        await conn.send({"id": 9, "connect": {"token": token(centrifugo)}})
        assert await conn.closed() == (3501, "bad request")


async def test_expired_connection_token_gets_109(centrifugo: Server) -> None:
    async with raw(centrifugo) as conn:
        reply = await conn.call("connect", {"token": token(centrifugo, ttl=-10)})
        assert reply["error"] == {"code": 109, "message": "token expired"}
        if isinstance(centrifugo, LocalHub):
            # The socket is unusable now (§2.1). Centrifugo 6.9.1 then drops it without a close
            # frame after 5 s (observed); the hub closes with the documented 3501 at once.
            await conn.send({"id": 5, "presence": {"channel": room()}})
            assert await conn.closed() == (3501, "bad request")


async def test_rpc_is_not_available_and_send_closes_with_3508(centrifugo: Server) -> None:
    async with raw(centrifugo) as conn:
        await conn.connect(centrifugo)
        reply = await conn.call("rpc", {"method": "anything", "data": {}})
        assert reply["error"] == {"code": 108, "message": "not available"}
        await conn.send({"send": {"data": {"x": 1}}})
        assert await conn.closed() == (3508, "not available")


async def test_stale_connection_is_closed_with_3502(make_hub: Callable[..., LocalHub]) -> None:
    # Centrifugo's stale delay is a fixed 10 s in the seed's config; the hub lets tests shorten
    # it, and keeps 10 s by default.
    assert HubSettings().stale_close_delay == "10s"
    hub = make_hub(stale_close_delay="1s")

    async def silent() -> None:
        async with raw(hub) as conn:
            started = time.monotonic()
            assert await conn.closed(timeout=5) == (3502, "stale")
            assert 0.8 <= time.monotonic() - started <= 3

    async def failed_connect() -> None:  # a failed connect does not make a socket less stale
        async with raw(hub) as conn:
            reply = await conn.call("connect", {"token": token(hub, ttl=-10)})
            assert reply["error"]["code"] == 109
            assert await conn.closed(timeout=5) == (3502, "stale")

    async def connected() -> None:  # a connected one stays
        async with raw(hub) as conn:
            await conn.connect(hub)
            await asyncio.sleep(1.5)
            await conn.alive()

    await asyncio.gather(silent(), failed_connect(), connected())


# -- ping and pong ------------------------------------------------------------------------------

async def test_ping_pong_rules(make_centrifugo: Callable[..., Server]) -> None:
    server = make_centrifugo(ping_interval="2s", pong_timeout="1s")
    async with raw(server) as silent, raw(server) as polite, raw(server) as eager:
        for conn in (silent, polite, eager):
            reply = await conn.connect(server)
            assert (reply["ping"], reply["pong"]) == (2, True)
        await eager.send("{}")  # a pong before any ping
        assert await eager.closed() == (3501, "bad request")
        started = time.monotonic()
        assert await polite.frames(timeout=3) == [{}]  # first ping within [1 s, 2 s]
        await polite.send("{}")
        assert await silent.frames(timeout=3) == [{}]
        assert await silent.closed(timeout=3) == (3012, "no pong")
        assert time.monotonic() - started < 3.5
        # The polite one answered: still connected, and a second pong is one too many.
        await polite.alive()
        await polite.send("{}")
        assert await polite.closed() == (3501, "bad request")


# -- history and recovery -----------------------------------------------------------------------

async def _publish_many(server: Server, channel: str, count: int) -> None:
    commands = [{"publish": {"channel": channel, "data": {"n": n}}} for n in range(count)]
    response = await api(server, "batch", {"commands": commands})
    assert response.status_code == 200
    assert all("publish" in reply for reply in response.json()["replies"])


async def _history_expired(server: Server, channel: str, *, within: float) -> None:
    """Wait until the channel's history holds nothing any more."""
    for _ in range(int(within / 0.2)):
        if not (await _history(server, channel, limit=-1))["publications"]:
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"history of {channel} still held publications after {within} s")


async def _history(server: Server, channel: str, **fields: Any) -> dict[str, Any]:
    response = await api(server, "history", {"channel": channel, **fields})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


async def test_history_is_bounded_by_size_and_ttl(make_centrifugo: Callable[..., Server]) -> None:
    server = make_centrifugo(history_size=3, history_ttl="2s")
    channel = room()
    await _publish_many(server, channel, 5)
    kept = await _history(server, channel, limit=-1)
    assert [p["offset"] for p in kept["publications"]] == [3, 4, 5]
    assert [p["data"]["n"] for p in kept["publications"]] == [2, 3, 4]
    # Centrifugo expires whole seconds on a 1 s sweep: allow up to 2 s more than the TTL.
    await _history_expired(server, channel, within=5)
    top = await _history(server, channel, limit=0)
    assert (top["offset"], top["epoch"]) == (5, kept["epoch"])  # the stream top outlives them


async def test_recovery_limits(make_centrifugo: Callable[..., Server]) -> None:
    """At most 300 publications are recovered; beyond that, or once history expired, the reply
    says recovered: false and carries none."""
    server = make_centrifugo(history_size=400, history_ttl="3s")
    channel = room()
    async with raw(server) as conn:
        await conn.connect(server)
        first = await subscribe(conn, server, channel)
        epoch = first["epoch"]
        await conn.call("unsubscribe", {"channel": channel})
        await _publish_many(server, channel, 301)

        async def resubscribe(offset: int) -> dict[str, Any]:
            result = await subscribe(conn, server, channel, recover=True, offset=offset,
                                     epoch=epoch, recoverable=True, positioned=True)
            await conn.call("unsubscribe", {"channel": channel})
            return result

        beyond = await resubscribe(0)  # 301 missed
        assert (beyond.get("recovered", False), beyond.get("publications")) == (False, None)
        assert (beyond["offset"], beyond["epoch"], beyond["was_recovering"]) == (301, epoch, True)
        within = await resubscribe(1)  # 300 missed
        assert within["recovered"] is True
        assert [p["offset"] for p in within["publications"]] == list(range(2, 302))
        assert within["offset"] == 1  # the client's own offset: it advances while applying
        await _history_expired(server, channel, within=6)
        expired = await resubscribe(300)
        assert expired.get("recovered", False) is False
        assert "publications" not in expired
        at_top = await resubscribe(301)  # nothing was missed: nothing to lose
        assert at_top["recovered"] is True
        other_epoch = await subscribe(conn, server, channel, recover=True, offset=301,
                                      epoch="another", recoverable=True)
        assert other_epoch.get("recovered", False) is False


# -- server API ---------------------------------------------------------------------------------

async def test_idempotent_publish_returns_the_first_result(centrifugo: Server) -> None:
    channel, other = room(), room()
    body = {"channel": channel, "data": {"text": "first"}, "idempotency_key": "key-1"}
    first = (await api(centrifugo, "publish", body)).json()["result"]
    again = (await api(centrifugo, "publish", {**body, "data": {"text": "second"}})).json()
    assert again["result"] == first
    elsewhere = (await api(centrifugo, "publish", {**body, "channel": other})).json()
    assert elsewhere["result"]["offset"] == 1  # keys are per channel
    fresh = (await api(centrifugo, "publish", {**body, "idempotency_key": "key-2"})).json()
    assert fresh["result"]["offset"] == first["offset"] + 1
    history = await _history(centrifugo, channel, limit=10)
    assert [p["data"]["text"] for p in history["publications"]] == ["first", "first"]


async def test_api_http_errors(centrifugo: Server) -> None:
    publish = {"channel": room(), "data": {"x": 1}}
    no_key = await api(centrifugo, "publish", publish, headers={})
    assert (no_key.status_code, no_key.content) == (401, b"")
    wrong = await api(centrifugo, "publish", publish, headers={"X-API-Key": "wrong"})
    assert (wrong.status_code, wrong.content) == (401, b"")
    scheme = await api(centrifugo, "publish", publish,
                       headers={"Authorization": f"apikey {centrifugo.api_key}"})
    assert scheme.status_code == 200
    assert scheme.json()["result"]["offset"] == 1
    assert scheme.headers["content-type"].startswith("application/json")
    assert (await api(centrifugo, "publish", http_method="GET")).status_code == 405
    assert (await api(centrifugo, "publish", content=b"{not json")).status_code == 400
    assert (await api(centrifugo, "publish", {"channel": 5, "data": {}})).status_code == 400
    unknown_namespace = await api(centrifugo, "publish", {"channel": "nope:x", "data": {}})
    assert unknown_namespace.json() == {"error": {"code": 102, "message": "unknown channel"}}
    no_data = await api(centrifugo, "publish", {"channel": room()})
    assert no_data.json() == {"error": {"code": 107, "message": "bad request"}}
    assert (await api(centrifugo, "no_such_method", {})).status_code == 404


async def test_batch_replies(centrifugo: Server) -> None:
    channel = room()
    response = await api(centrifugo, "batch", {"commands": [
        {"publish": {"channel": channel, "data": {"n": 1}}},
        {"publish": {"channel": channel, "data": {"n": 2}}, "unknown_field": True},
        {"history": {"channel": channel, "limit": 5}},
        {"presence": {"channel": channel}},
        {"no_such_command": {}},
        {"publish": {"channel": channel}},
    ]})
    assert response.status_code == 200
    replies = response.json()["replies"]
    assert [r["publish"]["offset"] for r in replies[:2]] == [1, 2]
    assert replies[0]["publish"]["epoch"] == replies[2]["history"]["epoch"]
    assert [p["data"] for p in replies[2]["history"]["publications"]] == [{"n": 1}, {"n": 2}]
    assert replies[3] == {"presence": {"presence": {}}}
    assert replies[4] == {"error": {"code": 104, "message": "not found"}}
    assert replies[5] == {"error": {"code": 107, "message": "bad request"}}
    # One command that does not decode refuses the whole batch: nothing is published.
    malformed = await api(centrifugo, "batch", {"commands": [
        {"publish": {"channel": channel, "data": {"n": 3}}},
        {"publish": {"channel": channel, "data": {}, "tags": {"k": 1}}}]})
    assert malformed.status_code == 400
    assert (await _history(centrifugo, channel, limit=0))["offset"] == 2


async def test_health(centrifugo: Server) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{centrifugo.port}/health")
    assert (response.status_code, response.json()) == (200, {})


# -- tokens -------------------------------------------------------------------------------------

async def test_refresh_extends_the_connection(centrifugo: Server) -> None:
    """Tokens of 2 s, close delay 1 s: the refreshed connection outlives the other one."""
    async with raw(centrifugo) as refreshed, raw(centrifugo) as left:
        for conn in (refreshed, left):
            reply = await conn.connect(centrifugo, ttl=2)
            assert reply["expires"] is True
            assert 1 <= reply["ttl"] <= 2
        answer = await refreshed.call("refresh", {"token": token(centrifugo, ttl=60)})
        assert answer["refresh"]["expires"] is True
        assert 58 <= answer["refresh"]["ttl"] <= 60
        assert await left.closed(timeout=6) == (3005, "connection expired")
        await refreshed.alive()
        other_user = token(centrifugo, "someone_else", ttl=60)
        await refreshed.send({"id": 99, "refresh": {"token": other_user}})
        assert await refreshed.closed() == (3500, "invalid token")


async def test_subscription_tokens(centrifugo: Server) -> None:
    channel = room()
    async with raw(centrifugo) as conn:
        await conn.connect(centrifugo)
        expired = await conn.call("subscribe", {
            "channel": channel, "token": sub_token(centrifugo, channel, ttl=-10)})
        assert expired["error"] == {"code": 109, "message": "token expired"}
        forged = jwt.encode({"sub": "user_raw", "channel": channel}, "x" * 40, algorithm="HS256")
        invalid = await conn.call("subscribe", {"channel": channel, "token": forged})
        assert invalid["error"] == {"code": 103, "message": "permission denied"}
        filtered = await conn.call("subscribe", {
            "channel": channel, "token": sub_token(centrifugo, channel),
            "tf": {"key": "kind", "cmp": "eq", "val": "msg"}})
        assert filtered["error"] == {"code": 107, "message": "bad request"}  # not allowed here
        result = await subscribe(conn, centrifugo, channel)
        assert (result["recoverable"], result["positioned"], result["expires"]) == (
            True, True, True)
        again = await conn.call("subscribe", {"channel": channel,
                                              "token": sub_token(centrifugo, channel)})
        assert again["error"] == {"code": 105, "message": "already subscribed"}
        refreshed = await conn.call("sub_refresh", {"channel": channel,
                                                    "token": sub_token(centrifugo, channel)})
        assert refreshed["sub_refresh"]["expires"] is True
        other = room()
        await conn.send({"id": 50, "subscribe": {
            "channel": other, "token": sub_token(centrifugo, other, "someone_else")}})
        assert await conn.closed() == (3500, "invalid token")


async def test_unrefreshed_subscription_is_unsubscribed_with_2501(centrifugo: Server) -> None:
    channel = room()
    async with raw(centrifugo) as conn:
        await conn.connect(centrifugo)
        result = await subscribe(conn, centrifugo, channel,
                                 token=sub_token(centrifugo, channel, ttl=2))
        assert 1 <= result["ttl"] <= 2
        async with asyncio.timeout(8):  # ttl + 1 s delay, checked every 2 s
            while not any("unsubscribe" in push for push in conn.pushes):
                await conn.alive()
                await asyncio.sleep(0.2)
        (push,) = [p for p in conn.pushes if "unsubscribe" in p]
        assert push == {"channel": channel,
                        "unsubscribe": {"code": 2501, "reason": "subscription expired"}}


async def test_an_expired_sub_refresh_token_closes_with_3006(
        make_hub: Callable[..., LocalHub]) -> None:
    # Centrifugo 6.9.1 accepts it and silently drops the expiry; the reference asks a dev
    # server for the later fix (centrifuge PR #627).
    hub = make_hub()
    channel = room()
    async with raw(hub) as conn:
        await conn.connect(hub)
        await subscribe(conn, hub, channel)
        await conn.send({"id": 7, "sub_refresh": {
            "channel": channel, "token": sub_token(hub, channel, ttl=-10)}})
        assert await conn.closed() == (3006, "subscription expired")


# -- joins, leaves, slow readers, shutdown --------------------------------------------------------

async def test_join_and_leave_pushes(centrifugo: Server) -> None:
    channel = room()
    async with raw(centrifugo) as watcher:
        await watcher.connect(centrifugo, info={"name": "Watcher"})
        await subscribe(watcher, centrifugo, channel)
        async with raw(centrifugo) as visitor:
            connected = await visitor.connect(centrifugo, user="user_visitor")
            await visitor.call("subscribe", {
                "channel": channel, "token": sub_token(centrifugo, channel, "user_visitor")})
            await watcher.call("presence_stats", {"channel": channel})
        async with asyncio.timeout(5):
            while len([p for p in watcher.pushes if "join" in p or "leave" in p]) < 3:
                await watcher.call("presence_stats", {"channel": channel})
        kinds = [(next(k for k in ("join", "leave") if k in p), p[next(
            k for k in ("join", "leave") if k in p)]["info"]["user"])
            for p in watcher.pushes if "join" in p or "leave" in p]
        assert kinds == [("join", "user_raw"), ("join", "user_visitor"),
                         ("leave", "user_visitor")]
        leave = next(p for p in watcher.pushes if "leave" in p)
        assert leave["leave"]["info"]["client"] == connected["client"]


async def test_a_reader_that_falls_behind_is_closed_with_3008(
        make_hub: Callable[..., LocalHub]) -> None:
    hub = make_hub(queue_max_size=64 * 1024)
    channel = room()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", hub.port))
    async with raw(hub, sock=sock, max_queue=1) as conn:
        await conn.connect(hub)
        await subscribe(conn, hub, channel)
        # This client stops reading: its socket buffers fill, then the hub's queue does.
        blob = "x" * 1000
        for _ in range(12):
            commands = [{"publish": {"channel": channel, "data": {"blob": blob}}}] * 500
            await api(hub, "batch", {"commands": commands})
        assert await conn.closed(timeout=10) == (3008, "slow")


async def test_stopping_the_server_closes_connections_with_3001(
        make_centrifugo: Callable[..., Server]) -> None:
    server = make_centrifugo()
    async with raw(server) as conn:
        await conn.connect(server)
        await asyncio.to_thread(server.stop)
        assert await conn.closed() == (3001, "shutdown")


async def test_server_side_subscriptions_from_the_token(centrifugo: Server) -> None:
    """A ``channels`` claim subscribes the connection during connect; on reconnect the client
    recovers it through ``connect.subs``."""
    channel = room()
    async with raw(centrifugo) as conn:
        reply = await conn.connect(centrifugo, channels=[channel])
        sub = reply["subs"][channel]
        assert (sub["recoverable"], sub["positioned"]) == (True, True)
        epoch = sub["epoch"]
        await _publish_many(centrifugo, channel, 1)
        async with asyncio.timeout(5):
            while not any("pub" in push for push in conn.pushes):
                await conn.alive()
        (pub,) = [push for push in conn.pushes if "pub" in push]
        assert (pub["channel"], pub["pub"]["offset"], pub["pub"]["data"]) == (channel, 1, {"n": 0})
        again = await conn.call("subscribe", {"channel": channel,
                                              "token": sub_token(centrifugo, channel)})
        assert again["error"]["code"] == 105  # already subscribed, server-side
    await _publish_many(centrifugo, channel, 2)
    async with raw(centrifugo) as conn:
        reply = await conn.call("connect", {
            "token": token(centrifugo, channels=[channel]),
            "subs": {channel: {"recover": True, "offset": 1, "epoch": epoch}}})
        sub = reply["connect"]["subs"][channel]
        assert (sub["recovered"], sub["was_recovering"], sub["offset"]) == (True, True, 1)
        assert [p["data"] for p in sub["publications"]] == [{"n": 0}, {"n": 1}]
