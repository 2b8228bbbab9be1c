"""``Gap``: what a bot's ``@bot.on_gap`` hook is told when envelopes of a room may be lost.

A bot resumes each room from the position it stored when it stopped (or where its connection
dropped). The server replays what followed it, and what it will not replay (more than its
recovery limit) is read from the room's history. When neither holds it any more (the history
expired or was trimmed, or the server lost the stream and began a new epoch), the envelopes in
between are gone: the runtime logs one warning, counts the gap (``BotStats.gaps``), calls the
bot's ``on_gap`` hooks once, and carries on with the live stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from botkit.protocol.types import StreamPosition

__all__ = ["Gap"]


@dataclass(frozen=True, slots=True)
class Gap:
    """Envelopes of ``room`` after ``since`` may be missing."""

    room: str
    since: StreamPosition
    """The position (epoch and offset) of the last envelope handled before the gap."""
    reason: str
    """Why they could not be read: ``"new epoch"`` (the server lost the stream), ``"expired"``
    (history no longer holds them), ``"trimmed"`` (history holds only the newest), or
    ``"unavailable"`` (the history call failed)."""
    resumed_at: StreamPosition | None = None
    """Where handling resumed: the live stream's position, None when the room keeps no history."""
    missed: int | None = None
    """How many publications are missing, when known (the same epoch on both sides)."""
