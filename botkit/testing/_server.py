"""The server as a bot's test sees it: what the bot published, who is present, each room's
history — in memory, with the behaviours of the real server a bot can notice.

* a publish carrying an idempotency key already seen is absorbed (not delivered twice);
* every publication lands in its room's history and is delivered to the bot's subscription —
  its own replies included, which the bot then drops as its own, as against the real server;
* the bot's own connection is present in each of its rooms.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from botkit.envelope import ChatMessage, Envelope, envelope_to_dict, parse_envelope
from botkit.protocol.types import ClientInfo, HistoryResult, Publication, StreamPosition

__all__ = ["Delivery", "HarnessServer", "Published", "Replies"]

# The server does not bound texts; the bot's own limit was applied when its reply was built.
_NO_TEXT_LIMIT = 10**9


@dataclass(frozen=True, slots=True)
class Published:
    """One envelope the bot published, as the server received it."""

    envelope: Envelope
    channel: str
    idempotency_key: str | None

    @property
    def room(self) -> str:
        return self.envelope.room_id

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def text(self) -> str | None:
        """The text of a chat message; None for other envelopes."""
        return self.envelope.text if isinstance(self.envelope, ChatMessage) else None

    @property
    def reply_to(self) -> str | None:
        """The id of the envelope this answers (None for jobs, hooks and other types)."""
        return self.envelope.reply_to if isinstance(self.envelope, ChatMessage) else None

    @property
    def data(self) -> dict[str, Any]:
        """The envelope as the wire carries it (camelCase)."""
        return envelope_to_dict(self.envelope)

    def __repr__(self) -> str:
        what = repr(self.text) if self.text is not None else self.type
        return f"<Published {what} in {self.room}>"


class Replies(list[Published]):
    """What one step of a test made the bot publish. ``cause`` is the envelope the step sent
    (None for joins, leaves and clock moves)."""

    def __init__(self, items: Iterable[Published] = (), *,
                 cause: Envelope | None = None) -> None:
        super().__init__(items)
        self.cause = cause

    @property
    def texts(self) -> list[str]:
        """The texts of the chat messages, in order."""
        return [item.text for item in self if item.text is not None]

    @property
    def text(self) -> str:
        """The text of the only chat message; AssertionError unless there is exactly one."""
        texts = self.texts
        if len(texts) != 1:
            raise AssertionError(f"expected exactly one reply, got {len(texts)}: {texts!r}")
        return texts[0]


Delivery = tuple[str, str, Any]
"""(kind, room, payload) on the way to the bot: ``("publication", room, Publication)``,
``("join", room, ClientInfo)`` or ``("leave", room, ClientInfo)``."""


class HarnessServer:
    """The server API a bot's contexts use (``botkit.context.Publisher``), and the inbox of its
    subscriptions."""

    def __init__(self, *, user_id: str, rooms: Mapping[str, str]) -> None:
        self.user_id = user_id
        self.rooms = dict(rooms)
        """Room id → channel, the bot's subscriptions."""
        self._room_of = {channel: room for room, channel in self.rooms.items()}
        self.published: list[Published] = []
        self.absorbed = 0
        """Publishes dropped as repeats of an idempotency key already seen."""
        self.deliveries: deque[Delivery] = deque()
        self._keys: set[str] = set()
        self._connections = itertools.count(1)
        self._streams: dict[str, list[Publication]] = {}
        self._presence: dict[str, dict[str, ClientInfo]] = {
            channel: {} for channel in self.rooms.values()}
        for room in self.rooms:
            self.set_presence(room, [])

    def room_of(self, channel: str) -> str | None:
        return self._room_of.get(channel)

    # -- the Publisher protocol --------------------------------------------------------------

    async def publish(self, channel: str, data: Any, *, idempotency_key: str | None = None,
                      tags: Mapping[str, str] | None = None,
                      skip_history: bool = False) -> None:
        """A publish through the server API (what the bot's replies use)."""
        if idempotency_key is not None:
            if idempotency_key in self._keys:
                self.absorbed += 1
                return
            self._keys.add(idempotency_key)
        self.published.append(Published(parse_envelope(data, max_text_length=_NO_TEXT_LIMIT),
                                        channel, idempotency_key))
        self.broadcast(channel, data, tags=tags, skip_history=skip_history)

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        return dict(self._presence.get(channel, {}))

    async def history(self, channel: str, *, limit: int, since: Any = None,
                      reverse: bool = False) -> HistoryResult:
        stream = self._streams.get(channel, [])
        # Centrifugo: the first `limit` publications, or with reverse the last ones, newest
        # first.
        chosen = stream[::-1][:limit] if reverse else stream[:limit]
        epoch = "harness"
        return HistoryResult(tuple(chosen), StreamPosition(len(stream), epoch))

    # -- what the test does ------------------------------------------------------------------

    def broadcast(self, channel: str, data: Any, *, info: ClientInfo | None = None,
                  tags: Mapping[str, str] | None = None, skip_history: bool = False) -> None:
        """A publication in ``channel``: into its history, and to the bot if subscribed.
        ``info`` is the publishing connection, for client publishes."""
        stream = self._streams.setdefault(channel, [])
        publication = Publication(channel, data, len(stream) + 1, info, dict(tags or {}))
        if not skip_history:
            stream.append(publication)
        room = self._room_of.get(channel)
        if room is not None:
            self.deliveries.append(("publication", room, publication))

    def set_presence(self, room: str, users: Iterable[str | ClientInfo]) -> None:
        """Who is in ``room`` besides the bot's own connection, which is always there."""
        present = [ClientInfo(user=self.user_id, client=f"{self.user_id}-connection"), *(
            user if isinstance(user, ClientInfo)
            else ClientInfo(user=user, client=self.new_client(user)) for user in users)]
        self._presence[self.rooms[room]] = {info.client: info for info in present}

    def new_client(self, user: str) -> str:
        """A fresh connection id, as the server gives each connection: the presence envelopes
        the bot makes (and so its replies' idempotency keys) are named after it."""
        return f"{user}#{next(self._connections)}"

    def presence_now(self, room: str) -> list[ClientInfo]:
        return list(self._presence[self.rooms[room]].values())

    def add_presence(self, room: str, info: ClientInfo) -> None:
        self._presence[self.rooms[room]][info.client] = info

    def remove_presence(self, room: str, user: str, client: str | None) -> list[ClientInfo]:
        """Remove ``user``'s connection ``client`` (None: all of them); returns those removed."""
        present = self._presence[self.rooms[room]]
        gone = [info for info in present.values()
                if info.user == user and (client is None or info.client == client)]
        for info in gone:
            del present[info.client]
        return gone

    def set_history(self, room_or_channel: str, items: Iterable[Any]) -> None:
        """Replace a room's history with ``items`` (the data of each publication)."""
        channel = self.rooms.get(room_or_channel, room_or_channel)
        self._streams[channel] = [Publication(channel, data, offset)
                                  for offset, data in enumerate(items, start=1)]

    def history_of(self, channel: str) -> list[Any]:
        return [publication.data for publication in self._streams.get(channel, [])]
