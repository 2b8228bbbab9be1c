"""Replies that don't wait (issue 14) and outbound flood control (issue 15), against Centrifugo
and the hub: a real runtime with the ``tests.plugins.outbox`` bot, people in its rooms, and the
server API behind an HTTP fault proxy where the test needs one.

What is checked is what people in the room see: every reply once, in the order the handler
made them, at the room's configured rate, while other rooms are answered at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from botkit import Bot
from botkit.context import BotServices
from botkit.dev.localserver import LocalCentrifugo
from botkit.envelope import chat_message, envelope_to_dict
from botkit.runtime.outbox import Outboxes, RoomLimits
from botkit.serverapi.client import ServerApi
from botkit.tokens import chat_channel
from tests.plugins import outbox as plugin
from tests.support.botkit_run import Replies, botkit_run
from tests.support.http_fault import Fault, FaultProxy, for_method
from tests.support.humans import human
from tests.support.runtime_support import bots_yaml, new_project, running
from tests.support.waits import eventually

pytestmark = pytest.mark.server

BOT_USER = "bot_outbox"


def _config(server: LocalCentrifugo, project: str, limits: str, *,
            api_url: str | None = None, rooms: str = "[room_a, room_b]") -> str:
    text = bots_yaml(server, textwrap.dedent(f"""\
        - name: outbox
          plugin: tests.plugins.outbox
          user_id: {BOT_USER}
          rooms: {rooms}
          limits: {limits}
        """), project_id=project)
    if api_url is not None:
        text = text.replace(f"api_url: {server.api_url}", f"api_url: {api_url}")
    return text


@pytest.fixture
async def proxy(centrifugo: LocalCentrifugo) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(centrifugo.api_url) as fault_proxy:
        yield fault_proxy


@pytest.fixture(autouse=True)
def _fresh_plugin() -> None:
    plugin.failures.clear()
    plugin.failed.clear()


async def test_a_burst_of_5000_is_answered_in_handler_order(make_centrifugo: Any) -> None:
    burst = 5000
    server = make_centrifugo(history_size=2 * burst + 100)
    project = new_project()
    commands = [chat_message(room_id="room_a", sender_id="user_ann", text=f"/echo {n}")
                for n in range(burst)]
    config = _config(server, project, "{room_rate: off}", rooms="[room_a]")
    async with running(server, config) as runtime, \
            human(server, project, "room_a", "user_ann") as ann:
        async with ServerApi(server.api_url, server.api_key) as api:
            channel = chat_channel(project, "room_a")
            for start in range(0, burst, 500):
                await api.batch([{"publish": {"channel": channel,
                                              "data": envelope_to_dict(command)}}
                                 for command in commands[start:start + 500]])
        replies = await ann.replies_from(BOT_USER, burst, timeout=90)
        assert [reply["text"] for reply in replies] == [str(n) for n in range(burst)]
        assert [reply["replyTo"] for reply in replies] == [command.id for command in commands]
        assert await ann.quiet_from(BOT_USER, 0.5) == []
        services = runtime.runners["outbox"].services
        await eventually(lambda: services.replies_sent == burst, "every reply counted as sent")
        assert services.replies_failed == 0


async def test_a_publish_outage_of_3s_loses_and_reorders_nothing(
        centrifugo: LocalCentrifugo, proxy: FaultProxy) -> None:
    project = new_project()
    config = _config(centrifugo, project, "{room_rate: off}",
                     api_url=proxy.proxied(centrifugo.api_url))
    async with running(centrifugo, config) as runtime, \
            human(centrifugo, project, "room_a", "user_ann") as ann:
        proxy.outage(3.0, match=for_method("publish", "batch"))
        started = time.monotonic()
        for n in range(40):
            await ann.say(f"/echo {n}")
            await asyncio.sleep(0.05)
        replies = await ann.replies_from(BOT_USER, 40, timeout=30)
        assert time.monotonic() - started >= 2.9  # nothing got through the outage
        assert [reply["text"] for reply in replies] == [str(n) for n in range(40)]
        assert await ann.quiet_from(BOT_USER, 1.0) == []  # and nothing twice
        services = runtime.runners["outbox"].services
        await eventually(lambda: services.replies_sent == 40, "every reply counted as sent")
        assert services.replies_failed == 0
        assert runtime.runners["outbox"].stats.handled == 40


async def test_replies_put_in_one_turn_of_the_loop_share_one_request(
        centrifugo: LocalCentrifugo) -> None:
    # Three handlers of one read answer in three rooms: one request carries the three
    # replies (each alone cost a request: bench/ S13), each room's order untouched.
    project = new_project()
    rooms = ["room_a", "room_b", "room_c"]
    async with ServerApi(centrifugo.api_url, centrifugo.api_key) as api, \
            human(centrifugo, project, "room_c", "user_ann") as ann:
        outboxes = Outboxes(api)
        services = BotServices(name="outbox", user_id=BOT_USER, project_id=project,
                               bot=Bot("outbox"), settings=None, api=api, channels={})
        outbox = outboxes.for_bot(services, RoomLimits(None, 10, 100, 10.0), None)
        dispatcher = asyncio.create_task(outboxes.run())
        stats = api.stats

        def counts() -> tuple[int, int, int]:
            return stats.publish_requests, stats.publish_batches, stats.batched_publishes

        async def put(room: str, text: str) -> None:
            await outbox.put(room, chat_channel(project, room), chat_message(
                room_id=room, sender_id=BOT_USER, text=text), None, essential=True, wait=False)

        try:
            await put("room_a", "first")  # the dispatcher running, a connection open
            await eventually(lambda: services.replies_sent == 1, "the first reply sent")
            before = counts()
            for n in range(2):
                for room in rooms:  # nothing here gives the loop a turn
                    await put(room, f"{room} {n}")
            await eventually(lambda: services.replies_sent == 7, "the six replies sent")
            after = counts()
        finally:
            outboxes.close()
            await asyncio.wait_for(dispatcher, 10)
        assert tuple(b - a for a, b in zip(before, after, strict=True)) == (0, 1, 6)
        replies = await ann.replies_from(BOT_USER, 2, timeout=10)
        assert [reply["text"] for reply in replies] == ["room_c 0", "room_c 1"]


REFUSED = Fault(forward=False, status=200,
                body=b'{"error":{"code":102,"message":"unknown channel"}}')


async def test_a_refused_reply_is_reported_once_and_the_room_goes_on(
        centrifugo: LocalCentrifugo, proxy: FaultProxy,
        caplog: pytest.LogCaptureFixture) -> None:
    project = new_project()
    config = _config(centrifugo, project, "{room_rate: off}",
                     api_url=proxy.proxied(centrifugo.api_url))
    async with running(centrifugo, config) as runtime, \
            human(centrifugo, project, "room_a", "user_ann") as ann:
        proxy.inject(REFUSED, match=for_method("publish", "batch"))
        caplog.set_level(logging.ERROR, logger="botkit.runtime")
        doomed = await ann.say("/echo doomed")
        async with asyncio.timeout(10):
            await plugin.failed.wait()
        await ann.say("/echo after")
        (reply,) = await ann.replies_from(BOT_USER, 1, timeout=10)
        assert reply["text"] == "after"
        (failure,) = plugin.failures
        assert (failure.room, failure.envelope.reply_to) == ("room_a", doomed)
        assert getattr(failure.error, "code", None) == 102
        assert failure.idempotency_key == f"outbox:{doomed}:1"
        lines = [r.getMessage() for r in caplog.records if "was not published" in r.getMessage()]
        assert len(lines) == 1, lines
        assert "code 102" in lines[0]
        services = runtime.runners["outbox"].services
        # The person may read the reply before the bot reads the server's confirmation.
        await eventually(lambda: services.replies_sent == 1, "the reply counted as sent")
        assert services.replies_failed == 1
        # Asked with wait=True, the handler gets the error itself (and no hook runs).
        proxy.inject(REFUSED, match=for_method("publish", "batch"))
        await ann.say("/confirmed hello")
        (reply,) = await ann.replies_from(BOT_USER, 1, timeout=10)
        assert reply["text"] == "not sent: ApiReplyError 102"
        assert len(plugin.failures) == 1
        assert services.replies_failed == 2


async def test_a_rate_limited_room_is_paced_in_order_and_delays_no_other(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    config = _config(centrifugo, project, "{room_rate: 5/s, room_burst: 10}")
    async with running(centrifugo, config), \
            human(centrifugo, project, "room_a", "user_ann") as ann, \
            human(centrifugo, project, "room_b", "user_bea") as bea:
        await ann.say("/many 100")
        arrivals: list[float] = []
        texts: list[str] = []
        first = await ann.replies_from(BOT_USER, 10, timeout=10)  # the burst, at once
        start = time.monotonic()
        texts += [reply["text"] for reply in first]
        # Room B is answered at once while room A's replies trickle.
        asked = time.monotonic()
        await bea.say("/ping")
        (pong,) = await bea.replies_from(BOT_USER, 1, timeout=5)
        latency = time.monotonic() - asked
        assert pong["text"] == "pong"
        assert latency < 0.2, f"room B waited {latency:.3f}s behind room A's flood"
        for _ in range(90):
            (reply,) = await ann.replies_from(BOT_USER, 1, timeout=5)
            arrivals.append(time.monotonic() - start)
            texts.append(reply["text"])
        assert texts == [f"m{n}" for n in range(100)]
        # 90 more at 5/s: 18 s (allowing for the scheduler's and the network's jitter).
        assert 16.5 <= arrivals[-1] <= 22.0, arrivals[-1]
        for index in range(10, 90):
            window = arrivals[index] - arrivals[index - 10]
            assert window >= 1.6, f"replies {index - 10}..{index} came {window:.2f}s apart"


async def test_a_full_outbox_drops_the_oldest_non_essential_messages(
        centrifugo: LocalCentrifugo, caplog: pytest.LogCaptureFixture) -> None:
    project = new_project()
    config = _config(centrifugo, project, "{room_rate: 1/s, room_burst: 1, outbox_size: 2}")
    async with running(centrifugo, config) as runtime, \
            human(centrifugo, project, "room_a", "user_ann") as ann:
        # "start" takes the burst; the typing events then queue (one a second), and each one
        # past the bound of 2 drops the oldest; "end" (essential) drops one more, never itself.
        await ann.say("/typing 5")
        seen = await ann.replies_from(BOT_USER, 3, timeout=10)
        assert [(m["type"], m.get("text") or m["id"]) for m in seen] == [
            ("chat.message", "start"), ("typing", "typing-4"), ("chat.message", "end")]
        assert await ann.quiet_from(BOT_USER, 1.2) == []
        services = runtime.runners["outbox"].services
        assert services.replies_dropped == 4
        warnings = [r for r in caplog.records if "dropping its oldest" in r.getMessage()]
        assert len(warnings) == 1  # at most one a room every 10 s; each drop is counted


async def test_sigterm_sends_the_pending_replies_within_grace(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    project = new_project()
    config = tmp_path / "bots.yaml"
    config.write_text(_config(centrifugo, project, "{room_rate: 10/s, room_burst: 1}"))
    async with human(centrifugo, project, "room_a", "user_ann") as ann, \
            botkit_run(config, centrifugo.api_key, grace="10s") as run:
        await run.serving("outbox")
        replies = Replies(ann, BOT_USER)
        await ann.say("/many 30")
        await replies.count(1, timeout=10)
        assert await run.stop(signal.SIGTERM) == 0
        await replies.count(30, timeout=5)
        assert replies.texts() == [f"m{n}" for n in range(30)]
        assert run.count("not published") == run.count("unsent") == 0, run.log()


async def test_a_crash_with_replies_queued_loses_none(
        centrifugo: LocalCentrifugo, proxy: FaultProxy, tmp_path: Path) -> None:
    # The publish API is down, so the replies wait in the outbox while the lane moves on and
    # the positions' writer runs. A SIGKILL then must not lose them: the stored position stays
    # behind the envelopes whose replies were not out, which the next run handles again.
    project = new_project()
    state = tmp_path / "state.sqlite"
    down = tmp_path / "down.yaml"
    up = tmp_path / "up.yaml"
    config = _config(centrifugo, project, "{room_rate: off}", rooms="[room_a]")
    config = config.replace("state: {backend: memory}",
                            f"state: {{backend: sqlite, path: {state}}}")
    up.write_text(config)
    down.write_text(config.replace(f"api_url: {centrifugo.api_url}",
                                   f"api_url: {proxy.proxied(centrifugo.api_url)}"))
    async with human(centrifugo, project, "room_a", "user_ann") as ann:
        replies = Replies(ann, BOT_USER)
        async with botkit_run(down, centrifugo.api_key) as first:
            await first.serving("outbox")
            proxy.outage(60.0, match=for_method("publish", "batch"))
            for n in range(10):
                await ann.say(f"/echo {n}")
            await first.wait_for("their rooms retry")  # handled, the replies queued
            await asyncio.sleep(2.5)  # past the positions' flush interval (1 s), twice
            assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
        assert replies.seen == []
        async with botkit_run(up, centrifugo.api_key) as second:
            await second.serving("outbox")
            await replies.count(10, timeout=20)
            await replies.settle(1.0)
            assert await second.stop(signal.SIGTERM) == 0
    assert replies.texts() == [str(n) for n in range(10)]
