"""Fault suite, realtime side: a running bot's WebSocket is cut at each stage of its life,
through a real TCP proxy, at an exact point of the protocol exchange (``tests/support/ws_tap``):
while connecting, while subscribing 500 rooms, while refreshing a token, while recovering what
was published during a disconnection.

Each case checks that

* the bot keeps answering: commands sent after the fault are answered;
* every command is answered exactly once (the room's history), and handled once (the bot's
  ``handled`` counter: the history alone would not show a command handled twice, since the
  second reply's idempotency key is absorbed by the server);
* the counters say what happened: ``reconnects`` counts each loss of an established
  (CONNECTED) connection that the client came back from, whatever stage the client was in;
  the proxy saw one new connection per cut and no more (no reconnect storm, no expired token);
* a cut is an ordinary event: nothing is logged at ERROR by the realtime client or by asyncio
  (an "unexpected error", a future whose exception nobody retrieved).

And a terminal close code (3500) that arrives instead of a reply, at the same stages, ends the
bot's connection for good instead of a reconnect.

Runs against the real server and the dev hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from botkit.dev.localserver import LocalCentrifugo
from botkit.errors import TerminalDisconnectError
from botkit.realtime import ConnectionState
from botkit.runtime.supervisor import BotPhase, Runtime
from botkit.tokens import chat_channel
from tests.support.faultbot import (
    BOT,
    BOT_USER,
    Room,
    bot_yaml,
    client_of,
    connected,
    new_runtime,
    serve,
    stats_of,
    until,
)
from tests.support.humans import human
from tests.support.runtime_support import new_project
from tests.support.tcp_proxy import TcpProxy
from tests.support.ws_tap import SocketTap, Trigger, is_command, is_reply

pytestmark = pytest.mark.server

ServerFactory = Callable[..., LocalCentrifugo]


@dataclass
class Rig:
    """A bot whose WebSocket goes through a proxy that can cut it at a protocol frame."""

    server: LocalCentrifugo
    project: str
    proxy: TcpProxy
    tap: SocketTap
    runtime: Runtime
    caplog: pytest.LogCaptureFixture
    cut_states: list[ConnectionState] = field(default_factory=list)

    def state(self) -> ConnectionState:
        """The bot's connection state; given as a trigger's ``on_cut``, it is recorded."""
        state = client_of(self.runtime).state
        self.cut_states.append(state)
        return state

    def arm(self, direction: str, match: Callable[[dict[str, Any]], bool], *,
            nth: int = 1) -> Trigger:
        return self.tap.arm(direction, match, nth=nth, on_cut=self.state)

    async def cut_now(self) -> None:
        """A plain cut of the established connection."""
        await until(connected(self.runtime), timeout=10, what="the bot connected")
        self.state()
        assert await self.proxy.cut() == 1

    def check_counters(self, commands: int) -> None:
        client = client_of(self.runtime)
        stats = stats_of(self.runtime)
        assert client.state is ConnectionState.CONNECTED
        expected = self.cut_states.count(ConnectionState.CONNECTED)
        assert client.reconnects == expected, (
            f"reconnects is {client.reconnects}, but {expected} established connection(s) "
            f"were lost (states at the cuts: {[s.value for s in self.cut_states]})")
        proxy = self.proxy
        assert proxy.cuts == len(self.cut_states)
        assert proxy.connections_accepted - proxy.connections_refused == proxy.cuts + 1, (
            "one new connection per cut, and no other")
        assert stats.handled == commands, "a command was handled more than once, or never"
        assert stats.gaps == 0
        assert stats.subscription_failures == 0
        assert stats.handler_errors == 0
        errors = [f"{record.name}: {record.getMessage().splitlines()[0]}"
                  for record in self.caplog.records
                  if record.levelno >= logging.ERROR
                  and record.name.startswith(("asyncio", "botkit.realtime"))]
        assert not errors, f"a cut was handled as an error: {errors[:5]} ({len(errors)} in all)"


@contextlib.asynccontextmanager
async def rig(server: LocalCentrifugo, rooms: list[str], caplog: pytest.LogCaptureFixture, *,
              token_ttl: float | None = None) -> AsyncIterator[Rig]:
    caplog.set_level(logging.WARNING)
    project = new_project()
    async with TcpProxy("127.0.0.1", server.port) as proxy:
        tap = SocketTap(proxy)
        # One connection for all the rooms (the server's limit is raised to match): these
        # cases cut the one connection (test_shards.py cuts one of several).
        runtime = new_runtime(server, bot_yaml(server, project, rooms,
                                               realtime_url=proxy.rewrite(server.ws_url),
                                               rooms_per_connection=len(rooms)),
                              token_ttl=token_ttl)
        yield Rig(server, project, proxy, tap, runtime, caplog)


def _recovers_publications(frame: dict[str, Any]) -> bool:
    """A reply that brings back publications missed while disconnected: a subscribe reply,
    or a connect reply carrying the subscriptions (``connect.subs``)."""
    subscribe = frame.get("subscribe")
    if isinstance(subscribe, dict) and subscribe.get("publications"):
        return True
    subs = frame.get("connect", {}).get("subs") if isinstance(frame.get("connect"), dict) else None
    return isinstance(subs, dict) and any(
        isinstance(sub, dict) and sub.get("publications") for sub in subs.values())


async def test_cut_during_connect(centrifugo: LocalCentrifugo,
                                  caplog: pytest.LogCaptureFixture) -> None:
    async with rig(centrifugo, ["lobby"], caplog) as r:
        # The first connect command is lost on its way to the server.
        first = r.arm("up", is_command("connect"))
        async with serve(r.runtime), human(centrifugo, r.project, "lobby", "user_ann") as ann:
            assert first.fired.is_set()
            room = Room(centrifugo, r.project, "lobby", ann)
            await room.wait_answered([await room.command("first")], timeout=10)
            # Then a reconnect whose connect reply is lost: the server accepted the client,
            # the client never heard of it.
            again = r.arm("down", is_reply("connect"))
            await r.cut_now()
            during = [await room.command(f"while reconnecting {n}") for n in range(5)]
            await again.wait(10)
            await until(connected(r.runtime), timeout=10, what="the bot reconnected")
            after = [await room.command(f"after {n}") for n in range(3)]
            await room.wait_answered(during + after, timeout=10)
            await room.answered_once()
            assert r.cut_states[0] is not ConnectionState.CONNECTED
            assert r.cut_states[2] is not ConnectionState.CONNECTED
            r.check_counters(len(room.sent))


ROOMS = [f"r{n:03d}" for n in range(500)]


async def _bot_in_every_room(server: LocalCentrifugo, project: str) -> set[str]:
    """The rooms whose presence, on the server, lacks the bot."""
    commands = [{"presence": {"channel": chat_channel(project, room)}} for room in ROOMS]
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.post(f"{server.api_url}/batch",
                                   json={"commands": commands, "parallel": True},
                                   headers={"X-API-Key": server.api_key})
    response.raise_for_status()
    replies = response.json()["replies"]
    return {room for room, reply in zip(ROOMS, replies, strict=True)
            if not any(info.get("user") == BOT_USER
                       for info in reply.get("presence", {}).get("presence", {}).values())}


async def test_cut_during_a_500_room_subscribe(make_centrifugo: ServerFactory,
                                              caplog: pytest.LogCaptureFixture) -> None:
    server = make_centrifugo(channel_limit=1000)
    async with rig(server, ROOMS, caplog) as r:
        # Cut when half the first subscribes are answered; then again in the middle of the
        # resubscribe that follows.
        second: list[Trigger] = []

        def first_cut() -> ConnectionState:
            second.append(r.arm("down", is_reply("subscribe"), nth=100))
            return r.state()

        first = r.tap.arm("down", is_reply("subscribe"), nth=250, on_cut=first_cut)
        async with serve(r.runtime, ready_within=40):
            assert first.fired.is_set()
            await second[0].wait(10)
            await until(connected(r.runtime), timeout=10, what="the bot reconnected")
            rooms = ["r000", "r249", "r499"]
            async with (human(server, r.project, rooms[0], "user_a") as a,
                        human(server, r.project, rooms[1], "user_b") as b,
                        human(server, r.project, rooms[2], "user_c") as c):
                checked = [Room(server, r.project, room, person)
                           for room, person in zip(rooms, (a, b, c), strict=True)]
                for room in checked:
                    await room.command(f"hello {room.channel}")
                for room in checked:
                    await room.answered_once()
                assert await _bot_in_every_room(server, r.project) == set()
                r.check_counters(sum(len(room.sent) for room in checked))


@pytest.mark.parametrize("refresh", ["refresh", "sub_refresh"])
async def test_cut_during_a_token_refresh(centrifugo: LocalCentrifugo, refresh: str,
                                          caplog: pytest.LogCaptureFixture) -> None:
    # Tokens live 4 s: the client refreshes them about a second before they expire, and the
    # server closes a connection whose token expired unrefreshed 1 s after it did.
    async with rig(centrifugo, ["lobby"], caplog, token_ttl=4.0) as r:
        trigger = r.arm("up", is_command(refresh))
        async with serve(r.runtime), human(centrifugo, r.project, "lobby", "user_ann") as ann:
            room = Room(centrifugo, r.project, "lobby", ann)
            await room.wait_answered([await room.command("before")], timeout=10)
            await trigger.wait(10)
            during = [await room.command(f"while reconnecting {n}") for n in range(5)]
            await until(connected(r.runtime), timeout=10, what="the bot reconnected")
            # Refreshing works again on the new connection: one is answered, and the
            # connection outlives its first token.
            answered = r.tap.frames["down", refresh]
            await until(lambda: r.tap.frames["down", refresh] > answered, timeout=10,
                        what=f"a {refresh} answered after the reconnect")
            after = [await room.command(f"after {n}") for n in range(3)]
            await room.wait_answered(during + after, timeout=10)
            await room.answered_once()
            r.check_counters(len(room.sent))


async def test_cut_during_recovery(centrifugo: LocalCentrifugo,
                                   caplog: pytest.LogCaptureFixture) -> None:
    async with rig(centrifugo, ["lobby"], caplog) as r:
        async with serve(r.runtime), human(centrifugo, r.project, "lobby", "user_ann") as ann:
            room = Room(centrifugo, r.project, "lobby", ann)
            await room.wait_answered([await room.command("before")], timeout=10)
            # The bot is away (its reconnects are refused) while commands are published ...
            r.proxy.refuse(True)
            await r.cut_now()
            missed = [await room.command(f"missed {n}") for n in range(5)]
            # ... and the reply that brings them back is lost too.
            trigger = r.arm("down", _recovers_publications)
            r.proxy.refuse(False)
            await trigger.wait(15)
            await until(connected(r.runtime), timeout=15, what="the bot reconnected")
            after = [await room.command(f"after {n}") for n in range(3)]
            await room.wait_answered(missed + after, timeout=10)
            await room.answered_once()
            r.check_counters(len(room.sent))


def _is_idle_cue(frame: dict[str, Any]) -> bool:
    """The push of a publication whose text is "idle cue"."""
    pub = frame.get("push", {}).get("pub") if isinstance(frame.get("push"), dict) else None
    data = pub.get("data") if isinstance(pub, dict) else None
    return isinstance(data, dict) and data.get("text") == "idle cue"


@pytest.mark.parametrize("stage", ["subscribe", "refresh", "sub_refresh", "idle"])
async def test_a_terminal_close_mid_command_stops_the_bot(
        centrifugo: LocalCentrifugo, stage: str, caplog: pytest.LogCaptureFixture) -> None:
    """The server closes with 3500 (terminal: never reconnect) instead of answering a
    command: the bot's connection must end for good, for that reason, with no reconnect.
    ("idle": the close comes instead of a push, with no command waiting for a reply.)

    During start-up ("subscribe") that ends the runtime (a bot that never served is a
    configuration mistake); later, the runtime stops that bot and reports why (its status)."""
    async with rig(centrifugo, ["lobby"], caplog, token_ttl=4.0) as r:
        match = _is_idle_cue if stage == "idle" else is_reply(stage)
        trigger = r.tap.arm("down", match, on_cut=r.state, close=(3500, "invalid token"))
        runtime = r.runtime
        task = asyncio.create_task(runtime.run(), name="runtime under test")
        try:
            if stage == "idle":
                await serving(runtime, task)
                async with human(centrifugo, r.project, "lobby", "user_ann") as ann:
                    await ann.say("idle cue")
            await trigger.wait(10)
            stopped = (BotPhase.RESTARTING, BotPhase.STOPPED)
            await until(lambda: task.done() or runtime.status(BOT).phase in stopped,
                        timeout=5, what=lambda: (f"the bot stopped after a terminal close "
                                                 f"(it made {r.proxy.connections_accepted} "
                                                 "connections)"))
            assert r.proxy.connections_accepted == 1, "the bot reconnected after a terminal close"
        finally:
            runtime.stop()
            async with asyncio.timeout(20):
                await asyncio.wait([task])
        error = None if task.cancelled() else task.exception()
        if stage == "subscribe":
            found = _terminal_in(error)
            assert found is not None, f"the runtime did not end on the terminal close: {error!r}"
            assert found.code == 3500
        else:
            assert error is None, f"one bot's terminal close ended the runtime: {error!r}"
            reason = runtime.status(BOT).reason or ""
            assert "3500" in reason, f"the bot's status does not say why it stopped: {reason!r}"


async def serving(runtime: Runtime, task: asyncio.Task[None]) -> None:
    ready = asyncio.ensure_future(runtime.wait_ready())
    try:
        await asyncio.wait([ready, task], timeout=15, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
    assert not task.done(), "the runtime ended before it was ready"
    assert runtime.status(BOT).phase is BotPhase.SERVING


def _terminal_in(error: BaseException | None) -> TerminalDisconnectError | None:
    """The TerminalDisconnectError in ``error``'s causes or exception groups, if any."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, TerminalDisconnectError):
            return current
        if isinstance(current, BaseExceptionGroup):
            todo += current.exceptions
        todo += [current.__cause__, current.__context__]
    return None
