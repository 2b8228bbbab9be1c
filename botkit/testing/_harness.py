"""``BotHarness``: one bot, driven by a test as the runtime drives it, without a server.

What a test sends goes to the runtime's own :class:`~botkit.runtime.core.BotCore` — envelope
validation, spoof/own/bot drops, presence tracking, routing, argument conversion, middleware,
timeouts and error isolation — and what the bot publishes is recorded by an in-memory server.
Everything runs to completion before the call returns: no network, no sleeping, no waiting for
"the reply to arrive". The bot's state lives in a memory store and its jobs on a virtual clock.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel, ValidationError

from botkit.bot import Bot
from botkit.config import BotConfig, BotsConfig, CatchUpConfig, load_config, resolve_catch_up
from botkit.envelope import Envelope, chat_message, envelope_to_dict, format_timestamp
from botkit.errors import BotkitError, ConfigError
from botkit.jobs.scheduler import ScheduledJob
from botkit.protocol.types import ClientInfo, Publication
from botkit.runtime.core import BotCore, LoadedBot, static_schedules
from botkit.runtime.plugins import load_plugin
from botkit.runtime.supervisor import load_bot
from botkit.state.store import MemoryStateStore
from botkit.testing._clock import VirtualClock
from botkit.testing._record import HarnessRecord
from botkit.testing._server import Delivery, HarnessServer, Replies
from botkit.ulid import new_ulid

__all__ = ["BotHarness"]

_UNSET: Any = object()
_PLACEHOLDER_KEY = "botkit-harness-placeholder"


class BotHarness(HarnessRecord):
    """A bot under test. ``bot`` is a :class:`Bot` or the name of its plugin (``"bots.echo"``);
    the other arguments are those of its entry in bots.yaml, validated the same way.
    ``user`` is who speaks when a step names nobody; the first room is where, when it names
    no room. ``now`` starts the virtual clock (default: the current time).

    Use it as ``async with BotHarness(...) as h:`` to run the bot's on_start and on_stop hooks
    (the first step starts it otherwise), or through the ``bot_harness`` pytest fixture."""

    def __init__(self, bot: Bot | str, *, settings: Mapping[str, Any] | BaseModel | None = None,
                 name: str | None = None, user_id: str | None = None,
                 rooms: Sequence[str] = ("lobby",), limits: Mapping[str, Any] | None = None,
                 schedules: Sequence[Mapping[str, Any]] = (), other_bots: Iterable[str] = (),
                 trusted_senders: Sequence[str] = (), now: datetime | None = None,
                 user: str = "user", project_id: str = "proj_test",
                 catch_up: Mapping[str, Any] | None = None) -> None:
        plugin = bot if isinstance(bot, str) else None
        bot = load_plugin(bot) if isinstance(bot, str) else bot
        name = name or bot.name
        entry_data = {
            "name": name, "plugin": plugin, "user_id": user_id or f"bot_{name}",
            "rooms": list(rooms), "limits": dict(limits or {}),
            "settings": {} if isinstance(settings, BaseModel) else dict(settings or {}),
            "schedules": [dict(item) for item in schedules],
            "trusted_senders": list(trusted_senders)}
        if catch_up is not None:
            entry_data["catch_up"] = dict(catch_up)
        try:
            config = BotsConfig.model_validate({"xshathra": _xshathra(project_id),
                                                "state": {"backend": "memory"},
                                                "bots": [entry_data]})
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"][2:])
            raise ConfigError(error["msg"].removeprefix("Value error, "),
                              path="BotHarness", field=where or None) from None
        entry = config.bots[0]
        loaded = (LoadedBot(entry, bot, settings) if isinstance(settings, BaseModel)
                  else load_bot(config, entry, bot=bot))
        self._setup(loaded, project_id=project_id, other_bots=frozenset(other_bots), now=now,
                    user=user)

    @classmethod
    def load(cls, plugin: str | Bot, **options: Any) -> BotHarness:
        """The harness of a plugin (``"bots.commands"``) or a Bot; see :class:`BotHarness`."""
        return cls(plugin, **options)

    @classmethod
    def from_config(cls, config: BotsConfig | str | os.PathLike[str], name: str, *,
                    environ: Mapping[str, str] | None = None, now: datetime | None = None,
                    user: str = "user") -> BotHarness:
        """The harness of bot ``name`` of a bots.yaml (a path, or a loaded config), with its
        plugin, settings, rooms, limits and schedules; the other bots' users are known as
        bots. The harness never uses the server's key: when the environment (``environ``,
        default ``os.environ``) has no ``XSHATHRA_SERVER_API_KEY``, a placeholder stands in."""
        search_path = None
        if not isinstance(config, BotsConfig):
            variables = dict(os.environ if environ is None else environ)
            variables.setdefault("XSHATHRA_SERVER_API_KEY", _PLACEHOLDER_KEY)
            search_path = Path(config).resolve().parent
            config = load_config(config, environ=variables)
        entry = next((bot for bot in config.bots if bot.name == name), None)
        if entry is None:
            names = ", ".join(bot.name for bot in config.bots)
            raise ConfigError(f"no bot named {name!r} in the configuration (it has: {names})")
        harness = cls.__new__(cls)  # the configuration is already whole: skip __init__'s
        harness._setup(load_bot(config, entry, search_path=search_path),
                       project_id=config.xshathra.project_id,
                       other_bots=frozenset(bot.user_id for bot in config.bots), now=now,
                       user=user, catch_up=resolve_catch_up(config.catch_up, entry.catch_up))
        return harness

    def _setup(self, loaded: LoadedBot, *, project_id: str, other_bots: frozenset[str],
               now: datetime | None, user: str, catch_up: CatchUpConfig | None = None) -> None:
        config: BotConfig = loaded.config
        self.name = config.name
        self.user_id = config.user_id
        self.user = user
        self.rooms = [room.id for room in config.rooms]
        self.clock = VirtualClock(now or datetime.now(UTC).replace(microsecond=0))
        self._store = MemoryStateStore(self.clock.time)
        self.server = HarnessServer(user_id=config.user_id,
                                    rooms=config.channels(project_id))
        self.core = BotCore(loaded, project_id=project_id, api=self.server,
                            bot_users=other_bots, state=self._store, scheduler=self.clock,
                            clock=lambda: self.clock.now, catch_up=catch_up,
                            real_timers=False)
        self.clock.add_host(_JobHost(self), static_schedules(loaded))
        self._started = False
        self._closed = False
        self._mark = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the bot as the runtime does once subscribed: note who is present (without
        greeting them), then run its on_start hooks. The first step does it if needed."""
        if self._closed:
            raise BotkitError(f"the harness of bot {self.name} is closed")
        if self._started:
            return
        self._started = True
        await self._store.open()
        for room in self.rooms:
            await self.core.resync(room, announce=False)
        await self.core.start()
        await self._drain()

    async def aclose(self) -> None:
        """Run the bot's on_stop hooks and close its state store."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            await self.core.stop()
            await self._store.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    # -- what users do -----------------------------------------------------------------------

    async def say(self, text: str, *, user: str | None = None, room: str | None = None,
                  replayed: bool = False, sent_at: datetime | None = None) -> Replies:
        """``user`` says ``text`` in ``room``; returns what the bot published in response.

        ``replayed``: delivered as the runtime delivers what it missed while it was down
        (``ctx.replayed``; skipped when older than ``catch_up.max_age``, by ``sent_at``,
        default now)."""
        user, room = user or self.user, self._room(room)
        message = chat_message(room_id=room, sender_id=user, text=text,
                               sent_at=sent_at or self.now)
        return await self._send(room, envelope_to_dict(message), message, self._client(user),
                                replayed=replayed)

    async def publish(self, data: Any, *, room: str | None = None, as_user: str | None = None,
                      attested_user: str | None = _UNSET, raw: bool = False,
                      replayed: bool = False) -> Replies:
        """Publish any envelope (a model or its dict). Missing ``id``, ``roomId``,
        ``senderId`` (``as_user``, else the default user) and ``sentAt`` are filled in,
        unless ``raw``: then ``data`` goes out exactly as given, valid or not.

        Without ``as_user`` it is *server-published*: through the server API, as a game server
        does; nobody is attested and the bot takes any type, whatever the ``senderId``.
        With ``as_user`` it is *client-published*: from that user's own connection, and the
        server attests that user as the publisher (``attested_user`` overrides whom it
        attests). The bot then drops it as spoofed when the ``senderId`` differs from the
        attested user, and as untrusted when its type is neither ``chat.message``, ``typing``
        nor registered ``client_safe``, unless the user is in ``trusted_senders``.
        ``replayed``: as in :meth:`say`."""
        if isinstance(data, Envelope):
            data = envelope_to_dict(data)
        elif not raw and isinstance(data, Mapping):
            data = self._filled(data, room, as_user)
        if room is None and isinstance(data, Mapping):
            room = data.get("roomId", data.get("room_id"))
            room = room if room in self.rooms else None
        attested = as_user if attested_user is _UNSET else attested_user
        info = self._client(attested) if attested else None
        return await self._send(self._room(room), data, None, info, replayed=replayed)

    async def join(self, user: str | None = None, *, room: str | None = None,
                   name: str | None = None, client: str | None = None) -> Replies:
        """A connection of ``user`` joins ``room`` (``name``: the display name its token
        carries); the bot sees ``user.joined`` when it is the user's first there."""
        user, room = user or self.user, self._room(room)
        info = ClientInfo(user=user, client=client or self.server.new_client(user),
                          conn_info={"name": name} if name is not None else None)
        self.server.add_presence(room, info)
        return await self._deliver(("join", room, info))

    async def leave(self, user: str | None = None, *, room: str | None = None,
                    client: str | None = None) -> Replies:
        """``user``'s connection ``client`` (default: all of them) leaves ``room``; the bot
        sees ``user.left`` when it was the user's last there."""
        user, room = user or self.user, self._room(room)
        gone = self.server.remove_presence(room, user, client)
        if not gone:
            raise BotkitError(f"{user} has no connection{f' {client!r}' if client else ''} "
                              f"in room {room!r} to leave with")
        return await self._deliver(*(("leave", room, info) for info in gone))

    def set_presence(self, room: str | None, users: Iterable[str | ClientInfo]) -> None:
        """Who is in ``room`` (what ``ctx.presence()`` returns), besides the bot itself, which
        is always there. They are present already: the bot does not see them join."""
        room = self._room(room)
        self.server.set_presence(room, users)
        self.core.presence[room].resync(self.server.presence_now(room))

    def set_history(self, room: str | None,
                    envelopes: Iterable[Envelope | Mapping[str, Any] | str]) -> None:
        """Replace ``room``'s history (what ``ctx.history()`` reads), oldest first: envelopes,
        their dicts (completed like :meth:`publish`'s), or texts said by the default user."""
        room = self._room(room)
        items: list[Any] = []
        for item in envelopes:
            if isinstance(item, str):
                item = chat_message(room_id=room, sender_id=self.user, text=item,
                                    sent_at=self.now)
            items.append(envelope_to_dict(item) if isinstance(item, Envelope)
                         else self._filled(item, room, None))
        self.server.set_history(room, items)

    # -- the clock ---------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The virtual time: ``ctx.now()``, scheduling and state expiry all read it."""
        return self.clock.now

    async def advance(self, delta: timedelta | float = 0.0, *, seconds: float = 0,
                      minutes: float = 0, hours: float = 0, days: float = 0) -> Replies:
        """Move the clock forward (``delta`` in seconds, or a timedelta, plus the keyword
        parts), firing every job due on the way in time order; returns what they published.
        ``advance()`` runs the jobs already due."""
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        delta += timedelta(seconds=seconds, minutes=minutes, hours=hours, days=days)
        return await self.advance_to(self.now + delta)

    async def advance_to(self, when: datetime) -> Replies:
        """Move the clock to ``when``; see :meth:`advance`."""
        await self.start()
        mark = len(self.server.published)
        await self.clock.advance_to(when)
        # Questions (ctx.ask) time out by this clock: each handler acts on its timeout.
        await self.core.conversations.expire_due()
        await self._drain()
        return Replies(self.server.published[mark:])

    def jobs(self, prefix: str = "") -> list[ScheduledJob]:
        """The bot's pending ``ctx.schedule`` jobs whose id starts with ``prefix``."""
        return self.clock.jobs(self.name, prefix)

    # -- inside ------------------------------------------------------------------------------

    def _room(self, room: str | None) -> str:
        if room is None:
            if not self.rooms:
                raise BotkitError(f"bot {self.name} has no rooms; give it rooms=[...]")
            return self.rooms[0]
        if room not in self.rooms:
            raise BotkitError(f"bot {self.name} is not in room {room!r}; its rooms are "
                              f"{self.rooms}")
        return room

    def _client(self, user: str) -> ClientInfo:
        """The connection ``user`` publishes from, as the server attests it."""
        return ClientInfo(user=user, client=self.server.new_client(user))

    def _filled(self, data: Mapping[str, Any], room: str | None,
                as_user: str | None) -> dict[str, Any]:
        filled = dict(data)
        defaults = {("id",): new_ulid(), ("roomId", "room_id"): self._room(room),
                    ("senderId", "sender_id"): as_user or self.user,
                    ("sentAt", "sent_at"): format_timestamp(self.now)}
        for names, value in defaults.items():
            if not any(name in filled for name in names):
                filled[names[0]] = value
        return filled

    async def _send(self, room: str, data: Any, cause: Envelope | None,
                    info: ClientInfo | None, *, replayed: bool = False) -> Replies:
        await self.start()
        self.server.broadcast(self.server.rooms[room], data, info=info)
        if replayed:
            _, where, publication = self.server.deliveries.pop()
            self.server.deliveries.append(("replay", where, publication))
        return await self._deliver(cause=cause)

    async def _deliver(self, *deliveries: Delivery, cause: Envelope | None = None) -> Replies:
        await self.start()
        mark = len(self.server.published)
        self.server.deliveries.extend(deliveries)
        await self._drain()
        return Replies(self.server.published[mark:], cause=cause)

    async def _drain(self) -> None:
        """Hand the bot what reached its rooms, one at a time, as one lane would; what it
        publishes meanwhile (its own replies, coming back) is handled after."""
        deliveries, core = self.server.deliveries, self.core
        while deliveries:
            kind, room, payload = deliveries.popleft()
            if kind == "publication" or kind == "replay":
                assert isinstance(payload, Publication)
                await core.handle_publication(room, payload, kind == "replay")
            elif kind == "join":
                await core.handle_join(room, payload)
            else:
                await core.handle_leave(room, payload)


class _JobHost:
    """The clock's view of the bot: each fire runs through the core, then what it published
    comes back to the bot like any publication."""

    def __init__(self, harness: BotHarness) -> None:
        self.name = harness.name
        self._harness = harness

    async def run_job(self, job_id: str, run_time: datetime, target: str, room: str | None,
                      kwargs: Mapping[str, Any]) -> None:
        await self._harness.core.run_job(job_id, run_time, target, room, kwargs)
        await self._harness._drain()


def _xshathra(project_id: str) -> dict[str, str]:  # never contacted: the server is in memory
    return {"project_id": project_id, "realtime_url": "ws://harness.invalid/connection",
            "api_url": "http://harness.invalid/api", "server_api_key": _PLACEHOLDER_KEY}
