"""The hot path's shortcuts (publishers' infos made once, exact ints and absent tags read
directly, jiter before the json module) give exactly what the checking path gives."""

from __future__ import annotations

from typing import Any

import pytest

from botkit.protocol import ClientInfo, ClientProtocol, Publication, StreamPosition
from botkit.protocol.client import _KNOWN_INFOS

from .helpers import EPOCH, connected, frame, pub_push, subscribed


def _ready() -> ClientProtocol:
    protocol = connected()
    subscribed(protocol, "chat:a", offset=0)
    return protocol


def test_a_publishers_info_is_made_once_and_equals_a_fresh_one() -> None:
    protocol = _ready()
    info = {"user": "u1", "client": "c1"}
    first, second = (protocol.receive(pub_push("chat:a", n, info=info))[0] for n in (1, 2))
    assert isinstance(first, Publication)
    assert isinstance(second, Publication)
    assert first.info == second.info == ClientInfo("u1", "c1")
    assert first.info is second.info


def test_infos_with_connection_or_channel_info_are_not_shared() -> None:
    protocol = _ready()
    info = {"user": "u1", "client": "c1", "conn_info": {"name": "Ann"}}
    first, second = (protocol.receive(pub_push("chat:a", n, info=info))[0] for n in (1, 2))
    assert isinstance(first, Publication)
    assert isinstance(second, Publication)
    assert first.info == second.info == ClientInfo("u1", "c1", {"name": "Ann"})
    assert first.info is not second.info


def test_the_memory_of_infos_is_bounded() -> None:
    protocol = _ready()
    count = _KNOWN_INFOS + 5
    for n in range(1, count + 1):
        [event] = protocol.receive(pub_push("chat:a", n, info={"user": f"u{n}", "client": "c"}))
        assert isinstance(event, Publication)
        assert event.info == ClientInfo(f"u{n}", "c")
    assert len(protocol._infos) <= _KNOWN_INFOS


@pytest.mark.parametrize(("pub", "reason"), [
    ({"offset": True}, "field 'offset' should be int, got bool"),
    ({"offset": -1}, "field 'offset' is negative"),
    ({"offset": 2**64}, "field 'offset' is out of range"),
    ({"offset": 1.5}, "field 'offset' should be int, got float"),
    ({"tags": None}, "field 'tags' should be dict, got NoneType"),
    ({"tags": {"k": 1}}, "tags should map strings to strings"),
    ({"info": {"user": 1, "client": "c"}}, "field 'user' should be str, got int"),
    ({"info": {"user": "u", "client": None}}, "field 'client' should be str, got NoneType"),
    # The first problem is reported, in the order offset, info, tags.
    ({"offset": -1, "info": 5, "tags": None}, "field 'offset' is negative"),
    ({"info": 5, "tags": None}, "client info should be an object"),
])
def test_malformed_publications_are_worded_as_before(pub: dict[str, Any], reason: str) -> None:
    protocol = _ready()
    assert protocol.receive(frame({"push": {"channel": "chat:a", "pub": {"data": 1, **pub}}})) == []
    assert dict(protocol.drops) == {reason: 1}


def test_tags_and_offsets_that_are_fine_are_kept() -> None:
    protocol = _ready()
    [event] = protocol.receive(pub_push("chat:a", 7, tags={"k": "v"}))
    assert event == Publication("chat:a", {"text": "hi"}, 7, tags={"k": "v"})


@pytest.mark.parametrize("escape", ["\\ud800", "\\udc00\\ud800"])
def test_what_jiter_refuses_gets_the_json_modules_verdict(escape: str) -> None:
    # Lone surrogates: jiter refuses them, the json module (and so this client) accepts them.
    protocol = _ready()
    [event] = protocol.receive('{"push":{"channel":"chat:a","pub":{"data":"' + escape + '"}}}')
    assert isinstance(event, Publication)
    assert event.data == escape.encode().decode("unicode_escape")


def test_fast_made_publications_and_positions_are_the_same_objects() -> None:
    protocol = _ready()
    info = {"user": "u1", "client": "c1"}
    [event] = protocol.receive(pub_push("chat:a", 3, info=info, tags={"k": "v"}))
    expected = Publication("chat:a", {"text": "hi"}, 3, ClientInfo("u1", "c1"), {"k": "v"})
    assert type(event) is Publication
    assert event == expected
    assert hash(event.info) == hash(expected.info)
    assert repr(event) == repr(expected)
    with pytest.raises(AttributeError):
        event.offset = 4  # type: ignore[misc]
    position = protocol.position("chat:a")
    assert position == StreamPosition(3, EPOCH)
    assert hash(position) == hash(StreamPosition(3, EPOCH))
    with pytest.raises(AttributeError):
        position.offset = 4  # type: ignore[misc, union-attr]
