"""One WebSocket as an asyncio protocol over websockets' sans-I/O ``ClientProtocol``.

The reader takes every text message that arrived since it last looked, in one batch, instead
of one ``recv()`` (a future, a task switch and websockets' own assembler) per message; control
frames are answered here, as they arrive, whatever the reader is doing: a server ping gets its
pong, a close frame its echo. Sends are written straight to the transport.

What is not taken yet is bounded: past :data:`INBOX_BYTES` the transport stops reading until the
reader catches up, so a slow consumer pushes back on the socket as ``recv()`` did.
:func:`open_websocket` raises what ``websockets.connect`` raised (``OSError``,
``TimeoutError`` from the caller's deadline, :class:`websockets.WebSocketException`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import cast

from websockets.client import ClientProtocol
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Protocol, State
from websockets.uri import parse_uri

__all__ = ["INBOX_BYTES", "WebSocket", "open_websocket"]

INBOX_BYTES = 256 * 2**10
"""Received messages the reader has not taken yet, in bytes, past which the socket is not read
(one read of the transport may add up to 256 KiB more)."""

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_HEAD, _FAST, _SLOW = "head", "fast", "slow"
_MAX_HEAD = 64 * 2**10
_NO_MESSAGES: list[str | bytes] = []
_TLS: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    global _TLS  # one context for every wss connection: each costs ~100 KiB
    if _TLS is None:
        _TLS = ssl.create_default_context()
    return _TLS


async def open_websocket(url: str, *, max_size: int, user_agent: str,
                         close_timeout: float) -> WebSocket:
    """Open the TCP (or TLS) connection and complete the opening handshake. The caller bounds
    the wait; the socket is aborted if that or anything else fails."""
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()
    socket = WebSocket(ClientProtocol(uri, max_size=max_size), user_agent, close_timeout,
                       max_size)
    await loop.create_connection(lambda: socket, uri.host, uri.port,
                                 ssl=_tls() if uri.secure else None)
    try:
        await socket.opened
    except BaseException:
        socket.abort()
        raise
    return socket


class WebSocket(asyncio.Protocol):
    """The client's end of one WebSocket (asyncio's TCP_NODELAY is on for TCP transports)."""

    def __init__(self, ws: ClientProtocol, user_agent: str, close_timeout: float,
                 max_size: int) -> None:
        loop = asyncio.get_running_loop()
        self._ws = ws
        self._max_size = max_size
        self._mode = _HEAD
        self._buf = bytearray()
        self._user_agent = user_agent
        self._close_timeout = close_timeout
        self._transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._inbox: list[str | bytes] = []
        self._inbox_bytes = 0
        self._parts: list[bytes | bytearray | memoryview] = []  # a message still arriving
        self._text = False  # the message in fragments is text
        self._wake: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._closer: asyncio.TimerHandle | None = None
        self.on_writable: Callable[[], None] | None = None
        """Called (no argument) when the transport takes writes again after pushing back."""

    # -- what the connection sees --------------------------------------------------------------

    @property
    def close_rcvd(self) -> Close | None:
        """The close frame the peer sent, if any."""
        return self._ws.close_rcvd

    @property
    def writable(self) -> bool:
        """The transport's buffer is below its high-water mark: sends go out now."""
        return not self._writing_paused and self._ws.state is State.OPEN

    async def receive(self) -> list[str | bytes]:
        """Every message received since the last call, in order (waits for at least one); an
        empty list once the connection is closed and everything received was taken."""
        while not self._inbox:
            if self.closed.done():
                return _NO_MESSAGES
            self._wake = asyncio.get_running_loop().create_future()
            try:
                await self._wake
            finally:
                self._wake = None
        batch, self._inbox, self._inbox_bytes = self._inbox, [], 0
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()
        return batch

    def send(self, text: str) -> None:
        """Write one text message (InvalidState once the connection is closing)."""
        self._ws.send_text(text.encode())
        self._flush()

    async def close(self, code: int, reason: str) -> None:
        """The closing handshake: our close frame, the peer's, then the peer closes TCP (the
        caller bounds the wait and aborts)."""
        if self._ws.state is State.OPEN:
            self._ws.send_close(code, reason)
            self._flush()
        await asyncio.shield(self.closed)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        request = self._ws.connect()
        request.headers["User-Agent"] = self._user_agent
        self._ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._mode is _FAST:
            buf = self._buf
            buf += data
            self._scan(buf)
        elif self._mode is _HEAD:
            self._head(data)
        else:
            self._slow(data)
        if self._ws.state is State.CLOSING:
            self._expect_close()
        if self._inbox:
            wake = self._wake
            if wake is not None and not wake.done():
                wake.set_result(None)
            if self._inbox_bytes > INBOX_BYTES and not self._reading_paused:
                self._reading_paused = True
                cast(asyncio.Transport, self._transport).pause_reading()

    def _head(self, data: bytes) -> None:
        """The opening handshake's response: websockets is given exactly its bytes, so that
        what follows starts at a frame's first byte."""
        buf = self._buf
        buf += data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HEAD:
                self._mode = _SLOW  # websockets refuses it (too long)
                self._slow(self._take(len(buf)))
            return
        self._slow(self._take(end + 4))
        if self._ws.state is State.OPEN:
            self._forget_handshake()
            self._mode = _FAST
            self._scan(buf)
        else:  # refused (its body may follow), or not a WebSocket: websockets' to judge
            self._mode = _SLOW
            if buf:
                self._slow(self._take(len(buf)))

    def _forget_handshake(self) -> None:
        """websockets' parser keeps the handshake's response (its headers, ~2 KiB) for the
        connection's life: a local of the generator that goes on to parse frames. A fresh
        frame parser takes over instead. It starts where the old one stood, at a frame's first
        byte with nothing buffered (websockets was given exactly the response's bytes)."""
        ws = self._ws
        if ws.reader.buffer or ws.reader.eof:
            return  # not where a fresh parser would start: keep websockets' own
        parser = Protocol.parse(ws)
        next(parser)  # to its first wait for data, as websockets starts its parsers
        old, ws.parser = ws.parser, parser
        old.close()

    def _take(self, size: int) -> bytes:
        buf = self._buf
        head = bytes(buf[:size])
        del buf[:size]
        return head

    def _scan(self, buf: bytearray) -> None:
        """Read whole frames out of ``buf``. Unfragmented text frames, the server's usual, are
        decoded here; a whole control frame goes to websockets (ping → pong, close → echo);
        anything else (fragments, binary, a reserved bit, a mask, an oversized length) hands
        this frame and everything after it to websockets for good."""
        n = len(buf)
        pos = 0
        inbox, max_size = self._inbox, self._max_size
        size = 0
        with memoryview(buf) as view:
            while n - pos >= 2:
                b0, length = buf[pos], buf[pos + 1]
                head = 2
                if length > 125:
                    if length == 126:
                        if n - pos < 4:
                            break
                        length, head = (buf[pos + 2] << 8) | buf[pos + 3], 4
                    elif length == 127:
                        if n - pos < 10:
                            break
                        length, head = int.from_bytes(view[pos + 2:pos + 10]), 10
                    else:
                        length = -1  # masked: websockets refuses it
                end = pos + head + length
                if b0 == 0x81 and 0 <= length <= max_size:
                    if end > n:
                        break
                    try:
                        inbox.append(str(view[pos + head:end], "utf-8"))
                    except UnicodeDecodeError:
                        self._mode = _SLOW
                        self._invalid_text()
                        pos = n
                        break
                    size += length
                    pos = end
                elif 0x88 <= b0 <= 0x8A and length >= 0:  # a whole, unmasked control frame
                    if end > n:
                        break
                    self._slow(bytes(view[pos:end]))
                    pos = end
                    if self._ws.state is not State.OPEN:
                        self._mode = _SLOW  # closing: websockets has the rest
                        break
                else:
                    self._mode = _SLOW
                    break
        self._inbox_bytes += size
        del buf[:pos]
        if self._mode is _SLOW and buf:
            self._slow(self._take(len(buf)))

    def _slow(self, data: bytes) -> None:
        ws = self._ws
        ws.receive_data(data)
        events = ws.events_received()
        self._flush()
        inbox = self._inbox
        for event in events:
            if type(event) is Frame:
                opcode = event.opcode
                if opcode is _TEXT and event.fin and not self._parts:
                    try:
                        inbox.append(str(event.data, "utf-8"))
                    except UnicodeDecodeError:
                        self._invalid_text()
                        break
                    self._inbox_bytes += len(event.data)
                elif opcode is _TEXT or opcode is _BINARY or opcode is _CONT:
                    self._fragment(event)
                # control frames: websockets answered them already
            elif isinstance(event, Response):
                self._handshake_done()

    def eof_received(self) -> bool | None:
        self._ws.receive_eof()
        self._flush()
        return None  # asyncio closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._ws.receive_eof()  # idempotent: the protocol's state is CLOSED from here
        if self._closer is not None:
            self._closer.cancel()
        if not self.opened.done():
            self.opened.set_exception(self._ws.handshake_exc or exc or ConnectionResetError(
                "the connection closed during the opening handshake"))
            self.opened.exception()  # retrieved by open_websocket, or nobody: no warning
        if not self.closed.done():
            self.closed.set_result(None)
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self.on_writable is not None:
            self.on_writable()

    # -- the rest ------------------------------------------------------------------------------

    def _handshake_done(self) -> None:
        if self.opened.done():
            return
        error = self._ws.handshake_exc
        if error is not None:
            self.opened.set_exception(error)
        else:
            self.opened.set_result(None)

    def _fragment(self, frame: Frame) -> None:
        """A fragmented message, or a binary one (websockets checks the order of fragments and
        the size of the whole message)."""
        if frame.opcode is not _CONT:
            self._text = frame.opcode is _TEXT
        self._parts.append(frame.data)
        if not frame.fin:
            return
        data = b"".join(self._parts)
        self._parts = []
        if not self._text:
            self._inbox.append(data)
            return
        try:
            self._inbox.append(data.decode())
        except UnicodeDecodeError:
            self._invalid_text()
            return
        self._inbox_bytes += len(data)

    def _invalid_text(self) -> None:
        self._ws.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
        self._flush()

    def _expect_close(self) -> None:
        """A close frame went out (ours or our echo of the peer's): the peer closes TCP next,
        or is cut off after the close timeout."""
        if self._closer is None and self._transport is not None:
            self._closer = asyncio.get_running_loop().call_later(
                self._close_timeout, self._transport.abort)

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for data in self._ws.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()

