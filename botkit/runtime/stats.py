"""``BotStats``: the counters of one running bot, kept as plain attributes (the hot path only
adds to them; ``botkit.ops.metrics`` reads them when scraped)."""

from __future__ import annotations

from dataclasses import dataclass, field

from botkit.timings import Timings

__all__ = ["BotStats"]


@dataclass(slots=True)
class BotStats:
    """Counters of one running bot; every dropped envelope is counted under its reason."""

    received: int = 0
    handled: int = 0
    invalid: int = 0
    spoofed: int = 0
    untrusted: int = 0
    """Client-published envelopes of a type only the server may publish (see trust.py)."""
    own: int = 0
    from_bots: int = 0
    handler_errors: int = 0
    handler_timeouts: int = 0
    jobs_run: int = 0
    job_errors: int = 0
    gaps: int = 0
    """Rooms' stretches of envelopes lost for good (see botkit.Gap)."""
    skipped_old: int = 0
    """Replayed envelopes older than ``catch_up.max_age``: not handled."""
    overflowed: int = 0
    """Publications taken off the socket while their room's lane was full, to be read back
    from the room's history (see overflow.py): handled later, not lost."""
    subscription_failures: int = 0
    reconnects: int = 0
    """Connections re-established after a loss (a restart of the bot is not one)."""
    cooldowns: int = 0
    """Handler calls refused by a cooldown (botkit/guards.py); one notice per window."""
    refused_checks: int = 0
    """Handler calls refused by a failing check."""
    refused_busy: int = 0
    """Handler calls refused by max_concurrency."""
    asks: int = 0
    """Questions asked (``ctx.ask``)."""
    ask_timeouts: int = 0
    asks_abandoned: int = 0
    """Questions still pending when the bot stopped (each person was told once)."""
    handler_seconds: Timings = field(default_factory=Timings)
    """Handler name → how long its calls took (middlewares included), whatever the outcome."""
