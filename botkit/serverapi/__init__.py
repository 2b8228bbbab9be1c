"""Client of the Xshathra server API (Centrifugo's HTTP API), over httpx.

    client.py     ServerApi, the facade: lifecycle and the public methods
    publisher.py  OrderedPublisher: bounded publish queue, opportunistic batching, order kept
    presence.py   PresenceCoalescer: concurrent presence calls share a batch request
    transport.py  Transport: one call = attempts with a deadline, retries, error mapping
    replies.py    the one (pure) parser of every server API reply
    stats.py      ApiStats, the counters
"""

from __future__ import annotations

from botkit.serverapi.client import DEFAULT_BACKOFF, ServerApi
from botkit.serverapi.replies import TEMPORARY_CODES, PublishResult
from botkit.serverapi.stats import ApiStats

__all__ = [
    "DEFAULT_BACKOFF",
    "TEMPORARY_CODES",
    "ApiStats",
    "PublishResult",
    "ServerApi",
]
