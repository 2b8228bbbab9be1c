"""A small HTTP/1.1 keep-alive client for the server API's hot path: POST a body to one origin,
read the status and the whole body.

httpx spends ~700 µs of CPU per request here (httpx models, httpcore, h11 and anyio layers,
headers and body in two ``send`` calls); this client writes each request in one ``send`` from
an :class:`asyncio.Protocol` and parses the answer from the bytes as they arrive, at a fraction
of that. It does only what the server API needs: ``Content-Length`` request bodies; answers
framed by ``Content-Length``, chunked, or by the connection closing; TLS through ``ssl``; a pool
of at most ``limit`` connections to the one origin, idle ones reused newest first and dropped
after ``idle_expiry`` seconds. It sets no timeouts itself: every wait here is a future the
caller bounds (the transport wraps each attempt in ``asyncio.timeout``), and a request that is
cancelled or fails closes its connection, whose state is then unknown.

Failures are :class:`OSError` (connect, reset, TLS) or :class:`HttpProtocolError` (an answer
that is not HTTP/1.1 we can read); the transport maps both.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
from collections import deque

__all__ = ["HttpPool", "HttpProtocolError"]

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024


class HttpProtocolError(Exception):
    """The server's answer is not HTTP/1.1 this client can read."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: at most one request in flight; parses its answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._buffer = bytearray()
        self._status = 0
        self._length = -1           # body bytes expected; -1 until the head is read
        self._chunked = False
        self._until_close = False
        self._keep_alive = True
        self._body = bytearray()
        self.answered = False       # any byte of the current request's answer arrived

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Bytes nobody asked for: the connection is out of step; never reuse it.
            self.close()
            return
        self.answered = True
        self._buffer += data
        try:
            self._advance()
        except HttpProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        self.closed = True
        if self._waiter is not None and self._until_close and self._status:
            self._keep_alive = False
            self._finish()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None:
            if self._until_close and self._status:
                self._keep_alive = False
                self._finish()
            else:
                self._fail(exc or ConnectionResetError("the server closed the connection "
                                                       "before the answer was complete"))

    # -- requests --------------------------------------------------------------------------------

    async def request(self, data: bytes) -> tuple[int, bytes]:
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            raise ConnectionResetError("the connection is closed")
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self._buffer.clear()
        self._status, self._length, self._chunked, self._until_close = 0, -1, False, False
        self._keep_alive = True
        self.answered = False
        transport.write(data)
        try:
            return await waiter
        except BaseException:
            self.close()
            raise
        finally:
            self._waiter = None

    def stale(self) -> bool:
        """Whether the server has hung up (or sent something unasked) while this connection
        idled and the loop has not seen it yet: its socket is readable with nothing asked."""
        if self.closed or self.transport is None or self.transport.is_closing():
            return True
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock.fileno()], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _finish(self) -> None:
        # Done with this answer: anything arriving before the next request is unasked for.
        waiter, self._waiter = self._waiter, None
        body = bytes(self._body)
        self._body.clear()
        if not self._keep_alive or self._buffer:
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, body))

    # -- parsing ---------------------------------------------------------------------------------

    def _advance(self) -> None:
        while self._length == -1 and not self._chunked and not self._until_close:
            if not self._read_head():
                return
        if self._until_close:
            self._body += self._buffer
            self._buffer.clear()
            if len(self._body) > MAX_BODY:
                raise HttpProtocolError("the answer is too large")
        elif self._chunked:
            self._read_chunks()
        elif len(self._buffer) >= self._length:
            self._body += self._buffer[:self._length]
            del self._buffer[:self._length]
            self._finish()

    def _read_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD:
                raise HttpProtocolError("the answer's head is too long")
            return False
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[:end + 4]
        status_line, _, fields = head.partition("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise HttpProtocolError(f"not an HTTP/1.1 status line: {status_line[:40]!r}")
        status = int(code)
        length: int | None = None
        chunked = False
        connection = "" if version == "HTTP/1.1" else "close"
        for line in fields.split("\r\n") if fields else ():
            name, colon, value = line.partition(":")
            if not colon:
                raise HttpProtocolError(f"a malformed header line: {line[:40]!r}")
            name = name.strip().lower()
            if name == "content-length":
                value = value.strip()
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise HttpProtocolError(f"a bad Content-Length: {value[:20]!r}")
                length = int(value)
            elif name == "transfer-encoding":
                chunked = value.strip().lower() == "chunked"
                if not chunked:
                    raise HttpProtocolError(f"an unsupported Transfer-Encoding: {value[:20]!r}")
            elif name == "connection":
                connection = value.strip().lower()
        if status < 200:
            return True     # an interim answer (100 Continue...): its final one follows
        self._status = status
        self._keep_alive = connection != "close"
        if status in (204, 304):
            self._length = 0
        elif chunked:
            self._chunked = True
        elif length is not None:
            if length > MAX_BODY:
                raise HttpProtocolError("the answer is too large")
            self._length = length
        else:
            self._until_close = True
        return True

    def _read_chunks(self) -> None:
        buffer = self._buffer
        while True:
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                if len(buffer) > 1024:
                    raise HttpProtocolError("a chunk size line is too long")
                return
            size_text = bytes(buffer[:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpProtocolError(f"a bad chunk size: {size_text[:20]!r}") from None
            if size == 0:
                # The last chunk, then optional trailers, then an empty line.
                if buffer[line_end + 2:line_end + 4] == b"\r\n":
                    end = line_end + 4
                else:
                    end = buffer.find(b"\r\n\r\n", line_end + 2)
                    if end < 0:
                        if len(buffer) > MAX_HEAD:
                            raise HttpProtocolError("the answer's trailers are too long")
                        return
                    end += 4
                del buffer[:end]
                self._chunked = False
                self._finish()
                return
            start = line_end + 2
            if len(self._body) + size > MAX_BODY:
                raise HttpProtocolError("the answer is too large")
            if len(buffer) < start + size + 2:
                return
            if buffer[start + size:start + size + 2] != b"\r\n":
                raise HttpProtocolError("a chunk is not followed by CRLF")
            self._body += buffer[start:start + size]
            del buffer[:start + size + 2]


class HttpPool:
    """Keep-alive connections to one origin (``host``, ``port``, TLS when ``ssl_context``),
    at most ``limit`` at a time; callers beyond that wait for a connection to come back."""

    def __init__(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None,
                 limit: int = 32, idle_expiry: float = 5.0) -> None:
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(limit)
        self._idle_expiry = idle_expiry
        self._closed = False

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        """Send ``head`` (request line and headers, ending in the blank line) and ``body``;
        return the answer's status and body."""
        async with self._slots:
            connection = self._reusable()
            if connection is None:
                connection = await self._connect()
                status_body = await connection.request(head + body)
            else:
                try:
                    status_body = await connection.request(head + body)
                except OSError:
                    if connection.answered:
                        raise
                    # The server closed the idle connection as the request went out (its
                    # idle timeout): nothing was answered, so send it once on a new one.
                    connection = await self._connect()
                    status_body = await connection.request(head + body)
            if self._closed or connection.closed:
                connection.close()
            else:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            return status_body

    def _reusable(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if now - connection.idle_since < self._idle_expiry and not connection.stale():
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        if self._closed:
            raise ConnectionResetError("the HTTP client is closed")
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            _Connection, self._host, self._port, ssl=self._ssl,
            server_hostname=self._host if self._ssl is not None else None)
        return connection

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()
