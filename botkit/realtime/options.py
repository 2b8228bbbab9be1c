"""What a realtime client is configured with: its options and its token providers."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from botkit.errors import BotkitError, TokenError
from botkit.protocol import Backoff, TimerPolicy

__all__ = ["ClientOptions", "SubscriptionTokenProvider", "TokenProvider", "mint"]

TokenProvider = Callable[[], str | Awaitable[str]]
SubscriptionTokenProvider = Callable[[str], str | Awaitable[str]]


@dataclass(frozen=True, slots=True)
class ClientOptions:
    connect_timeout: float = 10.0
    """Seconds for the WebSocket handshake, and again for the connect reply."""
    command_timeout: float = 10.0
    """Seconds to wait for the reply to any command (the subscribes of one batch share it)."""
    ping_grace: float = 10.0
    """Seconds past the server's ping interval before the server is presumed dead."""
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.1, cap=20.0))
    min_reconnect_delay: float = 0.1
    max_incoming_size: int = 16 * 2**20
    event_queue_size: int = 10_000
    """Bound of the built-in event queue used when no ``on_event`` is given."""
    refresh_margin: float = 30.0
    """Refresh a token this many seconds before it expires (at most a fifth of its life)."""
    recoverable: bool = True
    join_leave: bool = False
    """Ask for join/leave pushes (the seed's namespace pushes them to everyone anyway)."""
    name: str = "botkit"
    version: str = ""
    subscription_events: bool = False
    """Deliver a :class:`~botkit.realtime.events.SubscriptionStarted` each time a channel is
    (re)subscribed, in order with its publications (the runtime tracks stream epochs with it)."""
    read_ahead_bytes: int = 16 * 2**20
    """With ``offer_event``: how much of the received messages (their size on the wire, at
    least a fixed minimum per event) may wait for a busy consumer while the reader reads on."""

    def timer_policy(self) -> TimerPolicy:
        # One (frozen) policy for all the clients with the same timings, not one each.
        key = (self.connect_timeout, self.command_timeout, self.ping_grace, self.refresh_margin)
        policy = _POLICIES.get(key)
        if policy is None:
            policy = _POLICIES[key] = TimerPolicy(
                connect_timeout=self.connect_timeout, command_timeout=self.command_timeout,
                ping_grace=self.ping_grace, refresh_margin=self.refresh_margin)
        return policy


_POLICIES: dict[tuple[float, float, float, float], TimerPolicy] = {}


async def mint(provider: Callable[..., str | Awaitable[str]], *args: str) -> str:
    """Call a token provider; its failure is a TokenError (retried), never a crash."""
    try:
        token = provider(*args)
        if inspect.isawaitable(token):
            token = await token
    except asyncio.CancelledError:
        raise
    except BotkitError:
        raise
    except Exception as exc:
        raise TokenError(f"the token provider failed: {exc!r}") from exc
    if not isinstance(token, str) or not token:
        raise TokenError(f"the token provider returned {type(token).__name__}, not a token")
    return token
