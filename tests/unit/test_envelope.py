"""Envelopes: parsing each type, the wire shape, refusals with useful reasons, hostile input."""

from __future__ import annotations

import contextlib
import json
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ValidationError

import botkit.envelope as envelope_module
from botkit.envelope import (
    DEFAULT_MAX_TEXT_LENGTH,
    ChatMessage,
    Envelope,
    Typing,
    UserJoined,
    UserLeft,
    chat_message,
    envelope_to_dict,
    envelope_type_for,
    format_timestamp,
    parse_envelope,
    register_envelope,
    utc_now,
)
from botkit.errors import EnvelopeError
from botkit.ulid import is_ulid, ulid_timestamp

SEED: dict[str, Any] = {
    "type": "chat.message",
    "id": "01HZX3Q8W2J5K7M9N1P3R5T7V9",
    "roomId": "room_abc123",
    "senderId": "user_01HABC",
    "text": "hello",
    "sentAt": "2026-03-24T12:00:00.000Z",
}
SENT_AT = datetime(2026, 3, 24, 12, tzinfo=UTC)
NON_STRING_KEY: dict[Any, Any] = {**SEED, 1: "x"}  # only a dict built in Python can have one
WIRE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def seed(**changes: Any) -> dict[str, Any]:
    """The seed envelope with fields changed; a value of ... removes the field."""
    data = {**SEED, **changes}
    return {key: value for key, value in data.items() if value is not ...}


def as_inputs(data: dict[str, Any]) -> list[object]:
    """The same envelope as each accepted input form."""
    text = json.dumps(data)
    return [data, text, text.encode(), bytearray(text.encode()),
            json.dumps(data, separators=(",", ":"))]


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A private copy of the type registry, so tests can register types freely."""
    monkeypatch.setattr(envelope_module, "_registry", envelope_module._registry.copy())


# --- valid envelopes ------------------------------------------------------------------------

@pytest.mark.parametrize("form", range(5))
def test_chat_message(form: int) -> None:
    envelope = parse_envelope(as_inputs(SEED)[form])
    assert type(envelope) is ChatMessage
    assert envelope.type == "chat.message"
    assert envelope.id == SEED["id"]
    assert envelope.room_id == "room_abc123"
    assert envelope.sender_id == "user_01HABC"
    assert envelope.text == "hello"
    assert envelope.reply_to is None
    assert envelope.sent_at == SENT_AT
    assert envelope.sent_at.tzinfo is UTC
    assert envelope.model_extra == {}


def test_reply_to() -> None:
    envelope = parse_envelope(seed(replyTo="01HZX3Q8W2J5K7M9N1P3R5T7V8"))
    assert isinstance(envelope, ChatMessage)
    assert envelope.reply_to == "01HZX3Q8W2J5K7M9N1P3R5T7V8"


@pytest.mark.parametrize("form", range(5))
def test_user_joined_and_left(form: int) -> None:
    joined = parse_envelope(as_inputs(seed(type="user.joined", text=..., userId="user_02",
                                           name="Ann"))[form])
    assert isinstance(joined, UserJoined)
    assert (joined.user_id, joined.name) == ("user_02", "Ann")
    left = parse_envelope(as_inputs(seed(type="user.left", text=...))[form])
    assert isinstance(left, UserLeft)
    # Without a userId the sender is the one who left.
    assert (left.user_id, left.name) == ("user_01HABC", None)


@pytest.mark.parametrize("form", range(5))
def test_typing(form: int) -> None:
    stopped = parse_envelope(as_inputs(seed(type="typing", text=..., isTyping=False))[form])
    assert isinstance(stopped, Typing)
    assert stopped.is_typing is False
    started = parse_envelope(as_inputs(seed(type="typing", text=...))[form])
    assert isinstance(started, Typing)
    assert started.is_typing is True


def test_snake_case_keys_are_accepted() -> None:
    data = {"type": "chat.message", "id": "m1", "room_id": "r", "sender_id": "u", "text": "t",
            "sent_at": "2026-03-24T12:00:00Z", "reply_to": "m0"}
    envelope = parse_envelope(data)
    assert isinstance(envelope, ChatMessage)
    assert (envelope.room_id, envelope.sender_id, envelope.reply_to) == ("r", "u", "m0")
    assert envelope.model_extra == {}


@pytest.mark.parametrize("form", range(5))
def test_unknown_type_is_a_generic_envelope_keeping_its_fields(form: int) -> None:
    data = seed(type="quiz.started", text=..., players=["a", "b"], round={"n": 1})
    envelope = parse_envelope(as_inputs(data)[form])
    assert type(envelope) is Envelope
    assert envelope.type == "quiz.started"
    assert envelope.model_extra == {"players": ["a", "b"], "round": {"n": 1}}
    assert envelope_to_dict(envelope) == data


def test_sent_at_is_normalized_to_utc_milliseconds() -> None:
    envelope = parse_envelope(seed(sentAt="2026-03-24T14:00:00.123456+02:00"))
    assert envelope.sent_at == datetime(2026, 3, 24, 12, 0, 0, 123000, tzinfo=UTC)
    assert envelope.sent_at.tzinfo is UTC


@pytest.mark.parametrize(("sent_at", "microsecond"), [
    ("2026-03-24T12:00:00.123Z", 123000),
    ("2026-03-24T12:00:00.123456Z", 123000),  # already UTC, still cut to milliseconds
    ("2026-03-24T12:00:00.999999+00:00", 999000),
    ("2026-03-24T12:00:00-00:00", 0),
])
def test_utc_sent_at_is_cut_to_milliseconds(sent_at: str, microsecond: int) -> None:
    envelope = parse_envelope(seed(sentAt=sent_at))
    assert envelope.sent_at == datetime(2026, 3, 24, 12, 0, 0, microsecond, tzinfo=UTC)
    assert envelope.sent_at.tzinfo is UTC


def test_envelopes_are_frozen() -> None:
    envelope = parse_envelope(SEED)
    assert isinstance(envelope, ChatMessage)
    with pytest.raises(ValidationError):
        envelope.text = "changed"
    with pytest.raises(ValidationError):
        envelope.sent_at = SENT_AT


# --- the wire shape -------------------------------------------------------------------------

ROUND_TRIP_CASES = [
    seed(),
    seed(replyTo="m0", text="ünïcødé ✓ 😀"),
    seed(type="user.joined", text=..., userId="user_02", name="Ann"),
    seed(type="user.left", text=..., userId="user_02"),
    seed(type="typing", text=..., isTyping=False),
    seed(type="quiz.started", text=..., score=[1, 2.5, None, True], meta={"a": {"b": "c"}}),
]


@pytest.mark.parametrize("data", ROUND_TRIP_CASES, ids=lambda d: d["type"])
def test_round_trip(data: dict[str, Any]) -> None:
    envelope = parse_envelope(data)
    wire = envelope_to_dict(envelope)
    assert wire == envelope.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert None not in wire.values()
    # by alias without being told
    assert wire == envelope.model_dump(mode="json", exclude_none=True)
    aliases = {field.alias for name, field in type(envelope).model_fields.items()
               if getattr(envelope, name) is not None}
    assert {"roomId", "senderId", "sentAt"} <= aliases <= wire.keys()
    assert not any("_" in key for key in wire)  # no case has snake_case extras
    assert WIRE_TIME.fullmatch(wire["sentAt"])
    assert parse_envelope(wire) == envelope
    assert parse_envelope(json.dumps(wire)) == envelope
    assert parse_envelope(envelope.model_dump_json()) == envelope


def test_camel_case_keys_of_typed_models() -> None:
    wire = envelope_to_dict(parse_envelope(seed(replyTo="m0")))
    assert list(wire) == ["type", "id", "roomId", "senderId", "sentAt", "text", "replyTo"]
    typing_wire = envelope_to_dict(parse_envelope(seed(type="typing", text=...)))
    assert typing_wire["isTyping"] is True
    joined_wire = envelope_to_dict(parse_envelope(seed(type="user.joined", text=...)))
    assert joined_wire["userId"] == "user_01HABC"


@pytest.mark.parametrize(("moment", "expected"), [
    (datetime(2026, 3, 24, 12, tzinfo=UTC), "2026-03-24T12:00:00.000Z"),
    (datetime(2026, 3, 24, 12, 0, 1, 999999, tzinfo=UTC), "2026-03-24T12:00:01.999Z"),
    (datetime(2026, 3, 24, 9, 30, tzinfo=timezone(timedelta(hours=-2, minutes=-30))),
     "2026-03-24T12:00:00.000Z"),
    (datetime(999, 1, 2, 3, 4, 5, 6000, tzinfo=UTC), "0999-01-02T03:04:05.006Z"),
])
def test_format_timestamp(moment: datetime, expected: str) -> None:
    assert format_timestamp(moment) == expected


def test_utc_now() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    now = utc_now()
    assert now.tzinfo is UTC
    assert now.microsecond % 1000 == 0
    assert before <= now <= datetime.now(UTC)


# --- refusals -------------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "reason"), [
    ([SEED], "not a JSON object (got an array)"),
    ("[1, 2]", "not a JSON object (got an array)"),
    ("null", "not a JSON object (got null)"),
    (42, "not a JSON object (got a number)"),
    (None, "not a JSON object (got null)"),
    ('{"type": "chat.message"', "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    ("", "not valid JSON"),
    ('{"type": "chat.message", "text": "\ud800"}', "not valid JSON"),
    (seed(type=...), "missing field 'type'"),
    (seed(senderId=...), "missing field 'senderId'"),
    (seed(sentAt=...), "missing field 'sentAt'"),
    (seed(text=...), "missing field 'text'"),
    (seed(type=None), "'type' must be a string, not null"),
    (seed(type=["chat.message"]), "'type' must be a string, not an array"),
    (seed(type=""), "'type' must not be empty"),
    (seed(id=""), "'id' must not be empty"),
    (seed(id=7), "'id' must be a string, not a number"),
    (seed(id="x" * 129), "'id' is 129 characters; the limit is 128"),
    (seed(roomId={"a": 1}), "'roomId' must be a string, not an object"),
    (seed(senderId=True), "'senderId' must be a string, not a boolean"),
    (seed(text=5), "'text' must be a string, not a number"),
    (seed(replyTo=""), "'replyTo' must not be empty"),
    (seed(sentAt=1774353600), "'sentAt' must be an ISO 8601 date-time string, not a number"),
    (seed(sentAt="1774353600"), "'sentAt' is not an ISO 8601 date-time: '1774353600'"),
    (seed(sentAt="yesterday"), "'sentAt' is not an ISO 8601 date-time: 'yesterday'"),
    (seed(sentAt="2026-03-24T12:00:00"), "'sentAt' has no timezone"),
    (seed(sentAt="2026-03-24"), "'sentAt' has no timezone"),
    (seed(sentAt="2026-13-24T12:00:00Z"), "'sentAt' is not an ISO 8601 date-time"),
    (seed(sentAt="0001-01-01T00:00:00+01:00"), "'sentAt' is out of range in UTC"),
    (seed(sentAt="2" * 65), "'sentAt' is 65 characters, too long for a date-time"),
    (seed(type="typing", text=..., isTyping="false"), "'isTyping' must be true or false"),
    (seed(type="typing", text=..., isTyping=0), "'isTyping' must be true or false, not a number"),
    (seed(type="user.joined", text=..., userId=""), "'userId' must not be empty"),
    (seed(type="user.joined", text=..., name=3), "'name' must be a string, not a number"),
    (NON_STRING_KEY, "field names must be strings, not a number"),
])
def test_refusals_name_the_problem(data: object, reason: str) -> None:
    inputs = [data]
    if isinstance(data, dict) and all(isinstance(key, str) for key in data):
        inputs += [json.dumps(data), json.dumps(data).encode()]
    for item in inputs:
        with pytest.raises(EnvelopeError) as caught:
            parse_envelope(item)
        assert str(caught.value).startswith(reason), item


def test_only_the_first_problem_is_spelled_out() -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_envelope({"type": "chat.message"})
    assert str(caught.value) == "missing field 'id' (and 4 more)"


def test_a_missing_sender_is_not_reported_twice_for_user_id() -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_envelope(seed(type="user.joined", text=..., senderId=...))
    assert str(caught.value) == "missing field 'senderId'"


def test_validation_errors_are_chained() -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_envelope(seed(senderId=...))
    assert isinstance(caught.value.__cause__, ValidationError)
    with pytest.raises(EnvelopeError) as caught:
        parse_envelope(b"{")
    assert isinstance(caught.value.__cause__, ValueError)


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 3, 24, 12)
    with pytest.raises(EnvelopeError, match="'sentAt' has no timezone"):
        parse_envelope(seed(sentAt=naive))
    with pytest.raises(EnvelopeError, match="'sent_at' has no timezone"):
        chat_message(room_id="r", sender_id="u", text="t", sent_at=naive)
    with pytest.raises(EnvelopeError, match="no timezone"):
        format_timestamp(naive)


def test_datetime_objects_are_accepted_from_python() -> None:
    moment = datetime(2026, 3, 24, 13, tzinfo=timezone(timedelta(hours=1)))
    assert parse_envelope(seed(sentAt=moment)).sent_at == SENT_AT


def test_hostile_values_are_not_echoed_in_full() -> None:
    for bad in (seed(id="A" * 100_000), seed(sentAt="B" * 100_000),
                seed(type="typing", text=..., isTyping="C" * 100_000),
                seed(sentAt="2026-03-24T12:00:00" + "D" * 40),
                seed(type="chat.message", text=10 ** 5000)):
        with pytest.raises(EnvelopeError) as caught:
            parse_envelope(bad)
        assert len(str(caught.value)) < 320
        assert "A" * 50 not in str(caught.value)
    # Quoted values are cut short, with their length.
    with pytest.raises(EnvelopeError) as caught:
        parse_envelope(seed(sentAt="2026-03-24T12:00:00" + "D" * 40))
    assert str(caught.value) == ("'sentAt' is not an ISO 8601 date-time: "
                                 "'2026-03-24T12:00:00DDDDDDDDDDDDDDDDDDDDD'... (59 characters)")


# --- the text limit -------------------------------------------------------------------------

def test_text_limit() -> None:
    assert parse_envelope(seed(text="x" * DEFAULT_MAX_TEXT_LENGTH))
    for item in as_inputs(seed(text="x" * 5001)):
        with pytest.raises(EnvelopeError) as caught:
            parse_envelope(item)
        assert str(caught.value) == "'text' is 5001 characters; the limit is 4000"


def test_text_limit_counts_characters_not_bytes() -> None:
    assert parse_envelope(json.dumps(seed(text="😀" * 4000)).encode())


def test_custom_text_limit() -> None:
    assert parse_envelope(seed(text="12345"), max_text_length=5)
    with pytest.raises(EnvelopeError, match="'text' is 6 characters; the limit is 5"):
        parse_envelope(seed(text="123456"), max_text_length=5)


def test_text_limit_applies_to_any_envelope_with_text() -> None:
    for item in as_inputs(seed(type="quiz.started", text="x" * 11)):
        with pytest.raises(EnvelopeError, match="'text' is 11 characters; the limit is 10"):
            parse_envelope(item, max_text_length=10)
    # A text that is not a string is none of the limit's business on a generic envelope.
    assert parse_envelope(seed(type="quiz.started", text=["x"] * 11), max_text_length=10)


# --- hostile input --------------------------------------------------------------------------

def _hostile_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(14 if depth < 4 else 10)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([-1, 1]) * 10 ** rng.randrange(0, 300)
    if pick == 3:
        return rng.choice([float("nan"), float("inf"), -float("inf"), 1e308, -0.0, 0.5])
    if pick == 4:  # no lone surrogates: JSON text can't carry them, a dict can
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0xD800),
                                       rng.randrange(0xE000, 0x110000), 0, 10, 34, 92]))
                       for _ in range(rng.randrange(0, 40)))
    if pick == 5:
        return rng.choice(["", " ", "x" * rng.randrange(100, 20_000), "chat.message", "typing",
                           "user.joined", "2026-03-24T12:00:00Z", "2026-03-24T12:00:00",
                           "9999-12-31T23:59:59.999999-23:59", "0001-01-01T00:00:00+23:59",
                           "{", '"type":"typing"', "\\u0000"])
    if pick == 6:
        return rng.choice(list(SEED.values()))
    if pick == 7:
        return "01HZX3Q8W2J5K7M9N1P3R5T7V9"
    if pick == 8:
        return rng.randrange(-(2 ** 70), 2 ** 70)
    if pick == 9:
        return rng.random()
    if pick in (10, 11):
        return [_hostile_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {rng.choice(["type", "text", "id", "a", "roomId"]): _hostile_value(rng, depth + 1)
            for _ in range(rng.randrange(0, 4))}


def _hostile_envelope(rng: random.Random) -> dict[str, Any]:
    data = dict(SEED)
    data["type"] = rng.choice(["chat.message", "user.joined", "user.left", "typing",
                               "quiz.started", data["type"]])
    for _ in range(rng.randrange(1, 4)):
        key = rng.choice([*SEED, "replyTo", "userId", "name", "isTyping", "room_id",
                          "sent_at", "extra"])
        if rng.random() < 0.2:
            data.pop(key, None)
        else:
            data[key] = _hostile_value(rng)
    return data


def _outcome(data: object) -> tuple[str, object]:
    """("ok", the model) or ("error", the reason); anything but EnvelopeError fails the test."""
    reason = ""
    try:
        envelope = parse_envelope(data)
    except EnvelopeError as exc:
        reason = str(exc)
    if reason:
        assert len(reason) < 320
        return ("error", reason)
    assert isinstance(envelope, Envelope)
    return ("ok", type(envelope))


def test_fuzz_hostile_envelopes() -> None:
    rng = random.Random(20260324)
    outcomes = set()
    for _ in range(3000):
        data = _hostile_envelope(rng)
        outcome = _outcome(data)
        outcomes.add(outcome[0])
        try:
            text = json.dumps(data)
        except ValueError:  # an int too long for str()
            continue
        # The JSON text takes another path through pydantic; it must agree with the dict.
        assert _outcome(text) == outcome, text[:300]
        assert _outcome(text.encode()) == outcome
    assert outcomes == {"ok", "error"}


def test_fuzz_hostile_json_text() -> None:
    rng = random.Random(7)
    valid = json.dumps(SEED).encode()
    samples: list[object] = [
        b"[" * 100_000, b"{\"a\":" * 50_000, b'{"type":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        b"9" * 10_000, b'{"type":"chat.message","id":' + b"9" * 10_000 + b"}",
        b"NaN", b'{"type": NaN}', b'{"type": Infinity, "id": -Infinity}', "\ud800", "\x00",
        b"\x80\x81", b'{"text":"\xff"}', b"\xef\xbb\xbf" + valid, valid.replace(b"{", b"{ ", 1),
        json.dumps(seed(type="x" * 1_000_000)), b'{"type":"chat.message"' * 1000,
        b'{"type":"chat.message","type":"typing"}', b'{"__proto__":{}}', b"{}", b'""',
    ]
    for _ in range(3000):
        mutated = bytearray(valid)
        for _ in range(rng.randrange(1, 4)):
            position = rng.randrange(len(mutated))
            action = rng.randrange(3)
            if action == 0:
                del mutated[position]
            elif action == 1:
                mutated.insert(position, rng.randrange(256))
            else:
                mutated[position] = rng.choice(b'{}[]",:\\0 9aeZ\xff')
        samples.append(bytes(mutated))
        samples.append(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64))))
    kinds: set[str] = set()
    for sample in samples:
        kinds.add(_outcome(sample)[0])
        if isinstance(sample, bytes):
            with contextlib.suppress(UnicodeDecodeError):
                _outcome(sample.decode())
    # Mutations of a valid envelope must both survive (whitespace) and break (syntax).
    assert kinds == {"ok", "error"}


def test_fuzz_other_python_values() -> None:
    for value in (object(), 3.5, float("nan"), True, (), set(), frozenset(), memoryview(b"{}"),
                  type, ..., [{"type": "chat.message"}]):
        with pytest.raises(EnvelopeError, match="not a JSON object"):
            parse_envelope(value)


# --- the registry ---------------------------------------------------------------------------

@pytest.mark.usefixtures("registry")
def test_register_a_custom_type() -> None:
    @register_envelope
    class QuizStarted(Envelope):
        type: Literal["quiz.started"] = "quiz.started"
        players: list[str]
        best_of: int = 3

    assert envelope_type_for("quiz.started") is QuizStarted
    data = seed(type="quiz.started", text=..., players=["a", "b"], bestOf=5)
    for item in as_inputs(data):
        envelope = parse_envelope(item)
        assert isinstance(envelope, QuizStarted)
        assert (envelope.players, envelope.best_of) == (["a", "b"], 5)
        assert envelope_to_dict(envelope) == data
    with pytest.raises(EnvelopeError, match="'players' must be an array, not a string"):
        parse_envelope(seed(type="quiz.started", players="ab"))
    with pytest.raises(EnvelopeError, match="'players' must be an array, not a string"):
        parse_envelope(json.dumps(seed(type="quiz.started", players="ab")))


class Player(BaseModel):
    name: str
    team: list[Player] = []


@pytest.mark.usefixtures("registry")
def test_register_models_sharing_a_nested_model() -> None:
    # Two registered models that both use one (recursive) model: pydantic must not see its
    # definition twice when the registry builds its one validator for JSON text.
    @register_envelope
    class RoundWon(Envelope):
        type: Literal["round.won"] = "round.won"
        winner: Player

    @register_envelope
    class RoundLost(Envelope):
        type: Literal["round.lost"] = "round.lost"
        loser: Player

    won = seed(type="round.won", text=..., winner={"name": "a", "team": [{"name": "b"}]})
    for item in as_inputs(won):
        envelope = parse_envelope(item)
        assert isinstance(envelope, RoundWon)
        assert envelope.winner.team[0].name == "b"
    lost = parse_envelope(json.dumps(seed(type="round.lost", loser={"name": "c"})))
    assert isinstance(lost, RoundLost)
    with pytest.raises(EnvelopeError, match=re.escape("missing field 'winner.team.0.name'")):
        parse_envelope(json.dumps(seed(type="round.won", winner={"name": "a", "team": [{}]})))


@pytest.mark.usefixtures("registry")
def test_register_several_names_for_one_model() -> None:
    @register_envelope
    class Reaction(Envelope):
        type: Literal["reaction.added", "reaction.removed"]
        emoji: str

    assert envelope_type_for("reaction.added") is Reaction
    assert envelope_type_for("reaction.removed") is Reaction
    removed = parse_envelope(json.dumps(seed(type="reaction.removed", emoji="+1")))
    assert isinstance(removed, Reaction)
    assert removed.type == "reaction.removed"


@pytest.mark.usefixtures("registry")
def test_duplicates_are_refused() -> None:
    class AnotherChat(Envelope):
        type: Literal["chat.message"] = "chat.message"

    with pytest.raises(EnvelopeError, match=re.escape(
            "'chat.message' is already registered by botkit.envelope.ChatMessage")):
        register_envelope(AnotherChat)
    with pytest.raises(EnvelopeError, match="already registered"):
        register_envelope(ChatMessage)
    assert envelope_type_for("chat.message") is ChatMessage


@pytest.mark.usefixtures("registry")
def test_models_without_a_literal_type_are_refused() -> None:
    class Loose(Envelope):
        pass

    class Numbered(Envelope):
        type: Literal[1]  # type: ignore[assignment]

    class Empty(Envelope):
        type: Literal[""] = ""

    for model in (Envelope, Loose, Numbered, Empty):
        with pytest.raises(EnvelopeError, match="Literal"):
            register_envelope(model)
    with pytest.raises(EnvelopeError, match="only Envelope subclasses"):
        register_envelope(dict)  # type: ignore[type-var]


def test_registry_isolation_left_no_trace() -> None:
    # Runs after the registry tests in file order: their registrations were private.
    assert envelope_type_for("quiz.started") is Envelope
    assert type(parse_envelope(seed(type="reaction.added"))) is Envelope


def test_envelope_type_for_builtins() -> None:
    assert envelope_type_for("chat.message") is ChatMessage
    assert envelope_type_for("user.joined") is UserJoined
    assert envelope_type_for("user.left") is UserLeft
    assert envelope_type_for("typing") is Typing
    assert envelope_type_for("nobody.registered.this") is Envelope


# --- building replies -----------------------------------------------------------------------

def test_chat_message_builder() -> None:
    before = utc_now()
    message = chat_message(room_id="room_abc123", sender_id="bot_welcome", text="hi")
    assert isinstance(message, ChatMessage)
    assert is_ulid(message.id)
    assert before <= message.sent_at <= utc_now()
    assert message.sent_at.tzinfo is UTC
    assert abs(ulid_timestamp(message.id) - message.sent_at) < timedelta(seconds=1)
    assert (message.room_id, message.sender_id, message.text) == ("room_abc123", "bot_welcome",
                                                                 "hi")
    assert message.reply_to is None
    # What the builder makes is what other bots will parse.
    assert parse_envelope(envelope_to_dict(message)) == message
    assert parse_envelope(message.model_dump_json()) == message


def test_chat_message_builder_with_everything_given() -> None:
    message = chat_message(room_id="r", sender_id="u", text="re", reply_to="m0", id="m1",
                           sent_at=datetime(2026, 3, 24, 13, tzinfo=timezone(timedelta(hours=1))))
    assert (message.id, message.reply_to, message.sent_at) == ("m1", "m0", SENT_AT)


def test_chat_message_builder_makes_new_ids() -> None:
    ids = [chat_message(room_id="r", sender_id="u", text="t").id for _ in range(100)]
    assert ids == sorted(set(ids))


@pytest.mark.parametrize(("fields", "reason"), [
    ({"text": None}, "the text of a chat message must be a string, not null"),
    ({"text": b"hi"}, "the text of a chat message must be a string, not a bytes object"),
    # The builder's errors name its arguments, not the wire's keys.
    ({"room_id": ""}, "'room_id' must not be empty"),
    ({"sender_id": 5}, "'sender_id' must be a string, not a number"),
    ({"reply_to": "r" * 129}, "'reply_to' is 129 characters; the limit is 128"),
    ({"id": "x" * 200}, "'id' is 200 characters; the limit is 128"),
])
def test_chat_message_builder_refusals(fields: dict[str, Any], reason: str) -> None:
    arguments: dict[str, Any] = {"room_id": "r", "sender_id": "u", "text": "t", **fields}
    with pytest.raises(EnvelopeError) as caught:
        chat_message(**arguments)
    assert str(caught.value) == reason
