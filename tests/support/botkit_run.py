"""``botkit run`` as a real process for restart tests (issue 11): started against a test server,
its log read line by line as it comes, stopped by its pid with a real signal.

::

    async with botkit_run(config, server.api_key) as bot:
        await bot.wait_for("bot echo serving")
        ...
        assert await bot.stop(signal.SIGTERM) == 0
    bot.log()  # every line it printed

And what a person in the room sees of one bot: :class:`Replies`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from tests.support.humans import Human

__all__ = ["ROOT", "BotkitRun", "Replies", "botkit_run", "with_top_level"]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def with_top_level(yaml_text: str, lines: str) -> str:
    """``yaml_text`` (from tests.runtime_support.bots_yaml) with top-level ``lines`` added
    before its ``bots:`` list (``catch_up: {max_age: 2s}``)."""
    head, found, bots = yaml_text.partition("\nbots:\n")
    assert found, "not a bots.yaml from bots_yaml()"
    return f"{head}\n{lines.rstrip()}\nbots:\n{bots}"


class BotkitRun:
    """One ``botkit run`` process; stdout and stderr together in :attr:`lines`."""

    def __init__(self, config: Path, key: str, *, grace: str = "2s",
                 extra_env: dict[str, str] | None = None) -> None:
        self.config = config
        self.key = key
        self.grace = grace
        self.extra_env = extra_env or {}
        self.lines: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        env = {**os.environ, "TEST_KEY": self.key, "PYTHONPATH": str(ROOT), **self.extra_env}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "botkit", "run", "-c", str(self.config),
            "--grace", self.grace, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()

    def log(self) -> str:
        return "\n".join(self.lines)

    def count(self, needle: str) -> int:
        return sum(needle in line for line in self.lines)

    async def wait_for(self, needle: str, *, count: int = 1,
                       timeout: float = START_TIMEOUT) -> None:
        """Return once ``count`` lines hold ``needle``; AssertionError with the log if the
        process ends first or ``timeout`` passes."""
        try:
            async with asyncio.timeout(timeout):
                while self.count(needle) < count:
                    if self._reader is not None and self._reader.done():
                        assert self.process is not None
                        code = await self.process.wait()  # its output ended: it has exited
                        raise AssertionError(f"botkit run ended before {needle!r} "
                                             f"(exit {code}):\n{self.log()}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {needle!r} within {timeout}s:\n{self.log()}") from None

    async def serving(self, *bots: str) -> None:
        for name in bots:
            await self.wait_for(f"bot {name} serving")

    @property
    def returncode(self) -> int | None:
        return self.process.returncode if self.process is not None else None

    async def stop(self, signum: int = signal.SIGTERM, *,
                   timeout: float = STOP_TIMEOUT) -> int:
        """Send ``signum`` and wait (bounded) for the exit code and the last of the log."""
        assert self.process is not None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
            if self._reader is not None:
                await self._reader
        return code

    async def close(self) -> None:
        """Kill it if it still runs (a failed test), by its pid."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            async with asyncio.timeout(STOP_TIMEOUT):
                await self.process.wait()
        if self._reader is not None:
            async with asyncio.timeout(STOP_TIMEOUT):
                await self._reader


@contextlib.asynccontextmanager
async def botkit_run(config: Path, key: str, *, grace: str = "2s",
                     extra_env: dict[str, str] | None = None) -> AsyncIterator[BotkitRun]:
    run = BotkitRun(config, key, grace=grace, extra_env=extra_env)
    await run.start()
    try:
        yield run
    except AssertionError as failed:
        await run.close()
        if run.log() not in str(failed):
            failed.add_note(f"--- botkit run (exit {run.returncode}) ---\n{run.log()}")
        raise
    finally:
        await run.close()


class Replies:
    """What one bot says in a room, as a person in it reads it (in order of arrival)."""

    def __init__(self, person: Human, bot_user: str) -> None:
        self.person = person
        self.bot_user = bot_user
        self.seen: list[dict[str, Any]] = []

    def texts(self) -> list[str]:
        return [str(reply.get("text")) for reply in self.seen]

    def _take(self, data: dict[str, Any]) -> None:
        if data.get("senderId") == self.bot_user:
            self.seen.append(data)

    async def until(self, condition: Callable[[list[dict[str, Any]]], bool], what: str, *,
                    timeout: float = 15.0) -> list[dict[str, Any]]:
        """Read the room until ``condition(self.seen)``; AssertionError naming ``what`` and
        what was seen after ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                while not condition(self.seen):
                    self._take(await self.person.inbox.get())
        except TimeoutError:
            raise AssertionError(f"not within {timeout}s: {what}; {self.bot_user} said "
                                 f"{self.texts()}") from None
        return self.seen

    async def count(self, count: int, *, timeout: float = 15.0) -> list[dict[str, Any]]:
        return await self.until(lambda seen: len(seen) >= count,
                                f"{count} message(s) from {self.bot_user}", timeout=timeout)

    async def settle(self, seconds: float) -> list[dict[str, Any]]:
        """Read for ``seconds`` more (to see what must not come)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    self._take(await self.person.inbox.get())
        return self.seen
