"""One server API call over HTTP: an attempt with a deadline, retries with backoff, and the
mapping of every failure onto the :class:`ApiError` tree.

A failure that may pass is tried again after a full-jitter backoff delay: transport errors,
timeouts, HTTP 5xx, Centrifugo errors marked temporary (100, 111, 113) and answers that are not
a valid reply (:class:`ApiMalformedReplyError`; every server API call is safe to repeat, as
publishes carry an idempotency key). A refused key (401/403), any other 4xx and a permanent
Centrifugo error are raised at once. The reply is parsed inside the retry loop, by the parser
the caller gives (see :mod:`botkit.serverapi.replies`), so a reply that fails to parse is
retried like any other failure that may pass.

Requests go over botkit's own keep-alive HTTP/1.1 pool (:mod:`botkit.serverapi.http11`, about a
tenth of httpx's CPU per request), or over httpx for an injected client or a proxy from the
environment; both map onto the same errors.

Nothing here shows the key or the URL's userinfo: URLs go through :func:`safe_url`, and text
taken from httpx or the socket layer is scrubbed of both.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import urllib.request
from collections.abc import Callable
from typing import Any, Final, TypeVar

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
from botkit.serverapi.http11 import HttpPool, HttpProtocolError
from botkit.serverapi.stats import ApiStats

__all__ = ["MAX_CONNECTIONS", "Parse", "Transport", "checked_base_url", "copy_error", "gave_up"]

log = logging.getLogger("botkit.serverapi")

_T = TypeVar("_T")

#: Turns a decoded reply object into what the caller gets; raises ApiError when it can't.
Parse = Callable[[dict[str, Any]], _T]


#: Connections to the server API at most, shared by the publisher, presence and the direct
#: calls (16 at a time, MAX_DIRECT_CALLS); beyond it a request waits for one, within its timeout.
MAX_CONNECTIONS: Final = 32


class Transport:
    """POSTs to the server API at ``base_url`` over keep-alive connections: botkit's own
    HTTP/1.1 pool (:mod:`botkit.serverapi.http11`, a fraction of httpx's CPU per request), or
    an httpx client when given one as ``client`` (then the caller owns it and the key goes in
    each request's headers), when a proxy from the environment applies to the URL (httpx
    honours those), or when the key cannot travel in a header as it is (httpx then reports
    that as before)."""

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
        self._pool: HttpPool | None = None
        self._heads: dict[str, bytes] = {}
        self._origin = url
        self._head_fields = _head_fields(url, api_key, self._auth)

    def __repr__(self) -> str:
        return f"Transport({safe_url(self.base_url)!r})"

    def open(self) -> None:
        if self._injected is None and self._head_fields is not None \
                and not _proxied(self._origin):
            tls = (httpx.create_ssl_context() if self._origin.scheme == "https" else None)
            self._pool = HttpPool(self._origin.raw_host.decode("ascii"),
                                  self._origin.port or (443 if tls else 80),
                                  ssl_context=tls, limit=MAX_CONNECTIONS)
            return
        # Over plain http no TLS is ever made (redirects are not followed), so no certificate
        # store is loaded: httpx's default one costs ~2 MiB of memory (bench/ S4).
        plain = self._origin.scheme == "http"
        self._client = self._injected or httpx.AsyncClient(
            timeout=self._timeout, headers=self._headers, verify=not plain,
            follow_redirects=False, limits=httpx.Limits(max_connections=MAX_CONNECTIONS))

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()
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
        if self._pool is not None:
            return await self._pool_attempt(self._pool, method, body)
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
        return self._status(method, response.status_code, response.content, url)

    async def _pool_attempt(self, pool: HttpPool, method: str, body: bytes) -> dict[str, Any]:
        self.stats.requests += 1
        head = self._heads.get(method)
        if head is None:
            head = self._heads[method] = self._head(method)
        try:
            async with asyncio.timeout(self._timeout):
                status, content = await pool.post(
                    head + b"%d\r\n\r\n" % len(body), body)
        except TimeoutError as exc:
            raise ApiUnavailableError(f"{method}: no answer from {safe_url(self._url(method))} "
                                      f"within {self._timeout:g}s") from exc
        except (OSError, HttpProtocolError) as exc:
            raise ApiUnavailableError(
                f"{method}: {type(exc).__name__} talking to {safe_url(self._url(method))}: "
                f"{self._scrub(exc)}") from exc
        return self._status(method, status, content, self._url(method))

    def _head(self, method: str) -> bytes:
        """The request line and headers for ``method``, up to the Content-Length value."""
        assert self._head_fields is not None
        target = self._url(method).raw_path
        return b"POST " + target + b" HTTP/1.1\r\n" + self._head_fields + b"Content-Length: "

    def _status(self, method: str, status: int, content: bytes,
                url: httpx.URL) -> dict[str, Any]:
        if status == 200:
            return replies.decode(method, content)
        if status in (401, 403):
            raise ApiAuthError(
                f"the server API refused the key in {self._key_setting} (HTTP {status}); "
                "check that it is the project's server_api_key")
        if status >= 500:
            raise ApiUnavailableError(f"{method}: the server API answered HTTP {status}")
        raise ApiRequestError(f"{method}: the server API answered HTTP {status}"
                              f"{_status_hint(status, url)}", status)

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


def _head_fields(url: httpx.URL, api_key: str, auth: httpx.BasicAuth | None) -> bytes | None:
    """The headers every request carries, encoded once; None when the key (or the URL's
    credentials) cannot go in a header as it is (left to httpx, which refuses it)."""
    fields = [("Host", url.netloc.decode("ascii")), ("User-Agent", "botkit"),
              ("X-API-Key", api_key), ("Content-Type", "application/json")]
    if auth is not None:
        request = next(auth.auth_flow(httpx.Request("POST", url)))
        fields.append(("Authorization", request.headers["Authorization"]))
    try:
        encoded = b"".join(name.encode("ascii") + b": " + value.encode("ascii") + b"\r\n"
                           for name, value in fields)
    except UnicodeEncodeError:
        return None
    if any(ch in value for _, value in fields for ch in "\r\n\0") or \
            any(value != value.strip() for _, value in fields):
        return None
    return encoded


def _proxied(url: httpx.URL) -> bool:
    """Whether the environment names a proxy for ``url`` (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY)."""
    proxies = urllib.request.getproxies()
    if not (proxies.get(url.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(url.host)


def _status_hint(status: int, url: httpx.URL) -> str:
    if status == 404:
        return (f": there is no such method at {safe_url(url)}; check that the API URL ends "
                "with the server API prefix, e.g. http://localhost:3001/api/realtime")
    if status == 400:
        return ": the server could not read the request body"
    return ""
