"""The human side of runtime tests: a user played by the official Centrifugo Python SDK."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import centrifuge

from botkit.dev.localserver import LocalCentrifugo
from botkit.envelope import chat_message, envelope_to_dict
from botkit.tokens import TokenMinter, chat_channel


class _Collector(centrifuge.SubscriptionEventHandler):
    def __init__(self, inbox: asyncio.Queue[dict[str, Any]]) -> None:
        self.inbox = inbox

    async def on_publication(self, ctx: centrifuge.PublicationContext) -> None:
        data = ctx.pub.data
        if isinstance(data, dict):
            self.inbox.put_nowait(data)


class Human:
    """A user in one room: publishes envelopes like the seed's prototype client and reads
    everything published in the room."""

    def __init__(self, server: LocalCentrifugo, project_id: str, room: str, user_id: str,
                 *, url: str | None = None, name: str | None = None) -> None:
        self.user_id = user_id
        self.room = room
        self.channel = chat_channel(project_id, room)
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        # ``name``: the display name the connection token carries (``info.name``).
        minter = TokenMinter(server.api_key, user_id,
                             info={"name": name} if name is not None else None)
        self.client = centrifuge.Client(url or server.ws_url, token=minter.connection(),
                                        proxy=None)
        self.subscription = self.client.new_subscription(
            self.channel, _Collector(self.inbox), token=minter.subscription(self.channel))

    async def enter(self) -> None:
        await self.client.connect()
        await self.subscription.subscribe()
        await self.subscription.ready(5)

    async def leave(self) -> None:
        await self.client.disconnect()

    async def say(self, text: str, *, sender_id: str | None = None) -> str:
        message = chat_message(room_id=self.room, sender_id=sender_id or self.user_id, text=text)
        await self.subscription.publish(envelope_to_dict(message))
        return message.id

    async def publish(self, data: Any) -> None:
        await self.subscription.publish(data)

    async def replies_from(self, bot_user: str, count: int, *, timeout: float = 10.0
                           ) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while len(got) < count:
                data = await self.inbox.get()
                if data.get("senderId") == bot_user:
                    got.append(data)
        return got

    async def quiet_from(self, bot_user: str, seconds: float) -> list[dict[str, Any]]:
        """Everything ``bot_user`` said within ``seconds`` (to check for what must not come)."""
        got: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    data = await self.inbox.get()
                    if data.get("senderId") == bot_user:
                        got.append(data)
        return got


@contextlib.asynccontextmanager
async def human(server: LocalCentrifugo, project_id: str, room: str, user_id: str, *,
                url: str | None = None, name: str | None = None) -> AsyncIterator[Human]:
    person = Human(server, project_id, room, user_id, url=url, name=name)
    await person.enter()
    try:
        yield person
    finally:
        await person.leave()
