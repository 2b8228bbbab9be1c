"""One connection's outgoing frames, bounded like Centrifugo's ``client.queue_max_size``.

Publications are fanned out synchronously, so a subscriber that reads slowly cannot slow the
publisher down: its frames wait here instead, and when too many pile up the connection is closed
with 3008 "slow", as the real server does, rather than letting the queue grow without end.
Frames that are waiting together are joined with ``\\n`` into one WebSocket message, as
Centrifugo's writer does.

What counts against the bound is what piles up *behind a write in progress*: frames queued while
the writer is idle (it has not run yet since they woke it) are on their way out, the way
Centrifugo's writer goroutine takes frames off its queue as soon as they land; frames queued
while the writer is busy (waiting for the socket to drain) are a backlog. A frame is refused only
when a backlog is already waiting and the frame would take it past ``max_size``, so one accepted
message always fits, however large: a 1 MiB publication, or a subscribe reply that recovers
many, is delivered, and a client that reconnects after a 3008 is never closed again on the same
message. A backlog stays within ``max_size`` plus one frame; frames queued while the writer is
idle are bounded by what the hub produces before the writer's next turn on the event loop (the
replies to one client message, a publication).
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
        self._frames: deque[tuple[str, bool]] = deque()  # (frame, counted as backlog)
        self._size = 0
        self._backlog = 0
        self._writing = False

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def size(self) -> int:
        """Characters waiting."""
        return self._size

    @property
    def backlog(self) -> int:
        """Characters waiting behind a write in progress (the bound is applied to this)."""
        return self._backlog

    def put(self, frame: str) -> bool:
        """Queue a frame; False (and nothing queued) when it would take a backlog past the
        bound."""
        counted = self._writing
        if counted and self._backlog and self._backlog + len(frame) > self.max_size:
            return False
        self._frames.append((frame, counted))
        self._size += len(frame)
        if counted:
            self._backlog += len(frame)
        self.wakeup()
        return True

    def take(self) -> str | None:
        """The next WebSocket message: one or more frames joined by newlines. The writer is
        busy from a message taken until it comes back and finds nothing (None)."""
        if not self._frames:
            self._writing = False
            return None
        self._writing = True
        batch = [self._pop()]
        length = len(batch[0])
        while (self._frames and len(batch) < _MAX_FRAMES_PER_MESSAGE
               and length + 1 + len(self._frames[0][0]) <= _MAX_MESSAGE_CHARS):
            frame = self._pop()
            batch.append(frame)
            length += 1 + len(frame)
        return "\n".join(batch)

    def _pop(self) -> str:
        frame, counted = self._frames.popleft()
        self._size -= len(frame)
        if counted:
            self._backlog -= len(frame)
        return frame

    def clear(self) -> None:
        self._frames.clear()
        self._size = 0
        self._backlog = 0
