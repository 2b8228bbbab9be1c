"""The HTTP server API (reference §8): ``POST /api/realtime/<method>`` with the API key.

HTTP statuses are Centrifugo's: 404 for an unknown method path, 405 for anything but POST, 401
(empty body) for a missing or wrong key, 400 for a body that does not decode into the method's
request (a wrong type anywhere counts, like Go's decoder; so do numbers out of a float's range
and lone surrogates, which Centrifugo forwards as raw bytes: see :mod:`~botkit.dev.hub.wire`),
otherwise 200 with ``{"result": …}`` or
``{"error": …}``. Each request is decoded completely before anything runs, so a batch with one
malformed command changes nothing. Server-API publications carry no ``info``.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import functools
import hmac
import os
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from botkit.dev.hub import queries
from botkit.dev.hub.codes import (
    BAD_REQUEST,
    NOT_AVAILABLE,
    UNKNOWN_CHANNEL,
    ClientError,
    CommandError,
    Disconnect,
)
from botkit.dev.hub.core import HUB_VERSION, Hub
from botkit.dev.hub.namespaces import ChannelOptions
from botkit.dev.hub.streams import NO_LIMIT, Position
from botkit.dev.hub.wire import FieldError, Fields, dumps, loads

__all__ = ["ServerApiHandler", "api_endpoint", "authorized"]

Call = Callable[[], dict[str, Any]]
"""A decoded request, ready to run: returns ``{"result": …}`` or ``{"error": …}``."""

_MAX_BODY = 16 * 1024 * 1024
# Centrifugo's API error texts differ from the client protocol's for 104.
_NOT_FOUND = ClientError(104, "not found")
_NOT_IMPLEMENTED = ("subscribe", "refresh", "rpc", "map_publish", "map_remove",
                    "map_read_state", "map_read_stream", "map_stats", "map_clear",
                    "shared_poll_publish")


def authorized(key: str, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    """``X-API-Key: <key>``, or ``Authorization: apikey <key>``, or ``?api_key=<key>``."""
    if not key:
        return False  # no key configured: Centrifugo refuses every call
    given = headers.get("x-api-key", "")
    if given:
        return hmac.compare_digest(given.encode(), key.encode())
    parts = headers.get("authorization", "").split()
    if len(parts) == 2 and parts[0].lower() == "apikey":
        return hmac.compare_digest(parts[1].encode(), key.encode())
    return hmac.compare_digest(query.get("api_key", "").encode(), key.encode())


def _error(error: ClientError) -> dict[str, Any]:
    return {"error": {"code": error.code, "message": error.message}}


class ServerApiHandler:
    """The server side of the server API: decodes and runs requests against a hub (the
    client side is :class:`botkit.serverapi.ServerApi`)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._methods: dict[str, Callable[[Fields], Call]] = {
            "publish": self._publish, "broadcast": self._broadcast,
            "presence": self._presence, "presence_stats": self._presence_stats,
            "history": self._history, "history_remove": self._history_remove,
            "channels": self._channels, "info": self._info,
            "unsubscribe": self._unsubscribe, "disconnect": self._disconnect,
            "batch": self._batch,
        }

    def knows(self, method: str) -> bool:
        return method in self._methods or method in _NOT_IMPLEMENTED

    def prepare(self, method: str, params: Fields) -> Call:
        """Decode a request (FieldError: HTTP 400) into a call to run."""
        handler = self._methods.get(method)
        if handler is None:
            return lambda: _error(NOT_AVAILABLE)  # a Centrifugo method the hub does not serve
        return handler(params)

    @staticmethod
    def _run(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return {"result": work()}
        except CommandError as exc:
            return _error(exc.error)

    def _options(self, channel: str) -> ChannelOptions:
        if not channel:
            raise CommandError(BAD_REQUEST)
        options = self.hub.options(channel)
        if options is None:
            raise CommandError(UNKNOWN_CHANNEL)
        return options

    # -- publishing --------------------------------------------------------------------------

    def _publication(self, params: Fields) -> Callable[[str], dict[str, Any]]:
        """The part of publish and broadcast after the channel: data and options."""
        present, data, encoded = params.present("data"), params.raw("data"), params.text("b64data")
        skip_history = params.flag("skip_history")
        tags = params.text_map("tags")
        key = params.text("idempotency_key")
        params.flag("delta")
        params.uint64("version")
        params.text("version_epoch")

        def publish(channel: str) -> dict[str, Any]:
            options = self._options(channel)
            payload = data
            if encoded:
                try:  # JSON frames carry data as raw JSON, so it must decode to JSON
                    payload = loads(base64.b64decode(encoded, validate=True))
                except (binascii.Error, FieldError) as exc:
                    raise CommandError(BAD_REQUEST) from exc
            elif not present:
                raise CommandError(BAD_REQUEST)  # data is required
            position = self.hub.publish(channel, options, payload, tags=tags,
                                        skip_history=skip_history, idempotency_key=key)
            return {} if position is None else {"offset": position.offset,
                                                "epoch": position.epoch}

        return publish

    def _publish(self, params: Fields) -> Call:
        channel = params.text("channel")
        publish = self._publication(params)
        return lambda: self._run(lambda: publish(channel))

    def _broadcast(self, params: Fields) -> Call:
        channels = params.text_list("channels")
        publish = self._publication(params)

        def run() -> dict[str, Any]:
            if not channels:
                raise CommandError(BAD_REQUEST)
            return {"responses": [self._run(functools.partial(publish, channel))
                                  for channel in channels]}

        return lambda: self._run(run)

    # -- reading -----------------------------------------------------------------------------

    def _presence(self, params: Fields) -> Call:
        channel = params.text("channel")

        def run() -> dict[str, Any]:
            if not self._options(channel).presence:
                raise CommandError(NOT_AVAILABLE)
            clients = self.hub.presence.presence(channel)
            return {"presence": {client: info.to_json() for client, info in clients.items()}}

        return lambda: self._run(run)

    def _presence_stats(self, params: Fields) -> Call:
        channel = params.text("channel")

        def run() -> dict[str, Any]:
            if not self._options(channel).presence:
                raise CommandError(NOT_AVAILABLE)
            num_clients, num_users = self.hub.presence.stats(channel)
            return {"num_clients": num_clients, "num_users": num_users}

        return lambda: self._run(run)

    def _history(self, params: Fields) -> Call:
        channel = params.text("channel")
        limit = params.int32("limit")
        since_fields = params.obj("since")
        since = (Position(since_fields.uint64("offset"), since_fields.text("epoch"))
                 if since_fields is not None else None)
        reverse = params.flag("reverse")

        def run() -> dict[str, Any]:
            options = self._options(channel)
            if not options.history:
                raise CommandError(NOT_AVAILABLE)
            # Unlike the client protocol, the server API does not cap the limit: negative is
            # "everything kept".
            return queries.history_result(self.hub, channel, options,
                                          limit=NO_LIMIT if limit < 0 else limit,
                                          since=since, reverse=reverse)

        return lambda: self._run(run)

    def _history_remove(self, params: Fields) -> Call:
        channel = params.text("channel")

        def run() -> dict[str, Any]:
            if not self._options(channel).history:
                raise CommandError(NOT_AVAILABLE)
            self.hub.streams.remove_history(channel)
            return {}

        return lambda: self._run(run)

    def _channels(self, params: Fields) -> Call:
        pattern = params.text("pattern")

        def run() -> dict[str, Any]:
            return {"channels": {
                channel: {"num_clients": count} for channel, count in self.hub.channels()
                if not pattern or fnmatch.fnmatchcase(channel, pattern)}}

        return lambda: self._run(run)

    def _info(self, params: Fields) -> Call:
        hub = self.hub

        def run() -> dict[str, Any]:
            return {"nodes": [{
                "uid": f"hub-{os.getpid()}", "name": "botkit-hub", "version": HUB_VERSION,
                "num_clients": hub.num_clients, "num_users": hub.num_users,
                "num_channels": sum(1 for _ in hub.channels()),
                "num_subs": hub.num_subscriptions,
                "uptime": int(hub.wall() - hub.started_at)}]}

        return lambda: self._run(run)

    # -- acting on connections ---------------------------------------------------------------

    def _unsubscribe(self, params: Fields) -> Call:
        user, channel, client = (params.text("user"), params.text("channel"),
                                 params.text("client"))
        params.text("session")

        def run() -> dict[str, Any]:
            if channel and self.hub.options(channel) is None:
                raise CommandError(UNKNOWN_CHANNEL)
            self.hub.unsubscribe_user(user, channel, client)
            return {}

        return lambda: self._run(run)

    def _disconnect(self, params: Fields) -> Call:
        user, client = params.text("user"), params.text("client")
        params.text("session")
        whitelist = frozenset(params.text_list("whitelist"))
        custom = params.obj("disconnect")
        disconnect = (Disconnect(custom.uint32("code"), custom.text("reason"))
                      if custom is not None else Disconnect.FORCE_NO_RECONNECT)

        def run() -> dict[str, Any]:
            self.hub.disconnect_user(user, disconnect, client_id=client, whitelist=whitelist)
            return {}

        return lambda: self._run(run)

    def _batch(self, params: Fields) -> Call:
        raw = params.raw("commands")
        if raw is not None and not isinstance(raw, list):
            raise FieldError("commands must be a list")
        params.flag("parallel")  # one event loop: parallel or not, commands run in order
        calls: list[Call] = [self._batch_item(item) for item in raw or []]

        def run() -> dict[str, Any]:
            replies = [call() for call in calls]
            return {"replies": replies} if replies else {}  # protobuf JSON omits an empty list

        return run

    def _batch_item(self, item: Any) -> Call:
        if item is None:
            return lambda: _error(BAD_REQUEST)
        command = Fields.of(item, "command")
        for method in (*self._methods, *_NOT_IMPLEMENTED):
            if method != "batch" and command.has(method):
                call = self.prepare(method, Fields.of(command.raw(method), method))

                def named(call: Call = call, method: str = method) -> dict[str, Any]:
                    # A batch reply names its method instead of wrapping the result.
                    reply = call()
                    return reply if "error" in reply else {method: reply["result"]}

                return named
        return lambda: _error(_NOT_FOUND)


async def _body(request: Request) -> bytes | None:
    """The request body, or None when it is larger than the hub accepts."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > _MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def api_endpoint(api: ServerApiHandler) -> Callable[[Request], Any]:
    """The Starlette endpoint for ``/api/realtime/{method}``."""

    async def endpoint(request: Request) -> Response:
        method = request.path_params["method"]
        if not api.knows(method):
            return PlainTextResponse("404 page not found\n", status_code=404)
        if request.method != "POST":
            return Response(status_code=405)
        if not authorized(api.hub.config.api_key, request.headers, request.query_params):
            return Response(status_code=401)
        body = await _body(request)
        if body is None:
            return PlainTextResponse("Request Entity Too Large\n", status_code=413)
        try:
            call = api.prepare(method, Fields.of(loads(body), "request"))
        except FieldError as exc:
            # Centrifugo answers a bare "Bad Request"; the reason costs nothing and helps.
            return PlainTextResponse(f"Bad Request: {exc}\n", status_code=400)
        return Response(dumps(call()), media_type="application/json")

    return endpoint

