"""S13's bot processes (see :mod:`bench.mixed`): three bots answering ``/echo`` in their share of
the 500 rooms, built with botkit's runtime or by hand from centrifuge-python and cent. Each says
READY once every room is subscribed and measures its own CPU time between START and STOP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bench.common import BOT_USER, GcPauses, channel, cpu_seconds, now
from bench.control import next_line, say, tokens


async def _serve_window(counters: Callable[[], dict[str, int]],
                        deadline: float) -> dict[str, Any]:
    """READY, then the CPU time, and how much each counter grew (``received``: envelopes),
    between START and STOP."""
    say("READY")
    line = await next_line(deadline)
    if line != "START":
        return {"error": f"expected START, got {line!r}"}
    GcPauses.reset()
    cpu0, t0, before = cpu_seconds(), now(), counters()
    line = await next_line(deadline)
    cpu1, t1, after = cpu_seconds(), now(), counters()
    return {"cpu_seconds": cpu1 - cpu0, "wall_seconds": t1 - t0,
            **{k: v - before[k] for k, v in after.items()}, "stopped_by": line or "timeout"}


async def botkit_bots(ws_url: str, api_url: str, api_key: str, project: str,
                      rooms_per_bot: list[list[str]], deadline: float) -> dict[str, Any]:
    from bench.common import bots_yaml, runtime_for
    from botkit import Bot

    bot = Bot("mixed")

    @bot.command("echo", help="say it back")
    async def echo(ctx, text: str = "") -> None:  # type: ignore[no-untyped-def]
        await ctx.reply(text)

    yaml_text = bots_yaml(realtime_url=ws_url, api_url=api_url, rooms_per_bot=rooms_per_bot,
                          plugin=None, project=project)
    runtime = runtime_for(yaml_text, api_key, bot)
    task = asyncio.create_task(runtime.run())
    async with asyncio.timeout(60):
        ready = asyncio.ensure_future(runtime.wait_ready())
        await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            ready.cancel()
            task.result()
    runners = list(runtime.runners.values())
    # One server API client for the whole runtime; read defensively, its counters may change.
    api = getattr(runners[0].services.api, "stats", None)
    fields = ("requests", "publish_requests", "publish_batches", "batched_publishes")

    def counters() -> dict[str, int]:
        return {"received": sum(r.stats.received for r in runners),
                **{f"api_{f}": int(getattr(api, f, 0)) for f in fields}}

    out = await _serve_window(counters, deadline)
    runtime.stop()
    async with asyncio.timeout(15):
        await task
    out.update(handled=sum(r.stats.handled for r in runners),
               replies=sum(r.services.replies_sent for r in runners))
    return out


async def peer_bots(ws_url: str, api_url: str, api_key: str, project: str,
                    rooms_per_bot: list[list[str]], deadline: float,
                    concurrency: int = 10) -> dict[str, Any]:
    """The same bots from the peers, as in S2: a centrifuge-python client per bot, a
    subscription per room whose handler answers ``/echo`` through cent, at most
    ``concurrency`` publishes in flight."""
    import datetime
    import secrets

    import centrifuge
    from cent import AsyncClient, PublishRequest

    api = AsyncClient(api_url, api_key)
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[Any]] = set()
    counts = {"received": 0, "handled": 0, "replies": 0}
    users = [f"{BOT_USER}_{i}" for i in range(len(rooms_per_bot))]
    bot_users = set(users)

    async def publish(chan: str, reply: dict[str, Any], key: str) -> None:
        try:
            await api.publish(PublishRequest(channel=chan, data=reply, idempotency_key=key))
            counts["replies"] += 1
        finally:
            slots.release()

    class Handler(centrifuge.SubscriptionEventHandler):
        def __init__(self, user: str, room: str) -> None:
            self.user, self.room, self.chan = user, room, channel(room, project)

        async def on_publication(self, ctx: centrifuge.PublicationContext) -> None:
            counts["received"] += 1
            data = ctx.pub.data
            if (not isinstance(data, dict) or data.get("type") != "chat.message"
                    or data.get("senderId") in bot_users):
                return
            text = data.get("text")
            if not isinstance(text, str) or not (text == "/echo" or text.startswith("/echo ")):
                return
            counts["handled"] += 1
            sent_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
            reply = {"type": "chat.message", "id": secrets.token_hex(13), "roomId": self.room,
                     "senderId": self.user, "text": text[6:], "replyTo": data.get("id"),
                     "sentAt": sent_at.replace("+00:00", "Z")}
            await slots.acquire()
            task = asyncio.create_task(publish(self.chan, reply, f"echo:{data.get('id')}:1"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    clients = []
    subs = []
    for user, rooms in zip(users, rooms_per_bot, strict=True):
        client = centrifuge.Client(ws_url, token=tokens(api_key, user), proxy=None)
        clients.append(client)
        for room in rooms:
            chan = channel(room, project)
            subs.append(client.new_subscription(chan, Handler(user, room),
                                                token=tokens(api_key, user, chan),
                                                recoverable=True, positioned=True))
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(c.connect() for c in clients))
            await asyncio.gather(*(s.subscribe() for s in subs))
            await asyncio.gather(*(s.ready(30) for s in subs))
        # One cent request per reply.
        out = await _serve_window(lambda: {"received": counts["received"],
                                           "api_requests": counts["replies"]}, deadline)
    finally:
        await asyncio.gather(*(c.disconnect() for c in clients))
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await api.close()
    out.update(handled=counts["handled"], replies=counts["replies"])
    return out
