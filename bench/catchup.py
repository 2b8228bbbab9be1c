"""S10: catch-up after a restart (issue 11). One bot with a state file stores its position in a
room and stops; 10,000 envelopes are published into the room while it is down; it starts again
on the same state file and handles them from the room's history. The worker is
:func:`botkit_catchup`; the scenario (:func:`s10`, run by ``python -m bench``) is at the end.

The rate is counted by the handler, as in S1: from the first waiting envelope it sees to the
last (``count - 1`` intervals), so starting and subscribing are not part of it; the time from
the start to the last one is reported beside it. A bot that never catches up is reported after
``stall`` seconds without progress (``completed: false``), never waited for without end.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import PROJECT, channel, cpu_seconds, envelope, now

if TYPE_CHECKING:
    from bench.run import Bench, Row

SEED = 0  # the envelope handled before the stop: it gives the bot a position to resume from
BURST = 500


class _Handled:
    """What the handler saw: how many, when the first and the last came, out of order."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.seen = 0
        self.last_index = -1
        self.out_of_order = 0
        self.t0 = self.t1 = 0.0
        self.cpu0 = self.cpu1 = 0.0
        self.done = asyncio.Event()

    def tick(self, envelope_id: str) -> None:
        index = int(envelope_id[8:])  # bench envelope ids are 01JBENCH + the index
        if index <= self.last_index:
            self.out_of_order += 1
        self.last_index = index
        seen = self.seen = self.seen + 1
        if seen == 1:
            self.t0, self.cpu0 = now(), cpu_seconds()
        if seen >= self.count and not self.done.is_set():
            self.t1, self.cpu1 = now(), cpu_seconds()
            self.done.set()


def _fresh(index: int, room: str) -> dict[str, Any]:
    """A bench envelope sent now (an old ``sentAt`` would be skipped by catch_up.max_age)."""
    data = envelope(index, room=room)
    data["sentAt"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return data


async def _publish(api: Any, chan: str, room: str, indexes: range) -> None:
    for start in range(indexes.start, indexes.stop, BURST):
        # Concurrent publishes go out as batch requests (see S3b).
        await asyncio.gather(*(api.publish(chan, _fresh(i, room), idempotency_key=f"cu-{i}")
                               for i in range(start, min(start + BURST, indexes.stop))))


async def _start(runtime: Any) -> asyncio.Task[None]:
    task = asyncio.create_task(runtime.run())
    ready = asyncio.ensure_future(runtime.wait_ready())
    async with asyncio.timeout(30):
        await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()  # the runtime ended at start: its error
    return task


async def _stop(runtime: Any, task: asyncio.Task[None]) -> None:
    runtime.stop()
    async with asyncio.timeout(15):
        await task


async def _progress(handled: _Handled, timeout: float, stall: float) -> str:
    """Wait until every waiting envelope is handled; else say why not (no progress for
    ``stall`` seconds, or ``timeout`` over)."""
    deadline = time.monotonic() + timeout
    last_seen, last_change = -1, time.monotonic()
    while not handled.done.is_set():
        current = time.monotonic()
        if handled.seen != last_seen:
            last_seen, last_change = handled.seen, current
        if current - last_change > stall:
            return f"no envelope handled for {stall:g}s"
        if current > deadline:
            return f"not done within {timeout:g}s"
        try:
            async with asyncio.timeout(0.1):
                await handled.done.wait()
        except TimeoutError:
            pass
    return ""


async def botkit_catchup(ws_url: str, api_url: str, api_key: str, project: str, room: str,
                         count: int, timeout: float, stall: float = 5.0) -> dict[str, Any]:
    from bench.common import bots_yaml, runtime_for
    from botkit import Bot
    from botkit.serverapi.client import ServerApi

    folder = Path(tempfile.mkdtemp(prefix="bench-catchup-"))
    state = folder / "state.sqlite"
    yaml_text = bots_yaml(realtime_url=ws_url, api_url=api_url, rooms_per_bot=[[room]],
                          plugin=None, project=project).replace(
        "state: {backend: memory}", f"state: {{backend: sqlite, path: {state}}}")
    current = _Handled(1)
    bot = Bot("bench")

    @bot.on("chat.message")
    async def noop(ctx, event):  # type: ignore[no-untyped-def]
        current.tick(event.id)

    chan = channel(room, project)
    out: dict[str, Any] = {"count": count}
    try:
        async with ServerApi(api_url, api_key) as api:
            # 1. A position: the bot handles one envelope, then stops cleanly.
            runtime = runtime_for(yaml_text, api_key, bot)
            task = await _start(runtime)
            try:
                await _publish(api, chan, room, range(SEED, SEED + 1))
                async with asyncio.timeout(10):
                    await current.done.wait()
            finally:
                await _stop(runtime, task)
            # 2. While it is down, the room fills up.
            published = now()
            await _publish(api, chan, room, range(SEED + 1, SEED + 1 + count))
            out["publish_seconds"] = now() - published
        # 3. It starts again on the same state file, and catches up.
        current = _Handled(count)
        runtime = runtime_for(yaml_text, api_key, bot)
        started = now()
        task = await _start(runtime)
        try:
            why = await _progress(current, timeout, stall)
        finally:
            await _stop(runtime, task)
        stats = next(iter(runtime.runners.values())).stats
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    span = current.t1 - current.t0
    out.update(
        completed=current.done.is_set(), why=why, handled=current.seen,
        out_of_order=current.out_of_order,
        rate=(count - 1) / span if current.done.is_set() and span > 0 else 0.0,
        seconds=span if current.done.is_set() else float("nan"),
        start_to_first=current.t0 - started if current.seen else float("nan"),
        start_to_done=current.t1 - started if current.done.is_set() else float("nan"),
        cpu_us_per_msg=((current.cpu1 - current.cpu0) / max(1, count - 1) * 1e6
                        if current.done.is_set() else float("nan")),
        skipped_old=getattr(stats, "skipped_old", None), gaps=stats.gaps)
    return out


# -- the scenario (in the orchestrator) ---------------------------------------------------------

S10_WAITING = 10_000
S10_TARGET = 0.8


def s10(bench: Bench) -> tuple[list[Row], Any]:
    """10,000 envelopes wait in a room's history while the bot is down: how fast it handles
    them once started again, next to the live firehose rate of S1 measured in the same run
    (botkit's S1 worker on the replay server, alternating with the catch-up trials)."""
    from bench.run import BenchError, alternate, run_worker
    from bench.scenarios import _cpus, _row, _values
    from botkit.dev.localserver import LocalCentrifugo, ServerSettings, free_port

    count = S10_WAITING
    live_count = 20_000 if bench.quick else 100_000
    timeout = 20.0 if bench.quick else 60.0
    # The history holds every waiting envelope (and the one before the stop), and keeps them
    # for the whole run. Recovery and history calls stay at Centrifugo's defaults (300
    # publications each): the runtime pages, as it must against a default server.
    server = LocalCentrifugo(ServerSettings(port=free_port(), log_level="error",
                                            history_size=count + 1000, history_ttl="1800s"))
    bench._start_pinned(server.start)
    try:
        with bench.replay(live_count) as (replay_ws, replay_api):
            def trial(side: str, rep: int) -> dict[str, Any]:
                if side == "live":
                    return run_worker("firehose:botkit_firehose", {
                        "url": replay_ws, "api_url": replay_api, "count": live_count,
                        "timeout": 60.0}, cpus=_cpus(bench), timeout=90)
                return run_worker("catchup:botkit_catchup", {
                    "ws_url": server.ws_url, "api_url": server.api_url,
                    "api_key": server.api_key, "project": f"{PROJECT}cu{rep}",
                    "room": "room_bench", "count": count, "timeout": timeout},
                    cpus=_cpus(bench), timeout=timeout + 90)

            results = alternate(bench.reps, ["catchup", "live"], trial)
    finally:
        server.close()
    live = _values(results["live"], "rate")
    for result in results["catchup"]:
        if not result.get("completed"):
            raise BenchError(
                f"the bot did not catch up: {result.get('handled')} of {count} waiting "
                f"envelopes handled ({result.get('why')}); live firehose (S1) "
                f"{_values(results['live'], 'rate')} msg/s")
        if result.get("out_of_order"):
            raise BenchError(f"catch-up handled {result['out_of_order']} envelope(s) out of "
                             "order")
    note = (f"{count} envelopes waiting at start; S1 live: {live_count} from the replay "
            f"server; skipped_old {[r.get('skipped_old') for r in results['catchup']]}")
    rows = [
        _row("S10", "catch-up rate", "msg/s", True, "S1 live firehose (botkit)", S10_TARGET,
             _values(results["catchup"], "rate"), live, note),
        _row("S10", "start -> last waiting envelope handled", "s", False, "-", None,
             _values(results["catchup"], "start_to_done"), []),
        _row("S10", "start -> first waiting envelope handled", "s", False, "-", None,
             _values(results["catchup"], "start_to_first"), []),
    ]
    return rows, results
