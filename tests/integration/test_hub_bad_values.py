"""Values the hub can't pass on are refused with 400 and the reason (issue 16, item 11).

``1e999`` overflows a float and ``"\\ud800"`` is a lone surrogate: JSON's grammar allows both,
but the hub holds decoded values, which it could not write back out. It answered the first
with HTTP 500 (its encoder failed) and a dev send with the second with 502 (the publish failed
to encode); both are the client's mistake, so both are 400 with a message that says what.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette

from botkit.dev.hub import LocalHub
from botkit.dev.hub.backend import SEND_PATH, TOKEN_PATH, DevSettings, backend_routes
from botkit.serverapi.client import ServerApi
from botkit.tokens import chat_channel
from tests.conftest import Server, new_server

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def hub() -> Iterator[LocalHub]:
    server = new_server("hub")
    assert isinstance(server, LocalHub)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"channel": "chat:p_x", "data": 1e999}', "out of range"),
    (b'{"channel": "chat:p_x", "data": {"n": -1E+400}}', "out of range"),
    (b'{"channel": "chat:p_x", "data": "\\ud800"}', "lone surrogate"),
    (b'{"channel": "chat:p_x", "data": {"t": "a\\uDC00b"}}', "lone surrogate"),
])
def test_server_api_refuses_unencodable_values_with_400(hub: LocalHub, body: bytes,
                                                        reason: str) -> None:
    response = httpx.post(f"{hub.api_url}/publish", content=body, timeout=5,
                          headers={"X-API-Key": hub.api_key})
    assert response.status_code == 400, response.text
    assert reason in response.text


def test_server_api_keeps_big_finite_numbers_and_surrogate_pairs(hub: LocalHub) -> None:
    body = b'{"channel": "chat:p_x", "data": {"n": 1e308, "t": "\\ud83d\\ude00"}}'
    response = httpx.post(f"{hub.api_url}/publish", content=body, timeout=5,
                          headers={"X-API-Key": hub.api_key})
    assert response.status_code == 200, response.text
    assert "error" not in response.json()


async def test_dev_send_with_a_lone_surrogate_is_400(centrifugo: Server) -> None:
    room = f"room_{secrets.token_hex(4)}"
    settings = DevSettings(project_id="proj_bad", secret=centrifugo.api_key)
    async with ServerApi(centrifugo.api_url, centrifugo.api_key) as api:
        app = Starlette(routes=backend_routes(settings, api))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://hub.test") as http:
            login = (await http.post(TOKEN_PATH, json={"name": "Mallory"})).json()
            for text in (b'"a\\ud800b"', b'"\\udfff"'):
                sent = await http.post(
                    SEND_PATH, content=b'{"roomId": "%s", "text": %s}' % (room.encode(), text),
                    headers={"Authorization": f"Bearer {login['token']}",
                             "Content-Type": "application/json"})
                assert sent.status_code == 400, sent.text
                assert sent.json()["error"] == "bad_request"
                assert "lone surrogate" in sent.json()["message"]
            history = await api.history(chat_channel("proj_bad", room), limit=-1)
            assert history.publications == ()
