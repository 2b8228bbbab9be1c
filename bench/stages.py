"""S1's per-message CPU, stage by stage, without a socket: the same ~200-byte publication frames
the replay server sends, read by botkit's protocol, then handed to a real runner's lane (its
validation, dispatch to a no-op handler, cursor), one process, no network. For profiling the
read path; the figures of record are S1's.

Run: ``python -m bench.stages [--count N] [--reps R] [--profile protocol|lane|firehose]``
(``firehose``: S1's botkit worker whole, socket included, against the replay server).

Stages (µs per message, best of ``reps``):

* ``protocol``: ``ClientProtocol.receive`` of one frame (JSON decode, checks, Publication);
* ``handle``: the lane's item handler called directly (validation, trust, routing, deadline,
  handler call, timing, cursor);
* ``lane``: the same through the lane (``offer`` then its worker), batches of 500 as the reader
  hands them over.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import time
from typing import Any

from bench.common import HUMAN, bots_yaml, channel, envelope

CHANNEL = channel("room_bench")


def frames(count: int) -> list[str]:
    return [json.dumps({"push": {"channel": CHANNEL, "pub": {
        "data": envelope(i), "offset": i + 1,
        "info": {"user": HUMAN, "client": "c0ffee00-0000-4000-8000-000000000001"}}}},
        separators=(",", ":")) for i in range(count)]


def subscribed_protocol() -> Any:
    from botkit.protocol.client import ClientProtocol

    protocol = ClientProtocol()
    protocol.connect("token")
    protocol.receive(json.dumps({"id": 1, "connect": {"client": "c", "version": "v"}}))
    command = protocol.subscribe(CHANNEL)
    protocol.data_to_send()
    protocol.receive(json.dumps({"id": command, "subscribe": {
        "recoverable": True, "positioned": True, "epoch": "e", "offset": 0}}))
    return protocol


def runner_for(noop_counter: list[int]) -> Any:
    from bench.common import runtime_for
    from botkit import Bot
    from botkit.runtime.outbox import Outboxes
    from botkit.runtime.runner import BotRunner
    from botkit.serverapi.client import ServerApi

    bot = Bot("bench")

    @bot.on("chat.message")
    async def noop(ctx, event):  # type: ignore[no-untyped-def]
        noop_counter[0] += 1

    yaml_text = bots_yaml(realtime_url="ws://127.0.0.1:9/connection/websocket",
                          api_url="http://127.0.0.1:9/api", rooms_per_bot=[["room_bench"]],
                          plugin=None)
    runtime = runtime_for(yaml_text, "bench-key", bot)
    api = ServerApi("http://127.0.0.1:9/api", "bench-key")
    loaded = runtime.bots[0]
    return BotRunner(loaded, runtime.config, api,
                     bot_users=frozenset([loaded.config.user_id]), outboxes=Outboxes(api))


async def _stages(count: int, reps: int, profile: str | None) -> dict[str, float]:
    texts = frames(count)
    best: dict[str, float] = {}
    handled = [0]
    profiler = cProfile.Profile()
    for _ in range(reps):
        protocol = subscribed_protocol()
        receive = protocol.receive
        t0 = time.perf_counter()
        if profile == "protocol":
            profiler.enable()
        publications = [event for text in texts for event in receive(text)]
        if profile == "protocol":
            profiler.disable()
        t1 = time.perf_counter()
        assert len(publications) == count, protocol.drops
        best["protocol"] = min(best.get("protocol", 1e9), (t1 - t0) / count * 1e6)

        runner = runner_for(handled)
        lane = runner._flows[CHANNEL].lane
        handle = lane._handle
        half = count // 2
        t0 = time.perf_counter()
        for publication in publications[:half]:
            await handle(publication)
        t1 = time.perf_counter()
        best["handle"] = min(best.get("handle", 1e9), (t1 - t0) / half * 1e6)

        async with asyncio.TaskGroup() as group:
            lane.start(group)
            rest = publications[half:]
            t0 = time.perf_counter()
            if profile == "lane":
                profiler.enable()
            for start in range(0, len(rest), 500):
                for publication in rest[start:start + 500]:
                    lane.offer(publication)
                await lane.drain(60)
            if profile == "lane":
                profiler.disable()
            t1 = time.perf_counter()
            await lane.stop()
        best["lane"] = min(best.get("lane", 1e9), (t1 - t0) / len(rest) * 1e6)
        assert runner.stats.invalid == 0, runner.stats
        assert runner.stats.handled >= count, runner.stats
        await runner.positions.aclose()
    if profile:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return best


def profile_firehose(count: int) -> None:
    """S1's botkit side whole (socket included) under cProfile, against the replay server,
    in this process (unpinned)."""
    from bench.firehose import botkit_firehose
    from bench.run import Bench

    bench = Bench(quick=True, reps=1)
    with bench.replay(count) as (ws_url, api_url):
        profiler = cProfile.Profile()
        profiler.enable()
        out = asyncio.run(botkit_firehose(ws_url, api_url, count, 60.0))
        profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
    print({key: out[key] for key in ("rate", "cpu_us_per_msg", "handled", "completed")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--profile", choices=["protocol", "lane", "firehose"])
    args = parser.parse_args()
    if args.profile == "firehose":
        profile_firehose(args.count)
        return
    best = asyncio.run(_stages(args.count, args.reps, args.profile))
    print("  ".join(f"{stage} {value:.2f} µs" for stage, value in best.items()))


if __name__ == "__main__":
    main()
