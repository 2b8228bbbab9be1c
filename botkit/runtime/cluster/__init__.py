"""Replicas on Redis: leases on (bot, room), membership, balance (``cluster:`` in bots.yaml).

Only the runtime uses this package (nothing below runtime/ imports it)."""

from __future__ import annotations

from botkit.runtime.cluster.coordinator import Coordinator
from botkit.runtime.cluster.keys import ClusterKeys, Unit
from botkit.runtime.cluster.leases import LeaseBook
from botkit.runtime.cluster.membership import read_cluster

__all__ = ["ClusterKeys", "Coordinator", "LeaseBook", "Unit", "read_cluster"]
