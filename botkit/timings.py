"""Durations counted into fixed buckets: a histogram that costs one ``bisect`` and two additions
per observation, read (and turned into Prometheus text) only when someone asks.

The runtime times every handler call and the server API client every request; both are hot
paths, so neither may take a lock, allocate or format anything per observation. A reader (the
ops endpoint) copies ``counts`` and ``total`` on the event loop, where nothing changes them
meanwhile.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

__all__ = ["BUCKETS", "Timing", "Timings"]

#: Upper bounds in seconds (``le``, inclusive); one more bucket takes everything above the last.
#: From a millisecond (an echo) to the default handler timeout and past it.
BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                  10.0, 30.0)


class Timing:
    """How many observations fell into each of :data:`BUCKETS` (not cumulative), and their sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)


class Timings(dict[str, Timing]):
    """One :class:`Timing` per name (a handler, an API method), made on first use
    (``timings[name]``): names come from code, never from what users send, so the set stays
    small."""

    def __missing__(self, name: str) -> Timing:
        timing = self[name] = Timing()
        return timing

    def observe(self, name: str, seconds: float) -> None:
        self[name].observe(seconds)
