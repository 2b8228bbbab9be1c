"""A reused HTTP connection costs no Nagle delay (issue 16, item 6).

h11 writes a response's head and body in two ``send`` calls. Without ``TCP_NODELAY`` the second
waits for the ACK of the first, which the client delays by ~40 ms: a keep-alive connection then
answers at most ~23 times a second. Centrifugo (Go) sets ``TCP_NODELAY`` on every connection;
the hub must too, whether uvicorn binds the socket (``python -m botkit.dev.hub``) or ``botkit
dev`` hands it one.
"""

from __future__ import annotations

import http.client
import os
import secrets
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Server
from tests.support.dev import dev_process, dev_yaml

_ROUNDS = 7
_BOUND = 0.020
"""Seconds: a loopback round trip takes well under 1 ms; a Nagle stall takes ~40 ms."""


def _second_request_seconds(port: int) -> float:
    """The median time of the second ``GET /health`` on one keep-alive connection."""
    times: list[float] = []
    for _ in range(_ROUNDS):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            for attempt in range(2):
                started = time.perf_counter()
                connection.request("GET", "/health")
                response = connection.getresponse()
                assert response.status == 200
                response.read()
                if attempt == 1:
                    times.append(time.perf_counter() - started)
        finally:
            connection.close()
    return statistics.median(times)


def test_second_request_on_one_connection_is_fast(
        make_centrifugo: Callable[..., Server]) -> None:
    server = make_centrifugo()
    assert _second_request_seconds(server.port) < _BOUND


async def test_botkit_dev_second_request_on_one_connection_is_fast(tmp_path: Path) -> None:
    key = "latency-key-" + secrets.token_urlsafe(32)
    config = tmp_path / "bots.yaml"
    config.write_text(dev_yaml(project_id="proj_latency"))
    env = {name: value for name, value in os.environ.items()
           if name not in ("XSHATHRA_SERVER_API_KEY",)} | {"TEST_KEY": key}
    async with dev_process(config, env=env, log=tmp_path / "dev.log") as dev:
        # Blocking calls on purpose: the server is another process, and each call is bounded.
        seconds = _second_request_seconds(dev.port)
        assert await dev.stop() == 0
    assert seconds < _BOUND, f"the second request took {seconds * 1000:.1f} ms"
