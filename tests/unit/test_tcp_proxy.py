"""Tests of the fault-injecting TCP proxy, against a real echo server and a real WebSocket pair."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.support.tcp_proxy import TcpProxy

PROMPT = 1.0  # a fault must be noticed within this many seconds


def cap_buffers(sock: socket.socket, size: int) -> None:
    """Fixed, small kernel buffers: no autotuning, so flow control engages early."""
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, size)


class EchoServer:
    """A loopback TCP echo server that tracks (and on close, tears down) its connections."""

    def __init__(self, socket_buffer: int | None = None) -> None:
        self.port = 0
        self.socket_buffer = socket_buffer
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def connections(self) -> int:
        return len(self._writers)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        if self.socket_buffer is not None:
            cap_buffers(writer.get_extra_info("socket"), self.socket_buffer)
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()
            await writer.wait_closed()
        except ConnectionError:
            pass
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
            self._handlers.discard(task)

    def drop_all(self) -> None:
        """The server closes every connection (FIN), as a server restart would."""
        for writer in self._writers:
            writer.close()

    def reset_all(self) -> None:
        """The server resets every connection (RST), as a crashing server host would."""
        for writer in self._writers:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    async def aclose(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        handlers = set(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.wait(handlers, timeout=2)
        await asyncio.sleep(0)  # let the aborted transports run connection_lost
        await asyncio.wait_for(self._server.wait_closed(), 2)


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


@pytest.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[TcpProxy]:
    async with TcpProxy("127.0.0.1", echo.port) as tcp_proxy:
        yield tcp_proxy
    assert tcp_proxy.active_connections == 0


@contextlib.asynccontextmanager
async def client(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.transport.abort()
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(writer.wait_closed(), 1)


async def round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     data: bytes = b"ping") -> None:
    writer.write(data)
    assert await asyncio.wait_for(reader.readexactly(len(data)), PROMPT) == data


async def read_until_closed(reader: asyncio.StreamReader) -> type[BaseException] | None:
    """Read until the connection ends; the reset error class, or None for a clean EOF."""
    try:
        while await reader.read(65536):
            pass
    except ConnectionResetError as exc:
        return type(exc)
    return None


async def eventually(condition: Callable[[], bool], within: float = PROMPT) -> None:
    """Poll ``condition`` until it holds; fail after ``within`` seconds."""
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"condition still false after {within} s")


async def test_bytes_round_trip_both_ways(proxy: TcpProxy, echo: EchoServer) -> None:
    async with client(proxy.port) as (reader, writer):
        await round_trip(reader, writer, b"hello")
        assert echo.connections == 1
        assert (proxy.connections_accepted, proxy.active_connections) == (1, 1)
        # A payload much larger than the socket buffers exercises flow control both ways.
        big = bytes(range(256)) * 8192  # 2 MiB
        writer.write(big)
        received = await asyncio.wait_for(reader.readexactly(len(big)), 5)
        assert received == big
    assert proxy.bytes_up == proxy.bytes_down == len(big) + 5
    assert proxy.bytes_dropped == 0


async def test_flow_control_bounds_what_the_proxy_buffers() -> None:
    buffer = 64 * 1024  # every socket small and fixed, so the pipe fills up well before 8 MiB
    echo = EchoServer(socket_buffer=buffer)
    await echo.start()
    try:
        async with TcpProxy("127.0.0.1", echo.port, socket_buffer=buffer) as proxy:
            sock = socket.socket()
            sock.setblocking(False)
            cap_buffers(sock, buffer)
            try:
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", proxy.port))
            except BaseException:
                sock.close()
                raise
            reader, writer = await asyncio.open_connection(sock=sock)
            try:
                big = bytes(range(256)) * (32 * 1024)  # 8 MiB
                writer.write(big)  # ... and read nothing for now
                stalled_at = -1
                for _ in range(50):
                    await asyncio.sleep(0.02)
                    if proxy.bytes_up == stalled_at:
                        break
                    stalled_at = proxy.bytes_up
                assert 0 < proxy.bytes_up < len(big)  # the echo server stopped reading too
                assert proxy.bytes_buffered < 3 * 1024 * 1024  # else: megabytes
                assert await asyncio.wait_for(reader.readexactly(len(big)), 5) == big
            finally:
                writer.transport.abort()
            assert proxy.bytes_up == proxy.bytes_down == len(big)
    finally:
        await echo.aclose()


async def test_a_reset_from_either_side_reaches_the_other(
        proxy: TcpProxy, echo: EchoServer) -> None:
    async with client(proxy.port) as (reader, writer):
        await round_trip(reader, writer)
        echo.reset_all()
        ended = await asyncio.wait_for(read_until_closed(reader), PROMPT)
        assert ended is ConnectionResetError
    async with client(proxy.port) as (reader, writer):
        await round_trip(reader, writer)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        await eventually(lambda: echo.connections == 0 and proxy.active_connections == 0)


async def test_graceful_half_close_is_forwarded(proxy: TcpProxy, echo: EchoServer) -> None:
    async with client(proxy.port) as (reader, writer):
        writer.write(b"last words")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), PROMPT) == b"last words"  # then EOF
    await eventually(lambda: proxy.active_connections == 0 and echo.connections == 0)


@pytest.mark.parametrize("reset", [False, True])
async def test_cut_drops_both_sides_promptly_and_reconnect_works(
        proxy: TcpProxy, echo: EchoServer, reset: bool) -> None:
    async with client(proxy.port) as (reader, writer), client(proxy.port) as (reader2, writer2):
        await round_trip(reader, writer)
        await round_trip(reader2, writer2)
        started = time.monotonic()
        assert await proxy.cut(reset=reset) == 2
        ended = await asyncio.wait_for(read_until_closed(reader), PROMPT)
        await asyncio.wait_for(read_until_closed(reader2), PROMPT)
        assert time.monotonic() - started < PROMPT
        assert ended is (ConnectionResetError if reset else None)
        assert proxy.active_connections == 0
        await eventually(lambda: echo.connections == 0)  # the server side was cut too
    assert (proxy.cuts, proxy.connections_cut) == (1, 2)
    async with client(proxy.port) as (reader, writer):  # the listener stayed up
        await round_trip(reader, writer, b"again")
    assert proxy.connections_accepted == 3


async def test_cut_connection_drops_only_that_one(proxy: TcpProxy, echo: EchoServer) -> None:
    async with client(proxy.port) as (reader, writer), client(proxy.port) as (reader2, writer2):
        await round_trip(reader, writer)
        await round_trip(reader2, writer2)
        assert await proxy.cut_connection(2)
        assert await asyncio.wait_for(read_until_closed(reader2), PROMPT) is None
        await round_trip(reader, writer, b"the first goes on")
        assert proxy.active_connections == 1
        assert not await proxy.cut_connection(2)  # gone already
    assert proxy.connections_cut == 1


async def test_blackhole_drops_bytes_but_keeps_connections_open(
        proxy: TcpProxy, echo: EchoServer) -> None:
    async with client(proxy.port) as (reader, writer):
        await round_trip(reader, writer)
        proxy.blackhole(True)
        writer.write(b"lost")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.3)
        assert not writer.transport.is_closing()
        assert proxy.active_connections == 1
        async with client(proxy.port) as (reader2, writer2):  # accepted, but nothing flows
            writer2.write(b"also lost")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader2.read(1), 0.3)
            assert proxy.bytes_dropped == len(b"lost") + len(b"also lost")
            assert proxy.active_connections == 2
            proxy.blackhole(False)
            await round_trip(reader2, writer2, b"new data")
        # Only the new bytes arrive: what went into the blackhole is gone for good.
        await round_trip(reader, writer, b"flowing again")


async def test_blackhole_hides_a_server_close_until_lifted(
        proxy: TcpProxy, echo: EchoServer) -> None:
    async with client(proxy.port) as (reader, writer):
        await round_trip(reader, writer)
        proxy.blackhole(True)
        echo.drop_all()
        await eventually(lambda: echo.connections == 0)
        with pytest.raises(TimeoutError):  # the client does not hear of it
            await asyncio.wait_for(reader.read(1), 0.3)
        assert proxy.active_connections == 1
        proxy.blackhole(False)  # the network is back and the server has forgotten us
        assert await asyncio.wait_for(read_until_closed(reader), PROMPT) is ConnectionResetError
    assert proxy.active_connections == 0


async def test_refuse_closes_new_connections_and_keeps_existing_ones(proxy: TcpProxy) -> None:
    async with client(proxy.port) as (reader, writer):
        await round_trip(reader, writer)
        proxy.refuse(True)
        async with client(proxy.port) as (refused_reader, _):
            started = time.monotonic()
            await asyncio.wait_for(read_until_closed(refused_reader), PROMPT)
            assert time.monotonic() - started < PROMPT
        await round_trip(reader, writer, b"still here")
        assert proxy.connections_refused == 1
        assert proxy.active_connections == 1
        proxy.refuse(False)
        async with client(proxy.port) as (reader2, writer2):
            await round_trip(reader2, writer2)
    assert proxy.connections_accepted == 3


async def test_delay_adds_latency_and_keeps_order(proxy: TcpProxy) -> None:
    async with client(proxy.port) as (reader, writer):
        started = time.monotonic()
        await round_trip(reader, writer)
        fast = time.monotonic() - started
        proxy.delay = 0.15
        started = time.monotonic()
        await round_trip(reader, writer)
        slow = time.monotonic() - started
        assert slow >= 2 * 0.15 * 0.9  # delayed on the way up and on the way down
        assert fast < 0.15
        chunks = [f"{i:03d},".encode() for i in range(40)]
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.002)
        expected = b"".join(chunks)
        assert await asyncio.wait_for(reader.readexactly(len(expected)), 2) == expected
    with pytest.raises(ValueError, match="negative"):
        proxy.delay = -1


async def test_cut_in_background_cuts_the_expected_number_of_times(proxy: TcpProxy) -> None:
    cutter = proxy.cut_in_background(times=3, interval=0.15)
    disconnects = 0
    while not cutter.done():
        async with client(proxy.port) as (reader, writer):
            await round_trip(reader, writer)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(read_until_closed(reader), 0.5)
                disconnects += 1
    assert await cutter == [1, 1, 1]
    assert disconnects == 3
    assert proxy.cuts == 3


async def test_aclose_closes_everything_and_cancels_background_cuts(echo: EchoServer) -> None:
    proxy = TcpProxy("127.0.0.1", echo.port)
    async with proxy, client(proxy.port) as (reader, writer):
        await round_trip(reader, writer)
        cutter = proxy.cut_in_background(times=5, interval=60)
        await proxy.aclose()
        assert proxy.active_connections == 0
        assert cutter.cancelled()
        assert await asyncio.wait_for(read_until_closed(reader), PROMPT) is None
        await eventually(lambda: echo.connections == 0)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", proxy.port)


async def test_upstream_down_closes_the_client(echo: EchoServer) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    dead_port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with TcpProxy("127.0.0.1", dead_port) as proxy, client(proxy.port) as (reader, _):
        ended = await asyncio.wait_for(read_until_closed(reader), PROMPT)
        assert ended is ConnectionResetError
        assert proxy.active_connections == 0


def test_rewrite_and_loopback_only() -> None:
    proxy = TcpProxy("127.0.0.1", 8000)
    proxy._port = 4321  # as if started
    assert (proxy.rewrite("ws://localhost:8000/realtime/connection/websocket?format=json")
            == "ws://127.0.0.1:4321/realtime/connection/websocket?format=json")
    assert proxy.rewrite("http://user:pw@10.0.0.1/api") == "http://user:pw@127.0.0.1:4321/api"
    with pytest.raises(ValueError, match="cannot route"):
        proxy.rewrite("ftp://localhost:21/")
    with pytest.raises(ValueError, match="loopback"):
        TcpProxy("127.0.0.1", 8000, listen_host="0.0.0.0")
    with pytest.raises(RuntimeError, match="not started"):
        _ = TcpProxy("127.0.0.1", 8000).port


async def test_websocket_through_proxy_notices_cut() -> None:
    async def echo_handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                await ws.send(message)

    async with serve(echo_handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with TcpProxy("127.0.0.1", port) as proxy:
            url = proxy.rewrite(f"ws://127.0.0.1:{port}/echo")
            async with connect(url, open_timeout=2, close_timeout=1) as ws:  # a clean close
                await ws.send("hello")
                assert await asyncio.wait_for(ws.recv(), PROMPT) == "hello"
            await eventually(lambda: proxy.active_connections == 0)

            async with connect(url, open_timeout=2, close_timeout=1) as ws:
                await ws.send("before the cut")
                assert await asyncio.wait_for(ws.recv(), PROMPT) == "before the cut"
                assert await proxy.cut() == 1
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), PROMPT)
            assert proxy.bytes_up > 0
            assert proxy.bytes_down > 0
