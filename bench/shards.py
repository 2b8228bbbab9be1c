"""S14: one bot in 2,000 rooms, on a Centrifugo at its default channel limit (128 per
connection), so the rooms take 16 connections.

* botkit: a whole runtime with one bot (``limits.rooms_per_connection`` at its default, 128):
  from ``runtime.run()`` until every room is subscribed (each on one of the bot's connections),
  and until the runtime is ready (every room's first presence check done too);
* centrifuge-python: 16 clients of the same user, 128 rooms each, all started at once: from the
  start until every subscription is ready.

RSS is the process's after all is subscribed (and a settle second) minus before (after the
imports), given per room.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from bench.common import BOT_USER, channel, rss_bytes
from bench.control import tokens

_SETTLE = 1.0
PER_CONNECTION = 128


def _rooms(count: int) -> list[str]:
    return [f"shard{i:05d}" for i in range(count)]


def _rss_now() -> int:
    gc.collect()
    return rss_bytes()


async def _after(rss0: int, count: int) -> dict[str, Any]:
    await asyncio.sleep(_SETTLE)
    rss1 = _rss_now()
    return {"rss_mib": rss1 / 2**20, "kib_per_room": (rss1 - rss0) / count / 1024}


async def botkit_rooms(ws_url: str, api_url: str, api_key: str, project: str, count: int,
                       deadline: float = 120.0) -> dict[str, Any]:
    import botkit.runtime.supervisor  # noqa: F401  (imported before the baseline, like the peer's)
    from bench.common import bots_yaml, runtime_for
    from botkit import Bot

    rooms = _rooms(count)
    channels = [channel(room, project) for room in rooms]
    bot = Bot("rooms")
    yaml_text = bots_yaml(realtime_url=ws_url, api_url=api_url, rooms_per_bot=[rooms],
                          plugin=None, project=project)
    rss0 = _rss_now()
    runtime = runtime_for(yaml_text, api_key, bot)
    started = time.monotonic()
    task = asyncio.create_task(runtime.run())
    out: dict[str, Any] = {"rooms": count}
    try:
        async with asyncio.timeout(deadline):
            while not runtime.runners:  # noqa: ASYNC110  (a plain attribute: nothing to await)
                await asyncio.sleep(0.001)
            client = next(iter(runtime.runners.values())).client
            pending = set(channels)
            while pending:
                pending = {c for c in pending if not client.is_subscribed(c)}
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)
            out["subscribed_seconds"] = time.monotonic() - started
            ready = asyncio.ensure_future(runtime.wait_ready())
            await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
            out["ready_seconds"] = time.monotonic() - started
            out["connections"] = len(client.shards)
            out["failed"] = sum(r.stats.subscription_failures for r in runtime.runners.values())
        out.update(await _after(rss0, count))
    finally:
        runtime.stop()
        async with asyncio.timeout(30):
            await task
    return out


async def centrifuge_rooms(ws_url: str, api_url: str, api_key: str, project: str, count: int,
                           deadline: float = 120.0) -> dict[str, Any]:
    import centrifuge

    rooms = _rooms(count)
    rss0 = _rss_now()
    started = time.monotonic()
    clients = []
    for first in range(0, count, PER_CONNECTION):
        client = centrifuge.Client(ws_url, token=tokens(api_key, BOT_USER), proxy=None)
        for room in rooms[first:first + PER_CONNECTION]:
            chan = channel(room, project)
            client.new_subscription(chan, token=tokens(api_key, BOT_USER, chan),
                                    recoverable=True, positioned=True)
        clients.append(client)

    async def start(client: centrifuge.Client) -> None:
        await client.connect()
        subs = list(client.subscriptions().values())
        for sub in subs:
            await sub.subscribe()
        for sub in subs:
            await sub.ready(deadline)

    out: dict[str, Any] = {"rooms": count, "connections": len(clients)}
    try:
        async with asyncio.timeout(deadline):
            await asyncio.gather(*(start(c) for c in clients))
        out["subscribed_seconds"] = time.monotonic() - started
        out.update(await _after(rss0, count))
    finally:
        async with asyncio.timeout(30):
            await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)
    return out
