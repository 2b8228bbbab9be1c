"""bots.commands: /help, /ping, /roll NdM, /who and /quiz."""

from __future__ import annotations

import re

import pytest

from botkit.testing import BotHarness
from botkit.testing.pytest_plugin import HarnessFactory

ROLL = re.compile(r"🎲 (\S+): ([\d + ]+) = (\d+)")


@pytest.fixture
async def h(bot_harness: HarnessFactory) -> BotHarness:
    return await bot_harness("bots.commands", user="alice")


async def test_help_lists_every_command(h: BotHarness) -> None:
    assert (await h.say("/help")).text.splitlines() == [
        "Commands of commands:",
        "/help — list the commands",
        "/ping — check that the bot is alive",
        "/roll [dice] — roll dice, e.g. /roll 2d6",
        "/who — who is in this room",
        "/quiz — answer a sum within a minute",
    ]


async def test_ping_answers_the_message(h: BotHarness) -> None:
    replies = await h.say("/ping")
    assert replies.text == "pong"
    assert replies.cause is not None
    assert replies[0].reply_to == replies.cause.id


@pytest.mark.parametrize(("dice", "count", "sides"),
                         [("2d6", 2, 6), ("d20", 1, 20), ("100d2", 100, 2), ("1D1000", 1, 1000)])
async def test_roll_stays_in_range_and_adds_up(h: BotHarness, dice: str, count: int,
                                               sides: int) -> None:
    for _ in range(20):
        await h.advance(seconds=10)  # past the cooldown: 3 rolls per 10 seconds
        found = ROLL.fullmatch((await h.say(f"/roll {dice}")).text)
        assert found is not None
        rolls = [int(value) for value in found.group(2).split(" + ")]
        assert found.group(1) == dice
        assert len(rolls) == count
        assert all(1 <= value <= sides for value in rolls)
        assert int(found.group(3)) == sum(rolls)


async def test_roll_defaults_to_one_six_sided_die(h: BotHarness) -> None:
    found = ROLL.fullmatch((await h.say("/roll")).text)
    assert found is not None
    assert found.group(1) == "1d6"
    assert 1 <= int(found.group(3)) <= 6


@pytest.mark.parametrize(("dice", "reason"), [
    ("2x", "dice look like NdM, e.g. 2d6"),
    ("2d6 extra", "dice look like NdM, e.g. 2d6"),
    ("0d6", "roll 1 to 100 dice of 2 to 1000 sides"),
    ("101d6", "roll 1 to 100 dice of 2 to 1000 sides"),
    ("2d1", "roll 1 to 100 dice of 2 to 1000 sides"),
])
async def test_bad_dice_get_the_usage_line(h: BotHarness, dice: str, reason: str) -> None:
    assert (await h.say(f"/roll {dice}")).text == f"Usage: /roll [dice] ({reason})"


async def test_who_lists_the_users_present(h: BotHarness) -> None:
    h.set_presence("lobby", ["bob", "alice", "alice"])
    assert (await h.say("/who")).text == "In this room: alice, bob, bot_commands"
    await h.join("carol")
    await h.leave("bob")
    assert (await h.say("/who")).text == "In this room: alice, bot_commands, carol"


async def test_other_text_and_unknown_commands_get_no_answer(h: BotHarness) -> None:
    for text in ["hello", "/unknown", "ping", "/ ping"]:
        assert (await h.say(text)).texts == []
    h.assert_no_reply()


async def test_roll_has_a_cooldown_of_three_per_ten_seconds(h: BotHarness) -> None:
    texts = [text for _ in range(50) for text in (await h.say("/roll")).texts]
    assert len(texts) == 4
    assert all(ROLL.fullmatch(text) for text in texts[:3])
    assert texts[3] == "Please wait 10s before using /roll again."
    # Another person rolls meanwhile.
    assert ROLL.fullmatch((await h.say("/roll", user="bob")).text)


QUESTION = re.compile(r"(\w+): what is (\d+) x (\d+)\?")


async def test_quiz_asks_and_scores(h: BotHarness) -> None:
    for expected_score in (1, 2):
        found = QUESTION.fullmatch((await h.say("/quiz")).text)
        assert found is not None
        assert found.group(1) == "alice"
        assert (await h.say("/ping", user="bob")).text == "pong"  # answered meanwhile
        product = int(found.group(2)) * int(found.group(3))
        assert (await h.say(str(product))).text == (
            f"alice: right! Your score: {expected_score}.")
    found = QUESTION.fullmatch((await h.say("/quiz")).text)
    assert found is not None
    assert (await h.say("no idea")).text.startswith("alice: no, it was ")
    await h.say("/quiz")
    assert (await h.advance(seconds=60)).text.startswith("alice: time's up, it was ")
    await h.say("/quiz")
    assert (await h.say("/cancel")).text == "alice: quiz cancelled."
