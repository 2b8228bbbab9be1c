"""A development Xshathra Realtime in memory: the hub.

A Starlette app on uvicorn that speaks the Centrifugo v6 client protocol (JSON) at
``/realtime/connection/websocket`` and serves the server API at ``/api/realtime/<method>`` (the
paths are ``WS_PATH`` and ``API_PREFIX`` of :mod:`botkit.dev.localserver`, shared with the local
Centrifugo), with the seed's ``chat`` namespace. It is held to the real server by the same
tests. Production keeps using Xshathra Realtime.

Modules, one concept each::

    settings       HubSettings (like ServerSettings) and the checked HubConfig
    codes          error replies, unsubscribe and disconnect codes
    wire           JSON in and out, typed reads of commands
    auth           connection and subscription JWTs
    namespaces     channel options and permissions
    streams        offsets, epochs, bounded history, recovery
    presence       who is subscribed where
    idempotency    the server API's 5-minute publish dedupe
    core           Hub: shared state and fan-out
    outbox         a connection's bounded outgoing queue
    subscriptions  subscribe, unsubscribe, sub_refresh, expiry
    queries        publish, presence, presence_stats, history
    session        one connection's protocol state machine (no I/O)
    connection     the asyncio shell around a session
    api            the HTTP server API
    transport      uvicorn's WebSocket handshake, tolerant of empty subprotocol headers
    app            the Starlette app
    server         uvicorn, signals, ``python -m botkit.dev.hub``
    local          LocalHub: the hub as a subprocess, like LocalCentrifugo

Limits, with Centrifugo's names and defaults where it has them::

    a client's WebSocket message   message_size_limit, 64 KiB (websocket.message_size_limit);
                                   a client publish is one, so its data is smaller
    a server API request body      16 MiB, then 413 (Centrifugo 6.9.1 sets none: 70 MB passed)
    a dev send (/api/chat/send)    a 32 KiB body, dev.max_text_length characters of text
    a client's outgoing queue      queue_max_size, 1 MiB (client.queue_max_size), then 3008;
                                   counted behind a write in progress, so one accepted message
                                   always fits however large (see outbox)
    history and recovery replies   history_max_publication_limit and
                                   recovery_max_publication_limit publications, 300 each

Every message the server API accepted is delivered to every subscriber that keeps reading.
"""

from botkit.dev.hub.app import HubApp
from botkit.dev.hub.core import HUB_VERSION, Hub
from botkit.dev.hub.local import LocalHub
from botkit.dev.hub.server import main, serve
from botkit.dev.hub.settings import HubConfig, HubSettings

__all__ = [
    "HUB_VERSION",
    "Hub",
    "HubApp",
    "HubConfig",
    "HubSettings",
    "LocalHub",
    "main",
    "serve",
]
