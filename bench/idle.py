"""S4, S5, S6: many idle bots in one process, against the real Centrifugo.

Each side connects ``count`` users, each subscribed to its own room, then:

* S4: RSS after everything is connected and subscribed, minus RSS before (after the imports),
  divided by ``count``;
* S5: CPU time (user + system) the process used over ``window`` seconds of idleness (pings and
  pongs only);
* S6 (``restart=True``): says READY, the orchestrator kills and restarts the server, and the
  time from the kill until every subscription is back is measured; then one message is
  published into every room through the server API and each must arrive ("nothing lost").
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from typing import Any

from bench.common import HUMAN, GcPauses, channel, cpu_seconds, envelope, rss_bytes
from bench.control import next_line, say, tokens

_SETTLE = 1.0


def _rooms(count: int) -> list[str]:
    return [f"idle{i}" for i in range(count)]


async def _restart_cycle(back: Any, deadline: float) -> dict[str, Any]:
    """READY -> the orchestrator restarts the server -> wait (bounded) until all are back.
    ``back()`` says how many are back."""
    say("READY")
    line = await next_line(deadline)
    if not line.startswith("RESTARTED"):
        return {"error": f"expected RESTARTED, got {line!r}"}
    killed_at, up_at = (float(v) for v in line.split()[1:3])
    GcPauses.reset()
    profile_to = os.environ.get("BENCH_PROFILE_WINDOW")
    profiler = None
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    limit = time.time() + deadline
    total = back(total=True)
    seen = 0
    marks: dict[str, float] = {}
    while time.time() < limit:
        count = back()
        if count > seen:
            seen = count
            for fraction in (0.01, 0.5, 0.9):
                if count >= fraction * total:
                    marks.setdefault(f"t{round(fraction * 100)}", time.time() - killed_at)
        if count >= total:
            if profiler is not None and profile_to:
                profiler.disable()
                profiler.dump_stats(f"{profile_to}.{os.getpid()}")
            return {"resubscribe_seconds": time.time() - killed_at,
                    "server_up_seconds": up_at - killed_at, **marks}
        await asyncio.sleep(0.005)
    return {"resubscribe_seconds": float("nan"), "error": "not all back in time", **marks}


async def _publish_everywhere(api_url: str, api_key: str, project: str, rooms: list[str],
                              tag: str) -> None:
    import httpx

    commands = [{"publish": {"channel": channel(room, project),
                             "data": envelope(i, room=room) | {"id": f"{tag}{i:020d}"}}}
                for i, room in enumerate(rooms)]
    async with httpx.AsyncClient(timeout=10.0, headers={"X-API-Key": api_key}) as client:
        for start in range(0, len(commands), 500):
            response = await client.post(f"{api_url}/batch", content=json.dumps(
                {"commands": commands[start:start + 500]}))
            response.raise_for_status()


async def _count_arrivals(received: dict[str, int], rooms: list[str], before: dict[str, int],
                          timeout: float) -> int:
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        if all(received.get(r, 0) > before.get(r, 0) for r in rooms):
            break
        await asyncio.sleep(0.02)
    return sum(1 for r in rooms if received.get(r, 0) > before.get(r, 0))


def _baseline() -> int:
    gc.collect()
    return rss_bytes()


async def _measure(rss0: int, count: int, window: float) -> dict[str, Any]:
    await asyncio.sleep(_SETTLE)
    gc.collect()
    rss1 = rss_bytes()
    cpu0, t0 = cpu_seconds(), time.monotonic()
    await asyncio.sleep(window)
    cpu1, t1 = cpu_seconds(), time.monotonic()
    return {"kib_per_bot": (rss1 - rss0) / count / 1024, "rss_mib": rss1 / 2**20,
            "cpu_seconds": cpu1 - cpu0, "cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0),
            "window": t1 - t0}


async def botkit_idle(ws_url: str, api_url: str, api_key: str, project: str, count: int,
                      window: float, restart: bool = False,
                      deadline: float = 120.0) -> dict[str, Any]:
    import botkit.runtime.supervisor  # noqa: F401  (imported before the baseline, like the peers')
    from bench.common import bots_yaml, runtime_for
    from botkit import Bot
    from botkit.realtime import ConnectionState

    rooms = _rooms(count)
    received: dict[str, int] = {}
    bot = Bot("idle")

    @bot.on("chat.message")
    async def count_it(ctx, event):  # type: ignore[no-untyped-def]
        received[ctx.room] = received.get(ctx.room, 0) + 1

    yaml_text = bots_yaml(realtime_url=ws_url, api_url=api_url,
                          rooms_per_bot=[[room] for room in rooms], plugin=None,
                          project=project)
    rss0 = _baseline()
    runtime = runtime_for(yaml_text, api_key, bot)
    task = asyncio.create_task(runtime.run())
    started = time.monotonic()
    try:
        async with asyncio.timeout(deadline):
            ready = asyncio.ensure_future(runtime.wait_ready())
            await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
        out: dict[str, Any] = {"connect_seconds": time.monotonic() - started}
        if restart:
            runners = list(runtime.runners.values())

            def all_back(total: bool = False) -> int:
                return len(runners) if total else sum(
                    1 for r in runners if r.client.reconnects >= 1
                    and r.client.state is ConnectionState.CONNECTED)

            out.update(await _restart_cycle(all_back, deadline))
            before = dict(received)
            await _publish_everywhere(api_url, api_key, project, rooms, "01JAFTER")
            arrived = await _count_arrivals(received, rooms, before, 10.0)
            out.update(arrived=arrived, lost=count - arrived,
                       gaps=sum(r.stats.gaps for r in runners))
        else:
            out.update(await _measure(rss0, count, window))
    finally:
        runtime.stop()
        async with asyncio.timeout(30):
            await task
    return out


async def centrifuge_idle(ws_url: str, api_url: str, api_key: str, project: str, count: int,
                          window: float, restart: bool = False,
                          deadline: float = 120.0) -> dict[str, Any]:
    import centrifuge

    rooms = _rooms(count)
    received: dict[str, int] = {}
    subscribed: dict[str, int] = {}

    class Handler(centrifuge.SubscriptionEventHandler):
        def __init__(self, room: str) -> None:
            self.room = room

        async def on_subscribed(self, ctx: centrifuge.SubscribedContext) -> None:
            subscribed[self.room] = subscribed.get(self.room, 0) + 1

        async def on_publication(self, ctx: centrifuge.PublicationContext) -> None:
            received[self.room] = received.get(self.room, 0) + 1

    rss0 = _baseline()
    clients = []
    started = time.monotonic()
    for i, room in enumerate(rooms):
        user = f"{HUMAN}_{i}"
        chan = channel(room, project)
        client = centrifuge.Client(ws_url, token=tokens(api_key, user), proxy=None)
        client.new_subscription(chan, Handler(room), token=tokens(api_key, user, chan),
                                recoverable=True, positioned=True)
        clients.append(client)

    async def start(client: centrifuge.Client) -> None:
        await client.connect()
        for sub in client.subscriptions().values():
            await sub.subscribe()
            await sub.ready(deadline)

    try:
        async with asyncio.timeout(deadline):
            await asyncio.gather(*(start(c) for c in clients))
        out: dict[str, Any] = {"connect_seconds": time.monotonic() - started}
        if restart:
            def all_back(total: bool = False) -> int:
                return len(rooms) if total else sum(
                    1 for room in rooms if subscribed.get(room, 0) >= 2)

            out.update(await _restart_cycle(all_back, deadline))
            before = dict(received)
            await _publish_everywhere(api_url, api_key, project, rooms, "01JAFTER")
            arrived = await _count_arrivals(received, rooms, before, 10.0)
            out.update(arrived=arrived, lost=count - arrived)
        else:
            out.update(await _measure(rss0, count, window))
    finally:
        async with asyncio.timeout(30):
            await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)
    return out


async def websockets_idle(ws_url: str, api_url: str, api_key: str, project: str, count: int,
                          window: float, deadline: float = 120.0) -> dict[str, Any]:
    """The floor for S4: bare websockets connections that connect, subscribe and answer
    pings, one reader task each."""
    import websockets

    rooms = _rooms(count)
    rss0 = _baseline()

    async def one(i: int, room: str, ready: asyncio.Event, stop: asyncio.Event) -> None:
        user = f"{HUMAN}_{i}"
        chan = channel(room, project)
        async with websockets.connect(ws_url, compression=None, ping_interval=None,
                                      proxy=None) as ws:
            await ws.send(json.dumps({"id": 1, "connect": {"token": tokens(api_key, user)}}))
            await ws.recv()
            await ws.send(json.dumps({"id": 2, "subscribe": {
                "channel": chan, "token": tokens(api_key, user, chan)}}))
            await ws.recv()
            ready.set()

            async def read() -> None:
                async for message in ws:
                    if message == "{}":
                        await ws.send("{}")

            reader = asyncio.create_task(read())
            await stop.wait()
            reader.cancel()

    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in rooms]
    started = time.monotonic()
    tasks = [asyncio.create_task(one(i, room, readies[i], stop)) for i, room in enumerate(rooms)]
    try:
        async with asyncio.timeout(deadline):
            for event in readies:
                await event.wait()
        out: dict[str, Any] = {"connect_seconds": time.monotonic() - started}
        out.update(await _measure(rss0, count, window))
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=30)
    return out


async def realtime_idle(ws_url: str, api_url: str, api_key: str, project: str, count: int,
                        window: float, deadline: float = 120.0) -> dict[str, Any]:
    """Diagnostic: botkit's RealtimeClient alone (no runtime), to split S4's figure."""
    from botkit.realtime import RealtimeClient
    from botkit.tokens import TokenMinter

    rooms = _rooms(count)
    rss0 = _baseline()
    clients = []
    started = time.monotonic()
    for i in range(count):
        minter = TokenMinter(api_key, f"{HUMAN}_{i}")

        async def sink(event: Any) -> None:
            return None

        clients.append(RealtimeClient(ws_url, minter.connection, minter.subscription,
                                      on_event=sink))
    try:
        async with asyncio.timeout(deadline):
            await asyncio.gather(*(c.start() for c in clients))
            await asyncio.gather(*(c.subscribe(channel(room, project))
                                   for c, room in zip(clients, rooms, strict=True)))
        out: dict[str, Any] = {"connect_seconds": time.monotonic() - started}
        out.update(await _measure(rss0, count, window))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
    return out
