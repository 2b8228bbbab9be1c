"""Fault suite, server API side: a running bot answers commands while an HTTP fault proxy in
front of the server API spoils the answer to one of its replies.

Every fault is applied to a publish that the proxy did forward: the server published the reply,
but the bot cannot know it (an ambiguous failure). The bot must publish it again with the same
idempotency key, which the server absorbs; so each case checks that

* the bot keeps answering: commands sent after the fault are answered;
* every command is answered exactly once, in the room's history;
* the counters say what happened: one retry in the server API client's stats, two publish
  requests carrying the same idempotency key seen by the proxy, no handler error.

Runs against the real server and the dev hub (the ``centrifugo`` fixture).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from botkit.dev.localserver import LocalCentrifugo
from tests.support.faultbot import Room, api_of, bot_yaml, new_runtime, serve, stats_of
from tests.support.http_fault import Fault, FaultProxy, for_method
from tests.support.humans import human
from tests.support.runtime_support import new_project

pytestmark = pytest.mark.server

PUBLISH = for_method("publish", "batch")


def _edit_result(edit: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    """A rewrite of a publish reply's ``result`` object."""
    def rewrite(body: bytes) -> bytes:
        payload = json.loads(body)
        result = payload.get("result")
        assert isinstance(result, dict), f"not a publish reply: {body!r}"
        edit(result)
        return json.dumps(payload).encode()
    return rewrite


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(result: dict[str, Any]) -> None:
        result[key] = value
    return edit


FAULTS: dict[str, Fault] = {
    # HTTP 200 with a body that is not JSON at all.
    "malformed_json": Fault(rewrite=lambda body: b"{\"result\": {\"offset\": 1,, oops"),
    # The head announces the whole body; half of it comes, then the connection closes.
    "truncated_body": Fault(truncate=True),
    # A reply of the right shape with a field of the wrong type.
    "offset_as_string": Fault(rewrite=_edit_result(_set("offset", "seven"))),
    "offset_as_object": Fault(rewrite=_edit_result(_set("offset", {"value": 7}))),
    "epoch_as_list": Fault(rewrite=_edit_result(_set("epoch", ["e"]))),
    # An error whose code is a string: malformed, so the outcome is unknown.
    "error_code_as_string": Fault(status=200, body=b'{"error": {"code": "temporarily '
                                  b'unavailable", "message": "try later"}}'),
    "http_500": Fault(status=500, body=b"internal server error"),
    "http_503": Fault(status=503, body=b"service unavailable"),
    # No answer until the client gives up on its own timeout.
    "stall_past_timeout": Fault(stall=60.0),
    # Part of the answer, then a TCP reset.
    "reset_mid_response": Fault(reset_after=10),
}


@pytest.fixture
async def fault_proxy(centrifugo: LocalCentrifugo) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(centrifugo.api_url) as proxy:
        yield proxy


def _publish_keys(proxy: FaultProxy, reply_to: str) -> list[str]:
    """The idempotency key of every publish request the proxy saw for the reply to
    ``reply_to`` (a batch counts for each of its publishes)."""
    keys: list[str] = []
    for request in proxy.requests:
        if not PUBLISH(request):
            continue
        body = request.json()
        params = ([body] if request.api_method == "publish"
                  else [command.get("publish", {}) for command in body.get("commands", [])])
        keys += [p["idempotency_key"] for p in params
                 if isinstance(p.get("data"), dict) and p["data"].get("replyTo") == reply_to]
    return keys


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_bot_survives_a_spoiled_publish_reply(
        centrifugo: LocalCentrifugo, fault_proxy: FaultProxy, fault: str) -> None:
    project = new_project()
    yaml_text = bot_yaml(centrifugo, project, ["lobby"],
                         api_url=fault_proxy.proxied(centrifugo.api_url))
    runtime = new_runtime(centrifugo, yaml_text)
    async with serve(runtime), human(centrifugo, project, "lobby", "user_ann") as ann:
        room = Room(centrifugo, project, "lobby", ann)
        before = await room.command("before the fault")
        await room.wait_answered([before], timeout=10)
        api = api_of(runtime)
        retries = api.stats.retries

        fault_proxy.inject(FAULTS[fault], match=PUBLISH)
        hit = await room.command("under the fault")
        # The stall lasts the API client's own timeout (5 s by default), then the retry.
        await room.wait_answered([hit], timeout=20)
        assert fault_proxy.faults_pending == 0, "the fault was never applied"

        after = [await room.command(f"after the fault {n}") for n in range(3)]
        await room.wait_answered(after, timeout=6)
        await room.answered_once()

        keys = _publish_keys(fault_proxy, hit)
        assert len(keys) == 2, f"the spoiled publish must be sent again, once: {keys}"
        assert keys[0] == keys[1], "the publish was sent again with another idempotency key"
        assert api.stats.retries - retries == 1
        assert stats_of(runtime).handler_errors == 0, "a handler saw the fault"
        assert runtime.runners["flaky"].services.replies_sent == len(room.sent)


async def test_bot_survives_a_malformed_presence_reply(
        centrifugo: LocalCentrifugo, fault_proxy: FaultProxy) -> None:
    """The presence the bot reads when it (re)subscribes a room, answered with a presence map
    that is not an object: that one read fails; the bot goes on."""
    project = new_project()
    yaml_text = bot_yaml(centrifugo, project, ["lobby"],
                         api_url=fault_proxy.proxied(centrifugo.api_url))
    fault_proxy.inject(Fault(rewrite=_edit_result(_set("presence", "everyone"))),
                       match=for_method("presence"))
    runtime = new_runtime(centrifugo, yaml_text)
    async with serve(runtime), human(centrifugo, project, "lobby", "user_ann") as ann:
        room = Room(centrifugo, project, "lobby", ann)
        commands = [await room.command(f"after the fault {n}") for n in range(3)]
        await room.wait_answered(commands, timeout=6)
        assert fault_proxy.faults_pending == 0, "the fault was never applied"
        await room.answered_once()
        assert stats_of(runtime).handler_errors == 0
        assert runtime.runners["flaky"].services.replies_sent == len(room.sent)
