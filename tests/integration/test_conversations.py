"""Conversations and manners against the real server (Centrifugo and the hub): a question
that does not hold its room, a cooldown that answers once, a greeting by display name."""

from __future__ import annotations

import asyncio
import re

import pytest

from botkit.conversations import ABANDONED_TEXT
from botkit.dev.localserver import LocalCentrifugo
from tests.support.humans import human
from tests.support.runtime_support import bots_yaml, new_project, running

pytestmark = pytest.mark.server

COMMANDS = """\
- name: commands
  plugin: bots.commands
  user_id: bot_commands
  rooms: [lobby]
"""
WELCOME = """\
- name: welcome
  plugin: bots.welcome
  user_id: bot_welcome
  rooms: [lobby]
  settings: {cooldown_seconds: 0}
"""
QUESTION = re.compile(r"user_ann: what is (\d+) x (\d+)\?")
ROLL = re.compile(r"🎲 1d6: \d = \d")


async def test_a_quiz_waits_for_its_answer_while_the_room_goes_on(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with (
        running(centrifugo, bots_yaml(centrifugo, COMMANDS, project_id=project)) as runtime,
        human(centrifugo, project, "lobby", "user_ann") as ann,
        human(centrifugo, project, "lobby", "user_bob") as bob,
    ):
        quiz_id = await ann.say("/quiz")
        (question,) = await ann.replies_from("bot_commands", 1)
        found = QUESTION.fullmatch(question["text"])
        assert found is not None, question["text"]
        assert question["replyTo"] == quiz_id
        # Ann thinks; Bob's /ping in the same room is answered meanwhile.
        ping_id = await bob.say("/ping")
        _, pong = await bob.replies_from("bot_commands", 2)  # the question, then the pong
        assert pong["text"] == "pong"
        assert pong["replyTo"] == ping_id
        # Ann's answer, then the score, which answers her /quiz.
        await ann.say(str(int(found.group(1)) * int(found.group(2))))
        replies = await ann.replies_from("bot_commands", 2)
        assert replies[0]["text"] == "pong"
        score = replies[1]
        assert score["text"] == "user_ann: right! Your score: 1."
        assert score["replyTo"] == quiz_id
        assert await ann.quiet_from("bot_commands", 0.5) == []
    stats = runtime.runners["commands"].stats
    assert stats.asks == 1
    assert stats.asks_abandoned == 0


async def test_fifty_rolls_in_a_second_get_three_answers_and_one_notice(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with (
        running(centrifugo, bots_yaml(centrifugo, COMMANDS, project_id=project)) as runtime,
        human(centrifugo, project, "lobby", "user_cyd") as cyd,
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(50):
            await cyd.say("/roll")
        assert loop.time() - started < 1.0
        replies = await cyd.replies_from("bot_commands", 4)
        texts = [reply["text"] for reply in replies]
        assert all(ROLL.fullmatch(text) for text in texts[:3]), texts
        assert texts[3] == "Please wait 10s before using /roll again."
        assert await cyd.quiet_from("bot_commands", 1.5) == []
    assert runtime.runners["commands"].stats.cooldowns == 47


async def test_the_welcome_says_the_display_name_of_the_token(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with (
        running(centrifugo, bots_yaml(centrifugo, WELCOME, project_id=project)),
        human(centrifugo, project, "lobby", "user_dee", name="Dee Dee") as dee,
    ):
        (greeting,) = await dee.replies_from("bot_welcome", 1)
        assert greeting["text"] == "Welcome, Dee Dee!"
        async with human(centrifugo, project, "lobby", "user_eli"):
            (greeting,) = await dee.replies_from("bot_welcome", 1)
            assert greeting["text"] == "Welcome, user_eli!"  # no name: the id


async def test_a_question_pending_at_stop_is_abandoned_and_said_once(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with human(centrifugo, project, "lobby", "user_fay") as fay:
        async with running(centrifugo, bots_yaml(centrifugo, COMMANDS,
                                                 project_id=project)) as runtime:
            await fay.say("/quiz")
            await fay.replies_from("bot_commands", 1)
        (notice,) = await fay.replies_from("bot_commands", 1)
        assert notice["text"] == ABANDONED_TEXT.format(user="user_fay")
        assert await fay.quiet_from("bot_commands", 1.0) == []
    assert runtime.runners["commands"].stats.asks_abandoned == 1
