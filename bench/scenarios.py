"""The scenarios of the issues, S1 to S14: what each runs, in which mode, and how its numbers
become rows of the table (ratio = botkit ÷ peer, its direction stated on every row)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench import catchup, failover, mixed, scaleout
from bench.common import PROJECT

if TYPE_CHECKING:
    from bench.run import Bench, Row

TITLES = {
    "S1": "firehose -> no-op handler",
    "S2": "end-to-end echo",
    "S3a": "publish, one request each",
    "S3b": "publish bursts (batched)",
    "S4": "memory per idle bot",
    "S5": "CPU of idle bots",
    "S6": "server restart, resubscribe",
    "S7": "decode + validate one envelope",
    "S8": "1 ms handler under a firehose",
    "S9": "one bot, 500 rooms: subscribe",
    "S10": "catch-up after a restart",
    "S11": "replica failover (SIGKILL)",
    "S12": "2 replicas vs 1: throughput",
    "S13": "mixed load, 3 bots in 500 rooms (issue 14's S9)",
    "S14": "one bot, 2,000 rooms",
}

# The memory cap of S8: the RSS the process may grow by while 50k envelopes stream past a
# handler that needs 1 ms each (the runtime must hold them back, not buffer them).
S8_RSS_CAP_MIB = 64.0


def _row(id: str, metric: str, unit: str, higher: bool, peer: str, target: float | None,
         botkit: list[float], other: list[float], note: str = "") -> Row:
    from bench.run import Row

    return Row(id, TITLES[id.split("-")[0]], metric, unit, higher, peer, target, botkit, other,
               note)


def _values(results: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r.get(key, float("nan"))) for r in results]


def _cpus(bench: Bench) -> set[int] | None:
    return bench.client_cores


# -- S1 ----------------------------------------------------------------------------------------

def s1(bench: Bench) -> tuple[list[Row], Any]:
    from bench.run import alternate, run_worker

    count = 20_000 if bench.quick else 100_000
    timeout = 60.0
    with bench.replay(count) as (ws_url, api_url):
        def trial(side: str, rep: int) -> dict[str, Any]:
            kwargs: dict[str, Any] = {"url": ws_url, "count": count, "timeout": timeout}
            if side == "botkit":
                kwargs["api_url"] = api_url
            return run_worker(f"firehose:{side}_firehose", kwargs, cpus=_cpus(bench),
                              timeout=timeout + 30)

        results = alternate(bench.reps, ["botkit", "centrifuge", "websockets"], trial)
    note = f"{count} envelopes, one per WebSocket message, from the replay server"
    rows = [
        _row("S1", "rate", "msg/s", True, "centrifuge-python", 1.0,
             _values(results["botkit"], "rate"), _values(results["centrifuge"], "rate"), note),
        _row("S1", "rate", "msg/s", True, "bare websockets", 0.45,
             _values(results["botkit"], "rate"), _values(results["websockets"], "rate"), note),
        _row("S1", "CPU per message", "µs", False, "centrifuge-python", None,
             _values(results["botkit"], "cpu_us_per_msg"),
             _values(results["centrifuge"], "cpu_us_per_msg")),
    ]
    return rows, results


# -- S2 ----------------------------------------------------------------------------------------

def s2(bench: Bench) -> tuple[list[Row], Any]:
    from bench.run import Interactive, alternate, run_worker

    server = bench.centrifugo()
    rates = [100] if bench.quick else [200, 1000]
    seconds = 2.0 if bench.quick else 6.0
    window = 50 if bench.quick else 200
    phases: list[dict[str, Any]] = [{"rate": r, "seconds": seconds} for r in rates]
    phases.append({"window": window, "seconds": seconds})

    def trial(side: str, rep: int) -> dict[str, Any]:
        room = f"echo_{side}_{rep}"
        kwargs = {"ws_url": server.ws_url, "api_url": server.api_url,
                  "api_key": server.api_key, "project": PROJECT, "room": room,
                  "deadline": 300.0}
        target = "echo:botkit_echo" if side == "botkit" else "echo:peer_echo"
        bot = Interactive(target, kwargs, cpus=_cpus(bench), timeout=360)
        try:
            bot.wait_for("READY", 60)
            load = run_worker("echo:loadgen", {
                "ws_url": server.ws_url, "api_key": server.api_key, "project": PROJECT,
                "room": room, "phases": phases}, cpus=bench.server_cores,
                timeout=len(phases) * (seconds + 10) + 30)
            bot.send("STOP")
            load["bot"] = bot.result(60)
        finally:
            bot.close()
        return load

    results = alternate(bench.reps_for(heavy=True), ["botkit", "peer"], trial)
    rows = []
    peer = "centrifuge-python + cent"
    for index, phase in enumerate(phases):
        b = [r["phases"][index] for r in results["botkit"]]
        p = [r["phases"][index] for r in results["peer"]]
        lost = sum(int(x["lost"]) for x in b)
        note = f"lost {lost} of {sum(int(x['sent']) for x in b)}" if lost else ""
        if "rate" in phase:
            label = f"p99 @ {phase['rate']}/s"
            rows.append(_row("S2", label, "ms", False, peer, 1.2, _values(b, "p99_ms"),
                             _values(p, "p99_ms"), note))
            rows.append(_row("S2", f"p50 @ {phase['rate']}/s", "ms", False, peer, None,
                             _values(b, "p50_ms"), _values(p, "p50_ms")))
        else:
            rows.append(_row("S2", f"saturation ({window} in flight)", "echo/s", True, peer,
                             1.0, _values(b, "rate"), _values(p, "rate"), note))
    return rows, results


# -- S3 ----------------------------------------------------------------------------------------

def s3a(bench: Bench) -> tuple[list[Row], Any]:
    from bench.run import alternate, run_worker

    server = bench.centrifugo()
    count = 300 if bench.quick else 2000

    def trial(side: str, rep: int) -> dict[str, Any]:
        kwargs = {"api_url": server.api_url, "api_key": server.api_key, "project": PROJECT,
                  "room": f"pub_{side}_{rep}", "count": count}
        fn = "publish:botkit_sequential" if side == "botkit" else "publish:httpx_sequential"
        return run_worker(fn, kwargs, cpus=_cpus(bench), timeout=120)

    results = alternate(bench.reps, ["botkit", "httpx"], trial)
    return [_row("S3a", "publish rate", "req/s", True, "raw httpx", 0.85,
                 _values(results["botkit"], "rate"), _values(results["httpx"], "rate"),
                 f"{count} publishes, each awaited")], results


def s3b(bench: Bench) -> tuple[list[Row], Any]:
    from bench.run import alternate, run_worker

    server = bench.centrifugo()
    count = 1000 if bench.quick else 5000
    burst = 100

    def trial(side: str, rep: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"api_url": server.api_url, "api_key": server.api_key,
                                  "project": PROJECT, "room": f"burst_{side}_{rep}",
                                  "count": count}
        if side == "botkit":
            kwargs["burst"] = burst
            return run_worker("publish:botkit_bursts", kwargs, cpus=_cpus(bench), timeout=120)
        kwargs["concurrency"] = 10
        return run_worker("publish:cent_concurrent", kwargs, cpus=_cpus(bench), timeout=120)

    results = alternate(bench.reps, ["botkit", "cent"], trial)
    return [_row("S3b", "publish rate", "msg/s", True, "cent, concurrency 10", 1.5,
                 _values(results["botkit"], "rate"), _values(results["cent"], "rate"),
                 f"{count} publishes in bursts of {burst}")], results


# -- S4, S5 ------------------------------------------------------------------------------------

def s4s5(bench: Bench) -> tuple[list[Row], Any]:
    from bench.run import alternate, run_worker

    server = bench.centrifugo()
    count = 50 if bench.quick else 500
    window = 2.0 if bench.quick else 60.0

    def trial(side: str, rep: int) -> dict[str, Any]:
        # The transport alone ("realtime": botkit's RealtimeClient without the runtime) is
        # measured for the breakdown of S4 only; a short window is enough for its memory.
        kwargs = {"ws_url": server.ws_url, "api_url": server.api_url,
                  "api_key": server.api_key, "project": f"{PROJECT}{side[0]}{rep}",
                  "count": count, "window": min(window, 2.0) if side == "realtime" else window}
        return run_worker(f"idle:{side}_idle", kwargs, cpus=_cpus(bench),
                          timeout=window + 180)

    results = alternate(bench.reps_for(heavy=True),
                        ["botkit", "centrifuge", "websockets", "realtime"], trial)
    note = f"{count} connected and subscribed in one process"
    rows = [
        _row("S4", "RSS per bot", "KiB", False, "bare websockets", 1.6,
             _values(results["botkit"], "kib_per_bot"),
             _values(results["websockets"], "kib_per_bot"), note),
        _row("S4", "RSS per bot", "KiB", False, "centrifuge-python", 1.0,
             _values(results["botkit"], "kib_per_bot"),
             _values(results["centrifuge"], "kib_per_bot"), note),
        _row("S4", "RSS per connection, transport only", "KiB", False, "centrifuge-python",
             None, _values(results["realtime"], "kib_per_bot"),
             _values(results["centrifuge"], "kib_per_bot"),
             "botkit's RealtimeClient alone, without the runtime (breakdown)"),
        _row("S5", f"CPU over {window:g}s", "% of a core", False, "centrifuge-python", 1.0,
             _values(results["botkit"], "cpu_percent"),
             _values(results["centrifuge"], "cpu_percent"), note),
        _row("S5", f"CPU over {window:g}s", "% of a core", False, "bare websockets", None,
             _values(results["botkit"], "cpu_percent"),
             _values(results["websockets"], "cpu_percent")),
    ]
    return rows, results


# -- S6 ----------------------------------------------------------------------------------------

def s6(bench: Bench) -> tuple[list[Row], Any]:
    from bench.run import Interactive, alternate

    server = bench.centrifugo()
    count = int(os.environ.get("BENCH_S6_COUNT", "0")) or (50 if bench.quick else 500)

    def trial(side: str, rep: int) -> dict[str, Any]:
        kwargs = {"ws_url": server.ws_url, "api_url": server.api_url,
                  "api_key": server.api_key, "project": f"{PROJECT}r{side[0]}{rep}",
                  "count": count, "window": 0.0, "restart": True, "deadline": 120.0}
        worker = Interactive(f"idle:{side}_idle", kwargs, cpus=_cpus(bench), timeout=300)
        try:
            worker.wait_for("READY", 150)
            killed_at, up_at = bench.restart_centrifugo()
            worker.send(f"RESTARTED {killed_at} {up_at}")
            return worker.result(180)
        finally:
            worker.close()

    results = alternate(bench.reps_for(heavy=True), ["botkit", "centrifuge"], trial)
    lost_b = sum(int(r.get("lost", count)) for r in results["botkit"])
    lost_c = sum(int(r.get("lost", count)) for r in results["centrifuge"])
    note = f"{count} bots; lost after restart: botkit {lost_b}, centrifuge-python {lost_c}"
    row = _row("S6", "all resubscribed after kill", "s", False, "centrifuge-python", 1.0,
               _values(results["botkit"], "resubscribe_seconds"),
               _values(results["centrifuge"], "resubscribe_seconds"), note)
    if lost_b:
        row.status = "missed"
    return [row], results


# -- S7 ----------------------------------------------------------------------------------------

def s7(bench: Bench) -> tuple[list[Row], Any]:
    from bench.run import run_worker

    rounds = 3 if bench.quick else 2 * bench.reps + 1
    number = 20_000 if bench.quick else 100_000
    result = run_worker("decode:decode", {"rounds": rounds, "number": number},
                        cpus=_cpus(bench), timeout=300)
    us = result["us"]
    return [
        _row("S7", "from JSON text", "µs", False, "pydantic model_validate_json", 1.15,
             us["botkit_text"], us["pydantic_text"]),
        _row("S7", "from a decoded dict", "µs", False, "pydantic model_validate", 1.15,
             us["botkit_dict"], us["pydantic_dict"]),
    ], result


# -- S8 ----------------------------------------------------------------------------------------

def s8(bench: Bench) -> tuple[list[Row], Any]:
    from bench.run import run_worker

    count = 5_000 if bench.quick else 50_000
    ping = 2.0 if bench.quick else 5.0
    pong_timeout = 8.0
    sleep = 0.001
    timeout = count * sleep * 4 + 60
    results = []
    with bench.replay(count, ping=ping, pong_timeout=pong_timeout) as (ws_url, api_url):
        http_url = api_url.rsplit("/api/", 1)[0]
        results.append(run_worker("firehose:slow_handler", {
            "url": ws_url, "api_url": api_url, "http_url": http_url, "count": count,
            "timeout": timeout, "handler_sleep": sleep}, cpus=_cpus(bench),
            timeout=timeout + 60))
    r = results[0]
    holds = (bool(r.get("completed")) and r.get("no_pong_closes", 1) == 0
             and r.get("reconnects", 1) == 0 and r.get("rss_growth_mib", 1e9) < S8_RSS_CAP_MIB)
    note = (f"{count} envelopes, ping every {ping:g}s, pong timeout {pong_timeout:g}s: "
            f"{r.get('pings')} pings, max pong delay {r.get('max_pong_delay', 0):.2f}s, "
            f"no-pong closes {r.get('no_pong_closes')}, reconnects {r.get('reconnects')}, "
            f"RSS +{r.get('rss_growth_mib', 0):.1f} MiB (cap {S8_RSS_CAP_MIB:g})")
    rows = [
        _row("S8", "RSS growth", "MiB", False, f"cap {S8_RSS_CAP_MIB:g} MiB", None,
             [float(r.get("rss_growth_mib", float("nan")))], [S8_RSS_CAP_MIB], note),
        _row("S8", "max pong delay", "s", False, f"pong timeout {pong_timeout:g}s", None,
             [float(r.get("max_pong_delay", float("nan")))], [pong_timeout]),
    ]
    for row in rows:
        row.status = "holds" if holds else "fails"
    return rows, results


# -- S9 ----------------------------------------------------------------------------------------

S9_TARGET_SECONDS = 1.0


def _s9_trials(bench: Bench, server: Any, count: int) -> list[dict[str, Any]]:
    from bench.run import run_worker

    return [run_worker("rooms:subscribe_rooms", {
        "ws_url": server.ws_url, "api_url": server.api_url, "api_key": server.api_key,
        "project": f"{PROJECT}s9{rep}", "count": count}, cpus=_cpus(bench), timeout=120)
        for rep in range(bench.reps_for(heavy=True))]


def s9(bench: Bench) -> tuple[list[Row], Any]:
    from botkit.dev.localserver import LocalCentrifugo, ServerSettings, free_port

    count = 500
    # Centrifugo allows 128 channels per connection by default (106 "limit exceeded" past
    # that): a deployment with 500-room bots raises client.channel_limit, and so does this one.
    server = LocalCentrifugo(ServerSettings(port=free_port(), log_level="error"))
    os.environ["CENTRIFUGO_CLIENT_CHANNEL_LIMIT"] = str(2 * count)
    try:
        bench._start_pinned(server.start)
    finally:
        del os.environ["CENTRIFUGO_CLIENT_CHANNEL_LIMIT"]
    try:
        results = _s9_trials(bench, server, count)
    finally:
        server.close()
    failed = sum(int(r.get("failed", count)) for r in results)
    missing = sum(count - int(r.get("subscribed_after", 0)) for r in results)
    note = (f"{count} rooms, one RealtimeClient; refused: {failed}, not subscribed after the "
            f"reconnect: {missing}")
    rows = [
        _row("S9", "connected -> all rooms subscribed", "s", False,
             f"target {S9_TARGET_SECONDS:g} s", None,
             _values(results, "subscribe_seconds"), [S9_TARGET_SECONDS], note),
        _row("S9", "disconnected -> reconnected with all rooms", "s", False,
             f"target {S9_TARGET_SECONDS:g} s", None,
             _values(results, "resubscribe_seconds"), [S9_TARGET_SECONDS]),
    ]
    for row in rows:
        row.status = ("met" if not failed and not missing
                      and row.botkit_median <= S9_TARGET_SECONDS else "missed")
    return rows, results


# -- S14 ---------------------------------------------------------------------------------------

def s14(bench: Bench) -> tuple[list[Row], Any]:
    from bench.run import alternate, run_worker
    from botkit.dev.localserver import LocalCentrifugo, ServerSettings, free_port

    count = 2000  # quick mode too: one repetition takes a few seconds
    # Centrifugo at its DEFAULT client.channel_limit (128): the bot needs count/128 connections,
    # and so do the peer's clients.
    server = LocalCentrifugo(ServerSettings(port=free_port(), log_level="error"))
    bench._start_pinned(server.start)

    def trial(side: str, rep: int) -> dict[str, Any]:
        return run_worker(f"shards:{side}_rooms", {
            "ws_url": server.ws_url, "api_url": server.api_url, "api_key": server.api_key,
            "project": f"{PROJECT}s14{side[0]}{rep}", "count": count},
            cpus=_cpus(bench), timeout=180)

    try:
        results = alternate(bench.reps_for(heavy=True), ["botkit", "centrifuge"], trial)
    finally:
        server.close()
    botkit, peer = results["botkit"], results["centrifuge"]
    failed = sum(int(r.get("failed", count)) for r in botkit)
    connections = sorted({int(r.get("connections", 0)) for r in botkit})
    note = (f"{count} rooms, server limit 128/connection; botkit: one bot, "
            f"{'/'.join(map(str, connections))} connection(s), refused {failed}; peer: "
            f"{-(-count // 128)} centrifuge-python clients of 128 rooms")
    peer_seconds = _values(peer, "subscribed_seconds")
    return [
        _row("S14", "start -> all rooms subscribed", "s", False, "centrifuge-python", None,
             _values(botkit, "subscribed_seconds"), peer_seconds, note),
        _row("S14", "start -> ready (presence of every room read)", "s", False,
             "centrifuge-python (subscribed)", None, _values(botkit, "ready_seconds"),
             peer_seconds),
        _row("S14", "RSS per room", "KiB", False, "centrifuge-python", None,
             _values(botkit, "kib_per_room"), _values(peer, "kib_per_room")),
    ], results


ALL: list[tuple[str, Callable[[Bench], tuple[list[Row], Any]]]] = [
    ("S1", s1), ("S2", s2), ("S3a", s3a), ("S3b", s3b), ("S4", s4s5), ("S6", s6), ("S7", s7),
    ("S8", s8), ("S9", s9), ("S10", catchup.s10), ("S11", failover.s11),
    ("S12", scaleout.s12), ("S13", mixed.s13), ("S14", s14),
]
