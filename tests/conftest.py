"""Shared fixtures: the servers the integration tests run against.

Every test that uses ``centrifugo`` or ``make_centrifugo`` runs twice: against the real Xshathra
Realtime (Centrifugo v6.9.1, ``[centrifugo]``) and against botkit's development hub (``[hub]``),
with the same settings. The hub is held to the real server by passing the same tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from botkit.dev.hub import HubSettings, LocalHub
from botkit.dev.localserver import LocalCentrifugo, ServerSettings, free_port
from botkit.errors import LocalServerError
from tests.support.redis_server import LocalRedis
from tests.support.servers import TunedCentrifugo

IN_CI = bool(os.environ.get("CI"))
SERVER_KINDS = ("centrifugo", "hub")

Server = LocalCentrifugo | LocalHub


def _test_values(overrides: dict[str, object]) -> dict[str, object]:
    """A free port, fresh secrets, and short expiry delays so that a client that forgets to
    refresh a token is caught within seconds instead of 25 s."""
    values: dict[str, object] = {
        "port": free_port(),
        "expired_close_delay": "1s",
        "expired_sub_close_delay": "1s",
        "presence_update_interval": "2s",
    }
    values.update(overrides)
    return values


def settings_for_tests(**overrides: object) -> ServerSettings:
    """Centrifugo settings for tests (see :func:`_test_values`)."""
    return ServerSettings(**_test_values(overrides))  # type: ignore[arg-type]


def new_server(kind: str, **overrides: object) -> Server:
    """A server of ``kind`` ("centrifugo" or "hub") with the test settings, not started.
    ``channel_limit`` (a hub setting) is honoured by both kinds."""
    values = _test_values(overrides)
    if kind == "hub":
        return LocalHub(HubSettings(**values))  # type: ignore[arg-type]
    channel_limit = values.pop("channel_limit", None)
    settings = ServerSettings(**values)  # type: ignore[arg-type]
    if channel_limit is not None:
        return TunedCentrifugo(settings, channel_limit=int(channel_limit))  # type: ignore[call-overload]
    return LocalCentrifugo(settings)


def _start(server: Server) -> Server:
    if isinstance(server, LocalHub):
        server.start()  # nothing to build: a hub that does not start is a failure
        return server
    try:
        server.start()
    except LocalServerError as exc:
        if IN_CI:
            # CI must exercise the real server; a missing server fails the run, never skips it.
            pytest.fail(f"the real Xshathra Realtime server is required in CI: {exc}",
                        pytrace=False)
        pytest.skip(f"no local Xshathra Realtime server: {exc}")
    return server


@pytest.fixture(scope="session", params=SERVER_KINDS)
def centrifugo(request: pytest.FixtureRequest) -> Iterator[Server]:
    """One server of each kind for the session. Tests must not stop or restart it."""
    server = _start(new_server(request.param))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=SERVER_KINDS)
def make_centrifugo(request: pytest.FixtureRequest) -> Iterator[Callable[..., Server]]:
    """A factory for private servers, for tests that kill, restart or reconfigure one."""
    servers: list[Server] = []

    def make(**overrides: object) -> Server:
        server = new_server(request.param, **overrides)
        servers.append(server)
        return _start(server)

    try:
        yield make
    finally:
        for server in servers:
            server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedis]:
    """A real Redis for the session (Debian's redis-server, installed by scripts/test). Tests
    that restart it must use ``make_redis`` instead."""
    server = _start_redis(LocalRedis())
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def make_redis() -> Iterator[Callable[[], LocalRedis]]:
    """A factory for private Redis servers, for tests that stop or restart one."""
    servers: list[LocalRedis] = []

    def make() -> LocalRedis:
        server = LocalRedis()
        servers.append(server)
        return _start_redis(server)

    try:
        yield make
    finally:
        for server in servers:
            server.close()


def _start_redis(server: LocalRedis) -> LocalRedis:
    try:
        server.start()
    except RuntimeError as exc:
        if IN_CI:
            pytest.fail(f"a real Redis is required in CI: {exc}", pytrace=False)
        pytest.skip(f"no local Redis: {exc}")
    return server
