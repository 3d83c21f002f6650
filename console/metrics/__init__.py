"""Prometheus: Berth's snapshots as `berth_*` series, shards of a fleet, alert rules, and (later) fleets
read back from PromQL. Core: never imports Textual or Rich.

One call mounts the exposition beside any poller (``berth serve``, ``berth metrics``)::

    from console.metrics import start_exposition
    server = start_exposition(lambda: feed.latest, "127.0.0.1", 9417, stale_after=inv.alerts.stale_after)
    ...
    server.close()
"""

from __future__ import annotations

from console.metrics.collector import SnapshotCollector
from console.metrics.exposition import (
    MetricsApp,
    MetricsServer,
    build_registry,
    parse_listen,
    start_exposition,
)
from console.metrics.shard import Shard, parse_shard, shard_inventory

__all__ = [
    "MetricsApp",
    "MetricsServer",
    "Shard",
    "SnapshotCollector",
    "build_registry",
    "parse_listen",
    "parse_shard",
    "shard_inventory",
    "start_exposition",
]
