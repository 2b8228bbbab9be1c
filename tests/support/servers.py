"""Test servers beyond the seed's settings: a local Centrifugo with a raised channel limit, and
Centrifugo nodes on its Redis engine (the production topology of replicas).

``ServerSettings`` holds what the seed configures; the hub's ``HubSettings`` adds Centrifugo's
``client.channel_limit`` (128 by default) under the same name. A bot with 500 rooms needs it
raised on both server kinds, so ``make_centrifugo(channel_limit=1000)`` works for both: for the
real server, this subclass writes the option into the config file it starts with.

Several :class:`RedisEngineCentrifugo` nodes given the same settings (but each its own port) and
the same Redis form one Centrifugo cluster: a publication on one node reaches the subscribers of
every node, and presence, join/leave and history are shared through Redis.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from botkit.dev.localserver import (
    LocalCentrifugo,
    ServerSettings,
    centrifugo_config,
    ensure_centrifugo,
    free_port,
)

__all__ = ["RedisEngineCentrifugo", "TunedCentrifugo", "redis_engine_config",
           "redis_engine_nodes"]


class TunedCentrifugo(LocalCentrifugo):
    """A :class:`LocalCentrifugo` whose client channel limit is ``channel_limit``."""

    def __init__(self, settings: ServerSettings, *, channel_limit: int) -> None:
        super().__init__(settings)
        self.channel_limit = channel_limit

    def start(self, *, timeout: float = 30.0) -> None:
        if self._running():
            return
        binary = ensure_centrifugo()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = centrifugo_config(self.settings)
        config["client"]["channel_limit"] = self.channel_limit
        self.config_path.write_text(json.dumps(config, indent=2))
        os.chmod(self.config_path, 0o600)  # it holds this run's secrets
        self._launch([str(binary), "--config", str(self.config_path)], timeout=timeout)


def redis_engine_config(settings: ServerSettings, redis_address: str, *, db: int,
                        prefix: str, node_name: str) -> dict[str, Any]:
    """The seed's config on Centrifugo v6's Redis engine: ``engine.type: redis`` and
    ``engine.redis.{address, db, prefix}`` (``centrifugo defaultconfig`` lists the section)."""
    config = centrifugo_config(settings)
    config["engine"] = {"type": "redis", "redis": {
        "address": [redis_address], "db": db, "prefix": prefix}}
    config["node"] = {"name": node_name}
    return config


class RedisEngineCentrifugo(LocalCentrifugo):
    """One Centrifugo node on the Redis engine at ``redis_address`` (``redis://host:port``),
    in Redis database ``db`` under ``prefix``: a database apart from botkit's leases and state,
    so that neither side's keys or SCANs meet the other's."""

    def __init__(self, settings: ServerSettings, redis_address: str, *, db: int = 1,
                 prefix: str = "centrifugo", node_name: str = "node") -> None:
        super().__init__(settings)
        self.redis_address = redis_address
        self.db = db
        self.prefix = prefix
        self.node_name = node_name

    def start(self, *, timeout: float = 30.0) -> None:
        if self._running():
            return
        binary = ensure_centrifugo()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = redis_engine_config(self.settings, self.redis_address, db=self.db,
                                     prefix=self.prefix, node_name=self.node_name)
        self.config_path.write_text(json.dumps(config, indent=2))
        os.chmod(self.config_path, 0o600)  # it holds this run's secrets
        self._launch([str(binary), "--config", str(self.config_path)], timeout=timeout)


def redis_engine_nodes(settings: ServerSettings, redis_address: str, count: int, *,
                       db: int = 1, prefix: str = "centrifugo") -> list[RedisEngineCentrifugo]:
    """``count`` nodes of one Centrifugo cluster (not started): the same secrets, each on a
    port of its own (``settings.port`` is the first node's)."""
    nodes = []
    for index in range(count):
        node_settings = settings if index == 0 else dataclasses.replace(settings,
                                                                        port=free_port())
        nodes.append(RedisEngineCentrifugo(node_settings, redis_address, db=db, prefix=prefix,
                                           node_name=f"node{index + 1}"))
    return nodes
