"""ClientProtocol, data in and data out: commands become exact frames, frames become events."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from botkit.errors import ConnectionClosedError, ProtocolError
from botkit.protocol import (
    DEFAULT_MAX_MESSAGE_SIZE,
    ClientInfo,
    ClientProtocol,
    Connected,
    Disconnected,
    ErrorReply,
    Joined,
    Left,
    MalformedReply,
    Ping,
    ProtocolState,
    Publication,
    Reply,
    ServerSubscribed,
    StreamGap,
    StreamPosition,
    Subscribed,
    Subscription,
    Unsubscribed,
)
from tests.protocol.helpers import (
    EPOCH,
    connect_reply,
    connected,
    frame,
    pub_push,
    sent,
    subscribe_reply,
    subscribed,
)

# -- commands → frames -----------------------------------------------------------------------


def test_connect_frame_is_exact_and_moves_to_connecting() -> None:
    protocol = ClientProtocol(name="bot", version="1.2.3")
    assert protocol.connect("jwt", data={"a": [1, 2]}) == 1
    assert protocol.state is ProtocolState.CONNECTING
    assert protocol.pending_ids() == [1]
    assert protocol.data_to_send() == [
        '{"id":1,"connect":{"token":"jwt","name":"bot","version":"1.2.3","data":{"a":[1,2]}}}']


def test_connect_frame_without_version_or_data() -> None:
    protocol = ClientProtocol()
    protocol.connect("jwt")
    assert protocol.data_to_send() == ['{"id":1,"connect":{"token":"jwt","name":"botkit"}}']


def test_name_and_version_are_cut_to_the_server_limits() -> None:
    protocol = ClientProtocol(name="n" * 40, version="v" * 100)
    assert protocol.name == "n" * 16
    assert protocol.version == "v" * 64
    protocol.connect("jwt")
    [command] = sent(protocol)
    assert command["connect"]["name"] == "n" * 16
    assert command["connect"]["version"] == "v" * 64


def test_non_ascii_is_escaped_so_characters_are_bytes() -> None:
    protocol = connected()
    protocol.publish("chat:a", {"text": "héllo ☃"})
    [message] = protocol.data_to_send()
    assert message == (
        '{"id":2,"publish":{"channel":"chat:a","data":{"text":"h\\u00e9llo \\u2603"}}}')
    assert message.isascii()


@pytest.mark.parametrize(
    ("kwargs", "body"),
    [
        ({}, {"channel": "chat:a", "recoverable": True, "positioned": True}),
        ({"token": "sub-jwt", "join_leave": True},
         {"channel": "chat:a", "token": "sub-jwt", "recoverable": True, "positioned": True,
          "join_leave": True}),
        ({"recoverable": False, "positioned": False}, {"channel": "chat:a"}),
        ({"recoverable": False, "positioned": True}, {"channel": "chat:a", "positioned": True}),
    ],
)
def test_subscribe_frame(kwargs: dict[str, Any], body: dict[str, Any]) -> None:
    protocol = connected()
    assert protocol.subscribe("chat:a", **kwargs) == 2
    assert protocol.data_to_send() == [frame({"id": 2, "subscribe": body})]
    assert protocol.subscriptions == {"chat:a": Subscription("chat:a")}


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda p: p.unsubscribe("chat:a"), {"unsubscribe": {"channel": "chat:a"}}),
        (lambda p: p.publish("chat:a", {"text": "hello"}),
         {"publish": {"channel": "chat:a", "data": {"text": "hello"}}}),
        (lambda p: p.publish("chat:a", None), {"publish": {"channel": "chat:a", "data": None}}),
        (lambda p: p.presence("chat:a"), {"presence": {"channel": "chat:a"}}),
        (lambda p: p.presence_stats("chat:a"), {"presence_stats": {"channel": "chat:a"}}),
        (lambda p: p.history("chat:a", limit=10),
         {"history": {"channel": "chat:a", "limit": 10}}),
        (lambda p: p.history("chat:a", limit=0, since=StreamPosition(40, EPOCH)),
         {"history": {"channel": "chat:a", "limit": 0, "since": {"offset": 40, "epoch": EPOCH}}}),
        (lambda p: p.history("chat:a", limit=5, since=StreamPosition(7, ""), reverse=True),
         {"history": {"channel": "chat:a", "limit": 5, "since": {"offset": 7, "epoch": ""},
                      "reverse": True}}),
        (lambda p: p.refresh("new-jwt"), {"refresh": {"token": "new-jwt"}}),
        (lambda p: p.sub_refresh("private:r", "sub-jwt"),
         {"sub_refresh": {"channel": "private:r", "token": "sub-jwt"}}),
    ],
)
def test_command_frames(call: Any, expected: dict[str, Any]) -> None:
    protocol = connected()
    assert call(protocol) == 2
    assert protocol.data_to_send() == [frame({"id": 2, **expected})]
    assert protocol.pending_ids() == [2]


def test_ids_increase_one_by_one() -> None:
    protocol = connected()
    ids = [protocol.publish("c", i) for i in range(5)]
    assert ids == [2, 3, 4, 5, 6]
    assert [f["id"] for f in sent(protocol)] == ids
    assert protocol.pending_ids() == ids


def test_ids_wrap_after_uint32_max_to_one() -> None:
    protocol = connected()
    protocol._next_id = 2**32 - 2  # white box: reaching it honestly takes four billion commands
    assert [protocol.publish("c", i) for i in range(3)] == [2**32 - 2, 2**32 - 1, 1]
    assert [f["id"] for f in sent(protocol)] == [2**32 - 2, 2**32 - 1, 1]


ALL_COMMANDS = [
    pytest.param(lambda p: p.subscribe("chat:a"), id="subscribe"),
    pytest.param(lambda p: p.unsubscribe("chat:a"), id="unsubscribe"),
    pytest.param(lambda p: p.publish("chat:a", 1), id="publish"),
    pytest.param(lambda p: p.presence("chat:a"), id="presence"),
    pytest.param(lambda p: p.presence_stats("chat:a"), id="presence_stats"),
    pytest.param(lambda p: p.history("chat:a", limit=1), id="history"),
    pytest.param(lambda p: p.refresh("t"), id="refresh"),
    pytest.param(lambda p: p.sub_refresh("chat:a", "t"), id="sub_refresh"),
]


@pytest.mark.parametrize("call", ALL_COMMANDS)
def test_commands_before_connect_raise_and_change_nothing(call: Any) -> None:
    protocol = ClientProtocol()
    with pytest.raises(ConnectionClosedError):
        call(protocol)
    assert protocol.data_to_send() == []
    assert protocol.pending_ids() == []
    assert protocol.subscriptions == {}
    # The id was not consumed either.
    assert protocol.connect("t") == 1


@pytest.mark.parametrize("call", ALL_COMMANDS[1:])
def test_commands_but_subscribe_while_connecting_raise(call: Any) -> None:
    protocol = ClientProtocol()
    protocol.connect("t")
    protocol.data_to_send()
    with pytest.raises(ConnectionClosedError, match="not open"):
        call(protocol)
    assert protocol.data_to_send() == []
    assert protocol.pending_ids() == [1]


def test_unsubscribe_that_raises_keeps_the_subscription() -> None:
    protocol = connected()
    subscribed(protocol, "chat:a", offset=3)
    protocol.connection_lost()
    with pytest.raises(ConnectionClosedError):
        protocol.unsubscribe("chat:a")
    assert protocol.position("chat:a") == StreamPosition(3, EPOCH)
    protocol.forget("chat:a")
    assert protocol.subscriptions == {}
    assert protocol.position("chat:a") is None
    protocol.forget("never-known")  # forgetting twice is harmless


def test_connect_twice_raises() -> None:
    protocol = ClientProtocol()
    protocol.connect("t")
    with pytest.raises(ProtocolError, match="already"):
        protocol.connect("t")
    protocol.receive(connect_reply())
    with pytest.raises(ProtocolError, match="already"):
        protocol.connect("t")
    assert protocol.pending_ids() == []
    assert [f["id"] for f in sent(protocol)] == [1]


def test_oversized_command_raises_and_is_not_queued() -> None:
    protocol = connected(max_message_size=200)
    with pytest.raises(ProtocolError, match=r"publish command is \d+ bytes.*at most 200"):
        protocol.publish("chat:a", "x" * 200)
    with pytest.raises(ProtocolError):
        protocol.subscribe("chat:big", token="t" * 300)
    assert protocol.data_to_send() == []
    assert protocol.pending_ids() == []
    assert protocol.subscriptions == {}
    # Neither consumed an id.
    assert protocol.publish("chat:a", "small") == 2


def test_command_of_exactly_the_limit_is_accepted() -> None:
    template = frame({"id": 2, "publish": {"channel": "c", "data": ""}})
    protocol = connected(max_message_size=len(template) + 10)
    protocol.publish("c", "x" * 10)
    [message] = protocol.data_to_send()
    assert len(message) == protocol.max_message_size
    with pytest.raises(ProtocolError):
        protocol.publish("c", "x" * 11)


def test_oversized_connect_stays_disconnected() -> None:
    protocol = ClientProtocol(max_message_size=50)
    with pytest.raises(ProtocolError):
        protocol.connect("t" * 100)
    assert protocol.state is ProtocolState.DISCONNECTED
    assert protocol.pending_ids() == []
    assert protocol.data_to_send() == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_json_numbers_are_refused_before_queueing(bad: float) -> None:
    protocol = connected()
    with pytest.raises(ValueError, match="JSON compliant"):
        protocol.publish("chat:a", {"score": bad})
    assert protocol.data_to_send() == []
    assert protocol.pending_ids() == []


def test_data_to_send_is_empty_when_nothing_is_queued() -> None:
    protocol = ClientProtocol()
    assert protocol.data_to_send() == []
    protocol.connect("t")
    assert len(protocol.data_to_send()) == 1
    assert protocol.data_to_send() == []


def test_data_to_send_joins_frames_with_newlines() -> None:
    protocol = connected()
    protocol.subscribe("a")
    protocol.publish("a", 1)
    protocol.presence("a")
    assert protocol.data_to_send() == [
        '{"id":2,"subscribe":{"channel":"a","recoverable":true,"positioned":true}}\n'
        '{"id":3,"publish":{"channel":"a","data":1}}\n'
        '{"id":4,"presence":{"channel":"a"}}']


def _three_frames() -> tuple[ClientProtocol, list[str]]:
    protocol = connected()
    payloads = ("a" * 10, "b" * 30, "c" * 5)
    ids = [protocol.publish("ch", data) for data in payloads]
    return protocol, [frame({"id": i, "publish": {"channel": "ch", "data": d}})
                      for i, d in zip(ids, payloads, strict=True)]


def test_data_to_send_packs_up_to_the_limit_exactly() -> None:
    protocol, (f1, f2, f3) = _three_frames()
    protocol.max_message_size = len(f1) + 1 + len(f2)  # the first two fit exactly
    assert protocol.data_to_send() == [f"{f1}\n{f2}", f3]


def test_data_to_send_splits_one_byte_over_the_limit() -> None:
    protocol, (f1, f2, f3) = _three_frames()
    protocol.max_message_size = len(f1) + len(f2)  # one short of f1 + "\n" + f2
    assert protocol.data_to_send() == [f1, f"{f2}\n{f3}"]


def test_data_to_send_respects_the_limit_for_many_frames() -> None:
    protocol = connected(max_message_size=300)
    for i in range(200):
        protocol.publish(f"chat:{i}", "x" * (i % 170))
    messages = protocol.data_to_send()
    assert len(messages) > 1
    assert all(0 < len(m) <= 300 for m in messages)
    frames = [json.loads(line) for m in messages for line in m.split("\n")]
    assert [f["id"] for f in frames] == list(range(2, 202))
    # Greedy packing: no message could have taken the next message's first frame.
    for current, following in itertools.pairwise(messages):
        assert len(current) + 1 + len(following.split("\n")[0]) > 300


# -- replies ---------------------------------------------------------------------------------


def test_connect_reply_gives_connected() -> None:
    protocol = ClientProtocol()
    protocol.connect("t")
    events = protocol.receive(connect_reply(expires=True, ttl=3599, subs={}, node="n"))
    assert events == [Connected(1, "connect", client_id="c-1", version="6.9.1 OSS",
                                ping_interval=25.0, pong=True, expires=True, ttl=3599.0)]
    assert protocol.state is ProtocolState.CONNECTED
    assert protocol.pending_ids() == []


def test_minimal_connect_reply_uses_defaults() -> None:
    protocol = ClientProtocol()
    protocol.connect("t")
    [event] = protocol.receive('{"id":1,"connect":{}}')
    assert event == Connected(1, "connect", client_id="", version="", ping_interval=0.0,
                              pong=False, expires=False, ttl=0.0)
    assert protocol.state is ProtocolState.CONNECTED


@pytest.mark.parametrize("temporary", [False, True])
def test_connect_error_gives_error_reply_and_disconnected(temporary: bool) -> None:
    protocol = ClientProtocol()
    protocol.connect("t")
    error: dict[str, Any] = {"code": 109, "message": "token expired"}
    if temporary:
        error["temporary"] = True
    events = protocol.receive(frame({"id": 1, "error": error}))
    assert events == [ErrorReply(1, "connect", 109, "token expired", temporary, "")]
    assert protocol.state is ProtocolState.DISCONNECTED
    with pytest.raises(ConnectionClosedError):
        protocol.publish("c", 1)


def test_subscribe_reply_gives_subscribed_with_position() -> None:
    protocol = connected()
    protocol.subscribe("chat:a")
    events = protocol.receive(subscribe_reply(
        2, recoverable=True, epoch=EPOCH, offset=41, positioned=True, expires=True, ttl=60))
    assert events == [Subscribed(2, "subscribe", "chat:a", True, StreamPosition(41, EPOCH),
                                 was_recovering=False, recovered=False, expires=True, ttl=60.0)]
    assert protocol.position("chat:a") == StreamPosition(41, EPOCH)
    assert protocol.subscriptions["chat:a"] == Subscription(
        "chat:a", recoverable=True, position=StreamPosition(41, EPOCH), subscribed=True)


def test_fresh_stream_without_offset_starts_at_zero() -> None:
    protocol = connected()
    protocol.subscribe("chat:a")
    [event] = protocol.receive(subscribe_reply(2, recoverable=True, epoch=EPOCH))
    assert isinstance(event, Subscribed)
    assert event.position == StreamPosition(0, EPOCH)
    assert protocol.receive(pub_push("chat:a", 1)) == [
        Publication("chat:a", {"text": "hi"}, offset=1)]


def test_non_recoverable_subscription_has_no_position() -> None:
    protocol = connected()
    protocol.subscribe("chat:a", recoverable=False)
    [event] = protocol.receive(subscribe_reply(2, offset=7, epoch=EPOCH))
    assert event == Subscribed(2, "subscribe", "chat:a", False, None)
    assert protocol.position("chat:a") is None
    # Without a position nothing is deduplicated, and a reconnect does not ask to recover.
    assert len(protocol.receive(pub_push("chat:a", 3))) == 1
    assert len(protocol.receive(pub_push("chat:a", 3))) == 1
    protocol.connection_lost()
    protocol.connect("t")
    protocol.receive(connect_reply(protocol.pending_ids()[0]))
    protocol.data_to_send()
    protocol.subscribe("chat:a")
    assert "recover" not in sent(protocol)[0]["subscribe"]


def _reconnect(protocol: ClientProtocol) -> None:
    protocol.connection_lost()
    command_id = protocol.connect("t")
    protocol.receive(connect_reply(command_id))
    protocol.data_to_send()


def test_resubscribe_after_reconnect_sends_recover_with_last_position() -> None:
    protocol = connected()
    subscribed(protocol, "chat:a", offset=41)
    protocol.receive(pub_push("chat:a", 42))
    _reconnect(protocol)
    command_id = protocol.subscribe("chat:a", join_leave=True)
    assert sent(protocol) == [{"id": command_id, "subscribe": {
        "channel": "chat:a", "recoverable": True, "positioned": True, "join_leave": True,
        "recover": True, "epoch": EPOCH, "offset": 42}}]


def test_recovered_publications_follow_subscribed_in_order_without_duplicates() -> None:
    protocol = connected()
    subscribed(protocol, "chat:a", offset=41)
    _reconnect(protocol)
    command_id = protocol.subscribe("chat:a")
    publications: list[dict[str, Any]] = [
        {"data": {"n": n}, "offset": n} for n in (40, 41, 42, 43, 43)]
    publications.append({"data": {"n": 44}, "offset": 44, "info": {"user": "7", "client": "x"}})
    events = protocol.receive(subscribe_reply(
        command_id, recoverable=True, epoch=EPOCH, offset=41, positioned=True,
        recovered=True, was_recovering=True, publications=publications))
    assert events == [
        Subscribed(command_id, "subscribe", "chat:a", True, StreamPosition(41, EPOCH),
                   was_recovering=True, recovered=True),
        Publication("chat:a", {"n": 42}, 42),
        Publication("chat:a", {"n": 43}, 43),
        Publication("chat:a", {"n": 44}, 44, ClientInfo("7", "x")),
    ]
    assert protocol.drops == {"duplicate publication": 3}
    assert protocol.position("chat:a") == StreamPosition(44, EPOCH)
    # The live stream continues from there; a replayed one is dropped.
    assert protocol.receive(pub_push("chat:a", 44)) == []
    assert protocol.receive(pub_push("chat:a", 45)) != []


def test_recovery_advances_from_the_clients_position_not_the_reply_offset() -> None:
    protocol = connected()
    subscribed(protocol, "chat:a", offset=10)
    _reconnect(protocol)
    command_id = protocol.subscribe("chat:a")
    # Even if a server reported the top offset here, the client's own position is the base.
    events = protocol.receive(subscribe_reply(
        command_id, recoverable=True, epoch=EPOCH, offset=12, recovered=True,
        was_recovering=True, publications=[{"data": 1, "offset": 11}, {"data": 2, "offset": 12}]))
    assert [e.offset for e in events if isinstance(e, Publication)] == [11, 12]
    assert protocol.position("chat:a") == StreamPosition(12, EPOCH)


def test_failed_recovery_gives_stream_gap_and_resumes_at_the_new_top() -> None:
    protocol = connected()
    subscribed(protocol, "chat:a", offset=42)
    _reconnect(protocol)
    command_id = protocol.subscribe("chat:a")
    events = protocol.receive(subscribe_reply(
        command_id, recoverable=True, epoch="NEW", offset=100, positioned=True,
        recovered=False, was_recovering=True))
    assert events == [
        Subscribed(command_id, "subscribe", "chat:a", True, StreamPosition(100, "NEW"),
                   was_recovering=True, recovered=False),
        StreamGap("chat:a", lost_from=StreamPosition(42, EPOCH),
                  resumed_at=StreamPosition(100, "NEW")),
    ]
    assert protocol.position("chat:a") == StreamPosition(100, "NEW")
    assert protocol.receive(pub_push("chat:a", 100)) == []
    assert protocol.receive(pub_push("chat:a", 101)) == [
        Publication("chat:a", {"text": "hi"}, 101)]


def test_failed_recovery_on_a_stream_no_longer_recoverable() -> None:
    protocol = connected()
    subscribed(protocol, "chat:a", offset=42)
    _reconnect(protocol)
    command_id = protocol.subscribe("chat:a")
    events = protocol.receive(subscribe_reply(command_id, was_recovering=True))
    assert events[1] == StreamGap("chat:a", StreamPosition(42, EPOCH), None)
    assert protocol.position("chat:a") is None


def test_subscribe_reply_after_unsubscribe_in_flight() -> None:
    protocol = connected()
    command_id = protocol.subscribe("chat:a")
    protocol.unsubscribe("chat:a")
    events = protocol.receive(subscribe_reply(
        command_id, recoverable=True, epoch=EPOCH, offset=1, recovered=True,
        publications=[{"data": 1, "offset": 2}]))
    assert events == [Subscribed(command_id, "subscribe", "chat:a", True,
                                 StreamPosition(1, EPOCH), recovered=True)]
    assert protocol.subscriptions == {}
    assert protocol.receive(pub_push("chat:a", 3)) == []
    assert protocol.drops == {"publication for a channel not subscribed": 1}


@pytest.mark.parametrize(
    ("call", "method", "result"),
    [
        (lambda p: p.publish("c", 1), "publish", {}),
        (lambda p: p.unsubscribe("c"), "unsubscribe", {}),
        (lambda p: p.presence("c"), "presence",
         {"presence": {"c1": {"user": "42", "client": "c1"}}}),
        (lambda p: p.presence_stats("c"), "presence_stats", {"num_clients": 2, "num_users": 1}),
        (lambda p: p.history("c", limit=1), "history",
         {"publications": [{"data": 1, "offset": 3}], "epoch": EPOCH, "offset": 3}),
        (lambda p: p.refresh("t"), "refresh", {"expires": True, "ttl": 3600}),
        (lambda p: p.sub_refresh("c", "t"), "sub_refresh", {"expires": True, "ttl": 60}),
    ],
)
def test_generic_replies(call: Any, method: str, result: dict[str, Any]) -> None:
    protocol = connected()
    command_id = call(protocol)
    assert protocol.receive(frame({"id": command_id, method: result, "extra": 1})) == [
        Reply(command_id, method, result)]
    assert protocol.pending_ids() == []


def test_reply_without_result_object_is_an_empty_result() -> None:
    protocol = connected()
    command_id = protocol.publish("c", 1)
    assert protocol.receive(frame({"id": command_id})) == [Reply(command_id, "publish", {})]


def test_error_reply_carries_code_message_temporary_and_channel() -> None:
    protocol = connected()
    command_id = protocol.subscribe("chat:a")
    events = protocol.receive(frame({"id": command_id, "error": {
        "code": 100, "message": "internal server error", "temporary": True}}))
    assert events == [ErrorReply(command_id, "subscribe", 100, "internal server error",
                                 temporary=True, channel="chat:a")]
    # A refused subscribe leaves the subscription unsubscribed, and its pubs are not delivered.
    assert protocol.subscriptions["chat:a"].subscribed is False
    assert protocol.receive(pub_push("chat:a", 1)) == []


def test_error_reply_to_a_command_without_channel() -> None:
    protocol = connected()
    command_id = protocol.refresh("t")
    assert protocol.receive(frame({"id": command_id, "error": {"code": 107}})) == [
        ErrorReply(command_id, "refresh", 107, "", False, "")]
    assert protocol.state is ProtocolState.CONNECTED


def test_error_wins_over_a_result_in_the_same_reply() -> None:
    protocol = connected()
    command_id = protocol.publish("c", 1)
    [event] = protocol.receive(frame({"id": command_id, "publish": {},
                                      "error": {"code": 103, "message": "permission denied"}}))
    assert event == ErrorReply(command_id, "publish", 103, "permission denied", channel="c")


def test_replies_are_matched_by_id_in_any_order() -> None:
    protocol = connected()
    first, second = protocol.publish("c", 1), protocol.presence("c")
    events = protocol.receive(frame({"id": second, "presence": {"presence": {}}}) + "\n"
                              + frame({"id": first, "publish": {}}))
    assert events == [Reply(second, "presence", {"presence": {}}), Reply(first, "publish", {})]


def test_a_reply_is_accepted_once() -> None:
    protocol = connected()
    command_id = protocol.publish("c", 1)
    reply = frame({"id": command_id, "publish": {}})
    assert len(protocol.receive(reply)) == 1
    assert protocol.receive(reply) == []
    assert protocol.drops == {"reply to no pending command": 1}


@pytest.mark.parametrize(
    "reply",
    [
        {"id": 2, "publish": []},
        {"id": 2, "publish": None},
        {"id": 2, "error": "boom"},
        {"id": 2, "error": {"code": "103"}},
        {"id": 2, "error": {"code": 103, "message": 5}},
        {"id": 2, "error": {"code": 103, "temporary": "yes"}},
    ],
)
def test_malformed_reply_fails_only_its_command(reply: dict[str, Any]) -> None:
    protocol = connected()
    command_id = protocol.publish("c", 1)
    other = protocol.publish("c", 2)
    [event] = protocol.receive(frame(reply))
    assert isinstance(event, MalformedReply)
    assert (event.id, event.method) == (command_id, "publish")
    assert event.reason
    assert protocol.pending_ids() == [other]
    assert protocol.state is ProtocolState.CONNECTED
    assert protocol.drops == {}


@pytest.mark.parametrize(
    "result",
    [
        {"client": 1},
        {"version": ["6"]},
        {"ping": "25"},
        {"ping": True},
        {"ping": 25.0},
        {"ping": -1},
        {"pong": "true"},
        {"expires": 1},
        {"ttl": -5},
        {"ttl": 10**400},
        {"ttl": 2**64},
    ],
)
def test_malformed_connect_reply_disconnects(result: dict[str, Any]) -> None:
    protocol = ClientProtocol()
    protocol.connect("t")
    protocol.data_to_send()
    [event] = protocol.receive(frame({"id": 1, "connect": result}))
    assert isinstance(event, MalformedReply)
    assert (event.id, event.method) == (1, "connect")
    assert protocol.state is ProtocolState.DISCONNECTED
    # Nothing half-applied: the next ping is not answered.
    assert protocol.receive("{}") == [Ping(pong_queued=False)]
    assert protocol.data_to_send() == []


@pytest.mark.parametrize(
    "reply",
    [
        {"id": 1, "connect": []},
        {"id": 1, "error": {"code": "109"}},
    ],
)
def test_malformed_connect_reply_or_error_disconnects(reply: dict[str, Any]) -> None:
    protocol = ClientProtocol()
    protocol.connect("t")
    [event] = protocol.receive(frame(reply))
    assert isinstance(event, MalformedReply)
    assert protocol.state is ProtocolState.DISCONNECTED


@pytest.mark.parametrize(
    "result",
    [
        {"recoverable": "yes"},
        {"recoverable": True, "epoch": 5},
        {"recoverable": True, "offset": "41"},
        {"recoverable": True, "offset": -1},
        {"recoverable": True, "offset": 2**64},
        {"recovered": 1},
        {"publications": {}},
        {"publications": [1]},
        {"publications": [{"offset": "1"}]},
        {"publications": [{"info": "user"}]},
        {"publications": [{"tags": {"k": 1}}]},
        {"was_recovering": "no"},
        {"expires": 0},
        {"ttl": 1.5},
    ],
)
def test_malformed_subscribe_reply_leaves_the_subscription_unsubscribed(
        result: dict[str, Any]) -> None:
    protocol = connected()
    command_id = protocol.subscribe("chat:a")
    [event] = protocol.receive(subscribe_reply(command_id, **result))
    assert isinstance(event, MalformedReply)
    assert (event.id, event.method) == (command_id, "subscribe")
    assert protocol.subscriptions["chat:a"] == Subscription("chat:a")


@pytest.mark.parametrize("reply_id", [99, True, False, "2", "x", 2.0, None, [2], {"2": 2},
                                      -2, 0, 2**32 + 2, 10**30])
def test_reply_to_unknown_id_is_dropped(reply_id: Any) -> None:
    protocol = connected()
    protocol.publish("c", 1)
    assert protocol.receive(frame({"id": reply_id, "publish": {}})) == []
    assert protocol.drops == {"reply to no pending command": 1}
    assert protocol.pending_ids() == [2]


def test_bool_true_id_does_not_answer_command_one() -> None:
    protocol = ClientProtocol()
    protocol.connect("t")
    assert protocol.receive('{"id":true,"connect":{}}') == []
    assert protocol.state is ProtocolState.CONNECTING
    assert protocol.pending_ids() == [1]


# -- pushes ----------------------------------------------------------------------------------


def test_publication_push_with_info_tags_and_offset() -> None:
    protocol = connected()
    subscribed(protocol, "chat:a", offset=43)
    push = {"push": {"channel": "chat:a", "pub": {
        "data": {"text": "hello"}, "offset": 44, "tags": {"k": "v"}, "time": 1, "new": [1],
        "info": {"user": "42", "client": "c9", "conn_info": {"name": "Alice"},
                 "chan_info": {"role": "admin"}}}}}
    assert protocol.receive(frame(push)) == [Publication(
        "chat:a", {"text": "hello"}, 44,
        ClientInfo("42", "c9", {"name": "Alice"}, {"role": "admin"}), {"k": "v"})]
    assert protocol.position("chat:a") == StreamPosition(44, EPOCH)


def test_publication_with_null_info_has_none() -> None:
    protocol = connected()
    subscribed(protocol, "chat:a")
    [event] = protocol.receive(pub_push("chat:a", 42, info=None))
    assert event == Publication("chat:a", {"text": "hi"}, 42, None, {})


def test_publications_are_deduplicated_by_offset() -> None:
    protocol = connected()
    subscribed(protocol, "chat:a", offset=41)
    assert protocol.receive(pub_push("chat:a", 42)) == [Publication("chat:a", {"text": "hi"}, 42)]
    assert protocol.receive(pub_push("chat:a", 42)) == []
    assert protocol.receive(pub_push("chat:a", 30)) == []
    assert protocol.receive(pub_push("chat:a", 41)) == []
    assert protocol.drops == {"duplicate publication": 3}
    assert protocol.position("chat:a") == StreamPosition(42, EPOCH)


def test_publications_without_offset_are_never_deduplicated() -> None:
    protocol = connected()
    subscribed(protocol, "chat:a", offset=41)
    assert len(protocol.receive(pub_push("chat:a") + "\n" + pub_push("chat:a"))) == 2
    assert protocol.position("chat:a") == StreamPosition(41, EPOCH)
    assert protocol.drops == {}


def test_publication_for_an_unsubscribed_channel_is_dropped() -> None:
    protocol = connected()
    subscribed(protocol, "chat:a")
    assert protocol.receive(pub_push("chat:other", 1)) == []
    protocol.subscribe("chat:b")  # in flight: not subscribed yet
    assert protocol.receive(pub_push("chat:b", 1)) == []
    assert protocol.drops == {"publication for a channel not subscribed": 2}


def test_join_and_leave() -> None:
    protocol = connected()
    info = {"user": "7", "client": "c1", "conn_info": {"name": "Bob"}}
    events = protocol.receive(frame({"push": {"channel": "chat:a", "join": {"info": info}}})
                              + "\n"
                              + frame({"push": {"channel": "chat:a", "leave": {"info": info}}}))
    expected_info = ClientInfo("7", "c1", {"name": "Bob"})
    assert events == [Joined("chat:a", expected_info), Left("chat:a", expected_info)]


@pytest.mark.parametrize("code", [0, 2000, 2499])
def test_unsubscribe_push_below_2500_forgets_the_subscription(code: int) -> None:
    protocol = connected()
    subscribed(protocol, "chat:a")
    events = protocol.receive(frame({"push": {"channel": "chat:a", "unsubscribe": {
        "code": code, "reason": "server unsubscribe"}}}))
    assert events == [Unsubscribed("chat:a", code, "server unsubscribe", resubscribe=False)]
    assert protocol.subscriptions == {}
    assert protocol.position("chat:a") is None
    assert protocol.receive(pub_push("chat:a", 42)) == []


@pytest.mark.parametrize("code", [2500, 2501, 2502, 2999])
def test_unsubscribe_push_from_2500_keeps_the_position_for_a_resubscribe(code: int) -> None:
    protocol = connected()
    subscribed(protocol, "chat:a", offset=41)
    protocol.receive(pub_push("chat:a", 42))
    [event] = protocol.receive(frame({"push": {"channel": "chat:a", "unsubscribe": {
        "code": code, "reason": "insufficient state"}}}))
    assert event == Unsubscribed("chat:a", code, "insufficient state", resubscribe=True)
    assert protocol.subscriptions["chat:a"] == Subscription(
        "chat:a", recoverable=True, position=StreamPosition(42, EPOCH), subscribed=False)
    assert protocol.receive(pub_push("chat:a", 43)) == []  # not subscribed in between
    command_id = protocol.subscribe("chat:a")
    assert sent(protocol)[0]["subscribe"] == {
        "channel": "chat:a", "recoverable": True, "positioned": True,
        "recover": True, "epoch": EPOCH, "offset": 42}
    assert command_id == 3


def test_unsubscribe_push_for_an_unknown_channel_is_still_reported() -> None:
    protocol = connected()
    assert protocol.receive(frame({"push": {"channel": "x", "unsubscribe": {}}})) == [
        Unsubscribed("x", 0, "", resubscribe=False)]


def test_subscribe_push_gives_server_subscribed() -> None:
    protocol = connected()
    events = protocol.receive(
        frame({"push": {"channel": "news", "subscribe": {
            "recoverable": True, "epoch": EPOCH, "offset": 5, "positioned": True, "data": {}}}})
        + "\n" + frame({"push": {"channel": "alerts", "subscribe": {}}}))
    assert events == [ServerSubscribed("news", True, StreamPosition(5, EPOCH)),
                      ServerSubscribed("alerts", False, None)]


def test_disconnect_push() -> None:
    protocol = connected()
    assert protocol.receive('{"push":{"disconnect":{"code":3001,"reason":"shutdown",'
                            '"reconnect":true}}}') == [Disconnected(3001, "shutdown")]
    assert protocol.receive('{"push":{"disconnect":{}}}') == [Disconnected(0, "")]


@pytest.mark.parametrize("push", [
    {"channel": "c", "message": {"data": 1}},
    {"channel": "c", "refresh": {"expires": True, "ttl": 5}},
    {"channel": "c", "connect": {}},
    {"channel": "c"},
    {},
])
def test_unknown_push_kind_is_dropped(push: dict[str, Any]) -> None:
    protocol = connected()
    assert protocol.receive(frame({"push": push})) == []
    assert protocol.drops == {"push of an unknown kind": 1}


def test_push_wins_over_an_id_in_the_same_frame() -> None:
    protocol = connected()
    protocol.publish("c", 1)
    events = protocol.receive('{"id":2,"push":{"channel":"c","join":{"info":{}}}}')
    assert events == [Joined("c", ClientInfo("", ""))]
    assert protocol.pending_ids() == [2]


# -- ping / pong -----------------------------------------------------------------------------


def test_ping_is_answered_with_exactly_one_pong() -> None:
    protocol = connected(pong=True)
    assert protocol.receive("{}") == [Ping(pong_queued=True)]
    assert protocol.data_to_send() == ["{}"]
    assert protocol.data_to_send() == []
    assert protocol.receive("{}\n{}") == [Ping(True), Ping(True)]
    assert sent(protocol) == [{}, {}]


def test_pong_is_sent_with_queued_commands_in_order() -> None:
    protocol = connected(pong=True)
    protocol.publish("c", 1)
    protocol.receive("{}")
    assert protocol.data_to_send() == ['{"id":2,"publish":{"channel":"c","data":1}}\n{}']


def test_no_pong_when_the_server_does_not_want_one() -> None:
    protocol = connected(pong=False)
    assert protocol.receive("{}") == [Ping(pong_queued=False)]
    assert protocol.data_to_send() == []


def test_no_pong_before_connect_or_while_connecting() -> None:
    protocol = ClientProtocol()
    assert protocol.receive("{}") == [Ping()]
    protocol.connect("t")
    protocol.data_to_send()
    assert protocol.receive("{}") == [Ping()]
    assert protocol.data_to_send() == []


def test_connect_reply_and_ping_in_one_message() -> None:
    protocol = ClientProtocol()
    protocol.connect("t")
    protocol.data_to_send()
    events = protocol.receive(connect_reply() + "\n{}")
    assert [type(e) for e in events] == [Connected, Ping]
    assert events[1] == Ping(pong_queued=True)
    assert protocol.data_to_send() == ["{}"]


def test_reply_pushes_and_ping_in_one_message_are_handled_in_order() -> None:
    protocol = connected()
    command_id = protocol.subscribe("chat:a")
    protocol.data_to_send()
    message = "\n".join([
        subscribe_reply(command_id, recoverable=True, epoch=EPOCH, offset=41),
        pub_push("chat:a", 42),
        frame({"push": {"channel": "chat:a", "join": {"info": {"user": "7", "client": "c"}}}}),
        "{}",
        pub_push("chat:a", 43),
    ]) + "\n"  # a trailing newline is fine
    events = protocol.receive(message)
    assert [type(e) for e in events] == [Subscribed, Publication, Joined, Ping, Publication]
    assert [e.offset for e in events if isinstance(e, Publication)] == [42, 43]
    assert protocol.data_to_send() == ["{}"]


def test_ping_with_crlf_line_ending_still_counts() -> None:
    protocol = connected()
    assert protocol.receive("{}\r\n") == [Ping(True)]


# -- connection loss and recovery -------------------------------------------------------------


def test_connection_lost_returns_pending_ids_and_clears_outgoing() -> None:
    protocol = connected()
    subscribed(protocol, "chat:a", offset=41)
    protocol.receive(pub_push("chat:a", 42))
    in_flight = [protocol.publish("chat:a", 1), protocol.presence("chat:a")]
    protocol.receive("{}")  # a pong is queued too
    assert protocol.connection_lost() == in_flight
    assert protocol.state is ProtocolState.DISCONNECTED
    assert protocol.pending_ids() == []
    assert protocol.data_to_send() == []
    assert protocol.subscriptions["chat:a"] == Subscription(
        "chat:a", recoverable=True, position=StreamPosition(42, EPOCH), subscribed=False)
    assert protocol.connection_lost() == []
    # A late reply to a lost command is a drop; pubs are not delivered while disconnected.
    assert protocol.receive(frame({"id": in_flight[0], "publish": {}})) == []
    assert protocol.receive(pub_push("chat:a", 43)) == []
    assert protocol.receive("{}") == [Ping(pong_queued=False)]


def test_full_reconnect_cycle_recovers_from_the_last_offset_and_epoch() -> None:
    protocol = connected()
    subscribed(protocol, "chat:a", offset=41, epoch="E1")
    subscribed(protocol, "chat:b", recoverable=False)
    protocol.receive(pub_push("chat:a", 42) + "\n" + pub_push("chat:a", 43))
    protocol.connection_lost()

    connect_id = protocol.connect("t2")
    assert sent(protocol) == [{"id": connect_id, "connect": {"token": "t2", "name": "botkit"}}]
    protocol.receive(connect_reply(connect_id, pong=False))
    protocol.receive("{}")
    assert protocol.data_to_send() == []  # the new connection's pong setting applies

    ids = {channel: protocol.subscribe(channel) for channel in protocol.subscriptions}
    frames = {f["subscribe"]["channel"]: f for f in sent(protocol)}
    assert frames["chat:a"] == {"id": ids["chat:a"], "subscribe": {
        "channel": "chat:a", "recoverable": True, "positioned": True,
        "recover": True, "epoch": "E1", "offset": 43}}
    assert frames["chat:b"] == {"id": ids["chat:b"], "subscribe": {
        "channel": "chat:b", "recoverable": True, "positioned": True}}

    events = protocol.receive(subscribe_reply(
        ids["chat:a"], recoverable=True, epoch="E1", offset=43, recovered=True,
        was_recovering=True, publications=[{"data": 44, "offset": 44}]))
    assert [type(e) for e in events] == [Subscribed, Publication]
    assert protocol.position("chat:a") == StreamPosition(44, "E1")


def test_default_max_message_size_is_centrifugos() -> None:
    assert DEFAULT_MAX_MESSAGE_SIZE == 65536
    assert ClientProtocol().max_message_size == 65536


def test_seeded_position_is_recovered_from_on_the_first_subscribe() -> None:
    protocol = connected()
    assert protocol.seed("chat:a", StreamPosition(7, EPOCH))
    assert protocol.position("chat:a") == StreamPosition(7, EPOCH)
    command_id = protocol.subscribe("chat:a")
    assert sent(protocol) == [{"id": command_id, "subscribe": {
        "channel": "chat:a", "recoverable": True, "positioned": True,
        "recover": True, "epoch": EPOCH, "offset": 7}}]
    events = protocol.receive(subscribe_reply(
        command_id, recoverable=True, epoch=EPOCH, offset=7, recovered=True,
        was_recovering=True, publications=[{"data": 1, "offset": 8}]))
    assert [e.offset for e in events if isinstance(e, Publication)] == [8]
    assert protocol.position("chat:a") == StreamPosition(8, EPOCH)


def test_seed_does_not_replace_a_known_position() -> None:
    protocol = connected()
    subscribed(protocol, "chat:a", offset=41)
    assert not protocol.seed("chat:a", StreamPosition(7, EPOCH))
    assert protocol.position("chat:a") == StreamPosition(41, EPOCH)


def test_seeded_position_that_cannot_be_recovered_gives_a_stream_gap() -> None:
    protocol = connected()
    protocol.seed("chat:a", StreamPosition(7, "OLD"))
    command_id = protocol.subscribe("chat:a")
    events = protocol.receive(subscribe_reply(
        command_id, recoverable=True, epoch="NEW", offset=3, recovered=False,
        was_recovering=True))
    assert events[1:] == [StreamGap("chat:a", lost_from=StreamPosition(7, "OLD"),
                                    resumed_at=StreamPosition(3, "NEW"))]
