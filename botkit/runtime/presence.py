"""Who is in a room, from presence join and leave pushes, counted per connection.

A user with several connections (two tabs, a phone) joins once, when the first connection comes,
and leaves once, when the last one goes. After a reconnect the pushes missed meanwhile are made up
by comparing with the server's presence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from botkit.protocol.types import ClientInfo

__all__ = ["RoomPresence"]


@dataclass(slots=True)
class RoomPresence:
    clients: dict[str, set[str]] = field(default_factory=dict)
    """user id → ids of that user's connections in the room."""

    def join(self, info: ClientInfo) -> bool:
        """Record a connection; True if it is the user's first (the user joined)."""
        connections = self.clients.setdefault(info.user, set())
        first = not connections
        connections.add(info.client)
        return first

    def leave(self, info: ClientInfo) -> bool:
        """Forget a connection; True if it was the user's last (the user left)."""
        connections = self.clients.get(info.user)
        if not connections or info.client not in connections:
            return False
        connections.discard(info.client)
        if connections:
            return False
        del self.clients[info.user]
        return True

    def restore(self, users: Iterable[str]) -> None:
        """Start from the users present when the bot last stopped (their connections are
        unknown: the first resync replaces them with the server's)."""
        for user in users:
            self.clients.setdefault(user, {"restored"})

    def users(self) -> set[str]:
        return set(self.clients)

    def resync(self, present: Iterable[ClientInfo]) -> tuple[list[ClientInfo], list[str]]:
        """Replace the state with the server's presence. Returns the connections of users who
        joined meanwhile (one per user) and the ids of users who left."""
        fresh: dict[str, set[str]] = {}
        first_seen: dict[str, ClientInfo] = {}
        for info in present:
            fresh.setdefault(info.user, set()).add(info.client)
            first_seen.setdefault(info.user, info)
        joined = [first_seen[user] for user in fresh if user not in self.clients]
        left = [user for user in self.clients if user not in fresh]
        self.clients = fresh
        return joined, left
