"""The realtime client's read-ahead: with ``offer_event``, a busy consumer does not stop the
reader (so pings are answered and the server's write deadlines met) until the read-ahead
budget is spent; events still arrive in order, exactly once."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest

from botkit.dev.localserver import LocalCentrifugo
from botkit.protocol import Publication
from botkit.realtime import ClientEvent, ClientOptions, RealtimeClient
from botkit.tokens import TokenMinter, chat_channel

pytestmark = pytest.mark.server


def _room() -> str:
    return chat_channel("proj_test", f"room_{secrets.token_hex(4)}")


async def _publish_many(server: LocalCentrifugo, channel: str, count: int, *,
                        one_by_one: bool = False) -> None:
    commands = [{"publish": {"channel": channel, "data": {"n": n, "pad": "x" * 200}}}
                for n in range(count)]
    async with httpx.AsyncClient(headers={"X-API-Key": server.api_key}) as http:
        for part in ([[c] for c in commands] if one_by_one else [commands]):
            response = await http.post(f"{server.api_url}/batch", json={"commands": part})
            assert response.status_code == 200, response.text


async def _until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (polls the client's counters)
            await asyncio.sleep(0.01)


class _SlowConsumer:
    """Declines every offer; on_event waits for a gate, then records."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.seen: list[int] = []
        self.offers = 0

    def offer(self, event: ClientEvent) -> bool:
        self.offers += 1
        return False

    async def on_event(self, event: ClientEvent) -> None:
        if isinstance(event, Publication):
            await self.gate.wait()
            self.seen.append(event.data["n"])


def _client(server: LocalCentrifugo, consumer: _SlowConsumer, **options: Any) -> RealtimeClient:
    tokens = TokenMinter(server.api_key, "user_ra")
    return RealtimeClient(server.ws_url, tokens.connection, tokens.subscription,
                          options=ClientOptions(**options), on_event=consumer.on_event,
                          offer_event=consumer.offer)


async def test_the_reader_reads_on_while_the_consumer_is_busy(
        centrifugo: LocalCentrifugo) -> None:
    channel = _room()
    consumer = _SlowConsumer()
    async with _client(centrifugo, consumer) as client:
        await client.subscribe(channel)
        await _publish_many(centrifugo, channel, 50)
        await _until(lambda: client.publications >= 50)
        assert consumer.seen == []
        position = client.position(channel)
        assert position is not None
        consumer.gate.set()
        await _until(lambda: len(consumer.seen) >= 50)
    assert consumer.seen == list(range(50))


async def test_past_the_budget_the_reader_waits_and_nothing_is_lost(
        centrifugo: LocalCentrifugo) -> None:
    channel = _room()
    consumer = _SlowConsumer()
    async with _client(centrifugo, consumer, read_ahead_bytes=2000) as client:
        await client.subscribe(channel)
        await _publish_many(centrifugo, channel, 60, one_by_one=True)
        await asyncio.sleep(0.3)
        # Stopped once about 2000 bytes of messages were held (one message more at most).
        assert 1 <= client.publications < 60
        assert client.read_ahead.held_bytes > 2000
        assert client.read_ahead.held_bytes - 2000 < client.read_ahead.largest_held + 1
        consumer.gate.set()
        await _until(lambda: len(consumer.seen) >= 60)
    assert consumer.seen == list(range(60))


async def test_close_hands_over_what_is_held_within_its_time(
        centrifugo: LocalCentrifugo) -> None:
    channel = _room()
    consumer = _SlowConsumer()
    client = _client(centrifugo, consumer)
    await client.start()
    await client.subscribe(channel)
    await _publish_many(centrifugo, channel, 10)
    await _until(lambda: client.publications >= 10)
    asyncio.get_running_loop().call_later(0.1, consumer.gate.set)
    await client.aclose(flush_timeout=5)
    assert consumer.seen == list(range(10))


async def test_close_gives_up_on_a_stuck_consumer(centrifugo: LocalCentrifugo,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    channel = _room()
    consumer = _SlowConsumer()  # its gate never opens
    client = _client(centrifugo, consumer)
    await client.start()
    await client.subscribe(channel)
    await _publish_many(centrifugo, channel, 5)
    await _until(lambda: client.publications >= 5)
    async with asyncio.timeout(3):
        await client.aclose(flush_timeout=0.2)
    assert consumer.seen == []
    assert "not handed over" in caplog.text
    assert not client.read_ahead.feeding


async def test_a_failing_offer_or_consumer_is_counted_not_fatal(
        centrifugo: LocalCentrifugo) -> None:
    channel = _room()
    seen: list[int] = []
    calls = {"offer": 0}

    def offer(event: ClientEvent) -> bool:
        calls["offer"] += 1
        if not isinstance(event, Publication):
            return False
        if event.data["n"] == 0:
            seen.append(0)  # taken at once
            return True
        if event.data["n"] == 1:
            raise RuntimeError("a bug in the consumer's fast path")
        return False

    async def on_event(event: ClientEvent) -> None:
        if isinstance(event, Publication):
            if event.data["n"] == 3:
                raise RuntimeError("a bug in the consumer")
            seen.append(event.data["n"])

    tokens = TokenMinter(centrifugo.api_key, "user_ra")
    async with RealtimeClient(centrifugo.ws_url, tokens.connection, tokens.subscription,
                              on_event=on_event, offer_event=offer) as client:
        await client.subscribe(channel)
        await _publish_many(centrifugo, channel, 5)
        await _until(lambda: len(seen) >= 3)
        assert seen == [0, 2, 4]
        assert client.drops["event handler error"] == 2
