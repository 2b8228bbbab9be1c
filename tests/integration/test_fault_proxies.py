"""The fault suite's HTTP faults do what they say, seen by a plain HTTP client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from botkit.dev.localserver import LocalCentrifugo
from tests.support.http_fault import Fault, FaultProxy, for_method

pytestmark = pytest.mark.server


Proxied = tuple[FaultProxy, httpx.AsyncClient]


@pytest.fixture
async def proxied(centrifugo: LocalCentrifugo) -> AsyncIterator[Proxied]:
    async with FaultProxy(centrifugo.api_url) as proxy:
        async with httpx.AsyncClient(base_url=proxy.proxied(centrifugo.api_url), timeout=2.0,
                                     headers={"X-API-Key": centrifugo.api_key}) as http:
            yield proxy, http


async def _publish(http: httpx.AsyncClient, channel: str = "") -> httpx.Response:
    channel = channel or f"chat:p:{uuid.uuid4().hex[:12]}"
    return await http.post("/publish", json={"channel": channel, "data": {"n": 1}})


async def test_a_fault_waits_for_the_method_it_matches(
        proxied: Proxied) -> None:
    proxy, http = proxied
    proxy.inject(Fault(status=503), match=for_method("publish"))
    info = await http.post("/info", json={})
    assert info.status_code == 200
    assert proxy.faults_pending == 1
    assert (await _publish(http)).status_code == 503
    assert proxy.faults_pending == 0
    assert [r.api_method for r in proxy.requests] == ["info", "publish"]


async def test_truncated_body(proxied: Proxied) -> None:
    proxy, http = proxied
    proxy.truncate_next(1)
    channel = f"chat:p:{uuid.uuid4().hex[:12]}"
    with pytest.raises(httpx.RemoteProtocolError):
        await _publish(http, channel)
    assert proxy.forwarded == 1  # the server did publish: the next one is the second
    assert (await _publish(http, channel)).json()["result"]["offset"] == 2


async def test_reset_mid_response(proxied: Proxied) -> None:
    proxy, http = proxied
    proxy.reset_next(1, after=5)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        await _publish(http)
    assert proxy.forwarded == 1


async def test_stall_until_the_client_gives_up(
        proxied: Proxied) -> None:
    proxy, http = proxied
    proxy.stall_next(1)
    with pytest.raises(httpx.ReadTimeout):
        await http.post("/publish", json={"channel": "chat:p:stall", "data": {}},
                        timeout=0.3)
    assert proxy.forwarded == 1
    assert (await _publish(http)).status_code == 200
