"""Which of a bot's connections takes which of its new rooms (pure: numbers in, numbers out).

The bot's connections are filled lowest first, up to a capacity each, and new connections are
opened only for what the open ones cannot take: the fewest connections for the rooms, and a
replica that gave rooms back fills those places before it opens anything.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["plan"]


def plan(loads: Sequence[int], capacity: int, rooms: int) -> list[int]:
    """How many of ``rooms`` new rooms each connection takes: the open ones (holding
    ``loads[i]`` rooms) first, lowest index first, up to ``capacity`` each; then as many new
    connections of ``capacity`` as the rest needs. The result is at least as long as
    ``loads``; its tail beyond them is the new connections."""
    if capacity < 1:
        raise ValueError("capacity must be at least 1")
    counts = []
    left = rooms
    for load in loads:
        take = min(left, max(0, capacity - load))
        counts.append(take)
        left -= take
    while left > 0:
        take = min(left, capacity)
        counts.append(take)
        left -= take
    return counts
