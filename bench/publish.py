"""S3: publishing through the server API of the real Centrifugo.

S3a, one request per reply: ``ServerApi.publish`` awaited one after another (an idle client
sends each as a plain ``publish``) against raw httpx posting the very same bodies (with an
idempotency key, like botkit's) with the same timeout and headers, and reading the reply.

S3b, bursts of replies: bursts of concurrent ``ServerApi.publish`` calls (as many handlers
answering at once), which botkit sends as ``batch`` requests, against cent publishing one call
at a time from 10 concurrent tasks.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bench.common import channel, envelope, now

WARMUP = 20


def _bodies(project: str, room: str, start: int, count: int, prefix: str) -> list[Any]:
    chan = channel(room, project)
    return [(chan, envelope(i, room=room), f"{prefix}-{i}") for i in range(start, start + count)]


async def botkit_sequential(api_url: str, api_key: str, project: str, room: str,
                            count: int) -> dict[str, Any]:
    from botkit.serverapi.client import ServerApi

    async with ServerApi(api_url, api_key) as api:
        for chan, data, key in _bodies(project, room, 0, WARMUP, "warm"):
            await api.publish(chan, data, idempotency_key=key)
        items = _bodies(project, room, WARMUP, count, "seq")
        started = now()
        for chan, data, key in items:
            await api.publish(chan, data, idempotency_key=key)
        seconds = now() - started
        stats = api.stats
    return {"rate": count / seconds, "seconds": seconds, "requests": stats.requests,
            "batches": stats.publish_batches}


async def httpx_sequential(api_url: str, api_key: str, project: str, room: str,
                           count: int) -> dict[str, Any]:
    import httpx

    encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
    url = f"{api_url}/publish"
    async with httpx.AsyncClient(timeout=5.0, headers=headers) as client:

        async def publish(chan: str, data: Any, key: str) -> None:
            body = encode({"channel": chan, "data": data, "idempotency_key": key}).encode()
            response = await client.post(url, content=body)
            reply = json.loads(response.content)
            if response.status_code != 200 or "error" in reply:
                raise RuntimeError(f"publish failed: {response.status_code} {reply}")

        for item in _bodies(project, room, 0, WARMUP, "warm"):
            await publish(*item)
        items = _bodies(project, room, WARMUP, count, "seq")
        started = now()
        for item in items:
            await publish(*item)
        seconds = now() - started
    return {"rate": count / seconds, "seconds": seconds}


async def botkit_bursts(api_url: str, api_key: str, project: str, room: str, count: int,
                        burst: int) -> dict[str, Any]:
    from botkit.serverapi.client import ServerApi

    async with ServerApi(api_url, api_key) as api:
        for chan, data, key in _bodies(project, room, 0, WARMUP, "warm"):
            await api.publish(chan, data, idempotency_key=key)
        items = _bodies(project, room, WARMUP, count, "burst")
        started = now()
        for start in range(0, count, burst):
            await asyncio.gather(*(api.publish(chan, data, idempotency_key=key)
                                   for chan, data, key in items[start:start + burst]))
        seconds = now() - started
        stats = api.stats
    return {"rate": count / seconds, "seconds": seconds, "requests": stats.requests,
            "batches": stats.publish_batches}


async def cent_concurrent(api_url: str, api_key: str, project: str, room: str, count: int,
                          concurrency: int) -> dict[str, Any]:
    from cent import AsyncClient, PublishRequest

    client = AsyncClient(api_url, api_key, timeout=5.0)
    try:
        for chan, data, key in _bodies(project, room, 0, WARMUP, "warm"):
            await client.publish(PublishRequest(channel=chan, data=data, idempotency_key=key))
        items = iter(_bodies(project, room, WARMUP, count, "cent"))

        async def worker() -> None:
            for chan, data, key in items:
                await client.publish(PublishRequest(channel=chan, data=data,
                                                    idempotency_key=key))

        started = now()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = now() - started
    finally:
        await client.close()
    return {"rate": count / seconds, "seconds": seconds}


