"""Two ``botkit run`` on one state file: the second is refused (exit 2, one line naming the file
and the first one's pid) and the first keeps serving alone, each command answered once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from botkit.dev.localserver import LocalCentrifugo
from tests.support.humans import human
from tests.support.runtime_support import bots_yaml, new_project

ROOT = Path(__file__).resolve().parents[2]
ECHO = """\
- name: flaky
  plugin: tests.plugins.flaky
  user_id: bot_flaky
  rooms: [lobby]
"""


def _env(key: str) -> dict[str, str]:
    return {**os.environ, "TEST_KEY": key, "PYTHONPATH": str(ROOT)}


@pytest.mark.server
async def test_a_second_run_on_the_same_state_file_exits_2_naming_the_first(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    project = new_project()
    state = tmp_path / "state.sqlite"
    config = tmp_path / "bots.yaml"
    config.write_text(bots_yaml(centrifugo, ECHO, project_id=project, state_path=str(state)))
    command = [sys.executable, "-m", "botkit", "run", "-c", str(config)]
    first = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, env=_env(centrifugo.api_key), stderr=asyncio.subprocess.PIPE)
    assert first.stderr is not None
    second: asyncio.subprocess.Process | None = None
    try:
        async with asyncio.timeout(30):
            while b"serving" not in await first.stderr.readline():
                pass
        second = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env=_env(centrifugo.api_key),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(60):
            out, err = await second.communicate()
        assert second.returncode == 2
        assert out == b""
        assert err.decode().splitlines() == [
            f"botkit: state file {state} is in use by another botkit process (pid {first.pid}); "
            "stop it, or give this process its own state.path"]

        async with human(centrifugo, project, "lobby", "user_ivy") as ivy:
            await ivy.say("/echo once")
            replies = await ivy.replies_from("bot_flaky", 1)
            assert [reply["text"] for reply in replies] == ["once"]
            assert await ivy.quiet_from("bot_flaky", 0.5) == []  # answered once, by one process
        first.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await first.wait() == 0
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()  # before the fix, the second one ran on and never exited
                await process.wait()
