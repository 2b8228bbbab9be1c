"""What S11 (failover) and S12 (replica throughput) share: a real Redis started by the
orchestrator, ``botkit run`` replicas as real processes (``tests.support.botkit_run``), and
the people: one raw WebSocket connection subscribed to every room, publishing commands and
timing the answers (lighter than a client SDK per room, so the load generator is not what
limits S12).

Each replica answers ``/echo WORD`` with ``WORD REPLICA`` (:mod:`bench.replica_bot`), so the
people know which replica answered.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import BOT_USER, HUMAN, channel, now
from bench.control import tokens

if TYPE_CHECKING:
    from bench.run import Bench
    from tests.support.botkit_run import BotkitRun
    from tests.support.redis_server import LocalRedis

BOT = "echo"


def start_redis(bench: Bench) -> LocalRedis:
    """Debian's redis-server on a free port (on the server core), or Skipped."""
    from bench.run import Skipped
    from tests.support.redis_server import LocalRedis, redis_server_binary

    if redis_server_binary() is None:
        raise Skipped("redis-server is not installed (apt-get install redis-server)")
    redis = LocalRedis()
    bench._start_pinned(redis.start)
    return redis


def replica_yaml(folder: Path, *, ws_url: str, api_url: str, project: str, rooms: list[str],
                 redis_url: str, ttl: float, replica: str) -> Path:
    path = folder / f"{replica}.yaml"
    path.write_text(f"""\
xshathra:
  project_id: {project}
  realtime_url: {ws_url}
  api_url: {api_url}
  server_api_key: ${{TEST_KEY}}
  token_ttl: 30m
state: {{backend: sqlite, path: {folder / replica}.sqlite}}
cluster: {{redis_url: '{redis_url}', lease_ttl: {ttl}s, replica_id: {replica}}}
bots:
  - name: {BOT}
    plugin: bench.replica_bot
    user_id: {BOT_USER}
    rooms: [{", ".join(rooms)}]
    limits: {{lane_queue_size: 1000}}
""")
    return path


def replica(config: Path, api_key: str, name: str) -> BotkitRun:
    from tests.support.botkit_run import BotkitRun

    return BotkitRun(config, api_key, extra_env={"BENCH_REPLICA": name})


async def stop_all(runs: dict[str, BotkitRun], stuck: list[str]) -> None:
    """SIGTERM each replica in turn; one that is not gone within 30 s is noted in ``stuck``
    with the end of its log (and killed on the way out), instead of breaking the run."""
    for name, run in runs.items():
        try:
            await run.stop(signal.SIGTERM)
        except TimeoutError:
            (run.config.parent / f"{name}.log").write_text(run.log())
            stuck.append(f"(whole log: {run.config.parent / name}.log) "
                         f"replica {name} not stopped 30 s after SIGTERM; its log ends: "
                         + " | ".join(run.lines[-12:]))


def warnings(runs: dict[str, BotkitRun]) -> list[str]:
    """The replicas' WARNING and ERROR lines (the first 20): what went wrong, if anything."""
    found = [f"{name}: {line}" for name, run in runs.items() for line in run.lines
             if " WARNING " in line or " ERROR " in line]
    return found[:20]


def rooms_of(run: BotkitRun, name: str) -> set[str]:
    """The rooms ``name`` holds now, by its log."""
    held: set[str] = set()
    for line in run.lines:
        for verb in ("takes", "hands over", "loses"):
            marker = f"replica {name} {verb} {BOT}/"
            if marker in line:
                room = line.split(marker, 1)[1].split(" ", 1)[0].rstrip(":")
                (held.add if verb == "takes" else held.discard)(room)
    return held


async def until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def cpu_ticks(pid: int | None) -> float:
    """CPU seconds (user + system) of a process so far, from /proc (0 when unknown)."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class People:
    """One person in every room over one WebSocket: ``say`` publishes a command (without
    waiting for the server's ack), the reader notes each answer: (arrival, room, replica)."""

    def __init__(self, ws_url: str, api_key: str, project: str, rooms: list[str]) -> None:
        self.ws_url, self.api_key, self.project, self.rooms = ws_url, api_key, project, rooms
        self.sent: dict[str, tuple[float, str]] = {}  # id -> (time, room)
        self.answers: dict[str, list[tuple[float, str, str]]] = {}  # id -> [(time, room, by)]
        self.on_answer: Callable[[str], None] | None = None
        self.errors: list[dict[str, Any]] = []  # the server's error replies (to publishes)
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._next = 1000

    async def __aenter__(self) -> People:
        import websockets

        self._ws = await websockets.connect(self.ws_url, compression=None, max_size=None,
                                            ping_interval=None, proxy=None)
        frames = [{"id": 1, "connect": {"token": tokens(self.api_key, HUMAN), "name": "bench"}}]
        for index, room in enumerate(self.rooms):
            chan = channel(room, self.project)
            frames.append({"id": 2 + index, "subscribe": {
                "channel": chan, "token": tokens(self.api_key, HUMAN, chan)}})
        await self._ws.send("\n".join(json.dumps(f) for f in frames))
        waiting = {f["id"] for f in frames}
        async with asyncio.timeout(15):
            while waiting:
                for line in str(await self._ws.recv()).split("\n"):
                    frame = json.loads(line)
                    if "error" in frame:
                        raise RuntimeError(f"bench people: {frame}")
                    waiting.discard(frame.get("id"))
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._ws.close()

    async def _read(self) -> None:
        async for message in self._ws:
            for line in str(message).split("\n"):
                frame = json.loads(line)
                if not frame:
                    await self._ws.send("{}")  # the server's ping
                    continue
                if "error" in frame:
                    self.errors.append(frame)
                    continue
                push = frame.get("push")
                data = ((push or {}).get("pub") or {}).get("data") or {}
                if data.get("senderId") != BOT_USER:
                    continue
                origin = str(data.get("replyTo"))
                room = push["channel"].rsplit(":", 1)[1]
                by = str(data.get("text", "")).rsplit(" ", 1)[-1]
                self.answers.setdefault(origin, []).append((now(), room, by))
                if self.on_answer is not None:
                    self.on_answer(room)

    async def say(self, room: str) -> str:
        index = self._next = self._next + 1
        ident = f"01JBENCH{index:018d}"
        data = {"type": "chat.message", "id": ident, "roomId": room, "senderId": HUMAN,
                "text": f"/echo c{index}",
                "sentAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
        self.sent[ident] = (now(), room)
        await self._ws.send(json.dumps({"id": index, "publish": {
            "channel": channel(room, self.project), "data": data}}))
        return ident

    def unanswered(self, since: float = 0.0) -> list[str]:
        return [i for i, (at, _) in self.sent.items() if at >= since and i not in self.answers]

    def twice(self) -> int:
        return sum(1 for got in self.answers.values() if len(got) > 1)
