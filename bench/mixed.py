"""S13: a realistic mixed load (issue 14's "S9"; S9 here is the 500-room subscribe). Three bots
share 500 rooms; a load generator publishes Poisson traffic through the server API; an
observer times each command's answer.

* **Layout**: the rooms are divided, room ``i`` belongs to bot ``i % 3`` (167/167/166 rooms),
  so every room has exactly one bot of this deployment answering in it: how a deployment with
  many rooms shards them across bot accounts, and every command gets exactly one reply. All
  three bots run in one process (one ``botkit run``; the peer: three centrifuge-python clients
  and one cent client in one process), pinned to the client core.
* **Traffic**: open loop, Poisson arrivals at ``rate`` (2,000 envelopes/s) scheduled by time,
  never waiting for replies; rooms uniform; 70 % ``chat.message``, 20 % commands (``/echo``,
  answered), 8 % ``typing``, 2 % ``user.joined`` / ``user.left``. The arrivals due every
  ``tick`` (5 ms) go out as one server API ``batch`` request, a few requests in flight at most.
* **Latency**: from the wall-clock time just before the batch holding a command is posted to
  the reply's arrival at the observer, a bare WebSocket client subscribed to all 500 rooms
  (the same process for both sides, on the server core with Centrifugo and the load generator).
* **CPU per envelope**: the bot process's CPU time (user + system) from START (just before the
  load starts) to STOP (once the replies are in, or a bounded wait), divided by the envelopes
  published into its rooms.

Centrifugo runs with ``client.channel_limit`` raised to 1000 for both sides (its default of 128
refuses a bot of 167 rooms and the observer's 500). The scenario itself, :func:`s13`, is at
the end; the bot processes are in :mod:`bench.mixed_bots`.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from bench.common import PROJECT, channel, now, percentile
from bench.control import next_line, say, tokens

if TYPE_CHECKING:
    from bench.run import Bench, Row

BOTS = 3
ROOMS = 500
RATE = 2000.0
SECONDS = 60.0
QUICK_SECONDS = 5.0
TICK = 0.005
IN_FLIGHT = 8
SETTLE = 3.0
SENDERS = 50

#: The share of each kind of envelope in the traffic (summing to 1).
KINDS: tuple[tuple[str, float], ...] = (
    ("chat", 0.70), ("command", 0.20), ("typing", 0.08), ("joined", 0.01), ("left", 0.01))


# -- the workload (pure) ------------------------------------------------------------------------

class Arrival(NamedTuple):
    at: float  # seconds from the start
    room: int
    kind: str


def poisson_arrivals(rate: float, seconds: float, rng: random.Random) -> list[float]:
    """Arrival times in [0, seconds) of a Poisson process of ``rate`` per second
    (exponential gaps)."""
    if rate <= 0 or seconds <= 0:
        return []
    times: list[float] = []
    t = rng.expovariate(rate)
    while t < seconds:
        times.append(t)
        t += rng.expovariate(rate)
    return times


def plan(rate: float, seconds: float, rooms: int, seed: int,
         kinds: Sequence[tuple[str, float]] = KINDS) -> list[Arrival]:
    """The whole schedule, fixed by ``seed`` so both sides get the same load: when, in which
    room, and what kind of envelope."""
    rng = random.Random(seed)
    names = [k for k, _ in kinds]
    bounds: list[float] = []
    total = 0.0
    for _, share in kinds:
        total += share
        bounds.append(total)
    out = []
    for t in poisson_arrivals(rate, seconds, rng):
        room = rng.randrange(rooms)
        pick = min(bisect.bisect_right(bounds, rng.random() * total), len(names) - 1)
        out.append(Arrival(t, room, names[pick]))
    return out


def split_rooms(rooms: Sequence[str], bots: int) -> list[list[str]]:
    """Room ``i`` to bot ``i % bots``."""
    return [list(rooms[i::bots]) for i in range(bots)]


def pair_latencies(sent: dict[str, float], arrived: dict[str, float]) -> tuple[list[float], int]:
    """Milliseconds from each command's publish to its reply, and how many had no reply."""
    latencies = [(arrived[k] - t) * 1000 for k, t in sent.items() if k in arrived]
    return latencies, len(sent) - len(latencies)


def _envelope(arrival: Arrival, index: int, room: str, sent_at: str) -> dict[str, Any]:
    sender = f"user_mx{index % SENDERS}"
    base: dict[str, Any] = {"id": f"mx{index:09d}", "roomId": room, "senderId": sender,
                            "sentAt": sent_at}
    if arrival.kind == "chat":
        base.update(type="chat.message", text=f"just chatting, message number {index}")
    elif arrival.kind == "command":
        base.update(type="chat.message", text=f"/echo ping {index}")
    elif arrival.kind == "typing":
        base.update(type="typing", isTyping=True)
    else:
        base.update(type=f"user.{arrival.kind}", userId=sender)
    return base


# -- the observer -------------------------------------------------------------------------------

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
    return {"pubs": counts["pubs"], "arrived": {k: round(v, 6) for k, v in arrived.items()}}


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
                    data = _envelope(arrivals[n], n, rooms[arrivals[n].room], sent_at)
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


# -- the scenario (in the orchestrator) ---------------------------------------------------------

def _summary(load: dict[str, Any], seen: dict[str, Any], bot: dict[str, Any]) -> dict[str, Any]:
    latencies, lost = pair_latencies(load.pop("sent"), seen.pop("arrived"))
    published = int(load["published"])
    return {
        "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=float("nan")), "commands": len(latencies) + lost,
        "lost": lost, "rate": load["rate"],
        "cpu_us_per_envelope": (float(bot["cpu_seconds"]) * 1e6 / published
                                if published and "cpu_seconds" in bot else float("nan")),
        "load": load, "observer": seen, "bot": bot}


def s13(bench: Bench) -> tuple[list[Row], Any]:
    from bench.run import Interactive, alternate, run_worker
    from bench.scenarios import _cpus, _row, _values
    from botkit.dev.localserver import LocalCentrifugo, ServerSettings, free_port

    seconds = QUICK_SECONDS if bench.quick else SECONDS
    rooms = [f"r{i:03d}" for i in range(ROOMS)]
    rooms_per_bot = split_rooms(rooms, BOTS)
    server = LocalCentrifugo(ServerSettings(port=free_port(), log_level="error"))
    # As in S9: one connection holding more than 128 channels needs client.channel_limit.
    os.environ["CENTRIFUGO_CLIENT_CHANNEL_LIMIT"] = str(2 * ROOMS)
    try:
        bench._start_pinned(server.start)
    finally:
        del os.environ["CENTRIFUGO_CLIENT_CHANNEL_LIMIT"]

    def trial(side: str, rep: int) -> dict[str, Any]:
        project = f"{PROJECT}mx{side[0]}{rep}"
        life = seconds + 180
        target = "mixed_bots:botkit_bots" if side == "botkit" else "mixed_bots:peer_bots"
        bot = Interactive(target, {
            "ws_url": server.ws_url, "api_url": server.api_url, "api_key": server.api_key,
            "project": project, "rooms_per_bot": rooms_per_bot, "deadline": seconds + 60},
            cpus=_cpus(bench), timeout=life)
        observer: Interactive | None = None
        try:
            bot.wait_for("READY", 60)
            observer = Interactive("mixed:observe", {
                "ws_url": server.ws_url, "api_key": server.api_key, "project": project,
                "rooms": rooms, "deadline": seconds + 60}, cpus=bench.server_cores,
                timeout=life)
            observer.wait_for("READY", 60)
            bot.send("START")
            load = run_worker("mixed:loadgen", {
                "api_url": server.api_url, "api_key": server.api_key, "project": project,
                "rooms": rooms, "rate": RATE, "seconds": seconds, "seed": rep},
                cpus=bench.server_cores, timeout=seconds + 60)
            observer.send(f"STOP {load['commands']}")
            seen = observer.result(SETTLE + 30)
            bot.send("STOP")
            return _summary(load, seen, bot.result(60))
        finally:
            if observer is not None:
                observer.close()
            bot.close()

    try:
        results = alternate(bench.reps_for(heavy=True), ["botkit", "peer"], trial)
    finally:
        server.close()
    peer = "centrifuge-python + cent"
    b, p = results["botkit"], results["peer"]
    lost = (f"replies missing: botkit {sum(int(r['lost']) for r in b)} of "
            f"{sum(int(r['commands']) for r in b)}, peer {sum(int(r['lost']) for r in p)} of "
            f"{sum(int(r['commands']) for r in p)}")
    layout = (f"{BOTS} bots in one process, {ROOMS} rooms divided among them, Poisson "
              f"{RATE:g}/s for {seconds:g}s, 20% /echo; {lost}")
    lag = max(float(r["load"]["lag_max_ms"]) for r in b + p)
    rows = [
        _row("S13", f"reply p99 @ {RATE:g}/s", "ms", False, peer, 1.0, _values(b, "p99_ms"),
             _values(p, "p99_ms"), layout),
        _row("S13", f"reply p50 @ {RATE:g}/s", "ms", False, peer, None, _values(b, "p50_ms"),
             _values(p, "p50_ms")),
        _row("S13", "CPU per envelope", "µs", False, peer, 1.0,
             _values(b, "cpu_us_per_envelope"), _values(p, "cpu_us_per_envelope"),
             "bot process CPU time, START to STOP, / envelopes published"),
        _row("S13", "achieved publish rate", "env/s", True, "the peer's trials", None,
             _values(b, "rate"), _values(p, "rate"),
             f"load generator, open loop, target {RATE:g}/s; latest batch {lag:.1f} ms behind "
             "schedule"),
    ]
    return rows, results
