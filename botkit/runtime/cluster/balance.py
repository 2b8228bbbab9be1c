"""How many units a replica aims at, and which it takes or gives back: pure arithmetic.

Each of R live replicas aims at ceil(units / R). Below it, a replica takes free units (the
targets add up to at least the units, so none stays free for long); above it, it gives back
at most one unit per round, so a replica joining takes its share within a few rounds while the
units never swing back and forth (a replica at its target neither takes nor gives).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from botkit.runtime.cluster.keys import Unit

__all__ = ["share", "surplus", "to_take"]


def share(units: int, replicas: int) -> int:
    return math.ceil(units / max(1, replicas))


def to_take(free: Sequence[Unit], held: int, target: int) -> list[Unit]:
    """The free units to try, up to the target (spread by the replica's own order)."""
    return list(free[:max(0, target - held)])


def surplus(held: Sequence[Unit], target: int) -> Unit | None:
    """The one unit to give back this round, if above the target (the last taken)."""
    return held[-1] if len(held) > target else None
