"""The chat backend's moderation of a send (backend.py): a per-sender rate limit and a filter
of blocked words and phrases, as the ``dev:`` section of bots.yaml sets them."""

from __future__ import annotations

import collections
import re
import time
import unicodedata
from collections.abc import Callable, Iterable

__all__ = ["RateLimiter", "WordFilter"]

# Senders remembered before the idle ones are forgotten in one sweep.
_MAX_REMEMBERED_SENDERS = 10_000


class RateLimiter:
    """At most ``messages`` per key within any ``per`` seconds (a sliding-window log).

    :meth:`acquire` returns 0.0 and counts the message when it may go, else the seconds until
    it may (nothing is counted). ``clock`` is monotonic seconds; tests pass their own."""

    def __init__(self, messages: int, per: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.messages = messages
        self.per = per
        self._clock = clock
        self._sent: dict[str, collections.deque[float]] = {}

    def acquire(self, key: str) -> float:
        now = self._clock()
        stamps = self._sent.setdefault(key, collections.deque())
        while stamps and stamps[0] <= now - self.per:
            stamps.popleft()
        if len(stamps) >= self.messages:
            return stamps[0] + self.per - now
        stamps.append(now)
        if len(self._sent) > _MAX_REMEMBERED_SENDERS:
            self._forget_idle(now)
        return 0.0

    def refund(self, key: str) -> None:
        """Give back the latest message of ``key`` (it was never published)."""
        stamps = self._sent.get(key)
        if stamps:
            stamps.pop()

    def _forget_idle(self, now: float) -> None:
        # Senders whose window is empty cost memory and mean nothing: drop them in one sweep.
        for key in [k for k, s in self._sent.items() if not s or s[-1] <= now - self.per]:
            del self._sent[key]


class WordFilter:
    """Finds blocked words or phrases: whole words only, any letter case, any whitespace
    between the words of a phrase (so "spam" blocks "SPAM!" but not "spammer")."""

    def __init__(self, words: Iterable[str]) -> None:
        self._words = {_fold(word): word for word in words}
        # Longest first: of "buy" and "buy now", a text with "buy now" reports the phrase.
        alternatives = "|".join(r"\s+".join(re.escape(part) for part in key.split())
                                for key in sorted(self._words, key=len, reverse=True))
        self._pattern = (re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
                         if alternatives else None)

    def find(self, text: str) -> str | None:
        """The blocked word (as configured) that ``text`` contains, or None."""
        if self._pattern is None:
            return None
        match = self._pattern.search(_fold(text))
        if match is None:
            return None
        return self._words.get(" ".join(match.group(0).split()), match.group(0))


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())
