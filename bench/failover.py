"""S11: failover (issue 12). Two ``botkit run`` replicas share 4 rooms through a real Redis;
commands stream into every room; the replica serving room0 is killed with SIGKILL; the figure
is the time from the kill to the first answer from the other replica in one of the dead one's
rooms (target: ``lease_ttl`` + 1 s). Every command sent, before or after the kill, must be
answered exactly once: those sent into the dead replica's rooms after the kill are answered by
the new owner from the stored position. The worker is :func:`failover`; the scenario
(:func:`s11`, run by ``python -m bench``) is at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cluster import People, replica, replica_yaml, rooms_of, stop_all, until
from bench.common import now

if TYPE_CHECKING:
    from bench.run import Bench, Row

ROOMS = [f"room{index}" for index in range(4)]


async def failover(ws_url: str, api_url: str, api_key: str, project: str, redis_url: str,
                   ttl: float, rate: float = 40.0, warm: float = 1.0,
                   after: float = 2.5) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    runs = {name: replica(replica_yaml(folder, ws_url=ws_url, api_url=api_url,
                                       project=project, rooms=ROOMS, redis_url=redis_url,
                                       ttl=ttl, replica=name), api_key, name)
            for name in ("a", "b")}
    stuck: list[str] = []
    async with People(ws_url, api_key, project, ROOMS) as people, \
            contextlib.AsyncExitStack() as stack:
        for run in runs.values():
            await run.start()
            stack.push_async_callback(run.close)
        for run in runs.values():
            await run.wait_for("bot echo serving", timeout=60.0)
        # Both serving and the rooms split (two each), or at least all held by someone.
        balanced = await until(lambda: all(len(rooms_of(r, n)) == 2 for n, r in runs.items()),
                               6 * ttl + 10)
        if not balanced and not await until(
                lambda: sum(len(rooms_of(r, n)) for n, r in runs.items()) == len(ROOMS), 10):
            raise RuntimeError("the replicas never held every room")
        stop = asyncio.Event()

        async def stream() -> None:
            index = 0
            start = now()
            while not stop.is_set():
                await people.say(ROOMS[index % len(ROOMS)])
                index += 1
                delay = start + index / rate - now()
                if delay > 0:
                    await asyncio.sleep(delay)

        sender = asyncio.create_task(stream())
        try:
            await asyncio.sleep(warm)
            victim = next(n for n, r in runs.items() if "room0" in rooms_of(r, n))
            survivor = "b" if victim == "a" else "a"
            dead_rooms = rooms_of(runs[victim], victim)
            await runs[victim].stop(signal.SIGKILL)
            killed = now()
            await asyncio.sleep(ttl + after)
        finally:
            stop.set()
            await sender
        await until(lambda: not people.unanswered(), 15.0)
        await asyncio.sleep(0.5)  # a second answer would show by now
        await stop_all({survivor: runs[survivor]}, stuck)
    new_owner = sorted(at for answers in people.answers.values()
                       for at, room, by in answers
                       if room in dead_rooms and by == survivor and at > killed)
    after_kill = [i for i, (at, room) in people.sent.items() if at > killed]
    return {
        "ttl": ttl, "balanced": balanced, "victim": victim, "dead_rooms": sorted(dead_rooms),
        "failover_seconds": new_owner[0] - killed if new_owner else float("nan"),
        "sent": len(people.sent), "sent_after_kill": len(after_kill),
        "lost": len(people.unanswered()), "lost_after_kill": len(people.unanswered(killed)),
        "twice": people.twice(), "stuck": stuck,
        "taken_over": sum(1 for i in after_kill if people.sent[i][1] in dead_rooms
                          and any(by == survivor for _, _, by in people.answers.get(i, []))),
    }


# -- the scenario ------------------------------------------------------------------------------

def s11(bench: Bench) -> tuple[list[Row], Any]:
    from bench.cluster import start_redis
    from bench.common import PROJECT
    from bench.run import run_worker
    from bench.scenarios import _row

    server = bench.centrifugo()
    redis = start_redis(bench)
    plan = [(1.0, 1)] if bench.quick else [(1.0, bench.reps), (5.0, bench.reps_for(heavy=True))]
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        for ttl, reps in plan:
            results[f"{ttl:g}s"] = [run_worker("failover:failover", {
                "ws_url": server.ws_url, "api_url": server.api_url, "api_key": server.api_key,
                "project": f"{PROJECT}f{int(ttl)}{rep}{int(time.time()) % 100000}",
                "redis_url": redis.url, "ttl": ttl}, cpus=None, timeout=120 + 10 * ttl)
                for rep in range(reps)]
    finally:
        redis.close()
    rows = []
    for ttl, _ in plan:
        runs = results[f"{ttl:g}s"]
        seconds = [float(r["failover_seconds"]) for r in runs]
        lost = sum(int(r["lost"]) for r in runs)
        twice = sum(int(r["twice"]) for r in runs)
        stuck = sum(len(r["stuck"]) for r in runs)
        target = ttl + 1.0
        note = (f"{len(runs)} kills; median {statistics.median(seconds):.2f} s, max "
                f"{max(seconds):.2f} s; sent {sum(int(r['sent']) for r in runs)} (after the "
                f"kill {sum(int(r['sent_after_kill']) for r in runs)}), lost {lost}, "
                f"answered twice {twice}" + (f"; {stuck} stop(s) past 30 s" if stuck else ""))
        row = _row("S11", f"SIGKILL -> first answer, lease_ttl {ttl:g}s", "s", False,
                   f"target {target:g} s", None, seconds, [target], note)
        row.status = ("met" if not lost and not twice and not stuck and max(seconds) <= target
                      else "missed")
        rows.append(row)
    return rows, results
