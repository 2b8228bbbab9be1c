"""The part of a running bot that does not know about sockets: what happens to a publication, a
join or a leave once it has arrived in a room, and to a job once it fires.

A publication is validated, and dropped (each drop counted) when it is invalid, spoofed, of a
type its publisher may not vouch for (see trust.py), the bot's own or another bot's → the bot's
routes pick handlers → each runs under the bot's middleware, deadline, guards and error
isolation (calls.py), sharing one Context so replies are numbered in order. A chat message of a
person the bot is asking something (``ctx.ask``) is their answer instead (conversations.py).
Presence pushes become ``user.joined`` / ``user.left`` envelopes, once per user however many
connections the user has.

The runtime's :class:`~botkit.runtime.runner.BotRunner` feeds a :class:`BotCore` from its realtime
connection through ordered lanes; ``botkit.testing`` feeds the very same class directly, so a
bot's test runs the runtime's own code, minus the network.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.util import ref_to_obj
from pydantic import ValidationError

from botkit.bot import Bot
from botkit.config import BotConfig, CatchUpConfig, resolve_catch_up
from botkit.context import BotServices, Context, FailedReply, JobScheduler, Publisher, wall_clock
from botkit.conversations import Conversations
from botkit.envelope import ChatMessage, Envelope, UserJoined, UserLeft, parse_envelope
from botkit.errors import BotkitError, EnvelopeError
from botkit.gap import Gap
from botkit.jobs.scheduler import ScheduleSpec
from botkit.protocol.types import ClientInfo, Publication
from botkit.routing import parse_command_line
from botkit.runtime.calls import HandlerCalls
from botkit.runtime.logfields import LOG_CONTEXT
from botkit.runtime.presence import RoomPresence
from botkit.runtime.stats import BotStats
from botkit.runtime.trust import DropLog, TrustPolicy
from botkit.state.store import BotState, StateStore
from botkit.ulid import new_ulid

__all__ = ["BotCore", "BotStats", "LoadedBot", "static_schedules"]

# The runtime's logger: these lines are the runtime's, wherever the core is driven from.
log = logging.getLogger("botkit.runtime")


@dataclass(frozen=True, slots=True)
class LoadedBot:
    config: BotConfig
    bot: Bot
    settings: Any


class BotCore:
    """One bot's handling of what arrives in its rooms, whoever delivers it.

    Calls for one room must not overlap (the runtime's lanes, the harness's queue see to it):
    presence tracking and reply order rely on it.
    """

    def __init__(self, loaded: LoadedBot, *, project_id: str, api: Publisher,
                 bot_users: frozenset[str] = frozenset(), state: StateStore | None = None,
                 scheduler: JobScheduler | None = None,
                 clock: Callable[[], datetime] = wall_clock,
                 catch_up: CatchUpConfig | None = None, real_timers: bool = True) -> None:
        config = loaded.config
        self.name = config.name
        self.config = config
        self.bot = loaded.bot
        self.stats = BotStats()
        self.limits = config.limits
        self.channels = config.channels(project_id)
        """Room id → channel, for the rooms in the bot's configuration."""
        # The runtime's set, shared by all its bots (a copy each, less the bot's own user,
        # made memory grow with the square of the bots); dispatch() checks "own" first.
        self._bot_users = bot_users
        self.services = BotServices(
            name=config.name, user_id=config.user_id, project_id=project_id, bot=loaded.bot,
            settings=loaded.settings, api=api, channels=dict(self.channels),
            max_text_length=self.limits.max_text_length,
            state=BotState(state, config.name) if state is not None else None,
            scheduler=scheduler, clock=clock)
        self.presence = {room: RoomPresence() for room in self.channels}
        """Who is in each room, as the presence pushes told."""
        self.trust = TrustPolicy(config.trusted_senders)
        self.catch_up = catch_up or resolve_catch_up(CatchUpConfig(), config.catch_up)
        self._max_age = timedelta(seconds=self.catch_up.max_age)
        self._drops = DropLog(self.name, log)
        self.conversations = Conversations(bot=self.name, clock=clock,
                                           limit=loaded.bot.max_questions,
                                           counts=self.stats, real_timers=real_timers)
        self.services.conversations = self.conversations
        self._questions = self.conversations.pending  # read for every envelope: one lookup
        self.calls = HandlerCalls(self.name, loaded.bot, self.services, self.stats,
                                  self.conversations, self.limits.handler_timeout)

    def adopt(self, previous: BotCore) -> None:
        """Carry the counters of the bot's previous run over: one bot, one set of counters
        across its restarts (the ops endpoint's counters must never go back)."""
        self.stats = previous.stats
        self.conversations.counts = self.stats
        self.calls.stats = self.stats
        self.services.replies_sent += previous.services.replies_sent
        self.services.replies_failed += previous.services.replies_failed
        self.services.replies_dropped += previous.services.replies_dropped

    # -- hooks -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Run the bot's on_start hooks (errors and timeouts are logged, never raised)."""
        await self._run_hooks(self.bot.start_hooks, "on_start")

    async def stop(self) -> None:
        """End the pending conversations (each person asked is told once), then run the
        bot's on_stop hooks (errors and timeouts are logged, never raised)."""
        await self.calls.end_conversations()
        await self._run_hooks(self.bot.stop_hooks, "on_stop")

    async def run_gap_hooks(self, gap: Gap) -> None:
        """Run the bot's on_gap hooks for ``gap`` (errors and timeouts logged, never raised)."""
        await self._run_hooks(self.bot.gap_hooks, "on_gap", gap, room=gap.room)

    async def run_reply_failed_hooks(self, failed: FailedReply) -> None:
        """Run the bot's on_reply_failed hooks (errors and timeouts logged, never raised)."""
        await self._run_hooks(self.bot.reply_failed_hooks, "on_reply_failed", failed,
                              room=failed.room)

    async def _run_hooks(self, hooks: Sequence[Any], what: str, *args: Any,
                         room: str | None = None) -> None:
        for hook in hooks:
            ctx = Context(self.services, room=room)
            try:
                async with asyncio.timeout(self.limits.handler_timeout):
                    if asyncio.iscoroutinefunction(hook):
                        await hook(ctx, *args)
                    else:
                        await asyncio.to_thread(hook, ctx, *args)
            except TimeoutError:
                log.error("bot %s: %s hook %s timed out", self.name, what,
                          getattr(hook, "__qualname__", hook))
            except Exception:
                log.exception("bot %s: %s hook %s failed", self.name, what,
                              getattr(hook, "__qualname__", hook))

    # -- scheduled jobs ----------------------------------------------------------------------

    async def run_job(self, job_id: str, run_time: datetime, target: str, room: str | None,
                      kwargs: Mapping[str, Any]) -> None:
        """One fire of a job. Its replies' idempotency keys name the job and the scheduled
        time, so a fire replayed after a restart is absorbed by the server."""
        stamp = run_time.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3]
        ctx = Context(self.services, room=room, cause=f"job:{job_id}@{stamp}")
        fields = LOG_CONTEXT.set({"bot": self.name, "room": room or "-", "job_id": job_id})
        try:
            async with asyncio.timeout(self.limits.handler_timeout):
                await self._call_job(ctx, target, kwargs)
        except TimeoutError:
            self.stats.job_errors += 1
            log.error("bot %s: job %s timed out after %.1fs", self.name, job_id,
                      self.limits.handler_timeout)
        except Exception:
            self.stats.job_errors += 1
            log.exception("bot %s: job %s failed", self.name, job_id)
        else:
            self.stats.jobs_run += 1
        finally:
            LOG_CONTEXT.reset(fields)

    async def _call_job(self, ctx: Context, target: str, kwargs: Mapping[str, Any]) -> None:
        scheduler = self.services.scheduler
        spec = scheduler.static_spec(self.name, target) if scheduler is not None else None
        if spec is not None and spec.text is not None:
            await ctx.reply(spec.text)
            return
        fn = spec.fn if spec is not None else ref_to_obj(target)
        if fn is None:
            raise BotkitError(f"job target {target!r} is not known")
        if asyncio.iscoroutinefunction(fn):
            result = await fn(ctx, **kwargs)
        else:
            result = await asyncio.to_thread(fn, ctx, **kwargs)
        if isinstance(result, str) and result and ctx.room is not None:
            await ctx.reply(result)

    # -- what arrives in a room --------------------------------------------------------------

    async def handle_publication(self, room: str, publication: Publication,
                                 replayed: bool = False) -> None:
        """A publication in ``room``: validated, checked against what its publisher may say
        (``info``, the user the server attests, is present for client publishes only), then
        dispatched. A ``replayed`` one (published before the room was subscribed) older than
        ``catch_up.max_age`` is skipped."""
        stats = self.stats
        stats.received += 1
        try:
            envelope = parse_envelope(publication.data,
                                      max_text_length=self.limits.max_text_length)
        except EnvelopeError as exc:
            stats.invalid += 1
            self._drops.dropped("invalid", "dropped an invalid envelope in %s (offset %d): %s",
                                room, publication.offset, exc)
            return
        info = publication.info
        refusal = self.trust.refusal(envelope, info)
        if refusal is not None:
            assert info is not None  # only client publishes are refused
            if refusal == "spoofed":
                stats.spoofed += 1
                self._drops.dropped("spoofed", "dropped envelope %r in %s: senderId %r but the "
                                    "server says user %r published it", envelope.id, room,
                                    envelope.sender_id, info.user)
            else:
                stats.untrusted += 1
                self._drops.dropped("untrusted", "dropped envelope %r in %s: user %r published "
                                    "a %r from their own connection; only the server API may "
                                    "publish that type (see trusted_senders in "
                                    "docs/security.md)", envelope.id, room, info.user,
                                    envelope.type)
            return
        await self.dispatch(room, envelope, replayed)

    async def handle_join(self, room: str, info: ClientInfo) -> None:
        """A connection joined ``room``: ``user.joined`` if it is the user's first."""
        if self.presence[room].join(info):
            await self._handle_presence(room, info, joined=True)

    async def handle_leave(self, room: str, info: ClientInfo) -> None:
        """A connection left ``room``: ``user.left`` if it was the user's last."""
        if self.presence[room].leave(info):
            await self._handle_presence(room, info, joined=False)

    async def resync(self, room: str, *, announce: bool) -> None:
        """Compare the room's presence with the server's (after a (re)subscribe); with
        ``announce``, who joined or left meanwhile is handled as if pushed."""
        try:
            present = await self.services.api.presence(self.channels[room])
        except BotkitError as exc:
            log.warning("bot %s: could not read presence of %s: %s", self.name, room, exc)
            return
        joined, left = self.presence[room].resync(present.values())
        if not announce:
            return
        for info in joined:
            await self._handle_presence(room, info, joined=True)
        for user in left:
            # The connection that left is unknown; a fresh id keeps each leave's envelope (and
            # so its replies' idempotency keys) apart from every other leave's.
            info = ClientInfo(user=user, client=f"resync-{new_ulid()}")
            await self._handle_presence(room, info, joined=False)

    async def _handle_presence(self, room: str, info: ClientInfo, *, joined: bool) -> None:
        if info.user == self.config.user_id:
            return
        # The display name: the connection token's info, else the room subscription's.
        name = _info_name(info.conn_info)
        if name is None:
            name = _info_name(info.chan_info)
        model = UserJoined if joined else UserLeft
        try:
            envelope = model(id=f"presence-{'join' if joined else 'leave'}-{info.client}"[:128],
                             room_id=room, sender_id=info.user, user_id=info.user,
                             name=name,
                             sent_at=self.services.clock())
        except ValidationError:
            # A user id no envelope may carry (over 128 characters): dropped like any invalid
            # envelope. Raised here it would end the lane, and with it the bot.
            self.stats.invalid += 1
            log.warning("bot %s: ignored a presence %s in %s: the user id (%d characters) is "
                        "not a valid envelope id", self.name,
                        "join" if joined else "leave", room, len(info.user))
            return
        await self.dispatch(room, envelope)

    # -- handlers ----------------------------------------------------------------------------

    async def dispatch(self, room: str, envelope: Envelope, replayed: bool = False) -> None:
        """Run the handlers ``envelope`` routes to, unless it is the bot's own or a bot's."""
        if envelope.sender_id == self.config.user_id:
            self.stats.own += 1
            return
        if envelope.sender_id in self._bot_users:
            # Bots of one runtime never answer each other: no reply loops.
            self.stats.from_bots += 1
            return
        if self._questions and isinstance(envelope, ChatMessage):
            question = self.conversations.waiting(room, envelope.sender_id)
            if question is not None:
                # The person's next message is their answer, whatever it says, but /cancel.
                self.stats.handled += 1
                line = parse_command_line(envelope.text, self.bot.prefix)
                await self.conversations.deliver(question, envelope,
                                                 line is not None and line.name == "cancel")
                return
        invocations = self.bot.route(envelope, room)
        if not invocations:
            return
        if replayed and self.services.clock() - envelope.sent_at > self._max_age:
            # Counted only when a handler would have run: what the bot ignores anyway is not
            # a skip.
            self.stats.skipped_old += 1
            self._drops.dropped("skipped_old", "skipped replayed envelope %r in %s: sent at %s, "
                                "older than catch_up.max_age", envelope.id, room,
                                envelope.sent_at.isoformat())
            return
        self.stats.handled += 1
        # One context for all the handlers of an envelope: reply positions, and with them the
        # idempotency keys, run on across handlers. A context each would give two handlers'
        # first replies the same key, and the server would drop the second as a repeat.
        ctx = Context(self.services, envelope, room)
        if replayed:
            ctx.replayed = True  # a keyword argument costs a third of Context() (bench/ S1)
        fields = LOG_CONTEXT.set(ctx)
        try:
            calls = self.calls
            for invocation in invocations:
                if invocation.route.asks:
                    await calls.call_apart(ctx, invocation)
                else:
                    await calls.call(ctx, invocation)
        finally:
            LOG_CONTEXT.reset(fields)

def static_schedules(loaded: LoadedBot) -> list[ScheduleSpec]:
    """A bot's static jobs: its ``@bot.every``/``@bot.cron`` handlers and the ``schedules:``
    of its configuration (fixed texts)."""
    rooms = [room.id for room in loaded.config.rooms]
    specs = [spec if spec.rooms else ScheduleSpec(spec.key, spec.trigger, tuple(rooms),
                                                  fn=spec.fn)
             for spec in loaded.bot.schedules]
    specs += [ScheduleSpec(f"schedules[{index}]", item.trigger(), item.target_rooms(rooms),
                           text=item.text)
              for index, item in enumerate(loaded.config.schedules)]
    return specs


def _info_name(info: object) -> str | None:
    name = info.get("name") if isinstance(info, dict) else None
    return name if isinstance(name, str) and name else None
