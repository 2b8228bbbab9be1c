"""The fault suite's WebSocket reader: the frames it finds, and where, in any chunking."""

from __future__ import annotations

import asyncio
import os
import struct

import pytest

from tests.support.tcp_proxy import TcpProxy
from tests.support.ws_tap import SocketTap, WsReader, is_command, kind_of

UPGRADE = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"


def frame(payload: bytes, *, opcode: int = 0x1, fin: bool = True, masked: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if masked else 0
    size = len(payload)
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 65536:
        head += bytes([mask_bit | 126]) + struct.pack(">H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", size)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("size", [5, 200, 70_000])
def test_messages_in_any_chunking(masked: bool, size: int) -> None:
    big = "x" * size
    stream = (UPGRADE + frame(b'{"id":1,"connect":{}}', masked=masked)
              + frame(b"", opcode=0x9, masked=masked)  # a ping between messages
              + frame(big[:size // 2].encode(), fin=False, masked=masked)
              + frame(big[size // 2:].encode(), opcode=0x0, masked=masked))
    for step in (1, 7, 1000, len(stream)):
        reader = WsReader()
        texts = [text for at in range(0, len(stream), step)
                 for _offset, text in reader.feed(stream[at:at + step])]
        assert texts == ['{"id":1,"connect":{}}', big]


def test_offsets_point_at_the_first_frame_of_a_message() -> None:
    first = frame(b"one")
    second = frame(b"tw", fin=False) + frame(b"o", opcode=0x0)
    reader = WsReader()
    assert reader.feed(UPGRADE + first + second) == [
        (len(UPGRADE), "one"), (len(UPGRADE) + len(first), "two")]
    # A message that began in an earlier chunk is reported at offset 0 of the chunk ending it.
    reader = WsReader()
    assert reader.feed(UPGRADE + second[:3]) == []
    assert reader.feed(second[3:]) == [(0, "two")]


def test_kind_of_frames() -> None:
    assert kind_of({"id": 3, "subscribe": {}}) == "subscribe"
    assert kind_of({"push": {}}) == "push"
    assert kind_of({}) == "ping"
    assert is_command("refresh")({"id": 2, "refresh": {}})
    assert not is_command("refresh")({"id": 2, "sub_refresh": {}})


async def test_a_trigger_cuts_before_its_frame_and_lets_earlier_ones_through() -> None:
    received = bytearray()
    got_eof = asyncio.Event()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.extend(data)
        got_eof.set()
        writer.close()

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    try:
        async with TcpProxy("127.0.0.1", server.sockets[0].getsockname()[1]) as proxy:
            tap = SocketTap(proxy)
            trigger = tap.arm("up", is_command("refresh"), nth=2, on_cut=lambda: "cut")
            _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            before = (UPGRADE + frame(b'{"id":1,"refresh":{}}')
                      + frame(b'{"id":2,"publish":{}}'))
            writer.write(before + frame(b'{"id":3,"refresh":{}}') + frame(b'{"id":4}'))
            await trigger.wait(5)
            async with asyncio.timeout(5):
                await got_eof.wait()
            writer.close()
        assert bytes(received) == before
        assert (trigger.recorded, trigger.connection, proxy.cuts) == ("cut", 1, 1)
        assert tap.frames["up", "refresh"] == 2
    finally:
        server.close()
        await server.wait_closed()
