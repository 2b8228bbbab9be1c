"""Where a runtime keeps ``ctx.state``, the stored jobs and the stream positions.

Without ``cluster:`` in bots.yaml: the state file (SQLite, held by this process alone) or, with
``state.backend: memory``, nothing that outlives the process. With ``cluster:``: the Redis of
``cluster.redis_url``, shared by every replica, under ``botkit:{project}:`` (the state file is
not opened, and not locked). One Redis client per process serves both stores (and the leases);
it is closed last, once both stores are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from botkit.config import BotsConfig
from botkit.errors import ConfigError
from botkit.redact import safe_url
from botkit.state.store import StateStore, open_state_store

if TYPE_CHECKING:  # redis is the cluster extra: imported only when cluster: is set
    from redis.asyncio import Redis

    from botkit.jobs.redis_store import RedisJobStore

__all__ = ["Storage", "open_storage"]


@dataclass(frozen=True, slots=True)
class Storage:
    """The runtime's stores, open."""

    state: StateStore
    jobs_path: Path | None
    """The SQLite file of the stored jobs (None: in Redis, or only in memory)."""
    job_store: RedisJobStore | None
    """The stored jobs in Redis (cluster: only), not yet loaded: the scheduler loads it."""
    redis: Redis | None
    """The process's Redis client (cluster: only), for whatever else replicas share."""


@asynccontextmanager
async def open_storage(config: BotsConfig) -> AsyncIterator[Storage]:
    """Open the stores ``config`` asks for; close the state store, then the Redis client."""
    cluster = config.cluster
    if cluster is None:
        state = config.state
        async with open_state_store(config) as store:
            yield Storage(store, state.path if state.backend == "sqlite" else None, None, None)
        return
    try:
        from botkit.jobs.redis_store import RedisJobStore
        from botkit.state.redis import RedisStateStore, open_redis
    except ImportError as exc:
        raise ConfigError("cluster: in bots.yaml needs redis, which a plain install leaves "
                          "out: pip install 'botkit[cluster]'") from exc
    project = config.xshathra.project_id
    url = safe_url(cluster.redis_url.get_secret_value())
    client = open_redis(cluster)
    try:
        async with RedisStateStore(client, project, url=url) as store:
            yield Storage(store, None, RedisJobStore(client, project, url=url), client)
    finally:
        await client.aclose()
