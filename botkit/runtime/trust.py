"""Whom a bot believes: the trust model for envelopes (docs/security.md), and the bounded log of
what it refuses.

A publication reaches a room in one of two ways, and the server says which:

* **server-published**, through the server API with the project's key (a game server, the chat
  backend, botkit's own replies): the publication carries no client ``info``. Only holders of the
  key can do this, so the envelope is taken as written, whatever its ``senderId``.
* **client-published**, from a member's own connection: the server attests the publisher in
  ``info.user``, and that is all it vouches for. The rest of the JSON is whatever the member
  chose to write. So the ``senderId`` must be the attested user (else: *spoofed*), and the type
  must be one a member may say for themselves: ``chat.message``, ``typing``, or a type
  registered with ``client_safe=True`` (else: *untrusted*), unless the bot's configuration
  names the user in ``trusted_senders``.

Without the second rule any member could publish ``user.joined`` for an invented user (and
have the welcome bot greet "everyone! free coins at …"), or ``match.ended`` with any winner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from botkit.envelope import Envelope, is_client_safe
from botkit.protocol.types import ClientInfo

__all__ = ["DropLog", "TrustPolicy"]

_NOBODY: frozenset[str] = frozenset()

DROP_LOG_INTERVAL = 60.0
"""Seconds between two log lines for one bot and one drop reason: a member publishing
thousands of bad envelopes must not flood the log (they are all counted in BotStats)."""


class TrustPolicy:
    """One bot's rule for which publications it takes (see the module's docstring)."""

    __slots__ = ("trusted_senders",)

    def __init__(self, trusted_senders: Iterable[str] = ()) -> None:
        # Most bots trust nobody: one shared empty set, not one each (bench/ S4).
        self.trusted_senders = frozenset(trusted_senders) or _NOBODY

    def refusal(self, envelope: Envelope, info: ClientInfo | None) -> str | None:
        """Why ``envelope``, published with ``info``, is refused ("spoofed" or "untrusted"),
        or None when the bot takes it."""
        if info is None:
            return None  # through the server API: the key holder vouches for all of it
        if envelope.sender_id != info.user:
            return "spoofed"
        if is_client_safe(envelope.type) or info.user in self.trusted_senders:
            return None
        return "untrusted"


@dataclass(slots=True)
class _Reason:
    logged_at: float
    unlogged: int = 0


class DropLog:
    """Logs one bot's refused envelopes: the first of each reason at once, then at most one
    line per reason every ``interval`` seconds, saying how many went unlogged meanwhile."""

    def __init__(self, bot: str, logger: logging.Logger, *, interval: float = DROP_LOG_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._bot = bot
        self._log = logger
        self._interval = interval
        self._clock = clock
        self._reasons: dict[str, _Reason] = {}

    def dropped(self, reason: str, message: str, *args: object) -> None:
        """One envelope dropped for ``reason``; ``message % args`` says which and why (only
        formatted when logged)."""
        now = self._clock()
        seen = self._reasons.get(reason)
        if seen is not None and now - seen.logged_at < self._interval:
            seen.unlogged += 1
            return
        unlogged = seen.unlogged if seen is not None else 0
        self._reasons[reason] = _Reason(now)
        more = (f" ({unlogged} more {reason} envelope(s) dropped since the last such line)"
                if unlogged else "")
        self._log.warning("bot %s: %s%s", self._bot, message % args, more,
                          extra={"bot": self._bot})
