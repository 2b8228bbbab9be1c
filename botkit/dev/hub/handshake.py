"""What a connection's tokens grant it, for the session (session.py): a connect token checked
against the hub's namespaces, the server-side subscriptions it and the client's ``subs`` ask for
(made all or none), and a refresh token checked against the connection's user. Errors are the
ones Centrifugo answers with: a CommandError replies, a DisconnectError closes."""

from __future__ import annotations

from typing import Any

from botkit.dev.hub.auth import ConnectToken, InvalidTokenError, TokenExpiredError
from botkit.dev.hub.codes import (
    TOKEN_EXPIRED,
    UNKNOWN_CHANNEL,
    CommandError,
    Disconnect,
    DisconnectError,
)
from botkit.dev.hub.core import Hub, Subscriber
from botkit.dev.hub.namespaces import (
    PRIVATE_PREFIX,
    can_subscribe_without_token,
    valid_channel_name,
)
from botkit.dev.hub.streams import Position
from botkit.dev.hub.subscriptions import ChannelState, SubscribeOptions, Subscriptions
from botkit.dev.hub.wire import FieldError, Fields

__all__ = ["server_side_options", "subscribe_server_side", "verify_connect", "verify_refresh"]


def verify_connect(hub: Hub, token: str) -> ConnectToken:
    try:
        claims = hub.tokens.connect(token)
    except TokenExpiredError as exc:
        raise CommandError(TOKEN_EXPIRED) from exc
    except InvalidTokenError as exc:
        raise DisconnectError(Disconnect.INVALID_TOKEN) from exc
    if any(hub.options(channel) is None for channel in claims.subs):
        raise CommandError(UNKNOWN_CHANNEL)
    return claims


def server_side_options(hub: Hub, claims: ConnectToken, recover: dict[str, Fields],
                        ) -> dict[str, tuple[SubscribeOptions, bool]]:
    """Server-side subscriptions: the token's, plus channels the client asks to keep that
    it could subscribe to by itself anyway. Channel → (options, from the token)."""
    wanted: dict[str, tuple[SubscribeOptions, bool]] = {}
    for channel, channel_claims in claims.subs.items():
        namespace = hub.options(channel)
        assert namespace is not None  # checked by verify_connect
        wanted[channel] = (SubscribeOptions.of(namespace, channel_claims), True)
    for channel in recover:
        namespace = hub.options(channel)
        if namespace is None:
            raise DisconnectError(Disconnect.BAD_REQUEST)
        if (channel not in wanted and not channel.startswith(PRIVATE_PREFIX)
                and valid_channel_name(channel)
                and can_subscribe_without_token(namespace, claims.user)):
            wanted[channel] = (SubscribeOptions.of(namespace), False)
    return wanted


def subscribe_server_side(hub: Hub, subs: Subscriptions, client: Subscriber,
                          wanted: dict[str, tuple[SubscribeOptions, bool]],
                          recover: dict[str, Fields],
                          ) -> list[tuple[ChannelState, dict[str, Any]]]:
    done: list[tuple[ChannelState, dict[str, Any]]] = []
    try:
        for channel, (options, from_token) in wanted.items():
            request = recover.get(channel, Fields({}))
            since = Position(request.uint64("offset"), request.text("epoch"))
            result = subs.activate(channel, options, recover=request.flag("recover"),
                                   since=since, server_side=True,
                                   from_connection_token=from_token)
            state = subs.get(channel)
            assert state is not None
            done.append((state, result))
    except (CommandError, FieldError):
        for state, _ in done:  # none was announced yet: undo quietly
            subs.channels.pop(state.channel, None)
            hub.presence.remove(state.channel, client.client_id)
            hub.remove_subscriber(state.channel, client)
        hub.remove_client(client)
        raise
    return done


def verify_refresh(hub: Hub, token: str, user: str) -> ConnectToken:
    """The claims of a refresh token for the connection of ``user``."""
    if not token:
        raise DisconnectError(Disconnect.BAD_REQUEST)
    try:
        claims = hub.tokens.connect(token)
    except TokenExpiredError as exc:
        raise DisconnectError(Disconnect.EXPIRED) from exc
    except InvalidTokenError as exc:
        raise DisconnectError(Disconnect.INVALID_TOKEN) from exc
    if claims.user != user:
        raise DisconnectError(Disconnect.INVALID_TOKEN)
    if any(hub.options(channel) is None for channel in claims.subs):
        raise CommandError(UNKNOWN_CHANNEL)
    return claims
