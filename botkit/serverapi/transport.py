"""One server API call over HTTP: an attempt with a deadline, retries with backoff, and the
mapping of every failure onto the :class:`ApiError` tree.

A failure that may pass is tried again after a full-jitter backoff delay: transport errors,
timeouts, HTTP 5xx, Centrifugo errors marked temporary (100, 111, 113) and answers that are not
a valid reply (:class:`ApiMalformedReplyError`; every server API call is safe to repeat, as
publishes carry an idempotency key). A refused key (401/403), any other 4xx and a permanent
Centrifugo error are raised at once. The reply is parsed inside the retry loop, by the parser
the caller gives (see :mod:`botkit.serverapi.replies`), so a reply that fails to parse is
retried like any other failure that may pass.

Nothing here shows the key or the URL's userinfo: URLs go through :func:`safe_url`, and text
taken from httpx is scrubbed of both.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from botkit.errors import (
    ApiAuthError,
    ApiError,
    ApiMalformedReplyError,
    ApiReplyError,
    ApiRequestError,
    ApiUnavailableError,
)
from botkit.protocol.backoff import Backoff
from botkit.redact import REDACTED, safe_url
from botkit.serverapi import replies
from botkit.serverapi.stats import ApiStats

__all__ = ["Parse", "Transport", "checked_base_url", "copy_error", "gave_up"]

log = logging.getLogger("botkit.serverapi")

_T = TypeVar("_T")

#: Turns a decoded reply object into what the caller gets; raises ApiError when it can't.
Parse = Callable[[dict[str, Any]], _T]


class Transport:
    """POSTs to the server API at ``base_url`` over one keep-alive httpx client (``client``
    when given: then the caller owns it and the key goes in each request's headers)."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float, retries: int,
                 backoff: Backoff, stats: ApiStats, client: httpx.AsyncClient | None = None,
                 key_setting: str = "xshathra.server_api_key",
                 rng: Callable[[], float] = random.random) -> None:
        url = httpx.URL(checked_base_url(base_url))
        # The key, and the password as given and as decoded: scrubbed from foreign messages.
        self._secrets = [api_key]
        # Credentials in the URL travel as an Authorization header instead, so that the URL
        # httpx logs and puts in its exceptions carries none.
        self._auth: httpx.BasicAuth | None = None
        if url.userinfo:
            self._auth = httpx.BasicAuth(url.username, url.password)
            self._secrets += [url.password, url.userinfo.decode().partition(":")[2]]
            url = url.copy_with(username=None, password=None)
        self._secrets = [secret for secret in self._secrets if secret]
        self.base_url = str(url).rstrip("/")
        self.retries = retries
        self.stats = stats
        self._timeout = timeout
        self._backoff = backoff
        self._key_setting = key_setting
        self._rng = rng
        self._headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
        self._injected = client
        self._client: httpx.AsyncClient | None = None
        self._urls: dict[str, httpx.URL] = {}

    def __repr__(self) -> str:
        return f"Transport({safe_url(self.base_url)!r})"

    def open(self) -> None:
        self._client = self._injected or httpx.AsyncClient(
            timeout=self._timeout, headers=self._headers)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if self._injected is None and client is not None:
            await client.aclose()

    async def call(self, method: str, body: bytes, parse: Parse[_T], *,
                   retries: int | None = None) -> _T:
        """POST ``body`` to ``method`` and return ``parse`` of the reply, retrying what may
        pass (``retries`` times, default the transport's); after the last attempt raise
        :func:`gave_up` of the last failure."""
        retries = self.retries if retries is None else retries
        attempt = 0
        while True:
            try:
                return parse(await self._timed_attempt(method, body))
            except (ApiUnavailableError, ApiReplyError) as exc:
                if isinstance(exc, ApiMalformedReplyError):
                    self.stats.malformed_replies += 1
                if isinstance(exc, ApiReplyError) and not exc.temporary:
                    raise
                if attempt >= retries:
                    raise gave_up(method, exc, attempts=attempt + 1) from _root_cause(exc)
                await self.pause(method, attempt, str(exc))
            attempt += 1

    async def pause(self, method: str, attempt: int, why: str) -> None:
        """Wait before retry ``attempt + 1`` of ``method`` (also for callers that retry part
        of a batch themselves)."""
        delay = self._backoff.delay(attempt, self._rng())
        self.stats.retries += 1
        log.warning("server API %s failed (%s); retry %d/%d in %.2fs",
                    method, why, attempt + 1, self.retries, delay)
        await asyncio.sleep(delay)

    async def _timed_attempt(self, method: str, body: bytes) -> dict[str, Any]:
        """One attempt, its outcome and duration counted in ``stats`` (per method)."""
        started = time.perf_counter()
        outcome = "error"
        try:
            reply = await self._attempt(method, body)
            outcome = "ok"
            return reply
        except ApiUnavailableError:
            outcome = "unavailable"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self.stats.request_done(method, outcome, time.perf_counter() - started)

    async def _attempt(self, method: str, body: bytes) -> dict[str, Any]:
        client = self._client
        if client is None:
            raise ApiError("the server API client is closed")
        self.stats.requests += 1
        url = self._url(method)
        try:
            # httpx times each phase (connect, read, ...) on its own; the outer deadline
            # bounds the whole attempt, a server trickling bytes included.
            async with asyncio.timeout(self._timeout):
                response = await client.post(
                    url, content=body, timeout=self._timeout,
                    headers=self._headers if self._injected is not None else None,
                    auth=self._auth or httpx.USE_CLIENT_DEFAULT)
        except TimeoutError as exc:
            raise ApiUnavailableError(f"{method}: no answer from {safe_url(url)} within "
                                      f"{self._timeout:g}s") from exc
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            raise ApiRequestError(
                f"{method}: cannot send to {safe_url(url)}: {self._scrub(exc)}") from exc
        except httpx.TransportError as exc:
            raise ApiUnavailableError(f"{method}: {type(exc).__name__} talking to "
                                      f"{safe_url(url)}: {self._scrub(exc)}") from exc
        except httpx.HTTPError as exc:
            raise ApiError(f"{method}: {type(exc).__name__} from {safe_url(url)}: "
                           f"{self._scrub(exc)}") from exc
        return self._status(method, response)

    def _status(self, method: str, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        if status == 200:
            return replies.decode(method, response.content)
        if status in (401, 403):
            raise ApiAuthError(
                f"the server API refused the key in {self._key_setting} (HTTP {status}); "
                "check that it is the project's server_api_key")
        if status >= 500:
            raise ApiUnavailableError(f"{method}: the server API answered HTTP {status}")
        raise ApiRequestError(f"{method}: the server API answered HTTP {status}"
                              f"{_status_hint(status, response.url)}", status)

    def _url(self, method: str) -> httpx.URL:
        url = self._urls.get(method)
        if url is None:
            url = self._urls[method] = httpx.URL(f"{self.base_url}/{method}")
        return url

    def _scrub(self, exc: BaseException) -> str:
        """``str(exc)`` of a foreign exception, without our secrets should it quote them."""
        text = str(exc)
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


def checked_base_url(base_url: str) -> str:
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ApiRequestError(
            f"the server API URL {safe_url(base_url)!r} is not valid: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ApiRequestError(f"the server API URL {safe_url(base_url)!r} must be an http(s) "
                              "URL, e.g. http://localhost:3001/api/realtime")
    return base_url.rstrip("/")


def gave_up(method: str, exc: ApiError, *, attempts: int | None = None) -> ApiError:
    """The error to raise once a failure that may pass has used up the retries: a malformed
    reply stays itself (the caller learns the server answered, wrongly); anything else becomes
    :class:`ApiUnavailableError`."""
    tries = f" after {attempts} attempts" if attempts is not None else ""
    error: ApiError
    if isinstance(exc, ApiMalformedReplyError):
        error = ApiMalformedReplyError(f"{exc.reason}{tries.replace(' after', '; after')}",
                                       method=exc.method)
    else:
        error = ApiUnavailableError(f"{method}: the server API kept failing{tries}: {exc}")
    error.__cause__ = exc
    return error


def copy_error(exc: ApiError) -> ApiError:
    """A fresh instance per waiting caller: one exception raised in many tasks would collect
    all their tracebacks."""
    copy: ApiError
    if isinstance(exc, ApiMalformedReplyError):
        copy = ApiMalformedReplyError(exc.reason, method=exc.method)
    elif isinstance(exc, ApiReplyError):
        copy = ApiReplyError(exc.code, exc.message, exc.temporary, method=exc.method)
    elif isinstance(exc, ApiRequestError):
        copy = ApiRequestError(str(exc), exc.status_code)
    else:
        copy = type(exc)(*exc.args)
    copy.__cause__ = exc.__cause__
    return copy


def _root_cause(exc: ApiError) -> BaseException:
    """The httpx (or timeout) error under a transport failure; the reply error itself for a
    temporary Centrifugo error or a malformed reply."""
    if isinstance(exc, ApiUnavailableError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def _status_hint(status: int, url: httpx.URL) -> str:
    if status == 404:
        return (f": there is no such method at {safe_url(url)}; check that the API URL ends "
                "with the server API prefix, e.g. http://localhost:3001/api/realtime")
    if status == 400:
        return ": the server could not read the request body"
    return ""
