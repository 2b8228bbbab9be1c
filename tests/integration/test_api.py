"""The server API client against the real server, with faults injected by a real HTTP proxy."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from botkit.dev.localserver import LocalCentrifugo, free_port
from botkit.errors import (
    ApiAuthError,
    ApiError,
    ApiReplyError,
    ApiRequestError,
    ApiUnavailableError,
)
from botkit.protocol.backoff import Backoff
from botkit.protocol.types import PresenceStats, StreamPosition
from botkit.serverapi.client import PublishResult, ServerApi
from tests.support.http_fault import FaultProxy

pytestmark = pytest.mark.server

FAST = Backoff(base=0.01, cap=0.05)

ApiFactory = Callable[..., ServerApi]


def room() -> str:
    return f"chat:proj1:{uuid.uuid4().hex[:12]}"


def paths(proxy: FaultProxy) -> list[str]:
    return [request.path.rsplit("/", 1)[-1] for request in proxy.requests]


@pytest.fixture
async def api(centrifugo: LocalCentrifugo) -> AsyncIterator[ServerApi]:
    async with ServerApi(centrifugo.api_url, centrifugo.api_key, backoff=FAST) as client:
        yield client


@pytest.fixture
async def proxy(centrifugo: LocalCentrifugo) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(centrifugo.api_url) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def via_proxy(centrifugo: LocalCentrifugo, proxy: FaultProxy) -> ApiFactory:
    """A client that talks to the real server through the fault proxy."""

    def make(**options: Any) -> ServerApi:
        options.setdefault("backoff", FAST)
        options.setdefault("api_key", centrifugo.api_key)
        return ServerApi(proxy.proxied(centrifugo.api_url), **options)

    return make


async def history_data(api: ServerApi, channel: str, limit: int = -1) -> list[Any]:
    return [pub.data for pub in (await api.history(channel, limit=limit)).publications]


# -- the methods --------------------------------------------------------------------------------

async def test_publish_then_history_shows_it(api: ServerApi) -> None:
    channel = room()
    result = await api.publish(channel, {"text": "hello"}, tags={"kind": "msg"})
    history = await api.history(channel, limit=10)
    (publication,) = history.publications
    assert publication.data == {"text": "hello"}
    assert publication.tags == {"kind": "msg"}
    assert publication.channel == channel
    assert publication.info is None  # published by the server API, not by a client
    assert result.offset == publication.offset == 1
    assert result.epoch
    assert history.position == result.position == StreamPosition(1, result.epoch)


async def test_skip_history_publishes_without_a_position(api: ServerApi) -> None:
    channel = room()
    assert await api.publish(channel, {"n": 1}, skip_history=True) == PublishResult(0, "")
    assert await history_data(api, channel) == []


async def test_history_limit_since_and_reverse(api: ServerApi) -> None:
    channel = room()
    results = [await api.publish(channel, {"n": n}) for n in range(5)]
    assert [r.offset for r in results] == [1, 2, 3, 4, 5]
    assert await history_data(api, channel, limit=2) == [{"n": 0}, {"n": 1}]
    since = results[2].position
    after = await api.history(channel, limit=10, since=since)
    assert [p.offset for p in after.publications] == [4, 5]
    newest = await api.history(channel, limit=2, reverse=True)
    assert [p.data for p in newest.publications] == [{"n": 4}, {"n": 3}]
    # limit 0 is the server's "position only" request, not "no limit".
    top = await api.history(channel, limit=0)
    assert top.publications == ()
    assert top.position == results[-1].position


async def test_history_since_another_epoch_is_refused(api: ServerApi) -> None:
    channel = room()
    await api.publish(channel, {"n": 1})
    with pytest.raises(ApiReplyError) as caught:
        await api.history(channel, limit=10, since=StreamPosition(0, "not-the-epoch"))
    assert caught.value.code == 112
    assert caught.value.method == "history"


async def test_broadcast_to_two_channels_and_a_bad_one(api: ServerApi) -> None:
    first, second = room(), room()
    results = await api.broadcast([first, "nope:x", second], {"text": "all"})
    one, bad, two = results
    assert isinstance(one, PublishResult)
    assert isinstance(two, PublishResult)
    assert isinstance(bad, ApiReplyError)
    assert (one.offset, two.offset, bad.code) == (1, 1, 102)
    assert one.epoch != two.epoch  # two separate streams
    assert await history_data(api, first) == [{"text": "all"}]
    assert await history_data(api, second) == [{"text": "all"}]
    assert await api.broadcast([], {"text": "none"}) == []


async def test_presence_of_an_empty_channel(api: ServerApi) -> None:
    channel = room()
    assert await api.presence(channel) == {}
    assert await api.presence_stats(channel) == PresenceStats(num_clients=0, num_users=0)


async def test_batch_is_raw(api: ServerApi) -> None:
    channel = room()
    replies = await api.batch([
        {"publish": {"channel": channel, "data": {"n": 1}}},
        {"publish": {"channel": "nope:x", "data": {"n": 2}}},
        {"presence_stats": {"channel": channel}},
    ])
    assert replies[0]["publish"]["offset"] == 1
    assert replies[1] == {"error": {"code": 102, "message": "unknown channel"}}
    assert replies[2] == {"presence_stats": {"num_clients": 0, "num_users": 0}}
    assert await api.batch([]) == []


async def test_same_idempotency_key_is_published_once(api: ServerApi) -> None:
    channel = room()
    first = await api.publish(channel, {"text": "once"}, idempotency_key="reply-1")
    again = await api.publish(channel, {"text": "once"}, idempotency_key="reply-1")
    assert again == first
    assert await history_data(api, channel) == [{"text": "once"}]


# -- errors that must not be retried ------------------------------------------------------------

async def test_wrong_key_raises_auth_error_at_once(via_proxy: ApiFactory,
                                                   proxy: FaultProxy) -> None:
    secret = f"wrong-{uuid.uuid4().hex}"
    async with via_proxy(api_key=secret, key_setting="bots.yaml: xshathra.server_api_key") as api:
        with pytest.raises(ApiAuthError) as caught:
            await api.publish(room(), {"text": "x"})
        assert api.stats.requests == api.stats.publish_requests == 1
    assert len(proxy.requests) == 1
    assert proxy.requests[0].headers["x-api-key"] == secret  # it was sent, and refused
    message = str(caught.value)
    assert "bots.yaml: xshathra.server_api_key (HTTP 401)" in message
    assert secret not in message
    assert secret not in repr(caught.value)
    assert secret not in repr(api)


async def test_unknown_namespace_is_not_retried(via_proxy: ApiFactory,
                                                proxy: FaultProxy) -> None:
    async with via_proxy() as api:
        with pytest.raises(ApiReplyError) as caught:
            await api.publish("nope:room", {"text": "x"})
    assert caught.value.code == 102
    assert caught.value.method == "publish"
    assert not caught.value.temporary
    assert len(proxy.requests) == 1


@pytest.mark.parametrize("status", [400, 404, 429])
async def test_injected_4xx_is_not_retried(via_proxy: ApiFactory, proxy: FaultProxy,
                                           status: int) -> None:
    proxy.fail_next(1, status)
    async with via_proxy() as api:
        with pytest.raises(ApiRequestError) as caught:
            await api.presence_stats(room())
        assert api.stats.retries == 0
    assert caught.value.status_code == status
    assert len(proxy.requests) == 1


# -- opportunistic batching -------------------------------------------------------------------

async def test_burst_of_publishes_is_batched_in_order(via_proxy: ApiFactory,
                                                      proxy: FaultProxy) -> None:
    channel = room()
    async with via_proxy() as api:
        results = await asyncio.gather(*(api.publish(channel, {"n": n}) for n in range(500)))
        stats = api.stats
        # Submission order is kept: the n-th publish got the n-th offset of the stream.
        assert [r.offset for r in results] == list(range(1, 501))
        assert len({r.epoch for r in results}) == 1
        assert await history_data(api, channel, limit=-1) == [{"n": n} for n in range(400, 500)]
    assert stats.publish_batches >= 1
    assert stats.batched_publishes >= 400
    assert stats.retries == 0
    assert len(proxy.requests) < 100
    assert paths(proxy).count("batch") == stats.publish_batches


async def test_lone_publish_is_sent_as_a_plain_publish(via_proxy: ApiFactory,
                                                       proxy: FaultProxy) -> None:
    async with via_proxy() as api:
        await api.publish(room(), {"text": "alone"})
        await api.publish(room(), {"text": "alone again"})
        assert (api.stats.publish_requests, api.stats.publish_batches) == (2, 0)
    assert paths(proxy) == ["publish", "publish"]


async def test_each_caller_gets_its_own_result_from_a_batch(api: ServerApi) -> None:
    channel = room()
    channels = [channel if n % 2 == 0 else "nope:x" for n in range(10)]
    outcomes = await asyncio.gather(*(api.publish(ch, {"n": n}) for n, ch in enumerate(channels)),
                                    return_exceptions=True)
    assert api.stats.publish_batches >= 1
    good = [o for o in outcomes[0::2] if isinstance(o, PublishResult)]
    errors = [o for o in outcomes[1::2] if isinstance(o, ApiReplyError)]
    assert [r.offset for r in good] == [1, 2, 3, 4, 5]
    assert [e.code for e in errors] == [102] * 5
    assert len({id(e) for e in errors}) == 5  # one exception per caller, not a shared one


async def test_a_failed_batch_fails_each_caller_separately(via_proxy: ApiFactory,
                                                          proxy: FaultProxy) -> None:
    proxy.fail_next(1, 400)
    async with via_proxy() as api:
        outcomes = await asyncio.gather(*(api.publish(room(), {"n": n}) for n in range(5)),
                                        return_exceptions=True)
        assert api.stats.publish_batches == 1
    assert all(isinstance(o, ApiRequestError) and o.status_code == 400 for o in outcomes)
    assert len({id(o) for o in outcomes}) == 5
    assert len(proxy.requests) == 1


async def test_temporary_error_inside_a_batch_resends_the_tail_once(
        via_proxy: ApiFactory, proxy: FaultProxy) -> None:
    channel = room()

    def fail_third(body: bytes) -> bytes:
        replies = json.loads(body)["replies"]
        replies[2] = {"error": {"code": 100, "message": "internal server error"}}
        return json.dumps({"replies": replies}).encode()

    proxy.rewrite_next(1, fail_third)
    async with via_proxy() as api:
        results = await asyncio.gather(*(api.publish(channel, {"n": n}) for n in range(6)))
        assert api.stats.retries == 1
        # The tail was sent again; the server recognised the idempotency keys of the ones it
        # had already published, so the stream holds each message once, in order.
        assert [r.offset for r in results] == [1, 2, 3, 4, 5, 6]
        assert await history_data(api, channel) == [{"n": n} for n in range(6)]
    assert paths(proxy) == ["batch", "batch", "history"]
    resent = json.loads(proxy.requests[1].body)["commands"]
    assert [command["publish"]["data"] for command in resent] == [{"n": n} for n in range(2, 6)]


async def test_broadcast_retries_only_the_channel_that_failed_temporarily(
        via_proxy: ApiFactory, proxy: FaultProxy) -> None:
    first, second = room(), room()

    def fail_second(body: bytes) -> bytes:
        payload = json.loads(body)
        payload["result"]["responses"][1] = {"error": {"code": 111, "message": "slow down"}}
        return json.dumps(payload).encode()

    proxy.rewrite_next(1, fail_second)  # the server did publish to both
    async with via_proxy() as api:
        results = await api.broadcast([first, second], {"text": "all"})
        assert [r.offset for r in results if isinstance(r, PublishResult)] == [1, 1]
        assert await history_data(api, second) == [{"text": "all"}]  # the key deduplicated it
    again = json.loads(proxy.requests[1].body)
    assert again["channels"] == [second]
    assert again["idempotency_key"] == json.loads(proxy.requests[0].body)["idempotency_key"]


# -- faults through the proxy ------------------------------------------------------------------

async def test_503_twice_then_success_is_visible_once(via_proxy: ApiFactory,
                                                      proxy: FaultProxy) -> None:
    channel = room()
    proxy.fail_next(2, 503, forward=True)  # the server publishes, the client sees 503
    async with via_proxy() as api:
        result = await api.publish(channel, {"text": "retried"})
        assert api.stats.retries == 2
        assert await history_data(api, channel) == [{"text": "retried"}]
    assert result.offset == 1
    assert proxy.forwarded == 4  # three publish attempts and the history call


async def test_temporary_reply_error_is_retried(via_proxy: ApiFactory,
                                                proxy: FaultProxy) -> None:
    proxy.answer_next(1, body=b'{"error":{"code":111,"message":"too many requests"}}')
    async with via_proxy() as api:
        assert await api.presence_stats(room()) == PresenceStats(0, 0)
        assert api.stats.retries == 1
    assert len(proxy.requests) == 2


async def test_server_down_is_unavailable_after_retries(centrifugo: LocalCentrifugo) -> None:
    sent: list[httpx.Request] = []

    async def count(request: httpx.Request) -> None:
        sent.append(request)

    closed_port = f"http://127.0.0.1:{free_port()}/api/realtime"
    async with (httpx.AsyncClient(event_hooks={"request": [count]}) as client,
                ServerApi(closed_port, centrifugo.api_key, retries=3, backoff=FAST,
                          client=client) as api):
        started = time.monotonic()
        with pytest.raises(ApiUnavailableError) as caught:
            await api.publish(room(), {"text": "x"})
        assert time.monotonic() - started < 2.0
    assert len(sent) == 4
    assert api.stats.retries == 3
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert "after 4 attempts" in str(caught.value)
    assert centrifugo.api_key not in str(caught.value)


async def test_slow_answer_is_retried_and_visible_once(via_proxy: ApiFactory,
                                                       proxy: FaultProxy) -> None:
    channel = room()
    proxy.delay_next(1, 2.0)  # forwarded at once, answered after the client gave up
    async with via_proxy(timeout=0.3) as api:
        started = time.monotonic()
        await api.publish(channel, {"text": "late"}, idempotency_key=f"k-{channel}")
        assert time.monotonic() - started < 1.5
        assert api.stats.retries == 1
        assert await history_data(api, channel) == [{"text": "late"}]


async def test_dropped_connection_is_retried_and_visible_once(via_proxy: ApiFactory,
                                                              proxy: FaultProxy) -> None:
    channel = room()
    proxy.drop_next(1, forward=True)
    async with via_proxy() as api:
        await api.publish(channel, {"text": "dropped"})
        assert api.stats.retries == 1
        assert await history_data(api, channel) == [{"text": "dropped"}]


async def test_slow_answer_exhausting_retries_is_unavailable(via_proxy: ApiFactory,
                                                             proxy: FaultProxy) -> None:
    proxy.delay_next(3, 1.0, forward=False)
    async with via_proxy(timeout=0.1, retries=2) as api:
        with pytest.raises(ApiUnavailableError) as caught:
            await api.presence(room())
    assert isinstance(caught.value.__cause__, TimeoutError | httpx.TimeoutException)
    assert len(proxy.requests) == 3


# -- backpressure, cancellation and closing ----------------------------------------------------

async def test_publish_waits_when_the_queue_is_full(via_proxy: ApiFactory,
                                                    proxy: FaultProxy) -> None:
    channel = room()
    proxy.delay_next(2, 0.2)
    async with via_proxy(max_pending=3, max_batch=1) as api:
        tasks = [asyncio.create_task(api.publish(channel, {"n": n})) for n in range(6)]
        await asyncio.sleep(0.1)
        assert api.pending == 3  # the other three callers wait for room
        assert not any(task.done() for task in tasks)
        results = await asyncio.gather(*tasks)
    assert [r.offset for r in results] == list(range(1, 7))


async def test_cancelled_publish_is_not_sent_if_still_queued(via_proxy: ApiFactory,
                                                             proxy: FaultProxy) -> None:
    channel = room()
    proxy.delay_next(1, 0.3)
    async with via_proxy() as api:
        first = asyncio.create_task(api.publish(channel, {"n": 1}))
        await asyncio.sleep(0.05)  # first is in flight, held by the proxy
        second = asyncio.create_task(api.publish(channel, {"n": 2}))
        await asyncio.sleep(0)
        second.cancel()
        await first
        assert await history_data(api, channel) == [{"n": 1}]
    assert second.cancelled()


async def test_aclose_drains_queued_publishes(api: ServerApi,
                                              centrifugo: LocalCentrifugo) -> None:
    channel = room()
    tasks = [asyncio.create_task(api.publish(channel, {"n": n})) for n in range(50)]
    await asyncio.sleep(0)  # all fifty are queued; none is confirmed yet
    assert api.pending == 50
    await api.aclose()
    assert [task.result().offset for task in tasks] == list(range(1, 51))
    with pytest.raises(ApiError, match="closed"):
        await api.publish(channel, {"n": 50})
    async with ServerApi(centrifugo.api_url, centrifugo.api_key) as reader:
        assert await history_data(reader, channel) == [{"n": n} for n in range(50)]


async def test_aclose_fails_what_it_could_not_send_in_time(via_proxy: ApiFactory,
                                                           proxy: FaultProxy) -> None:
    proxy.delay_next(1, 5.0)
    api = via_proxy(close_timeout=0.2, max_batch=1)  # one publish in flight, two queued
    await api.start()
    tasks = [asyncio.create_task(api.publish(room(), {"n": n})) for n in range(3)]
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await api.aclose()
    assert time.monotonic() - started < 1.0
    errors = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(e, ApiUnavailableError) and "closed before" in str(e) for e in errors)
    assert len({id(e) for e in errors}) == 3


async def test_calls_outside_the_open_window_are_refused(centrifugo: LocalCentrifugo) -> None:
    api = ServerApi(centrifugo.api_url, centrifugo.api_key)
    with pytest.raises(ApiError, match="not started"):
        await api.presence(room())
    async with api:
        with pytest.raises(ApiError, match="already started"):
            await api.start()
    with pytest.raises(ApiError, match="closed"):
        await api.presence(room())


def test_bad_base_url_is_refused() -> None:
    with pytest.raises(ApiRequestError, match="http"):
        ServerApi("ws://127.0.0.1:3001/api/realtime", "key")
