"""S9: one bot with 500 rooms. How long from "connected" until every room is subscribed, on
the first connection (the rooms asked for once connected) and after a reconnect (the server
API disconnects the bot with a reconnect code; the rooms go out with connect)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.common import channel


async def subscribe_rooms(ws_url: str, api_url: str, api_key: str, project: str, count: int,
                          deadline: float = 60.0) -> dict[str, Any]:
    import httpx

    from botkit.realtime import ConnectionState, ConnectionStateChanged, RealtimeClient
    from botkit.tokens import TokenMinter

    user = "bot_rooms"
    minter = TokenMinter(api_key, user)
    channels = [channel(f"room_{i:04d}", project) for i in range(count)]
    changes: list[tuple[float, ConnectionState]] = []
    connected_again = asyncio.Event()

    async def on_event(event: Any) -> None:
        if isinstance(event, ConnectionStateChanged):
            changes.append((time.perf_counter(), event.state))
            if event.state is ConnectionState.CONNECTED and len(changes) > 1:
                connected_again.set()

    client = RealtimeClient(ws_url, minter.connection, minter.subscription, on_event=on_event)
    out: dict[str, Any] = {"rooms": count}
    try:
        async with asyncio.timeout(deadline):
            await client.start()
            connected = time.perf_counter()
            outcomes = await client.subscribe_all(channels)
            out["subscribe_seconds"] = time.perf_counter() - connected
            out["failed"] = sum(1 for error in outcomes.values() if error is not None)
            async with httpx.AsyncClient(headers={"X-API-Key": api_key}) as http:
                # 3000-3499: the client reconnects (and resubscribes every room with connect).
                response = await http.post(f"{api_url}/disconnect", json={
                    "user": user, "disconnect": {"code": 3001, "reason": "bench"}})
                response.raise_for_status()
            await connected_again.wait()
        lost = next(t for t, state in changes if state is ConnectionState.DISCONNECTED)
        again = next(t for t, state in reversed(changes) if state is ConnectionState.CONNECTED)
        # CONNECTED comes once connect and all the rooms' subscribes were answered; the
        # reconnect delay (0.1 s + jitter) is part of this figure.
        out["resubscribe_seconds"] = again - lost
        out["subscribed_after"] = sum(1 for c in channels if client.is_subscribed(c))
    finally:
        await client.aclose()
    return out
