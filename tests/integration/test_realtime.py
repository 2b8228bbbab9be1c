"""The realtime client against the real server."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest

from botkit.dev.localserver import LocalCentrifugo
from botkit.errors import SubscriptionError, TerminalDisconnectError
from botkit.protocol import Backoff, Joined, Publication, StreamGap, StreamPosition
from botkit.realtime import (
    ClientOptions,
    ConnectionState,
    ConnectionStateChanged,
    RealtimeClient,
    SubscriptionStarted,
)
from botkit.tokens import TokenMinter, chat_channel
from tests.support.cuts import cut_when_connected
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.server


def room() -> str:
    return chat_channel("proj_test", f"room_{secrets.token_hex(4)}")


def minter(server: LocalCentrifugo, user: str = "user_1", ttl: float = 600) -> TokenMinter:
    return TokenMinter(server.api_key, user, ttl=ttl)


async def api_publish(server: LocalCentrifugo, channel: str, data: object,
                      client: httpx.AsyncClient | None = None) -> None:
    own = client is None
    http = client or httpx.AsyncClient()
    try:
        response = await http.post(f"{server.api_url}/publish",
                                   json={"channel": channel, "data": data},
                                   headers={"X-API-Key": server.api_key})
        assert response.status_code == 200, response.text
        assert "error" not in response.json(), response.text
    finally:
        if own:
            await http.aclose()


async def next_publication(client: RealtimeClient, timeout: float = 5.0) -> Publication:
    async with asyncio.timeout(timeout):
        while True:
            event = await client.next_event()
            if isinstance(event, Publication):
                return event


async def test_subscribe_with_token_and_receive(centrifugo: LocalCentrifugo) -> None:
    channel = room()
    tokens = minter(centrifugo)
    async with RealtimeClient(centrifugo.ws_url, tokens.connection, tokens.subscription) as client:
        await client.subscribe(channel)
        await api_publish(centrifugo, channel, {"text": "hello"})
        publication = await next_publication(client)
        assert publication.channel == channel
        assert publication.data == {"text": "hello"}
        assert publication.offset == 1


async def test_an_idle_reader_keeps_nothing_of_its_last_batch(
        centrifugo: LocalCentrifugo) -> None:
    # Waiting for the next batch, the reader held the last one (messages, decoded JSON,
    # events) in its frame: ~0.7 KiB per idle connection (bench/ S4).
    channel = room()
    tokens = minter(centrifugo)
    async with RealtimeClient(centrifugo.ws_url, tokens.connection, tokens.subscription) as client:
        await client.subscribe(channel)
        await api_publish(centrifugo, channel, {"text": "hello"})
        await next_publication(client)
        readers = [task for task in asyncio.all_tasks()
                   if task.get_name() == "realtime reader" and not task.done()]
        assert len(readers) == 1
        frame = readers[0].get_coro().cr_frame  # type: ignore[union-attr]
        assert frame is not None
        held = {name: frame.f_locals.get(name) for name in ("batch", "message", "events")}
        assert held == {"batch": None, "message": None, "events": None}


async def test_subscribe_without_token_is_refused(centrifugo: LocalCentrifugo) -> None:
    tokens = minter(centrifugo)
    async with RealtimeClient(centrifugo.ws_url, tokens.connection) as client:
        with pytest.raises(SubscriptionError) as refused:
            await client.subscribe(room())
        assert refused.value.code == 103
        # The connection itself is unharmed: the refusal ended only that subscription.
        assert client.state.value == "connected"
        assert client.terminal_error is None


async def test_presence_history_and_client_publish(centrifugo: LocalCentrifugo) -> None:
    channel = room()
    tokens = minter(centrifugo, "user_presence")
    async with RealtimeClient(centrifugo.ws_url, tokens.connection, tokens.subscription) as client:
        await client.subscribe(channel)
        presence = await client.presence(channel)
        assert [info.user for info in presence.values()] == ["user_presence"]
        stats = await client.presence_stats(channel)
        assert (stats.num_clients, stats.num_users) == (1, 1)
        for n in range(3):
            await client.publish(channel, {"n": n})
        received = [await next_publication(client) for _ in range(3)]
        assert [p.data["n"] for p in received] == [0, 1, 2]
        assert received[0].info is not None
        assert received[0].info.user == "user_presence"
        history = await client.history(channel, limit=2)
        assert [p.data["n"] for p in history.publications] == [0, 1]
        assert history.position.offset == 3
        newest = await client.history(channel, limit=1, reverse=True)
        assert [p.data["n"] for p in newest.publications] == [2]


async def test_wrong_token_secret_is_terminal_without_a_storm(
        centrifugo: LocalCentrifugo) -> None:
    attempts = 0
    wrong = TokenMinter("not-the-server-key-" + "x" * 32, "user_x")

    def token() -> str:
        nonlocal attempts
        attempts += 1
        return wrong.connection()

    client = RealtimeClient(centrifugo.ws_url, token)
    with pytest.raises(TerminalDisconnectError) as refused:
        await client.start()
    assert refused.value.code == 3500
    assert "server_api_key" in str(refused.value)
    await asyncio.sleep(0.5)
    assert attempts == 1, "a terminal code must not be retried"
    with pytest.raises(TerminalDisconnectError):
        await client.wait_closed()
    await client.aclose()


async def test_short_lived_tokens_are_refreshed_without_dropping(
        centrifugo: LocalCentrifugo) -> None:
    """5 s connection and subscription tokens held for 20 s. The test server closes 1 s after
    expiry, so a client that failed to refresh would be disconnected here."""
    channel = room()
    tokens = minter(centrifugo, "user_refresh", ttl=5)
    async with RealtimeClient(centrifugo.ws_url, tokens.connection, tokens.subscription) as client:
        await client.subscribe(channel)
        async with httpx.AsyncClient() as http:
            for n in range(20):
                await api_publish(centrifugo, channel, {"n": n}, http)
                await asyncio.sleep(1.0)
        received = [await next_publication(client) for _ in range(20)]
        assert [p.data["n"] for p in received] == list(range(20))
        assert client.reconnects == 0
        assert client.state.value == "connected"


async def test_server_restart_reports_the_gap(make_centrifugo) -> None:  # type: ignore[no-untyped-def]
    server = make_centrifugo()
    channel = room()
    tokens = minter(server, "user_gap")
    options = ClientOptions(min_reconnect_delay=0.05)
    async with RealtimeClient(server.ws_url, tokens.connection, tokens.subscription,
                              options=options) as client:
        await client.subscribe(channel)
        await api_publish(server, channel, {"n": 1})
        assert (await next_publication(client)).data == {"n": 1}
        before = client.position(channel)
        server.restart()  # memory engine: history and epoch are gone
        async with asyncio.timeout(15):
            gap = None
            while gap is None:
                event = await client.next_event()
                if isinstance(event, StreamGap):
                    gap = event
        assert gap.channel == channel
        assert gap.lost_from == before
        assert gap.resumed_at is not None
        assert gap.resumed_at.epoch != before.epoch
        await api_publish(server, channel, {"n": 2})
        assert (await next_publication(client)).data == {"n": 2}
        assert client.reconnects >= 1


async def test_presence_join_is_pushed(centrifugo: LocalCentrifugo) -> None:
    channel = room()
    watcher_tokens = minter(centrifugo, "user_watcher")
    joiner_tokens = minter(centrifugo, "user_joiner")
    async with RealtimeClient(centrifugo.ws_url, watcher_tokens.connection,
                              watcher_tokens.subscription) as watcher:
        await watcher.subscribe(channel)
        async with RealtimeClient(centrifugo.ws_url, joiner_tokens.connection,
                                  joiner_tokens.subscription) as joiner:
            await joiner.subscribe(channel)
            async with asyncio.timeout(5):
                while True:
                    event = await watcher.next_event()
                    if isinstance(event, Joined) and event.info.user == "user_joiner":
                        break
            assert isinstance(event, Joined)
            assert not isinstance(event, ConnectionStateChanged)


async def test_cut_connections_lose_and_duplicate_nothing(centrifugo: LocalCentrifugo) -> None:
    """500 publications while a proxy between client and server cuts the connection 3 times:
    every one arrives exactly once, in order (recovery from history on each resubscribe)."""
    channel = room()
    tokens = minter(centrifugo, "user_cuts")
    async with TcpProxy("127.0.0.1", centrifugo.port) as proxy:
        options = ClientOptions(min_reconnect_delay=0.01, backoff=Backoff(base=0.05, cap=0.2))
        async with RealtimeClient(proxy.rewrite(centrifugo.ws_url), tokens.connection,
                                  tokens.subscription, options=options) as client:
            await client.subscribe(channel)
            cutter = asyncio.ensure_future(cut_when_connected(
                proxy, lambda: client.state is ConnectionState.CONNECTED, times=3))
            async with httpx.AsyncClient() as http:
                for n in range(500):
                    await api_publish(centrifugo, channel, {"n": n}, http)
                    if n % 50 == 0:
                        await asyncio.sleep(0.02)
            assert await cutter == [1, 1, 1]
            received = [await next_publication(client, timeout=10) for _ in range(500)]
            assert [p.data["n"] for p in received] == list(range(500))
            assert [p.offset for p in received] == list(range(1, 501))
            assert client.reconnects == 3
            with pytest.raises(TimeoutError):
                await next_publication(client, timeout=0.5)


async def test_silent_server_is_noticed_and_left(make_centrifugo) -> None:  # type: ignore[no-untyped-def]
    """A frozen network sends no close frame: only the missing pings tell. The client gives up
    on the socket after the ping interval plus its grace, reconnects and recovers."""
    server = make_centrifugo(ping_interval="2s", pong_timeout="1s")
    channel = room()
    tokens = minter(server, "user_frozen")
    async with TcpProxy("127.0.0.1", server.port) as proxy:
        options = ClientOptions(ping_grace=1.0, min_reconnect_delay=0.01, connect_timeout=2.0,
                                backoff=Backoff(base=0.05, cap=0.2))
        async with RealtimeClient(proxy.rewrite(server.ws_url), tokens.connection,
                                  tokens.subscription, options=options) as client:
            await client.subscribe(channel)
            proxy.blackhole(True)
            await api_publish(server, channel, {"n": 1})
            # Silence past ping interval + grace (3 s): the client must have given up on the
            # socket by itself, while the proxy still holds it open.
            await asyncio.sleep(4.0)
            assert client.state is not ConnectionState.CONNECTED
            proxy.blackhole(False)
            publication = await next_publication(client, timeout=10)
            assert publication.data == {"n": 1}
            assert client.reconnects == 1


async def test_subscribe_from_a_stored_position_recovers_what_followed(
        centrifugo: LocalCentrifugo) -> None:
    # What a restarted bot does: a position from an earlier process seeds the first subscribe.
    channel = room()
    tokens = minter(centrifugo)
    async with httpx.AsyncClient() as http:
        for n in range(5):
            await api_publish(centrifugo, channel, {"n": n}, http)
        response = await http.post(f"{centrifugo.api_url}/history",
                                   json={"channel": channel, "limit": 0},
                                   headers={"X-API-Key": centrifugo.api_key})
        epoch = response.json()["result"]["epoch"]
    async with RealtimeClient(centrifugo.ws_url, tokens.connection, tokens.subscription,
                              options=ClientOptions(subscription_events=True)) as client:
        since = StreamPosition(2, epoch)
        outcomes = await client.subscribe_all([channel], since={channel: since})
        assert outcomes == {channel: None}
        events: list[object] = []
        async with asyncio.timeout(5):
            while len(events) < 4:
                event = await client.next_event()
                if not isinstance(event, ConnectionStateChanged):
                    events.append(event)
        assert events[0] == SubscriptionStarted(channel, StreamPosition(5, epoch), True)
        assert events[1:] == [Publication(channel, {"n": n}, n + 1) for n in (2, 3, 4)]
