"""``--reload``: run ``botkit run`` (or ``dev``) as a child process, and restart it on a save.

A restart is a new process, never ``importlib.reload``: a reloaded module keeps the old one's
objects alive (registered handlers, scheduled jobs, open connections) and a half-reloaded bot
is worse than a stopped one. The supervisor watches the ``.py`` files under the folder of
bots.yaml (where plugins are imported from) and of every plugin outside it, and bots.yaml
itself. On a change it stops the child gracefully (SIGTERM, then SIGKILL after the grace) and
starts a new one; a child that exits (a broken edit exits 2 after printing its error) is
restarted by the next save. SIGINT and SIGTERM stop the child gracefully, then the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import secrets
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from botkit.errors import ConfigError

if TYPE_CHECKING:  # watchfiles is optional (botkit[hub]): imported when --reload runs
    from watchfiles import DefaultFilter

__all__ = ["child_argv", "supervise", "watched_paths"]

API_KEY_ENV = "XSHATHRA_SERVER_API_KEY"
# How long past its own grace a child may take to stop before it is killed.
_KILL_AFTER = 5.0
_PREFIX = "botkit --reload:"


def child_argv(argv: Sequence[str]) -> list[str]:
    """The command line without ``--reload`` (or an abbreviation argparse accepted)."""
    return [arg for arg in argv if not (len(arg) > 2 and "--reload".startswith(arg))]


def watched_paths(config: Path, environ: Mapping[str, str]) -> list[Path]:
    """The folder of bots.yaml, plus the folder of each plugin outside it that is not an
    installed package (a plugin found on PYTHONPATH, say). A broken bots.yaml still has a
    folder: then only that folder is watched until it loads again."""
    base = config.resolve().parent
    paths = [base]
    try:
        from botkit.config import load_config

        loaded = load_config(config, environ=environ)
    except ConfigError:
        return paths
    installed = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix)}
    for bot in loaded.bots:
        if bot.plugin is None:
            continue
        sys.path.insert(0, str(base))
        try:
            spec = importlib.util.find_spec(bot.plugin)
        except (ImportError, ValueError):
            spec = None
        finally:
            sys.path.remove(str(base))
        if spec is None or spec.origin is None:
            continue
        folder = Path(spec.origin).resolve().parent
        if any(folder.is_relative_to(p) for p in [*paths, *installed]):
            continue
        paths.append(folder)
    return paths


def _filter(config: Path) -> DefaultFilter:
    from watchfiles import Change, DefaultFilter

    config = config.resolve()

    class _Sources(DefaultFilter):
        def __call__(self, change: Change, path: str) -> bool:
            return ((path.endswith(".py") or Path(path) == config)
                    and super().__call__(change, path))

    return _Sources()


async def supervise(command: str, argv: Sequence[str], *, config: Path, grace: float) -> int:
    """Run ``botkit <argv>`` (already without ``--reload``) until SIGINT or SIGTERM, restarting
    it on every change; the exit code of the last child (0 if none was running)."""
    from watchfiles import awatch

    env = dict(os.environ)
    if command == "dev" and not env.get(API_KEY_ENV):
        # One made-up key for every restart, so a token or a second client keeps working.
        env[API_KEY_ENV] = secrets.token_urlsafe(32)
        print(f"{API_KEY_ENV} is not set; server_api_key for this run: {env[API_KEY_ENV]}",
              flush=True)
    stop = asyncio.Event()
    changed: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    async def watch() -> None:
        async for changes in awatch(*watched_paths(config, env), watch_filter=_filter(config),
                                    stop_event=stop, debounce=200, step=50):
            names = sorted({Path(path).name for _, path in changes})
            if changed.empty():  # a restart is already due: one is enough
                changed.put_nowait(", ".join(names))

    code = 0
    children: list[asyncio.subprocess.Process] = []
    try:
        async with asyncio.TaskGroup() as group:
            watcher = group.create_task(watch())
            first = await _start(argv, env)
            children[:] = [first]
            child: asyncio.subprocess.Process | None = first
            while not stop.is_set():
                waits: dict[asyncio.Task[object], str] = {
                    asyncio.ensure_future(stop.wait()): "stop",
                    asyncio.ensure_future(changed.get()): "change",
                }
                if child is not None:
                    waits[asyncio.ensure_future(child.wait())] = "exit"
                done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                what = {waits[task] for task in done}
                if "exit" in what and child is not None:
                    code = await child.wait()
                    child = None
                    why = ("on a configuration or plugin error (above)" if code == 2
                           else f"with exit code {code}")
                    print(f"{_PREFIX} the bots stopped {why}; waiting for a change to "
                          "restart them", file=sys.stderr, flush=True)
                if "change" in what:
                    names = _results(done, waits, "change")[0]
                    print(f"{_PREFIX} {names} changed; restarting", file=sys.stderr, flush=True)
                    if child is not None:
                        await _stop(child, grace)
                    child = await _start(argv, env)
                    children[:] = [child]
            if child is not None:
                code = await _stop(child, grace)
            stop.set()
            await watcher
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        # Only if the supervisor itself failed (the watcher raised): no child outlives it.
        # (children holds the latest child only.)
        for each in children:
            if each.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    each.kill()
                await each.wait()
    return code


def _results(done: set[asyncio.Task[object]], waits: dict[asyncio.Task[object], str],
                 kind: str) -> list[str]:
    return [str(task.result()) for task in done if waits[task] == kind]


async def _start(argv: Sequence[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    # stdin, stdout and stderr are the supervisor's: the child's log and errors reach the
    # terminal as they would without --reload.
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "botkit", *argv, env=env)


async def _stop(child: asyncio.subprocess.Process, grace: float) -> int:
    """SIGTERM (the child's graceful stop), then SIGKILL if it outlives its grace."""
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(grace + _KILL_AFTER):
            return await child.wait()
    except TimeoutError:
        print(f"{_PREFIX} the bots did not stop within {grace + _KILL_AFTER:g}s; killing them",
              file=sys.stderr, flush=True)
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        return await child.wait()
