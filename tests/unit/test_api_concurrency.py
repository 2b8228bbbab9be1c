"""ServerApi under many calls at once (a runtime of hundreds of bots resyncing presence after a
reconnect): presence calls made together share a batch request, and the calls outside the
publish queue are kept to a few in flight."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from botkit.errors import ApiError, ApiReplyError, ApiUnavailableError
from botkit.serverapi.client import MAX_DIRECT_CALLS, ServerApi
from botkit.serverapi.presence import MAX_PRESENCE_BATCH


class _Server:
    """A mock server API: presence answers name the channel; some channels fail."""

    def __init__(self, *, temporary_once: set[str] | None = None) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.in_flight = 0
        self.most = 0
        self.temporary_once = set(temporary_once or ())

    def presence(self, channel: str) -> dict[str, Any]:
        if channel.startswith("nope:"):
            return {"error": {"code": 102, "message": "unknown channel"}}
        if channel in self.temporary_once:
            self.temporary_once.discard(channel)
            return {"error": {"code": 100, "message": "internal server error"}}
        return {"presence": {"presence": {"c1": {"user": channel, "client": "c1"}}}}

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.002)
            body = json.loads(request.content)
            method = request.url.path.rsplit("/", 1)[1]
            self.requests.append((method, body))
            if method == "presence":
                reply = self.presence(body["channel"])
                return httpx.Response(200, json={"result": reply["presence"]} if "presence"
                                      in reply else reply)
            if method == "history":
                return httpx.Response(200, json={"result": {"publications": [], "offset": 0,
                                                            "epoch": "e"}})
            assert method == "batch"
            assert body["parallel"] is True
            return httpx.Response(200, json={"replies": [
                self.presence(command["presence"]["channel"]) for command in body["commands"]]})
        finally:
            self.in_flight -= 1


def _api(server: _Server, **options: Any) -> tuple[ServerApi, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=httpx.MockTransport(server))
    return ServerApi("http://api.invalid/api/realtime", "key", client=client, **options), client


async def test_presence_calls_made_together_share_a_batch_request() -> None:
    server = _Server()
    api, client = _api(server)
    async with api:
        results = await asyncio.gather(*(api.presence(f"chat:p:r{i}") for i in range(1200)))
    await client.aclose()
    assert [r["c1"].user for r in results] == [f"chat:p:r{i}" for i in range(1200)]
    assert [method for method, _ in server.requests] == ["batch"] * 3
    assert max(len(body["commands"]) for _, body in server.requests) == MAX_PRESENCE_BATCH


async def test_a_presence_call_alone_is_a_plain_request() -> None:
    server = _Server()
    api, client = _api(server)
    async with api:
        assert (await api.presence("chat:p:solo"))["c1"].user == "chat:p:solo"
        assert await api.presence("chat:p:again") != {}
    await client.aclose()
    assert [method for method, _ in server.requests] == ["presence", "presence"]


async def test_each_caller_gets_its_own_answer_or_error() -> None:
    server = _Server(temporary_once={"chat:p:flaky"})
    api, client = _api(server)
    async with api:
        results = await asyncio.gather(api.presence("chat:p:a"), api.presence("nope:x"),
                                       api.presence("chat:p:flaky"), api.presence("chat:p:b"),
                                       return_exceptions=True)
    await client.aclose()
    assert isinstance(results[1], ApiReplyError)
    assert results[1].code == 102
    assert [r["c1"].user for r in (results[0], results[2], results[3])] == [  # type: ignore[index]
        "chat:p:a", "chat:p:flaky", "chat:p:b"]
    # The temporary error was retried alone, as a plain presence call.
    assert [method for method, _ in server.requests] == ["batch", "presence"]


async def test_a_failed_batch_fails_each_caller_with_its_own_error() -> None:
    async def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    client = httpx.AsyncClient(transport=httpx.MockTransport(down))
    async with ServerApi("http://api.invalid/api/realtime", "key", client=client,
                         retries=0) as api:
        errors = await asyncio.gather(*(api.presence(f"chat:p:r{i}") for i in range(3)),
                                      return_exceptions=True)
    await client.aclose()
    assert all(isinstance(e, ApiUnavailableError) for e in errors)
    assert len({id(e) for e in errors}) == 3


async def test_a_cancelled_caller_is_left_out_and_the_others_answered() -> None:
    server = _Server()
    api, client = _api(server)
    async with api:
        first = asyncio.create_task(api.presence("chat:p:first"))
        await asyncio.sleep(0.001)  # first is in flight
        gone = asyncio.create_task(api.presence("chat:p:gone"))
        kept = asyncio.create_task(api.presence("chat:p:kept"))
        await asyncio.sleep(0)
        gone.cancel()
        assert (await kept)["c1"].user == "chat:p:kept"
        await first
    await client.aclose()
    assert gone.cancelled()
    assert [body for _, body in server.requests][-1] == {"channel": "chat:p:kept"}


async def test_closing_fails_presence_calls_still_waiting() -> None:
    server = _Server()
    api, client = _api(server)
    await api.start()
    call = asyncio.create_task(api.presence("chat:p:late"))
    await asyncio.sleep(0)
    sender = api._presence._sender
    assert sender is not None
    sender.cancel()
    with pytest.raises(ApiError, match="not completed"):
        await call
    await api.aclose()
    await client.aclose()


async def test_calls_outside_the_publish_queue_are_a_few_at_a_time() -> None:
    server = _Server()
    api, client = _api(server)
    async with api:
        await asyncio.gather(*(api.history(f"chat:p:r{i}", limit=1) for i in range(100)))
    await client.aclose()
    assert 1 < server.most <= MAX_DIRECT_CALLS
