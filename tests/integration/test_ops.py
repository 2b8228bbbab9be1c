"""The ops endpoint of a real ``botkit run`` process against a real server: /readyz follows the
server away and back, /metrics counts a /ping, /healthz turns red while a handler blocks the
event loop, and the logs name the bot, room and envelope."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from botkit.dev.localserver import LocalCentrifugo, free_port
from tests.support.humans import human
from tests.support.runtime_support import bots_yaml, new_project

ROOT = Path(__file__).resolve().parents[2]
PROBE = """\
- name: ops_probe
  plugin: tests.plugins.ops_probe
  user_id: bot_probe
  rooms: [lobby]
"""
pytestmark = pytest.mark.server


class Daemon:
    def __init__(self, process: asyncio.subprocess.Process, log_path: Path, port: int) -> None:
        self.process = process
        self.log_path = log_path
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def get(self, path: str) -> httpx.Response | None:
        """The answer to ``GET path``, or None while nothing listens yet."""
        try:
            return await self.http.get(path)
        except httpx.TransportError:
            return None

    async def until(self, path: str, accept: Callable[[httpx.Response], bool], what: str, *,
                    timeout: float = 20.0) -> httpx.Response:
        """Poll ``path`` until an answer passes ``accept``; AssertionError after ``timeout``."""
        last: httpx.Response | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self.process.returncode is not None:
                        raise AssertionError(f"botkit run exited:\n{self.log()}")
                    last = await self.get(path)
                    if last is not None and accept(last):
                        return last
                    await asyncio.sleep(0.05)
        except TimeoutError:
            body = last.text if last is not None else "no answer"
            raise AssertionError(f"{path}: not {what} within {timeout}s; last: {body}\n"
                                 f"{self.log()[-3000:]}") from None

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        answer = await self.http.get("/metrics")
        assert answer.status_code == 200, answer.text
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(answer.text)
                for sample in family.samples}


@contextlib.asynccontextmanager
async def daemon(server: LocalCentrifugo, tmp_path: Path, *args: str,
                 project: str, env: dict[str, str] | None = None) -> AsyncIterator[Daemon]:
    port = free_port()
    config = tmp_path / "bots.yaml"
    config.write_text(bots_yaml(server, PROBE, project_id=project)
                      + f"ops: {{host: 127.0.0.1, port: {port}}}\n")
    log_path = tmp_path / "botkit.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "botkit", "run", "-c", str(config), "--grace", "5s", *args,
            cwd=ROOT, env={**os.environ, "TEST_KEY": server.api_key, "PYTHONPATH": str(ROOT),
                           **(env or {})},
            stderr=log_file, start_new_session=True)
    running = Daemon(process, log_path, port)
    try:
        yield running
    finally:
        await running.http.aclose()
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    await process.wait()
            except TimeoutError:
                os.kill(process.pid, signal.SIGKILL)
                await process.wait()


def _ready(answer: httpx.Response) -> bool:
    return answer.status_code == 200


def _not_ready(answer: httpx.Response) -> bool:
    return answer.status_code == 503


async def test_readyz_follows_the_server_away_and_back(
        make_centrifugo: Callable[..., LocalCentrifugo], tmp_path: Path) -> None:
    server = make_centrifugo()
    server.stop()  # the daemon starts while the server is away: it can't be ready yet
    async with daemon(server, tmp_path, project=new_project()) as bots:
        first = await bots.until("/readyz", lambda answer: True, "answered", timeout=30)
        assert first.status_code == 503
        report = first.json()
        assert report["ready"] is False
        assert report["bots"]["ops_probe"]["rooms"]["lobby"]["subscribed"] is False
        assert any(p.startswith("bot ops_probe") for p in report["problems"]), report

        server.start()
        ready = (await bots.until("/readyz", _ready, "ready", timeout=30)).json()
        assert ready["ready"] is True
        assert ready["problems"] == []
        assert ready["bots"]["ops_probe"]["connection"] == "connected"
        assert ready["bots"]["ops_probe"]["rooms"]["lobby"] == {"subscribed": True,
                                                               "reason": None}

        server.stop()
        gone = (await bots.until("/readyz", _not_ready, "unready", timeout=15)).json()
        assert gone["bots"]["ops_probe"]["ready"] is False
        assert gone["bots"]["ops_probe"]["reason"].startswith("not connected"), gone
        assert ("bot ops_probe, room lobby: not subscribed: the bot is not connected"
                in gone["problems"]), gone

        server.start()
        back = (await bots.until("/readyz", _ready, "ready again", timeout=40)).json()
        assert back["bots"]["ops_probe"]["rooms"]["lobby"]["subscribed"] is True


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
           **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_a_ping_and_apscheduler_stays_quiet(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    project = new_project()
    async with daemon(centrifugo, tmp_path, project=project) as bots:
        await bots.until("/readyz", _ready, "ready", timeout=30)
        before = await bots.metrics()
        assert _value(before, "botkit_connected", bot="ops_probe") == 1
        async with human(centrifugo, project, "lobby", "user_ivy") as ivy:
            await ivy.say("/ping")
            assert [r["text"] for r in await ivy.replies_from("bot_probe", 1)] == ["pong"]
        published = _value(before, "botkit_replies_total", bot="ops_probe",
                           outcome="published") + 1
        # The room may see the reply before the bot has the server API's answer to its publish.
        answer = await bots.until("/metrics", lambda answer: (
            f'botkit_replies_total{{bot="ops_probe",outcome="published"}} {published}'
            in answer.text), "counting the reply", timeout=5)
        assert answer.headers["content-type"].startswith("text/plain; version=")
        after = await bots.metrics()
        text = (await bots.http.get("/metrics")).text
    for outcome in ("handled", "invalid", "spoofed", "untrusted", "own", "bot", "skipped_old",
                    "error", "timeout"):
        assert ("botkit_envelopes_total", (("bot", "ops_probe"), ("outcome", outcome))) in after
    assert (_value(after, "botkit_envelopes_total", bot="ops_probe", outcome="handled")
            == _value(before, "botkit_envelopes_total", bot="ops_probe", outcome="handled") + 1)
    assert (_value(after, "botkit_replies_total", bot="ops_probe", outcome="published")
            == _value(before, "botkit_replies_total", bot="ops_probe", outcome="published") + 1)
    assert (_value(after, "botkit_handler_seconds_count", bot="ops_probe", handler="ping")
            == _value(before, "botkit_handler_seconds_count", bot="ops_probe",
                      handler="ping") + 1)
    published = sum(_value(after, "botkit_api_requests_total", method=method, outcome="ok")
                    for method in ("publish", "batch"))
    assert published >= 1
    assert _value(after, "botkit_lane_depth", bot="ops_probe") == 0
    assert ("botkit_jobs_total", (("bot", "ops_probe"), ("outcome", "missed"))) in after
    for reason in ("cooldown", "check", "busy"):
        assert ("botkit_handler_refusals_total",
                (("bot", "ops_probe"), ("reason", reason))) in after
    assert ("botkit_questions_total", (("bot", "ops_probe"), ("outcome", "asked"))) in after
    assert _value(after, "botkit_questions_pending", bot="ops_probe") == 0
    assert "user_ivy" not in text
    assert "lobby" not in text
    log = bots.log()
    assert "apscheduler" not in log.lower(), log
    assert "serving 1 room" in log


@pytest.mark.parametrize(("setting", "gen0"), [(None, 10_000), ("0", 700), ("5000", 5000)])
async def test_the_gc_policy_is_applied_once_ready_and_reported(
        centrifugo: LocalCentrifugo, tmp_path: Path, setting: str | None, gen0: int) -> None:
    env = {} if setting is None else {"BOTKIT_GC_GEN0": setting}
    async with daemon(centrifugo, tmp_path, project=new_project(), env=env) as bots:
        await bots.until("/readyz", _ready, "ready", timeout=30)
        samples = await bots.until("/metrics", lambda answer: "botkit_gc_threshold" in answer.text,
                                   "reporting the GC", timeout=5)
        after = {(s.name, tuple(sorted(s.labels.items()))): s.value
                 for family in text_string_to_metric_families(samples.text)
                 for s in family.samples}
        assert _value(after, "botkit_gc_threshold", generation="0") == gen0
        assert _value(after, "botkit_gc_threshold", generation="1") == 10
        log = bots.log()
    assert ("cyclic GC: young-generation threshold 700 -> " in log) == (gen0 != 700), log


async def test_healthz_turns_red_while_a_handler_blocks_the_loop(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    project = new_project()
    async with daemon(centrifugo, tmp_path, project=project) as bots:
        await bots.until("/readyz", _ready, "ready", timeout=30)
        healthy = await bots.http.get("/healthz")
        assert healthy.status_code == 200
        assert healthy.json()["healthy"] is True
        async with human(centrifugo, project, "lobby", "user_ivy") as ivy:
            await ivy.say("/block 4")
            red = await bots.until("/healthz", _not_ready, "unhealthy", timeout=10)
            assert red.json()["healthy"] is False
            assert [r["text"] for r in await ivy.replies_from("bot_probe", 1)] == ["unblocked"]
            await bots.until("/healthz", _ready, "healthy again", timeout=10)


async def test_json_log_lines_name_the_bot_room_and_envelope(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    project = new_project()
    async with daemon(centrifugo, tmp_path, "--log-format", "json", project=project) as bots:
        await bots.until("/readyz", _ready, "ready", timeout=30)
        async with human(centrifugo, project, "lobby", "user_ivy") as ivy:
            ping = await ivy.say("/ping")
            await ivy.replies_from("bot_probe", 1)
            fail = await ivy.say("/fail")
            await ivy.say("/ping")  # handled after /fail: its line is written by then
            await ivy.replies_from("bot_probe", 1)
        lines = [json.loads(line) for line in bots.log().splitlines() if line.startswith("{")]
    logged = next(line for line in lines if line["message"] == "ping from user_ivy")
    assert (logged["bot"], logged["room"], logged["envelope_id"]) == ("ops_probe", "lobby", ping)
    failed = next(line for line in lines if "handler fail failed" in line["message"])
    assert (failed["bot"], failed["room"], failed["envelope_id"]) == ("ops_probe", "lobby", fail)
    assert "RuntimeError" in failed["exception"]
    assert not any(line["logger"].startswith("apscheduler") for line in lines)


async def test_botkit_dev_serves_the_ops_endpoint_too(tmp_path: Path) -> None:
    from tests.support.dev import dev_process, dev_yaml

    config = tmp_path / "bots.yaml"
    config.write_text(dev_yaml(project_id="proj_devops"))
    port = free_port()
    env = {**os.environ, "TEST_KEY": "k" * 32}
    async with dev_process(config, env=env, log=tmp_path / "dev.log",
                           args=("--ops-port", str(port))) as dev:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as http:
            async with asyncio.timeout(20):
                while True:
                    answer = await http.get("/readyz")
                    if answer.status_code == 200:
                        break
                    await asyncio.sleep(0.05)
            assert sorted(answer.json()["bots"]) == ["commands", "welcome"]
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/nowhere")).status_code == 404
        assert await dev.stop() == 0
