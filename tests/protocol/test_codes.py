"""Error, disconnect and unsubscribe codes mapped to what a client does about them."""

from __future__ import annotations

import pytest

from botkit.protocol import (
    DisconnectAction,
    ErrorAction,
    UnsubscribeAction,
    describe_disconnect,
    disconnect_action,
    error_action,
    unsubscribe_action,
)


@pytest.mark.parametrize(
    ("code", "temporary", "action"),
    [
        (109, False, ErrorAction.REFRESH_TOKEN),
        (109, True, ErrorAction.REFRESH_TOKEN),  # the token check comes first
        (0, False, ErrorAction.RETRY),
        (99, False, ErrorAction.RETRY),  # below 100: transport-level, always retried
        (100, True, ErrorAction.RETRY),
        (111, True, ErrorAction.RETRY),
        (113, True, ErrorAction.RETRY),
        (400, True, ErrorAction.RETRY),  # an app code marked temporary
        (100, False, ErrorAction.FAIL),  # the boundary: 100 is retried only when temporary
        (101, False, ErrorAction.FAIL),
        (103, False, ErrorAction.FAIL),
        (108, False, ErrorAction.FAIL),
        (110, False, ErrorAction.FAIL),
        (112, False, ErrorAction.FAIL),
        (1999, False, ErrorAction.FAIL),
    ],
)
def test_error_action(code: int, temporary: bool, action: ErrorAction) -> None:
    assert error_action(code, temporary) is action


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (-1, DisconnectAction.RECONNECT),
        (0, DisconnectAction.RECONNECT),
        (1000, DisconnectAction.RECONNECT),
        (1006, DisconnectAction.RECONNECT),
        (1009, DisconnectAction.RECONNECT),
        (2999, DisconnectAction.RECONNECT),
        (3000, DisconnectAction.RECONNECT),
        (3005, DisconnectAction.RECONNECT),
        (3012, DisconnectAction.RECONNECT),
        (3014, DisconnectAction.RECONNECT),
        (3499, DisconnectAction.RECONNECT),
        (3500, DisconnectAction.TERMINAL),
        (3501, DisconnectAction.TERMINAL),
        (3509, DisconnectAction.TERMINAL),
        (3999, DisconnectAction.TERMINAL),
        (4000, DisconnectAction.RECONNECT),
        (4499, DisconnectAction.RECONNECT),
        (4500, DisconnectAction.TERMINAL),
        (4999, DisconnectAction.TERMINAL),
        (5000, DisconnectAction.RECONNECT),
        (65535, DisconnectAction.RECONNECT),
    ],
)
def test_disconnect_action(code: int, action: DisconnectAction) -> None:
    assert disconnect_action(code) is action


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (0, UnsubscribeAction.UNSUBSCRIBED),
        (1, UnsubscribeAction.UNSUBSCRIBED),
        (2000, UnsubscribeAction.UNSUBSCRIBED),
        (2499, UnsubscribeAction.UNSUBSCRIBED),
        (2500, UnsubscribeAction.RESUBSCRIBE),
        (2501, UnsubscribeAction.RESUBSCRIBE),
        (2502, UnsubscribeAction.RESUBSCRIBE),
        (9999, UnsubscribeAction.RESUBSCRIBE),
    ],
)
def test_unsubscribe_action(code: int, action: UnsubscribeAction) -> None:
    assert unsubscribe_action(code) is action


@pytest.mark.parametrize("code", range(3500, 3510))
def test_every_terminal_server_code_is_described(code: int) -> None:
    assert disconnect_action(code) is DisconnectAction.TERMINAL
    text = describe_disconnect(code)
    assert text
    assert text[0].islower()
    assert not text.endswith(".")


def test_invalid_token_hint_names_the_setting() -> None:
    assert "xshathra.server_api_key" in describe_disconnect(3500)


@pytest.mark.parametrize("code", [0, 1000, 3000, 3012, 3510, 3999, 4500])
def test_codes_without_a_hint_describe_as_empty(code: int) -> None:
    assert describe_disconnect(code) == ""
