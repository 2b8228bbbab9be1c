"""The trust model for envelopes (docs/security.md), through the public harness.

A publication is server-published (``h.publish(data)``: through the server API, nobody
attested) or client-published (``h.publish(data, as_user=...)``, ``h.say``: from a member's
connection, the server attests the member). Members may publish only ``chat.message``,
``typing`` and ``client_safe`` types, as themselves; every other type needs the server API or a
``trusted_senders`` entry of the bot."""

from __future__ import annotations

import logging
import re
from typing import Literal

import pytest

from botkit import Bot, Context, Envelope, Typing, register_envelope
from botkit import envelope as envelope_module
from botkit.config import parse_config
from botkit.errors import ConfigError
from botkit.runtime.trust import DropLog
from botkit.testing import BotHarness

FORGED_JOIN = {"type": "user.joined",
               "userId": "everyone! Claim free coins at http://evil.example"}
MATCH_ENDED = {"type": "match.ended", "matchId": "m1", "winner": "Mallory",
               "scores": {"red": 9, "blue": 0}}


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A private copy of the envelope type registry, so a test can register types freely."""
    monkeypatch.setattr(envelope_module, "_registry", envelope_module._registry.copy())


# -- issue 16.1: members publishing what only the server may say ------------------------------


async def test_a_member_cannot_make_the_welcome_bot_greet_an_invented_user() -> None:
    async with BotHarness.load("bots.welcome", settings={"cooldown_seconds": 0}) as h:
        for index in range(3):  # once per distinct userId, before the trust model
            forged = {**FORGED_JOIN, "userId": f"{FORGED_JOIN['userId']} #{index}"}
            assert (await h.publish(forged, as_user="eve")).texts == []
        # Even naming themselves: who joined is the server's to say (presence), not theirs.
        assert (await h.publish({"type": "user.joined"}, as_user="eve")).texts == []
        assert (h.stats.untrusted, h.stats.spoofed, h.stats.handled) == (4, 0, 0)
        # A real join still greets.
        assert (await h.join("user_ann")).texts == ["Welcome, user_ann!"]


async def test_custom_types_need_the_server_api_or_a_trusted_sender() -> None:
    async with BotHarness.load("bots.announcer", rooms=["arena"]) as h:
        assert (await h.publish(MATCH_ENDED, as_user="mallory")).texts == []
        assert h.stats.untrusted == 1
        # Server-published (the harness's default for publish): the game server's word.
        assert (await h.publish(MATCH_ENDED)).texts == ["🏆 Mallory wins 9-0"]
        # An unregistered type is no different: a member may not publish it either.
        bot_seen = h.stats.handled
        await h.publish({"type": "quiz.answer", "answer": 42}, as_user="mallory")
        assert (h.stats.untrusted, h.stats.handled) == (2, bot_seen)
    async with BotHarness.load("bots.announcer", rooms=["arena"],
                               trusted_senders=["game_server"]) as h:
        assert (await h.publish(MATCH_ENDED, as_user="game_server")).texts == [
            "🏆 Mallory wins 9-0"]
        # Trust covers the trusted user only, and never a senderId the server does not attest.
        assert (await h.publish(MATCH_ENDED, as_user="mallory")).texts == []
        assert (await h.publish({**MATCH_ENDED, "senderId": "game_server"},
                                as_user="mallory")).texts == []
        assert (h.stats.untrusted, h.stats.spoofed) == (1, 1)


async def test_chat_messages_and_typing_from_members_are_taken_as_themselves() -> None:
    bot = Bot("watcher")
    typing: list[str] = []

    @bot.on("typing")
    async def on_typing(ctx: Context, event: Typing) -> None:
        typing.append(event.sender_id)

    @bot.command("ping")
    async def ping(ctx: Context) -> str:
        return "pong"

    async with BotHarness(bot) as h:
        assert (await h.say("/ping", user="alice")).texts == ["pong"]
        assert (await h.publish({"type": "chat.message", "text": "/ping"},
                                as_user="alice")).texts == ["pong"]
        await h.publish({"type": "typing", "isTyping": True}, as_user="bob")
        # Someone else's senderId: spoofed, whatever the type.
        assert (await h.publish({"type": "chat.message", "text": "/ping",
                                 "senderId": "user_admin"}, as_user="eve")).texts == []
        await h.publish({"type": "typing", "senderId": "user_admin"}, as_user="eve")
        assert typing == ["bob"]
        assert (h.stats.spoofed, h.stats.untrusted) == (2, 0)


class Reaction(Envelope):
    type: Literal["reaction.added"] = "reaction.added"
    emoji: str


class Verdict(Envelope):
    type: Literal["quiz.verdict"] = "quiz.verdict"
    correct: bool


@pytest.mark.usefixtures("registry")
async def test_a_type_registered_client_safe_is_taken_from_members() -> None:
    # Registered here, in the test's private registry (module-level classes: handlers'
    # annotations are read from the module).
    assert register_envelope(client_safe=True)(Reaction) is Reaction
    register_envelope(Verdict)
    bot = Bot("reactor")

    @bot.on("reaction.added")
    async def reacted(ctx: Context, event: Reaction) -> None:
        await ctx.reply(f"{event.sender_id} reacted {event.emoji}")

    @bot.on("quiz.verdict")
    async def verdict(ctx: Context, event: Verdict) -> None:
        await ctx.reply(f"correct: {event.correct}")

    async with BotHarness(bot) as h:
        assert (await h.publish({"type": "reaction.added", "emoji": "+1"},
                                as_user="ann")).texts == ["ann reacted +1"]
        assert (await h.publish({"type": "quiz.verdict", "correct": True},
                                as_user="ann")).texts == []
        assert (await h.publish({"type": "quiz.verdict", "correct": True})).texts == [
            "correct: True"]
        assert h.stats.untrusted == 1


async def test_refusals_are_logged_once_per_reason_not_once_per_envelope(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="botkit.runtime")
    async with BotHarness.load("bots.announcer", rooms=["arena"]) as h:
        for _ in range(50):
            await h.publish(MATCH_ENDED, as_user="mallory")
            await h.publish({**MATCH_ENDED, "senderId": "someone"}, as_user="mallory")
            await h.publish({"no": "envelope"}, raw=True, as_user="mallory")
        assert (h.stats.untrusted, h.stats.spoofed, h.stats.invalid) == (50, 50, 50)
    lines = [record.getMessage() for record in caplog.records
             if record.name == "botkit.runtime"]
    assert len(lines) == 3, lines
    untrusted, spoofed, invalid = lines
    assert "user 'mallory' published a 'match.ended' from their own connection" in untrusted
    assert "senderId 'someone' but the server says user 'mallory'" in spoofed
    assert "dropped an invalid envelope in arena" in invalid


def test_the_drop_log_says_how_many_it_left_out() -> None:
    now = [0.0]
    logger = logging.getLogger("tests.drop_log")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    try:
        drops = DropLog("b", logger, interval=60.0, clock=lambda: now[0])
        for second in range(100):
            now[0] = float(second)
            drops.dropped("untrusted", "dropped %s", second)
        drops.dropped("spoofed", "other reason")
    finally:
        logger.removeHandler(handler)
    assert records == [
        "bot b: dropped 0",
        "bot b: dropped 60 (59 more untrusted envelope(s) dropped since the last such line)",
        "bot b: other reason"]


# -- the harness says who published ---------------------------------------------------------


async def test_the_harness_publishes_through_the_server_api_unless_told_a_member_did() -> None:
    bot = Bot("seer")
    seen: list[str] = []

    @bot.on("user.joined")
    async def record(ctx: Context, event: Envelope) -> None:
        seen.append(event.sender_id)

    async with BotHarness(bot, user="carol") as h:
        await h.publish({"type": "user.joined"})  # server-published, as carol
        await h.publish({"type": "user.joined"}, as_user="dave")  # client-published: refused
        await h.publish({"type": "user.joined", "senderId": "erin"}, as_user="erin",
                        attested_user=None)  # server-published with erin as the sender
        assert seen == ["carol", "erin"]
        assert h.stats.untrusted == 1


# -- the welcome bot does not echo what is not an id ------------------------------------------


async def test_the_welcome_bot_echoes_no_implausible_id_or_name() -> None:
    async with BotHarness.load("bots.welcome",
                               settings={"greeting": "Hi {name} ({user})!"}) as h:
        # Even server-published (a careless backend, a misplaced trusted_senders entry).
        assert (await h.publish(FORGED_JOIN)).texts == []
        assert (await h.publish({"type": "user.joined", "userId": "user 2"})).texts == []
        assert (await h.join("user_gus", name="Visit www.evil.example")).texts == [
            "Hi user_gus (user_gus)!"]
        assert (await h.join("user_hal", name="x" * 65)).texts == ["Hi user_hal (user_hal)!"]
        assert (await h.join("user_ivy", name="Ivy")).texts == ["Hi Ivy (user_ivy)!"]


# -- configuration -------------------------------------------------------------------------


CONFIG = """\
xshathra:
  project_id: proj_a
  realtime_url: ws://127.0.0.1:1/ws
  api_url: http://127.0.0.1:1/api
  server_api_key: kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk
bots:
  - name: announcer
    user_id: bot_announcer
    trusted_senders: {senders}
"""


def test_trusted_senders_are_user_ids_with_located_errors() -> None:
    config = parse_config(CONFIG.format(senders="[game_server, referee]"), source="bots.yaml")
    assert config.bots[0].trusted_senders == ["game_server", "referee"]
    assert parse_config(CONFIG.format(senders="[]")).bots[0].trusted_senders == []
    cases = {
        "[game_server, 'a b']": "bots.yaml:9: bots[0].trusted_senders[1]: user id 'a b' may "
                                "contain only ASCII letters",
        "[x, 3]": "bots.yaml:9: bots[0].trusted_senders[1]: expected a string",
        "game_server": "bots.yaml:9: bots[0].trusted_senders: expected a list of user ids",
        "[ref, ref]": "bots.yaml:9: bots[0].trusted_senders[1]: user 'ref' is listed twice",
    }
    for senders, expected in cases.items():
        with pytest.raises(ConfigError) as caught:
            parse_config(CONFIG.format(senders=senders), source="bots.yaml")
        assert str(caught.value).startswith(expected), str(caught.value)
    assert re.search("trusted", str(caught.value))
