"""botkit's own HTTP/1.1 client for the server API (botkit.serverapi.http11) through the
Transport, against a raw local HTTP server that answers with exactly the bytes under test:
the framings a server may choose (Content-Length, chunked, close-delimited, an interim 100),
keep-alive reuse and its limits, answers that are not HTTP, a connection the server closed
while idle, and TLS for https URLs. The same Transport against the real servers is covered by
test_api.py and the fault suites."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from botkit.errors import ApiUnavailableError
from botkit.protocol.backoff import Backoff
from botkit.serverapi.replies import publish_result
from botkit.serverapi.stats import ApiStats
from botkit.serverapi.transport import MAX_CONNECTIONS, Transport

REPLY = b'{"result":{"offset":7,"epoch":"e1"}}'
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(REPLY), REPLY)

Answer = Callable[[bytes], list[bytes]]
Serve = Callable[[Answer], Awaitable["RawServer"]]


class RawServer:
    """Reads each request (head and Content-Length body) and writes the pieces ``answer``
    gives for it, flushing each apart; ``None`` as a piece closes the connection."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.requests: list[bytes] = []
        self.hung_up = asyncio.Event()
        self.answered = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, tls: ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                for piece in self.answer(head):
                    if piece == b"CLOSE":
                        writer.close()
                        return
                    if piece == b"PAUSE":
                        await asyncio.sleep(0.05)
                        continue
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0)
                self.answered.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_now -= 1
            writer.close()
            self.hung_up.set()


def transport(base: str, timeout: float = 2.0, retries: int = 0) -> Transport:
    return Transport(base, "the-key", timeout=timeout, retries=retries,
                     backoff=Backoff(base=0.01, cap=0.02), stats=ApiStats())


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[RawServer] = []

    async def start(answer: Answer) -> RawServer:
        server = RawServer(answer)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


async def publish_via(server: RawServer, calls: int = 1) -> list[int]:
    api = transport(f"http://127.0.0.1:{server.port}/api/realtime")
    api.open()
    try:
        return [(await api.call("publish", b'{"channel":"c","data":{}}', publish_result)).offset
                for _ in range(calls)]
    finally:
        await api.aclose()


CHUNKED = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
           b"5;ext=1\r\n" + REPLY[:5] + b"\r\n", b"%x\r\n" % (len(REPLY) - 5),
           REPLY[5:] + b"\r\n", b"0\r\nX-Trailer: 1\r\n\r\n"]


@pytest.mark.parametrize("pieces", [
    pytest.param([OK], id="content-length"),
    pytest.param([OK[:20], OK[20:41], OK[41:]], id="content-length-in-pieces"),
    pytest.param(CHUNKED, id="chunked-with-extension-and-trailer"),
    pytest.param([b"".join(CHUNKED).replace(b"X-Trailer: 1\r\n", b"")], id="chunked-at-once"),
    pytest.param([b"HTTP/1.1 100 Continue\r\n\r\n", OK], id="interim-100-first"),
])
async def test_each_framing_is_read_and_the_connection_reused(
        serve: Serve, pieces: list[bytes]) -> None:
    server = await serve(lambda head: pieces)
    assert await publish_via(server, calls=3) == [7, 7, 7]
    assert server.connections == 1
    request = server.requests[0]
    assert request.startswith(b"POST /api/realtime/publish HTTP/1.1\r\n")
    assert b"\r\nX-API-Key: the-key\r\n" in request
    assert request.endswith(b'\r\n\r\n{"channel":"c","data":{}}')


async def test_an_answer_framed_by_closing_ends_that_connection(
        serve: Serve) -> None:
    server = await serve(lambda head: [b"HTTP/1.0 200 OK\r\n\r\n", REPLY, b"CLOSE"])
    assert await publish_via(server, calls=2) == [7, 7]
    assert server.connections == 2


async def test_connection_close_is_honoured(
        serve: Serve) -> None:
    server = await serve(lambda head: [OK.replace(b"OK\r\n", b"OK\r\nConnection: close\r\n")])
    assert await publish_via(server, calls=2) == [7, 7]
    assert server.connections == 2


async def test_an_idle_connection_the_server_closed_is_not_reused(
        serve: Serve) -> None:
    # The server answers, then hangs up while the connection idles in the pool.
    server = await serve(lambda head: [OK, b"PAUSE", b"CLOSE"])
    api = transport(f"http://127.0.0.1:{server.port}/api/realtime")
    api.open()
    try:
        for _ in range(2):
            server.hung_up.clear()
            await api.call("publish", b"{}", publish_result)
            # The next call comes right after the server hung up: the pool may not have
            # read the hang-up yet, and must not send on that connection all the same.
            await asyncio.wait_for(server.hung_up.wait(), 5)
    finally:
        await api.aclose()
    assert server.connections == 2
    assert api.stats.retries == 0


async def test_a_connection_that_sent_unasked_bytes_is_not_reused(serve: Serve) -> None:
    server = await serve(lambda head: [OK, b"PAUSE", b"HTTP/1.1 200 OK\r\n"])
    api = transport(f"http://127.0.0.1:{server.port}/api/realtime")
    api.open()
    try:
        for _ in range(2):
            server.answered.clear()
            assert (await api.call("publish", b"{}", publish_result)).offset == 7
            await asyncio.wait_for(server.answered.wait(), 5)
    finally:
        await api.aclose()
    assert server.connections == 2
    assert api.stats.retries == 0


@pytest.mark.parametrize("pieces", [
    pytest.param([b"SSH-2.0-OpenSSH\r\n\r\n"], id="not-http"),
    pytest.param([b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"], id="bad-length"),
    pytest.param([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
                 id="bad-chunk-size"),
    pytest.param([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"], id="other-coding"),
    pytest.param([OK[:-5], b"CLOSE"], id="closed-mid-body"),
])
async def test_an_unreadable_answer_is_a_transport_failure(
        serve: Serve, pieces: list[bytes]) -> None:
    server = await serve(lambda head: pieces)
    with pytest.raises(ApiUnavailableError, match=r"talking to http://127\.0\.0\.1"):
        await publish_via(server)


async def test_a_timed_out_request_gives_up_its_connection(
        serve: Serve) -> None:
    answers = iter([[OK[:30]], [OK]])     # the first answer stops half-way
    server = await serve(lambda head: next(answers))
    api = transport(f"http://127.0.0.1:{server.port}/api/realtime", timeout=0.3, retries=1)
    api.open()
    try:
        result = await api.call("publish", b"{}", publish_result)
    finally:
        await api.aclose()
    assert result.offset == 7
    assert api.stats.retries == 1
    assert server.connections == 2


async def test_connections_are_capped(
        serve: Serve) -> None:
    server = await serve(lambda head: [b"PAUSE", OK])
    api = transport(f"http://127.0.0.1:{server.port}/api/realtime", timeout=10.0)
    api.open()
    try:
        async with asyncio.TaskGroup() as tasks:
            for _ in range(MAX_CONNECTIONS + 10):
                tasks.create_task(api.call("publish", b"{}", publish_result))
    finally:
        await api.aclose()
    assert server.most_open <= MAX_CONNECTIONS
    assert len(server.requests) == MAX_CONNECTIONS + 10


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


async def test_https_urls_use_verified_tls(certificate: tuple[Path, Path],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = certificate
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    server = RawServer(lambda head: [OK])
    await server.start(tls)
    try:
        base = f"https://127.0.0.1:{server.port}/api/realtime"
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        untrusted = transport(base)
        untrusted.open()
        with pytest.raises(ApiUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusted.call("publish", b"{}", publish_result)
        await untrusted.aclose()
        monkeypatch.setenv("SSL_CERT_FILE", os.fspath(cert))
        trusted = transport(base)
        trusted.open()
        try:
            for _ in range(3):
                assert (await trusted.call("publish", b"{}", publish_result)).offset == 7
        finally:
            await trusted.aclose()
    finally:
        await server.close()
    assert len(server.requests) == 3
    assert server.connections == 1


async def test_a_proxy_from_the_environment_is_still_used(
        serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    # The raw server plays the proxy: the request reaches it for a host that does not resolve.
    server = await serve(lambda head: [OK])
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    api = transport("http://api.invalid/api/realtime")
    api.open()
    try:
        assert (await api.call("publish", b"{}", publish_result)).offset == 7
    finally:
        await api.aclose()
    assert server.requests[0].startswith(b"POST http://api.invalid/api/realtime/publish ")
