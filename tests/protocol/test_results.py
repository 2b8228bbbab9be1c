"""Parsers of presence, presence stats and history results: typed values or ProtocolError."""

from __future__ import annotations

from typing import Any

import pytest

from botkit.errors import ProtocolError
from botkit.protocol import (
    ClientInfo,
    HistoryResult,
    PresenceStats,
    Publication,
    StreamPosition,
    parse_error,
    parse_history,
    parse_position,
    parse_presence,
    parse_presence_stats,
)


def test_parse_presence() -> None:
    result = {"presence": {
        "c1": {"user": "42", "client": "c1", "conn_info": {"name": "Alice"},
               "chan_info": {"role": "admin"}, "unknown": 1},
        "c2": {"user": "", "client": "c2"},
    }}
    assert parse_presence(result) == {
        "c1": ClientInfo("42", "c1", {"name": "Alice"}, {"role": "admin"}),
        "c2": ClientInfo("", "c2"),
    }


@pytest.mark.parametrize("result", [{}, {"presence": {}}])
def test_parse_empty_presence(result: dict[str, Any]) -> None:
    assert parse_presence(result) == {}


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"presence": []}, "presence should be an object"),
        ({"presence": None}, "presence should be an object"),
        ({"presence": {"c1": "42"}}, "client info should be an object"),
        ({"presence": {"c1": None}}, "client info should be an object"),
        ({"presence": {"c1": {"user": 42, "client": "c1"}}}, "user should be a string"),
        ({"presence": {"c1": {"user": "42", "client": ["c1"]}}}, "client should be a string"),
    ],
)
def test_parse_presence_rejects(result: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_presence(result)


def test_parse_presence_stats() -> None:
    assert parse_presence_stats({"num_clients": 3, "num_users": 2}) == PresenceStats(3, 2)
    assert parse_presence_stats({}) == PresenceStats(0, 0)


@pytest.mark.parametrize(
    "result",
    [
        {"num_clients": "3", "num_users": 2},
        {"num_clients": 3, "num_users": True},
        {"num_clients": -1, "num_users": 0},
        {"num_clients": 1.0, "num_users": 0},
        {"num_clients": 1, "num_users": None},
        {"num_clients": 2**64, "num_users": 0},
    ],
)
def test_parse_presence_stats_rejects(result: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError, match="should be a non-negative integer"):
        parse_presence_stats(result)


def test_parse_history() -> None:
    result = {
        "publications": [
            {"data": {"text": "hi"}, "offset": 41},
            {"data": {"text": "yo"}, "offset": 42, "tags": {"k": "v"},
             "info": {"user": "7", "client": "c7"}},
            {"data": None, "offset": 2**64 - 1, "info": None},
        ],
        "epoch": "XyZa",
        "offset": 43,
    }
    assert parse_history("chat:a", result) == HistoryResult(
        (Publication("chat:a", {"text": "hi"}, 41),
         Publication("chat:a", {"text": "yo"}, 42, ClientInfo("7", "c7"), {"k": "v"}),
         Publication("chat:a", None, 2**64 - 1)),
        StreamPosition(43, "XyZa"))


def test_parse_history_of_the_stream_top_only() -> None:
    assert parse_history("c", {"epoch": "E", "offset": 9}) == HistoryResult(
        (), StreamPosition(9, "E"))
    assert parse_history("c", {}) == HistoryResult((), StreamPosition(0, ""))


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"publications": {}}, "publications should be a list"),
        ({"publications": None}, "publications should be a list"),
        ({"publications": [1]}, "a publication should be an object"),
        ({"publications": [[]]}, "a publication should be an object"),
        ({"publications": [{"tags": []}]}, "tags should map strings to strings"),
        ({"publications": [{"tags": {"k": 1}}]}, "tags should map strings to strings"),
        ({"publications": [{"offset": "1"}]}, "offset should be a non-negative integer"),
        ({"publications": [{"offset": -1}]}, "offset should be a non-negative integer"),
        ({"publications": [{"offset": True}]}, "offset should be a non-negative integer"),
        ({"publications": [{"info": "7"}]}, "client info should be an object"),
        ({"publications": [{"info": {"user": 7}}]}, "user should be a string"),
        ({"epoch": 5}, "epoch should be a string"),
        ({"offset": "x"}, "offset should be a non-negative integer"),
        ({"offset": 2**64}, "offset should be a non-negative integer"),
    ],
)
def test_parse_history_rejects(result: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_history("c", result)


def test_rejection_message_is_short_even_for_huge_values() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_presence_stats({"num_clients": "x" * 1_000_000})
    assert len(str(caught.value)) < 100


def test_parse_position() -> None:
    assert parse_position({"offset": 7, "epoch": "Ab"}) == StreamPosition(7, "Ab")
    assert parse_position({}) == StreamPosition(0, "")  # a publish to a channel without history


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"offset": "1", "epoch": "e"}, "offset should be a non-negative integer"),
        ({"offset": {"n": 1}}, "offset should be a non-negative integer"),
        ({"offset": 1, "epoch": 7}, "epoch should be a string"),
    ],
)
def test_parse_position_rejects(result: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_position(result)


def test_parse_error() -> None:
    assert parse_error({"code": 102, "message": "unknown channel"}) == (102, "unknown channel")
    assert parse_error({"code": 100}) == (100, "")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("internal", "error should be an object"),
        ([100], "error should be an object"),
        ({"code": "100", "message": "x"}, "code should be a non-negative integer"),
        ({"code": 1.5}, "code should be a non-negative integer"),
        ({"code": 100, "message": 5}, "message should be a string"),
    ],
)
def test_parse_error_rejects(raw: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_error(raw)
