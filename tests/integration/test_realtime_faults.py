"""The realtime client when the socket fails at each stage, against both server kinds, with the
faults made by a real TCP proxy (or by the server itself, through its API).

Whatever failed and whenever, the connection ends as DISCONNECTED with the close code honoured:
a terminal code stops the client with TerminalDisconnectError, anything else reconnects and
resubscribes with recovery.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from botkit.dev.localserver import LocalCentrifugo
from botkit.errors import TerminalDisconnectError
from botkit.protocol import Backoff, ClientProtocol, Joined, Left, Publication
from botkit.realtime import (
    ClientEvent,
    ClientOptions,
    ConnectionState,
    ConnectionStateChanged,
    RealtimeClient,
)
from botkit.realtime.link import CLOSE_PROTOCOL
from botkit.tokens import TokenMinter, chat_channel
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.server

FAST: dict[str, Any] = {"min_reconnect_delay": 0.01, "backoff": Backoff(base=0.05, cap=0.2)}


def _room() -> str:
    return chat_channel("proj_test", f"room_{secrets.token_hex(4)}")


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (the proxy's counters have no event to await)
            await asyncio.sleep(0.01)


async def _api(server: LocalCentrifugo, method: str, params: dict[str, Any]) -> None:
    async with httpx.AsyncClient(headers={"X-API-Key": server.api_key}, timeout=5) as http:
        response = await http.post(f"{server.api_url}/{method}", json=params)
        assert response.status_code == 200, response.text
        assert "error" not in response.json(), response.text


class _Events:
    """Every event the client delivers, with a wakeup for tests waiting on one."""

    def __init__(self) -> None:
        self.seen: list[ClientEvent] = []
        self._changed = asyncio.Event()

    async def on_event(self, event: ClientEvent) -> None:
        self.seen.append(event)
        self._changed.set()

    def states(self) -> list[tuple[ConnectionState, int]]:
        return [(e.state, e.code) for e in self.seen if isinstance(e, ConnectionStateChanged)]

    def data(self, channel: str) -> list[Any]:
        return [e.data for e in self.seen if isinstance(e, Publication) and e.channel == channel]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


async def _in_flight_then(stage: str, ending: str, server: LocalCentrifugo,
                          caplog: pytest.LogCaptureFixture) -> None:
    """Connect through a proxy, freeze the network while a subscribe (or a token refresh) is
    on its way, then end the socket with a cut or with the server's terminal 3500."""
    user = f"user_{secrets.token_hex(3)}"
    ttl = 3.0 if stage == "refresh" else 600.0  # refreshed 2 s after each connect
    tokens = TokenMinter(server.api_key, user, ttl=ttl)
    events = _Events()
    first, second = _room(), _room()
    async with TcpProxy("127.0.0.1", server.port) as proxy:
        client = RealtimeClient(proxy.rewrite(server.ws_url), tokens.connection,
                                tokens.subscription, options=ClientOptions(**FAST),
                                on_event=events.on_event)
        try:
            await client.start()
            await client.subscribe(first)
            await _api(server, "publish", {"channel": first, "data": {"n": 1}})
            await events.wait_for(lambda: events.data(first) == [{"n": 1}])
            proxy.blackhole(True)
            pending: asyncio.Future[Any] | None = None
            many = [_room() for _ in range(100)]
            if stage == "subscribe":
                pending = asyncio.ensure_future(client.subscribe(second, timeout=20))
            elif stage == "subscribe_all":
                pending = asyncio.ensure_future(client.subscribe_all(many, timeout=20))
            # What the client sends next (the subscribe, or the refreshes due 2 s after the
            # connect) is lost in the blackhole: it stays unanswered.
            await _until(lambda: proxy.bytes_dropped > 0)
            await _api(server, "publish", {"channel": first, "data": {"n": 2}})  # missed
            proxy.blackhole(False)
            if ending == "cut":
                assert await proxy.cut() == 1
            else:
                await _api(server, "disconnect", {
                    "user": user, "disconnect": {"code": 3500, "reason": "go away"}})
            if ending == "cut":
                # Reconnected, resubscribed with recovery: the missed publication arrives.
                await events.wait_for(lambda: events.data(first) == [{"n": 1}, {"n": 2}])
                if pending is not None:
                    async with asyncio.timeout(10):
                        outcome = await pending
                    if stage == "subscribe_all":
                        assert outcome == dict.fromkeys(many)
                assert client.reconnects == 1
                assert client.state is ConnectionState.CONNECTED
                assert [state for state, _ in events.states()] == [
                    ConnectionState.CONNECTED, ConnectionState.DISCONNECTED,
                    ConnectionState.CONNECTED]
            else:
                with pytest.raises(TerminalDisconnectError) as ended:
                    async with asyncio.timeout(10):
                        await client.wait_closed()
                assert ended.value.code == 3500
                if stage == "subscribe":
                    assert pending is not None
                    with pytest.raises(TerminalDisconnectError):
                        await pending
                elif stage == "subscribe_all":
                    assert pending is not None
                    outcome = await pending
                    assert {type(error) for error in outcome.values()} == {
                        TerminalDisconnectError}
                assert events.states() == [
                    (ConnectionState.CONNECTED, 0), (ConnectionState.DISCONNECTED, 3500),
                    (ConnectionState.CLOSED, 3500)]
                assert proxy.connections_accepted == 1, "a terminal code must not reconnect"
            assert "unexpected" not in caplog.text
        finally:
            await client.aclose()


@pytest.mark.parametrize("ending", ["cut", "terminal"])
@pytest.mark.parametrize("stage", ["subscribe", "subscribe_all", "refresh"])
async def test_a_socket_lost_while_a_command_is_in_flight_ends_as_disconnected(
        centrifugo: LocalCentrifugo, caplog: pytest.LogCaptureFixture, stage: str,
        ending: str) -> None:
    caplog.set_level(logging.INFO, "botkit.realtime")
    await _in_flight_then(stage, ending, centrifugo, caplog)


async def test_a_socket_lost_during_connect_is_retried(centrifugo: LocalCentrifugo) -> None:
    tokens = TokenMinter(centrifugo.api_key, "user_connecting")
    events = _Events()
    async with TcpProxy("127.0.0.1", centrifugo.port) as proxy:
        client = RealtimeClient(proxy.rewrite(centrifugo.ws_url), tokens.connection,
                                options=ClientOptions(**FAST), on_event=events.on_event)
        try:
            proxy.blackhole(True)
            await client.start(wait=False)
            await _until(lambda: proxy.bytes_dropped > 0)  # the WebSocket upgrade is lost
            proxy.blackhole(False)
            assert await proxy.cut() == 1
            await client.wait_connected(10)
            assert client.reconnects == 0  # it never was connected before
            assert events.states() == [(ConnectionState.CONNECTED, 0)]
        finally:
            await client.aclose()


async def test_closing_while_the_socket_opens_does_not_wait_for_it(
        centrifugo: LocalCentrifugo) -> None:
    tokens = TokenMinter(centrifugo.api_key, "user_closing")
    async with TcpProxy("127.0.0.1", centrifugo.port) as proxy:
        client = RealtimeClient(proxy.rewrite(centrifugo.ws_url), tokens.connection)
        proxy.blackhole(True)
        await client.start(wait=False)
        await _until(lambda: proxy.bytes_dropped > 0)
        started = time.monotonic()
        await client.aclose()
        assert time.monotonic() - started < 1.0
        await client.wait_closed()  # ended, not refused: nothing to raise
        assert client.state is ConnectionState.CLOSED


async def test_unanswered_subscribes_time_out_together(centrifugo: LocalCentrifugo) -> None:
    """Six subscribes lost in a frozen network cost one command timeout, not six: the client
    gives up on the socket at once and subscribes them all again on the next one."""
    tokens = TokenMinter(centrifugo.api_key, "user_timeout")
    channels = [_room() for _ in range(6)]
    events = _Events()
    async with TcpProxy("127.0.0.1", centrifugo.port) as proxy:
        options = ClientOptions(command_timeout=0.5, **FAST)
        async with RealtimeClient(proxy.rewrite(centrifugo.ws_url), tokens.connection,
                                  tokens.subscription, options=options,
                                  on_event=events.on_event) as client:
            proxy.blackhole(True)
            started = time.monotonic()
            async with asyncio.TaskGroup() as group:
                subscribes = [group.create_task(client.subscribe(c, timeout=15))
                              for c in channels]
                await events.wait_for(
                    lambda: ConnectionState.DISCONNECTED in dict(events.states()), timeout=5)
                gave_up_after = time.monotonic() - started
                proxy.blackhole(False)
                assert await proxy.cut() in (0, 1)  # the client may have reset it already
            assert all(task.result() is None for task in subscribes)
            assert gave_up_after < 1.5, f"gave up after {gave_up_after:.2f}s"
            assert events.states()[1] == (ConnectionState.DISCONNECTED, 4003)
            assert client.reconnects == 1
            assert client.state is ConnectionState.CONNECTED


async def test_joins_and_leaves_count_against_the_read_ahead(
        centrifugo: LocalCentrifugo) -> None:
    """A consumer that takes nothing: the reader holds joins and leaves only up to the budget
    (each counts by its frame's size, at least a fixed minimum), then stops reading."""
    channel = _room()
    gate = asyncio.Event()
    taken: list[tuple[str, str]] = []

    async def on_event(event: ClientEvent) -> None:
        if isinstance(event, Joined | Left) and event.info.user == "user_flicker":
            await gate.wait()
            taken.append((type(event).__name__, event.info.user))

    watcher = TokenMinter(centrifugo.api_key, "user_watch")
    flicker = TokenMinter(centrifugo.api_key, "user_flicker")
    budget = 1000
    async with RealtimeClient(centrifugo.ws_url, watcher.connection, watcher.subscription,
                              options=ClientOptions(read_ahead_bytes=budget),
                              on_event=on_event, offer_event=lambda _: False) as client:
        await client.subscribe(channel)
        async with RealtimeClient(centrifugo.ws_url, flicker.connection,
                                  flicker.subscription) as other:
            for _ in range(100):
                await other.subscribe(channel)
                await other.unsubscribe(channel)
        # Whatever the reader was going to read of the 200 pushes it has read by now.
        await asyncio.sleep(0.5)
        read_ahead = client.read_ahead
        assert 0 < read_ahead.held < 20, f"{read_ahead.held} events held"
        assert read_ahead.held_bytes <= budget + read_ahead.largest_held
        gate.set()
        async with asyncio.timeout(10):
            while len(taken) < 200:  # noqa: ASYNC110 (the consumer's list)
                await asyncio.sleep(0.01)
    assert taken == [("Joined", "user_flicker"), ("Left", "user_flicker")] * 100


async def test_a_bug_in_the_reader_costs_the_connection_not_the_client(
        centrifugo: LocalCentrifugo, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader is a task the connection owns (no TaskGroup): an exception of ours in it
    ends that connection with an internal error, logged, and the client reconnects."""
    tokens = TokenMinter(centrifugo.api_key, "user_buggy")
    events = _Events()
    room = _room()
    real = ClientProtocol.receive
    bugs = [RuntimeError("a bug in the read path")]

    def receive(self: ClientProtocol, message: str, now: float) -> Any:
        if bugs and '"pub"' in message:
            raise bugs.pop()
        return real(self, message, now)

    monkeypatch.setattr(ClientProtocol, "receive", receive)
    async with RealtimeClient(centrifugo.ws_url, tokens.connection, tokens.subscription,
                              options=ClientOptions(**FAST), on_event=events.on_event) as client:
        await client.subscribe(room)
        await _api(centrifugo, "publish", {"channel": room, "data": {"n": 1}})
        await events.wait_for(lambda: len(events.states()) >= 3)
        assert events.states() == [(ConnectionState.CONNECTED, 0),
                                   (ConnectionState.DISCONNECTED, CLOSE_PROTOCOL),
                                   (ConnectionState.CONNECTED, 0)]
        await _api(centrifugo, "publish", {"channel": room, "data": {"n": 2}})
        await events.wait_for(lambda: {"n": 2} in events.data(room))
        assert client.reconnects == 1
    assert not bugs
    assert "failed unexpectedly" in caplog.text
