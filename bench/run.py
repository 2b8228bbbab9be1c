"""``python -m bench``: every scenario, botkit and its peers taking turns, a table of medians and
ratios, ``bench/out/results.json`` and ``bench/out/chart.png``.

Every measurement runs in a fresh worker process (``bench.worker``) pinned to the client core;
Centrifugo, the replay server and the load generators run on the server core. Every loop is
bounded and every wait has a deadline; nothing leaves loopback. The exit status says whether
the benchmark ran (0) or crashed (1), never whether a target was met.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import queue
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.common import RESULT_PREFIX, core_plan, pin

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


class BenchError(Exception):
    """A worker or a server failed: the benchmark itself broke (not a missed target)."""


class Skipped(Exception):
    """A peer package is not installed (``pip install -e '.[bench]'``)."""


# -- results ------------------------------------------------------------------------------------

@dataclass
class Row:
    id: str
    scenario: str
    metric: str
    unit: str
    higher_is_better: bool
    peer: str
    target: float | None
    botkit: list[float] = field(default_factory=list)
    other: list[float] = field(default_factory=list)
    note: str = ""
    status: str = ""  # "met", "missed", "holds", "fails", "info", "skipped", "error"

    @property
    def botkit_median(self) -> float:
        return _median(self.botkit)

    @property
    def other_median(self) -> float:
        return _median(self.other)

    @property
    def ratio(self) -> float:
        b, o = self.botkit_median, self.other_median
        if math.isnan(b) or math.isnan(o) or o == 0:
            return float("nan")
        return b / o

    def judge(self) -> None:
        if self.status:
            return
        ratio = self.ratio
        if self.target is None or math.isnan(ratio):
            self.status = "info"
        elif self.higher_is_better:
            self.status = "met" if ratio >= self.target else "missed"
        else:
            self.status = "met" if ratio <= self.target else "missed"


def _median(values: list[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else float("nan")


# -- workers -----------------------------------------------------------------------------------

def _env(cpus: set[int] | None, deadline: float) -> dict[str, str]:
    env = dict(os.environ)
    env["BENCH_CPUS"] = ",".join(str(c) for c in sorted(cpus)) if cpus else ""
    env["BENCH_DEADLINE"] = str(deadline)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _parse_result(stdout: str, target: str, stderr: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
            return result
    tail = "\n".join(stderr.strip().splitlines()[-25:])
    if "ModuleNotFoundError" in tail and any(p in tail for p in ("cent", "centrifuge")):
        raise Skipped(tail.splitlines()[-1])
    raise BenchError(f"worker {target} gave no result:\n{tail}")


def run_worker(target: str, kwargs: dict[str, Any], *, cpus: set[int] | None,
               timeout: float) -> dict[str, Any]:
    """One measurement in a fresh process; killed (by its pid) past ``timeout``."""
    command = [sys.executable, "-m", "bench.worker", target, json.dumps(kwargs)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT, env=_env(cpus, timeout + 5), check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"worker {target} took longer than {timeout:.0f}s") from exc
    return _parse_result(done.stdout, target, done.stderr)


class Interactive:
    """A worker that says READY and then takes orders on stdin (a bot under load, idle bots
    whose server restarts)."""

    def __init__(self, target: str, kwargs: dict[str, Any], *, cpus: set[int] | None,
                 timeout: float) -> None:
        self.target = target
        self.deadline = time.monotonic() + timeout
        self._err_lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", target, json.dumps(kwargs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=ROOT, env=_env(cpus, timeout + 5))
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._out: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._out.append(line)
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _pump_err(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._err_lines.append(line)
            del self._err_lines[:-40]

    def wait_for(self, prefix: str, timeout: float) -> str:
        limit = min(self.deadline, time.monotonic() + timeout)
        while True:
            left = limit - time.monotonic()
            if left <= 0:
                self.close()
                raise BenchError(f"{self.target}: no {prefix} within {timeout:.0f}s\n"
                                 + "".join(self._err_lines[-15:]))
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.close()
                _parse_result("".join(self._out), self.target, "".join(self._err_lines))
                raise BenchError(f"{self.target} ended before {prefix}")
            if line.startswith(prefix):
                return line

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def result(self, timeout: float) -> dict[str, Any]:
        line = self.wait_for(RESULT_PREFIX, timeout)
        self.close()
        result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
        return result

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(Exception):
                assert self.process.stdin is not None
                self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()  # our own child, by its pid
                self.process.wait(timeout=10)


# -- servers -----------------------------------------------------------------------------------

class Bench:
    """What the scenarios share: the mode, the cores, the servers."""

    def __init__(self, quick: bool, reps: int | None) -> None:
        self.quick = quick
        self.reps = reps or (1 if quick else 5)
        self.server_cores, self.client_cores = core_plan()
        self._centrifugo: Any = None

    def reps_for(self, heavy: bool = False) -> int:
        return max(1, min(self.reps, 3)) if heavy and not self.quick else self.reps

    def centrifugo(self) -> Any:
        if self._centrifugo is None:
            from botkit.dev.localserver import LocalCentrifugo, ServerSettings, free_port

            server = LocalCentrifugo(ServerSettings(port=free_port(), log_level="error"))
            self._start_pinned(server.start)
            self._centrifugo = server
        return self._centrifugo

    def restart_centrifugo(self) -> tuple[float, float]:
        """Kill and start the server again (same port, same secrets); returns the times of
        the kill and of the server answering again."""
        server = self.centrifugo()
        killed_at = time.time()
        server.stop(kill=True)
        self._start_pinned(server.start)
        return killed_at, time.time()

    def _start_pinned(self, start: Callable[[], None]) -> None:
        # The child inherits this process's affinity (so Go sets GOMAXPROCS to match).
        if self.server_cores and hasattr(os, "sched_getaffinity"):
            before = os.sched_getaffinity(0)
            pin(self.server_cores)
            try:
                start()
            finally:
                os.sched_setaffinity(0, before)
        else:
            start()

    @contextlib.contextmanager
    def replay(self, count: int, *, ping: float = 25.0, pong_timeout: float = 8.0,
               batch: int = 1) -> Iterator[tuple[str, str]]:
        from botkit.dev.localserver import free_port

        port = free_port()
        command = [sys.executable, "-m", "bench.replay", "--port", str(port), "--count",
                   str(count), "--batch", str(batch), "--ping", str(ping), "--pong-timeout",
                   str(pong_timeout), "--lifetime", "1800"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   text=True, cwd=ROOT, env=_env(self.server_cores, 1800))
        try:
            assert process.stdout is not None
            ready = _readline(process.stdout, 60)
            if ready != "READY":
                raise BenchError(f"the replay server did not start ({ready!r})")
            yield (f"ws://127.0.0.1:{port}/realtime/connection/websocket",
                   f"http://127.0.0.1:{port}/api/realtime")
        finally:
            process.terminate()  # our own child, by its pid
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def close(self) -> None:
        if self._centrifugo is not None:
            self._centrifugo.close()
            self._centrifugo = None


def _readline(stream: Any, timeout: float) -> str:
    box: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: box.put(stream.readline()), daemon=True).start()
    try:
        return box.get(timeout=timeout).strip()
    except queue.Empty:
        return ""


def alternate(reps: int, sides: list[str], trial: Callable[[str, int], dict[str, Any]],
              ) -> dict[str, list[dict[str, Any]]]:
    """ABAB...: every repetition runs each side once, the order rotating."""
    results: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for rep in range(reps):
        order = sides[rep % len(sides):] + sides[:rep % len(sides)]
        for side in order:
            results[side].append(trial(side, rep))
    return results


# -- report ------------------------------------------------------------------------------------

def _fmt(value: float) -> str:
    if math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(rows: list[Row]) -> str:
    head = ("id", "scenario", "metric", "better", "botkit", "peer", "peer median", "ratio",
            "target", "status")
    lines = [head]
    for row in rows:
        target = "-" if row.target is None else (
            f">= {row.target:g}x" if row.higher_is_better else f"<= {row.target:g}x")
        ratio = "-" if math.isnan(row.ratio) else f"{row.ratio:.2f}x"
        lines.append((row.id, row.scenario, f"{row.metric} ({row.unit})",
                      "higher" if row.higher_is_better else "lower", _fmt(row.botkit_median),
                      row.peer, _fmt(row.other_median), ratio, target, row.status))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(line)))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def chart(rows: list[Row], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no chart"
    shown = [r for r in rows if not math.isnan(r.ratio)]
    if not shown:
        return "no ratios to chart"
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(shown) + 1.5))
    labels = [f"{r.id} {r.metric} vs {r.peer} ({'↑' if r.higher_is_better else '↓'})"
              for r in shown]
    colors = {"met": "#2e7d32", "holds": "#2e7d32", "missed": "#c62828", "fails": "#c62828",
              "info": "#9e9e9e"}
    y = list(range(len(shown)))[::-1]
    ax.barh(y, [r.ratio for r in shown], color=[colors.get(r.status, "#9e9e9e")
                                               for r in shown])
    for yy, r in zip(y, shown, strict=True):
        if r.target is not None:
            ax.plot([r.target, r.target], [yy - 0.4, yy + 0.4], color="black", linewidth=2)
        ax.text(r.ratio, yy, f" {r.ratio:.2f}x", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.axvline(1.0, color="#555", linestyle=":", linewidth=1)
    # Ratios span from a fraction to hundreds (a saturated latency): a log axis keeps the
    # ones near 1x, where the targets are, readable.
    ax.set_xscale("log")
    marks = [r.ratio for r in shown] + [r.target for r in shown if r.target]
    ax.set_xlim(min(marks) / 1.5, max(marks) * 3)
    ax.set_xlabel("botkit ÷ peer, log scale (↑ higher is better, ↓ lower is better)\n"
                  "black tick = target; green met or holds, red missed, grey no target")
    ax.set_title("botkit against its peers (medians)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"chart: {path}"


def machine() -> dict[str, Any]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
        "cores": os.cpu_count(), "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "versions": {name: version(name) for name in (
            "botkit", "websockets", "httpx", "pydantic", "pydantic-core", "centrifuge-python",
            "cent", "aiohttp", "matplotlib")},
    }


# -- main --------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    from bench import scenarios

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller loads, one repetition: about a minute (the CI smoke run)")
    parser.add_argument("--only", default="",
                        help="comma-separated scenario ids, e.g. S1,S3 (default: all)")
    parser.add_argument("--reps", type=int, default=None,
                        help="repetitions per side (default 5, 3 for the 500-bot scenarios; "
                             "1 with --quick)")
    parser.add_argument("--out", default=str(OUT), help="folder for results.json and chart.png")
    args = parser.parse_args(argv)

    only = {s.strip().upper() for s in args.only.split(",") if s.strip()}
    bench = Bench(args.quick, args.reps)
    info = machine()
    info["mode"] = "quick" if args.quick else "full"
    info["pinning"] = {"server": sorted(bench.server_cores or []),
                       "client": sorted(bench.client_cores or [])}
    print(f"botkit bench ({info['mode']}), {info['cpu']}, {info['cores']} cores, "
          f"load {info['loadavg']}, pinning {info['pinning']}", flush=True)
    started = time.monotonic()
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    crashed = False
    try:
        for scenario_id, fn in scenarios.ALL:
            if only and scenario_id.upper() not in only and not (
                    scenario_id == "S4" and "S5" in only) and not (
                    scenario_id.startswith("S3") and "S3" in only):
                continue
            t0 = time.monotonic()
            print(f"==> {scenario_id}", flush=True)
            try:
                new_rows, detail = fn(bench)
            except Skipped as exc:
                print(f"    skipped: {exc}", flush=True)
                rows.append(Row(scenario_id, scenarios.TITLES[scenario_id], "-", "-", True,
                                "-", None, note=str(exc), status="skipped"))
                continue
            except Exception as exc:  # the benchmark broke: report, go on, exit non-zero
                crashed = True
                traceback.print_exc()
                rows.append(Row(scenario_id, scenarios.TITLES[scenario_id], "-", "-", True,
                                "-", None, note=f"{type(exc).__name__}: {exc}",
                                status="error"))
                continue
            for row in new_rows:
                row.judge()
            rows.extend(new_rows)
            raw[scenario_id] = detail
            print(f"    done in {time.monotonic() - t0:.1f}s", flush=True)
    finally:
        bench.close()
    info["seconds"] = round(time.monotonic() - started, 1)
    info["loadavg_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    print()
    print(table(rows))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"machine": info, "rows": [asdict(r) | {"botkit_median": r.botkit_median,
                                                      "peer_median": r.other_median,
                                                      "ratio": r.ratio} for r in rows],
               "raw": raw}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"\nresults: {out / 'results.json'}")
    print(chart(rows, out / "chart.png"))
    print(f"took {info['seconds']}s")
    return 1 if crashed else 0
