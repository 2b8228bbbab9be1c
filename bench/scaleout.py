"""S12: the throughput of 2 replicas against 1 on the same machine (issue 12). 100 rooms, one
bot; the replicas split the rooms by leases (50 each, or all 100 on the one). Many rooms, since
a room's commands are handled one after the other (each reply confirmed before the next): with
few rooms the figure is the rooms' latency, not what the processes can do. The load keeps
``window`` commands in flight in every room (saturation: each answer lets the next command of
its room go); the figure is answers per second over ``seconds``, after ``warm`` seconds. The
CPU seconds that each process spent in that window (replicas, Centrifugo, Redis, the load
generator) say what limits it. The worker is :func:`throughput`; the scenario (:func:`s12`)
is at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cluster import (
    People,
    cpu_ticks,
    replica,
    replica_yaml,
    rooms_of,
    stop_all,
    until,
    warnings,
)
from bench.common import now

if TYPE_CHECKING:
    from bench.run import Bench, Row


async def throughput(ws_url: str, api_url: str, api_key: str, project: str, redis_url: str,
                     replicas: int, rooms: int = 100, window: int = 4, warm: float = 1.0,
                     seconds: float = 5.0, pids: dict[str, int] | None = None
                     ) -> dict[str, Any]:
    names = ["a", "b", "c"][:replicas]
    room_names = [f"room{index:02d}" for index in range(rooms)]
    folder = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    runs = {name: replica(replica_yaml(folder, ws_url=ws_url, api_url=api_url,
                                       project=project, rooms=room_names, redis_url=redis_url,
                                       ttl=1.0, replica=name), api_key, name)
            for name in names}
    stuck: list[str] = []
    async with People(ws_url, api_key, project, room_names) as people, \
            contextlib.AsyncExitStack() as stack:
        for run in runs.values():
            await run.start()
            stack.push_async_callback(run.close)
        for run in runs.values():
            await run.wait_for("bot echo serving", timeout=60.0)
        share = -(-rooms // replicas)
        if not await until(lambda: all(len(rooms_of(r, n)) == share
                                       for n, r in runs.items()), 30.0):
            raise RuntimeError(f"the rooms were not split: "
                               f"{ {n: len(rooms_of(r, n)) for n, r in runs.items()} }")
        stop = asyncio.Event()
        pending: asyncio.Queue[str] = asyncio.Queue()
        people.on_answer = pending.put_nowait

        async def load() -> None:
            for room in room_names:
                for _ in range(window):
                    await people.say(room)
            while not stop.is_set():
                room = await pending.get()
                await people.say(room)

        start = now()
        loader = asyncio.create_task(load())
        procs = {f"replica {n}": r.process.pid if r.process else None for n, r in runs.items()}
        procs.update(pids or {})
        procs["load generator"] = os.getpid()
        try:
            await asyncio.sleep(warm)
            count0, t0 = sum(map(len, people.answers.values())), now()
            cpu0 = {name: cpu_ticks(pid) for name, pid in procs.items()}
            await asyncio.sleep(seconds)
            count1, t1 = sum(map(len, people.answers.values())), now()
            cpu1 = {name: cpu_ticks(pid) for name, pid in procs.items()}
        finally:
            stop.set()
            pending.put_nowait(room_names[0])  # wake the loader to see the stop
            await loader
        await until(lambda: not people.unanswered(), 15.0)
        lost_rooms = {people.sent[i][1] for i in people.unanswered()}
        lost_log = [line for run in runs.values() for line in run.lines
                    if any(f"/{room} " in line or f" {room}" in line for room in lost_rooms)]
        await stop_all(runs, stuck)
    answered = count1 - count0
    return {
        "replicas": replicas, "rate": answered / (t1 - t0),
        "cpu_percent": {name: 100 * (cpu1[name] - cpu0[name]) / (t1 - t0) for name in procs},
        "sent": len(people.sent), "lost": len(people.unanswered()), "twice": people.twice(),
        "lost_log": lost_log[:30], "stuck": stuck, "warnings": warnings(runs),
        "errors": people.errors[:10],
        "lost_at": sorted({(round(people.sent[i][0] - start, 2), people.sent[i][1])
                           for i in people.unanswered()})[:20],
    }


# -- the scenario ------------------------------------------------------------------------------

def s12(bench: Bench) -> tuple[list[Row], Any]:
    from bench.cluster import start_redis
    from bench.common import PROJECT
    from bench.run import alternate, run_worker
    from bench.scenarios import _row

    server = bench.centrifugo()
    redis = start_redis(bench)
    seconds = 2.0 if bench.quick else 6.0
    rooms, window = 100, 4
    stamp = int(time.time()) % 100000

    def trial(side: str, rep: int) -> dict[str, Any]:
        # Unpinned: two replicas on one core could not show what a second process buys.
        return run_worker("scaleout:throughput", {
            "ws_url": server.ws_url, "api_url": server.api_url, "api_key": server.api_key,
            "project": f"{PROJECT}t{side}{rep}{stamp}", "redis_url": redis.url,
            "replicas": int(side), "seconds": seconds, "rooms": rooms, "window": window,
            "pids": {"centrifugo": server.pid, "redis": redis.process.pid
                     if redis.process else 0}}, cpus=None, timeout=180)

    try:
        results = alternate(bench.reps_for(heavy=True), ["2", "1"], trial)
    finally:
        redis.close()
    lost = sum(int(r["lost"]) for side in results.values() for r in side)
    twice = sum(int(r["twice"]) for side in results.values() for r in side)
    note = (f"{rooms} rooms, {window} commands in flight per room, {seconds:g} s; lost {lost}, "
            f"answered twice {twice}; median % of a core: "
            + "; ".join(f"{side} replica(s): {_cpu(results[side])}" for side in ("1", "2")))
    row = _row("S12", "answers/s, 2 replicas vs 1", "answers/s", True, "1 replica", None,
               [float(r["rate"]) for r in results["2"]],
               [float(r["rate"]) for r in results["1"]], note)
    stuck = sum(len(r["stuck"]) for side in results.values() for r in side)
    if stuck:
        row.note += f"; {stuck} stop(s) past 30 s"
    row.status = "info" if not lost and not twice and not stuck else "missed"
    return [row], results


def _cpu(runs: list[dict[str, Any]]) -> str:
    names = runs[0]["cpu_percent"]
    return ", ".join(f"{name} {statistics.median(r['cpu_percent'][name] for r in runs):.0f}"
                     for name in names)
