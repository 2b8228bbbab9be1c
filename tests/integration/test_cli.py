"""The botkit command, run as a process: run/SIGTERM, check, token, and config errors."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from botkit.dev.localserver import LocalCentrifugo
from tests.support.humans import human
from tests.support.runtime_support import bots_yaml, new_project

ROOT = Path(__file__).resolve().parents[2]
FLAKY = """\
- name: flaky
  plugin: tests.plugins.flaky
  user_id: bot_flaky
  rooms: [lobby]
"""


def _env(key: str) -> dict[str, str]:
    return {**os.environ, "TEST_KEY": key, "PYTHONPATH": str(ROOT)}


def botkit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "botkit", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env or _env(""), timeout=60, check=False)


@pytest.mark.server
async def test_sigterm_finishes_commands_in_flight(centrifugo: LocalCentrifugo,
                                                   tmp_path: Path) -> None:
    project = new_project()
    config = tmp_path / "bots.yaml"
    config.write_text(bots_yaml(centrifugo, FLAKY, project_id=project))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botkit", "run", "-c", str(config), "--grace", "20s",
        cwd=ROOT, env=_env(centrifugo.api_key), stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    try:
        async with asyncio.timeout(20):
            while b"serving" not in await process.stderr.readline():
                pass
        async with human(centrifugo, project, "lobby", "user_ivy") as ivy:
            for _ in range(10):
                await ivy.say("/slow 0.3")
            first = await ivy.replies_from("bot_flaky", 1)
            process.send_signal(signal.SIGTERM)
            rest = await ivy.replies_from("bot_flaky", 9, timeout=15)
            assert [r["text"] for r in first + rest] == ["slept 0.3"] * 10
        async with asyncio.timeout(20):
            rest_of_log = await process.stderr.read()
            code = await process.wait()
        assert code == 0
        # Our own close is no lost connection: a clean stop warns about nothing.
        assert b"connection lost" not in rest_of_log
        assert b"WARNING" not in rest_of_log
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize(("mistake", "expected"), [
    ("romos: [lobby]", "test-bots.yaml:10: bots[0].romos: unknown key 'romos'; did you mean "
                       "'rooms'?"),
    ("lane_queue_size: lots", "bots[0]"),
])
def test_broken_config_gives_located_error_and_exit_2(tmp_path: Path, mistake: str,
                                                      expected: str) -> None:
    config = tmp_path / "test-bots.yaml"
    config.write_text(
        "xshathra:\n  project_id: proj_a\n  realtime_url: ws://127.0.0.1:1/ws\n"
        "  api_url: http://127.0.0.1:1/api\n  server_api_key: ${TEST_KEY}\n"
        "bots:\n  - name: flaky\n    plugin: tests.plugins.flaky\n    user_id: bot_flaky\n"
        f"    {mistake}\n")
    result = botkit("check", "-c", str(config), env=_env("k" * 32))
    assert result.returncode == 2
    message = result.stderr.replace(str(tmp_path) + "/", "")
    assert expected in message
    assert "Traceback" not in result.stderr


def test_missing_variable_is_named_and_secret_never_printed(tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(
        "xshathra:\n  project_id: proj_a\n  realtime_url: ws://127.0.0.1:1/ws\n"
        "  api_url: http://127.0.0.1:1/api\n  server_api_key: ${NOT_SET_ANYWHERE}\n"
        "bots: []\n")
    result = botkit("check", "-c", str(config))
    assert result.returncode == 2
    assert "bots.yaml:5" in result.stderr
    assert "NOT_SET_ANYWHERE" in result.stderr


def test_wrong_type_is_located(tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(
        "xshathra:\n  project_id: proj_a\n  realtime_url: ws://127.0.0.1:1/ws\n"
        "  api_url: http://127.0.0.1:1/api\n  server_api_key: ${TEST_KEY}\n"
        "bots:\n  - name: flaky\n    plugin: tests.plugins.flaky\n    user_id: bot_flaky\n"
        "    rooms: lobby\n")
    result = botkit("run", "-c", str(config), env=_env("s3cret-" + "k" * 32))
    assert result.returncode == 2
    assert "bots.yaml:10: bots[0].rooms" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout


def test_check_lists_rooms_and_handlers() -> None:
    result = botkit("check", "-c", "bots.yaml", env=_env("k" * 32) | {
        "XSHATHRA_SERVER_API_KEY": "k" * 32})
    assert result.returncode == 0, result.stderr
    assert "room lobby: chat:proj_local:lobby" in result.stdout
    assert "/roll [dice] → roll" in result.stdout
    assert "on user.joined → greet" in result.stdout


def test_token_command_signs_with_the_key() -> None:
    key = "t" * 32
    result = botkit("token", "--user", "user_1", "--ttl", "90s", "-c", "/nonexistent.yaml",
                    env=_env("") | {"XSHATHRA_SERVER_API_KEY": key})
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), key, algorithms=["HS256"])
    assert claims["sub"] == "user_1"
    assert claims["exp"] - claims["iat"] == 90
    sub = botkit("token", "--user", "user_1", "--channel", "chat:p:lobby", "-c", "/none",
                 env=_env("") | {"XSHATHRA_SERVER_API_KEY": key})
    assert jwt.decode(sub.stdout.strip(), key, algorithms=["HS256"])["channel"] == "chat:p:lobby"
