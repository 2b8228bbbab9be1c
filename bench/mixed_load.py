"""S13's traffic (see :mod:`bench.mixed`): the load generator publishing the Poisson schedule
through the server API, and the observer timing each reply. Both run on the server core and are
the same for botkit and its peer."""

from __future__ import annotations

import asyncio
import bisect
import json
import time
from typing import Any

from bench.common import channel, now, percentile
from bench.control import next_line, say, tokens
from bench.mixed import IN_FLIGHT, SETTLE, TICK, envelope_for, plan


async def observe(ws_url: str, api_key: str, project: str, rooms: list[str],
                  deadline: float, settle: float = SETTLE) -> dict[str, Any]:
    """Subscribe every room over a bare WebSocket, note when each bot reply arrives (by its
    ``replyTo``), until ``STOP <expected replies>`` and then those replies or ``settle``
    seconds, whichever first."""
    import websockets

    user = "user_observer"
    arrived: dict[str, float] = {}
    counts = {"pubs": 0}
    enough = asyncio.Event()
    want = [0]

    async with websockets.connect(ws_url, compression=None, max_size=None, ping_interval=None,
                                  proxy=None) as ws:
        commands = [json.dumps({"id": 1, "connect": {"token": tokens(api_key, user),
                                                     "name": "observer"}})]
        for n, room in enumerate(rooms):
            chan = channel(room, project)
            commands.append(json.dumps({"id": 2 + n, "subscribe": {
                "channel": chan, "token": tokens(api_key, user, chan)}}))
        # Centrifugo reads messages of 64 KiB at most: the subscribes go in slices.
        for first in range(0, len(commands), 100):
            await ws.send("\n".join(commands[first:first + 100]))
        answered = 0
        async with asyncio.timeout(30):
            while answered < len(commands):
                for line in str(await ws.recv()).split("\n"):
                    frame = json.loads(line)
                    if "error" in frame:
                        raise RuntimeError(f"observer: {frame}")
                    if frame.get("id"):
                        answered += 1

        async def read() -> None:
            async for message in ws:
                at = time.time()
                for line in str(message).split("\n"):
                    if line == "{}":
                        await ws.send("{}")
                        continue
                    pub = (json.loads(line).get("push") or {}).get("pub")
                    if pub is None:
                        continue
                    counts["pubs"] += 1
                    data = pub.get("data") or {}
                    origin = data.get("replyTo")
                    if origin and origin not in arrived:
                        arrived[origin] = at
                        if want[0] and len(arrived) >= want[0]:
                            enough.set()

        reader = asyncio.create_task(read())
        try:
            say("READY")
            line = await next_line(deadline)
            want[0] = int(line.split()[1]) if line.startswith("STOP ") else 0
            if want[0] and len(arrived) < want[0]:
                try:
                    async with asyncio.timeout(settle):
                        await enough.wait()
                except TimeoutError:
                    pass
        finally:
            reader.cancel()
            await asyncio.wait([reader], timeout=5)
    # A reader that ended early (the server closed the connection) is reported, not hidden.
    failed = (reader.exception() if reader.done() and not reader.cancelled() else None)
    return {"pubs": counts["pubs"], "reader_error": repr(failed) if failed else "",
            "arrived": {k: round(v, 6) for k, v in arrived.items()}}


# -- the load generator -------------------------------------------------------------------------

async def loadgen(api_url: str, api_key: str, project: str, rooms: list[str], rate: float,
                  seconds: float, seed: int, tick: float = TICK,
                  in_flight: int = IN_FLIGHT) -> dict[str, Any]:
    """Publish the schedule of :func:`plan` through the server API, open loop: the arrivals
    due each ``tick`` go out as one ``batch`` request, at most ``in_flight`` at once."""
    import aiohttp

    arrivals = plan(rate, seconds, len(rooms), seed)
    times = [a.at for a in arrivals]
    channels = [channel(r, project) for r in rooms]
    sent_at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    sent: dict[str, float] = {}
    lags: list[float] = []
    counts = {"requests": 0, "errors": 0, "failed_requests": 0}
    slots = asyncio.Semaphore(in_flight)
    tasks: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=10)
    url = f"{api_url.rstrip('/')}/batch"

    async with aiohttp.ClientSession(headers={"X-API-Key": api_key,
                                              "Content-Type": "application/json"},
                                     timeout=timeout) as session:
        async def post(body: str, command_ids: list[str]) -> None:
            try:
                stamp = time.time()
                for cid in command_ids:
                    sent[cid] = stamp
                async with session.post(url, data=body) as response:
                    reply = await response.read()
                counts["requests"] += 1
                if response.status != 200:
                    counts["failed_requests"] += 1
                else:
                    counts["errors"] += sum(1 for r in json.loads(reply).get("replies", [])
                                            if "error" in r)
            except (aiohttp.ClientError, TimeoutError):
                counts["failed_requests"] += 1
            finally:
                slots.release()

        start = now()
        index = 0
        while index < len(arrivals):
            elapsed = now() - start
            due = bisect.bisect_right(times, elapsed, lo=index)
            if due > index:
                lags.append((elapsed - times[index]) * 1000)
                commands, command_ids = [], []
                for n in range(index, due):
                    data = envelope_for(arrivals[n], n, rooms[arrivals[n].room], sent_at)
                    if arrivals[n].kind == "command":
                        command_ids.append(data["id"])
                    commands.append({"publish": {"channel": channels[arrivals[n].room],
                                                 "data": data}})
                await slots.acquire()
                task = asyncio.create_task(post(json.dumps({"commands": commands}),
                                                command_ids))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                index = due
            if index < len(arrivals):
                wake = max(times[index], now() - start + tick)
                await asyncio.sleep(max(0.0, wake - (now() - start)))
        sending = now() - start
        if tasks:
            await asyncio.wait(tasks, timeout=15)
    return {"published": len(arrivals), "commands": len(sent), "seconds": sending,
            "rate": len(arrivals) / sending if sending > 0 else 0.0,
            "lag_p99_ms": percentile(lags, 99), "lag_max_ms": max(lags, default=0.0),
            **counts, "sent": {k: round(v, 6) for k, v in sent.items()}}
