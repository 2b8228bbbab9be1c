from __future__ import annotations

import httpx
import pytest

from botkit.dev.localserver import LocalCentrifugo, ServerSettings, centrifugo_config


def test_config_locks_down_chat_namespace() -> None:
    config = centrifugo_config(ServerSettings(port=1234, api_key="k"))
    (chat,) = config["channel"]["namespaces"]
    assert chat["name"] == "chat"
    assert chat["allow_subscribe_for_client"] is False
    assert chat["force_recovery"] is True
    assert chat["history_size"] >= 100
    assert config["websocket"]["handler_prefix"] == "/realtime/connection/websocket"
    assert config["http_api"]["handler_prefix"] == "/api/realtime"
    assert config["client"]["token"]["hmac_secret_key"] == "k"


def test_secrets_differ_per_run() -> None:
    assert ServerSettings().api_key != ServerSettings().api_key


# This one checks LocalCentrifugo itself, so it runs against the real server only.
@pytest.mark.parametrize("centrifugo", ["centrifugo"], indirect=True)
def test_server_serves_xshathra_paths(centrifugo: LocalCentrifugo) -> None:
    response = httpx.post(f"{centrifugo.api_url}/info", json={},
                          headers={"X-API-Key": centrifugo.api_key})
    assert response.status_code == 200
    assert response.json()["result"]["nodes"][0]["version"].startswith("6.9.1")
    refused = httpx.post(f"{centrifugo.api_url}/info", json={},
                         headers={"X-API-Key": "wrong"})
    assert refused.status_code == 401
