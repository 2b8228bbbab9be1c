"""botkit.serverapi.replies: every server API reply, valid or not, as data in, data out. A reply
that is not valid is an ApiMalformedReplyError naming the method, never a TypeError,
ValueError or AttributeError."""

from __future__ import annotations

import json
from typing import Any

import pytest

from botkit.errors import ApiMalformedReplyError, ApiReplyError, ProtocolError
from botkit.protocol.types import (
    ClientInfo,
    HistoryResult,
    PresenceStats,
    Publication,
    StreamPosition,
)
from botkit.serverapi import replies
from botkit.serverapi.replies import PublishResult


def malformed(method: str, match: str) -> Any:
    return pytest.raises(ApiMalformedReplyError, match=f"^{method}: malformed reply: .*{match}")


# -- decode: the body and its error ---------------------------------------------------------------

def test_decode_returns_the_reply_object() -> None:
    assert replies.decode("publish", b'{"result":{"offset":1}}') == {"result": {"offset": 1}}


@pytest.mark.parametrize(("body", "match"), [
    (b'{"result":', "not JSON"),
    (b"<html>hello</html>", "not JSON"),
    (b"", "not JSON"),
    (b"[]", "JSON array, not an object"),
    (b'"ok"', "JSON string, not an object"),
    (b"null", "JSON null, not an object"),
    (b"12", "JSON number, not an object"),
    (b"true", "JSON boolean, not an object"),
])
def test_decode_rejects_what_is_not_a_reply_object(body: bytes, match: str) -> None:
    with malformed("history", match) as caught:
        replies.decode("history", body)
    assert caught.value.method == "history"
    assert caught.value.temporary  # retried: every server API call is safe to repeat


@pytest.mark.parametrize(("error", "code", "temporary"), [
    ({"code": 102, "message": "unknown channel"}, 102, False),
    ({"code": 100, "message": "internal server error"}, 100, True),
    ({"code": 111}, 111, True),
    ({"code": 113, "message": "x"}, 113, True),
])
def test_decode_raises_the_error_it_carries(error: dict[str, Any], code: int,
                                            temporary: bool) -> None:
    with pytest.raises(ApiReplyError) as caught:
        replies.decode("publish", b'{"error":' + _json(error) + b"}")
    assert type(caught.value) is ApiReplyError
    assert (caught.value.code, caught.value.temporary, caught.value.method) == (
        code, temporary, "publish")
    assert str(caught.value) == f"publish: error {code} ({error.get('message', '')})"


@pytest.mark.parametrize(("error", "match"), [
    ('"internal"', "error should be an object"),
    ("[100]", "error should be an object"),
    ('{"code":"100"}', "code should be a non-negative integer"),
    ('{"code":"x","message":"m"}', "code should be a non-negative integer"),
    ('{"code":1.5}', "code should be a non-negative integer"),
    ('{"code":100,"message":{}}', "message should be a string"),
])
def test_a_malformed_error_object_is_a_malformed_reply(error: str, match: str) -> None:
    with malformed("publish", match) as caught:
        replies.decode("publish", b'{"error":' + error.encode() + b"}")
    assert isinstance(caught.value.__cause__, ProtocolError)


# -- single results -------------------------------------------------------------------------------

@pytest.mark.parametrize(("payload", "result"), [
    ({"result": {"offset": 3, "epoch": "E"}}, PublishResult(3, "E")),
    ({"result": {}}, PublishResult(0, "")),
    ({}, PublishResult(0, "")),  # Centrifugo leaves out an empty result
])
def test_publish_result(payload: dict[str, Any], result: PublishResult) -> None:
    assert replies.publish_result(payload) == result
    assert result.position == StreamPosition(result.offset, result.epoch)


@pytest.mark.parametrize(("payload", "match"), [
    ({"result": []}, "result is a JSON array, not an object"),
    ({"result": "x"}, "result is a JSON string"),
    ({"result": {"offset": "1"}}, "offset should be a non-negative integer"),
    ({"result": {"offset": {"n": 1}}}, "offset should be a non-negative integer"),
    ({"result": {"offset": -1}}, "offset should be a non-negative integer"),
    ({"result": {"offset": 1, "epoch": 7}}, "epoch should be a string"),
])
def test_publish_result_rejects(payload: dict[str, Any], match: str) -> None:
    with malformed("publish", match):
        replies.publish_result(payload)


def test_presence() -> None:
    payload = {"result": {"presence": {"c1": {"user": "u1", "client": "c1",
                                              "conn_info": {"name": "A"}}}}}
    assert replies.presence(payload) == {"c1": ClientInfo("u1", "c1", {"name": "A"})}
    assert replies.presence({"result": {}}) == {}


@pytest.mark.parametrize(("payload", "match"), [
    ({"result": []}, "result is a JSON array"),
    ({"result": {"presence": []}}, "presence should be an object"),
    ({"result": {"presence": {"c1": "u1"}}}, "client info should be an object"),
    ({"result": {"presence": {"c1": {"user": 1}}}}, "user should be a string"),
])
def test_presence_rejects(payload: dict[str, Any], match: str) -> None:
    with malformed("presence", match):
        replies.presence(payload)


def test_presence_stats() -> None:
    assert replies.presence_stats({"result": {"num_clients": 2, "num_users": 1}}) == (
        PresenceStats(2, 1))
    with malformed("presence_stats", "num_clients should be a non-negative integer"):
        replies.presence_stats({"result": {"num_clients": "2"}})


def test_history() -> None:
    payload = {"result": {"publications": [{"data": {"n": 1}, "offset": 4}],
                          "offset": 4, "epoch": "E"}}
    assert replies.history("chat:a", payload) == HistoryResult(
        (Publication("chat:a", {"n": 1}, 4),), StreamPosition(4, "E"))
    with malformed("history", "publications should be a list"):
        replies.history("chat:a", {"result": {"publications": {}}})
    with malformed("history", "offset should be a non-negative integer"):
        replies.history("chat:a", {"result": {"offset": {}}})


# -- batches and broadcast --------------------------------------------------------------------

def test_publish_outcomes_one_per_reply() -> None:
    outcomes = replies.publish_outcomes({"replies": [
        {"publish": {"offset": 1, "epoch": "E"}},
        {"error": {"code": 102, "message": "unknown channel"}},
        {"publish": {"offset": "2"}},
        {"error": {"code": "100"}},
        "not an object",
        {"publish": []},
        {},
    ]}, 7)
    assert outcomes[0] == PublishResult(1, "E")
    assert outcomes[6] == PublishResult(0, "")
    refused = outcomes[1]
    assert isinstance(refused, ApiReplyError)
    assert (refused.code, refused.temporary) == (102, False)
    for outcome, match in zip(outcomes[2:6], [
            "offset should be", "code should be", "reply is a JSON string",
            "publish is a JSON array"], strict=True):
        assert isinstance(outcome, ApiMalformedReplyError), outcome
        assert outcome.method == "publish"
        assert outcome.temporary
        assert match in str(outcome)


@pytest.mark.parametrize("payload", [
    {}, {"replies": None}, {"replies": {}}, {"replies": [{}]}, {"replies": [{}, {}, {}]}])
def test_a_batch_of_the_wrong_count_is_malformed_as_a_whole(payload: dict[str, Any]) -> None:
    with malformed("batch", "replies for 2 commands"):
        replies.publish_outcomes(payload, 2)
    with malformed("batch", "replies for 2 commands"):
        replies.presence_outcomes(payload, 2)
    with malformed("batch", "replies for 2 commands"):
        replies.raw_replies(payload, 2)


def test_presence_outcomes() -> None:
    one, two, three = replies.presence_outcomes({"replies": [
        {"presence": {"presence": {"c": {"user": "u", "client": "c"}}}},
        {"presence": {"presence": []}},
        {"error": {"code": 100}},
    ]}, 3)
    assert one == {"c": ClientInfo("u", "c")}
    assert isinstance(two, ApiMalformedReplyError)
    assert two.method == "presence"
    assert isinstance(three, ApiReplyError)
    assert three.temporary


def test_raw_replies_keep_errors_as_they_are() -> None:
    raw = [{"publish": {}}, {"error": {"code": "x"}}]
    assert replies.raw_replies({"replies": raw}, 2) == raw
    assert replies.raw_replies({}, 0) == []  # the server answers an empty batch with {}
    with malformed("batch", "not an object"):
        replies.raw_replies({"replies": [{}, 1]}, 2)


def test_broadcast_outcomes() -> None:
    outcomes = replies.broadcast_outcomes({"result": {"responses": [
        {"result": {"offset": 1, "epoch": "A"}},
        {"error": {"code": 102, "message": "unknown channel"}},
        {"result": {"offset": "x"}},
    ]}}, ["chat:a", "nope:b", "chat:c"])
    assert outcomes[0] == PublishResult(1, "A")
    assert isinstance(outcomes[1], ApiReplyError)
    assert outcomes[1].method == "broadcast nope:b"
    assert isinstance(outcomes[2], ApiMalformedReplyError)
    assert outcomes[2].method == "broadcast chat:c"


@pytest.mark.parametrize("payload", [
    {"result": []}, {"result": {}}, {"result": {"responses": [{}]}}])
def test_broadcast_of_the_wrong_shape_is_malformed_as_a_whole(payload: dict[str, Any]) -> None:
    with malformed("broadcast", ""):
        replies.broadcast_outcomes(payload, ["a", "b"])


def test_malformed_error_text_names_the_method_not_a_code() -> None:
    error = ApiMalformedReplyError("offset should be a non-negative integer", method="publish")
    assert str(error) == "publish: malformed reply: offset should be a non-negative integer"
    assert isinstance(error, ApiReplyError)
    assert (error.code, error.method, error.temporary) == (0, "publish", True)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()
