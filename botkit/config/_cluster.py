"""``cluster:``: several ``botkit run`` replicas sharing the bots through one Redis.

Its presence turns replicas on: the state store, the job store and the stream positions move
into that Redis (one namespace per bot), and each (bot, room) is served by the replica holding
its lease. Without it nothing changes (one process, SQLite).
"""

from __future__ import annotations

import os
import re
import socket
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from botkit.config._durations import LeaseTtl
from botkit.config._section import Section

__all__ = ["DEFAULT_LEASE_TTL", "ClusterConfig", "default_replica_id"]

DEFAULT_LEASE_TTL = 5.0
_REPLICA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_SCHEMES = ("redis", "rediss", "unix")


def default_replica_id() -> str:
    """Host name and pid: unique among live replicas, and says where to look in a log."""
    return f"{socket.gethostname()}-{os.getpid()}"


class ClusterConfig(Section):
    """Where the replicas meet (``redis_url``), how long a dead replica keeps its rooms
    (``lease_ttl``) and this replica's name (``replica_id``)."""

    redis_url: SecretStr = Field(description="a Redis URL like redis://host:6379/0 "
                                             "(or rediss://, unix://)")
    lease_ttl: LeaseTtl = Field(default=DEFAULT_LEASE_TTL, description="a duration, e.g. 5s")
    replica_id: str = Field(default_factory=default_replica_id,
                            description="a name of letters, digits and ._:- (default: host "
                                        "name and pid)")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr) -> SecretStr:
        # The URL may carry a password: the message never quotes it.
        url = value.get_secret_value()
        scheme = urlsplit(url).scheme.lower() if "://" in url else ""
        if scheme not in _SCHEMES:
            raise ValueError("expected a URL starting with redis://, rediss:// or unix://, "
                             "e.g. redis://localhost:6379/0")
        return value

    @field_validator("replica_id")
    @classmethod
    def _replica_id(cls, value: str) -> str:
        if not _REPLICA_ID.fullmatch(value):
            raise ValueError("expected 1 to 128 letters, digits or ._:- starting with a letter "
                             "or digit")
        return value
