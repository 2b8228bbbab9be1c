"""TokenMinter hands a fresh token out again for a tenth of its life instead of signing anew
(a reconnect storm of hundreds of bots then signs nothing new)."""

from __future__ import annotations

import jwt

from botkit.tokens import TokenMinter

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def _claims(token: str) -> dict[str, object]:
    return dict(jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False}))


def test_a_fresh_token_is_handed_out_again_then_renewed() -> None:
    now = [1_000.0]
    minter = TokenMinter(SECRET, "bot_a", ttl=600, clock=lambda: now[0])
    first = minter.connection()
    now[0] += 59  # within a tenth of the ttl
    assert minter.connection() == first
    now[0] += 2  # past it: signed anew, with its own expiry
    renewed = minter.connection()
    assert renewed != first
    assert _claims(renewed)["exp"] == 1_061 + 600
    assert _claims(first)["exp"] == 1_000 + 600


def test_each_channel_has_its_own_token_and_the_connection_its_own() -> None:
    now = [1_000.0]
    minter = TokenMinter(SECRET, "bot_a", ttl=600, clock=lambda: now[0])
    lobby, other = minter.subscription("chat:p:lobby"), minter.subscription("chat:p:other")
    assert minter.subscription("chat:p:lobby") == lobby
    assert _claims(lobby)["channel"] == "chat:p:lobby"
    assert _claims(other)["channel"] == "chat:p:other"
    assert "channel" not in _claims(minter.connection())


def test_a_clock_that_went_back_mints_anew() -> None:
    now = [1_000.0]
    minter = TokenMinter(SECRET, "bot_a", ttl=600, clock=lambda: now[0])
    first = minter.connection()
    now[0] -= 5
    assert minter.connection() != first


def test_the_remembered_tokens_stay_out_of_repr_and_equality() -> None:
    a = TokenMinter(SECRET, "bot_a", ttl=600)
    b = TokenMinter(SECRET, "bot_a", ttl=600)
    a.connection()
    assert a == b
    assert hash(a) == hash(b)
    assert "_minted" not in repr(a)


def test_minter_repr_never_shows_the_secret() -> None:
    minter = TokenMinter("a-very-secret-key-" + "x" * 32, "user_1")
    assert "a-very-secret-key" not in repr(minter)
    assert "user_1" in repr(minter)
