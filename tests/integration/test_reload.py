"""`botkit run --reload`: a save restarts the bots in a new process; a broken save waits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from botkit.dev.localserver import LocalCentrifugo
from tests.support.dev import dev_process, dev_yaml
from tests.support.humans import Human, human
from tests.support.runtime_support import bots_yaml, new_project

ROOT = Path(__file__).resolve().parents[2]
ECHOER = """\
- name: echoer
  plugin: echoer
  user_id: bot_echoer
  rooms: [lobby]
"""


def _plugin(reply: str) -> str:
    return textwrap.dedent(f"""\
        from botkit import Bot, Context

        bot = Bot("echoer")


        @bot.command("hi")
        async def hi(ctx: Context) -> None:
            await ctx.reply({reply!r})
        """)


class _Log:
    """The lines of a process's stderr as they come (read all along, so the pipe never fills)."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._stream = stream
        self._grew = asyncio.Event()

    async def read(self) -> None:
        while line := await self._stream.readline():
            self.lines.append(line.decode(errors="replace"))
            self._grew.set()
        self._grew.set()

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    async def wait_for(self, text: str, times: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while self.count(text) < times:
                self._grew.clear()
                await self._grew.wait()


def _save(path: Path, text: str) -> None:
    # Written to a temporary file and renamed over, as editors save.
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


async def _reply(person: Human, text: str) -> str:
    await person.say(text)
    [reply] = await person.replies_from("bot_echoer", 1, timeout=10)
    return str(reply["text"])


@pytest.mark.server
async def test_reload_picks_up_a_save_and_survives_a_broken_one(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    project = new_project()
    config = tmp_path / "bots.yaml"
    config.write_text(bots_yaml(centrifugo, ECHOER, project_id=project))
    plugin = tmp_path / "echoer.py"
    plugin.write_text(_plugin("one"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botkit", "run", "--reload", "-c", str(config), "--grace", "2s",
        cwd=ROOT, stderr=asyncio.subprocess.PIPE, start_new_session=True,
        env={**os.environ, "TEST_KEY": centrifugo.api_key, "PYTHONPATH": str(ROOT)})
    assert process.stderr is not None
    log = _Log(process.stderr)
    reader = asyncio.create_task(log.read())
    try:
        await log.wait_for("serving", 1, timeout=30)
        async with human(centrifugo, project, "lobby", "user_ivy") as ivy:
            assert await _reply(ivy, "/hi") == "one"

            saved = time.monotonic()
            _save(plugin, _plugin("two"))
            await log.wait_for("serving", 2, timeout=10)
            assert await _reply(ivy, "/hi") == "two"
            assert time.monotonic() - saved < 3.0, "".join(log.lines)

            _save(plugin, _plugin("three").replace("async def", "async deff"))
            await log.wait_for("stopped on a configuration or plugin error", 1, timeout=10)
            assert log.count("SyntaxError") >= 1  # the child's error, as the child printed it
            assert process.returncode is None  # the supervisor waits for the next save

            _save(plugin, _plugin("three"))
            await log.wait_for("serving", 3, timeout=10)
            assert await _reply(ivy, "/hi") == "three"

            # bots.yaml is watched too, and a mistake there waits for the next save as well.
            good = config.read_text()
            _save(config, good.replace("rooms: [lobby]", "romos: [lobby]"))
            await log.wait_for("stopped on a configuration or plugin error", 2, timeout=10)
            assert log.count("unknown key 'romos'") == 1
            _save(config, good)
            await log.wait_for("serving", 4, timeout=10)
            assert await _reply(ivy, "/hi") == "three"

        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            code = await process.wait()
            await reader
        assert code == 0, "".join(log.lines)
        assert log.count("restarting") == 5, "".join(log.lines)
        assert log.lines[-1].rstrip().endswith("stopped")  # the child stopped cleanly first
    finally:
        _kill_group(process)
        await process.wait()
        reader.cancel()


def _kill_group(process: asyncio.subprocess.Process) -> None:
    """The supervisor and its child, whatever the test did: nothing outlives it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def test_dev_reload_restarts_the_hub_and_the_bots_with_one_key(tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(dev_yaml(project_id=new_project(), key_reference="${XSHATHRA_SERVER_API_KEY}")
                      + textwrap.indent(ECHOER, "  "))
    plugin = tmp_path / "echoer.py"
    plugin.write_text(_plugin("one"))
    env = {key: value for key, value in os.environ.items() if key != "XSHATHRA_SERVER_API_KEY"}
    async with dev_process(config, env=env, log=tmp_path / "dev.log",
                           args=("--reload",)) as dev:
        assert dev.process.stdout is not None
        first_port = dev.port
        _save(plugin, _plugin("two"))
        async with asyncio.timeout(15):
            while "Chat page:" not in (line := (await dev.process.stdout.readline()).decode()):
                assert line, dev.log()
                dev.stdout.append(line)
        # Ctrl-C reaches the supervisor only (its own session here): it stops the child.
        assert await dev.stop(signal.SIGINT) == 0, dev.log()
        rest = (await dev.process.stdout.read()).decode()
    log = dev.log()
    assert "echoer.py changed; restarting" in log
    assert log.count("bot echoer serving") == 2
    assert first_port != 0
    # The supervisor made the key up once, for every restart: a token minted from the key it
    # printed keeps working, and the children don't print another.
    said = "".join(dev.stdout) + rest
    assert said.count("server_api_key for this run") == 1, said
