"""A real bot under faults: a runtime in-process, a human sending commands, and the room's
history read straight from the server to count the bot's replies per command.

The bot is ``tests.plugins.flaky`` (``/echo TEXT`` answers TEXT). Counting is done on the
server's history, through a plain HTTP request that does not go through botkit (whose server API
client may be the thing under fault) nor through any proxy. A retried publish whose first
attempt did land shows twice there unless its idempotency key absorbed the repeat, so "once in
the history" is what a user of the room sees.

Replies of one bot are published in order through one queue, so once the reply to a last
"barrier" command is in the history, no retry of an earlier reply can still be on its way:
:meth:`Room.answered_once` needs no quiet period.
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import httpx

from botkit.config import parse_config
from botkit.dev.localserver import LocalCentrifugo
from botkit.realtime import ConnectionState
from botkit.runtime.core import BotStats
from botkit.runtime.shards import ShardedClient
from botkit.runtime.supervisor import Runtime, load_bots
from botkit.serverapi.client import ServerApi
from botkit.tokens import chat_channel
from tests.support.humans import Human
from tests.support.runtime_support import bots_yaml

__all__ = ["BOT", "BOT_USER", "Room", "bot_yaml", "history", "serve", "until"]

BOT = "flaky"
BOT_USER = "bot_flaky"


def bot_yaml(server: LocalCentrifugo, project: str, rooms: Iterable[str], *,
             realtime_url: str | None = None, api_url: str | None = None,
             rooms_per_connection: int | None = None) -> str:
    """bots.yaml for one echoing bot in ``rooms``, optionally behind proxies."""
    room_list = ", ".join(rooms)
    bot = textwrap.dedent(f"""\
        - name: {BOT}
          plugin: tests.plugins.flaky
          user_id: {BOT_USER}
          rooms: [{room_list}]
        """)
    if rooms_per_connection is not None:
        bot += f"  limits: {{rooms_per_connection: {rooms_per_connection}}}\n"
    text = bots_yaml(server, bot, project_id=project, realtime_url=realtime_url)
    if api_url is not None:
        text = text.replace(f"api_url: {server.api_url}", f"api_url: {api_url}")
    return text


def new_runtime(server: LocalCentrifugo, yaml_text: str, *,
                token_ttl: float | None = None) -> Runtime:
    """A runtime for ``yaml_text``, not started. ``token_ttl`` (seconds) overrides the
    configuration's, below the minute that bots.yaml allows: a test cannot wait for a
    token refresh of a real configuration (48 s at the least)."""
    config = parse_config(yaml_text, source="test-bots.yaml",
                          environ={"TEST_KEY": server.api_key})
    if token_ttl is not None:
        # model_copy does not validate: the bound is for users' files, not for tests.
        xshathra = config.xshathra.model_copy(update={"token_ttl": token_ttl})
        config = config.model_copy(update={"xshathra": xshathra})
    return Runtime(config, load_bots(config), grace=5.0)


@contextlib.asynccontextmanager
async def serve(runtime: Runtime, *, ready_within: float = 15.0) -> AsyncIterator[Runtime]:
    """Run ``runtime`` until the block ends; fail if it is not ready within ``ready_within``
    seconds. The runtime's runners exist from the first await on, so a fault set up before
    may refer to them."""
    task = asyncio.create_task(runtime.run(), name="runtime under test")
    ready = asyncio.ensure_future(runtime.wait_ready())
    try:
        await _until_ready(task, ready, ready_within)
        yield runtime
    except GeneratorExit:
        raise
    except BaseException as exc:
        await _stop(runtime, task, ready)
        error = None if task.cancelled() else task.exception()
        if error is not None and error is not exc:
            exc.add_note(f"meanwhile the runtime ended on an error: {error!r}")
        raise
    await _stop(runtime, task, ready)
    error = None if task.cancelled() else task.exception()
    if error is not None:
        raise AssertionError("the runtime ended on an error") from error


async def _until_ready(task: asyncio.Task[None], ready: asyncio.Future[None],
                       within: float) -> None:
    done, _ = await asyncio.wait([ready, task], timeout=within,
                                 return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
        raise AssertionError("the runtime ended before it was ready")
    if not done:
        raise AssertionError(f"the runtime was not ready within {within:g}s")


async def _stop(runtime: Runtime, task: asyncio.Task[None],
                ready: asyncio.Future[None]) -> None:
    ready.cancel()
    runtime.stop()
    async with asyncio.timeout(20):
        await asyncio.wait([task])


def client_of(runtime: Runtime) -> ShardedClient:
    return runtime.runners[BOT].client


def stats_of(runtime: Runtime) -> BotStats:
    return runtime.runners[BOT].stats


def api_of(runtime: Runtime) -> ServerApi:
    api = runtime.runners[BOT].services.api
    assert isinstance(api, ServerApi)
    return api


def connected(runtime: Runtime) -> Callable[[], bool]:
    return lambda: client_of(runtime).state is ConnectionState.CONNECTED


async def until(condition: Callable[[], bool], *, timeout: float,
                what: str | Callable[[], str]) -> None:
    """Poll ``condition`` (a plain attribute: no event to wait on) until it holds; ``what``
    (or what it returns, at the failure) says what was awaited."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    except TimeoutError:
        said = what if isinstance(what, str) else what()
        raise AssertionError(f"not within {timeout:g}s: {said}") from None


async def history(server: LocalCentrifugo, channel: str) -> list[dict[str, Any]]:
    """Every publication the server keeps in ``channel`` (its ``data``), oldest first."""
    async with httpx.AsyncClient(timeout=5.0) as http:
        response = await http.post(f"{server.api_url}/history",
                                   json={"channel": channel, "limit": -1},
                                   headers={"X-API-Key": server.api_key})
    response.raise_for_status()
    payload = response.json()
    assert "error" not in payload, payload
    publications = payload.get("result", {}).get("publications") or []
    return [pub["data"] for pub in publications if isinstance(pub.get("data"), dict)]


class Room:
    """One room of the bot, with a human in it sending commands."""

    def __init__(self, server: LocalCentrifugo, project: str, room: str, human: Human) -> None:
        self.server = server
        self.channel = chat_channel(project, room)
        self.human = human
        self.sent: dict[str, str] = {}  # envelope id -> the text the bot must echo

    async def command(self, text: str) -> str:
        """Send ``/echo text``; returns the envelope id the reply must name."""
        envelope_id = await self.human.say(f"/echo {text}")
        self.sent[envelope_id] = text
        return envelope_id

    async def replies(self) -> Counter[str]:
        """The bot's replies in the history, counted per envelope id they answer."""
        return Counter(str(data.get("replyTo")) for data in await history(self.server,
                                                                          self.channel)
                       if data.get("senderId") == BOT_USER)

    async def wait_answered(self, envelope_ids: Iterable[str], *, timeout: float) -> None:
        wanted = set(envelope_ids)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    missing = wanted - set(await self.replies())
                    if not missing:
                        return
                    await asyncio.sleep(0.05)
        except TimeoutError:
            texts = sorted(self.sent.get(i, i) for i in missing)
            raise AssertionError(f"the bot did not answer {texts} within {timeout:g}s "
                                 "(it stopped answering)") from None

    async def answered_once(self, *, timeout: float = 15.0) -> None:
        """Every command sent so far answered exactly once, with the right text; checked
        after a last command's answer (see the module's docstring)."""
        barrier = await self.command("barrier")
        await self.wait_answered(self.sent, timeout=timeout)
        replies = [data for data in await history(self.server, self.channel)
                   if data.get("senderId") == BOT_USER]
        counts = Counter(str(data.get("replyTo")) for data in replies)
        twice = {self.sent.get(i, i): n for i, n in counts.items() if n != 1}
        assert not twice, f"answered more than once (text: times): {twice}"
        unknown = set(counts) - set(self.sent)
        assert not unknown, f"replies to commands nobody sent: {unknown}"
        for data in replies:
            assert data.get("text") == self.sent[str(data["replyTo"])], data
        assert counts[barrier] == 1
