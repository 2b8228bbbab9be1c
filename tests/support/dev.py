"""``botkit dev`` as a process for tests: started on a free port, read until it prints the page's
address, and always stopped by its pid on the way out.

::

    async with dev_process(config_path, env=env, log=tmp_path / "dev.log") as dev:
        dev.page_url   # "http://127.0.0.1:40123/"
        dev.stdout     # what it printed before the address (the made-up key, if any)
        await dev.stop(signal.SIGTERM)  # -> exit code
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ROOT", "DevProcess", "dev_process", "dev_yaml"]

ROOT = Path(__file__).resolve().parents[2]
_PAGE_LINE = re.compile(r"Chat page: (http://127\.0\.0\.1:(\d+)/)")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def dev_yaml(*, project_id: str, key_reference: str = "${TEST_KEY}") -> str:
    """A bots.yaml with the example welcome and commands bots, state in memory. The URLs are
    placeholders: ``botkit dev`` points the bots at its own hub."""
    return f"""\
xshathra:
  project_id: {project_id}
  realtime_url: ws://127.0.0.1:1/realtime/connection/websocket
  api_url: http://127.0.0.1:1/api/realtime
  server_api_key: {key_reference}
  token_ttl: 10m
state: {{backend: memory}}
bots:
  - name: welcome
    plugin: bots.welcome
    user_id: bot_welcome
    rooms: [lobby]
    settings:
      greeting: "Welcome, {{name}}! Say /help to see what the bots can do."
  - name: commands
    plugin: bots.commands
    user_id: bot_commands
    rooms: [lobby]
"""


@dataclass
class DevProcess:
    process: asyncio.subprocess.Process
    log_path: Path
    page_url: str = ""
    port: int = 0
    stdout: list[str] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/realtime"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/realtime/connection/websocket"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` and wait (bounded) for the exit code."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signum)
        async with asyncio.timeout(STOP_TIMEOUT):
            return await self.process.wait()


@contextlib.asynccontextmanager
async def dev_process(config: Path, *, env: Mapping[str, str], log: Path,
                      args: tuple[str, ...] = ()) -> AsyncIterator[DevProcess]:
    """``botkit dev -c config --port 0``: yields once the page's address is printed."""
    with log.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "botkit", "dev", "-c", str(config), "--port", "0", *args,
            cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE,
            stderr=log_file, start_new_session=True)
    dev = DevProcess(process, log)
    try:
        assert process.stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while True:
                    line = (await process.stdout.readline()).decode()
                    if not line:
                        raise AssertionError(f"botkit dev exited with {await process.wait()} "
                                             f"before printing the page:\n{dev.log()}")
                    found = _PAGE_LINE.search(line)
                    if found:
                        dev.page_url, dev.port = found.group(1), int(found.group(2))
                        break
                    dev.stdout.append(line.rstrip("\n"))
        except TimeoutError:
            raise AssertionError(f"botkit dev printed no page address within "
                                 f"{START_TIMEOUT:.0f} s:\n{dev.log()}") from None
        yield dev
    finally:
        if process.returncode is None:
            # By its pid (its own session): whatever the test did, nothing outlives it.
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            await process.wait()
