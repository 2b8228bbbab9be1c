"""The server API client against both server kinds, with faults injected by the real HTTP fault
proxy: a bad answer fails that call only (or is retried within the budget), and the next call
succeeds. A publish whose answer was unreadable is retried with its idempotency key, so it is
published once."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from botkit.dev.localserver import LocalCentrifugo
from botkit.errors import ApiError, ApiReplyError, ApiRequestError, ApiUnavailableError
from botkit.protocol.backoff import Backoff
from botkit.serverapi import PublishResult, ServerApi
from tests.support.http_fault import FaultProxy

pytestmark = pytest.mark.server

FAST = Backoff(base=0.01, cap=0.05)
TIMEOUT = 0.5

Inject = Callable[[FaultProxy, int], None]


def room() -> str:
    return f"chat:proj1:{uuid.uuid4().hex[:12]}"


def answer(body: bytes) -> Inject:
    """The server acts on the request; the client gets ``body`` instead of its answer."""
    return lambda proxy, count: proxy.answer_next(count, body=body, forward=True)


def rewrite(change: Callable[[Any], Any]) -> Inject:
    """The server's own answer, decoded, changed by ``change`` and encoded again."""
    def edit(body: bytes) -> bytes:
        return json.dumps(change(json.loads(body))).encode()
    return lambda proxy, count: proxy.rewrite_next(count, edit)


def set_result(**fields: Any) -> Callable[[Any], Any]:
    def change(payload: Any) -> Any:
        payload["result"].update(fields)
        return payload
    return change


MALFORMED: dict[str, Inject] = {
    "not-json": answer(b'{"result":{"offset":'),
    "truncated-body": lambda proxy, count: proxy.rewrite_next(count, lambda b: b[:len(b) // 2]),
    "offset-as-string": rewrite(set_result(offset="1")),
    "offset-as-object": rewrite(set_result(offset={"n": 1})),
    "epoch-as-number": rewrite(set_result(epoch=7)),
    "error-code-as-string": answer(b'{"error":{"code":"100","message":"internal"}}'),
    "error-code-not-a-number": answer(b'{"error":{"code":"x","message":"internal"}}'),
    "error-as-string": answer(b'{"error":"internal"}'),
    "result-as-list": answer(b'{"result":[]}'),
    "reply-as-list": answer(b"[]"),
}

TRANSPORT: dict[str, Inject] = {
    "http-500": lambda proxy, count: proxy.fail_next(count, 500, forward=True),
    "http-503": lambda proxy, count: proxy.fail_next(count, 503, forward=True),
    "stall-past-timeout": lambda proxy, count: proxy.delay_next(count, TIMEOUT * 4),
    "reset-mid-response": lambda proxy, count: proxy.reset_next(count, after=5),
}


@pytest.fixture
async def proxy(centrifugo: LocalCentrifugo) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(centrifugo.api_url) as fault_proxy:
        yield fault_proxy


def client(centrifugo: LocalCentrifugo, proxy: FaultProxy, **options: Any) -> ServerApi:
    options.setdefault("backoff", FAST)
    options.setdefault("timeout", TIMEOUT)
    return ServerApi(proxy.proxied(centrifugo.api_url), centrifugo.api_key, **options)


async def history_data(api: ServerApi, channel: str) -> list[Any]:
    return [pub.data for pub in (await api.history(channel, limit=-1)).publications]


def keys(proxy: FaultProxy) -> list[str]:
    return [json.loads(request.body)["idempotency_key"] for request in proxy.requests
            if request.path.endswith("/publish")]


# -- publish ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", sorted(MALFORMED | TRANSPORT))
async def test_publish_with_a_bad_answer_is_retried_and_published_once(
        centrifugo: LocalCentrifugo, proxy: FaultProxy, fault: str) -> None:
    channel = room()
    (MALFORMED | TRANSPORT)[fault](proxy, 1)
    async with client(centrifugo, proxy) as api:
        first = await api.publish(channel, {"n": 1})
        assert api.stats.retries == 1
        # The server did publish on the first attempt; the retry carried the same key, so the
        # server answered it with the first publish's position instead of publishing again.
        assert first.offset == 1
        second_key = keys(proxy)[1]
        assert keys(proxy)[0] == second_key
        assert (await api.publish(channel, {"n": 2})).offset == 2
        assert await history_data(api, channel) == [{"n": 1}, {"n": 2}]


@pytest.mark.parametrize("fault", sorted(MALFORMED))
async def test_publish_whose_answers_stay_malformed_fails_alone(
        centrifugo: LocalCentrifugo, proxy: FaultProxy, fault: str) -> None:
    channel = room()
    MALFORMED[fault](proxy, 2)
    async with client(centrifugo, proxy, retries=1) as api:
        with pytest.raises(ApiReplyError) as caught:
            await api.publish(channel, {"n": 1})
        assert caught.value.method == "publish"
        assert str(caught.value).startswith("publish: ")
        assert api.stats.retries == 1
        # Nothing of that failure is left behind: the next publish of this client goes out.
        assert (await api.publish(channel, {"n": 2})).offset == 2
        assert await history_data(api, channel) == [{"n": 1}, {"n": 2}]
    assert len(set(keys(proxy)[:2])) == 1


@pytest.mark.parametrize("fault", sorted(TRANSPORT))
async def test_publish_whose_transport_keeps_failing_is_unavailable_then_recovers(
        centrifugo: LocalCentrifugo, proxy: FaultProxy, fault: str) -> None:
    channel = room()
    TRANSPORT[fault](proxy, 2)
    async with client(centrifugo, proxy, retries=1) as api:
        with pytest.raises(ApiUnavailableError, match=r"^publish: .*after 2 attempts"):
            await api.publish(channel, {"n": 1})
        assert (await api.publish(channel, {"n": 2})).offset == 2


def _break_reply(index: int, reply: Any) -> Callable[[Any], Any]:
    def change(payload: Any) -> Any:
        payload["replies"][index] = reply
        return payload
    return change


@pytest.mark.parametrize("reply", [
    {"publish": {"offset": {"n": 3}, "epoch": "e"}},
    {"publish": []},
    {"error": {"code": "100", "message": "internal"}},
    "not an object",
], ids=["offset-as-object", "result-as-list", "error-code-as-string", "reply-as-string"])
async def test_malformed_reply_inside_a_publish_batch_resends_the_tail(
        centrifugo: LocalCentrifugo, proxy: FaultProxy, reply: Any) -> None:
    channel = room()
    rewrite(_break_reply(2, reply))(proxy, 1)
    async with client(centrifugo, proxy) as api:
        results = await asyncio.gather(*(api.publish(channel, {"n": n}) for n in range(6)))
        assert api.stats.publish_batches == 2
        assert api.stats.retries == 1
        assert [r.offset for r in results] == [1, 2, 3, 4, 5, 6]
        assert (await api.publish(channel, {"n": 6})).offset == 7
        assert await history_data(api, channel) == [{"n": n} for n in range(7)]
    resent = json.loads(proxy.requests[1].body)["commands"]
    assert [command["publish"]["data"] for command in resent] == [{"n": n} for n in range(2, 6)]


async def test_a_batch_reply_of_the_wrong_count_is_retried(
        centrifugo: LocalCentrifugo, proxy: FaultProxy) -> None:
    channel = room()
    rewrite(lambda payload: {"replies": payload["replies"][:2]})(proxy, 1)
    async with client(centrifugo, proxy) as api:
        results = await asyncio.gather(*(api.publish(channel, {"n": n}) for n in range(4)))
        assert [r.offset for r in results] == [1, 2, 3, 4]
        assert await history_data(api, channel) == [{"n": n} for n in range(4)]


# -- the other methods ----------------------------------------------------------------------

async def test_malformed_broadcast_response_retries_that_channel(
        centrifugo: LocalCentrifugo, proxy: FaultProxy) -> None:
    first, second = room(), room()

    def break_second(payload: Any) -> Any:
        payload["result"]["responses"][1] = {"result": {"offset": "x", "epoch": 5}}
        return payload

    rewrite(break_second)(proxy, 1)
    async with client(centrifugo, proxy) as api:
        results = await api.broadcast([first, second], {"text": "all"})
        assert all(isinstance(r, PublishResult) and r.offset == 1 for r in results)
        assert await history_data(api, second) == [{"text": "all"}]
        assert (await api.publish(first, {"n": 2})).offset == 2
    again = json.loads(proxy.requests[1].body)
    assert again["channels"] == [second]


async def test_broadcast_responses_that_stay_malformed_fail_that_channel_only(
        centrifugo: LocalCentrifugo, proxy: FaultProxy) -> None:
    first, second = room(), room()

    def break_last(payload: Any) -> Any:
        payload["result"]["responses"][-1] = {"result": {"offset": {}}}
        return payload

    rewrite(break_last)(proxy, 2)
    async with client(centrifugo, proxy, retries=1) as api:
        good, bad = await api.broadcast([first, second], {"text": "all"})
        assert isinstance(good, PublishResult)
        assert isinstance(bad, ApiReplyError)
        assert bad.method == f"broadcast {second}"
        assert (await api.publish(second, {"n": 2})).offset == 2


PRESENCE_MALFORMED = {
    "result-as-list": answer(b'{"result":[]}'),
    "presence-as-list": answer(b'{"result":{"presence":[]}}'),
    "presence-as-nonempty-list": answer(b'{"result":{"presence":[{"client":"c1"}]}}'),
    "info-as-string": answer(b'{"result":{"presence":{"c1":"u1"}}}'),
    "user-as-number": answer(b'{"result":{"presence":{"c1":{"user":1,"client":"c1"}}}}'),
}


@pytest.mark.parametrize("fault", sorted(PRESENCE_MALFORMED))
async def test_malformed_presence_is_retried(centrifugo: LocalCentrifugo, proxy: FaultProxy,
                                             fault: str) -> None:
    PRESENCE_MALFORMED[fault](proxy, 1)
    async with client(centrifugo, proxy) as api:
        assert await api.presence(room()) == {}
        assert api.stats.retries == 1


@pytest.mark.parametrize("fault", sorted(PRESENCE_MALFORMED))
async def test_presence_that_stays_malformed_fails_that_call_only(
        centrifugo: LocalCentrifugo, proxy: FaultProxy, fault: str) -> None:
    PRESENCE_MALFORMED[fault](proxy, 1)
    async with client(centrifugo, proxy, retries=0) as api:
        with pytest.raises(ApiReplyError) as caught:
            await api.presence(room())
        assert caught.value.method == "presence"
        assert await api.presence(room()) == {}
        assert (await api.publish(room(), {"n": 1})).offset == 1


async def test_malformed_presence_inside_a_presence_batch_fails_that_caller_only(
        centrifugo: LocalCentrifugo, proxy: FaultProxy) -> None:
    # The malformed reply in the batch is asked again alone, and malformed again.
    rewrite(_break_reply(1, {"presence": {"presence": []}}))(proxy, 1)
    PRESENCE_MALFORMED["presence-as-list"](proxy, 1)
    async with client(centrifugo, proxy, retries=0) as api:
        outcomes = await asyncio.gather(*(api.presence(room()) for _ in range(3)),
                                        return_exceptions=True)
        assert outcomes[0] == outcomes[2] == {}
        assert isinstance(outcomes[1], ApiReplyError)
        assert outcomes[1].method == "presence"
        assert api.stats.malformed_replies == 2
        assert (await api.publish(room(), {"n": 1})).offset == 1


@pytest.mark.parametrize(("method", "body"), [
    ("presence_stats", b'{"result":{"num_clients":"x","num_users":0}}'),
    ("presence_stats", b'{"result":{"num_clients":-1,"num_users":0}}'),
    ("history", b'{"result":{"offset":{},"epoch":"e"}}'),
    ("history", b'{"result":{"publications":[{"offset":"1"}],"offset":1,"epoch":"e"}}'),
    ("history", b'{"result":{"publications":{},"offset":1,"epoch":"e"}}'),
])
async def test_malformed_stats_and_history_fail_that_call_only(
        centrifugo: LocalCentrifugo, proxy: FaultProxy, method: str, body: bytes) -> None:
    channel = room()
    proxy.answer_next(1, body=body)
    async with client(centrifugo, proxy, retries=0) as api:
        call = (api.history(channel, limit=10) if method == "history"
                else api.presence_stats(channel))
        with pytest.raises(ApiReplyError) as caught:
            await call
        assert caught.value.method == method
        assert (await api.publish(channel, {"n": 1})).offset == 1
        assert (await api.history(channel, limit=10)).position.offset == 1


async def test_raw_batch_with_the_wrong_reply_count_fails_that_call_only(
        centrifugo: LocalCentrifugo, proxy: FaultProxy) -> None:
    proxy.answer_next(1, body=b'{"replies":[{}]}')
    async with client(centrifugo, proxy, retries=0) as api:
        commands = [{"presence_stats": {"channel": room()}} for _ in range(2)]
        with pytest.raises(ApiReplyError) as caught:
            await api.batch(commands)
        assert caught.value.method == "batch"
        assert len(await api.batch(commands)) == 2


# -- secrets ---------------------------------------------------------------------------------

async def test_no_error_log_or_repr_shows_the_key_or_url_userinfo(
        centrifugo: LocalCentrifugo, proxy: FaultProxy,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password = f"pw-{uuid.uuid4().hex}"
    url = proxy.proxied(centrifugo.api_url).replace("http://", f"http://bot:{password}@")
    failures: list[BaseException] = []
    async with ServerApi(url, centrifugo.api_key, backoff=FAST, timeout=TIMEOUT,
                         retries=1) as api:
        shown = [repr(api), str(api)]
        for inject, call in [
            (TRANSPORT["http-503"], lambda: api.publish(room(), {"n": 1})),
            (TRANSPORT["stall-past-timeout"], lambda: api.presence(room())),
            (TRANSPORT["reset-mid-response"], lambda: api.history(room(), limit=1)),
            (MALFORMED["not-json"], lambda: api.presence_stats(room())),
            (lambda p, n: p.fail_next(n, 404), lambda: api.presence_stats(room())),
        ]:
            inject(proxy, 2)
            with pytest.raises(ApiError) as caught:
                await call()
            failures.append(caught.value)
        proxy.fail_next(1, 404)
        with pytest.raises(ApiRequestError) as not_found:
            await api.presence(room())
        failures.append(not_found.value)
    for error in failures:
        shown += [str(error), repr(error)]
        while error.__cause__ is not None:
            error = error.__cause__
            shown += [str(error), repr(error)]
    shown.append(caplog.text)
    assert "after 2 attempts" in shown[2]
    assert "there is no such method" in str(not_found.value)
    # The URL is shown, without its userinfo (which travelled as an Authorization header).
    assert f"http://127.0.0.1:{proxy.port}/api/realtime/presence" in str(not_found.value)
    assert proxy.requests[-1].headers["authorization"].startswith("Basic ")
    for text in shown:
        assert password not in text
        assert centrifugo.api_key not in text


# -- a bug in a sender ------------------------------------------------------------------------

async def test_a_bug_while_sending_fails_those_publishes_only(
        centrifugo: LocalCentrifugo, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import botkit.serverapi.publisher as publisher

    def buggy(payload: dict[str, Any]) -> PublishResult:
        monkeypatch.undo()  # once
        raise RuntimeError("a bug in the reply handling")

    channel = room()
    async with client(centrifugo, proxy) as api:
        monkeypatch.setattr(publisher, "publish_result", buggy)
        with pytest.raises(ApiError, match="publish sender failed") as caught:
            await api.publish(channel, {"n": 1})
        assert not isinstance(caught.value, ApiReplyError | ApiUnavailableError)
        assert (await api.publish(channel, {"n": 2})).offset == 2
    assert "a bug in the reply handling" in caplog.text


async def test_a_sender_that_ends_strands_no_caller_and_a_new_one_starts(
        centrifugo: LocalCentrifugo, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from botkit.serverapi.publisher import OrderedPublisher

    def buggy(self: OrderedPublisher) -> list[Any]:
        monkeypatch.undo()  # once
        raise RuntimeError("a bug in the queue handling")

    channel = room()
    async with client(centrifugo, proxy) as api:
        monkeypatch.setattr(OrderedPublisher, "_take", buggy)
        outcomes = await asyncio.gather(*(api.publish(channel, {"n": n}) for n in range(3)),
                                        return_exceptions=True)
        assert all(isinstance(o, ApiError) and "not sent" in str(o) for o in outcomes)
        assert (await api.publish(channel, {"n": 3})).offset == 1
    assert "a bug in the queue handling" in caplog.text


async def test_a_bug_in_the_presence_sender_fails_its_callers_only(
        centrifugo: LocalCentrifugo, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import botkit.serverapi.presence as presence

    def buggy(payload: dict[str, Any]) -> Any:
        monkeypatch.undo()  # once
        raise RuntimeError("a bug in the presence handling")

    async with client(centrifugo, proxy) as api:
        monkeypatch.setattr(presence, "presence", buggy)
        with pytest.raises(ApiError, match="not completed"):
            await api.presence(room())
        assert await api.presence(room()) == {}
    assert "a bug in the presence handling" in caplog.text
