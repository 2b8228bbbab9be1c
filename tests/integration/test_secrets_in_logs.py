"""A full ``botkit run`` at debug level, in text and in JSON log format, against the real local
server: a bot answers a command, a handler fails (a traceback is logged), the process stops.
Nothing it printed may carry the server API key, a token it minted, or the password of a URL
of its configuration."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
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
# A complete JWT (header, claims and a signature): what the bot mints for its connection and
# its rooms. A part of one, cut by a log line's length limit, can't be used.
_JWT = re.compile(r"eyJ[\w-]{10,}\.eyJ[\w-]{10,}\.[\w-]{20,}")


def _with_password(url: str, password: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://botkit:{password}@{rest}"


async def _read_all(stream: asyncio.StreamReader, lines: list[str],
                    serving: asyncio.Event) -> None:
    while line := await stream.readline():
        text = line.decode(errors="replace")
        lines.append(text)
        if "serving" in text:
            serving.set()


@pytest.mark.server
@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_debug_run_logs_no_key_token_or_url_password(
        centrifugo: LocalCentrifugo, tmp_path: Path, log_format: str) -> None:
    project = new_project()
    password = f"urlpw{secrets.token_hex(8)}"
    config = tmp_path / "bots.yaml"
    config.write_text(bots_yaml(
        centrifugo, ECHO, project_id=project, state_path=str(tmp_path / "state.sqlite"),
        realtime_url=_with_password(centrifugo.ws_url, password)).replace(
            f"api_url: {centrifugo.api_url}",
            f"api_url: {_with_password(centrifugo.api_url, password)}"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botkit", "run", "-c", str(config), "--log-level", "debug",
        "--log-format", log_format, "--grace", "5s", cwd=ROOT,
        env={**os.environ, "TEST_KEY": centrifugo.api_key, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    assert process.stderr is not None
    out: list[str] = []
    err: list[str] = []
    serving = asyncio.Event()
    readers = [asyncio.create_task(_read_all(process.stdout, out, serving)),
               asyncio.create_task(_read_all(process.stderr, err, serving))]
    try:
        async with asyncio.timeout(30):
            await serving.wait()
        async with human(centrifugo, project, "lobby", "user_ivy") as ivy:
            await ivy.say("/echo hello")
            await ivy.say("/boom")  # a handler error: logged with its traceback
            await ivy.say("/echo again")
            replies = await ivy.replies_from("bot_flaky", 2)
            assert [reply["text"] for reply in replies] == ["hello", "again"]
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await process.wait() == 0
            await asyncio.gather(*readers)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for reader in readers:
            reader.cancel()
    output = "".join(out + err)
    assert centrifugo.api_key not in output
    assert password not in output
    assert _JWT.findall(output) == []
    # The run did log what the scan must cover: the URLs (without their password), debug
    # lines, the handler's traceback.
    assert "ws://***@127.0.0.1" in output
    assert "http://***@127.0.0.1" in output
    assert "handler failure on purpose" in output
    assert "DEBUG" in output or '"level": "debug"' in output
    if log_format == "json":
        for line in err:
            json.loads(line)
