"""The realtime client's WebSocket (botkit/realtime/websocket.py) against a real TCP server that
writes its frames byte by byte as each test says: split across TCP segments, several in one
segment, after the handshake response in the same segment, control frames between them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.http11 import Response

from botkit.realtime.websocket import INBOX_BYTES, WebSocket, open_websocket

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WAIT = 5.0


def frame(payload: bytes, opcode: int = 1, fin: bool = True) -> bytes:
    """A server frame (unmasked)."""
    head = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes([head, n]) + payload
    if n < 2**16:
        return bytes([head, 126]) + struct.pack("!H", n) + payload
    return bytes([head, 127]) + struct.pack("!Q", n) + payload


class Peer:
    """The server's end of one connection, after the opening handshake."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def write(self, *chunks: bytes) -> None:
        """Each chunk in its own TCP segment (drained, and a pause for the client to read)."""
        for chunk in chunks:
            self.writer.write(chunk)
            await self.writer.drain()
            await asyncio.sleep(0.02)

    async def read_frame(self) -> tuple[int, bytes]:
        """The next client frame (masked, as a client's must be): opcode and payload."""
        async with asyncio.timeout(WAIT):
            b0, b1 = await self.reader.readexactly(2)
            assert b1 & 0x80, "a client frame must be masked"
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            mask = await self.reader.readexactly(4)
            data = await self.reader.readexactly(n)
        return b0 & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


Script = Callable[[Peer, bytes], Awaitable[None]]
Serve = Callable[[Script], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []
    done: list[asyncio.Future[None]] = []

    async def start(script: Script) -> str:
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.append(finished)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                request = await reader.readuntil(b"\r\n\r\n")
                key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                           if line.lower().startswith(b"sec-websocket-key:"))
                accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
                response = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept
                            + b"\r\n\r\n")
                await script(Peer(reader, writer), response)
                finished.set_result(None)
            except BaseException as exc:
                finished.set_exception(exc)
                raise
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/realtime/connection/websocket"

    yield start
    for finished in done:
        async with asyncio.timeout(WAIT):
            await finished  # the server's own assertions
    for server in servers:
        server.close()
        await server.wait_closed()


async def connect(url: str, max_size: int = 2**20) -> WebSocket:
    async with asyncio.timeout(WAIT):
        return await open_websocket(url, max_size=max_size, user_agent="botkit/test",
                                    close_timeout=1.0)


async def receive_all(ws: WebSocket) -> list[str | bytes]:
    """Everything until the connection closes."""
    got: list[str | bytes] = []
    async with asyncio.timeout(WAIT):
        while batch := await ws.receive():
            got.extend(batch)
    return got


async def test_frames_split_across_segments_and_joined_in_one(serve: Serve) -> None:
    long = b"x" * 300  # a 16-bit length, split inside it
    huge = b"y" * 70_000  # a 64-bit length

    async def script(peer: Peer, response: bytes) -> None:
        # The first message in the handshake response's own segment.
        await peer.write(response + frame(b"first"))
        await peer.write(frame(b"a") + frame(b"b") + frame(b"c"))
        whole = frame(long)
        await peer.write(whole[:1], whole[1:3], whole[3:100], whole[100:])
        whole = frame(huge)
        await peer.write(whole[:5], whole[5:40_000], whole[40_000:])
        await peer.write(frame("é€".encode())[:3], frame("é€".encode())[3:])

    ws = await connect(await serve(script))
    got = await receive_all(ws)
    assert got == ["first", "a", "b", "c", long.decode(), huge.decode(), "é€"]


async def test_the_handshake_response_is_not_kept_once_open(serve: Serve) -> None:
    # websockets' parser held the response (its headers) for the connection's life (~2 KiB a
    # connection, bench/ S4); a fresh frame parser takes over, and frames still parse there.
    async def script(peer: Peer, response: bytes) -> None:
        await peer.write(response)
        await peer.write(frame(b"hel", fin=False) + frame(b"lo", opcode=0), frame(b"after"))

    ws = await connect(await serve(script))
    parser = ws._ws.parser
    assert parser.gi_frame is not None
    assert "response" not in parser.gi_frame.f_locals
    assert not [value for value in parser.gi_frame.f_locals.values()
                if isinstance(value, Response)]
    assert await receive_all(ws) == ["hello", "after"]


async def test_a_server_ping_gets_its_pong_and_messages_go_on(serve: Serve) -> None:
    async def script(peer: Peer, response: bytes) -> None:
        await peer.write(response, frame(b"one") + frame(b"are you there", opcode=9)[:4])
        await peer.write(frame(b"are you there", opcode=9)[4:] + frame(b"two"))
        assert await peer.read_frame() == (10, b"are you there")
        await peer.write(frame(b"unasked", opcode=10) + frame(b"three"))

    ws = await connect(await serve(script))
    assert await receive_all(ws) == ["one", "two", "three"]


async def test_fragmented_and_binary_messages_are_assembled(serve: Serve) -> None:
    async def script(peer: Peer, response: bytes) -> None:
        await peer.write(response, frame(b"hel", fin=False) + frame(b"lo", opcode=0))
        await peer.write(frame(b"\x00\x01", opcode=2), frame(b"after"))

    ws = await connect(await serve(script))
    assert await receive_all(ws) == ["hello", b"\x00\x01", "after"]


async def test_the_peers_close_frame_is_echoed(serve: Serve) -> None:
    async def script(peer: Peer, response: bytes) -> None:
        await peer.write(response, frame(b"last") + frame(struct.pack("!H", 4001) + b"gone",
                                                          opcode=8))
        opcode, payload = await peer.read_frame()
        assert (opcode, payload[:2]) == (8, struct.pack("!H", 4001))

    ws = await connect(await serve(script))
    assert await receive_all(ws) == ["last"]
    assert ws.close_rcvd is not None
    assert (ws.close_rcvd.code, ws.close_rcvd.reason) == (4001, "gone")


async def test_our_close_gets_the_peers_answer(serve: Serve) -> None:
    async def script(peer: Peer, response: bytes) -> None:
        await peer.write(response)
        assert await peer.read_frame() == (1, b'{"hello":1}')
        opcode, payload = await peer.read_frame()
        assert (opcode, payload) == (8, struct.pack("!H", 4002) + b"bye")
        await peer.write(frame(payload, opcode=8))

    ws = await connect(await serve(script))
    ws.send('{"hello":1}')
    async with asyncio.timeout(WAIT):
        await ws.close(4002, "bye")
    assert ws.close_rcvd is not None
    assert ws.close_rcvd.code == 4002


@pytest.mark.parametrize(("payload", "code"), [
    (b"z" * 2000, 1009),  # over max_size
    (b"\xff\xfe", 1007),  # not UTF-8
])
async def test_a_bad_message_closes_with_the_matching_code(serve: Serve, payload: bytes,
                                                           code: int) -> None:
    async def script(peer: Peer, response: bytes) -> None:
        await peer.write(response + frame(b"fine") + frame(payload) + frame(b"never"))
        opcode, data = await peer.read_frame()
        assert (opcode, struct.unpack("!H", data[:2])[0]) == (8, code)

    ws = await connect(await serve(script), max_size=1000)
    assert await receive_all(ws) == ["fine"]


async def test_a_reader_that_falls_behind_stops_the_socket_being_read(serve: Serve) -> None:
    message = b"m" * 60_000
    count = 3 * INBOX_BYTES // len(message)

    async def script(peer: Peer, response: bytes) -> None:
        await peer.write(response)
        for _ in range(count):
            peer.writer.write(frame(message))
        await peer.writer.drain()

    ws = await connect(await serve(script))
    await asyncio.sleep(0.3)  # the client reads until its inbox is over the limit, then stops
    first = await ws.receive()
    assert len(first) < count
    assert sum(map(len, first)) <= INBOX_BYTES + 256 * 2**10 + len(message)
    rest = await receive_all(ws)
    assert len(first) + len(rest) == count


async def test_a_refused_handshake_raises(serve: Serve) -> None:
    from websockets.exceptions import InvalidStatus

    async def script(peer: Peer, response: bytes) -> None:
        await peer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")

    with pytest.raises(InvalidStatus):
        await connect(await serve(script))
