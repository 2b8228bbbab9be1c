"""Cutting a proxied WebSocket at an exact point of the Centrifugo client protocol.

A :class:`SocketTap` reads what flows through a :class:`~tests.support.tcp_proxy.TcpProxy`
(the HTTP upgrade, then WebSocket frames, masked or not) as protocol frames, the JSON objects
of each text message, and cuts every connection when an armed :class:`Trigger` matches::

    tap = SocketTap(proxy)
    trigger = tap.arm("up", is_command("refresh"))          # the client sends a refresh
    trigger = tap.arm("down", is_reply("subscribe"), nth=250)  # the 250th subscribe reply

The cut happens before the matching message is forwarded (the messages before it in the same
chunk go through), so a command is lost on its way or a reply never arrives: a cut *during*
that exchange, whatever the timing of the machine. ``on_cut`` runs at the moment of the cut,
to record what the client was doing (its state) when it lost the connection. With
``close=(code, reason)`` (down only) the server seems to close the connection with that code
instead of the reply: a close frame, then the cut.

Only what the realtime tests need: text messages, no compression (botkit and the servers do
not negotiate it), control frames skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.tcp_proxy import TcpProxy

__all__ = ["SocketTap", "Trigger", "WsReader", "close_frame", "is_command", "is_reply",
           "kind_of"]

Frame = dict[str, Any]
Match = Callable[[Frame], bool]

_TEXT, _CONTINUATION = 0x1, 0x0


def kind_of(frame: Frame) -> str:
    """What a protocol frame is: its method ("connect", "subscribe", ...), "push", "error"
    or "ping" (an empty object)."""
    for key in frame:
        if key != "id":
            return key
    return "ping"


def is_command(method: str) -> Match:
    """A client command (up) of ``method``."""
    return lambda frame: "id" in frame and method in frame


def is_reply(method: str) -> Match:
    """A successful reply (down) to a ``method`` command."""
    return lambda frame: "id" in frame and method in frame


def close_frame(code: int, reason: str = "") -> bytes:
    """A server's (unmasked) WebSocket close frame."""
    payload = code.to_bytes(2, "big") + reason.encode()
    if len(payload) > 125:
        raise ValueError("a close frame's payload is at most 125 bytes")
    return bytes([0x88, len(payload)]) + payload


def _unmask(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return payload
    size = len(payload)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


class WsReader:
    """One direction of one WebSocket connection, fed as TCP chunks.

    :meth:`feed` returns the text messages completed by a chunk, each with the offset in that
    chunk where its first frame began (0 when it began in an earlier chunk).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._upgraded = False
        self._fragments: list[bytes] = []
        self._message_start: int | None = None  # where the message under way began

    def feed(self, chunk: bytes) -> list[tuple[int, str]]:
        base = len(self._buffer)  # offset of this chunk in the buffer
        self._buffer += chunk
        consumed = 0
        if not self._upgraded:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return []
            consumed = end + 4
            self._upgraded = True
        messages: list[tuple[int, str]] = []
        buffer = self._buffer
        while True:
            frame = self._frame_at(buffer, consumed)
            if frame is None:
                break
            start, end, fin, opcode, payload = frame
            consumed = end
            if opcode >= 0x8:
                continue  # close, ping, pong: not protocol frames
            if opcode == _TEXT or not self._fragments:
                self._fragments = []
                self._message_start = start
            if opcode in (_TEXT, _CONTINUATION):
                self._fragments.append(payload)
            if fin:
                text = b"".join(self._fragments).decode("utf-8", errors="replace")
                began = self._message_start
                messages.append((max(0, began - base) if began is not None else 0, text))
                self._fragments = []
                self._message_start = None
        # Keep what is not a whole frame yet. A start before the kept part (negative) means
        # "in an earlier chunk".
        if self._message_start is not None:
            self._message_start -= consumed
        del buffer[:consumed]
        return messages

    @staticmethod
    def _frame_at(buffer: bytearray, at: int) -> tuple[int, int, bool, int, bytes] | None:
        if len(buffer) - at < 2:
            return None
        first, second = buffer[at], buffer[at + 1]
        length = second & 0x7F
        header = 2
        if length == 126:
            if len(buffer) - at < 4:
                return None
            length = int.from_bytes(buffer[at + 2:at + 4], "big")
            header = 4
        elif length == 127:
            if len(buffer) - at < 10:
                return None
            length = int.from_bytes(buffer[at + 2:at + 10], "big")
            header = 10
        masked = bool(second & 0x80)
        mask = b""
        if masked:
            if len(buffer) - at < header + 4:
                return None
            mask = bytes(buffer[at + header:at + header + 4])
            header += 4
        end = at + header + length
        if len(buffer) < end:
            return None
        payload = bytes(buffer[at + header:end])
        if masked:
            payload = _unmask(payload, mask)
        return at, end, bool(first & 0x80), first & 0x0F, payload


@dataclass(eq=False)
class Trigger:
    """An armed cut: the ``nth`` frame in ``direction`` that ``match`` accepts cuts."""

    direction: str
    match: Match
    nth: int = 1
    on_cut: Callable[[], Any] | None = None
    close: tuple[int, str] | None = None
    seen: int = 0
    fired: asyncio.Event = field(default_factory=asyncio.Event)
    recorded: Any = None
    """What ``on_cut`` returned at the moment of the cut."""
    connection: int = 0
    """The proxied connection (numbered from 1) it cut."""

    async def wait(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self.fired.wait()


class SocketTap:
    """Reads every proxied connection as protocol frames; cuts when an armed trigger matches.

    ``frames`` counts what went by, as ("up"/"down", kind) → count, across connections;
    ``by_connection`` the same per connection (number, "up"/"down", kind), and ``client_ids``
    maps each connection's number to the client id its connect reply gave (a client with
    several connections through one proxy: which one is which).
    """

    def __init__(self, proxy: TcpProxy) -> None:
        self.frames: Counter[tuple[str, str]] = Counter()
        self.by_connection: Counter[tuple[int, str, str]] = Counter()
        self.client_ids: dict[int, str] = {}
        self._readers: dict[tuple[int, str], WsReader] = {}
        self._armed: list[Trigger] = []
        proxy.tap = self._on_chunk

    def arm(self, direction: str, match: Match, *, nth: int = 1,
            on_cut: Callable[[], Any] | None = None,
            close: tuple[int, str] | None = None) -> Trigger:
        if direction not in ("up", "down") or nth < 1:
            raise ValueError("direction is 'up' or 'down' and nth is at least 1")
        if close is not None and direction != "down":
            raise ValueError("only the server closes with a code here (direction 'down')")
        trigger = Trigger(direction, match, nth, on_cut, close)
        self._armed.append(trigger)
        return trigger

    def _on_chunk(self, connection: int, direction: str,
                  chunk: bytes) -> int | tuple[int, bytes] | None:
        reader = self._readers.setdefault((connection, direction), WsReader())
        for offset, text in reader.feed(chunk):
            for line in text.split("\n"):
                if not line.strip():
                    continue
                try:
                    frame = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(frame, dict):
                    continue
                kind = kind_of(frame)
                self.frames[direction, kind] += 1
                self.by_connection[connection, direction, kind] += 1
                if direction == "down" and isinstance(frame.get("connect"), dict):
                    self.client_ids[connection] = str(frame["connect"].get("client", ""))
                for trigger in self._armed:
                    if trigger.direction != direction or not trigger.match(frame):
                        continue
                    trigger.seen += 1
                    if trigger.seen == trigger.nth:
                        self._armed.remove(trigger)
                        trigger.connection = connection
                        if trigger.on_cut is not None:
                            trigger.recorded = trigger.on_cut()
                        trigger.fired.set()
                        if trigger.close is not None:
                            return offset, close_frame(*trigger.close)
                        return offset
        return None
