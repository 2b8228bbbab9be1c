"""A real TCP proxy for tests that injects network faults between a client and a server.

Tests of the realtime client put a :class:`TcpProxy` between the client and a real server and
then break the network on purpose::

    async with TcpProxy("127.0.0.1", server_port) as proxy:
        client = Client(proxy.rewrite(server_url))
        ...
        await proxy.cut()            # both sides see the connection drop at once
        await proxy.cut_connection(2)  # only the second connection accepted drops
        proxy.blackhole(True)        # connections stay open, every byte is lost
        proxy.refuse(True)           # new connections are reset at once
        proxy.delay = 0.2            # every chunk arrives 0.2 s late, in order

The proxy is built on asyncio protocols so that it owns every transport and every task it
creates: :meth:`TcpProxy.aclose` stops listening, aborts every connection, cancels every task
and waits (bounded) until all of them are gone.

Semantics of the faults:

* ``cut()`` aborts both sockets of every current connection (``transport.abort()``); the peers
  see EOF, or a reset with ``cut(reset=True)``, within one loop iteration. The listener stays up.
* ``blackhole(True)`` drops every byte in both directions, and also hides EOFs and resets, so a
  client only notices through its own ping timeout. A connection whose other side went away
  while blackholed is reset when the blackhole is lifted (like a TCP peer that forgot it).
* ``refuse(True)`` resets every new connection right after accept (the server is down);
  existing connections keep working.
* ``delay`` adds latency to every chunk (and EOF) forwarded, in both directions, preserving
  order; it is latency, not a throughput limit.
* ``tap`` (a callable) sees every chunk before it is forwarded, with its connection and its
  direction; returning an offset ``n`` forwards ``chunk[:n]`` and then cuts every connection,
  as :meth:`TcpProxy.cut` would, with the rest of the chunk lost. That is how a test cuts at an
  exact point of a protocol exchange (see ``tests/support/ws_tap.py``) instead of on a timer.
  Returning ``(n, extra)`` sends ``extra`` bytes after ``chunk[:n]`` (a close frame, say) and
  cuts a moment later, once the peer has had the time to read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Tap", "TcpProxy"]

_HIGH_WATER = 256 * 1024  # stop reading from a side once this much is queued for the other
_LOW_WATER = 64 * 1024
_SETTLE_TIMEOUT = 5.0  # bound for cut()/aclose() waiting for connections to be gone
_URL_SCHEMES = frozenset({"ws", "wss", "http", "https"})


_INJECT_GRACE = 0.2  # seconds for a peer to read injected bytes before the cut


class _CutMarker:
    """Queued after the bytes a tap let through: the pump cuts once they are written, after
    ``grace`` seconds."""

    def __init__(self, grace: float) -> None:
        self.grace = grace


Tap = Callable[[int, str, bytes], int | tuple[int, bytes] | None]
"""``tap(connection, direction, chunk)``: ``connection`` numbers the proxied connections from 1
in accept order, ``direction`` is "up" (client to server) or "down". None forwards the chunk;
an offset forwards that much of it and cuts; ``(offset, extra)`` also sends ``extra`` first."""


def _abort(transport: asyncio.Transport, *, reset: bool) -> None:
    """Abort a transport; with ``reset`` the peer gets a TCP RST instead of a FIN."""
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _Endpoint(asyncio.Protocol):
    """One TCP socket of a proxied connection: the accepted client or the upstream server."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.writable = asyncio.Event()
        self.writable.set()

    # asyncio.Protocol callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._conn.made(self)

    def data_received(self, data: bytes) -> None:
        self._conn.received(self, data)

    def eof_received(self) -> bool:
        self._conn.received(self, None)
        return True  # keep the socket half-open: the other direction may still flow

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self.writable.set()  # never leave a pump waiting for a socket that is gone
        self._conn.lost(self, exc)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    # helpers ----------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.transport is not None and not self.closed.done()

    def abort(self, *, reset: bool) -> None:
        if self.alive:
            assert self.transport is not None
            _abort(self.transport, reset=reset)


async def _flushed(endpoint: _Endpoint, timeout: float = 1.0) -> None:
    """Wait (bounded) until ``endpoint`` has handed what it was given to the kernel: an abort
    would discard it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while endpoint.alive and loop.time() < deadline:
        assert endpoint.transport is not None
        if not endpoint.transport.get_write_buffer_size():
            return
        await asyncio.sleep(0.005)


class _Direction:
    """Bytes queued from one endpoint to the other, with their due time (for ``delay``)."""

    def __init__(self, name: str, source: _Endpoint, dest: _Endpoint) -> None:
        self.name = name  # "up" (client -> server) or "down"
        self.source = source
        self.dest = dest
        self.queue: asyncio.Queue[tuple[float, bytes | _CutMarker | None]] = asyncio.Queue()
        self.pending = 0
        self.paused = False


class _Connection:
    """A client connection and its upstream connection, with one pump task per direction."""

    def __init__(self, proxy: TcpProxy) -> None:
        self._proxy = proxy
        self._loop = asyncio.get_running_loop()
        self.client = _Endpoint(self)
        self.upstream = _Endpoint(self)
        self.up = _Direction("up", self.client, self.upstream)
        self.down = _Direction("down", self.upstream, self.client)
        self.task: asyncio.Task[None] | None = None
        self.number = 0  # set on accept: 1, 2, ... as the proxy accepted them
        self.tapped_cut = False  # a tap asked for a cut: nothing more is forwarded
        self.stale = False  # one side went away while blackholed
        self._aborted = False
        self._finishing = False  # both directions ended with EOF: a graceful close

    # callbacks from the endpoints -------------------------------------------------------------
    def made(self, endpoint: _Endpoint) -> None:
        if self._proxy.socket_buffer is not None:
            sock = endpoint.transport.get_extra_info("socket") if endpoint.transport else None
            if sock is not None:
                for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                    sock.setsockopt(socket.SOL_SOCKET, option, self._proxy.socket_buffer)
        if endpoint is self.client:
            self._proxy._accepted(self)
        elif self._aborted:
            endpoint.abort(reset=False)

    def received(self, endpoint: _Endpoint, data: bytes | None) -> None:
        proxy = self._proxy
        if self.tapped_cut:
            return  # the rest of a chunk a tap cut at, and anything after it
        if data is not None and proxy._blackholed:
            proxy.bytes_dropped += len(data)
            return
        direction = self.up if endpoint is self.client else self.down
        due = self._loop.time() + proxy._delay
        if data is not None and proxy.tap is not None:
            verdict = proxy._run_tap(self.number, direction.name, data)
            if verdict is not None:
                cut_at, extra = verdict
                self.tapped_cut = True
                for part in (data[:cut_at], extra):
                    if part:
                        direction.queue.put_nowait((due, part))
                        direction.pending += len(part)
                grace = _INJECT_GRACE if extra else 0.0
                direction.queue.put_nowait((due, _CutMarker(grace)))
                return
        direction.queue.put_nowait((due, data))
        if data is not None:
            direction.pending += len(data)
            if direction.pending > _HIGH_WATER and not direction.paused:
                direction.paused = True
                assert endpoint.transport is not None
                endpoint.transport.pause_reading()

    def lost(self, endpoint: _Endpoint, exc: Exception | None) -> None:
        if self._aborted or self._finishing:
            return  # we closed it ourselves
        if self._proxy._blackholed:
            self.stale = True  # the other side must not hear of it through the blackhole
            return
        self.abort(reset=exc is not None)

    # lifecycle --------------------------------------------------------------------------------
    def abort(self, *, reset: bool) -> None:
        """Abort both sockets at once and stop the pumps (safe to call more than once)."""
        self._aborted = True
        self.client.abort(reset=reset)
        self.upstream.abort(reset=reset)
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()  # a no-op once it is done

    def buffered(self) -> int:
        """Bytes held by the proxy for this connection: queued plus in the write buffers."""
        size = self.up.pending + self.down.pending
        for endpoint in (self.client, self.upstream):
            if endpoint.alive:
                assert endpoint.transport is not None
                size += endpoint.transport.get_write_buffer_size()
        return size

    def closed_futures(self) -> list[asyncio.Future[None]]:
        return [ep.closed for ep in (self.client, self.upstream) if ep.transport is not None]

    async def run(self) -> None:
        proxy = self._proxy
        try:
            try:
                async with asyncio.timeout(proxy.connect_timeout):
                    await self._loop.create_connection(
                        lambda: self.upstream, proxy.target_host, proxy.target_port)
            except (OSError, TimeoutError):
                if not proxy._blackholed:
                    self.abort(reset=True)  # the server is down: so is this connection
                    return
                self.stale = True  # a dead network: the client finds out by itself
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._pump(self.up))
                tasks.create_task(self._pump(self.down))
            # Both directions ended with an EOF: close gracefully, flushing what is buffered.
            self._finishing = True
            for endpoint in (self.client, self.upstream):
                if endpoint.transport is not None:
                    endpoint.transport.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_SETTLE_TIMEOUT):
                    await asyncio.wait(self.closed_futures())
        finally:
            self.client.abort(reset=False)
            self.upstream.abort(reset=False)

    async def _pump(self, direction: _Direction) -> None:
        proxy = self._proxy
        while True:
            due, data = await direction.queue.get()
            if isinstance(data, _CutMarker):
                wait = due - self._loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await _flushed(direction.dest)
                if data.grace:
                    await asyncio.sleep(data.grace)
                proxy._cut_now()
                return
            if data is not None:
                direction.pending -= len(data)
                if direction.paused and direction.pending <= _LOW_WATER:
                    direction.paused = False
                    if direction.source.alive:
                        assert direction.source.transport is not None
                        direction.source.transport.resume_reading()
            wait = due - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            dest = direction.dest
            if proxy._blackholed or not dest.alive:
                if data is None:
                    self.stale = True  # the EOF is lost: keep waiting until cut or unblackholed
                else:
                    proxy.bytes_dropped += len(data)
                continue
            assert dest.transport is not None
            if data is None:
                try:
                    if dest.transport.can_write_eof():
                        dest.transport.write_eof()
                    else:
                        dest.transport.close()
                except OSError:
                    # The peer reset between our liveness check and the shutdown (ENOTCONN):
                    # nobody is left to tell about the EOF.
                    dest.transport.abort()
                return
            if not dest.writable.is_set():
                await dest.writable.wait()
            dest.transport.write(data)
            if direction is self.up:
                proxy.bytes_up += len(data)
            else:
                proxy.bytes_down += len(data)


class TcpProxy:
    """A loopback TCP proxy to ``target_host:target_port`` with fault injection.

    Use it as ``async with TcpProxy(host, port) as proxy:``; ``proxy.port`` is the port chosen
    by the OS. Statistics: ``connections_accepted`` (every socket accepted, refused ones
    included), ``connections_refused``, ``connections_cut``, ``cuts`` (calls of :meth:`cut`),
    ``active_connections``, ``bytes_up`` (client to server), ``bytes_down``, ``bytes_dropped``
    (lost in a blackhole) and ``bytes_buffered`` (held by the proxy right now).

    ``socket_buffer`` caps SO_RCVBUF/SO_SNDBUF of the proxy's sockets (a thin pipe, and a
    deterministic point where flow control engages). Any unexpected error inside the proxy's
    tasks is re-raised by :meth:`aclose`.
    """

    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1",
                 listen_port: int = 0, connect_timeout: float = 5.0,
                 socket_buffer: int | None = None) -> None:
        if listen_host == "localhost":
            listen_host = "127.0.0.1"
        try:
            loopback = ipaddress.ip_address(listen_host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"the test proxy listens on loopback only, not {listen_host!r}")
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.connect_timeout = connect_timeout
        self.socket_buffer = socket_buffer
        self.connections_accepted = 0
        self.connections_refused = 0
        self.connections_cut = 0
        self.cuts = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.bytes_dropped = 0
        self.tap: Tap | None = None
        self._delay = 0.0
        self._blackholed = False
        self._refusing = False
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._closed = False
        self._conns: set[_Connection] = set()
        self._accepted_ok = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._errors: list[BaseException] = []

    # lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._server is not None or self._closed:
            raise RuntimeError("a TcpProxy can be started once")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self).client, self.listen_host, self.listen_port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        """Stop listening, abort every connection, cancel every task and wait until all are gone.

        Idempotent. Raises the first unexpected error of the proxy's tasks, if any.
        """
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._conns):
            conn.abort(reset=False)
        await self._settle(list(self._conns), list(self._tasks))
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_SETTLE_TIMEOUT):
                    await self._server.wait_closed()
        self._server = None
        if self._errors:
            raise RuntimeError("TcpProxy had an internal error") from self._errors[0]

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None:
            await self.aclose()
        else:  # do not hide the test's own failure behind a proxy error
            with contextlib.suppress(Exception):
                await self.aclose()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the proxy is not started")
        return self._port

    @property
    def active_connections(self) -> int:
        return len(self._conns)

    @property
    def bytes_buffered(self) -> int:
        """Bytes inside the proxy right now; bounded by flow control when a peer stops reading."""
        return sum(conn.buffered() for conn in self._conns)

    def rewrite(self, url: str) -> str:
        """``url`` with its host:port replaced by the proxy's (user info, path, query kept)."""
        parts = urlsplit(url)
        if parts.scheme not in _URL_SCHEMES:
            raise ValueError(f"cannot route {url!r} through a TCP proxy")
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        userinfo, at, _ = parts.netloc.rpartition("@")
        return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host}:{self.port}"))

    # faults -----------------------------------------------------------------------------------
    async def cut(self, *, reset: bool = False) -> int:
        """Abort every current connection on both sides at once; return how many were cut.

        With ``reset`` the peers get a TCP RST (``ConnectionResetError``) instead of an EOF.
        Returns once the sockets are closed. The listener stays up.
        """
        conns = list(self._conns)
        for conn in conns:
            conn.abort(reset=reset)
        self.cuts += 1
        self.connections_cut += len(conns)
        await self._settle(conns, [])
        return len(conns)

    async def cut_connection(self, number: int, *, reset: bool = False) -> bool:
        """Abort only the connection accepted ``number``-th (1, 2, ...: what a tap is told);
        the others go on. False if it is gone already. A client with several connections
        through one proxy (a bot's shards) loses just the one."""
        conns = [conn for conn in self._conns if conn.number == number]
        for conn in conns:
            conn.abort(reset=reset)
        self.cuts += 1
        self.connections_cut += len(conns)
        await self._settle(conns, [])
        return bool(conns)

    def cut_in_background(self, times: int, interval: float) -> asyncio.Task[list[int]]:
        """A task that calls :meth:`cut` ``times`` times, each after ``interval`` seconds.

        The task's result is the number of connections each cut aborted. The proxy owns it:
        :meth:`aclose` cancels it.
        """
        if times < 0 or interval < 0:
            raise ValueError("times and interval must not be negative")
        if self._closed:
            raise RuntimeError("the proxy is closed")

        async def cut_repeatedly() -> list[int]:
            counts = []
            for _ in range(times):
                await asyncio.sleep(interval)
                counts.append(await self.cut())
            return counts

        task = asyncio.get_running_loop().create_task(cut_repeatedly())
        self._own(task)
        return task

    def _cut_now(self) -> None:
        """A cut from inside the proxy (a tap's): abort every connection without waiting."""
        conns = list(self._conns)
        for conn in conns:
            conn.abort(reset=False)
        self.cuts += 1
        self.connections_cut += len(conns)

    def _run_tap(self, number: int, direction: str, data: bytes) -> tuple[int, bytes] | None:
        assert self.tap is not None
        try:
            verdict = self.tap(number, direction, data)
        except Exception as exc:  # a bug in the test's tap: reported by aclose(), not lost
            self._errors.append(exc)
            return None
        if verdict is None:
            return None
        cut_at, extra = verdict if isinstance(verdict, tuple) else (verdict, b"")
        if not 0 <= cut_at <= len(data):
            self._errors.append(ValueError(f"tap offset {cut_at} outside a {len(data)}-byte "
                                           "chunk"))
            return None
        return cut_at, extra

    def blackhole(self, on: bool = True) -> None:
        """Silently drop every byte in both directions (connections stay open), or stop it.

        Lifting the blackhole resets the connections whose other side went away meanwhile.
        """
        self._blackholed = on
        if not on:
            for conn in list(self._conns):
                if conn.stale:
                    conn.abort(reset=True)

    def refuse(self, on: bool = True) -> None:
        """Reset new connections at once (the server is down); existing ones are untouched."""
        self._refusing = on

    @property
    def delay(self) -> float:
        """Latency in seconds added to every chunk forwarded, in each direction."""
        return self._delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("delay must not be negative")
        self._delay = float(seconds)

    # internals --------------------------------------------------------------------------------
    def _accepted(self, conn: _Connection) -> None:
        """A client socket was accepted (``connection_made`` of its endpoint)."""
        self.connections_accepted += 1
        if self._closed or self._refusing:
            if self._refusing:
                self.connections_refused += 1
            conn.abort(reset=True)
            return
        self._conns.add(conn)
        self._accepted_ok += 1
        conn.number = self._accepted_ok
        conn.task = asyncio.get_running_loop().create_task(conn.run())
        conn.task.add_done_callback(lambda _: self._conns.discard(conn))
        self._own(conn.task)

    def _own(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            self._errors.append(error)

    async def _settle(self, conns: list[_Connection], tasks: list[asyncio.Task[Any]]) -> None:
        """Wait (bounded) until the tasks are done and the connections' sockets are closed."""
        waits: set[asyncio.Future[Any]] = set(tasks)
        waits.update(conn.task for conn in conns if conn.task is not None)
        for _ in range(2):  # again for an upstream socket that appeared while its task ended
            waits.update(f for conn in conns for f in conn.closed_futures())
            waits = {w for w in waits if not w.done()}
            if not waits:
                return
            _, pending = await asyncio.wait(waits, timeout=_SETTLE_TIMEOUT)
            if pending:
                raise TimeoutError(f"{len(pending)} proxy tasks or sockets did not finish in time")
