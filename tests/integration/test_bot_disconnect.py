"""The server disconnecting one bot stops that bot alone (issue 16, item 4).

``POST /api/realtime/disconnect {"user": ...}`` closes the bot's connection with 3503, a code
that forbids reconnecting. That used to end the whole process (exit 1, an ExceptionGroup
traceback; in ``botkit dev`` the hub and the page with it). Now the bot is reported, restarts
later by itself, and everything else goes on: tested with real processes on both servers, and
in-process for the restart.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from botkit.config import parse_config
from botkit.dev.localserver import LocalCentrifugo
from botkit.errors import BotkitError
from botkit.runtime.supervisor import BotPhase, Runtime, load_bots
from tests.support.dev import ROOT, dev_process, dev_yaml
from tests.support.humans import human
from tests.support.runtime_support import bots_yaml, new_project, running
from tests.support.waits import eventually

TWO_BOTS = """\
- name: commands
  plugin: bots.commands
  user_id: bot_commands
  rooms: [lobby]
- name: flaky
  plugin: tests.plugins.flaky
  user_id: bot_flaky
  rooms: [lobby]
"""


async def disconnect(api_url: str, key: str, user: str, **extra: Any) -> None:
    """The server API's ``disconnect`` of every connection of ``user`` (default code 3503)."""
    async with httpx.AsyncClient(timeout=5) as http:
        answer = await http.post(f"{api_url}/disconnect", json={"user": user, **extra},
                                 headers={"X-API-Key": key})
    assert answer.status_code == 200, answer.text
    assert "error" not in answer.json(), answer.text


async def read_until(stream: asyncio.StreamReader, needle: bytes, seen: list[bytes], *,
                     timeout: float = 20.0) -> None:
    """Read lines into ``seen`` until one holds ``needle``."""
    async with asyncio.timeout(timeout):
        while True:
            line = await stream.readline()
            if not line:
                raise AssertionError(b"".join(seen).decode(errors="replace"))
            seen.append(line)
            if needle in line:
                return


@pytest.mark.server
async def test_botkit_run_survives_the_server_disconnecting_one_bot(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    project = new_project()
    config = tmp_path / "bots.yaml"
    config.write_text(bots_yaml(centrifugo, TWO_BOTS, project_id=project))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botkit", "run", "-c", str(config), "--grace", "5s",
        cwd=ROOT, env={**os.environ, "TEST_KEY": centrifugo.api_key, "PYTHONPATH": str(ROOT)},
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    assert process.stderr is not None
    seen: list[bytes] = []
    try:
        for bot in (b"bot commands serving", b"bot flaky serving"):
            if not any(bot in line for line in seen):
                await read_until(process.stderr, bot, seen)
        async with human(centrifugo, project, "lobby", "user_ivy") as ivy:
            await disconnect(centrifugo.api_url, centrifugo.api_key, "bot_flaky")
            await read_until(process.stderr, b"bot flaky stopped", seen)
            assert process.returncode is None
            # The other bot still answers, and the disconnected one does not.
            await ivy.say("/ping")
            await ivy.say("/echo anyone?")
            (pong,) = await ivy.replies_from("bot_commands", 1)
            assert pong["text"] == "pong"
            assert await ivy.quiet_from("bot_flaky", 0.5) == []
            assert process.returncode is None
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            rest = await process.stderr.read()
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = (b"".join(seen) + rest).decode(errors="replace")
    assert code == 0, log
    stopped = [line for line in log.splitlines() if "bot flaky stopped" in line]
    assert len(stopped) == 1, log
    assert "3503" in stopped[0]
    assert "starts again in 30s" in stopped[0]
    assert "Traceback" not in log
    assert "ExceptionGroup" not in log


@pytest.mark.server
async def test_a_closed_bot_restarts_by_itself_with_its_counters(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with running(centrifugo, bots_yaml(centrifugo, TWO_BOTS, project_id=project)) as rt:
        rt.restart_delay = 0.5
        async with human(centrifugo, project, "lobby", "user_jo") as jo:
            await jo.say("/echo before")
            (before,) = await jo.replies_from("bot_flaky", 1)
            assert before["text"] == "before"
            assert rt.status("flaky").phase is BotPhase.SERVING
            first_runner = rt.runners["flaky"]
            # A 3500 close this time (the other case; 3500-3999 forbid reconnecting).
            await disconnect(centrifugo.api_url, centrifugo.api_key, "bot_flaky",
                             disconnect={"code": 3500, "reason": "invalid token"})
            await eventually(lambda: rt.status("flaky").phase is BotPhase.RESTARTING,
                             "flaky restarting")
            assert "3500" in str(rt.status("flaky").reason)
            assert rt.status("commands").phase is BotPhase.SERVING
            await eventually(lambda: rt.status("flaky").phase is BotPhase.SERVING,
                             "flaky serving again", timeout=15)
            assert rt.status("flaky").restarts == 1
            assert rt.runners["flaky"] is not first_runner
            await jo.say("/echo after")
            (after,) = await jo.replies_from("bot_flaky", 1)
            assert after["text"] == "after"
            assert rt.runners["flaky"].stats.handled >= 2  # counted across both runs
    assert rt.status("flaky").phase is BotPhase.STOPPED


async def test_botkit_dev_keeps_the_hub_when_a_bot_is_disconnected(tmp_path: Path) -> None:
    key = "dev-disconnect-" + "k" * 32
    config = tmp_path / "bots.yaml"
    config.write_text(dev_yaml(project_id="proj_devdisc"))
    env = {name: value for name, value in os.environ.items()
           if name not in ("XSHATHRA_SERVER_API_KEY", "TEST_KEY")}
    async with dev_process(config, env={**env, "TEST_KEY": key},
                           log=tmp_path / "dev.log") as dev:
        await disconnect(dev.api_url, key, "bot_welcome")
        await eventually(lambda: "bot welcome stopped" in dev.log(), "welcome stopped")
        async with httpx.AsyncClient(base_url=dev.page_url, timeout=5) as http:
            assert (await http.get("/health")).json() == {}
            assert (await http.get("/")).status_code == 200
            login = await http.post("/api/realtime/token", json={"name": "Uma", "room": "lobby"})
            session = login.json()
            sent = await http.post(
                "/api/chat/send", headers={"Authorization": f"Bearer {session['token']}"},
                json={"roomId": "lobby", "text": "/ping", "clientMessageId": "c-1"})
            assert sent.status_code == 200, sent.text
            message_id = sent.json()["message"]["id"]
            # The commands bot still answers through the hub.
            async with asyncio.timeout(10):
                while True:
                    history = await http.post(
                        "/api/realtime/history", headers={"X-API-Key": key},
                        json={"channel": session["channel"], "limit": -1})
                    texts = [pub["data"].get("text") for pub in
                             history.json()["result"].get("publications", [])
                             if pub["data"].get("replyTo") == message_id]
                    if texts:
                        break
                    await asyncio.sleep(0.1)
            assert texts == ["pong"]
        assert dev.process.returncode is None
        assert await dev.stop(signal.SIGTERM) == 0
        log = dev.log()
        assert "Traceback" not in log
        assert "ExceptionGroup" not in log


@pytest.mark.server
async def test_a_bot_refused_at_start_still_ends_the_runtime_with_one_error(
        centrifugo: LocalCentrifugo) -> None:
    # Only configuration mistakes end the process, and they show at start: a token the server
    # refuses (signed with the wrong key) is one. No ExceptionGroup, the bot's name, its code.
    yaml_text = bots_yaml(centrifugo, TWO_BOTS, project_id=new_project())
    config = parse_config(yaml_text, source="test-bots.yaml",
                          environ={"TEST_KEY": "not-the-key-" + "x" * 32})
    runtime = Runtime(config, load_bots(config), grace=2.0)
    async with asyncio.timeout(30):
        with pytest.raises(BotkitError) as refused:
            await runtime.run()
    assert not isinstance(refused.value, BaseExceptionGroup)
    assert re.match(r"bot (commands|flaky): the server closed its connection for good: "
                    r".*3500", str(refused.value)), str(refused.value)
    assert BotPhase.STOPPED in {runtime.status("commands").phase, runtime.status("flaky").phase}
