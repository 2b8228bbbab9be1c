"""The hub's shared state: connections, who is subscribed where, streams, presence, and the
fan-out of publications, joins and leaves.

Everything here runs on one event loop and never awaits: a publication is stored and handed to
every subscriber's outgoing queue in one synchronous step. That is what gives the ordering
guarantees of the real server for free: a subscribe reply is queued before any publication that
follows it, offsets reach each subscriber in order, and nothing falls between a recovery read and
the live stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from botkit.dev.hub.auth import TokenVerifier
from botkit.dev.hub.codes import Disconnect, Unsubscribe
from botkit.dev.hub.idempotency import IdempotencyCache
from botkit.dev.hub.namespaces import ChannelOptions, Namespaces, chat_namespace
from botkit.dev.hub.presence import PresenceStore, SubscriberInfo
from botkit.dev.hub.settings import HubConfig
from botkit.dev.hub.streams import Position, StoredPublication, StreamStore
from botkit.dev.hub.wire import push

__all__ = ["HUB_VERSION", "Hub", "Subscriber"]

HUB_VERSION = "botkit-hub 0.1.0"
"""What the hub answers for ``version`` (Centrifugo says e.g. ``6.9.1 OSS``)."""


class Subscriber(Protocol):
    """What the hub needs of a connection (a :class:`~botkit.dev.hub.session.Session`)."""

    @property
    def client_id(self) -> str: ...

    @property
    def user(self) -> str: ...

    def push_publication(self, channel: str, frame: str) -> None: ...

    def push_join_leave(self, channel: str, frame: str) -> None: ...

    def server_unsubscribe(self, channel: str, unsubscribe: Unsubscribe) -> None: ...

    def disconnect(self, disconnect: Disconnect) -> None: ...


class Hub:
    """One hub: what Centrifugo's node, hub and memory engine hold, in one object."""

    def __init__(self, config: HubConfig, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.wall = wall
        self.started_at = wall()
        self.namespaces = Namespaces({"chat": chat_namespace(
            history_size=config.history_size, history_ttl=config.history_ttl,
            client_publish=config.client_publish)})
        self.tokens = TokenVerifier(config.api_key, wall=wall)
        self.streams = StreamStore(clock)
        self.presence = PresenceStore()
        self.idempotency = IdempotencyCache(clock)
        self._clients: dict[str, Subscriber] = {}
        self._users: dict[str, dict[str, Subscriber]] = {}
        self._channels: dict[str, dict[str, Subscriber]] = {}

    # -- connections -------------------------------------------------------------------------

    def add_client(self, client: Subscriber) -> None:
        self._clients[client.client_id] = client
        self._users.setdefault(client.user, {})[client.client_id] = client

    def remove_client(self, client: Subscriber) -> None:
        self._clients.pop(client.client_id, None)
        same_user = self._users.get(client.user)
        if same_user is not None:
            same_user.pop(client.client_id, None)
            if not same_user:
                del self._users[client.user]

    def clients(self, user: str, client_id: str = "") -> list[Subscriber]:
        """Connections of ``user``; only the one with ``client_id`` when it is given."""
        found = list(self._users.get(user, {}).values())
        return [c for c in found if c.client_id == client_id] if client_id else found

    @property
    def num_clients(self) -> int:
        return len(self._clients)

    @property
    def num_users(self) -> int:
        return len(self._users)

    def shutdown(self) -> None:
        """Close every connection with 3001, as Centrifugo does when it stops."""
        for client in list(self._clients.values()):
            client.disconnect(Disconnect.SHUTDOWN)

    # -- subscriptions -----------------------------------------------------------------------

    def add_subscriber(self, channel: str, client: Subscriber) -> None:
        self._channels.setdefault(channel, {})[client.client_id] = client

    def remove_subscriber(self, channel: str, client: Subscriber) -> None:
        subscribers = self._channels.get(channel)
        if subscribers is None:
            return
        subscribers.pop(client.client_id, None)
        if not subscribers:
            del self._channels[channel]

    def channels(self) -> Iterator[tuple[str, int]]:
        """Channels with at least one subscriber, and how many."""
        return ((channel, len(subs)) for channel, subs in self._channels.items())

    @property
    def num_subscriptions(self) -> int:
        return sum(len(subs) for subs in self._channels.values())

    def _subscribers(self, channel: str) -> list[Subscriber]:
        # A copy: a push may overflow a slow connection, which then leaves every channel.
        return list(self._channels.get(channel, {}).values())

    # -- fan-out -----------------------------------------------------------------------------

    def options(self, channel: str) -> ChannelOptions | None:
        return self.namespaces.options(channel)

    def publish(self, channel: str, options: ChannelOptions, data: Any, *,
                info: SubscriberInfo | None = None, tags: dict[str, str] | None = None,
                skip_history: bool = False, idempotency_key: str = "") -> Position | None:
        """Store (when the channel keeps history) and deliver a publication. Returns its
        position, None when it was not kept in history. A repeated ``idempotency_key`` gets
        the first result back and publishes nothing."""
        if idempotency_key:
            found, first = self.idempotency.get(channel, idempotency_key)
            if found:
                return first
        info_json = info.to_json() if info is not None else None
        position: Position | None = None
        if options.history and not skip_history:
            position = self.streams.publish(
                channel, data, info=info_json, tags=tags or None, size=options.history_size,
                ttl=options.history_ttl, meta_ttl=options.history_meta_ttl)
        publication = StoredPublication(position.offset if position else 0, data, info_json,
                                        tags or None)
        frame = push(channel, "pub", publication.to_json())
        for subscriber in self._subscribers(channel):
            subscriber.push_publication(channel, frame)
        if idempotency_key:
            self.idempotency.put(channel, idempotency_key, position)
        return position

    def join(self, channel: str, info: SubscriberInfo) -> None:
        frame = push(channel, "join", {"info": info.to_json()})
        for subscriber in self._subscribers(channel):
            subscriber.push_join_leave(channel, frame)

    def leave(self, channel: str, info: SubscriberInfo) -> None:
        frame = push(channel, "leave", {"info": info.to_json()})
        for subscriber in self._subscribers(channel):
            subscriber.push_join_leave(channel, frame)

    # -- server API actions on connections ----------------------------------------------------

    def unsubscribe_user(self, user: str, channel: str, client_id: str = "") -> None:
        for client in self.clients(user, client_id):
            client.server_unsubscribe(channel, Unsubscribe(2000, "server unsubscribe"))

    def disconnect_user(self, user: str, disconnect: Disconnect, *, client_id: str = "",
                        whitelist: frozenset[str] = frozenset()) -> None:
        for client in self.clients(user, client_id):
            if client.client_id not in whitelist:
                client.disconnect(disconnect)
