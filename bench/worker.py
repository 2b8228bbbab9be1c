"""One measurement in a fresh process: ``python -m bench.worker module:function '{json kwargs}'``.

The function (a coroutine function of a bench module) runs under asyncio; its result dict is
printed as one ``BENCH-RESULT {...}`` line, with the GC's pauses added. The worker pins itself
to the cores in BENCH_CPUS and stops itself after BENCH_DEADLINE seconds whatever happens.

For looking into a figure: BENCH_PROFILE=path writes a cProfile of the whole worker,
BENCH_PROFILE_WINDOW=path one of S6's restart window only (one file per process),
BENCH_LOG=INFO shows botkit's log, BENCH_S6_COUNT=500 gives ``--quick`` S6's full size.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import os
import sys
import threading
from typing import Any

from bench.common import GcPauses, emit, pin_from_env


def _watchdog(seconds: float) -> None:
    def fire() -> None:
        sys.stderr.write(f"bench worker: deadline of {seconds:.0f}s passed; exiting\n")
        sys.stderr.flush()
        os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


def main(argv: list[str]) -> int:
    pin_from_env()
    _watchdog(float(os.environ.get("BENCH_DEADLINE", "600")))
    logging.basicConfig(level=os.environ.get("BENCH_LOG", "ERROR"),
                        format="%(name)s %(levelname)s %(message)s")
    target, raw = argv[0], argv[1] if len(argv) > 1 else "{}"
    module_name, _, name = target.partition(":")
    fn = getattr(importlib.import_module(f"bench.{module_name}"), name)
    kwargs: dict[str, Any] = json.loads(raw)
    profile_to = os.environ.get("BENCH_PROFILE")
    profiler = None
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    pauses = GcPauses.install()
    result = asyncio.run(fn(**kwargs)) if inspect.iscoroutinefunction(fn) else fn(**kwargs)
    if isinstance(result, dict):
        result.update(pauses.summary())
    if profiler is not None and profile_to:
        profiler.disable()
        profiler.dump_stats(profile_to)
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
