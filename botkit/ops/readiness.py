"""``/readyz``: whether every enabled bot is connected and subscribed to all its rooms, and if
not, which bot, which room and why. Computed on the event loop (see loop.py)."""

from __future__ import annotations

from typing import Any

from botkit.realtime import ConnectionState
from botkit.runtime.supervisor import BotPhase, Runtime

__all__ = ["readiness"]


def readiness(runtime: Runtime | None) -> tuple[bool, dict[str, Any]]:
    """``(ready, report)``. The report is the JSON body of both answers: ``bots`` maps each
    bot to its phase, connection state (connected: all its connections are), how many
    connections its rooms take, and its rooms; ``problems`` lists what keeps it from being
    ready, one line each (``bot welcome: not connected (connecting)``)."""
    if runtime is None:
        return False, {"ready": False, "bots": {}, "problems": ["the bots are not started yet"]}
    problems: list[str] = []
    bots: dict[str, Any] = {}
    for loaded in runtime.bots:
        name = loaded.config.name
        status = runtime.status(name)
        runner = runtime.runners.get(name)
        state = runner.client.state if runner is not None else ConnectionState.CLOSED
        connected = state is ConnectionState.CONNECTED
        reason = None
        if status.phase is not BotPhase.SERVING:
            reason = status.phase.value + (f": {status.reason}" if status.reason else "")
        elif not connected:
            reason = f"not connected ({state.value})"
            if runner is not None and len(runner.client.shards) > 1:
                reason += (f": {runner.client.connected} of {len(runner.client.shards)} "
                           "connections up")
        if reason is not None:
            problems.append(f"bot {name}: {reason}")
        rooms: dict[str, Any] = {}
        channels = runner.channels if runner is not None else {}
        for room, channel in channels.items():
            # Per room: a bot's rooms are spread over its connections, one of which may be
            # down while the others serve.
            shard = runner.client.shard_of(channel) if runner is not None else None
            up = shard is not None and shard.state is ConnectionState.CONNECTED
            subscribed = up and runner is not None and runner.client.is_subscribed(channel)
            why = None
            if not subscribed:
                why = "not subscribed" if up else "not subscribed: the bot is not connected"
                problems.append(f"bot {name}, room {room}: {why}")
            rooms[room] = {"subscribed": subscribed, "reason": why}
        bots[name] = {"ready": reason is None and all(r["subscribed"] for r in rooms.values()),
                      "phase": status.phase.value, "connection": state.value,
                      "connections": len(runner.client.shards) if runner is not None else 0,
                      "restarts": status.restarts, "reason": reason, "rooms": rooms}
    ready = not problems
    return ready, {"ready": ready, "bots": bots, "problems": problems}
