"""S2: end-to-end echo against the real Centrifugo. A user publishes chat messages into a room;
the bot answers each through the server API; the user sees the answer. The latency is from
the publish to the answer arriving, both timed by the load generator.

The bot runs in its own process (botkit's runtime, or the same echo built from
centrifuge-python and cent); the load generator in another, on the server's core. The load is
the same for both: fixed rates, then saturation (a closed loop keeping ``window`` messages in
flight), every phase bounded in time.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

from bench.common import BOT_USER, HUMAN, GcPauses, channel, envelope, now, percentile
from bench.control import next_line, say, tokens


async def _serve_until_stop(deadline: float) -> None:
    GcPauses.reset()
    say("READY")
    await next_line(deadline)


async def botkit_echo(ws_url: str, api_url: str, api_key: str, project: str, room: str,
                      deadline: float) -> dict[str, Any]:
    from bench.common import bots_yaml, runtime_for
    from botkit import Bot

    bot = Bot("echo")

    @bot.on("chat.message")
    async def echo(ctx, event):  # type: ignore[no-untyped-def]
        await ctx.reply(event.text)

    yaml_text = bots_yaml(realtime_url=ws_url, api_url=api_url, rooms_per_bot=[[room]],
                          plugin=None, project=project)
    runtime = runtime_for(yaml_text, api_key, bot)
    task = asyncio.create_task(runtime.run())
    async with asyncio.timeout(30):
        ready = asyncio.ensure_future(runtime.wait_ready())
        await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
    await _serve_until_stop(deadline)
    runtime.stop()
    async with asyncio.timeout(15):
        await task
    runner = next(iter(runtime.runners.values()))
    return {"handled": runner.stats.handled, "replies": runner.services.replies_sent}


async def peer_echo(ws_url: str, api_url: str, api_key: str, project: str, room: str,
                    deadline: float, concurrency: int = 10) -> dict[str, Any]:
    """The same echo from the peers: a centrifuge-python subscription whose handler answers
    each chat message through cent, at most ``concurrency`` publishes in flight (the SDK's
    advice: never block its reader on a slow call)."""
    import datetime
    import secrets

    import centrifuge
    from cent import AsyncClient, PublishRequest

    chan = channel(room, project)
    api = AsyncClient(api_url, api_key)
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[Any]] = set()
    counts = {"handled": 0, "replies": 0}

    async def publish(reply: dict[str, Any], key: str) -> None:
        try:
            await api.publish(PublishRequest(channel=chan, data=reply, idempotency_key=key))
            counts["replies"] += 1
        finally:
            slots.release()

    class Handler(centrifuge.SubscriptionEventHandler):
        async def on_publication(self, ctx: centrifuge.PublicationContext) -> None:
            data = ctx.pub.data
            if (not isinstance(data, dict) or data.get("type") != "chat.message"
                    or data.get("senderId") == BOT_USER):
                return
            counts["handled"] += 1
            sent_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
            reply = {"type": "chat.message", "id": secrets.token_hex(13), "roomId": room,
                     "senderId": BOT_USER, "text": data.get("text"), "replyTo": data.get("id"),
                     "sentAt": sent_at.replace("+00:00", "Z")}
            await slots.acquire()
            task = asyncio.create_task(publish(reply, f"echo:{data.get('id')}:1"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    client = centrifuge.Client(ws_url, token=tokens(api_key, BOT_USER), proxy=None)
    sub = client.new_subscription(chan, Handler(), token=tokens(api_key, BOT_USER, chan),
                                  recoverable=True, positioned=True)
    await client.connect()
    await sub.subscribe()
    await sub.ready(10)
    await _serve_until_stop(deadline)
    await client.disconnect()
    if tasks:
        await asyncio.wait(tasks, timeout=5)
    await api.close()
    return counts


async def loadgen(ws_url: str, api_key: str, project: str, room: str,
                  phases: list[dict[str, Any]], settle: float = 3.0) -> dict[str, Any]:
    """Publish as a user, time each echo. A phase is {"rate": r, "seconds": s} (fixed rate)
    or {"window": w, "seconds": s} (saturation: w messages in flight)."""
    import websockets

    chan = channel(room, project)
    sent: dict[str, float] = {}
    echoed: dict[str, float] = {}
    fresh: deque[str] = deque()  # echoed ids not yet seen by the saturation loop
    wakeup = asyncio.Event()
    counter = iter(range(10**9))
    results: list[dict[str, Any]] = []

    async with websockets.connect(ws_url, compression=None, max_size=None, ping_interval=None,
                                  proxy=None) as ws:
        async def reply_to(command_id: int) -> dict[str, Any]:
            async with asyncio.timeout(10):
                while True:
                    for line in str(await ws.recv()).split("\n"):
                        frame = json.loads(line)
                        if frame.get("id") == command_id:
                            return dict(frame)

        await ws.send(json.dumps({"id": 1, "connect": {"token": tokens(api_key, HUMAN),
                                                       "name": "loadgen"}}))
        await reply_to(1)
        await ws.send(json.dumps({"id": 2, "subscribe": {
            "channel": chan, "token": tokens(api_key, HUMAN, chan)}}))
        reply = await reply_to(2)
        if "error" in reply:
            raise RuntimeError(f"loadgen could not subscribe: {reply}")

        async def read() -> None:
            async for message in ws:
                for line in str(message).split("\n"):
                    frame = json.loads(line)
                    if not frame:
                        await ws.send("{}")
                        continue
                    pub = (frame.get("push") or {}).get("pub")
                    if pub is None:
                        continue
                    data = pub.get("data") or {}
                    if data.get("senderId") == BOT_USER:
                        origin = data.get("replyTo")
                        if origin in sent and origin not in echoed:
                            echoed[origin] = now()
                            fresh.append(origin)
                            wakeup.set()

        async def publish() -> str:
            index = next(counter)
            data = envelope(index, room=room)
            sent[data["id"]] = now()
            await ws.send(json.dumps({"id": 10 + index, "publish": {"channel": chan,
                                                                   "data": data}}))
            return str(data["id"])

        reader = asyncio.create_task(read())
        try:
            for phase in phases:
                fresh.clear()
                results.append(await _phase(phase, publish, sent, echoed, fresh, wakeup,
                                            settle))
        finally:
            reader.cancel()
    return {"phases": results}


async def _phase(phase: dict[str, Any], publish: Any, sent: dict[str, float],
                 echoed: dict[str, float], fresh: deque[str], wakeup: asyncio.Event,
                 settle: float) -> dict[str, Any]:
    seconds = float(phase["seconds"])
    ids: list[str] = []
    start = now()
    if "rate" in phase:
        rate = float(phase["rate"])
        total = int(rate * seconds)
        for i in range(total):
            delay = start + i / rate - now()
            if delay > 0:
                await asyncio.sleep(delay)
            ids.append(await publish())
            fresh.clear()
        end = now()
    else:
        window = int(phase["window"])
        end = start + seconds
        outstanding: set[str] = set()
        while now() < end:
            while fresh:
                outstanding.discard(fresh.popleft())
            while len(outstanding) < window:
                message_id = await publish()
                outstanding.add(message_id)
                ids.append(message_id)
            wakeup.clear()
            try:
                async with asyncio.timeout(max(0.0, end - now())):
                    await wakeup.wait()
            except TimeoutError:
                break
        end = now()
    # Bounded wait for the last answers.
    limit = now() + settle
    while any(i not in echoed for i in ids) and now() < limit:  # noqa: ASYNC110 (polls a dict)
        await asyncio.sleep(0.02)
    latencies = [(echoed[i] - sent[i]) * 1000 for i in ids if i in echoed]
    in_time = [i for i in ids if i in echoed and echoed[i] <= end]
    return {"phase": phase, "sent": len(ids), "echoed": len(latencies),
           "lost": len(ids) - len(latencies),
           "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
           "max_ms": max(latencies) if latencies else float("nan"),
           "rate": len(in_time) / (end - start) if end > start else 0.0}
