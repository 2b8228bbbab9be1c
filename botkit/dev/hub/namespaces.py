"""Channel namespaces: the options of each namespace and who may do what in its channels.

``chat`` is configured exactly as ``centrifugo_config`` configures the real server: subscribing
needs a subscription token, presence and join/leave pushes are on, history keeps
``history_size`` publications for ``history_ttl``, recovery is forced, and subscribers may ask
presence, read history and, in the seed's prototype mode (``client_publish``), publish. A
channel without a namespace (no ``:``) gets Centrifugo's ``without_namespace`` defaults, where
every permission is off. The permission rules are Centrifugo's (``internal/client/handler.go``)
minus the proxies and ``client.insecure``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "MAX_CHANNEL_LENGTH",
    "PRIVATE_PREFIX",
    "ChannelOptions",
    "Namespaces",
    "can_history",
    "can_presence",
    "can_publish",
    "can_subscribe_without_token",
    "chat_namespace",
    "valid_channel_name",
]

MAX_CHANNEL_LENGTH = 255
PRIVATE_PREFIX = "$"
"""Channels starting with it always need a subscription token."""
HISTORY_META_TTL = 720 * 3600.0
"""Centrifugo's default ``history_meta_ttl``: how long a stream's epoch and top offset live."""


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """The namespace options the hub honours (Centrifugo's names)."""

    presence: bool = False
    join_leave: bool = False
    force_push_join_leave: bool = False
    history_size: int = 0
    history_ttl: float = 0.0
    history_meta_ttl: float = HISTORY_META_TTL
    force_recovery: bool = False
    force_positioning: bool = False
    allow_recovery: bool = False
    allow_positioning: bool = False
    allow_subscribe_for_client: bool = False
    allow_subscribe_for_anonymous: bool = False
    allow_publish_for_client: bool = False
    allow_publish_for_subscriber: bool = False
    allow_publish_for_anonymous: bool = False
    allow_presence_for_client: bool = False
    allow_presence_for_subscriber: bool = False
    allow_presence_for_anonymous: bool = False
    allow_history_for_client: bool = False
    allow_history_for_subscriber: bool = False
    allow_history_for_anonymous: bool = False

    @property
    def history(self) -> bool:
        """Both size and TTL must be positive, or the channel keeps no history."""
        return self.history_size > 0 and self.history_ttl > 0


def chat_namespace(*, history_size: int = 100, history_ttl: float = 300.0,
                   client_publish: bool = True) -> ChannelOptions:
    """The seed's ``chat`` namespace: rooms are private, recoverable and chatty. Without
    ``client_publish`` clients can't publish (103): messages come through the server API."""
    return ChannelOptions(
        presence=True,
        join_leave=True,
        force_push_join_leave=True,
        history_size=history_size,
        history_ttl=history_ttl,
        force_recovery=True,
        allow_subscribe_for_client=False,
        allow_publish_for_subscriber=client_publish,
        allow_presence_for_subscriber=True,
        allow_history_for_subscriber=True,
    )


class Namespaces:
    """Channel name → options: ``ns:rest`` picks namespace ``ns``; an unknown one is None."""

    def __init__(self, namespaces: Mapping[str, ChannelOptions],
                 without_namespace: ChannelOptions | None = None) -> None:
        self._namespaces = dict(namespaces)
        self._default = without_namespace or ChannelOptions()

    def options(self, channel: str) -> ChannelOptions | None:
        name = channel.removeprefix(PRIVATE_PREFIX)
        if ":" not in name:
            return self._default
        return self._namespaces.get(name.split(":", 1)[0])

    def names(self) -> list[str]:
        return sorted(self._namespaces)


def valid_channel_name(channel: str) -> bool:
    """Without a ``channel_regex``, Centrifugo refuses non-ASCII channel names (107)."""
    return channel.isascii()


def can_subscribe_without_token(options: ChannelOptions, user: str) -> bool:
    return options.allow_subscribe_for_client and bool(
        user or options.allow_subscribe_for_anonymous)


def can_publish(options: ChannelOptions, user: str, subscribed: bool) -> bool:
    known = bool(user or options.allow_publish_for_anonymous)
    return known and (options.allow_publish_for_client
                      or (options.allow_publish_for_subscriber and subscribed))


def can_presence(options: ChannelOptions, user: str, subscribed: bool) -> bool:
    known = bool(user or options.allow_presence_for_anonymous)
    return known and (options.allow_presence_for_client
                      or (options.allow_presence_for_subscriber and subscribed))


def can_history(options: ChannelOptions, user: str, subscribed: bool) -> bool:
    known = bool(user or options.allow_history_for_anonymous)
    return known and (options.allow_history_for_client
                      or (options.allow_history_for_subscriber and subscribed))
