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


_Connections = str | set[str]
"""A user's connections in a room: the id of the only one (the usual case: no set, ~216 bytes
less a user, and every room holds at least the bot itself; bench/ S4), else a set of ids."""


@dataclass(slots=True)
class RoomPresence:
    clients: dict[str, _Connections] = field(default_factory=dict)
    """user id → that user's connections in the room (see :meth:`connections`)."""

    def connections(self, user: str) -> set[str]:
        """The ids of ``user``'s connections in the room."""
        held = self.clients.get(user)
        if held is None:
            return set()
        return {held} if isinstance(held, str) else set(held)

    def join(self, info: ClientInfo) -> bool:
        """Record a connection; True if it is the user's first (the user joined)."""
        held = self.clients.get(info.user)
        if held is None:
            self.clients[info.user] = info.client
            return True
        if isinstance(held, str):
            if held != info.client:
                self.clients[info.user] = {held, info.client}
        else:
            held.add(info.client)
        return False

    def leave(self, info: ClientInfo) -> bool:
        """Forget a connection; True if it was the user's last (the user left)."""
        held = self.clients.get(info.user)
        if held is None:
            return False
        if isinstance(held, str):
            if held != info.client:
                return False
        else:
            if info.client not in held:
                return False
            held.discard(info.client)
            if held:
                if len(held) == 1:
                    self.clients[info.user] = next(iter(held))
                return False
        del self.clients[info.user]
        return True

    def restore(self, users: Iterable[str]) -> None:
        """Start from the users present when the bot last stopped (their connections are
        unknown: the first resync replaces them with the server's)."""
        for user in users:
            self.clients.setdefault(user, "restored")

    def users(self) -> set[str]:
        return set(self.clients)

    def resync(self, present: Iterable[ClientInfo]) -> tuple[list[ClientInfo], list[str]]:
        """Replace the state with the server's presence. Returns the connections of users who
        joined meanwhile (one per user) and the ids of users who left."""
        fresh = RoomPresence()
        first_seen: dict[str, ClientInfo] = {}
        for info in present:
            fresh.join(info)
            first_seen.setdefault(info.user, info)
        joined = [first_seen[user] for user in fresh.clients if user not in self.clients]
        left = [user for user in self.clients if user not in fresh.clients]
        self.clients = fresh.clients
        return joined, left
