"""What an idle bot holds: S4's figure taken apart (issue 14).

``python -m bench.heap [--count 300] [--side botkit|realtime|websockets|centrifuge]``
starts a Centrifugo, runs ``count`` idle bots (S4's set-up, bench/idle.py) in this process
under ``tracemalloc``, and prints the memory allocated between the imports and "every bot
subscribed and settled", per bot, grouped by what made it: the innermost frame of botkit's
own code (or of bench/) on the allocation's stack, with the innermost frame of all (asyncio's,
pydantic's, websockets'…) beside it. Then the objects alive per bot, by type (``gc``).

``--rss`` instead measures RSS per bot the way S4 does, each side in a fresh worker process,
botkit and the peers alternating (``--reps`` rounds): the quick way to compare sides at 500
bots without the rest of ``python -m bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parent.parent)
_SIDES = {"botkit": "botkit_idle", "realtime": "realtime_idle",
          "websockets": "websockets_idle", "centrifuge": "centrifuge_idle"}


def _owner(trace: tracemalloc.Trace) -> tuple[str, str]:
    frames = list(trace.traceback)[::-1]  # most recent first
    inner = frames[0]
    where = f"{os.path.basename(inner.filename)}:{inner.lineno}"
    for frame in frames:
        name = frame.filename
        if name.startswith(_ROOT) and "/.venv/" not in name:
            return os.path.relpath(name, _ROOT) + f":{frame.lineno}", where
    return "(no botkit frame)", where


_ASYNCIO = ("tasks.py", "base_events.py", "taskgroups.py", "_weakrefset.py", "locks.py",
            "events.py", "futures.py", "coroutines.py")


def _area(owner: str, where: str) -> str:
    """A coarse "what holds it" for the table in bench/RESULTS.md."""
    inner = where.split(":")[0]
    if owner.startswith("botkit/config/"):
        return "configuration (models, source map)"
    if owner.startswith("botkit/tokens.py"):
        return "tokens (the minted JWTs, kept for reuse)"
    if inner in _ASYNCIO:
        return "asyncio: tasks, futures, events, handles"
    if owner.startswith("botkit/realtime/websocket.py") or inner.startswith("selector_events"):
        return "socket and WebSocket (websockets' protocol, buffers)"
    if owner.startswith(("botkit/realtime/", "botkit/protocol/")):
        return "realtime client (protocol state, subscriptions, coroutine frames)"
    if owner.startswith("botkit/runtime/lanes.py"):
        return "lanes"
    if owner.startswith("botkit/"):
        return "runtime objects (runner, core, presence, positions, frames)"
    return "other (the loop's own)"


def _census() -> Counter[str]:
    return Counter(type(o).__qualname__ for o in gc.get_objects())


async def _idle(side: str, server: Any, count: int) -> None:
    from bench import idle

    fn = getattr(idle, _SIDES[side])
    await fn(server.ws_url, server.api_url, server.api_key, f"heap{side[0]}", count, 0.0)


def heap(side: str, count: int, top: int) -> None:
    from bench import idle
    from botkit.dev.localserver import LocalCentrifugo, ServerSettings, free_port

    server = LocalCentrifugo(ServerSettings(port=free_port(), log_level="error"))
    server.start()
    taken: dict[str, Any] = {}
    original = idle._measure

    async def measure(rss0: int, n: int, window: float) -> dict[str, Any]:
        await asyncio.sleep(1.0)
        gc.unfreeze()  # the runtime froze its start-up heap: gc.get_objects() skips it
        gc.collect()
        taken["after"] = tracemalloc.take_snapshot()
        taken["census1"] = _census()
        return {}

    def baseline() -> int:
        gc.collect()
        taken["census0"] = _census()
        taken["before"] = tracemalloc.take_snapshot()
        return 0

    idle._measure = measure  # type: ignore[assignment]
    idle._baseline = baseline  # type: ignore[assignment]
    import centrifuge  # noqa: F401
    import websockets  # noqa: F401

    import botkit.runtime.supervisor  # noqa: F401  (before the baseline, like the worker)

    tracemalloc.start(25)
    try:
        asyncio.run(_idle(side, server, count))
    finally:
        idle._measure = original  # type: ignore[assignment]
        server.close()
    before, after = taken["before"], taken["after"]
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    before, after = before.filter_traces(filters), after.filter_traces(filters)
    old = Counter[tuple[str, str]]()
    for trace in before.traces:
        old[_owner(trace)] += trace.size
    new = Counter[tuple[str, str]]()
    for trace in after.traces:
        new[_owner(trace)] += trace.size
    diff = {key: new[key] - old[key] for key in set(new) | set(old)}
    total = sum(diff.values())
    print(f"side {side}, {count} bots: traced growth {total / count / 1024:.1f} KiB per bot")
    by_owner = Counter[str]()
    for (owner, _), size in diff.items():
        by_owner[owner] += size
    areas = Counter[str]()
    for (owner, where), size in diff.items():
        areas[_area(owner, where)] += size
    print("\nper bot, by what holds it (bytes):")
    for area, size in areas.most_common():
        print(f"{size / count:8.0f}  {area}")
    print("\nper bot, by the innermost frame of botkit's code (bytes):")
    for owner, size in by_owner.most_common(top):
        if size / count < 16:
            break
        print(f"{size / count:8.0f}  {owner}")
    print("\nper bot, by (botkit frame, innermost frame) (bytes):")
    for (owner, where), size in sorted(diff.items(), key=lambda kv: -kv[1])[:top]:
        if size / count < 16:
            break
        print(f"{size / count:8.0f}  {owner}  <-  {where}")
    census = taken["census1"]
    census.subtract(taken["census0"])
    print("\nobjects alive per bot, by type:")
    for name, n in census.most_common(top):
        if n / count < 0.5:
            break
        print(f"{n / count:8.2f}  {name}")


def rss(count: int, reps: int, sides: list[str]) -> None:
    from bench.run import run_worker
    from botkit.dev.localserver import LocalCentrifugo, ServerSettings, free_port

    server = LocalCentrifugo(ServerSettings(port=free_port(), log_level="error"))
    server.start()
    results: dict[str, list[float]] = {side: [] for side in sides}
    try:
        for rep in range(reps):
            for side in sides:
                kwargs = {"ws_url": server.ws_url, "api_url": server.api_url,
                          "api_key": server.api_key, "project": f"rss{side[0]}{rep}",
                          "count": count, "window": 1.0}
                out = run_worker(f"idle:{_SIDES[side]}", kwargs, cpus=None, timeout=240)
                results[side].append(out["kib_per_bot"])
                print(f"rep {rep} {side:10} {out['kib_per_bot']:6.1f} KiB per bot, "
                      f"started in {out['connect_seconds']:.2f} s", flush=True)
    finally:
        server.close()
    for side, values in results.items():
        values.sort()
        print(f"{side:10} median {values[len(values) // 2]:6.1f}  all "
              + " ".join(f"{v:.1f}" for v in values))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.heap")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--side", default="botkit", choices=sorted(_SIDES))
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--rss", action="store_true", help="RSS per bot, sides alternating")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sides", default="botkit,centrifuge,websockets,realtime")
    args = parser.parse_args(argv)
    if args.rss:
        rss(args.count, args.reps, args.sides.split(","))
    else:
        heap(args.side, args.count, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
