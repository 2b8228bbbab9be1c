"""Whatever the server sends, ``receive`` returns events: a frame it cannot use is a counted drop
(or, when it answers a pending command, a MalformedReply). It never raises and never hangs."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from botkit.protocol import (
    ClientProtocol,
    ErrorReply,
    Event,
    Joined,
    MalformedReply,
    Ping,
    ProtocolState,
    Publication,
    Reply,
    ReplyEvent,
    StreamPosition,
)
from tests.protocol.helpers import EPOCH, connected, frame, pub_push, subscribed

MEGABYTE = 2**20


def _ready() -> ClientProtocol:
    """Connected (pong on), ``chat:a`` subscribed at offset 41, nothing queued."""
    protocol = connected()
    subscribed(protocol, "chat:a", offset=41)
    return protocol


def _dropped(protocol: ClientProtocol, text: str) -> str:
    """Feed ``text``; assert it was exactly one drop and no event; return the drop reason."""
    before = protocol.drops.copy()
    assert protocol.receive(text) == []
    delta = protocol.drops - before
    assert sum(delta.values()) == 1, delta
    [reason] = delta
    return reason


# -- framing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n", "\n\n\n", "\n" * MEGABYTE])
def test_empty_message_is_one_drop(text: str) -> None:
    protocol = _ready()
    assert _dropped(protocol, text) == "empty message"


@pytest.mark.parametrize(
    "text",
    ["{", "}", '{"id":', "nul", "{'id': 1}", '{"id":1,}', "\x00", "\ufeff{}", " ", "\t", "\r",
     "{}{}", '{"push":{}} trailing', "NaN-ish", '"unterminated'],
)
def test_invalid_json_is_one_drop(text: str) -> None:
    protocol = _ready()
    assert _dropped(protocol, text) == "invalid JSON"
    assert protocol.data_to_send() == []


def test_empty_lines_between_frames_are_dropped_and_the_rest_is_handled() -> None:
    protocol = _ready()
    events = protocol.receive("\n{}\n\n" + pub_push("chat:a", 42) + "\n   \n{}\n")
    assert events == [Ping(True), Publication("chat:a", {"text": "hi"}, 42), Ping(True)]
    assert protocol.drops == {"invalid JSON": 3}
    assert protocol.data_to_send() == ["{}\n{}"]


def test_whitespace_around_a_frame_is_fine() -> None:
    protocol = _ready()
    assert protocol.receive(" \t{ }\r ") == [Ping(True)]


@pytest.mark.parametrize("text", ["[]", "[{}]", "1", "-1.5", '"s"', "null", "true", "false",
                                  "1e999", "Infinity", "NaN"])
def test_non_object_frame_is_one_drop(text: str) -> None:
    protocol = _ready()
    assert _dropped(protocol, text) == "frame is not an object"


@pytest.mark.parametrize("obj", [{"foo": 1}, {"result": {}}, {"error": {"code": 1}},
                                 {"connect": {}}, {"ping": {}}])
def test_object_that_is_no_reply_push_or_ping_is_one_drop(obj: dict[str, Any]) -> None:
    protocol = _ready()
    assert _dropped(protocol, frame(obj)) == "frame is neither a reply, a push nor a ping"
    assert protocol.data_to_send() == []  # and certainly not answered with a pong


# -- unknown fields are ignored --------------------------------------------------------------


def test_unknown_fields_are_ignored_everywhere() -> None:
    protocol = _ready()
    command_id = protocol.publish("chat:a", 1)
    message = "\n".join([
        frame({"id": command_id, "publish": {"future": [1]}, "flag": 7}),
        frame({"push": {"channel": "chat:a", "id": 9, "extra": {}, "pub": {
            "data": 1, "offset": 42, "key": "k", "removed": False, "score": 1, "epoch": "E",
            "version": 3, "delta": False, "time": 123, "info": {
                "user": "7", "client": "c", "new": None}}}}),
        frame({"push": {"channel": "chat:a", "join": {"info": {"user": "7", "client": "c"},
                                                       "more": 1}}}),
    ])
    events = protocol.receive(message)
    assert [type(e) for e in events] == [Reply, Publication, Joined]
    assert events[0] == Reply(command_id, "publish", {"future": [1]})
    assert protocol.drops == {}


# -- wrong types in every field --------------------------------------------------------------

BAD_PUSHES: list[tuple[Any, str]] = [
    (None, "'push' should be dict"),
    ([], "'push' should be dict"),
    ("pub", "'push' should be dict"),
    ({"channel": 1, "pub": {}}, "'channel' should be str"),
    ({"channel": None, "join": {}}, "'channel' should be str"),
    ({"channel": ["chat:a"], "pub": {}}, "'channel' should be str"),
    ({"channel": "chat:a", "pub": None}, "publication should be an object"),
    ({"channel": "chat:a", "pub": [1]}, "publication should be an object"),
    ({"channel": "chat:a", "pub": {"offset": "42"}}, "'offset' should be int, got str"),
    ({"channel": "chat:a", "pub": {"offset": True}}, "'offset' should be int, got bool"),
    ({"channel": "chat:a", "pub": {"offset": 42.0}}, "'offset' should be int, got float"),
    ({"channel": "chat:a", "pub": {"offset": -42}}, "'offset' is negative"),
    ({"channel": "chat:a", "pub": {"offset": 2**64}}, "'offset' is out of range"),
    ({"channel": "chat:a", "pub": {"offset": 10**4000}}, "'offset' is out of range"),
    ({"channel": "chat:a", "pub": {"offset": None}}, "'offset' should be int, got NoneType"),
    ({"channel": "chat:a", "pub": {"info": "7"}}, "client info should be an object"),
    ({"channel": "chat:a", "pub": {"info": [{}]}}, "client info should be an object"),
    ({"channel": "chat:a", "pub": {"info": {"user": 7}}}, "'user' should be str"),
    ({"channel": "chat:a", "pub": {"info": {"user": {}}}}, "'user' should be str"),
    ({"channel": "chat:a", "pub": {"info": {"client": None}}}, "'client' should be str"),
    ({"channel": "chat:a", "pub": {"tags": []}}, "'tags' should be dict"),
    ({"channel": "chat:a", "pub": {"tags": "k=v"}}, "'tags' should be dict"),
    ({"channel": "chat:a", "pub": {"tags": {"k": 1}}}, "tags should map strings to strings"),
    ({"channel": "chat:a", "pub": {"tags": {"k": None}}}, "tags should map strings to strings"),
    ({"channel": "chat:a", "join": None}, "'join' should be dict"),
    ({"channel": "chat:a", "join": {}}, "client info should be an object"),
    ({"channel": "chat:a", "join": {"info": "7"}}, "client info should be an object"),
    ({"channel": "chat:a", "leave": []}, "'leave' should be dict"),
    ({"channel": "chat:a", "leave": {"info": None}}, "client info should be an object"),
    ({"channel": "chat:a", "leave": {"info": {"user": 1}}}, "'user' should be str"),
    ({"channel": "chat:a", "unsubscribe": "2000"}, "'unsubscribe' should be dict"),
    ({"channel": "chat:a", "unsubscribe": {"code": "2000"}}, "'code' should be int"),
    ({"channel": "chat:a", "unsubscribe": {"code": True}}, "'code' should be int"),
    ({"channel": "chat:a", "unsubscribe": {"code": 2000.5}}, "'code' should be int"),
    ({"channel": "chat:a", "unsubscribe": {"code": 2000, "reason": 1}}, "'reason' should be str"),
    ({"channel": "chat:a", "unsubscribe": {"code": 2600, "reason": {}}},
     "'reason' should be str"),
    ({"channel": "news", "subscribe": []}, "'subscribe' should be dict"),
    ({"channel": "news", "subscribe": {"recoverable": "yes"}}, "'recoverable' should be bool"),
    ({"channel": "news", "subscribe": {"recoverable": 1}}, "'recoverable' should be bool"),
    ({"channel": "news", "subscribe": {"recoverable": True, "offset": -5}}, "is negative"),
    ({"channel": "news", "subscribe": {"recoverable": True, "offset": "5"}},
     "'offset' should be int"),
    ({"channel": "news", "subscribe": {"recoverable": True, "epoch": 5}}, "'epoch' should be str"),
    ({"disconnect": "3001"}, "'disconnect' should be dict"),
    ({"disconnect": {"code": "3001"}}, "'code' should be int"),
    ({"disconnect": {"code": False}}, "'code' should be int"),
    ({"disconnect": {"code": 3001, "reason": ["shutdown"]}}, "'reason' should be str"),
]


@pytest.mark.parametrize(("push", "reason"), BAD_PUSHES)
def test_wrongly_typed_push_is_one_drop_and_changes_nothing(push: Any, reason: str) -> None:
    protocol = _ready()
    before = copy.deepcopy(protocol.subscriptions)
    drop = _dropped(protocol, frame({"push": push}))
    assert reason in drop
    assert protocol.subscriptions == before
    assert protocol.state is ProtocolState.CONNECTED
    # The protocol carries on: the next good frame is handled.
    assert protocol.receive(pub_push("chat:a", 42)) == [Publication("chat:a", {"text": "hi"}, 42)]


BAD_REPLIES: list[tuple[str, Any]] = [
    ("publish", []),
    ("publish", "ok"),
    ("publish", 1),
    ("presence", None),
    ("history", [{"publications": []}]),
]


@pytest.mark.parametrize(("method", "result"), BAD_REPLIES)
def test_wrongly_typed_result_is_a_malformed_reply(method: str, result: Any) -> None:
    protocol = _ready()
    calls = {"publish": lambda: protocol.publish("chat:a", 1),
             "presence": lambda: protocol.presence("chat:a"),
             "history": lambda: protocol.history("chat:a", limit=1)}
    command_id = calls[method]()
    [event] = protocol.receive(frame({"id": command_id, method: result}))
    assert isinstance(event, MalformedReply)
    assert (event.id, event.method) == (command_id, method)
    assert f"{method!r} should be dict" in event.reason
    assert protocol.drops == {}
    assert protocol.pending_ids() == []


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ([], "'error' should be dict"),
        (None, "'error' should be dict"),
        ({"code": "103"}, "'code' should be int"),
        ({"code": None}, "'code' should be int"),
        ({"code": 103, "message": {"text": "x"}}, "'message' should be str"),
        ({"code": 103, "temporary": 1}, "'temporary' should be bool"),
        ({"code": 103, "temporary": "true"}, "'temporary' should be bool"),
    ],
)
def test_wrongly_typed_error_is_a_malformed_reply(error: Any, reason: str) -> None:
    protocol = _ready()
    command_id = protocol.publish("chat:a", 1)
    [event] = protocol.receive(frame({"id": command_id, "error": error}))
    assert isinstance(event, MalformedReply)
    assert (event.id, event.method) == (command_id, "publish")
    assert reason in event.reason
    assert protocol.drops == {}
    assert protocol.pending_ids() == []


# -- size and depth --------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "[" * 100_000,
    '{"a":' * 100_000,
    '{"push":{"channel":"chat:a","pub":{"data":' + "[" * 100_000 + "]" * 100_000 + "}}}",
    '{"id":2,"subscribe":' + '{"x":' * 50_000 + "1" + "}" * 50_000 + "}",
])
@pytest.mark.timeout(10)
def test_deeply_nested_json_is_one_drop(text: str) -> None:
    protocol = _ready()
    assert _dropped(protocol, text) == "invalid JSON"
    assert protocol.receive("{}") == [Ping(True)]  # still working


def test_moderately_nested_data_is_delivered() -> None:
    protocol = _ready()
    data: Any = 1
    for _ in range(200):
        data = [data]
    assert protocol.receive(pub_push("chat:a", 42, data=data)) == [
        Publication("chat:a", data, 42)]


def test_huge_ids() -> None:
    protocol = _ready()
    protocol.publish("chat:a", 1)
    assert _dropped(protocol, '{"id":1' + "0" * 4000 + ',"publish":{}}') == (
        "reply to no pending command")
    # More digits than Python converts is a JSON decoding error, not a crash.
    assert _dropped(protocol, '{"id":' + "9" * 5000 + ',"publish":{}}') == "invalid JSON"
    assert _dropped(protocol, '{"id":1e999,"publish":{}}') == "reply to no pending command"
    assert protocol.pending_ids() == [3]


def test_largest_uint64_offset_is_accepted() -> None:
    protocol = _ready()
    top = 2**64 - 1
    assert protocol.receive(pub_push("chat:a", top)) == [
        Publication("chat:a", {"text": "hi"}, top)]
    assert protocol.position("chat:a") == StreamPosition(top, EPOCH)


def test_huge_ping_interval_fails_connect_instead_of_raising() -> None:
    protocol = ClientProtocol()
    protocol.connect("t")
    [event] = protocol.receive('{"id":1,"connect":{"ping":' + "9" * 400 + "}}")
    assert isinstance(event, MalformedReply)
    assert "'ping' is out of range" in event.reason
    assert protocol.state is ProtocolState.DISCONNECTED


@pytest.mark.timeout(10)
def test_megabyte_strings() -> None:
    protocol = _ready()
    big = "x" * MEGABYTE
    assert protocol.receive(pub_push("chat:a", 42, data={"text": big})) == [
        Publication("chat:a", {"text": big}, 42)]
    assert "not subscribed" in _dropped(protocol, pub_push(big, 1))
    command_id = protocol.publish("chat:a", 1)
    assert protocol.receive(frame({"id": command_id, "error": {"code": 100, "message": big}})) == [
        ErrorReply(command_id, "publish", 100, big, channel="chat:a")]
    assert _dropped(protocol, '{"push":{"channel":"' + big) == "invalid JSON"
    assert _dropped(protocol, big) == "invalid JSON"
    assert "'channel' should be str" in _dropped(
        protocol, frame({"push": {"channel": [big] * 4, "pub": {}}}))


@pytest.mark.timeout(10)
def test_a_flood_of_pings_queues_one_pong_each_packed_within_the_limit() -> None:
    protocol = _ready()
    events = protocol.receive("{}\n" * 50_000)
    assert events == [Ping(True)] * 50_000
    messages = protocol.data_to_send()
    assert all(len(m) <= protocol.max_message_size for m in messages)
    assert sum(m.count("{}") for m in messages) == 50_000
    assert all(m.replace("{}", "").replace("\n", "") == "" for m in messages)


# -- randomized fuzzing ----------------------------------------------------------------------

def _fuzz_protocol() -> tuple[ClientProtocol, dict[str, int]]:
    """A protocol with a bit of everything after a reconnect: ``chat:a`` live at offset 41,
    ``chat:r`` resubscribing with recovery from 41, and one command of each kind in flight,
    so that mutated replies find something to answer."""
    protocol = connected()
    subscribed(protocol, "chat:r", offset=41)
    subscribed(protocol, "chat:b", recoverable=False)
    protocol.connection_lost()
    protocol.connect("t")
    protocol.receive('{"id":4,"connect":{"ping":25,"pong":true}}')
    ids = {
        "subscribe": protocol.subscribe("chat:r"),
        "subscribe_new": protocol.subscribe("chat:a"),
        "publish": protocol.publish("chat:a", 1),
        "presence": protocol.presence("chat:a"),
        "presence_stats": protocol.presence_stats("chat:a"),
        "history": protocol.history("chat:a", limit=3),
        "refresh": protocol.refresh("t"),
        "sub_refresh": protocol.sub_refresh("chat:a", "t"),
        "unsubscribe": protocol.unsubscribe("chat:b"),
    }
    protocol.receive(frame({"id": ids["subscribe_new"], "subscribe": {
        "recoverable": True, "epoch": EPOCH, "offset": 41}}))
    protocol.data_to_send()
    return protocol, ids


def _fuzz_connecting() -> ClientProtocol:
    protocol = ClientProtocol()
    protocol.connect("t")
    protocol.data_to_send()
    return protocol


def _seed_frames(ids: dict[str, int]) -> list[Any]:
    info = {"user": "42", "client": "c1", "conn_info": {"name": "A"}}
    pubs = [{"data": {"n": n}, "offset": n, "info": info, "tags": {"k": "v"}} for n in (41, 42)]
    return [
        {},
        {"push": {"channel": "chat:a", "pub": {"data": {"text": "hi"}, "offset": 42,
                                                "info": info, "tags": {"k": "v"}}}},
        {"push": {"channel": "chat:a", "pub": {"data": [1, 2]}}},
        {"push": {"channel": "chat:a", "join": {"info": info}}},
        {"push": {"channel": "chat:a", "leave": {"info": info}}},
        {"push": {"channel": "chat:a", "unsubscribe": {"code": 2500, "reason": "insufficient"}}},
        {"push": {"channel": "chat:a", "unsubscribe": {"code": 2000, "reason": "server"}}},
        {"push": {"channel": "news", "subscribe": {"recoverable": True, "epoch": "E",
                                                    "offset": 5}}},
        {"push": {"disconnect": {"code": 3001, "reason": "shutdown"}}},
        {"id": ids["subscribe"], "subscribe": {
            "recoverable": True, "epoch": EPOCH, "offset": 41, "recovered": True,
            "was_recovering": True, "positioned": True, "publications": pubs}},
        {"id": ids["subscribe"], "subscribe": {
            "recoverable": True, "epoch": "NEW", "offset": 90, "recovered": False,
            "was_recovering": True, "expires": True, "ttl": 60}},
        {"id": ids["subscribe"], "error": {"code": 100, "message": "internal", "temporary": True}},
        {"id": ids["publish"], "publish": {}},
        {"id": ids["presence"], "presence": {"presence": {"c1": info}}},
        {"id": ids["presence_stats"], "presence_stats": {"num_clients": 1, "num_users": 1}},
        {"id": ids["history"], "history": {"publications": pubs, "epoch": EPOCH, "offset": 42}},
        {"id": ids["refresh"], "refresh": {"expires": True, "ttl": 3600}},
        {"id": ids["sub_refresh"], "error": {"code": 109, "message": "token expired"}},
        {"id": ids["unsubscribe"], "unsubscribe": {}},
    ]


CONNECT_SEEDS: list[Any] = [
    {"id": 1, "connect": {"client": "c", "version": "6.9.1 OSS", "expires": True, "ttl": 3599,
                          "ping": 25, "pong": True, "subs": {}}},
    {"id": 1, "error": {"code": 109, "message": "token expired"}},
]

JUNK: list[Any] = [None, True, False, 0, 1, -1, 2, 41, 42, 2**32, 2**64, -(2**64), 10**300,
                   10**400, 1.5, -0.0, "", "x", "1", "chat:a", [], [1], [{}], {}, {"a": 1},
                   {"code": 1}, "x" * 300]


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_nodes(child, (*path, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_nodes(child, (*path, index)))
    return found


def _mutate_value(rng: random.Random, value: Any) -> Any:
    value = json.loads(json.dumps(value))  # a deep copy, faster than copy.deepcopy
    paths = _nodes(value)[1:]
    if not paths or rng.random() < 0.03:  # now and then the whole frame is junk
        return rng.choice(JUNK)
    path = rng.choice(paths)
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    operation = rng.randrange(5)
    if operation == 0 and isinstance(parent, dict):
        del parent[key]
    elif operation == 1 and isinstance(parent, dict):
        parent[f"unknown_{rng.randrange(3)}"] = rng.choice(JUNK)
    elif operation == 2:
        parent[key] = [parent[key]] if rng.random() < 0.5 else {"x": parent[key]}
    else:
        parent[key] = rng.choice(JUNK)
    return value


def _mutate_text(rng: random.Random, text: str) -> str:
    position = rng.randrange(len(text) + 1)
    operation = rng.randrange(5)
    if operation == 0:
        return text[:position]
    if operation == 1:
        return text[:position] + text[position + 1:]
    if operation == 2:
        return text[:position] + rng.choice('{}[]",:\n 0-9ae\\\x00é') + text[position:]
    if operation == 3:
        return text + "\n" + text
    return text[:position] + "\n" + text[position:]


def _check(protocol: ClientProtocol, text: str, case: int) -> None:
    pending_before = set(protocol.pending_ids())
    drops_before = sum(protocol.drops.values())
    try:
        events = protocol.receive(text)
    except Exception as exc:  # the whole point: name the input that raised
        pytest.fail(f"case {case}: receive({text[:300]!r}) raised {exc!r}")
    assert isinstance(events, list)
    assert all(isinstance(e, Event) for e in events), (case, events)
    dropped = sum(protocol.drops.values()) - drops_before
    body = text.rstrip("\n")
    lines = len(body.split("\n")) if body else 0
    if lines <= 1 and not events:
        assert dropped == 1, (case, text[:300])
    else:
        # Every line gave an event, a drop, or both (a recovered duplicate is a drop too).
        assert len(events) + dropped >= lines, (case, text[:300], events, protocol.drops)
    answered = [e.id for e in events if isinstance(e, ReplyEvent)]
    assert len(answered) == len(set(answered)), (case, answered)
    assert set(answered) <= pending_before, (case, answered)
    assert not set(answered) & set(protocol.pending_ids()), (case, answered)
    # Exactly one pong per answered ping, and only on an open connection.
    pongs = sum(1 for e in events if isinstance(e, Ping) and e.pong_queued)
    if pongs:
        assert protocol.state is ProtocolState.CONNECTED
    assert protocol.data_to_send() == (["\n".join(["{}"] * pongs)] if pongs else []), case


@pytest.mark.timeout(10)
def test_fuzz_mutated_frames_only_ever_give_events_or_counted_drops() -> None:
    rng = random.Random(0xB07C17)
    # Each case works on a copy of one prepared protocol: preparing is most of a case's cost.
    base, ids = _fuzz_protocol()
    base_seeds = _seed_frames(ids)
    cases = 0
    for case in range(4000):
        if rng.random() < 0.15:
            protocol, seeds = _fuzz_connecting(), CONNECT_SEEDS
        else:
            protocol, seeds = copy.deepcopy(base), base_seeds
        messages = []
        for _ in range(rng.randrange(1, 4)):
            value = rng.choice(seeds)
            for _ in range(rng.randrange(0, 3)):
                value = _mutate_value(rng, value)
            text = json.dumps(value, separators=(",", ":"))
            if rng.random() < 0.3:
                text = _mutate_text(rng, text)
            messages.append(text)
        # Sometimes each frame is its own message, sometimes they share one.
        if rng.random() < 0.5:
            messages = ["\n".join(messages)]
        for text in messages:
            _check(protocol, text, case)
            cases += 1
    assert cases > 4000


def test_fuzz_valid_seed_frames_give_events() -> None:
    """The fuzz corpus itself is valid: without mutation every seed yields events, no drop
    except recovered duplicates."""
    for index in range(len(CONNECT_SEEDS)):
        protocol = _fuzz_connecting()
        assert protocol.receive(frame(CONNECT_SEEDS[index])), index
    for seed in _seed_frames(_fuzz_protocol()[1]):
        protocol = _fuzz_protocol()[0]
        events = protocol.receive(frame(seed))
        assert events, seed
        assert set(protocol.drops) <= {"duplicate publication"}, (seed, protocol.drops)
