"""Channel streams: offsets, epochs, bounded history and the recovery rules (reference §5).

This is Centrifugo's memory engine (``broker_memory.go``, ``internal/memstream``): each channel
with history has a stream whose ``top`` offset grows by one per publication and whose random
``epoch`` names this instance of it. The stream keeps at most ``history_size`` publications, and
all of them vanish ``history_ttl`` after the latest publication, while the top offset and epoch
stay (for ``history_meta_ttl``). That is what lets a client that resubscribes tell "nothing was
missed" from "something was lost": recovery succeeds only when every publication after the
client's offset is still held, at most ``recovery_max_publication_limit`` of them, in the same
epoch. A restarted process starts every stream with a new epoch, as the memory engine does.
"""

from __future__ import annotations

import secrets
import string
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NO_LIMIT",
    "Position",
    "Recovery",
    "StoredPublication",
    "Stream",
    "StreamStore",
    "new_epoch",
]

NO_LIMIT = -1
_EPOCH_LETTERS = string.ascii_letters


def new_epoch() -> str:
    """Eight random letters, like Centrifugo's ``epoch.Generate``."""
    return "".join(secrets.choice(_EPOCH_LETTERS) for _ in range(8))


@dataclass(frozen=True, slots=True)
class Position:
    offset: int
    epoch: str


@dataclass(frozen=True, slots=True)
class StoredPublication:
    """A publication as kept in history; ``info`` is set only for client publications."""

    offset: int
    data: Any
    info: dict[str, Any] | None = None
    tags: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"data": self.data}
        if self.info is not None:
            body["info"] = self.info
        if self.offset:
            body["offset"] = self.offset
        if self.tags:
            body["tags"] = self.tags
        return body


@dataclass(frozen=True, slots=True)
class Recovery:
    """The outcome of a recovery attempt: the publications only when ``recovered``."""

    publications: tuple[StoredPublication, ...]
    position: Position
    recovered: bool


class Stream:
    """One channel's stream. Not thread-safe: the hub lives on one event loop."""

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        self.top = 0
        self._items: deque[StoredPublication] = deque()
        self._items_expire_at = 0.0
        self.meta_expire_at = 0.0

    @property
    def position(self) -> Position:
        return Position(self.top, self.epoch)

    def expire(self, now: float) -> None:
        """Drop the items once the TTL since the latest publication has passed."""
        if self._items and now >= self._items_expire_at:
            self._items.clear()

    def add(self, data: Any, info: dict[str, Any] | None, tags: dict[str, str] | None, *,
            size: int, ttl: float, now: float) -> int:
        self.expire(now)
        self.top += 1
        self._items.append(StoredPublication(self.top, data, info, tags))
        while len(self._items) > size:
            self._items.popleft()
        self._items_expire_at = now + ttl
        return self.top

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, since: int | None, limit: int, reverse: bool) -> list[StoredPublication]:
        """Items after (or, reversed, before) offset ``since``; from the oldest (newest) held
        one when ``since`` is None. ``limit`` 0 gives nothing, a negative limit everything."""
        if limit == 0 or not self._items:
            return []
        items = self._items
        first_held = items[0].offset
        if since is None:
            start = items[-1].offset if reverse else first_held
        else:
            start = since - 1 if reverse else since + 1
            if start > self.top:
                return []
            if start < first_held:
                if reverse:
                    return []  # the one just before `since` is gone: nothing to walk back from
                start = first_held
        index = start - first_held
        if reverse:
            chosen = [items[i] for i in range(index, -1, -1)]
        else:
            chosen = [items[i] for i in range(index, len(items))]
        return chosen if limit < 0 else chosen[:limit]


class StreamStore:
    """All streams, by channel. ``clock`` is monotonic seconds (the event loop's time)."""

    def __init__(self, clock: Callable[[], float],
                 epochs: Callable[[], str] = new_epoch) -> None:
        self._clock = clock
        self._epochs = epochs
        self._streams: dict[str, Stream] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def _stream(self, channel: str, meta_ttl: float) -> Stream:
        now = self._clock()
        stream = self._streams.get(channel)
        if stream is None or now >= stream.meta_expire_at:
            stream = self._streams[channel] = Stream(self._epochs())
        stream.meta_expire_at = now + meta_ttl
        stream.expire(now)
        return stream

    def publish(self, channel: str, data: Any, *, info: dict[str, Any] | None,
                tags: dict[str, str] | None, size: int, ttl: float,
                meta_ttl: float) -> Position:
        stream = self._stream(channel, meta_ttl)
        stream.add(data, info, tags, size=size, ttl=ttl, now=self._clock())
        return stream.position

    def top(self, channel: str, meta_ttl: float) -> Position:
        return self._stream(channel, meta_ttl).position

    def history(self, channel: str, *, since: Position | None, limit: int, reverse: bool,
                meta_ttl: float) -> tuple[list[StoredPublication], Position]:
        """Publications and the stream top. The caller compares ``since.epoch`` with the top's
        epoch (a mismatch is error 112 for history, a failed recovery for subscribe)."""
        stream = self._stream(channel, meta_ttl)
        if since is None:
            return stream.get(None, limit, reverse), stream.position
        if not reverse and since.offset == stream.top and since.epoch == stream.epoch:
            return [], stream.position
        return stream.get(since.offset, limit, reverse), stream.position

    def recover(self, channel: str, since: Position, *, limit: int,
                meta_ttl: float) -> Recovery:
        """Centrifugo's ``isStreamRecovered``: recovered when the epoch matches (an empty one
        is accepted) and the publications found run from ``since.offset + 1`` to the top."""
        publications, top = self.history(channel, since=since, limit=limit, reverse=False,
                                         meta_ttl=meta_ttl)
        if since.epoch and since.epoch != top.epoch:
            return Recovery((), top, recovered=False)
        if publications:
            recovered = (publications[0].offset == since.offset + 1
                         and publications[-1].offset == top.offset)
        else:
            recovered = top.offset == since.offset
        return Recovery(tuple(publications) if recovered else (), top, recovered)

    def remove_history(self, channel: str) -> None:
        stream = self._streams.get(channel)
        if stream is not None:
            stream.clear()

    def sweep(self) -> None:
        """Free expired items and forget streams whose meta TTL passed."""
        now = self._clock()
        for channel, stream in list(self._streams.items()):
            if now >= stream.meta_expire_at:
                del self._streams[channel]
            else:
                stream.expire(now)
