"""botkit.serverapi.transport's pure parts: the error given after the retries, one error per
waiting caller, and URLs shown without their credentials."""

from __future__ import annotations

import pytest

from botkit.errors import (
    ApiError,
    ApiMalformedReplyError,
    ApiReplyError,
    ApiRequestError,
    ApiUnavailableError,
)
from botkit.protocol.backoff import Backoff
from botkit.serverapi import ServerApi
from botkit.serverapi.stats import ApiStats
from botkit.serverapi.transport import Transport, checked_base_url, copy_error, gave_up


def test_a_malformed_reply_stays_itself_after_the_retries() -> None:
    last = ApiMalformedReplyError("offset should be a non-negative integer", method="publish")
    error = gave_up("publish", last, attempts=4)
    assert isinstance(error, ApiMalformedReplyError)
    assert str(error) == ("publish: malformed reply: offset should be a non-negative integer; "
                          "after 4 attempts")
    assert error.__cause__ is last


@pytest.mark.parametrize("last", [
    ApiUnavailableError("publish: the server API answered HTTP 503"),
    ApiReplyError(111, "too many requests", True, method="publish"),
])
def test_other_failures_that_may_pass_end_unavailable(last: ApiError) -> None:
    error = gave_up("publish", last, attempts=2)
    assert type(error) is ApiUnavailableError
    assert str(error).startswith("publish: the server API kept failing after 2 attempts: ")


@pytest.mark.parametrize("error", [
    ApiMalformedReplyError("bad", method="batch"),
    ApiReplyError(100, "internal", True, method="batch"),
    ApiRequestError("batch: HTTP 400", 400),
    ApiUnavailableError("batch: down"),
    ApiError("closed"),
])
def test_copy_error_is_a_fresh_equal_error(error: ApiError) -> None:
    error.__cause__ = OSError("cause")
    copy = copy_error(error)
    assert copy is not error
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
    assert copy.__cause__ is error.__cause__


@pytest.mark.parametrize("url", [
    "ws://bot:hunter2@127.0.0.1:3001/api/realtime", "http://bot:hunter2@/api/realtime"])
def test_a_refused_url_is_shown_without_credentials(url: str) -> None:
    with pytest.raises(ApiRequestError) as caught:
        checked_base_url(url)
    assert "hunter2" not in str(caught.value)
    assert "***@" in str(caught.value)


def test_userinfo_leaves_the_url_for_an_authorization_header() -> None:
    transport = Transport("http://bot:hun%40ter2@127.0.0.1:3001/api/realtime/", "the-key",
                          timeout=1.0, retries=0, backoff=Backoff(), stats=ApiStats())
    assert transport.base_url == "http://127.0.0.1:3001/api/realtime"
    api = ServerApi("http://bot:hun%40ter2@127.0.0.1:3001/api/realtime", "the-key")
    for text in (repr(transport), repr(api)):
        assert "hun" not in text
        assert "the-key" not in text
        assert "127.0.0.1:3001/api/realtime" in text


@pytest.mark.parametrize(("url", "certificates"), [
    ("http://127.0.0.1:3001/api/realtime", False),  # no TLS: no certificate store (~2 MiB)
    ("https://api.example/api/realtime", True),
])
async def test_the_certificate_store_is_loaded_only_for_https(url: str,
                                                              certificates: bool) -> None:
    transport = Transport(url, "the-key", timeout=1.0, retries=0, backoff=Backoff(),
                          stats=ApiStats())
    transport.open()
    try:
        # The hot path's own pool makes TLS only for https; plain http holds no context at all.
        context = transport._pool._ssl  # type: ignore[union-attr]
        assert (context is not None and context.cert_store_stats()["x509_ca"] > 0) is certificates
    finally:
        await transport.aclose()
