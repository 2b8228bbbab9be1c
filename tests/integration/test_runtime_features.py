"""Runtime features against the real server: hooks, sending to other rooms, history, plain
function handlers, filters, middleware, handler timeouts, settings, and presence envelopes."""

from __future__ import annotations

import asyncio
import textwrap

import httpx
import pytest

from botkit.config import parse_config
from botkit.dev.localserver import LocalCentrifugo
from botkit.envelope import utc_now
from botkit.errors import ConfigError
from botkit.runtime.supervisor import load_bots
from botkit.tokens import chat_channel
from botkit.ulid import new_ulid
from tests.plugins import features, greeter, lifecycle
from tests.support.humans import Human, human
from tests.support.runtime_support import bots_yaml, new_project, running
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.server

LIFECYCLE = """\
- name: lifecycle
  plugin: tests.plugins.lifecycle
  user_id: bot_lifecycle
  rooms: [lobby]
"""
FEATURES = """\
- name: features
  plugin: tests.plugins.features
  user_id: bot_features
  rooms: [lobby, ops]
  limits: {handler_timeout: 0.5s}
"""
GREETER = """\
- name: greeter
  plugin: tests.plugins.greeter
  user_id: bot_greeter
  rooms: [lobby]
  settings:
    greeting: "hey {user}!"
    farewell: "so long {user}"
"""


async def texts(person: Human, bot_user: str, count: int, *, timeout: float = 10.0
                ) -> list[str]:
    return [reply["text"] for reply in await person.replies_from(bot_user, count,
                                                                 timeout=timeout)]


async def texts_until(person: Human, bot_user: str, last: str, *, timeout: float = 10.0
                      ) -> list[str]:
    """What ``bot_user`` says until it says ``last`` (included)."""
    got: list[str] = []
    async with asyncio.timeout(timeout):
        while not got or got[-1] != last:
            got += await texts(person, bot_user, 1, timeout=timeout)
    return got


async def test_start_and_stop_hooks_run_and_can_speak(centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    lifecycle.events.clear()
    async with human(centrifugo, project, "lobby", "user_ann") as ann:
        async with running(centrifugo, bots_yaml(centrifugo, LIFECYCLE, project_id=project)):
            assert await texts(ann, "bot_lifecycle", 1) == ["hello from on_start"]
            assert lifecycle.events == ["start room=None event=None", "sync start in thread"]
            await ann.say("/ping")
            assert await texts(ann, "bot_lifecycle", 1) == ["pong"]
        # The runtime has stopped; the goodbye of on_stop was still delivered.
        assert lifecycle.events[-1] == "stop"
        (goodbye,) = await ann.replies_from("bot_lifecycle", 1)
        assert goodbye["text"] == "goodbye from on_stop"
        assert goodbye["roomId"] == "lobby"
        assert "replyTo" not in goodbye


async def test_send_history_sync_handlers_and_filters(centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with (
        running(centrifugo, bots_yaml(centrifugo, FEATURES, project_id=project)),
        human(centrifugo, project, "lobby", "user_bob") as bob,
        human(centrifugo, project, "ops", "user_olga") as olga,
        human(centrifugo, project, "lobby", "user_vip") as vip,
    ):
        # ctx.send into another configured room.
        await bob.say("/relay ops hello from the lobby")
        assert await texts(bob, "bot_features", 1) == ["relayed to ops"]
        (relayed,) = await olga.replies_from("bot_features", 1)
        assert (relayed["text"], relayed["roomId"]) == ("hello from the lobby", "ops")

        # A plain function handler, run in a worker thread.
        await bob.say("/sync it works")
        assert await texts(bob, "bot_features", 1) == ["sync it works (thread)"]

        # Sender filter: bob's /secret is ignored, the VIP's is answered. A room's envelopes
        # are handled in order, so bob's next command is the next thing the bot says.
        await bob.say("/secret")
        await bob.say("/sync after secret")
        assert await texts(bob, "bot_features", 1) == ["sync after secret (thread)"]
        await vip.say("/secret")
        assert await texts(bob, "bot_features", 1) == ["secret for user_vip"]

        # Room filter: the match answers in ops only.
        await bob.say("ops-only in the lobby")
        await olga.say("ops-only here")
        assert await texts(olga, "bot_features", 1) == ["ops matched in ops"]
        await bob.say("/sync after the match")
        assert await texts(bob, "bot_features", 1) == ["sync after the match (thread)"]

        # ctx.history: the room's last envelopes, oldest first (the command itself included).
        await olga.say("one")
        await olga.say("two")
        await olga.say("/history 3")
        assert await texts(olga, "bot_features", 1) == ["one | two | /history 3"]


async def test_middleware_sees_every_call_and_can_stop_one(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    features.middleware_saw.clear()
    features.blocked_ran.clear()
    async with (
        running(centrifugo, bots_yaml(centrifugo, FEATURES, project_id=project)),
        human(centrifugo, project, "lobby", "user_mia") as mia,
    ):
        await mia.say("/blocked please")
        assert await texts(mia, "bot_features", 1) == ["stopped by the middleware"]
        # Two handlers answer "double", three replies: none of them may be lost.
        await mia.say("double")
        assert sorted(await texts(mia, "bot_features", 3)) == [
            "first answer", "second answer", "third answer"]
        await mia.say("just chatting")  # one handler (second_answer), no reply
        await mia.say("/sync done")
        assert await texts(mia, "bot_features", 1) == ["sync done (thread)"]
    assert features.blocked_ran == []
    assert features.middleware_saw == [
        "lobby:/blocked please", "lobby:double", "lobby:double", "lobby:just chatting",
        "lobby:/sync done"]


async def test_slow_handler_times_out_and_the_next_command_is_answered(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with (
        running(centrifugo, bots_yaml(centrifugo, FEATURES, project_id=project)) as runtime,
        human(centrifugo, project, "lobby", "user_sam") as sam,
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        await sam.say("/sleep 5")
        await sam.say("/sleep 0.01")
        assert await texts(sam, "bot_features", 1) == ["woke after 0.01"]
        assert loop.time() - started < 3.0  # the 0.5 s deadline, not the 5 s sleep
        await sam.say("/inner-timeout")
        await sam.say("/sync still here")
        assert await texts(sam, "bot_features", 1) == ["sync still here (thread)"]
        stats = runtime.runners["features"].stats
        assert stats.handler_timeouts == 1
        # A TimeoutError the handler raised itself is an error, not a blown deadline.
        assert stats.handler_errors == 1


async def test_presence_and_published_joins_reach_the_same_handler(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with (
        running(centrifugo, bots_yaml(centrifugo, GREETER, project_id=project)) as runtime,
        human(centrifugo, project, "lobby", "user_bob") as bob,
    ):
        settings = runtime.runners["greeter"].services.settings
        assert isinstance(settings, greeter.GreeterSettings)
        assert settings.greeting == "hey {user}!"
        # A backend announces a join through the server API.
        envelope = {"type": "user.joined", "id": new_ulid(), "roomId": "lobby",
                    "senderId": "backend", "userId": "user_zed",
                    "sentAt": utc_now().isoformat().replace("+00:00", "Z")}
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{centrifugo.api_url}/publish", headers={"X-API-Key": centrifugo.api_key},
                json={"channel": chat_channel(project, "lobby"), "data": envelope})
        assert response.status_code == 200
        assert "error" not in response.json()
        said = await texts_until(bob, "bot_greeter", "hey user_zed!")
        assert set(said) <= {"hey user_bob!", "hey user_zed!"}
        # A user's connection joining and leaving makes user.joined and user.left.
        amy = Human(centrifugo, project, "lobby", "user_amy")
        await amy.enter()
        said = await texts_until(bob, "bot_greeter", "hey user_amy!")
        assert set(said) <= {"hey user_bob!", "hey user_amy!"}
        await amy.leave()
        assert await texts(bob, "bot_greeter", 1) == ["so long user_amy"]


async def test_a_user_id_too_long_for_an_envelope_does_not_stop_the_bots(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with (
        running(centrifugo, bots_yaml(centrifugo, GREETER, project_id=project)) as runtime,
        human(centrifugo, project, "lobby", "user_bob") as bob,
    ):
        async with human(centrifugo, project, "lobby", "user_" + "x" * 200):
            pass
        async with human(centrifugo, project, "lobby", "user_amy"):
            said = await texts_until(bob, "bot_greeter", "hey user_amy!")
        assert set(said) <= {"hey user_bob!", "hey user_amy!"}
        assert not runtime.stop_event.is_set()
        stats = runtime.runners["greeter"].stats
        for _ in range(250):  # its leave may still be on the way
            if stats.invalid >= 2:
                break
            await asyncio.sleep(0.02)
        assert stats.invalid == 2  # its join and its leave


async def test_users_who_left_during_a_disconnect_are_each_seen_off(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with TcpProxy("127.0.0.1", centrifugo.port) as proxy:
        yaml_text = bots_yaml(centrifugo, GREETER, project_id=project,
                              realtime_url=proxy.rewrite(centrifugo.ws_url))
        async with (
            running(centrifugo, yaml_text) as runtime,
            human(centrifugo, project, "lobby", "user_bob") as bob,
        ):
            leavers = [Human(centrifugo, project, "lobby", user)
                       for user in ("user_amy", "user_cid")]
            for person in leavers:
                await person.enter()
            await texts_until(bob, "bot_greeter", "hey user_cid!")
            # The bot drops out; both users leave while it can't see it.
            proxy.refuse(True)
            assert await proxy.cut() == 1
            for person in leavers:
                await person.leave()
            await _wait_for_presence(centrifugo, project, {"user_bob"})
            proxy.refuse(False)
            # Back, the bot compares presence and sees both off, once each.
            farewells = await texts(bob, "bot_greeter", 2, timeout=15)
            assert sorted(farewells) == ["so long user_amy", "so long user_cid"]
            assert runtime.runners["greeter"].client.reconnects == 1


async def _wait_for_presence(server: LocalCentrifugo, project: str, users: set[str]) -> None:
    async with httpx.AsyncClient() as client, asyncio.timeout(10):
        while True:
            response = await client.post(
                f"{server.api_url}/presence", headers={"X-API-Key": server.api_key},
                json={"channel": chat_channel(project, "lobby")})
            present = {info["user"] for info in response.json()["result"]["presence"].values()}
            if present == users:
                return
            await asyncio.sleep(0.05)


def test_settings_are_validated_with_the_plugin_model() -> None:
    yaml_text = textwrap.dedent("""\
        xshathra:
          project_id: proj_settings
          realtime_url: ws://127.0.0.1:1/realtime/connection/websocket
          api_url: http://127.0.0.1:1/api/realtime
          server_api_key: ${TEST_KEY}
        bots:
          - name: greeter
            plugin: tests.plugins.greeter
            user_id: bot_greeter
            rooms: [lobby]
            settings:
              greeting: "hi {user}"
              max_greetings: 0
        """)
    config = parse_config(yaml_text, source="bots.yaml", environ={"TEST_KEY": "k" * 32})
    with pytest.raises(ConfigError) as caught:
        load_bots(config)
    error = caught.value
    assert error.path == "bots.yaml"
    assert error.line == 13  # the line of max_greetings
    assert "bots[0].settings.max_greetings" in str(error)
    assert "must be at least 1" in str(error)

    typo = yaml_text.replace("max_greetings: 0", "greting: oops")
    config = parse_config(typo, source="bots.yaml", environ={"TEST_KEY": "k" * 32})
    with pytest.raises(ConfigError, match=r"bots.yaml:13: bots\[0\].settings.greting"):
        load_bots(config)

    valid = yaml_text.replace("max_greetings: 0", "max_greetings: 3")
    config = parse_config(valid, source="bots.yaml", environ={"TEST_KEY": "k" * 32})
    (loaded,) = load_bots(config)
    assert loaded.settings == greeter.GreeterSettings(greeting="hi {user}", max_greetings=3)
