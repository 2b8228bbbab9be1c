"""One connection's outgoing frames, bounded like Centrifugo's ``client.queue_max_size``.

Publications are fanned out synchronously, so a subscriber that reads slowly cannot slow the
publisher down: its frames wait here instead, and when they pass the bound (1 MiB by default) the
connection is closed with 3008 "slow", exactly as the real server does, rather than letting the
queue grow without end. Frames that are waiting together are joined with ``\\n`` into one
WebSocket message, as Centrifugo's writer does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = ["Outbox"]

_MAX_FRAMES_PER_MESSAGE = 64
_MAX_MESSAGE_CHARS = 64 * 1024


def _nothing() -> None:
    return None


class Outbox:
    def __init__(self, max_size: int, *, wakeup: Callable[[], None] = _nothing) -> None:
        self.max_size = max_size
        self.wakeup = wakeup
        """Called whenever frames become available (the writer waits for it)."""
        self._frames: deque[str] = deque()
        self._size = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def size(self) -> int:
        """Characters waiting (the bound is applied to this)."""
        return self._size

    def put(self, frame: str) -> bool:
        """Queue a frame; False (and nothing queued) when it would pass the bound."""
        if self._size + len(frame) > self.max_size:
            return False
        self._frames.append(frame)
        self._size += len(frame)
        self.wakeup()
        return True

    def take(self) -> str | None:
        """The next WebSocket message: one or more frames joined by newlines."""
        if not self._frames:
            return None
        batch = [self._frames.popleft()]
        length = len(batch[0])
        while (self._frames and len(batch) < _MAX_FRAMES_PER_MESSAGE
               and length + 1 + len(self._frames[0]) <= _MAX_MESSAGE_CHARS):
            frame = self._frames.popleft()
            batch.append(frame)
            length += 1 + len(frame)
        self._size -= sum(len(frame) for frame in batch)
        return "\n".join(batch)

    def clear(self) -> None:
        self._frames.clear()
        self._size = 0
