"""``Context``: what a handler gets besides the envelope — where it is, who sent it, and the
means to answer.

Replies go through the server publish API, never the bot's own connection, so nobody can spoof a
bot and a reply survives a dropped WebSocket. Each reply carries an idempotency key made of the
bot, the causing envelope's id and the reply's position within that handling: when an envelope
is handled again (a retry, a replay), the server drops the repeated publish and nobody sees the
reply twice.

A reply does not wait for the server: ``await ctx.reply(text)`` returns once the reply is in its
room's ordered outbox (``botkit.runtime.outbox``), which publishes it (in order with the room's
other replies, retried with its key) while the handler goes on. ``wait=True`` waits for the
server's confirmation instead, and raises what went wrong. A reply that finally fails unawaited is
logged, counted and handed to the bot's ``on_reply_failed`` hooks (:class:`FailedReply`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from botkit.envelope import (
    ChatMessage,
    Envelope,
    Typing,
    chat_message,
    envelope_to_dict,
    parse_envelope,
)
from botkit.errors import BotkitError, EnvelopeError, InvalidChannelError
from botkit.protocol.types import ClientInfo, HistoryResult
from botkit.tokens import chat_channel

if TYPE_CHECKING:
    from botkit.bot import Bot
    from botkit.conversations import Conversations
    from botkit.jobs.scheduler import JobHost, ScheduledJob, ScheduleSpec
    from botkit.state.store import BotState

__all__ = ["BotServices", "Context", "FailedReply", "JobScheduler", "Outbox", "Publisher",
           "wall_clock"]


def wall_clock() -> datetime:
    """The current time in UTC: the runtime's clock (tests give the bot a virtual one)."""
    return datetime.now(UTC)


class Publisher(Protocol):
    """What a context needs of the server API (``botkit.serverapi.ServerApi`` provides it)."""

    async def publish(self, channel: str, data: Any, *, idempotency_key: str | None = None,
                      tags: Mapping[str, str] | None = None,
                      skip_history: bool = False) -> Any: ...

    async def presence(self, channel: str) -> dict[str, ClientInfo]: ...

    async def history(self, channel: str, *, limit: int, since: Any = None,
                      reverse: bool = False) -> HistoryResult: ...


@dataclass(frozen=True, slots=True)
class FailedReply:
    """A reply (or send) that was never published: what an ``@bot.on_reply_failed`` hook gets.
    ``error`` is the cause: the server's refusal (an :class:`~botkit.ApiReplyError` with its
    code, an :class:`~botkit.ApiRequestError`), or an :class:`~botkit.ApiUnavailableError`
    when the server stayed away past the bot's ``limits.reply_deadline`` (or the stop's grace
    ran out)."""

    room: str
    envelope: Envelope
    error: BotkitError
    idempotency_key: str | None


class Outbox(Protocol):
    """Where a context puts its replies (the runtime's per-room outboxes, see
    ``botkit.runtime.outbox``). ``put`` returns once the reply is queued (waiting while the
    room's outbox is full); with ``wait`` it returns an awaitable of the confirmation."""

    async def put(self, room: str, channel: str, envelope: Envelope, key: str | None, *,
                  essential: bool, wait: bool) -> Awaitable[None] | None: ...


class JobScheduler(Protocol):
    """What a bot needs of a scheduler: ``botkit.jobs.scheduler.BotScheduler`` in the runtime, the
    virtual clock of ``botkit.testing`` in tests. ``host`` is the bot's name."""

    def add_host(self, host: JobHost, specs: list[ScheduleSpec]) -> None: ...

    def static_spec(self, host: str, target: str) -> ScheduleSpec | None: ...

    def schedule(self, host: str, fn: Callable[..., Any], *, at: datetime | None = None,
                 delay: float | None = None, id: str | None = None, room: str | None = None,
                 kwargs: Mapping[str, Any] | None = None) -> str: ...

    def cancel(self, host: str, job_id: str) -> bool: ...

    def jobs(self, host: str, prefix: str = "") -> list[ScheduledJob]: ...


@dataclass(eq=False)
class BotServices:
    """Everything one running bot shares with all its contexts (made by the runtime)."""

    name: str
    user_id: str
    project_id: str
    bot: Bot
    settings: Any
    api: Publisher
    channels: dict[str, str]
    """Room id → channel, for the rooms in the bot's configuration."""
    max_text_length: int = 4000
    logger: logging.Logger | None = None
    """The bot's logger; None: ``botkit.bot.<name>``, looked up when a context first logs (a
    logger is kept for the process's life, and most bots never log: bench/ S4)."""
    state: BotState | None = None
    scheduler: JobScheduler | None = None
    clock: Callable[[], datetime] = wall_clock
    """The current time, aware (``Context.now``, the time of replies and presence events)."""
    replies_sent: int = 0
    replies_failed: int = 0
    """Replies (and sends) never published: the server refused them or stayed away."""
    replies_dropped: int = 0
    """Non-essential replies dropped unsent by flood control (their room's outbox was full)."""
    outbox: Outbox | None = None
    """The runtime's outboxes; None (the test harness): each reply is published at once and
    waited for."""
    conversations: Conversations | None = None
    """The bot's pending questions (``Context.ask``), set by the runtime's core."""

    def channel_for(self, room_id: str) -> str:
        channel = self.channels.get(room_id)
        if channel is not None:
            return channel
        try:
            return chat_channel(self.project_id, room_id)
        except InvalidChannelError as exc:
            raise BotkitError(f"bot {self.name}: cannot send to room {room_id!r}: {exc}") from exc


class Context:
    """Handed to every handler. ``event`` is the envelope being handled: None in on_start and
    on_stop hooks (which have no room either) and in scheduled jobs (whose room is the job's).
    ``cause`` names what is being handled, for idempotency keys: the envelope's id, or a job
    fire (job id and scheduled time)."""

    __slots__ = ("_cause", "_log", "_position", "event", "replayed", "room", "services")

    def __init__(self, services: BotServices, event: Envelope | None = None,
                 room: str | None = None, *, cause: str | None = None,
                 replayed: bool = False) -> None:
        self.services = services
        self.event = event
        self.room = room
        self.replayed = replayed
        """True for an envelope published before the bot (re)subscribed its room: replayed
        after a restart or a reconnect, from the server's recovery or the room's history."""
        self._cause = cause if cause is not None else (event.id if event is not None else None)
        self._position = 0
        self._log: logging.LoggerAdapter[logging.Logger] | None = None

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger that names the bot, the room and the envelope in every line."""
        # Made on first use: most handlers never log, and a context is made per envelope.
        if self._log is None:
            event = self.event
            extra = {"bot": self.services.name, "room": self.room or "-",
                     "envelope_id": event.id if event is not None else "-"}
            services = self.services
            logger = services.logger
            if logger is None:
                logger = services.logger = logging.getLogger(f"botkit.bot.{services.name}")
            self._log = logging.LoggerAdapter(logger, extra)
        return self._log

    @property
    def bot(self) -> Bot:
        return self.services.bot

    @property
    def settings(self) -> Any:
        return self.services.settings

    @property
    def user_id(self) -> str:
        """The bot's own user id."""
        return self.services.user_id

    @property
    def sender(self) -> str | None:
        return self.event.sender_id if self.event is not None else None

    @property
    def channel(self) -> str | None:
        return self.services.channel_for(self.room) if self.room is not None else None

    @property
    def text(self) -> str | None:
        return self.event.text if isinstance(self.event, ChatMessage) else None

    @property
    def age(self) -> timedelta:
        """How long ago the envelope was sent (now minus its ``sentAt``, never negative); zero
        outside an envelope's handling. Replayed envelopes older than the bot's
        ``catch_up.max_age`` are never handled."""
        event = self.event
        if event is None:
            return timedelta(0)
        return max(self.services.clock() - event.sent_at, timedelta(0))

    def now(self) -> datetime:
        """The current time in UTC. Prefer it to ``datetime.now()``: in tests it is the
        harness's clock, which jobs, state expiry and this agree on."""
        return self.services.clock()

    async def reply(self, text: str, *, wait: bool = False,
                    essential: bool = True) -> ChatMessage:
        """Answer in the room the envelope came from; see :meth:`send`."""
        if self.room is None:
            raise BotkitError("reply() needs a room to answer in; use send(room, text)")
        message = await self.send(self.room, text, wait=wait, essential=essential)
        assert isinstance(message, ChatMessage)
        return message

    async def send(self, room: str, message: str | Envelope | Mapping[str, Any], *,
                   wait: bool = False, essential: bool | None = None) -> Envelope:
        """Publish into ``room``: a text becomes a ``chat.message`` from this bot; an envelope
        (or its dict) is sent with this bot as its sender. Returns the envelope sent.

        Returns once the message is in the room's ordered outbox (waiting while that is full),
        not once the server confirmed it: the room's messages are published in the order they
        were sent, retried with the same idempotency key, and one that finally fails is logged,
        counted and handed to ``@bot.on_reply_failed`` hooks. With ``wait=True`` it returns
        once the server confirmed it and raises the :class:`~botkit.ApiError` that failed it
        instead. ``essential=False`` (the default for ``typing`` envelopes) marks a message
        that flood control may drop when the room's outbox is full
        (:class:`~botkit.ReplyDroppedError` for a waiting caller)."""
        services = self.services
        channel = services.channel_for(room)
        envelope = self._build(room, message)
        key = self._next_idempotency_key()
        outbox = services.outbox
        if outbox is not None:
            if essential is None:
                essential = not isinstance(envelope, Typing)
            confirmed = await outbox.put(room, channel, envelope, key, essential=essential,
                                         wait=wait)
            if confirmed is not None:
                await confirmed
            return envelope
        try:
            await services.api.publish(channel, envelope_to_dict(envelope),
                                       idempotency_key=key)
        except Exception:
            services.replies_failed += 1
            raise
        services.replies_sent += 1
        return envelope

    def _build(self, room: str, message: str | Envelope | Mapping[str, Any]) -> Envelope:
        services = self.services
        reply_to = self.event.id if self.event is not None else None
        if isinstance(message, str):
            if len(message) > services.max_text_length:
                raise EnvelopeError(f"reply text is {len(message)} characters; the limit is "
                                    f"{services.max_text_length}")
            return chat_message(room_id=room, sender_id=services.user_id, text=message,
                                reply_to=reply_to, sent_at=services.clock())
        raw = envelope_to_dict(message) if isinstance(message, Envelope) else dict(message)
        # A bot speaks only as itself: the sender is forced, never taken from the caller.
        raw.update(roomId=room, senderId=services.user_id)
        raw.pop("room_id", None)
        raw.pop("sender_id", None)
        return parse_envelope(raw, max_text_length=services.max_text_length)

    def _next_idempotency_key(self) -> str | None:
        if self._cause is None:
            return None
        self._position += 1
        return f"{self.services.name}:{self._cause}:{self._position}"

    async def ask(self, prompt: str, timeout: float = 60, choices: Iterable[str] | None = None
                  ) -> ChatMessage:
        """Reply ``prompt`` and wait for the sender's next chat message in this room: their
        answer. Other people, and the sender in other rooms, are handled as usual meanwhile.

        With ``choices``, an answer that is none of them (case and surrounding blanks aside)
        is asked again once with the list; a second miss raises ``AskInvalidAnswer``. No
        answer within ``timeout`` seconds raises ``AskTimeout``; ``/cancel`` raises
        ``AskCancelled``. See botkit/conversations.py for how the handler waits."""
        conversations = self.services.conversations
        if conversations is None:
            raise BotkitError("ctx.ask needs the runtime (or botkit.testing)")
        return await conversations.ask(self, prompt, timeout=timeout, choices=choices)

    # -- state and scheduling ----------------------------------------------------------------

    @property
    def state(self) -> BotState:
        """This bot's persistent key-value store (``await ctx.state.get("k")``)."""
        if self.services.state is None:
            raise BotkitError("this bot has no state store (the runtime was started without one)")
        return self.services.state

    def _scheduler(self) -> JobScheduler:
        if self.services.scheduler is None:
            raise BotkitError("scheduling needs the runtime's scheduler, which is not running")
        return self.services.scheduler

    def schedule(self, job: Callable[..., Any], *, at: datetime | None = None,
                 delay: float | None = None, id: str | None = None,
                 room: str | None = None, **kwargs: Any) -> str:
        """Run ``job(ctx, **kwargs)`` once, at ``at`` or after ``delay`` seconds, in ``room``
        (default: this context's room). The job is stored and survives restarts, so it must
        be a module-level function and ``kwargs`` JSON values. Scheduling an ``id`` again
        replaces that job. Returns the job's id."""
        return self._scheduler().schedule(self.services.name, job, at=at, delay=delay, id=id,
                                          room=room if room is not None else self.room,
                                          kwargs=kwargs)

    def cancel(self, job_id: str) -> bool:
        """Cancel a job made with :meth:`schedule`; False if there was none (already ran)."""
        return self._scheduler().cancel(self.services.name, job_id)

    def jobs(self, prefix: str = "") -> list[ScheduledJob]:
        """This bot's pending jobs whose id starts with ``prefix``."""
        return self._scheduler().jobs(self.services.name, prefix)

    async def presence(self, room: str | None = None) -> list[ClientInfo]:
        """The connections present in the room (one entry per connection), sorted by user."""
        target = room or self.room
        if target is None:
            raise BotkitError("presence() needs a room outside a handler")
        clients = await self.services.api.presence(self.services.channel_for(target))
        return sorted(clients.values(), key=lambda info: (info.user, info.client))

    async def history(self, limit: int = 20, room: str | None = None) -> list[Envelope]:
        """The room's last ``limit`` valid envelopes, oldest first."""
        target = room or self.room
        if target is None:
            raise BotkitError("history() needs a room outside a handler")
        if limit <= 0:
            return []
        result = await self.services.api.history(self.services.channel_for(target),
                                                 limit=limit, reverse=True)
        envelopes: list[Envelope] = []
        for publication in reversed(result.publications):
            try:
                envelopes.append(parse_envelope(publication.data,
                                                max_text_length=self.services.max_text_length))
            except EnvelopeError:
                continue
        return envelopes
