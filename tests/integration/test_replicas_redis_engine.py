"""Replicas in the production topology (issue 12): two Centrifugo v6.9.1 nodes on Centrifugo's
Redis engine, sharing the session's real Redis (database 1; botkit's leases and state are in
database 0), and two ``botkit run`` replicas, each connected to a different node. People sit on
both nodes: a command published on one node reaches the room's owner through Centrifugo's
broker, whichever node that replica is connected to, and its answer reaches both nodes.

Real processes and real signals, as in test_replicas.py; lease_ttl 1s to keep it fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botkit.dev.localserver import ServerSettings, free_port
from botkit.errors import LocalServerError
from tests.integration.test_replicas import held, replica_config, shared_counter, until
from tests.support.botkit_run import BotkitRun, botkit_run
from tests.support.humans import Human, human
from tests.support.redis_server import LocalRedis
from tests.support.runtime_support import new_project
from tests.support.servers import RedisEngineCentrifugo, redis_engine_nodes

ROOMS = [f"room{index}" for index in range(4)]
TTL = 1.0
# Both test plugins over the same rooms: replays answers /echo, probe greets who joins.
BOTS = f"""\
- name: replays
  plugin: tests.plugins.replays
  user_id: bot_replays
  rooms: [{", ".join(ROOMS)}]
- name: probe
  plugin: tests.plugins.cluster_probe
  user_id: bot_probe
  rooms: [{", ".join(ROOMS)}]
"""
UNITS = 2 * len(ROOMS)


@pytest.fixture
def nodes(redis_server: LocalRedis) -> Iterator[list[RedisEngineCentrifugo]]:
    settings = ServerSettings(port=free_port(), history_size=1000, history_ttl="600s",
                              expired_close_delay="1s", expired_sub_close_delay="1s",
                              presence_update_interval="2s")
    # Database 1 and Centrifugo's own prefix: apart from the replicas' database 0.
    found = redis_engine_nodes(settings, f"redis://127.0.0.1:{redis_server.port}", 2, db=1,
                               prefix=f"centrifugo{free_port()}")
    try:
        for node in found:
            try:
                node.start()
            except LocalServerError as exc:
                if os.environ.get("CI"):
                    pytest.fail(f"the real Xshathra Realtime server is required in CI: {exc}",
                                pytrace=False)
                pytest.skip(f"no local Xshathra Realtime server: {exc}")
        # One cluster: each node sees the other through Redis (Centrifugo's info method).
        for node in found:
            await_nodes(node, len(found))
        yield found
    finally:
        for node in found:
            node.close()


def await_nodes(node: RedisEngineCentrifugo, count: int) -> None:
    """Wait (bounded) until ``node`` counts ``count`` nodes in its cluster."""
    deadline = time.monotonic() + 10.0
    names: list[str] = []
    while time.monotonic() < deadline:
        reply = httpx.post(f"{node.api_url}/info", json={},
                           headers={"X-API-Key": node.api_key}, timeout=5.0)
        names = sorted(n["name"] for n in reply.json()["result"]["nodes"])
        if len(names) == count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{node.node_name} sees nodes {names}, not {count}")


class Seen:
    """What every person reads from the bots, with the time it came."""

    def __init__(self, people: list[Human]) -> None:
        self.people = people
        self.messages: dict[str, list[tuple[float, dict[str, Any]]]] = {
            person.user_id: [] for person in people}
        self._readers: list[asyncio.Task[None]] = []

    async def _read(self, person: Human) -> None:
        while True:
            data = await person.inbox.get()
            if str(data.get("senderId", "")).startswith("bot_"):
                self.messages[person.user_id].append((time.monotonic(), data))

    def start(self) -> None:
        self._readers = [asyncio.create_task(self._read(p)) for p in self.people]

    async def stop(self) -> None:
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    def answers(self, user: str) -> Counter[str]:
        """The command id -> answers ``user`` read."""
        return Counter(str(data.get("replyTo")) for _, data in self.messages[user]
                       if data.get("senderId") == "bot_replays")

    def greetings(self, user: str) -> list[str]:
        return [str(data.get("text")) for _, data in self.messages[user]
                if data.get("senderId") == "bot_probe"
                and str(data.get("text", "")).startswith("hello")]


@contextlib.asynccontextmanager
async def people_on(nodes: list[RedisEngineCentrifugo], project: str
                    ) -> AsyncIterator[tuple[dict[tuple[int, str], Human], Seen]]:
    """In each room, one person on each node: ``user_n{node}_{room}``."""
    async with contextlib.AsyncExitStack() as stack:
        found = {(n, room): await stack.enter_async_context(
            human(node, project, room, f"user_n{n}_{room}"))
            for n, node in enumerate(nodes, 1) for room in ROOMS}
        seen = Seen(list(found.values()))
        seen.start()
        try:
            yield found, seen
        finally:
            await seen.stop()


def owns(run: BotkitRun, replica: str, unit: str) -> bool:
    """Whether ``replica`` holds ``unit`` (``bot/room``), by its log."""
    return (run.count(f"replica {replica} takes {unit} ")
            > run.count(f"replica {replica} hands over {unit} "))


def answered_once_by_all(seen: Seen, sent: dict[str, str]) -> bool:
    """Every command in ``sent`` (id -> room) read once by both people of its room."""
    return all(seen.answers(f"user_n{n}_{room}")[ident] >= 1
               for ident, room in sent.items() for n in (1, 2))


@pytest.mark.server
async def test_two_replicas_on_two_redis_engine_nodes_answer_once_greet_once_and_fail_over(
        nodes: list[RedisEngineCentrifugo], redis_server: LocalRedis, tmp_path: Path) -> None:
    node1, node2 = nodes
    project = new_project()
    config_a = replica_config(tmp_path, node1, redis_server, BOTS, project=project,
                              replica="a", ttl=TTL)
    config_b = replica_config(tmp_path, node2, redis_server, BOTS, project=project,
                              replica="b", ttl=TTL)
    sent: dict[str, str] = {}
    async with people_on(nodes, project) as (people, seen), \
            botkit_run(config_a, node1.api_key) as a, \
            botkit_run(config_b, node2.api_key) as b:
        for run in (a, b):
            await run.serving("replays", "probe")
        await until(lambda: held(a, "a") == UNITS // 2 and held(b, "b") == UNITS // 2,
                    f"both replicas hold {UNITS // 2} units each", 20.0)
        # Commands from people on either node, into every room.
        for index in range(40):
            room = ROOMS[index % len(ROOMS)]
            sender = people[(1 + index // len(ROOMS) % 2, room)]
            sent[await sender.say(f"/echo n{index:02d}")] = room
        await until(lambda: answered_once_by_all(seen, sent),
                    "all 40 commands answered on both nodes", 20.0)

        # A person joining on node 2 is greeted once, seen on both nodes.
        async with human(node2, project, "room2", "user_ann"):
            await until(lambda: "hello user_ann #1" in seen.greetings("user_n1_room2"),
                        "ann greeted (read on node 1)", 10.0)
            await asyncio.sleep(2.0)  # a second greeting would show by now

            # SIGKILL of the replica serving replays/room0: the other takes its units;
            # commands sent after the kill from people on the dead replica's node reach the
            # survivor through the other node.
            runs = {"a": (a, 1), "b": (b, 2)}
            victim = next(name for name, (run, _) in runs.items()
                          if owns(run, name, "replays/room0"))
            survivor = "b" if victim == "a" else "a"
            dead, dead_node = runs[victim]
            alive = runs[survivor][0]
            dead_rooms = {room for room in ROOMS if owns(dead, victim, f"replays/{room}")}
            assert await dead.stop(signal.SIGKILL) == -signal.SIGKILL
            killed = time.monotonic()
            after: dict[str, str] = {}
            for index in range(24):
                room = ROOMS[index % len(ROOMS)]
                after[await people[(dead_node, room)].say(f"/echo k{index:02d}")] = room
                await asyncio.sleep(0.1)
            await until(lambda: held(alive, survivor) == UNITS,
                        f"replica {survivor} takes all {UNITS} units", TTL + 5.0)
            sent.update(after)
            await until(lambda: answered_once_by_all(seen, sent),
                        "every command answered after the kill", 20.0)
            await asyncio.sleep(1.0)  # a second answer would show by now
        assert await alive.stop(signal.SIGTERM) == 0, alive.log()

    for n in (1, 2):
        for room in ROOMS:
            user = f"user_n{n}_{room}"
            answers = seen.answers(user)
            wanted = {ident for ident, r in sent.items() if r == room}
            assert {ident: answers[ident] for ident in wanted} == dict.fromkeys(wanted, 1), user
            assert set(answers) == wanted, user  # nothing answered from another room
        assert seen.greetings(f"user_n{n}_room2") == ["hello user_ann #1"]
    assert await shared_counter(redis_server, project, "greeted:room2:user_ann") == 1
    # Failover: from the kill to the first answer in one of the dead replica's rooms.
    first = min(at for n in (1, 2) for room in dead_rooms
                for at, data in seen.messages[f"user_n{n}_{room}"]
                if at > killed and data.get("senderId") == "bot_replays")
    print(f"failover across nodes: first answer {first - killed:.2f}s after the kill")
    assert first - killed <= TTL + 2.0
    assert alive.count(f"replica {survivor} loses ") == 0
