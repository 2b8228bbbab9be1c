"""``botkit dev`` as a process: one port serving the chat page, the dev backend and the hub, the
bots of bots.yaml answering through it, a graceful SIGTERM, and the key and config handling."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import websockets
from websockets.typing import Origin

from botkit.serverapi.client import ServerApi
from botkit.tokens import chat_channel
from tests.support.dev import ROOT, dev_process, dev_yaml

KEY = "dev-test-key-" + secrets.token_urlsafe(32)


def _env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if name not in ("XSHATHRA_SERVER_API_KEY", "TEST_KEY")}
    return env | extra


async def _bot_reply(api: ServerApi, channel: str, cause_id: str, *,
                     timeout: float = 10.0) -> dict[str, Any]:
    """The first message in ``channel``'s history that replies to ``cause_id``."""
    async with asyncio.timeout(timeout):
        while True:
            history = await api.history(channel, limit=-1)
            for publication in history.publications:
                data = publication.data
                if isinstance(data, dict) and data.get("replyTo") == cause_id:
                    return data
            await asyncio.sleep(0.1)


async def test_dev_serves_page_backend_hub_and_bots(tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(dev_yaml(project_id="proj_devtest"))
    async with dev_process(config, env=_env(TEST_KEY=KEY), log=tmp_path / "dev.log") as dev:
        assert dev.stdout == []  # the key came from the environment: nothing else printed
        async with httpx.AsyncClient(base_url=dev.page_url, timeout=5) as http:
            page = await http.get("/")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert 'id="join"' in page.text
            assert page.headers["cache-control"] == "no-cache"
            script = await http.get("/chat.js")
            assert script.status_code == 200
            assert "javascript" in script.headers["content-type"]
            # The page mounted at / must not shadow the hub's own routes.
            assert (await http.get("/health")).json() == {}
            assert (await http.get("/no-such-file")).status_code == 404

            login = await http.post("/api/realtime/token", json={"name": "Dana", "room": "lobby"})
            assert login.status_code == 200, login.text
            session = login.json()
            assert session["channel"] == chat_channel("proj_devtest", "lobby")
            claims = jwt.decode(session["token"], KEY, algorithms=["HS256"])
            assert claims["sub"] == session["userId"]

            sent = await http.post(
                "/api/chat/send", headers={"Authorization": f"Bearer {session['token']}"},
                json={"roomId": "lobby", "text": "/ping", "clientMessageId": "c-1"})
            assert sent.status_code == 200, sent.text
            message = sent.json()["message"]
            assert (message["senderId"], message["text"]) == (session["userId"], "/ping")

        async with ServerApi(dev.api_url, KEY) as api:
            reply = await _bot_reply(api, session["channel"], message["id"])
        assert (reply["senderId"], reply["text"]) == ("bot_commands", "pong")

        # Browsers send Origin: the page's own origins pass, any other is refused.
        for origin in (f"http://127.0.0.1:{dev.port}", f"http://localhost:{dev.port}"):
            async with websockets.connect(dev.ws_url, origin=Origin(origin), open_timeout=5):
                pass
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(dev.ws_url, origin=Origin("http://evil.example"),
                                          open_timeout=5):
                pass
        assert refused.value.response.status_code == 403

        assert await dev.stop(signal.SIGTERM) == 0
        log = dev.log()
        assert "botkit.cli.main: stopped" in log
        assert KEY not in log
        assert "Traceback" not in log


async def test_dev_makes_up_a_key_when_none_is_set(tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(dev_yaml(project_id="proj_devkey",
                               key_reference="${XSHATHRA_SERVER_API_KEY:-}"))
    async with dev_process(config, env=_env(), log=tmp_path / "dev.log") as dev:
        [line] = dev.stdout
        prefix = "XSHATHRA_SERVER_API_KEY is not set; server_api_key for this run: "
        assert line.startswith(prefix)
        key = line.removeprefix(prefix)
        assert len(key) >= 32
        async with httpx.AsyncClient(base_url=dev.page_url, timeout=5) as http:
            login = await http.post("/api/realtime/token", json={"name": "Eve"})
            assert login.status_code == 200, login.text
        # The printed key is the one that signs: `botkit token` and other clients can use it.
        assert jwt.decode(login.json()["token"], key, algorithms=["HS256"])["sub"]
        async with ServerApi(dev.api_url, key) as api:  # the hub's API takes it too
            empty = await api.history(chat_channel("proj_devkey", "lobby"), limit=0)
        assert empty.publications == ()
        assert await dev.stop(signal.SIGINT) == 0


def _botkit_dev(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "botkit", "dev", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env | {"PYTHONPATH": str(ROOT)},
                          timeout=60, check=False)


def test_dev_broken_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(dev_yaml(project_id="proj_broken").replace("rooms: [lobby]\n",
                                                                 "romos: [lobby]\n", 1))
    result = _botkit_dev("-c", str(config), "--port", "0", env=_env(TEST_KEY=KEY))
    assert result.returncode == 2
    assert "unknown key 'romos'; did you mean 'rooms'?" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Chat page" not in result.stdout


def test_dev_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(dev_yaml(project_id="proj_busy"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _botkit_dev("-c", str(config), "--port", str(port), env=_env(TEST_KEY=KEY))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr
