"""Who is subscribed to each channel with presence on: one entry per connection.

The memory engine keeps presence for as long as the connection stays subscribed (Centrifugo
refreshes it on the presence timer and drops it on unsubscribe); in one process the entry is
simply added on subscribe and removed on unsubscribe or disconnect, so it can never go stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PresenceStore", "SubscriberInfo"]


@dataclass(frozen=True, slots=True)
class SubscriberInfo:
    """A subscribed connection as others see it, as the hub writes it (publication ``info``,
    join/leave, presence). Not :class:`botkit.protocol.ClientInfo`, the client's reading of
    the same JSON: the hub stays independent of the client it is a test oracle for."""

    user: str
    client: str
    conn_info: Any = None
    chan_info: Any = None

    def to_json(self) -> dict[str, Any]:
        # user and client are always present on the wire, even when empty.
        body: dict[str, Any] = {"user": self.user, "client": self.client}
        if self.conn_info is not None:
            body["conn_info"] = self.conn_info
        if self.chan_info is not None:
            body["chan_info"] = self.chan_info
        return body


class PresenceStore:
    def __init__(self) -> None:
        self._channels: dict[str, dict[str, SubscriberInfo]] = {}

    def add(self, channel: str, info: SubscriberInfo) -> None:
        self._channels.setdefault(channel, {})[info.client] = info

    def remove(self, channel: str, client_id: str) -> None:
        clients = self._channels.get(channel)
        if clients is None:
            return
        clients.pop(client_id, None)
        if not clients:
            del self._channels[channel]

    def presence(self, channel: str) -> dict[str, SubscriberInfo]:
        return dict(self._channels.get(channel, {}))

    def stats(self, channel: str) -> tuple[int, int]:
        """(number of connections, number of distinct users)."""
        clients = self._channels.get(channel, {})
        return len(clients), len({info.user for info in clients.values()})
