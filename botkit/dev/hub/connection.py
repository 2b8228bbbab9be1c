"""The asyncio shell around a :class:`~botkit.dev.hub.session.Session`: one WebSocket, three tasks.

A reader feeds messages to the session, a writer drains its outbox, and a timer task fires its
deadlines; all three belong to one task group and end together when the session decides to close
or the peer goes away. Then the session leaves the hub, what it still had to say is written
(bounded in time), and the close frame carries the session's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import random

from starlette.websockets import WebSocket, WebSocketDisconnect

from botkit.dev.hub.codes import Disconnect
from botkit.dev.hub.core import Hub
from botkit.dev.hub.session import Session

__all__ = ["origin_allowed", "serve_websocket"]

log = logging.getLogger("botkit.dev.hub")

JSON_SUBPROTOCOL = "centrifuge-json"
PROTOBUF_SUBPROTOCOL = "centrifuge-protobuf"
_CLOSE_TIMEOUT = 1.0
"""Seconds to write the backlog and the close frame to a peer that may not be reading."""


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """Centrifugo's rule: with no patterns, only requests without ``Origin`` pass (tools and
    server-side clients send none; browsers always do)."""
    if origin is None:
        return True
    return any(fnmatch.fnmatchcase(origin.lower(), pattern.lower()) for pattern in allowed)


def _wants_protobuf(websocket: WebSocket) -> bool:
    offered = websocket.scope.get("subprotocols") or []
    params = websocket.query_params
    return ((PROTOBUF_SUBPROTOCOL in offered and JSON_SUBPROTOCOL not in offered)
            or params.get("cf_protocol") == "protobuf" or params.get("format") == "protobuf")


async def serve_websocket(websocket: WebSocket, hub: Hub) -> None:
    """Serve one client connection from handshake to close."""
    if not origin_allowed(websocket.headers.get("origin"), hub.config.allowed_origins):
        await websocket.close()  # before accept: the handshake is refused with 403
        return
    offered = websocket.scope.get("subprotocols") or []
    # Echo only what the client offered; a client that offered nothing gets no header.
    await websocket.accept(subprotocol=JSON_SUBPROTOCOL if JSON_SUBPROTOCOL in offered
                           else None)
    if _wants_protobuf(websocket):
        await websocket.close(Disconnect.INAPPROPRIATE_PROTOCOL.code,
                              "the hub speaks the JSON protocol only")
        return
    writable = asyncio.Event()
    timers_changed = asyncio.Event()
    ended = asyncio.Event()
    session = Session(hub, on_close=ended.set, on_timers=timers_changed.set,
                      outbox_wakeup=writable.set, rng=random.Random())
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_read(websocket, session), name="hub reader"),
                     group.create_task(_write(websocket, session, writable), name="hub writer"),
                     group.create_task(_tick(session, timers_changed), name="hub timers")]
            await ended.wait()
            for task in tasks:
                task.cancel()
    finally:
        session.release()
    closing = session.closing or Disconnect.CONNECTION_CLOSED
    if closing != Disconnect.CONNECTION_CLOSED:
        await _close(websocket, session, closing)


async def _read(websocket: WebSocket, session: Session) -> None:
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                session.disconnect(Disconnect.CONNECTION_CLOSED)
                return
            text = message.get("text")
            if text is None:
                try:
                    text = (message.get("bytes") or b"").decode()
                except UnicodeDecodeError:
                    session.disconnect(Disconnect.BAD_REQUEST)
                    return
            session.receive(text)
    except Exception:
        # A bug of the hub must cost one connection (3004, the client reconnects), not the hub.
        log.exception("hub session %s failed", session.client_id)
        session.disconnect(Disconnect.SERVER_ERROR)


async def _write(websocket: WebSocket, session: Session, writable: asyncio.Event) -> None:
    try:
        while True:
            message = session.outbox.take()
            if message is None:
                writable.clear()
                await writable.wait()
                continue
            await websocket.send_text(message)
    except (WebSocketDisconnect, OSError, RuntimeError):
        session.disconnect(Disconnect.CONNECTION_CLOSED)


async def _tick(session: Session, changed: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while True:
        changed.clear()
        session.fire_timers(loop.time())
        deadline = session.next_deadline()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await changed.wait()


async def _close(websocket: WebSocket, session: Session, closing: Disconnect) -> None:
    """Write the backlog (replies queued before the decision), then the close frame."""
    with contextlib.suppress(TimeoutError, WebSocketDisconnect, OSError, RuntimeError):
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            while (message := session.outbox.take()) is not None:
                await websocket.send_text(message)
            await websocket.close(closing.code, closing.reason)
