"""The client's timers as data: when each deadline falls, and what is due once it has passed.

A client connection has five kinds of deadline: the reply to connect, the server's liveness (it
pings at a known interval; silence past that interval plus a grace means the server or the
network is dead), the connection token's refresh, each subscription token's refresh, and the
replies to subscribes. None of them reads a clock: every call that sets or fires a deadline is
given ``now`` by its caller, so the whole policy is tested with plain numbers. The transport
sleeps until :meth:`Timers.next_deadline` and calls :meth:`Timers.fire` with the time it woke.

Subscribes sent together time out together: :meth:`Timers.fire` reports every overdue subscribe
in one :class:`SubscribeTimedOut`, so N unanswered subscribes cost one timeout, not N.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ConnectTimedOut",
    "LivenessLost",
    "RefreshDue",
    "ResubscribeDue",
    "SubscribeTimedOut",
    "TimerEvent",
    "TimerPolicy",
    "Timers",
    "refresh_delay",
]


@dataclass(frozen=True, slots=True)
class TimerPolicy:
    """How long to wait for what, in seconds."""

    connect_timeout: float = 10.0
    """From sending connect to its reply."""
    command_timeout: float = 10.0
    """From sending a subscribe to its reply."""
    ping_grace: float = 10.0
    """Past the server's ping interval before the server is presumed dead."""
    refresh_margin: float = 30.0
    """Refresh a token this long before it expires (at most a fifth of its life)."""
    refresh_retry: float = 1.0
    """After a refresh fell due: try again this long later unless its reply reschedules it (a
    refresh that failed or went unanswered is retried; the server allows a grace period)."""


@dataclass(frozen=True, slots=True)
class ConnectTimedOut:
    """No reply to connect in time: the connection is of no use."""


@dataclass(frozen=True, slots=True)
class LivenessLost:
    """Nothing arrived for longer than the ping interval plus the grace."""

    silent_for: float


@dataclass(frozen=True, slots=True)
class RefreshDue:
    """Time to refresh a token: ``channel`` "" is the connection's own."""

    channel: str


@dataclass(frozen=True, slots=True)
class SubscribeTimedOut:
    """Subscribes whose replies are overdue, all of them at once, in the order sent."""

    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResubscribeDue:
    """Channels whose retry delay (after a transient refusal) has passed."""

    channels: tuple[str, ...]


TimerEvent = ConnectTimedOut | LivenessLost | RefreshDue | SubscribeTimedOut | ResubscribeDue


def refresh_delay(ttl: float, margin: float) -> float:
    """Seconds from now until a token that lives ``ttl`` more seconds should be refreshed: the
    margin, but never more than a fifth of the life, and never sooner than half a second."""
    return max(0.5, ttl - min(margin, max(1.0, ttl * 0.2)))


class Timers:
    """Every deadline of one client connection (refreshes and retries across its subscribes)."""

    def __init__(self, policy: TimerPolicy | None = None) -> None:
        self.policy = policy or TimerPolicy()
        self._connect_at: float | None = None
        self._liveness = 0.0  # ping interval + grace; 0: the server does not ping
        self._heard = 0.0
        self._refresh: dict[str, float] = {}
        self._subscribe: dict[int, tuple[float, str]] = {}  # command id → (deadline, channel)
        self._resubscribe: dict[str, float] = {}

    # -- setting -------------------------------------------------------------------------------

    def connect_sent(self, now: float) -> None:
        self._connect_at = now + self.policy.connect_timeout

    def connected(self, now: float, ping_interval: float) -> None:
        self._connect_at = None
        self._liveness = ping_interval + self.policy.ping_grace if ping_interval > 0 else 0.0
        self._heard = now

    def heard(self, now: float) -> None:
        """Something arrived: the server is alive."""
        self._heard = now

    def token_expires(self, channel: str, now: float, ttl: float) -> None:
        self._refresh[channel] = now + refresh_delay(ttl, self.policy.refresh_margin)

    def token_lasts(self, channel: str) -> None:
        """The token does not expire (any more): no refresh is due."""
        self._refresh.pop(channel, None)

    def subscribe_sent(self, command_id: int, channel: str, now: float) -> None:
        self._subscribe[command_id] = (now + self.policy.command_timeout, channel)

    def subscribe_answered(self, command_id: int) -> None:
        self._subscribe.pop(command_id, None)

    def resubscribe_at(self, channel: str, at: float) -> None:
        self._resubscribe[channel] = at

    def forget(self, channel: str) -> None:
        """The channel is no longer wanted: neither its refresh nor its retry is due."""
        self._refresh.pop(channel, None)
        self._resubscribe.pop(channel, None)

    def connection_lost(self) -> None:
        """Every deadline belonged to the socket that is gone (a new one subscribes anew)."""
        self._connect_at = None
        self._liveness = 0.0
        self._refresh.clear()
        self._subscribe.clear()
        self._resubscribe.clear()

    # -- reading -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest deadline, or None when nothing is due ever."""
        deadlines = [*self._refresh.values(), *self._resubscribe.values()]
        if self._subscribe:
            deadlines.append(min(at for at, _ in self._subscribe.values()))
        if self._connect_at is not None:
            deadlines.append(self._connect_at)
        if self._liveness:
            deadlines.append(self._heard + self._liveness)
        return min(deadlines, default=None)

    def fire(self, now: float) -> list[TimerEvent]:
        """What is due at ``now``; each deadline fires once (a refresh is retried later)."""
        events: list[TimerEvent] = []
        if self._connect_at is not None and now >= self._connect_at:
            self._connect_at = None
            events.append(ConnectTimedOut())
        if self._liveness and now >= self._heard + self._liveness:
            self._liveness = 0.0
            events.append(LivenessLost(now - self._heard))
        overdue = [command_id for command_id, (at, _) in self._subscribe.items() if now >= at]
        if overdue:
            events.append(SubscribeTimedOut(tuple(self._subscribe.pop(command_id)[1]
                                                  for command_id in overdue)))
        retry = [channel for channel, at in self._resubscribe.items() if now >= at]
        if retry:
            for channel in retry:
                del self._resubscribe[channel]
            events.append(ResubscribeDue(tuple(retry)))
        for channel, at in list(self._refresh.items()):
            if now >= at:
                self._refresh[channel] = now + self.policy.refresh_retry
                events.append(RefreshDue(channel))
        return events
