"""Client of the Xshathra server API (Centrifugo's HTTP API), over httpx."""

from __future__ import annotations

from botkit.serverapi.client import (
    DEFAULT_BACKOFF,
    TEMPORARY_CODES,
    ApiStats,
    PublishResult,
    ServerApi,
)

__all__ = [
    "DEFAULT_BACKOFF",
    "TEMPORARY_CODES",
    "ApiStats",
    "PublishResult",
    "ServerApi",
]
