"""The channel commands a connected client may send besides subscribing: ``publish``,
``presence``, ``presence_stats`` and ``history``, each with the namespace's permission check.

Checks run in Centrifugo's order: an empty channel is a protocol violation (3501); then unknown
namespace (102), a non-ASCII name (107), the feature being off in the namespace (108), and last
the permission (103).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botkit.dev.hub.codes import (
    BAD_REQUEST,
    NOT_AVAILABLE,
    PERMISSION_DENIED,
    UNKNOWN_CHANNEL,
    UNRECOVERABLE_POSITION,
    CommandError,
    Disconnect,
    DisconnectError,
)
from botkit.dev.hub.namespaces import (
    ChannelOptions,
    can_history,
    can_presence,
    can_publish,
    valid_channel_name,
)
from botkit.dev.hub.streams import Position
from botkit.dev.hub.wire import Fields

if TYPE_CHECKING:
    from botkit.dev.hub.core import Hub
    from botkit.dev.hub.subscriptions import Subscriptions

__all__ = ["history", "history_result", "presence", "presence_stats", "publish"]


def _channel(hub: Hub, request: Fields) -> tuple[str, ChannelOptions]:
    channel = request.text("channel")
    if not channel:
        raise DisconnectError(Disconnect.BAD_REQUEST)
    options = hub.options(channel)
    if options is None:
        raise CommandError(UNKNOWN_CHANNEL)
    if not valid_channel_name(channel):
        raise CommandError(BAD_REQUEST)
    return channel, options


def publish(hub: Hub, subs: Subscriptions, user: str, request: Fields) -> dict[str, Any]:
    channel, options = _channel(hub, request)
    if not request.present("data"):
        raise CommandError(BAD_REQUEST)  # Centrifugo refuses empty data in JSON namespaces
    if not can_publish(options, user, subs.get(channel) is not None):
        raise CommandError(PERMISSION_DENIED)
    hub.publish(channel, options, request.raw("data"), info=subs.client_info(channel))
    return {}  # a client's publish reply carries no offset


def presence(hub: Hub, subs: Subscriptions, user: str, request: Fields) -> dict[str, Any]:
    channel, _options = _presence_channel(hub, subs, user, request)
    clients = hub.presence.presence(channel)
    return {"presence": {client: info.to_json() for client, info in clients.items()}}


def presence_stats(hub: Hub, subs: Subscriptions, user: str,
                   request: Fields) -> dict[str, Any]:
    channel, _options = _presence_channel(hub, subs, user, request)
    num_clients, num_users = hub.presence.stats(channel)
    return {"num_clients": num_clients, "num_users": num_users}


def _presence_channel(hub: Hub, subs: Subscriptions, user: str,
                      request: Fields) -> tuple[str, ChannelOptions]:
    channel, options = _channel(hub, request)
    if not options.presence:
        raise CommandError(NOT_AVAILABLE)
    if not can_presence(options, user, subs.get(channel) is not None):
        raise CommandError(PERMISSION_DENIED)
    return channel, options


def history(hub: Hub, subs: Subscriptions, user: str, request: Fields) -> dict[str, Any]:
    channel = request.text("channel")
    if not channel:
        raise DisconnectError(Disconnect.BAD_REQUEST)
    limit = request.int32("limit")
    cap = hub.config.history_max_publication_limit
    if limit < 0 or limit > cap:
        limit = cap
    since_fields = request.obj("since")
    since = (Position(since_fields.uint64("offset"), since_fields.text("epoch"))
             if since_fields is not None else None)
    reverse = request.flag("reverse")
    channel, options = _channel(hub, request)
    if not options.history:
        raise CommandError(NOT_AVAILABLE)
    if not can_history(options, user, subs.get(channel) is not None):
        raise CommandError(PERMISSION_DENIED)
    return history_result(hub, channel, options, limit=limit, since=since, reverse=reverse)


def history_result(hub: Hub, channel: str, options: ChannelOptions, *, limit: int,
                   since: Position | None, reverse: bool) -> dict[str, Any]:
    """Centrifugo's ``node.History`` (shared with the server API)."""
    if reverse and since is not None and since.offset == 0:
        raise CommandError(BAD_REQUEST)
    publications, top = hub.streams.history(channel, since=since, limit=limit,
                                            reverse=reverse, meta_ttl=options.history_meta_ttl)
    if since is not None and since.epoch and since.epoch != top.epoch:
        raise CommandError(UNRECOVERABLE_POSITION)
    return {"publications": [p.to_json() for p in publications], "epoch": top.epoch,
            "offset": top.offset}
