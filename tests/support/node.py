"""Node.js scripts driven from pytest: installing tests/js once, and talking JSON lines.

``ensure_node_modules()`` runs ``npm ci --prefix tests/js`` once per lock file: a stamp in
``node_modules`` records the hash of the ``package-lock.json`` it was installed from, so later
runs (and later sessions on the same machine) skip npm entirely. Without node or npm the tests
are skipped locally and fail in CI, like the real server in conftest.

:class:`NodeScript` runs a script that prints one JSON event per line on stdout and reads one
JSON command per line on stdin. Every wait is bounded, and the process is always killed (by its
pid) on the way out, whatever happened::

    async with NodeScript(JS_DIR / "conformance.mjs") as node:
        node.on("token_request", answer)           # called for every such event
        await node.send({"cmd": "start", ...})
        event = await node.wait_for("subscribed", timeout=10)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest

__all__ = ["JS_DIR", "NodeScript", "ensure_node_modules"]

JS_DIR = Path(__file__).resolve().parent.parent / "js"
_STAMP = ".botkit-lock-sha256"
_NPM_TIMEOUT = 600.0

Event = dict[str, Any]


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        # CI must run these tests; a missing toolchain fails the run, never skips it.
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def ensure_node_modules() -> Path:
    """Install tests/js/node_modules from the lock file unless it is already installed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("Node.js 18+ with npm is needed for the JavaScript SDK tests and 'node' or "
                     "'npm' is not on PATH; install Node.js (https://nodejs.org) and run "
                     "'npm ci --prefix tests/js'")
    assert node is not None
    assert npm is not None
    lock = JS_DIR / "package-lock.json"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    modules = JS_DIR / "node_modules"
    stamp = modules / _STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return modules
    # Two pytest processes may start at once: one installs, the other waits and then skips.
    # The lock lives outside node_modules, which 'npm ci' deletes first.
    folder_hash = hashlib.sha256(str(JS_DIR).encode()).hexdigest()[:12]
    guard_path = Path(tempfile.gettempdir()) / f"botkit-npm-{folder_hash}.lock"
    with guard_path.open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text().strip() == digest:
            return modules
        # --ignore-scripts: nothing the tests use needs an install script (protobufjs has one
        # we don't want to run); --no-audit/--no-fund: no extra registry calls.
        command = [npm, "ci", "--prefix", str(JS_DIR), "--ignore-scripts", "--no-audit",
                   "--no-fund", "--loglevel=error"]
        try:
            result = subprocess.run(command, capture_output=True, text=True,
                                    timeout=_NPM_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            _unavailable(f"'npm ci' in {JS_DIR} took longer than {_NPM_TIMEOUT:.0f}s")
            raise  # unreachable: _unavailable raises
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
            _unavailable(f"'npm ci --prefix {JS_DIR}' failed:\n{tail}")
        stamp.write_text(digest + "\n")
    return modules


class NodeScript:
    """One node process speaking JSON lines; see the module docstring."""

    def __init__(self, script: Path, *, cwd: Path = JS_DIR,
                 env: dict[str, str] | None = None) -> None:
        self.script = script
        self.cwd = cwd
        self.env = env
        self.events: list[Event] = []
        self._handlers: dict[str, Callable[[Event], Any]] = {}
        self._changed = asyncio.Event()
        self._process: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stderr: list[str] = []
        self._eof = False
        self._handler_errors: list[BaseException] = []

    async def __aenter__(self) -> Self:
        node = shutil.which("node")
        if node is None:
            _unavailable("'node' is not on PATH")
        assert node is not None
        env = dict(os.environ, **(self.env or {}))
        self._process = await asyncio.create_subprocess_exec(
            node, str(self.script), cwd=self.cwd, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            limit=4 * 2**20)
        self._tasks = [asyncio.create_task(self._read_events()),
                       asyncio.create_task(self._read_stderr())]
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await process.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def on(self, event: str, handler: Callable[[Event], Any]) -> None:
        """Call ``handler`` for every ``event`` (a coroutine handler is awaited in order)."""
        self._handlers[event] = handler

    async def send(self, command: Event) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(command).encode() + b"\n")
        await self._process.stdin.drain()

    async def wait_for(self, name: str, predicate: Callable[[Event], bool] = lambda e: True, *,
                       timeout: float, after: int = 0) -> Event:
        """The first event ``name`` at index >= ``after`` that satisfies ``predicate``."""
        seen = after
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._raise_handler_errors()
                    for event in self.events[seen:]:
                        if event.get("event") == name and predicate(event):
                            return event
                    seen = len(self.events)
                    if self._eof:
                        raise AssertionError(f"node exited while waiting for {name!r}"
                                             f"{self.describe()}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {name!r} event within {timeout}s{self.describe()}") from None

    def named(self, name: str, *, after: int = 0) -> list[Event]:
        return [e for e in self.events[after:] if e.get("event") == name]

    def describe(self) -> str:
        """The recent events and stderr, for assertion messages."""
        recent = "\n".join(json.dumps(e)[:300] for e in self.events[-25:])
        errors = "".join(self._stderr[-30:])
        return f"\n--- last node events ---\n{recent}\n--- node stderr ---\n{errors}"

    def _raise_handler_errors(self) -> None:
        if self._handler_errors:
            raise AssertionError("an event handler failed") from self._handler_errors[0]

    async def _read_events(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        try:
            while line := await self._process.stdout.readline():
                try:
                    event = json.loads(line)
                except ValueError:
                    self._stderr.append(f"(stdout, not JSON) {line.decode(errors='replace')}")
                    continue
                self.events.append(event)
                self._changed.set()
                handler = self._handlers.get(event.get("event", ""))
                if handler is not None:
                    try:
                        result = handler(event)
                        if asyncio.iscoroutine(result):
                            await result
                    except Exception as exc:  # reported by the next wait_for
                        self._handler_errors.append(exc)
        finally:
            self._eof = True
            self._changed.set()

    async def _read_stderr(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        while line := await self._process.stderr.readline():
            self._stderr.append(line.decode(errors="replace"))
