"""Builders shared by the protocol tests: frames as the server writes them, and protocols already
brought to a known state. Everything is data; nothing here opens a socket."""

from __future__ import annotations

import json
from typing import Any

from botkit.protocol import ClientProtocol, Connected, ProtocolState, Subscribed

EPOCH = "XyZa"


def frame(obj: Any) -> str:
    """One compact JSON frame, the way Centrifugo encodes it."""
    return json.dumps(obj, separators=(",", ":"))


def sent(protocol: ClientProtocol) -> list[dict[str, Any]]:
    """Every frame queued for sending, decoded, in order (one message may carry several)."""
    return [json.loads(line) for message in protocol.data_to_send()
            for line in message.split("\n")]


def connect_reply(command_id: int = 1, **result: Any) -> str:
    body = {"client": "c-1", "version": "6.9.1 OSS", "ping": 25, "pong": True}
    body.update(result)
    return frame({"id": command_id, "connect": body})


def connected(*, pong: bool = True, **protocol_options: Any) -> ClientProtocol:
    """A protocol whose connect (id 1) was answered; nothing left to send."""
    protocol = ClientProtocol(**protocol_options)
    assert protocol.connect("token") == 1
    events = protocol.receive(connect_reply(pong=pong))
    assert isinstance(events[0], Connected)
    assert protocol.state is ProtocolState.CONNECTED
    protocol.data_to_send()
    return protocol


def subscribe_reply(command_id: int, **result: Any) -> str:
    return frame({"id": command_id, "subscribe": result})


def subscribed(protocol: ClientProtocol, channel: str = "chat:a", *, offset: int = 41,
               epoch: str = EPOCH, recoverable: bool = True) -> int:
    """Subscribe ``channel`` and answer it with a stream at ``offset``; returns the command id."""
    command_id = protocol.subscribe(channel)
    protocol.data_to_send()
    result: dict[str, Any] = {"recoverable": recoverable, "positioned": True}
    if recoverable:
        result.update(epoch=epoch, offset=offset)
    [event] = protocol.receive(subscribe_reply(command_id, **result))
    assert isinstance(event, Subscribed)
    return command_id


def pub_push(channel: str, offset: int = 0, data: Any = None, **extra: Any) -> str:
    pub: dict[str, Any] = {"data": {"text": "hi"} if data is None else data}
    if offset:
        pub["offset"] = offset
    pub.update(extra)
    return frame({"push": {"channel": channel, "pub": pub}})
