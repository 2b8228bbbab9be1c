"""Bot: decorators, the routing rules of its docstring, one handler call (Invocation), and the
Context a handler answers with. No server: the context publishes into a recording object that
implements ``botkit.context.Publisher``."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from botkit import (
    Bot,
    ChatMessage,
    Context,
    Envelope,
    EnvelopeError,
    PluginError,
    Typing,
    UsageError,
    UserJoined,
)
from botkit._routes import RouteKind
from botkit.bot import Invocation
from botkit.context import BotServices
from botkit.envelope import chat_message, envelope_to_dict, utc_now
from botkit.errors import BotkitError
from botkit.protocol.types import ClientInfo, HistoryResult, Publication, StreamPosition
from botkit.tokens import chat_channel
from botkit.ulid import is_ulid

PROJECT = "proj_test"
LOBBY = chat_channel(PROJECT, "lobby")
OPS = "chat:proj_test:ops_room"  # a room whose channel is configured explicitly
SENT_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@dataclass(frozen=True)
class Published:
    channel: str
    data: dict[str, Any]
    idempotency_key: str | None


class RecordingApi:
    """A ``Publisher`` that keeps what it is given and serves presence and history from lists."""

    def __init__(self) -> None:
        self.published: list[Published] = []
        self.present: dict[str, ClientInfo] = {}
        self.stored: list[Any] = []  # publication data, oldest first
        self.calls: list[tuple[str, str]] = []

    async def publish(self, channel: str, data: Any, *, idempotency_key: str | None = None,
                      tags: Mapping[str, str] | None = None,
                      skip_history: bool = False) -> Any:
        self.published.append(Published(channel, data, idempotency_key))
        return None

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        self.calls.append(("presence", channel))
        return dict(self.present)

    async def history(self, channel: str, *, limit: int, since: Any = None,
                      reverse: bool = False) -> HistoryResult:
        self.calls.append(("history", channel))
        publications = [Publication(channel, data, offset=n + 1)
                        for n, data in enumerate(self.stored)]
        if reverse:
            publications.reverse()
        return HistoryResult(tuple(publications[:limit]),
                             StreamPosition(len(self.stored), "epoch"))

    @property
    def texts(self) -> list[str]:
        return [p.data.get("text") for p in self.published]


def services_for(bot: Bot, api: RecordingApi, *, max_text_length: int = 4000) -> BotServices:
    return BotServices(name="tester", user_id="bot_tester", project_id=PROJECT, bot=bot,
                       settings={"answer": 42}, api=api,
                       channels={"lobby": LOBBY, "ops": OPS},
                       max_text_length=max_text_length)


def said(text: str, *, sender: str = "user_bob", room: str = "lobby") -> ChatMessage:
    return chat_message(room_id=room, sender_id=sender, text=text)


def joined(user: str = "user_bob", room: str = "lobby") -> UserJoined:
    return UserJoined(id=f"join-{user}", room_id=room, sender_id=user, sent_at=utc_now())


def names(invocations: list[Invocation]) -> list[str]:
    return [i.route.fn.__name__ for i in invocations]


async def run_all(bot: Bot, api: RecordingApi, envelope: Envelope, room: str = "lobby"
                  ) -> Context:
    """Route ``envelope`` and call every handler with one context, as the runtime does."""
    ctx = Context(services_for(bot, api), envelope, room)
    for invocation in bot.route(envelope, room):
        await invocation(ctx)
    return ctx


# -- decorators ------------------------------------------------------------------------------

def test_decorators_register_routes_and_return_the_function() -> None:
    bot = Bot("demo")

    async def ping(ctx: Context) -> None:
        pass

    async def roll(ctx: Context, dice: str = "1d6") -> None:
        pass

    async def greet(ctx: Context, event: UserJoined) -> None:
        pass

    async def hello(ctx: Context, found: re.Match[str]) -> None:
        pass

    async def start(ctx: Context) -> None:
        pass

    def stop(ctx: Context) -> None:
        pass

    async def mw(ctx: Context, call_next: Any) -> None:
        await call_next()

    assert bot.command("ping", help="alive?")(ping) is ping
    assert bot.command("roll", aliases=["r", "dice"])(roll) is roll
    assert bot.on("user.joined")(greet) is greet
    assert bot.match(r"hel+o", flags=re.IGNORECASE)(hello) is hello
    assert bot.on_start(start) is start
    assert bot.on_stop(stop) is stop
    assert bot.middleware(mw) is mw

    kinds = [(r.kind, r.name.rsplit(".", 1)[-1]) for r in bot.routes]
    assert kinds == [(RouteKind.COMMAND, "ping"), (RouteKind.COMMAND, "roll"),
                     (RouteKind.EVENT, "greet"), (RouteKind.MATCH, "hello")]
    assert bot.routes[2].event_type == "user.joined"
    pattern = bot.routes[3].pattern
    assert pattern is not None
    assert pattern.search("HELLLO") is not None
    assert [(c.name, c.aliases, c.help, c.usage) for c in bot.commands] == [
        ("ping", (), "alive?", "/ping"), ("roll", ("r", "dice"), "", "/roll [dice]")]
    assert bot.start_hooks == [start]
    assert bot.stop_hooks == [stop]
    assert bot.middlewares == [mw]


def test_command_usage_uses_the_bot_prefix() -> None:
    bot = Bot("bang", prefix="!")

    @bot.command("add")
    async def add(ctx: Context, a: int, b: int = 1) -> None:
        pass

    assert bot.commands[0].usage == "!add <a> [b]"


@pytest.mark.parametrize(("first", "second"), [
    (("ping", ()), ("ping", ())),
    (("roll", ("r",)), ("r", ())),
    (("roll", ()), ("dice", ("roll",))),
    (("roll", ("r",)), ("dice", ("r",))),
])
def test_duplicate_command_names_and_aliases_are_refused(
        first: tuple[str, tuple[str, ...]], second: tuple[str, tuple[str, ...]]) -> None:
    bot = Bot("dup")

    async def one(ctx: Context) -> None:
        pass

    bot.command(first[0], aliases=first[1])(one)
    with pytest.raises(PluginError, match=r"bot dup: command '\w+' is registered twice "
                                          r"\(by .*one\)"):
        bot.command(second[0], aliases=second[1])


@pytest.mark.parametrize("name", ["Ping", "", "two words", "/ping", "x" * 33, "ping!", "é",
                                  123])
def test_invalid_command_names_are_refused(name: Any) -> None:
    bot = Bot("names")
    with pytest.raises(PluginError, match="must be 1-32 lowercase letters"):
        bot.command(name)
    with pytest.raises(PluginError, match="must be 1-32 lowercase letters"):
        bot.command("fine", aliases=[name])
    assert bot.routes == []


def test_valid_command_names() -> None:
    bot = Bot("names")
    for name in ["a", "x" * 32, "do-it", "snake_case", "9lives", "_"]:
        bot.command(name)(lambda ctx: None)
    assert len(bot.commands) == 6


def test_invalid_pattern_and_event_type_are_refused() -> None:
    bot = Bot("bad")
    with pytest.raises(PluginError, match=r"bot bad: invalid pattern '\(unclosed'"):
        bot.match("(unclosed")
    with pytest.raises(PluginError, match="needs an event type"):
        bot.on("")


def test_a_bad_signature_is_refused_with_the_handler_name() -> None:
    bot = Bot("sig")

    async def greet(ctx: Context, event: UserJoined, extra: int) -> None:
        pass

    with pytest.raises(PluginError, match=r"bot sig: handler .*greet: parameter 'extra'"):
        bot.on("user.joined")(greet)
    with pytest.raises(PluginError, match=r"bot sig: command 'g' handler .*<lambda>: it must "
                                          "take the context"):
        bot.command("g")(lambda: None)
    with pytest.raises(PluginError, match="on_start hook"):
        bot.on_start(lambda: None)
    with pytest.raises(PluginError, match="on_stop hook"):
        bot.on_stop(lambda ctx, other: None)
    assert bot.routes == []
    assert bot.commands == []


def test_a_refused_command_does_not_keep_its_name() -> None:
    bot = Bot("retry")
    with pytest.raises(PluginError):
        bot.command("go")(lambda: None)

    @bot.command("go")
    async def go(ctx: Context) -> None:
        pass

    assert [c.name for c in bot.commands] == ["go"]


# -- routing rules ---------------------------------------------------------------------------

def routing_bot() -> Bot:
    bot = Bot("router")

    @bot.command("ping")
    async def ping(ctx: Context) -> None:
        pass

    @bot.on("chat.message")
    async def plain(ctx: Context, event: ChatMessage) -> None:
        pass

    @bot.command("roll", aliases=["r"])
    async def roll(ctx: Context, dice: str = "1d6") -> None:
        pass

    @bot.match(r"hel+o")
    async def hello(ctx: Context, match: re.Match[str]) -> None:
        pass

    @bot.on("*")
    async def observer(ctx: Context, event: Envelope) -> None:
        pass

    @bot.on("user.joined")
    async def greet(ctx: Context, event: UserJoined) -> None:
        pass

    @bot.on("game.move")
    async def move(ctx: Context, event: Envelope) -> None:
        pass

    return bot


def test_a_command_goes_only_to_its_handler_and_observers() -> None:
    bot = routing_bot()
    assert names(bot.route(said("/ping"), "lobby")) == ["ping", "observer"]
    # Text a match handler would like, and an alias, change nothing.
    (roll, observer) = bot.route(said("/R hello 2d6"), "lobby")
    assert roll.route.fn.__name__ == "roll"
    assert roll.command_line is not None
    assert roll.command_line.name == "r"
    assert roll.command_line.rest == "hello 2d6"
    assert roll.match is None
    assert observer.command_line is None


def test_an_unknown_command_is_plain_text() -> None:
    bot = routing_bot()
    assert names(bot.route(said("/unknown hello"), "lobby")) == ["plain", "hello", "observer"]
    other = Bot("other", prefix="!")

    @other.on("chat.message")
    async def text(ctx: Context) -> None:
        pass

    @other.command("ping")
    async def ping(ctx: Context) -> None:
        pass

    # Another bot's command is just text here, and this bot's prefix is its own.
    assert names(other.route(said("/ping"), "lobby")) == ["text"]
    assert names(other.route(said("!ping"), "lobby")) == ["ping"]


def test_plain_text_goes_to_matches_and_handlers_of_its_type() -> None:
    bot = routing_bot()
    invocations = bot.route(said("well helllo there"), "lobby")
    assert names(invocations) == ["plain", "hello", "observer"]
    found = invocations[1].match
    assert found is not None
    assert found.group(0) == "helllo"
    assert names(bot.route(said("nothing to see"), "lobby")) == ["plain", "observer"]


def test_other_envelope_types() -> None:
    bot = routing_bot()
    assert names(bot.route(joined(), "lobby")) == ["observer", "greet"]
    typing = Typing(id="t1", room_id="lobby", sender_id="user_bob", sent_at=utc_now())
    assert names(bot.route(typing, "lobby")) == ["observer"]
    custom = Envelope.model_validate({"type": "game.move", "id": "m1", "roomId": "lobby",
                                      "senderId": "user_bob", "sentAt": "2026-01-01T00:00:00Z",
                                      "move": "e4"})
    assert names(bot.route(custom, "lobby")) == ["observer", "move"]


def test_a_bot_without_matching_handlers_routes_nothing() -> None:
    bot = Bot("quiet")

    @bot.command("ping")
    async def ping(ctx: Context) -> None:
        pass

    assert bot.route(said("hello"), "lobby") == []
    assert bot.route(joined(), "lobby") == []


def test_room_and_sender_filters() -> None:
    bot = Bot("filters")

    @bot.on("chat.message", rooms="lobby")
    async def lobby_only(ctx: Context) -> None:
        pass

    @bot.on("chat.message", rooms=["ops", "dev"], senders={"user_root"})
    async def ops_root(ctx: Context) -> None:
        pass

    @bot.command("admin", senders=["user_root"])
    async def admin(ctx: Context) -> None:
        pass

    @bot.match("deploy", rooms=("ops",))
    async def deploy(ctx: Context) -> None:
        pass

    @bot.on("*", senders="user_bob")
    async def bob_watcher(ctx: Context) -> None:
        pass

    assert names(bot.route(said("hi"), "lobby")) == ["lobby_only", "bob_watcher"]
    assert names(bot.route(said("hi", sender="user_root"), "ops")) == ["ops_root"]
    assert names(bot.route(said("hi", sender="user_root"), "dev")) == ["ops_root"]
    assert names(bot.route(said("deploy now"), "ops")) == ["deploy", "bob_watcher"]
    assert names(bot.route(said("deploy now"), "lobby")) == ["lobby_only", "bob_watcher"]
    assert names(bot.route(said("/admin", sender="user_root"), "lobby")) == ["admin"]
    assert names(bot.route(said("/admin"), "lobby")) == ["bob_watcher"]
    assert names(bot.route(joined("user_bob"), "ops")) == ["bob_watcher"]
    assert names(bot.route(joined("user_eve"), "ops")) == []


def test_help_text() -> None:
    bot = Bot("helper")

    @bot.command("ping", help="check that the bot is alive")
    async def ping(ctx: Context) -> None:
        pass

    @bot.command("roll", aliases=["r"], help="roll dice")
    async def roll(ctx: Context, count: int, sides: int = 6) -> None:
        pass

    @bot.command("quiet")
    async def quiet(ctx: Context) -> None:
        pass

    @bot.on("chat.message")
    async def listen(ctx: Context) -> None:
        pass

    assert bot.help_text() == ("Commands of helper:\n"
                               "/ping — check that the bot is alive\n"
                               "/roll <count> [sides] — roll dice\n"
                               "/quiet")
    described = Bot("described", description="I keep score.")
    assert described.help_text() == "I keep score."


# -- Invocation ------------------------------------------------------------------------------

async def test_async_handler_is_awaited_and_a_plain_function_runs_in_a_thread() -> None:
    bot = Bot("threads")
    seen: list[tuple[str, threading.Thread, Any]] = []

    @bot.command("async")
    async def in_loop(ctx: Context, n: int) -> None:
        await asyncio.sleep(0)
        seen.append(("async", threading.current_thread(), n))

    @bot.command("sync")
    def blocking(ctx: Context, n: int) -> None:
        seen.append(("sync", threading.current_thread(), n))

    api = RecordingApi()
    loop_thread = threading.current_thread()
    await run_all(bot, api, said("/async 1"))
    await run_all(bot, api, said("/sync 2"))
    assert [(kind, n) for kind, _, n in seen] == [("async", 1), ("sync", 2)]
    assert seen[0][1] is loop_thread
    assert seen[1][1] is not loop_thread
    assert api.published == []


async def test_a_returned_string_becomes_a_reply() -> None:
    bot = Bot("returns")

    @bot.command("hi")
    async def hi(ctx: Context) -> str:
        return "hello!"

    @bot.command("sync")
    def sync(ctx: Context, text: str) -> str:
        return text.upper()

    @bot.command("empty")
    async def empty(ctx: Context) -> str:
        return ""

    @bot.command("number")
    async def number(ctx: Context) -> int:
        return 5

    api = RecordingApi()
    await run_all(bot, api, said("/hi"))
    await run_all(bot, api, said("/sync shout this"))
    await run_all(bot, api, said("/empty"))
    await run_all(bot, api, said("/number"))
    assert api.texts == ["hello!", "SHOUT THIS"]


async def test_usage_error_answers_with_the_usage_line() -> None:
    bot = Bot("usage")

    @bot.command("roll", help="roll dice")
    async def roll(ctx: Context, dice: str = "1d6") -> None:
        if dice == "bad":
            raise UsageError("dice look like NdM")
        raise UsageError

    @bot.command("sync")
    def sync(ctx: Context) -> None:
        raise UsageError("from a thread")

    api = RecordingApi()
    await run_all(bot, api, said("/roll bad"))
    await run_all(bot, api, said("/roll"))
    await run_all(bot, api, said("/sync"))
    assert api.texts == ["Usage: /roll [dice] (dice look like NdM)", "Usage: /roll [dice]",
                         "Usage: /sync (from a thread)"]


async def test_bad_arguments_answer_with_usage_and_reason_without_calling() -> None:
    bot = Bot("args")
    calls: list[int] = []

    @bot.command("count")
    async def count(ctx: Context, n: int, step: int = 1) -> None:
        calls.append(n)

    api = RecordingApi()
    await run_all(bot, api, said("/count x"))
    await run_all(bot, api, said("/count"))
    await run_all(bot, api, said("/count 1 2 3"))
    await run_all(bot, api, said("/count 7"))
    assert api.texts == ["Usage: /count <n> [step] (n should be a whole number, got 'x')",
                         "Usage: /count <n> [step] (missing n)",
                         "Usage: /count <n> [step] (too many arguments)"]
    assert calls == [7]
    first = api.published[0].data
    assert first["replyTo"] is not None


async def test_usage_error_outside_a_command_is_a_plugin_error() -> None:
    bot = Bot("misuse")

    @bot.on("chat.message")
    async def listen(ctx: Context) -> None:
        raise UsageError("not a command")

    (invocation,) = bot.route(said("hi"), "lobby")
    ctx = Context(services_for(bot, RecordingApi()), said("hi"), "lobby")
    with pytest.raises(PluginError, match="listen raised UsageError but is not a command"):
        await invocation(ctx)


async def test_handler_errors_propagate_to_the_caller() -> None:
    # The runtime counts and logs them; Invocation must not swallow them.
    bot = Bot("errors")

    @bot.command("boom")
    def boom(ctx: Context) -> None:
        raise RuntimeError("on purpose")

    (invocation,) = bot.route(said("/boom"), "lobby")
    with pytest.raises(RuntimeError, match="on purpose"):
        await invocation(Context(services_for(bot, RecordingApi()), said("/boom"), "lobby"))


async def test_match_and_event_arguments_reach_the_handler() -> None:
    bot = Bot("args")
    got: list[Any] = []

    @bot.match(r"(\d+) apples")
    async def apples(ctx: Context, event: ChatMessage, found: re.Match[str]) -> str:
        got.extend([event, found.group(1), ctx.text, ctx.sender])
        return f"{int(found.group(1)) + 1} apples"

    message = said("I have 3 apples")
    api = RecordingApi()
    await run_all(bot, api, message)
    assert got == [message, "3", "I have 3 apples", "user_bob"]
    assert api.texts == ["4 apples"]


# -- Context ---------------------------------------------------------------------------------

async def test_reply_builds_a_chat_message_from_the_bot() -> None:
    api = RecordingApi()
    cause = said("/ping")
    ctx = Context(services_for(Bot("tester"), api), cause, "lobby")
    before = datetime.now(UTC)
    message = await ctx.reply("pong")
    await ctx.reply("pong again")
    first, second = api.published
    assert first.channel == LOBBY
    data = first.data
    assert set(data) == {"type", "id", "roomId", "senderId", "text", "sentAt", "replyTo"}
    assert data["type"] == "chat.message"
    assert is_ulid(data["id"])
    assert data["roomId"] == "lobby"
    assert data["senderId"] == "bot_tester"
    assert data["replyTo"] == cause.id
    assert data["text"] == "pong"
    assert SENT_AT.fullmatch(data["sentAt"])
    sent = datetime.fromisoformat(data["sentAt"])
    assert before - timedelta(seconds=1) <= sent <= datetime.now(UTC)
    assert data == envelope_to_dict(message)
    assert second.data["id"] != data["id"]
    assert [first.idempotency_key, second.idempotency_key] == [
        f"tester:{cause.id}:1", f"tester:{cause.id}:2"]
    assert ctx.services.replies_sent == 2


async def test_context_properties() -> None:
    api = RecordingApi()
    bot = Bot("tester")
    cause = said("hi there", sender="user_carol")
    ctx = Context(services_for(bot, api), cause, "lobby")
    assert ctx.bot is bot
    assert ctx.settings == {"answer": 42}
    assert ctx.user_id == "bot_tester"
    assert ctx.sender == "user_carol"
    assert ctx.text == "hi there"
    assert ctx.channel == LOBBY
    assert ctx.log.extra == {"bot": "tester", "room": "lobby", "envelope_id": cause.id}
    bare = Context(services_for(bot, api))
    assert (bare.sender, bare.text, bare.channel, bare.room) == (None, None, None, None)
    assert bare.log.extra == {"bot": "tester", "room": "-", "envelope_id": "-"}
    assert Context(services_for(bot, api), joined(), "lobby").text is None


async def test_send_to_other_rooms() -> None:
    api = RecordingApi()
    cause = said("/relay")
    ctx = Context(services_for(Bot("tester"), api), cause, "lobby")
    await ctx.send("ops", "to the configured channel")
    await ctx.send("elsewhere", "to a room by id")
    assert [p.channel for p in api.published] == [OPS, chat_channel(PROJECT, "elsewhere")]
    assert [p.data["roomId"] for p in api.published] == ["ops", "elsewhere"]
    assert [p.data["replyTo"] for p in api.published] == [cause.id, cause.id]
    assert [p.idempotency_key for p in api.published] == [f"tester:{cause.id}:1",
                                                         f"tester:{cause.id}:2"]
    with pytest.raises(BotkitError, match="cannot send to room 'no good'"):
        await ctx.send("no good", "x")
    assert len(api.published) == 2


async def test_send_forces_the_bot_as_sender_and_the_room() -> None:
    api = RecordingApi()
    ctx = Context(services_for(Bot("tester"), api), said("/x"), "lobby")
    spoofed = chat_message(room_id="elsewhere", sender_id="user_admin", text="I am admin")
    await ctx.send("lobby", spoofed)
    await ctx.send("ops", {"type": "game.move", "id": "move-1", "roomId": "nowhere",
                           "senderId": "user_admin", "sender_id": "user_admin",
                           "sentAt": "2026-03-24T12:00:00.000Z", "move": "e4"})
    first, second = (p.data for p in api.published)
    assert (first["senderId"], first["roomId"], first["text"]) == (
        "bot_tester", "lobby", "I am admin")
    assert first["id"] == spoofed.id
    assert second == {"type": "game.move", "id": "move-1", "roomId": "ops",
                      "senderId": "bot_tester", "sentAt": "2026-03-24T12:00:00.000Z",
                      "move": "e4"}


async def test_text_over_the_limit_is_refused() -> None:
    api = RecordingApi()
    ctx = Context(services_for(Bot("tester"), api, max_text_length=10), said("/x"), "lobby")
    await ctx.reply("0123456789")
    with pytest.raises(EnvelopeError, match="reply text is 11 characters; the limit is 10"):
        await ctx.reply("0123456789!")
    with pytest.raises(EnvelopeError, match="'text' is 11 characters; the limit is 10"):
        await ctx.send("lobby", {"type": "chat.message", "id": "m", "text": "0123456789!",
                                 "sentAt": "2026-03-24T12:00:00Z"})
    with pytest.raises(EnvelopeError):
        await ctx.send("lobby", {"type": "chat.message", "text": "no id"})
    assert api.texts == ["0123456789"]


async def test_without_an_event_reply_raises_and_send_has_no_key() -> None:
    api = RecordingApi()
    ctx = Context(services_for(Bot("tester"), api))
    with pytest.raises(BotkitError, match=r"reply\(\) needs a room"):
        await ctx.reply("to whom?")
    message = await ctx.send("lobby", "from a hook")
    assert isinstance(message, ChatMessage)
    assert message.reply_to is None
    (published,) = api.published
    assert published.idempotency_key is None
    assert "replyTo" not in published.data  # unset optionals are left off the wire
    with pytest.raises(BotkitError, match=r"presence\(\) needs a room"):
        await ctx.presence()
    with pytest.raises(BotkitError, match=r"history\(\) needs a room"):
        await ctx.history()


async def test_presence_is_sorted_by_user_and_connection() -> None:
    api = RecordingApi()
    api.present = {c: ClientInfo(user=u, client=c)
                   for u, c in [("user_b", "c3"), ("user_a", "c2"), ("user_a", "c1")]}
    ctx = Context(services_for(Bot("tester"), api), said("/who"), "lobby")
    assert [(i.user, i.client) for i in await ctx.presence()] == [
        ("user_a", "c1"), ("user_a", "c2"), ("user_b", "c3")]
    await ctx.presence("ops")
    assert api.calls == [("presence", LOBBY), ("presence", OPS)]


async def test_history_is_oldest_first_and_skips_invalid_envelopes() -> None:
    api = RecordingApi()
    messages = [said(f"m{n}") for n in range(5)]
    api.stored = [envelope_to_dict(messages[0]), envelope_to_dict(messages[1]),
                  {"not": "an envelope"}, envelope_to_dict(messages[2]),
                  envelope_to_dict(messages[3]), envelope_to_dict(messages[4])]
    ctx = Context(services_for(Bot("tester"), api), said("/history"), "lobby")
    assert [e.text for e in await ctx.history(3)] == ["m2", "m3", "m4"]  # type: ignore[attr-defined]
    # The invalid one takes a slot of the limit but is not returned.
    assert [e.text for e in await ctx.history(4)] == ["m2", "m3", "m4"]  # type: ignore[attr-defined]
    assert [e.id for e in await ctx.history(50)] == [m.id for m in messages]
    assert await ctx.history(0) == []
    assert api.calls == [("history", LOBBY)] * 3


def test_alias_given_as_a_string_is_one_alias() -> None:
    bot = Bot("aliases")

    @bot.command("roll", aliases="r")
    async def roll(ctx: Context) -> None: ...

    assert bot.commands[0].aliases == ("r",)
    assert bot.route(said("/r"), "lobby")[0].route.name.endswith("roll")


def test_a_name_listed_twice_in_one_command_is_refused() -> None:
    bot = Bot("twice")
    with pytest.raises(PluginError, match="lists a name twice"):
        bot.command("roll", aliases=["r", "r"])
