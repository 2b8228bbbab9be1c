"""Reconnect and retry delays: full jitter, as a pure function of the attempt and a random draw.

Full jitter spreads a crowd of clients that lost the same server over the whole window instead of
letting them stampede back in lockstep; the caller passes the random number so the policy stays
deterministic under test.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff", "full_jitter"]

_MAX_EXPONENT = 31  # 2**31 * any sane base already exceeds every cap; avoids float overflow


def full_jitter(attempt: int, draw: float, *, base: float, cap: float) -> float:
    """Delay before retry number ``attempt`` (0 for the first retry).

    ``draw`` is a uniform random number in [0, 1). The delay is uniform in
    ``[0, min(cap, base * 2**attempt))``, never more than ``cap``.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if not 0.0 <= draw < 1.0:
        raise ValueError(f"draw must be in [0, 1), got {draw}")
    if base < 0 or cap < 0:
        raise ValueError("base and cap must be >= 0")
    window = min(cap, base * 2.0 ** min(attempt, _MAX_EXPONENT))
    return window * draw


@dataclass(frozen=True, slots=True)
class Backoff:
    """A full-jitter policy with its bounds; ``delay(attempt, draw)`` gives one delay."""

    base: float = 0.2
    cap: float = 20.0

    def delay(self, attempt: int, draw: float) -> float:
        return full_jitter(attempt, draw, base=self.base, cap=self.cap)
