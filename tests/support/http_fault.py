"""A small HTTP/1.1 reverse proxy for injecting faults between a client and the real server.

It listens on 127.0.0.1 (a free port), forwards each request to the upstream with httpx and
relays the answer, keeping client connections alive. Faults are queued and each applies to one
request, in arrival order::

    async with FaultProxy("http://127.0.0.1:8000") as proxy:
        proxy.fail_next(2, status=503, forward=True)   # the server sees it, the client gets 503
        proxy.delay_next(1, 2.0)                       # forwarded, answered 2 s late
        proxy.drop_next(1)                             # connection closed, no answer
        proxy.reset_next(1, after=10)                  # headers and 10 body bytes, then RST
        proxy.answer_next(1, body=b'{"error":{"code":111,"message":"too many requests"}}')
        proxy.rewrite_next(1, lambda body: body.replace(b"a", b"b"))
        proxy.truncate_next(1)                         # half the body, then the socket closes
        proxy.stall_next(1)                            # no answer until the client hangs up
        proxy.inject(Fault(status=500), match=for_method("publish"))  # only a publish request
        proxy.outage(3.0, match=for_method("publish", "batch"))  # every one 503 for 3 s
        url = proxy.proxied("http://127.0.0.1:8000/api/realtime")

A fault with ``match`` waits in the queue for the first request it matches; the requests that
it does not match pass through untouched (the first matching fault in queue order applies).

Only what the server API client needs: bodies with Content-Length, no chunked requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Self

import httpx

__all__ = ["Fault", "FaultProxy", "ProxiedRequest", "for_method"]

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                         "host", "te", "trailer", "upgrade", "proxy-connection"})


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do to one request. ``forward`` sends it upstream first (so the server acts on it
    even though the client sees a failure); ``status``/``body`` replace the answer; ``delay``
    holds the answer back; ``drop`` closes the connection without answering; ``reset_after``
    sends the headers (announcing the whole body) and that many body bytes, then resets the
    connection; ``rewrite`` transforms the upstream body. ``truncate`` sends the head and half
    the body, then closes; ``stall`` sends nothing until the client hangs up (at most ``stall``
    seconds). ``match`` picks the requests the fault applies to (all when None)."""

    forward: bool = True
    status: int | None = None
    body: bytes = b""
    delay: float = 0.0
    drop: bool = False
    reset_after: int | None = None
    rewrite: Callable[[bytes], bytes] | None = None
    truncate: bool = False
    stall: float = 0.0
    match: Callable[[ProxiedRequest], bool] | None = None


@dataclass(frozen=True, slots=True)
class ProxiedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    fault: Fault | None = None

    @property
    def api_method(self) -> str:
        """The server API method: the last segment of the path ("publish", "batch", ...)."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def json(self) -> Any:
        return json.loads(self.body)


def for_method(*names: str) -> Callable[[ProxiedRequest], bool]:
    """A ``match`` for requests of the server API methods ``names``."""
    wanted = frozenset(names)
    return lambda request: request.api_method in wanted


@dataclass(slots=True)
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class FaultProxy:
    """A reverse proxy in front of ``upstream`` (scheme, host and port, e.g.
    ``http://127.0.0.1:8000``). ``requests`` records every request received, in order."""

    def __init__(self, upstream: str) -> None:
        self.upstream = str(httpx.URL(upstream).copy_with(path="/", query=None)).rstrip("/")
        self.requests: list[ProxiedRequest] = []
        self.forwarded = 0
        self._faults: deque[Fault] = deque()
        self._outage: tuple[float, Fault] | None = None
        self._server: asyncio.Server | None = None
        self._client: httpx.AsyncClient | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def proxied(self, url: str) -> str:
        """``url`` (on the upstream) with the proxy in front of it."""
        return str(httpx.URL(url).copy_with(host="127.0.0.1", port=self.port))

    # -- faults ---------------------------------------------------------------------------

    def inject(self, fault: Fault, count: int = 1, *,
               match: Callable[[ProxiedRequest], bool] | None = None) -> None:
        if match is not None:
            fault = replace(fault, match=match)
        self._faults.extend([fault] * count)

    def outage(self, seconds: float, fault: Fault | None = None, *,
               match: Callable[[ProxiedRequest], bool] | None = None) -> None:
        """For ``seconds`` from now, every request (that ``match`` picks) meets ``fault``
        (default: HTTP 503, not forwarded), before any queued fault."""
        fault = fault or Fault(forward=False, status=503, body=b"down")
        self._outage = (time.monotonic() + seconds, replace(fault, match=match))

    @property
    def faults_pending(self) -> int:
        """Faults injected that no request has met yet."""
        return len(self._faults)

    def truncate_next(self, count: int, *, forward: bool = True,
                      match: Callable[[ProxiedRequest], bool] | None = None) -> None:
        self.inject(Fault(forward=forward, truncate=True), count, match=match)

    def stall_next(self, count: int, *, forward: bool = True, at_most: float = 60.0,
                   match: Callable[[ProxiedRequest], bool] | None = None) -> None:
        self.inject(Fault(forward=forward, stall=at_most), count, match=match)

    def fail_next(self, count: int, status: int = 503, *, body: bytes = b"",
                  forward: bool = False) -> None:
        self.inject(Fault(forward=forward, status=status, body=body), count)

    def answer_next(self, count: int, *, body: bytes, status: int = 200,
                    forward: bool = False) -> None:
        self.inject(Fault(forward=forward, status=status, body=body), count)

    def delay_next(self, count: int, seconds: float, *, forward: bool = True) -> None:
        self.inject(Fault(forward=forward, delay=seconds), count)

    def drop_next(self, count: int, *, forward: bool = False) -> None:
        self.inject(Fault(forward=forward, drop=True), count)

    def reset_next(self, count: int, *, after: int = 0, forward: bool = True,
                   match: Callable[[ProxiedRequest], bool] | None = None) -> None:
        self.inject(Fault(forward=forward, reset_after=after), count, match=match)

    def rewrite_next(self, count: int, rewrite: Callable[[bytes], bytes]) -> None:
        self.inject(Fault(rewrite=rewrite), count)

    def clear_faults(self) -> None:
        self._faults.clear()

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def start(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.upstream, timeout=30.0)
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections))
        if self._server is not None:
            await self._server.wait_closed()
        if self._client is not None:
            await self._client.aclose()

    # -- serving --------------------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The proxy owns each connection's task, so aclose() can cancel and await it; a task
        # made by asyncio's stream server from a coroutine callback would be logged as an
        # error when cancelled (Python 3.11).
        task = asyncio.create_task(self._serve(reader, writer), name="fault proxy connection")
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away mid-request: nothing to answer
        finally:
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection is to be closed."""
        request = await _read_request(reader)
        if request is None:
            return False
        fault = self._take_fault(request)
        self.requests.append(ProxiedRequest(request.method, request.path, request.headers,
                                            request.body, fault))
        answer = await self._forward(request) if fault is None or fault.forward else None
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.stall:
                await _until_hangup(reader, fault.stall)
                return False
            if fault.drop:
                return False
            answer = _apply(fault, answer)
            if fault.reset_after is not None:
                await _write_answer(writer, answer, cut=fault.reset_after)
                _reset(writer)
                return False
            if fault.truncate:
                await _write_answer(writer, answer, cut=len(answer.body) // 2)
                return False
        assert answer is not None
        await _write_answer(writer, answer)
        return True

    def _take_fault(self, request: ProxiedRequest) -> Fault | None:
        if self._outage is not None:
            until, fault = self._outage
            if time.monotonic() >= until:
                self._outage = None
            elif fault.match is None or fault.match(request):
                return fault
        for index, fault in enumerate(self._faults):
            if fault.match is None or fault.match(request):
                del self._faults[index]
                return fault
        return None

    async def _forward(self, request: ProxiedRequest) -> _Answer:
        assert self._client is not None
        headers = {name: value for name, value in request.headers.items()
                   if name not in _HOP_BY_HOP}
        try:
            response = await self._client.request(request.method, request.path,
                                                   headers=headers, content=request.body)
        except httpx.TransportError as exc:
            return _Answer(502, f"upstream failed: {exc}".encode())
        self.forwarded += 1
        kept = {name: value for name, value in response.headers.items()
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-encoding"}
        return _Answer(response.status_code, response.content, kept)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST rather than a FIN: linger on, zero timeout."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _apply(fault: Fault, answer: _Answer | None) -> _Answer:
    if fault.status is not None:
        content_type = "application/json" if fault.body.startswith(b"{") else "text/plain"
        return _Answer(fault.status, fault.body, {"content-type": content_type})
    assert answer is not None
    if fault.rewrite is not None:
        answer.body = fault.rewrite(answer.body)
    return answer


async def _read_request(reader: asyncio.StreamReader) -> ProxiedRequest | None:
    line = await reader.readline()
    if not line.strip():
        return None  # the client closed a kept-alive connection
    method, path, _version = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return ProxiedRequest(method, path, headers, body)


async def _write_answer(writer: asyncio.StreamWriter, answer: _Answer, *,
                        cut: int | None = None) -> None:
    """Write ``answer``; with ``cut``, only that many bytes of its body (the headers still
    announce all of it)."""
    try:
        reason = http.HTTPStatus(answer.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {answer.status} {reason}"]
    lines += [f"{name}: {value}" for name, value in answer.headers.items()]
    lines += [f"content-length: {len(answer.body)}", "connection: keep-alive", "", ""]
    body = answer.body if cut is None else answer.body[:cut]
    writer.write("\r\n".join(lines).encode("latin-1") + body)
    await writer.drain()


async def _until_hangup(reader: asyncio.StreamReader, at_most: float) -> None:
    """Wait until the client closes the connection (or sends anything), at most ``at_most``
    seconds: a server that never answers, however long the client is willing to wait."""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(at_most):
            await reader.read(1)
