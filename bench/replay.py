"""A replay server for the firehose scenarios (S1, S8): it speaks just enough of the Centrifugo
v6 JSON protocol for a client to connect and subscribe, then streams the same pre-encoded
publications to every client, so botkit and its peers read exactly the same bytes, and costs
almost no CPU (the frames are built once; streaming them is a memcpy).

Like Centrifugo it pings (``{}``) every ``--ping`` seconds and closes a connection with 3012
"no pong" when no pong came ``--pong-timeout`` seconds after the ping was handed to the kernel
(after ``drain()``): a client that stops reading its socket while its handlers are busy is cut
off. It writes with flow control, so a slow client slows the stream instead of growing a queue.
HTTP requests on the same port answer the server API calls a runtime makes at start
(``presence`` -> nobody) and ``GET /stats``.

Run: ``python -m bench.replay --port P --count N`` (prints ``READY`` when listening).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import struct
import sys
import time
from typing import Any

from bench.common import HUMAN, channel, envelope, pin_from_env

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CHANNEL = channel("room_bench")


def ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def close_frame(code: int, reason: str) -> bytes:
    return ws_frame(struct.pack("!H", code) + reason.encode(), opcode=8)


def build_stream(count: int, batch: int, chunk_bytes: int = 65536) -> list[bytes]:
    """``count`` publication pushes, ``batch`` per WebSocket message (newline-joined, as
    Centrifugo does when several are queued), grouped into write chunks."""
    frames = [json.dumps({"push": {"channel": CHANNEL, "pub": {
        "data": envelope(i), "offset": i + 1,
        "info": {"user": HUMAN, "client": "c0ffee00-0000-4000-8000-000000000001"}}}},
        separators=(",", ":")).encode() for i in range(count)]
    messages = [ws_frame(b"\n".join(frames[i:i + batch])) for i in range(0, count, batch)]
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for message in messages:
        current.append(message)
        size += len(message)
        if size >= chunk_bytes:
            chunks.append(b"".join(current))
            current, size = [], 0
    if current:
        chunks.append(b"".join(current))
    return chunks


class Stats:
    def __init__(self) -> None:
        self.connections = 0
        self.no_pong_closes = 0
        self.pings = 0
        self.max_pong_delay = 0.0
        self.streams_done = 0


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    payload = await reader.readexactly(n)
    if n and mask != b"\0\0\0\0":
        full = (mask * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(full, "big")).to_bytes(
            n, "big")
    return b0 & 0x0F, payload


class Session:
    def __init__(self, server: ReplayServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.ping_at: float | None = None  # when the outstanding ping reached the kernel
        self.closed = False
        self.streaming = False
        self.lock = asyncio.Lock()
        self.tasks: list[asyncio.Task[None]] = []

    async def send(self, data: bytes) -> None:
        async with self.lock:
            self.writer.write(data)
            await self.writer.drain()

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.pinger()), asyncio.create_task(self.pong_watch())]
        try:
            while not self.closed:
                opcode, payload = await read_frame(self.reader)
                if opcode == 8:
                    with contextlib.suppress(Exception):
                        await self.send(close_frame(1000, ""))
                    break
                if opcode == 9:
                    await self.send(ws_frame(payload, opcode=10))
                    continue
                if opcode != 1:
                    continue
                for line in payload.split(b"\n"):
                    if line:
                        await self.command(json.loads(line))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed = True
            for task in tasks + self.tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                self.writer.close()

    async def command(self, cmd: dict[str, Any]) -> None:
        stats = self.server.stats
        if not cmd:  # pong
            if self.ping_at is not None:
                stats.max_pong_delay = max(stats.max_pong_delay,
                                           time.monotonic() - self.ping_at)
                self.ping_at = None
            return
        cid = cmd.get("id", 0)
        if "connect" in cmd:
            reply = {"id": cid, "connect": {"client": f"c-{stats.connections}",
                                            "version": "6.9.1 replay",
                                            "ping": int(self.server.ping), "pong": True}}
        elif "subscribe" in cmd:
            reply = {"id": cid, "subscribe": {"recoverable": True, "epoch": "bench",
                                              "offset": 0, "positioned": True}}
            if cmd["subscribe"].get("recover"):
                reply["subscribe"].update(was_recovering=True, recovered=False)
        else:
            method = next((k for k in cmd if k != "id"), "unknown")
            reply = {"id": cid, method: {}}
        await self.send(ws_frame(json.dumps(reply, separators=(",", ":")).encode()))
        if "subscribe" in cmd and not self.streaming:
            self.streaming = True
            self.tasks.append(asyncio.create_task(self.stream()))

    async def stream(self) -> None:
        for chunk in self.server.chunks:
            if self.closed:
                return
            await self.send(chunk)
        self.server.stats.streams_done += 1

    async def pinger(self) -> None:
        interval = self.server.ping
        while not self.closed:
            await asyncio.sleep(interval)
            if self.ping_at is not None:
                continue
            await self.send(ws_frame(b"{}"))
            self.ping_at = time.monotonic()
            self.server.stats.pings += 1

    async def pong_watch(self) -> None:
        timeout = self.server.pong_timeout
        while not self.closed:
            await asyncio.sleep(0.05)
            if self.ping_at is not None and time.monotonic() - self.ping_at > timeout:
                self.server.stats.no_pong_closes += 1
                self.closed = True
                # Straight to the kernel: the close must not wait behind the stream.
                self.writer.write(close_frame(3012, "no pong"))
                with contextlib.suppress(Exception):
                    self.writer.close()
                return


class ReplayServer:
    def __init__(self, chunks: list[bytes], ping: float, pong_timeout: float) -> None:
        self.chunks = chunks
        self.ping = ping
        self.pong_timeout = pong_timeout
        self.stats = Stats()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                if headers.get("upgrade", "").lower() == "websocket":
                    await self.websocket(reader, writer, headers)
                    return
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                body = self.http(method, path)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def http(self, method: str, path: str) -> bytes:
        if path.startswith("/stats"):
            return json.dumps(vars(self.stats)).encode()
        if path.endswith("/presence"):
            return b'{"result":{"presence":{}}}'
        if path.endswith("/batch"):
            return b'{"replies":[]}'
        return b'{"result":{}}'

    async def websocket(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        headers: dict[str, str]) -> None:
        key = headers.get("sec-websocket-key", "").encode()
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        await writer.drain()
        self.stats.connections += 1
        await Session(self, reader, writer).run()


async def main_async(args: argparse.Namespace) -> None:
    chunks = build_stream(args.count, args.batch)
    server = ReplayServer(chunks, args.ping, args.pong_timeout)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", args.port, backlog=1024)
    print("READY", flush=True)
    async with srv:
        # Bounded: the orchestrator stops it, and it stops itself after --lifetime anyway.
        await asyncio.sleep(args.lifetime)


def main() -> None:
    pin_from_env()
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--ping", type=float, default=25.0)
    parser.add_argument("--pong-timeout", type=float, default=8.0)
    parser.add_argument("--lifetime", type=float, default=3600.0)
    args = parser.parse_args()
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
