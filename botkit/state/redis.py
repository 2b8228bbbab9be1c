"""The Redis backend of ``ctx.state``, for replicas (the ``cluster:`` section).

Every replica of a deployment reads and writes the same keys, so what one replica's handler
stores another's sees at once. A value is the same JSON text the other backends keep, in a Redis
string named ``botkit:{project}:state:{namespace}:{key}`` (the namespace percent-encoded, so a
namespace holding ``:`` can't reach into another's keys). Expiry is Redis's own (``SET PX``):
one clock, the Redis server's, decides for every replica, and expired keys are purged by Redis.

``incr`` runs as one Lua script (``INCRBY`` keeps the key's expiry); only a counter beyond 64
bits is counted on the client, under ``WATCH`` (optimistic, retried on a conflict).

Fencing: :meth:`RedisStateStore.set_fenced` writes a value only if no higher fencing token was
written for the key before (a Lua compare-and-set on a sibling key). A replica that lost a lease
holds a lower token than the new holder, so its late writes are refused and can never move a
stream position backwards.

Every call is bounded by ``timeout``; a Redis failure is a :class:`StateError` (a timeout a
:class:`StateTimeoutError`) naming the setting ``cluster.redis_url`` and the URL without its
password. After a Redis restart the client reconnects by itself: the first calls may fail while
Redis is down, the next ones work again.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar
from urllib.parse import quote

from redis.asyncio import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from botkit.config import ClusterConfig
from botkit.errors import StateError, StateTimeoutError
from botkit.redact import safe_url
from botkit.state.base import (
    JsonValue,
    StoreBase,
    add,
    check_amount,
    check_key,
    decode,
    encode,
    expiry,
)

__all__ = ["DEFAULT_TIMEOUT", "RedisStateStore", "key_prefix", "open_redis", "redis_errors"]

T = TypeVar("T")

DEFAULT_TIMEOUT = 5.0
"""Seconds one call to Redis may take, reconnection attempts included."""
SETTING = "cluster.redis_url"

# KEYS[1] the counter; ARGV[1] the amount, ARGV[2] the expiry in ms (0: none).
# Returns {1, new value} or {0, stored text} when the client must count (not a 64-bit integer).
_INCR = """
local stored = redis.call('GET', KEYS[1])
if not stored then
  if tonumber(ARGV[2]) > 0 then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  else
    redis.call('SET', KEYS[1], ARGV[1])
  end
  return {1, ARGV[1]}
end
if string.match(stored, '^-?[0-9]+$') then
  local ok, value = pcall(redis.call, 'INCRBY', KEYS[1], ARGV[1])
  if ok then return {1, tostring(value)} end
end
return {0, stored}
"""

# KEYS[1] the value, KEYS[2] its fence; ARGV[1] the value, ARGV[2] the fence (a decimal
# integer). Refused (0) when a higher fence was written; an equal one is the same holder.
_SET_FENCED = """
local fence = redis.call('GET', KEYS[2])
if fence and tonumber(fence) > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""


def key_prefix(project_id: str) -> str:
    """What every key of a project starts with (``botkit:{project}:``): the state store adds
    ``state:``, the job store ``jobs``."""
    return f"botkit:{project_id}:"


def open_redis(cluster: ClusterConfig, *, timeout: float = DEFAULT_TIMEOUT) -> Redis:
    """The process's Redis client (a connection pool; nothing connects before the first call).

    Close it with ``await client.aclose()`` once everything using it has closed."""
    # A Redis restart drops every pooled connection: a call on one fails with ConnectionError,
    # and the retry opens a fresh connection. Three quick retries ride out a blip; a Redis
    # that stays down fails the call well within ``timeout``.
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), 3)
    client: Redis = Redis.from_url(
        cluster.redis_url.get_secret_value(), decode_responses=True,
        socket_timeout=timeout, socket_connect_timeout=min(timeout, 2.0), retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        client_name=f"botkit-{cluster.replica_id}")
    return client


def _password(client: Redis) -> str | None:
    kwargs = client.connection_pool.connection_kwargs
    password = kwargs.get("password")
    return password if isinstance(password, str) and password else None


def _where(client: Redis, url: str | None) -> str:
    if url is not None:
        return safe_url(url)
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


@asynccontextmanager
async def redis_errors(client: Redis, what: str, *, timeout: float,
                       url: str | None = None) -> AsyncIterator[None]:
    """Bound the calls inside to ``timeout`` and turn Redis's failures into StateError naming
    ``cluster.redis_url`` (never its password). ``what`` says what was being done."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except (TimeoutError, RedisTimeoutError) as exc:
        raise StateTimeoutError(
            f"Redis at {_where(client, url)} ({SETTING}) did not answer within {timeout:g} s "
            f"while {what}") from exc
    except RedisError as exc:
        detail = str(exc) or type(exc).__name__
        password = _password(client)
        if password is not None:
            detail = detail.replace(password, "***")
        raise StateError(f"Redis at {_where(client, url)} ({SETTING}) failed while {what}: "
                         f"{detail}") from None


def _milliseconds(ttl: float | None) -> int:
    return 0 if ttl is None else max(1, math.ceil(ttl * 1000))


class RedisStateStore(StoreBase):
    """The store in Redis, shared by every replica (see the module's docstring).

    ``client`` is the process's client (:func:`open_redis`); the store does not close it.
    Opening checks that Redis answers (StateError otherwise)."""

    def __init__(self, client: Redis, project_id: str, *, timeout: float = DEFAULT_TIMEOUT,
                 url: str | None = None) -> None:
        self.client = client
        self.timeout = timeout
        self._url = url
        self._prefix = key_prefix(project_id)
        self._open = False
        self._incr = client.register_script(_INCR)
        self._set_fenced = client.register_script(_SET_FENCED)

    async def open(self) -> None:
        await self._call("connecting", self._ping())
        self._open = True

    async def aclose(self) -> None:
        self._open = False

    async def _ping(self) -> None:
        await self.client.ping()  # type: ignore[misc]  # typed for sync and async alike

    def _key(self, namespace: str, key: str, kind: str = "state") -> str:
        if not self._open:
            raise StateError("the Redis state store is not open; use 'async with' or open()")
        namespace = check_key(namespace, "namespace")
        return f"{self._prefix}{kind}:{quote(namespace, safe='')}:{check_key(key)}"

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        async with redis_errors(self.client, what, timeout=self.timeout, url=self._url):
            return await call
        raise AssertionError("unreachable")  # for mypy: redis_errors re-raises

    async def get(self, namespace: str, key: str, default: JsonValue = None) -> JsonValue:
        name = self._key(namespace, key)
        text: str | None = await self._call(f"reading state key {key!r}", self.client.get(name))
        return default if text is None else decode(key, text)

    async def set(self, namespace: str, key: str, value: JsonValue, *,
                  ttl: float | None = None) -> None:
        name, text = self._key(namespace, key), encode(key, value)
        expiry(ttl, 0.0)
        # No PX: SET drops any expiry the key had (set() replaces the value and the expiry).
        await self._call(f"writing state key {key!r}",
                         self.client.set(name, text, px=_milliseconds(ttl) or None))

    async def delete(self, namespace: str, key: str) -> bool:
        name = self._key(namespace, key)
        removed: int = await self._call(f"deleting state key {key!r}", self.client.delete(name))
        return removed > 0

    async def incr(self, namespace: str, key: str, amount: int = 1, *,
                   ttl: float | None = None) -> int:
        name, amount = self._key(namespace, key), check_amount(amount)
        expiry(ttl, 0.0)  # a bad ttl fails even when the counter exists
        counted, text = await self._call(
            f"counting state key {key!r}",
            self._incr(keys=[name], args=[str(amount), _milliseconds(ttl)]))
        if counted:
            return int(text)
        add(key, text, amount)  # StateError unless the stored value is an integer
        return await self._call(f"counting state key {key!r}",
                                self._incr_big(name, key, amount, ttl))

    async def _incr_big(self, name: str, key: str, amount: int, ttl: float | None) -> int:
        # Beyond 64 bits Redis can't count: read, add here, write only if nobody wrote since.
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(name)
                    stored: str | None = await pipe.get(name)
                    value = add(key, stored, amount)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if stored is None:
                        pipe.set(name, str(value), px=_milliseconds(ttl) or None)
                    else:
                        pipe.set(name, str(value), keepttl=True)
                    await pipe.execute()
                    return value
                except WatchError:
                    continue

    async def keys(self, namespace: str, prefix: str = "") -> list[str]:
        prefix = check_key(prefix, "prefix", empty=True)
        start = self._key(namespace, "k")[:-1]
        pattern = _glob_escape(start + prefix) + "*"
        found: list[str] = await self._call(f"listing state keys of {namespace!r}",
                                            self._scan(pattern))
        return sorted(name[len(start):] for name in found)

    async def _scan(self, pattern: str) -> list[str]:
        return [name async for name in self.client.scan_iter(match=pattern, count=1000)]

    async def set_fenced(self, namespace: str, key: str, value: JsonValue, fence: int) -> bool:
        """Set ``key`` (without expiry) unless a higher fencing token than ``fence`` was written
        for it: True if written. The token of the last write is kept for good (deleting the
        key keeps it), so a stale writer stays refused."""
        if isinstance(fence, bool) or not isinstance(fence, int) or not (
                0 <= fence < 2**53):  # Lua compares them as doubles: exact below 2**53
            raise StateError(f"a fencing token must be an int from 0 to 2**53, got {fence!r}")
        name, text = self._key(namespace, key), encode(key, value)
        fence_name = self._key(namespace, key, "fence")
        written: int = await self._call(
            f"writing state key {key!r}",
            self._set_fenced(keys=[name, fence_name], args=[text, str(fence)]))
        return bool(written)

    def __repr__(self) -> str:
        return f"<RedisStateStore {_where(self.client, self._url)} {self._prefix}>"


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
