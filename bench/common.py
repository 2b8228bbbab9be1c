"""What every benchmark shares: CPU pinning, the envelopes, bots.yaml for a runtime, RSS/CPU
readings and the worker's result line."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import Any

RESULT_PREFIX = "BENCH-RESULT "
PROJECT = "proj_bench"
BOT_USER = "bot_bench"
HUMAN = "user_bench"

# A representative chat line: the envelope below is ~200 bytes of JSON.
TEXT = "the quick brown fox jumps over the lazy dog, again and again, number "


# -- CPU pinning -------------------------------------------------------------------------------

def cpus() -> list[int]:
    if not hasattr(os, "sched_getaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


def core_plan() -> tuple[set[int] | None, set[int] | None]:
    """(server cores, client cores): the server (and load generators) on the first core, the
    code under test on the second, when there are two or more; else no pinning."""
    available = cpus()
    if len(available) < 2:
        return None, None
    return {available[0]}, {available[1]}


def pin(cores: set[int] | None, pid: int = 0) -> None:
    """Pin a process (every thread of it, for a Go binary already running) to ``cores``."""
    if not cores or not hasattr(os, "sched_setaffinity"):
        return
    if pid == 0:
        os.sched_setaffinity(0, cores)
        return
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        with contextlib.suppress(OSError):  # a thread that just ended
            os.sched_setaffinity(tid, cores)


def pin_from_env() -> None:
    """Workers are told their cores by the orchestrator (BENCH_CPUS=1 or 0,1)."""
    value = os.environ.get("BENCH_CPUS")
    if value:
        pin({int(c) for c in value.split(",")})


# -- payloads ----------------------------------------------------------------------------------

def envelope(index: int, *, sender: str = HUMAN, room: str = "room_bench") -> dict[str, Any]:
    """A chat.message envelope of about 200 bytes, unique per index."""
    return {
        "type": "chat.message",
        "id": f"01JBENCH{index:018d}",
        "roomId": room,
        "senderId": sender,
        "text": f"{TEXT}{index:08d}",
        "sentAt": "2026-03-24T12:00:00.000Z",
    }


def channel(room: str, project: str = PROJECT) -> str:
    return f"chat:{project}:{room}"


# -- botkit runtime configuration --------------------------------------------------------------

def bots_yaml(*, realtime_url: str, api_url: str, rooms_per_bot: Sequence[Sequence[str]],
              plugin: str | None, project: str = PROJECT, lane_queue_size: int = 1000,
              user_prefix: str = BOT_USER) -> str:
    """bots.yaml for N bots (one per entry of ``rooms_per_bot``), state in memory."""
    head = textwrap.dedent(f"""\
        xshathra:
          project_id: {project}
          realtime_url: {realtime_url}
          api_url: {api_url}
          server_api_key: ${{BENCH_KEY}}
          token_ttl: 30m
        state: {{backend: memory}}
        bots:
        """)
    bots = []
    for index, rooms in enumerate(rooms_per_bot):
        user = user_prefix if len(rooms_per_bot) == 1 else f"{user_prefix}_{index}"
        lines = [f"  - name: b{index}", f"    user_id: {user}",
                 f"    rooms: [{', '.join(rooms)}]",
                 # No flood control: the peers have none, and the benchmarks measure
                 # what the server takes (botkit's default would cap a room at 100/s).
                 f"    limits: {{lane_queue_size: {lane_queue_size}, room_rate: off}}"]
        if plugin:
            lines.insert(1, f"    plugin: {plugin}")
        bots.append("\n".join(lines))
    return head + "\n".join(bots) + "\n"


def runtime_for(yaml_text: str, api_key: str, bot: Any = None) -> Any:
    """A botkit Runtime for ``yaml_text``; every bot runs ``bot`` when given."""
    from botkit.config import parse_config
    from botkit.runtime.supervisor import Runtime, load_bot

    config = parse_config(yaml_text, source="bench-bots.yaml", environ={"BENCH_KEY": api_key})
    loaded = [load_bot(config, bc, bot=bot) for bc in config.enabled_bots()]
    return Runtime(config, loaded, grace=2.0)


# -- readings ----------------------------------------------------------------------------------

def rss_bytes() -> int:
    """Resident set size now (Linux /proc; else the peak, which is all getrusage knows)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def now() -> float:
    return time.perf_counter()


def emit(result: dict[str, Any]) -> None:
    """The worker's answer: one line the orchestrator looks for."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class GcPauses:
    """The cyclic GC's pauses in a worker (a latency scenario's p99 may be one of them)."""

    current: GcPauses | None = None

    def __init__(self) -> None:
        self.started = 0.0
        self.pauses: list[float] = []

    @classmethod
    def install(cls) -> GcPauses:
        import gc

        cls.current = cls()
        gc.callbacks.append(cls.current)
        return cls.current

    @classmethod
    def reset(cls) -> None:
        """Count only the pauses from now on (a worker calls it when its load starts)."""
        if cls.current is not None:
            cls.current.pauses.clear()

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self.started) * 1000)

    def summary(self) -> dict[str, Any]:
        return {"gc_collections": len(self.pauses), "gc_max_ms": max(self.pauses, default=0.0),
                "gc_total_ms": sum(self.pauses)}
