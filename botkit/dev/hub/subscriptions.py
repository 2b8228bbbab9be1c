"""One connection's subscriptions: subscribe (with tokens, positioning and recovery),
unsubscribe, ``sub_refresh`` and subscription expiry.

The checks run in Centrifugo's order (``validateSubscribeRequest``, then the handler's
``OnSubscribe``, then ``subscribeCmd``), because the order decides which error a client gets when
several things are wrong at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from botkit.dev.hub.auth import InvalidTokenError, Override, TokenClaims, TokenExpiredError
from botkit.dev.hub.codes import (
    ALREADY_SUBSCRIBED,
    BAD_REQUEST,
    EXPIRED,
    LIMIT_EXCEEDED,
    PERMISSION_DENIED,
    TOKEN_EXPIRED,
    UNKNOWN_CHANNEL,
    UNRECOVERABLE_POSITION,
    CommandError,
    Disconnect,
    DisconnectError,
)
from botkit.dev.hub.namespaces import (
    MAX_CHANNEL_LENGTH,
    PRIVATE_PREFIX,
    ChannelOptions,
    can_history,
    can_presence,
    can_subscribe_without_token,
    valid_channel_name,
)
from botkit.dev.hub.presence import SubscriberInfo
from botkit.dev.hub.streams import Position
from botkit.dev.hub.wire import Fields

if TYPE_CHECKING:
    from botkit.dev.hub.core import Hub, Subscriber

__all__ = ["ChannelState", "SubscribeOptions", "Subscriptions"]

_REJECT_UNRECOVERED = 2
"""Subscribe ``flag`` bit: answer 112 instead of ``recovered: false``."""


@dataclass(frozen=True, slots=True)
class SubscribeOptions:
    """What one subscription does (Centrifugo's ``SubscribeOptions``)."""

    emit_presence: bool = False
    emit_join_leave: bool = False
    push_join_leave: bool = False
    recovery: bool = False
    positioning: bool = False
    expire_at: int = 0
    chan_info: Any = None
    data: Any = None
    meta_ttl: float = 0.0

    @classmethod
    def of(cls, options: ChannelOptions, claims: TokenClaims | None = None,
           expire_at: int = 0) -> SubscribeOptions:
        """The namespace's options, overridden by a token's claims when there is one."""
        override = claims.override if claims else Override()

        def pick(default: bool, value: bool | None) -> bool:
            return default if value is None else value

        return cls(
            emit_presence=pick(options.presence, override.presence),
            emit_join_leave=pick(options.join_leave, override.join_leave),
            push_join_leave=pick(options.force_push_join_leave, override.force_push_join_leave),
            recovery=pick(options.force_recovery, override.force_recovery),
            positioning=pick(options.force_positioning, override.force_positioning),
            expire_at=expire_at, chan_info=claims.info if claims else None,
            data=claims.data if claims else None, meta_ttl=options.history_meta_ttl)


@dataclass(slots=True)
class ChannelState:
    channel: str
    options: SubscribeOptions
    server_side: bool = False
    from_connection_token: bool = False


class Subscriptions:
    """The channels one connection is subscribed to, and the commands that change them."""

    def __init__(self, hub: Hub, owner: Subscriber,
                 conn_info: Callable[[], Any]) -> None:
        self._hub = hub
        self._owner = owner
        self._conn_info = conn_info
        self.channels: dict[str, ChannelState] = {}

    def get(self, channel: str) -> ChannelState | None:
        return self.channels.get(channel)

    def client_info(self, channel: str) -> SubscriberInfo:
        state = self.channels.get(channel)
        return SubscriberInfo(self._owner.user, self._owner.client_id, self._conn_info(),
                          state.options.chan_info if state else None)

    # -- subscribe ---------------------------------------------------------------------------

    def subscribe(self, request: Fields) -> tuple[dict[str, Any], ChannelState]:
        """A client's subscribe command: the reply's result, and the new state (the caller
        writes the reply, then announces the join)."""
        channel = request.text("channel")
        if not channel:
            raise DisconnectError(Disconnect.BAD_REQUEST)
        delta = request.text("delta")
        if delta and delta != "fossil":
            raise DisconnectError(Disconnect.BAD_REQUEST)
        if len(channel) > MAX_CHANNEL_LENGTH:
            raise CommandError(BAD_REQUEST)
        if channel in self.channels:
            raise CommandError(ALREADY_SUBSCRIBED)
        if len(self.channels) >= self._hub.config.channel_limit:
            raise CommandError(LIMIT_EXCEEDED)
        namespace = self._hub.options(channel)
        if namespace is None:
            raise CommandError(UNKNOWN_CHANNEL)
        if not valid_channel_name(channel):
            raise CommandError(BAD_REQUEST)
        options = self._permission(channel, namespace, request.text("token"))
        if request.obj("tf") is not None:
            raise CommandError(BAD_REQUEST)  # no namespace here allows tags filters
        user = self._owner.user
        # Clients may ask for positioning, recovery and join/leave where they could read
        # history and presence anyway.
        if request.flag("positioned") and (namespace.allow_positioning
                                           or can_history(namespace, user, True)):
            options = replace(options, positioning=True)
        if request.flag("recoverable") and (namespace.allow_recovery
                                            or can_history(namespace, user, True)):
            options = replace(options, recovery=True)
        if request.flag("join_leave") and namespace.join_leave and can_presence(
                namespace, user, True):
            options = replace(options, push_join_leave=True)
        since = Position(request.uint64("offset"), request.text("epoch"))
        result = self.activate(channel, options, recover=request.flag("recover"), since=since,
                               reject_unrecovered=bool(request.int64("flag")
                                                       & _REJECT_UNRECOVERED))
        return result, self.channels[channel]

    def _permission(self, channel: str, namespace: ChannelOptions,
                    token: str) -> SubscribeOptions:
        if channel.startswith(PRIVATE_PREFIX) and not token:
            raise CommandError(PERMISSION_DENIED)
        if not token:
            if can_subscribe_without_token(namespace, self._owner.user):
                return SubscribeOptions.of(namespace)
            raise CommandError(PERMISSION_DENIED)
        try:
            claims = self._hub.tokens.subscribe(token)
        except TokenExpiredError as exc:
            raise CommandError(TOKEN_EXPIRED) from exc
        except InvalidTokenError as exc:
            raise CommandError(PERMISSION_DENIED) from exc
        claimed = self._hub.options(claims.channel)
        if claimed is None:
            raise CommandError(UNKNOWN_CHANNEL)
        self._check_binding(channel, claims.channel, claims.user, claims.client)
        return SubscribeOptions.of(claimed, claims.claims, claims.expire_at)

    def _check_binding(self, channel: str, token_channel: str, token_user: str,
                       token_client: str) -> None:
        """A token for another channel, user or connection is a forgery: close 3500."""
        if (token_channel != channel or token_user != self._owner.user
                or (token_client and token_client != self._owner.client_id)):
            raise DisconnectError(Disconnect.INVALID_TOKEN)

    def activate(self, channel: str, options: SubscribeOptions, *, recover: bool,
                 since: Position, reject_unrecovered: bool = False,
                 server_side: bool = False, from_connection_token: bool = False,
                 ) -> dict[str, Any]:
        """Centrifugo's ``subscribeCmd``: expiry, position and recovery, then registration."""
        hub = self._hub
        result: dict[str, Any] = {}
        if options.expire_at:
            ttl = options.expire_at - int(hub.wall())
            if ttl <= 0:
                raise CommandError(EXPIRED)
            if not server_side:  # server-side subscriptions are never refreshed by clients
                result.update(expires=True, ttl=ttl)
        if options.data is not None:
            result["data"] = options.data
        if options.positioning or options.recovery:
            result["positioned"] = True
            if options.recovery:
                result["recoverable"] = True
            if options.recovery and recover:
                recovery = hub.streams.recover(
                    channel, since, limit=hub.config.recovery_max_publication_limit,
                    meta_ttl=options.meta_ttl)
                if not recovery.recovered and reject_unrecovered:
                    raise CommandError(UNRECOVERABLE_POSITION)
                top = recovery.position
                if recovery.recovered:
                    result["recovered"] = True
                    result["publications"] = [p.to_json() for p in recovery.publications]
                    # The client's own offset: it advances it while applying publications.
                    top = Position(since.offset, top.epoch)
            else:
                top = hub.streams.top(channel, options.meta_ttl)
            result["epoch"] = top.epoch
            if top.offset:
                result["offset"] = top.offset
        if recover:
            result["was_recovering"] = True
        self.channels[channel] = ChannelState(channel, options, server_side,
                                              from_connection_token)
        hub.add_subscriber(channel, self._owner)
        if options.emit_presence:
            hub.presence.add(channel, self.client_info(channel))
        return result

    def announce_join(self, state: ChannelState) -> None:
        if state.options.emit_join_leave and state.channel in self.channels:
            self._hub.join(state.channel, self.client_info(state.channel))

    # -- unsubscribe, refresh, expiry ----------------------------------------------------------

    def unsubscribe(self, channel: str) -> bool:
        """Leave ``channel``: presence removed, leave announced. False if not subscribed."""
        state = self.channels.get(channel)
        if state is None:
            return False
        info = self.client_info(channel)
        del self.channels[channel]  # first, so that this connection does not get its leave
        hub = self._hub
        if state.options.emit_presence:
            hub.presence.remove(channel, self._owner.client_id)
        if state.options.emit_join_leave:
            hub.leave(channel, info)
        hub.remove_subscriber(channel, self._owner)
        return True

    def unsubscribe_all(self) -> None:
        for channel in list(self.channels):
            self.unsubscribe(channel)

    def sub_refresh(self, request: Fields) -> dict[str, Any]:
        channel = request.text("channel")
        if not channel:
            raise DisconnectError(Disconnect.BAD_REQUEST)
        state = self.channels.get(channel)
        if state is None:
            raise CommandError(PERMISSION_DENIED)
        if state.server_side:
            raise DisconnectError(Disconnect.BAD_REQUEST)  # the server refreshes those itself
        token = request.text("token")
        if not token:
            raise CommandError(BAD_REQUEST)
        try:
            claims = self._hub.tokens.subscribe(token)
        except TokenExpiredError as exc:
            # Centrifugo 6.9.1 silently drops the expiry here; the fix merged after it
            # (centrifuge PR #627) closes with 3006, which is what a dev server should do.
            raise DisconnectError(Disconnect.SUB_EXPIRED) from exc
        except InvalidTokenError as exc:
            raise DisconnectError(Disconnect.INVALID_TOKEN) from exc
        if self._hub.options(claims.channel) is None:
            raise CommandError(UNKNOWN_CHANNEL)
        self._check_binding(channel, claims.channel, claims.user, claims.client)
        result: dict[str, Any] = {}
        now = int(self._hub.wall())
        if claims.expire_at:
            if claims.expire_at < now:
                raise CommandError(EXPIRED)
            result["expires"] = True
            if claims.expire_at > now:
                result["ttl"] = claims.expire_at - now
        state.options = replace(state.options, expire_at=claims.expire_at,
                                chan_info=claims.claims.info)
        return result

    def expired(self, now: int, delay: float) -> list[ChannelState]:
        """Subscriptions whose token ran out more than ``delay`` seconds ago (whole seconds,
        as Centrifugo counts them)."""
        grace = int(delay)
        return [state for state in self.channels.values()
                if state.options.expire_at and now > state.options.expire_at + grace]

    def token_channels_changed(self, subs: dict[str, TokenClaims]) -> bool:
        """Whether a refreshed connection token names other server-side channels."""
        if any(channel not in self.channels for channel in subs):
            return True
        return any(state.from_connection_token and channel not in subs
                   for channel, state in self.channels.items())
