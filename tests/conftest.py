"""Shared fixtures: a real Xshathra Realtime (Centrifugo v6.9.1) for the whole test session."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from botkit.exceptions import LocalServerError
from botkit.localserver import LocalCentrifugo, ServerSettings, free_port

IN_CI = bool(os.environ.get("CI"))


def settings_for_tests(**overrides: object) -> ServerSettings:
    """Server settings for tests: a free port, fresh secrets, and short expiry delays so that a
    client that forgets to refresh a token is caught within seconds instead of 25 s."""
    values: dict[str, object] = {
        "port": free_port(),
        "expired_close_delay": "1s",
        "expired_sub_close_delay": "1s",
        "presence_update_interval": "2s",
    }
    values.update(overrides)
    return ServerSettings(**values)  # type: ignore[arg-type]


def _start(server: LocalCentrifugo) -> LocalCentrifugo:
    try:
        server.start()
    except LocalServerError as exc:
        if IN_CI:
            # CI must exercise the real server; a missing server fails the run, never skips it.
            pytest.fail(f"the real Xshathra Realtime server is required in CI: {exc}",
                        pytrace=False)
        pytest.skip(f"no local Xshathra Realtime server: {exc}")
    return server


@pytest.fixture(scope="session")
def centrifugo() -> Iterator[LocalCentrifugo]:
    """One Centrifugo for the session. Tests must not stop or restart it."""
    server = _start(LocalCentrifugo(settings_for_tests()))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def make_centrifugo() -> Iterator[Callable[..., LocalCentrifugo]]:
    """A factory for private servers, for tests that kill, restart or reconfigure one."""
    servers: list[LocalCentrifugo] = []

    def make(**overrides: object) -> LocalCentrifugo:
        server = LocalCentrifugo(settings_for_tests(**overrides))
        servers.append(server)
        return _start(server)

    try:
        yield make
    finally:
        for server in servers:
            server.close()
