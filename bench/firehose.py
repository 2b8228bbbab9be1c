"""S1 and S8: one room, a firehose of ~200-byte envelopes from the replay server, a handler.

Each function runs in its own worker process and returns its numbers. The rate is counted by
the handler itself: from the first publication it sees to the last (``count - 1`` intervals),
so connecting and subscribing are not part of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

from bench.common import GcPauses, channel, cpu_seconds, now, rss_bytes

CHANNEL = channel("room_bench")


class _Counter:
    def __init__(self, count: int) -> None:
        self.count = count
        self.seen = 0
        self.t0 = self.t1 = 0.0
        self.cpu0 = self.cpu1 = 0.0
        self.gc: dict[str, Any] = {}
        self.done = asyncio.Event()

    def tick(self) -> None:
        seen = self.seen = self.seen + 1
        if seen == 1:
            self.t0, self.cpu0 = now(), cpu_seconds()
            GcPauses.reset()
        if seen >= self.count and not self.done.is_set():
            self.t1, self.cpu1 = now(), cpu_seconds()
            self.gc = GcPauses.current.summary() if GcPauses.current else {}
            self.done.set()

    def result(self) -> dict[str, Any]:
        span = self.t1 - self.t0
        return {"messages": self.seen, "seconds": span,
                **{f"window_{k}": v for k, v in self.gc.items()},
                "rate": (self.count - 1) / span if span > 0 else 0.0,
                "cpu_us_per_msg": (self.cpu1 - self.cpu0) / max(1, self.count - 1) * 1e6}


class _RssSampler:
    """Peak RSS over a run, sampled from a thread (the event loop may be saturated)."""

    def __init__(self, period: float = 0.05) -> None:
        self.base = rss_bytes()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period,), daemon=True)
        self._thread.start()

    def _run(self, period: float) -> None:
        while not self._stop.wait(period):
            self.peak = max(self.peak, rss_bytes())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        return self.peak - self.base


async def botkit_firehose(url: str, api_url: str, count: int, timeout: float,
                          handler_sleep: float = 0.0,
                          lane_queue_size: int = 1000) -> dict[str, Any]:
    """The whole runtime: connection, lane, validation, routing, a handler."""
    from bench.common import bots_yaml, runtime_for
    from botkit import Bot

    counter = _Counter(count)
    bot = Bot("bench")

    if handler_sleep > 0:
        @bot.on("chat.message")
        async def slow(ctx, event):  # type: ignore[no-untyped-def]
            await asyncio.sleep(handler_sleep)
            counter.tick()
    else:
        @bot.on("chat.message")
        async def noop(ctx, event):  # type: ignore[no-untyped-def]
            counter.tick()

    yaml_text = bots_yaml(realtime_url=url, api_url=api_url, rooms_per_bot=[["room_bench"]],
                          plugin=None, lane_queue_size=lane_queue_size)
    runtime = runtime_for(yaml_text, "bench-key-not-checked-by-the-replay-server", bot)
    sampler = _RssSampler()
    with_ops = os.environ.get("BENCH_OPS") == "1"
    task = asyncio.create_task(_run_with_ops(runtime) if with_ops else runtime.run())
    try:
        async with asyncio.timeout(timeout):
            await counter.done.wait()
    except TimeoutError:
        pass
    finally:
        grown = sampler.stop()
        runtime.stop()
        async with asyncio.timeout(15):
            await task
    runner = next(iter(runtime.runners.values()))
    out = counter.result()
    out.update(rss_growth_mib=grown / 2**20, reconnects=runner.client.reconnects,
               invalid=runner.stats.invalid, handled=runner.stats.handled,
               completed=counter.done.is_set())
    return out


async def _run_with_ops(runtime: Any) -> None:
    """BENCH_OPS=1: the runtime with its ops endpoint on, /metrics and /healthz scraped from a
    thread every 0.2 s (Prometheus would every 15 s or so), to show what the endpoint costs the
    hot path."""
    import urllib.request

    from botkit.ops import serve_ops

    async with serve_ops("127.0.0.1", 0, lambda: runtime) as ops:
        stop = threading.Event()

        def scrape() -> None:
            while not stop.wait(0.2):
                for path in ("/metrics", "/healthz"):
                    with urllib.request.urlopen(f"{ops.url}{path}", timeout=5) as answer:
                        answer.read()

        scraper = threading.Thread(target=scrape, name="bench scraper", daemon=True)
        scraper.start()
        try:
            await runtime.run()
        finally:
            stop.set()
            await asyncio.to_thread(scraper.join, 10)


async def centrifuge_firehose(url: str, count: int, timeout: float) -> dict[str, Any]:
    """centrifuge-python: a subscription whose on_publication is the no-op handler."""
    import centrifuge

    counter = _Counter(count)

    class Handler(centrifuge.SubscriptionEventHandler):
        async def on_publication(self, ctx: centrifuge.PublicationContext) -> None:
            counter.tick()

    client = centrifuge.Client(url, token="replay-ignores-tokens", proxy=None)
    sub = client.new_subscription(CHANNEL, Handler(), token="replay", recoverable=True,
                                  positioned=True)
    sampler = _RssSampler()
    await client.connect()
    await sub.subscribe()
    try:
        async with asyncio.timeout(timeout):
            await counter.done.wait()
    except TimeoutError:
        pass
    finally:
        grown = sampler.stop()
        await client.disconnect()
    out = counter.result()
    out.update(rss_growth_mib=grown / 2**20, completed=counter.done.is_set())
    return out


async def websockets_firehose(url: str, count: int, timeout: float) -> dict[str, Any]:
    """The floor: a bare websockets read loop that decodes each frame, counts publications
    and answers pings, nothing else."""
    import websockets

    counter = _Counter(count)
    loads = json.loads
    sampler = _RssSampler()
    async with websockets.connect(url, compression=None, max_size=None, ping_interval=None,
                                  proxy=None) as ws:
        await ws.send(json.dumps({"id": 1, "connect": {"token": "x", "name": "bare"}}))
        await ws.recv()
        await ws.send(json.dumps({"id": 2, "subscribe": {"channel": CHANNEL, "token": "x",
                                                        "recoverable": True,
                                                        "positioned": True}}))
        try:
            async with asyncio.timeout(timeout):
                async for message in ws:
                    for line in str(message).split("\n"):
                        frame = loads(line)
                        push = frame.get("push")
                        if push is not None:
                            if "pub" in push:
                                counter.tick()
                        elif not frame:
                            await ws.send("{}")
                    if counter.done.is_set():
                        break
        except TimeoutError:
            pass
    grown = sampler.stop()
    out = counter.result()
    out.update(rss_growth_mib=grown / 2**20, completed=counter.done.is_set())
    return out


def replay_stats(http_url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"{http_url}/stats", timeout=5) as response:
        data: dict[str, Any] = json.loads(response.read())
        return data


async def slow_handler(url: str, api_url: str, http_url: str, count: int, timeout: float,
                       handler_sleep: float) -> dict[str, Any]:
    """S8: botkit with a handler that sleeps; the replay server says whether it cut the
    connection for a missed pong, and how late the latest pong was."""
    started = time.monotonic()
    out = await botkit_firehose(url, api_url, count, timeout, handler_sleep=handler_sleep)
    stats = replay_stats(http_url)
    out.update(wall=time.monotonic() - started, no_pong_closes=stats["no_pong_closes"],
               max_pong_delay=stats["max_pong_delay"], pings=stats["pings"])
    return out
