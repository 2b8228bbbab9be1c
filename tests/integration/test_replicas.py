"""Replicas on Redis (issue 12), with real ``botkit run`` processes, a real Redis and real
signals: two replicas share six rooms, each command is answered exactly once, a replica killed
(SIGKILL) or paused (SIGSTOP) hands its rooms to the other within the lease, a job fires once
cluster-wide and a person joining is greeted once.

Leases are short (``lease_ttl: 1s``) to keep the tests fast; every wait is bounded and every
process is killed at the end, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from botkit.dev.localserver import LocalCentrifugo
from tests.support.botkit_run import ROOT, BotkitRun, botkit_run, with_top_level
from tests.support.humans import Human, human
from tests.support.redis_server import LocalRedis
from tests.support.runtime_support import bots_yaml, new_project
from tests.support.waits import eventually

ROOMS = [f"room{index}" for index in range(6)]
TTL = 1.0
REPLAYS = f"""\
- name: replays
  plugin: tests.plugins.replays
  user_id: bot_replays
  rooms: [{", ".join(ROOMS)}]
"""


def replica_config(tmp_path: Path, server: LocalCentrifugo, redis: LocalRedis, bots: str, *,
                   project: str, replica: str, ttl: float = TTL) -> Path:
    """bots.yaml of one replica: the shared Redis, its own name and its own job file."""
    text = bots_yaml(server, bots, project_id=project,
                     state_path=str(tmp_path / f"{replica}.sqlite"))
    config = tmp_path / f"{replica}.yaml"
    config.write_text(with_top_level(text, f"cluster: {{redis_url: '{redis.url}', "
                                           f"lease_ttl: {ttl}s, replica_id: {replica}}}"))
    return config


def held(run: BotkitRun, replica: str) -> int:
    """How many units ``replica`` holds, by its log."""
    return (run.count(f"replica {replica} takes ") - run.count(f"replica {replica} hands over ")
            - run.count(f"replica {replica} loses "))


async def until(condition: Callable[[], bool], what: str, timeout: float) -> None:
    await eventually(condition, what, timeout=timeout)


class Rooms:
    """One person in each room, reading everything the bot says there."""

    def __init__(self, people: dict[str, Human], bot_user: str) -> None:
        self.people = people
        self.bot_user = bot_user
        self.replies: Counter[str] = Counter()  # the command's id -> answers seen
        self.arrivals: list[tuple[float, str]] = []  # (monotonic time, room) of each answer
        self._readers: list[asyncio.Task[None]] = []

    async def _read(self, person: Human) -> None:
        while True:
            data = await person.inbox.get()
            if data.get("senderId") == self.bot_user:
                self.replies[str(data.get("replyTo"))] += 1
                self.arrivals.append((time.monotonic(), person.room))

    def start(self) -> None:
        self._readers = [asyncio.create_task(self._read(person))
                         for person in self.people.values()]

    async def stop(self) -> None:
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    async def answered(self, sent: list[str], timeout: float) -> None:
        await until(lambda: all(self.replies[ident] for ident in sent),
                    f"every one of {len(sent)} commands answered "
                    f"({sum(1 for ident in sent if self.replies[ident])} were)", timeout)


@contextlib.asynccontextmanager
async def people(server: LocalCentrifugo, project: str) -> AsyncIterator[Rooms]:
    async with contextlib.AsyncExitStack() as stack:
        found = {room: await stack.enter_async_context(
            human(server, project, room, f"user_{room}")) for room in ROOMS}
        rooms = Rooms(found, "bot_replays")
        rooms.start()
        try:
            yield rooms
        finally:
            await rooms.stop()


async def botkit_status(config: Path, key: str) -> tuple[int, str]:
    """``botkit status -c config``: its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botkit", "status", "-c", str(config), cwd=ROOT,
        env={**os.environ, "TEST_KEY": key, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(30.0):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def two_replicas_balanced(a: BotkitRun, b: BotkitRun) -> None:
    await until(lambda: held(a, "a") + held(b, "b") == len(ROOMS) and held(a, "a") == 3
                and held(b, "b") == 3, "both replicas hold 3 rooms each", 20.0)


@pytest.mark.server
async def test_two_replicas_answer_300_commands_across_6_rooms_exactly_once(
        make_centrifugo: Callable[..., LocalCentrifugo], redis_server: LocalRedis,
        tmp_path: Path) -> None:
    server = make_centrifugo(history_size=1000, history_ttl="600s")
    project = new_project()
    configs = [replica_config(tmp_path, server, redis_server, REPLAYS, project=project,
                              replica=name) for name in ("a", "b")]
    async with people(server, project) as rooms, \
            botkit_run(configs[0], server.api_key) as a:
        await a.serving("replays")
        await until(lambda: held(a, "a") == 6, "replica a alone holds the 6 rooms", 15.0)
        async with botkit_run(configs[1], server.api_key) as b:
            await b.serving("replays")
            await two_replicas_balanced(a, b)
            code, status = await botkit_status(configs[0], server.api_key)
            assert code == 0, status
            assert "2 replica(s), 6 unit(s)" in status
            assert "replica a: 3 unit(s)" in status
            assert "replica b: 3 unit(s)" in status
            sent = []
            for index in range(300):
                room = ROOMS[index % len(ROOMS)]
                sent.append(await rooms.people[room].say(f"/echo c{index:03d}"))
            await rooms.answered(sent, 30.0)
            await asyncio.sleep(1.0)  # a second answer to anything would show by now
            assert await b.stop(signal.SIGTERM) == 0, b.log()
        assert await a.stop(signal.SIGTERM) == 0, a.log()
    twice = {ident: count for ident, count in rooms.replies.items() if count > 1}
    assert not twice, twice
    assert all(rooms.replies[ident] == 1 for ident in sent)
    # Both held units while the commands came, and said so in the log.
    assert a.count("replica a takes ") >= 3
    assert b.count("replica b takes ") >= 3


async def stream(rooms: Rooms, count: int, pause: float, sent: list[str]) -> None:
    """``count`` commands round the rooms, one each ``pause`` seconds."""
    for index in range(count):
        room = ROOMS[index % len(ROOMS)]
        sent.append(await rooms.people[room].say(f"/echo s{index:03d}"))
        await asyncio.sleep(pause)


@pytest.mark.server
async def test_sigkill_of_a_replica_mid_stream_moves_its_rooms_within_the_lease(
        make_centrifugo: Callable[..., LocalCentrifugo], redis_server: LocalRedis,
        tmp_path: Path) -> None:
    server = make_centrifugo(history_size=1000, history_ttl="600s")
    project = new_project()
    configs = [replica_config(tmp_path, server, redis_server, REPLAYS, project=project,
                              replica=name) for name in ("a", "b")]
    async with people(server, project) as rooms, \
            botkit_run(configs[0], server.api_key) as a, \
            botkit_run(configs[1], server.api_key) as b:
        await a.serving("replays")
        await b.serving("replays")
        await two_replicas_balanced(a, b)
        sent: list[str] = []
        sender = asyncio.create_task(stream(rooms, 240, 0.02, sent))
        try:
            await until(lambda: len(sent) >= 80, "80 commands sent", 20.0)
            b_rooms = {room for room in ROOMS if b.count(f"replica b takes replays/{room} ")
                       > b.count(f"replica b hands over replays/{room} ")}
            assert await b.stop(signal.SIGKILL) == -signal.SIGKILL
            killed = time.monotonic()
            await until(lambda: held(a, "a") == 6, "replica a takes the 6 rooms", 10.0)
            moved = time.monotonic() - killed
            await sender
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        await rooms.answered(sent, 30.0)
        await asyncio.sleep(1.0)  # a second answer to anything would show by now
        assert await a.stop(signal.SIGTERM) == 0, a.log()
    assert moved <= TTL + 2.0, moved
    # Failover time: from the kill to the first answer in one of b's rooms (from a). The
    # issue's target is lease_ttl + 1 s; the test allows a loaded machine another second.
    first_answer = min(at for at, room in rooms.arrivals if room in b_rooms and at > killed)
    failover = first_answer - killed
    print(f"failover: rooms moved in {moved:.2f}s, first answer after {failover:.2f}s")
    assert failover <= TTL + 2.0, failover
    twice = {ident: count for ident, count in rooms.replies.items() if count > 1}
    assert not twice, twice
    assert a.count("replica a loses ") == 0  # nothing was taken from the survivor


class PositionWatch:
    """Reads every room's stored position from Redis, again and again: any offset lower than
    one read before (in the same epoch) is a position moved backwards."""

    def __init__(self, redis: LocalRedis, project: str) -> None:
        from botkit.config import ClusterConfig
        from botkit.state.redis import RedisStateStore, open_redis
        self._client = open_redis(ClusterConfig.model_validate({"redis_url": redis.url}))
        self._store = RedisStateStore(self._client, project)
        self.highest: dict[str, tuple[str, int]] = {}
        self.backwards: list[tuple[str, int, int]] = []
        self.reads = 0

    async def run(self) -> None:
        from botkit.runtime.positions import NAMESPACE
        await self._store.open()
        while True:
            for room in ROOMS:
                row: Any = await self._store.get(NAMESPACE, f"replays:{room}")
                if not isinstance(row, dict):
                    continue
                epoch, offset = row["epoch"], row["offset"]
                seen = self.highest.get(room)
                if seen is not None and seen[0] == epoch and offset < seen[1]:
                    self.backwards.append((room, seen[1], offset))
                if seen is None or seen[0] != epoch or offset > seen[1]:
                    self.highest[room] = (epoch, offset)
            self.reads += 1
            await asyncio.sleep(0.05)

    async def aclose(self) -> None:
        await self._client.aclose()


@pytest.mark.server
async def test_a_replica_paused_past_its_lease_answers_nothing_twice_nor_moves_back(
        make_centrifugo: Callable[..., LocalCentrifugo], redis_server: LocalRedis,
        tmp_path: Path) -> None:
    server = make_centrifugo(history_size=1000, history_ttl="600s")
    project = new_project()
    configs = [replica_config(tmp_path, server, redis_server, REPLAYS, project=project,
                              replica=name) for name in ("a", "b")]
    watch = PositionWatch(redis_server, project)
    watcher = asyncio.create_task(watch.run())
    try:
        async with people(server, project) as rooms, \
                botkit_run(configs[0], server.api_key) as a, \
                botkit_run(configs[1], server.api_key) as b:
            await a.serving("replays")
            await b.serving("replays")
            await two_replicas_balanced(a, b)
            assert b.process is not None
            sent: list[str] = []
            sender = asyncio.create_task(stream(rooms, 300, 0.02, sent))
            try:
                await until(lambda: len(sent) >= 60, "60 commands sent", 20.0)
                b.process.send_signal(signal.SIGSTOP)
                try:
                    await until(lambda: held(a, "a") == 6, "replica a takes the 6 rooms",
                                TTL + 3.0)
                    await asyncio.sleep(2 * TTL)  # well past b's lease
                finally:
                    b.process.send_signal(signal.SIGCONT)
                await b.wait_for("replica b loses ", timeout=10.0)
                await sender
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
            await rooms.answered(sent, 30.0)
            await two_replicas_balanced(a, b)  # b takes its share again
            await asyncio.sleep(1.0)
            assert await b.stop(signal.SIGTERM) == 0, b.log()
            assert await a.stop(signal.SIGTERM) == 0, a.log()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher  # its own failure shows
        await watch.aclose()
    twice = {ident: count for ident, count in rooms.replies.items() if count > 1}
    assert not twice, twice
    assert watch.reads > 20
    assert len(watch.highest) == len(ROOMS)
    assert not watch.backwards, watch.backwards


PROBE = f"""\
- name: probe
  plugin: tests.plugins.cluster_probe
  user_id: bot_probe
  rooms: [{", ".join(ROOMS)}]
"""


async def shared_counter(redis: LocalRedis, project: str, key: str) -> int:
    from botkit.config import ClusterConfig
    from botkit.state.redis import RedisStateStore, open_redis
    client = open_redis(ClusterConfig.model_validate({"redis_url": redis.url}))
    try:
        async with RedisStateStore(client, project) as store:
            value = await store.get("probe", key, 0)
    finally:
        await client.aclose()
    assert isinstance(value, int), value
    return value


@pytest.mark.server
async def test_a_job_across_two_replicas_fires_once_cluster_wide(
        centrifugo: LocalCentrifugo, redis_server: LocalRedis, tmp_path: Path) -> None:
    project = new_project()
    configs = [replica_config(tmp_path, centrifugo, redis_server, PROBE, project=project,
                              replica=name) for name in ("a", "b")]
    async with human(centrifugo, project, "room3", "user_ivy") as ivy, \
            botkit_run(configs[0], centrifugo.api_key) as a, \
            botkit_run(configs[1], centrifugo.api_key) as b:
        await a.serving("probe")
        await b.serving("probe")
        await until(lambda: held(a, "a") == 3 and held(b, "b") == 3,
                    "both replicas hold 3 rooms each", 20.0)
        began = time.monotonic()
        ticks = await ivy.quiet_from("bot_probe", 10.0)
        assert await b.stop(signal.SIGTERM) == 0, b.log()
        assert await a.stop(signal.SIGTERM) == 0, a.log()
        elapsed = time.monotonic() - began
    counts = [int(str(tick["text"]).split()[1]) for tick in ticks]
    # Consecutive: no fire ran twice (its second run would have counted, and been absorbed).
    assert counts == list(range(counts[0], counts[0] + len(counts))), counts
    assert 4 <= len(counts) <= 6, counts
    fires = await shared_counter(redis_server, project, "tick-fires")
    everywhere = await shared_counter(redis_server, project, "everywhere-fires")
    # A job without rooms fires in each of the bot's 6 rooms, each on the room's owner only
    # (a fire on each replica would double it).
    assert fires * 6 - 6 <= everywhere <= fires * 6 + 6, (everywhere, fires, elapsed)


@pytest.mark.server
async def test_a_person_joining_a_room_served_by_two_replicas_is_greeted_once(
        centrifugo: LocalCentrifugo, redis_server: LocalRedis, tmp_path: Path) -> None:
    project = new_project()
    configs = [replica_config(tmp_path, centrifugo, redis_server, PROBE, project=project,
                              replica=name) for name in ("a", "b")]
    async with human(centrifugo, project, "room2", "user_watcher") as watcher, \
            botkit_run(configs[0], centrifugo.api_key) as a, \
            botkit_run(configs[1], centrifugo.api_key) as b:
        await a.serving("probe")
        await b.serving("probe")
        await until(lambda: held(a, "a") == 3 and held(b, "b") == 3,
                    "both replicas hold 3 rooms each", 20.0)
        async with human(centrifugo, project, "room2", "user_ann"):
            greetings = await watcher.quiet_from("bot_probe", 4.0)
            # A deploy: b hands its rooms over; whoever serves room2 now knows ann was there
            # (the present users travel with the position) and does not greet her again.
            assert await b.stop(signal.SIGTERM) == 0, b.log()
            await until(lambda: held(a, "a") == 6, "replica a takes the 6 rooms", TTL + 3.0)
            greetings += await watcher.quiet_from("bot_probe", 3.0)
        assert await a.stop(signal.SIGTERM) == 0, a.log()
    texts = [str(greeting["text"]) for greeting in greetings]
    assert texts == ["hello user_ann #1"], texts
    assert await shared_counter(redis_server, project, "greeted:room2:user_ann") == 1


@pytest.mark.server
async def test_a_redis_restart_under_load_moves_no_room_and_answers_nothing_twice(
        make_centrifugo: Callable[..., LocalCentrifugo], make_redis: Callable[[], LocalRedis],
        tmp_path: Path) -> None:
    server = make_centrifugo(history_size=1000, history_ttl="600s")
    redis = make_redis()
    project = new_project()
    configs = [replica_config(tmp_path, server, redis, REPLAYS, project=project, replica=name,
                              ttl=2.0) for name in ("a", "b")]
    async with people(server, project) as rooms, \
            botkit_run(configs[0], server.api_key) as a, \
            botkit_run(configs[1], server.api_key) as b:
        await a.serving("replays")
        await b.serving("replays")
        await two_replicas_balanced(a, b)
        sent: list[str] = []
        sender = asyncio.create_task(stream(rooms, 200, 0.02, sent))
        try:
            await until(lambda: len(sent) >= 60, "60 commands sent", 20.0)
            await asyncio.to_thread(redis.stop)
            await asyncio.to_thread(redis.start)  # empty: no persistence
            await sender
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        await rooms.answered(sent, 30.0)
        await asyncio.sleep(1.0)
        assert await b.stop(signal.SIGTERM) == 0, b.log()
        assert await a.stop(signal.SIGTERM) == 0, a.log()
    twice = {ident: count for ident, count in rooms.replies.items() if count > 1}
    assert not twice, twice
    # Each kept the rooms it held: the restart was shorter than the lease.
    assert a.count("replica a loses ") == 0, a.log()
    assert b.count("replica b loses ") == 0, b.log()


async def bot_connections(server: LocalCentrifugo, project: str, user: str) -> dict[str, list[str]]:
    """Room → the connections (client ids) of ``user`` in the room's presence."""
    import httpx

    from botkit.tokens import chat_channel
    commands = [{"presence": {"channel": chat_channel(project, room)}} for room in ROOMS]
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.post(f"{server.api_url}/batch",
                                   json={"commands": commands, "parallel": True},
                                   headers={"X-API-Key": server.api_key})
    response.raise_for_status()
    return {room: sorted(info["client"]
                         for info in reply.get("presence", {}).get("presence", {}).values()
                         if info.get("user") == user)
            for room, reply in zip(ROOMS, response.json()["replies"], strict=True)}


@pytest.mark.server
async def test_replicas_place_the_rooms_they_take_on_their_connections(
        centrifugo: LocalCentrifugo, redis_server: LocalRedis, tmp_path: Path) -> None:
    # Two rooms per connection: the rooms a replica takes and gives back at run time go to
    # (and leave) its connections, each room on exactly one connection of the bot cluster-wide.
    project = new_project()
    bots = REPLAYS + "  limits: {rooms_per_connection: 2}\n"
    configs = [replica_config(tmp_path, centrifugo, redis_server, bots, project=project,
                              replica=name) for name in ("a", "b")]

    async def one_connection_per_room(at_least: int) -> None:
        """Each room on one bot connection, at most 2 rooms on one, and ``at_least``
        connections in all."""
        found: dict[str, list[str]] = {}

        async def check() -> bool:
            found.update(await bot_connections(centrifugo, project, "bot_replays"))
            if not all(len(clients) == 1 for clients in found.values()):
                return False
            per_connection = Counter(clients[0] for clients in found.values())
            return max(per_connection.values()) <= 2 and len(per_connection) >= at_least

        deadline = time.monotonic() + 10.0
        while not await check():
            assert time.monotonic() < deadline, (
                f"not one bot connection per room, 2 rooms per connection, on {at_least} "
                f"connections or more: {found}")
            await asyncio.sleep(0.1)

    async with people(centrifugo, project) as rooms, \
            botkit_run(configs[0], centrifugo.api_key) as a:
        await a.serving("replays")
        await until(lambda: held(a, "a") == 6, "replica a alone holds the 6 rooms", 15.0)
        await one_connection_per_room(3)
        async with botkit_run(configs[1], centrifugo.api_key) as b:
            await b.serving("replays")
            await two_replicas_balanced(a, b)
            # 3 rooms each: on 2 connections or more each.
            await one_connection_per_room(4)
            sent = [await rooms.people[room].say(f"/echo {room}") for room in ROOMS]
            await rooms.answered(sent, 15.0)
            assert await b.stop(signal.SIGTERM) == 0, b.log()
        await until(lambda: held(a, "a") == 6, "replica a takes the 6 rooms", TTL + 3.0)
        # Back on a's own 3 connections: the rooms fill the places they left.
        await one_connection_per_room(3)
        sent += [await rooms.people[room].say(f"/echo again {room}") for room in ROOMS]
        await rooms.answered(sent, 15.0)
        await asyncio.sleep(0.5)  # a second answer to anything would show by now
        assert await a.stop(signal.SIGTERM) == 0, a.log()
    assert all(rooms.replies[ident] == 1 for ident in sent), rooms.replies
