"""CPU per server API request, one request at a time, against a local Centrifugo: botkit's
transport (its own HTTP/1.1 pool), the same transport over an httpx client (the path before
2026-12-03, still used for an injected client or a proxy), raw httpx and aiohttp, in turns
within one run.

    python -m bench.request_cost            # 5,000 publishes per side, 3 rounds
    N=2000 REPS=1 python -m bench.request_cost
    python -m bench.request_cost profile botkit   # cProfile (CPU time) of one side

Not a scenario with a target: the figure behind S3a/S13's publish path, for RESULTS.md.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import pstats
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.common import channel

N = int(os.environ.get("N", "5000"))
REPS = int(os.environ.get("REPS", "3"))
WARMUP = 50

Side = Callable[[str, str, list[bytes], Any], Awaitable[float]]


def _bodies(tag: str) -> list[bytes]:
    encode = json.JSONEncoder(separators=(",", ":")).encode
    return [encode({"channel": channel("room_bench"), "data": {"text": f"hello {i}"},
                    "idempotency_key": f"{tag}-{i}"}).encode() for i in range(N + WARMUP)]


async def _timed(post: Callable[[bytes], Awaitable[None]], bodies: list[bytes],
                 profile: Any) -> float:
    for body in bodies[:WARMUP]:
        await post(body)
    started = time.process_time()
    if profile is not None:
        profile.enable()
    for body in bodies[WARMUP:]:
        await post(body)
    if profile is not None:
        profile.disable()
    return (time.process_time() - started) / N * 1e6


async def botkit(url: str, key: str, bodies: list[bytes], profile: Any,
                 client: Any = None) -> float:
    from botkit.protocol.backoff import Backoff
    from botkit.serverapi.replies import publish_result
    from botkit.serverapi.stats import ApiStats
    from botkit.serverapi.transport import Transport

    transport = Transport(url, key, timeout=5.0, retries=3, backoff=Backoff(),
                          stats=ApiStats(), client=client)
    transport.open()

    async def post(body: bytes) -> None:
        await transport.call("publish", body, publish_result)
    try:
        return await _timed(post, bodies, profile)
    finally:
        await transport.aclose()


async def botkit_httpx(url: str, key: str, bodies: list[bytes], profile: Any) -> float:
    import httpx

    async with httpx.AsyncClient(timeout=5.0) as client:
        return await botkit(url, key, bodies, profile, client)


async def raw_httpx(url: str, key: str, bodies: list[bytes], profile: Any) -> float:
    import httpx

    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=5.0, headers=headers) as client:
        async def post(body: bytes) -> None:
            json.loads((await client.post(f"{url}/publish", content=body)).content)
        return await _timed(post, bodies, profile)


async def aiohttp(url: str, key: str, bodies: list[bytes], profile: Any) -> float:
    import aiohttp as lib

    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    async with lib.ClientSession(headers=headers,
                                 timeout=lib.ClientTimeout(total=5.0)) as session:
        async def post(body: bytes) -> None:
            async with session.post(f"{url}/publish", data=body) as response:
                json.loads(await response.read())
        return await _timed(post, bodies, profile)


SIDES: dict[str, Side] = {"botkit": botkit, "botkit-over-httpx": botkit_httpx,
                          "raw-httpx": raw_httpx, "aiohttp": aiohttp}


def main(argv: list[str]) -> int:
    from botkit.dev.localserver import LocalCentrifugo, ServerSettings, free_port

    server = LocalCentrifugo(ServerSettings(port=free_port(), log_level="error"))
    server.start()
    try:
        if argv[:1] == ["profile"]:
            profile = cProfile.Profile(time.process_time)
            asyncio.run(SIDES[argv[1]](server.api_url, server.api_key, _bodies("p"), profile))
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
            return 0
        figures: dict[str, list[float]] = {name: [] for name in SIDES}
        for rep in range(REPS):
            for name, side in SIDES.items():
                figures[name].append(asyncio.run(
                    side(server.api_url, server.api_key, _bodies(f"{name}{rep}"), None)))
        for name, values in figures.items():
            values.sort()
            print(f"{name:18s} {values[len(values) // 2]:7.1f} µs CPU per request "
                  f"(rounds: {', '.join(f'{v:.1f}' for v in values)})")
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
