"""A bot in more rooms than one connection may hold (runtime/shards.py), against servers at
their DEFAULT channel limit (128 per connection, Centrifugo's and the hub's): the bot opens as
many connections as its rooms need, each room on exactly one; a cut of one connection pauses
only its rooms; a server with a lower limit than ``limits.rooms_per_connection`` makes the bot
split further (said once), and every room is served.

Runs against the real server and the dev hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from botkit.dev.hub import LocalHub
from botkit.dev.localserver import LocalCentrifugo
from botkit.ops.metrics import snapshot
from botkit.ops.readiness import readiness
from botkit.realtime import ConnectionState
from botkit.runtime.supervisor import Runtime
from botkit.tokens import chat_channel
from tests.support.faultbot import (
    BOT,
    BOT_USER,
    Room,
    bot_yaml,
    client_of,
    new_runtime,
    serve,
    stats_of,
    until,
)
from tests.support.humans import human
from tests.support.runtime_support import bots_yaml, new_project
from tests.support.servers import TunedCentrifugo
from tests.support.tcp_proxy import TcpProxy
from tests.support.ws_tap import SocketTap

pytestmark = pytest.mark.server

ServerFactory = Callable[..., LocalCentrifugo]
ROOMS = [f"r{n:03d}" for n in range(500)]


async def _bot_connections(server: LocalCentrifugo, project: str,
                           rooms: list[str]) -> dict[str, list[str]]:
    """Room → the bot's connections (client ids) in its presence, as the server says."""
    commands = [{"presence": {"channel": chat_channel(project, room)}} for room in rooms]
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.post(f"{server.api_url}/batch",
                                   json={"commands": commands, "parallel": True},
                                   headers={"X-API-Key": server.api_key})
    response.raise_for_status()
    replies = response.json()["replies"]
    return {room: sorted(info["client"]
                         for info in reply.get("presence", {}).get("presence", {}).values()
                         if info.get("user") == BOT_USER)
            for room, reply in zip(rooms, replies, strict=True)}


def _no_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors = [f"{record.name}: {record.getMessage().splitlines()[0]}"
              for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors, errors[:5]


async def _each_room_on_one_connection(runtime: Runtime, server: LocalCentrifugo,
                                       project: str, rooms: list[str], per: int) -> None:
    client = client_of(runtime)
    shards = client.shards
    placed = [channel for shard in shards for channel in shard.channels]
    assert sorted(placed) == sorted(chat_channel(project, room) for room in rooms), (
        "each room on exactly one connection")
    assert all(len(shard.channels) <= per for shard in shards)
    assert len(shards) == -(-len(rooms) // per)
    ids = {shard.client.client_id for shard in shards}
    assert len(ids) == len(shards)
    # The server agrees: one connection of the bot's user in each room, never two (presence
    # answers and user.joined would count the others as people), and it is the room's shard.
    present = await _bot_connections(server, project, rooms)
    wrong = {room: clients for room, clients in present.items() if len(clients) != 1}
    assert not wrong, f"rooms without exactly one bot connection: {list(wrong.items())[:3]}"
    for room, clients in present.items():
        shard = client.shard_of(chat_channel(project, room))
        assert shard is not None
        assert clients == [shard.client.client_id]


async def test_a_bot_in_500_rooms_at_the_default_channel_limit(
        centrifugo: LocalCentrifugo, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    project = new_project()
    runtime = new_runtime(centrifugo, bot_yaml(centrifugo, project, ROOMS))
    async with serve(runtime, ready_within=40):
        await _each_room_on_one_connection(runtime, centrifugo, project, ROOMS, 128)
        async with (human(centrifugo, project, ROOMS[0], "user_first") as first,
                    human(centrifugo, project, ROOMS[-1], "user_last") as last):
            rooms = [Room(centrifugo, project, ROOMS[0], first),
                     Room(centrifugo, project, ROOMS[-1], last)]
            for room in rooms:
                await room.command("ping")
            for room in rooms:
                await room.answered_once()
        stats = stats_of(runtime)
        assert stats.subscription_failures == 0
        assert client_of(runtime).state is ConnectionState.CONNECTED
    _no_errors(caplog)


@contextlib.asynccontextmanager
async def _proxied(server: LocalCentrifugo, rooms: list[str]) -> AsyncIterator[
        tuple[str, TcpProxy, SocketTap, Runtime]]:
    project = new_project()
    async with TcpProxy("127.0.0.1", server.port) as proxy:
        tap = SocketTap(proxy)
        runtime = new_runtime(server, bot_yaml(server, project, rooms,
                                               realtime_url=proxy.rewrite(server.ws_url)))
        yield project, proxy, tap, runtime


async def test_a_cut_of_one_connection_pauses_only_its_rooms(
        centrifugo: LocalCentrifugo, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with _proxied(centrifugo, ROOMS) as (project, proxy, tap, runtime), \
            serve(runtime, ready_within=40):
        client = client_of(runtime)
        cut = client.shard_of(chat_channel(project, ROOMS[0]))
        other = client.shard_of(chat_channel(project, ROOMS[-1]))
        assert cut is not None
        assert other is not None
        assert cut is not other
        number = next(n for n, cid in tap.client_ids.items() if cid == cut.client.client_id)
        async with (human(centrifugo, project, ROOMS[0], "user_cut") as cut_human,
                    human(centrifugo, project, ROOMS[-1], "user_other") as other_human):
            cut_room = Room(centrifugo, project, ROOMS[0], cut_human)
            other_room = Room(centrifugo, project, ROOMS[-1], other_human)
            await cut_room.wait_answered([await cut_room.command("before")], timeout=10)
            await other_room.wait_answered([await other_room.command("before")], timeout=10)
            # The cut connection stays away (its reconnects are refused) while both rooms talk.
            proxy.refuse(True)
            assert await proxy.cut_connection(number)
            await until(lambda: cut.state is not ConnectionState.CONNECTED, timeout=5,
                        what="the cut connection noticed")
            missed = [await cut_room.command(f"while cut {n}") for n in range(3)]
            latencies = []
            for n in range(5):
                sent = time.monotonic()
                await other_room.wait_answered([await other_room.command(f"meanwhile {n}")],
                                               timeout=5)
                latencies.append(time.monotonic() - sent)
            # Answered while the cut connection was still down: the other rooms never paused.
            assert cut.state is not ConnectionState.CONNECTED
            assert max(latencies) < 2.0, latencies
            # Operators see it: not ready (all connections must be up), one connection down,
            # and which rooms are not subscribed.
            ready, report = readiness(runtime)
            assert not ready
            bot = report["bots"][BOT]
            assert bot["connections"] == 4
            assert bot["reason"].endswith("3 of 4 connections up"), bot["reason"]
            assert bot["rooms"][ROOMS[-1]]["subscribed"] is True
            assert bot["rooms"][ROOMS[0]]["subscribed"] is False
            numbers = snapshot(runtime).bots[BOT]
            assert (numbers.connected, numbers.connections, numbers.connections_up) == (0, 4, 3)
            assert set(await cut_room.replies()).isdisjoint(missed)
            proxy.refuse(False)
            await until(lambda: cut.state is ConnectionState.CONNECTED, timeout=30,
                        what="the cut connection came back")
            await cut_room.wait_answered(missed, timeout=15)
            assert readiness(runtime)[0]
            await cut_room.answered_once()
            await other_room.answered_once()
        # Only the cut connection came back, and only its rooms were subscribed again.
        assert [shard.client.reconnects for shard in client.shards] == [
            int(shard is cut) for shard in client.shards]
        assert stats_of(runtime).reconnects == 1
        new = [n for n in tap.client_ids if n > len(client.shards)]
        assert len(new) == 1
        assert tap.by_connection[new[0], "up", "subscribe"] == len(cut.channels)
        stats = stats_of(runtime)
        assert stats.gaps == 0
        assert stats.subscription_failures == 0
        assert stats.handled == len(cut_room.sent) + len(other_room.sent)
    _no_errors(caplog)


async def test_a_limit_refusal_splits_the_rooms_and_says_so_once(
        make_centrifugo: ServerFactory, caplog: pytest.LogCaptureFixture) -> None:
    # The bot plans 1,000 rooms per connection; the server holds 100.
    caplog.set_level(logging.INFO)
    server = make_centrifugo(channel_limit=100)
    rooms = ROOMS[:300]
    project = new_project()
    runtime = new_runtime(server, bot_yaml(server, project, rooms, rooms_per_connection=1000))
    async with serve(runtime, ready_within=40):
        client = client_of(runtime)
        assert client.capacity == 100
        await _each_room_on_one_connection(runtime, server, project, rooms, 100)
        async with (human(server, project, rooms[0], "user_first") as first,
                    human(server, project, rooms[-1], "user_last") as last):
            checked = [Room(server, project, rooms[0], first),
                       Room(server, project, rooms[-1], last)]
            for room in checked:
                await room.command("ping")
            for room in checked:
                await room.answered_once()
        assert stats_of(runtime).subscription_failures == 0
    said = [record for record in caplog.records
            if "at most 100 rooms per connection" in record.getMessage()]
    assert len(said) == 1, "the split is said once"
    # No line per refused room anywhere (the realtime client leaves a 106 to the runtime).
    assert not [record for record in caplog.records
                if record.levelno >= logging.INFO and "limit exceeded" in record.getMessage()
                and record is not said[0]]
    _no_errors(caplog)


async def test_bot_connections_open_a_few_at_a_time(
        centrifugo: LocalCentrifugo) -> None:
    # 1,000 rooms: 8 connections, never more than OPEN_CONCURRENCY opening at once.
    from botkit.runtime.shards import OPEN_CONCURRENCY
    rooms = [f"o{n:04d}" for n in range(1000)]
    async with _proxied(centrifugo, rooms) as (_, proxy, tap, runtime):
        most = 0

        def opening() -> int:
            if not runtime.runners:
                return 0  # not started yet
            return sum(1 for shard in client_of(runtime).shards
                       if shard.started and shard.state is not ConnectionState.CONNECTED)

        async def watch() -> None:
            nonlocal most
            while True:
                most = max(most, opening())
                await asyncio.sleep(0.001)

        watcher = asyncio.create_task(watch())
        try:
            async with serve(runtime, ready_within=60):
                # Until ready (the stop closes them all at once, which is no opening).
                watcher.cancel()
                await asyncio.wait([watcher])
                assert len(client_of(runtime).shards) == 8
        finally:
            watcher.cancel()
            await asyncio.wait([watcher])
        assert proxy.connections_accepted == 8
        assert 1 <= most <= OPEN_CONCURRENCY
        assert len(tap.client_ids) == 8


def _lower_limit(server: LocalCentrifugo, limit: int) -> None:
    """Restart ``server`` on its port with a lower channel limit (memory engine: history and
    presence are gone, as after any restart)."""
    if isinstance(server, LocalHub):
        server.settings = dataclasses.replace(server.settings, channel_limit=limit)
    else:
        assert isinstance(server, TunedCentrifugo)
        server.channel_limit = limit
    server.restart()


async def test_a_limit_refusal_after_a_reconnect_moves_the_refused_rooms(
        make_centrifugo: ServerFactory, caplog: pytest.LogCaptureFixture) -> None:
    # Two connections of 200 and 100 rooms; the server comes back holding 100 per connection:
    # the first connection's resubscribe is refused for half its rooms, which move.
    caplog.set_level(logging.INFO)
    server = make_centrifugo(channel_limit=200)
    rooms = ROOMS[:300]
    project = new_project()
    runtime = new_runtime(server, bot_yaml(server, project, rooms, rooms_per_connection=200))
    async with serve(runtime, ready_within=40):
        client = client_of(runtime)
        assert [len(shard.channels) for shard in client.shards] == [200, 100]
        moved = sorted(client.shards[0].channels)[-1]
        await asyncio.to_thread(_lower_limit, server, 100)
        await until(lambda: len(client.shards) == 3
                    and client.state is ConnectionState.CONNECTED
                    and all(client.is_subscribed(chat_channel(project, room))
                            for room in rooms),
                    timeout=30, what="every room subscribed again, on three connections")
        assert client.capacity == 100
        await _each_room_on_one_connection(runtime, server, project, rooms, 100)
        assert client.shard_of(moved) is client.shards[2]
        room_of_moved = moved.rsplit(":", 1)[-1]
        async with (human(server, project, room_of_moved, "user_moved") as one,
                    human(server, project, rooms[-1], "user_last") as last):
            checked = [Room(server, project, room_of_moved, one),
                       Room(server, project, rooms[-1], last)]
            for room in checked:
                await room.command("ping")
            for room in checked:
                await room.answered_once()
        assert stats_of(runtime).subscription_failures == 0
    said = [record for record in caplog.records
            if "at most 100 rooms per connection" in record.getMessage()]
    assert len(said) == 1, "the split is said once"
    _no_errors(caplog)


async def test_a_restart_catches_up_every_connection_s_rooms_from_their_stored_positions(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    rooms = ROOMS[:300]  # 3 connections at the default limit
    project = new_project()
    yaml_text = bots_yaml(centrifugo, textwrap.dedent(f"""\
        - name: {BOT}
          plugin: tests.plugins.flaky
          user_id: {BOT_USER}
          rooms: [{", ".join(rooms)}]
        """), project_id=project, state_path=str(tmp_path / "state.sqlite"))
    edges = [rooms[0], rooms[-1]]  # on the first connection and on the last
    async with (human(centrifugo, project, edges[0], "user_first") as first,
                human(centrifugo, project, edges[1], "user_last") as last):
        checked = [Room(centrifugo, project, edges[0], first),
                   Room(centrifugo, project, edges[1], last)]
        runtime = new_runtime(centrifugo, yaml_text)
        async with serve(runtime, ready_within=40):
            assert len(client_of(runtime).shards) == 3
            for room in checked:
                await room.wait_answered([await room.command("before")], timeout=10)
        # Sent while the bot is away: the next start handles them first, once each.
        missed = [await room.command("while away") for room in checked]
        runtime = new_runtime(centrifugo, yaml_text)
        async with serve(runtime, ready_within=40):
            for room, ident in zip(checked, missed, strict=True):
                await room.wait_answered([ident], timeout=15)
            for room in checked:
                await room.answered_once()
            stats = stats_of(runtime)
            assert stats.handled == 4  # the two missed and the two barriers
            assert stats.gaps == 0
