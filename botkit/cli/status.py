"""``botkit status``: which replicas are alive and which (bot, room) each serves, read from the
cluster's Redis (the ``cluster:`` section of bots.yaml)."""

from __future__ import annotations

import asyncio

from botkit.config import BotsConfig
from botkit.errors import BotkitError, ConfigError
from botkit.redact import safe_url

__all__ = ["cluster_status"]


def cluster_status(config: BotsConfig) -> int:
    """Print the replicas and their units; 0 when every unit is held, 1 when some is not."""
    if config.cluster is None:
        raise ConfigError("botkit status reads the replicas from Redis: bots.yaml has no "
                          "cluster: section (one process serves every room)")
    return asyncio.run(_status(config))


async def _status(config: BotsConfig) -> int:
    from redis.exceptions import RedisError

    from botkit.runtime.cluster import ClusterKeys, read_cluster
    from botkit.runtime.replicas import open_redis

    assert config.cluster is not None
    project = config.xshathra.project_id
    units = [f"{bot.name}/{room.id}" for bot in config.enabled_bots() for room in bot.rooms]
    redis = open_redis(config.cluster)
    try:
        replicas, leases = await read_cluster(redis, ClusterKeys(project))
    except (RedisError, OSError) as exc:
        where = safe_url(config.cluster.redis_url.get_secret_value())
        raise BotkitError(f"cannot read the cluster from {where} (cluster.redis_url): "
                          f"{exc}") from None
    finally:
        await redis.aclose()
    print(f"project {project}: {len(replicas)} replica(s), {len(units)} unit(s)")
    for replica in sorted(replicas):
        held = sorted(unit for unit, holder in leases.items()
                      if holder.rpartition(":")[0] == replica)
        print(f"\nreplica {replica}: {len(held)} unit(s)")
        for unit in held:
            print(f"  {unit} (fence {leases[unit].rpartition(':')[2]})")
    orphans = sorted(unit for unit, holder in leases.items()
                     if holder.rpartition(":")[0] not in replicas)
    for unit in orphans:
        print(f"\n{unit}: held by {leases[unit].rpartition(':')[0]}, which no longer "
              "heartbeats (its lease runs out)")
    free = [unit for unit in units if unit not in leases]
    if free:
        print(f"\nnot held by any replica: {', '.join(free)}")
        return 1
    return 0
