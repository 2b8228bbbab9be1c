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
the end; the bot processes are in :mod:`bench.mixed_bots`, the load generator and the
observer in :mod:`bench.mixed_load`.
"""

from __future__ import annotations

import bisect
import os
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from bench.common import PROJECT, percentile

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


def envelope_for(arrival: Arrival, index: int, room: str, sent_at: str) -> dict[str, Any]:
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
            observer = Interactive("mixed_load:observe", {
                "ws_url": server.ws_url, "api_key": server.api_key, "project": project,
                "rooms": rooms, "deadline": seconds + 60}, cpus=bench.server_cores,
                timeout=life)
            observer.wait_for("READY", 60)
            bot.send("START")
            load = run_worker("mixed_load:loadgen", {
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
    refused = sum(int(r["load"]["errors"]) + int(r["load"]["failed_requests"]) for r in b + p)
    broken = [r["observer"]["reader_error"] for r in b + p if r["observer"].get("reader_error")]
    if refused or broken:
        layout += f"; publishes refused or failed: {refused}; observer errors: {broken}"
    rows = [
        _row("S13", f"reply p99 @ {RATE:g}/s", "ms", False, peer, 1.0, _values(b, "p99_ms"),
             _values(p, "p99_ms"), layout),
        _row("S13", f"reply p50 @ {RATE:g}/s", "ms", False, peer, None, _values(b, "p50_ms"),
             _values(p, "p50_ms")),
        _row("S13", "CPU per envelope", "µs", False, peer, 1.0,
             _values(b, "cpu_us_per_envelope"), _values(p, "cpu_us_per_envelope"),
             "bot process CPU time, START to STOP, / envelopes published; server API "
             f"requests per reply: botkit {_per_reply(b)}, peer {_per_reply(p)}"),
        _row("S13", "achieved publish rate", "env/s", True, "the peer's trials", None,
             _values(b, "rate"), _values(p, "rate"),
             f"load generator, open loop, target {RATE:g}/s; latest batch {lag:.1f} ms behind "
             "schedule"),
    ]
    if sum(int(r["lost"]) for r in b):
        rows[0].status = "missed"  # a reply that never came is worse than any latency
    return rows, results


def _per_reply(results: list[dict[str, Any]]) -> str:
    requests = sum(int(r["bot"].get("api_requests", 0)) for r in results)
    replies = sum(int(r["bot"].get("replies", 0)) for r in results)
    return f"{requests / replies:.2f}" if replies else "-"
